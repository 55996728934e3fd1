#pragma once
// Redis's integer parsing rule (util.c string2ll) and overflow-safe size arithmetic, shared by every command family
// and CONFIG SET.
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

}  // namespace turret::kv
