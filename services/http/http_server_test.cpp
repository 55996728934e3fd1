// In-process tests of the HTTP listener: the in-process backend, its service as the pipeline, a runtime, raw sockets
// as clients.
#include <services/http/http_listener.hpp>
#include <turret/kv/admin.hpp>
#include <turret/kv/local.hpp>
#include <turret/ops/command_probe.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <gtest/gtest.h>

#include <poll.h>

#include <stdexcept>
#include <thread>

namespace turret::http_frontend {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

/// A pipeline layer in front of the backend that throws for the key "throw" (std::runtime_error) or "oom"
/// (std::bad_alloc). `immediate`: on the synchronous fast path; otherwise after a real suspension in call().
struct throwing_layer {
  using response_type = kv::response;
  using permit_type = any_permit;

  kv::pipeline_service inner;
  bool immediate = true;

  static void maybe_throw(const kv::request& r) {
    if (r.args.size() < 2) return;
    if (r.args[1] == "throw") throw std::runtime_error("thrown by the pipeline");
    if (r.args[1] == "oom") throw std::bad_alloc();
  }
  awaitable<result<any_permit>> ready(request_context& ctx) { return inner.ready(ctx); }
  awaitable<result<kv::response>> call(any_permit p, kv::request& r) {
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    maybe_throw(r);
    co_return co_await inner.call(std::move(p), r);
  }
  std::optional<result<kv::response>> try_call_now(kv::request& r) {
    if (!immediate) return std::nullopt;
    maybe_throw(r);
    return inner.try_call_now(r);
  }
};

class HttpServer : public ::testing::Test {
 protected:
  /// The listener's pipeline (the backend's service alone unless a test fixture says otherwise).
  virtual kv::pipeline_service pipeline() { return backend_->service(); }

  void SetUp() override {
    backend_ = std::make_shared<kv::local_backend>(kv::store_options{});
    kv::pipeline_service pipeline = this->pipeline();
    http_options o;
    o.header_timeout = std::chrono::milliseconds(300);
    o.max_header_bytes = 2048;
    o.max_body_bytes = 1024;
    listener_ = make_listener(kv::listener_env{"http", tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0), o,
                                                    rt_, shutdown_, backend_, pipeline});
    listener_->start();
    port_ = listener_->local_endpoint().port();
    thread_ = std::thread([this] { rt_.run(); });
  }
  void TearDown() override {
    listener_->stop_accepting();
    listener_->force_close();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    rt_.stop();
    thread_.join();
    listener_.reset();
  }

  /// Sends raw bytes, reads until the server closes (or, unless `wait_close`, until a response header arrived).
  /// Gives up after 3 s without data: a server that keeps a connection it should close fails the test, not hangs it.
  std::string exchange(std::string_view request, bool wait_close = true) {
    asio::io_context io;
    tcp::socket s(io);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    asio::write(s, asio::buffer(request));
    std::string out;
    char buf[4096];
    for (;;) {
      pollfd pfd{s.native_handle(), POLLIN, 0};
      if (::poll(&pfd, 1, 3000) != 1) {
        ADD_FAILURE() << "no response and no close within 3 s; got:\n" << out;
        break;
      }
      boost::system::error_code ec;
      std::size_t n = s.read_some(asio::buffer(buf), ec);
      out.append(buf, n);
      if (ec) break;
      if (!wait_close && out.find("\r\n\r\n") != std::string::npos) break;
    }
    return out;
  }

  runtime rt_{1};
  shutdown_coordinator shutdown_{std::chrono::seconds(1)};
  std::shared_ptr<kv::local_backend> backend_;
  std::unique_ptr<server::listener> listener_;
  std::thread thread_;
  unsigned short port_ = 0;
};

TEST_F(HttpServer, PutGetDeletePipelined) {
  const std::string reqs =
      "PUT /v1/kv/a%2Fb HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
      "PUT /v1/kv/a%2Fb HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz"
      "GET /v1/kv/a%2Fb HTTP/1.1\r\nHost: x\r\nx-request-id: rid-1\r\n\r\n"
      "DELETE /v1/kv/a%2Fb HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /v1/kv/a%2Fb HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  const std::string out = exchange(reqs);
  auto p1 = out.find("HTTP/1.1 201 Created");
  auto p2 = out.find("HTTP/1.1 200 OK", p1);
  auto p3 = out.find("x-request-id: rid-1\r\n\r\nxyz", p2);
  auto p4 = out.find("HTTP/1.1 204 No Content", p3);
  auto p5 = out.find("HTTP/1.1 404 Not Found", p4);
  EXPECT_NE(p1, std::string::npos) << out;
  EXPECT_NE(p2, std::string::npos) << out;
  EXPECT_NE(p3, std::string::npos) << out;
  EXPECT_NE(p4, std::string::npos) << out;
  EXPECT_NE(p5, std::string::npos) << out;
}

TEST_F(HttpServer, ChunkedAndExpectContinue) {
  const std::string out = exchange(
      "PUT /v1/kv/c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
      "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
      "GET /v1/kv/c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_NE(out.find("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created"), std::string::npos) << out;
  EXPECT_NE(out.find("\r\n\r\nabcde"), std::string::npos) << out;
}

TEST_F(HttpServer, Malformed) {
  EXPECT_NE(exchange("GARBAGE\r\n\r\n").find("HTTP/1.1 400"), std::string::npos);
  EXPECT_NE(exchange("GET / HTTP/1.1\r\nX-Big: " + std::string(4000, 'a') + "\r\n\r\n").find("HTTP/1.1 431"),
            std::string::npos);
  EXPECT_NE(exchange("PUT /v1/kv/x HTTP/1.1\r\nContent-Length: 5000\r\n\r\n").find("HTTP/1.1 413"), std::string::npos);
  EXPECT_NE(exchange("PUT /v1/kv/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n").find("HTTP/1.1 400"),
            std::string::npos);
  // Slow headers: the request never completes -> 408 and close.
  EXPECT_NE(exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n").find("HTTP/1.1 408"), std::string::npos);
  // The server is still up.
  EXPECT_NE(exchange("GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n").find("HTTP/1.1 200 OK"), std::string::npos);
}

/// Counts the responses (status lines) in what a connection received.
std::size_t responses(std::string_view out) {
  std::size_t n = 0;
  for (auto p = out.find("HTTP/1.1 "); p != std::string_view::npos; p = out.find("HTTP/1.1 ", p + 1)) ++n;
  return n;
}

/// The request that a smuggling payload hides in what the server would otherwise take for the next request.
constexpr std::string_view smuggled = "PUT /v1/kv/smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nPWNED!";

TEST_F(HttpServer, BadFramingIsRefusedAndNothingAfterItRuns) {
  struct payload {
    std::string_view fields;  ///< framing field lines of `GET /healthz`
    std::string_view body;    ///< what follows the header, before the smuggled request
    std::string_view status;
  };
  const payload payloads[] = {
      {"Transfer-Encoding: xchunked\r\n", "", "400 "},
      {"Transfer-Encoding: chunked, gzip\r\n", "", "400 "},
      {"Transfer-Encoding: chunked , identity\r\n", "", "400 "},
      {"Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n", "400 "},
      {"Transfer-Encoding: \r\n", "", "400 "},
      {"Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n", "501 "},
      {"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n", "501 "},
      {"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", "", "400 "},
      {"Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n", "0\r\n\r\n", "400 "},
      {"Content-Length: 5\r\nTransfer-Encoding: xchunked\r\n", "0\r\n\r\n", "400 "},
      {"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n", "400 "},
      {"Content-Length: 5\r\nContent-Length: 6\r\n", "", "400 "},
      {"Content-Length: 5, 6\r\n", "", "400 "},
      {"Content-Length: +5\r\n", "", "400 "},
  };
  for (const auto& p : payloads) {
    const std::string out = exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n" + std::string(p.fields) + "\r\n" +
                                     std::string(p.body) + std::string(smuggled));
    EXPECT_TRUE(out.starts_with("HTTP/1.1 " + std::string(p.status))) << p.fields << out;
    EXPECT_EQ(responses(out), 1u) << p.fields << out;  // answered, then closed (exchange read to the end)
    EXPECT_NE(out.find("Connection: close"), std::string::npos) << out;
  }
  // HTTP/1.0 with Transfer-Encoding: faulty framing even when it looks chunked.
  const std::string out =
      exchange("GET /healthz HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + std::string(smuggled));
  EXPECT_TRUE(out.starts_with("HTTP/1.1 400 ")) << out;
  EXPECT_EQ(responses(out), 1u) << out;
  // None of the smuggled PUTs was run.
  EXPECT_NE(exchange("GET /v1/kv/smuggled HTTP/1.1\r\nConnection: close\r\n\r\n").find("HTTP/1.1 404"),
            std::string::npos);
}

TEST_F(HttpServer, AcceptedFramingKeepsTheConnection) {
  // The same smuggled bytes after a body framed correctly are simply the next pipelined request.
  const std::string out =
      exchange("GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: , CHUNKED\t\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
               std::string(smuggled) + "GET /v1/kv/smuggled HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(responses(out), 3u) << out;
  EXPECT_TRUE(out.ends_with("\r\n\r\nPWNED!")) << out;
}

/// Polls the backend's client count (it drops once connections' coroutines have ended).
std::size_t clients_after(kv::backend& be, std::size_t want) {
  std::size_t n = 0;
  for (int i = 0; i < 200; ++i) {
    n = be.summary().clients;
    if (n == want) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return n;
}

TEST_F(HttpServer, SessionDetachedHoweverTheConnectionEnds) {
  asio::io_context io;
  tcp::socket open(io);
  open.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
  EXPECT_EQ(clients_after(*backend_, 1), 1u);  // an open connection is a client of the store
  // Connections that end after a response, after codec errors, after a 408, and with the client gone mid-body.
  exchange("GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n");
  exchange("GARBAGE\r\n\r\n");
  exchange("GET /healthz HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n");
  exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n");
  {
    tcp::socket gone(io);
    gone.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    asio::write(gone, asio::buffer(std::string_view("PUT /v1/kv/x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")));
  }
  EXPECT_EQ(clients_after(*backend_, 1), 1u);
  open.close();
  EXPECT_EQ(clients_after(*backend_, 0), 0u);
}

class HttpServerThrowing : public HttpServer, public ::testing::WithParamInterface<bool> {
 protected:
  kv::pipeline_service pipeline() override {
    return kv::pipeline_service{throwing_layer{backend_->service(), GetParam()}};
  }
};

TEST_P(HttpServerThrowing, AnExceptionBecomesAnErrorResponseAndTheConnectionGoesOn) {
  const std::string out = exchange(
      "GET /v1/kv/throw HTTP/1.1\r\nHost: x\r\n\r\n"
      "PUT /v1/kv/throw HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"
      "GET /v1/kv/oom HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /v1/kv:mget HTTP/1.1\r\nHost: x\r\nContent-Length: 18\r\n\r\n{\"keys\":[\"throw\"]}"
      "PUT /v1/kv/ok HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok"
      "GET /v1/kv/ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(clients_after(*backend_, 0), 0u);  // the connection's session went with it
  const std::string internal = R"({"error":{"code":"internal","message":"internal error"}})";
  const std::string oom = R"({"error":{"code":"unavailable","message":"out of memory"}})";
  std::size_t p = 0;
  for (std::string_view want : {"HTTP/1.1 500 Internal Server Error", internal.c_str(),  // GET
                                "HTTP/1.1 500 ", internal.c_str(),                       // PUT
                                "HTTP/1.1 503 Service Unavailable", oom.c_str(),         // bad_alloc
                                "HTTP/1.1 500 ", internal.c_str(),                       // MGET
                                "HTTP/1.1 201 Created", "HTTP/1.1 200 OK", "\r\n\r\nok"}) {
    p = out.find(want, p);
    ASSERT_NE(p, std::string::npos) << want << " in:\n" << out;
  }
  EXPECT_EQ(responses(out), 6u) << out;
  EXPECT_EQ(backend_->summary().keys, 1u);  // "ok" only: nothing was written for the requests that threw
}

INSTANTIATE_TEST_SUITE_P(Paths, HttpServerThrowing, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "Immediate" : "Suspended"; });

/// A command_probe in front of the backend: immediate (the fast path) or declining it (ready() + call()).
class HttpServerProbed : public HttpServer, public ::testing::WithParamInterface<bool> {
 protected:
  kv::pipeline_service pipeline() override {
    return kv::pipeline_service{ops::testing::command_probe{backend_->service(), log_, GetParam()}};
  }
  std::shared_ptr<ops::testing::command_log> log_ = std::make_shared<ops::testing::command_log>();
};

TEST_P(HttpServerProbed, EveryCommandCarriesItsResolvedMetadataToTheLayers) {
  const std::string out = exchange(
      "PUT /v1/kv/k HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv"
      "GET /v1/kv/k HTTP/1.1\r\nHost: x\r\n\r\n"
      "DELETE /v1/kv/k/ttl HTTP/1.1\r\nHost: x\r\n\r\n"
      "POST /v1/kv:mget HTTP/1.1\r\nHost: x\r\nContent-Length: 18\r\n\r\n{\"keys\":[\"k\",\"j\"]}"
      "GET /v1/kv?prefix=k HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(responses(out), 5u) << out;
  const ops::testing::expected_command want[] = {
      {"set", {"k"}, false, traffic_class::write},  // SET k v GET: the previous value makes a repeat differ
      {"get", {"k"}, true, traffic_class::read},    // the inline GET
      {"persist", {"k"}, false, traffic_class::write},  // its count differs on a repeat
      {"exists", {"k"}, true, traffic_class::read},  // PERSIST removed nothing: the key exists?
      {"mget", {"k", "j"}, true, traffic_class::read},
      {"scan", {}, true, traffic_class::read},
  };
  const auto seen = log_->take();
  ASSERT_EQ(seen.size(), std::size(want));
  for (std::size_t i = 0; i < seen.size(); ++i)
    EXPECT_EQ(ops::testing::differences(seen[i], want[i], GetParam()), "") << want[i].name;
}

INSTANTIATE_TEST_SUITE_P(Paths, HttpServerProbed, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "Immediate" : "Suspended"; });

// POST /admin/reload is a request through the listener's pipeline, of traffic class admin: every layer sees it (an
// auth layer decides who may send it). Here nothing answers it at the end (the core alone): not available.
TEST_P(HttpServerProbed, AdminReloadTravelsThePipelineAsAnAdminRequest) {
  const std::string out =
      exchange("POST /admin/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  EXPECT_NE(out.find("HTTP/1.1 404 Not Found"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("code":"not_available")"), std::string::npos) << out;
  const ops::testing::expected_command want{"turret|reload", {}, false, traffic_class::admin};
  const auto seen = log_->take();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(ops::testing::differences(seen[0], want, GetParam()), "");
}

/// A kv::admin_service at the end of the pipeline answering the reload with `reply_` (a JSON body, or an error).
class HttpServerAdmin : public HttpServer {
 protected:
  kv::pipeline_service pipeline() override {
    auto handler = std::make_shared<const kv::admin_handler>([this](kv::request& req) -> awaitable<result<kv::response>> {
      kv::response resp;
      if (reply_.starts_with("{")) {
        req.out.bulk(reply_);
      } else {
        req.out.error(reply_);
        resp.set_error(reply_);
      }
      co_return resp;
    });
    return kv::pipeline_service{kv::admin_service(backend_->service(), std::move(handler))};
  }
  std::string status_line(std::string_view reply) {
    reply_ = reply;
    out_ = exchange("POST /admin/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return out_.substr(0, out_.find("\r\n"));
  }
  std::string reply_;
  std::string out_;
};

TEST_F(HttpServerAdmin, ReloadOutcomesAsResponses) {
  EXPECT_EQ(status_line(R"({"reloaded": true})"), "HTTP/1.1 200 OK");
  EXPECT_TRUE(out_.ends_with("\r\n\r\n{\"reloaded\": true}")) << out_;
  EXPECT_EQ(status_line("INVALIDCONFIG t.yaml:3:5: server.colour: unknown key 'colour'"), "HTTP/1.1 400 Bad Request");
  EXPECT_NE(out_.find(R"({"error":{"code":"invalid_config","message":"t.yaml:3:5: server.colour: unknown key 'colour'"}})"),
            std::string::npos)
      << out_;
  EXPECT_EQ(status_line("RELOADFAILED listener c (resp 127.0.0.1:1): in use"), "HTTP/1.1 500 Internal Server Error");
  EXPECT_NE(out_.find(R"("code":"reload_failed","message":"listener c (resp 127.0.0.1:1): in use")"),
            std::string::npos)
      << out_;
  // Other requests still reach the core.
  const std::string put = exchange("PUT /v1/kv/k HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nv");
  EXPECT_NE(put.find("HTTP/1.1 201 Created"), std::string::npos) << put;
}

}  // namespace
}  // namespace turret::http_frontend
