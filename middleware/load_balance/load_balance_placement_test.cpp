#include <turret/middleware/load_balance_placement.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

namespace turret {
namespace {

std::vector<std::string> names(std::size_t n) {
  std::vector<std::string> v;
  for (std::size_t i = 0; i < n; ++i) v.push_back("127.0.0.1:" + std::to_string(7001 + i));
  return v;
}

std::vector<std::string> keys(std::size_t n) {
  std::vector<std::string> v;
  for (std::size_t i = 0; i < n; ++i) v.push_back("key:" + std::to_string(i));
  return v;
}

TEST(LoadBalancePlacement, Xxhash64ReferenceValues) {
  // XXH64 reference values (seed 0), also checked against another implementation over lengths 1..200.
  EXPECT_EQ(xxhash64("", 0), 0xEF46DB3751D8E999ULL);
  EXPECT_EQ(xxhash64("abc", 0), 0x44BC2CF5AD770999ULL);
  EXPECT_EQ(routing_hash("abc"), xxhash64("abc", 0));
  EXPECT_NE(xxhash64("abc", 1), xxhash64("abc", 0));
}

TEST(LoadBalancePlacement, HashTagsFollowRedisClusterRule) {
  EXPECT_EQ(hash_tag_of("{user1}:a"), "user1");
  EXPECT_EQ(hash_tag_of("x{user1}:b"), "user1");
  EXPECT_EQ(hash_tag_of("foo{bar}{zap}"), "bar");
  EXPECT_EQ(hash_tag_of("foo{}{bar}"), "foo{}{bar}");  // an empty first tag: the whole key
  EXPECT_EQ(hash_tag_of("{}"), "{}");
  EXPECT_EQ(hash_tag_of("foo{{bar}}"), "{bar");
  EXPECT_EQ(hash_tag_of("foo{bar"), "foo{bar");
  EXPECT_EQ(hash_tag_of("plain"), "plain");
  EXPECT_EQ(routing_hash("{user1}:a", true), routing_hash("{user1}:b", true));
  EXPECT_EQ(routing_hash("{user1}:a", true), xxhash64("user1", 0));
  EXPECT_EQ(routing_hash("{user1}:a", false), xxhash64("{user1}:a", 0));  // off by default
}

TEST(LoadBalancePlacement, IsPrime) {
  EXPECT_TRUE(is_prime(65537));
  EXPECT_TRUE(is_prime(2));
  EXPECT_FALSE(is_prime(65536));
  EXPECT_FALSE(is_prime(1));
  EXPECT_FALSE(is_prime(65535));
}

// The documented placement, pinned: these owners must never change (an upstream store's shards rely on them).
TEST(LoadBalancePlacement, PinnedOwners) {
  const auto n = names(3);
  const hash_ring ring(n, 160);
  const maglev_table mag(n, 65537);
  std::string got_ring, got_mag;
  for (const char* k : {"user:1", "user:2", "user:3", "session:abc", "a", "b", "c", "counter"}) {
    got_ring += std::to_string(ring.owner(routing_hash(k)));
    got_mag += std::to_string(mag.owner(routing_hash(k)));
  }
  EXPECT_EQ(got_ring, "21221201");
  EXPECT_EQ(got_mag, "12112221");
}

template <class Table>
std::vector<std::size_t> shares(const Table& t, std::size_t endpoints, const std::vector<std::string>& ks) {
  std::vector<std::size_t> count(endpoints, 0);
  for (const auto& k : ks) ++count.at(t.owner(routing_hash(k)));
  return count;
}

TEST(LoadBalancePlacement, RingDistributionWithinTolerance) {
  const auto ks = keys(40000);
  const hash_ring ring(names(4), 160);
  EXPECT_EQ(ring.size(), 4u * 160u);
  for (std::size_t c : shares(ring, 4, ks)) {
    EXPECT_GT(c, 10000 * 0.8) << "160 vnodes: each share within 20% of 1/N";
    EXPECT_LT(c, 10000 * 1.2);
  }
}

TEST(LoadBalancePlacement, MaglevDistributionWithinTolerance) {
  const auto ks = keys(40000);
  const maglev_table mag(names(4), 65537);
  std::map<std::size_t, std::size_t> entries;
  for (std::uint64_t h = 0; h < 65537; ++h) ++entries[mag.owner(h)];
  for (const auto& [e, n] : entries) {
    EXPECT_GE(n, 65537 / 4) << e;  // the table itself is balanced to one entry
    EXPECT_LE(n, 65537 / 4 + 1) << e;
  }
  for (std::size_t c : shares(mag, 4, ks)) {
    EXPECT_GT(c, 10000 * 0.95);
    EXPECT_LT(c, 10000 * 1.05);
  }
}

// Keys whose owner (by name) differs between two endpoint sets.
template <class Table>
double moved(const Table& a, const std::vector<std::string>& na, const Table& b, const std::vector<std::string>& nb,
             const std::vector<std::string>& ks, const std::string& only_to = {}) {
  std::size_t n = 0;
  for (const auto& k : ks) {
    const std::string& oa = na[a.owner(routing_hash(k))];
    const std::string& ob = nb[b.owner(routing_hash(k))];
    if (oa != ob) {
      ++n;
      if (!only_to.empty()) {
        EXPECT_EQ(ob, only_to) << k;  // every moved key went to the new endpoint
      }
    }
  }
  return static_cast<double>(n) / static_cast<double>(ks.size());
}

TEST(LoadBalancePlacement, RingAddingOneEndpointMovesAboutOneNth) {
  const auto ks = keys(20000);
  const auto n4 = names(4), n5 = names(5);
  const double f = moved(hash_ring(n4, 160), n4, hash_ring(n5, 160), n5, ks, n5[4]);
  EXPECT_GT(f, 0.2 * 0.75);  // 1/5 of the keys, within 25%
  EXPECT_LT(f, 0.2 * 1.25);
}

TEST(LoadBalancePlacement, RingRemovingOneEndpointMovesOnlyItsKeys) {
  const auto ks = keys(20000);
  const auto n5 = names(5);
  const std::vector<std::string> n4(n5.begin(), n5.begin() + 4);
  const hash_ring r5(n5, 160), r4(n4, 160);
  for (const auto& k : ks) {
    const std::size_t o5 = r5.owner(routing_hash(k));
    if (o5 != 4) {
      EXPECT_EQ(n4[r4.owner(routing_hash(k))], n5[o5]) << k;
    }
  }
}

TEST(LoadBalancePlacement, MaglevAddingOneEndpointMovesAboutOneNth) {
  const auto ks = keys(20000);
  const auto n4 = names(4), n5 = names(5);
  const double f = moved(maglev_table(n4, 65537), n4, maglev_table(n5, 65537), n5, ks);
  EXPECT_GT(f, 0.2 * 0.9);  // at least the new endpoint's share
  EXPECT_LT(f, 0.2 * 1.3);  // maglev moves a little more than 1/N (the paper: a few percent)
}

TEST(LoadBalancePlacement, OrderOfEndpointsDoesNotMatter) {
  const auto ks = keys(5000);
  auto n = names(5);
  auto r = n;
  std::reverse(r.begin(), r.end());
  EXPECT_EQ(moved(hash_ring(n, 160), n, hash_ring(r, 160), r, ks), 0.0);
  EXPECT_EQ(moved(maglev_table(n, 65537), n, maglev_table(r, 65537), r, ks), 0.0);
}

TEST(LoadBalancePlacement, FailoverMovesOnlyTheUnavailableEndpointsKeys) {
  const auto ks = keys(10000);
  const hash_ring ring(names(4), 160);
  const maglev_table mag(names(4), 65537);
  std::vector<std::size_t> to_ring(4, 0), to_mag(4, 0);
  for (const auto& k : ks) {
    const std::uint64_t h = routing_hash(k);
    auto not2 = [](std::size_t i) { return i != 2; };
    const std::size_t r = ring.find(h, not2), m = mag.find(h, not2);
    ASSERT_NE(r, 2u);
    ASSERT_NE(m, 2u);
    if (ring.owner(h) != 2) {
      EXPECT_EQ(r, ring.owner(h));
    } else {
      ++to_ring[r];
    }
    if (mag.owner(h) != 2) {
      EXPECT_EQ(m, mag.owner(h));
    } else {
      ++to_mag[m];
    }
  }
  // The unavailable endpoint's keys spread over the others (not all onto one).
  for (std::size_t i : {0, 1, 3}) {
    EXPECT_GT(to_ring[i], 0u);
    EXPECT_GT(to_mag[i], 0u);
  }
  EXPECT_EQ(ring.find(1, [](std::size_t) { return false; }), no_endpoint_index);
  EXPECT_EQ(mag.find(1, [](std::size_t) { return false; }), no_endpoint_index);
}

TEST(LoadBalancePlacement, RingPointsAreNameUnderscoreIndex) {
  // One endpoint, one vnode: its only point is XXH64("name_0"); a hash just above it wraps to that same point.
  const hash_ring one({"a"}, 1);
  EXPECT_EQ(one.owner(0), 0u);
  const hash_ring two({"a", "b"}, 1);
  const std::uint64_t pa = xxhash64("a_0"), pb = xxhash64("b_0");
  EXPECT_EQ(two.owner(pa), 0u);
  EXPECT_EQ(two.owner(pb), 1u);
  EXPECT_EQ(two.owner(std::min(pa, pb) + 1), pa < pb ? 1u : 0u);  // between the points: the next one clockwise
  EXPECT_EQ(two.owner(std::max(pa, pb) + 1), pa < pb ? 0u : 1u);  // past the last: wraps to the first
}

TEST(LoadBalancePlacement, MaglevPreferenceListIsOffsetAndSkip) {
  // One endpoint owns every entry; with two, entry offset(N) belongs to the endpoint first in name order.
  const maglev_table two({"b", "a"}, 7);
  const std::size_t off_a = xxhash64("a", 0) % 7;
  EXPECT_EQ(two.owner(off_a), 1u);  // "a" (index 1) fills its first preference first
}

}  // namespace
}  // namespace turret
