// resp::upstream_subscriber against a real redis-server (started on a free port by each test, killed even when the
// test fails): the set subscribed once sync() returns, messages and pattern messages in order, unsubscription, no
// connection before the first subscription, and the whole set subscribed again after the server restarts.
#include <turret/clients/resp_subscriber.hpp>
#include <turret/clients/resp_upstream.hpp>
#include "test_redis_process.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using turret::resp::subscriber_message;
using turret::resp::upstream_client;
using turret::resp::upstream_request;
using turret::resp::upstream_subscriber;
using turret::resp::testing::free_port;
using turret::resp::testing::redis_process;

struct received {
  std::string pattern, channel, payload;
  friend bool operator==(const received&, const received&) = default;
};

struct RespSubscriber : ::testing::Test {
  std::uint16_t port = free_port();
  std::optional<redis_process> redis;
  asio::io_context io;
  std::vector<received> got;

  void SetUp() override {
    redis.emplace(port);
    ASSERT_TRUE(redis->running()) << "redis-server did not start";
  }
  std::unique_ptr<upstream_subscriber> make() {
    turret::resp::subscriber_options o;
    o.port = port;
    o.backoff_initial = 20ms;
    o.backoff_max = 100ms;
    return std::make_unique<upstream_subscriber>(io.get_executor(), o, [this](const subscriber_message& m) {
      got.push_back({std::string(m.pattern), std::string(m.channel), std::string(m.payload)});
    });
  }
  upstream_client publisher() {
    turret::resp::upstream_options o;
    o.port = port;
    o.backoff_initial = 20ms;
    o.backoff_max = 100ms;
    return upstream_client({io.get_executor()}, o);
  }
  template <class F>
  void run(F f, std::chrono::milliseconds limit = 10s) {
    ASSERT_TRUE(turret::resp::testing::run_coroutine(io, f, limit)) << "did not complete in time";
  }
  /// Runs io until `n` messages arrived, at most `limit`.
  void wait_messages(std::size_t n, std::chrono::milliseconds limit = 2s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (got.size() < n && std::chrono::steady_clock::now() < until) io.run_for(5ms);
  }
};

/// PUBLISH's reply: how many subscribers received it (-1 on failure).
asio::awaitable<long long> publish(upstream_client& c, std::string channel, std::string payload) {
  turret::request_context ctx;
  const std::string_view args[] = {"PUBLISH", channel, payload};
  upstream_request req{ctx, args};
  auto r = co_await turret::ready_and_call(c, req);
  co_return r && !r->v.is_error() ? r->v.integer : -1;
}

asio::awaitable<void> sleep(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

TEST_F(RespSubscriber, SubscribedOnceSyncReturnsThenMessagesInOrder) {
  auto sub = make();
  auto pub = publisher();
  run([&]() -> asio::awaitable<void> {
    sub->subscribe("news");
    sub->psubscribe("sport.*");
    EXPECT_TRUE(co_await sub->sync(2s));  // no sleep: a PUBLISH right after must be received
    EXPECT_TRUE(sub->connected());
    EXPECT_EQ(co_await publish(pub, "news", "one"), 1);
    EXPECT_EQ(co_await publish(pub, "sport.ski", "two"), 1);
    EXPECT_EQ(co_await publish(pub, "other", "three"), 0);
    EXPECT_EQ(co_await publish(pub, "news", std::string("bin\0\r\n", 6)), 1);
  });
  wait_messages(3);
  const std::vector<received> want{
      {"", "news", "one"}, {"sport.*", "sport.ski", "two"}, {"", "news", std::string("bin\0\r\n", 6)}};
  EXPECT_EQ(got, want);
}

TEST_F(RespSubscriber, UnsubscribeTakesEffectBySync) {
  auto sub = make();
  auto pub = publisher();
  run([&]() -> asio::awaitable<void> {
    sub->subscribe("a");
    sub->subscribe("b");
    sub->psubscribe("p*");
    EXPECT_TRUE(co_await sub->sync(2s));
    sub->unsubscribe("a");
    sub->punsubscribe("p*");
    sub->unsubscribe("never-subscribed");  // not in the set: nothing sent
    EXPECT_TRUE(co_await sub->sync(2s));
    EXPECT_EQ(co_await publish(pub, "a", "x"), 0);
    EXPECT_EQ(co_await publish(pub, "pq", "x"), 0);
    EXPECT_EQ(co_await publish(pub, "b", "y"), 1);
  });
  wait_messages(1);
  EXPECT_EQ(got, (std::vector<received>{{"", "b", "y"}}));
}

TEST_F(RespSubscriber, NoConnectionBeforeTheFirstSubscription) {
  auto sub = make();
  auto pub = publisher();
  run([&]() -> asio::awaitable<void> {
    co_await sleep(100ms);
    EXPECT_FALSE(sub->connected());
    EXPECT_FALSE(co_await sub->sync(2s));  // not up: at once, false
    sub->subscribe("late");
    for (int i = 0; i < 100 && !sub->connected(); ++i) co_await sleep(10ms);
    EXPECT_TRUE(co_await sub->sync(2s));
    EXPECT_EQ(co_await publish(pub, "late", "z"), 1);
  });
}

TEST_F(RespSubscriber, TheWholeSetIsSubscribedAgainAfterARestart) {
  auto sub = make();
  auto pub = publisher();
  run([&]() -> asio::awaitable<void> {
    sub->subscribe("a");
    sub->psubscribe("p*");
    EXPECT_TRUE(co_await sub->sync(2s));
    redis->stop();
    for (int i = 0; i < 100 && sub->connected(); ++i) co_await sleep(10ms);
    EXPECT_FALSE(sub->connected());
    sub->subscribe("while-down");  // joins the set; sent whole at the next connect
    redis->start();
    // Until the subscriber is back, PUBLISH reaches nobody.
    long long n = 0;
    for (int i = 0; i < 300 && n != 1; ++i) {
      n = co_await publish(pub, "while-down", "w");
      if (n != 1) co_await sleep(10ms);
    }
    EXPECT_EQ(n, 1) << "not subscribed again within 3 s";
    EXPECT_EQ(co_await publish(pub, "a", "x"), 1);
    EXPECT_EQ(co_await publish(pub, "pz", "y"), 1);
  });
  wait_messages(3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], (received{"", "while-down", "w"}));
  EXPECT_EQ(got[1], (received{"", "a", "x"}));
  EXPECT_EQ(got[2], (received{"p*", "pz", "y"}));
}

TEST_F(RespSubscriber, StopClosesTheConnection) {
  auto sub = make();
  auto pub = publisher();
  run([&]() -> asio::awaitable<void> {
    sub->subscribe("a");
    EXPECT_TRUE(co_await sub->sync(2s));
    sub->stop();
    for (int i = 0; i < 100 && sub->connected(); ++i) co_await sleep(10ms);
    EXPECT_FALSE(sub->connected());
    EXPECT_EQ(co_await publish(pub, "a", "x"), 0);
    EXPECT_FALSE(co_await sub->sync(1s));
  });
}

}  // namespace
