#include <services/http/http_options.hpp>

namespace turret::http_frontend {
namespace {

std::chrono::milliseconds ms(duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d); }

}  // namespace

http_options parse_http_options(const config_node& node) {
  http_options o;
  if (node.is_null()) return o;
  node.expect_map();
  node.reject_unknown_keys({"max_connections", "max_header_bytes", "max_uri_bytes", "max_body_bytes", "idle_timeout",
                            "header_timeout", "body_timeout", "sse_buffer_bytes", "sse_keepalive", "tcp_nodelay"});
  o.max_connections = static_cast<std::size_t>(node.get_int("max_connections", 10000, 1, 1'000'000));
  auto size_at_least = [&](std::string_view key, std::size_t def, std::size_t min) {
    if (!node.has(key)) return def;
    auto n = node.required(key);
    const auto v = n.as_size();
    if (v < min) n.fail("must be at least " + std::to_string(min) + " bytes");
    return static_cast<std::size_t>(v);
  };
  o.max_header_bytes = size_at_least("max_header_bytes", o.max_header_bytes, 256);
  o.max_uri_bytes = size_at_least("max_uri_bytes", o.max_uri_bytes, 64);
  o.max_body_bytes = size_at_least("max_body_bytes", o.max_body_bytes, 0);
  o.sse_buffer_bytes = size_at_least("sse_buffer_bytes", o.sse_buffer_bytes, 1024);
  o.idle_timeout = ms(node.get_duration("idle_timeout", o.idle_timeout));
  o.header_timeout = ms(node.get_duration("header_timeout", o.header_timeout));
  o.body_timeout = ms(node.get_duration("body_timeout", o.body_timeout));
  o.sse_keepalive = ms(node.get_duration("sse_keepalive", o.sse_keepalive));
  if (o.header_timeout.count() <= 0) node.required("header_timeout").fail("must be > 0 (slow clients must not hold a connection)");
  if (o.body_timeout.count() <= 0) node.required("body_timeout").fail("must be > 0");
  if (o.sse_keepalive.count() <= 0) node.required("sse_keepalive").fail("must be > 0");
  o.tcp_nodelay = node.get_bool("tcp_nodelay", true);
  return o;
}

}  // namespace turret::http_frontend
