#pragma once
// Registration of turret's built-in layers under their config names.
#include <turret/middleware/concurrency_limit.hpp>
#include <turret/middleware/fault.hpp>
#include <turret/middleware/hedge.hpp>
#include <turret/middleware/retry.hpp>
#include <turret/middleware/timeout.hpp>
#include <turret/layer_context.hpp>
#include <turret/registry.hpp>

namespace turret {

/// Registers "timeout", "concurrency_limit", "fault", "retry" and "hedge" (later: more). Time-based layers take their
/// clock from the factory's layer_context (tests pass a manual_clock there); the fault, retry and hedge layers their
/// metrics registry and pipeline name; retry its budget from the context's state store (carried over reloads).
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
  reg.add("retry", [](const config_node& entry, const layer_context& ctx) -> any_layer<Req, Resp> {
    retry_config cfg = parse_retry_config(entry);
    auto budget = ctx.shared_state<retry_budget>(entry, [&] { return retry_layer::make_budget(cfg, ctx.clk); });
    return retry_layer(std::move(cfg), ctx, std::move(budget));
  });
  reg.add("hedge", [](const config_node& entry, const layer_context& ctx) -> any_layer<Req, Resp> {
    return hedge_layer(parse_hedge_config(entry), ctx);
  });
}

}  // namespace turret
