#include <turret/any_service.hpp>
#include <turret/error.hpp>
#include <turret/layer.hpp>
#include <turret/middleware/builtin.hpp>
#include <turret/middleware/testing/layer_harness.hpp>
#include <turret/middleware/testing/mock_service.hpp>
#include <turret/middleware/timeout.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

namespace turret {
namespace {

using namespace std::chrono_literals;
using testing::mock_request;
using testing::mock_service;
using testing::mock_state;

struct TimeoutTest : ::testing::Test, testing::layer_harness {};

TEST_F(TimeoutTest, ErrorCategory) {
  error_code ec = timeout_errc::elapsed;
  EXPECT_EQ(ec.message(), "request timed out");
  EXPECT_STREQ(ec.category().name(), "turret.timeout");
  EXPECT_EQ(ec, errc::timed_out);  // the generic condition every front end maps (turret/error.hpp)
  EXPECT_EQ(classify(ec), errc::timed_out);
}

TEST_F(TimeoutTest, BoundsTheReadinessWait) {
  st->ready_delay = 5s;
  auto svc = timeout_layer(1s, clk).wrap(mock_service{st});
  EXPECT_EQ(svc.duration(), 1s);
  mock_request req;
  const auto t0 = clk->now();
  std::optional<result<int>> out;
  start(svc, req, out);
  EXPECT_EQ(req.ctx.deadline, t0 + 1s);  // tightened
  advance(999ms);
  EXPECT_FALSE(out);
  advance(1ms);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), timeout_errc::elapsed);
  EXPECT_TRUE(req.ctx.cancelled());
  EXPECT_EQ(st->calls, 0);
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(TimeoutTest, BoundsTheCall) {
  st->call_delay = 5s;
  auto svc = timeout_layer(1s, clk).wrap(mock_service{st});
  mock_request req;
  std::optional<result<int>> out;
  start(svc, req, out);
  advance(1s);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), timeout_errc::elapsed);
  EXPECT_EQ(st->calls, 1);
  EXPECT_EQ(st->completed, 0);
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(TimeoutTest, OneDeadlineForReadyAndCall) {
  st->ready_delay = 600ms;
  st->call_delay = 600ms;
  auto svc = timeout_layer(1s, clk).wrap(mock_service{st});
  mock_request req;
  std::optional<result<int>> out;
  start(svc, req, out);
  advance(600ms);
  EXPECT_FALSE(out);
  EXPECT_EQ(st->calls, 1);
  advance(400ms);  // 1s after ready() began, although the call has run only 400ms
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), timeout_errc::elapsed);
}

TEST_F(TimeoutTest, CompletesInTimeAndDoesNotCancelLater) {
  st->ready_delay = 300ms;
  st->call_delay = 300ms;
  auto svc = timeout_layer(1s, clk).wrap(mock_service{st});
  mock_request req;
  req.value = 21;
  std::optional<result<int>> out;
  start(svc, req, out);
  advance(300ms);
  advance(300ms);
  ASSERT_TRUE(out && *out);
  EXPECT_EQ(**out, 42);
  advance(10s);
  EXPECT_FALSE(req.ctx.cancelled());  // the registration was removed with the call
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(TimeoutTest, KeepsAnEarlierContextDeadline) {
  auto svc = timeout_layer(1s, clk).wrap(mock_service{st});
  mock_request req;
  req.ctx.deadline = clk->now() + 100ms;
  const auto before = req.ctx.deadline;
  std::optional<result<int>> out;
  start(svc, req, out);
  EXPECT_EQ(req.ctx.deadline, before);
  ASSERT_TRUE(out && *out);
}

TEST_F(TimeoutTest, UnspentPermitPastDeadlineIsDroppedAndCallFails) {
  auto svc = timeout_layer(1s, clk).wrap(mock_service{st});
  mock_request req;
  std::optional<result<int>> out;
  boost::asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        auto p = co_await svc.ready(req.ctx);
        EXPECT_TRUE(p);
        co_await sleep_for(*clk, 2s);  // holds the permit past the deadline (not bound to the context)
        out.emplace(co_await svc.call(std::move(*p), req));
      },
      boost::asio::detached);
  io.poll();
  EXPECT_EQ(st->live_permits, 1);
  advance(1s);
  EXPECT_TRUE(req.ctx.cancelled());
  advance(1s);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), timeout_errc::elapsed);
  EXPECT_EQ(st->calls, 0);
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(TimeoutTest, DroppedPermitUnregisters) {
  auto svc = timeout_layer(1s, clk).wrap(mock_service{st});
  mock_request req;
  boost::asio::co_spawn(
      io, [&]() -> awaitable<void> { auto p = co_await svc.ready(req.ctx); }, boost::asio::detached);
  io.poll();
  EXPECT_EQ(st->live_permits, 0);
  advance(5s);
  EXPECT_FALSE(req.ctx.cancelled());
}

TEST_F(TimeoutTest, InnerErrorsPassThrough) {
  st->call_error = boost::asio::error::connection_refused;
  auto svc = timeout_layer(1s, clk).wrap(mock_service{st});
  mock_request req;
  std::optional<result<int>> out;
  start(svc, req, out);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), boost::asio::error::connection_refused);
  st->call_error = {};
  st->ready_error = boost::asio::error::no_buffer_space;
  mock_request req2;
  std::optional<result<int>> out2;
  start(svc, req2, out2);
  ASSERT_TRUE(out2);
  EXPECT_EQ(out2->error(), boost::asio::error::no_buffer_space);
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(TimeoutTest, ManyStaggeredRequests) {
  st->call_delay = 1500ms;
  auto svc = timeout_layer(1s, clk).wrap(mock_service{st});
  std::vector<std::unique_ptr<mock_request>> reqs;
  std::vector<std::optional<result<int>>> outs(100);
  for (int i = 0; i < 100; ++i) {
    reqs.push_back(std::make_unique<mock_request>());
    if (i == 50) st->call_delay = 500ms;  // the second half finishes in time
    start(svc, *reqs.back(), outs[i]);
    advance(10ms);
  }
  // Time advances in steps (one big jump would make every deadline due before the completions are observed).
  for (int i = 0; i < 20; ++i) advance(100ms);
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(outs[i]) << i;
    if (i < 50) {
      EXPECT_EQ(outs[i]->error(), timeout_errc::elapsed) << i;
    } else {
      EXPECT_TRUE(*outs[i]) << i << " " << (*outs[i] ? std::string("ok") : outs[i]->error().message());
    }
  }
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(TimeoutTest, FastPathForwards) {
  st->immediate = true;
  auto svc = timeout_layer(1s, clk).wrap(mock_service{st});
  static_assert(immediate_service<decltype(svc), mock_request>);
  mock_request req;
  req.value = 2;
  auto r = svc.try_call_now(req);
  ASSERT_TRUE(r && *r);
  EXPECT_EQ(**r, 4);
}

TEST_F(TimeoutTest, TryReadyDeadlineBoundsTheCall) {
  st->call_delay = 2s;
  auto svc = timeout_layer(1s, clk).wrap(mock_service{st});
  mock_request req;
  auto p = svc.try_ready(req.ctx);
  ASSERT_TRUE(p && *p);
  EXPECT_EQ(st->live_permits, 1);
  advance(400ms);  // the deadline started with the probe
  std::optional<result<int>> out;
  boost::asio::co_spawn(
      io, [&]() -> awaitable<void> { out.emplace(co_await svc.call(std::move(**p), req)); }, boost::asio::detached);
  io.poll();
  EXPECT_TRUE(completes_after(out, 600ms));
  EXPECT_EQ(out->error(), timeout_errc::elapsed);
  EXPECT_EQ(st->live_permits, 0);
  // The inner service would wait: so does the probe.
  st->ready_delay = 1ms;
  EXPECT_FALSE(svc.try_ready(req.ctx));
  // A probed permit spent after its deadline: elapsed without calling inward.
  st->ready_delay = {};
  mock_request late;
  auto q = svc.try_ready(late.ctx);
  ASSERT_TRUE(q && *q);
  advance(1s);
  const int calls = st->calls;
  out.reset();
  boost::asio::co_spawn(
      io, [&]() -> awaitable<void> { out.emplace(co_await svc.call(std::move(**q), late)); }, boost::asio::detached);
  io.poll();
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), timeout_errc::elapsed);
  EXPECT_EQ(st->calls, calls);
}

TEST_F(TimeoutTest, RealClock) {
  st->clk = steady_clock();
  st->ready_delay = 10s;
  auto svc = timeout_layer(30ms).wrap(mock_service{st});
  mock_request req;
  std::optional<result<int>> out;
  const auto t0 = std::chrono::steady_clock::now();
  boost::asio::co_spawn(
      io, [&]() -> awaitable<void> { out.emplace(co_await ready_and_call(svc, req)); }, boost::asio::detached);
  while (!out && std::chrono::steady_clock::now() - t0 < 5s) io.run_one_for(100ms);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), timeout_errc::elapsed);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

TEST_F(TimeoutTest, FactoryFromYaml) {
  layer_registry<mock_request, int> reg;
  register_builtin_layers(reg);
  layer_context lctx;
  lctx.clk = clk;
  st->ready_delay = 5s;
  auto cfg = load_config_string("pipeline:\n  - layer: timeout\n    duration: 250ms\n", "turret.yaml");
  auto svc = reg.build(cfg.child("pipeline"), any_service<mock_request, int>(mock_service{st}), lctx);
  mock_request req;
  std::optional<result<int>> out;
  start(svc, req, out);
  advance(249ms);
  EXPECT_FALSE(out);
  advance(1ms);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), timeout_errc::elapsed);
  EXPECT_EQ(st->live_permits, 0);

  auto expect_error = [&](const char* yaml, const char* what) {
    auto c = load_config_string(yaml, "turret.yaml");
    try {
      reg.build(c.child("pipeline"), any_service<mock_request, int>(mock_service{st}));
      ADD_FAILURE() << "no error for " << yaml;
    } catch (const config_error& e) {
      EXPECT_STREQ(e.what(), what);
    }
  };
  expect_error("pipeline:\n  - layer: timeout\n    duration: 2x\n",
               "turret.yaml:3:15: pipeline[0].duration: invalid duration '2x' (expected e.g. 250ms, 2s, 1m)");
  expect_error("pipeline:\n  - layer: timeout\n    duraton: 2s\n",
               "turret.yaml:3:5: pipeline[0].duraton: unknown key 'duraton' (allowed: layer, duration)");
  expect_error("pipeline:\n  - layer: timeout\n", "turret.yaml:2:5: pipeline[0].duration: missing required key");
  expect_error("pipeline:\n  - layer: timeout\n    duration: 0ms\n",
               "turret.yaml:3:15: pipeline[0].duration: duration must be greater than 0");
}

}  // namespace
}  // namespace turret
