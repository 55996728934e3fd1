#pragma once
#include <turret/percent_encoding.hpp>  // turret::percent_encode for path segments
// http_client: a small HTTP/1.1 client of turret's REST API (Boost.Beast inside, coroutines outside).
//
//   turret::clients::http_client kv(co_await boost::asio::this_coro::executor, "127.0.0.1", 8080);
//   auto v = co_await kv.get("k");          // result<std::optional<std::string>>: nullopt = 404
//   co_await kv.set("k", "v", std::chrono::seconds(30));
//
// One keep-alive connection, opened on first use and reopened once when the server closed it. Requests on one client
// are sequential (do not issue two concurrently). Errors are values: transport errors as they come from Asio/Beast;
// an unexpected HTTP status as `http_client_errc::status` (the response is in last_response()). No exceptions.
#include <turret/result.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace turret::clients {

enum class http_client_errc { status = 1, bad_response };
const boost::system::error_category& http_client_category() noexcept;
inline error_code make_error_code(http_client_errc e) noexcept { return {static_cast<int>(e), http_client_category()}; }

struct http_response {
  int status = 0;
  std::string body;
  std::string content_type;
  std::string request_id;  ///< x-request-id echoed by the server
};

class http_client {
 public:
  http_client(boost::asio::any_io_executor ex, std::string host, std::uint16_t port);
  ~http_client();
  http_client(const http_client&) = delete;
  http_client& operator=(const http_client&) = delete;

  /// One request; `target` is origin-form ("/v1/kv/a?ttl=1s"). Any status is a successful result.
  boost::asio::awaitable<result<http_response>> request(std::string_view method, std::string_view target,
                                                        std::string_view body = {}, std::string_view content_type = {});

  // Typed helpers (keys and values binary safe; keys are percent-encoded).
  boost::asio::awaitable<result<std::optional<std::string>>> get(std::string_view key);
  /// true = created (201), false = replaced (200).
  boost::asio::awaitable<result<bool>> set(std::string_view key, std::string_view value,
                                           std::optional<std::chrono::milliseconds> ttl = std::nullopt);
  /// true = deleted, false = did not exist.
  boost::asio::awaitable<result<bool>> del(std::string_view key);
  boost::asio::awaitable<result<long long>> incr(std::string_view key, long long by = 1);
  /// Remaining TTL in ms; nullopt = no expiry; error status 404 when the key does not exist.
  boost::asio::awaitable<result<std::optional<long long>>> ttl(std::string_view key);
  boost::asio::awaitable<result<long long>> publish(std::string_view channel, std::string_view message);

  const http_response& last_response() const noexcept { return last_; }

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
  http_response last_;
};


/// `turret-cli --protocol http`: runs one redis-style command (GET, SET [EX s|PX ms] [NX|XX], DEL, INCR, INCRBY,
/// DECR, TTL, PTTL, EXPIRE, PEXPIRE, PERSIST, MGET, MSET, PUBLISH, PING, EXISTS) as REST calls and prints
/// redis-cli-like output to `out` ("OK", "(nil)", "(integer) 3", raw values). Returns the process exit code
/// (0 ok, 1 error; errors are printed to `err`).
int http_cli_command(const std::string& host, std::uint16_t port, std::span<const std::string> argv, std::ostream& out,
                     std::ostream& err);

}  // namespace turret::clients

template <>
struct boost::system::is_error_code_enum<turret::clients::http_client_errc> : std::true_type {};
