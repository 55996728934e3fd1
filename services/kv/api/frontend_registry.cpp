#include <turret/kv/frontend_registry.hpp>

#include <stdexcept>

namespace turret::kv {

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

}  // namespace turret::kv
