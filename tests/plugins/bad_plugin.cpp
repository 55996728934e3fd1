// Plugins that turretd must refuse, each with a clear error naming its path (tests/integration/test_plugins.py).
// One source, one shared object per case (tests/plugins/CMakeLists.txt defines exactly one of):
//   BAD_PLUGIN_NO_ENTRY    exports no turret_plugin_entry (any shared object that is not a turret plugin)
//   BAD_PLUGIN_WRONG_ABI   built for another plugin ABI (TURRET_PLUGIN_ABI_VERSION + 1)
//   BAD_PLUGIN_UNRESOLVED  needs a turret symbol turretd does not define (as a plugin built against another turret)
//   BAD_PLUGIN_DUPLICATE   registers a layer name turretd already has ("timeout")
#include <turret/kv/plugin.hpp>
#include <turret/plugin.hpp>

#if defined(BAD_PLUGIN_NO_ENTRY)

extern "C" __attribute__((visibility("default"))) int not_a_turret_plugin() { return 42; }

#elif defined(BAD_PLUGIN_WRONG_ABI)

namespace {
void register_nothing(turret::plugin_context&) {}
}  // namespace

extern "C" __attribute__((visibility("default"))) const turret_plugin_info* turret_plugin_entry() {
  static const turret_plugin_info info{TURRET_PLUGIN_ABI_VERSION + 1, "wrong_abi", "1.0", &register_nothing};
  return &info;
}

#elif defined(BAD_PLUGIN_UNRESOLVED)

namespace turret {
void function_this_turret_does_not_have(plugin_context&);  // declared, defined nowhere
}  // namespace turret

namespace {
void register_unresolved(turret::plugin_context& ctx) { turret::function_this_turret_does_not_have(ctx); }
}  // namespace

TURRET_PLUGIN("unresolved", "1.0", register_unresolved)

#elif defined(BAD_PLUGIN_DUPLICATE)

namespace {
void register_duplicate(turret::plugin_context& ctx) {
  using layer_type = turret::kv::layer_registry_type::layer_type;
  ctx.get<turret::kv::layer_registry_type>().add(
      "timeout", [](const turret::config_node&, const turret::layer_context&) -> layer_type {
        return layer_type::from_function([](auto s) { return s; });
      });
}
}  // namespace

TURRET_PLUGIN("duplicate", "1.0", register_duplicate)

#else
#error "define one BAD_PLUGIN_* case"
#endif
