// undo_log: random sequences of keyspace changes inside a unit of work, rolled back, must leave every keyspace
// exactly as before (keys, values, TTLs, counts), and committed ones exactly as done. Runs under the sanitizers
// (tests/unit/faults/ injects real allocation failures through the whole core, but cannot run under them).
#include <services/kv/keyspace.hpp>

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <utility>

namespace turret::kv {
namespace {

using dump_t = std::map<std::string, std::pair<std::string, ms_t>>;

dump_t dump(const keyspace& ks) {
  dump_t d;
  std::size_t ttl = 0;
  ks.for_each([&](const entry* e) {
    d[std::string(keyspace::key_of(e))] = {std::string(keyspace::value_of(e)), ks.expire_of(e)};
    if (ks.expire_of(e) != no_expiry) ++ttl;
    EXPECT_EQ(ks.find_raw(keyspace::key_of(e)), e);
  });
  EXPECT_EQ(d.size(), ks.size());
  EXPECT_EQ(ttl, ks.expires_size());
  return d;
}

struct world {
  undo_log log;
  keyspace a{0}, b{1};
  world() {
    a.set_undo_log(&log);
    b.set_undo_log(&log);
  }
};

std::string key(std::mt19937_64& g) { return "k" + std::to_string(g() % 40); }

std::string value(std::mt19937_64& g) {
  static const std::size_t sizes[] = {0, 1, 7, 30, 200, 300, 5000, 70000};
  return std::string(sizes[g() % std::size(sizes)], static_cast<char>('a' + g() % 26));
}

/// One random change to `ks` (or to both keyspaces: swap).
void change(world& w, keyspace& ks, std::mt19937_64& g) {
  const std::string k = key(g);
  entry* e = ks.find_raw(k);
  switch (g() % 10) {
    case 0:
    case 1:
      ks.set(k, value(g), g() % 2 ? no_expiry : ms_t(4'000'000'000'000 + static_cast<ms_t>(g() % 1000)));
      break;
    case 2:
      if (e) ks.erase(e);
      break;
    case 3:
      if (e) {
        const std::size_t n = keyspace::value_of(e).size();
        ks.resize_value(e, g() % 2 ? n + g() % 100000 : n / 2);
      }
      break;
    case 4:
      if (e && !keyspace::value_of(e).empty()) {
        const std::size_t n = keyspace::value_of(e).size(), off = g() % n, len = 1 + g() % (n - off);
        for (char& c : ks.mutable_value(e, off, len)) c = static_cast<char>('A' + g() % 26);
      }
      break;
    case 5:
      if (e) ks.set_expire(e, g() % 3 == 0 ? no_expiry : ms_t(4'000'000'000'000 + static_cast<ms_t>(g() % 1000)));
      break;
    case 6:
      if (g() % 8 == 0) ks.clear();
      break;
    case 7:
      if (g() % 4 == 0) w.a.swap(w.b);
      break;
    case 8:
      ks.set_keep_ttl(k, value(g));
      break;
    default:
      if (e) {
        const std::size_t n = keyspace::value_of(e).size();
        auto tail = ks.resize_value(e, n + 1 + g() % 20);
        for (char& c : tail) c = 'z';
      }
  }
}

TEST(undo_log, random_changes_roll_back_exactly) {
  std::mt19937_64 g(12345);
  world w;
  for (int round = 0; round < 400; ++round) {
    // Some committed history first (outside and inside units), so that rollbacks start from varied states.
    for (int i = 0; i < 20; ++i) change(w, g() % 2 ? w.a : w.b, g);
    {
      undo_scope unit(w.log);
      for (int i = 0; i < 5; ++i) change(w, w.a, g);
      unit.commit();
    }
    const dump_t a0 = dump(w.a), b0 = dump(w.b);
    {
      undo_scope unit(w.log);
      const int n = 1 + static_cast<int>(g() % 30);
      for (int i = 0; i < n; ++i) change(w, g() % 2 ? w.a : w.b, g);
      if (g() % 3 == 0) {  // a nested unit, committed or not
        undo_scope inner(w.log);
        for (int i = 0; i < 5; ++i) change(w, w.a, g);
        if (g() % 2) inner.commit();
      }
    }  // rolled back
    ASSERT_EQ(dump(w.a), a0) << "round " << round;
    ASSERT_EQ(dump(w.b), b0) << "round " << round;
    ASSERT_FALSE(w.log.active());
    ASSERT_EQ(w.log.size(), 0u);
  }
}

TEST(undo_log, inner_rollback_keeps_the_outer_units_changes) {
  world w;
  w.a.set("x", "1");
  {
    undo_scope outer(w.log);
    w.a.set("y", "2");
    {
      undo_scope inner(w.log);
      w.a.set("x", "changed");
      w.a.erase("y");
    }  // inner rolled back: x is 1 again, y is back
    EXPECT_EQ(keyspace::value_of(w.a.find_raw("x")), "1");
    ASSERT_NE(w.a.find_raw("y"), nullptr);
    outer.commit();
  }
  EXPECT_EQ(keyspace::value_of(w.a.find_raw("y")), "2");
  EXPECT_EQ(w.log.size(), 0u);
}

TEST(undo_log, committed_changes_free_what_they_replaced) {
  world w;
  for (int i = 0; i < 1000; ++i) w.a.set("k" + std::to_string(i), std::string(100, 'x'));
  const std::size_t before = w.a.memory_usage();
  {
    undo_scope unit(w.log);
    w.a.clear();
    EXPECT_EQ(w.a.size(), 0u);
    unit.commit();
  }
  EXPECT_EQ(w.log.size(), 0u);
  EXPECT_LT(w.a.memory_usage(), before / 10);
}

TEST(undo_log, no_unit_no_records) {
  world w;
  w.a.set("k", "v");
  entry* e = w.a.find_raw("k");
  w.a.resize_value(e, 100);
  w.a.mutable_value(e, 0, 1)[0] = 'x';
  w.a.set_expire(e, 4'000'000'000'000);
  w.a.erase(e);
  EXPECT_EQ(w.log.size(), 0u);
}

}  // namespace
}  // namespace turret::kv
