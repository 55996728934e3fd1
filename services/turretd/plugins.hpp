#pragma once
// The `plugins:` list of turretd's configuration (load_plugins() in config.hpp loads it).
#include <turret/config.hpp>

#include <string>
#include <vector>

namespace turret::turretd {

struct plugin_entry {
  config_node node;  ///< the list entry (errors point at it)
  std::string path;  ///< resolved: absolute as written, else relative to the directory of the config file
};

/// Validates `root`'s `plugins:` (absent or null: none; else a list of non-empty paths, none twice) and resolves each
/// path. Throws config_error.
std::vector<plugin_entry> plugin_entries(const config_node& root);

}  // namespace turret::turretd
