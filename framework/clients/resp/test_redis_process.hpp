#pragma once
// Test support for the RESP client tests: a free loopback port, and a real redis-server on it (started by the
// constructor, killed by stop() or the destructor, so a failing test leaves no server behind), and a coroutine run to
// completion within a bound.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace turret::resp::testing {

using namespace std::chrono_literals;
namespace asio = boost::asio;

inline std::uint16_t free_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

inline bool can_connect(std::uint16_t port) {
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  boost::system::error_code ec;
  s.connect({asio::ip::make_address("127.0.0.1"), port}, ec);
  return !ec;
}

/// redis-server without persistence on `port`; killed (SIGKILL) by stop() or the destructor.
class redis_process {
 public:
  explicit redis_process(std::uint16_t port) : port_(port) { start(); }
  ~redis_process() { stop(); }
  void start() {
    const std::string p = std::to_string(port_);
    std::vector<std::string> argv_s{"redis-server", "--port", p, "--bind", "127.0.0.1", "--save", "",
                                    "--appendonly", "no", "--dir", "/tmp", "--loglevel", "warning", "--logfile", ""};
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawnp(&pid_, "redis-server", nullptr, nullptr, argv.data(), environ) != 0) pid_ = -1;
    for (int i = 0; i < 500 && pid_ > 0 && !can_connect(port_); ++i) std::this_thread::sleep_for(10ms);
  }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }
  bool running() const { return pid_ > 0 && can_connect(port_); }

 private:
  std::uint16_t port_;
  pid_t pid_ = -1;
};

/// Runs `f` (a coroutine factory) on `io` until its coroutine completes, at most `limit`: whether it completed.
template <class F>
bool run_coroutine(asio::io_context& io, F& f, std::chrono::milliseconds limit) {
  bool done = false;
  asio::co_spawn(io, [&]() -> asio::awaitable<void> {
    co_await f();
    done = true;
  }, asio::detached);
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done && std::chrono::steady_clock::now() < until) io.run_for(10ms);
  return done;
}

}  // namespace turret::resp::testing
