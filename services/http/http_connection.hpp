#pragma once
// One HTTP/1.1 connection of the REST front end (internal to services/http/; the listener is http_server.cpp).
// http_connection.cpp is the only translation unit that includes Beast: this header names Asio types only.
//
// Contract
// - run() is the connection's coroutine: it reads requests (Beast's parser, then message_framing.hpp's RFC 9112 rules),
//   hands each to rest_api, and writes the responses in order. Everything the connection holds outside itself (the
//   store's session registration, the open-connections gauge, the listener's client count, the socket) is released by
//   destructors of run()'s locals, however run() ends: return, exception, or the runtime destroying the suspended
//   coroutine at shutdown.
// - Whatever a request's handling throws becomes an error response (500 "internal", or 503 for std::bad_alloc, see
//   set_exception_error in rest_api.hpp); the connection goes on with the next request. An exception outside a
//   request's handling (writing, parsing) ends the connection, never the server.
// - deliver(), kill(), buffer_info() and fd() are the kv::session_host side: any thread, store lock held, they only
//   enqueue and wake. drain() and force_close() are thread-safe (the listener's graceful shutdown).
#include <services/http/http_options.hpp>
#include <turret/kv/session.hpp>
#include <turret/context.hpp>
#include <turret/runtime.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

namespace turret::metrics {
class gauge;
}

namespace turret::http_frontend {

class rest_api;
class connection;
struct rest_request;
struct rest_response;

/// State shared by a listener and its connections.
struct listener_shared {
  std::string name;
  std::string laddr;
  std::unique_ptr<rest_api> api;
  http_options opts;
  shutdown_coordinator* shutdown = nullptr;
  std::atomic<std::size_t> clients{0};  ///< open connections (max_connections); a connection's run() gives its back
  std::atomic<bool> draining{false};
  std::mutex mu;
  std::unordered_set<connection*> conns;

  listener_shared();
  ~listener_shared();
};

/// "ip:port", or "[ip6]:port".
std::string endpoint_string(const boost::asio::ip::tcp::endpoint& ep);

enum class conn_state : std::uint8_t { idle, header, body, handling, writing, sse };

class connection final : public kv::session_host, public std::enable_shared_from_this<connection> {
 public:
  using tcp = boost::asio::ip::tcp;
  using steady = std::chrono::steady_clock;

  /// Takes over one of sh->clients (counted by the accept loop), given back by the destructor (not when the
  /// constructor throws: the accept loop gives it back then).
  connection(std::shared_ptr<listener_shared> sh, tcp::socket sock);
  ~connection() override;

  /// `self` keeps the connection alive for the coroutine's life (a coroutine parameter lives in its frame).
  boost::asio::awaitable<void> run(std::shared_ptr<connection> self);

  // kv::session_host: any thread, store lock held. Only enqueue and wake; never throw.
  bool deliver(const kv::pubsub_message& m) override;
  void kill() override;
  buffers buffer_info() const override;
  int fd() const override { return fd_; }

  /// Graceful shutdown: idle connections close now, busy ones after their response, event streams end.
  void drain();
  void force_close() { kill(); }

 private:
  class socket_closer;

  void post_wake_locked();
  void close_socket();
  void set_deadline(std::chrono::milliseconds d);
  boost::asio::awaitable<void> watch(std::shared_ptr<connection> self);
  boost::asio::awaitable<bool> flush();
  void append_response(const rest_response& r, bool head, bool keep_alive, int version);
  boost::asio::awaitable<void> codec_error(int status, std::string_view code, std::string_view msg);
  boost::asio::awaitable<void> linger();
  boost::asio::awaitable<void> serve();
  boost::asio::awaitable<void> dispatch(const rest_request& rq, rest_response& resp);
  boost::asio::awaitable<void> serve_events(std::string first_event, int version);

  std::shared_ptr<listener_shared> sh_;
  tcp::socket sock_;
  boost::asio::steady_timer watchdog_;
  boost::asio::steady_timer wake_;
  shutdown_coordinator::tracker tracker_;
  metrics::gauge* open_ = nullptr;  ///< turret_connections{frontend="http"}
  int fd_ = -1;
  std::chrono::milliseconds tick_{1000};

  // Connection-thread state.
  kv::session sess_;
  request_context ctx_;
  std::string out_;
  conn_state state_ = conn_state::idle;
  steady::time_point deadline_ = steady::time_point::max();
  bool timed_out_ = false;
  bool closed_ = false;
  bool draining_ = false;
  bool peer_gone_ = false;

  // Shared with other threads.
  mutable std::mutex mu_;
  std::string outbox_;
  bool overflow_ = false;
  bool wake_posted_ = false;
  std::atomic<bool> killed_{false};
  std::atomic<std::size_t> qbuf_{0};
};

}  // namespace turret::http_frontend
