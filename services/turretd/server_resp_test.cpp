// End-to-end sanity tests of the RESP front end: a real turretd server (port 0, in-process) driven over raw sockets.
#include <services/turretd/config.hpp>
#include <services/turretd/server.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using namespace turret;

namespace {

/// turretd in this process, on a free port, stopped (gracefully) at the end of the test.
class test_server {
 public:
  explicit test_server(std::string_view resp_section = "", std::string_view extra = "") {
    std::string yaml = "server: {threads: 2, shutdown_grace: 2s}\nlogging: {level: warn}\n"
                       "listeners:\n  - name: t\n    protocol: resp\n    address: 127.0.0.1:0\n";
    if (!resp_section.empty()) yaml += "    resp: " + std::string(resp_section) + "\n";
    yaml += "pipeline:\n  - layer: timeout\n    duration: 2s\n  - layer: concurrency_limit\n    max: 100\n";
    yaml += extra;
    static auto regs = turretd::make_builtin_registries();
    srv_ = std::make_unique<turretd::server>(turretd::parse_config_string(yaml, *regs, "test.yaml"), regs);
    srv_->start();
    port_ = srv_->endpoints().at(0).port();
    thread_ = std::thread([this] { exit_code_ = srv_->run(); });
  }
  ~test_server() { stop(); }

  void stop() {
    if (!thread_.joinable()) return;
    srv_->request_shutdown();
    thread_.join();
  }
  unsigned short port() const { return port_; }
  turretd::server& srv() { return *srv_; }
  int exit_code() const { return exit_code_; }

 private:
  std::unique_ptr<turretd::server> srv_;
  std::thread thread_;
  unsigned short port_ = 0;
  int exit_code_ = -1;
};

/// A blocking TCP client with a receive timeout.
class raw_client {
 public:
  explicit raw_client(unsigned short port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    timeval tv{2, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~raw_client() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }

  void send(std::string_view s) {
    while (!s.empty()) {
      const ssize_t n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      s.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  /// Reads until `n` bytes arrived, EOF, or the timeout.
  std::string read(std::size_t n) {
    std::string out;
    char buf[65536];
    while (out.size() < n) {
      const ssize_t r = ::recv(fd_, buf, std::min(sizeof buf, n - out.size()), 0);
      if (r <= 0) break;
      out.append(buf, static_cast<std::size_t>(r));
    }
    return out;
  }
  /// Sends `cmd` and reads exactly as many bytes as `expected` has.
  std::string roundtrip(std::string_view cmd, std::string_view expected) {
    send(cmd);
    return read(expected.size());
  }
  /// True when the server closed the connection (EOF) within the timeout.
  bool closed_by_peer() {
    char c;
    const ssize_t r = ::recv(fd_, &c, 1, 0);
    return r == 0 || (r < 0 && errno == ECONNRESET);
  }
  void set_timeout(std::chrono::milliseconds d) {
    timeval tv{static_cast<time_t>(d.count() / 1000), static_cast<suseconds_t>((d.count() % 1000) * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

std::string cmd(std::initializer_list<std::string_view> args) {
  std::string s = "*" + std::to_string(args.size()) + "\r\n";
  for (auto a : args) s += "$" + std::to_string(a.size()) + "\r\n" + std::string(a) + "\r\n";
  return s;
}

}  // namespace

TEST(RespFrontend, PingSetGet) {
  test_server s;
  raw_client c(s.port());
  ASSERT_TRUE(c.connected());
  EXPECT_EQ(c.roundtrip(cmd({"PING"}), "+PONG\r\n"), "+PONG\r\n");
  const std::string_view binary("v\r\n\0x", 5);
  EXPECT_EQ(c.roundtrip(cmd({"SET", "k", binary}), "+OK\r\n"), "+OK\r\n");
  const std::string expected = "$5\r\n" + std::string(binary) + "\r\n";
  EXPECT_EQ(c.roundtrip(cmd({"GET", "k"}), expected), expected);
  EXPECT_EQ(c.roundtrip(cmd({"GET", "missing"}), "$-1\r\n"), "$-1\r\n");
}

TEST(RespFrontend, InlineCommands) {
  test_server s;
  raw_client c(s.port());
  EXPECT_EQ(c.roundtrip("PING\r\n", "+PONG\r\n"), "+PONG\r\n");
  EXPECT_EQ(c.roundtrip("set a \"b c\"\r\nget a\n", "+OK\r\n$3\r\nb c\r\n"), "+OK\r\n$3\r\nb c\r\n");
}

TEST(RespFrontend, PipelinedRepliesInOrderAcrossFragments) {
  test_server s;
  raw_client c(s.port());
  std::string batch, expected;
  for (int i = 0; i < 200; ++i) {
    batch += cmd({"SET", "key" + std::to_string(i), std::to_string(i)});
    batch += cmd({"GET", "key" + std::to_string(i)});
    expected += "+OK\r\n$" + std::to_string(std::to_string(i).size()) + "\r\n" + std::to_string(i) + "\r\n";
  }
  // Send in awkward fragments (a command split across reads must still parse).
  for (std::size_t at = 0; at < batch.size(); at += 7) c.send(std::string_view(batch).substr(at, 7));
  EXPECT_EQ(c.read(expected.size()), expected);
}

TEST(RespFrontend, UnknownCommandAndArity) {
  test_server s;
  raw_client c(s.port());
  const std::string e1 = "-ERR unknown command 'FOO', with args beginning with: 'a' \r\n";
  EXPECT_EQ(c.roundtrip(cmd({"FOO", "a"}), e1), e1);
  const std::string e2 = "-ERR wrong number of arguments for 'get' command\r\n";
  EXPECT_EQ(c.roundtrip(cmd({"GET"}), e2), e2);
}

TEST(RespFrontend, ProtocolErrorRepliesThenCloses) {
  test_server s;
  raw_client c(s.port());
  const std::string expected = "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n";
  EXPECT_EQ(c.roundtrip(cmd({"PING"}) + "*1\r\n$abc\r\n", expected), expected);
  EXPECT_TRUE(c.closed_by_peer());
  // The server is still up for others.
  raw_client d(s.port());
  EXPECT_EQ(d.roundtrip(cmd({"PING"}), "+PONG\r\n"), "+PONG\r\n");
}

TEST(RespFrontend, HugeMultibulkHeaderDoesNotAllocateUpFront) {
  test_server s;
  raw_client c(s.port());
  c.send("*1000000\r\n$3\r\nfoo\r\n");  // waits for more arguments
  raw_client d(s.port());
  EXPECT_EQ(d.roundtrip(cmd({"PING"}), "+PONG\r\n"), "+PONG\r\n");
  const std::string e = "-ERR Protocol error: invalid bulk length\r\n";
  raw_client x(s.port());
  EXPECT_EQ(x.roundtrip("*1\r\n$1000000000000\r\n", e), e);
}

TEST(RespFrontend, QuitClosesAfterReply) {
  test_server s;
  raw_client c(s.port());
  EXPECT_EQ(c.roundtrip(cmd({"QUIT"}) + cmd({"PING"}), "+OK\r\n"), "+OK\r\n");
  EXPECT_TRUE(c.closed_by_peer());
}

TEST(RespFrontend, MaxClients) {
  test_server s("{maxclients: 2}");
  raw_client a(s.port()), b(s.port());
  EXPECT_EQ(a.roundtrip(cmd({"PING"}), "+PONG\r\n"), "+PONG\r\n");
  EXPECT_EQ(b.roundtrip(cmd({"PING"}), "+PONG\r\n"), "+PONG\r\n");
  raw_client c(s.port());
  const std::string e = "-ERR max number of clients reached\r\n";
  EXPECT_EQ(c.read(e.size()), e);
  EXPECT_TRUE(c.closed_by_peer());
}

TEST(RespFrontend, IdleTimeoutClosesButNotSubscribers) {
  test_server s("{timeout: 1}");
  raw_client idle(s.port()), sub(s.port());
  const std::string subscribed = "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";
  EXPECT_EQ(sub.roundtrip(cmd({"SUBSCRIBE", "ch"}), subscribed), subscribed);
  EXPECT_EQ(idle.roundtrip(cmd({"PING"}), "+PONG\r\n"), "+PONG\r\n");
  idle.set_timeout(5s);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(idle.closed_by_peer());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 900ms);
  // The subscriber is still there and receives messages.
  raw_client pub(s.port());
  EXPECT_EQ(pub.roundtrip(cmd({"PUBLISH", "ch", "hi"}), ":1\r\n"), ":1\r\n");
  const std::string msg = "*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n";
  EXPECT_EQ(sub.read(msg.size()), msg);
}

TEST(RespFrontend, PubSubAcrossThreadsAndResp3Push) {
  test_server s;
  raw_client sub(s.port()), sub3(s.port()), pub(s.port());
  const std::string subscribed = "*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n";
  EXPECT_EQ(sub.roundtrip(cmd({"SUBSCRIBE", "c"}), subscribed), subscribed);
  sub3.send(cmd({"HELLO", "3"}));
  sub3.set_timeout(300ms);
  sub3.read(1 << 20);  // the HELLO map (contents checked by the differential tests)
  sub3.set_timeout(2s);
  const std::string subscribed3 = ">3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n";
  EXPECT_EQ(sub3.roundtrip(cmd({"SUBSCRIBE", "c"}), subscribed3), subscribed3);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(pub.roundtrip(cmd({"PUBLISH", "c", std::to_string(i)}), ":2\r\n"), ":2\r\n");
  }
  std::string expect2, expect3;
  for (int i = 0; i < 100; ++i) {
    const auto n = std::to_string(i);
    expect2 += "*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$" + std::to_string(n.size()) + "\r\n" + n + "\r\n";
    expect3 += ">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$" + std::to_string(n.size()) + "\r\n" + n + "\r\n";
  }
  EXPECT_EQ(sub.read(expect2.size()), expect2);
  EXPECT_EQ(sub3.read(expect3.size()), expect3);
}

TEST(RespFrontend, PublishToSelfInResp3PrecedesTheReply) {
  test_server s;
  raw_client c(s.port());
  c.send(cmd({"HELLO", "3"}));
  c.set_timeout(300ms);
  c.read(1 << 20);
  c.set_timeout(2s);
  const std::string expected =
      ">3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n:1\r\n";
  EXPECT_EQ(c.roundtrip(cmd({"SUBSCRIBE", "c"}) + cmd({"PUBLISH", "c", "x"}), expected), expected);
}

TEST(RespFrontend, SubscriberThatNeverReadsIsClosedAtTheHardLimit) {
  test_server s("{client_output_buffer_limit_pubsub: {hard: 1mb, soft: 0, soft_seconds: 0}}");
  raw_client sub(s.port()), pub(s.port());
  const std::string subscribed = "*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n";
  EXPECT_EQ(sub.roundtrip(cmd({"SUBSCRIBE", "c"}), subscribed), subscribed);
  const std::string payload(64 * 1024, 'x');
  // The subscriber never reads: kernel buffers fill, then the outbox passes 1mb and the subscriber is closed.
  int receivers = 1;
  for (int i = 0; i < 2000 && receivers == 1; ++i) {
    const std::string r = pub.roundtrip(cmd({"PUBLISH", "c", payload}), ":1\r\n");
    receivers = r == ":1\r\n" ? 1 : 0;
  }
  EXPECT_EQ(receivers, 0);
}

TEST(RespFrontend, ClientKillFromAnotherConnection) {
  test_server s;
  raw_client victim(s.port()), killer(s.port());
  EXPECT_EQ(victim.roundtrip(cmd({"CLIENT", "SETNAME", "victim"}), "+OK\r\n"), "+OK\r\n");
  const std::string id_reply = victim.roundtrip(cmd({"CLIENT", "ID"}), ":1\r\n");
  ASSERT_GE(id_reply.size(), 3u);
  const std::string id = id_reply.substr(1, id_reply.find('\r') - 1);
  killer.send(cmd({"CLIENT", "KILL", "ID", id}));
  EXPECT_EQ(killer.read(4), ":1\r\n");
  EXPECT_TRUE(victim.closed_by_peer());
}

TEST(RespFrontend, GracefulShutdownClosesIdleConnections) {
  test_server s;
  raw_client c(s.port());
  EXPECT_EQ(c.roundtrip(cmd({"PING"}), "+PONG\r\n"), "+PONG\r\n");
  const auto t0 = std::chrono::steady_clock::now();
  s.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms);  // idle connections do not wait for the grace
  EXPECT_EQ(s.exit_code(), 0);
  EXPECT_TRUE(c.closed_by_peer());
}

TEST(RespFrontend, ShutdownCommandStopsTheServer) {
  test_server s;
  raw_client c(s.port());
  c.send(cmd({"SHUTDOWN", "NOSAVE"}));
  EXPECT_TRUE(c.closed_by_peer());
  s.stop();
  EXPECT_EQ(s.exit_code(), 0);
}
