#include <turret/middleware/load_shed.hpp>
#include <turret/config.hpp>
#include <turret/metrics.hpp>

#include <string>

namespace turret {

namespace {

class load_shed_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "turret.load_shed"; }
  std::string message(int ev) const override {
    if (static_cast<load_shed_errc>(ev) == load_shed_errc::overloaded) return "service overloaded: request shed";
    return "unknown load_shed error";
  }
  boost::system::error_condition default_error_condition(int ev) const noexcept override {
    if (static_cast<load_shed_errc>(ev) == load_shed_errc::overloaded) return make_error_condition(errc::overloaded);
    return {ev, *this};
  }
};

}  // namespace

const boost::system::error_category& load_shed_category() noexcept {
  static const load_shed_category_impl instance;
  return instance;
}

load_shed_config parse_load_shed_config(const config_node& entry) {
  entry.reject_unknown_keys({"layer"});
  return {};
}

void detail::load_shed_shared::count_shed() const noexcept {
  if (shed) shed->inc();
}

load_shed_layer::load_shed_layer(load_shed_config, const layer_context& ctx) {
  auto sh = std::make_shared<detail::load_shed_shared>();
  sh->shed = &ctx.metrics()
                  .counter("turret_load_shed_total", "Requests shed by load_shed layers (inner service not ready)",
                           {"pipeline"})
                  .with({ctx.pipeline_name});
  shared_ = std::move(sh);
}

}  // namespace turret
