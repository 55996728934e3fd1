#include <services/kv/store.hpp>
#include <services/resp/resp_options.hpp>
#include <services/turretd/config.hpp>
#include <services/turretd/plugins.hpp>
#include <turret/kv/command_table.hpp>
#include <turret/metrics.hpp>
#include <turret/middleware/builtin.hpp>
#include <turret/middleware/load_balance.hpp>

#include <charconv>
#include <set>
#include <thread>
#include <stdexcept>

#include <sched.h>

namespace turret::turretd {

namespace {

constexpr std::string_view default_yaml = R"(# turretd embedded default configuration (see deploy/turret.yaml for every option)
server:
  threads: 0              # 0 = auto: one per available core, less one (2 cores: 1)
  shutdown_grace: 10s
logging:
  level: info             # trace|debug|info|warn|error
  format: text            # text|json
listeners:
  - name: resp
    protocol: resp
    address: 127.0.0.1:6379
  - name: http
    protocol: http
    address: 127.0.0.1:8080
  - name: grpc
    protocol: grpc
    address: 127.0.0.1:50051
pipeline:                 # ordered, outermost first; each entry names a registered layer
  - layer: timeout
    duration: 2s
  - layer: concurrency_limit
    max: 10000
store:
  kind: memory
  databases: 16
)";

server_section parse_server(const config_node& n) {
  server_section s;
  if (n.is_null()) return s;
  n.expect_map();
  n.reject_unknown_keys({"threads", "shutdown_grace"});
  s.threads = static_cast<std::size_t>(n.get_int("threads", 0, 0, 1024));
  s.shutdown_grace = n.get_duration("shutdown_grace", std::chrono::seconds(10));
  return s;
}

store_section parse_store(const config_node& n) {
  store_section s;
  if (n.is_null()) return s;
  n.expect_map();
  s.kind = n.get_string("kind", "memory");
  if (s.kind == "upstream") {
    s.upstream = upstream::parse_upstream_options(n);
    return s;
  }
  n.reject_unknown_keys({"kind", "databases", "requirepass", "notify_keyspace_events", "hz"});
  if (s.kind != "memory") n.child("kind").fail("unknown store kind '" + s.kind + "' (supported: memory, upstream)");
  s.options.databases = static_cast<int>(n.get_int("databases", 16, 1, 1024));
  s.options.requirepass = n.get_string("requirepass", "");
  s.options.notify_keyspace_events = n.get_string("notify_keyspace_events", "");
  if (kv::keyspace_events_from_string(s.options.notify_keyspace_events) < 0)
    n.child("notify_keyspace_events")
        .fail("invalid event classes '" + s.options.notify_keyspace_events +
              "' (Redis letters: K E g $ l s h z x e t m d n A)");
  s.options.hz = static_cast<int>(n.get_int("hz", 10, 1, 500));
  return s;
}

/// RESP client limits are server-wide parameters of the store (CONFIG GET/SET): copy them there.
void apply_resp_limits(const resp_frontend::resp_options& o, kv::store_options& so) {
  so.maxclients = o.maxclients;
  so.timeout = std::chrono::duration_cast<std::chrono::seconds>(o.timeout).count();
  so.proto_max_bulk_len = static_cast<long long>(o.proto_max_bulk_len);
  so.client_query_buffer_limit = static_cast<long long>(o.client_query_buffer_limit);
  so.obuf_pubsub.hard = o.pubsub_limit.hard;
  so.obuf_pubsub.soft = o.pubsub_limit.soft;
  so.obuf_pubsub.soft_seconds = o.pubsub_limit.soft_seconds.count();
}

/// The key of a mapping entry as a config_error position.
[[noreturn]] void fail_at_key(const config_node& map, const YAML::Node& key, const std::string& path,
                              const std::string& message) {
  const YAML::Mark m = key.Mark();
  throw config_error(map.source().name, m.line + 1, m.column + 1, path, message);
}

/// The key of a mapping entry as a string: a key that is not a scalar (`{[a]: 1}`, `{{a: 1}: 2}`) is a config error.
std::string key_string(const config_node& map, const YAML::Node& key) {
  if (!key.IsScalar()) fail_at_key(map, key, map.path(), "expected a string key, not a sequence or mapping");
  return key.Scalar();
}

bool valid_pipeline_name(std::string_view name) noexcept {
  if (name.empty()) return false;
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

/// `pipeline:` (the pipeline "default") and `pipelines: {NAME: [entries]}`, validated by building their layers with
/// a validation context.
std::map<std::string, pipeline_config, std::less<>> parse_pipelines(const config_node& root, const registries& regs) {
  std::map<std::string, pipeline_config, std::less<>> out;
  const bool top = root.has("pipeline");
  if (top) root.child("pipeline").expect_sequence();
  // (A missing key is an invalid YAML node, which yaml-cpp refuses to be assigned to: store a null node instead.)
  out.emplace(std::string(default_pipeline),
              pipeline_config{std::string(default_pipeline),
                              top ? root.child("pipeline") : config_node(YAML::Node(), root.source_ptr(), "pipeline")});
  if (root.has("pipelines")) {
    const config_node ps = root.child("pipelines");
    ps.expect_map();
    if (!ps.is_null()) {
      for (auto it = ps.yaml().begin(); it != ps.yaml().end(); ++it) {
        const std::string name = key_string(ps, it->first);
        const std::string path = ps.path() + "." + name;
        if (!valid_pipeline_name(name))
          fail_at_key(ps, it->first, path,
                      "invalid pipeline name '" + name + "' (letters, digits, '_', '-' and '.' only)");
        if (name == default_pipeline && top)
          fail_at_key(ps, it->first, path,
                      "the pipeline 'default' is defined twice: by the top-level 'pipeline:' and here (keep one)");
        const config_node entries = ps.child(name);
        entries.expect_sequence();
        out.erase(name);
        out.emplace(name, pipeline_config{name, entries});
      }
    }
  }
  // Validation: every factory runs once, without a runtime and into a scratch metrics registry.
  metrics::registry scratch;
  layer_context ctx;
  ctx.metric_registry = &scratch;
  if (regs.commands) ctx.set_commands(regs.commands);
  for (const auto& [name, p] : out) build_layers(p, regs, ctx);
  return out;
}

bool same_server_wide_limits(const resp_frontend::resp_options& a, const resp_frontend::resp_options& b) {
  return a.maxclients == b.maxclients && a.timeout == b.timeout && a.proto_max_bulk_len == b.proto_max_bulk_len &&
         a.client_query_buffer_limit == b.client_query_buffer_limit && a.pubsub_limit == b.pubsub_limit;
}

}  // namespace

std::size_t auto_worker_threads() noexcept {
  std::size_t cores = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) cores = static_cast<std::size_t>(CPU_COUNT(&set));
  if (cores == 0) cores = std::thread::hardware_concurrency();
  return cores > 1 ? cores - 1 : 1;
}

std::string_view default_config_yaml() noexcept {
  // The http/grpc listeners only when those front ends are built into this turretd.
  static const std::string text = [] {
    std::string t(default_yaml);
    auto drop = [&t](std::string_view block) {
      if (auto at = t.find(block); at != std::string::npos) t.erase(at, block.size());
    };
    (void)drop;  // unused when both front ends are built
#ifndef TURRET_HAVE_HTTP
    drop("  - name: http\n    protocol: http\n    address: 127.0.0.1:8080\n");
#endif
#ifndef TURRET_HAVE_GRPC
    drop("  - name: grpc\n    protocol: grpc\n    address: 127.0.0.1:50051\n");
#endif
    return t;
  }();
  return text;
}

std::shared_ptr<registries> make_builtin_registries() {
  auto r = std::make_shared<registries>();
  register_builtin_frontends(r->frontends);
  register_builtin_layers(r->layers);
  r->commands = kv::command_table::make_default();
  return r;
}

boost::asio::ip::tcp::endpoint parse_listen_address(std::string_view address) {
  const auto colon = address.rfind(':');
  if (colon == std::string_view::npos)
    throw std::invalid_argument("invalid address '" + std::string(address) + "' (expected host:port, e.g. 127.0.0.1:6379)");
  std::string_view host = address.substr(0, colon);
  const std::string_view port_text = address.substr(colon + 1);
  unsigned port = 0;
  auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || p != port_text.data() + port_text.size() || port > 65535)
    throw std::invalid_argument("invalid port '" + std::string(port_text) + "' in address '" + std::string(address) +
                                "' (0-65535; 0 = any free port)");
  boost::asio::ip::address ip;
  if (host.empty() || host == "*") {
    ip = boost::asio::ip::address_v4::any();
  } else if (host == "localhost") {
    ip = boost::asio::ip::address_v4::loopback();
  } else {
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    boost::system::error_code ec2;
    ip = boost::asio::ip::make_address(std::string(host), ec2);
    if (ec2)
      throw std::invalid_argument("invalid host '" + std::string(host) + "' in address '" + std::string(address) +
                                  "' (an IPv4 or [IPv6] address, localhost or *)");
  }
  return {ip, static_cast<unsigned short>(port)};
}

std::shared_ptr<const config> parse_config(const config_node& root, const registries& regs) {
  auto cfg = std::make_shared<config>();
  cfg->source = root.source().name;
  root.expect_map();
  root.reject_unknown_keys({"server", "logging", "listeners", "pipeline", "pipelines", "store", "plugins"});
  for (auto& e : plugin_entries(root)) cfg->plugins.push_back(std::move(e.path));

  cfg->server = parse_server(root.child("server"));
  if (root.has("logging") && !root.child("logging").is_null()) cfg->logging = parse_logging_config(root.child("logging"));
  cfg->store = parse_store(root.child("store"));
  if (cfg->store.kind == "upstream" && !cfg->store.upstream.pipeline.is_null()) {
    // The endpoints' pipeline, validated like the others (its load_balance takes the endpoint the backend provides).
    metrics::registry scratch;
    layer_context ctx;
    ctx.metric_registry = &scratch;
    if (regs.commands) ctx.set_commands(regs.commands);
    auto provider = std::make_shared<lb_endpoint_provider<kv::request, kv::response>>();
    provider->has = [](std::string_view set) { return set.empty(); };
    ctx.set_extension<lb_endpoint_provider<kv::request, kv::response>>(provider);
    regs.layers.make_all(cfg->store.upstream.pipeline, ctx.for_pipeline("upstream"));
  }
  cfg->pipelines = parse_pipelines(root, regs);

  // --- listeners ---
  if (!root.has("listeners")) root.fail("missing required key 'listeners' (at least one listener is required)");
  const config_node ls = root.child("listeners");
  ls.expect_sequence();
  if (ls.is_null() || ls.size() == 0) ls.fail("at least one listener is required");
  std::set<std::string, std::less<>> names;
  std::set<std::pair<std::string, unsigned short>> addresses;
  const resp_frontend::resp_options* first_resp = nullptr;
  for (std::size_t i = 0; i < ls.size(); ++i) {
    const config_node e = ls.at(i);
    e.expect_map();
    listener_config l;
    const config_node proto_node = e.required("protocol");
    l.protocol = proto_node.as_string();
    const frontend* fe = regs.frontends.find(l.protocol);
    if (!fe) {
      std::string known;
      for (const auto& n : regs.frontends.names()) known += (known.empty() ? "" : ", ") + n;
      proto_node.fail("unknown protocol '" + l.protocol + "' (registered: " + known + ")");
    }
    // Unknown keys: the common ones plus what the protocol declares.
    for (auto it = e.yaml().begin(); it != e.yaml().end(); ++it) {
      const std::string key = key_string(e, it->first);
      if (key == "name" || key == "protocol" || key == "address" || key == "pipeline") continue;
      bool ok = false;
      for (const auto& k : fe->keys) ok = ok || k == key;
      if (!ok) {
        std::string allowed = "name, protocol, address, pipeline";
        for (const auto& k : fe->keys) allowed += ", " + k;
        const YAML::Mark m = it->first.Mark();
        throw config_error(e.source().name, m.line + 1, m.column + 1, e.path() + "." + key,
                           "unknown key '" + key + "' for protocol " + l.protocol + " (allowed: " + allowed + ")");
      }
    }
    const config_node name_node = e.required("name");
    l.name = name_node.as_string();
    if (l.name.empty()) name_node.fail("must not be empty");
    if (!names.insert(l.name).second) name_node.fail("duplicate listener name '" + l.name + "'");
    const config_node addr_node = e.required("address");
    l.address = addr_node.as_string();
    try {
      l.endpoint = parse_listen_address(l.address);
    } catch (const std::invalid_argument& x) {
      addr_node.fail(x.what());
    }
    if (l.endpoint.port() != 0 && !addresses.emplace(l.endpoint.address().to_string(), l.endpoint.port()).second)
      addr_node.fail("address " + l.address + " is used by another listener");
    if (e.has("pipeline")) {
      const config_node p = e.required("pipeline");
      l.pipeline = p.as_string();
      if (cfg->pipelines.find(l.pipeline) == cfg->pipelines.end()) {
        std::string known;
        for (const auto& [n, pc] : cfg->pipelines) known += (known.empty() ? "" : ", ") + n;
        p.fail("unknown pipeline '" + l.pipeline + "' (defined: " + known + ")");
      }
    }
    l.options = fe->parse(e);
    l.canonical = canonical_text(e.yaml());
    if (l.protocol == "resp") {
      const auto* o = std::any_cast<resp_frontend::resp_options>(&l.options);
      if (o) {
        if (!first_resp) {
          first_resp = o;
          apply_resp_limits(*o, cfg->store.options);
          cfg->store.options.port = l.endpoint.port();
          cfg->store.options.bind = l.endpoint.address().to_string();
        } else if (!same_server_wide_limits(*o, *first_resp)) {
          e.child("resp").fail(
              "client limits (maxclients, timeout, proto_max_bulk_len, client_query_buffer_limit, "
              "client_output_buffer_limit_pubsub) are server-wide, as in Redis: every resp listener must use the "
              "same values");
        }
      }
    }
    cfg->listeners.push_back(std::move(l));
  }

  return cfg;
}

std::string pipeline_config::canonical() const { return canonical_text(entries.yaml()); }

const pipeline_config& config::pipeline(std::string_view name) const {
  auto it = pipelines.find(name);
  if (it == pipelines.end()) throw std::out_of_range("no pipeline '" + std::string(name) + "'");
  return it->second;
}

std::vector<kv_layer> build_layers(const pipeline_config& p, const registries& regs, const layer_context& ctx) {
  if (p.entries.is_null()) return {};
  return regs.layers.make_all(p.entries, ctx.for_pipeline(p.name));
}

std::shared_ptr<const config> load_config(const std::string& file_name, registries& regs) {
  const config_node root = load_config_file(file_name);
  if (root.is_map()) load_plugins(root, regs);  // (anything else: parse_config reports it)
  return parse_config(root, regs);
}

std::shared_ptr<const config> parse_config_string(std::string_view yaml, const registries& regs, std::string name) {
  return parse_config(load_config_string(yaml, std::move(name)), regs);
}

}  // namespace turret::turretd
