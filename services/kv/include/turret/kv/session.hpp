#pragma once
// session: the key-value backend's view of one client connection (any front end). The front end owns it; the
// backend (in-process store or upstream) keeps its per-client state in it. Holds Redis per-client state:
// selected db, protocol version, auth, MULTI queue, WATCHed keys, subscriptions, reply mode, name.
#include <atomic>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace turret::kv {

using ms_t = std::int64_t;  ///< unix time in milliseconds

/// A pub/sub message or keyspace notification on its way to a subscriber.
struct pubsub_message {
  std::string_view pattern;  ///< empty for "message", the matching pattern for "pmessage"
  std::string_view channel;
  std::string_view payload;
};

/// Implemented by the front end that owns a session's connection. All methods are called with the store lock held,
/// possibly from another worker thread than the connection's: implementations only enqueue and wake their own
/// connection (never block, never call back into the store).
class session_host {
 public:
  virtual ~session_host() = default;
  /// Deliver a pub/sub message (encode it for the session's protocol and queue it). Returns false when the
  /// subscriber's output buffer limit is exceeded; the host then closes the connection.
  virtual bool deliver(const pubsub_message& m) = 0;
  /// CLIENT KILL / SHUTDOWN / maxclients: close the connection as soon as possible.
  virtual void kill() = 0;
  /// Buffer figures for CLIENT LIST / INFO: query buffer length and free, output buffer length and memory.
  struct buffers { std::size_t qbuf = 0, qbuf_free = 0, obl = 0, oll = 0, omem = 0, tot_mem = 0; };
  virtual buffers buffer_info() const { return {}; }
  /// The file descriptor of the connection (CLIENT LIST fd=), -1 when none.
  virtual int fd() const { return -1; }
};

enum class reply_mode : std::uint8_t { on, off, skip };

struct session {
  std::uint64_t id = 0;                 ///< CLIENT ID; assigned by store::attach
  std::string name;                     ///< CLIENT SETNAME
  std::string user = "default";
  std::string addr, laddr;              ///< "ip:port" of peer and local socket
  std::string_view protocol_name = "resp";  ///< front end: resp, http, grpc
  int db = 0;
  int resp = 2;                         ///< protocol version (HELLO)
  bool authenticated = false;
  /// Set by an auth layer that accepted a HELLO's AUTH option (kv::auth_reply): HELLO then skips its own check of
  /// those credentials, once. Written and read by the connection's own request only.
  bool auth_checked_by_layer = false;
  reply_mode replies = reply_mode::on;
  /// QUIT, or killed: the front end closes once the reply is flushed. Atomic: CLIENT KILL sets it from the killer's
  /// thread (under the backend's lock) while the victim's connection reads it on its own thread.
  std::atomic<bool> close_after_reply{false};
  bool no_evict = false;                ///< CLIENT NO-EVICT (CLIENT LIST flag 'e'; turretd evicts no client)
  bool is_subscriber_only_front_end = false;

  // MULTI/EXEC
  bool in_multi = false;
  bool multi_error = false;             ///< a command failed to queue: EXEC answers EXECABORT
  bool watch_dirty = false;             ///< a WATCHed key changed: EXEC answers a null array
  std::vector<std::vector<std::string>> queued;
  std::vector<std::pair<int, std::string>> watched;  ///< (db, key)

  // Pub/sub
  std::set<std::string, std::less<>> channels;
  std::set<std::string, std::less<>> patterns;
  std::size_t subscriptions() const noexcept { return channels.size() + patterns.size(); }

  // Bookkeeping for CLIENT LIST / INFO
  ms_t created_ms = 0;
  ms_t last_interaction_ms = 0;
  std::string_view last_command = "NULL";  ///< "client|list" style, as CLIENT LIST cmd= (static: command_def::name)
  std::uint64_t commands_processed = 0;

  session_host* host = nullptr;         ///< null for internal sessions (tests)

  // Internal to the dispatcher (kv_service / transactions).
  bool reply_skip_pending = false;      ///< CLIENT REPLY SKIP ran: drop the next command's reply
  bool in_exec = false;                 ///< EXEC is running the queued commands
};

}  // namespace turret::kv
