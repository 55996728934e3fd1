#include <turret/middleware/load_balance.hpp>
#include <turret/config.hpp>
#include <turret/error.hpp>
#include <turret/runtime.hpp>

#include <set>
#include <string>

namespace turret {

namespace {

class load_balance_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "turret.load_balance"; }
  std::string message(int ev) const override {
    switch (static_cast<lb_errc>(ev)) {
      case lb_errc::no_endpoint: return "no endpoint available";
    }
    return "unknown load_balance error";
  }
  boost::system::error_condition default_error_condition(int ev) const noexcept override {
    if (static_cast<lb_errc>(ev) == lb_errc::no_endpoint) return make_error_condition(errc::unavailable);
    return {ev, *this};
  }
};

std::chrono::nanoseconds positive_duration(const config_node& map, std::string_view key, std::chrono::nanoseconds def) {
  if (!map.has(key)) return def;
  const config_node n = map.child(key);
  const auto d = n.as_duration();
  if (d <= std::chrono::nanoseconds::zero()) n.fail("must be greater than 0");
  return d;
}

// An options block: a mapping of known keys, only allowed with its own policy.
config_node options_block(const config_node& entry, std::string_view key, std::string_view example,
                          std::initializer_list<std::string_view> keys) {
  const config_node b = entry.child(key);
  if (b.is_null()) return b;
  if (!b.is_map()) b.fail("expected a mapping, e.g. " + std::string(example));
  b.reject_unknown_keys(keys);
  return b;
}

void parse_p2c(const config_node& b, lb_config::p2c_options& o) {
  if (b.is_null()) return;
  if (b.has("load")) {
    const config_node l = b.child("load");
    const std::string v = l.as_string();
    if (v == "peak_ewma") o.load = lb_config::load_metric::peak_ewma;
    else if (v == "pending") o.load = lb_config::load_metric::pending;
    else l.fail("unknown load '" + v + "' (expected peak_ewma or pending)");
  }
  o.decay = positive_duration(b, "decay", o.decay);
  o.default_rtt = positive_duration(b, "default_rtt", o.default_rtt);
}

}  // namespace

const boost::system::error_category& load_balance_category() noexcept {
  static const load_balance_category_impl instance;
  return instance;
}

lb_config parse_load_balance_config(const config_node& entry) {
  entry.reject_unknown_keys({"layer", "policy", "p2c", "ring_hash", "maglev", "outlier", "health_check", "endpoints"});
  lb_config cfg;
  if (entry.has("policy")) {
    const config_node p = entry.child("policy");
    const std::string v = p.as_string();
    bool found = false;
    for (auto pol : {lb_config::policy::p2c, lb_config::policy::round_robin, lb_config::policy::ring_hash,
                     lb_config::policy::maglev}) {
      if (to_string(pol) == v) {
        cfg.pol = pol;
        found = true;
      }
    }
    if (!found) p.fail("unknown policy '" + v + "' (expected p2c, round_robin, ring_hash or maglev)");
  }
  // p2c options also apply to the keyed policies' requests without a key.
  parse_p2c(options_block(entry, "p2c", "{load: peak_ewma, decay: 10s}", {"load", "decay", "default_rtt"}), cfg.p2c);
  if (cfg.pol == lb_config::policy::round_robin && entry.has("p2c"))
    entry.child("p2c").fail("p2c options with policy round_robin (they apply to p2c, ring_hash and maglev)");

  const config_node ring = options_block(entry, "ring_hash", "{vnodes: 160}", {"vnodes", "failover", "hash_tag"});
  if (!ring.is_null()) {
    if (cfg.pol != lb_config::policy::ring_hash)
      ring.fail("ring_hash options with policy " + std::string(to_string(cfg.pol)));
    cfg.ring_hash.vnodes = static_cast<std::size_t>(ring.get_int("vnodes", 160, 1, 100000));
    cfg.ring_hash.failover = ring.get_bool("failover", true);
    cfg.ring_hash.hash_tag = ring.get_bool("hash_tag", false);
  }
  const config_node mag =
      options_block(entry, "maglev", "{table_size: 65537}", {"table_size", "failover", "hash_tag"});
  if (!mag.is_null()) {
    if (cfg.pol != lb_config::policy::maglev) mag.fail("maglev options with policy " + std::string(to_string(cfg.pol)));
    if (mag.has("table_size")) {
      const config_node t = mag.child("table_size");
      cfg.maglev.table_size = static_cast<std::size_t>(t.as_int(2, 100000007));
      if (!is_prime(cfg.maglev.table_size)) t.fail("table_size must be a prime (e.g. 65537, 655373)");
    }
    cfg.maglev.failover = mag.get_bool("failover", true);
    cfg.maglev.hash_tag = mag.get_bool("hash_tag", false);
  }

  const config_node out = options_block(
      entry, "outlier", "{consecutive_failures: 5, base_ejection: 30s}",
      {"consecutive_failures", "base_ejection", "max_ejection", "max_ejected_percent"});
  if (!out.is_null()) {
    lb_config::outlier_options o;
    o.consecutive_failures = static_cast<std::uint32_t>(out.get_int("consecutive_failures", 5, 1, 1000000));
    o.base_ejection = positive_duration(out, "base_ejection", o.base_ejection);
    o.max_ejection = positive_duration(out, "max_ejection", std::max(o.max_ejection, o.base_ejection));
    if (o.max_ejection < o.base_ejection) out.child("max_ejection").fail("must be at least base_ejection");
    if (out.has("max_ejected_percent")) {
      const config_node m = out.child("max_ejected_percent");
      o.max_ejected_percent = m.as_double();
      if (!(o.max_ejected_percent >= 0 && o.max_ejected_percent <= 100)) m.fail("must be between 0 and 100");
    }
    cfg.outlier = o;
  }

  const config_node hc = options_block(entry, "health_check", "{interval: 5s, timeout: 1s}",
                                       {"interval", "timeout", "unhealthy", "healthy"});
  if (!hc.is_null()) {
    lb_config::health_check_options h;
    h.interval = positive_duration(hc, "interval", h.interval);
    h.timeout = positive_duration(hc, "timeout", h.timeout);
    h.unhealthy = static_cast<std::uint32_t>(hc.get_int("unhealthy", 3, 1, 1000));
    h.healthy = static_cast<std::uint32_t>(hc.get_int("healthy", 2, 1, 1000));
    cfg.health_check = h;
  }
  return cfg;
}

lb_endpoints_spec parse_load_balance_endpoints(const config_node& entry) {
  // config_node is built by copy, never assigned: assigning a YAML::Node rebinds what it refers to.
  using kind = lb_endpoints_spec::kind;
  if (!entry.has("endpoints")) return lb_endpoints_spec{kind::provided, "", 0, {}, entry};  // the host's default set
  const config_node e = entry.child("endpoints");
  if (e.is_sequence()) {
    lb_endpoints_spec spec{kind::listed, "", 0, {}, e};
    if (e.size() == 0) e.fail("at least one endpoint is required");
    std::set<std::string, std::less<>> names;
    for (std::size_t i = 0; i < e.size(); ++i) {
      const config_node ep = e.at(i);
      if (!ep.is_map()) ep.fail("expected a mapping, e.g. {name: a, pipeline: [{layer: timeout, duration: 1s}]}");
      ep.reject_unknown_keys({"name", "pipeline"});
      std::string name = ep.has("name") ? ep.child("name").as_string() : std::to_string(i);
      if (name.empty()) ep.child("name").fail("an endpoint name must not be empty");
      if (!names.insert(name).second) {
        if (ep.has("name")) ep.child("name").fail("duplicate endpoint name '" + name + "'");
        ep.fail("duplicate endpoint name '" + name + "'");
      }
      const config_node pipeline = ep.child("pipeline");
      pipeline.expect_sequence();
      spec.listed.push_back(lb_endpoints_spec::listed_endpoint{std::move(name), pipeline});
    }
    return spec;
  }
  if (!e.is_scalar()) e.fail("expected a count (e.g. 2), a list of {name, pipeline} or an endpoint set's name");
  const std::string text = e.as_string();
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos)
    return lb_endpoints_spec{kind::replicas, "", static_cast<std::size_t>(e.as_int(1, 1024)), {}, e};
  return lb_endpoints_spec{kind::provided, text, 0, {}, e};
}

load_balance_layer::load_balance_layer(lb_config cfg, const layer_context& ctx, std::shared_ptr<lb_state> state,
                                       std::size_t replicas)
    : cfg_(std::make_shared<const lb_config>(std::move(cfg))),
      state_(state ? std::move(state) : std::make_shared<lb_state>()),
      clk_(ctx.clk),
      metrics_(&ctx.metrics()),
      pipeline_(ctx.pipeline_name),
      replicas_(replicas) {
  if (ctx.rt) default_executor_ = ctx.rt->executor(0);
}

}  // namespace turret
