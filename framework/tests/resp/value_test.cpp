// reply_parser / value: RESP2 and RESP3 replies into a tree, incrementally.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "turret/resp/value.hpp"

using turret::resp::reply_parser;
using turret::resp::value;
using status = reply_parser::status;
using kind = value::kind;

namespace {
// Parses every reply in `in`, feeding it split at `split` (a std::string buffer that drops consumed bytes).
std::vector<value> parse_all(const std::string& in, std::size_t split = std::string::npos, bool* error = nullptr) {
  reply_parser p;
  std::vector<value> out;
  std::string buf;
  std::vector<std::string> chunks = split == std::string::npos
                                        ? std::vector<std::string>{in}
                                        : std::vector<std::string>{in.substr(0, split), in.substr(split)};
  for (const auto& c : chunks) {
    buf += c;
    for (;;) {
      auto st = p.parse(buf);
      buf.erase(0, p.consumed());
      if (st == status::ok) {
        out.push_back(p.take());
        continue;
      }
      if (st == status::error && error) *error = true;
      break;
    }
  }
  return out;
}
value one(const std::string& in) {
  auto v = parse_all(in);
  EXPECT_EQ(v.size(), 1u) << in;
  return v.empty() ? value{} : v[0];
}
}  // namespace

TEST(ReplyParser, Resp2Types) {
  EXPECT_EQ(one("+OK\r\n"), value::make_simple("OK"));
  EXPECT_EQ(one("-ERR x\r\n"), value::make_error("ERR x"));
  EXPECT_EQ(one(":-42\r\n"), value::make_integer(-42));
  EXPECT_EQ(one("$3\r\nfoo\r\n"), value::make_bulk("foo"));
  EXPECT_EQ(one("$0\r\n\r\n"), value::make_bulk(""));
  EXPECT_TRUE(one("$-1\r\n").is_null());
  EXPECT_TRUE(one("*-1\r\n").is_null());
  auto a = one("*3\r\n$1\r\na\r\n*1\r\n:1\r\n*0\r\n");
  ASSERT_EQ(a.type, kind::array);
  ASSERT_EQ(a.elements.size(), 3u);
  EXPECT_EQ(a.elements[1].elements[0], value::make_integer(1));
  EXPECT_EQ(a.elements[2].type, kind::array);
  EXPECT_TRUE(a.elements[2].elements.empty());
}

TEST(ReplyParser, Resp3Types) {
  EXPECT_TRUE(one("_\r\n").is_null());
  auto d = one(",1.5\r\n");
  EXPECT_EQ(d.type, kind::dbl);
  EXPECT_EQ(d.dbl, 1.5);
  EXPECT_EQ(one(",inf\r\n").dbl, HUGE_VAL);
  EXPECT_EQ(one(",-inf\r\n").dbl, -HUGE_VAL);
  EXPECT_EQ(one("#t\r\n").integer, 1);
  EXPECT_EQ(one("#f\r\n").type, kind::boolean);
  auto v = one("=7\r\ntxt:abc\r\n");
  EXPECT_EQ(v.type, kind::verbatim);
  EXPECT_EQ(v.str, "abc");
  EXPECT_EQ(v.format, "txt");
  EXPECT_EQ(one("(12345678901234567890\r\n").str, "12345678901234567890");
  auto e = one("!5\r\nERR x\r\n");
  EXPECT_TRUE(e.is_error());
  EXPECT_EQ(e.str, "ERR x");
  auto m = one("%2\r\n+a\r\n:1\r\n+b\r\n~1\r\n:2\r\n");
  ASSERT_EQ(m.type, kind::map);
  ASSERT_EQ(m.elements.size(), 4u);
  EXPECT_EQ(m.elements[3].type, kind::set);
  auto p = one(">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
  EXPECT_EQ(p.type, kind::push);
  EXPECT_EQ(p.elements[2].str, "hi");
}

TEST(ReplyParser, AttributesAreSkipped) {
  auto v = one("|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:1\r\n|1\r\n+x\r\n+y\r\n:2\r\n");
  ASSERT_EQ(v.type, kind::array);
  ASSERT_EQ(v.elements.size(), 2u);
  EXPECT_EQ(v.elements[1], value::make_integer(2));
}

TEST(ReplyParser, EverySplitPoint) {
  const std::string in =
      "+OK\r\n$5\r\nhello\r\n*3\r\n$1\r\na\r\n%1\r\n+k\r\n*2\r\n:1\r\n_\r\n$0\r\n\r\n:7\r\n$-1\r\n,3.25\r\n"
      "=9\r\ntxt:a\r\nbc\r\n>2\r\n+x\r\n#t\r\n";
  auto whole = parse_all(in);
  ASSERT_EQ(whole.size(), 8u);
  for (std::size_t i = 0; i <= in.size(); ++i) EXPECT_EQ(parse_all(in, i), whole) << "split at " << i;
}

TEST(ReplyParser, ConsumesCompletedElementsOfAPartialAggregate) {
  reply_parser p;
  std::string in = "*3\r\n$1\r\na\r\n$1\r\nb\r\n$3\r\nc";
  EXPECT_EQ(p.parse(in), status::need_more);
  EXPECT_EQ(p.consumed(), in.size() - 5);  // the pending "$3\r\nc" stays
  EXPECT_EQ(p.wanted_size(), 9u);
  EXPECT_EQ(p.parse("$3\r\ncde\r\n"), status::ok);
  auto v = p.take();
  ASSERT_EQ(v.elements.size(), 3u);
  EXPECT_EQ(v.elements[2].str, "cde");
}

TEST(ReplyParser, BinaryBulk) {
  std::string data;
  for (int i = 0; i < 256; ++i) data.push_back(static_cast<char>(i));
  auto v = one("$256\r\n" + data + "\r\n");
  EXPECT_EQ(v.str, data);
}

TEST(ReplyParser, Errors) {
  for (std::string bad : {"?x\r\n", ":abc\r\n", "$3\r\nabcXY", "*-2\r\n", "#x\r\n", "$-2\r\n", "+a\rb\r\n"}) {
    bool err = false;
    parse_all(bad, std::string::npos, &err);
    EXPECT_TRUE(err) << bad;
  }
  reply_parser small(10);
  EXPECT_EQ(small.parse("$11\r\n"), status::error);
}

TEST(ReplyParser, RandomInputNeverCrashes) {
  std::mt19937 rng(99);
  const std::string alphabet = "+-:$*%~>_,#!=(|\r\n0123456789-abc";
  for (int i = 0; i < 3000; ++i) {
    std::string s;
    int len = rng() % 120;
    for (int k = 0; k < len; ++k) s.push_back(alphabet[rng() % alphabet.size()]);
    parse_all(s, s.empty() ? 0 : rng() % s.size());
  }
}

TEST(Value, EncodeRoundTrip) {
  const std::string in = "*4\r\n$3\r\nfoo\r\n%1\r\n+a\r\n,1.5\r\n~1\r\n#f\r\n_\r\n";
  auto v = one(in);
  EXPECT_EQ(turret::resp::encode(v), in);
  EXPECT_EQ(turret::resp::encode(v, true), "*4\r\n$3\r\nfoo\r\n*2\r\n+a\r\n$3\r\n1.5\r\n*1\r\n:0\r\n$-1\r\n");
}

TEST(Value, DisplayLikeRedisCli) {
  EXPECT_EQ(turret::resp::to_display_string(one("+OK\r\n")), "OK");
  EXPECT_EQ(turret::resp::to_display_string(one("$-1\r\n")), "(nil)");
  EXPECT_EQ(turret::resp::to_display_string(one(":3\r\n")), "(integer) 3");
  EXPECT_EQ(turret::resp::to_display_string(one("-ERR no\r\n")), "(error) ERR no");
  EXPECT_EQ(turret::resp::to_display_string(one("$6\r\na\"b\n\x01\xff\r\n")), "\"a\\\"b\\n\\x01\\xff\"");
  EXPECT_EQ(turret::resp::to_display_string(one("*2\r\n$1\r\na\r\n*2\r\n:1\r\n:2\r\n")),
            "1) \"a\"\n2) 1) (integer) 1\n   2) (integer) 2");
  EXPECT_EQ(turret::resp::to_display_string(one("*0\r\n")), "(empty array)");
}
