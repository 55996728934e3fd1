#include <services/resp/resp_options.hpp>

#include <cctype>

namespace turret::resp_frontend {
namespace {

/// Redis-style seconds: a bare integer means seconds, otherwise a duration ("2s", "500ms", "1m").
std::chrono::milliseconds seconds_or_duration(const config_node& n) {
  const std::string s = n.as_string();
  bool digits = !s.empty();
  for (char c : s) digits = digits && std::isdigit(static_cast<unsigned char>(c));
  if (digits) return std::chrono::seconds(n.as_int(0, 100LL * 365 * 24 * 3600));
  return std::chrono::duration_cast<std::chrono::milliseconds>(n.as_duration());
}

}  // namespace

resp_options parse_resp_options(const config_node& node) {
  resp_options o;
  if (!node.defined() || node.is_null()) return o;
  node.expect_map();
  node.reject_unknown_keys({"maxclients", "timeout", "tcp_nodelay", "proto_max_bulk_len", "client_query_buffer_limit",
                            "client_output_buffer_limit_pubsub"});
  o.maxclients = static_cast<std::size_t>(node.get_int("maxclients", 10000, 1, 1'000'000));
  if (node.has("timeout")) o.timeout = seconds_or_duration(node.required("timeout"));
  o.tcp_nodelay = node.get_bool("tcp_nodelay", true);
  if (node.has("proto_max_bulk_len")) {
    auto n = node.required("proto_max_bulk_len");
    const auto v = n.as_size();
    if (v < 1024 * 1024) n.fail("must be at least 1mb (as Redis's proto-max-bulk-len)");
    o.proto_max_bulk_len = static_cast<std::size_t>(v);
  }
  if (node.has("client_query_buffer_limit")) {
    auto n = node.required("client_query_buffer_limit");
    const auto v = n.as_size();
    if (v < 1024 * 1024) n.fail("must be at least 1mb (as Redis's client-query-buffer-limit)");
    o.client_query_buffer_limit = static_cast<std::size_t>(v);
  }
  if (node.has("client_output_buffer_limit_pubsub")) {
    auto l = node.child("client_output_buffer_limit_pubsub");
    l.expect_map();
    l.reject_unknown_keys({"hard", "soft", "soft_seconds"});
    o.pubsub_limit.hard = static_cast<std::size_t>(l.get_size("hard", 0));
    o.pubsub_limit.soft = static_cast<std::size_t>(l.get_size("soft", 0));
    o.pubsub_limit.soft_seconds = std::chrono::duration_cast<std::chrono::seconds>(
        l.has("soft_seconds") ? seconds_or_duration(l.required("soft_seconds")) : std::chrono::milliseconds(0));
  }
  return o;
}

}  // namespace turret::resp_frontend
