#pragma once
// layer_registry: named layer factories, and pipelines built from config.
//
// Registration is explicit (`reg.add("timeout", factory)`), never through static initialisers (the linker drops
// unused ones; Envoy needs a "force register" for that reason). turretd calls register_builtin_layers(reg)
// (<turret/middleware/builtin.hpp>) at start-up.
//
// A factory receives one pipeline entry, e.g. the node `{layer: timeout, duration: 2s}` (as a config_node, which
// knows its file and key path, e.g. "pipeline[0]"), and the layer_context of the pipeline being built (clock,
// runtime, metrics registry, command metadata, logger, pipeline name: see layer_context.hpp, which also says when
// and how often factories run). It validates the entry completely (unknown keys are errors), parses it into an
// immutable configuration object shared by every instance, and returns the layer. Factories run at start-up (and
// reload) only: they throw config_error.
//
// Pipeline config:
// ```yaml
// pipeline:            # ordered, FIRST ENTRY OUTERMOST
//   - layer: timeout
//     duration: 2s
//   - layer: concurrency_limit
//     max: 10000
// ```
#include <turret/any_service.hpp>
#include <turret/config.hpp>
#include <turret/layer_context.hpp>

#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace turret {

template <class Request, class Response>
class layer_registry {
 public:
  using layer_type = any_layer<Request, Response>;
  using service_type = any_service<Request, Response>;
  /// Builds a layer from one pipeline entry (a map whose key "layer" is the factory's name), with the context of
  /// the pipeline being built. Throws config_error.
  using factory = std::function<layer_type(const config_node& entry, const layer_context& ctx)>;

  /// Registers `f` under `name`. A second registration of one name is a programming error (std::logic_error).
  void add(std::string name, factory f) {
    if (name.empty() || !f) throw std::logic_error("layer_registry::add: empty name or factory");
    auto [it, inserted] = factories_.emplace(std::move(name), std::move(f));
    if (!inserted) throw std::logic_error("layer_registry::add: layer '" + it->first + "' registered twice");
  }

  bool contains(std::string_view name) const { return factories_.find(name) != factories_.end(); }

  /// Registered names, sorted.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(factories_.size());
    for (const auto& [name, f] : factories_) out.push_back(name);
    return out;
  }

  /// Builds the layer of one entry. Errors: entry not a map, no `layer` key, unknown layer name (the message lists
  /// the registered names), and whatever the factory rejects.
  layer_type make(const config_node& entry, const layer_context& ctx = {}) const {
    if (!entry.is_map()) entry.fail("expected a mapping with a 'layer' key, e.g. {layer: timeout, duration: 2s}");
    const config_node name_node = entry.required("layer");
    const std::string name = name_node.as_string();
    auto it = factories_.find(name);
    if (it == factories_.end()) {
      std::string known;
      for (const auto& [n, f] : factories_) known += (known.empty() ? "" : ", ") + n;
      name_node.fail("unknown layer '" + name + "' (registered: " + (known.empty() ? "none" : known) + ")");
    }
    // The factory sees this registry as an extension of its context (layers that build sub-pipelines use it). Not
    // owned: the registry outlives every factory call it makes.
    layer_context with_registry = ctx;
    with_registry.set_extension<layer_registry>(std::shared_ptr<const layer_registry>(std::shared_ptr<const void>(), this));
    return it->second(entry, with_registry);
  }

  /// Parses every entry of `pipeline_list` (a YAML list; null = empty) into layers, validating all of them.
  std::vector<layer_type> make_all(const config_node& pipeline_list, const layer_context& ctx = {}) const {
    pipeline_list.expect_sequence();
    std::vector<layer_type> layers;
    if (pipeline_list.is_null()) return layers;
    layers.reserve(pipeline_list.size());
    for (std::size_t i = 0; i < pipeline_list.size(); ++i) layers.push_back(make(pipeline_list.at(i), ctx));
    return layers;
  }

  /// Wraps `inner` in the pipeline's layers, the FIRST entry OUTERMOST.
  service_type build(const config_node& pipeline_list, service_type inner, const layer_context& ctx = {}) const {
    return wrap_all(make_all(pipeline_list, ctx), std::move(inner));
  }

  /// As above, from a raw YAML node; errors name `source` and `path` (default "pipeline").
  service_type build(const YAML::Node& pipeline_list, service_type inner, const config_source& source = {},
                     std::string path = "pipeline", const layer_context& ctx = {}) const {
    return build(config_node(pipeline_list, std::make_shared<const config_source>(source), std::move(path)),
                 std::move(inner), ctx);
  }

  /// Applies already-built layers (first outermost).
  static service_type wrap_all(const std::vector<layer_type>& layers, service_type inner) {
    for (auto it = layers.rbegin(); it != layers.rend(); ++it) inner = it->wrap(std::move(inner));
    return inner;
  }

 private:
  std::map<std::string, factory, std::less<>> factories_;
};

}  // namespace turret
