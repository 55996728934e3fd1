#pragma once
// frontend_registry: key-value protocols by the name used in config (`listeners[].protocol`). Registration is
// explicit (`reg.add("resp", resp_frontend::make_frontend())`), never through static initialisers. turretd registers
// its own protocols into one at start-up and offers it to plugins (<turret/kv/plugin.hpp>), so a plugin's protocol
// is configured like a built-in one.
#include <turret/kv/frontend.hpp>

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace turret::kv {

class frontend_registry {
 public:
  /// Registers a protocol. An incomplete frontend (no parse or create) or a second registration of a name is a
  /// programming error (std::logic_error).
  void add(std::string name, frontend f);
  /// The protocol `name`, or nullptr.
  const frontend* find(std::string_view name) const;
  /// Registered names, sorted.
  std::vector<std::string> names() const;

 private:
  std::map<std::string, frontend, std::less<>> frontends_;
};

}  // namespace turret::kv
