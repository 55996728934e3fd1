#pragma once
// turretd's configuration: the whole YAML document parsed and validated once at start-up into an immutable object.
//
// ```yaml
// server:
//   threads: 0              # 0 = auto: one per available core, less one (2 cores: 1)
//   shutdown_grace: 10s
// logging:
//   level: info             # trace|debug|info|warn|error
//   format: text            # text|json
// listeners:
//   - name: resp
//     protocol: resp        # a name registered in the frontend_registry
//     address: 127.0.0.1:6379
//     resp: {...}           # protocol-specific options (services/resp/resp_options.hpp)
//     pipeline: NAME        # the pipeline of this listener's requests (default: the pipeline called "default")
// pipeline:                 # the pipeline called "default": ordered, outermost first; each entry names a layer
//   - layer: timeout
//     duration: 2s
//   - layer: concurrency_limit
//     max: 10000
// pipelines:                # more pipelines, by name (a "default" here replaces the top-level `pipeline:`)
//   chaos:
//     - layer: fault
//       abort: {percent: 10, error: unavailable}
// store:
//   kind: memory
//   databases: 16
//   requirepass: ""
//   notify_keyspace_events: ""
//   hz: 10
// plugins:                  # shared objects loaded before anything else is parsed (relative paths: from the
//   - plugins/libturret_hello.so   # config file's directory); they register layers and protocols by name
// ```
// deploy/turret.yaml documents every option. Errors are turret::config_error: "file:line:col: key.path: message".
// Unknown keys are errors everywhere; so are a listener naming a pipeline that is not defined, and a "default"
// pipeline defined both ways.
//
// Pipelines are validated here by building their layers once with a validation context (no runtime, a scratch
// metrics registry: see turret/layer_context.hpp); the server builds the layers it serves with build_layers().
//
// Plugins (<turret/plugin.hpp>): load_config() loads the document's `plugins:` into the registries first
// (load_plugins()), so that pipelines and listeners can name what they register; parse_config() and
// parse_config_string() only validate the list (they never load code: the fuzzer and the unit tests use them).
#include <services/turretd/frontend_registry.hpp>
#include <turret/kv/local.hpp>
#include <turret/kv/plugin.hpp>
#include <turret/kv/request.hpp>
#include <turret/upstream/upstream_options.hpp>
#include <turret/any_service.hpp>
#include <turret/config.hpp>
#include <turret/layer_context.hpp>
#include <turret/logging.hpp>
#include <turret/plugin.hpp>
#include <turret/registry.hpp>

#include <boost/asio/ip/tcp.hpp>

#include <any>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace turret::turretd {

using kv_layer_registry = kv::layer_registry_type;
using kv_layer = any_layer<kv::request, kv::response>;

/// `threads: 0`: one worker per core the process may run on (its CPU affinity, as a container's cpuset limits it),
/// less one, at least one: 1 on 2 cores, 3 on 4, 15 on 16. The core left over is for the kernel's network processing
/// (softirqs; on this project's 2-core reference machine about two thirds of a request's CPU is in the kernel) and for
/// co-located processes. Measured on 2 cores (bench/bench_resp.sh against bench/bench_resp.sh --threads 2, figures in
/// docs/architecture.md): one worker costs less CPU per request at -P 1 and -P 16; two give ~5% more throughput at
/// -P 16.
std::size_t auto_worker_threads() noexcept;

struct server_section {
  std::size_t threads = 0;  ///< as configured: 0 = auto (auto_worker_threads())
  duration shutdown_grace = std::chrono::seconds(10);
};

struct listener_config {
  std::string name;
  std::string protocol;
  std::string address;                     ///< as written
  boost::asio::ip::tcp::endpoint endpoint; ///< resolved (port 0 = any free port)
  std::any options;                        ///< what the protocol's frontend::parse returned
  std::string pipeline = "default";        ///< name of the pipeline its requests go through (defined: checked)
  /// The entry's canonical_text() (<turret/config.hpp>): a reload restarts the listener when it differs.
  std::string canonical;
};

/// The name of the top-level `pipeline:`.
inline constexpr std::string_view default_pipeline = "default";

/// One named pipeline: its entries as written (validated). Layers are built from them by build_layers().
struct pipeline_config {
  std::string name;
  config_node entries;                     ///< the YAML list, first entry outermost (null: no layers)
  std::size_t size() const noexcept { return entries.is_null() ? 0 : entries.size(); }
  /// The entries' canonical_text() (what a reload compares to tell a changed pipeline from an unchanged one).
  std::string canonical() const;
};

struct store_section {
  std::string kind = "memory";             ///< memory | upstream
  upstream::upstream_options upstream;     ///< kind upstream: mode, endpoints, connections, the endpoints' pipeline
  kv::store_options options;               ///< databases, requirepass, notify-keyspace-events, hz, client limits
};

struct config {
  std::string source;                      ///< file name, or "<embedded>"
  server_section server;
  logging_config logging;
  std::vector<listener_config> listeners;
  /// Every pipeline by name; "default" is always there (empty when neither `pipeline:` nor pipelines.default).
  std::map<std::string, pipeline_config, std::less<>> pipelines;
  store_section store;
  /// `plugins:` as resolved paths (absolute, or relative to the working directory), in order.
  std::vector<std::string> plugins;

  const pipeline_config& pipeline(std::string_view name = default_pipeline) const;
};

/// The registries config parsing resolves names in.
struct registries {
  frontend_registry frontends;
  kv_layer_registry layers;
  /// Command metadata for validating pipelines (layer_context::commands); may be null.
  std::shared_ptr<const kv::command_table> commands;
  /// The plugins loaded into these registries, in load order (never unloaded).
  std::vector<loaded_plugin> plugins;
};
/// Registries with everything turretd ships (frontends "resp", "http", "grpc"; layers "timeout",
/// "concurrency_limit", "fault"; the default command table).
std::shared_ptr<registries> make_builtin_registries();

/// Loads the plugins that `root`'s `plugins:` lists into `regs`, in order (a path already loaded into `regs` is
/// skipped): each is offered regs.layers and regs.frontends. Throws config_error at the entry, naming the path:
/// "file:line:col: plugins[0]: cannot load plugin /x/libx.so: ...: cannot open shared object file: ...".
void load_plugins(const config_node& root, registries& regs);

/// Builds the layers of pipeline `p` (first = outermost), calling each entry's factory with `ctx` for the pipeline
/// `p.name` (ctx.pipeline_name is set). Throws config_error.
std::vector<kv_layer> build_layers(const pipeline_config& p, const registries& regs, const layer_context& ctx);

/// The embedded default configuration (the example): RESP on 127.0.0.1:6379, timeout 2s,
/// concurrency_limit 10000, 16 databases; plus HTTP on 127.0.0.1:8080 and gRPC on 127.0.0.1:50051 when those
/// front ends are built in.
std::string_view default_config_yaml() noexcept;

/// Parses and validates a whole document (plugins: validated, not loaded). Throws config_error.
std::shared_ptr<const config> parse_config(const config_node& root, const registries& regs);
/// Loads a file, loads its plugins into `regs` (load_plugins) and validates it (syntax errors too are config_error
/// with file:line).
std::shared_ptr<const config> load_config(const std::string& file_name, registries& regs);
/// Parses YAML text (`name` is what errors call it). Plugins are validated, not loaded.
std::shared_ptr<const config> parse_config_string(std::string_view yaml, const registries& regs,
                                                  std::string name = "<embedded>");

/// "127.0.0.1:6379", "[::1]:6379", "0.0.0.0:0", "localhost:6379", "*:6379" -> endpoint. Throws std::invalid_argument.
boost::asio::ip::tcp::endpoint parse_listen_address(std::string_view address);

}  // namespace turret::turretd
