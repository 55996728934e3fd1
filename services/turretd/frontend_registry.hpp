#pragma once
// turretd's protocols: the front-end contract's names as the composition root uses them, and the registration of
// every protocol turretd ships into the frontend_registry (<turret/kv/frontend_registry.hpp>; plugins add theirs).
#include <turret/kv/frontend.hpp>
#include <turret/kv/frontend_registry.hpp>

namespace turret::turretd {

using kv::frontend;
using kv::frontend_registry;
using kv::listener_env;
using server::listener;
using server::server_state;
using kv_pipeline = kv::pipeline_service;
using kv_pipeline_handle = kv::pipeline_handle_type;

/// Registers every protocol turretd ships: "resp", and "http" / "grpc" when their libraries are built
/// (TURRET_HAVE_HTTP / TURRET_HAVE_GRPC).
void register_builtin_frontends(frontend_registry& reg);

}  // namespace turret::turretd
