#include <turret/layer_context.hpp>
#include <turret/metrics.hpp>

#include <spdlog/spdlog.h>

namespace turret {

metrics::registry& layer_context::metrics() const noexcept {
  return metric_registry ? *metric_registry : metrics::default_registry();
}

spdlog::logger& layer_context::log() const noexcept { return logger ? *logger : *spdlog::default_logger_raw(); }

}  // namespace turret
