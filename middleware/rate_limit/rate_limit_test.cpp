#include <turret/any_service.hpp>
#include <turret/error_mapping.hpp>
#include <turret/layer.hpp>
#include <turret/metrics.hpp>
#include <turret/middleware/builtin.hpp>
#include <turret/middleware/rate_limit.hpp>
#include <turret/middleware/testing/layer_harness.hpp>
#include <turret/middleware/testing/mock_service.hpp>
#include <turret/middleware/timeout.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <thread>
#include <vector>

namespace turret {
namespace rate_limit_testing {  // named: coroutine frames of the layers hold these types

/// A mock request of a given traffic class (the KV request gets it from its command's metadata).
struct class_request : testing::mock_request {
  traffic_class cls = traffic_class::write;
};
inline traffic_class rate_class(const class_request& r) noexcept { return r.cls; }

}  // namespace rate_limit_testing

namespace {

using namespace std::chrono_literals;
using rate_limit_testing::class_request;
using testing::mock_request;
using testing::mock_service;
using testing::mock_state;

rate_limit_config make_config(rate_limit_config::scope_kind scope, std::string_view rate, std::uint64_t burst,
                              std::chrono::nanoseconds max_wait = 0s) {
  rate_limit_config c;
  c.scope = scope;
  c.default_rate = *parse_rate(rate);
  c.burst = burst;
  c.max_wait = max_wait;
  return c;
}
constexpr auto global = rate_limit_config::scope_kind::global;
constexpr auto per_client = rate_limit_config::scope_kind::per_client;
constexpr auto per_class = rate_limit_config::scope_kind::per_command_class;

struct RateLimitTest : ::testing::Test, testing::context_harness {
  RateLimitTest() { st->immediate = true; }
  std::uint64_t rejected() { return count("turret_rate_limit_rejected_total"); }
};

TEST(RateLimitConfig, ParsesRates) {
  ASSERT_TRUE(parse_rate("1000/s"));
  EXPECT_EQ(parse_rate("1000/s")->interval_ns(), 1'000'000);
  EXPECT_EQ(parse_rate("30/m")->interval_ns(), 2'000'000'000);
  EXPECT_EQ(parse_rate("2/h")->interval_ns(), 1'800'000'000'000);
  EXPECT_EQ(parse_rate("0.5/s")->interval_ns(), 2'000'000'000);
  EXPECT_DOUBLE_EQ(parse_rate("0.5/s")->per_second(), 0.5);
  for (const char* bad : {"1000", "/s", "0/s", "-1/s", "1000/d", "1e3/s", "x/s", "2000000000/s", "1/ s"})
    EXPECT_FALSE(parse_rate(bad)) << bad;
  rate_limit_config c;
  c.default_rate = *parse_rate("250/s");
  EXPECT_EQ(c.burst_of(c.default_rate), 250u);  // default burst: one second of tokens
  EXPECT_EQ(c.burst_of(*parse_rate("30/m")), 1u);
}

// A rejection carries the time until the bucket admits, rounded up to whole seconds (at least 1): HTTP's Retry-After.
TEST_F(RateLimitTest, RejectionCarriesRetryAfterUntilTheBucketAdmits) {
  auto svc = rate_limit_layer(make_config(global, "30/m", 1), lctx).wrap(mock_service{st});  // a token every 2 s
  auto retry_after = [&] {
    mock_request req;
    auto r = svc.try_call_now(req);
    EXPECT_TRUE(r && !*r);
    if (!r || *r) return -1;
    EXPECT_TRUE(is_rate_limited(r->error()));
    EXPECT_EQ(r->error(), errc::overloaded);
    EXPECT_EQ(resp_error(r->error()), "BUSY overloaded: rate limit exceeded");
    EXPECT_EQ(to_http_error(r->error()).status, 429);
    EXPECT_EQ(to_http_error(r->error()).retry_after, rate_limit_retry_after(r->error()));
    return to_http_error(r->error()).retry_after;
  };
  mock_request first;
  ASSERT_TRUE(*svc.try_call_now(first));
  EXPECT_EQ(retry_after(), 2);  // due in 2 s
  clk->advance(500ms);
  EXPECT_EQ(retry_after(), 2);  // 1.5 s: rounded up
  clk->advance(600ms);
  EXPECT_EQ(retry_after(), 1);  // 0.9 s
  clk->advance(899ms);
  EXPECT_EQ(retry_after(), 1);  // 1 ms: at least 1
  clk->advance(1ms);
  mock_request due;
  EXPECT_TRUE(*svc.try_call_now(due));
  // An hour's bucket: the whole wait, in seconds.
  auto hourly = rate_limit_layer(make_config(global, "2/h", 1), lctx).wrap(mock_service{st});
  mock_request a, b;
  ASSERT_TRUE(*hourly.try_call_now(a));
  auto r = hourly.try_call_now(b);
  ASSERT_TRUE(r && !*r);
  EXPECT_EQ(to_http_error(r->error()).retry_after, 1800);
  // Other errors carry no hint; a bare limited keeps the table's 1 s.
  EXPECT_EQ(rate_limit_retry_after(error_code(boost::asio::error::operation_aborted)), 0);
  EXPECT_EQ(to_http_error(make_error_code(rate_limit_errc::limited)).retry_after, 1);
  EXPECT_TRUE(is_rate_limited(make_error_code(rate_limit_errc::limited)));
}

// The acceptance criterion: at 10x the rate for T seconds, admitted == R*T + burst (within 1%; here exactly).
TEST_F(RateLimitTest, GlobalAdmitsRateTimesTimePlusBurstOnManualClock) {
  constexpr int rate = 1000, burst = 100, seconds = 10;
  auto svc = rate_limit_layer(make_config(global, "1000/s", burst), lctx).wrap(mock_service{st});
  int admitted = 0, refused = 0;
  constexpr int offered = rate * 10 * seconds;  // one request per 100us
  for (int i = 0; i < offered; ++i) {
    mock_request req;
    auto r = svc.try_call_now(req);
    ASSERT_TRUE(r);
    if (*r) {
      ++admitted;
    } else {
      EXPECT_TRUE(is_rate_limited(r->error()));
      EXPECT_EQ(r->error(), errc::overloaded);
      ++refused;
    }
    clk->advance(100us);
  }
  const double expected = rate * seconds + burst;
  EXPECT_NEAR(admitted, expected, expected * 0.01);
  // The last request came at 10s - 100us: floor(1000 * 9.9999) + 100.
  EXPECT_EQ(admitted, 9999 + burst);
  EXPECT_EQ(st->calls, admitted);
  EXPECT_EQ(rejected(), static_cast<std::uint64_t>(refused));
}

TEST_F(RateLimitTest, ReadyPathAdmitsTheSameAsTheFastPath) {
  auto svc = rate_limit_layer(make_config(global, "100/s", 5), lctx).wrap(mock_service{st});
  st->immediate = false;  // every request through ready() + call()
  int admitted = 0;
  for (int i = 0; i < 2000; ++i) {  // 1000/s for 2 s
    mock_request req;
    std::optional<result<int>> out;
    start(svc, req, out);
    ASSERT_TRUE(out);
    if (*out) ++admitted;
    advance(1ms);
  }
  EXPECT_EQ(admitted, 199 + 5);  // last request at 1.999 s
  EXPECT_EQ(rejected(), 2000u - 204u);
  EXPECT_EQ(st->live_permits, 0);
}

// The same on the real clock, several threads hammering the one lock-free bucket (within 5%). The burst covers
// 100ms of tokens, so that a scheduling gap of the test's threads on a busy machine loses none.
TEST(RateLimitRealClock, GlobalBucketSharedByThreads) {
  constexpr double rate = 2000, burst = 200, seconds = 1.5;
  auto st = std::make_shared<mock_state>(steady_clock());
  st->immediate = true;
  rate_limit_config cfg;
  cfg.default_rate = *parse_rate("2000/s");
  cfg.burst = static_cast<std::uint64_t>(burst);
  auto layer = rate_limit_layer(cfg);
  auto svc = layer.wrap(mock_service{st});
  std::atomic<int> admitted{0};
  std::atomic<long> attempts{0};
  using steady = std::chrono::steady_clock;
  const auto start = steady::now();
  const auto end = start + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(seconds));
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      mock_request req;
      while (steady::now() < end) {
        auto copy = svc;  // copies share the bucket
        auto r = copy.try_call_now(req);
        if (r && *r) admitted.fetch_add(1, std::memory_order_relaxed);
        attempts.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (auto& t : threads) t.join();
  const double span = std::chrono::duration<double>(steady::now() - start).count();
  const double expected = rate * seconds + burst;
  EXPECT_GT(attempts.load(), 10 * expected) << "offered load below 10x";
  EXPECT_NEAR(admitted.load(), expected, expected * 0.05);
  EXPECT_LE(admitted.load(), rate * span + burst);  // never more than the bucket allows
  EXPECT_EQ(st->calls, admitted.load());
}

TEST_F(RateLimitTest, PerClientBucketsAreSeparate) {
  auto svc = rate_limit_layer(make_config(per_client, "10/s", 2), lctx).wrap(mock_service{st});
  auto admitted = [&](const char* addr, std::uint16_t port, std::string identity = {}) {
    mock_request req;
    req.ctx.set_peer({boost::asio::ip::make_address(addr), port});
    req.ctx.identity = std::move(identity);
    auto r = svc.try_call_now(req);
    return r && *r;
  };
  EXPECT_TRUE(admitted("10.0.0.1", 1000));
  EXPECT_TRUE(admitted("10.0.0.1", 1001));  // another connection of the same client: same bucket
  EXPECT_FALSE(admitted("10.0.0.1", 1002));
  EXPECT_TRUE(admitted("10.0.0.2", 1000));
  EXPECT_TRUE(admitted("::1", 1000));
  EXPECT_TRUE(admitted("10.0.0.1", 1003, "alice"));  // authenticated: by identity, wherever from
  EXPECT_TRUE(admitted("10.0.0.9", 1003, "alice"));
  EXPECT_FALSE(admitted("10.0.0.8", 1003, "alice"));
  EXPECT_TRUE(admitted("10.0.0.1", 1003, "bob"));
  EXPECT_EQ(rejected(), 2u);
  clk->advance(100ms);  // one token each
  EXPECT_TRUE(admitted("10.0.0.1", 1000));
  EXPECT_FALSE(admitted("10.0.0.1", 1000));
  EXPECT_EQ(svc.state().clients().size(), 5u);
}

TEST_F(RateLimitTest, PerClientMemoryIsBounded) {
  auto cfg = make_config(per_client, "1/s", 1);
  cfg.max_clients = 100;
  auto svc = rate_limit_layer(cfg, lctx).wrap(mock_service{st});
  for (std::uint32_t i = 0; i < 5000; ++i) {
    mock_request req;
    req.ctx.set_peer({boost::asio::ip::address_v4(0x0a000000u + i), 1});
    auto r = svc.try_call_now(req);
    ASSERT_TRUE(r && *r) << i;  // every client is new: a full bucket
    ASSERT_LE(svc.state().clients().size(), 100u);
  }
  EXPECT_EQ(svc.state().clients().size(), 100u);
  EXPECT_EQ(svc.state().clients().capacity(), 100u);
  // The most recent client is still tracked (its bucket is empty); the first one was evicted (a full bucket again).
  mock_request last, first;
  last.ctx.set_peer({boost::asio::ip::address_v4(0x0a000000u + 4999), 1});
  first.ctx.set_peer({boost::asio::ip::address_v4(0x0a000000u), 1});
  auto rl = svc.try_call_now(last);
  EXPECT_TRUE(rl && !*rl);
  auto rf = svc.try_call_now(first);
  EXPECT_TRUE(rf && *rf);
}

TEST_F(RateLimitTest, PerCommandClassBucketsAreSeparate) {
  auto cfg = make_config(per_class, "10/s", 0);
  cfg.burst.reset();  // each class: one second of its own rate
  cfg.classes[static_cast<std::size_t>(traffic_class::read)] = *parse_rate("100/s");
  cfg.classes[static_cast<std::size_t>(traffic_class::write)] = *parse_rate("1/s");
  auto svc = rate_limit_layer(cfg, lctx).wrap(mock_service{st});
  auto count = [&](traffic_class c, int n) {
    int ok = 0;
    for (int i = 0; i < n; ++i) {
      class_request req;
      req.cls = c;
      auto r = svc.try_call_now(req);
      if (r && *r) ++ok;
    }
    return ok;
  };
  EXPECT_EQ(count(traffic_class::write, 5), 1);
  EXPECT_EQ(count(traffic_class::read, 500), 100);
  EXPECT_EQ(count(traffic_class::admin, 50), 10);  // the default rate
  EXPECT_EQ(count(traffic_class::pubsub, 50), 10);
  EXPECT_EQ(count(traffic_class::write, 5), 0);
  clk->advance(1s);
  EXPECT_EQ(count(traffic_class::write, 5), 1);
  EXPECT_EQ(count(traffic_class::read, 500), 100);
  EXPECT_EQ(rejected(), 4u + 400u + 40u + 40u + 5u + 4u + 400u);

  // ready() + call(): the token is taken in call(), where the request's class is known.
  st->immediate = false;
  class_request w;
  w.cls = traffic_class::write;
  std::optional<result<int>> out;
  boost::asio::co_spawn(io, [&]() -> awaitable<void> { out.emplace(co_await ready_and_call(svc, w)); },
                        boost::asio::detached);
  io.poll();
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), errc::overloaded);
  EXPECT_EQ(st->live_permits, 0);
  class_request r;
  r.cls = traffic_class::read;
  out.reset();
  clk->advance(10ms);
  boost::asio::co_spawn(io, [&]() -> awaitable<void> { out.emplace(co_await ready_and_call(svc, r)); },
                        boost::asio::detached);
  io.poll();
  ASSERT_TRUE(out);
  EXPECT_TRUE(*out);
}

TEST_F(RateLimitTest, MaxWaitWaitsExactlyTheNeededTime) {
  auto svc = rate_limit_layer(make_config(global, "10/s", 1, 250ms), lctx).wrap(mock_service{st});
  mock_request r[4];
  std::optional<result<int>> out[4];
  start(svc, r[0], out[0]);
  ASSERT_TRUE(out[0] && *out[0]);  // the burst
  start(svc, r[1], out[1]);        // due in 100ms
  start(svc, r[2], out[2]);        // due in 200ms
  start(svc, r[3], out[3]);        // would be due in 300ms > max_wait: rejected at once
  ASSERT_TRUE(out[3]);
  EXPECT_TRUE(is_rate_limited(out[3]->error()));
  EXPECT_EQ(rejected(), 1u);
  EXPECT_FALSE(out[1]);
  // try_call_now with max_wait > 0: nullopt without side effect (ready() will wait).
  mock_request probe;
  EXPECT_FALSE(svc.try_call_now(probe));
  EXPECT_EQ(rejected(), 1u);
  EXPECT_TRUE(completes_after(out[1], 100ms));
  EXPECT_TRUE(*out[1]);
  EXPECT_FALSE(out[2]);
  EXPECT_TRUE(completes_after(out[2], 100ms));
  EXPECT_TRUE(*out[2]);
  EXPECT_EQ(st->calls, 3);
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(RateLimitTest, CancelledWaitGivesTheReservationBack) {
  auto svc = rate_limit_layer(make_config(global, "10/s", 1, 1s), lctx).wrap(mock_service{st});
  mock_request a, b, c;
  std::optional<result<int>> oa, ob, oc;
  start(svc, a, oa);
  start(svc, b, ob);  // reserved: due in 100ms
  ASSERT_TRUE(oa && !ob);
  b.ctx.cancel();
  io.poll();
  ASSERT_TRUE(ob);
  EXPECT_EQ(ob->error(), boost::asio::error::operation_aborted);
  EXPECT_EQ(clk->pending_timers(), 0u);
  start(svc, c, oc);  // b's token came back: c waits 100ms, not 200ms
  EXPECT_TRUE(completes_after(oc, 100ms));
  EXPECT_TRUE(*oc);
  EXPECT_EQ(st->calls, 2);
  EXPECT_EQ(rejected(), 0u);

  // Under a timeout: the wait is bounded by the deadline, and the token goes back too.
  auto timed = service_builder{}.layer(timeout_layer(80ms, clk)).service(svc);
  mock_request d, e;
  std::optional<result<int>> od, oe;
  start(timed, d, od);  // due in 100ms, the timeout fires first
  EXPECT_TRUE(completes_after(od, 80ms));
  EXPECT_EQ(od->error(), timeout_errc::elapsed);
  start(timed, e, oe);  // due in 20ms (not 120ms)
  EXPECT_TRUE(completes_after(oe, 20ms));
  EXPECT_TRUE(*oe);
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(RateLimitTest, UnspentPermitGivesItsTokenBack) {
  auto svc = rate_limit_layer(make_config(global, "1/s", 1), lctx).wrap(mock_service{st});
  std::optional<decltype(svc)::permit_type> held;
  mock_request a;
  boost::asio::co_spawn(
      io, [&]() -> awaitable<void> { held.emplace(std::move(*co_await svc.ready(a.ctx))); }, boost::asio::detached);
  io.poll();
  ASSERT_TRUE(held);
  EXPECT_EQ(st->live_permits, 1);
  mock_request b;
  auto rb = svc.try_call_now(b);
  EXPECT_TRUE(rb && !*rb);  // the only token is held
  held.reset();             // dropped unspent: token and inner permit released
  EXPECT_EQ(st->live_permits, 0);
  auto rc = svc.try_call_now(b);
  EXPECT_TRUE(rc && *rc);
  // The inner fast path declining gives the token back as well (no side effect).
  clk->advance(1s);
  st->immediate = false;
  EXPECT_FALSE(svc.try_call_now(b));
  st->immediate = true;
  auto rd = svc.try_call_now(b);
  EXPECT_TRUE(rd && *rd);
  // The inner ready() failing: the token comes back.
  clk->advance(1s);
  st->immediate = false;
  st->ready_error = make_error_code(boost::asio::error::connection_refused);
  std::optional<result<int>> out;
  start(svc, a, out);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), boost::asio::error::connection_refused);
  st->ready_error = {};
  out.reset();
  start(svc, a, out);
  EXPECT_TRUE(out && *out);
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(RateLimitTest, TryReady) {
  auto svc = rate_limit_layer(make_config(global, "1/s", 1), lctx).wrap(mock_service{st});
  mock_request a;
  auto p = svc.try_ready(a.ctx);
  ASSERT_TRUE(p && *p);
  EXPECT_EQ(st->live_permits, 1);
  auto q = svc.try_ready(a.ctx);  // max_wait 0: the rejection
  ASSERT_TRUE(q);
  EXPECT_TRUE(is_rate_limited(q->error()));
  EXPECT_EQ(rejected(), 1u);
  p.reset();  // token back
  auto waiting = rate_limit_layer(make_config(global, "1/s", 1, 5s), lctx).wrap(mock_service{st});
  auto w1 = waiting.try_ready(a.ctx);
  ASSERT_TRUE(w1 && *w1);
  EXPECT_FALSE(waiting.try_ready(a.ctx));  // max_wait > 0: would wait
  EXPECT_EQ(rejected(), 1u);
  // The inner service would wait: the permit holds the token and call() awaits the inner ready().
  w1.reset();
  st->ready_delay = 300ms;
  auto w2 = waiting.try_ready(a.ctx);
  ASSERT_TRUE(w2 && *w2);
  EXPECT_FALSE((*w2)->inner);
  std::optional<result<int>> out;
  boost::asio::co_spawn(
      io, [&]() -> awaitable<void> { out.emplace(co_await waiting.call(std::move(**w2), a)); }, boost::asio::detached);
  io.poll();
  EXPECT_TRUE(completes_after(out, 300ms));
  EXPECT_TRUE(*out);
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(RateLimitTest, OneBucketPerLayerAcrossServicesAndErasure) {
  auto layer = rate_limit_layer(make_config(global, "1/s", 2), lctx);
  auto a = layer.wrap(mock_service{st});
  any_service<mock_request, int> b(layer.wrap(mock_service{st}));
  EXPECT_TRUE(b.supports_immediate());
  EXPECT_TRUE(b.supports_try_ready());
  mock_request req;
  EXPECT_TRUE(*a.try_call_now(req));
  EXPECT_TRUE(*b.try_call_now(req));
  EXPECT_FALSE(*a.try_call_now(req));
  EXPECT_FALSE(*b.try_call_now(req));
}

TEST_F(RateLimitTest, FactoryFromYaml) {
  layer_registry<mock_request, int> registry;
  register_builtin_layers(registry);
  lctx.states = std::make_shared<layer_state_store>();
  const char* yaml =
      "pipeline:\n  - layer: rate_limit\n    scope: global\n    rate: 10/s\n    burst: 3\n    max_wait: 0s\n";
  auto cfg = load_config_string(yaml, "turret.yaml");
  auto svc = registry.build(cfg.child("pipeline"), any_service<mock_request, int>(mock_service{st}), lctx);
  mock_request req;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(*svc.try_call_now(req));
  auto r = svc.try_call_now(req);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error(), errc::overloaded);
  EXPECT_EQ(resp_error(r->error()), "BUSY overloaded: rate limit exceeded");
  EXPECT_EQ(to_http_error(r->error()).status, 429);
  EXPECT_EQ(to_http_error(r->error()).retry_after, 1);
  EXPECT_EQ(to_grpc_error(r->error()).code, grpc_code::resource_exhausted);
  EXPECT_NE(reg.expose().find("turret_rate_limit_rejected_total{pipeline=\"p1\"} 1"), std::string::npos)
      << reg.expose();
  // A rebuild of the unchanged entry (a reload) keeps the bucket: still empty.
  auto again = registry.build(load_config_string(yaml, "turret.yaml").child("pipeline"),
                              any_service<mock_request, int>(mock_service{st}), lctx);
  EXPECT_FALSE(*again.try_call_now(req));
  // A changed entry starts full.
  auto changed = registry.build(
      load_config_string("pipeline:\n  - {layer: rate_limit, rate: 10/s, burst: 4}\n", "turret.yaml").child("pipeline"),
      any_service<mock_request, int>(mock_service{st}), lctx);
  EXPECT_TRUE(*changed.try_call_now(req));

  auto expect_error = [&](const char* text, const char* what) {
    EXPECT_EQ(testing::build_error(registry, text, any_service<mock_request, int>(mock_service{st}), lctx), what);
  };
  expect_error("pipeline:\n  - layer: rate_limit\n    burst: 3\n",
               "turret.yaml:2:5: pipeline[0].rate: missing required key");
  expect_error("pipeline:\n  - layer: rate_limit\n    rate: 1000\n",
               "turret.yaml:3:11: pipeline[0].rate: invalid rate '1000' (expected e.g. 1000/s, 30/m or 100/h; more "
               "than 0, at most 1e9/s)");
  expect_error("pipeline:\n  - layer: rate_limit\n    rate: 10/s\n    scope: everyone\n",
               "turret.yaml:4:12: pipeline[0].scope: unknown scope 'everyone' (expected global, per_client or "
               "per_command_class)");
  expect_error("pipeline:\n  - layer: rate_limit\n    rate: 10/s\n    burst: 0\n",
               "turret.yaml:4:12: pipeline[0].burst: value 0 out of range [1, 1000000000]");
  expect_error("pipeline:\n  - layer: rate_limit\n    rate: 10/s\n    max_wait: soon\n",
               "turret.yaml:4:15: pipeline[0].max_wait: invalid duration 'soon' (expected e.g. 250ms, 2s, 1m)");
  expect_error("pipeline:\n  - layer: rate_limit\n    rate: 10/s\n    period: 1s\n",
               "turret.yaml:4:5: pipeline[0].period: unknown key 'period' (allowed: layer, scope, rate, burst, "
               "max_wait, classes, max_clients)");
  expect_error("pipeline:\n  - layer: rate_limit\n    rate: 10/s\n    classes: {read: 5/s}\n",
               "turret.yaml:4:14: pipeline[0].classes: classes applies to scope: per_command_class only");
  expect_error("pipeline:\n  - layer: rate_limit\n    rate: 10/s\n    max_clients: 5\n",
               "turret.yaml:4:18: pipeline[0].max_clients: max_clients applies to scope: per_client only");
  expect_error("pipeline:\n  - layer: rate_limit\n    scope: per_command_class\n    rate: 10/s\n"
               "    classes: {read: 5/s, writes: 1/s}\n",
               "turret.yaml:5:26: pipeline[0].classes.writes: unknown key 'writes' (allowed: read, write, admin, "
               "pubsub, connection)");
  expect_error("pipeline:\n  - layer: rate_limit\n    scope: per_command_class\n    rate: 10/s\n"
               "    classes: {read: fast}\n",
               "turret.yaml:5:21: pipeline[0].classes.read: invalid rate 'fast' (expected e.g. 1000/s, 30/m or "
               "100/h; more than 0, at most 1e9/s)");

  // per_command_class from YAML: reads and writes drawn from their own buckets.
  layer_registry<class_request, int> creg;
  register_builtin_layers(creg);
  auto ccfg = load_config_string(
      "pipeline:\n  - layer: rate_limit\n    scope: per_command_class\n    rate: 100/s\n    burst: 1\n"
      "    classes: {read: 5000/s, write: 500/s, admin: 10/s, pubsub: 100/s}\n",
      "turret.yaml");
  auto csvc = creg.build(ccfg.child("pipeline"), any_service<class_request, int>(mock_service{st}), lctx);
  class_request w, rd;
  rd.cls = traffic_class::read;
  EXPECT_TRUE(*csvc.try_call_now(w));
  EXPECT_FALSE(*csvc.try_call_now(w));
  EXPECT_TRUE(*csvc.try_call_now(rd));
  clk->advance(200us);  // one read token (5000/s), no write token (500/s: 2ms)
  EXPECT_TRUE(*csvc.try_call_now(rd));
  EXPECT_FALSE(*csvc.try_call_now(w));
}

}  // namespace
}  // namespace turret
