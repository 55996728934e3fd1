#pragma once
// Registration of turret's built-in layers under their config names.
#include <turret/middleware/circuit_breaker.hpp>
#include <turret/middleware/concurrency_limit.hpp>
#include <turret/middleware/fault.hpp>
#include <turret/middleware/timeout.hpp>
#include <turret/layer_context.hpp>
#include <turret/registry.hpp>

namespace turret {

/// Registers "timeout", "concurrency_limit", "fault" and "circuit_breaker" (later: more). Time-based layers take their clock from the
/// factory's layer_context (tests pass a manual_clock there); the fault layer its metrics registry and pipeline name.
template <class Req, class Resp>
void register_builtin_layers(layer_registry<Req, Resp>& reg) {
  reg.add("timeout", [](const config_node& entry, const layer_context& ctx) -> any_layer<Req, Resp> {
    return timeout_layer(parse_timeout_config(entry), ctx.clk);
  });
  reg.add("concurrency_limit", [](const config_node& entry, const layer_context&) -> any_layer<Req, Resp> {
    return concurrency_limit_layer(parse_concurrency_limit_config(entry));
  });
  reg.add("fault", [](const config_node& entry, const layer_context& ctx) -> any_layer<Req, Resp> {
    return fault_layer(parse_fault_config(entry), ctx);
  });
  // circuit_breaker: its state (and so its open/closed state) comes from the context, carried over a reload.
  reg.add("circuit_breaker", [](const config_node& entry, const layer_context& ctx) -> any_layer<Req, Resp> {
    const circuit_breaker_config cfg = parse_circuit_breaker_config(entry);
    return circuit_breaker_layer(
        ctx.shared_state<circuit_breaker_state>(entry, [&] { return make_circuit_breaker_state(cfg, ctx); }));
  });
}

}  // namespace turret
