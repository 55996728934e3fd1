#include <services/resp/resp_listener.hpp>
#include <services/turretd/frontend_registry.hpp>
#ifdef TURRET_HAVE_HTTP
#include <services/http/http_listener.hpp>
#endif
#ifdef TURRET_HAVE_GRPC
#include <services/grpc/grpc_listener.hpp>
#endif

#include <stdexcept>

namespace turret::turretd {

void frontend_registry::add(std::string name, frontend f) {
  if (name.empty() || !f.parse || !f.create) throw std::logic_error("frontend_registry::add: incomplete frontend");
  auto [it, inserted] = frontends_.emplace(std::move(name), std::move(f));
  if (!inserted) throw std::logic_error("frontend_registry::add: protocol '" + it->first + "' registered twice");
}

const frontend* frontend_registry::find(std::string_view name) const {
  auto it = frontends_.find(name);
  return it == frontends_.end() ? nullptr : &it->second;
}

std::vector<std::string> frontend_registry::names() const {
  std::vector<std::string> out;
  for (const auto& [n, f] : frontends_) out.push_back(n);
  return out;
}

void register_builtin_frontends(frontend_registry& reg) {
  reg.add("resp", resp_frontend::make_frontend());
#ifdef TURRET_HAVE_HTTP
  reg.add("http", http_frontend::make_frontend());
#endif
#ifdef TURRET_HAVE_GRPC
  reg.add("grpc", grpc_frontend::make_frontend());
#endif
}

}  // namespace turret::turretd
