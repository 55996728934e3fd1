#pragma once
// Redis's integer parsing rules (util.c string2ll, memtoull) and overflow-safe size arithmetic, shared by every
// command family and CONFIG SET.
#include <climits>
#include <cstddef>
#include <string_view>

namespace turret::kv {

/// Redis's string2ll: optional '-', no '+', no spaces, no leading zeros (except "0"), no "-0", in range.
inline bool parse_ll(std::string_view s, long long& out) noexcept {
  const char* p = s.data();
  std::size_t n = s.size(), i = 0;
  if (n == 0 || n > 20) return false;
  if (n == 1 && p[0] == '0') {
    out = 0;
    return true;
  }
  bool neg = false;
  if (p[0] == '-') {
    neg = true;
    if (++i == n) return false;
  }
  if (p[i] < '1' || p[i] > '9') return false;
  unsigned long long v = static_cast<unsigned long long>(p[i++] - '0');
  for (; i < n; ++i) {
    if (p[i] < '0' || p[i] > '9') return false;
    if (v > ULLONG_MAX / 10) return false;
    v *= 10;
    unsigned long long d = static_cast<unsigned long long>(p[i] - '0');
    if (v > ULLONG_MAX - d) return false;
    v += d;
  }
  if (neg) {
    if (v > static_cast<unsigned long long>(LLONG_MAX) + 1) return false;
    out = static_cast<long long>(0 - v);
  } else {
    if (v > static_cast<unsigned long long>(LLONG_MAX)) return false;
    out = static_cast<long long>(v);
  }
  return true;
}

/// Redis's checkStringLength: true when a string of `size` + `append` bytes would be longer than `max`
/// (proto-max-bulk-len). The sum is computed without overflow: an offset near LLONG_MAX is simply too long.
inline bool exceeds_string_limit(unsigned long long size, unsigned long long append, long long max) noexcept {
  unsigned long long total;
  if (__builtin_add_overflow(size, append, &total)) return true;
  return max < 0 || total > static_cast<unsigned long long>(max);
}

/// Redis's memtoull (util.c): digits with an optional unit b, k, kb, m, mb, g, gb (any case). Reads `s` as the C
/// string Redis sees (up to its first NUL byte). No digits at all is 0 (Redis's strtoull), more than ULLONG_MAX
/// saturates to ULLONG_MAX (ERANGE is not an error there), and the unit multiplication wraps as in C. False for a
/// leading '-', an unknown unit or 128 digits and more.
inline bool parse_memory(std::string_view s, unsigned long long& out) noexcept {
  if (auto nul = s.find('\0'); nul != std::string_view::npos) s = s.substr(0, nul);
  if (!s.empty() && s[0] == '-') return false;
  std::size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
  std::string_view unit = s.substr(digits);
  auto is = [&](std::string_view u) {
    if (unit.size() != u.size()) return false;
    for (std::size_t i = 0; i < u.size(); ++i)
      if ((unit[i] | 0x20) != u[i]) return false;
    return true;
  };
  unsigned long long mul;
  if (unit.empty() || is("b"))
    mul = 1;
  else if (is("k"))
    mul = 1000;
  else if (is("kb"))
    mul = 1024;
  else if (is("m"))
    mul = 1000ull * 1000;
  else if (is("mb"))
    mul = 1024ull * 1024;
  else if (is("g"))
    mul = 1000ull * 1000 * 1000;
  else if (is("gb"))
    mul = 1024ull * 1024 * 1024;
  else
    return false;
  if (digits >= 128) return false;
  unsigned long long v = 0;
  for (std::size_t i = 0; i < digits; ++i) {
    const unsigned d = static_cast<unsigned>(s[i] - '0');
    if (v > (ULLONG_MAX - d) / 10) {
      v = ULLONG_MAX;
      break;
    }
    v = v * 10 + d;
  }
  out = v * mul;
  return true;
}

}  // namespace turret::kv
