#include <turret/context.hpp>

#include <atomic>
#include <random>
#include <thread>

namespace turret {

namespace {

std::uint64_t thread_seed() noexcept {
  std::uint64_t seed = 0;
  try {
    std::random_device rd;
    seed = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  } catch (...) {  // no entropy source: time and thread identity still differ between threads and runs
  }
  seed ^= static_cast<std::uint64_t>(request_context::clock::now().time_since_epoch().count());
  seed ^= request_context::mix64(std::hash<std::thread::id>{}(std::this_thread::get_id()));
  return seed;
}

}  // namespace

std::string request_context::generate_request_id() {
  static std::atomic<std::uint64_t> counter{0};
  static const std::uint64_t epoch = static_cast<std::uint64_t>(clock::now().time_since_epoch().count());
  const std::uint64_t n = counter.fetch_add(1, std::memory_order_relaxed);
  char buf[32];
  static constexpr char hex[] = "0123456789abcdef";
  std::uint64_t a = epoch, b = n;
  for (int i = 15; i >= 0; --i, a >>= 4) buf[i] = hex[a & 15];
  for (int i = 31; i >= 16; --i, b >>= 4) buf[i] = hex[b & 15];
  return std::string(buf, 32);
}

std::uint64_t request_context::new_connection_id() noexcept {
  static std::atomic<std::uint64_t> counter{0};
  return (counter.fetch_add(1, std::memory_order_relaxed) + 1) & ~(std::uint64_t{1} << 63);
}

std::uint64_t request_context::derived_connection_id(const endpoint& ep) noexcept {
  std::uint64_t h = ep.port();
  const auto addr = ep.address();
  if (addr.is_v4()) {
    h = mix64(h ^ (std::uint64_t{addr.to_v4().to_uint()} << 16));
  } else {
    const auto bytes = addr.to_v6().to_bytes();
    for (std::size_t i = 0; i < bytes.size(); i += 8) {
      std::uint64_t w = 0;
      for (std::size_t j = 0; j < 8; ++j) w = (w << 8) | bytes[i + j];
      h = mix64(h ^ w);
    }
  }
  return h | (std::uint64_t{1} << 63);
}

std::uint64_t request_context::next_thread_sample() noexcept {
  thread_local std::uint64_t state = thread_seed();
  state += 0x9e3779b97f4a7c15ULL;  // splitmix64: a Weyl sequence through the finaliser
  return mix64(state);
}

}  // namespace turret
