// turretd's server with named pipelines: each listener reads its pipeline through the server's handle, so a swap
// reaches an open connection at its next command and leaves the other pipelines alone.
#include <services/turretd/config.hpp>
#include <services/turretd/server.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include <gtest/gtest.h>

#include <string>
#include <thread>

using namespace turret;
namespace asio = boost::asio;

namespace {

/// A blocking inline-command RESP client: one line per reply (enough for PING and errors).
class line_client {
 public:
  explicit line_client(unsigned short port) : sock_(io_) {
    sock_.connect({asio::ip::make_address("127.0.0.1"), port});
  }
  std::string call(std::string_view command) {
    asio::write(sock_, asio::buffer(std::string(command) + "\r\n"));
    asio::read_until(sock_, buf_, "\r\n");
    std::string line;
    std::istream in(&buf_);
    std::getline(in, line);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
  }

 private:
  asio::io_context io_;
  asio::ip::tcp::socket sock_;
  asio::streambuf buf_;
};

TEST(TurretdServer, SwappingANamedPipelineReachesItsListenersOnly) {
  static auto regs = turretd::make_builtin_registries();
  auto cfg = turretd::parse_config_string(R"(
server: {threads: 2, shutdown_grace: 2s}
logging: {level: warn}
listeners:
  - {name: edge, protocol: resp, address: '127.0.0.1:0', pipeline: edge}
  - {name: plain, protocol: resp, address: '127.0.0.1:0'}
pipelines:
  edge: []
)",
                                          *regs, "test.yaml");
  turretd::server srv(cfg, regs);
  srv.start();
  std::thread runner([&] { srv.run(); });
  const auto eps = srv.endpoints();

  {
    line_client edge(eps.at(0).port()), plain(eps.at(1).port());
    EXPECT_EQ(edge.call("PING"), "+PONG");
    EXPECT_EQ(plain.call("PING"), "+PONG");
    ASSERT_NE(srv.pipeline("edge"), nullptr);
    EXPECT_EQ(srv.pipeline("nope"), nullptr);
    EXPECT_EQ(srv.pipeline("edge")->generation(), 1u);

    // A replacement "edge" built as the server builds its pipelines, around the same core. (internal: "-ERR <message>"
    // both before and after the front ends send the mapped errors.)
    const auto root = load_config_string("edge: [{layer: fault, abort: {percent: 100, error: internal}}]\n", "new.yaml");
    const turretd::pipeline_config next{"edge", root.child("edge")};
    auto layers = turretd::build_layers(next, *regs, srv.pipeline_context());
    EXPECT_EQ(srv.pipeline("edge")->swap(turretd::kv_layer_registry::wrap_all(layers, srv.core())), 2u);

    EXPECT_EQ(edge.call("PING"), "-ERR injected fault");  // the open connection, at its next command
    EXPECT_EQ(line_client(eps.at(0).port()).call("PING"), "-ERR injected fault");
    EXPECT_EQ(plain.call("PING"), "+PONG");  // the default pipeline is another handle
    EXPECT_EQ(srv.pipeline("default")->generation(), 1u);
  }
  srv.request_shutdown();
  runner.join();
}

}  // namespace
