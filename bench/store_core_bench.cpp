// The in-process engine's serial part: GET and SET through the core (backend service, fast path, one store mutex
// held per command) on 1, 2 and 4 threads, each thread a client with its own session and RESP output buffer.
//
// What it tells (docs/architecture.md, "Threads, and how the design behaves as cores grow"): with one thread, the time
// per command is the work a command does under the store mutex plus the dispatch around it, so the engine cannot
// execute more than about 1 / that commands per second however many cores serve connections. With two or more
// threads the aggregate rate (items_per_second) shows what contention does: on a serialised engine it cannot rise
// above the one-thread rate, and it falls when the mutex and the keyspace's cache lines move between cores.
//
// Run: build/bench/store_core_bench   (Release; --benchmark_min_time=2 for steadier figures)
#include <services/resp/resp_reply_builder.hpp>
#include <turret/context.hpp>
#include <turret/kv/dispatch.hpp>
#include <turret/kv/local.hpp>
#include <turret/kv/session.hpp>

#include <benchmark/benchmark.h>

#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace turret;

constexpr int key_count = 100000;  // as bench/bench_resp.sh's redis-benchmark -r 100000

struct engine {
  std::unique_ptr<kv::local_backend> backend = std::make_unique<kv::local_backend>(kv::store_options{});
  kv::pipeline_service core = backend->service();
  std::vector<std::string> keys;

  engine() {
    keys.reserve(key_count);
    char buf[32];
    for (int i = 0; i < key_count; ++i) {
      std::snprintf(buf, sizeof buf, "key:%012d", i);
      keys.emplace_back(buf);
      const std::string_view args[] = {"SET", keys.back(), "xxx"};
      backend->run(args);
    }
  }
};

engine& shared_engine() {
  static engine e;  // built once, before the threads start (first call from the benchmark's setup below)
  return e;
}

/// One client: its session, its output buffer and the reply builder writing RESP2 into it.
struct client {
  kv::backend& be;
  kv::session sess;
  std::string out;
  resp_frontend::resp_reply_builder builder{out, sess.resp};
  request_context ctx;
  explicit client(kv::backend& b) : be(b) { be.open_session(sess); }
  ~client() { be.close_session(sess); }
};

void run(benchmark::State& state, bool set) {
  engine& e = shared_engine();
  client c(*e.backend);
  kv::pipeline_service core = e.core;  // each thread its own copy of the handle, as each connection has
  // Threads walk the keys from different offsets (as 50 redis-benchmark clients hit random keys).
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * 7919;
  for (auto _ : state) {
    const std::string_view key = e.keys[i++ % e.keys.size()];
    const std::string_view get_args[] = {"GET", key};
    const std::string_view set_args[] = {"SET", key, "xxx"};
    const std::span<const std::string_view> args = set ? std::span<const std::string_view>(set_args)
                                                       : std::span<const std::string_view>(get_args);
    c.ctx.reset_for_next_request();
    kv::request req{c.ctx, c.sess, args, c.builder};
    auto r = kv::dispatch_now(core, req);
    if (!r || !*r) state.SkipWithError("the core's fast path declined or failed");
    c.out.clear();
  }
  state.SetItemsProcessed(state.iterations());
}

void bm_get(benchmark::State& state) { run(state, false); }
void bm_set(benchmark::State& state) { run(state, true); }

void setup(const benchmark::State&) { shared_engine(); }

BENCHMARK(bm_get)->Setup(setup)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();
BENCHMARK(bm_set)->Setup(setup)->Threads(1)->Threads(2)->Threads(4)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
