#include <services/grpc/grpc_options.hpp>

namespace turret::grpc_frontend {

grpc_options parse_grpc_options(const config_node& node) {
  grpc_options o;
  if (node.is_null()) return o;
  node.expect_map();
  node.reject_unknown_keys({"max_receive_message_size", "max_send_message_size", "max_concurrent_streams",
                            "subscribe_buffer", "scan_batch", "health", "reflection"});
  auto size_in = [&](std::string_view key, std::size_t def, std::uint64_t min, std::uint64_t max) -> std::size_t {
    if (!node.has(key)) return def;
    const auto n = node.required(key);
    const auto v = n.as_size();
    if (v < min || v > max) n.fail("must be between " + std::to_string(min) + " and " + std::to_string(max));
    return static_cast<std::size_t>(v);
  };
  o.max_receive_message_size = size_in("max_receive_message_size", o.max_receive_message_size, 1024, INT32_MAX);
  o.max_send_message_size = size_in("max_send_message_size", o.max_send_message_size, 1024, INT32_MAX);
  o.max_concurrent_streams =
      static_cast<std::size_t>(node.get_int("max_concurrent_streams", 1000, 1, INT32_MAX));
  o.subscribe_buffer = static_cast<std::size_t>(node.get_int("subscribe_buffer", 1024, 1, 1'000'000'000));
  o.scan_batch = static_cast<std::size_t>(node.get_int("scan_batch", 100, 1, 1'000'000));
  o.health = node.get_bool("health", true);
  o.reflection = node.get_bool("reflection", true);
  return o;
}

}  // namespace turret::grpc_frontend
