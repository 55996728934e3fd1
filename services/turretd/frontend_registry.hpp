#pragma once
// frontend_registry: protocols by the name used in config (`listeners[].protocol`). Registration is explicit
// (`reg.add("resp", resp_frontend::make_frontend())`), never through static initialisers.
#include <turret/kv/frontend.hpp>

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace turret::turretd {

// The front-end contract's names, as turretd (the composition root) uses them.
using kv::frontend;
using kv::listener_env;
using server::listener;
using server::server_state;
using kv_pipeline = kv::pipeline_service;
using kv_pipeline_handle = kv::pipeline_handle_type;

class frontend_registry {
 public:
  /// Registers a protocol. A second registration of a name is a programming error (std::logic_error).
  void add(std::string name, frontend f);
  /// The protocol `name`, or nullptr.
  const frontend* find(std::string_view name) const;
  /// Registered names, sorted.
  std::vector<std::string> names() const;

 private:
  std::map<std::string, frontend, std::less<>> frontends_;
};

/// Registers every protocol turretd ships: "resp", and "http" / "grpc" when their libraries are built
/// (TURRET_HAVE_HTTP / TURRET_HAVE_GRPC).
void register_builtin_frontends(frontend_registry& reg);

}  // namespace turret::turretd
