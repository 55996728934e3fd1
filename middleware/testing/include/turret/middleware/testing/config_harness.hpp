#pragma once
// Helpers of layer factory tests (no gtest dependency): a layer_context on a test's own clock and metrics registry,
// and the error a pipeline's configuration is rejected with.
//
//   metrics::registry reg;
//   layer_context lctx = test_context(clk, reg, "p1");
//   auto svc = build_pipeline(registry, "pipeline:\n  - {layer: x}\n", any_service<R, int>(mock_service{st}), lctx);
//   EXPECT_EQ(pipeline_error(registry, "pipeline:\n  - {layer: x, bad: 1}\n", inner, lctx), "turret.yaml:2:...");
#include <turret/config.hpp>
#include <turret/layer_context.hpp>
#include <turret/metrics.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace turret::testing {

/// A context whose layers use `clk`, count into `reg` (counts start at 0) and label with `pipeline`.
inline layer_context test_context(std::shared_ptr<clock> clk, metrics::registry& reg, std::string pipeline) {
  layer_context c;
  c.clk = std::move(clk);
  c.metric_registry = &reg;
  c.pipeline_name = std::move(pipeline);
  return c;
}

/// The service built from the `pipeline` list of the YAML text `yaml` (named turret.yaml) around `inner`.
template <class Registry, class Service>
Service build_pipeline(const Registry& registry, std::string_view yaml, const Service& inner, const layer_context& ctx) {
  return registry.build(load_config_string(yaml, "turret.yaml").child("pipeline"), inner, ctx);
}

/// The message of the config_error that building the `pipeline` list of the YAML text `yaml` (named turret.yaml)
/// around `inner` throws, or "(no error)" when it builds.
template <class Registry, class Service>
std::string pipeline_error(const Registry& registry, std::string_view yaml, const Service& inner,
                           const layer_context& ctx) {
  try {
    build_pipeline(registry, yaml, inner, ctx);
  } catch (const config_error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace turret::testing
