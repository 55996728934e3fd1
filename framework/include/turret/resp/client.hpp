#pragma once
// resp::client: a coroutine RESP client (Redis, turretd, any RESP server).
//
//   auto c = co_await resp::client::connect(executor, "127.0.0.1", 6379);   // result<client>
//   if (!c) ... c.error() ...
//   co_await c->set("hello", "world");                                        // result<void>
//   auto v = co_await c->get("hello");                                        // result<std::optional<std::string>>
//
// Contract
// - Errors are values: every call returns result<T>; nothing on the call path throws. Transport failures carry the
//   asio error (connection refused, eof...); a server error reply (`-ERR ...`) from a typed call (get/set/del/...)
//   is client_errc::server_error and its text is in last_error(). command() returns error replies as values
//   (value::kind::error), so nothing is lost.
// - One operation at a time per client (no internal queue): await each call before starting the next. Pipelining is
//   explicit: fill a resp::pipeline, `co_await c.exec(p)` writes it in one write and reads the replies in order.
// - Binary safe: keys, values and arguments are byte strings (std::string_view may hold any byte).
// - TCP_NODELAY is set on connect.
// - After a transport or protocol error the connection is closed; later calls fail with client_errc::not_connected.
// - g++ 12 caveat: a braced list that must live across co_await does not compile ("array used as initializer"):
//   build a named std::vector first (`std::vector<std::string> ch{"a"}; co_await c.subscribe(ch);`).
// - subscribe()/psubscribe() turn the connection into a subscriber (like mini-redis's Client::subscribe): the client
//   is left disconnected and the subscriber owns the connection. next_message() yields messages as a stream.
#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include "turret/result.hpp"
#include "turret/resp/parser.hpp"
#include "turret/resp/value.hpp"

namespace turret::resp {

enum class client_errc {
  not_connected = 1,   ///< the client has no connection (never connected, closed, or moved into a subscriber)
  protocol_error,      ///< the server sent bytes that are not RESP
  server_error,        ///< the server replied with an error (text in last_error())
  unexpected_reply,    ///< a reply of the wrong type for the typed call
  connection_closed,   ///< the server closed the connection
};
const boost::system::error_category& client_category() noexcept;
inline boost::system::error_code make_error_code(client_errc e) noexcept {
  return {static_cast<int>(e), client_category()};
}

/// Encode one command as a RESP multibulk (what clients send).
void append_command(std::string& out, std::span<const std::string_view> args);
inline void append_command(std::string& out, std::initializer_list<std::string_view> args) {
  append_command(out, std::span<const std::string_view>(args.begin(), args.size()));
}

/// Commands queued for one write; replies come back in order from client::exec.
class pipeline {
 public:
  pipeline& add(std::span<const std::string_view> args) {
    append_command(bytes_, args);
    ++count_;
    return *this;
  }
  pipeline& add(std::initializer_list<std::string_view> args) {
    return add(std::span<const std::string_view>(args.begin(), args.size()));
  }
  std::size_t size() const noexcept { return count_; }
  bool empty() const noexcept { return count_ == 0; }
  const std::string& bytes() const noexcept { return bytes_; }
  void clear() noexcept {
    bytes_.clear();
    count_ = 0;
  }

 private:
  std::string bytes_;
  std::size_t count_ = 0;
};

struct client_options {
  bool tcp_nodelay = true;
  /// Largest bulk reply accepted from the server.
  std::size_t max_bulk_len = 512ull * 1024 * 1024;
};

namespace detail {
/// The connection shared by client and subscriber: a socket, a read buffer and a reply parser.
struct connection {
  explicit connection(boost::asio::ip::tcp::socket s, const client_options& o)
      : socket(std::move(s)), parser(o.max_bulk_len) {}
  boost::asio::ip::tcp::socket socket;
  input_buffer in{16 * 1024};
  reply_parser parser;
  std::string out;

  boost::asio::awaitable<result<value>> read_reply();
  boost::asio::awaitable<error_code> write(std::string_view bytes);
  boost::asio::awaitable<result<value>> roundtrip(std::string_view request);
  void close() noexcept;
};
}  // namespace detail

/// A pub/sub message: kind "message" (channel subscription) or "pmessage" (pattern; `pattern` is set).
struct message {
  std::string kind;
  std::string pattern;
  std::string channel;
  std::string payload;
};

class subscriber;

class client {
 public:
  client() = default;
  client(client&&) noexcept = default;
  client& operator=(client&&) noexcept = default;

  /// Resolve host, connect (first address that accepts), set TCP_NODELAY.
  static boost::asio::awaitable<result<client>> connect(boost::asio::any_io_executor ex, std::string host,
                                                        std::uint16_t port, client_options opts = {});

  bool connected() const noexcept { return conn_ != nullptr; }
  /// Text of the last server error reply seen by a typed call.
  const std::string& last_error() const noexcept { return last_error_; }

  /// Any command; the reply as a value (error replies included, as values).
  boost::asio::awaitable<result<value>> command(std::span<const std::string_view> args);
  /// command("SET", key, value): each argument convertible to std::string_view. (No initializer_list overload:
  /// g++ 12 rejects a braced list that lives across co_await - "array used as initializer".)
  template <class... A>
    requires(sizeof...(A) > 0 && (std::is_convertible_v<const A&, std::string_view> && ...))
  boost::asio::awaitable<result<value>> command(const A&... a) {
    const std::array<std::string_view, sizeof...(A)> args{std::string_view(a)...};
    co_return co_await command(std::span<const std::string_view>(args));
  }
  boost::asio::awaitable<result<value>> command(const std::vector<std::string>& args);

  /// PING: "PONG".
  boost::asio::awaitable<result<std::string>> ping();
  /// GET: the value, or nullopt when the key does not exist.
  boost::asio::awaitable<result<std::optional<std::string>>> get(std::string_view key);
  /// SET key value [PX ms].
  boost::asio::awaitable<result<void>> set(std::string_view key, std::string_view val,
                                           std::optional<std::chrono::milliseconds> expiry = std::nullopt);
  /// DEL key...: number of keys removed.
  boost::asio::awaitable<result<long long>> del(std::span<const std::string_view> keys);
  boost::asio::awaitable<result<long long>> del(std::string_view key) {
    const std::array<std::string_view, 1> keys{key};  // lives in this coroutine's frame
    co_return co_await del(std::span<const std::string_view>(keys));
  }
  /// PUBLISH: number of clients that received the message.
  boost::asio::awaitable<result<long long>> publish(std::string_view channel, std::string_view msg);

  /// Send every queued command in one write, then read size() replies in order (error replies are values).
  boost::asio::awaitable<result<std::vector<value>>> exec(const pipeline& p);

  /// SUBSCRIBE / PSUBSCRIBE: moves the connection into the returned subscriber (this client becomes disconnected).
  boost::asio::awaitable<result<subscriber>> subscribe(std::vector<std::string> channels);
  boost::asio::awaitable<result<subscriber>> psubscribe(std::vector<std::string> patterns);

  void close() noexcept;

 private:
  friend class subscriber;
  boost::asio::awaitable<result<value>> typed(std::span<const std::string_view> args);
  std::unique_ptr<detail::connection> conn_;
  std::string last_error_;
};

/// A connection in subscribed mode. Messages are a stream: `while (auto m = co_await sub.next_message()) ...`.
class subscriber {
 public:
  subscriber() = default;
  subscriber(subscriber&&) noexcept = default;
  subscriber& operator=(subscriber&&) noexcept = default;

  /// Subscribe to more channels / patterns (waits for every confirmation; messages arriving meanwhile are queued).
  boost::asio::awaitable<result<void>> subscribe(std::vector<std::string> channels);
  boost::asio::awaitable<result<void>> psubscribe(std::vector<std::string> patterns);
  /// Unsubscribe from the given channels / patterns (all of them when empty).
  boost::asio::awaitable<result<void>> unsubscribe(std::vector<std::string> channels = {});
  boost::asio::awaitable<result<void>> punsubscribe(std::vector<std::string> patterns = {});

  /// The next message (waits for it). client_errc::connection_closed when the server closes the connection.
  boost::asio::awaitable<result<message>> next_message();

  const std::vector<std::string>& channels() const noexcept { return channels_; }
  const std::vector<std::string>& patterns() const noexcept { return patterns_; }
  bool connected() const noexcept { return conn_ != nullptr; }
  void close() noexcept;

 private:
  friend class client;
  boost::asio::awaitable<result<void>> change(std::string_view cmd, std::vector<std::string> names);
  // Handle one pushed value: queue a message or apply a (un)subscribe confirmation. Returns the confirmation kind
  // ("subscribe", ...) or "" for a message / other.
  std::string absorb(value&& v);
  std::unique_ptr<detail::connection> conn_;
  std::vector<std::string> channels_;
  std::vector<std::string> patterns_;
  std::deque<message> pending_;
};

}  // namespace turret::resp

template <>
struct boost::system::is_error_code_enum<turret::resp::client_errc> : std::true_type {};
