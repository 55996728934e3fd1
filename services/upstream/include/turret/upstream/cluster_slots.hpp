#pragma once
// What a Redis Cluster says about itself, parsed for cluster mode (cluster_backend.hpp): the slot map of
// `CLUSTER SLOTS` and the redirections of `-MOVED` and `-ASK` error replies. Pure functions: the backend asks,
// these read.
#include <turret/resp/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace turret::upstream {

/// Redis Cluster's number of hash slots.
inline constexpr std::size_t cluster_slot_count = 16384;

/// A node's client address.
struct cluster_address {
  std::string host;
  std::uint16_t port = 0;
  /// "host:port" ("[host]:port" for an IPv6 address).
  std::string name() const;
  friend bool operator==(const cluster_address&, const cluster_address&) = default;
};

/// One range of `CLUSTER SLOTS`: slots first..last, served by `primary`, replicated by `replicas` (in the order the
/// node listed them).
struct cluster_slot_range {
  std::uint16_t first = 0, last = 0;
  cluster_address primary;
  std::vector<cluster_address> replicas;
};

/// Parses `CLUSTER SLOTS`' reply (Redis 7: [first, last, [host, port, id, {metadata}], [replica...]...] per range).
/// A node listed with an empty host ("" or "?": the node does not know its own address) gets `asked_host`, the
/// host the command was sent to. nullopt when the reply does not have this shape (an error reply, slots outside
/// 0..16383, a port outside 1..65535).
std::optional<std::vector<cluster_slot_range>> parse_cluster_slots(const resp::value& reply,
                                                                   std::string_view asked_host);

/// A redirection: `-MOVED <slot> <host>:<port>` (the slot lives there now) or `-ASK <slot> <host>:<port>` (this
/// one command goes there, preceded by ASKING). An empty host (Redis 7 sends `:port` when the node's address is
/// unknown) is left empty: the caller fills in the host it asked.
struct cluster_redirect {
  bool moved = false;  ///< MOVED (else ASK)
  std::uint16_t slot = 0;
  cluster_address to;
};

/// The redirection an error reply's text asks for ("MOVED 3999 127.0.0.1:6381"); nullopt for any other error.
std::optional<cluster_redirect> parse_redirect(std::string_view error_text);

}  // namespace turret::upstream
