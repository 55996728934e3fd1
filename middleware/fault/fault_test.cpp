#include <turret/any_service.hpp>
#include <turret/error_mapping.hpp>
#include <turret/metrics.hpp>
#include <turret/middleware/builtin.hpp>
#include <turret/middleware/fault.hpp>
#include <turret/middleware/testing/layer_harness.hpp>
#include <turret/middleware/testing/mock_service.hpp>
#include <turret/middleware/timeout.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace turret {
namespace {

using namespace std::chrono_literals;
using testing::mock_request;
using testing::mock_service;
using testing::mock_state;

fault_config make_config(std::optional<std::pair<std::chrono::nanoseconds, double>> delay,
                         std::optional<std::pair<fault_errc, double>> abort) {
  fault_config c;
  if (delay) c.delay = fault_config::delay_fault{delay->first, delay->second};
  if (abort) c.abort = fault_config::abort_fault{abort->first, abort->second};
  return c;
}

struct FaultTest : ::testing::Test, testing::layer_harness {
  metrics::registry reg;  // a registry of the test's own: counts start at 0
  layer_context lctx = [this] {
    layer_context c;
    c.clk = clk;
    c.metric_registry = &reg;
    c.pipeline_name = "p1";
    return c;
  }();

  std::uint64_t injected(std::string_view kind) {
    return reg.counter("turret_fault_injected_total", "", {"pipeline", "kind"}).with({"p1", kind}).value();
  }
};

TEST_F(FaultTest, ErrorsMapToTurretConditions) {
  const std::pair<fault_errc, errc> kinds[] = {{fault_errc::unavailable, errc::unavailable},
                                               {fault_errc::overloaded, errc::overloaded},
                                               {fault_errc::timeout, errc::timed_out},
                                               {fault_errc::internal, errc::internal}};
  for (const auto& [f, c] : kinds) {
    const error_code ec = f;
    EXPECT_STREQ(ec.category().name(), "turret.fault");
    EXPECT_EQ(ec.message(), "injected fault");
    EXPECT_EQ(ec, c) << to_string(f);
    EXPECT_EQ(classify(ec), c) << to_string(f);
  }
  // As every front end will send them (turret/error_mapping.hpp).
  EXPECT_EQ(resp_error(fault_errc::unavailable), "ERR unavailable: injected fault");
  EXPECT_EQ(resp_error(fault_errc::overloaded), "BUSY overloaded: injected fault");
  EXPECT_EQ(resp_error(fault_errc::timeout), "ERR request timed out");
  EXPECT_EQ(resp_error(fault_errc::internal), "ERR injected fault");
  EXPECT_EQ(to_http_error(fault_errc::unavailable).status, 503);
  EXPECT_EQ(to_grpc_error(fault_errc::timeout).code, grpc_code::deadline_exceeded);
}

TEST_F(FaultTest, AbortFailsWithoutCallingInward) {
  auto svc = fault_layer(make_config({}, {{fault_errc::overloaded, 100}}), lctx).wrap(mock_service{st});
  mock_request req;
  std::optional<result<int>> out;
  start(svc, req, out);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), fault_errc::overloaded);
  EXPECT_EQ(st->calls, 0);
  EXPECT_EQ(st->live_permits, 0);
  EXPECT_EQ(injected("abort"), 1u);
  EXPECT_EQ(injected("delay"), 0u);
}

TEST_F(FaultTest, FastPathReturnsTheAbortSynchronously) {
  st->immediate = true;
  auto svc = fault_layer(make_config({}, {{fault_errc::unavailable, 100}}), lctx).wrap(mock_service{st});
  static_assert(immediate_service<decltype(svc), mock_request>);
  mock_request req;
  auto r = svc.try_call_now(req);
  ASSERT_TRUE(r);
  ASSERT_FALSE(*r);
  EXPECT_EQ(r->error(), errc::unavailable);
  EXPECT_EQ(st->calls, 0);
  EXPECT_EQ(injected("abort"), 1u);
}

fault_config response_phase(fault_errc e, double percent) {
  fault_config c = make_config({}, {{e, percent}});
  c.abort->when = fault_config::phase::response;
  return c;
}

TEST_F(FaultTest, ResponsePhaseCallsInwardThenFails) {
  auto svc = fault_layer(response_phase(fault_errc::internal, 100), lctx).wrap(mock_service{st});
  mock_request req;
  req.value = 7;
  std::optional<result<int>> out;
  start(svc, req, out);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), fault_errc::internal);  // the inner answer (7) is replaced by the error
  EXPECT_EQ(st->calls, 1);                        // the inner service ran: its effects apply
  EXPECT_EQ(st->live_permits, 0);
  EXPECT_EQ(injected("abort"), 1u);
}

TEST_F(FaultTest, ResponsePhaseOnTheFastPath) {
  st->immediate = true;
  auto svc = fault_layer(response_phase(fault_errc::unavailable, 100), lctx).wrap(mock_service{st});
  mock_request req;
  auto r = svc.try_call_now(req);
  ASSERT_TRUE(r);
  ASSERT_FALSE(*r);
  EXPECT_EQ(r->error(), errc::unavailable);
  EXPECT_EQ(st->calls, 1);
  EXPECT_EQ(injected("abort"), 1u);
}

TEST_F(FaultTest, ResponsePhaseAtZeroPercentPassesTheAnswer) {
  auto svc = fault_layer(response_phase(fault_errc::internal, 0), lctx).wrap(mock_service{st});
  mock_request req;
  req.value = 7;
  std::optional<result<int>> out;
  start(svc, req, out);
  ASSERT_TRUE(out && *out);
  EXPECT_EQ(**out, 14);  // the mock answers value * 2
  EXPECT_EQ(injected("abort"), 0u);
}

TEST_F(FaultTest, DelayWaitsThenCallsInward) {
  auto svc = fault_layer(make_config({{1s, 100}}, {}), lctx).wrap(mock_service{st});
  mock_request req;
  req.value = 21;
  std::optional<result<int>> out;
  start(svc, req, out);
  EXPECT_EQ(injected("delay"), 1u);
  EXPECT_EQ(st->live_permits, 0);  // nothing of the inner service is held during the delay
  ASSERT_TRUE(completes_after(out, 1s));
  ASSERT_TRUE(*out);
  EXPECT_EQ(**out, 42);
  EXPECT_EQ(st->calls, 1);
}

TEST_F(FaultTest, FastPathDeclinesADelayWithoutSideEffect) {
  st->immediate = true;
  auto svc = fault_layer(make_config({{1s, 100}}, {}), lctx).wrap(mock_service{st});
  mock_request req;
  EXPECT_FALSE(svc.try_call_now(req));
  EXPECT_FALSE(svc.try_call_now(req));
  EXPECT_EQ(injected("delay"), 0u);
  EXPECT_EQ(st->calls, 0);
  EXPECT_EQ(clk->pending_timers(), 0u);
  // ready_and_call falls back to ready() + call(), which delays.
  std::optional<result<int>> out;
  start(svc, req, out);
  EXPECT_FALSE(out);
  EXPECT_EQ(injected("delay"), 1u);
  advance(1s);
  ASSERT_TRUE(out && *out);
}

TEST_F(FaultTest, DelayHonoursCancellation) {
  auto svc = fault_layer(make_config({{10s, 100}}, {}), lctx).wrap(mock_service{st});
  mock_request req;
  std::optional<result<int>> out;
  start(svc, req, out);
  advance(1s);
  EXPECT_FALSE(out);
  req.ctx.cancel();
  io.poll();
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), boost::asio::error::operation_aborted);
  EXPECT_EQ(out->error(), errc::cancelled);
  EXPECT_EQ(st->calls, 0);
  EXPECT_EQ(clk->pending_timers(), 0u);
}

TEST_F(FaultTest, AlreadyCancelledRequestDoesNotWait) {
  auto svc = fault_layer(make_config({{10s, 100}}, {}), lctx).wrap(mock_service{st});
  mock_request req;
  req.ctx.cancel();
  std::optional<result<int>> out;
  start(svc, req, out);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), boost::asio::error::operation_aborted);
  EXPECT_EQ(clk->pending_timers(), 0u);
}

TEST_F(FaultTest, TimeoutAboveCutsTheDelayShort) {
  // [timeout 50ms, fault delay 200ms]: the request ends at 50ms with the timeout's error, the inner service unseen.
  auto svc = timeout_layer(50ms, clk).wrap(fault_layer(make_config({{200ms, 100}}, {}), lctx).wrap(mock_service{st}));
  mock_request req;
  std::optional<result<int>> out;
  start(svc, req, out);
  ASSERT_TRUE(completes_after(out, 50ms));
  EXPECT_EQ(out->error(), timeout_errc::elapsed);
  EXPECT_EQ(st->calls, 0);
  EXPECT_EQ(clk->pending_timers(), 0u);
}

TEST_F(FaultTest, DelayComesBeforeAbort) {
  auto svc = fault_layer(make_config({{1s, 100}}, {{fault_errc::timeout, 100}}), lctx).wrap(mock_service{st});
  mock_request req;
  std::optional<result<int>> out;
  start(svc, req, out);
  EXPECT_FALSE(out);
  EXPECT_EQ(injected("abort"), 0u);
  advance(1s);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), fault_errc::timeout);
  EXPECT_EQ(injected("delay"), 1u);
  EXPECT_EQ(injected("abort"), 1u);
  EXPECT_EQ(st->calls, 0);
}

TEST_F(FaultTest, ZeroPercentNeverApplies) {
  st->immediate = true;
  auto svc = fault_layer(make_config({{1s, 0}}, {{fault_errc::internal, 0}}), lctx).wrap(mock_service{st});
  std::mt19937_64 rng(7);
  for (int i = 0; i < 10000; ++i) {
    mock_request req;
    req.ctx.set_sample(rng());
    auto r = svc.try_call_now(req);
    ASSERT_TRUE(r && *r);
  }
  EXPECT_EQ(injected("abort") + injected("delay"), 0u);
}

/// |observed - expected| within 5 standard deviations of a binomial(n, p).
void expect_share(std::uint64_t observed, std::uint64_t n, double p, const char* what) {
  const double mean = n * p;
  const double sd = std::sqrt(n * p * (1 - p));
  EXPECT_LE(std::abs(static_cast<double>(observed) - mean), 5 * sd + 1)
      << what << ": " << observed << " of " << n << ", expected " << mean << " +- " << 5 * sd;
}

// The fast path and ready() decide the same for each request, and the shares are the configured percentages,
// delay and abort independently. Samples come from a seeded generator, so the run is reproducible.
TEST_F(FaultTest, PercentagesAreStatisticallyRightOnBothPaths) {
  st->immediate = true;
  const double pd = 30, pa = 12.5;
  auto svc = fault_layer(make_config({{1s, pd}}, {{fault_errc::unavailable, pa}}), lctx, 1234).wrap(mock_service{st});
  std::mt19937_64 rng(42);
  constexpr int n = 40000;
  std::vector<std::unique_ptr<mock_request>> delayed;
  std::uint64_t fast_aborts = 0, passed = 0;
  for (int i = 0; i < n; ++i) {
    auto req = std::make_unique<mock_request>();
    req->ctx.set_sample(rng());
    auto r = svc.try_call_now(*req);
    if (!r) {
      delayed.push_back(std::move(req));
    } else if (!*r) {
      EXPECT_EQ(r->error(), fault_errc::unavailable);
      ++fast_aborts;
    } else {
      ++passed;
    }
  }
  EXPECT_EQ(injected("delay"), 0u);  // declining has no side effect
  expect_share(delayed.size(), n, pd / 100, "delayed");
  expect_share(fast_aborts, n - delayed.size(), pa / 100, "aborted among the not delayed");
  EXPECT_EQ(fast_aborts + passed + delayed.size(), static_cast<std::uint64_t>(n));

  // The delayed ones through ready() + call(): every one of them waits (the same decision), and the abort share
  // among them is the abort percentage (independence).
  const int calls_before = st->calls;
  std::vector<std::optional<result<int>>> outs(delayed.size());
  for (std::size_t i = 0; i < delayed.size(); ++i) start(svc, *delayed[i], outs[i]);
  EXPECT_EQ(injected("delay"), delayed.size());
  for (const auto& o : outs) EXPECT_FALSE(o);
  EXPECT_EQ(st->calls, calls_before);
  advance(1s);
  std::uint64_t slow_aborts = 0;
  for (const auto& o : outs) {
    ASSERT_TRUE(o);
    if (!*o) {
      EXPECT_EQ(o->error(), fault_errc::unavailable);
      ++slow_aborts;
    }
  }
  expect_share(slow_aborts, delayed.size(), pa / 100, "aborted among the delayed");
  EXPECT_EQ(injected("abort"), fast_aborts + slow_aborts);
}

TEST_F(FaultTest, FractionalPercent) {
  st->immediate = true;
  auto svc = fault_layer(make_config({}, {{fault_errc::internal, 0.5}}), lctx, 99).wrap(mock_service{st});
  std::mt19937_64 rng(5);
  constexpr int n = 200000;
  for (int i = 0; i < n; ++i) {
    mock_request req;
    req.ctx.set_sample(rng());
    (void)svc.try_call_now(req);
  }
  expect_share(injected("abort"), n, 0.005, "0.5% aborts");
}

template <class S>
std::optional<result<int>> svc_result(S& s, mock_request& req) {
  auto r = s.try_call_now(req);
  if (!r) ADD_FAILURE() << "no delay configured: the fast path must answer";
  return r ? r : std::optional<result<int>>(result<int>(0));
}

TEST_F(FaultTest, TheSeedMakesDecisionsReproducible) {
  st->immediate = true;
  auto cfg = make_config({}, {{fault_errc::internal, 50}});
  auto a = fault_layer(cfg, lctx, 1).wrap(mock_service{st});
  auto b = fault_layer(cfg, lctx, 1).wrap(mock_service{st});
  auto c = fault_layer(cfg, lctx, 2).wrap(mock_service{st});
  std::mt19937_64 rng(3);
  int same_ab = 0, same_ac = 0;
  for (int i = 0; i < 1000; ++i) {
    mock_request req;
    req.ctx.set_sample(rng());
    const bool ra = bool(*svc_result(a, req)), rb = bool(*svc_result(b, req)), rc = bool(*svc_result(c, req));
    same_ab += ra == rb;
    same_ac += ra == rc;
  }
  EXPECT_EQ(same_ab, 1000);
  EXPECT_LT(same_ac, 600);  // another salt: decisions independent of a's (about half agree)
  EXPECT_GT(same_ac, 400);
}

TEST_F(FaultTest, TryReadyDecidesAsReady) {
  mock_request req;
  auto delayed = fault_layer(make_config({{1s, 100}}, {}), lctx).wrap(mock_service{st});
  EXPECT_FALSE(delayed.try_ready(req.ctx));  // a delay: would wait, nothing counted
  EXPECT_EQ(injected("delay"), 0u);
  auto aborting = fault_layer(make_config({}, {{fault_errc::overloaded, 100}}), lctx).wrap(mock_service{st});
  auto a = aborting.try_ready(req.ctx);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->error(), fault_errc::overloaded);
  EXPECT_EQ(injected("abort"), 1u);
  auto passing = fault_layer(make_config({{1s, 0}}, {{fault_errc::internal, 0}}), lctx).wrap(mock_service{st});
  auto p = passing.try_ready(req.ctx);
  ASSERT_TRUE(p && *p);
  EXPECT_EQ(st->live_permits, 1);
  p.reset();
  EXPECT_EQ(st->live_permits, 0);
  any_service<mock_request, int> erased(delayed);
  EXPECT_TRUE(erased.supports_try_ready());
  EXPECT_FALSE(erased.try_ready(req.ctx));
}

TEST_F(FaultTest, FactoryFromYaml) {
  layer_registry<mock_request, int> registry;
  register_builtin_layers(registry);
  auto cfg = load_config_string(
      "pipeline:\n  - layer: fault\n    delay: {duration: 250ms, percent: 100}\n"
      "    abort: {percent: 100, error: overloaded}\n",
      "turret.yaml");
  auto svc = registry.build(cfg.child("pipeline"), any_service<mock_request, int>(mock_service{st}), lctx);
  mock_request req;
  std::optional<result<int>> out;
  start(svc, req, out);
  ASSERT_TRUE(completes_after(out, 250ms));
  EXPECT_EQ(out->error(), errc::overloaded);
  EXPECT_EQ(injected("delay"), 1u);
  EXPECT_EQ(injected("abort"), 1u);
  EXPECT_NE(reg.expose().find("turret_fault_injected_total{pipeline=\"p1\",kind=\"abort\"} 1"), std::string::npos)
      << reg.expose();

  auto expect_error = [&](const char* yaml, const char* what) {
    auto c = load_config_string(yaml, "turret.yaml");
    try {
      registry.build(c.child("pipeline"), any_service<mock_request, int>(mock_service{st}), lctx);
      ADD_FAILURE() << "no error for " << yaml;
    } catch (const config_error& e) {
      EXPECT_STREQ(e.what(), what);
    }
  };
  expect_error("pipeline:\n  - layer: fault\n",
               "turret.yaml:2:5: pipeline[0]: a fault layer needs 'delay' and/or 'abort', e.g. abort: {percent: 10, "
               "error: unavailable}");
  expect_error("pipeline:\n  - layer: fault\n    abort: {percent: 10, error: gone}\n",
               "turret.yaml:3:33: pipeline[0].abort.error: unknown error 'gone' (expected unavailable, overloaded, "
               "timeout or internal)");
  expect_error("pipeline:\n  - layer: fault\n    abort: {percent: 100.5, error: internal}\n",
               "turret.yaml:3:22: pipeline[0].abort.percent: percent must be between 0 and 100 (fractions allowed, "
               "e.g. 0.5)");
  expect_error("pipeline:\n  - layer: fault\n    abort: {error: internal}\n",
               "turret.yaml:3:12: pipeline[0].abort.percent: missing required key");
  expect_error("pipeline:\n  - layer: fault\n    delay: {duration: 0s, percent: 5}\n",
               "turret.yaml:3:23: pipeline[0].delay.duration: duration must be greater than 0");
  expect_error("pipeline:\n  - layer: fault\n    delay: {duration: 1s, percent: 5, jitter: 1}\n",
               "turret.yaml:3:39: pipeline[0].delay.jitter: unknown key 'jitter' (allowed: duration, percent)");
  expect_error("pipeline:\n  - layer: fault\n    delay: 100ms\n",
               "turret.yaml:3:12: pipeline[0].delay: expected a mapping, e.g. {duration: 100ms, percent: 50}");
  expect_error("pipeline:\n  - layer: fault\n    abort: {percent: 1, error: internal, phase: after}\n",
               "turret.yaml:3:49: pipeline[0].abort.phase: unknown phase 'after' (expected request or response)");
  expect_error("pipeline:\n  - layer: fault\n    abort: {percent: 1, error: internal}\n    status: 503\n",
               "turret.yaml:4:5: pipeline[0].status: unknown key 'status' (allowed: layer, delay, abort)");
}

}  // namespace
}  // namespace turret
