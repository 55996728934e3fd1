// hello: the smallest turretd plugin. It registers one layer, `hello`, that lets every request through unchanged and
// counts it in turret_hello_requests_total{pipeline}, a metric of turretd's own registry (served at /metrics).
//
// ```yaml
// plugins:
//   - libturret_hello.so          # relative to this config file's directory
// pipeline:
//   - layer: hello
// ```
//
// Build: target `turret_hello` (build/examples/plugins/libturret_hello.so). A plugin links turret::plugin (headers
// only): the turret functions it calls (metrics, config, the registries) are turretd's own, bound when turretd loads
// it, which is why its counter is in the registry turretd exposes (<turret/plugin.hpp>, "One process, one copy").
#include <turret/config.hpp>
#include <turret/kv/plugin.hpp>
#include <turret/layer_context.hpp>
#include <turret/metrics.hpp>
#include <turret/plugin.hpp>
#include <turret/service.hpp>

#include <optional>
#include <utility>

namespace hello {

/// Forwards everything to the inner service; counts each request once (in ready(), or on the fast path when the
/// inner service answers synchronously; a fast path that declines goes through ready() and is counted there).
template <class S>
class hello_service {
 public:
  using response_type = typename S::response_type;
  using permit_type = typename S::permit_type;

  hello_service(S inner, turret::metrics::counter* requests) : inner_(std::move(inner)), requests_(requests) {}

  S& inner() noexcept { return inner_; }
  const S& inner() const noexcept { return inner_; }

  turret::awaitable<turret::result<permit_type>> ready(turret::request_context& ctx) {
    requests_->inc();
    co_return co_await inner_.ready(ctx);
  }

  turret::awaitable<turret::result<response_type>> call(permit_type p, auto& req) {
    co_return co_await inner_.call(std::move(p), req);
  }

  template <class Request>
    requires turret::immediate_service<S, Request>
  std::optional<turret::result<response_type>> try_call_now(Request& req) {
    auto r = inner_.try_call_now(req);
    if (r) requests_->inc();
    return r;
  }

 private:
  S inner_;
  turret::metrics::counter* requests_;
};

class hello_layer {
 public:
  explicit hello_layer(turret::metrics::counter& requests) : requests_(&requests) {}

  template <class S>
  hello_service<S> wrap(S inner) const {
    return hello_service<S>(std::move(inner), requests_);
  }

 private:
  turret::metrics::counter* requests_;  // the registry outlives every pipeline built with it
};

turret::kv::layer_registry_type::layer_type make_hello(const turret::config_node& entry,
                                                       const turret::layer_context& ctx) {
  entry.reject_unknown_keys({"layer"});
  auto& requests = ctx.metrics()
                       .counter("turret_hello_requests_total", "Requests through the hello layer", {"pipeline"})
                       .with({ctx.pipeline_name});
  return hello_layer(requests);
}

void register_hello(turret::plugin_context& ctx) {
  ctx.get<turret::kv::layer_registry_type>().add("hello", make_hello);
}

}  // namespace hello

TURRET_PLUGIN("hello", "1.0", hello::register_hello)
