#include <turret/middleware/load_balance_balancer.hpp>
#include <turret/context.hpp>
#include <turret/error.hpp>
#include <turret/metrics.hpp>

#include <algorithm>
#include <cmath>

namespace turret {

std::string_view to_string(lb_config::policy p) noexcept {
  switch (p) {
    case lb_config::policy::p2c: return "p2c";
    case lb_config::policy::round_robin: return "round_robin";
    case lb_config::policy::ring_hash: return "ring_hash";
    case lb_config::policy::maglev: return "maglev";
  }
  return "unknown";
}

std::shared_ptr<detail::lb_endpoint_state> lb_state::endpoint(const std::string& name) {
  std::lock_guard lock(mu);
  auto& slot = endpoints[name];
  if (!slot) slot = std::make_shared<detail::lb_endpoint_state>();
  return slot;
}

namespace detail {

namespace {

std::int64_t ns(clock::time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// Candidates of a pick that had to skip unavailable endpoints (a few endpoints: on the stack).
class index_list {
 public:
  void push(std::size_t i) {
    if (n_ < inline_size) {
      inline_[n_] = i;
    } else {
      if (heap_.empty()) heap_.assign(inline_, inline_ + inline_size);
      heap_.push_back(i);
    }
    ++n_;
  }
  std::size_t size() const noexcept { return n_; }
  std::size_t operator[](std::size_t k) const noexcept { return heap_.empty() ? inline_[k] : heap_[k]; }
  template <class Pred>
  void remove_if(Pred&& drop) {
    std::size_t* v = heap_.empty() ? inline_ : heap_.data();
    std::size_t kept = 0;
    for (std::size_t k = 0; k < n_; ++k) {
      if (!drop(v[k])) v[kept++] = v[k];
    }
    n_ = kept;
    if (!heap_.empty()) heap_.resize(kept);
  }

 private:
  static constexpr std::size_t inline_size = 32;
  std::size_t inline_[inline_size];
  std::size_t n_ = 0;
  std::vector<std::size_t> heap_;
};

}  // namespace

lb_balancer::lb_balancer(std::shared_ptr<const lb_config> cfg, std::vector<std::string> names,
                         std::shared_ptr<lb_state> state, std::shared_ptr<clock> clk, metrics::registry& metrics,
                         const std::string& pipeline)
    : cfg_(std::move(cfg)), names_(std::move(names)), state_(std::move(state)), clk_(std::move(clk)) {
  states_.reserve(names_.size());
  for (const auto& n : names_) states_.push_back(state_->endpoint(n));
  if (cfg_->pol == lb_config::policy::ring_hash) ring_.emplace(names_, cfg_->ring_hash.vnodes);
  if (cfg_->pol == lb_config::policy::maglev) maglev_.emplace(names_, cfg_->maglev.table_size);
  auto& picks = metrics.counter("turret_lb_picks_total", "Requests sent to each endpoint by load_balance layers",
                                {"pipeline", "endpoint"});
  for (const auto& n : names_) picks_.push_back(&picks.with({pipeline, n}));
  ejections_ = &metrics.counter("turret_lb_ejections_total", "Endpoints ejected by load_balance outlier detection",
                                {"pipeline"})
                    .with({pipeline});
  healthy_ = &metrics.gauge("turret_lb_endpoints_healthy",
                            "Endpoints of load_balance layers in service (neither ejected nor failing health checks)",
                            {"pipeline"})
                  .with({pipeline});
  measures_latency_ = cfg_->p2c.load == lb_config::load_metric::peak_ewma &&
                      (cfg_->pol == lb_config::policy::p2c || keyed());  // keyed policies fall back to p2c without a key
  round_robin_ = cfg_->pol == lb_config::policy::round_robin;
  if (!names_.empty()) rr_magic_ = ~std::uint64_t{0} / names_.size() + 1;  // n = 1: 0, and turn() is 0
  std::lock_guard lock(state_->mu);
  update_gauge_locked(clk_->now());
}

bool lb_balancer::ejected(std::size_t i, clock::time_point now) const noexcept {
  const std::int64_t until = states_[i]->ejected_until.load(std::memory_order_acquire);
  return until != 0 && ns(now) < until;
}

bool lb_balancer::available(std::size_t i, lazy_now& now) {
  if (!gates_.empty() && gates_[i] && !gates_[i]->load(std::memory_order_acquire)) return false;
  lb_endpoint_state& s = *states_[i];
  if (!s.healthy.load(std::memory_order_relaxed)) return false;
  const std::int64_t until = s.ejected_until.load(std::memory_order_acquire);
  if (until == 0) return true;  // the common case reads no clock
  const clock::time_point t = now.get();
  if (ns(t) < until) return false;
  bring_back(i, t);
  return true;
}

bool lb_balancer::any_available() {
  lazy_now now{*clk_, {}};
  for (std::size_t i = 0; i < names_.size(); ++i) {
    if (available(i, now)) return true;
  }
  return false;
}

std::size_t lb_balancer::in_service() {
  lazy_now now{*clk_, {}};
  std::size_t n = 0;
  for (std::size_t i = 0; i < names_.size(); ++i) n += available(i, now) ? 1 : 0;
  return n;
}

double lb_balancer::load(std::size_t i, clock::time_point now) const {
  lb_endpoint_state& s = *states_[i];
  const double pending = static_cast<double>(s.pending.load(std::memory_order_relaxed));
  if (cfg_->p2c.load == lb_config::load_metric::pending) return pending;
  double rtt;
  {
    std::lock_guard lock(s.ewma_mu);
    if (s.rtt_ns < 0) {
      rtt = static_cast<double>(cfg_->p2c.default_rtt.count());
    } else {
      // tower's PeakEwma: the estimate decays towards 0 while no answer comes in.
      const double elapsed = static_cast<double>(std::max<std::int64_t>(0, ns(now) - s.ewma_at));
      rtt = s.rtt_ns * std::exp(-elapsed / static_cast<double>(cfg_->p2c.decay.count()));
    }
  }
  // Cost = estimate x (pending + 1) (tower); an estimate decayed to nothing still ranks by pending requests
  // (Finagle's penalty), so that an idle-for-long endpoint is not flooded.
  if (rtt < 1.0 && pending > 0) return 1e12 + pending;
  return rtt * (pending + 1);
}

std::size_t lb_balancer::pick_slow(const std::optional<std::string_view>& key, bool reserve, std::uint64_t* round,
                                   std::uint64_t avoid) {
  lazy_now now{*clk_, {}};
  if (measures_latency_) now.get();
  if (keyed() && key) return pick_keyed(*key, now);
  if (cfg_->pol == lb_config::policy::round_robin) {
    const std::uint64_t r =
        reserve ? rr_.fetch_add(1, std::memory_order_relaxed) : rr_.load(std::memory_order_relaxed);
    if (round) *round = r;
    return pick_round_robin(now, r, avoid);
  }
  return pick_p2c(now, avoid);
}

namespace {

bool marked(std::uint64_t avoid, std::size_t i) noexcept { return i < 64 && ((avoid >> i) & 1) != 0; }

/// Fills `in` with the endpoints of 0..n-1 for which `available(i)`, only those outside `avoid` when there is one.
template <class Available>
void in_service_list(std::size_t n, std::uint64_t avoid, Available&& available, index_list& in) {
  bool untried = false;
  for (std::size_t i = 0; i < n; ++i) {
    if (!available(i)) continue;
    in.push(i);
    untried = untried || !marked(avoid, i);
  }
  if (avoid != 0 && untried) in.remove_if([avoid](std::size_t i) { return marked(avoid, i); });
}

}  // namespace

std::size_t lb_balancer::pick_round_robin(lazy_now& now, std::uint64_t round, std::uint64_t avoid) {
  const std::size_t n = names_.size();
  if (n == 0) return no_endpoint_index;
  const std::size_t first = turn(round);
  if (!marked(avoid, first) && available(first, now)) return first;
  // Some endpoints are out (or already tried): the cycle runs over those in service only.
  index_list in;
  in_service_list(n, avoid, [&](std::size_t i) { return available(i, now); }, in);
  if (in.size() == 0) return no_endpoint_index;
  return in[static_cast<std::size_t>(round % in.size())];
}

std::size_t lb_balancer::pick_p2c(lazy_now& now, std::uint64_t avoid) {
  const std::size_t n = names_.size();
  if (n == 0) return no_endpoint_index;
  const std::uint64_t r = request_context::next_thread_sample();
  std::size_t a, b;
  if (n == 1) {
    return available(0, now) ? 0 : no_endpoint_index;
  }
  a = static_cast<std::size_t>(r % n);
  b = (a + 1 + static_cast<std::size_t>((r >> 32) % (n - 1))) % n;  // distinct from a
  if (avoid != 0 || !available(a, now) || !available(b, now)) {
    index_list in;
  in_service_list(n, avoid, [&](std::size_t i) { return available(i, now); }, in);
    if (in.size() == 0) return no_endpoint_index;
    if (in.size() == 1) return in[0];
    const std::size_t ka = static_cast<std::size_t>(r % in.size());
    const std::size_t kb = (ka + 1 + static_cast<std::size_t>((r >> 32) % (in.size() - 1))) % in.size();
    a = in[ka];
    b = in[kb];
  }
  const clock::time_point t = measures_latency_ ? now.get() : clock::time_point{};
  return load(b, t) < load(a, t) ? b : a;
}

std::size_t lb_balancer::pick_keyed(std::string_view key, lazy_now& now) {
  const std::uint64_t h = routing_hash(key, ring_ ? cfg_->ring_hash.hash_tag : cfg_->maglev.hash_tag);
  const bool failover = ring_ ? cfg_->ring_hash.failover : cfg_->maglev.failover;
  const std::size_t owner = ring_ ? ring_->owner(h) : maglev_->owner(h);
  if (owner == no_endpoint_index) return owner;
  if (available(owner, now)) return owner;
  if (!failover) return no_endpoint_index;
  auto ok = [&](std::size_t i) { return available(i, now); };
  return ring_ ? ring_->find(h, ok) : maglev_->find(h, ok);
}

void lb_balancer::record_outcome(std::size_t i, const error_code& ec, const std::optional<clock::duration>& latency) {
  lb_endpoint_state& s = *states_[i];
  const auto c = ec ? classify(ec) : std::nullopt;
  const bool failure = c == errc::unavailable || c == errc::timed_out || c == errc::internal;
  if (latency && measures_latency_) {
    double rtt = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(*latency).count());
    const std::int64_t at = ns(clk_->now());
    std::lock_guard lock(s.ewma_mu);
    // A failure is no evidence of speed (a dead upstream refuses at once): it counts as a peak of twice the
    // estimate, so that fast failures repel requests instead of drawing them.
    if (failure)
      rtt = std::max(rtt, 2 * std::max(s.rtt_ns, static_cast<double>(cfg_->p2c.default_rtt.count())));
    if (s.rtt_ns < rtt) {
      s.rtt_ns = rtt;  // the peak: a slower answer takes effect at once
    } else {
      const double elapsed = static_cast<double>(std::max<std::int64_t>(0, at - s.ewma_at));
      const double decay = std::exp(-elapsed / static_cast<double>(cfg_->p2c.decay.count()));
      s.rtt_ns = s.rtt_ns * decay + rtt * (1 - decay);
    }
    s.ewma_at = at;
  }
  if (!cfg_->outlier) return;
  if (!ec) {
    reset_failures(s);
    return;
  }
  if (!failure) return;  // overloaded, cancelled...: neither success nor failure
  const std::uint32_t n = s.consecutive_failures.fetch_add(1, std::memory_order_relaxed) + 1;
  if (n >= cfg_->outlier->consecutive_failures) maybe_eject(i);
}

void lb_balancer::maybe_eject(std::size_t i) {
  std::lock_guard lock(state_->mu);
  const clock::time_point now = clk_->now();
  lb_endpoint_state& s = *states_[i];
  if (ejected(i, now)) return;
  if (s.consecutive_failures.load(std::memory_order_relaxed) < cfg_->outlier->consecutive_failures) return;
  // max_ejected_percent: at least one endpoint may always be ejected; more only within the share.
  std::size_t out = 0;
  for (std::size_t k = 0; k < names_.size(); ++k) out += ejected(k, now) ? 1 : 0;
  if (out > 0 && static_cast<double>(out + 1) * 100.0 > cfg_->outlier->max_ejected_percent * static_cast<double>(size()))
    return;  // the failures keep counting: the next one tries again
  eject_locked(i, now);
}

void lb_balancer::eject_locked(std::size_t i, clock::time_point now) {
  lb_endpoint_state& s = *states_[i];
  const auto& o = *cfg_->outlier;
  // The multiplier decays by one for every base_ejection spent in service since the last return (Envoy decrements
  // it while the host stays healthy), then grows by one: base x 1, x 2, x 3 ... up to max_ejection.
  if (s.times_ejected > 0 && s.returned_at != 0) {
    const auto in_service = ns(now) - s.returned_at;
    const auto steps = static_cast<std::uint64_t>(std::max<std::int64_t>(0, in_service) / o.base_ejection.count());
    s.times_ejected = steps >= s.times_ejected ? 0 : s.times_ejected - static_cast<std::uint32_t>(steps);
  }
  ++s.times_ejected;
  const auto length = std::min<std::chrono::nanoseconds>(o.base_ejection * s.times_ejected, o.max_ejection);
  const std::int64_t until = ns(now) + std::max<std::int64_t>(1, length.count());
  s.ejected_until.store(until, std::memory_order_release);
  s.consecutive_failures.store(0, std::memory_order_relaxed);
  ejections_->inc();
  update_gauge_locked(now);
  if (schedule_readmission_)
    schedule_readmission_(i, clock::time_point(std::chrono::duration_cast<clock::duration>(std::chrono::nanoseconds(until))));
}

void lb_balancer::bring_back(std::size_t i, clock::time_point now) {
  std::lock_guard lock(state_->mu);
  lb_endpoint_state& s = *states_[i];
  const std::int64_t until = s.ejected_until.load(std::memory_order_acquire);
  if (until == 0 || ns(now) < until) return;  // another thread did it, or it was ejected again
  s.ejected_until.store(0, std::memory_order_release);
  s.returned_at = ns(now);
  s.consecutive_failures.store(0, std::memory_order_relaxed);
  update_gauge_locked(now);
}

void lb_balancer::readmit_if_due(std::size_t i) {
  lazy_now now{*clk_, {}};
  (void)available(i, now);  // brings it back when its time is up
}

void lb_balancer::record_probe(std::size_t i, bool ok) {
  const auto& hc = *cfg_->health_check;
  std::lock_guard lock(state_->mu);
  lb_endpoint_state& s = *states_[i];
  const bool was = s.healthy.load(std::memory_order_relaxed);
  if (ok) {
    s.probe_failures = 0;
    if (!was && ++s.probe_successes >= hc.healthy) {
      s.healthy.store(true, std::memory_order_relaxed);
      s.probe_successes = 0;
    }
  } else {
    s.probe_successes = 0;
    if (was && ++s.probe_failures >= hc.unhealthy) {
      s.healthy.store(false, std::memory_order_relaxed);
      s.probe_failures = 0;
    }
  }
  if (was != s.healthy.load(std::memory_order_relaxed)) update_gauge_locked(clk_->now());
}

void lb_balancer::update_gauge_locked(clock::time_point now) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < names_.size(); ++i)
    n += states_[i]->healthy.load(std::memory_order_relaxed) && !ejected(i, now) ? 1 : 0;
  healthy_->set(static_cast<double>(n));
}

}  // namespace detail
}  // namespace turret
