// request_parser: multibulk and inline commands exactly as redis-server 7.0 parses them.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "turret/resp/parser.hpp"

using turret::resp::input_buffer;
using turret::resp::parser_options;
using turret::resp::request_parser;
using status = request_parser::status;
using cmd = std::vector<std::string>;

namespace {

struct outcome {
  std::vector<cmd> commands;
  status last = status::need_more;
  std::string error;
  std::size_t left = 0;  // unconsumed bytes at the end
};

// Feeds `chunks` one after another into a std::string buffer that drops consumed bytes (so the pending command moves
// in memory between calls, exercising the parser's rebasing), collecting every command.
outcome feed(const std::vector<std::string>& chunks, parser_options opts = {}) {
  request_parser p(opts);
  outcome o;
  std::string buf;
  for (const auto& c : chunks) {
    buf += c;
    for (;;) {
      status st = p.parse(buf);
      if (st == status::ok) {
        cmd args;
        for (auto a : p.args()) args.emplace_back(a);
        o.commands.push_back(std::move(args));
      }
      buf.erase(0, p.consumed());
      buf.shrink_to_fit();  // force a move of the remaining bytes
      o.last = st;
      if (st == status::error) {
        o.error = p.error_text();
        o.left = buf.size();
        return o;
      }
      if (st == status::need_more) break;
    }
  }
  o.left = buf.size();
  return o;
}

outcome feed(const std::string& s, parser_options opts = {}) { return feed(std::vector<std::string>{s}, opts); }

std::string mb(const cmd& c) {
  std::string s = "*" + std::to_string(c.size()) + "\r\n";
  for (const auto& a : c) s += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return s;
}

}  // namespace

TEST(RequestParser, MultibulkSimple) {
  auto o = feed("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n");
  ASSERT_EQ(o.commands.size(), 1u);
  EXPECT_EQ(o.commands[0], (cmd{"SET", "k", "value"}));
  EXPECT_EQ(o.last, status::need_more);
  EXPECT_EQ(o.left, 0u);
}

TEST(RequestParser, ArgsAreViewsIntoInput) {
  request_parser p;
  std::string in = "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
  ASSERT_EQ(p.parse(in), status::ok);
  EXPECT_EQ(p.consumed(), in.size());
  EXPECT_EQ(p.args()[1].data(), in.data() + in.find("key"));
}

TEST(RequestParser, PipelinedCommandsOneAtATime) {
  std::string in = mb({"PING"}) + mb({"GET", "a"}) + "PING\r\n" + mb({"SET", "a", ""});
  request_parser p;
  std::string_view rest = in;
  std::vector<cmd> got;
  while (p.parse(rest) == status::ok) {
    got.emplace_back(p.args().begin(), p.args().end());
    rest.remove_prefix(p.consumed());
  }
  EXPECT_TRUE(rest.empty());
  EXPECT_EQ(got, (std::vector<cmd>{{"PING"}, {"GET", "a"}, {"PING"}, {"SET", "a", ""}}));
}

TEST(RequestParser, BinaryArguments) {
  std::string v;
  for (int i = 0; i < 256; ++i) v.push_back(static_cast<char>(i));
  v += "\r\n*1\r\n$";
  auto o = feed(mb({"SET", v, "x"}));
  ASSERT_EQ(o.commands.size(), 1u);
  EXPECT_EQ(o.commands[0][1], v);
}

TEST(RequestParser, EveryFragmentSplitPoint) {
  const std::string stream = mb({"SET", "key", "hello world"}) + "  echo \"a b\" 'c\\'d' \\x41\r\n\r\n" +
                             mb({"GET", "key"}) + "*0\r\n*-1\r\n" + "PING\n" + mb({"", "x"}) +
                             "*1\r\n$3\r\nabcXY" + mb({"LAST"});
  const auto whole = feed(stream);
  ASSERT_EQ(whole.last, status::need_more);
  ASSERT_EQ(whole.commands.size(), 7u);
  EXPECT_EQ(whole.commands[1], (cmd{"echo", "a b", "c'd", "\\x41"}));
  EXPECT_EQ(whole.commands[3], (cmd{"PING"}));
  EXPECT_EQ(whole.commands[5], (cmd{"abc"}));  // the two bytes after bulk data are not checked, as in Redis
  for (std::size_t i = 0; i <= stream.size(); ++i) {
    for (std::size_t j = i; j <= stream.size(); j += 7) {
      auto o = feed({stream.substr(0, i), stream.substr(i, j - i), stream.substr(j)});
      ASSERT_EQ(o.commands, whole.commands) << "split at " << i << "," << j;
      ASSERT_EQ(o.left, 0u);
    }
  }
  // One byte at a time.
  std::vector<std::string> bytes;
  for (char c : stream) bytes.emplace_back(1, c);
  EXPECT_EQ(feed(bytes).commands, whole.commands);
}

TEST(RequestParser, InlineSplitLikeSdssplitargs) {
  struct tc {
    std::string line;
    cmd want;
  } cases[] = {
      {"set a b\r\n", {"set", "a", "b"}},
      {"  set   a\tb  \n", {"set", "a", "b"}},
      {"echo \"a b\"\r\n", {"echo", "a b"}},
      {"echo \"\\x41\\x4a\\n\\r\\t\\b\\a\\\\\\\"\\z\"\r\n", {"echo", "AJ\n\r\t\b\a\\\"z"}},
      {"echo \"\\x4g\"\r\n", {"echo", "x4g"}},
      {"echo 'it\\'s' 'a\\nb'\r\n", {"echo", "it's", "a\\nb"}},
      {"echo \"\"\r\n", {"echo", ""}},
      {"echo a\"b\" x\r\n", {"echo", "ab", "x"}},  // a quote inside a token opens a quoted part
      {"echo a\vb\r\n", {"echo", "a\vb"}},   // \v is not a token separator...
      {"\v\fecho \"a\"\v\r\n", {"echo", "a"}},  // ...but is skipped between tokens and may follow a quote
      {"echo a\rb\r\n", {"echo", "a", "b"}},
  };
  for (const auto& c : cases) {
    auto o = feed(c.line);
    ASSERT_EQ(o.commands.size(), 1u) << c.line;
    EXPECT_EQ(o.commands[0], c.want) << c.line;
    EXPECT_EQ(o.left, 0u);
  }
}

TEST(RequestParser, EmptyInlineLinesAndEmptyMultibulkAreSkipped) {
  auto o = feed("\r\n\n   \r\n*0\r\n*-1\r\n*-5\r\nPING\r\n");
  ASSERT_EQ(o.commands.size(), 1u);
  EXPECT_EQ(o.commands[0], (cmd{"PING"}));
  EXPECT_EQ(o.left, 0u);
  // Only skippable input: need_more, but the bytes are consumed.
  request_parser p;
  std::string in = "\r\n*0\r\n";
  EXPECT_EQ(p.parse(in), status::need_more);
  EXPECT_EQ(p.consumed(), in.size());
}

TEST(RequestParser, ErrorsWithRedisText) {
  struct tc {
    std::string in;
    std::string error;
  } cases[] = {
      {"*abc\r\n", "Protocol error: invalid multibulk length"},
      {"*\r\n", "Protocol error: invalid multibulk length"},
      {"*2147483648\r\n", "Protocol error: invalid multibulk length"},
      {"*01\r\n", "Protocol error: invalid multibulk length"},
      {"*+1\r\n", "Protocol error: invalid multibulk length"},
      {"*1\r\n$-1\r\n", "Protocol error: invalid bulk length"},
      {"*1\r\n$x\r\n", "Protocol error: invalid bulk length"},
      {"*1\r\n$\r\n", "Protocol error: invalid bulk length"},
      {"*1\r\n$536870913\r\n", "Protocol error: invalid bulk length"},
      {"*1\r\n$99999999999999999999\r\n", "Protocol error: invalid bulk length"},
      {"*1\r\nx4\r\n", "Protocol error: expected '$', got 'x'"},
      {"*1\r\n\r\n", "Protocol error: expected '$', got ' '"},
      {"*1\r\n\n\r\n", "Protocol error: expected '$', got ' '"},
      {"*2\r\n$1\r\na\r\n:1\r\n", "Protocol error: expected '$', got ':'"},
      {"set a \"b\r\n", "Protocol error: unbalanced quotes in request"},
      {"set a \"b\"c\r\n", "Protocol error: unbalanced quotes in request"},
      {"set a 'b\r\n", "Protocol error: unbalanced quotes in request"},
      {"set a 'b'c\r\n", "Protocol error: unbalanced quotes in request"},
      {std::string(64 * 1024 + 1, 'a'), "Protocol error: too big inline request"},
      {"*" + std::string(64 * 1024, '1'), "Protocol error: too big mbulk count string"},
      {"*1\r\n$" + std::string(64 * 1024, '1'), "Protocol error: too big bulk count string"},
      {"*1\r\n$" + std::string(70000, '1') + "\r\n", "Protocol error: invalid bulk length"},
  };
  for (const auto& c : cases) {
    auto o = feed(c.in);
    EXPECT_EQ(o.last, status::error) << c.in.substr(0, 40);
    EXPECT_EQ(o.error, c.error) << c.in.substr(0, 40);
  }
}

TEST(RequestParser, ExpectedDollarGotNulTruncatesLikeRedis) {
  std::string in("*1\r\n\0$\r\n", 8);
  // Redis's strchr stops at the NUL: the line never completes (it waits), exactly like redis-server.
  EXPECT_EQ(feed(in).last, status::need_more);
}

TEST(RequestParser, CompleteCommandsBeforeTheErrorAreReturnedFirst) {
  auto o = feed("PING\r\n" + mb({"PING"}) + "*1\r\n$x\r\n" + mb({"NEVER"}));
  EXPECT_EQ(o.commands, (std::vector<cmd>{{"PING"}, {"PING"}}));
  EXPECT_EQ(o.last, status::error);
  EXPECT_EQ(o.error, "Protocol error: invalid bulk length");
}

TEST(RequestParser, ErrorIsSticky) {
  request_parser p;
  EXPECT_EQ(p.parse("*x\r\n"), status::error);
  EXPECT_TRUE(p.failed());
  EXPECT_EQ(p.parse("PING\r\n"), status::error);
  EXPECT_EQ(p.error_text(), "Protocol error: invalid multibulk length");
  p.reset();
  EXPECT_EQ(p.parse("PING\r\n"), status::ok);
}

TEST(RequestParser, NulBytesHideLineEndsLikeStrchr) {
  EXPECT_EQ(feed(std::string("*1\r\n\0\r\n", 7)).last, status::need_more);
  EXPECT_EQ(feed(std::string("*1\0\r\nPING\r\n", 11)).last, status::need_more);
  EXPECT_EQ(feed(std::string("PI\0NG\r\n", 7)).last, status::need_more);
  auto big = feed(std::string("PI\0NG\r\n", 7) + std::string(64 * 1024, 'a'));
  EXPECT_EQ(big.error, "Protocol error: too big inline request");
  // A NUL inside bulk data is just data.
  auto o = feed(mb({std::string("a\0b", 3)}));
  ASSERT_EQ(o.commands.size(), 1u);
  EXPECT_EQ(o.commands[0][0], std::string("a\0b", 3));
}

TEST(RequestParser, InlineLimitBoundary) {
  EXPECT_EQ(feed(std::string(64 * 1024, 'a')).last, status::need_more);
  parser_options small;
  small.max_inline_size = 10;
  EXPECT_EQ(feed(std::string(11, 'a'), small).error, "Protocol error: too big inline request");
  EXPECT_EQ(feed("aaaaaaaaaaaaaaaaaaaaaa\r\n", small).commands.size(), 1u);  // complete lines are fine
}

TEST(RequestParser, HugeDeclaredLengthsWaitWithoutAllocating) {
  request_parser p;
  std::string in = "*1\r\n$536870912\r\n";
  EXPECT_EQ(p.parse(in), status::need_more);
  EXPECT_EQ(p.wanted_size(), in.size() + 536870912u + 2);
  parser_options o;
  o.max_bulk_len = 100;
  EXPECT_EQ(feed("*1\r\n$101\r\n", o).error, "Protocol error: invalid bulk length");
  EXPECT_EQ(feed("*1\r\n$100\r\n", o).last, status::need_more);
}

TEST(RequestParser, MillionElementMultibulk) {
  EXPECT_EQ(feed("*1048577\r\n").last, status::need_more);  // Redis 7.0 accepts counts up to INT_MAX
  EXPECT_EQ(feed("*2147483647\r\n").last, status::need_more);
  parser_options o;
  o.max_multibulk_len = 1024 * 1024;
  EXPECT_EQ(feed("*1048577\r\n", o).error, "Protocol error: invalid multibulk length");

  std::string in = "*1000000\r\n";
  for (int i = 0; i < 1000000; ++i) in += "$1\r\nx\r\n";
  auto r = feed({in.substr(0, in.size() / 3), in.substr(in.size() / 3)});
  ASSERT_EQ(r.commands.size(), 1u);
  EXPECT_EQ(r.commands[0].size(), 1000000u);
}

TEST(RequestParser, UnauthenticatedLimits) {
  request_parser p;
  p.set_auth_required(true);
  EXPECT_EQ(p.parse("*11\r\n"), status::error);
  EXPECT_EQ(p.error_text(), "Protocol error: unauthenticated multibulk length");
  request_parser q;
  q.set_auth_required(true);
  EXPECT_EQ(q.parse("*2\r\n$16385\r\n"), status::error);
  EXPECT_EQ(q.error_text(), "Protocol error: unauthenticated bulk length");
  request_parser r;
  r.set_auth_required(true);
  EXPECT_EQ(r.parse("*10\r\n$16384\r\n"), status::need_more);
}

TEST(RequestParser, LargeBulkThroughInputBufferGrowsGeometrically) {
  const std::size_t size = 8 * 1024 * 1024;
  std::string value(size, 'v');
  std::string stream = mb({"SET", "big", value}) + mb({"PING"});
  request_parser p;
  input_buffer buf;
  std::size_t fed = 0, grows = 0, last_cap = buf.capacity();
  std::vector<cmd> got;
  while (fed < stream.size()) {
    auto space = buf.prepare();
    std::size_t n = std::min({space.size(), stream.size() - fed, std::size_t{65536}});
    std::memcpy(space.data(), stream.data() + fed, n);
    buf.commit(n);
    fed += n;
    if (buf.capacity() != last_cap) {
      ++grows;
      last_cap = buf.capacity();
    }
    while (turret::resp::parse(p, buf) == status::ok) got.emplace_back(p.args().begin(), p.args().end());
    if (buf.capacity() != last_cap) {
      ++grows;
      last_cap = buf.capacity();
    }
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0][2].size(), size);
  EXPECT_EQ(got[0][2], value);
  EXPECT_LE(grows, 10u);  // 16 KiB -> 80 KiB -> 160 -> ... -> 8 MiB + one read: O(log n) copies, never one per read
  EXPECT_LT(buf.capacity(), size + 64 * 1024);
}

TEST(RequestParser, DeclaredLengthCostsMemoryOnlyAsItsBytesArrive) {
  // A client declares a 512 MB argument and sends 1 KB of it: the buffer grows by about 64 KiB, not 512 MB.
  request_parser p;
  input_buffer buf;
  const std::string head = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n" + std::string(1000, 'x');
  auto space = buf.prepare(head.size());
  std::memcpy(space.data(), head.data(), head.size());
  buf.commit(head.size());
  EXPECT_EQ(turret::resp::parse(p, buf), status::need_more);
  EXPECT_GT(p.wanted_size(), 536870912u);
  EXPECT_LE(buf.capacity(), 128u * 1024);
}

TEST(RequestParser, RandomBytesNeverCrash) {
  std::mt19937 rng(12345);
  const std::string alphabet = "*$\r\n0123456789-\"' \\x\0abc";
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s;
    const int len = rng() % 200;
    const bool structured = iter % 2;
    for (int i = 0; i < len; ++i)
      s.push_back(structured ? alphabet[rng() % alphabet.size()] : static_cast<char>(rng() & 0xff));
    std::vector<std::string> chunks;
    for (std::size_t i = 0; i < s.size();) {
      std::size_t n = 1 + rng() % 17;
      chunks.push_back(s.substr(i, n));
      i += n;
    }
    auto o = feed(chunks);
    for (const auto& c : o.commands) EXPECT_FALSE(c.empty());
  }
}

TEST(RequestParser, MutatedValidStreamsNeverCrash) {
  std::mt19937 rng(777);
  const std::string base = mb({"SET", "key", "value"}) + "GET key\r\n" + mb({"DEL", "a", "b", "c"});
  for (int iter = 0; iter < 5000; ++iter) {
    std::string s = base;
    for (int k = 0; k < 3; ++k) s[rng() % s.size()] = static_cast<char>(rng() & 0xff);
    auto split = rng() % s.size();
    feed({s.substr(0, split), s.substr(split)});
  }
}
