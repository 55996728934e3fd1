#include <services/turretd/reload.hpp>

#include <algorithm>
#include <turret/logging.hpp>

#include <utility>
#include <chrono>

namespace turret::turretd {

namespace {

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

const listener_config* find_listener(const config& c, const std::string& name) {
  for (const auto& l : c.listeners)
    if (l.name == name) return &l;
  return nullptr;
}

bool same_limit(const kv::output_buffer_limit& a, const kv::output_buffer_limit& b) {
  return a.hard == b.hard && a.soft == b.soft && a.soft_seconds == b.soft_seconds;
}

void json_list(std::string& out, const std::vector<std::string>& v) {
  out += '[';
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) out += ", ";
    out += json_string(v[i]);
  }
  out += ']';
}

}  // namespace

double unix_time_now() noexcept {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string json_string(std::string_view s) { return '"' + json_escape(s) + '"'; }

config_diff diff_configs(const config& served, const config& next) {
  config_diff d;
  for (const auto& l : next.listeners) {
    const listener_config* old = find_listener(served, l.name);
    if (!old) d.listeners_added.push_back(l.name);
    else if (old->canonical != l.canonical) d.listeners_restarted.push_back(l.name);
    else d.listeners_unchanged.push_back(l.name);
  }
  for (const auto& l : served.listeners)
    if (!find_listener(next, l.name)) d.listeners_removed.push_back(l.name);

  for (const auto& [name, p] : next.pipelines) {
    auto it = served.pipelines.find(name);
    if (it == served.pipelines.end()) d.pipelines_added.push_back(name);
    else if (it->second.canonical() != p.canonical()) d.pipelines_changed.push_back(name);
    else d.pipelines_unchanged.push_back(name);
  }
  for (const auto& [name, p] : served.pipelines)
    if (next.pipelines.find(name) == next.pipelines.end()) d.pipelines_removed.push_back(name);

  for (const auto& p : next.plugins)
    if (!contains(served.plugins, p)) d.plugins_added.push_back(p);
  for (const auto& p : served.plugins)
    if (!contains(next.plugins, p)) d.plugins_removed.push_back(p);

  // Server-wide settings fixed for the process's life.
  auto fixed = [&](bool changed, std::string key, std::string what) {
    if (changed) d.not_applied.push_back(std::move(key) + ": " + std::move(what));
  };
  const std::string restart = "changed in the file; needs a restart (the running value stays)";
  const std::string config_set = "changed in the file; not applied by a reload (CONFIG SET it, or restart)";
  fixed(served.server.threads != next.server.threads, "server.threads", restart);
  fixed(served.server.shutdown_grace != next.server.shutdown_grace, "server.shutdown_grace", restart);
  fixed(served.logging.json != next.logging.json, "logging.format", restart);
  d.log_level_changed = served.logging.level != next.logging.level;
  const kv::store_options& a = served.store.options;
  const kv::store_options& b = next.store.options;
  fixed(served.store.kind != next.store.kind, "store.kind", restart);
  fixed(a.databases != b.databases, "store.databases", restart);
  fixed(a.requirepass != b.requirepass, "store.requirepass", config_set);
  fixed(a.notify_keyspace_events != b.notify_keyspace_events, "store.notify_keyspace_events", config_set);
  fixed(a.hz != b.hz, "store.hz", config_set);
  fixed(a.maxclients != b.maxclients || a.timeout != b.timeout || a.proto_max_bulk_len != b.proto_max_bulk_len ||
            a.client_query_buffer_limit != b.client_query_buffer_limit || !same_limit(a.obuf_pubsub, b.obuf_pubsub),
        "listeners[].resp (maxclients, timeout, proto_max_bulk_len, client_query_buffer_limit, "
        "client_output_buffer_limit_pubsub)",
        "server-wide client limits " + config_set);
  return d;
}

std::string reload_summary_json(const config_diff& d, const config& next) {
  std::string out = "{\"reloaded\": true, \"config\": " + json_string(next.source) + ", \"pipelines\": [";
  bool first = true;
  for (const auto& [name, p] : next.pipelines) {
    if (!first) out += ", ";
    first = false;
    const char* change = contains(d.pipelines_added, name)     ? "added"
                         : contains(d.pipelines_changed, name) ? "changed"
                                                               : "unchanged";
    out += "{\"name\": " + json_string(name) + ", \"layers\": " + std::to_string(p.size()) + ", \"change\": \"" +
           change + "\"}";
  }
  out += "], \"pipelines_removed\": ";
  json_list(out, d.pipelines_removed);
  const std::pair<const char*, const std::vector<std::string>*> listeners[] = {
      {"added", &d.listeners_added},
      {"removed", &d.listeners_removed},
      {"restarted", &d.listeners_restarted},
      {"unchanged", &d.listeners_unchanged}};
  out += ", \"listeners\": {";
  for (const auto& [key, list] : listeners) {
    if (list != &d.listeners_added) out += ", ";
    out += json_string(key) + ": ";
    json_list(out, *list);
  }
  out += "}, \"plugins_loaded\": ";
  json_list(out, d.plugins_added);
  out += ", \"not_applied\": ";
  json_list(out, d.not_applied);
  out += '}';
  return out;
}

}  // namespace turret::turretd
