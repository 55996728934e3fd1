// resolve(): what the RESP front end pays per request to carry the command's metadata and keys on the request
// (one table lookup, which the core then skips, plus key extraction). Run: build/bench/command_info_bench
#include <turret/kv/command_table.hpp>
#include <turret/kv/command_info.hpp>

#include <benchmark/benchmark.h>

#include <string>
#include <string_view>
#include <vector>

namespace {

using turret::kv::command_table;

const command_table& table() {
  static const auto t = command_table::make_default();
  return *t;
}

void run(benchmark::State& state, const std::vector<std::string_view>& args) {
  const command_table& t = table();
  for (auto _ : state) {
    auto r = turret::kv::resolve(t, args);
    benchmark::DoNotOptimize(r.keys.refs.data());
  }
}

void bm_resolve_get(benchmark::State& state) { run(state, {"GET", "key:000000000042"}); }
void bm_resolve_set(benchmark::State& state) { run(state, {"SET", "key:000000000042", "xxx"}); }
void bm_resolve_mset10(benchmark::State& state) {
  std::vector<std::string> owned;
  for (int i = 0; i < 10; ++i) {
    owned.push_back("key:" + std::to_string(i));
    owned.push_back("value");
  }
  std::vector<std::string_view> args = {"MSET"};
  for (const auto& s : owned) args.push_back(s);
  run(state, args);
}
// MSET with 4 keys: within the inline capacity.
void bm_resolve_mset4(benchmark::State& state) {
  run(state, {"MSET", "key:0", "v", "key:1", "v", "key:2", "v", "key:3", "v"});
}
// The lookup alone (what the front end did before: command_table::find for the metrics label).
void bm_find_get(benchmark::State& state) {
  const command_table& t = table();
  for (auto _ : state) benchmark::DoNotOptimize(t.find("GET"));
}
// The slot of a resolved GET (computed lazily, on first use).
void bm_resolve_get_slot(benchmark::State& state) {
  const command_table& t = table();
  const std::vector<std::string_view> args = {"GET", "key:000000000042"};
  for (auto _ : state) {
    auto r = turret::kv::resolve(t, args);
    benchmark::DoNotOptimize(r.slot());
  }
}

BENCHMARK(bm_resolve_get);
BENCHMARK(bm_resolve_set);
BENCHMARK(bm_resolve_mset4);
BENCHMARK(bm_resolve_mset10);
BENCHMARK(bm_find_get);
BENCHMARK(bm_resolve_get_slot);

}  // namespace

BENCHMARK_MAIN();
