#pragma once
// Key-value front ends: a listener of one protocol (RESP, HTTP, gRPC, or a plugin's) that turns what its clients
// send into kv::requests, sends each through its pipeline into the backend, and answers. This header is the whole
// contract between a server (turretd is the composition root) and a front end: a front end depends on it, on
// <turret/kv/backend.hpp> and on the framework, never on the server or on a backend's implementation.
//
// Protocols are registered BY NAME (turretd's frontend_registry): a protocol is a `frontend` (how to validate a
// listener's options, how to create its listeners). Life cycle of a listener: <turret/server/listener.hpp>.
#include <turret/config.hpp>
#include <turret/kv/backend.hpp>
#include <turret/pipeline_handle.hpp>
#include <turret/runtime.hpp>
#include <turret/server/listener.hpp>

#include <boost/asio/ip/tcp.hpp>

#include <any>
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace turret::kv {

/// How a listener reads its pipeline: a handle the server can swap while requests are in flight (hot reload).
/// A front end takes the pipeline for each request from a snapshot: a connection keeps a reader
/// (`pipeline_handle_type::reader`, one relaxed atomic load per request), code without a connection pins one with
/// load(); either way a request finishes on the pipeline it started on (see turret/pipeline_handle.hpp).
using pipeline_handle_type = pipeline_handle<pipeline_service>;

/// Everything a listener needs from the server. References outlive the listener and all its connections.
struct listener_env {
  std::string name;                          ///< listener name (config `name`), for logs
  boost::asio::ip::tcp::endpoint endpoint;   ///< address to bind (port 0 = any free port)
  std::any options;                          ///< what frontend::parse returned for this listener
  runtime& rt;                               ///< worker contexts; connections are spread with next_executor()
  shutdown_coordinator& shutdown;            ///< counts open connections as in-flight work
  std::shared_ptr<kv::backend> backend;      ///< sessions, limits, counters, the command table
  pipeline_handle_type pipeline;             ///< the listener's pipeline (config `pipeline: NAME`), swappable
  const std::atomic<server::server_state>* state = nullptr;  ///< the server's state (read it with load())
};

/// A protocol: how to validate its listener options and how to create its listeners.
struct frontend {
  /// Keys of a listener entry this protocol accepts besides name/protocol/address (e.g. {"resp"}).
  std::vector<std::string> keys;
  /// Validates the listener entry's protocol-specific keys (throws config_error) and returns the parsed options.
  std::function<std::any(const config_node& listener_entry)> parse;
  /// Creates a listener (not started).
  std::function<std::unique_ptr<server::listener>(listener_env env)> create;
};

}  // namespace turret::kv
