// Fuzz target: the REST front end as a client reaches it. The input is the bytes of one TCP connection: they go to a
// real HTTP listener (services/http/, started in process on 127.0.0.1 with an ephemeral port) whose requests pass
// Beast's parser with the listener's limits, the RFC 9112 framing rules, the router, the REST API and turretd's
// default pipeline (timeout, concurrency_limit) into the in-process key-value core, all on the server's own worker
// thread. The client half-closes after sending, so every request the bytes hold is answered and the server ends the
// connection. A socket is the narrowest entry point that runs all of that code unchanged.
//
// Checked per input: the server closes the connection within 10 s (no hang); what it sent is a sequence of
// well-formed HTTP/1.x responses (status line, header fields, a Content-Length body, or a chunked event stream that
// may end with the connection), each with x-request-id, an error status with a JSON error body, and never 500 (an
// exception inside request handling); once it closed, the connection's session leaves the store (CLIENT LIST would
// show it) and the listener counts no open connection. The keyspace is emptied after each input.
#include <services/http/http_listener.hpp>
#include <services/http/http_options.hpp>
#include <services/kv/store.hpp>
#include <turret/kv/local.hpp>
#include <services/turretd/config.hpp>
#include <turret/logging.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "check.hpp"

namespace {

using namespace turret;

/// The server, started once per process.
struct fuzz_server {
  runtime rt{1};
  shutdown_coordinator shutdown{std::chrono::seconds(1)};
  std::shared_ptr<kv::local_backend> backend = std::make_shared<kv::local_backend>(kv::store_options{});
  kv::store* store = &backend->engine();
  std::unique_ptr<turret::server::listener> listener;
  std::thread thread;
  std::uint16_t port = 0;

  fuzz_server() {
    spdlog::set_level(spdlog::level::off);  // codec errors are logged at info: keep the fuzzer's output readable
    auto regs = turretd::make_builtin_registries();
    auto cfg = turretd::parse_config_string(turretd::default_config_yaml(), *regs);
    kv::pipeline_service pipeline = turretd::kv_layer_registry::wrap_all(
        turretd::build_layers(cfg->pipeline(), *regs, layer_context{}), backend->service());
    http_frontend::http_options o;  // the defaults, except bodies: 64 KiB keeps 413 reachable with small inputs
    o.max_body_bytes = 64 * 1024;
    listener = http_frontend::make_listener(kv::listener_env{
        "http", boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0), o, rt, shutdown, backend,
        pipeline});
    listener->start();
    port = listener->local_endpoint().port();
    thread = std::thread([this] { rt.run(); });
  }
};

fuzz_server& the_server() {
  static fuzz_server* s = new fuzz_server;  // never destroyed: libFuzzer exits without unwinding
  return *s;
}

/// Waits until the previous connection is gone from the listener and the store (its session detached).
void wait_idle(fuzz_server& s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    bool idle;
    {
      std::lock_guard lock(s.store->mutex());
      idle = s.store->clients().empty();
    }
    if (idle && s.listener->connections() == 0) return;
    CHECK(std::chrono::steady_clock::now() < deadline, "a closed connection stays registered (session or slot)");
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

/// Sends `in` on a new connection, half-closes, and returns everything the server sends until it closes.
std::string exchange(std::uint16_t port, std::string_view in) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK(fd >= 0, "socket()");
  // Each connection from its own loopback source address (127.1.0.1 ... 127.1.255.254, round robin): at hundreds of
  // connections per second the closed ones' TIME_WAIT states would otherwise use up the ephemeral ports of one
  // address within a minute, and connect() would fail for want of a port, not because of the server.
  static std::uint32_t next_source = 0;
  sockaddr_in src{};
  src.sin_family = AF_INET;
  src.sin_addr.s_addr = htonl(0x7f010001u + (next_source++ % 0xfffeu));
  CHECK(::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) == 0, "bind() to a loopback source address");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // libFuzzer's timers interrupt system calls (EINTR): an interrupted connect() goes on in the background (POSIX), so
  // wait for it; an interrupted send() or recv() is repeated.
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    if (err == EINTR) {
      pollfd p{fd, POLLOUT, 0};
      while (::poll(&p, 1, 10000) < 0 && errno == EINTR) {
      }
      socklen_t len = sizeof err;
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    }
    if (err != 0) turret::fuzz::fail("connect() == 0", "connect() to the listener", std::strerror(err));
  }
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  std::string out;
  char buf[16384];
  // Send everything (the server may close early, on an error: then the rest is not wanted).
  for (std::size_t off = 0; off < in.size();) {
    const ssize_t n = ::send(fd, in.data() + off, in.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    off += static_cast<std::size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      ::close(fd);
      turret::fuzz::fail("", "the server did not close the connection within 10 s", out);
    }
    break;  // EOF or reset (an error answer may be followed by a reset: the client's unread bytes)
  }
  ::close(fd);
  return out;
}

bool iprefix(std::string_view s, std::string_view p) {
  if (s.size() < p.size()) return false;
  for (std::size_t i = 0; i < p.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) != p[i]) return false;
  return true;
}

/// Checks that `bytes` is a sequence of well-formed responses (the last one may be cut by the close only when it is
/// an event stream).
void check_responses(std::string_view bytes) {
  const std::string_view all = bytes;
  while (!bytes.empty()) {
    const auto head_end = bytes.find("\r\n\r\n");
    CHECK(head_end != std::string_view::npos, "response header not terminated", all.substr(0, 2000));
    std::string_view head = bytes.substr(0, head_end + 2);
    bytes.remove_prefix(head_end + 4);
    CHECK(head.starts_with("HTTP/1.1 ") || head.starts_with("HTTP/1.0 "), "bad status line", head);
    CHECK(head.size() >= 13 && head[12] == ' ', "bad status line", head);
    const int status = (head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0');
    CHECK(status >= 100 && status <= 599, "bad status code", head);
    CHECK(status != 500, "500: an exception inside request handling", all.substr(0, 2000));
    if (status == 100) continue;  // interim response: no fields, no body
    std::size_t content_length = std::string_view::npos;
    bool chunked = false, request_id = false, event_stream = false;
    const bool http10 = head.starts_with("HTTP/1.0 ");
    head.remove_prefix(head.find("\r\n") + 2);
    while (!head.empty()) {
      const auto eol = head.find("\r\n");
      const std::string_view field = head.substr(0, eol);
      head.remove_prefix(eol + 2);
      const auto colon = field.find(':');
      CHECK(colon != std::string_view::npos && colon > 0, "header field without a name", field);
      if (iprefix(field, "content-length:")) {
        content_length = 0;
        for (char c : field.substr(15)) {
          if (c == ' ') continue;
          CHECK(c >= '0' && c <= '9', "bad Content-Length", field);
          content_length = content_length * 10 + static_cast<std::size_t>(c - '0');
        }
      }
      if (iprefix(field, "transfer-encoding: chunked")) chunked = true;
      if (iprefix(field, "content-type: text/event-stream")) event_stream = true;
      if (iprefix(field, "x-request-id:")) request_id = true;
    }
    // An HTTP/1.0 event stream has neither length nor chunks: it ends when the server closes (RFC 9112 6.3, 8.).
    if (event_stream && !chunked && content_length == std::string_view::npos) {
      CHECK(http10, "an HTTP/1.1 event stream that is not chunked", all.substr(0, 2000));
      return;  // the rest of the bytes are its events, until the close
    }
    CHECK(request_id || status == 503, "response without x-request-id", all.substr(0, 2000));
    if (chunked) {  // the event stream: chunks until the terminating one or the close
      for (;;) {
        const auto eol = bytes.find("\r\n");
        if (eol == std::string_view::npos) return;  // cut by the close
        const std::size_t n = std::stoul(std::string(bytes.substr(0, eol)), nullptr, 16);
        bytes.remove_prefix(eol + 2);
        if (n == 0) {
          CHECK(bytes.starts_with("\r\n"), "chunked stream without its final CRLF", all.substr(0, 2000));
          bytes.remove_prefix(2);
          break;
        }
        if (bytes.size() < n + 2) return;  // cut by the close
        bytes.remove_prefix(n + 2);
      }
      continue;
    }
    const bool bodyless = status == 204 || status == 304;
    if (bodyless) continue;
    CHECK(content_length != std::string_view::npos, "response without Content-Length", all.substr(0, 2000));
    // A HEAD response has a Content-Length and no body: then the next bytes start the next status line (and taking
    // the body would not land on one).
    const bool next_is_response = bytes.starts_with("HTTP/1.");
    const bool body_then_response = bytes.size() >= content_length &&
                                    (bytes.size() == content_length || bytes.substr(content_length).starts_with("HTTP/1."));
    if (content_length > 0 && next_is_response && !body_then_response) continue;
    if (bytes.empty() && content_length > 0) continue;  // the last response answered a HEAD
    CHECK(bytes.size() >= content_length, "response body shorter than its Content-Length", all.substr(0, 2000));
    const std::string_view body = bytes.substr(0, content_length);
    bytes.remove_prefix(content_length);
    if (status >= 400) CHECK(body.starts_with("{\"error\":{\"code\":\""), "error without a JSON error body", body);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz_server& s = the_server();
  const std::string out = exchange(s.port, std::string_view(reinterpret_cast<const char*>(data), size));
  check_responses(out);
  wait_idle(s);
  // Empty the keyspace before libFuzzer's leak check: the table holds its entries as tagged pointers (hash bits in
  // the top bits), which LeakSanitizer does not recognise as references.
  std::lock_guard lock(s.store->mutex());
  for (int i = 0; i < s.store->databases(); ++i) s.store->db(i).clear();
  return 0;
}
