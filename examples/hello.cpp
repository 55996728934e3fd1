// hello: the seed program (mini-redis's examples/hello_world.rs in C++).
// Connects to 127.0.0.1:6379 (or argv[1] host, argv[2] port), sets "hello" to "world", reads it back and prints it.
#include <cstdlib>
#include <iostream>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "turret/resp/client.hpp"

namespace asio = boost::asio;

asio::awaitable<int> hello(std::string host, std::uint16_t port) {
  auto client = co_await turret::resp::client::connect(co_await asio::this_coro::executor, host, port);
  if (!client) {
    std::cerr << "connect to " << host << ":" << port << " failed: " << client.error().message() << "\n";
    co_return 1;
  }
  if (auto r = co_await client->set("hello", "world"); !r) {
    std::cerr << "SET failed: " << r.error().message() << " " << client->last_error() << "\n";
    co_return 1;
  }
  auto result = co_await client->get("hello");
  if (!result) {
    std::cerr << "GET failed: " << result.error().message() << " " << client->last_error() << "\n";
    co_return 1;
  }
  std::cout << "got value from the server; result=" << result->value_or("(nil)") << std::endl;
  co_return 0;
}

int main(int argc, char** argv) {
  std::string host = argc > 1 ? argv[1] : "127.0.0.1";
  const auto port = static_cast<std::uint16_t>(argc > 2 ? std::atoi(argv[2]) : 6379);
  asio::io_context io;
  int rc = 1;
  asio::co_spawn(io, hello(host, port), [&](std::exception_ptr e, int r) { rc = e ? 1 : r; });
  io.run();
  return rc;
}
