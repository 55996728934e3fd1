#pragma once
// Options of one RESP listener: the `resp:` section of a `protocol: resp` listener in turretd's YAML.
// Names and defaults follow redis.conf (7.0):
//
//   resp:
//     maxclients: 10000                   # connections beyond this get "-ERR max number of clients reached"
//     timeout: 0                          # idle client timeout (2s, 5m or integer seconds); 0 = never; pub/sub exempt
//     tcp_nodelay: true                   # TCP_NODELAY on every accepted socket
//     proto_max_bulk_len: 512mb           # largest bulk argument
//     client_query_buffer_limit: 1gb      # largest pending (unparsed) input of one client
//     client_output_buffer_limit_pubsub:  # a subscriber that does not read is closed when its pending output
//       hard: 32mb                        #   exceeds `hard`, or stays above `soft` for `soft_seconds`
//       soft: 8mb
//       soft_seconds: 60
#include <turret/config.hpp>

#include <chrono>
#include <cstddef>

namespace turret::resp_frontend {

/// Redis's `client-output-buffer-limit <class> <hard> <soft> <soft-seconds>`; 0 disables a limit.
struct output_buffer_limit {
  std::size_t hard = 0;
  std::size_t soft = 0;
  std::chrono::seconds soft_seconds{0};
  bool operator==(const output_buffer_limit&) const = default;
};

/// Everything but tcp_nodelay is server-wide in Redis (CONFIG GET/SET maxclients, timeout, proto-max-bulk-len,
/// client-query-buffer-limit, client-output-buffer-limit): turretd copies these values into the store's
/// parameters at start-up (every resp listener must agree), and connections read the live values from
/// the backend's limits(), so CONFIG SET takes effect at once.
struct resp_options {
  std::size_t maxclients = 10000;
  std::chrono::milliseconds timeout{0};
  bool tcp_nodelay = true;
  std::size_t proto_max_bulk_len = 512ull * 1024 * 1024;
  std::size_t client_query_buffer_limit = 1024ull * 1024 * 1024;
  output_buffer_limit pubsub_limit{32ull * 1024 * 1024, 8ull * 1024 * 1024, std::chrono::seconds(60)};
  bool operator==(const resp_options&) const = default;
};

/// Parses a `resp:` mapping (an undefined/null node gives the defaults). Unknown keys and bad values throw
/// turret::config_error naming file, line and key.
resp_options parse_resp_options(const config_node& node);

}  // namespace turret::resp_frontend
