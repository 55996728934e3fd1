// resp::upstream_client against a real redis-server (started on a free port by each test, stopped even when the test
// fails): pipelining, error replies as values, cancellation, fail-fast while down, reconnection, on_connect commands,
// ASKING, and RESP3 twins.
#include <turret/clients/resp_upstream.hpp>
#include <turret/error.hpp>
#include "test_redis_process.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using turret::resp::upstream_client;
using turret::resp::upstream_reply;
using turret::resp::upstream_request;
using turret::resp::testing::free_port;
using turret::resp::testing::redis_process;

struct RespUpstream : ::testing::Test {
  std::uint16_t port = free_port();
  std::optional<redis_process> redis;
  asio::io_context io;

  void SetUp() override {
    redis.emplace(port);
    ASSERT_TRUE(redis->running()) << "redis-server did not start";
  }
  upstream_client make(std::size_t connections = 1) {
    turret::resp::upstream_options o;
    o.port = port;
    o.connections = connections;
    o.backoff_initial = 20ms;
    o.backoff_max = 100ms;
    return upstream_client({io.get_executor()}, o);
  }
  /// Runs `f` (a coroutine) to completion on io, at most `limit`.
  template <class F>
  void run(F f, std::chrono::milliseconds limit = 10s) {
    ASSERT_TRUE(turret::resp::testing::run_coroutine(io, f, limit)) << "did not complete in time";
  }
};

asio::awaitable<turret::result<upstream_reply>> exec(upstream_client& c, std::vector<std::string> args,
                                                     turret::request_context* ctx = nullptr) {
  turret::request_context own;
  std::vector<std::string_view> views(args.begin(), args.end());
  upstream_request req{ctx ? *ctx : own, views};
  co_return co_await turret::ready_and_call(c, req);
}

template <class... A>
std::vector<std::string> cmd(const A&... a) {
  return std::vector<std::string>{std::string(a)...};
}

asio::awaitable<void> sleep(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

TEST_F(RespUpstream, ManyConcurrentRequestsArePipelinedAndMatchedInOrder) {
  auto c = make(2);
  int ok = 0;
  run([&]() -> asio::awaitable<void> {
    // 200 writers at once over two connections, then 200 readers.
    int pending = 200;
    for (int i = 0; i < 200; ++i) {
      asio::co_spawn(io, [&, i]() -> asio::awaitable<void> {
        auto r = co_await exec(c, cmd("SET", "k" + std::to_string(i), "v" + std::to_string(i)));
        if (r && r->v.str == "OK" && r->raw == "+OK\r\n") ++ok;
        --pending;
      }, asio::detached);
    }
    while (pending > 0) co_await sleep(1ms);
    pending = 200;
    for (int i = 0; i < 200; ++i) {
      asio::co_spawn(io, [&, i]() -> asio::awaitable<void> {
        auto r = co_await exec(c, cmd("GET", "k" + std::to_string(i)));
        const std::string want = "v" + std::to_string(i);
        if (r && r->v.str == want && r->raw == "$" + std::to_string(want.size()) + "\r\n" + want + "\r\n") ++ok;
        --pending;
      }, asio::detached);
    }
    while (pending > 0) co_await sleep(1ms);
  });
  EXPECT_EQ(ok, 400);
}

TEST_F(RespUpstream, ErrorRepliesAreValuesAndLargeRepliesArriveWhole) {
  auto c = make();
  run([&]() -> asio::awaitable<void> {
    auto r = co_await exec(c, cmd("SET", "s", "abc"));
    EXPECT_TRUE(r.has_value());
    r = co_await exec(c, cmd("INCR", "s"));
    EXPECT_TRUE(r && r->v.is_error());
    if (r) {
      EXPECT_EQ(r->v.str, "ERR value is not an integer or out of range");
      EXPECT_EQ(r->raw, "-ERR value is not an integer or out of range\r\n");
    }
    const std::string big(3 * 1024 * 1024 + 7, 'x');
    r = co_await exec(c, cmd("SET", "big", big));
    r = co_await exec(c, cmd("GET", "big"));
    EXPECT_TRUE(r && r->v.str == big);
    if (r) {
      EXPECT_EQ(r->raw.size(), big.size() + 2 + 2 + std::to_string(big.size()).size() + 1);
    }
    r = co_await exec(c, cmd("MGET", "s", "nope"));
    EXPECT_TRUE(r && r->v.elements.size() == 2 && r->v.elements[1].is_null());
    if (r) {
      EXPECT_EQ(r->raw, "*2\r\n$3\r\nabc\r\n$-1\r\n");
    }
  });
}

TEST_F(RespUpstream, ACancelledRequestsReplyIsReadAndDiscarded) {
  auto c = make();
  run([&]() -> asio::awaitable<void> {
    co_await exec(c, cmd("SET", "x", "1"));
    turret::request_context ctx;
    std::optional<turret::result<upstream_reply>> blocked;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      blocked = co_await exec(c, cmd("BLPOP", "empty", "0.3"), &ctx);
    }, asio::detached);
    co_await sleep(50ms);
    ctx.cancel();
    co_await sleep(5ms);
    EXPECT_TRUE(blocked.has_value());
    if (blocked) {
      EXPECT_EQ(blocked->error(), asio::error::operation_aborted);
    }
    // Queued behind BLPOP on the same connection: gets its own reply, not BLPOP's.
    auto r = co_await exec(c, cmd("GET", "x"));
    EXPECT_TRUE(r && r->v.str == "1");
  });
}

TEST_F(RespUpstream, FailsFastWhileDownAndReconnects) {
  auto c = make();
  run([&]() -> asio::awaitable<void> {
    auto r = co_await exec(c, cmd("PING"));
    EXPECT_TRUE(r && r->v.str == "PONG");
  });
  redis->stop();
  int unavailable = 0;
  run([&]() -> asio::awaitable<void> {
    for (int i = 0; i < 50; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      auto r = co_await exec(c, cmd("PING"));
      EXPECT_FALSE(r.has_value());
      if (!r && r.error() == turret::errc::unavailable) ++unavailable;
      EXPECT_LT(std::chrono::steady_clock::now() - t0, 500ms);
      co_await sleep(2ms);
    }
  });
  EXPECT_EQ(unavailable, 50);
  redis->start();
  ASSERT_TRUE(redis->running());
  run([&]() -> asio::awaitable<void> {
    bool back = false;
    for (int i = 0; i < 200 && !back; ++i) {
      auto r = co_await exec(c, cmd("PING"));
      back = r && r->v.str == "PONG";
      if (!back) co_await sleep(10ms);
    }
    EXPECT_TRUE(back);
  });
}

TEST_F(RespUpstream, StartedRequestsKeepTheirOrderPerAffinityOverManyConnections) {
  // try_start: 4 connections; 3 "sessions" (affinities) of 300 INCRs each on their own key, started all at once.
  // Each session's replies must count 1..300 in order: its requests share one connection.
  auto c = make(4);
  std::vector<std::vector<long long>> seen(3);
  std::atomic<int> done{0};
  turret::request_context ctx;
  const std::string keys[3] = {"a", "b", "c"};
  run([&]() -> asio::awaitable<void> {
    for (int i = 0; i < 300; ++i) {
      for (int s = 0; s < 3; ++s) {
        std::string_view args[2] = {"INCR", keys[s]};
        upstream_request req{ctx, args};
        req.affinity = 0x1000 * (s + 1);
        turret::completion<upstream_reply> cb([&, s](turret::result<upstream_reply> r) {
          seen[s].push_back(r ? r->v.integer : -1);
          ++done;
        });
        EXPECT_TRUE(c.try_start(req, cb));
        EXPECT_FALSE(cb);
      }
    }
    for (int i = 0; i < 2000 && done < 900; ++i) co_await sleep(1ms);
  });
  ASSERT_EQ(done.load(), 900);
  for (int s = 0; s < 3; ++s) {
    ASSERT_EQ(seen[s].size(), 300u);
    for (int i = 0; i < 300; ++i) ASSERT_EQ(seen[s][i], i + 1) << "session " << s;
  }
  // Down: a started request completes unavailable (at once while the connection is down, else when its
  // reconnection fails).
  redis->stop();
  run([&]() -> asio::awaitable<void> {
    for (int i = 0; i < 200 && c.connected(); ++i) co_await sleep(5ms);
  });
  std::optional<turret::result<upstream_reply>> failed;
  std::string_view ping[1] = {"PING"};
  upstream_request req{ctx, ping};
  turret::completion<upstream_reply> cb([&](turret::result<upstream_reply> r) { failed.emplace(std::move(r)); });
  EXPECT_TRUE(c.try_start(req, cb));
  run([&]() -> asio::awaitable<void> {
    for (int i = 0; i < 400 && !failed; ++i) co_await sleep(5ms);
  });
  ASSERT_TRUE(failed.has_value());
  EXPECT_EQ(failed->error(), turret::errc::unavailable);
}

TEST_F(RespUpstream, NothingListeningIsUnavailable) {
  redis->stop();
  auto c = make();
  run([&]() -> asio::awaitable<void> {
    for (int i = 0; i < 5; ++i) {
      auto r = co_await exec(c, cmd("PING"));
      EXPECT_TRUE(!r && r.error() == turret::errc::unavailable);
      co_await sleep(5ms);
    }
  });
  EXPECT_FALSE(c.connected());
}

}  // namespace

TEST(RespUpstreamOptions, OnConnectCommandsRunFirstOnEveryConnectionAndAskingPrecedesItsCommand) {
  // (Its own fixture: the server must be restartable on the same port for the reconnection.)
  const std::uint16_t port = free_port();
  std::optional<redis_process> redis(port);
  ASSERT_TRUE(redis->running());
  asio::io_context io;
  turret::resp::upstream_options o;
  o.port = port;
  o.backoff_initial = 20ms;
  o.backoff_max = 50ms;
  o.on_connect = {{"CLIENT", "SETNAME", "turret-upstream"}, {"SELECT", "3"}};
  upstream_client c({io.get_executor()}, o);
  auto run = [&](auto f) {
    bool done = false;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      co_await f();
      done = true;
    }, asio::detached);
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (!done && std::chrono::steady_clock::now() < until) io.run_for(10ms);
    ASSERT_TRUE(done);
  };
  run([&]() -> asio::awaitable<void> {
    // Sent before the first command, their replies dropped: the first reply is the first command's own.
    auto r = co_await exec(c, cmd("CLIENT", "GETNAME"));
    EXPECT_TRUE(r && r->raw == "$15\r\nturret-upstream\r\n");
    r = co_await exec(c, cmd("SET", "k", "in-db-3"));
    EXPECT_TRUE(r && r->raw == "+OK\r\n");
    // ASKING goes right before its command; a plain server refuses it, and that reply is dropped too.
    turret::request_context ctx;
    std::vector<std::string_view> get{"GET", "k"};
    const std::vector<std::string_view> asking_cmd[] = {{"ASKING"}};
    upstream_request asking{ctx, get, asking_cmd};
    auto p = c.try_ready(ctx);
    EXPECT_TRUE(p && *p);
    if (p && *p) {
      r = co_await c.call(std::move(**p), asking);
      EXPECT_TRUE(r && r->raw == "$7\r\nin-db-3\r\n");
    }
    r = co_await exec(c, cmd("CLIENT", "INFO"));
    EXPECT_TRUE(r && r->v.str.find(" db=3 ") != std::string::npos);
  });
  // After a reconnection the commands run again on the new connection.
  redis->stop();
  redis->start();
  ASSERT_TRUE(redis->running());
  run([&]() -> asio::awaitable<void> {
    turret::result<upstream_reply> r = make_error_code(turret::resp::upstream_errc::down);
    for (int i = 0; i < 200 && !(r && !r->v.is_error()); ++i) {
      r = co_await exec(c, cmd("CLIENT", "GETNAME"));
      if (!r) co_await sleep(10ms);
    }
    EXPECT_TRUE(r && r->raw == "$15\r\nturret-upstream\r\n");
    r = co_await exec(c, cmd("CLIENT", "INFO"));  // SELECT 3 ran again
    EXPECT_TRUE(r && r->v.str.find(" db=3 ") != std::string::npos);
    r = co_await exec(c, cmd("SET", "k2", "v"));
    EXPECT_TRUE(r && r->raw == "+OK\r\n");
  });
  c.stop();
  io.run_for(50ms);
}

namespace {

TEST_F(RespUpstream, Resp3RequestsGoOnTheConnectionsRespThreeTwin) {
  auto c = make();
  run([&]() -> asio::awaitable<void> {
    auto r = co_await exec(c, cmd("HSET", "h", "f", "v"));
    EXPECT_TRUE(r && r->raw == ":1\r\n");
    r = co_await exec(c, cmd("HGETALL", "h"));
    EXPECT_TRUE(r && r->raw == "*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
    // The same command on the twin: RESP3 (a map), and the twin keeps its protocol for the next ones.
    for (int i = 0; i < 2; ++i) {
      turret::request_context ctx;
      std::vector<std::string_view> args{"HGETALL", "h"};
      upstream_request req{ctx, args};
      req.resp3 = true;
      auto p = c.try_ready(ctx);
      EXPECT_TRUE(p && *p);
      if (!p || !*p) co_return;
      r = co_await c.call(std::move(**p), req);
      EXPECT_TRUE(r && r->raw == "%1\r\n$1\r\nf\r\n$1\r\nv\r\n") << (r ? r->raw : r.error().message());
    }
    // RESP2 requests are unaffected.
    r = co_await exec(c, cmd("HGETALL", "h"));
    EXPECT_TRUE(r && r->raw == "*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
  });
}

}  // namespace
