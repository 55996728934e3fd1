#pragma once
// hedge: when an idempotent request has not answered after a delay, send it once more in parallel; the first reply
// wins, the other attempt is cancelled and its reply discarded (Finagle's backup requests, "The Tail at Scale").
//
// ```yaml
// - layer: hedge
//   delay: 10ms          # a fixed delay, or
//   percentile: 95       # the running 95th percentile of recent requests' latency (needs min_samples first)
//   max_hedges: 1        # extra attempts, one more after each further delay
//   min_samples: 100     # percentile mode: no hedging before this many requests were measured
// ```
//
// # Semantics
// - Only requests whose turret::request_retry_class is idempotent, and whose type can be forked
//   (turret::forkable_request: a parallel attempt needs its own reply sink and its own request_context); others pass
//   straight through, as do all requests on the synchronous fast path (nothing is slow when nothing suspends).
// - The first attempt runs on the request itself (its own reply sink, zero copy). After `delay`
//   (then after 2 x delay, ... up to max_hedges) a hedge starts on a fork (turret::request_fork: its own context with
//   the deadline, identity, peer and request id copied, its own sink), through the inner service's ready() and
//   call(), and turret_hedge_requests_total{pipeline} counts it. The fork carries the endpoints the request and
//   the earlier hedges were sent to (request_context::attempted_endpoints): a load_balance inside sends the hedge
//   to another endpoint while one is in service.
// - The first attempt to complete wins, except that a failed hedge never wins (the first attempt's result then
//   decides). When a hedge wins, the first attempt is interrupted (request_context::interrupt: the request itself is
//   not marked cancelled), what it wrote is discarded (turret::request_discard_attempt), and the hedge's reply is
//   committed into the request's sink (turret::request_commit). When the first attempt wins, running hedges are
//   cancelled through their own contexts. The layer returns only after every attempt has completed: nothing refers
//   to the request afterwards.
// - Cancelling the request (a client gone, a timeout layer above) cancels the first attempt, bound to the request's
//   cancel_slot(); its completion then cancels the hedges: both end.
// - Percentile mode: the latency of every eligible request (0 on the fast path) goes into a ring of the last 1024;
//   the percentile is recomputed every 64 samples (a short try-lock; who misses it skips) and read with one atomic
//   load.
//
// Threading: the hedges run on the request's executor (co_spawn), as the first attempt does; shared state is atomics
// and a try-lock.
#include <turret/clock.hpp>
#include <turret/layer_context.hpp>
#include <turret/request_traits.hpp>
#include <turret/service.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace turret {

namespace metrics {
class counter;
}
class config_node;

/// Immutable configuration: exactly one of delay and percentile.
struct hedge_config {
  std::optional<std::chrono::nanoseconds> delay;  ///< > 0
  std::optional<double> percentile;               ///< in (0, 100)
  unsigned max_hedges = 1;                        ///< 1..10
  unsigned min_samples = 100;                     ///< percentile mode; <= 1024
};

/// Parses `{layer: hedge, delay: 10ms | percentile: 95, max_hedges: 1, min_samples: 100}` (unknown keys rejected).
/// Throws config_error.
hedge_config parse_hedge_config(const config_node& entry);

/// Recent latencies and their running percentile (thread-safe).
class latency_window {
 public:
  static constexpr std::size_t capacity = 1024;
  static constexpr std::uint64_t recompute_every = 64;

  latency_window(double percentile, unsigned min_samples) : percentile_(percentile), min_samples_(min_samples) {}

  void record(std::chrono::nanoseconds d) noexcept;
  /// The percentile of the recorded latencies, nullopt before min_samples.
  std::optional<std::chrono::nanoseconds> current() const noexcept {
    const std::int64_t v = current_.load(std::memory_order_relaxed);
    if (v < 0) return std::nullopt;
    return std::chrono::nanoseconds(v);
  }

 private:
  double percentile_;
  unsigned min_samples_;
  std::atomic<std::uint64_t> count_{0};
  std::array<std::atomic<std::int64_t>, capacity> ring_{};
  std::atomic<std::int64_t> current_{-1};
  std::mutex recompute_;
};

namespace detail {

struct hedge_shared {
  hedge_config cfg;
  std::shared_ptr<clock> clk;
  std::unique_ptr<latency_window> latencies;  ///< percentile mode
  metrics::counter* hedges = nullptr;         ///< turret_hedge_requests_total{pipeline}

  void count_hedge() const noexcept;
  /// The delay before the first hedge; nullopt: do not hedge (percentile mode, too few samples).
  std::optional<clock::duration> delay() const noexcept {
    if (cfg.delay) return std::chrono::duration_cast<clock::duration>(*cfg.delay);
    return latencies->current();
  }
  void record(clock::duration d) const noexcept {
    if (latencies) latencies->record(d);
  }
};

}  // namespace detail

template <class S>
class hedge_service {
 public:
  using response_type = typename S::response_type;
  /// The layer reserves nothing ahead: each attempt waits for the inner service's readiness itself, inside the race
  /// (a first attempt stuck waiting for capacity, or delayed before the call, is what a hedge is for).
  struct permit_type {};

  hedge_service(S inner, std::shared_ptr<const detail::hedge_shared> shared)
      : inner_(std::move(inner)), shared_(std::move(shared)) {}

  S& inner() noexcept { return inner_; }
  const S& inner() const noexcept { return inner_; }
  const hedge_config& config() const noexcept { return shared_->cfg; }

  awaitable<result<permit_type>> ready(request_context&) { co_return permit_type{}; }

  template <class Request>
    requires contextual_request<Request>
  awaitable<result<response_type>> call(permit_type p, Request& req) {
    if constexpr (!forkable_request<Request>) {
      co_return co_await attempt(req);
    } else {
      const detail::hedge_shared& sh = *shared_;
      if (request_retry_class(req) != retry_safety::idempotent) co_return co_await attempt(req);
      const auto start = sh.clk->now();
      const std::optional<clock::duration> delay = sh.delay();
      if (!delay) {
        result<response_type> r = co_await attempt(req);
        sh.record(sh.clk->now() - start);
        co_return r;
      }
      auto race = std::make_shared<race_state<Request>>(sh.cfg.max_hedges);
      race->ex = co_await boost::asio::this_coro::executor;
      for (unsigned h = 0; h < sh.cfg.max_hedges; ++h) {
        ++race->pending;
        boost::asio::co_spawn(race->ex, hedger(race, h, *delay * (h + 1), req), boost::asio::detached);
      }
      const auto mark = request_attempt_mark(req);
      result<response_type> r = co_await attempt(req);
      race->first_done = true;
      race->stop_all();
      co_await race->wait_all();
      sh.record(sh.clk->now() - start);
      if (race->winner < 0) co_return r;
      request_discard_attempt(req, mark);
      auto& won = race->hedges[static_cast<std::size_t>(race->winner)];
      request_commit(req, *won.fork);
      co_return std::move(*won.outcome);
    }
  }

  /// Synchronous fast path: forwards (an answer without suspending needs no hedge); percentile mode records it as
  /// a zero latency.
  template <class Request>
    requires immediate_service<S, Request>
  std::optional<result<response_type>> try_call_now(Request& req) {
    std::optional<result<response_type>> r = inner_.try_call_now(req);
    if (r && shared_->latencies && request_retry_class(req) == retry_safety::idempotent)
      shared_->record(clock::duration::zero());
    return r;
  }

 private:
  template <class Request>
  struct race_state {
    using fork_ptr = decltype(request_fork(std::declval<Request&>()));
    struct hedge {
      boost::asio::cancellation_signal stop;  ///< ends the hedge's delay
      fork_ptr fork;                          ///< once started
      std::optional<result<response_type>> outcome;
      bool done = false;
    };
    explicit race_state(unsigned n) : hedges(n) {}

    std::vector<hedge> hedges;
    boost::asio::any_io_executor ex;
    int pending = 0;
    int winner = -1;  ///< the hedge that won, -1 = the first attempt
    bool first_done = false;
    bool stopped = false;
    std::optional<boost::asio::steady_timer> wake;

    void stop_all() {
      stopped = true;
      for (hedge& h : hedges) {
        if (h.done) continue;
        h.stop.emit(boost::asio::cancellation_type::total);
        if (h.fork) h.fork->request().context().cancel();
      }
    }
    void finished() {
      if (--pending == 0 && wake) wake->cancel();
    }
    /// Until every hedge has finished (a timer that never expires, cancelled by the last one: all on one thread).
    awaitable<void> wait_all() {
      while (pending > 0) {
        if (!wake) wake.emplace(ex, boost::asio::steady_timer::time_point::max());
        co_await wake->async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
      }
    }
  };

  /// Hedge `h`: waits `after`, then runs the request on a fork; a success before the first attempt's completion
  /// wins and interrupts the first attempt.
  template <class Request>
  awaitable<void> hedger(std::shared_ptr<race_state<Request>> race, unsigned h, clock::duration after, Request& req) {
    auto& me = race->hedges[h];
    // The first attempt may have completed before this coroutine first ran (then stop_all() found nothing to stop).
    const error_code waited =
        race->stopped ? error_code(boost::asio::error::operation_aborted)
                      : co_await sleep_for(*shared_->clk, after, me.stop.slot());
    if (!waited && !race->stopped) {
      me.fork = request_fork(req);
      // The endpoints the request and the earlier hedges went to: a balancer inside sends this one elsewhere.
      request_context& mine = me.fork->request().context();
      mine.merge_attempted_endpoints(req.context());
      for (const auto& other : race->hedges) {
        if (&other != &me && other.fork) mine.merge_attempted_endpoints(other.fork->request().context());
      }
      shared_->count_hedge();
      me.outcome.emplace(co_await attempt(me.fork->request()));
      if (*me.outcome && !race->first_done && race->winner < 0) {
        race->winner = static_cast<int>(h);
        req.context().interrupt();  // the first attempt ends with operation_aborted; its reply is discarded
        race->stop_all();
      }
    }
    me.done = true;
    race->finished();
  }

  /// One attempt: the inner ready() and call().
  template <class Request>
  awaitable<result<response_type>> attempt(Request& req) {
    auto permit = co_await inner_.ready(req.context());
    if (!permit) co_return permit.error();
    co_return co_await inner_.call(std::move(*permit), req);
  }

  S inner_;
  std::shared_ptr<const detail::hedge_shared> shared_;
};

class hedge_layer {
 public:
  /// `ctx` gives the clock and the metrics ({pipeline}).
  explicit hedge_layer(hedge_config cfg, const layer_context& ctx = {});

  /// Every instance of one layer shares its configuration, latency window and counter.
  template <class S>
  hedge_service<S> wrap(S inner) const {
    return hedge_service<S>(std::move(inner), shared_);
  }

  const hedge_config& config() const noexcept { return shared_->cfg; }

 private:
  std::shared_ptr<const detail::hedge_shared> shared_;
};

}  // namespace turret
