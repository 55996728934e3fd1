#include <turret/middleware/hedge.hpp>
#include <turret/config.hpp>
#include <turret/metrics.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

namespace turret {

hedge_config parse_hedge_config(const config_node& entry) {
  entry.reject_unknown_keys({"layer", "delay", "percentile", "max_hedges", "min_samples"});
  hedge_config cfg;
  if (entry.has("delay")) {
    const config_node d = entry.child("delay");
    cfg.delay = d.as_duration();
    if (*cfg.delay <= std::chrono::nanoseconds::zero()) d.fail("delay must be greater than 0");
  }
  if (entry.has("percentile")) {
    const config_node p = entry.child("percentile");
    if (cfg.delay) p.fail("give either 'delay' or 'percentile', not both");
    cfg.percentile = p.as_double();
    if (!(*cfg.percentile > 0 && *cfg.percentile < 100)) p.fail("percentile must be between 0 and 100 (exclusive)");
  }
  if (!cfg.delay && !cfg.percentile)
    entry.fail("a hedge layer needs 'delay' (e.g. delay: 10ms) or 'percentile' (e.g. percentile: 95)");
  if (entry.has("max_hedges")) cfg.max_hedges = static_cast<unsigned>(entry.child("max_hedges").as_int(1, 10));
  if (entry.has("min_samples")) {
    cfg.min_samples = static_cast<unsigned>(
        entry.child("min_samples").as_int(1, static_cast<std::int64_t>(latency_window::capacity)));
  }
  return cfg;
}

void latency_window::record(std::chrono::nanoseconds d) noexcept {
  const std::uint64_t n = count_.fetch_add(1, std::memory_order_relaxed) + 1;
  ring_[(n - 1) % capacity].store(d.count(), std::memory_order_relaxed);
  if (n < min_samples_) return;
  if (n != min_samples_ && n % recompute_every != 0) return;
  std::unique_lock lock(recompute_, std::try_to_lock);
  if (!lock.owns_lock()) return;
  const std::size_t size = static_cast<std::size_t>(std::min<std::uint64_t>(n, capacity));
  std::vector<std::int64_t> v(size);
  for (std::size_t i = 0; i < size; ++i) v[i] = ring_[i].load(std::memory_order_relaxed);
  // Nearest rank: the smallest value with at least percentile% of the samples at or below it.
  const auto rank = static_cast<std::size_t>(std::ceil(percentile_ / 100.0 * static_cast<double>(size)));
  const std::size_t k = std::clamp<std::size_t>(rank, 1, size) - 1;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  current_.store(v[k], std::memory_order_relaxed);
}

namespace detail {
void hedge_shared::count_hedge() const noexcept {
  if (hedges) hedges->inc();
}
}  // namespace detail

hedge_layer::hedge_layer(hedge_config cfg, const layer_context& ctx) {
  auto sh = std::make_shared<detail::hedge_shared>();
  sh->clk = ctx.clk;
  if (cfg.percentile) sh->latencies = std::make_unique<latency_window>(*cfg.percentile, cfg.min_samples);
  sh->cfg = std::move(cfg);
  sh->hedges = &ctx.metrics()
                    .counter("turret_hedge_requests_total", "Hedged attempts sent by hedge layers", {"pipeline"})
                    .with({ctx.pipeline_name});
  shared_ = std::move(sh);
}

}  // namespace turret
