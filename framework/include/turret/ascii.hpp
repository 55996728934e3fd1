#pragma once
// ASCII helpers for protocol tokens (Redis command names and options, HTTP header tokens): locale-free and
// allocation-free.
#include <string_view>

namespace turret {

/// ASCII case-insensitive equality.
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]), y = static_cast<unsigned char>(b[i]);
    if (static_cast<unsigned>(x - 'A') < 26u) x += 32;
    if (static_cast<unsigned>(y - 'A') < 26u) y += 32;
    if (x != y) return false;
  }
  return true;
}

}  // namespace turret
