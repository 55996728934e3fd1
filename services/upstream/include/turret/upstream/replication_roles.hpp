#pragma once
// Replication roles for replicas mode (replicas_backend.hpp): what one `INFO replication` says about an endpoint,
// and which endpoints then take writes and reads. Pure functions: the backend observes, these decide.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace turret::upstream {

/// One endpoint as its last `INFO replication` described it.
struct replication_info {
  bool reachable = false;  ///< it answered (within the refresh timeout) and has not failed since
  bool master = false;     ///< role:master (else role:slave)
  bool link_up = false;    ///< role:slave: master_link_status:up
  std::uint64_t master_repl_offset = 0;
  std::uint64_t slave_repl_offset = 0;  ///< role:slave: the offset it has processed
  std::size_t connected_slaves = 0;     ///< role:master
};

/// Parses the text of `INFO replication` (lines "key:value", CRLF or LF). nullopt when it has no `role:` line.
/// reachable is set.
std::optional<replication_info> parse_replication_info(std::string_view text);

/// Who serves what, by endpoint index.
struct role_assignment {
  static constexpr std::size_t none = static_cast<std::size_t>(-1);
  std::size_t primary = none;  ///< the endpoint writes go to; none: writes fail (no primary)
  std::vector<bool> reads;     ///< the endpoints reads are balanced over
  enum class read_tier { replicas, primary, stale_replicas, none };
  read_tier tier = read_tier::none;
  std::vector<std::uint64_t> lag;  ///< replicas: bytes behind the primary (0 without a primary)
};

/// Decides from the endpoints' last observations:
/// - primary: a reachable master; among several, `current` if it is one of them (no flapping), else the one with
///   the most connected replicas, else the first listed.
/// - reads, in the first tier that has an endpoint: (replicas) reachable replicas whose link is up and whose lag
///   (the primary's master_repl_offset minus their slave_repl_offset; 0 without a primary) is at most `max_lag`;
///   (primary) the primary; (stale_replicas) reachable replicas whatever their link (the primary is gone: stale data
///   rather than none); else none.
role_assignment assign_roles(const std::vector<replication_info>& endpoints, std::size_t current,
                             std::uint64_t max_lag);

/// "replicas" | "primary" | "stale_replicas" | "none".
std::string_view to_string(role_assignment::read_tier t) noexcept;

}  // namespace turret::upstream
