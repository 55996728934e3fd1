#include <turret/fast_clock.hpp>

#include <chrono>
#include <ctime>
#include <fstream>
#include <string>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <x86intrin.h>
#define TURRET_HAVE_TSC 1
#endif

namespace turret {

namespace {

struct calibration {
  bool tsc = false;
  std::uint64_t tsc0 = 0;
  std::int64_t ns0 = 0;
  std::uint64_t mult = 0;  ///< nanoseconds per tick, fixed point with 32 fractional bits
};

std::int64_t steady_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

#ifdef TURRET_HAVE_TSC
bool invariant_tsc() noexcept {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid_max(0x80000000u, nullptr) < 0x80000007u) return false;
  if (!__get_cpuid(0x80000007u, &a, &b, &c, &d)) return false;
  return (d & (1u << 8)) != 0;
}

/// The kernel's clocksource is the TSC (when the file cannot be read, the CPUID bit alone decides).
bool kernel_trusts_tsc() {
  std::ifstream f("/sys/devices/system/clocksource/clocksource0/current_clocksource");
  std::string name;
  if (!(f >> name)) return true;
  return name == "tsc";
}
#endif

calibration calibrate() noexcept {
  calibration c;
#ifdef TURRET_HAVE_TSC
  try {
    if (!invariant_tsc() || !kernel_trusts_tsc()) return c;
  } catch (...) {
    return c;
  }
  const std::int64_t t0 = steady_ns();
  const std::uint64_t c0 = __rdtsc();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const std::int64_t t1 = steady_ns();
  const std::uint64_t c1 = __rdtsc();
  if (c1 <= c0 || t1 <= t0) return c;
  const double ns_per_tick = static_cast<double>(t1 - t0) / static_cast<double>(c1 - c0);
  if (!(ns_per_tick > 0.02 && ns_per_tick < 20)) return c;  // 50 MHz .. 50 GHz, else something is off
  c.tsc = true;
  c.tsc0 = c1;
  c.ns0 = t1;
  c.mult = static_cast<std::uint64_t>(ns_per_tick * 4294967296.0);
#endif
  return c;
}

const calibration& cal() noexcept {
  static const calibration c = calibrate();
  return c;
}

}  // namespace

std::int64_t fast_now_ns() noexcept {
  const calibration& c = cal();
#ifdef TURRET_HAVE_TSC
  if (c.tsc) {
    // Signed: another core's counter may be a few ticks behind the calibrating core's right after calibration.
    const auto d = static_cast<std::int64_t>(__rdtsc() - c.tsc0);
    return c.ns0 + static_cast<std::int64_t>((static_cast<__int128>(d) * static_cast<__int128>(c.mult)) >> 32);
  }
#endif
  return steady_ns();
}

std::int64_t coarse_now_ns() noexcept {
#ifdef CLOCK_MONOTONIC_COARSE
  timespec ts{};
  if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == 0)
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<std::int64_t>(ts.tv_nsec);
#endif
  return steady_ns();
}

void warm_fast_clock() noexcept { (void)cal(); }

bool fast_clock_uses_tsc() noexcept { return cal().tsc; }

bool is_steady_clock(const std::shared_ptr<clock>& c) noexcept {
  static const clock* const real = steady_clock().get();
  return c.get() == real;
}

duration_clock::duration_clock(std::shared_ptr<clock> c) : clk_(std::move(c)), real_(is_steady_clock(clk_)) {
  if (real_) warm_fast_clock();
}

}  // namespace turret
