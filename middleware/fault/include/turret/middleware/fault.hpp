#pragma once
// fault: injects delays and errors into a share of requests (Envoy's fault filter), to test how clients and the
// layers around it behave when the service is slow or failing.
//
// ```yaml
// - layer: fault
//   delay: {duration: 100ms, percent: 50}     # half the requests wait 100ms before going inward
//   abort: {percent: 10, error: unavailable}  # a tenth fail at once: unavailable | overloaded | timeout | internal
// ```
// and, to fail after the inner service has answered:
// ```yaml
// - layer: fault
//   abort: {percent: 100, error: internal, phase: response}
// ```
//
// Semantics
// - Delay: the request waits `duration` in ready(), before the inner service's ready(), so it holds no inner
//   capacity meanwhile. The wait is a timer bound to ctx.cancel_slot(): a timeout layer above (or a client going
//   away) cancels it, and ready() then returns boost::asio::error::operation_aborted at once.
// - Abort, `phase: request` (the default, Envoy's): ready() fails with the configured fault_errc without calling
//   the inner service. With both configured, the delay comes first, then the abort (as Envoy).
// - Abort, `phase: response`: the inner service runs (its effects apply, its reply is written into the request's
//   reply sink) and the layer then returns the error instead of its response: the layer fails after a partial
//   write, like a proxy whose upstream answered after the deadline. The front end's dispatch discards the partial
//   reply and sends the error: the client gets exactly one reply (kv/dispatch.hpp).
// - Errors map to turret's conditions (turret/error.hpp): unavailable -> unavailable, overloaded -> overloaded,
//   timeout -> timed_out, internal -> internal; every front end sends them as turret/error_mapping.hpp says.
//
// Sampling. Which requests are delayed or aborted is a pure function of the request's sample
// (request_context::sample(): a uniform 64-bit value drawn once per request from a per-thread PRNG) mixed with a
// salt per layer and per kind. Hence:
// - the percentages are exact in expectation (a threshold on a uniform value), and delay and abort are decided
//   independently of each other and of other sampling layers;
// - the synchronous fast path (try_call_now) decides exactly as ready() does for the same request: it forwards when
//   neither fault applies, returns the abort error when only the abort applies, and returns nullopt when a delay
//   applies. Returning nullopt changes nothing (no counter, no PRNG state of the layer): ready() then takes the same
//   decision again from the same sample and delays. Nothing is remembered in the layer.
// - The layer's seed sets the salts (tests pass one; by default a random one): with the requests' samples fixed
//   (request_context::set_sample), decisions are reproducible.
//
// Metric: turret_fault_injected_total{pipeline,kind} (kind = delay | abort), counted when a fault is applied: a
// delay when its wait starts, an abort when it is returned.
//
// Threading: the service's shared state is immutable (counters are thread-safe); any thread, any number of requests.
#include <turret/clock.hpp>
#include <turret/error.hpp>
#include <turret/layer_context.hpp>
#include <turret/service.hpp>

#include <boost/asio/error.hpp>
#include <boost/system/error_category.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>

namespace turret {

namespace metrics {
class counter;
}

/// The errors an abort injects (config `abort.error`).
enum class fault_errc {
  unavailable = 1,  ///< condition unavailable
  overloaded,       ///< condition overloaded
  timeout,          ///< condition timed_out
  internal,         ///< condition internal
};

/// The category "turret.fault" (messages "injected fault"; default_error_condition: the turret conditions above).
const boost::system::error_category& fault_category() noexcept;
inline error_code make_error_code(fault_errc e) noexcept { return {static_cast<int>(e), fault_category()}; }

}  // namespace turret

template <>
struct boost::system::is_error_code_enum<turret::fault_errc> : std::true_type {};

namespace turret {

class config_node;

/// Immutable configuration. At least one of delay and abort is set.
struct fault_config {
  struct delay_fault {
    std::chrono::nanoseconds duration{0};  ///< > 0
    double percent = 0;                    ///< share of requests delayed, 0..100 (fractions allowed)
  };
  /// When an abort fails the request: before calling inward (`request`) or after the inner response (`response`).
  enum class phase { request, response };
  struct abort_fault {
    fault_errc error = fault_errc::unavailable;
    double percent = 0;  ///< share of requests aborted, 0..100
    fault_config::phase when = phase::request;
  };
  std::optional<delay_fault> delay;
  std::optional<abort_fault> abort;
};

/// Parses `{layer: fault, delay: {duration, percent}, abort: {error, percent, phase}}` (unknown keys rejected; `percent`
/// required; at least one of delay/abort). Throws config_error.
fault_config parse_fault_config(const config_node& entry);

/// "unavailable" | "overloaded" | "timeout" | "internal" (config names).
std::string_view to_string(fault_errc e) noexcept;

namespace detail {

/// One sampled fault: applies to a request when mix(sample + salt) < threshold.
struct fault_dice {
  bool enabled = false;
  bool always = false;          ///< percent 100
  std::uint64_t threshold = 0;  ///< percent / 100 * 2^64
  std::uint64_t salt = 0;

  fault_dice() = default;
  fault_dice(double percent, std::uint64_t salt_value) noexcept;

  bool applies(request_context& ctx) const noexcept {
    if (!enabled) return false;
    if (always) return true;
    return request_context::mix64(ctx.sample() + salt) < threshold;
  }
};

struct fault_shared {
  fault_config cfg;
  std::shared_ptr<clock> clk;
  fault_dice delay;
  fault_dice abort;
  error_code abort_error;
  bool abort_after_inner = false;  ///< abort.phase == response
  metrics::counter* delays = nullptr;  ///< turret_fault_injected_total{pipeline, kind="delay"}
  metrics::counter* aborts = nullptr;  ///< turret_fault_injected_total{pipeline, kind="abort"}

  void count_delay() const noexcept;
  void count_abort() const noexcept;
};

}  // namespace detail

template <class S>
class fault_service {
 public:
  using response_type = typename S::response_type;
  using permit_type = typename S::permit_type;  // the layer reserves nothing: the inner permit passes through

  fault_service(S inner, std::shared_ptr<const detail::fault_shared> shared)
      : inner_(std::move(inner)), shared_(std::move(shared)) {}

  S& inner() noexcept { return inner_; }
  const S& inner() const noexcept { return inner_; }
  const fault_config& config() const noexcept { return shared_->cfg; }

  awaitable<result<permit_type>> ready(request_context& ctx) {
    const detail::fault_shared& sh = *shared_;
    if (sh.delay.applies(ctx)) {
      if (ctx.cancelled()) co_return make_error_code(boost::asio::error::operation_aborted);
      sh.count_delay();
      if (auto ec = co_await sleep_for(*sh.clk, sh.cfg.delay->duration, ctx.cancel_slot())) co_return ec;
    }
    if (!sh.abort_after_inner && sh.abort.applies(ctx)) {
      sh.count_abort();
      co_return sh.abort_error;
    }
    co_return co_await inner_.ready(ctx);
  }

  /// Non-suspending probe: nullopt when a delay applies to this request (ready() will decide the same and wait), the
  /// abort error when only a request-phase abort applies (counted, as in ready()), else the inner service's probe.
  std::optional<result<permit_type>> try_ready(request_context& ctx)
    requires probing_service<S>
  {
    const detail::fault_shared& sh = *shared_;
    if (sh.delay.applies(ctx)) return std::nullopt;
    if (!sh.abort_after_inner && sh.abort.applies(ctx)) {
      sh.count_abort();
      return result<permit_type>(sh.abort_error);
    }
    return inner_.try_ready(ctx);
  }

  awaitable<result<response_type>> call(permit_type p, auto& req) {
    result<response_type> r = co_await inner_.call(std::move(p), req);
    co_return after_inner(std::move(r), req.context());
  }

  /// Synchronous fast path: nullopt when a delay applies to this request (ready() will decide the same and wait),
  /// the abort error when only an abort applies, else the inner service's fast path.
  template <class Request>
    requires immediate_service<S, Request> && contextual_request<Request>
  std::optional<result<response_type>> try_call_now(Request& req) {
    const detail::fault_shared& sh = *shared_;
    request_context& ctx = req.context();
    if (sh.delay.applies(ctx)) return std::nullopt;
    if (!sh.abort_after_inner && sh.abort.applies(ctx)) {
      sh.count_abort();
      return result<response_type>(sh.abort_error);
    }
    // Returned as is when no response-phase abort is configured: the inner answer is built in place (a copy through
    // after_inner() costs tens of ns in store-forwarding stalls on this path; bench/bench_layers.cpp measures it).
    if (!sh.abort_after_inner) return inner_.try_call_now(req);
    std::optional<result<response_type>> r = inner_.try_call_now(req);
    if (r && sh.abort.applies(ctx)) {
      sh.count_abort();
      *r = result<response_type>(sh.abort_error);
    }
    return r;
  }

 private:
  /// `phase: response`: the inner response is replaced by the abort error when the abort applies to the request.
  result<response_type> after_inner(result<response_type> r, request_context& ctx) const {
    const detail::fault_shared& sh = *shared_;
    if (!sh.abort_after_inner || !sh.abort.applies(ctx)) return r;
    sh.count_abort();
    return result<response_type>(sh.abort_error);
  }

  S inner_;
  std::shared_ptr<const detail::fault_shared> shared_;
};

class fault_layer {
 public:
  /// `ctx` gives the clock and the metrics (registry, {pipeline} label); `seed` the salts (default: random).
  explicit fault_layer(fault_config cfg, const layer_context& ctx = {}, std::optional<std::uint64_t> seed = {});

  /// Every instance of one layer shares its configuration, salts and counters.
  template <class S>
  fault_service<S> wrap(S inner) const {
    return fault_service<S>(std::move(inner), shared_);
  }

  const fault_config& config() const noexcept { return shared_->cfg; }

 private:
  std::shared_ptr<const detail::fault_shared> shared_;
};

}  // namespace turret
