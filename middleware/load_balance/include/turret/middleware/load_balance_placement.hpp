#pragma once
// Placement of routing keys on endpoints for load_balance's `ring_hash` and `maglev` policies. Sharding (an
// upstream store's `shard` mode) relies on this placement: it is part of turret's documented behaviour, and changing
// any rule below moves keys between shards. Tests pin it (load_balance_placement_test.cpp: known hashes, known owners).
//
// # Hash
// Every hash is XXH64 (xxHash, 64-bit variant, the reference algorithm of github.com/Cyan4973/xxHash) of bytes,
// seed 0 unless stated. A request's routing key (turret::request_routing_key: for a key-value command its first key,
// taken as is: no `{hash tag}` extraction) is hashed to `h = XXH64(key, 0)`.
//
// # Hash tags (`hash_tag: true`, off by default)
// Redis Cluster's rule: when the key has a `{` followed later by a `}` with at least one byte between them, only the
// bytes between the first `{` and the first `}` after it are hashed ("{user1}:a" and "{user1}:b" hash as "user1";
// "foo{}{bar}" and "{}" are hashed whole; "foo{{bar}}" hashes "{bar"). Keys that share a tag share an endpoint.
//
// # Endpoints are identified by name
// Placement depends only on the set of endpoint NAMES and the policy's parameters: never on the order in which the
// endpoints are listed, nor on anything else about them. Endpoints of an upstream store are named "host:port" as
// written in its `endpoints:` list; endpoints of a load_balance entry by their `name:` (default: their index in the
// list, "0", "1", ...). Renaming an endpoint moves its keys; reordering the list moves none. Names are unique.
//
// # ring_hash (Ketama-style consistent hashing, as Envoy's ring_hash with xxHash)
// Each endpoint named N puts `vnodes` points on a 64-bit ring, point j (0 <= j < vnodes) at XXH64("N_j", 0) (the name,
// an underscore, j in decimal). Points are sorted by value (ties, which XXH64 makes vanishingly rare, by endpoint
// name). A key hashing to h belongs to the first point whose value is >= h, wrapping around to the first point.
// Adding one endpoint to N moves about 1/(N+1) of the keys, all of them to the new endpoint.
//
// # maglev (Maglev, Eisenbud et al., NSDI 2016; as Envoy's maglev)
// A lookup table of M entries (M prime, default 65537). Endpoints sorted by name; endpoint N has
// offset = XXH64(N, 0) mod M and skip = XXH64(N, 1) mod (M - 1) + 1, and its preference list is
// (offset + k * skip) mod M, k = 0, 1, ...; the table is filled by the paper's round: each endpoint in name order
// takes its next preferred entry still free, until every entry is taken. A key hashing to h belongs to entry h mod M.
// Every endpoint gets M/N entries within one; adding an endpoint moves slightly more than 1/(N+1) of the keys.
//
// # Failover (`failover: true`)
// When the owner of a key is not available (ejected, failing health checks), the key goes to the next available
// endpoint: ring_hash walks the ring clockwise from the key's point; maglev tries entries h+1, h+2, ... (mod M).
// Keys of available endpoints never move. With `failover: false` a key whose owner is unavailable fails (a shard
// must not answer for another shard's keys).
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace turret {

/// XXH64 of `data` with `seed` (the reference algorithm; e.g. xxhash64("", 0) == 0xEF46DB3751D8E999).
std::uint64_t xxhash64(std::string_view data, std::uint64_t seed = 0) noexcept;

/// The part of `key` that is hashed when hash tags are on (Redis Cluster's rule, above); the whole key otherwise.
constexpr std::string_view hash_tag_of(std::string_view key) noexcept {
  const auto open = key.find('{');
  if (open == std::string_view::npos) return key;
  const auto close = key.find('}', open + 1);
  if (close == std::string_view::npos || close == open + 1) return key;
  return key.substr(open + 1, close - open - 1);
}

/// The hash of a routing key as placed by ring_hash and maglev: xxhash64(key, 0), of its tag with `hash_tag`.
inline std::uint64_t routing_hash(std::string_view key, bool hash_tag = false) noexcept {
  return xxhash64(hash_tag ? hash_tag_of(key) : key, 0);
}

inline constexpr std::size_t no_endpoint_index = std::numeric_limits<std::size_t>::max();

/// The ring of ring_hash. Immutable once built; lookups are thread-safe.
class hash_ring {
 public:
  /// `names[i]` is endpoint i's name (unique); `vnodes` >= 1 points per endpoint.
  hash_ring(const std::vector<std::string>& names, std::size_t vnodes);

  /// The endpoint owning hash `h` (no_endpoint_index when there is no endpoint).
  std::size_t owner(std::uint64_t h) const noexcept;
  /// The first endpoint at or after `h`'s point, clockwise, for which `ok(index)` holds; no_endpoint_index if none.
  template <class Ok>
  std::size_t find(std::uint64_t h, Ok&& ok) const {
    if (points_.empty()) return no_endpoint_index;
    std::size_t at = first_at_or_after(h);
    for (std::size_t n = 0; n < points_.size(); ++n) {
      const std::size_t e = points_[at].endpoint;
      if (ok(e)) return e;
      if (++at == points_.size()) at = 0;
    }
    return no_endpoint_index;
  }
  std::size_t size() const noexcept { return points_.size(); }

 private:
  struct point {
    std::uint64_t hash;
    std::uint32_t endpoint;
  };
  std::size_t first_at_or_after(std::uint64_t h) const noexcept;
  std::vector<point> points_;
};

/// The lookup table of maglev. Immutable once built; lookups are thread-safe.
class maglev_table {
 public:
  /// `names[i]` is endpoint i's name (unique); `size` a prime greater than the number of endpoints.
  maglev_table(const std::vector<std::string>& names, std::size_t size);

  std::size_t owner(std::uint64_t h) const noexcept {
    return table_.empty() ? no_endpoint_index : table_[h % table_.size()];
  }
  /// The endpoint of entry h mod M if `ok(index)`, else of the next entries in turn; no_endpoint_index if none.
  template <class Ok>
  std::size_t find(std::uint64_t h, Ok&& ok) const {
    if (table_.empty()) return no_endpoint_index;
    std::size_t at = h % table_.size();
    for (std::size_t n = 0; n < table_.size(); ++n) {
      const std::size_t e = table_[at];
      if (ok(e)) return e;
      if (++at == table_.size()) at = 0;
    }
    return no_endpoint_index;
  }
  std::size_t size() const noexcept { return table_.size(); }

 private:
  std::vector<std::uint32_t> table_;
};

/// True when n is prime (for maglev's table size).
bool is_prime(std::uint64_t n) noexcept;

}  // namespace turret
