#include <turret/runtime.hpp>

#include <boost/asio/post.hpp>

#include <gtest/gtest.h>

#include <csignal>
#include <set>

namespace turret {
namespace {

using namespace std::chrono_literals;

TEST(RuntimeTest, StartsRunsOnAllThreadsAndStops) {
  runtime rt(3);
  ASSERT_EQ(rt.size(), 3u);
  std::mutex m;
  std::set<std::thread::id> ids;
  std::atomic<int> done{0};
  for (int i = 0; i < 3; ++i) {
    boost::asio::post(rt.next_executor(), [&] {
      std::lock_guard lock(m);
      ids.insert(std::this_thread::get_id());
      if (++done == 3) rt.stop();
    });
  }
  rt.run();
  EXPECT_EQ(done.load(), 3);
  EXPECT_EQ(ids.size(), 3u);  // round robin: one per context, each context on its own thread
  EXPECT_TRUE(rt.stopped());
}

TEST(RuntimeTest, DefaultThreadCount) {
  runtime rt;
  EXPECT_GE(rt.size(), 1u);
}

TEST(RuntimeTest, SignalTriggersGracefulShutdown) {
  runtime rt(2);
  shutdown_coordinator sc(2s);
  auto t = sc.track();  // one request in flight
  bool stop_accepting = false, forced = false;
  std::optional<bool> clean;
  sc.on_stop_accepting([&] { stop_accepting = true; });
  sc.on_force_close([&] { forced = true; });
  rt.handle_signals([&](int signo) {
    EXPECT_EQ(signo, SIGTERM);
    sc.start(rt.executor(0), [&](bool c) {
      clean = c;
      rt.stop();
    });
    // The in-flight request finishes a little later on another thread.
    boost::asio::post(rt.executor(1), [&] { t.reset(); });
  });
  boost::asio::post(rt.executor(0), [] { std::raise(SIGTERM); });
  rt.run();
  EXPECT_TRUE(stop_accepting);
  EXPECT_FALSE(forced);
  ASSERT_TRUE(clean);
  EXPECT_TRUE(*clean);
  EXPECT_TRUE(sc.draining());
  EXPECT_EQ(sc.in_flight(), 0u);
}

TEST(RuntimeTest, GraceElapsesThenForceClose) {
  runtime rt(1);
  shutdown_coordinator sc(30ms);
  sc.enter();
  bool forced = false;
  std::optional<bool> clean;
  sc.on_force_close([&] { forced = true; });
  const auto start = std::chrono::steady_clock::now();  // before start(): the grace period runs from there
  sc.start(rt.executor(0), [&](bool c) {
    clean = c;
    rt.stop();
  });
  rt.run();
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);
  EXPECT_TRUE(forced);
  ASSERT_TRUE(clean);
  EXPECT_FALSE(*clean);
  sc.leave();
}

}  // namespace
}  // namespace turret
