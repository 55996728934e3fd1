#pragma once
// circuit_breaker: stops sending requests inward while the inner service keeps failing, so that a failing upstream is
// not hammered and callers fail fast instead of waiting for errors (Hystrix, resilience4j, Envoy's outlier
// detection; tower has none).
//
// ```yaml
// - layer: circuit_breaker
//   mode: consecutive          # consecutive | failure_rate
//   consecutive_failures: 5    # mode consecutive: open after this many failures in a row
//   failure_rate: 0.5          # mode failure_rate: open when failures / requests over `window` reaches this...
//   min_requests: 20           # ...and the window holds at least this many requests
//   window: 10s
//   open_for: 30s              # how long an open breaker rejects before it lets probes through
//   half_open_probes: 3        # probes admitted in half-open; all must succeed to close
//   failure_on: [unavailable, timed_out, internal, overloaded]   # the default; Redis codes too, e.g. TRYAGAIN
// ```
//
// States
// - closed: every request goes inward; its outcome is recorded. Mode consecutive: `consecutive_failures` failures in
//   a row open the breaker (a success resets the run). Mode failure_rate: the outcomes of the last `window` are
//   counted in 10 buckets of window/10 (the window slides by a bucket: it covers between 9/10 of `window` and
//   `window`); after a failure, when the window holds at least `min_requests` outcomes and failures / outcomes is
//   at least `failure_rate`, the breaker opens.
// - open: every request fails at once with circuit_breaker_errc::open (condition unavailable: RESP
//   "ERR unavailable: circuit open", HTTP 503 with Retry-After, gRPC UNAVAILABLE; turret/error_mapping.hpp), without
//   calling inward, for `open_for`. The mapping's Retry-After is its fixed 1 s (it takes no per-error hint);
//   remaining_open() gives the real remaining time.
// - half-open: entered by the first request after `open_for` (lazily: the state and its gauge show open until a
//   request comes). Up to `half_open_probes` requests are admitted as probes; further requests are rejected as in
//   open. When `half_open_probes` probes have succeeded the breaker closes (with a fresh count or window); the first
//   probe failure opens it again for `open_for`. A probe that ends neither in success nor failure (cancelled, or an
//   error not in failure_on), or whose permit is dropped unspent, gives its place back.
//
// Outcomes
// - failure: the pipeline error's turret condition (turret/error.hpp; a cancellation after the request's deadline
//   counts as timed_out) is in `failure_on`, or the response carries a Redis error code listed there
//   (turret::response_error_code, turret/request_traits.hpp). A Redis error reply such as WRONGTYPE is a success
//   unless its code is listed: the server answered.
// - success: a response that is not a failure.
// - ignored: an error whose condition is not listed (cancelled, invalid_argument...): not counted either way.
// An outcome reported for an earlier period of the breaker (the request was admitted before a transition) is
// ignored: only requests admitted in the current state decide the next transition.
//
// Fast path (try_call_now): closed -> the inner fast path, its outcome recorded (nullopt from it: nothing was
// recorded); open before `open_for` has passed -> the rejection (counted); otherwise (half-open, or open and due
// for half-open) -> nullopt with no side effect: ready() then takes the transition and the probe place.
//
// Sharing and threads: the state (one per layer, i.e. per pipeline entry: the factory takes it from
// ctx.shared_state, so a reload keeps an unchanged entry's state) is shared by every thread. The state word (state,
// epoch, probe counts) is one atomic; admission in closed state is one atomic load; transitions take a mutex (they
// are rare) so that each happens exactly once. The failure-rate window's buckets are atomics; moving a bucket to a
// new time slot takes a short lock.
//
// Metrics ({pipeline}): turret_circuit_state (gauge: 0 closed, 1 open, 2 half-open), turret_circuit_rejected_total,
// turret_circuit_transitions_total{pipeline,to} (to = closed | open | half_open).
#include <turret/clock.hpp>
#include <turret/error.hpp>
#include <turret/layer_context.hpp>
#include <turret/request_traits.hpp>
#include <turret/service.hpp>

#include <boost/system/error_category.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace turret {

namespace metrics {
class counter;
class gauge;
}  // namespace metrics

enum class circuit_breaker_errc {
  open = 1,  ///< "circuit open": rejected without calling inward (condition unavailable)
};

/// The category "turret.circuit_breaker".
const boost::system::error_category& circuit_breaker_category() noexcept;
inline error_code make_error_code(circuit_breaker_errc e) noexcept {
  return {static_cast<int>(e), circuit_breaker_category()};
}

}  // namespace turret

template <>
struct boost::system::is_error_code_enum<turret::circuit_breaker_errc> : std::true_type {};

namespace turret {

class config_node;

/// Immutable configuration.
struct circuit_breaker_config {
  enum class trip_mode { consecutive, failure_rate };
  trip_mode mode = trip_mode::consecutive;
  std::uint32_t consecutive_failures = 5;                       ///< >= 1
  double failure_rate = 0.5;                                    ///< (0, 1]
  std::uint32_t min_requests = 20;                              ///< >= 1
  std::chrono::nanoseconds window{std::chrono::seconds(10)};    ///< >= 10us (10 buckets of >= 1us)
  std::chrono::nanoseconds open_for{std::chrono::seconds(30)};  ///< > 0
  std::uint32_t half_open_probes = 3;                           ///< 1..10000
  /// failure_on, conditions: bit (1 << errc value) for each listed condition.
  std::uint32_t failure_conditions = default_failure_conditions();
  /// failure_on, Redis error codes (the first word of an error reply: "TRYAGAIN", "LOADING"...).
  std::vector<std::string> failure_codes;

  bool operator==(const circuit_breaker_config&) const = default;

  static constexpr std::uint32_t condition_bit(errc c) noexcept { return 1u << static_cast<unsigned>(c); }
  static constexpr std::uint32_t default_failure_conditions() noexcept {
    return condition_bit(errc::unavailable) | condition_bit(errc::timed_out) | condition_bit(errc::internal) |
           condition_bit(errc::overloaded);
  }
  bool fails_on(errc c) const noexcept { return (failure_conditions & condition_bit(c)) != 0; }
  bool fails_on_code(std::string_view code) const noexcept {
    for (const auto& c : failure_codes) {
      if (c == code) return true;
    }
    return false;
  }
};

/// Parses `{layer: circuit_breaker, mode, consecutive_failures, failure_rate, min_requests, window, open_for,
/// half_open_probes, failure_on}` (all optional; unknown keys rejected). `failure_on` is a list of condition names
/// (turret/error.hpp: overloaded, unavailable, timed_out, cancelled, unauthenticated, permission_denied,
/// invalid_argument, internal) and Redis error codes (upper-case words: TRYAGAIN, LOADING, BUSY...); it replaces the
/// default list. Throws config_error.
circuit_breaker_config parse_circuit_breaker_config(const config_node& entry);

enum class circuit_state : std::uint8_t { closed = 0, open = 1, half_open = 2 };
/// "closed" | "open" | "half_open" (the `to` label of turret_circuit_transitions_total).
std::string_view to_string(circuit_state s) noexcept;

/// How the breaker counts one request.
enum class call_outcome : std::uint8_t { success, failure, ignored };

/// The metric series a breaker updates (null = not counted).
struct circuit_breaker_metrics {
  metrics::gauge* state = nullptr;
  metrics::counter* rejected = nullptr;
  std::array<metrics::counter*, 3> transitions{};  ///< by circuit_state

  /// The series {pipeline=ctx.pipeline_name} in ctx.metrics().
  static circuit_breaker_metrics of(const layer_context& ctx);
};

class circuit_breaker_state;

/// A request's admission through the breaker (move-only RAII). A probe's place is given back when the ticket is
/// destroyed without an outcome.
class circuit_ticket {
 public:
  circuit_ticket() noexcept = default;
  circuit_ticket(circuit_ticket&& o) noexcept
      : st_(std::exchange(o.st_, nullptr)), epoch_(o.epoch_), probe_(o.probe_) {}
  circuit_ticket& operator=(circuit_ticket&& o) noexcept {
    if (this != &o) {
      reset();
      st_ = std::exchange(o.st_, nullptr);
      epoch_ = o.epoch_;
      probe_ = o.probe_;
    }
    return *this;
  }
  ~circuit_ticket() { reset(); }

  /// Reports the request's outcome (once; later calls do nothing).
  void finish(call_outcome o) noexcept;
  /// Gives a probe's place back without an outcome (no effect for a closed-state ticket or after finish()).
  void reset() noexcept;

  bool probe() const noexcept { return probe_; }
  /// The breaker's period (number of transitions) the request was admitted in.
  std::uint32_t epoch() const noexcept { return epoch_; }
  explicit operator bool() const noexcept { return st_ != nullptr; }

 private:
  friend class circuit_breaker_state;
  circuit_ticket(circuit_breaker_state* st, std::uint32_t epoch, bool probe) noexcept
      : st_(st), epoch_(epoch), probe_(probe) {}

  circuit_breaker_state* st_ = nullptr;
  std::uint32_t epoch_ = 0;
  bool probe_ = false;
};

namespace detail {

/// The failure-rate mode's sliding window: 10 buckets of window/10, each tagged with its time slot.
class failure_window {
 public:
  static constexpr int bucket_count = 10;

  explicit failure_window(std::chrono::nanoseconds window) noexcept;
  void add(clock::time_point now, bool failure) noexcept;
  struct counts {
    std::uint64_t total = 0;
    std::uint64_t failures = 0;
  };
  /// The outcomes of the buckets of the last `window` (the current slot and the 9 before it).
  counts sum(clock::time_point now) const noexcept;
  void reset() noexcept;

 private:
  std::int64_t slot_of(clock::time_point now) const noexcept;

  struct alignas(64) bucket {
    std::atomic<std::int64_t> slot{-1};
    std::atomic<std::uint32_t> total{0};
    std::atomic<std::uint32_t> failures{0};
  };
  std::int64_t width_ns_;
  std::array<bucket, bucket_count> buckets_;
  std::mutex roll_;
};

}  // namespace detail

/// The breaker itself: state machine, counts, metrics. Shared by every service of one layer (and carried over a
/// reload). Thread-safe.
class circuit_breaker_state {
 public:
  circuit_breaker_state(circuit_breaker_config cfg, std::shared_ptr<clock> clk, circuit_breaker_metrics m = {});
  circuit_breaker_state(const circuit_breaker_state&) = delete;
  circuit_breaker_state& operator=(const circuit_breaker_state&) = delete;

  /// Admission (ready()): a ticket (closed; or a probe in half-open, taking the transition from open when
  /// `open_for` has passed), else circuit_breaker_errc::open (counted as rejected).
  result<circuit_ticket> admit();
  /// Admission on the fast path: a closed-state ticket; the rejection while open and `open_for` has not passed
  /// (counted); else nullopt, with no side effect (use admit()).
  std::optional<result<circuit_ticket>> admit_now();

  /// The outcome of a request that ended with error `ec` (`deadline_passed`: its deadline is in the past).
  call_outcome outcome_of_error(const error_code& ec, bool deadline_passed) const noexcept {
    const auto c = classify(ec, deadline_passed);
    return c && cfg_.fails_on(*c) ? call_outcome::failure : call_outcome::ignored;
  }
  /// The outcome of a request with result `r`, whose context is `ctx`.
  template <class R>
  call_outcome outcome_of(const result<R>& r, const request_context& ctx) const noexcept {
    if (!r) return outcome_of_error(r.error(), deadline_passed(ctx));
    if (!cfg_.failure_codes.empty()) {
      if (auto code = response_error_code(*r); code && cfg_.fails_on_code(*code)) return call_outcome::failure;
    }
    return call_outcome::success;
  }
  bool deadline_passed(const request_context& ctx) const noexcept {
    return ctx.deadline != request_context::clock::time_point::max() && ctx.deadline <= clk_->now();
  }

  /// True when closed (one atomic load), with the current period in `epoch`: the fast path's admission, which needs
  /// no ticket (a closed-state admission holds nothing).
  bool closed_now(std::uint32_t& epoch) const noexcept {
    const std::uint64_t w = word_.load(std::memory_order_acquire);
    epoch = epoch_of(w);
    return state_of(w) == circuit_state::closed;
  }
  /// Records the outcome of a request admitted in closed state in period `epoch`. A success in mode consecutive
  /// with no failure run is one relaxed load.
  void record_closed(std::uint32_t epoch, call_outcome o) noexcept {
    if (o == call_outcome::success && cfg_.mode == circuit_breaker_config::trip_mode::consecutive &&
        consecutive_.load(std::memory_order_relaxed) == 0)
      return;
    record_closed_slow(epoch, o);
  }

  circuit_state state() const noexcept { return state_of(word_.load(std::memory_order_acquire)); }
  /// Number of transitions so far (each one exactly once).
  std::uint32_t transitions() const noexcept { return epoch_of(word_.load(std::memory_order_acquire)); }
  /// In half-open: probes admitted and not yet given back (in flight or succeeded); else 0.
  std::uint32_t probes_admitted() const noexcept;
  /// While open: the time left until requests are let through as probes; else zero.
  clock::duration remaining_open() const noexcept;

  const circuit_breaker_config& config() const noexcept { return cfg_; }
  clock& get_clock() const noexcept { return *clk_; }

 private:
  friend class circuit_ticket;

  // word_: state (bits 0-1), probes admitted (2-17), probes succeeded (18-33), epoch = transitions (34-63).
  static constexpr std::uint64_t state_mask = 0x3;
  static constexpr unsigned admitted_shift = 2, succeeded_shift = 18, epoch_shift = 34;
  static constexpr std::uint64_t count_mask = 0xffff;
  static circuit_state state_of(std::uint64_t w) noexcept { return static_cast<circuit_state>(w & state_mask); }
  static std::uint32_t admitted_of(std::uint64_t w) noexcept {
    return static_cast<std::uint32_t>((w >> admitted_shift) & count_mask);
  }
  static std::uint32_t succeeded_of(std::uint64_t w) noexcept {
    return static_cast<std::uint32_t>((w >> succeeded_shift) & count_mask);
  }
  static std::uint32_t epoch_of(std::uint64_t w) noexcept { return static_cast<std::uint32_t>(w >> epoch_shift); }
  static std::uint64_t make_word(circuit_state s, std::uint32_t epoch, std::uint32_t admitted = 0,
                                 std::uint32_t succeeded = 0) noexcept {
    return static_cast<std::uint64_t>(s) | (std::uint64_t{admitted} << admitted_shift) |
           (std::uint64_t{succeeded} << succeeded_shift) | (std::uint64_t{epoch} << epoch_shift);
  }

  result<circuit_ticket> reject() noexcept;
  void record(std::uint32_t epoch, bool probe, call_outcome o) noexcept;
  void record_closed_slow(std::uint32_t epoch, call_outcome o) noexcept;
  void record_probe(std::uint32_t epoch, call_outcome o) noexcept;
  void release_probe(std::uint32_t epoch) noexcept;
  /// Under mutex_: publishes `to` (epoch + 1) if the word is still in state `from` at `epoch`.
  bool transition_locked(circuit_state from, std::uint32_t epoch, circuit_state to, std::uint32_t admitted = 0);
  std::int64_t now_ns() const noexcept { return clk_->now().time_since_epoch().count(); }

  const circuit_breaker_config cfg_;
  const std::shared_ptr<clock> clk_;
  const circuit_breaker_metrics metrics_;
  std::uint64_t rate_threshold_ppm_;  ///< failure_rate * 1e6, compared in integers

  std::atomic<std::uint64_t> word_{0};
  std::atomic<std::int64_t> open_until_ns_{0};  ///< written before the open state is published
  std::atomic<std::uint32_t> consecutive_{0};
  detail::failure_window window_;
  std::mutex mutex_;  ///< transitions
};

inline void circuit_ticket::finish(call_outcome o) noexcept {
  if (st_) std::exchange(st_, nullptr)->record(epoch_, probe_, o);
}
inline void circuit_ticket::reset() noexcept {
  if (st_ && probe_) std::exchange(st_, nullptr)->release_probe(epoch_);
  st_ = nullptr;
}

/// Makes a breaker's state with its metric series in ctx (pipeline ctx.pipeline_name) and ctx's clock.
std::shared_ptr<circuit_breaker_state> make_circuit_breaker_state(const circuit_breaker_config& cfg,
                                                                  const layer_context& ctx);

template <class S>
class circuit_breaker_service {
 public:
  using response_type = typename S::response_type;

  struct permit_type {
    circuit_ticket ticket;
    typename S::permit_type inner;
  };

  circuit_breaker_service(S inner, std::shared_ptr<circuit_breaker_state> st)
      : inner_(std::move(inner)), st_(std::move(st)) {}

  S& inner() noexcept { return inner_; }
  const S& inner() const noexcept { return inner_; }
  circuit_breaker_state& state() const noexcept { return *st_; }

  awaitable<result<permit_type>> ready(request_context& ctx) {
    result<circuit_ticket> t = st_->admit();
    if (!t) co_return t.error();
    auto r = co_await inner_.ready(ctx);
    if (!r) {
      t->finish(st_->outcome_of_error(r.error(), st_->deadline_passed(ctx)));
      co_return r.error();
    }
    co_return permit_type{std::move(*t), std::move(*r)};
  }

  awaitable<result<response_type>> call(permit_type p, auto& req) {
    circuit_ticket t = std::move(p.ticket);
    result<response_type> r = co_await inner_.call(std::move(p.inner), req);
    t.finish(st_->outcome_of(r, req.context()));
    co_return r;
  }

  /// Synchronous fast path (see the file comment): closed -> the inner fast path with its outcome recorded; open ->
  /// the rejection; half-open or due for it -> nullopt, nothing changed.
  template <class Request>
    requires immediate_service<S, Request> && contextual_request<Request>
  std::optional<result<response_type>> try_call_now(Request& req) {
    std::uint32_t epoch = 0;
    if (!st_->closed_now(epoch)) {
      std::optional<result<circuit_ticket>> t = st_->admit_now();
      if (!t) return std::nullopt;
      if (!*t) return result<response_type>((*t).error());
      // (closed again meanwhile: forward as below, with the ticket's period)
      epoch = (**t).epoch();
    }
    std::optional<result<response_type>> r = inner_.try_call_now(req);
    if (r) st_->record_closed(epoch, st_->outcome_of(*r, req.context()));
    return r;  // nullopt: nothing was recorded
  }

 private:
  S inner_;
  std::shared_ptr<circuit_breaker_state> st_;
};

class circuit_breaker_layer {
 public:
  /// A layer with a fresh state of its own (metrics and clock from ctx).
  explicit circuit_breaker_layer(const circuit_breaker_config& cfg, const layer_context& ctx = {})
      : st_(make_circuit_breaker_state(cfg, ctx)) {}
  /// A layer on an existing state (the factory's, from ctx.shared_state).
  explicit circuit_breaker_layer(std::shared_ptr<circuit_breaker_state> st) : st_(std::move(st)) {}

  /// Every service this layer wraps shares its one breaker.
  template <class S>
  circuit_breaker_service<S> wrap(S inner) const {
    return circuit_breaker_service<S>(std::move(inner), st_);
  }

  const std::shared_ptr<circuit_breaker_state>& state() const noexcept { return st_; }
  const circuit_breaker_config& config() const noexcept { return st_->config(); }

 private:
  std::shared_ptr<circuit_breaker_state> st_;
};

}  // namespace turret
