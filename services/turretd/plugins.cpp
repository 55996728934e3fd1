#include <services/turretd/config.hpp>
#include <services/turretd/plugins.hpp>

#include <filesystem>
#include <set>

namespace turret::turretd {

std::vector<plugin_entry> plugin_entries(const config_node& root) {
  std::vector<plugin_entry> out;
  if (!root.has("plugins")) return out;
  const config_node list = root.child("plugins");
  list.expect_sequence();
  if (list.is_null()) return out;
  const std::filesystem::path base = std::filesystem::path(root.source().name).parent_path();
  std::set<std::string> seen;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const config_node e = list.at(i);
    const std::string written = e.as_string();
    if (written.empty()) e.fail("expected the path of a plugin (a shared object, e.g. plugins/libturret_hello.so)");
    std::filesystem::path p(written);
    if (p.is_relative()) p = base / p;
    std::string path = p.lexically_normal().string();
    if (!seen.insert(path).second) e.fail("plugin " + path + " is listed twice");
    out.push_back({e, std::move(path)});
  }
  return out;
}

void load_plugins(const config_node& root, registries& regs) {
  for (const auto& [node, path] : plugin_entries(root)) {
    bool loaded = false;
    for (const auto& p : regs.plugins) loaded = loaded || p.path == path;
    if (loaded) continue;
    plugin_context ctx;
    ctx.provide(regs.layers);
    ctx.provide(regs.frontends);
    try {
      regs.plugins.push_back(load_plugin(path, ctx));
    } catch (const plugin_error& e) {
      node.fail(e.what());
    }
  }
}

}  // namespace turret::turretd
