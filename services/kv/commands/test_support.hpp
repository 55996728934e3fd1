#pragma once
// Test helpers for the key-value command families (kv_tests only): a RESP2/RESP3 encoding reply_builder that follows
// the session's protocol (HELLO switches it mid-command, as the RESP front end does), and a fixture running commands
// through kv_service::execute exactly as a front end would.
#include <turret/kv/command_table.hpp>
#include <services/kv/kv_service.hpp>
#include <services/kv/store.hpp>

#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace turret::kv::testing {

class resp_test_builder final : public reply_builder {
 public:
  explicit resp_test_builder(const int* proto) : proto_(proto) {}
  std::string out;

  void simple(std::string_view s) override { line('+', s); }
  void error(std::string_view s) override { line('-', s); }
  void integer(long long v) override { line(':', std::to_string(v)); }
  void bulk(std::string_view s) override {
    line('$', std::to_string(s.size()));
    out.append(s);
    out += "\r\n";
  }
  void null_bulk() override { out += v3() ? "_\r\n" : "$-1\r\n"; }
  void null_array() override { out += v3() ? "_\r\n" : "*-1\r\n"; }
  void array(std::size_t n) override { line('*', std::to_string(n)); }
  void map(std::size_t n) override { v3() ? line('%', std::to_string(n)) : line('*', std::to_string(n * 2)); }
  void set(std::size_t n) override { line(v3() ? '~' : '*', std::to_string(n)); }
  void push(std::size_t n) override { line(v3() ? '>' : '*', std::to_string(n)); }
  void dbl(double v) override {
    char b[64];
    if (std::isinf(v)) std::snprintf(b, sizeof b, "%s", v > 0 ? "inf" : "-inf");
    else std::snprintf(b, sizeof b, "%.17g", v);
    v3() ? line(',', b) : bulk(b);
  }
  void boolean(bool v) override { v3() ? line('#', v ? "t" : "f") : integer(v ? 1 : 0); }
  void verbatim(std::string_view s, std::string_view f = "txt") override {
    if (!v3()) return bulk(s);
    line('=', std::to_string(s.size() + 4));
    out.append(f).append(":").append(s).append("\r\n");
  }
  void big_number(std::string_view d) override { v3() ? line('(', d) : bulk(d); }
  void raw(std::string_view b) override { out.append(b); }
  int protocol() const noexcept override { return *proto_; }
  checkpoint mark() const noexcept override { return {out.size()}; }
  void rollback(const checkpoint& to) noexcept override { out.resize(std::min(out.size(), to.a)); }

 private:
  bool v3() const { return *proto_ == 3; }
  void line(char t, std::string_view s) {
    out += t;
    out.append(s);
    out += "\r\n";
  }
  const int* proto_;
};

/// Records pub/sub deliveries (as RESP bytes in the session's protocol) and kills.
struct recording_host final : session_host {
  explicit recording_host(const session* s) : sess(s) {}
  const session* sess;
  std::string delivered;
  bool killed = false;
  bool deliver(const pubsub_message& m) override {
    resp_test_builder b(&sess->resp);
    b.push(m.pattern.empty() ? 3 : 4);
    b.bulk(m.pattern.empty() ? "message" : "pmessage");
    if (!m.pattern.empty()) b.bulk(m.pattern);
    b.bulk(m.channel);
    b.bulk(m.payload);
    delivered += b.out;
    return true;
  }
  void kill() override { killed = true; }
};

struct kv_fixture {
  explicit kv_fixture(store_options o = {})
      : st(std::make_shared<store>(std::move(o))), table(command_table::make_default()), svc(st, table) {}

  std::shared_ptr<store> st;
  std::shared_ptr<command_table> table;
  kv_service svc;

  struct client {
    kv_fixture* f;
    session s;
    recording_host host{&s};
    explicit client(kv_fixture* fx, bool attach = true) : f(fx) {
      s.host = &host;
      s.addr = "127.0.0.1:" + std::to_string(40000 + fx->next_port++);
      s.laddr = "127.0.0.1:6379";
      if (attach) f->st->attach(s);
    }
    ~client() { f->st->detach(s); }
    std::string operator()(std::initializer_list<std::string_view> args) {
      std::vector<std::string_view> v(args);
      return run(v);
    }
    std::string run(const std::vector<std::string_view>& v) {
      resp_test_builder b(&s.resp);
      request_context ctx;
      request req{ctx, s, v, b};
      f->svc.execute(req);
      return b.out;
    }
  };
  int next_port = 0;
  std::unique_ptr<client> connect() { return std::make_unique<client>(this); }
};

}  // namespace turret::kv::testing
