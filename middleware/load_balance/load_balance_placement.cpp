#include <turret/middleware/load_balance_placement.hpp>

#include <algorithm>
#include <numeric>
#include <stdexcept>

namespace turret {

namespace {

constexpr std::uint64_t p1 = 0x9E3779B185EBCA87ULL;
constexpr std::uint64_t p2 = 0xC2B2AE3D27D4EB4FULL;
constexpr std::uint64_t p3 = 0x165667B19E3779F9ULL;
constexpr std::uint64_t p4 = 0x85EBCA77C2B2AE63ULL;
constexpr std::uint64_t p5 = 0x27D4EB2F165667C5ULL;

constexpr std::uint64_t rotl(std::uint64_t x, int r) noexcept { return (x << r) | (x >> (64 - r)); }

// Little-endian reads whatever the host's byte order (the hash is defined on bytes).
std::uint64_t read64(const unsigned char* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
std::uint32_t read32(const unsigned char* p) noexcept {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

constexpr std::uint64_t round64(std::uint64_t acc, std::uint64_t input) noexcept {
  acc += input * p2;
  acc = rotl(acc, 31);
  return acc * p1;
}
constexpr std::uint64_t merge_round(std::uint64_t acc, std::uint64_t val) noexcept {
  acc ^= round64(0, val);
  return acc * p1 + p4;
}

}  // namespace

std::uint64_t xxhash64(std::string_view data, std::uint64_t seed) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  const unsigned char* const end = p + data.size();
  std::uint64_t h;
  if (data.size() >= 32) {
    std::uint64_t v1 = seed + p1 + p2, v2 = seed + p2, v3 = seed, v4 = seed - p1;
    const unsigned char* const limit = end - 32;
    do {
      v1 = round64(v1, read64(p));
      v2 = round64(v2, read64(p + 8));
      v3 = round64(v3, read64(p + 16));
      v4 = round64(v4, read64(p + 24));
      p += 32;
    } while (p <= limit);
    h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
    h = merge_round(h, v1);
    h = merge_round(h, v2);
    h = merge_round(h, v3);
    h = merge_round(h, v4);
  } else {
    h = seed + p5;
  }
  h += static_cast<std::uint64_t>(data.size());
  for (; p + 8 <= end; p += 8) {
    h ^= round64(0, read64(p));
    h = rotl(h, 27) * p1 + p4;
  }
  if (p + 4 <= end) {
    h ^= static_cast<std::uint64_t>(read32(p)) * p1;
    h = rotl(h, 23) * p2 + p3;
    p += 4;
  }
  for (; p < end; ++p) {
    h ^= static_cast<std::uint64_t>(*p) * p5;
    h = rotl(h, 11) * p1;
  }
  h ^= h >> 33;
  h *= p2;
  h ^= h >> 29;
  h *= p3;
  h ^= h >> 32;
  return h;
}

bool is_prime(std::uint64_t n) noexcept {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (std::uint64_t d = 3; d * d <= n; d += 2) {
    if (n % d == 0) return false;
  }
  return true;
}

hash_ring::hash_ring(const std::vector<std::string>& names, std::size_t vnodes) {
  if (vnodes == 0) throw std::invalid_argument("hash_ring: vnodes must be at least 1");
  points_.reserve(names.size() * vnodes);
  std::string label;
  for (std::size_t e = 0; e < names.size(); ++e) {
    for (std::size_t j = 0; j < vnodes; ++j) {
      label = names[e];
      label += '_';
      label += std::to_string(j);
      points_.push_back({xxhash64(label, 0), static_cast<std::uint32_t>(e)});
    }
  }
  std::sort(points_.begin(), points_.end(), [&names](const point& a, const point& b) {
    if (a.hash != b.hash) return a.hash < b.hash;
    return names[a.endpoint] < names[b.endpoint];
  });
}

std::size_t hash_ring::first_at_or_after(std::uint64_t h) const noexcept {
  auto it = std::lower_bound(points_.begin(), points_.end(), h,
                             [](const point& p, std::uint64_t v) { return p.hash < v; });
  return it == points_.end() ? 0 : static_cast<std::size_t>(it - points_.begin());
}

std::size_t hash_ring::owner(std::uint64_t h) const noexcept {
  return points_.empty() ? no_endpoint_index : points_[first_at_or_after(h)].endpoint;
}

maglev_table::maglev_table(const std::vector<std::string>& names, std::size_t size) {
  if (names.empty()) return;
  if (!is_prime(size) || size <= names.size())
    throw std::invalid_argument("maglev_table: the size must be a prime greater than the number of endpoints");
  // Endpoints in name order: the table depends on the set of names, not on the order they were given in.
  std::vector<std::size_t> order(names.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&names](std::size_t a, std::size_t b) { return names[a] < names[b]; });
  const std::size_t n = order.size();
  std::vector<std::uint64_t> offset(n), skip(n), next(n, 0);
  for (std::size_t k = 0; k < n; ++k) {
    offset[k] = xxhash64(names[order[k]], 0) % size;
    skip[k] = xxhash64(names[order[k]], 1) % (size - 1) + 1;
  }
  constexpr std::uint32_t empty = UINT32_MAX;
  table_.assign(size, empty);
  std::size_t filled = 0;
  while (true) {
    for (std::size_t k = 0; k < n; ++k) {
      std::uint64_t c = (offset[k] + next[k] * skip[k]) % size;
      while (table_[c] != empty) {
        ++next[k];
        c = (offset[k] + next[k] * skip[k]) % size;
      }
      table_[c] = static_cast<std::uint32_t>(order[k]);
      ++next[k];
      if (++filled == size) return;
    }
  }
}

}  // namespace turret
