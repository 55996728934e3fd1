#include <turret/middleware/metrics.hpp>
#include <turret/config.hpp>
#include <turret/metrics.hpp>

#include <cmath>
#include <map>
#include <string>
#include <tuple>

namespace turret {

namespace {

constexpr std::string_view requests_name = "turret_layer_requests_total";
constexpr std::string_view duration_name = "turret_layer_duration_seconds";

/// "pipeline[2]" -> "2"; "pipelines.edge[10]" -> "10"; anything else -> the path itself.
std::string position_of(const std::string& path) {
  const auto open = path.rfind('[');
  if (open != std::string::npos && !path.empty() && path.back() == ']')
    return path.substr(open + 1, path.size() - open - 2);
  return path;
}

/// Lower case, [a-z0-9_-] kept, anything else '_': an INFO field name.
std::string info_name(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c >= 'A' && c <= 'Z') out.push_back(static_cast<char>(c - 'A' + 'a'));
    else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-') out.push_back(ch);
    else out.push_back('_');
  }
  return out;
}

}  // namespace

metrics_config parse_metrics_config(const config_node& entry) {
  entry.reject_unknown_keys({"layer", "name", "latency"});
  metrics_config cfg;
  if (entry.has("name")) {
    const config_node n = entry.child("name");
    cfg.name = n.as_string();
    if (cfg.name.empty()) n.fail("name must not be empty");
  } else {
    cfg.name = position_of(entry.path());
  }
  cfg.latency = entry.get_bool("latency", true);
  return cfg;
}

namespace detail {

void metrics_shared::record_failure(const error_code& ec, clock::time_point start,
                                    clock::time_point deadline) const noexcept {
  const bool deadline_passed = deadline != clock::time_point::max() &&
                               (timing.fast() ? std::chrono::steady_clock::now() : timing.source()->now()) >= deadline;
  const errc c = classify(ec, deadline_passed).value_or(errc::internal);
  failed[static_cast<std::size_t>(c)]->inc();
  observe_since(start);
}

}  // namespace detail

metrics_layer::metrics_layer(metrics_config cfg, const layer_context& ctx) : cfg_(std::move(cfg)) {
  auto sh = std::make_shared<detail::metrics_shared>(ctx.clk);
  sh->latency = cfg_.latency;
  auto& requests = ctx.metrics().counter(
      requests_name, "Requests through a metrics layer (outcome: ok, error reply, or the pipeline error's condition)",
      {"pipeline", "layer", "outcome"});
  sh->ok = &requests.with({ctx.pipeline_name, cfg_.name, "ok"});
  sh->error = &requests.with({ctx.pipeline_name, cfg_.name, "error"});
  for (errc c : all_conditions) sh->failed[static_cast<std::size_t>(c)] = &requests.with({ctx.pipeline_name, cfg_.name, to_string(c)});
  if (cfg_.latency) {
    sh->duration = &ctx.metrics()
                        .histogram(duration_name, "Time from a metrics layer's ready() to its inner call's completion",
                                   {"pipeline", "layer"})
                        .with({ctx.pipeline_name, cfg_.name});
  }
  shared_ = std::move(sh);
}

std::string pipelines_info(const metrics::registry& reg) {
  const auto* requests = reg.find_counter(requests_name);
  if (requests == nullptr) return {};
  struct row {
    std::uint64_t ok = 0, error = 0, failed = 0;
    double seconds = 0;
  };
  std::map<std::pair<std::string, std::string>, row> rows;  // (pipeline, layer), sorted
  requests->for_each([&](const std::vector<std::string>& labels, const metrics::counter& c) {
    row& r = rows[{labels[0], labels[1]}];
    const std::uint64_t v = c.value();
    if (labels[2] == "ok") r.ok += v;
    else if (labels[2] == "error") r.error += v;
    else r.failed += v;
  });
  if (const auto* durations = reg.find_histogram(duration_name)) {
    durations->for_each([&](const std::vector<std::string>& labels, const metrics::histogram& h) {
      auto it = rows.find({labels[0], labels[1]});
      if (it != rows.end()) it->second.seconds = h.collect().sum;
    });
  }
  std::string out;
  for (const auto& [key, r] : rows) {
    out += "layer_" + info_name(key.first) + "_" + info_name(key.second) + ":requests=" +
           std::to_string(r.ok + r.error + r.failed) + ",ok=" + std::to_string(r.ok) +
           ",error=" + std::to_string(r.error) + ",failed=" + std::to_string(r.failed) +
           ",usec=" + std::to_string(static_cast<std::uint64_t>(std::llround(r.seconds * 1e6))) + "\r\n";
  }
  return out;
}

}  // namespace turret
