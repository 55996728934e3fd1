// resp::client against a REAL redis-server (started on a free port per test suite, stopped in teardown), plus a
// differential check of request_parser's protocol errors against the same server.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "turret/resp/client.hpp"
#include "turret/resp/parser.hpp"

namespace asio = boost::asio;
using namespace turret::resp;
using namespace std::chrono_literals;

#define CO_ASSERT(cond)                      \
  do {                                       \
    if (!(cond)) {                           \
      ADD_FAILURE() << "assertion: " #cond;  \
      co_return;                             \
    }                                        \
  } while (0)

namespace {

std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

int connect_raw(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

class redis_server {
 public:
  void start() {
    for (int attempt = 0; attempt < 5 && pid_ <= 0; ++attempt) {
      port_ = free_port();
      const std::string port = std::to_string(port_);
      pid_t pid = ::fork();
      if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive a crashed test binary
        ::execl("/usr/bin/redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning", "--logfile", "/dev/null",
                static_cast<char*>(nullptr));
        ::_exit(127);
      }
      for (int i = 0; i < 100; ++i) {
        int fd = connect_raw(port_);
        if (fd >= 0) {
          ::close(fd);
          pid_ = pid;
          return;
        }
        int st = 0;
        if (::waitpid(pid, &st, WNOHANG) == pid) break;  // exited (port taken?): retry
        std::this_thread::sleep_for(20ms);
      }
      if (pid_ <= 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
    }
  }
  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  std::uint16_t port() const { return port_; }
  bool running() const { return pid_ > 0; }

 private:
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

redis_server* server = nullptr;

class RespClient : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server = new redis_server;
    server->start();
  }
  static void TearDownTestSuite() {
    server->stop();
    delete server;
    server = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(server->running()) << "could not start /usr/bin/redis-server"; }

  // Runs a coroutine test body to completion.
  template <class F>
  void run(F body) {
    asio::io_context io;
    bool done = false;
    asio::co_spawn(io, body(), [&](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
      done = true;
    });
    io.run_for(20s);
    EXPECT_TRUE(done) << "test coroutine did not finish";
  }
  asio::awaitable<turret::result<client>> connect() {
    co_return co_await client::connect(co_await asio::this_coro::executor, "127.0.0.1", server->port());
  }
};

asio::awaitable<void> sleep_for(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  co_await t.async_wait(asio::use_awaitable);
}

}  // namespace

TEST_F(RespClient, SetGetDel) {
  run([&]() -> asio::awaitable<void> {
    auto c = co_await connect();
    CO_ASSERT(c.has_value());
    EXPECT_TRUE(c->connected());
    auto pong = co_await c->ping();
    CO_ASSERT(pong.has_value());
    EXPECT_EQ(*pong, "PONG");
    CO_ASSERT((co_await c->set("hello", "world")).has_value());
    auto v = co_await c->get("hello");
    CO_ASSERT(v.has_value());
    EXPECT_EQ(v->value_or("?"), "world");
    auto missing = co_await c->get("no-such-key");
    CO_ASSERT(missing.has_value());
    EXPECT_FALSE(missing->has_value());
    CO_ASSERT((co_await c->set("k2", "v")).has_value());
    const std::vector<std::string_view> keys{"hello", "k2", "absent"};
    auto n = co_await c->del(keys);
    CO_ASSERT(n.has_value());
    EXPECT_EQ(*n, 2);
    auto n0 = co_await c->del("hello");
    CO_ASSERT(n0.has_value());
    EXPECT_EQ(*n0, 0);
  });
}

TEST_F(RespClient, Expiry) {
  run([&]() -> asio::awaitable<void> {
    auto c = co_await connect();
    CO_ASSERT(c.has_value());
    CO_ASSERT((co_await c->set("exp", "soon", std::chrono::milliseconds(100))).has_value());
    auto ttl = co_await c->command("PTTL", "exp");
    CO_ASSERT(ttl.has_value());
    EXPECT_GT(ttl->integer, 0);
    EXPECT_LE(ttl->integer, 100);
    EXPECT_TRUE((co_await c->get("exp"))->has_value());
    co_await sleep_for(200ms);
    EXPECT_FALSE((co_await c->get("exp"))->has_value());
  });
}

TEST_F(RespClient, BinaryValuesAndKeys) {
  run([&]() -> asio::awaitable<void> {
    auto c = co_await connect();
    CO_ASSERT(c.has_value());
    std::string bin;
    for (int i = 0; i < 256; ++i) bin.push_back(static_cast<char>(i));
    bin += "\r\n*1\r\n$-1\r\n";
    const std::string key = std::string("k\0\r\n", 4);
    CO_ASSERT((co_await c->set(key, bin)).has_value());
    auto v = co_await c->get(key);
    CO_ASSERT(v.has_value() && v->has_value());
    EXPECT_EQ(**v, bin);
    std::string big(5 * 1024 * 1024 + 3, 'x');
    for (std::size_t i = 0; i < big.size(); i += 4093) big[i] = static_cast<char>(i);
    CO_ASSERT((co_await c->set("big", big)).has_value());
    auto b = co_await c->get("big");
    CO_ASSERT(b.has_value() && b->has_value());
    EXPECT_TRUE(**b == big);
  });
}

TEST_F(RespClient, ErrorsAreValues) {
  run([&]() -> asio::awaitable<void> {
    auto c = co_await connect();
    CO_ASSERT(c.has_value());
    auto r = co_await c->command("NOSUCHCOMMAND", "x");
    CO_ASSERT(r.has_value());
    EXPECT_TRUE(r->is_error());
    EXPECT_EQ(r->str.rfind("ERR unknown command 'NOSUCHCOMMAND'", 0), 0u) << r->str;
    CO_ASSERT((co_await c->set("str", "abc")).has_value());
    auto inc = co_await c->command("INCR", "str");
    EXPECT_EQ(inc->str, "ERR value is not an integer or out of range");
    // A typed call that gets an error reply.
    CO_ASSERT((co_await c->command("LPUSH", "list", "a")).has_value());
    auto g = co_await c->get("list");
    CO_ASSERT(!g.has_value());
    EXPECT_EQ(g.error(), make_error_code(client_errc::server_error));
    EXPECT_EQ(c->last_error(), "WRONGTYPE Operation against a key holding the wrong kind of value");
    // The connection is still usable.
    EXPECT_TRUE((co_await c->ping()).has_value());
  });
}

TEST_F(RespClient, ConnectionRefused) {
  run([&]() -> asio::awaitable<void> {
    auto port = free_port();
    auto c = co_await client::connect(co_await asio::this_coro::executor, "127.0.0.1", port);
    EXPECT_FALSE(c.has_value());
    client none;
    auto r = co_await none.get("x");
    CO_ASSERT(!r.has_value());
    EXPECT_EQ(r.error(), make_error_code(client_errc::not_connected));
  });
}

TEST_F(RespClient, Pipelining) {
  run([&]() -> asio::awaitable<void> {
    auto c = co_await connect();
    CO_ASSERT(c.has_value());
    pipeline p;
    p.add({"DEL", "counter"});
    for (int i = 0; i < 1000; ++i) p.add({"INCR", "counter"});
    p.add({"GET", "counter"});
    p.add({"BADCMD"});
    p.add({"ECHO", std::string_view("a\0b", 3)});
    auto r = co_await c->exec(p);
    CO_ASSERT(r.has_value());
    CO_ASSERT(r->size() == 1004);
    for (int i = 1; i <= 1000; ++i) EXPECT_EQ((*r)[i].integer, i);
    EXPECT_EQ((*r)[1001].str, "1000");
    EXPECT_TRUE((*r)[1002].is_error());
    EXPECT_EQ((*r)[1003].str, std::string("a\0b", 3));
    // RESP3 through HELLO 3: a map reply, then typed calls still work.
    auto h = co_await c->command("HELLO", "3");
    CO_ASSERT(h.has_value());
    EXPECT_EQ(h->type, value::kind::map);
    auto missing = co_await c->get("nope");
    CO_ASSERT(missing.has_value());
    EXPECT_FALSE(missing->has_value());
  });
}

TEST_F(RespClient, PublishSubscribe) {
  run([&]() -> asio::awaitable<void> {
    auto sub_client = co_await connect();
    auto pub = co_await connect();
    CO_ASSERT(sub_client.has_value() && pub.has_value());
    std::vector<std::string> chans{"news", "sport"};
    auto sub = co_await sub_client->subscribe(chans);
    CO_ASSERT(sub.has_value());
    EXPECT_FALSE(sub_client->connected());
    EXPECT_EQ(sub->channels(), (std::vector<std::string>{"news", "sport"}));
    auto n = co_await pub->publish("news", "hello");
    CO_ASSERT(n.has_value());
    EXPECT_EQ(*n, 1);
    std::string bin("bin\0\r\nary", 9);
    EXPECT_EQ(*(co_await pub->publish("sport", bin)), 1);
    EXPECT_EQ(*(co_await pub->publish("other", "x")), 0);
    auto m1 = co_await sub->next_message();
    CO_ASSERT(m1.has_value());
    EXPECT_EQ(m1->kind, "message");
    EXPECT_EQ(m1->channel, "news");
    EXPECT_EQ(m1->payload, "hello");
    auto m2 = co_await sub->next_message();
    CO_ASSERT(m2.has_value());
    EXPECT_EQ(m2->channel, "sport");
    EXPECT_EQ(m2->payload, bin);
    // Patterns on the same connection.
    std::vector<std::string> pats{"n*"};
    CO_ASSERT((co_await sub->psubscribe(pats)).has_value());
    EXPECT_EQ(*(co_await pub->publish("news", "both")), 2);
    auto a = co_await sub->next_message();
    auto b = co_await sub->next_message();
    CO_ASSERT(a.has_value() && b.has_value());
    EXPECT_EQ(a->kind, "message");
    EXPECT_EQ(b->kind, "pmessage");
    EXPECT_EQ(b->pattern, "n*");
    EXPECT_EQ(b->channel, "news");
    EXPECT_EQ(b->payload, "both");
    CO_ASSERT((co_await sub->unsubscribe()).has_value());
    EXPECT_TRUE(sub->channels().empty());
    EXPECT_EQ(*(co_await pub->publish("news", "pattern only")), 1);
    auto c = co_await sub->next_message();
    CO_ASSERT(c.has_value());
    EXPECT_EQ(c->kind, "pmessage");
    // Server closes the connection: the stream ends with connection_closed.
    auto killer = co_await connect();
    CO_ASSERT(killer.has_value());
    co_await killer->command("CLIENT", "KILL", "TYPE", "pubsub");
    auto end = co_await sub->next_message();
    CO_ASSERT(!end.has_value());
    EXPECT_EQ(end.error(), make_error_code(client_errc::connection_closed));
  });
}

TEST_F(RespClient, PatternSubscribeFromClient) {
  run([&]() -> asio::awaitable<void> {
    auto sc = co_await connect();
    auto pub = co_await connect();
    CO_ASSERT(sc.has_value() && pub.has_value());
    std::vector<std::string> pats{"ev.*"};
    auto sub = co_await sc->psubscribe(pats);
    CO_ASSERT(sub.has_value());
    EXPECT_EQ(sub->patterns(), std::vector<std::string>{"ev.*"});
    EXPECT_EQ(*(co_await pub->publish("ev.1", "one")), 1);
    auto m = co_await sub->next_message();
    CO_ASSERT(m.has_value());
    EXPECT_EQ(m->pattern, "ev.*");
    EXPECT_EQ(m->channel, "ev.1");
    EXPECT_EQ(m->payload, "one");
  });
}

// Differential: what redis-server replies to PING commands followed by malformed input, vs. what a front end built
// on request_parser replies (+PONG per complete PING, then -ERR <error_text> and close).
TEST_F(RespClient, ParserErrorsMatchRedisServer) {
  const std::vector<std::string> inputs = {
      "PING\r\n*abc\r\n",
      "*1\r\n$4\r\nPING\r\n*2147483648\r\n",
      "PING\r\nPING\r\n*1\r\n$x\r\n",
      "*1\r\n$-1\r\n",
      "*1\r\n$536870913\r\n",
      "*1\r\nx4\r\n",
      "*1\r\n\r\n",
      "*1\r\n\n\r\n",
      "*2\r\n$4\r\nPING\r\n:1\r\n",
      "PING\r\nset a \"b\r\n",
      "set a 'b'c\r\n",
      std::string(70000, 'a'),
      "*" + std::string(70000, '1'),
      "*1\r\n$" + std::string(70000, '1'),
      "*1\r\n$" + std::string(70000, '1') + "\r\n",
      "*0\r\n*-1\r\n\r\n  \r\nPING\r\n*1\r\n$4\r\nPINGXX*1\r\n$4\r\nPING\r\n*1\r\n$01\r\n",
      std::string("*1\r\n\0x\r\n", 8) + std::string(70000, 'z'),
  };
  for (const auto& in : inputs) {
    // Expected by our parser.
    request_parser p;
    std::string expect;
    std::string_view rest = in;
    bool closed = false;
    for (;;) {
      auto st = p.parse(rest);
      rest.remove_prefix(p.consumed());
      if (st == request_parser::status::ok) {
        expect += "+PONG\r\n";
        continue;
      }
      if (st == request_parser::status::error) {
        expect += "-ERR " + p.error_text() + "\r\n";
        closed = true;
      }
      break;
    }
    // Actual redis-server.
    int fd = connect_raw(server->port());
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::send(fd, in.data(), in.size(), MSG_NOSIGNAL), static_cast<ssize_t>(in.size()));
    timeval tv{0, 300000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string got;
    bool eof = false;
    char buf[4096];
    for (;;) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n == 0) {
        eof = true;
        break;
      }
      if (n < 0) break;
      got.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    EXPECT_EQ(got, expect) << "input: " << in.substr(0, 60);
    EXPECT_EQ(eof, closed) << "input: " << in.substr(0, 60);
  }
}
