#include <turret/any_service.hpp>
#include <turret/metrics.hpp>
#include <turret/middleware/builtin.hpp>
#include <turret/middleware/fault.hpp>
#include <turret/middleware/metrics.hpp>
#include <turret/middleware/testing/layer_harness.hpp>
#include <turret/middleware/testing/mock_service.hpp>
#include <turret/middleware/timeout.hpp>

#include <gtest/gtest.h>

namespace turret {
namespace {

using namespace std::chrono_literals;
using testing::mock_request;
using testing::mock_service;

struct MetricsLayerTest : ::testing::Test, testing::context_harness {

  std::uint64_t count(std::string_view layer, std::string_view outcome) {
    return reg.counter("turret_layer_requests_total", "", {"pipeline", "layer", "outcome"})
        .with({"p1", layer, outcome})
        .value();
  }
  metrics::histogram::snapshot durations(std::string_view layer) {
    return reg.histogram("turret_layer_duration_seconds", "", {"pipeline", "layer"}).with({"p1", layer}).collect();
  }
  metrics_config named(std::string name, bool latency = true) { return metrics_config{std::move(name), latency}; }
};

/// A response with an error flag, as kv::response.
struct flagged {
  bool err = false;
  bool is_error() const noexcept { return err; }
};
struct flagged_service {
  using response_type = flagged;
  using permit_type = unit_permit;
  awaitable<result<unit_permit>> ready(request_context&) { co_return unit_permit{}; }
  awaitable<result<flagged>> call(unit_permit, mock_request& req) { co_return flagged{req.value != 0}; }
  std::optional<result<flagged>> try_call_now(mock_request& req) { return result<flagged>(flagged{req.value != 0}); }
};

TEST_F(MetricsLayerTest, CountsOkAndTimesTheInnerCall) {
  st->call_delay = 30ms;
  auto svc = metrics_layer(named("edge"), lctx).wrap(mock_service{st});
  mock_request req;
  std::optional<result<int>> out;
  start(svc, req, out);
  EXPECT_EQ(count("edge", "ok"), 0u);
  ASSERT_TRUE(completes_after(out, 30ms));
  EXPECT_EQ(count("edge", "ok"), 1u);
  const auto d = durations("edge");
  EXPECT_EQ(d.count, 1u);
  EXPECT_NEAR(d.sum, 0.030, 1e-9);
}

TEST_F(MetricsLayerTest, ReadinessWaitCountsInTheDuration) {
  st->ready_delay = 5ms;
  st->call_delay = 10ms;
  auto svc = metrics_layer(named("edge"), lctx).wrap(mock_service{st});
  mock_request req;
  std::optional<result<int>> out;
  start(svc, req, out);
  advance(5ms);
  ASSERT_TRUE(completes_after(out, 10ms));
  EXPECT_NEAR(durations("edge").sum, 0.015, 1e-9);
}

TEST_F(MetricsLayerTest, PipelineErrorsCountByCondition) {
  st->call_error = make_error_code(fault_errc::overloaded);
  auto svc = metrics_layer(named("edge"), lctx).wrap(mock_service{st});
  mock_request req;
  std::optional<result<int>> out;
  start(svc, req, out);
  ASSERT_TRUE(out && !*out);
  EXPECT_EQ(count("edge", "overloaded"), 1u);
  EXPECT_EQ(count("edge", "ok"), 0u);
  st->call_error = {};
  st->ready_error = make_error_code(fault_errc::unavailable);
  mock_request req2;
  std::optional<result<int>> out2;
  start(svc, req2, out2);
  EXPECT_EQ(count("edge", "unavailable"), 1u);
  EXPECT_EQ(durations("edge").count, 2u);
}

TEST_F(MetricsLayerTest, ATimeoutInsideIsCountedAsTimedOut) {
  // [metrics, timeout 50ms, service 1s]: the metrics layer outside sees timed_out after 50ms.
  st->call_delay = 1s;
  auto svc = metrics_layer(named("outer"), lctx).wrap(timeout_layer(50ms, clk).wrap(mock_service{st}));
  mock_request req;
  std::optional<result<int>> out;
  start(svc, req, out);
  ASSERT_TRUE(completes_after(out, 50ms));
  EXPECT_EQ(count("outer", "timed_out"), 1u);
  EXPECT_NEAR(durations("outer").sum, 0.050, 1e-9);
}

TEST_F(MetricsLayerTest, ErrorRepliesCountAsError) {
  metrics_layer layer(named("edge"), lctx);
  auto svc = layer.wrap(flagged_service{});
  mock_request req;
  req.value = 1;
  auto r = svc.try_call_now(req);
  ASSERT_TRUE(r && *r);
  EXPECT_TRUE((*r)->is_error());
  req.value = 0;
  (void)svc.try_call_now(req);
  EXPECT_EQ(count("edge", "error"), 1u);
  EXPECT_EQ(count("edge", "ok"), 1u);
}

TEST_F(MetricsLayerTest, FastPathRecordsOnlyWhenTheInnerServiceAnswers) {
  auto svc = metrics_layer(named("edge"), lctx).wrap(mock_service{st});
  mock_request req;
  EXPECT_FALSE(svc.try_call_now(req));  // the mock declines: nothing recorded
  EXPECT_EQ(count("edge", "ok"), 0u);
  EXPECT_EQ(durations("edge").count, 0u);
  st->immediate = true;
  auto r = svc.try_call_now(req);
  ASSERT_TRUE(r && *r);
  EXPECT_EQ(count("edge", "ok"), 1u);
  EXPECT_EQ(durations("edge").count, 1u);
  EXPECT_EQ(durations("edge").sum, 0.0);  // the manual clock did not move
}

TEST_F(MetricsLayerTest, LatencyOffRecordsNoHistogram) {
  st->immediate = true;
  auto svc = metrics_layer(named("bare", false), lctx).wrap(mock_service{st});
  mock_request req;
  (void)svc.try_call_now(req);
  EXPECT_EQ(count("bare", "ok"), 1u);
  EXPECT_EQ(reg.expose().find("turret_layer_duration_seconds_count{pipeline=\"p1\",layer=\"bare\"}"), std::string::npos);
}

TEST_F(MetricsLayerTest, TwoDepthsMeasureWhatIsInsideThem) {
  st->call_delay = 20ms;
  // [metrics outer, fault delay 100ms, metrics inner, service 20ms]
  fault_config fc;
  fc.delay = fault_config::delay_fault{100ms, 100};
  auto svc = metrics_layer(named("outer"), lctx)
                 .wrap(fault_layer(fc, lctx).wrap(metrics_layer(named("inner"), lctx).wrap(mock_service{st})));
  mock_request req;
  std::optional<result<int>> out;
  start(svc, req, out);
  advance(100ms);
  ASSERT_TRUE(completes_after(out, 20ms));
  EXPECT_NEAR(durations("outer").sum, 0.120, 1e-9);
  EXPECT_NEAR(durations("inner").sum, 0.020, 1e-9);
}

TEST_F(MetricsLayerTest, InfoSectionSumsPerPipelineAndLayer) {
  st->immediate = true;
  auto svc = metrics_layer(named("edge"), lctx).wrap(mock_service{st});
  mock_request req;
  for (int i = 0; i < 3; ++i) (void)svc.try_call_now(req);
  st->immediate = false;
  st->call_error = make_error_code(fault_errc::internal);
  std::optional<result<int>> out;
  start(svc, req, out);
  layer_context other = lctx.for_pipeline("Other Pipe");
  metrics_layer(named("x"), other);
  EXPECT_EQ(pipelines_info(reg),
            "layer_other_pipe_x:requests=0,ok=0,error=0,failed=0,usec=0\r\n"
            "layer_p1_edge:requests=4,ok=3,error=0,failed=1,usec=0\r\n");
  metrics::registry empty;
  EXPECT_EQ(pipelines_info(empty), "");
}

TEST_F(MetricsLayerTest, FactoryFromYaml) {
  layer_registry<mock_request, int> registry;
  register_builtin_layers(registry);
  auto cfg = load_config_string(
      "pipeline:\n  - layer: metrics\n    name: edge\n  - layer: timeout\n    duration: 1s\n  - layer: metrics\n",
      "turret.yaml");
  st->call_delay = 10ms;
  auto svc = registry.build(cfg.child("pipeline"), any_service<mock_request, int>(mock_service{st}), lctx);
  mock_request req;
  std::optional<result<int>> out;
  start(svc, req, out);
  ASSERT_TRUE(completes_after(out, 10ms));
  EXPECT_EQ(count("edge", "ok"), 1u);
  EXPECT_EQ(count("2", "ok"), 1u);  // unnamed: its position
  const std::string text = reg.expose();
  EXPECT_NE(text.find("turret_layer_requests_total{pipeline=\"p1\",layer=\"edge\",outcome=\"ok\"} 1"), std::string::npos)
      << text;
  EXPECT_NE(text.find("turret_layer_requests_total{pipeline=\"p1\",layer=\"edge\",outcome=\"timed_out\"} 0"),
            std::string::npos);
  EXPECT_NE(text.find("turret_layer_duration_seconds_count{pipeline=\"p1\",layer=\"2\"} 1"), std::string::npos);

  auto expect_error = [&](const char* yaml, const char* what) {
    EXPECT_EQ(testing::build_error(registry, yaml, any_service<mock_request, int>(mock_service{st}), lctx), what);
  };
  expect_error("pipeline:\n  - layer: metrics\n    buckets: [1]\n",
               "turret.yaml:3:5: pipeline[0].buckets: unknown key 'buckets' (allowed: layer, name, latency)");
  expect_error("pipeline:\n  - layer: metrics\n    name: ''\n",
               "turret.yaml:3:11: pipeline[0].name: name must not be empty");
}

}  // namespace
}  // namespace turret
