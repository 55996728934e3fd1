#pragma once
// resp::upstream_client: a RESP server (redis-server, turretd) as a Service, for proxies. Requests are pipelined over
// few long-lived connections and their replies matched in order.
//
//   resp::upstream_client c({executor}, {.host = "127.0.0.1", .port = 6379});
//   resp::upstream_request req{ctx, args};                       // args: command name + arguments
//   auto r = co_await turret::ready_and_call(c, req);            // result<upstream_reply>
//   // r->v: the reply as a value (error replies are values); r->raw: its RESP2 bytes as the server sent them
//
// # Connections
// `connections` connections per endpoint (default 1), each on one of the executors given (connection i on
// executors[i % size]); ready() picks one in turn. On each connection:
// - one writer coroutine sends every command queued since its last write in one write (a burst of concurrent
//   requests, from any thread, becomes one send());
// - one reader coroutine parses replies as they arrive and hands each to the oldest pending request (a FIFO: RESP
//   answers in order);
// - TCP_NODELAY; the connection speaks RESP2 (no HELLO is sent): `raw` is RESP2.
// - RESP3: a request with `resp3` set goes to the RESP3 twin of the connection ready() chose: a second connection
//   to the same server on the same executor, opened on the first such request, that sends HELLO 3 first (before its
//   on_connect commands; the replies dropped), so its `raw` is RESP3 where the server speaks it (Redis 6 and later;
//   an older server answers HELLO with an error and the twin stays RESP2). The twin fails, reconnects and stops as
//   its connection does (readiness is the RESP2 connection's).
// - `on_connect` commands go first on every (re)connection; their replies are dropped.
//
// # Failures and reconnection
// A connect that fails or takes longer than `connect_timeout`, a read or write error, the server closing, or a reply
// that is not RESP (the connection cannot be trusted after it) take the connection down: every request written or
// queued on it fails with upstream_errc::connection_lost (condition unavailable) and the connection reconnects after
// a backoff that doubles from `backoff_initial` to at most `backoff_max` (reset by a successful connect). While a
// connection is down (between a failure and the next successful connect), ready() and call() fail at once with
// upstream_errc::down: callers fail fast instead of queueing behind a dead server. Requests made while the very first
// connect is in progress wait for it.
//
// # Cancellation
// call() binds to the request's `ctx.cancel_slot()`: a cancelled request completes at once with operation_aborted.
// Its command may already be on the wire: its reply is still read, matched and discarded, so the replies of the
// requests after it stay matched. A request is answered exactly once.
//
// # Threads
// ready() and call() may be called from any thread, concurrently; each completion runs on the executor of the
// caller's coroutine. The client object is cheap to copy (copies share the connections). stop() (or the last copy
// going away) closes the connections; pending requests then fail with upstream_errc::stopped.
#include <turret/clock.hpp>
#include <turret/context.hpp>
#include <turret/resp/parser.hpp>
#include <turret/resp/value.hpp>
#include <turret/result.hpp>
#include <turret/service.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/system/error_category.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace turret::resp {

enum class upstream_errc {
  down = 1,         ///< the connection is down (reconnecting after a failure): unavailable, at once
  connection_lost,  ///< the connection failed while the request was queued or written: unavailable
  stopped,          ///< the client was stopped: unavailable
};
/// The category "turret.resp_upstream"; every code maps to the condition errc::unavailable.
const boost::system::error_category& upstream_category() noexcept;
inline boost::system::error_code make_error_code(upstream_errc e) noexcept {
  return {static_cast<int>(e), upstream_category()};
}

struct upstream_options {
  std::string host = "127.0.0.1";  ///< an IP address or a name (resolved at each connect)
  std::uint16_t port = 6379;
  std::size_t connections = 1;
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds backoff_initial{50};
  std::chrono::milliseconds backoff_max{2000};
  std::size_t max_bulk_len = 512ull * 1024 * 1024;  ///< largest bulk reply accepted
  /// Commands sent first on every new connection, before anything queued (e.g. {"READONLY"} for reads from Redis
  /// Cluster replicas); their replies are read and dropped, whatever they are.
  std::vector<std::vector<std::string>> on_connect;
};

/// One command: its context (cancellation) and its arguments (name first), which need to live only until call()
/// has started (they are encoded at once).
struct upstream_request {
  request_context& ctx;
  std::span<const std::string_view> args;
  /// Commands written right before this one on the same connection, adjacent to it (no other request's command
  /// comes between them), their replies read and dropped: ASKING for Redis Cluster's ASK redirection; MULTI and the
  /// queued commands of a transaction whose EXEC is `args`. Like args, needed only until call() has started.
  std::span<const std::vector<std::string_view>> before = {};
  /// Send it on the connection's RESP3 twin (see the top of this file).
  bool resp3 = false;
  /// try_start only: requests with the same nonzero affinity (a client session's address) go on the same
  /// connection, so the server runs them in the order they were started. 0: the next connection in turn.
  std::uintptr_t affinity = 0;
  request_context& context() noexcept { return ctx; }
};

/// A reply: as a value (error replies included) and as the RESP2 bytes the server sent.
struct upstream_reply {
  value v;
  std::string raw;
};

namespace detail {
class upstream_connection;
}

class upstream_client {
 public:
  using response_type = upstream_reply;
  /// The connection ready() chose for the request.
  struct permit_type {
    std::shared_ptr<detail::upstream_connection> conn;
  };

  /// Starts connecting at once. `executors` must not be empty.
  upstream_client(std::vector<boost::asio::any_io_executor> executors, upstream_options opts);

  awaitable<result<permit_type>> ready(request_context& ctx);
  awaitable<result<upstream_reply>> call(permit_type p, upstream_request& req);
  /// Never suspends: a permit for the next connection in turn, or upstream_errc::down / stopped when it is down.
  /// (No try_call_now: every command is a round trip.)
  std::optional<result<permit_type>> try_ready(request_context& ctx);
  /// Callback start (service.hpp): always starts. The command is queued on a connection (by `req.affinity`) and
  /// `done` runs on that connection's thread when its reply arrives, or when the connection fails; at once, on the
  /// caller's thread, with upstream_errc::down / stopped when the connection is down. Not bound to cancellation.
  /// Costs no coroutine frame and no post to the caller's executor (call() costs both).
  bool try_start(upstream_request& req, completion<upstream_reply>& done);

  /// "host:port" as configured.
  const std::string& name() const noexcept;
  /// A new client to the same server with the same options but one connection of its own, on `ex`: for state that
  /// belongs to one connection (a WATCH until its EXEC).
  upstream_client with_own_connection(boost::asio::any_io_executor ex) const;
  /// Successful connects of all the connections (their RESP3 twins included) so far: a change means a connection
  /// was lost and opened again (state kept on the old one, such as a WATCH, is gone).
  std::uint64_t connects() const noexcept;
  /// Whether some connection is up.
  bool connected() const noexcept;
  /// Closes every connection; pending and later requests fail with upstream_errc::stopped. Idempotent.
  void stop();

 private:
  struct shared;
  std::shared_ptr<shared> shared_;
};

}  // namespace turret::resp

template <>
struct boost::system::is_error_code_enum<turret::resp::upstream_errc> : std::true_type {};
