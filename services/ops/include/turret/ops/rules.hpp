#pragma once
// The input rules of the key-value operations (<turret/ops/operations.hpp>), the same for every operation and
// protocol: a TTL is a positive number of milliseconds; an operation over several keys needs at least one. Each
// returns why a value is refused (the message both APIs answer with), or an empty view when it is acceptable.
//
// Keys, values and channels are any bytes, the empty string included (as in Redis; a gRPC message can carry one).
// REST refuses empty keys and channels by its own rule (router.hpp: a path segment cannot be empty, and its JSON
// bodies follow the paths), before an operation sees them.
#include <string_view>

namespace turret::ops {

constexpr std::string_view ttl_error(long long ms) noexcept { return ms <= 0 ? "ttl must be positive" : ""; }
inline constexpr std::string_view no_keys_error = "at least one key is required";

}  // namespace turret::ops
