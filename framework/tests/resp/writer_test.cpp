// resp::writer: byte-exact RESP2 / RESP3 replies as redis-server 7.0 sends them.
#include <gtest/gtest.h>

#include <climits>
#include <cmath>
#include <limits>
#include <string>

#include "turret/resp/writer.hpp"

using turret::resp::writer;

namespace {
template <class F>
std::string w2(F f) {
  std::string out;
  writer w(out, 2);
  f(w);
  return out;
}
template <class F>
std::string w3(F f) {
  std::string out;
  writer w(out, 3);
  f(w);
  return out;
}
}  // namespace

TEST(Writer, Scalars) {
  EXPECT_EQ(w2([](writer& w) { w.simple("OK"); }), "+OK\r\n");
  EXPECT_EQ(w2([](writer& w) { w.ok(); }), "+OK\r\n");
  EXPECT_EQ(w2([](writer& w) { w.error("ERR unknown command 'x'"); }), "-ERR unknown command 'x'\r\n");
  EXPECT_EQ(w2([](writer& w) { w.error("ERR bad\r\narg"); }), "-ERR bad  arg\r\n");
  EXPECT_EQ(w2([](writer& w) { w.bulk("hello"); }), "$5\r\nhello\r\n");
  EXPECT_EQ(w2([](writer& w) { w.bulk(""); }), "$0\r\n\r\n");
  EXPECT_EQ(w2([](writer& w) { w.bulk(std::string_view("a\0\r\n", 4)); }), std::string("$4\r\na\0\r\n\r\n", 10));
  EXPECT_EQ(w2([](writer& w) { w.raw("+RAW\r\n"); }), "+RAW\r\n");
}

TEST(Writer, Integers) {
  EXPECT_EQ(w2([](writer& w) { w.integer(0); }), ":0\r\n");
  EXPECT_EQ(w2([](writer& w) { w.integer(-1); }), ":-1\r\n");
  EXPECT_EQ(w2([](writer& w) { w.integer(9); }), ":9\r\n");
  EXPECT_EQ(w2([](writer& w) { w.integer(10); }), ":10\r\n");
  EXPECT_EQ(w2([](writer& w) { w.integer(1234567); }), ":1234567\r\n");
  EXPECT_EQ(w2([](writer& w) { w.integer(LLONG_MAX); }), ":9223372036854775807\r\n");
  EXPECT_EQ(w2([](writer& w) { w.integer(LLONG_MIN); }), ":-9223372036854775808\r\n");
  for (long long v : {1LL, 99LL, 100LL, 101LL, 65535LL, -100LL, 1000000000000LL}) {
    EXPECT_EQ(w2([&](writer& w) { w.integer(v); }), ":" + std::to_string(v) + "\r\n");
  }
}

TEST(Writer, NullsByProtocol) {
  EXPECT_EQ(w2([](writer& w) { w.null_bulk(); }), "$-1\r\n");
  EXPECT_EQ(w2([](writer& w) { w.null_array(); }), "*-1\r\n");
  EXPECT_EQ(w3([](writer& w) { w.null_bulk(); }), "_\r\n");
  EXPECT_EQ(w3([](writer& w) { w.null_array(); }), "_\r\n");
  std::string_view v = "x";
  EXPECT_EQ(w2([&](writer& w) { w.bulk_or_null(&v); }), "$1\r\nx\r\n");
  EXPECT_EQ(w2([&](writer& w) { w.bulk_or_null(nullptr); }), "$-1\r\n");
}

TEST(Writer, Aggregates) {
  EXPECT_EQ(w2([](writer& w) { w.array(0); }), "*0\r\n");
  EXPECT_EQ(w2([](writer& w) {
              w.array(2);
              w.bulk("a");
              w.integer(1);
            }),
            "*2\r\n$1\r\na\r\n:1\r\n");
  EXPECT_EQ(w2([](writer& w) { w.map(3); }), "*6\r\n");
  EXPECT_EQ(w3([](writer& w) { w.map(3); }), "%3\r\n");
  EXPECT_EQ(w2([](writer& w) { w.set(2); }), "*2\r\n");
  EXPECT_EQ(w3([](writer& w) { w.set(2); }), "~2\r\n");
  EXPECT_EQ(w2([](writer& w) { w.push(3); }), "*3\r\n");
  EXPECT_EQ(w3([](writer& w) { w.push(3); }), ">3\r\n");
}

TEST(Writer, DoublesAsRedis70) {
  // Values checked against redis-server 7.0.15 ZSCORE replies (RESP2 bulk, RESP3 double).
  EXPECT_EQ(w2([](writer& w) { w.dbl(1.1); }), "$18\r\n1.1000000000000001\r\n");
  EXPECT_EQ(w3([](writer& w) { w.dbl(1.1); }), ",1.1000000000000001\r\n");
  EXPECT_EQ(w3([](writer& w) { w.dbl(1e300); }), ",1.0000000000000001e+300\r\n");
  EXPECT_EQ(w2([](writer& w) { w.dbl(1e300); }), "$23\r\n1.0000000000000001e+300\r\n");
  EXPECT_EQ(w3([](writer& w) { w.dbl(0.1); }), ",0.10000000000000001\r\n");
  EXPECT_EQ(w3([](writer& w) { w.dbl(1e-300); }), ",1e-300\r\n");
  EXPECT_EQ(w3([](writer& w) { w.dbl(0); }), ",0\r\n");
  EXPECT_EQ(w2([](writer& w) { w.dbl(0); }), "$1\r\n0\r\n");
  EXPECT_EQ(w2([](writer& w) { w.dbl(3); }), "$1\r\n3\r\n");
  EXPECT_EQ(w3([](writer& w) { w.dbl(HUGE_VAL); }), ",inf\r\n");
  EXPECT_EQ(w3([](writer& w) { w.dbl(-HUGE_VAL); }), ",-inf\r\n");
  EXPECT_EQ(w2([](writer& w) { w.dbl(HUGE_VAL); }), "$3\r\ninf\r\n");
  EXPECT_EQ(w2([](writer& w) { w.dbl(-HUGE_VAL); }), "$4\r\n-inf\r\n");
}

TEST(Writer, BooleansVerbatimBigNumber) {
  EXPECT_EQ(w2([](writer& w) { w.boolean(true); }), ":1\r\n");
  EXPECT_EQ(w2([](writer& w) { w.boolean(false); }), ":0\r\n");
  EXPECT_EQ(w3([](writer& w) { w.boolean(true); }), "#t\r\n");
  EXPECT_EQ(w3([](writer& w) { w.boolean(false); }), "#f\r\n");
  EXPECT_EQ(w3([](writer& w) { w.verbatim("# Server\r\nx:1\r\n"); }), "=19\r\ntxt:# Server\r\nx:1\r\n\r\n");
  EXPECT_EQ(w2([](writer& w) { w.verbatim("hi"); }), "$2\r\nhi\r\n");
  EXPECT_EQ(w3([](writer& w) { w.verbatim("hi", "mkd"); }), "=6\r\nmkd:hi\r\n");
  EXPECT_EQ(w3([](writer& w) { w.big_number("123456789012345678901234567890"); }),
            "(123456789012345678901234567890\r\n");
  EXPECT_EQ(w2([](writer& w) { w.big_number("12"); }), "$2\r\n12\r\n");
}

TEST(Writer, ProtocolSwitchAndRebind) {
  std::string a, b;
  writer w(a, 2);
  w.null_bulk();
  w.set_protocol(3);
  EXPECT_EQ(w.protocol(), 3);
  w.null_bulk();
  w.rebind(b);
  w.integer(5);
  EXPECT_EQ(a, "$-1\r\n_\r\n");
  EXPECT_EQ(b, ":5\r\n");
}
