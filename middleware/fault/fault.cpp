#include <turret/middleware/fault.hpp>
#include <turret/config.hpp>
#include <turret/metrics.hpp>

#include <random>
#include <string>

namespace turret {

namespace {

class fault_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "turret.fault"; }
  std::string message(int ev) const override {
    switch (static_cast<fault_errc>(ev)) {
      case fault_errc::unavailable:
      case fault_errc::overloaded:
      case fault_errc::timeout:
      case fault_errc::internal: return "injected fault";
    }
    return "unknown fault error";
  }
  boost::system::error_condition default_error_condition(int ev) const noexcept override {
    switch (static_cast<fault_errc>(ev)) {
      case fault_errc::unavailable: return make_error_condition(errc::unavailable);
      case fault_errc::overloaded: return make_error_condition(errc::overloaded);
      case fault_errc::timeout: return make_error_condition(errc::timed_out);
      case fault_errc::internal: return make_error_condition(errc::internal);
    }
    return {ev, *this};
  }
};

constexpr std::pair<std::string_view, fault_errc> abort_errors[] = {
    {"unavailable", fault_errc::unavailable},
    {"overloaded", fault_errc::overloaded},
    {"timeout", fault_errc::timeout},
    {"internal", fault_errc::internal},
};

double parse_percent(const config_node& spec) {
  const config_node p = spec.required("percent");
  const double v = p.as_double();
  if (!(v >= 0 && v <= 100)) p.fail("percent must be between 0 and 100 (fractions allowed, e.g. 0.5)");
  return v;
}

std::uint64_t random_seed() {
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

}  // namespace

const boost::system::error_category& fault_category() noexcept {
  static const fault_category_impl instance;
  return instance;
}

std::string_view to_string(fault_errc e) noexcept {
  for (const auto& [name, v] : abort_errors) {
    if (v == e) return name;
  }
  return "unknown";
}

fault_config parse_fault_config(const config_node& entry) {
  entry.reject_unknown_keys({"layer", "delay", "abort"});
  fault_config cfg;
  if (entry.has("delay")) {
    const config_node d = entry.child("delay");
    if (!d.is_map()) d.fail("expected a mapping, e.g. {duration: 100ms, percent: 50}");
    d.reject_unknown_keys({"duration", "percent"});
    fault_config::delay_fault f;
    const config_node dur = d.required("duration");
    f.duration = dur.as_duration();
    if (f.duration <= std::chrono::nanoseconds::zero()) dur.fail("duration must be greater than 0");
    f.percent = parse_percent(d);
    cfg.delay = f;
  }
  if (entry.has("abort")) {
    const config_node a = entry.child("abort");
    if (!a.is_map()) a.fail("expected a mapping, e.g. {percent: 10, error: unavailable}");
    a.reject_unknown_keys({"error", "percent", "phase"});
    fault_config::abort_fault f;
    const config_node e = a.required("error");
    const std::string name = e.as_string();
    bool found = false;
    for (const auto& [n, v] : abort_errors) {
      if (n == name) {
        f.error = v;
        found = true;
      }
    }
    if (!found) e.fail("unknown error '" + name + "' (expected unavailable, overloaded, timeout or internal)");
    f.percent = parse_percent(a);
    if (a.has("phase")) {
      const config_node ph = a.child("phase");
      const std::string when = ph.as_string();
      if (when == "request")
        f.when = fault_config::phase::request;
      else if (when == "response")
        f.when = fault_config::phase::response;
      else
        ph.fail("unknown phase '" + when + "' (expected request or response)");
    }
    cfg.abort = f;
  }
  if (!cfg.delay && !cfg.abort)
    entry.fail("a fault layer needs 'delay' and/or 'abort', e.g. abort: {percent: 10, error: unavailable}");
  return cfg;
}

namespace detail {

fault_dice::fault_dice(double percent, std::uint64_t salt_value) noexcept : enabled(percent > 0), salt(salt_value) {
  if (percent >= 100) {
    always = true;
  } else if (enabled) {
    // 2^64 * percent / 100, exact to double precision (53 bits: a share finer than 1e-14 percent is not needed).
    threshold = static_cast<std::uint64_t>(percent / 100.0 * 18446744073709551616.0);
  }
}

void fault_shared::count_delay() const noexcept {
  if (delays) delays->inc();
}
void fault_shared::count_abort() const noexcept {
  if (aborts) aborts->inc();
}

}  // namespace detail

fault_layer::fault_layer(fault_config cfg, const layer_context& ctx, std::optional<std::uint64_t> seed) {
  auto sh = std::make_shared<detail::fault_shared>();
  const std::uint64_t s = seed ? *seed : random_seed();
  sh->cfg = cfg;
  sh->clk = ctx.clk;
  if (cfg.delay) sh->delay = detail::fault_dice(cfg.delay->percent, request_context::mix64(s));
  if (cfg.abort) {
    sh->abort = detail::fault_dice(cfg.abort->percent, request_context::mix64(s ^ 0x5bd1e9955bd1e995ULL));
    sh->abort_error = cfg.abort->error;
    sh->abort_after_inner = cfg.abort->when == fault_config::phase::response;
  }
  auto& family = ctx.metrics().counter("turret_fault_injected_total",
                                       "Faults injected by fault layers (kind: delay or abort)", {"pipeline", "kind"});
  sh->delays = &family.with({ctx.pipeline_name, "delay"});
  sh->aborts = &family.with({ctx.pipeline_name, "abort"});
  shared_ = std::move(sh);
}

}  // namespace turret
