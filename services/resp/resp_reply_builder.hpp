#pragma once
// resp_reply_builder: the key-value core's reply_builder (<turret/kv/reply.hpp>) written straight into a RESP
// connection's output buffer through resp::writer (framework/include/turret/resp/writer.hpp).
//
// One object per connection, reused for every command. It encodes every element for the protocol version the
// session has AT THAT MOMENT (it reads session.resp through a pointer), so HELLO 3 answers in RESP3 and later
// commands of the same pipelined batch follow.
// `final` so that the connection's own calls devirtualise; the key-value core calls it through the interface.
#include <turret/kv/reply.hpp>
#include <turret/kv/session.hpp>
#include <turret/resp/writer.hpp>

#include <string>

namespace turret::resp_frontend {

class resp_reply_builder final : public kv::reply_builder {
 public:
  /// `protocol` is read on every element (normally &session.resp); it must outlive the builder.
  resp_reply_builder(std::string& out, const int& protocol) noexcept : w_(out, protocol), proto_(&protocol) {}

  std::string& buffer() noexcept { return w_.buffer(); }
  resp::writer& writer() noexcept { return w_; }

  void simple(std::string_view s) override { sync(); w_.simple(s); }
  void error(std::string_view s) override { sync(); w_.error(s); }
  void integer(long long v) override { sync(); w_.integer(v); }
  void bulk(std::string_view s) override { sync(); w_.bulk(s); }
  void null_bulk() override { sync(); w_.null_bulk(); }
  void null_array() override { sync(); w_.null_array(); }
  void array(std::size_t n) override { sync(); w_.array(n); }
  void map(std::size_t n) override { sync(); w_.map(n); }
  void set(std::size_t n) override { sync(); w_.set(n); }
  void push(std::size_t n) override { sync(); w_.push(n); }
  void dbl(double v) override { sync(); w_.dbl(v); }
  void boolean(bool v) override { sync(); w_.boolean(v); }
  void verbatim(std::string_view s, std::string_view format) override { sync(); w_.verbatim(s, format); }
  void big_number(std::string_view digits) override { sync(); w_.big_number(digits); }
  void raw(std::string_view resp_bytes) override { sync(); w_.raw(resp_bytes); }
  int protocol() const noexcept override { return *proto_; }
  checkpoint mark() const noexcept override { return {w_.buffer().size()}; }
  void rollback(const checkpoint& to) noexcept override {
    if (w_.buffer().size() > to.a) w_.buffer().resize(to.a);  // shrinking: no allocation
  }

 private:
  void sync() noexcept { w_.set_protocol(*proto_); }
  resp::writer w_;
  const int* proto_;
};

/// Appends a pub/sub message or keyspace notification as Redis sends it: a push (RESP3) or array (RESP2) of
/// "message", channel, payload, or "pmessage", pattern, channel, payload.
inline void append_pubsub_message(std::string& out, int proto, const kv::pubsub_message& m) {
  resp::writer w(out, proto);
  if (m.pattern.empty()) {
    w.push(3);
    w.bulk("message");
  } else {
    w.push(4);
    w.bulk("pmessage");
    w.bulk(m.pattern);
  }
  w.bulk(m.channel);
  w.bulk(m.payload);
}

}  // namespace turret::resp_frontend
