#include <turret/any_service.hpp>
#include <turret/error_mapping.hpp>
#include <turret/layer.hpp>
#include <turret/metrics.hpp>
#include <turret/middleware/builtin.hpp>
#include <turret/middleware/concurrency_limit.hpp>
#include <turret/middleware/fault.hpp>
#include <turret/middleware/load_shed.hpp>
#include <turret/middleware/rate_limit.hpp>
#include <turret/middleware/testing/layer_harness.hpp>
#include <turret/middleware/testing/mock_service.hpp>
#include <turret/middleware/timeout.hpp>

#include <gtest/gtest.h>

namespace turret {
namespace {

using namespace std::chrono_literals;
using testing::mock_request;
using testing::mock_service;
using testing::mock_state;

/// mock_service without try_ready: a service load_shed cannot probe.
struct unprobed_service {
  using response_type = int;
  using permit_type = testing::mock_permit;
  mock_service m;
  awaitable<result<permit_type>> ready(request_context& ctx) { return m.ready(ctx); }
  awaitable<result<int>> call(permit_type p, mock_request& req) { return m.call(std::move(p), req); }
};
static_assert(!probing_service<unprobed_service>);
static_assert(probing_service<mock_service>);

struct LoadShedTest : ::testing::Test, testing::context_harness {
  std::uint64_t shed() { return count("turret_load_shed_total"); }
};

TEST_F(LoadShedTest, ShedsWhenTheConcurrencyLimitIsFull) {
  st->call_delay = 1s;
  auto svc = service_builder{}
                 .layer(load_shed_layer({}, lctx))
                 .layer(concurrency_limit_layer(1))
                 .service(mock_service{st});
  mock_request r[3];
  std::optional<result<int>> out[3];
  start(svc, r[0], out[0]);
  EXPECT_FALSE(out[0]);  // in its call
  start(svc, r[1], out[1]);
  ASSERT_TRUE(out[1]);  // failed at once, not queued
  EXPECT_EQ(out[1]->error(), load_shed_errc::overloaded);
  EXPECT_EQ(out[1]->error(), errc::overloaded);
  EXPECT_EQ(resp_error(out[1]->error()), "BUSY overloaded: service overloaded: request shed");
  EXPECT_EQ(svc.inner().semaphore().waiters(), 0u);
  EXPECT_EQ(shed(), 1u);
  advance(1s);
  ASSERT_TRUE(out[0] && *out[0]);
  start(svc, r[2], out[2]);  // free again
  EXPECT_FALSE(out[2]);
  advance(1s);
  EXPECT_TRUE(out[2] && *out[2]);
  EXPECT_EQ(shed(), 1u);
  EXPECT_EQ(st->calls, 2);
  EXPECT_EQ(st->live_permits, 0);
  EXPECT_EQ(svc.inner().semaphore().available(), 1u);
}

TEST_F(LoadShedTest, PassesReadyServicesAndErrorsThrough) {
  auto svc = load_shed_layer({}, lctx).wrap(mock_service{st});
  mock_request req;
  req.value = 21;
  std::optional<result<int>> out;
  start(svc, req, out);
  ASSERT_TRUE(out && *out);
  EXPECT_EQ(**out, 42);
  st->ready_error = make_error_code(boost::asio::error::connection_refused);
  out.reset();
  start(svc, req, out);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), boost::asio::error::connection_refused);
  EXPECT_EQ(shed(), 0u);
  // A wait of the inner service's own readiness is shed.
  st->ready_error = {};
  st->ready_delay = 1s;
  out.reset();
  start(svc, req, out);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), errc::overloaded);
  EXPECT_EQ(clk->pending_timers(), 0u);
  EXPECT_EQ(shed(), 1u);
  // load_shed itself always answers its probe.
  auto p = svc.try_ready(req.ctx);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->error(), load_shed_errc::overloaded);
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(LoadShedTest, FaultDelayRightBelowIsShedButNotBelowALimit) {
  fault_config delay;
  delay.delay = fault_config::delay_fault{500ms, 100};
  {
    auto svc = service_builder{}.layer(load_shed_layer({}, lctx)).layer(fault_layer(delay, lctx)).service(mock_service{st});
    mock_request req;
    std::optional<result<int>> out;
    start(svc, req, out);
    ASSERT_TRUE(out);
    EXPECT_EQ(out->error(), errc::overloaded);
  }
  // [load_shed, concurrency_limit 1, fault delay]: the slot covers the delay (deferred to call()): the first
  // request goes through after 500ms, the concurrent ones are shed at once.
  auto svc = service_builder{}
                 .layer(load_shed_layer({}, lctx))
                 .layer(concurrency_limit_layer(1))
                 .layer(fault_layer(delay, lctx))
                 .service(mock_service{st});
  mock_request r[3];
  std::optional<result<int>> out[3];
  start(svc, r[0], out[0]);
  EXPECT_FALSE(out[0]);
  start(svc, r[1], out[1]);
  start(svc, r[2], out[2]);
  ASSERT_TRUE(out[1] && out[2]);
  EXPECT_EQ(out[1]->error(), errc::overloaded);
  EXPECT_EQ(out[2]->error(), errc::overloaded);
  EXPECT_TRUE(completes_after(out[0], 500ms));
  EXPECT_TRUE(*out[0]);
  EXPECT_EQ(shed(), 3u);
  EXPECT_EQ(st->live_permits, 0);
  EXPECT_EQ(svc.inner().semaphore().available(), 1u);
}

TEST_F(LoadShedTest, ShedsInsteadOfWaitingForARateLimitToken) {
  rate_limit_config rl;
  rl.default_rate = *parse_rate("10/s");
  rl.burst = 1;
  rl.max_wait = 1s;
  auto svc = service_builder{}.layer(load_shed_layer({}, lctx)).layer(rate_limit_layer(rl, lctx)).service(mock_service{st});
  mock_request a, b;
  std::optional<result<int>> oa, ob;
  start(svc, a, oa);
  start(svc, b, ob);
  ASSERT_TRUE(oa && *oa);
  ASSERT_TRUE(ob);  // the rate limit alone would have made it wait 100ms
  EXPECT_EQ(ob->error(), load_shed_errc::overloaded);
  EXPECT_EQ(clk->pending_timers(), 0u);
}

TEST_F(LoadShedTest, AnInnerServiceWithoutProbeIsAwaited) {
  st->ready_delay = 200ms;
  auto svc = load_shed_layer({}, lctx).wrap(unprobed_service{mock_service{st}});
  EXPECT_FALSE(probe_supported(svc.inner()));
  mock_request req;
  std::optional<result<int>> out;
  start(svc, req, out);
  EXPECT_TRUE(completes_after(out, 200ms));
  EXPECT_TRUE(*out);
  EXPECT_EQ(shed(), 0u);
  // The same through erasure: the erased chain reports that it cannot be probed.
  any_service<mock_request, int> erased(unprobed_service{mock_service{st}});
  EXPECT_FALSE(erased.supports_try_ready());
  auto over_erased = load_shed_layer({}, lctx).wrap(erased);
  out.reset();
  start(over_erased, req, out);
  EXPECT_TRUE(completes_after(out, 200ms));
  EXPECT_TRUE(*out);
}

TEST_F(LoadShedTest, ProbesThroughTimeoutAndErasure) {
  st->call_delay = 1s;
  any_service<mock_request, int> inner(service_builder{}
                                           .layer(timeout_layer(300ms, clk))
                                           .layer(concurrency_limit_layer(1))
                                           .service(mock_service{st}));
  EXPECT_TRUE(inner.supports_try_ready());
  auto svc = load_shed_layer({}, lctx).wrap(inner);
  mock_request a, b;
  std::optional<result<int>> oa, ob;
  start(svc, a, oa);
  start(svc, b, ob);
  ASSERT_TRUE(ob);
  EXPECT_EQ(ob->error(), errc::overloaded);
  // The timeout's deadline, taken in try_ready, still bounds the call.
  EXPECT_TRUE(completes_after(oa, 300ms));
  EXPECT_EQ(oa->error(), timeout_errc::elapsed);
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(LoadShedTest, FactoryFromYaml) {
  layer_registry<mock_request, int> registry;
  register_builtin_layers(registry);
  st->call_delay = 1s;
  auto cfg = load_config_string(
      "pipeline:\n  - layer: load_shed\n  - {layer: concurrency_limit, max: 2}\n", "turret.yaml");
  auto svc = registry.build(cfg.child("pipeline"), any_service<mock_request, int>(mock_service{st}), lctx);
  EXPECT_TRUE(svc.supports_try_ready());
  mock_request r[3];
  std::optional<result<int>> out[3];
  for (int i = 0; i < 3; ++i) start(svc, r[i], out[i]);
  EXPECT_FALSE(out[0]);
  EXPECT_FALSE(out[1]);
  ASSERT_TRUE(out[2]);
  EXPECT_EQ(out[2]->error(), errc::overloaded);
  EXPECT_NE(reg.expose().find("turret_load_shed_total{pipeline=\"p1\"} 1"), std::string::npos) << reg.expose();
  advance(1s);
  EXPECT_TRUE(out[0] && *out[0] && out[1] && *out[1]);
  EXPECT_EQ(st->live_permits, 0);

  EXPECT_EQ(testing::build_error(registry, "pipeline:\n  - layer: load_shed\n    queue: 0\n",
                                 any_service<mock_request, int>(mock_service{st}), lctx),
            "turret.yaml:3:5: pipeline[0].queue: unknown key 'queue' (allowed: layer)");
}

}  // namespace
}  // namespace turret
