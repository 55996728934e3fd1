#include <turret/middleware/circuit_breaker.hpp>
#include <turret/config.hpp>
#include <turret/metrics.hpp>

#include <cmath>
#include <string>

namespace turret {

namespace {

class circuit_breaker_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "turret.circuit_breaker"; }
  std::string message(int ev) const override {
    switch (static_cast<circuit_breaker_errc>(ev)) {
      case circuit_breaker_errc::open: return "circuit open";
    }
    return "unknown circuit breaker error";
  }
  boost::system::error_condition default_error_condition(int ev) const noexcept override {
    switch (static_cast<circuit_breaker_errc>(ev)) {
      case circuit_breaker_errc::open: return make_error_condition(errc::unavailable);
    }
    return {ev, *this};
  }
};

/// A Redis error code as failure_on takes it: an upper-case word (letters, digits, '_', '-'), starting with a letter.
bool is_redis_code(std::string_view s) noexcept {
  if (s.empty() || s.size() > 14 || s[0] < 'A' || s[0] > 'Z') return false;
  for (char c : s) {
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  }
  return true;
}

std::uint32_t positive_u32(const config_node& entry, std::string_view key, std::uint32_t def, std::int64_t max) {
  return static_cast<std::uint32_t>(entry.get_int(key, def, 1, max));
}

}  // namespace

const boost::system::error_category& circuit_breaker_category() noexcept {
  static const circuit_breaker_category_impl instance;
  return instance;
}

std::string_view to_string(circuit_state s) noexcept {
  switch (s) {
    case circuit_state::closed: return "closed";
    case circuit_state::open: return "open";
    case circuit_state::half_open: return "half_open";
  }
  return "unknown";
}

circuit_breaker_config parse_circuit_breaker_config(const config_node& entry) {
  entry.reject_unknown_keys({"layer", "mode", "consecutive_failures", "failure_rate", "min_requests", "window",
                             "open_for", "half_open_probes", "failure_on"});
  circuit_breaker_config cfg;
  if (entry.has("mode")) {
    const config_node m = entry.child("mode");
    const std::string mode = m.as_string();
    if (mode == "consecutive")
      cfg.mode = circuit_breaker_config::trip_mode::consecutive;
    else if (mode == "failure_rate")
      cfg.mode = circuit_breaker_config::trip_mode::failure_rate;
    else
      m.fail("unknown mode '" + mode + "' (expected consecutive or failure_rate)");
  }
  cfg.consecutive_failures = positive_u32(entry, "consecutive_failures", cfg.consecutive_failures, 1'000'000'000);
  cfg.min_requests = positive_u32(entry, "min_requests", cfg.min_requests, 1'000'000'000);
  cfg.half_open_probes = positive_u32(entry, "half_open_probes", cfg.half_open_probes, 10000);
  if (entry.has("failure_rate")) {
    const config_node r = entry.child("failure_rate");
    const double v = r.as_double();
    if (!(v > 0 && v <= 1)) r.fail("failure_rate must be greater than 0 and at most 1 (a share, e.g. 0.5)");
    cfg.failure_rate = v;
  }
  if (entry.has("window")) {
    const config_node w = entry.child("window");
    cfg.window = w.as_duration();
    if (cfg.window < std::chrono::microseconds(10)) w.fail("window must be at least 10us");
  }
  if (entry.has("open_for")) {
    const config_node o = entry.child("open_for");
    cfg.open_for = o.as_duration();
    if (cfg.open_for <= std::chrono::nanoseconds::zero()) o.fail("open_for must be greater than 0");
  }
  if (entry.has("failure_on")) {
    const config_node list = entry.child("failure_on");
    if (!list.is_sequence()) list.fail("expected a list, e.g. [unavailable, timed_out, TRYAGAIN]");
    cfg.failure_conditions = 0;
    for (std::size_t i = 0; i < list.size(); ++i) {
      const config_node item = list.at(i);
      const std::string name = item.as_string();
      bool found = false;
      for (errc c : all_conditions) {
        if (to_string(c) == name) {
          cfg.failure_conditions |= circuit_breaker_config::condition_bit(c);
          found = true;
        }
      }
      if (found) continue;
      if (!is_redis_code(name)) {
        std::string known;
        for (errc c : all_conditions) known += std::string(known.empty() ? "" : ", ") + std::string(to_string(c));
        item.fail("unknown failure '" + name + "' (expected a condition: " + known +
                  "; or a Redis error code in upper case, e.g. TRYAGAIN)");
      }
      cfg.failure_codes.push_back(name);
    }
    if (cfg.failure_conditions == 0 && cfg.failure_codes.empty())
      list.fail("failure_on must list at least one condition or error code");
  }
  return cfg;
}

circuit_breaker_metrics circuit_breaker_metrics::of(const layer_context& ctx) {
  auto& reg = ctx.metrics();
  circuit_breaker_metrics m;
  m.state = &reg.gauge("turret_circuit_state", "Circuit breaker state (0 closed, 1 open, 2 half-open)", {"pipeline"})
                 .with({ctx.pipeline_name});
  m.rejected = &reg.counter("turret_circuit_rejected_total", "Requests rejected by an open circuit breaker",
                            {"pipeline"})
                    .with({ctx.pipeline_name});
  auto& tr = reg.counter("turret_circuit_transitions_total", "Circuit breaker state transitions (to: the new state)",
                         {"pipeline", "to"});
  for (circuit_state s : {circuit_state::closed, circuit_state::open, circuit_state::half_open})
    m.transitions[static_cast<std::size_t>(s)] = &tr.with({ctx.pipeline_name, to_string(s)});
  return m;
}

namespace detail {

failure_window::failure_window(std::chrono::nanoseconds window) noexcept
    : width_ns_(std::max<std::int64_t>(1, window.count() / bucket_count)) {}

std::int64_t failure_window::slot_of(clock::time_point now) const noexcept {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  return ns / width_ns_;
}

void failure_window::add(clock::time_point now, bool failure) noexcept {
  const std::int64_t slot = slot_of(now);
  bucket& b = buckets_[static_cast<std::size_t>(slot % bucket_count)];
  if (b.slot.load(std::memory_order_acquire) < slot) {
    // The bucket still holds an older slot: clear it for this one (once, under the lock). A caller that read the
    // old slot just before would add to the new one: off by one request at a window's edge, never lost.
    std::lock_guard lock(roll_);
    if (b.slot.load(std::memory_order_relaxed) < slot) {
      b.total.store(0, std::memory_order_relaxed);
      b.failures.store(0, std::memory_order_relaxed);
      b.slot.store(slot, std::memory_order_release);
    }
  }
  b.total.fetch_add(1, std::memory_order_relaxed);
  if (failure) b.failures.fetch_add(1, std::memory_order_relaxed);
}

failure_window::counts failure_window::sum(clock::time_point now) const noexcept {
  const std::int64_t slot = slot_of(now);
  counts c;
  for (const bucket& b : buckets_) {
    const std::int64_t s = b.slot.load(std::memory_order_acquire);
    if (s > slot - bucket_count && s <= slot) {
      c.total += b.total.load(std::memory_order_relaxed);
      c.failures += b.failures.load(std::memory_order_relaxed);
    }
  }
  return c;
}

void failure_window::reset() noexcept {
  std::lock_guard lock(roll_);
  for (bucket& b : buckets_) {
    b.slot.store(-1, std::memory_order_relaxed);
    b.total.store(0, std::memory_order_relaxed);
    b.failures.store(0, std::memory_order_relaxed);
  }
}

}  // namespace detail

circuit_breaker_state::circuit_breaker_state(circuit_breaker_config cfg, std::shared_ptr<clock> clk,
                                             circuit_breaker_metrics m)
    : cfg_(std::move(cfg)),
      clk_(std::move(clk)),
      metrics_(m),
      rate_threshold_ppm_(static_cast<std::uint64_t>(std::llround(cfg_.failure_rate * 1e6))),
      window_(cfg_.window) {}

std::shared_ptr<circuit_breaker_state> make_circuit_breaker_state(const circuit_breaker_config& cfg,
                                                                  const layer_context& ctx) {
  auto m = circuit_breaker_metrics::of(ctx);
  // A pipeline built to serve starts closed on the gauge. One built only to validate a configuration (no runtime)
  // leaves the gauge alone: the breaker being served may be open.
  if (ctx.rt) m.state->set(0);
  return std::make_shared<circuit_breaker_state>(cfg, ctx.clk, m);
}

result<circuit_ticket> circuit_breaker_state::reject() noexcept {
  if (metrics_.rejected) metrics_.rejected->inc();
  return circuit_breaker_errc::open;
}

std::optional<result<circuit_ticket>> circuit_breaker_state::admit_now() {
  const std::uint64_t w = word_.load(std::memory_order_acquire);
  switch (state_of(w)) {
    case circuit_state::closed: return result<circuit_ticket>(circuit_ticket(this, epoch_of(w), false));
    case circuit_state::open:
      if (now_ns() < open_until_ns_.load(std::memory_order_relaxed)) return reject();
      return std::nullopt;
    case circuit_state::half_open: break;
  }
  return std::nullopt;
}

result<circuit_ticket> circuit_breaker_state::admit() {
  for (;;) {
    std::uint64_t w = word_.load(std::memory_order_acquire);
    const std::uint32_t epoch = epoch_of(w);
    switch (state_of(w)) {
      case circuit_state::closed: return circuit_ticket(this, epoch, false);
      case circuit_state::open: {
        if (now_ns() < open_until_ns_.load(std::memory_order_relaxed)) return reject();
        std::lock_guard lock(mutex_);
        if (transition_locked(circuit_state::open, epoch, circuit_state::half_open, 1))
          return circuit_ticket(this, epoch + 1, true);
        continue;  // someone else moved it on: look again
      }
      case circuit_state::half_open: {
        const std::uint32_t admitted = admitted_of(w);
        if (admitted >= cfg_.half_open_probes) return reject();
        const std::uint64_t next = w + (std::uint64_t{1} << admitted_shift);
        if (word_.compare_exchange_weak(w, next, std::memory_order_acq_rel, std::memory_order_acquire))
          return circuit_ticket(this, epoch, true);
        continue;
      }
    }
  }
}

std::uint32_t circuit_breaker_state::probes_admitted() const noexcept {
  const std::uint64_t w = word_.load(std::memory_order_acquire);
  return state_of(w) == circuit_state::half_open ? admitted_of(w) : 0;
}

clock::duration circuit_breaker_state::remaining_open() const noexcept {
  if (state() != circuit_state::open) return clock::duration::zero();
  const std::int64_t left = open_until_ns_.load(std::memory_order_relaxed) - now_ns();
  return left > 0 ? std::chrono::duration_cast<clock::duration>(std::chrono::nanoseconds(left))
                  : clock::duration::zero();
}

bool circuit_breaker_state::transition_locked(circuit_state from, std::uint32_t epoch, circuit_state to,
                                              std::uint32_t admitted) {
  std::uint64_t w = word_.load(std::memory_order_acquire);
  if (state_of(w) != from || epoch_of(w) != epoch) return false;
  // From here on the transition happens: only half-open words change outside the mutex, and only their probe
  // counts, never their state or epoch.
  if (to == circuit_state::open) {
    // Published before the state: whoever sees this epoch's open state reads this epoch's end.
    open_until_ns_.store(now_ns() + cfg_.open_for.count(), std::memory_order_relaxed);
  } else if (to == circuit_state::closed) {
    consecutive_.store(0, std::memory_order_relaxed);
    window_.reset();
  }
  const std::uint64_t next = make_word(to, epoch + 1, admitted);
  while (!word_.compare_exchange_weak(w, next, std::memory_order_acq_rel, std::memory_order_acquire)) {
  }
  if (metrics_.state) metrics_.state->set(static_cast<double>(static_cast<int>(to)));
  if (auto* c = metrics_.transitions[static_cast<std::size_t>(to)]) c->inc();
  return true;
}

void circuit_breaker_state::record(std::uint32_t epoch, bool probe, call_outcome o) noexcept {
  if (probe)
    record_probe(epoch, o);
  else
    record_closed(epoch, o);
}

void circuit_breaker_state::record_closed_slow(std::uint32_t epoch, call_outcome o) noexcept {
  if (o == call_outcome::ignored) return;
  const std::uint64_t w = word_.load(std::memory_order_acquire);
  if (state_of(w) != circuit_state::closed || epoch_of(w) != epoch) return;  // an earlier period's outcome
  const bool failure = o == call_outcome::failure;
  bool trip = false;
  if (cfg_.mode == circuit_breaker_config::trip_mode::consecutive) {
    if (!failure) {
      if (consecutive_.load(std::memory_order_relaxed) != 0) consecutive_.store(0, std::memory_order_relaxed);
      return;
    }
    trip = consecutive_.fetch_add(1, std::memory_order_relaxed) + 1 >= cfg_.consecutive_failures;
  } else {
    const auto now = clk_->now();
    window_.add(now, failure);
    if (!failure) return;
    const auto c = window_.sum(now);
    trip = c.total >= cfg_.min_requests && c.failures * 1'000'000 >= rate_threshold_ppm_ * c.total;
  }
  if (trip) {
    std::lock_guard lock(mutex_);
    transition_locked(circuit_state::closed, epoch, circuit_state::open);
  }
}

void circuit_breaker_state::record_probe(std::uint32_t epoch, call_outcome o) noexcept {
  if (o == call_outcome::ignored) {
    release_probe(epoch);
    return;
  }
  std::lock_guard lock(mutex_);
  if (o == call_outcome::failure) {
    transition_locked(circuit_state::half_open, epoch, circuit_state::open);
    return;
  }
  std::uint64_t w = word_.load(std::memory_order_acquire);
  for (;;) {
    if (state_of(w) != circuit_state::half_open || epoch_of(w) != epoch) return;
    if (succeeded_of(w) + 1 >= cfg_.half_open_probes) {
      transition_locked(circuit_state::half_open, epoch, circuit_state::closed);
      return;
    }
    if (word_.compare_exchange_weak(w, w + (std::uint64_t{1} << succeeded_shift), std::memory_order_acq_rel,
                                    std::memory_order_acquire))
      return;
  }
}

void circuit_breaker_state::release_probe(std::uint32_t epoch) noexcept {
  std::uint64_t w = word_.load(std::memory_order_acquire);
  for (;;) {
    if (state_of(w) != circuit_state::half_open || epoch_of(w) != epoch || admitted_of(w) == 0) return;
    if (word_.compare_exchange_weak(w, w - (std::uint64_t{1} << admitted_shift), std::memory_order_acq_rel,
                                    std::memory_order_acquire))
      return;
  }
}

}  // namespace turret
