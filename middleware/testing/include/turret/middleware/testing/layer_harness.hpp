#pragma once
// The common rig of a layer's unit tests (no gtest dependency): one io_context driven by polling, a manual clock,
// and the state of a mock inner service (mock_service.hpp) on that clock. A test fixture derives from it:
//
//   struct MyLayerTest : ::testing::Test, turret::testing::layer_harness {};
//   TEST_F(MyLayerTest, X) {
//     auto svc = my_layer(...).wrap(mock_service{st});
//     mock_request req;
//     std::optional<result<int>> out;
//     start(svc, req, out);                   // ready_and_call, run until it suspends
//     EXPECT_TRUE(completes_after(out, 1s));  // pending at 1s - 1ms, done at 1s
//   }
#include <turret/config.hpp>
#include <turret/layer_context.hpp>
#include <turret/metrics.hpp>
#include <turret/middleware/testing/mock_service.hpp>
#include <turret/any_service.hpp>
#include <turret/config.hpp>
#include <turret/layer_context.hpp>
#include <turret/registry.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace turret::testing {

struct layer_harness {
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
  std::shared_ptr<manual_clock> clk = std::make_shared<manual_clock>();
  std::shared_ptr<mock_state> st = std::make_shared<mock_state>(clk);

  /// Spawns `ready_and_call(svc, req)` on io with its result into `out`, and runs it until it suspends.
  template <class S>
  void start(S& svc, mock_request& req, std::optional<result<int>>& out) {
    boost::asio::co_spawn(
        io, [&]() -> awaitable<void> { out.emplace(co_await ready_and_call(svc, req)); }, boost::asio::detached);
    io.poll();
  }

  /// Moves the clock by `d` and runs whatever that made ready.
  void advance(clock::duration d) {
    clk->advance(d);
    io.poll();
  }

  /// A layer_context for factories and layers under test: this harness's clock, `registry` for metrics (a
  /// test's own, so that counts start at 0), `pipeline` as the pipeline name.
  layer_context context_for(metrics::registry& registry, std::string pipeline = "p1") const {
    layer_context c;
    c.clk = clk;
    c.metric_registry = &registry;
    c.pipeline_name = std::move(pipeline);
    return c;
  }

  /// The message of the config_error that building the `pipeline:` of `yaml` (file "turret.yaml") with `registry`
  /// throws, or "" when it builds.
  template <class Registry>
  std::string build_error(Registry& registry, const char* yaml, const layer_context& ctx) {
    try {
      auto c = load_config_string(yaml, "turret.yaml");
      registry.build(c.child("pipeline"), any_service<mock_request, int>(mock_service{st}), ctx);
    } catch (const config_error& e) {
      return e.what();
    }
    return "";
  }

  /// Runs one request through `svc` until done (advancing the clock by `step`, at most `limit`); its result.
  template <class S>
  std::optional<result<int>> run(S& svc, mock_request& req, clock::duration step = std::chrono::milliseconds(1),
                                 clock::duration limit = std::chrono::seconds(10)) {
    std::optional<result<int>> out;
    start(svc, req, out);
    for (clock::duration t{}; !out && t < limit; t += step) advance(step);
    return out;
  }

  /// True when `out` is still pending after `d - 1ms` and done after `d` (advancing the clock by `d`).
  bool completes_after(const std::optional<result<int>>& out, clock::duration d) {
    advance(d - std::chrono::milliseconds(1));
    if (out) return false;
    advance(std::chrono::milliseconds(1));
    return out.has_value();
  }
};

/// The harness plus a layer_context for layer factories and constructors: the harness's clock, a metrics registry of
/// the test's own (counts start at 0) and the pipeline name "p1".
struct context_harness : layer_harness {
  metrics::registry reg;
  layer_context lctx = [this] {
    layer_context c;
    c.clk = clk;
    c.metric_registry = &reg;
    c.pipeline_name = "p1";
    return c;
  }();

  /// The value of counter `name`{pipeline="p1"}.
  std::uint64_t count(std::string_view name) { return reg.counter(name, "", {"pipeline"}).with({"p1"}).value(); }
};

/// The text of the config_error that building the `pipeline` list of `yaml` (named "turret.yaml") around `inner`
/// raises, or "no error".
template <class Registry, class Inner>
std::string build_error(const Registry& registry, std::string_view yaml, Inner inner, const layer_context& ctx = {}) {
  try {
    registry.build(load_config_string(yaml, "turret.yaml").child("pipeline"), std::move(inner), ctx);
  } catch (const config_error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace turret::testing
