// Hot reload: what a reload finds changed (diff_configs), what it reports (reload_summary_json), and the server's
// reload() on a real file: an invalid file changes nothing, a valid one swaps pipelines, carries layer state over,
// starts and drains listeners.
#include <services/turretd/config.hpp>
#include <services/turretd/reload.hpp>
#include <services/turretd/server.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <unistd.h>

using namespace turret;
using namespace turret::turretd;
namespace asio = boost::asio;

namespace {

registries& regs() {
  static auto r = make_builtin_registries();
  return *r;
}

std::shared_ptr<const config> parse(std::string_view yaml) { return parse_config_string(yaml, regs(), "t.yaml"); }

constexpr std::string_view base = R"(
server: {threads: 1, shutdown_grace: 1s}
logging: {level: warn}
listeners:
  - {name: a, protocol: resp, address: '127.0.0.1:0'}
  - {name: b, protocol: resp, address: '127.0.0.1:0', pipeline: edge}
pipeline:
  - {layer: timeout, duration: 2s}
pipelines:
  edge:
    - {layer: concurrency_limit, max: 5}
)";

std::string replace(std::string s, std::string_view from, std::string_view to) {
  const auto at = s.find(from);
  if (at == std::string::npos) throw std::logic_error("no '" + std::string(from) + "' in the test config");
  s.replace(at, from.size(), to);
  return s;
}

using names = std::vector<std::string>;

}  // namespace

TEST(ReloadDiff, SameFileChangesNothing) {
  const auto d = diff_configs(*parse(base), *parse(base));
  EXPECT_EQ(d.listeners_unchanged, (names{"a", "b"}));
  EXPECT_TRUE(d.listeners_added.empty() && d.listeners_removed.empty() && d.listeners_restarted.empty());
  EXPECT_EQ(d.pipelines_unchanged, (names{"default", "edge"}));
  EXPECT_TRUE(d.pipelines_added.empty() && d.pipelines_removed.empty() && d.pipelines_changed.empty());
  EXPECT_TRUE(d.not_applied.empty());
  EXPECT_FALSE(d.log_level_changed);
}

TEST(ReloadDiff, FormattingDoesNotCountAsAChange) {
  std::string block = replace(std::string(base), "    - {layer: concurrency_limit, max: 5}\n",
                              "    - layer: concurrency_limit   # the same entry, block style\n      max: 5\n");
  const auto d = diff_configs(*parse(base), *parse(block));
  EXPECT_EQ(d.pipelines_unchanged, (names{"default", "edge"}));
}

TEST(ReloadDiff, ListenersByName) {
  std::string next = replace(std::string(base), "  - {name: a, protocol: resp, address: '127.0.0.1:0'}\n",
                             "  - {name: c, protocol: resp, address: '127.0.0.1:0'}\n");
  next = replace(next, "pipeline: edge}", "pipeline: edge, resp: {tcp_nodelay: false}}");
  const auto d = diff_configs(*parse(base), *parse(next));
  EXPECT_EQ(d.listeners_added, (names{"c"}));
  EXPECT_EQ(d.listeners_removed, (names{"a"}));
  EXPECT_EQ(d.listeners_restarted, (names{"b"}));  // an option changed
  EXPECT_TRUE(d.listeners_unchanged.empty());

  // Another pipeline is a restart too (a listener reads one handle for its life).
  const std::string moved = replace(std::string(base), "'127.0.0.1:0', pipeline: edge}", "'127.0.0.1:0'}");
  EXPECT_EQ(diff_configs(*parse(base), *parse(moved)).listeners_restarted, (names{"b"}));
}

TEST(ReloadDiff, Pipelines) {
  std::string next = replace(std::string(base), "max: 5", "max: 6");
  next += "  spare: []\n";
  const auto d = diff_configs(*parse(base), *parse(next));
  EXPECT_EQ(d.pipelines_changed, (names{"edge"}));
  EXPECT_EQ(d.pipelines_added, (names{"spare"}));
  EXPECT_EQ(d.pipelines_unchanged, (names{"default"}));
  const auto back = diff_configs(*parse(next), *parse(base));
  EXPECT_EQ(back.pipelines_removed, (names{"spare"}));
}

TEST(ReloadDiff, ServerWideSettingsAreReportedNotApplied) {
  std::string next = replace(std::string(base), "threads: 1, shutdown_grace: 1s", "threads: 2, shutdown_grace: 3s");
  next = replace(next, "level: warn", "level: debug");
  next += "store: {databases: 4, hz: 20}\n";
  next = replace(next, "  - {name: a, protocol: resp, address: '127.0.0.1:0'}",
                 "  - {name: a, protocol: resp, address: '127.0.0.1:0', resp: {maxclients: 10}}");
  next = replace(next, "pipeline: edge}", "pipeline: edge, resp: {maxclients: 10}}");  // the same on every listener
  const auto d = diff_configs(*parse(base), *parse(next));
  EXPECT_TRUE(d.log_level_changed);  // applied live: not in not_applied
  ASSERT_EQ(d.not_applied.size(), 5u);
  EXPECT_EQ(d.not_applied[0], "server.threads: changed in the file; needs a restart (the running value stays)");
  EXPECT_EQ(d.not_applied[1], "server.shutdown_grace: changed in the file; needs a restart (the running value stays)");
  EXPECT_EQ(d.not_applied[2], "store.databases: changed in the file; needs a restart (the running value stays)");
  EXPECT_EQ(d.not_applied[3], "store.hz: changed in the file; not applied by a reload (CONFIG SET it, or restart)");
  EXPECT_EQ(d.not_applied[4].substr(0, 36), "listeners[].resp (maxclients, timeou");
  EXPECT_EQ(d.listeners_restarted, (names{"a", "b"}));  // and the listeners restart with their new options
}

TEST(ReloadDiff, SummaryJson) {
  std::string next = replace(std::string(base), "max: 5", "max: 6");
  next = replace(next, "  - {name: a, protocol: resp, address: '127.0.0.1:0'}\n",
                 "  - {name: \"q\\\"uote\", protocol: resp, address: '127.0.0.1:0'}\n");
  const auto cfg = parse(next);
  EXPECT_EQ(reload_summary_json(diff_configs(*parse(base), *cfg), *cfg),
            R"({"reloaded": true, "config": "t.yaml", "pipelines": [{"name": "default", "layers": 1, "change": )"
            R"("unchanged"}, {"name": "edge", "layers": 1, "change": "changed"}], "pipelines_removed": [], )"
            R"("listeners": {"added": ["q\"uote"], "removed": ["a"], "restarted": [], "unchanged": ["b"]}, )"
            R"("plugins_loaded": [], "not_applied": []})");
}

// The server's reload() on a real file.
class ServerReload : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("turret-reload-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    file_ = (dir_ / "turret.yaml").string();
    write(base);
    srv_ = std::make_unique<turretd::server>(load_config(file_, regs()), std::shared_ptr<registries>(&regs(), [](auto*) {}),
                                    file_);
    srv_->start();
    runner_ = std::thread([this] { srv_->run(); });
  }
  void TearDown() override {
    srv_->request_shutdown();
    runner_.join();
    srv_.reset();
    std::filesystem::remove_all(dir_);
  }
  void write(std::string_view text) { std::ofstream(file_, std::ios::trunc) << text; }
  reload_result reload() {
    return asio::co_spawn(srv_->rt().context(0), srv_->reload(), asio::use_future).get();
  }

  std::filesystem::path dir_;
  std::string file_;
  std::unique_ptr<turretd::server> srv_;
  std::thread runner_;
};

TEST_F(ServerReload, InvalidFileChangesNothing) {
  write(replace(std::string(base), "max: 5", "max: 5, colour: blue"));
  const auto states = srv_->layer_states();
  const auto r = reload();
  EXPECT_EQ(r.st, reload_result::status::invalid);
  EXPECT_EQ(r.error, file_ + ":11:42: pipelines.edge[0].colour: unknown key 'colour' (allowed: layer, max, scope)");
  EXPECT_EQ(srv_->pipeline("edge")->generation(), 1u);
  EXPECT_EQ(srv_->layer_states(), states);
  EXPECT_EQ(srv_->endpoints().size(), 2u);
}

TEST_F(ServerReload, ValidFileSwapsCarriesStateOverAndChangesListeners) {
  ASSERT_EQ(srv_->layer_states()->size(), 1u);  // edge's concurrency_limit
  auto edge_before = srv_->pipeline("edge")->load();
  std::string next = std::string(base) + "  spare:\n    - {layer: concurrency_limit, max: 7}\n";
  next = replace(next, "  - {name: a, protocol: resp, address: '127.0.0.1:0'}\n",
                 "  - {name: c, protocol: resp, address: '127.0.0.1:0', pipeline: spare}\n");
  write(next);
  const auto old_states = srv_->layer_states();
  const auto r = reload();
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_NE(r.summary.find(R"("listeners": {"added": ["c"], "removed": ["a"], "restarted": [], "unchanged": ["b"]})"),
            std::string::npos)
      << r.summary;
  EXPECT_EQ(srv_->pipeline("edge")->generation(), 2u);  // rebuilt and swapped even though unchanged
  EXPECT_EQ(srv_->pipeline("default")->generation(), 2u);
  ASSERT_NE(srv_->pipeline("spare"), nullptr);
  EXPECT_NE(srv_->layer_states(), old_states);
  EXPECT_EQ(srv_->layer_states()->size(), 2u);  // edge's limiter carried over, spare's made
  EXPECT_EQ(srv_->endpoints().size(), 2u);
  EXPECT_TRUE(srv_->endpoint("c").has_value());
  EXPECT_FALSE(srv_->endpoint("a").has_value());
  // The old pipeline lives as long as someone holds it (a request in flight).
  EXPECT_NE(srv_->pipeline("edge")->load(), edge_before);
  EXPECT_EQ(edge_before.use_count(), 1);

  // Back: spare is gone with its listener.
  write(base);
  const auto back = reload();
  ASSERT_TRUE(back.ok()) << back.error;
  EXPECT_EQ(srv_->pipeline("spare"), nullptr);
  EXPECT_TRUE(srv_->endpoint("a").has_value());
  EXPECT_EQ(srv_->layer_states()->size(), 1u);  // spare's state was not carried over
}

TEST_F(ServerReload, ListenerThatCannotBindChangesNothing) {
  // Two listeners on one fixed port: the second bind fails (validation allows port reuse only for port 0, so take
  // a port that a third socket holds).
  asio::io_context io;
  asio::ip::tcp::acceptor holder(io, {asio::ip::make_address("127.0.0.1"), 0});
  const auto port = holder.local_endpoint().port();
  write(replace(std::string(base), "  - {name: a, protocol: resp, address: '127.0.0.1:0'}\n",
                "  - {name: a, protocol: resp, address: '127.0.0.1:0'}\n  - {name: c, protocol: resp, address: "
                "'127.0.0.1:" + std::to_string(port) + "'}\n"));
  const auto r = reload();
  EXPECT_EQ(r.st, reload_result::status::failed);
  EXPECT_NE(r.error.find("listener c (resp 127.0.0.1:" + std::to_string(port) + ")"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("nothing was changed"), std::string::npos) << r.error;
  EXPECT_EQ(srv_->pipeline("default")->generation(), 1u);
  EXPECT_FALSE(srv_->endpoint("c").has_value());
}
