#pragma once
// layer_context: what a layer factory receives besides its config entry (Envoy's FactoryContext): the clock, the
// runtime, the metrics registry, the request type's command metadata, a logger and the name of the pipeline being
// built. Factories take everything from here; nothing is smuggled in through lambda captures, so the same factory
// serves turretd, a test with a manual clock, and a plugin.
//
// ```
// reg.add("fault", [](const config_node& entry, const layer_context& ctx) -> any_layer<Req, Resp> {
//   return fault_layer(parse_fault_config(entry), ctx);   // clock, metrics {pipeline=ctx.pipeline_name}
// });
// ```
//
// # When factories run
// A factory may run more than once for one entry: turretd validates its whole configuration first (also alone, with
// `--check-config`), then builds the pipelines it serves, and will build them again on a reload. A factory must
// therefore only validate and construct: no threads, sockets or timers started, no global state changed except
// registering metric families (idempotent by name). A layer that needs background work starts it when it wraps a
// service (and a runtime is present).
//
// # Lifetime and threads
// The context is only valid during the factory call; a layer keeps (copies) what it needs: the clock and the
// command table are shared_ptrs for that reason; the runtime and the registry outlive every pipeline built with
// them. The objects it refers to are thread-safe (clock, registry, logger) or immutable (command table).
#include <turret/clock.hpp>
#include <turret/config.hpp>
#include <turret/layer_state.hpp>

#include <memory>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

namespace spdlog {
class logger;
}

namespace turret {

class runtime;
namespace metrics {
class registry;
}

struct layer_context {
  /// Time source of time-based layers (timeouts, delays, rate limits): the real steady clock, a manual_clock in tests.
  std::shared_ptr<clock> clk = steady_clock();

  /// The worker threads the pipeline will run on. Null when the pipeline is built only to validate a configuration
  /// (turretd --check-config, and the validation of every configuration before it is served) and outside a server
  /// (unit tests): a factory must accept that.
  runtime* rt = nullptr;

  /// Where layers declare their metrics; null = metrics::default_registry() (see metrics()).
  metrics::registry* metric_registry = nullptr;

  /// The layer's logger; null = spdlog's default logger (see log()).
  std::shared_ptr<spdlog::logger> logger;

  /// Name of the pipeline being built: "default" for turretd's top-level `pipeline:`, else its key in `pipelines:`.
  /// Layers label their metrics with it ({pipeline="..."}).
  std::string pipeline_name = "default";

  /// Where stateful layers keep their state across configuration reloads (see layer_state.hpp); null = no
  /// carry-over (tests, --check-config): shared_state() then makes fresh state each time.
  std::shared_ptr<layer_state_store> states;

  /// The state of type T of the layer built from `entry`: carried over from the configuration served before when
  /// the entry is unchanged (same pipeline, same key path, same canonical YAML), else `make()` (a callable returning
  /// std::shared_ptr<T>). A stateful layer takes all its shared state from here, once, in its factory.
  template <class T, class Make>
  std::shared_ptr<T> shared_state(const config_node& entry, Make&& make) const {
    if (!states) return std::forward<Make>(make)();
    return states->get_or_create<T>(state_key(entry), std::forward<Make>(make));
  }
  /// The key shared_state() files `entry` under: pipeline name, key path and canonical YAML of the entry.
  std::string state_key(const config_node& entry) const;

  /// The registry to declare metrics in (never null).
  metrics::registry& metrics() const noexcept;
  /// The logger to log with.
  spdlog::logger& log() const noexcept;

  /// The request type's command metadata (turretd: the key-value core's command table: names, arity, flags, key
  /// positions), type-erased so that the framework does not depend on any request type. Null when none was given
  /// or when it is not a T. Layers that resolve command names in their config (a per-command limit) use it.
  template <class T>
  std::shared_ptr<const T> commands() const noexcept {
    if (!commands_ || *commands_type_ != typeid(T)) return nullptr;
    return std::shared_ptr<const T>(commands_, static_cast<const T*>(commands_.get()));
  }
  template <class T>
  void set_commands(std::shared_ptr<const T> table) noexcept {
    commands_type_ = &typeid(T);
    commands_ = std::move(table);
  }
  bool has_commands() const noexcept { return commands_ != nullptr; }

  /// Objects a host hands to the factories of the pipeline it builds, by type: what a configuration entry cannot
  /// name by itself. layer_registry::make() puts the registry building the entry here (a layer that builds
  /// sub-pipelines from its entry, as load_balance's endpoints, takes it with extension<layer_registry<Req, Resp>>());
  /// a host adds its own (an upstream backend: the endpoint set load_balance balances, see load_balance.hpp).
  /// Null when no T was given. The pointee must outlive the factory call only (a layer copies what it keeps).
  template <class T>
  std::shared_ptr<const T> extension() const noexcept {
    for (const auto& [type, object] : extensions_) {
      if (*type == typeid(T)) return std::static_pointer_cast<const T>(object);
    }
    return nullptr;
  }
  /// Sets (or replaces) the extension of type T.
  template <class T>
  void set_extension(std::shared_ptr<const T> object) {
    for (auto& [type, held] : extensions_) {
      if (*type == typeid(T)) {
        held = std::move(object);
        return;
      }
    }
    extensions_.emplace_back(&typeid(T), std::move(object));
  }

  /// A copy for the pipeline called `name`.
  layer_context for_pipeline(std::string name) const {
    layer_context c = *this;
    c.pipeline_name = std::move(name);
    return c;
  }

 private:
  std::shared_ptr<const void> commands_;
  const std::type_info* commands_type_ = &typeid(void);
  std::vector<std::pair<const std::type_info*, std::shared_ptr<const void>>> extensions_;
};

}  // namespace turret
