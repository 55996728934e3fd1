#include <turret/any_service.hpp>
#include <turret/layer_state.hpp>
#include <turret/metrics.hpp>
#include <turret/middleware/access_log.hpp>
#include <turret/middleware/builtin.hpp>
#include <turret/middleware/fault.hpp>
#include <turret/middleware/testing/layer_harness.hpp>
#include <turret/middleware/testing/mock_service.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

namespace turret {
namespace {

using namespace std::chrono_literals;
using testing::mock_request;
using testing::mock_service;

class memory_sink : public access_log_sink {
 public:
  bool write(std::string_view lines) override {
    std::lock_guard lock(mu);
    text += lines;
    ++batches;
    return !fail;
  }
  std::vector<std::string> lines() {
    std::lock_guard lock(mu);
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
  }
  std::mutex mu;
  std::string text;
  int batches = 0;
  bool fail = false;
};

/// A named request whose response may be an error reply with a code (as kv::request / kv::response).
struct named_request {
  request_context ctx;
  std::string name = "get";
  std::string code;  // the reply's error code; empty = ok
  request_context& context() noexcept { return ctx; }
};
std::string_view request_name(const named_request& r) noexcept { return r.name; }

struct coded {
  std::string code;
  std::string_view error_code() const noexcept { return code; }
};
struct coded_service {
  std::shared_ptr<clock> clk;
  std::chrono::nanoseconds delay{0};
  using response_type = coded;
  using permit_type = unit_permit;
  awaitable<result<unit_permit>> ready(request_context&) { co_return unit_permit{}; }
  awaitable<result<coded>> call(unit_permit, named_request& req) {
    if (delay.count() > 0) co_await sleep_for(*clk, delay, req.ctx.cancel_slot());
    co_return coded{req.code};
  }
  std::optional<result<coded>> try_call_now(named_request& req) {
    if (delay.count() > 0) return std::nullopt;
    return result<coded>(coded{req.code});
  }
};

struct AccessLogTest : ::testing::Test, testing::context_harness {
  std::shared_ptr<memory_sink> sink = std::make_shared<memory_sink>();
  // 2026-12-07T05:21:13.123Z
  std::function<std::chrono::system_clock::time_point()> wall = [] {
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(1796620873123LL));
  };

  access_log_layer make(double sample = 1, bool errors_always = true, std::size_t queue = 8192) {
    access_log_config c;
    c.path = "stdout";
    c.sample = sample;
    c.errors_always = errors_always;
    c.queue = queue;
    return access_log_layer(c, lctx, sink, wall, 1);
  }
  std::uint64_t dropped() {
    return reg.counter("turret_access_log_dropped_total", "", {"pipeline"}).with({"p1"}).value();
  }

  template <class S>
  std::optional<result<coded>> run(S& svc, named_request& req) {
    std::optional<result<coded>> out;
    boost::asio::co_spawn(
        io, [&]() -> awaitable<void> { out.emplace(co_await ready_and_call(svc, req)); }, boost::asio::detached);
    io.poll();
    return out;
  }
};

TEST_F(AccessLogTest, OneJsonLinePerRequest) {
  auto layer = make();
  coded_service inner{clk, 1500us};
  auto svc = layer.wrap(inner);
  named_request req;
  req.ctx.protocol = "resp";
  req.ctx.set_request_id("rid-1");
  req.ctx.set_peer({boost::asio::ip::make_address("127.0.0.1"), 50412});
  req.ctx.identity = "alice";
  std::optional<result<coded>> out;
  boost::asio::co_spawn(
      io, [&]() -> awaitable<void> { out.emplace(co_await ready_and_call(svc, req)); }, boost::asio::detached);
  io.poll();
  advance(1500us);
  ASSERT_TRUE(out && *out);
  EXPECT_TRUE(sink->lines().empty());  // nothing written before the writer runs
  layer.flush();
  ASSERT_EQ(sink->lines().size(), 1u);
  EXPECT_EQ(sink->lines()[0],
            R"({"time":"2026-12-07T05:21:13.123Z","request_id":"rid-1","protocol":"resp","peer":"127.0.0.1:50412",)"
            R"("identity":"alice","command":"get","outcome":"ok","duration_us":1500})");
}

TEST_F(AccessLogTest, ErrorRepliesAndFailuresCarryTheirCode) {
  auto layer = make();
  auto svc = layer.wrap(coded_service{clk});
  named_request req;
  req.ctx.set_request_id("r2");
  req.code = "WRONGTYPE";
  auto r = svc.try_call_now(req);
  ASSERT_TRUE(r && *r);
  auto failing = layer.wrap(fault_layer([] {
                              fault_config c;
                              c.abort = fault_config::abort_fault{fault_errc::timeout, 100};
                              return c;
                            }(),
                                        lctx)
                                .wrap(coded_service{clk}));
  named_request req2;
  req2.ctx.set_request_id("r3");
  req2.name = "set";
  auto r2 = run(failing, req2);
  ASSERT_TRUE(r2 && !*r2);
  layer.flush();
  const auto lines = sink->lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0],
            R"({"time":"2026-12-07T05:21:13.123Z","request_id":"r2","protocol":"","peer":"","command":"get",)"
            R"("outcome":"error","error":"WRONGTYPE","duration_us":0})");
  EXPECT_EQ(lines[1],
            R"({"time":"2026-12-07T05:21:13.123Z","request_id":"r3","protocol":"","peer":"","command":"set",)"
            R"("outcome":"failed","error":"timed_out","duration_us":0})");
}

TEST_F(AccessLogTest, SamplingIsAShareAndErrorsAreAlwaysLogged) {
  auto layer = make(0.1);
  auto svc = layer.wrap(coded_service{clk});
  std::mt19937_64 rng(11);
  constexpr int n = 20000;
  for (int i = 0; i < n; ++i) {
    named_request req;
    req.ctx.set_sample(rng());
    if (i % 100 == 0) req.code = "ERR";
    ASSERT_TRUE(svc.try_call_now(req));
  }
  layer.flush();
  int ok = 0, err = 0;
  for (const auto& l : sink->lines()) (l.find("\"outcome\":\"error\"") != std::string::npos ? err : ok)++;
  EXPECT_EQ(err, n / 100);  // every error reply
  const double expected = (n - n / 100) * 0.1;
  EXPECT_NEAR(ok, expected, 5 * std::sqrt(expected * 0.9));
}

TEST_F(AccessLogTest, SampledErrorsAreSampledToo) {
  auto layer = make(0, false);
  auto svc = layer.wrap(coded_service{clk});
  named_request req;
  req.code = "ERR";
  (void)svc.try_call_now(req);
  layer.flush();
  EXPECT_TRUE(sink->lines().empty());
}

TEST_F(AccessLogTest, TheFastPathAndTheSlowPathDecideAlike) {
  auto layer = make(0.5);
  coded_service slow{clk, 1ms};
  auto fast = layer.wrap(coded_service{clk});
  auto suspending = layer.wrap(slow);
  std::mt19937_64 rng(5);
  int fast_logged = 0;
  for (int i = 0; i < 200; ++i) {
    const std::uint64_t s = rng();
    named_request a, b;
    a.ctx.set_sample(s);
    b.ctx.set_sample(s);
    std::size_t before = sink->lines().size();
    (void)fast.try_call_now(a);
    layer.flush();
    const bool f = sink->lines().size() != before;
    before = sink->lines().size();
    std::optional<result<coded>> out;
    boost::asio::co_spawn(
        io, [&]() -> awaitable<void> { out.emplace(co_await ready_and_call(suspending, b)); }, boost::asio::detached);
    io.poll();
    advance(1ms);
    ASSERT_TRUE(out);
    layer.flush();
    EXPECT_EQ(f, sink->lines().size() != before) << i;
    fast_logged += f;
  }
  EXPECT_GT(fast_logged, 50);
  EXPECT_LT(fast_logged, 150);
}

TEST_F(AccessLogTest, AFullQueueDropsAndCounts) {
  auto layer = make(1, true, 3);
  auto svc = layer.wrap(coded_service{clk});
  for (int i = 0; i < 5; ++i) {
    named_request req;
    (void)svc.try_call_now(req);
  }
  EXPECT_EQ(dropped(), 2u);
  EXPECT_EQ(layer.dropped(), 2u);
  layer.flush();
  EXPECT_EQ(sink->lines().size(), 3u);
  sink->fail = true;  // a failed write counts its lines as dropped
  named_request req;
  (void)svc.try_call_now(req);
  layer.flush();
  EXPECT_EQ(dropped(), 3u);
}

TEST_F(AccessLogTest, TheWriterThreadDrainsTheQueue) {
  auto layer = make();
  layer.start_writer();
  auto svc = layer.wrap(coded_service{clk});
  for (int i = 0; i < 100; ++i) {
    named_request req;
    (void)svc.try_call_now(req);
  }
  for (int i = 0; i < 200 && sink->lines().size() < 100; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(sink->lines().size(), 100u);
  EXPECT_EQ(reg.counter("turret_access_log_lines_total", "", {"pipeline"}).with({"p1"}).value(), 100u);
}

// A reload with the entry unchanged keeps the writer and its open file: after the file is renamed (as a log rotation
// without a reopen signal would), both the old pipeline's last lines and the new pipeline's go to the renamed file,
// each once, and nothing reopens the path. A changed entry gets a writer of its own.
TEST_F(AccessLogTest, AReloadOfAnUnchangedEntryKeepsTheWriter) {
  char tmpl[] = "/tmp/turret_access_log_XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string path = std::string(tmpl) + "/access.log";
  const std::string rotated = path + ".1";
  const std::string yaml = "pipeline:\n  - layer: access_log\n    path: " + path + "\n    sample: 1\n";
  auto entry_of = [](const std::string& text) { return load_config_string(text, "turret.yaml").child("pipeline").at(0); };
  auto send = [&](auto& svc, const char* id) {
    named_request req;
    req.ctx.set_request_id(id);
    ASSERT_TRUE(svc.try_call_now(req));
  };
  auto gen1 = std::make_shared<layer_state_store>();
  lctx.states = gen1;
  auto before = access_log_layer::from_entry(entry_of(yaml), lctx);
  auto old_svc = before.wrap(coded_service{clk});
  send(old_svc, "a");
  before.flush();
  ASSERT_EQ(std::rename(path.c_str(), rotated.c_str()), 0);

  auto gen2 = std::make_shared<layer_state_store>(gen1);  // the reload: the next generation
  lctx.states = gen2;
  auto after = access_log_layer::from_entry(entry_of(yaml), lctx);
  auto new_svc = after.wrap(coded_service{clk});
  send(old_svc, "b");  // a request finishing on the old pipeline
  send(new_svc, "c");
  after.flush();
  before.flush();  // nothing left: one queue
  std::ifstream f(rotated);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3) << text;
  for (const char* id : {"a", "b", "c"})
    EXPECT_NE(text.find(std::string(R"("request_id":")") + id + "\""), std::string::npos) << id << ": " << text;
  EXPECT_FALSE(std::ifstream(path).good());  // not reopened

  // A changed entry (errors: always added): a writer of its own, which opens the path anew.
  auto gen3 = std::make_shared<layer_state_store>(gen2);
  lctx.states = gen3;
  auto changed = access_log_layer::from_entry(entry_of(yaml + "    errors: always\n"), lctx);
  auto changed_svc = changed.wrap(coded_service{clk});
  send(changed_svc, "d");
  changed.flush();
  std::ifstream g(path);
  std::string line;
  ASSERT_TRUE(std::getline(g, line));
  EXPECT_NE(line.find(R"("request_id":"d")"), std::string::npos) << line;
  std::remove(path.c_str());
  std::remove(rotated.c_str());
  ::rmdir(tmpl);
}

TEST_F(AccessLogTest, JsonEscapingOfBinaryAndControlBytes) {
  std::string out;
  append_json_string(out, std::string_view("a\"b\\c\n\r\t\x01\x7f", 10));
  EXPECT_EQ(out, R"("a\"b\\c\n\r\t\u0001\u007f")");
  out.clear();
  append_json_string(out, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");  // valid UTF-8 passes unchanged
  EXPECT_EQ(out, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  out.clear();
  append_json_string(out, std::string_view("\xff\xc3(\xe2\x82\xc0\x80\xed\xa0\x80\0", 11));
  EXPECT_EQ(out, R"("\u00ff\u00c3(\u00e2\u0082\u00c0\u0080\u00ed\u00a0\u0080\u0000")");
}

TEST_F(AccessLogTest, FactoryFromYamlWritesAFile) {
  layer_registry<named_request, coded> registry;
  register_builtin_layers(registry);
  char tmpl[] = "/tmp/turret_access_log_XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string path = std::string(tmpl) + "/access.log";
  auto cfg = load_config_string("pipeline:\n  - layer: access_log\n    path: " + path +
                                    "\n    sample: 1\n    errors: always\n    queue: 16\n",
                                "turret.yaml");
  {
    auto svc = registry.build(cfg.child("pipeline"), any_service<named_request, coded>(coded_service{clk}), lctx);
    named_request req;
    req.ctx.set_request_id("from-yaml");
    req.name = std::string("bin\xff", 4);
    std::optional<result<coded>> out;
    boost::asio::co_spawn(
        io, [&]() -> awaitable<void> { out.emplace(co_await ready_and_call(svc, req)); }, boost::asio::detached);
    io.poll();
    ASSERT_TRUE(out && *out);
  }  // no runtime in lctx: no writer thread; the last service going away leaves the line queued, unwritten
  std::ifstream f(path);
  EXPECT_FALSE(f.good());  // the file is opened by the first write only

  access_log_layer layer(parse_access_log_config(cfg.child("pipeline").at(0)), lctx);
  auto svc = layer.wrap(coded_service{clk});
  named_request req;
  req.ctx.set_request_id("from-yaml");
  req.name = std::string("bin\xff", 4);
  (void)svc.try_call_now(req);
  layer.flush();
  std::ifstream g(path);
  std::string line;
  ASSERT_TRUE(std::getline(g, line));
  EXPECT_NE(line.find(R"("request_id":"from-yaml")"), std::string::npos) << line;
  EXPECT_NE(line.find(R"("command":"bin\u00ff")"), std::string::npos) << line;
  std::remove(path.c_str());
  ::rmdir(tmpl);

  auto expect_error = [&](const std::string& yaml, const char* what) {
    EXPECT_EQ(testing::build_error(registry, yaml, any_service<named_request, coded>(coded_service{clk}), lctx), what);
  };
  expect_error("pipeline:\n  - layer: access_log\n", "turret.yaml:2:5: pipeline[0].path: missing required key");
  expect_error("pipeline:\n  - layer: access_log\n    path: /nonexistent/dir/a.log\n",
               "turret.yaml:3:11: pipeline[0].path: directory '/nonexistent/dir' does not exist");
  expect_error("pipeline:\n  - layer: access_log\n    path: stdout\n    sample: 10\n",
               "turret.yaml:4:13: pipeline[0].sample: sample must be between 0 and 1 (a share, e.g. 0.1)");
  expect_error("pipeline:\n  - layer: access_log\n    path: stdout\n    errors: never\n",
               "turret.yaml:4:13: pipeline[0].errors: unknown value 'never' (expected always or sampled)");
  expect_error("pipeline:\n  - layer: access_log\n    path: stdout\n    format: text\n",
               "turret.yaml:4:5: pipeline[0].format: unknown key 'format' (allowed: layer, path, sample, errors, "
               "queue)");
}

}  // namespace
}  // namespace turret
