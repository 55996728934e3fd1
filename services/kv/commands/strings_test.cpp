// String and bitmap command tests. The table in string_cases.inc holds redis-server 7.0.15's exact reply bytes for
// scenario scripts (gen_string_cases.py records them); each scenario is replayed here against turret's handlers on
// a fresh store and compared byte for byte. Expiry and TTL behaviour (clock dependent) is tested separately with a
// controlled ctx.now.
#include <turret/kv/command_table.hpp>
#include <services/kv/store.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace turret::kv {
namespace {

/// reply_builder encoding RESP2/RESP3 bytes the way redis-server does (test-local).
class resp_test_builder final : public reply_builder {
 public:
  explicit resp_test_builder(int proto = 2) : proto_(proto) {}
  std::string out;
  int proto_;

  void simple(std::string_view s) override { line('+', s); }
  void error(std::string_view s) override { line('-', s); }
  void integer(long long v) override { line(':', std::to_string(v)); }
  void bulk(std::string_view s) override {
    line('$', std::to_string(s.size()));
    out.append(s);
    out += "\r\n";
  }
  void null_bulk() override { out += proto_ == 3 ? "_\r\n" : "$-1\r\n"; }
  void null_array() override { out += proto_ == 3 ? "_\r\n" : "*-1\r\n"; }
  void array(std::size_t n) override { line('*', std::to_string(n)); }
  void map(std::size_t n) override { proto_ == 3 ? line('%', std::to_string(n)) : line('*', std::to_string(2 * n)); }
  void set(std::size_t n) override { line(proto_ == 3 ? '~' : '*', std::to_string(n)); }
  void push(std::size_t n) override { line(proto_ == 3 ? '>' : '*', std::to_string(n)); }
  void dbl(double v) override {
    char buf[64];
    int n = std::snprintf(buf, sizeof buf, "%.17g", v);
    proto_ == 3 ? line(',', std::string_view(buf, static_cast<std::size_t>(n))) : bulk(std::string_view(buf, static_cast<std::size_t>(n)));
  }
  void boolean(bool v) override { proto_ == 3 ? line('#', v ? "t" : "f") : integer(v); }
  void verbatim(std::string_view s, std::string_view) override { bulk(s); }
  void big_number(std::string_view d) override { proto_ == 3 ? line('(', d) : bulk(d); }
  void raw(std::string_view b) override { out.append(b); }
  int protocol() const noexcept override { return proto_; }
  checkpoint mark() const noexcept override { return {out.size()}; }
  void rollback(const checkpoint& to) noexcept override { out.resize(std::min(out.size(), to.a)); }

 private:
  void line(char t, std::string_view s) {
    out += t;
    out.append(s);
    out += "\r\n";
  }
};

std::string printable(std::string_view s) {
  std::string r;
  for (unsigned char ch : s) {
    if (ch == '\r')
      r += "\\r";
    else if (ch == '\n')
      r += "\\n";
    else if (ch < 0x20 || ch >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      r += buf;
    } else
      r += static_cast<char>(ch);
  }
  return r;
}

const command_table& table() {
  static const std::unique_ptr<command_table> t = [] {
    auto p = std::make_unique<command_table>();
    register_string_commands(*p);
    register_bitmap_commands(*p);
    return p;
  }();
  return *t;
}

ms_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

/// A store, a session and a way to run one command against the string/bitmap handlers.
struct harness {
  store st{store_options{}};
  session sess;
  int proto = 2;
  ms_t now = wall_ms();

  std::string run(std::vector<std::string_view> args) {
    resp_test_builder out(proto);
    if (iequals(args[0], "exists")) {  // keys family (not ours): enough for the scenarios
      out.integer(st.db(sess.db).find(args[1], now) ? 1 : 0);
      return out.out;
    }
    const command_def* def = table().find(args[0]);
    if (!def || !def->handler) return "<no handler>";
    command_ctx ctx{st, sess, std::span<const std::string_view>(args), out, command_time(now)};
    def->handler(ctx);
    return out.out;
  }
  keyspace& db() { return st.db(sess.db); }
};

template <class... A>
std::vector<std::string_view> make_args(A... a) {
  return {a...};
}

struct recorded_case {
  const char* scenario;
  std::vector<std::string_view> args;
  std::string_view expected;
};

const std::vector<recorded_case>& recorded() {
#define STRING_CASE(name, args, expected) {#name, make_args args, expected},
  static const std::vector<recorded_case> cases = {
#include "string_cases.inc"
  };
#undef STRING_CASE
  return cases;
}

}  // namespace

TEST(StringCommands, MatchRedisByteForByte) {
  std::unique_ptr<harness> h;
  std::string scenario;
  std::size_t compared = 0, failures = 0;
  for (const recorded_case& c : recorded()) {
    if (scenario != c.scenario) {
      scenario = c.scenario;
      h = std::make_unique<harness>();
    }
    std::string cmdline;
    for (auto a : c.args) cmdline += printable(a) + " ";
    if (iequals(c.args[0], "hello")) {
      h->proto = c.args.size() > 1 && c.args[1] == "3" ? 3 : 2;
      continue;
    }
    std::string got = h->run(c.args);
    ++compared;
    if (got != c.expected) {
      ++failures;
      ADD_FAILURE() << "[" << scenario << "] " << cmdline << "\n  redis:  " << printable(c.expected)
                    << "\n  turret: " << printable(got);
    }
  }
  std::printf("compared %zu replies with redis-server 7.0.15, %zu differ\n", compared, failures);
}

TEST(StringCommands, ExpiryOptions) {
  harness h;
  const ms_t t0 = h.now;
  EXPECT_EQ(h.run({"SET", "k", "v", "EX", "10"}), "+OK\r\n");
  EXPECT_EQ(h.db().expire_of(h.db().find_raw("k")), t0 + 10000);
  EXPECT_EQ(h.run({"SET", "k", "v2", "KEEPTTL"}), "+OK\r\n");
  EXPECT_EQ(h.db().expire_of(h.db().find_raw("k")), t0 + 10000);
  EXPECT_EQ(h.run({"INCRBYFLOAT", "k", "1"}), "-ERR value is not a valid float\r\n");
  EXPECT_EQ(h.run({"SET", "k", "5", "PX", "500", "GET"}), "$2\r\nv2\r\n");
  EXPECT_EQ(h.db().expire_of(h.db().find_raw("k")), t0 + 500);
  // INCR, APPEND, SETRANGE, SETBIT keep the TTL (dbOverwrite / in-place edits).
  EXPECT_EQ(h.run({"INCR", "k"}), ":6\r\n");
  EXPECT_EQ(h.run({"APPEND", "k", "0"}), ":2\r\n");
  EXPECT_EQ(h.run({"SETRANGE", "k", "5", "x"}), ":6\r\n");
  EXPECT_EQ(h.run({"SETBIT", "k", "100", "1"}), ":0\r\n");
  EXPECT_EQ(h.db().expire_of(h.db().find_raw("k")), t0 + 500);
  // SET without options and GETSET clear it.
  EXPECT_EQ(h.run({"SET", "k", "plain"}), "+OK\r\n");
  EXPECT_EQ(h.db().expire_of(h.db().find_raw("k")), no_expiry);
  EXPECT_EQ(h.run({"SETEX", "k", "1", "x"}), "+OK\r\n");
  EXPECT_EQ(h.run({"GETSET", "k", "y"}), "$1\r\nx\r\n");
  EXPECT_EQ(h.db().expire_of(h.db().find_raw("k")), no_expiry);
  // Lazy expiry as seen by commands.
  EXPECT_EQ(h.run({"PSETEX", "k", "100", "z"}), "+OK\r\n");
  h.now = t0 + 100;
  EXPECT_EQ(h.run({"GET", "k"}), "$1\r\nz\r\n");
  h.now = t0 + 101;
  EXPECT_EQ(h.run({"GET", "k"}), "$-1\r\n");
  EXPECT_EQ(h.run({"SET", "k", "v", "NX"}), "+OK\r\n");
  // EXAT / PXAT absolute.
  EXPECT_EQ(h.run({"SET", "a", "1", "EXAT", "2000000000"}), "+OK\r\n");
  EXPECT_EQ(h.db().expire_of(h.db().find_raw("a")), 2000000000000LL);
  EXPECT_EQ(h.run({"SET", "a", "1", "PXAT", "2000000000123"}), "+OK\r\n");
  EXPECT_EQ(h.db().expire_of(h.db().find_raw("a")), 2000000000123LL);
}

TEST(StringCommands, GetexTtlChanges) {
  harness h;
  const ms_t t0 = h.now;
  h.run({"SET", "k", "v"});
  EXPECT_EQ(h.run({"GETEX", "k", "EX", "100"}), "$1\r\nv\r\n");
  EXPECT_EQ(h.db().expire_of(h.db().find_raw("k")), t0 + 100000);
  EXPECT_EQ(h.run({"GETEX", "k", "PX", "5"}), "$1\r\nv\r\n");
  EXPECT_EQ(h.db().expire_of(h.db().find_raw("k")), t0 + 5);
  EXPECT_EQ(h.run({"GETEX", "k", "PERSIST"}), "$1\r\nv\r\n");
  EXPECT_EQ(h.db().expire_of(h.db().find_raw("k")), no_expiry);
  EXPECT_EQ(h.db().expires_size(), 0u);
  EXPECT_EQ(h.run({"GETEX", "k", "PXAT", std::to_string(t0)}), "$1\r\nv\r\n");  // already expired: deleted
  EXPECT_EQ(h.db().find_raw("k"), nullptr);
  h.run({"SET", "k", "v"});
  EXPECT_EQ(h.run({"GETEX", "k", "PXAT", std::to_string(t0 + 1)}), "$1\r\nv\r\n");
  EXPECT_EQ(h.db().expire_of(h.db().find_raw("k")), t0 + 1);
  EXPECT_EQ(h.run({"GETEX", "k", "EX", "9223372036854775"}), "-ERR invalid expire time in 'getex' command\r\n");
}

TEST(StringCommands, LargeValuesAndAppendGrowth) {
  harness h;
  std::string chunk(1000, 'a');
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(h.run({"APPEND", "big", chunk}), ":" + std::to_string((i + 1) * 1000) + "\r\n");
  EXPECT_EQ(h.run({"STRLEN", "big"}), ":2000000\r\n");
  EXPECT_EQ(h.run({"GETRANGE", "big", "-3", "-1"}), "$3\r\naaa\r\n");
  EXPECT_EQ(h.run({"SETRANGE", "big", "1999999", "bc"}), ":2000001\r\n");
  EXPECT_EQ(h.run({"GETRANGE", "big", "-3", "-1"}), "$3\r\nabc\r\n");
  EXPECT_EQ(h.run({"BITCOUNT", "big"}), ":" + std::to_string(1999999 * 3 + 3 + 4) + "\r\n");
  // proto-max-bulk-len honoured by APPEND.
  h.st.limits().proto_max_bulk_len = 2000002;
  EXPECT_EQ(h.run({"APPEND", "big", "xy"}), "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n");
  EXPECT_EQ(h.run({"APPEND", "big", "x"}), ":2000002\r\n");
}

TEST(StringCommands, GetSetThroughput) {
  harness h;
  char key[32];
  const int n = 200000;
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    std::snprintf(key, sizeof key, "key:%012d", i);
    h.run({"SET", key, "xxxxxxxxxxxxxxxx"});
  }
  auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    std::snprintf(key, sizeof key, "key:%012d", i);
    h.run({"GET", key});
  }
  auto t2 = std::chrono::steady_clock::now();
  auto ns = [](auto d) { return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count(); };
  std::printf("SET %.0f ns/op, GET %.0f ns/op (handler + test builder)\n", double(ns(t1 - t0)) / n,
              double(ns(t2 - t1)) / n);
  EXPECT_EQ(h.db().size(), static_cast<std::size_t>(n));
}

}  // namespace turret::kv
