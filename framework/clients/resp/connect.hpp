#pragma once
// Private to the RESP clients (resp_upstream.cpp, resp_subscriber.cpp): one connect of a client connection.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace turret::resp::detail {

/// Connects `sock` to `host` (an IP address, or a name resolved now with `resolver`) on `port`, each address given
/// `timeout` (timed with `timer`), and sets TCP_NODELAY. Returns the last error when no address connects; cancelling
/// the resolver and the timer and closing the socket (a stop) end it early.
boost::asio::awaitable<boost::system::error_code> connect_within(boost::asio::ip::tcp::socket& sock,
                                                                 boost::asio::ip::tcp::resolver& resolver,
                                                                 boost::asio::steady_timer& timer,
                                                                 const std::string& host, std::uint16_t port,
                                                                 std::chrono::milliseconds timeout);

}  // namespace turret::resp::detail
