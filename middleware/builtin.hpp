#pragma once
// Registration of turret's built-in layers under their config names.
#include <concurrency_limit/concurrency_limit.hpp>
#include <timeout/timeout.hpp>
#include <turret/clock.hpp>
#include <turret/registry.hpp>

#include <memory>

namespace turret {

/// Registers "timeout" and "concurrency_limit" (later: more). `clk` drives time-based layers (tests pass a
/// manual_clock).
template <class Req, class Resp>
void register_builtin_layers(layer_registry<Req, Resp>& reg, std::shared_ptr<clock> clk = steady_clock()) {
  reg.add("timeout", [clk](const config_node& entry) -> any_layer<Req, Resp> {
    return timeout_layer(parse_timeout_config(entry), clk);
  });
  reg.add("concurrency_limit", [](const config_node& entry) -> any_layer<Req, Resp> {
    return concurrency_limit_layer(parse_concurrency_limit_config(entry));
  });
}

}  // namespace turret
