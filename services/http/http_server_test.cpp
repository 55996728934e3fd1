// In-process tests of the HTTP listener: a real store, kv_service pipeline and runtime, raw sockets as clients.
#include <services/http/http_listener.hpp>
#include <services/kv/command_table.hpp>
#include <services/kv/store.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>

#include <thread>

namespace turret::http_frontend {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

class HttpServer : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::make_shared<kv::store>(kv::store_options{});
    auto table = kv::command_table::make_default();
    turretd::kv_pipeline pipeline{kv::kv_service(store_, table)};
    http_options o;
    o.header_timeout = std::chrono::milliseconds(300);
    o.max_header_bytes = 2048;
    o.max_body_bytes = 1024;
    listener_ = make_listener(turretd::listener_env{"http", tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0), o,
                                                    rt_, shutdown_, store_, pipeline});
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

  /// Sends raw bytes, reads until the server closes or `until` bytes of responses arrived (very simple client).
  std::string exchange(std::string_view request, bool wait_close = true) {
    asio::io_context io;
    tcp::socket s(io);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port_));
    asio::write(s, asio::buffer(request));
    std::string out;
    char buf[4096];
    for (;;) {
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
  std::shared_ptr<kv::store> store_;
  std::unique_ptr<turretd::listener> listener_;
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

}  // namespace
}  // namespace turret::http_frontend
