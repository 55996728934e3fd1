#pragma once
// Hot reload, the part that needs no server: what changed between the configuration being served and a new one,
// what a reload does about each change, and the summary it reports (POST /admin/reload's body, the log).
//
// What a reload does (server::reload() applies it; README "Operating turretd" and docs/architecture.md):
// - pipelines: every pipeline is rebuilt from the new file and swapped into its handle (the layers' state carries
//   over for unchanged entries: layer_state.hpp); a pipeline that is new gets a handle, one no listener names any
//   more is dropped. Applies live: in-flight requests finish on the pipeline they started on.
// - listeners, by name: a new name is started, a name that is gone is drained (stops accepting; its connections
//   finish what they are doing, idle ones close; what remains after server.shutdown_grace is closed), and a
//   listener whose entry changed in any way (protocol, address, `pipeline:`, protocol options) is restarted (drained,
//   then started anew with the new entry). Listener options are fixed for a listener's life: a change needs that
//   listener's restart, which the reload does; unchanged listeners keep their connections.
// - logging.level applies live; logging.format, server.threads, server.shutdown_grace and the store section
//   (databases, requirepass, notify_keyspace_events, hz, and the resp client limits that are server-wide) do not:
//   a change is reported as a warning (use CONFIG SET where Redis allows it, or restart) and the old value stays.
// - plugins: new entries are loaded (before the file is validated, so that it may name what they register); removed
//   entries stay loaded (code is never unloaded).
#include <services/turretd/config.hpp>

#include <string>
#include <vector>

namespace turret::turretd {

/// The changes between two valid configurations.
struct config_diff {
  // Listeners by name, in the order of the file they come from (removed: the old file).
  std::vector<std::string> listeners_added;
  std::vector<std::string> listeners_removed;
  std::vector<std::string> listeners_restarted;  ///< in both, entry changed
  std::vector<std::string> listeners_unchanged;
  // Pipelines by name (sorted).
  std::vector<std::string> pipelines_added;
  std::vector<std::string> pipelines_removed;
  std::vector<std::string> pipelines_changed;
  std::vector<std::string> pipelines_unchanged;
  /// Plugins the new file lists that the old one did not / the old one listed that the new one does not (the
  /// latter stay loaded).
  std::vector<std::string> plugins_added;
  std::vector<std::string> plugins_removed;
  /// Settings that changed in the file but cannot change while serving (one message each, naming the key).
  std::vector<std::string> not_applied;
  /// logging.level changed (applied live).
  bool log_level_changed = false;
};

/// Compares two valid configurations.
config_diff diff_configs(const config& served, const config& next);

/// The summary of a successful reload as JSON:
/// {"reloaded": true, "config": FILE, "pipelines": [{"name": N, "layers": K, "change": "added|changed|unchanged"}],
///  "pipelines_removed": [...], "listeners": {"added": [...], "removed": [...], "restarted": [...],
///  "unchanged": [...]}, "plugins_loaded": [...], "not_applied": [...]}
std::string reload_summary_json(const config_diff& d, const config& next);

/// Seconds since the epoch (the gauge turret_config_last_reload_success_timestamp_seconds).
double unix_time_now() noexcept;

/// `s` as a JSON string literal (quotes included; escaped by json_escape of <turret/logging.hpp>).
std::string json_string(std::string_view s);

}  // namespace turret::turretd
