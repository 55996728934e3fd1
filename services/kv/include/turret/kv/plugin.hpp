#pragma once
// What a key-value plugin registers into (turretd offers both to every plugin it loads; <turret/plugin.hpp> is the
// plugin contract itself):
//
//   ctx.get<kv::layer_registry_type>()   the layers of turretd's pipelines (`- layer: NAME`): a factory receives
//                                        the entry and the pipeline's layer_context, and returns an any_layer
//   ctx.get<kv::frontend_registry>()     turretd's listener protocols (`protocol: NAME`): a kv::frontend
//                                        (<turret/kv/frontend.hpp>)
#include <turret/kv/frontend_registry.hpp>
#include <turret/kv/request.hpp>
#include <turret/plugin.hpp>
#include <turret/registry.hpp>

namespace turret::kv {

/// The registry of the layers of key-value pipelines.
using layer_registry_type = turret::layer_registry<request, response>;

}  // namespace turret::kv
