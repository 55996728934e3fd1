#pragma once
// Options of one gRPC listener: the `grpc:` section of a `protocol: grpc` listener in turretd's YAML.
//
//   grpc:
//     max_receive_message_size: 4mb   # largest request message (larger: RESOURCE_EXHAUSTED)
//     max_send_message_size: 4mb      # largest response message (larger: RESOURCE_EXHAUSTED)
//     max_concurrent_streams: 1000    # HTTP/2 streams per connection (calls beyond wait in the client)
//     subscribe_buffer: 1024          # messages queued per Subscribe stream before it ends with RESOURCE_EXHAUSTED
//     scan_batch: 100                 # default keys examined per Scan batch (Redis COUNT)
//     health: true                    # grpc.health.v1.Health, following the server's readiness
//     reflection: true                # grpc.reflection.v1 and v1alpha ServerReflection
#include <turret/config.hpp>

#include <cstddef>

namespace turret::grpc_frontend {

struct grpc_options {
  std::size_t max_receive_message_size = 4u << 20;
  std::size_t max_send_message_size = 4u << 20;
  std::size_t max_concurrent_streams = 1000;
  std::size_t subscribe_buffer = 1024;
  std::size_t scan_batch = 100;
  bool health = true;
  bool reflection = true;
};

/// Parses a `grpc:` mapping (undefined/null: defaults). Unknown keys and bad values throw turret::config_error.
grpc_options parse_grpc_options(const config_node& node);

}  // namespace turret::grpc_frontend
