#include <turret/any_service.hpp>
#include <turret/metrics.hpp>
#include <turret/middleware/builtin.hpp>
#include <turret/middleware/hedge.hpp>
#include <turret/middleware/testing/layer_harness.hpp>
#include <turret/middleware/testing/mock_service.hpp>

#include <boost/asio/error.hpp>

#include <gtest/gtest.h>

namespace turret {
namespace {

using namespace std::chrono_literals;
using testing::mock_request;
using testing::mock_service;

struct HedgeTest : ::testing::Test, testing::layer_harness {
  metrics::registry reg;
  layer_context lctx = context_for(reg);

  std::uint64_t hedges() { return reg.counter("turret_hedge_requests_total", "", {"pipeline"}).with({"p1"}).value(); }

  static hedge_config fixed(std::chrono::nanoseconds d, unsigned max_hedges = 1) {
    hedge_config c;
    c.delay = d;
    c.max_hedges = max_hedges;
    return c;
  }
};

TEST_F(HedgeTest, FastFirstAttemptIsNotHedged) {
  st->call_delays = {5ms};
  auto svc = hedge_layer(fixed(10ms), lctx).wrap(mock_service{st});
  mock_request req;
  req.value = 1;
  std::optional<result<int>> out;
  start(svc, req, out);
  ASSERT_TRUE(completes_after(out, 5ms));
  ASSERT_TRUE(*out);
  EXPECT_EQ(**out, 2);
  EXPECT_EQ(st->calls, 1);
  EXPECT_EQ(req.reply, "2;");
  advance(50ms);
  EXPECT_EQ(st->calls, 1);
  EXPECT_EQ(hedges(), 0u);
  EXPECT_EQ(clk->pending_timers(), 0u);
}

TEST_F(HedgeTest, SlowFirstAttemptLosesToTheHedge) {
  st->call_delays = {100ms, 5ms};
  auto svc = hedge_layer(fixed(10ms), lctx).wrap(mock_service{st});
  mock_request req;
  req.value = 3;
  std::optional<result<int>> out;
  start(svc, req, out);
  advance(10ms);
  EXPECT_EQ(st->calls, 2);  // the hedge started
  EXPECT_EQ(st->in_call, 2);
  ASSERT_TRUE(completes_after(out, 5ms));
  ASSERT_TRUE(*out) << out->error().message();
  EXPECT_EQ(**out, 6);
  EXPECT_EQ(req.reply, "6;");  // the hedge's reply, once
  EXPECT_EQ(st->in_call, 0);   // the first attempt was interrupted
  EXPECT_EQ(st->completed, 1);
  EXPECT_EQ(st->live_permits, 0);
  EXPECT_FALSE(req.ctx.cancelled());
  EXPECT_EQ(hedges(), 1u);
}

TEST_F(HedgeTest, FirstAttemptWinsAfterTheHedgeStarted) {
  st->call_delays = {20ms, 100ms};
  auto svc = hedge_layer(fixed(10ms), lctx).wrap(mock_service{st});
  mock_request req;
  req.value = 4;
  std::optional<result<int>> out;
  start(svc, req, out);
  ASSERT_TRUE(completes_after(out, 20ms));
  ASSERT_TRUE(*out);
  EXPECT_EQ(**out, 8);
  EXPECT_EQ(req.reply, "8;");
  EXPECT_EQ(st->calls, 2);
  EXPECT_EQ(st->in_call, 0);  // the hedge was cancelled
  EXPECT_EQ(st->completed, 1);
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(HedgeTest, FailedHedgeDoesNotWin) {
  st->call_delays = {30ms, 0ns};
  st->call_errors = {{}, boost::asio::error::connection_refused};
  auto svc = hedge_layer(fixed(10ms), lctx).wrap(mock_service{st});
  mock_request req;
  req.value = 5;
  std::optional<result<int>> out;
  start(svc, req, out);
  ASSERT_TRUE(completes_after(out, 30ms));
  ASSERT_TRUE(*out);
  EXPECT_EQ(**out, 10);
  EXPECT_EQ(req.reply, "10;");
}

TEST_F(HedgeTest, NonIdempotentRequestsPassThrough) {
  st->call_delays = {100ms};
  auto svc = hedge_layer(fixed(10ms), lctx).wrap(mock_service{st});
  mock_request req;
  req.safety = retry_safety::non_idempotent;
  std::optional<result<int>> out;
  start(svc, req, out);
  ASSERT_TRUE(completes_after(out, 100ms));
  EXPECT_EQ(st->calls, 1);
  EXPECT_EQ(hedges(), 0u);
}

TEST_F(HedgeTest, CancellingTheRequestCancelsEveryAttempt) {
  st->call_delay = 100ms;
  auto svc = hedge_layer(fixed(10ms, 2), lctx).wrap(mock_service{st});
  mock_request req;
  std::optional<result<int>> out;
  start(svc, req, out);
  advance(25ms);
  EXPECT_EQ(st->calls, 3);  // the first attempt and two hedges (at 10ms and 20ms)
  req.ctx.cancel();
  io.poll();
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), boost::asio::error::operation_aborted);
  EXPECT_EQ(st->in_call, 0);
  EXPECT_EQ(st->completed, 0);
  EXPECT_EQ(st->live_permits, 0);
  EXPECT_EQ(req.reply, "");
  EXPECT_EQ(hedges(), 2u);
}

TEST_F(HedgeTest, FastPathForwards) {
  st->immediate = true;
  auto svc = hedge_layer(fixed(10ms), lctx).wrap(mock_service{st});
  mock_request req;
  req.value = 1;
  auto r = svc.try_call_now(req);
  ASSERT_TRUE(r && *r);
  EXPECT_EQ(**r, 2);
}

TEST_F(HedgeTest, PercentileDelayAfterMinSamples) {
  hedge_config c;
  c.percentile = 50;
  c.min_samples = 10;
  auto svc = hedge_layer(c, lctx).wrap(mock_service{st});
  // 10 requests of 8ms: no hedging before min_samples, then p50 = 8ms.
  st->call_delay = 8ms;
  for (int i = 0; i < 10; ++i) {
    mock_request req;
    std::optional<result<int>> out;
    start(svc, req, out);
    ASSERT_TRUE(completes_after(out, 8ms)) << i;
  }
  EXPECT_EQ(hedges(), 0u);
  EXPECT_EQ(st->calls, 10);
  // A slow one is hedged at 8ms.
  st->call_delays.assign(10, 8ms);
  st->call_delays.push_back(100ms);  // call 10: the first attempt
  st->call_delays.push_back(1ms);    // call 11: the hedge
  mock_request req;
  req.value = 7;
  std::optional<result<int>> out;
  start(svc, req, out);
  ASSERT_TRUE(completes_after(out, 9ms));
  ASSERT_TRUE(*out);
  EXPECT_EQ(req.reply, "14;");
  EXPECT_EQ(hedges(), 1u);
  EXPECT_EQ(st->live_permits, 0);
}

TEST(LatencyWindow, NearestRankPercentile) {
  latency_window w(95, 100);
  for (int i = 1; i <= 99; ++i) w.record(std::chrono::milliseconds(i));
  EXPECT_FALSE(w.current());
  w.record(100ms);
  ASSERT_TRUE(w.current());
  EXPECT_EQ(*w.current(), 95ms);
}

TEST_F(HedgeTest, FactoryFromYaml) {
  layer_registry<mock_request, int> registry;
  register_builtin_layers(registry);
  auto c = load_config_string("pipeline:\n  - layer: hedge\n    delay: 10ms\n    max_hedges: 1\n", "turret.yaml");
  st->call_delays = {100ms, 5ms};
  auto svc = registry.build(c.child("pipeline"), any_service<mock_request, int>(mock_service{st}), lctx);
  mock_request req;
  req.value = 1;
  std::optional<result<int>> out;
  start(svc, req, out);
  advance(10ms);
  EXPECT_EQ(st->calls, 2);
  ASSERT_TRUE(completes_after(out, 5ms));
  EXPECT_EQ(req.reply, "2;");
  EXPECT_NE(reg.expose().find("turret_hedge_requests_total{pipeline=\"p1\"} 1"), std::string::npos) << reg.expose();

  const hedge_config p = parse_hedge_config(
      load_config_string("pipeline:\n  - {layer: hedge, percentile: 99, min_samples: 50, max_hedges: 2}\n", "t.yaml")
          .child("pipeline")
          .at(0));
  EXPECT_EQ(p.percentile, 99.0);
  EXPECT_EQ(p.min_samples, 50u);
  EXPECT_EQ(p.max_hedges, 2u);
  EXPECT_FALSE(p.delay);

  auto expect_error = [&](const char* yaml, const char* what) { EXPECT_EQ(build_error(registry, yaml, lctx), what); };
  expect_error("pipeline:\n  - layer: hedge\n",
               "turret.yaml:2:5: pipeline[0]: a hedge layer needs 'delay' (e.g. delay: 10ms) or 'percentile' (e.g. "
               "percentile: 95)");
  expect_error("pipeline:\n  - {layer: hedge, delay: 1ms, percentile: 90}\n",
               "turret.yaml:2:44: pipeline[0].percentile: give either 'delay' or 'percentile', not both");
  expect_error("pipeline:\n  - {layer: hedge, percentile: 100}\n",
               "turret.yaml:2:32: pipeline[0].percentile: percentile must be between 0 and 100 (exclusive)");
  expect_error("pipeline:\n  - {layer: hedge, delay: 0s}\n",
               "turret.yaml:2:27: pipeline[0].delay: delay must be greater than 0");
  EXPECT_NE(build_error(registry, "pipeline:\n  - {layer: hedge, delay: 1ms, after: 2}\n", lctx).find("after"),
            std::string::npos);
}

}  // namespace
}  // namespace turret
