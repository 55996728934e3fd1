#include "connect.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <variant>
#include <vector>

namespace turret::resp::detail {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using namespace asio::experimental::awaitable_operators;

asio::awaitable<error_code> connect_within(tcp::socket& sock, tcp::resolver& resolver, asio::steady_timer& timer,
                                           const std::string& host, std::uint16_t port,
                                           std::chrono::milliseconds timeout) {
  constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);
  error_code ec;
  const auto addr = asio::ip::make_address(host, ec);
  std::vector<tcp::endpoint> targets;
  if (!ec) {
    targets.emplace_back(addr, port);
  } else {
    auto [rec, res] = co_await resolver.async_resolve(host, std::to_string(port), nothrow);
    if (rec) co_return rec;
    for (const auto& e : res) targets.push_back(e.endpoint());
  }
  if (targets.empty()) co_return asio::error::host_not_found;
  for (const auto& ep : targets) {
    error_code ignored;
    sock.close(ignored);
    timer.expires_after(timeout);
    auto which = co_await (sock.async_connect(ep, nothrow) || timer.async_wait(nothrow));
    if (which.index() == 1) {
      ec = asio::error::timed_out;
      continue;
    }
    ec = std::get<0>(std::get<0>(which));
    if (ec) continue;
    sock.set_option(tcp::no_delay(true), ignored);
    co_return error_code{};
  }
  co_return ec;
}

}  // namespace turret::resp::detail
