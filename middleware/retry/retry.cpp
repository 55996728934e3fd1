#include <turret/middleware/retry.hpp>
#include <turret/fast_clock.hpp>
#include <turret/config.hpp>
#include <turret/metrics.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>

namespace turret {

namespace {

class retry_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "turret.retry"; }
  std::string message(int ev) const override {
    if (static_cast<retry_errc>(ev) == retry_errc::attempt_timed_out) return "attempt timed out (per_try_timeout)";
    return "unknown retry error";
  }
  /// attempt_timed_out is the condition turret::errc::timed_out (turret/error.hpp).
  boost::system::error_condition default_error_condition(int ev) const noexcept override {
    if (static_cast<retry_errc>(ev) == retry_errc::attempt_timed_out) return make_error_condition(errc::timed_out);
    return {ev, *this};
  }
};

std::uint64_t random_seed() {
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

bool is_reply_code(std::string_view s) {
  return !s.empty() && s.size() < 15 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

std::chrono::nanoseconds positive_duration(const config_node& n) {
  const auto d = n.as_duration();
  if (d <= std::chrono::nanoseconds::zero()) n.fail("duration must be greater than 0");
  return d;
}

}  // namespace

const boost::system::error_category& retry_category() noexcept {
  static const retry_category_impl instance;
  return instance;
}

retry_config parse_retry_config(const config_node& entry) {
  entry.reject_unknown_keys({"layer", "max_attempts", "backoff", "budget", "per_try_timeout", "retry_on", "writes"});
  retry_config cfg;
  if (entry.has("max_attempts")) cfg.max_attempts = static_cast<unsigned>(entry.child("max_attempts").as_int(1, 100));
  if (entry.has("backoff")) {
    const config_node b = entry.child("backoff");
    if (!b.is_map()) b.fail("expected a mapping, e.g. {base: 10ms, max: 1s}");
    b.reject_unknown_keys({"base", "max"});
    if (b.has("base")) cfg.backoff_base = positive_duration(b.child("base"));
    if (b.has("max")) {
      const config_node m = b.child("max");
      cfg.backoff_max = positive_duration(m);
      if (cfg.backoff_max < cfg.backoff_base) m.fail("max must not be less than base");
    } else {
      cfg.backoff_max = std::max(cfg.backoff_max, cfg.backoff_base);
    }
  }
  if (entry.has("budget")) {
    const config_node b = entry.child("budget");
    if (!b.is_map()) b.fail("expected a mapping, e.g. {ratio: 0.2, min_per_second: 10, window: 10s}");
    b.reject_unknown_keys({"ratio", "min_per_second", "window"});
    if (b.has("ratio")) {
      const config_node r = b.child("ratio");
      cfg.budget_ratio = r.as_double();
      if (!(cfg.budget_ratio >= 0 && cfg.budget_ratio <= 1000)) r.fail("ratio must be between 0 and 1000");
    }
    if (b.has("min_per_second"))
      cfg.budget_min_per_second = static_cast<unsigned>(b.child("min_per_second").as_int(0, 1'000'000));
    if (b.has("window")) {
      const config_node w = b.child("window");
      cfg.budget_window = w.as_duration();
      if (cfg.budget_window < std::chrono::seconds(1)) w.fail("window must be at least 1s");
    }
  }
  if (entry.has("per_try_timeout")) {
    const config_node t = entry.child("per_try_timeout");
    cfg.per_try_timeout = t.as_duration();
    if (cfg.per_try_timeout < std::chrono::nanoseconds::zero()) t.fail("per_try_timeout must not be negative");
  }
  if (entry.has("retry_on")) {
    const config_node list = entry.child("retry_on");
    if (!list.is_sequence()) list.fail("expected a list, e.g. [unavailable, timed_out, TRYAGAIN]");
    cfg.retry_on_conditions.clear();
    cfg.retry_on_codes.clear();
    for (std::size_t i = 0; i < list.size(); ++i) {
      const config_node item = list.at(i);
      const std::string name = item.as_string();
      bool found = false;
      for (errc c : all_conditions) {
        if (to_string(c) == name) {
          cfg.retry_on_conditions.push_back(c);
          found = true;
        }
      }
      if (found) continue;
      if (!is_reply_code(name))
        item.fail("unknown retry_on entry '" + name +
                  "' (expected a condition: overloaded, unavailable, timed_out, cancelled, internal..., or a Redis "
                  "error code in capitals: TRYAGAIN, LOADING, BUSY...)");
      cfg.retry_on_codes.push_back(name);
    }
  }
  if (entry.has("writes")) cfg.writes = entry.child("writes").as_bool();
  return cfg;
}

// --- retry_budget ---

retry_budget::retry_budget(double ratio, unsigned min_per_second, std::chrono::nanoseconds window,
                           std::shared_ptr<clock> clk)
    : clock_(std::move(clk)), real_clock_(is_steady_clock(clock_)), slot_time_(std::max<std::chrono::nanoseconds>(window / slot_count, std::chrono::nanoseconds(1))) {
  // ceil(2^64 / slot): (t x this) >> 64 is t / slot rounded down, or one more in the last t x slot / 2^64 ns
  // before a slot boundary (t = 10^15 ns, 11 days, slot = 1 s: 54 ns). Monotonic in t either way. (A 1 ns slot,
  // which no configuration allows, would give t - 1.)
  const auto slot_ns = static_cast<std::uint64_t>(slot_time_.count());
  per_slot_fixed_ = (~std::uint64_t{0} / slot_ns) + (slot_ns == 1 ? 0 : 1);
  // tower's TpsBudget, in fixed point: 1000 units per request, 1000 / ratio per retry.
  if (ratio <= 0) {
    deposit_units_ = 0;
    withdraw_units_ = 1000;
  } else {
    deposit_units_ = 1000;
    withdraw_units_ = std::max<std::int64_t>(1, std::llround(1000.0 / ratio));
  }
  // The floor: min_per_second retries per second, credited to each slot when it begins.
  const double slot_seconds = std::chrono::duration<double>(slot_time_).count();
  floor_units_ = static_cast<std::int64_t>(std::floor(min_per_second * slot_seconds * withdraw_units_));
}

std::int64_t retry_budget::generation_on_clock() const noexcept {
  return clock_->now().time_since_epoch() / slot_time_;
}

void retry_budget::rotate(slot& s, std::int64_t generation) noexcept {
  if (s.generation.load(std::memory_order_relaxed) == generation) return;
  s.units.store(floor_units_, std::memory_order_relaxed);
  s.generation.store(generation, std::memory_order_release);
}

void retry_budget::begin_slot(slot& s, std::int64_t generation) noexcept {
  std::lock_guard lock(mutex_);
  rotate(s, generation);
}

std::int64_t retry_budget::balance(std::int64_t generation) const noexcept {
  std::int64_t sum = 0;
  for (const slot& s : slots_) {
    const std::int64_t g = s.generation.load(std::memory_order_acquire);
    if (g > generation - static_cast<std::int64_t>(slot_count) && g <= generation)
      sum += s.units.load(std::memory_order_relaxed);
  }
  return sum;
}

bool retry_budget::withdraw() noexcept {
  const std::int64_t g = generation_now();
  std::lock_guard lock(mutex_);
  slot& s = current(g);
  rotate(s, g);  // a slot that begins is credited its floor first
  if (balance(g) < withdraw_units_) return false;
  s.units.fetch_sub(withdraw_units_, std::memory_order_relaxed);
  return true;
}

std::int64_t retry_budget::available() const noexcept {
  const std::int64_t g = generation_now();
  std::lock_guard lock(mutex_);
  const bool begins = slots_[static_cast<std::size_t>(g) % slot_count].generation.load() != g;
  return std::max<std::int64_t>(0, (balance(g) + (begins ? floor_units_ : 0)) / withdraw_units_);
}

// --- retry_shared ---

namespace detail {

bool retry_shared::retries_error(const error_code& ec) const noexcept {
  const std::optional<errc> c = classify(ec);
  return c && std::find(cfg.retry_on_conditions.begin(), cfg.retry_on_conditions.end(), *c) !=
                  cfg.retry_on_conditions.end();
}

bool retry_shared::retries_code(std::string_view code) const noexcept {
  return std::find(cfg.retry_on_codes.begin(), cfg.retry_on_codes.end(), code) != cfg.retry_on_codes.end();
}

clock::duration retry_shared::backoff(unsigned n, std::uint64_t sample) const noexcept {
  const auto base = std::chrono::duration_cast<clock::duration>(cfg.backoff_base);
  const auto max = std::chrono::duration_cast<clock::duration>(cfg.backoff_max);
  clock::duration cap = base;
  for (unsigned i = 1; i < n && cap < max; ++i) cap *= 2;
  cap = std::min(cap, max);
  // A uniform value in [0, 1) from the request's sample, the layer's salt and the retry's number.
  const std::uint64_t x = request_context::mix64(sample + salt + n * 0x9e3779b97f4a7c15ULL);
  const double u = static_cast<double>(x >> 11) * 0x1.0p-53;
  return clock::duration(static_cast<clock::duration::rep>(u * static_cast<double>(cap.count())));
}

bool retry_shared::may_retry(unsigned n, request_context& ctx, std::uint64_t sample) const noexcept {
  if (ctx.deadline != clock::time_point::max() && clk->now() + backoff(n, sample) >= ctx.deadline) return false;
  if (!budget->withdraw()) {
    count_exhausted();
    return false;
  }
  return true;
}

}  // namespace detail

std::shared_ptr<retry_budget> retry_layer::make_budget(const retry_config& cfg, std::shared_ptr<clock> clk) {
  return std::make_shared<retry_budget>(cfg.budget_ratio, cfg.budget_min_per_second, cfg.budget_window,
                                        std::move(clk));
}

retry_layer::retry_layer(retry_config cfg, const layer_context& ctx, std::shared_ptr<retry_budget> budget,
                         std::optional<std::uint64_t> seed) {
  auto sh = std::make_shared<detail::retry_shared>();
  sh->clk = ctx.clk;
  sh->budget = budget ? std::move(budget) : make_budget(cfg, ctx.clk);
  sh->salt = request_context::mix64(seed ? *seed : random_seed());
  sh->cfg = std::move(cfg);
  sh->attempts = &ctx.metrics()
                      .counter("turret_retry_attempts_total", "Attempts of requests through retry layers (first included)",
                               {"pipeline"})
                      .with({ctx.pipeline_name});
  sh->exhausted = &ctx.metrics()
                       .counter("turret_retry_budget_exhausted_total",
                                "Retries a retry layer did not make because its budget was exhausted", {"pipeline"})
                       .with({ctx.pipeline_name});
  shared_ = std::move(sh);
}

}  // namespace turret
