#pragma once
// metrics: counts and times the requests that pass one point of a pipeline (per pipeline, per layer position).
//
// ```yaml
// pipeline:
//   - layer: metrics
//     name: edge          # the `layer` label (default: the entry's position in its list, "0", "1", ...)
//   - layer: timeout
//     duration: 2s
//   - layer: metrics
//     name: core          # a second one deeper in: measures what is inside it
// ```
//
// Series (on GET /metrics, and in `INFO pipelines` over RESP: pipelines_info() below):
// - turret_layer_requests_total{pipeline,layer,outcome}: every request that passed, by outcome:
//   `ok`, `error` (the inner service answered with an error reply: the response says so, e.g. kv::response's
//   is_error()), or, for a pipeline error (a result error of the inner service), the name of its turret::errc
//   condition (`overloaded`, `unavailable`, `timed_out`, `cancelled`, `unauthenticated`, `permission_denied`,
//   `invalid_argument`, `internal`: turret/error.hpp). Every series exists from the start (at 0).
// - turret_layer_duration_seconds{pipeline,layer}: a histogram of the time from the layer's ready() (before the inner
//   ready(): waiting for inner capacity counts) to the inner call's completion; on the synchronous fast path, around
//   the inner try_call_now. What it measures is therefore whatever is inside it: placed first, the whole pipeline;
//   placed last, the service alone.
//
// Cost. The counters and the histogram are per-thread sharded (metrics.hpp): recording is a few plain stores on the
// thread's own cache line. The time is read twice per request on the layer's duration_clock (turret/fast_clock.hpp:
// the time-stamp counter on the real clock, the layer's clock in tests). `latency: false` turns the histogram (and
// the clock reads) off.
//
// Fast path: try_call_now forwards to the inner service's; when that declines (nullopt) the layer records nothing
// (no side effect) and ready()/call() measure the request.
//
// Threading: the shared state is immutable after construction (series pointers); any thread.
#include <turret/clock.hpp>
#include <turret/fast_clock.hpp>
#include <turret/error.hpp>
#include <turret/layer_context.hpp>
#include <turret/metrics.hpp>
#include <turret/service.hpp>

#include <array>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

namespace turret {

class config_node;

/// Immutable configuration.
struct metrics_config {
  std::string name;     ///< the `layer` label; empty: the entry's position (parse_metrics_config fills it in)
  bool latency = true;  ///< record turret_layer_duration_seconds
};

/// Parses `{layer: metrics, name: edge, latency: true}` (unknown keys rejected). Without `name`, the label is the
/// entry's index in its pipeline list ("pipeline[2]" -> "2"). Throws config_error.
metrics_config parse_metrics_config(const config_node& entry);

/// The INFO section "Pipelines": one line per (pipeline, layer) of `reg`'s turret_layer_* series,
/// `layer_<pipeline>_<layer>:requests=N,ok=N,error=N,failed=N,usec=N` (failed: every pipeline error; usec: the
/// histogram's sum in microseconds, 0 without latency). Names are reduced to [a-z0-9_-] (others become '_') so the
/// line is an INFO field. Lines end in CRLF; empty when no metrics layer was built.
std::string pipelines_info(const metrics::registry& reg);

namespace detail {

/// The series of one metrics layer, looked up once.
struct metrics_shared {
  explicit metrics_shared(std::shared_ptr<clock> clk) : timing(std::move(clk)) {}
  duration_clock timing;  ///< the layer's clock for durations (turret/fast_clock.hpp)
  bool latency = true;
  metrics::counter* ok = nullptr;
  metrics::counter* error = nullptr;
  std::array<metrics::counter*, 9> failed{};  ///< by errc value (1..8); [0] unused
  metrics::histogram* duration = nullptr;

  /// A time point for durations only (duration_clock); none without latency.
  clock::time_point now() const noexcept {
    if (!latency) return {};
    return timing.now();
  }
  void record_ok(clock::time_point start) const noexcept {
    ok->inc();
    observe_since(start);
  }
  void record_error_reply(clock::time_point start) const noexcept {
    error->inc();
    observe_since(start);
  }
  void observe_since(clock::time_point start) const noexcept {
    if (latency) duration->observe_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(now() - start).count());
  }
  void record_failure(const error_code& ec, clock::time_point start, clock::time_point deadline) const noexcept;

  template <class Response>
  void record(const result<Response>& r, clock::time_point start, clock::time_point deadline) const noexcept {
    if (!r) {
      record_failure(r.error(), start, deadline);
    } else if constexpr (requires(const Response& v) { { v.is_error() } -> std::convertible_to<bool>; }) {
      if (r->is_error()) record_error_reply(start);
      else record_ok(start);
    } else {
      record_ok(start);
    }
  }
};

}  // namespace detail

template <class S>
class metrics_service {
 public:
  using response_type = typename S::response_type;

  /// The inner permit and when the request reached the layer.
  struct permit_type {
    typename S::permit_type inner;
    clock::time_point start;
  };

  metrics_service(S inner, std::shared_ptr<const detail::metrics_shared> shared)
      : inner_(std::move(inner)), shared_(std::move(shared)) {}

  S& inner() noexcept { return inner_; }
  const S& inner() const noexcept { return inner_; }

  awaitable<result<permit_type>> ready(request_context& ctx) {
    const clock::time_point start = shared_->now();
    auto p = co_await inner_.ready(ctx);
    if (!p) {
      shared_->record_failure(p.error(), start, ctx.deadline);
      co_return p.error();
    }
    co_return permit_type{std::move(*p), start};
  }

  awaitable<result<response_type>> call(permit_type p, auto& req) {
    result<response_type> r = co_await inner_.call(std::move(p.inner), req);
    shared_->record(r, p.start, deadline_of(req));
    co_return r;
  }

  template <class Request>
    requires immediate_service<S, Request>
  std::optional<result<response_type>> try_call_now(Request& req) {
    const clock::time_point start = shared_->now();
    std::optional<result<response_type>> r = inner_.try_call_now(req);
    if (r) shared_->record(*r, start, deadline_of(req));
    return r;
  }

 private:
  template <class Request>
  static clock::time_point deadline_of(Request& req) noexcept {
    if constexpr (contextual_request<Request>) return req.context().deadline;
    else return clock::time_point::max();
  }

  S inner_;
  std::shared_ptr<const detail::metrics_shared> shared_;
};

class metrics_layer {
 public:
  /// `ctx`: the clock, the registry and the {pipeline} label.
  explicit metrics_layer(metrics_config cfg, const layer_context& ctx = {});

  template <class S>
  metrics_service<S> wrap(S inner) const {
    return metrics_service<S>(std::move(inner), shared_);
  }

  const metrics_config& config() const noexcept { return cfg_; }

 private:
  metrics_config cfg_;
  std::shared_ptr<const detail::metrics_shared> shared_;
};

}  // namespace turret
