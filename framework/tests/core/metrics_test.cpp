// The Prometheus registry: exposition format, per-thread counter shards, and callback gauges.
#include <turret/metrics.hpp>

#include <gtest/gtest.h>

#include <future>
#include <mutex>
#include <thread>
#include <vector>

namespace turret::metrics {
namespace {

TEST(MetricsTest, ExposesCountersGaugesAndHistogramsInTextFormat) {
  registry reg;
  auto& req = reg.counter("t_requests_total", "Requests.", {"frontend", "status"});
  req.with({"http", "200"}).inc(3);
  req.with({"resp", "ok"}).inc();
  req.with({"a\"b", "200"}).inc();
  reg.gauge("t_connections", "Open connections.").with({}).set(7);
  reg.gauge_callback("t_cb", "Callback.", [] { return 1.5; });
  auto& h = reg.histogram("t_seconds", "Latency.", {}, {0.1, 1});
  h.with({}).observe(0.05);
  h.with({}).observe(0.5);
  h.with({}).observe(5);
  const std::string out = reg.expose();
  EXPECT_NE(out.find("# HELP t_requests_total Requests.\n# TYPE t_requests_total counter\n"), std::string::npos);
  EXPECT_NE(out.find("t_requests_total{frontend=\"http\",status=\"200\"} 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("t_requests_total{frontend=\"resp\",status=\"ok\"} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("# TYPE t_connections gauge\nt_connections 7\n"), std::string::npos) << out;
  EXPECT_NE(out.find("t_seconds_bucket{le=\"0.1\"} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("t_seconds_bucket{le=\"1\"} 2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("t_seconds_bucket{le=\"+Inf\"} 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("t_seconds_sum 5.55\n"), std::string::npos) << out;
  EXPECT_NE(out.find("t_seconds_count 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("t_requests_total{frontend=\"a\\\"b\",status=\"200\"} 1"), std::string::npos) << out;
  EXPECT_NE(out.find("t_cb 1.5\n"), std::string::npos) << out;
  EXPECT_THROW(reg.gauge("t_requests_total", "x"), std::invalid_argument);  // name taken by another type
  EXPECT_THROW(req.with({"only-one"}), std::invalid_argument);              // wrong number of label values
  // Families sorted by name.
  EXPECT_LT(out.find("t_connections"), out.find("t_requests_total"));
  EXPECT_LT(out.find("t_requests_total"), out.find("t_seconds"));
}

TEST(MetricsTest, CounterShardsSumAcrossThreads) {
  registry reg;
  auto& c = reg.counter("t_total", "Total.").with({});
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) c.inc();
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.value(), 80000u);
}

// More threads than exclusive shards, at once (the rest share shards with atomic adds), then again after they exit
// (their shards are reused): no count is lost either way.
TEST(MetricsTest, CountsStayExactBeyondTheExclusiveShardsAndAfterThreadsExit) {
  registry reg;
  auto& c = reg.counter("t_total", "Total.").with({});
  auto& h = reg.histogram("t_seconds", "Latency.", {}, {0.001}).with({});
  constexpr int threads_n = static_cast<int>(shard_count) + 4;
  for (int round = 0; round < 2; ++round) {
    std::vector<std::thread> threads;
    for (int t = 0; t < threads_n; ++t)
      threads.emplace_back([&] {
        for (int i = 0; i < 20000; ++i) {
          c.inc();
          h.observe_ns(i % 2 == 0 ? 1'000'000 : 1'000'001);  // the bound itself, and just above it
        }
      });
    for (auto& t : threads) t.join();
  }
  EXPECT_EQ(c.value(), 2u * threads_n * 20000u);
  const auto snap = h.collect();
  EXPECT_EQ(snap.count, 2u * threads_n * 20000u);
  EXPECT_EQ(snap.cumulative[0], 1u * threads_n * 20000u);  // ns <= 1 ms
  EXPECT_NEAR(snap.sum, 2.0 * threads_n * 10000 * (0.001 + 0.001000001), 1e-6);
}

TEST(MetricsTest, ObserveNsBucketsAsObserveDoes) {
  registry reg;
  auto& a = reg.histogram("t_a_seconds", "A.", {}).with({});
  auto& b = reg.histogram("t_b_seconds", "B.", {}).with({});
  for (std::int64_t ns : {0LL, 49'999LL, 50'000LL, 50'001LL, 999'999LL, 1'000'000LL, 2'500'000LL, 10'000'000'000LL,
                          10'000'000'001LL}) {
    a.observe(static_cast<double>(ns) / 1e9);
    b.observe_ns(ns);
  }
  EXPECT_EQ(a.collect().cumulative, b.collect().cumulative);
}

TEST(MetricsTest, RejectsBadNamesAndTypeClashes) {
  registry reg;
  EXPECT_THROW(reg.counter("1bad", "x"), std::invalid_argument);
  reg.counter("t_x", "x");
  EXPECT_THROW(reg.gauge("t_x", "x"), std::invalid_argument);
  EXPECT_THROW(reg.gauge_callback("t_x", "x", [] { return 1.0; }), std::invalid_argument);
}

TEST(MetricsTest, CallbackGaugesRunAtExpositionAndCanBeReplaced) {
  registry reg;
  int calls = 0;
  reg.gauge_callback("t_keys", "Keys.", [&] { return static_cast<double>(++calls); });
  EXPECT_NE(reg.expose().find("t_keys 1\n"), std::string::npos);
  EXPECT_NE(reg.expose().find("t_keys 2\n"), std::string::npos);
  reg.gauge_callback("t_keys", "Keys.", [] { return 42.0; });
  EXPECT_NE(reg.expose().find("t_keys 42\n"), std::string::npos);
}

// A callback runs outside the registry's lock: it may take a component lock that the component also holds while it
// registers metrics (the store's lock and the HTTP front end's gauges), and it may itself register metrics.
TEST(MetricsTest, CallbacksRunOutsideTheRegistryLock) {
  registry reg;
  std::mutex component;
  reg.gauge_callback("t_cb", "Takes the component lock.", [&] {
    std::lock_guard lk(component);
    return 1.0;
  });
  reg.gauge_callback("t_registers", "Registers a metric from the callback.", [&] {
    reg.counter("t_late_total", "Registered during exposition.");
    return 2.0;
  });
  // Another thread holds the component lock and registers a metric meanwhile: with callbacks run under the
  // registry lock this would deadlock (each thread waiting for the other's lock).
  std::unique_lock hold(component);
  auto scrape = std::async(std::launch::async, [&] { return reg.expose(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  reg.counter("t_while_held_total", "Registered while the component lock is held.");
  hold.unlock();
  ASSERT_EQ(scrape.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  const std::string out = scrape.get();
  EXPECT_NE(out.find("t_cb 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("t_registers 2\n"), std::string::npos) << out;
  EXPECT_NE(reg.expose().find("# TYPE t_late_total counter"), std::string::npos);
}

}  // namespace
}  // namespace turret::metrics
