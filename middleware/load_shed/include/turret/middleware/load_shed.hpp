#pragma once
// load_shed: when the inner service is not ready right now, fail at once with `overloaded` instead of queueing
// (tower's LoadShed).
//
// ```yaml
// - layer: load_shed
// - layer: concurrency_limit
//   max: 100
// ```
//
// Semantics
// - ready() probes the inner service with try_ready (service.hpp: a non-suspending readiness probe): a permit is
//   passed through; an error is returned as is; "would wait" (nullopt) becomes load_shed_errc::overloaded (condition
//   turret::errc::overloaded: RESP "BUSY overloaded: ...", HTTP 429 with Retry-After, gRPC RESOURCE_EXHAUSTED),
//   counted in turret_load_shed_total{pipeline}. ready() never suspends.
// - What "not ready" means is the inner layer's own readiness: a concurrency_limit without a free slot (or with
//   requests queued), a rate_limit without a token, a fault delay. Layers that reserve capacity answer for their
//   reservation and defer deeper waits to their call() (see service.hpp), so put load_shed directly above the limit
//   it should shed on.
// - An inner service without try_ready (a plugin's layer, a type-erased chain with such a layer) cannot be probed:
//   load_shed then awaits its ready() like any caller and sheds nothing (it cannot tell "ready soon" from "never").
//   An erased chain reports this through any_service::supports_try_ready().
// - try_call_now forwards to the inner fast path (its nullopt leads to ready(), which probes); try_ready forwards
//   the probe, shedding on nullopt, so a load_shed is itself always probeable.
//
// Threading: stateless apart from its counter; any thread, any number of requests.
#include <turret/error.hpp>
#include <turret/layer_context.hpp>
#include <turret/service.hpp>

#include <boost/system/error_category.hpp>

#include <memory>
#include <optional>
#include <type_traits>

namespace turret {

namespace metrics {
class counter;
}

enum class load_shed_errc {
  overloaded = 1,  ///< "service overloaded: request shed"; condition overloaded
};

/// The category "turret.load_shed".
const boost::system::error_category& load_shed_category() noexcept;
inline error_code make_error_code(load_shed_errc e) noexcept { return {static_cast<int>(e), load_shed_category()}; }

}  // namespace turret

template <>
struct boost::system::is_error_code_enum<turret::load_shed_errc> : std::true_type {};

namespace turret {

class config_node;

/// Immutable configuration (nothing to configure yet).
struct load_shed_config {};

/// Parses `{layer: load_shed}` (unknown keys rejected). Throws config_error.
load_shed_config parse_load_shed_config(const config_node& entry);

namespace detail {
struct load_shed_shared {
  metrics::counter* shed = nullptr;  ///< turret_load_shed_total{pipeline}
  void count_shed() const noexcept;
};
}  // namespace detail

template <class S>
class load_shed_service {
 public:
  using response_type = typename S::response_type;
  using permit_type = typename S::permit_type;  // the inner permit passes through

  load_shed_service(S inner, std::shared_ptr<const detail::load_shed_shared> shared)
      : inner_(std::move(inner)), shared_(std::move(shared)) {}

  S& inner() noexcept { return inner_; }
  const S& inner() const noexcept { return inner_; }

  awaitable<result<permit_type>> ready(request_context& ctx) {
    if (!probe_supported(inner_)) co_return co_await inner_.ready(ctx);
    co_return probe(ctx);
  }

  /// Always answers (never nullopt) when the inner service can be probed.
  std::optional<result<permit_type>> try_ready(request_context& ctx)
    requires probing_service<S>
  {
    if (!probe_supported(inner_)) return std::nullopt;
    return probe(ctx);
  }

  template <class Request>
    requires immediate_service<S, Request>
  std::optional<result<response_type>> try_call_now(Request& req) {
    return inner_.try_call_now(req);
  }

  awaitable<result<response_type>> call(permit_type p, auto& req) { return inner_.call(std::move(p), req); }

 private:
  result<permit_type> probe(request_context& ctx) {
    std::optional<result<permit_type>> r = turret::try_ready(inner_, ctx);
    if (r) return std::move(*r);
    shared_->count_shed();
    return make_error_code(load_shed_errc::overloaded);
  }

  S inner_;
  std::shared_ptr<const detail::load_shed_shared> shared_;
};

class load_shed_layer {
 public:
  /// `ctx` gives the metrics registry and the {pipeline} label.
  explicit load_shed_layer(load_shed_config cfg = {}, const layer_context& ctx = {});

  template <class S>
  load_shed_service<S> wrap(S inner) const {
    return load_shed_service<S>(std::move(inner), shared_);
  }

 private:
  std::shared_ptr<const detail::load_shed_shared> shared_;
};

}  // namespace turret
