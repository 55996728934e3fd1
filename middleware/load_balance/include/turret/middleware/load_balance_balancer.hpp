#pragma once
// The non-template part of load_balance: endpoint statistics and health, the policies, outlier ejection and the
// active health checks' bookkeeping. load_balance.hpp's service forwards requests; everything it decides, it asks
// the balancer here. Contracts are documented at load_balance.hpp.
#include <turret/clock.hpp>
#include <turret/metrics.hpp>
#include <turret/middleware/load_balance_placement.hpp>
#include <turret/result.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace turret {

/// Immutable configuration of a load_balance layer (the `endpoints:` key is parsed apart: lb_endpoints_spec).
struct lb_config {
  enum class policy { p2c, round_robin, ring_hash, maglev };
  /// What p2c compares: tower's peak-EWMA latency (times pending + 1), or the number of pending requests.
  enum class load_metric { peak_ewma, pending };

  struct p2c_options {
    load_metric load = load_metric::peak_ewma;
    std::chrono::nanoseconds decay{std::chrono::seconds(10)};       ///< EWMA decay time (tower: 10s)
    std::chrono::nanoseconds default_rtt{std::chrono::milliseconds(1)};  ///< estimate before the first answer
  };
  struct ring_hash_options {
    std::size_t vnodes = 160;  ///< points per endpoint
    bool failover = true;      ///< an unavailable owner's keys go to the next endpoint (else they fail)
    bool hash_tag = false;     ///< hash only a key's {tag} (load_balance_placement.hpp)
  };
  struct maglev_options {
    std::size_t table_size = 65537;  ///< a prime > the number of endpoints
    bool failover = true;
    bool hash_tag = false;
  };
  /// Passive health (Envoy's consecutive_5xx outlier detection).
  struct outlier_options {
    std::uint32_t consecutive_failures = 5;
    std::chrono::nanoseconds base_ejection{std::chrono::seconds(30)};
    std::chrono::nanoseconds max_ejection{std::chrono::seconds(300)};
    double max_ejected_percent = 50;
  };
  /// Active health checks through each endpoint's probe.
  struct health_check_options {
    std::chrono::nanoseconds interval{std::chrono::seconds(5)};
    std::chrono::nanoseconds timeout{std::chrono::seconds(1)};
    std::uint32_t unhealthy = 3;  ///< consecutive failed probes that mark an endpoint unhealthy
    std::uint32_t healthy = 2;    ///< consecutive successful probes that mark it healthy again
  };

  lb_config::policy pol = policy::p2c;
  p2c_options p2c;
  ring_hash_options ring_hash;
  maglev_options maglev;
  std::optional<outlier_options> outlier;
  std::optional<health_check_options> health_check;
};

/// "p2c" | "round_robin" | "ring_hash" | "maglev".
std::string_view to_string(lb_config::policy p) noexcept;

namespace detail {

/// Statistics and health of one endpoint. Kept by endpoint name in lb_state, so that a reload (and, for an
/// upstream store, a topology refresh) keeps them for the endpoints that remain.
struct lb_endpoint_state {
  std::atomic<std::int64_t> pending{0};          ///< requests picked for it and not finished
  std::atomic<std::int64_t> ejected_until{0};    ///< clock time (ns since its epoch) of the return; 0 = in service
  std::atomic<bool> healthy{true};               ///< active health checks' verdict
  std::atomic<std::uint32_t> consecutive_failures{0};

  // Under lb_state::mu.
  std::uint32_t times_ejected = 0;  ///< the ejection multiplier (decays while the endpoint stays in service)
  std::int64_t returned_at = 0;     ///< when it last came back from an ejection
  std::uint32_t probe_failures = 0;
  std::uint32_t probe_successes = 0;

  // Peak EWMA (tower's PeakEwma), under ewma_mu.
  std::mutex ewma_mu;
  double rtt_ns = -1;  ///< < 0: no answer yet (the configured default_rtt)
  std::int64_t ewma_at = 0;
};

}  // namespace detail

/// The state of one load_balance entry (ctx.shared_state): its endpoints' statistics by name.
struct lb_state {
  std::mutex mu;
  std::map<std::string, std::shared_ptr<detail::lb_endpoint_state>, std::less<>> endpoints;

  /// The statistics of the endpoint called `name` (created on first use).
  std::shared_ptr<detail::lb_endpoint_state> endpoint(const std::string& name);
};

namespace detail {

/// RAII: one pending request on an endpoint.
class lb_pending {
 public:
  lb_pending() noexcept = default;
  explicit lb_pending(lb_endpoint_state* s) noexcept : s_(s) { s_->pending.fetch_add(1, std::memory_order_relaxed); }
  lb_pending(lb_pending&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  lb_pending& operator=(lb_pending&& o) noexcept {
    if (this != &o) {
      reset();
      s_ = std::exchange(o.s_, nullptr);
    }
    return *this;
  }
  ~lb_pending() { reset(); }
  void reset() noexcept {
    if (s_) std::exchange(s_, nullptr)->pending.fetch_sub(1, std::memory_order_relaxed);
  }

 private:
  lb_endpoint_state* s_ = nullptr;
};

/// Policies, outlier ejection and health over one set of endpoints (one per wrap). Thread-safe.
class lb_balancer {
 public:
  lb_balancer(std::shared_ptr<const lb_config> cfg, std::vector<std::string> names, std::shared_ptr<lb_state> state,
              std::shared_ptr<clock> clk, metrics::registry& metrics, const std::string& pipeline);

  std::size_t size() const noexcept { return names_.size(); }
  const std::string& name(std::size_t i) const noexcept { return names_[i]; }
  const lb_config& config() const noexcept { return *cfg_; }
  clock& clk() const noexcept { return *clk_; }
  const std::shared_ptr<clock>& clock_ptr() const noexcept { return clk_; }
  lb_endpoint_state& state(std::size_t i) const noexcept { return *states_[i]; }

  /// The endpoints' gates (load_balance.hpp, "Gates"), by index; null or absent: open. Set once, before any pick.
  void set_gates(std::vector<std::shared_ptr<const std::atomic<bool>>> gates) { gates_ = std::move(gates); }

  /// ring_hash or maglev: the pick needs the request (see load_balance.hpp, "Readiness").
  bool keyed() const noexcept {
    return cfg_->pol == lb_config::policy::ring_hash || cfg_->pol == lb_config::policy::maglev;
  }
  /// p2c on peak EWMA: calls are timed.
  bool measures_latency() const noexcept { return measures_latency_; }

  /// Picks an available endpoint: by `key` for the keyed policies (no key: p2c), else by the policy. `reserve`:
  /// the pick is final (round robin advances now); without it (the fast path, which must have no side effect when
  /// it declines) round robin only reads its counter into `*round`: commit(*round) once the pick was used.
  /// `avoid` (bit i: endpoint i; request_context::attempted_endpoints): p2c and round robin pick among the endpoints
  /// in service outside it while there is one (a retry or a hedge goes elsewhere), among all in service otherwise;
  /// the keyed policies ignore it (a key keeps its endpoint).
  /// Returns no_endpoint_index when none is available (or, without failover, the key's owner is not).
  std::size_t pick(const std::optional<std::string_view>& key, bool reserve, std::uint64_t* round = nullptr,
                   std::uint64_t avoid = 0) {
    if (round_robin_ && !reserve && avoid == 0) {  // the fast path's pick, inline: the endpoint in turn, in service
      const std::uint64_t r = rr_.load(std::memory_order_relaxed);
      if (round) *round = r;
      const std::size_t i = turn(r);
      if (i != no_endpoint_index && in_service_now(*states_[i])) return i;
    }
    return pick_slow(key, reserve, round, avoid);
  }
  /// Round robin: advances past an unreserved pick that was used (no effect if another pick advanced meanwhile).
  /// A load and a store, not a compare-exchange (no locked instruction on the fast path): when another thread
  /// advances between the two, the counter may step back by one, so two concurrent picks go to one endpoint, as
  /// they already may when both read the counter before either commits. One thread's picks stay exact.
  void commit(std::uint64_t round) noexcept {
    if (rr_.load(std::memory_order_relaxed) == round) rr_.store(round + 1, std::memory_order_relaxed);
  }
  /// Counts a pick of endpoint i (turret_lb_picks_total).
  void count_pick(std::size_t i) noexcept { picks_[i]->inc(); }
  /// Is any endpoint available?
  bool any_available();

  /// The outcome of one request on endpoint i: `ec` empty = success (resets consecutive failures); an error of
  /// condition unavailable, timed_out or internal = a failure (may eject); any other error counts as neither.
  /// `latency`: how long the call took (peak EWMA).
  void record(std::size_t i, const error_code& ec, const std::optional<clock::duration>& latency) {
    if (!ec && !measures_latency_) {  // the common case, inline: a success that is not timed
      if (cfg_->outlier) reset_failures(*states_[i]);
      return;
    }
    record_outcome(i, ec, latency);
  }
  /// One probe's outcome (health checks).
  void record_probe(std::size_t i, bool ok);

  /// Called (under the state lock: it must only schedule) with endpoint i and the time it returns, at each
  /// ejection: the service schedules readmit_if_due(i) then, so that the endpoint and the healthy gauge come back
  /// on time without waiting for a pick. Set once, before the balancer is shared.
  void set_readmission_scheduler(std::function<void(std::size_t, clock::time_point)> f) {
    schedule_readmission_ = std::move(f);
  }
  /// Brings endpoint i back (and updates the healthy gauge) when its ejection is over; nothing otherwise.
  void readmit_if_due(std::size_t i);

  /// Endpoints in service (neither ejected nor unhealthy) now.
  std::size_t in_service();
  /// p2c's load of endpoint i now (tests).
  double load(std::size_t i, clock::time_point now) const;
  /// Is endpoint i ejected now?
  bool ejected(std::size_t i, clock::time_point now) const noexcept;

 private:
  struct lazy_now {
    const clock& c;
    std::optional<clock::time_point> v;
    clock::time_point get() {
      if (!v) v = c.now();
      return *v;
    }
  };
  static void reset_failures(lb_endpoint_state& s) noexcept {
    if (s.consecutive_failures.load(std::memory_order_relaxed) != 0)
      s.consecutive_failures.store(0, std::memory_order_relaxed);
  }
  void record_outcome(std::size_t i, const error_code& ec, const std::optional<clock::duration>& latency);
  std::size_t pick_slow(const std::optional<std::string_view>& key, bool reserve, std::uint64_t* round,
                        std::uint64_t avoid);
  /// In service without reading the clock: healthy and not ejected (an ejection that has expired needs the clock:
  /// available() brings the endpoint back).
  static bool in_service_now(const lb_endpoint_state& s) noexcept {
    return s.healthy.load(std::memory_order_relaxed) && s.ejected_until.load(std::memory_order_acquire) == 0;
  }
  /// round mod the number of endpoints (no_endpoint_index without any): Lemire's fastmod (a multiply instead of a
  /// division) while both fit in 32 bits.
  std::size_t turn(std::uint64_t round) const noexcept {
    const std::size_t n = names_.size();
    if (round <= 0xffffffffu && n <= 0xffffffffu)
      return static_cast<std::size_t>((static_cast<unsigned __int128>(rr_magic_ * round) * n) >> 64);
    return n == 0 ? no_endpoint_index : static_cast<std::size_t>(round % n);
  }
  bool available(std::size_t i, lazy_now& now);
  std::size_t pick_p2c(lazy_now& now, std::uint64_t avoid);
  std::size_t pick_round_robin(lazy_now& now, std::uint64_t round, std::uint64_t avoid);
  std::size_t pick_keyed(std::string_view key, lazy_now& now);
  void eject_locked(std::size_t i, clock::time_point now);
  void maybe_eject(std::size_t i);
  void bring_back(std::size_t i, clock::time_point now);
  void update_gauge_locked(clock::time_point now);

  std::shared_ptr<const lb_config> cfg_;
  std::vector<std::string> names_;
  std::shared_ptr<lb_state> state_;
  std::vector<std::shared_ptr<lb_endpoint_state>> states_;
  std::vector<std::shared_ptr<const std::atomic<bool>>> gates_;  ///< empty when no endpoint has one
  std::shared_ptr<clock> clk_;
  std::optional<hash_ring> ring_;
  std::optional<maglev_table> maglev_;
  bool measures_latency_ = false;  ///< measures_latency(), computed once
  bool round_robin_ = false;       ///< the policy is round_robin
  std::uint64_t rr_magic_ = 0;     ///< 2^64 / n rounded up, for turn() (n = 0: unused)
  std::atomic<std::uint64_t> rr_{0};
  std::vector<metrics::counter*> picks_;  ///< turret_lb_picks_total{pipeline, endpoint}
  metrics::counter* ejections_;           ///< turret_lb_ejections_total{pipeline}
  metrics::gauge* healthy_;               ///< turret_lb_endpoints_healthy{pipeline}
  std::function<void(std::size_t, clock::time_point)> schedule_readmission_;
};

}  // namespace detail
}  // namespace turret
