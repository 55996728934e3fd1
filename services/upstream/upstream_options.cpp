#include <turret/upstream/upstream_options.hpp>
#include <turret/upstream/cluster_backend.hpp>
#include <turret/upstream/replicas_backend.hpp>
#include <turret/upstream/shard_backend.hpp>
#include <turret/middleware/load_balance.hpp>

#include <charconv>

namespace turret::upstream {

namespace {

upstream_options::endpoint parse_endpoint(const config_node& n) {
  const std::string s = n.as_string();
  const auto colon = s.rfind(':');
  unsigned port = 0;
  if (colon == std::string::npos || colon == 0 ||
      std::from_chars(s.data() + colon + 1, s.data() + s.size(), port).ec != std::errc() || port == 0 ||
      port > 65535)
    n.fail("expected HOST:PORT, e.g. 127.0.0.1:7001, not '" + s + "'");
  return {s.substr(0, colon), static_cast<std::uint16_t>(port), s};
}

std::chrono::milliseconds positive_ms(const config_node& n, std::string_view key, std::chrono::milliseconds def) {
  const auto d = n.get_duration(key, def);
  if (d <= duration::zero()) n.child(key).fail("must be greater than 0");
  return std::chrono::duration_cast<std::chrono::milliseconds>(d);
}

/// The pipeline's load_balance entries must suit the mode: shard places keys (ring_hash, maglev); replicas balances
/// reads and cluster balances over one node (p2c, round_robin); the endpoints are always the store's.
void check_balancers(const upstream_options& o) {
  if (o.pipeline.is_null()) return;
  const bool shard = o.mode == upstream_options::mode_kind::shard;
  for (std::size_t i = 0; i < o.pipeline.size(); ++i) {
    const config_node e = o.pipeline.at(i);
    if (!e.is_map() || !e.has("layer") || e.child("layer").as_string() != "load_balance") continue;
    const lb_config cfg = parse_load_balance_config(e);
    const bool keyed = cfg.pol == lb_config::policy::ring_hash || cfg.pol == lb_config::policy::maglev;
    if (shard && !keyed) e.child("policy").fail("shard mode places keys by ring_hash or maglev");
    if (!shard && keyed) {
      e.child("policy").fail(o.mode == upstream_options::mode_kind::cluster
                                 ? "cluster mode places keys by hash slot: its load_balance is p2c or round_robin"
                                 : "replicas mode balances reads by p2c or round_robin");
    }
    if (e.has("endpoints")) {
      e.child("endpoints").fail("the endpoints of " + std::string(to_string(o.mode)) + " mode are the store's "
                                "'endpoints'");
    }
  }
}

}  // namespace

std::string_view to_string(upstream_options::mode_kind m) noexcept {
  switch (m) {
    case upstream_options::mode_kind::replicas: return "replicas";
    case upstream_options::mode_kind::cluster: return "cluster";
    default: return "shard";
  }
}

upstream_options parse_upstream_options(const config_node& n) {
  upstream_options o;
  const std::string mode = n.get_string("mode", "shard");
  if (mode == "replicas") {
    o.mode = upstream_options::mode_kind::replicas;
    n.reject_unknown_keys({"kind", "mode", "endpoints", "connections", "connect_timeout", "pipeline",
                           "refresh_interval", "refresh_timeout", "max_lag"});
  } else if (mode == "cluster") {
    o.mode = upstream_options::mode_kind::cluster;
    n.reject_unknown_keys({"kind", "mode", "endpoints", "connections", "connect_timeout", "pipeline",
                           "refresh_interval", "refresh_timeout", "read_from", "max_redirects"});
  } else if (mode == "shard") {
    n.reject_unknown_keys({"kind", "mode", "endpoints", "connections", "connect_timeout", "pipeline"});
  } else {
    n.child("mode").fail("unknown mode '" + mode + "' (supported: shard, replicas, cluster)");
  }
  const config_node eps = n.required("endpoints");
  eps.expect_sequence();
  if (eps.is_null() || eps.size() == 0) eps.fail("at least one endpoint is required");
  for (std::size_t i = 0; i < eps.size(); ++i) {
    auto e = parse_endpoint(eps.at(i));
    for (const auto& prev : o.endpoints) {
      if (prev.name == e.name) eps.at(i).fail("endpoint '" + e.name + "' is listed twice");
    }
    o.endpoints.push_back(std::move(e));
  }
  o.connections = static_cast<std::size_t>(n.get_int("connections", 1, 1, 64));
  o.connect_timeout = positive_ms(n, "connect_timeout", o.connect_timeout);
  if (o.mode == upstream_options::mode_kind::replicas) {
    o.refresh_interval = positive_ms(n, "refresh_interval", o.refresh_interval);
    o.refresh_timeout = positive_ms(n, "refresh_timeout", o.refresh_timeout);
    o.max_lag = n.get_size("max_lag", o.max_lag);
  }
  if (o.mode == upstream_options::mode_kind::cluster) {
    o.refresh_interval = positive_ms(n, "refresh_interval", o.refresh_interval);
    o.refresh_timeout = positive_ms(n, "refresh_timeout", o.refresh_timeout);
    const std::string from = n.get_string("read_from", "primary");
    if (from != "primary" && from != "replicas") n.child("read_from").fail("expected primary or replicas");
    o.read_from_replicas = from == "replicas";
    o.max_redirects = static_cast<unsigned>(n.get_int("max_redirects", 5, 0, 16));
  }
  if (n.has("pipeline")) {
    o.pipeline = n.child("pipeline");
    o.pipeline.expect_sequence();
  }
  check_balancers(o);
  return o;
}

std::shared_ptr<kv::backend> make_upstream_backend(const upstream_options& opts,
                                                   std::shared_ptr<const kv::command_table> table,
                                                   const kv::layer_registry_type& layers, const layer_context& ctx,
                                                   std::vector<boost::asio::any_io_executor> executors) {
  if (opts.mode == upstream_options::mode_kind::replicas)
    return std::make_shared<replicas_backend>(opts, std::move(table), layers, ctx, std::move(executors));
  if (opts.mode == upstream_options::mode_kind::cluster)
    return std::make_shared<cluster_backend>(opts, std::move(table), layers, ctx, std::move(executors));
  return std::make_shared<shard_backend>(opts, std::move(table), layers, ctx, std::move(executors));
}

}  // namespace turret::upstream
