#include <turret/layer_context.hpp>
#include <turret/metrics.hpp>

#include <spdlog/spdlog.h>

namespace turret {

metrics::registry& layer_context::metrics() const noexcept {
  return metric_registry ? *metric_registry : metrics::default_registry();
}

std::string layer_context::state_key(const config_node& entry) const {
  std::string key = pipeline_name;
  key += '\n';
  key += entry.path();
  key += '\n';
  key += canonical_text(entry.yaml());  // the same for the same entry however it is written
  return key;
}

spdlog::logger& layer_context::log() const noexcept { return logger ? *logger : *spdlog::default_logger_raw(); }

}  // namespace turret
