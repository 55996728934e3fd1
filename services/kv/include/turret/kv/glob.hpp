#pragma once
// Redis's glob matcher (util.c stringmatchlen, 7.0): KEYS, SCAN MATCH, PSUBSCRIBE, PUBSUB CHANNELS and CONFIG GET all
// use this one function so that they agree with redis-server on every pattern, including the edge cases
// (unterminated '[', escapes, ranges given backwards).
#include <string_view>

namespace turret::kv {

/// True when `str` matches the glob `pattern` (binary safe). `nocase` folds ASCII case as Redis's tolower does.
/// As Redis 7.0, matching stops (false) beyond 1000 nested '*'.
bool glob_match(std::string_view pattern, std::string_view str, bool nocase = false) noexcept;

}  // namespace turret::kv
