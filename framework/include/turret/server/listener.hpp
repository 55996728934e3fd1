#pragma once
// Listeners: what a server drives, whatever the protocol and whatever is behind it. A listener accepts connections
// of one protocol on one address; the server starts it, drains it and closes it (turret::shutdown_coordinator).
//
// Life cycle (driven by the server, e.g. turretd's server.hpp):
//   1. config: the protocol's parse function validates the protocol-specific keys of a listener entry
//      (check-config runs this alone) and returns the parsed options;
//   2. the protocol's create function builds the listener; start() binds and begins accepting;
//   3. graceful shutdown: stop_accepting() closes the acceptor and asks every connection to finish its in-flight
//      request(s) and close (idle ones close at once); each open connection is counted in the coordinator's
//      in_flight(); after the grace period, force_close() closes what remains.
// The key-value front ends' contract (what a listener is given) is <turret/kv/frontend.hpp>.
#include <boost/asio/ip/tcp.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace turret::server {

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

}  // namespace turret::server
