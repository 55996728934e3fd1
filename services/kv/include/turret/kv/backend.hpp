#pragma once
// backend: the one interface between the front ends and the key-value engine behind them. The in-process store
// implements it (<turret/kv/local.hpp>); an upstream backend (real Redis servers) will. A front end never sees
// the engine's types: it opens a session per client, reads limits and counters, resolves commands in the table,
// and sends every request through the pipeline that ends in service().
//
// Threading
// - Every member is thread-safe. open_session/close_session lock internally; limits() and counters() are atomics
//   read without any lock on every request; commands() is immutable after start-up.
// - Pub/sub messages and CLIENT KILL come back through the session's session_host (session.hpp), called by the
//   backend from any thread: hosts only queue and wake their connection.
//
// Life cycle: the backend outlives every listener and connection (turretd creates it first and destroys it last).
#include <turret/any_service.hpp>
#include <turret/kv/request.hpp>
#include <turret/kv/session.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace turret::kv {

class command_table;

/// The pipeline in front of a backend: configured layers, the backend's service() innermost.
using pipeline_service = any_service<request, response>;

/// Limits the front ends read without the store lock (CONFIG SET changes them at run time).
struct client_limits {
  std::atomic<std::size_t> maxclients{10000};
  std::atomic<long long> timeout{0};  ///< seconds, 0 = never
  std::atomic<long long> proto_max_bulk_len{512ll * 1024 * 1024};
  std::atomic<long long> client_query_buffer_limit{1024ll * 1024 * 1024};
  std::atomic<unsigned long long> pubsub_hard{32ull << 20}, pubsub_soft{8ull << 20};
  std::atomic<long long> pubsub_soft_seconds{60};
  std::atomic<unsigned long long> normal_hard{0}, normal_soft{0};
  std::atomic<long long> normal_soft_seconds{0};
};

/// Connection counters front ends maintain (INFO stats), lock-free.
struct connection_stats {
  std::atomic<std::uint64_t> rejected_connections{0};
  std::atomic<std::uint64_t> net_input_bytes{0};
  std::atomic<std::uint64_t> net_output_bytes{0};
};

/// Figures for the front ends' gauges (HTTP /metrics): one consistent snapshot.
struct backend_summary {
  std::size_t clients = 0;       ///< open sessions
  std::size_t keys = 0;          ///< keys in every database
  std::size_t expires = 0;       ///< keys with a TTL
  std::size_t used_memory = 0;   ///< bytes the engine accounts for its data
};

class backend {
 public:
  virtual ~backend() = default;

  /// Registers a client: assigns its id and creation time, sets `authenticated` when no password is needed.
  /// Front ends check limits().maxclients before. Prefer session_guard (below).
  virtual std::uint64_t open_session(session& s) = 0;
  /// Unregisters: drops its subscriptions and WATCHes; no deliver()/kill() reaches its host afterwards. Never throws.
  virtual void close_session(session& s) noexcept = 0;
  /// Whether the session must authenticate before most commands (RESP parsers tighten their limits then).
  virtual bool auth_required(const session& s) const noexcept = 0;

  virtual const client_limits& limits() const noexcept = 0;
  virtual connection_stats& counters() noexcept = 0;
  /// The command table requests are resolved in (immutable, shared by every thread).
  virtual const command_table& commands() const noexcept = 0;
  /// Locks internally: call it for gauges, not per request.
  virtual backend_summary summary() const = 0;

  /// The innermost service of every pipeline. Copies share the backend.
  virtual pipeline_service service() = 0;
};

/// RAII registration of a session with a backend: opens on construction, closes on destruction, however the owner's
/// scope ends (a coroutine that returns, throws, or is destroyed unresumed). The session must outlive the guard;
/// declare the guard after everything deliver()/kill() touch, so that it is destroyed (closed) first. Move-only;
/// reset() closes early (idempotent).
class session_guard {
 public:
  session_guard() noexcept = default;
  session_guard(backend& b, session& s) : backend_(&b), sess_(&s) { b.open_session(s); }
  session_guard(session_guard&& o) noexcept : backend_(o.backend_), sess_(o.sess_) { o.backend_ = nullptr; }
  session_guard& operator=(session_guard&& o) noexcept {
    if (this != &o) {
      reset();
      backend_ = o.backend_;
      sess_ = o.sess_;
      o.backend_ = nullptr;
    }
    return *this;
  }
  session_guard(const session_guard&) = delete;
  session_guard& operator=(const session_guard&) = delete;
  ~session_guard() { reset(); }

  bool attached() const noexcept { return backend_ != nullptr; }
  void reset() noexcept {
    if (backend_ == nullptr) return;
    backend* b = backend_;
    backend_ = nullptr;
    b->close_session(*sess_);
  }

 private:
  backend* backend_ = nullptr;
  session* sess_ = nullptr;
};

}  // namespace turret::kv
