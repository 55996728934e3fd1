// A turretd plugin built against the INSTALLED package (target turret::plugin: headers only, no turret library):
// proves that <turret/plugin.hpp>, <turret/kv/plugin.hpp> and the key-value contracts are installed and complete.
// It registers the layer `consumer_noop`, which wraps nothing. (Loading plugins into turretd is tested by
// tests/integration/test_plugins.py; this package has no turretd.)
#include <turret/config.hpp>
#include <turret/kv/plugin.hpp>
#include <turret/plugin.hpp>

namespace {

void register_noop(turret::plugin_context& ctx) {
  using layer_type = turret::kv::layer_registry_type::layer_type;
  ctx.get<turret::kv::layer_registry_type>().add(
      "consumer_noop", [](const turret::config_node& entry, const turret::layer_context&) -> layer_type {
        entry.reject_unknown_keys({"layer"});
        return layer_type::from_function([](auto inner) { return inner; });
      });
}

}  // namespace

TURRET_PLUGIN("consumer_noop", "0.1", register_noop)
