#pragma once
// Registration of turret's built-in layers under their config names.
#include <turret/middleware/access_log.hpp>
#include <turret/middleware/auth.hpp>
#include <turret/middleware/circuit_breaker.hpp>
#include <turret/middleware/concurrency_limit.hpp>
#include <turret/middleware/fault.hpp>
#include <turret/middleware/hedge.hpp>
#include <turret/middleware/load_balance.hpp>
#include <turret/middleware/load_shed.hpp>
#include <turret/middleware/metrics.hpp>
#include <turret/middleware/rate_limit.hpp>
#include <turret/middleware/retry.hpp>
#include <turret/middleware/timeout.hpp>
#include <turret/layer_context.hpp>
#include <turret/registry.hpp>

namespace turret {

/// Registers every built-in layer under its config name. Time-based layers take their clock from the factory's
/// layer_context (tests pass a manual_clock there), layers that count their metrics registry and pipeline name, and
/// stateful layers their state from ctx.shared_state, so a reload keeps it for an unchanged entry.
template <class Req, class Resp>
void register_builtin_layers(layer_registry<Req, Resp>& reg) {
  reg.add("timeout", [](const config_node& entry, const layer_context& ctx) -> any_layer<Req, Resp> {
    return timeout_layer(parse_timeout_config(entry), ctx.clk);
  });
  reg.add("concurrency_limit", [](const config_node& entry, const layer_context& ctx) -> any_layer<Req, Resp> {
    const concurrency_limit_config cfg = parse_concurrency_limit_config(entry);
    return concurrency_limit_layer(
        cfg, ctx.shared_state<concurrency_limit_state>(entry, [&] { return concurrency_limit_state::make(cfg); }));
  });
  reg.add("fault", [](const config_node& entry, const layer_context& ctx) -> any_layer<Req, Resp> {
    return fault_layer(parse_fault_config(entry), ctx);
  });
  reg.add("metrics", [](const config_node& entry, const layer_context& ctx) -> any_layer<Req, Resp> {
    return metrics_layer(parse_metrics_config(entry), ctx);
  });
  reg.add("access_log", [](const config_node& entry, const layer_context& ctx) -> any_layer<Req, Resp> {
    return access_log_layer::from_entry(entry, ctx);
  });
  reg.add("auth", [](const config_node& entry, const layer_context& ctx) -> any_layer<Req, Resp> {
    return auth_layer(parse_auth_config(entry), ctx);
  });
  // load_balance: endpoint sub-pipelines are built with the registry building the entry (a context extension).
  reg.add("load_balance", [](const config_node& entry, const layer_context& ctx) -> any_layer<Req, Resp> {
    return make_load_balance_layer<Req, Resp>(entry, ctx);
  });
  reg.add("rate_limit", [](const config_node& entry, const layer_context& ctx) -> any_layer<Req, Resp> {
    const rate_limit_config cfg = parse_rate_limit_config(entry);
    return rate_limit_layer(cfg, ctx,
                            ctx.shared_state<rate_limit_state>(entry, [&] { return std::make_shared<rate_limit_state>(cfg); }));
  });
  reg.add("load_shed", [](const config_node& entry, const layer_context& ctx) -> any_layer<Req, Resp> {
    return load_shed_layer(parse_load_shed_config(entry), ctx);
  });
  // circuit_breaker: its state (and so its open/closed state) comes from the context, carried over a reload.
  reg.add("circuit_breaker", [](const config_node& entry, const layer_context& ctx) -> any_layer<Req, Resp> {
    const circuit_breaker_config cfg = parse_circuit_breaker_config(entry);
    return circuit_breaker_layer(
        ctx.shared_state<circuit_breaker_state>(entry, [&] { return make_circuit_breaker_state(cfg, ctx); }));
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
