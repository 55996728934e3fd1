#include <turret/fast_clock.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace turret {
namespace {

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

TEST(FastClock, MonotonicOnOneThread) {
  warm_fast_clock();
  std::int64_t last = fast_now_ns();
  for (int i = 0; i < 100000; ++i) {
    const std::int64_t now = fast_now_ns();
    ASSERT_GE(now, last);
    last = now;
  }
}

TEST(FastClock, RunsAtTheSteadyClocksRate) {
  warm_fast_clock();
  const std::int64_t f0 = fast_now_ns(), s0 = steady_ns();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::int64_t f1 = fast_now_ns(), s1 = steady_ns();
  const double ratio = static_cast<double>(f1 - f0) / static_cast<double>(s1 - s0);
  EXPECT_NEAR(ratio, 1.0, 0.01) << "fast clock " << (f1 - f0) << " ns against steady " << (s1 - s0) << " ns"
                                << (fast_clock_uses_tsc() ? " (TSC)" : " (steady_clock)");
  // Its origin is the steady clock's at calibration: the two agree closely soon after.
  EXPECT_LT(std::abs(f1 - s1), 5'000'000);
}

TEST(FastClock, RealClockIsRecognised) {
  EXPECT_TRUE(is_steady_clock(steady_clock()));
  EXPECT_FALSE(is_steady_clock(std::make_shared<manual_clock>()));
}

// duration_clock: the layer's own clock when it is not the real one (tests move time), fast_now_ns() when it is.
TEST(FastClock, DurationClockFollowsAManualClockAndUsesTheFastClockOnTheRealOne) {
  auto manual = std::make_shared<manual_clock>();
  const duration_clock on_manual(manual);
  EXPECT_FALSE(on_manual.fast());
  EXPECT_EQ(on_manual.source(), manual);
  const std::int64_t t0 = on_manual.now_ns();
  EXPECT_EQ(t0, std::chrono::duration_cast<std::chrono::nanoseconds>(manual->now().time_since_epoch()).count());
  manual->advance(std::chrono::milliseconds(3));
  EXPECT_EQ(on_manual.now_ns() - t0, 3'000'000);
  EXPECT_EQ(on_manual.now() - clock::time_point(std::chrono::nanoseconds(t0)), std::chrono::milliseconds(3));

  const duration_clock on_real(steady_clock());
  EXPECT_TRUE(on_real.fast());
  const std::int64_t a = on_real.now_ns();
  const std::int64_t f = fast_now_ns();
  const std::int64_t b = on_real.now_ns();
  EXPECT_LE(a, f);
  EXPECT_LE(f, b);
}

}  // namespace
}  // namespace turret
