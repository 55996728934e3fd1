#pragma once
// load_balance: sends each request to one of a set of endpoint services (tower's Balance, Envoy's cluster load
// balancers), with passive health (outlier ejection) and optional active health checks.
//
// ```yaml
// - layer: load_balance
//   policy: p2c                 # p2c | round_robin | ring_hash | maglev
//   p2c: {load: peak_ewma, decay: 10s, default_rtt: 1ms}   # load: peak_ewma | pending
//   ring_hash: {vnodes: 160, failover: true, hash_tag: false}     # only with policy ring_hash
//   maglev: {table_size: 65537, failover: true, hash_tag: false}  # only with policy maglev
//   outlier: {consecutive_failures: 5, base_ejection: 30s, max_ejection: 300s, max_ejected_percent: 50}
//   health_check: {interval: 5s, timeout: 1s, unhealthy: 3, healthy: 2}
//   endpoints:                  # what to balance over (see "Endpoints")
//     - {name: a}                                        # the inner service as is
//     - {name: b, pipeline: [{layer: fault, abort: {percent: 100, error: unavailable}}]}
// ```
//
// # Endpoints
// An endpoint is a service of the pipeline's request and response types with a stable name (lb_endpoint). Statically
// (`load_balance_layer::balance(endpoints)`) they are a std::vector<lb_endpoint<S>>, any service type S; from config
// they are any_service and come from the entry's `endpoints:`:
// - a list of `{name: NAME, pipeline: [...]}`: endpoint i is the inner service (what the layer wraps) inside its own
//   sub-pipeline, built with the registry that builds the entry (layer_context::extension<layer_registry>). turretd's
//   in-process store is one core, so its endpoints differ only by their pipelines: a test puts a `fault` on one of
//   them. `name` defaults to the index ("0", "1", ...); names are unique; `pipeline` defaults to none.
// - a count N: N endpoints, each the inner service as is, named "0" .. "N-1".
// - a name, or no `endpoints:` at all: an endpoint set supplied by the host building the pipeline, through an
//   lb_endpoint_provider<Req, Resp> in the layer_context (extension<lb_endpoint_provider<Req, Resp>>()); the
//   unnamed set when the key is absent. An upstream store (issue 11) builds the pipeline in front of its Redis
//   servers with a provider whose set is its `endpoints:` list: one RESP-client service per server, named "host:port",
//   each with a PING probe; the load_balance entry of its pipeline then needs no `endpoints:`, and its ring_hash or
//   maglev placement is the one documented in load_balance_placement.hpp (the upstream store sets `failover: false`
//   for shard mode). Provider endpoints do not call the inner service.
//
// # Gates
// An endpoint may carry a gate (lb_endpoint::gate), an atomic flag its host sets: while it is false the endpoint is
// out of service exactly as if ejected (not picked; ring_hash/maglev fail over past it), without counting as an
// ejection or an unhealthy verdict and without touching its statistics. An upstream store in replicas mode uses it
// to follow replication roles (its primary for writes, its usable replicas for reads) with one balancer whose
// endpoints never change. The healthy gauge does not follow gates.
//
// # Policies
// - p2c: power of two choices (Mitzenmacher): two distinct endpoints in service drawn at random (the thread's
//   splitmix64 sequence), the less loaded wins. Load = tower's PeakEwma cost (an RTT estimate that jumps to any
//   slower answer and otherwise decays towards the answers' latency with time constant `decay`, multiplied by
//   pending + 1; `default_rtt` before the first answer), or with `load: pending`, the number of pending requests.
// - round_robin: endpoints in turn (exact: request k goes to endpoint k mod N while all are in service); endpoints
//   out of service are skipped (the cycle runs over those in service).
// - Retries and hedges go elsewhere (Envoy's previous_hosts): each pick marks its endpoint in the request's context
//   (request_context::attempted_endpoints; the synchronous fast path marks only a failed call), and p2c and
//   round_robin pick among the endpoints in service that the request has not tried while there is one. A retry
//   reuses the context; the hedge layer gives each hedge the marks of the request and of the earlier hedges. So a
//   request stuck on a stopped server is hedged to another one even while p2c still rates the stopped server best
//   (its latency estimate moves only when answers come back).
// - ring_hash, maglev: by the request's routing key (turret::request_routing_key), placed as
//   load_balance_placement.hpp documents (stable: part of turret's behaviour). A request without a key goes by p2c.
//
// # Readiness
// An endpoint is in service unless ejected (outlier) or marked unhealthy (health checks); only endpoints in service
// are picked. The framework has no non-suspending readiness probe (service.hpp has none), so an endpoint's momentary
// capacity is not checked before a pick: a busy endpoint is avoided through its pending count (p2c), and an
// endpoint whose ready() fails counts that failure (below) and is ejected after enough of them. ready() picks the
// endpoint and obtains its permit; the permit carries the endpoint's index, so call() goes there, and records the
// outcome and (peak EWMA) the latency when the call completes. The keyed policies cannot pick in ready(), which does
// not see the request: their ready() only checks that some endpoint is in service (else `no_endpoint` at once) and
// their call() picks by the key, then waits for that endpoint's ready() and calls it. The permit counts the request
// as pending on its endpoint from the pick until the call completes (RAII: a dropped permit releases everything).
//
// # Passive health: outlier ejection (Envoy's consecutive_5xx)
// A failure is a pipeline error of condition unavailable, timed_out or internal (turret/error.hpp) from the
// endpoint's ready() or call(); a success resets the count; other errors (overloaded, cancelled...) count as
// neither. `consecutive_failures` in a row eject the endpoint for base_ejection x k (k = its ejections so far,
// counting this one, less one for each base_ejection spent in service since it last came back), at most
// max_ejection. While `max_ejected_percent` of the endpoints are ejected no other is (one always may be). An
// ejected endpoint returns when its time is up: at that time, by a timer, when the balancer has an executor
// (balance()'s; from config the pipeline's runtime), so turret_lb_endpoints_healthy is exact at every ejection and
// every return; without an executor, when a pick finds its time up (the gauge follows then).
//
// # Active health checks
// With `health_check`, every `interval` (the first round at once) each endpoint's probe runs with a timeout;
// `unhealthy` failed probes in a row take it out of service, `healthy` successes bring it back. The probe is the
// endpoint's (lb_endpoint::probe: an upstream's PING); endpoints from config and endpoints without one are probed
// by readiness: a permit from ready(), dropped at once. The checks run on an executor given to balance() (from
// config: the pipeline's runtime, worker 0; none when the pipeline is only validated) for as long as the balancing
// service lives. They are sequential: a round takes up to N x timeout.
//
// # Fast path
// try_call_now picks as ready() would (without advancing round robin), forwards to the endpoint's try_call_now, and
// records the outcome; when the endpoint declines it returns nullopt with nothing changed. Round robin's pick there
// is inline (the endpoint in turn, taken when it is healthy and not ejected, without a clock read; else the full
// pick) and its advance is a load and a store (lb_balancer::commit): no locked instruction per request.
//
// # Errors, metrics, state
// `lb_errc::no_endpoint` (condition unavailable) when no endpoint is in service, or, without failover, when the
// key's endpoint is not. Metrics: turret_lb_picks_total{pipeline,endpoint}, turret_lb_ejections_total{pipeline},
// turret_lb_endpoints_healthy{pipeline} (gauge). The endpoints' statistics and health live in an lb_state
// (ctx.shared_state of the entry, by endpoint name): a reload keeps them for an unchanged entry.
#include <turret/any_service.hpp>
#include <turret/config.hpp>
#include <turret/layer_context.hpp>
#include <turret/middleware/load_balance_balancer.hpp>
#include <turret/registry.hpp>
#include <turret/request_traits.hpp>
#include <turret/service.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/system/error_category.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace turret {

enum class lb_errc {
  no_endpoint = 1,  ///< no endpoint in service (or the key's endpoint is not, without failover): unavailable
};
/// The category "turret.load_balance".
const boost::system::error_category& load_balance_category() noexcept;
inline error_code make_error_code(lb_errc e) noexcept { return {static_cast<int>(e), load_balance_category()}; }

}  // namespace turret

template <>
struct boost::system::is_error_code_enum<turret::lb_errc> : std::true_type {};

namespace turret {

/// An active health check: completes with success when the endpoint is healthy. It runs with its own
/// request_context, cancelled (ctx.cancel_slot()) when the check's timeout elapses.
using lb_probe = std::function<awaitable<error_code>(request_context&)>;

/// One endpoint: a service, its stable name (placement, metrics and statistics go by it), an optional probe and an
/// optional gate.
template <class S>
struct lb_endpoint {
  std::string name;
  S service;
  lb_probe probe;  ///< empty: probe by readiness (a permit from service.ready(), dropped at once)
  /// Host-controlled: while it reads false the endpoint is out of service (never picked), whatever its health;
  /// null: always open. An upstream store in replicas mode opens only the endpoints whose replication role suits
  /// the pipeline (see "Gates" above).
  std::shared_ptr<const std::atomic<bool>> gate;
};

/// The host's endpoint sets for load_balance entries that do not list their endpoints (`endpoints: NAME`, or no
/// `endpoints:` = the set ""). Put in the layer_context with set_extension (see "Endpoints" above).
template <class Request, class Response>
struct lb_endpoint_provider {
  using service_type = any_service<Request, Response>;
  /// At factory time: does the set exist? (An unknown one is a configuration error at the entry.)
  std::function<bool(std::string_view set)> has;
  /// At wrap time: the endpoints of the set; `inner` is the service the layer wraps.
  std::function<std::vector<lb_endpoint<service_type>>(std::string_view set, service_type inner)> make;
};

/// The `endpoints:` of an entry, parsed.
struct lb_endpoints_spec {
  enum class kind { provided, replicas, listed };
  lb_endpoints_spec::kind source = kind::provided;
  std::string set;            ///< provided: the set's name ("" = the host's default set)
  std::size_t replicas = 0;   ///< replicas: how many
  struct listed_endpoint {
    std::string name;
    config_node pipeline;     ///< null: none
  };
  std::vector<listed_endpoint> listed;
  config_node at;             ///< the `endpoints` node (the entry when absent), for errors
};

/// Parses everything but `endpoints` (policy and options; unknown keys rejected). Throws config_error.
lb_config parse_load_balance_config(const config_node& entry);
/// Parses `endpoints` (a count, a list of {name, pipeline}, a set name, or absent). Throws config_error.
lb_endpoints_spec parse_load_balance_endpoints(const config_node& entry);

template <class S>
class load_balance_service {
 public:
  using response_type = typename S::response_type;

  /// The reservation of one request: its endpoint (no_endpoint_index: picked in call(), keyed policies), the
  /// endpoint's permit, and the request's place in the endpoint's pending count.
  struct permit_type {
    std::size_t index = no_endpoint_index;
    std::optional<typename S::permit_type> inner;
    detail::lb_pending pending;
  };

  /// What every copy of the service shares.
  struct core {
    template <class... Args>
    explicit core(std::vector<lb_endpoint<S>> eps, Args&&... balancer_args)
        : endpoints(std::move(eps)), balancer(std::forward<Args>(balancer_args)...) {}
    std::vector<lb_endpoint<S>> endpoints;
    detail::lb_balancer balancer;
  };

  explicit load_balance_service(std::shared_ptr<core> c) : core_(std::move(c)) {}

  detail::lb_balancer& balancer() noexcept { return core_->balancer; }
  std::vector<lb_endpoint<S>>& endpoints() noexcept { return core_->endpoints; }

  awaitable<result<permit_type>> ready(request_context& ctx) {
    std::shared_ptr<core> c = core_;
    detail::lb_balancer& bal = c->balancer;
    if (bal.keyed()) {
      if (!bal.any_available()) co_return make_error_code(lb_errc::no_endpoint);
      co_return permit_type{};
    }
    permit_type p;
    auto ec = co_await reserve(*c, p, std::nullopt, ctx);
    if (ec) co_return ec;
    co_return std::move(p);
  }

  template <class Request>
  awaitable<result<response_type>> call(permit_type p, Request& req) {
    std::shared_ptr<core> c = core_;
    detail::lb_balancer& bal = c->balancer;
    if (p.index == no_endpoint_index) {  // keyed policies pick here, by the request's key
      if (auto ec = co_await reserve(*c, p, request_routing_key(req), req.context())) co_return ec;
    }
    const std::size_t i = p.index;
    const bool timed = bal.measures_latency();
    const clock::time_point start = timed ? bal.clk().now() : clock::time_point{};
    result<response_type> r = co_await c->endpoints[i].service.call(std::move(*p.inner), req);
    bal.record(i, r ? error_code{} : r.error(),
               timed ? std::optional<clock::duration>(bal.clk().now() - start) : std::nullopt);
    co_return r;
  }

  /// Synchronous fast path: the pick ready() would make, then the endpoint's own fast path.
  template <class Request>
    requires immediate_service<S, Request>
  std::optional<result<response_type>> try_call_now(Request& req) {
    core& c = *core_;
    detail::lb_balancer& bal = c.balancer;
    std::uint64_t round = 0;
    request_context& ctx = req.context();
    const std::size_t i = pick_now(req, round);
    if (i == no_endpoint_index) return result<response_type>(make_error_code(lb_errc::no_endpoint));
    const bool timed = bal.measures_latency();
    const clock::time_point start = timed ? bal.clk().now() : clock::time_point{};
    // No pending count here: a call answered without suspending is never in flight while this thread picks again,
    // and another thread would see it for nanoseconds (two locked operations per request for nothing). The answer
    // is built in place: assigning into an optional declared earlier costs tens of ns in store-forwarding stalls
    // (bench/bench_layers.cpp, static/load_balance).
    std::optional<result<response_type>> r = c.endpoints[i].service.try_call_now(req);
    if (!r) return r;
    bal.commit(round);
    bal.count_pick(i);
    if (!*r) ctx.note_attempted_endpoint(&bal, i);  // a retry goes elsewhere (a success ends the request)
    bal.record(i, *r ? error_code{} : r->error(),
               timed ? std::optional<clock::duration>(bal.clk().now() - start) : std::nullopt);
    return r;
  }

  /// Callback start: the pick the fast path makes, then the endpoint's own try_start; the callback records the
  /// outcome and (peak EWMA) the latency, as call() does. The request counts as pending on its endpoint until then.
  template <class Request>
    requires startable_service<S, Request>
  bool try_start(Request& req, completion<response_type>& done) {
    core& c = *core_;
    detail::lb_balancer& bal = c.balancer;
    std::uint64_t round = 0;
    const std::size_t i = pick_now(req, round);
    if (i == no_endpoint_index) return false;  // ready() + call() answer no_endpoint, with its metrics
    const bool timed = bal.measures_latency();
    completion<response_type> recording(recorder{core_, i, timed, timed ? bal.clk().now() : clock::time_point{},
                                                 detail::lb_pending(&bal.state(i)), std::move(done)});
    if (!c.endpoints[i].service.try_start(req, recording)) {
      done = std::move(recording.template target<recorder>()->done);  // untouched: hand it back
      return false;
    }
    bal.commit(round);
    bal.count_pick(i);
    return true;
  }

  /// Erased endpoints: the callback start exists when every endpoint's does.
  bool supports_start() const noexcept {
    if constexpr (requires(const S& s) { s.supports_start(); }) {
      for (const auto& e : core_->endpoints) {
        if (!e.service.supports_start()) return false;
      }
    }
    return true;
  }

  /// Erased endpoints: the fast path exists when every endpoint's does.
  bool supports_immediate() const noexcept {
    if constexpr (requires(const S& s) { s.supports_immediate(); }) {
      for (const auto& e : core_->endpoints) {
        if (!e.service.supports_immediate()) return false;
      }
    }
    return true;
  }

  /// Brings ejected endpoints back on time with timers on `ex` (the healthy gauge follows at once), for as long as
  /// this service (any copy) lives. balance() calls it; without it, a pick brings them back.
  void schedule_readmissions(boost::asio::any_io_executor ex) {
    if (!core_->balancer.config().outlier) return;
    std::weak_ptr<core> weak = core_;
    core_->balancer.set_readmission_scheduler([weak, ex](std::size_t i, clock::time_point at) {
      auto c = weak.lock();
      if (!c) return;
      std::shared_ptr<timer> t = c->balancer.clock_ptr()->make_timer(ex);
      t->async_wait_until(at, [weak, i, t](error_code ec) {  // t: kept until it fires
        if (ec) return;
        if (auto alive = weak.lock()) alive->balancer.readmit_if_due(i);
      });
    });
  }

  /// Runs the active health checks on `ex` while this service (any copy) lives. balance() calls it.
  void start_health_checks(boost::asio::any_io_executor ex) {
    if (!core_->balancer.config().health_check || core_->endpoints.empty()) return;
    boost::asio::co_spawn(std::move(ex), health_loop(core_), boost::asio::detached);
  }

 private:
  /// The pick of the paths that do not suspend (try_call_now, try_start): no side effect until commit(round).
  template <class Request>
  std::size_t pick_now(Request& req, std::uint64_t& round) {
    detail::lb_balancer& bal = core_->balancer;
    return bal.pick(bal.keyed() ? request_routing_key(req) : std::nullopt, false, &round,
                    req.context().attempted_endpoints(&bal));
  }

  /// try_start's callback: the outcome and latency of a started request, as call() records them.
  struct recorder {
    std::shared_ptr<core> c;
    std::size_t i;
    bool timed;
    clock::time_point start;
    detail::lb_pending pending;  ///< from the pick to the completion (the pick's transient count if declined)
    completion<response_type> done;
    void operator()(result<response_type> r) {
      pending.reset();
      detail::lb_balancer& b = c->balancer;
      b.record(i, r ? error_code{} : r.error(),
               timed ? std::optional<clock::duration>(b.clk().now() - start) : std::nullopt);
      done(std::move(r));
    }
  };

  /// Picks an endpoint into `p`, then waits for its permit. A failed ready() counts for outlier detection.
  static awaitable<error_code> reserve(core& c, permit_type& p, std::optional<std::string_view> key,
                                       request_context& ctx) {
    detail::lb_balancer& bal = c.balancer;
    const std::size_t i = bal.pick(key, true, nullptr, ctx.attempted_endpoints(&bal));
    if (i == no_endpoint_index) co_return make_error_code(lb_errc::no_endpoint);
    ctx.note_attempted_endpoint(&bal, i);
    p.index = i;
    p.pending = detail::lb_pending(&bal.state(i));
    bal.count_pick(i);
    auto r = co_await c.endpoints[i].service.ready(ctx);
    if (!r) {
      bal.record(i, r.error(), std::nullopt);
      co_return r.error();
    }
    p.inner.emplace(std::move(*r));
    co_return error_code{};
  }

  static awaitable<error_code> probe_once(core& c, std::size_t i, request_context& ctx) {
    lb_endpoint<S>& e = c.endpoints[i];
    if (e.probe) co_return co_await e.probe(ctx);
    auto permit = co_await e.service.ready(ctx);
    if (!permit) co_return permit.error();
    co_return error_code{};
  }

  /// Holds the core only during a round (not while sleeping): the loop ends after the service is gone.
  static awaitable<void> health_loop(std::weak_ptr<core> weak) {
    auto ex = co_await boost::asio::this_coro::executor;
    std::shared_ptr<clock> clk;
    std::chrono::nanoseconds interval{0};
    while (true) {
      {
        std::shared_ptr<core> c = weak.lock();
        if (!c) co_return;
        const auto& hc = *c->balancer.config().health_check;
        clk = c->balancer.clock_ptr();
        interval = hc.interval;
        for (std::size_t i = 0; i < c->endpoints.size(); ++i) {
          auto pctx = std::make_shared<request_context>();
          auto t = clk->make_timer(ex);
          t->async_wait_until(clk->now() + hc.timeout, [pctx](error_code ec) {
            if (!ec) pctx->cancel();
          });
          const error_code ec = co_await probe_once(*c, i, *pctx);
          t->cancel();
          c->balancer.record_probe(i, !ec && !pctx->cancelled());
        }
      }
      if (co_await sleep_for(*clk, interval)) co_return;
    }
  }

  std::shared_ptr<core> core_;
};

/// The static layer: `balance(endpoints)` makes a balancing service; `wrap(inner)` one over `replicas` copies of
/// the inner service (each is a copy of one service: copies share the service's state).
class load_balance_layer {
 public:
  /// `ctx`: the clock, metrics (registry, pipeline label) and runtime (health checks); `state`: the endpoints'
  /// statistics (default: fresh; from config: ctx.shared_state of the entry).
  explicit load_balance_layer(lb_config cfg, const layer_context& ctx = {}, std::shared_ptr<lb_state> state = {},
                              std::size_t replicas = 2);

  /// A balancer over `endpoints` (names unique). Health checks, if configured, run on `ex` (default: the
  /// context's runtime, worker 0; none without a runtime).
  template <class S>
  load_balance_service<S> balance(std::vector<lb_endpoint<S>> endpoints,
                                  std::optional<boost::asio::any_io_executor> ex = std::nullopt) const {
    std::vector<std::string> names;
    names.reserve(endpoints.size());
    for (const auto& e : endpoints) names.push_back(e.name);
    using core = typename load_balance_service<S>::core;
    auto c = std::make_shared<core>(std::move(endpoints), cfg_, std::move(names), state_, clk_, *metrics_, pipeline_);
    bool gated = false;
    std::vector<std::shared_ptr<const std::atomic<bool>>> gates;
    for (const auto& e : c->endpoints) {
      gates.push_back(e.gate);
      gated = gated || e.gate != nullptr;
    }
    if (gated) c->balancer.set_gates(std::move(gates));  // ungated balancers check nothing per pick
    load_balance_service<S> svc(std::move(c));
    if (!ex && default_executor_) ex = default_executor_;
    if (ex) {
      svc.schedule_readmissions(*ex);
      svc.start_health_checks(*ex);
    }
    return svc;
  }

  template <class S>
  load_balance_service<S> wrap(S inner) const {
    std::vector<lb_endpoint<S>> eps;
    for (std::size_t i = 0; i < replicas_; ++i) eps.push_back({std::to_string(i), inner, {}, {}});
    return balance(std::move(eps));
  }

  const lb_config& config() const noexcept { return *cfg_; }
  const std::shared_ptr<lb_state>& state() const noexcept { return state_; }

 private:
  std::shared_ptr<const lb_config> cfg_;
  std::shared_ptr<lb_state> state_;
  std::shared_ptr<clock> clk_;
  metrics::registry* metrics_;
  std::string pipeline_;
  std::optional<boost::asio::any_io_executor> default_executor_;
  std::size_t replicas_;
};

/// The factory of `{layer: load_balance, ...}` for pipelines of Request -> Response (register_builtin_layers).
/// Sub-pipelines of listed endpoints are built (validated) here with the context's layer registry and wrapped
/// around the inner service at wrap time. Throws config_error.
template <class Request, class Response>
any_layer<Request, Response> make_load_balance_layer(const config_node& entry, const layer_context& ctx) {
  using service_type = any_service<Request, Response>;
  using registry_type = layer_registry<Request, Response>;
  using provider_type = lb_endpoint_provider<Request, Response>;
  lb_config cfg = parse_load_balance_config(entry);
  lb_endpoints_spec spec = parse_load_balance_endpoints(entry);

  std::vector<std::vector<any_layer<Request, Response>>> pipelines;
  std::shared_ptr<const provider_type> provider;
  if (spec.source == lb_endpoints_spec::kind::listed) {
    auto reg = ctx.extension<registry_type>();
    if (!reg) spec.at.fail("endpoint pipelines need the layer registry in the layer_context (layer_registry::make)");
    for (const auto& e : spec.listed) pipelines.push_back(reg->make_all(e.pipeline, ctx));
  } else if (spec.source == lb_endpoints_spec::kind::provided) {
    provider = ctx.extension<provider_type>();
    if (!provider || !provider->has || !provider->has(spec.set)) {
      spec.at.fail(spec.set.empty() ? "missing 'endpoints' (a count, e.g. 2, or a list of {name, pipeline}); "
                                      "no endpoint set is provided here"
                                    : "unknown endpoint set '" + spec.set + "'");
    }
  }
  if (cfg.pol == lb_config::policy::maglev) {
    const std::size_t n = spec.source == lb_endpoints_spec::kind::listed ? spec.listed.size() : spec.replicas;
    if (n >= cfg.maglev.table_size) entry.child("maglev").fail("table_size must be greater than the endpoint count");
  }
  auto state = ctx.shared_state<lb_state>(entry, [] { return std::make_shared<lb_state>(); });
  load_balance_layer layer(std::move(cfg), ctx, std::move(state));
  return any_layer<Request, Response>::from_function(
      [layer, spec = std::move(spec), pipelines = std::move(pipelines), provider](service_type inner) {
        std::vector<lb_endpoint<service_type>> eps;
        switch (spec.source) {
          case lb_endpoints_spec::kind::provided: eps = provider->make(spec.set, inner); break;
          case lb_endpoints_spec::kind::replicas:
            for (std::size_t i = 0; i < spec.replicas; ++i) eps.push_back({std::to_string(i), inner, {}, {}});
            break;
          case lb_endpoints_spec::kind::listed:
            for (std::size_t i = 0; i < spec.listed.size(); ++i)
              eps.push_back({spec.listed[i].name, registry_type::wrap_all(pipelines[i], inner), {}, {}});
            break;
        }
        return service_type(layer.balance(std::move(eps)));
      });
}

}  // namespace turret
