// What a layer costs on its pass-through path (limits not hit, breaker closed, no fault applied), per call:
//
//   direct                  a trivial service that answers at once, called through try_call_now (the fast path)
//   direct/async            the same through ready() + call() on a coroutine (the suspending path's frames)
//   static/<layer>          the layer wrapping it statically (layer.wrap(service)), fast path
//   static/<layer>/async    the same through ready() + call()
//   erased/<layer>          the layer as turretd builds it from YAML (layer_registry, any_layer over any_service)
//   erased/<layer>/async
//   erased/empty[/async]    the service erased alone (turretd's empty pipeline), the baseline of erased/<layer>
//
// static/<layer> - direct is the layer's cost; erased/<layer> - static/<layer> what type erasure adds (the layer's
// hop through any_service: a virtual call, and on the async path a coroutine frame per hop). Targets (issue 10):
// static <= 10 ns over direct (25 ns for layers that count: rate_limit, concurrency_limit, metrics), erasure <= 30 ns.
//
// Adding a layer is one line in register_layers(): its name, its YAML entry on the pass-through path, and how the
// static layer is made from that entry.
//
// Run: build/bench/bench_layers --benchmark_repetitions=3 [--benchmark_filter=timeout]   (Release build)
#include <turret/any_service.hpp>
#include <turret/config.hpp>
#include <turret/layer_context.hpp>
#include <turret/middleware/builtin.hpp>
#include <turret/middleware/testing/mock_service.hpp>
#include <turret/registry.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <benchmark/benchmark.h>

#include <string>

namespace {

using namespace turret;
using request = testing::mock_request;
using erased = any_service<request, int>;

/// The innermost service: answers at once, on both paths.
struct immediate {
  using response_type = int;
  using permit_type = unit_permit;
  awaitable<result<unit_permit>> ready(request_context&) { co_return unit_permit{}; }
  awaitable<result<int>> call(unit_permit, request& req) { co_return req.value; }
  std::optional<result<int>> try_call_now(request& req) { return result<int>(req.value); }
};

/// The fast path: try_call_now per iteration (every layer benchmarked answers there on its pass-through path).
template <class S>
void run_fast(benchmark::State& state, S& svc) {
  request req;
  req.value = 1;
  for (auto _ : state) {
    auto r = svc.try_call_now(req);
    benchmark::DoNotOptimize(r);
    if (!r || !*r) {
      state.SkipWithError("the fast path declined or failed");
      break;
    }
  }
}

/// The suspending path: ready() + call() per iteration, inside one coroutine on an io_context.
template <class S>
void run_async(benchmark::State& state, S& svc) {
  boost::asio::io_context io(1);
  bool failed = false;
  boost::asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        request req;
        req.value = 1;
        for (auto _ : state) {
          auto p = co_await svc.ready(req.context());
          if (!p) {
            failed = true;
            break;
          }
          auto r = co_await svc.call(std::move(*p), req);
          benchmark::DoNotOptimize(r);
          if (!r) {
            failed = true;
            break;
          }
        }
      },
      boost::asio::detached);
  io.run();
  if (failed) state.SkipWithError("ready() or call() failed");
}

template <class S>
void register_both(const std::string& name, S make) {
  benchmark::RegisterBenchmark(name.c_str(), [make](benchmark::State& st) {
    auto svc = make();
    run_fast(st, svc);
  });
  benchmark::RegisterBenchmark((name + "/async").c_str(), [make](benchmark::State& st) {
    auto svc = make();
    run_async(st, svc);
  });
}

const layer_registry<request, int>& registry() {
  static const layer_registry<request, int> reg = [] {
    layer_registry<request, int> r;
    register_builtin_layers(r);
    return r;
  }();
  return reg;
}

/// static/<name>, erased/<name> (and /async) for the layer of the YAML entry `yaml`; `make_static(entry, ctx)`
/// returns the layer object the entry configures.
template <class MakeStatic>
void add_layer(const std::string& name, const std::string& yaml, MakeStatic make_static) {
  const std::string text = yaml;
  register_both("static/" + name, [text, make_static] {
    const layer_context ctx;
    return make_static(load_config_string(text, "bench.yaml"), ctx).wrap(immediate{});
  });
  register_both("erased/" + name, [text] {
    const layer_context ctx;
    return registry().make(load_config_string(text, "bench.yaml"), ctx).wrap(erased(immediate{}));
  });
}

void register_layers() {
  register_both("direct", [] { return immediate{}; });
  register_both("erased/empty", [] { return erased(immediate{}); });
  // One line per layer: name, YAML entry (pass-through path), the static layer from that entry.
  add_layer("timeout", "{layer: timeout, duration: 10s}",
            [](const config_node& e, const layer_context& c) { return timeout_layer(parse_timeout_config(e), c.clk); });
  add_layer("concurrency_limit", "{layer: concurrency_limit, max: 1000}",
            [](const config_node& e, const layer_context&) { return concurrency_limit_layer(parse_concurrency_limit_config(e)); });
  add_layer("fault", "{layer: fault, abort: {percent: 0, error: unavailable}}",
            [](const config_node& e, const layer_context& c) { return fault_layer(parse_fault_config(e), c); });
  add_layer("circuit_breaker", "{layer: circuit_breaker}",
            [](const config_node& e, const layer_context& c) { return circuit_breaker_layer(parse_circuit_breaker_config(e), c); });
  add_layer("retry", "{layer: retry, max_attempts: 3}",
            [](const config_node& e, const layer_context& c) { return retry_layer(parse_retry_config(e), c); });
  add_layer("hedge", "{layer: hedge, delay: 10ms}",
            [](const config_node& e, const layer_context& c) { return hedge_layer(parse_hedge_config(e), c); });
  add_layer("rate_limit", "{layer: rate_limit, scope: global, rate: 1000000000/s, burst: 1000000000}",
            [](const config_node& e, const layer_context& c) { return rate_limit_layer(parse_rate_limit_config(e), c); });
  add_layer("load_shed", "{layer: load_shed}",
            [](const config_node& e, const layer_context& c) { return load_shed_layer(parse_load_shed_config(e), c); });
  add_layer("load_balance", "{layer: load_balance, policy: round_robin, endpoints: 2}",
            [](const config_node& e, const layer_context& c) { return load_balance_layer(parse_load_balance_config(e), c); });
  add_layer("metrics", "{layer: metrics, name: bench}",
            [](const config_node& e, const layer_context& c) { return metrics_layer(parse_metrics_config(e), c); });
  add_layer("metrics_nolatency", "{layer: metrics, name: bench, latency: false}",
            [](const config_node& e, const layer_context& c) { return metrics_layer(parse_metrics_config(e), c); });
  add_layer("access_log", "{layer: access_log, path: stderr, sample: 0}",
            [](const config_node& e, const layer_context& c) { return access_log_layer(parse_access_log_config(e), c); });
  add_layer("auth", "{layer: auth, anonymous: {allow: [read, write, admin, pubsub]}, identities: [{name: a, password_sha256: "
            "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881, allow: [read]}]}",
            [](const config_node& e, const layer_context& c) { return auth_layer(parse_auth_config(e), c); });
}

}  // namespace

int main(int argc, char** argv) {
  register_layers();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
