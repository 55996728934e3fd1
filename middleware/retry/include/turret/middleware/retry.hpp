#pragma once
// retry: sends a failed request again, within a retry budget, with jittered exponential backoff (Finagle's and
// tower's Retry).
//
// ```yaml
// - layer: retry
//   max_attempts: 3                                       # attempts per request, the first included
//   backoff: {base: 10ms, max: 1s}                        # full jitter: retry n waits uniform(0, min(max, base*2^(n-1)))
//   budget: {ratio: 0.2, min_per_second: 10, window: 10s} # retries <= 0.2 x requests + 10/s, over the last 10s
//   per_try_timeout: 200ms                                # bounds each attempt (0 or absent: none)
//   retry_on: [unavailable, timed_out, overloaded, TRYAGAIN, LOADING, BUSY]
//   writes: false                                         # true: non-idempotent requests are retried too
// ```
//
// # What is retried
// - Only requests that may be sent twice: turret::request_retry_class(req) == idempotent, or non_idempotent with
//   `writes: true`. `session` requests (SELECT, MULTI, AUTH) never are. Other requests pass straight through (their
//   attempt is counted, no budget is drawn).
// - A pipeline error whose turret condition (turret/error.hpp) is listed in `retry_on` (lowercase names:
//   overloaded, unavailable, timed_out, cancelled, internal, ...), or a successful response that is an error reply
//   whose code (turret::response_error_code: "TRYAGAIN", "LOADING", "BUSY") is listed (uppercase names).
// - Never after the request itself was cancelled (ctx.cancelled(): a client gone, a timeout layer above), and never
//   when the backoff wait would end after ctx.deadline.
//
// # Exactly one reply
// Before each attempt the layer marks the request's reply sink (turret::request_attempt_mark); when it retries, it
// discards what the failed attempt wrote (request_discard_attempt). So only the winning attempt's reply reaches the
// client; when every attempt fails, the last attempt's result is returned as is (its error, or its error reply).
//
// # Budget (tower's TpsBudget)
// Every request deposits into a budget shared by every instance of the layer and every thread (and carried over a
// configuration reload for an unchanged entry: layer_context::shared_state); every retry withdraws. Over the last
// `window` (10 slots), retries <= ratio x requests + min_per_second x the seconds elapsed (at most the window; see
// retry_budget). When a retry finds the budget
// empty the failure is returned as is and turret_retry_budget_exhausted_total{pipeline} counts it. Deposits are one
// atomic add (a lock once per slot time); withdrawals take a short lock.
//
// # Backoff and cancellation
// The wait before retry n is uniform in [0, min(max, base x 2^(n-1))] (full jitter), on the layer's clock, drawn
// from the request's sample (request_context::sample) mixed with the layer's salt and n: reproducible in tests with
// set_sample and a seed. The wait is bound to ctx.cancel_slot(): cancelling the request ends it at once with
// operation_aborted. Each retry then gets a sample of its own (derived from the first), so that sampling layers
// inside the retry (a fault injecting errors into 50% of requests) decide for each attempt anew: a retry of an
// injected failure is not doomed to fail again.
//
// # per_try_timeout
// Each retryable attempt (the inner ready() and call()) runs under a timer of its own. When it fires, the layer
// interrupts the attempt (request_context::interrupt: the operation bound to ctx.cancel_slot() completes with
// operation_aborted, but the request is not marked cancelled) and the attempt fails with retry_errc::
// attempt_timed_out (condition timed_out: retried when timed_out is in retry_on). An attempt that ignores the
// interruption and succeeds keeps its success. With a per_try_timeout, ready() reserves nothing (the first attempt's
// readiness wait is bounded with its call); without one, ready() takes the inner permit for the first attempt.
//
// # The synchronous fast path
// try_call_now forwards to the inner fast path. A request that succeeds (or fails for good) on its first attempt
// stays there: one counter add and one deposit. When that attempt fails and will be retried (retry_on, attempts
// left, budget withdrawn, backoff within the deadline), a backoff wait is due, which the fast path cannot do: the
// layer discards the attempt's reply, leaves a note in the request's context (request_context::
// set_fast_path_note: "one attempt made, the retry's budget withdrawn") and returns nullopt. That nullopt is not
// free of effects, as service.hpp otherwise requires: the inner service ran once. It is the retry the layer decided
// on, of a request that may be sent again: ready() then sees the note and reserves nothing, and call() waits the
// backoff and goes on with attempt 2. Each attempt is counted once, the budget is drawn once per retry, the client
// gets one reply. (The alternative, declining every retryable request on the fast path, would put every GET on the
// coroutine path; retrying without the wait would break the backoff.) The note is keyed by the layer's state, so
// two retry layers of one pipeline do not take each other's.
//
// Metrics: turret_retry_attempts_total{pipeline} (every attempt of every request, the first included),
// turret_retry_budget_exhausted_total{pipeline}.
//
// Threading: shared state is atomics and a short lock; a request's attempts run on its executor's thread.
#include <turret/clock.hpp>
#include <turret/error.hpp>
#include <turret/fast_clock.hpp>
#include <turret/layer_context.hpp>
#include <turret/metrics.hpp>
#include <turret/request_traits.hpp>
#include <turret/service.hpp>

#include <boost/asio/error.hpp>
#include <boost/asio/this_coro.hpp>
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
#include <vector>

namespace turret {

enum class retry_errc {
  attempt_timed_out = 1,  ///< "attempt timed out (per_try_timeout)": condition timed_out
};

/// The category "turret.retry".
const boost::system::error_category& retry_category() noexcept;
inline error_code make_error_code(retry_errc e) noexcept { return {static_cast<int>(e), retry_category()}; }

}  // namespace turret

template <>
struct boost::system::is_error_code_enum<turret::retry_errc> : std::true_type {};

namespace turret {

class config_node;

/// Immutable configuration.
struct retry_config {
  unsigned max_attempts = 3;                                   ///< 1..100, the first attempt included
  std::chrono::nanoseconds backoff_base{std::chrono::milliseconds(10)};  ///< > 0
  std::chrono::nanoseconds backoff_max{std::chrono::seconds(1)};         ///< >= base
  double budget_ratio = 0.2;                                   ///< 0..1000
  unsigned budget_min_per_second = 10;
  std::chrono::nanoseconds budget_window{std::chrono::seconds(10)};      ///< >= 1s
  std::chrono::nanoseconds per_try_timeout{0};                 ///< 0 = none
  std::vector<errc> retry_on_conditions{errc::unavailable, errc::timed_out, errc::overloaded};
  std::vector<std::string> retry_on_codes{"TRYAGAIN", "LOADING", "BUSY"};
  bool writes = false;
};

/// Parses `{layer: retry, max_attempts, backoff: {base, max}, budget: {ratio, min_per_second, window},
/// per_try_timeout, retry_on: [...], writes}` (every key optional, defaults as retry_config; unknown keys
/// rejected). Throws config_error.
retry_config parse_retry_config(const config_node& entry);

/// The retry budget (tower's TpsBudget): deposits per request, withdrawals per retry, over a sliding window of 10
/// slots. In fixed point: a request deposits 1000 units, a retry withdraws 1000 / ratio. The floor is a rate, as
/// its name says: each slot, when it begins, is credited min_per_second x slot time retries (tower and Finagle
/// credit the whole window's floor at once, which lets a fresh budget retry min_per_second x window times in its
/// first second). So over any span T within the window, retries <= ratio x requests + min_per_second x T (T rounded
/// up to a slot: window / 10), and never more than ratio x requests + min_per_second x window. Thread-safe; shared
/// by every instance of a layer and carried over reloads.
class retry_budget {
 public:
  retry_budget(double ratio, unsigned min_per_second, std::chrono::nanoseconds window, std::shared_ptr<clock> clk);
  retry_budget(const retry_budget&) = delete;
  retry_budget& operator=(const retry_budget&) = delete;

  /// One request (lock-free but once per slot time): a coarse clock read, a multiply and one atomic add.
  void deposit() noexcept {
    if (deposit_units_ == 0) return;
    const std::int64_t g = generation_now();
    slot& s = current(g);
    if (s.generation.load(std::memory_order_acquire) != g) begin_slot(s, g);
    s.units.fetch_add(deposit_units_, std::memory_order_relaxed);
  }
  /// One retry: true when the budget allowed it (and was drawn), false when exhausted.
  bool withdraw() noexcept;
  /// Retries the budget would allow right now (tests).
  std::int64_t available() const noexcept;

 private:
  static constexpr std::size_t slot_count = 10;
  struct slot {
    std::atomic<std::int64_t> generation{-1};
    std::atomic<std::int64_t> units{0};
  };
  /// The current slot's generation: time / slot time. On the real clock in fixed point (a multiply, no division):
  /// the product rounded down is monotonic in the time like the quotient; the slots are a second or so long, the
  /// coarse clock's resolution a few ms.
  std::int64_t generation_now() const noexcept {
    if (real_clock_)
      return static_cast<std::int64_t>((static_cast<unsigned __int128>(coarse_now_ns()) * per_slot_fixed_) >> 64);
    return generation_on_clock();
  }
  std::int64_t generation_on_clock() const noexcept;
  void begin_slot(slot& s, std::int64_t generation) noexcept;  // takes mutex_
  void rotate(slot& s, std::int64_t generation) noexcept;  // with mutex_ held
  slot& current(std::int64_t generation) noexcept { return slots_[static_cast<std::size_t>(generation) % slot_count]; }
  std::int64_t balance(std::int64_t generation) const noexcept;  // with mutex_ held

  std::shared_ptr<clock> clock_;
  bool real_clock_ = false;  ///< clock_ is steady_clock(): slots on coarse_now_ns() (turret/fast_clock.hpp)
  std::chrono::nanoseconds slot_time_;
  std::uint64_t per_slot_fixed_ = 0;  ///< 2^64 / slot_time_ in ns, rounded up: a multiply instead of a division
  std::int64_t deposit_units_;
  std::int64_t withdraw_units_;
  std::int64_t floor_units_;  ///< credited to a slot when it begins
  mutable std::mutex mutex_;
  std::array<slot, slot_count> slots_;
};

namespace detail {

struct retry_shared {
  retry_config cfg;
  std::shared_ptr<clock> clk;
  std::shared_ptr<retry_budget> budget;
  std::uint64_t salt = 0;
  metrics::counter* attempts = nullptr;   ///< turret_retry_attempts_total{pipeline}
  metrics::counter* exhausted = nullptr;  ///< turret_retry_budget_exhausted_total{pipeline}

  void count_attempt() const noexcept {
    if (attempts) attempts->inc();
  }
  void count_exhausted() const noexcept {
    if (exhausted) exhausted->inc();
  }
  bool retries_error(const error_code& ec) const noexcept;
  bool retries_code(std::string_view code) const noexcept;
  /// The wait before retry `n` (n >= 1) of a request whose sample is `sample`.
  clock::duration backoff(unsigned n, std::uint64_t sample) const noexcept;

  template <class Request>
  bool eligible(const Request& req) const noexcept {
    if (cfg.max_attempts < 2) return false;
    const retry_safety s = request_retry_class(req);
    return s == retry_safety::idempotent || (s == retry_safety::non_idempotent && cfg.writes);
  }
  template <class Response>
  bool retries(const result<Response>& r, request_context& ctx) const noexcept {
    if (ctx.cancelled()) return false;
    if (!r) return retries_error(r.error());
    const std::optional<std::string_view> code = response_error_code(*r);
    return code && retries_code(*code);
  }
  /// True when retry `n` may go: its backoff (drawn from `sample`) ends before the deadline and the budget allows
  /// it (else counted).
  bool may_retry(unsigned n, request_context& ctx, std::uint64_t sample) const noexcept;
};

/// The per-try timer's shared flag: the attempt it guards is still running / the timer interrupted it.
struct per_try_guard {
  request_context* ctx = nullptr;
  bool active = true;
  bool fired = false;
};

}  // namespace detail

template <class S>
class retry_service {
 public:
  using response_type = typename S::response_type;
  /// The inner permit for the first attempt; empty when call() reserves for itself (per_try_timeout, or a retry
  /// that continues from the fast path).
  struct permit_type {
    std::optional<typename S::permit_type> inner;
  };

  retry_service(S inner, std::shared_ptr<const detail::retry_shared> shared)
      : inner_(std::move(inner)), shared_(std::move(shared)) {}

  S& inner() noexcept { return inner_; }
  const S& inner() const noexcept { return inner_; }
  const retry_config& config() const noexcept { return shared_->cfg; }

  awaitable<result<permit_type>> ready(request_context& ctx) {
    if (shared_->cfg.per_try_timeout.count() > 0 || ctx.has_fast_path_note(shared_.get())) co_return permit_type{};
    auto r = co_await inner_.ready(ctx);
    if (!r) co_return r.error();
    co_return permit_type{std::move(*r)};
  }

  template <class Request>
    requires contextual_request<Request>
  awaitable<result<response_type>> call(permit_type p, Request& req) {
    const detail::retry_shared& sh = *shared_;
    request_context& ctx = req.context();
    if (!sh.eligible(req)) {
      sh.count_attempt();
      sh.budget->deposit();
      co_return co_await attempt_once(std::move(p.inner), req, false);
    }
    // Attempts already made on the fast path (then the budget was drawn for the next one).
    unsigned done = ctx.take_fast_path_note(shared_.get());
    if (done == 0) sh.budget->deposit();
    const std::uint64_t sample = ctx.sample();  // the first attempt's: it draws every backoff
    for (;;) {
      if (done > 0) {
        if (auto ec = co_await sleep_for(*sh.clk, sh.backoff(done, sample), ctx.cancel_slot())) co_return ec;
        ctx.set_sample(request_context::mix64(sample + done));  // the retry is sampled anew by the layers inside
      }
      const auto mark = request_attempt_mark(req);
      result<response_type> r = co_await attempt_once(std::move(p.inner), req, true);
      p.inner.reset();
      ++done;
      sh.count_attempt();
      if (done >= sh.cfg.max_attempts || !sh.retries(r, ctx) || !sh.may_retry(done, ctx, sample)) co_return r;
      request_discard_attempt(req, mark);
    }
  }

  /// Synchronous fast path: see "The synchronous fast path" above.
  template <class Request>
    requires immediate_service<S, Request> && contextual_request<Request>
  std::optional<result<response_type>> try_call_now(Request& req) {
    const detail::retry_shared& sh = *shared_;
    if (!sh.eligible(req)) {
      std::optional<result<response_type>> r = inner_.try_call_now(req);
      if (r) {
        sh.count_attempt();
        sh.budget->deposit();
      }
      return r;
    }
    const auto mark = request_attempt_mark(req);
    std::optional<result<response_type>> r = inner_.try_call_now(req);
    if (!r) return r;
    sh.count_attempt();
    sh.budget->deposit();
    request_context& ctx = req.context();
    if (!sh.retries(*r, ctx) || !sh.may_retry(1, ctx, ctx.sample())) return r;
    request_discard_attempt(req, mark);
    ctx.set_fast_path_note(shared_.get(), 1);
    return std::nullopt;
  }

 private:
  /// One attempt: the inner ready() (unless `first` holds a permit) and call(), under the per-try timer when
  /// `bounded` and one is configured.
  template <class Request>
  awaitable<result<response_type>> attempt_once(std::optional<typename S::permit_type> first, Request& req,
                                                bool bounded) {
    request_context& ctx = req.context();
    const detail::retry_shared& sh = *shared_;
    if (!bounded || sh.cfg.per_try_timeout.count() <= 0) co_return co_await ready_then_call(std::move(first), req);
    auto guard = std::make_shared<detail::per_try_guard>();
    guard->ctx = &ctx;
    std::unique_ptr<timer> t = sh.clk->make_timer(co_await boost::asio::this_coro::executor);
    t->async_wait_until(sh.clk->now() + sh.cfg.per_try_timeout, [guard](error_code ec) {
      if (ec || !guard->active) return;
      guard->fired = true;
      guard->ctx->interrupt();
    });
    result<response_type> r = co_await ready_then_call(std::move(first), req);
    guard->active = false;
    t->cancel();
    if (guard->fired && !r && !ctx.cancelled()) co_return retry_errc::attempt_timed_out;
    co_return r;
  }

  template <class Request>
  awaitable<result<response_type>> ready_then_call(std::optional<typename S::permit_type> permit, Request& req) {
    if (!permit) {
      auto p = co_await inner_.ready(req.context());
      if (!p) co_return p.error();
      permit.emplace(std::move(*p));
    }
    co_return co_await inner_.call(std::move(*permit), req);
  }

  S inner_;
  std::shared_ptr<const detail::retry_shared> shared_;
};

class retry_layer {
 public:
  /// `ctx` gives the clock and the metrics ({pipeline}); `budget` the shared budget (default: a new one, from the
  /// config, on ctx's clock); `seed` the backoff salt (default: random).
  explicit retry_layer(retry_config cfg, const layer_context& ctx = {}, std::shared_ptr<retry_budget> budget = nullptr,
                       std::optional<std::uint64_t> seed = {});

  /// Every instance of one layer shares its configuration, budget and counters.
  template <class S>
  retry_service<S> wrap(S inner) const {
    return retry_service<S>(std::move(inner), shared_);
  }

  const retry_config& config() const noexcept { return shared_->cfg; }
  const std::shared_ptr<retry_budget>& budget() const noexcept { return shared_->budget; }

  /// The budget a configuration asks for (what the factory files under layer_context::shared_state).
  static std::shared_ptr<retry_budget> make_budget(const retry_config& cfg, std::shared_ptr<clock> clk);

 private:
  std::shared_ptr<const detail::retry_shared> shared_;
};

}  // namespace turret
