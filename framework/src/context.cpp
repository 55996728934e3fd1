#include <turret/context.hpp>

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

std::uint64_t request_context::next_thread_sample() noexcept {
  thread_local std::uint64_t state = thread_seed();
  state += 0x9e3779b97f4a7c15ULL;  // splitmix64: a Weyl sequence through the finaliser
  return mix64(state);
}

}  // namespace turret
