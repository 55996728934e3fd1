#pragma once
// Front ends of turretd: a listener accepts connections of one protocol on one address and sends every request
// through the pipeline into the key-value core. Protocols are registered BY NAME in a frontend_registry
// (frontend_registry.hpp): "resp" now, "http" and "grpc" later. This header is the whole contract between
// turretd and a front end; it is header-only so front-end libraries need not link turretd.
//
// Life cycle (driven by turretd's server, see server.hpp):
//   1. config: frontend::parse validates the protocol-specific keys of a listener entry (check-config runs this
//      alone) and returns the parsed options;
//   2. frontend::create builds the listener from a listener_env; start() binds and begins accepting;
//   3. graceful shutdown (turret::shutdown_coordinator): stop_accepting() closes the acceptor and asks every
//      connection to finish its in-flight request(s) and close (idle ones close at once); each open connection is
//      counted in the coordinator's in_flight(); after shutdown_grace, force_close() closes what remains.
#include <services/kv/kv_service.hpp>
#include <turret/any_service.hpp>
#include <turret/config.hpp>
#include <turret/pipeline_handle.hpp>
#include <turret/runtime.hpp>

#include <boost/asio/ip/tcp.hpp>

#include <any>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace turret::kv {
class store;
}

namespace turret::turretd {

/// A configured pipeline in front of the key-value core (layers from `pipeline:` or `pipelines.NAME`, kv_service
/// innermost).
using kv_pipeline = any_service<kv::request, kv::response>;

/// How a listener reads its pipeline: a handle the server can swap while requests are in flight (hot reload).
/// A front end takes the pipeline for each request from a snapshot: a connection keeps a reader
/// (`kv_pipeline_handle::reader`, one relaxed atomic load per request), code without a connection pins one with
/// load(); either way a request finishes on the pipeline it started on (see turret/pipeline_handle.hpp).
using kv_pipeline_handle = pipeline_handle<kv_pipeline>;

/// The server's life cycle as front ends report it (HTTP /readyz, gRPC health).
enum class server_state : std::uint8_t { starting, ready, draining, stopped };

inline std::string_view to_string(server_state s) noexcept {
  switch (s) {
    case server_state::starting: return "starting";
    case server_state::ready: return "ready";
    case server_state::draining: return "draining";
    case server_state::stopped: return "stopped";
  }
  return "unknown";
}

/// Everything a listener needs from the server. References outlive the listener and all its connections.
struct listener_env {
  std::string name;                          ///< listener name (config `name`), for logs
  boost::asio::ip::tcp::endpoint endpoint;   ///< address to bind (port 0 = any free port)
  std::any options;                          ///< what frontend::parse returned for this listener
  runtime& rt;                               ///< worker contexts; connections are spread with next_executor()
  shutdown_coordinator& shutdown;            ///< counts open connections as in-flight work
  std::shared_ptr<kv::store> store;          ///< the one keyspace
  kv_pipeline_handle pipeline;               ///< the listener's pipeline (config `pipeline: NAME`), swappable
  const std::atomic<server_state>* state = nullptr;  ///< the server's state (read it with load())
};

/// One bound address of one protocol.
class listener {
 public:
  virtual ~listener() = default;

  virtual const std::string& name() const noexcept = 0;
  virtual std::string_view protocol() const noexcept = 0;
  /// Binds and starts accepting. Throws std::system_error when the address cannot be bound (start-up only).
  virtual void start() = 0;
  /// The bound address (the actual port when configured with port 0). Valid after start().
  virtual boost::asio::ip::tcp::endpoint local_endpoint() const = 0;
  /// Graceful shutdown, phase 1 (thread-safe, idempotent): stop accepting; idle connections close now, busy ones
  /// after answering what they have read.
  virtual void stop_accepting() = 0;
  /// Graceful shutdown, phase 3 (thread-safe): close every remaining connection now.
  virtual void force_close() = 0;
  /// Open connections.
  virtual std::size_t connections() const noexcept = 0;
};

/// A protocol: how to validate its listener options and how to create its listeners.
struct frontend {
  /// Keys of a listener entry this protocol accepts besides name/protocol/address (e.g. {"resp"}).
  std::vector<std::string> keys;
  /// Validates the listener entry's protocol-specific keys (throws config_error) and returns the parsed options.
  std::function<std::any(const config_node& listener_entry)> parse;
  /// Creates a listener (not started).
  std::function<std::unique_ptr<listener>(listener_env env)> create;
};

}  // namespace turret::turretd
