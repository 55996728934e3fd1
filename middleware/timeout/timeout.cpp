#include <turret/middleware/timeout.hpp>
#include <turret/config.hpp>
#include <turret/error.hpp>

#include <string>

namespace turret {

namespace {
class timeout_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "turret.timeout"; }
  std::string message(int ev) const override {
    switch (static_cast<timeout_errc>(ev)) {
      case timeout_errc::elapsed: return "request timed out";
    }
    return "unknown timeout error";
  }
  /// Every timeout error is the condition turret::errc::timed_out (turret/error.hpp).
  boost::system::error_condition default_error_condition(int ev) const noexcept override {
    if (static_cast<timeout_errc>(ev) == timeout_errc::elapsed) return make_error_condition(errc::timed_out);
    return {ev, *this};
  }
};
}  // namespace

const boost::system::error_category& timeout_category() noexcept {
  static const timeout_category_impl instance;
  return instance;
}

timeout_config parse_timeout_config(const config_node& entry) {
  entry.reject_unknown_keys({"layer", "duration"});
  timeout_config cfg;
  const config_node d = entry.required("duration");
  cfg.duration = d.as_duration();
  if (cfg.duration <= std::chrono::nanoseconds::zero()) d.fail("duration must be greater than 0");
  return cfg;
}

}  // namespace turret
