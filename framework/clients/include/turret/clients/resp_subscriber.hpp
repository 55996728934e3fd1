#pragma once
// resp::upstream_subscriber: one connection to a RESP server (redis-server) in subscribed mode, for proxies that fan
// pub/sub out to their own clients. It holds a SET of channels and patterns and keeps the server subscribed to
// exactly that set, across reconnections.
//
//   resp::upstream_subscriber sub(executor, {.host = "127.0.0.1", .port = 6379},
//                                 [](const resp::subscriber_message& m) { ... });  // on sub's executor
//   sub.subscribe("news");                  // returns at once
//   co_await sub.sync(1s);                  // the server now delivers "news"
//
// # The set and the wire
// subscribe()/unsubscribe()/psubscribe()/punsubscribe() change the set and, while the connection is up, send the
// matching command (nothing when the set already holds/lacks the name: the caller counts its own subscribers).
// The connection is opened once the set is first non-empty. On every (re)connection the whole set is sent first
// (one SUBSCRIBE with every channel, one PSUBSCRIBE with every pattern): a connection lost (read or write error, the
// server closing, a reply that is not RESP, a connect failing or taking longer than connect_timeout) is re-opened
// after a backoff that doubles from backoff_initial to backoff_max (reset by a successful connect) and subscribed
// again. Messages published while it was down are lost (Redis pub/sub is at-most-once).
//
// # Messages
// `message` and `pmessage` pushes are handed to the handler in the order the server sent them, on the subscriber's
// executor; the handler must not block. Confirmations and PING replies are consumed here.
//
// # sync()
// Completes once every change made before it (from the same thread, or ordered before it) is in effect on the server:
// it sends PING behind the changes and waits for its reply (the server answers in order). While a connect is in
// progress (the first one included: the set just became non-empty) it waits for it first; it completes at once when
// the connection is down (in its backoff after a failure: the set is sent whole at the next connect), and after
// `timeout` at the latest (a server that stopped answering). Returns whether the server confirmed.
//
// # Threads
// Every member may be called from any thread. The state lives on the executor given (a single-threaded io_context's,
// as turret::runtime's): the calls post to it, in order. stop() (or destruction) closes the connection on the executor:
// a handler call already running (or a message already read) may still complete after stop() returns, so a handler
// that refers to its owner should hold a weak reference.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace turret::resp {

struct subscriber_options {
  std::string host = "127.0.0.1";  ///< an IP address or a name (resolved at each connect)
  std::uint16_t port = 6379;
  std::chrono::milliseconds connect_timeout{1000};
  std::chrono::milliseconds backoff_initial{50};
  std::chrono::milliseconds backoff_max{2000};
  std::size_t max_bulk_len = 512ull * 1024 * 1024;  ///< largest message accepted
};

/// A message as the server pushed it. The views are valid during the handler's call only.
struct subscriber_message {
  std::string_view pattern;  ///< the matching pattern for a `pmessage`, empty for a `message`
  std::string_view channel;
  std::string_view payload;
};

class upstream_subscriber {
 public:
  using message_handler = std::function<void(const subscriber_message&)>;

  upstream_subscriber(boost::asio::any_io_executor ex, subscriber_options opts, message_handler on_message);
  ~upstream_subscriber();
  upstream_subscriber(const upstream_subscriber&) = delete;
  upstream_subscriber& operator=(const upstream_subscriber&) = delete;

  void subscribe(std::string channel);
  void unsubscribe(std::string channel);
  void psubscribe(std::string pattern);
  void punsubscribe(std::string pattern);

  /// See the top of this file. Safe to await from any executor.
  boost::asio::awaitable<bool> sync(std::chrono::milliseconds timeout);

  /// Whether the connection is up and subscribed.
  bool connected() const noexcept;
  /// "host:port" as configured.
  const std::string& name() const noexcept;
  /// Closes the connection for good. Idempotent.
  void stop();

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace turret::resp
