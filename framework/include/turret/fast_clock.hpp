#pragma once
// fast_now_ns: a cheap monotonic time for what layers measure on every request (latencies, token buckets, budget
// slots), where reading the steady clock is the layer's main cost: on this project's reference machine (a KVM
// guest) std::chrono::steady_clock::now() costs about 37 ns and the CPU's time-stamp counter about 13 ns
// (bench/bench_layers: static/metrics against static/metrics_nolatency shows the difference per request).
//
// - With an invariant TSC (CPUID 0x80000007 EDX bit 8: constant rate, runs in every C-state) and the kernel using
//   the TSC as its clocksource (it falls back to another one when it finds the TSC unreliable), fast_now_ns()
//   reads the TSC and scales it to nanoseconds with a factor calibrated once against steady_clock (over 5 ms, at
//   the first call: call warm_fast_clock() at start-up, e.g. in a layer's factory, so that no request pays for it).
//   Otherwise it is steady_clock::now().
// - It is monotonic and its rate is the steady clock's within the calibration's error (below 1e-4: a 100 ms
//   duration measures within 10 us); its origin is the steady clock's at calibration, but the two drift apart by that
//   error over time. So: use it for durations and for time bases kept entirely on it (a token bucket's arrival
//   times), never mixed with steady_clock time points (timers, deadlines).
// - Thread-safe; the calibration runs once per process (the state lives in the framework library: one per
//   process, plugins included).
#include <turret/clock.hpp>

#include <chrono>
#include <cstdint>
#include <memory>

namespace turret {

/// Monotonic nanoseconds since an arbitrary origin (see above).
std::int64_t fast_now_ns() noexcept;

/// Monotonic nanoseconds on a coarse clock (CLOCK_MONOTONIC_COARSE where the system has it: the kernel's last tick,
/// a resolution of 1-10 ms, about 7 ns a read on the reference machine against 13 for fast_now_ns; else
/// steady_clock). For time bases counted in seconds (a retry budget's slots), never for latencies; like fast_now_ns,
/// never mixed with another clock's time points.
std::int64_t coarse_now_ns() noexcept;

/// Calibrates now (a 5 ms wait the first time, nothing after).
void warm_fast_clock() noexcept;

/// True when fast_now_ns() reads the TSC (false: it reads steady_clock).
bool fast_clock_uses_tsc() noexcept;

/// True when `c` is the process's real steady clock (turret::steady_clock()): a layer may then measure with
/// fast_now_ns(); with any other clock (a manual_clock in tests) it must use c->now().
bool is_steady_clock(const std::shared_ptr<clock>& c) noexcept;

/// A layer's time base for what it measures on every request (latencies, token buckets): fast_now_ns() when the
/// layer's clock is the process's real steady clock, that clock's now() otherwise (a manual_clock in tests: the
/// test moves time). The choice is made once, at construction.
/// - Readings are for durations (the difference of two readings) and for time bases kept entirely on it (a token
///   bucket's arrival times): on the real clock their origin is fast_now_ns()'s, so never compare them with the
///   clock's own time points (timers, deadlines: use source()->now() for those).
/// - Constructing one on the real clock calibrates fast_now_ns() (warm_fast_clock()), so no request pays for it.
/// - Immutable after construction: callable from any thread; a read is fast_now_ns() or one virtual call.
class duration_clock {
 public:
  /// On `c` (not null).
  explicit duration_clock(std::shared_ptr<clock> c);

  /// Nanoseconds on this time base.
  std::int64_t now_ns() const noexcept {
    if (real_) return fast_now_ns();
    return std::chrono::duration_cast<std::chrono::nanoseconds>(clk_->now().time_since_epoch()).count();
  }
  /// now_ns() as a time point (for durations only, as above).
  clock::time_point now() const noexcept {
    return clock::time_point(std::chrono::duration_cast<clock::duration>(std::chrono::nanoseconds(now_ns())));
  }
  /// True when readings come from fast_now_ns() (the source is the real steady clock).
  bool fast() const noexcept { return real_; }
  /// The clock it was made on (for timers and deadlines).
  const std::shared_ptr<clock>& source() const noexcept { return clk_; }

 private:
  std::shared_ptr<clock> clk_;
  bool real_ = false;
};

}  // namespace turret
