// Allocation-failure injection over the key-value core: for each scenario (setup commands, then one command), the
// k-th allocation of the command is made to fail, for every k until the command runs through without reaching it.
// Each time the reply must be either exactly the reply of an undisturbed run (the failure was absorbed) with
// exactly its keyspace, or an -OOM error with the keyspace exactly as before the command, byte for byte (values,
// TTLs, every database), and the keyspace must stay internally consistent. This is the proof that a handler that
// throws half-way leaves no half-written key, whatever the handler (services/kv/keyspace.hpp, undo_log).
//
// malloc/calloc/realloc are interposed for this binary (glibc's __libc_* do the work), so the failures reach both
// operator new (std::bad_alloc) and the keyspace's own blocks. Not built under sanitizers, which interpose them
// too.
#include <services/kv/commands/test_support.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <string>
#include <tuple>
#include <vector>

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
}

namespace {
// 0: off. n > 0: the n-th allocation from now fails (then off again).
thread_local long fail_countdown = 0;
// 0: off. Otherwise every allocation of at least this many bytes fails.
thread_local std::size_t fail_from_size = 0;
thread_local bool failed = false;

bool should_fail(std::size_t bytes) noexcept {
  if (fail_from_size != 0 && bytes >= fail_from_size) return failed = true;
  if (fail_countdown <= 0) return false;
  if (--fail_countdown != 0) return false;
  failed = true;
  return true;
}
}  // namespace

extern "C" {
void* malloc(std::size_t n) { return should_fail(n) ? nullptr : __libc_malloc(n); }
void* calloc(std::size_t a, std::size_t b) { return should_fail(a * b) ? nullptr : __libc_calloc(a, b); }
void* realloc(void* p, std::size_t n) { return should_fail(n) ? nullptr : __libc_realloc(p, n); }
}

namespace turret::kv {
namespace {

using testing::kv_fixture;
using args_t = std::vector<std::string>;

struct scenario {
  std::vector<args_t> setup;
  args_t command;
};

/// Every key of every database: (db, key) -> (value, expiry). Expiries are absolute and fixed by the scenarios.
using dump_t = std::map<std::pair<int, std::string>, std::pair<std::string, ms_t>>;

dump_t dump(store& st) {
  dump_t d;
  for (int i = 0; i < st.databases(); ++i) {
    keyspace& db = st.db(i);
    std::size_t n = 0, with_ttl = 0;
    db.for_each([&](const entry* e) {
      ++n;
      if (db.expire_of(e) != no_expiry) ++with_ttl;
      EXPECT_EQ(db.find_raw(keyspace::key_of(e)), e) << "entry not findable by its key";
      d[{i, std::string(keyspace::key_of(e))}] = {std::string(keyspace::value_of(e)), db.expire_of(e)};
    });
    EXPECT_EQ(db.size(), n) << "db " << i;
    EXPECT_EQ(db.expires_size(), with_ttl) << "db " << i;
  }
  return d;
}

std::string run(kv_fixture::client& c, const args_t& a) {
  std::vector<std::string_view> v(a.begin(), a.end());
  return c.run(v);
}

/// Runs one command with the k-th allocation inside the core failing (the builder and request are made first, the
/// reply copied after, so that only the core's own allocations count). Returns whether the failure happened.
bool run_failing(kv_fixture& f, kv_fixture::client& c, const args_t& a, long k, std::string& reply) {
  const std::vector<std::string_view> argv(a.begin(), a.end());
  testing::resp_test_builder b(&c.s.resp);
  b.out.reserve(4096);
  request_context ctx;
  request req{ctx, c.s, argv, b};
  failed = false;
  fail_countdown = k;
  try {
    f.svc.execute(req);
  } catch (const std::exception& e) {
    fail_countdown = 0;
    ADD_FAILURE() << "k=" << k << ": an exception reached the front end: " << e.what();
  }
  fail_countdown = 0;
  reply = b.out;
  return failed;
}

/// The top-level elements of an EXEC reply whose elements are one line each.
std::vector<std::string> exec_elements(const std::string& reply) {
  std::vector<std::string> lines;
  for (std::size_t p = 0, e; (e = reply.find("\r\n", p)) != std::string::npos; p = e + 2)
    lines.push_back(reply.substr(p, e - p));
  if (!lines.empty()) lines.erase(lines.begin());
  return lines;
}

std::string show(const args_t& a) {
  std::string s;
  for (const auto& x : a) s += (s.empty() ? "" : " ") + (x.size() > 40 ? x.substr(0, 40) + "..." : x);
  return s;
}

// Absolute expiries far in the future keep dumps comparable across runs.
const std::string exat = "4102444800";
const std::string pxat = "4102444800123";
const std::string big(70000, 'b');  // beyond in-place growth: blocks move

std::vector<scenario> scenarios() {
  std::vector<scenario> s;
  const std::vector<args_t> base = {{"set", "s", "hello"},     {"set", "t", "v", "pxat", pxat}, {"set", "n", "41"},
                                    {"set", "big", big},       {"setbit", "bits", "100", "1"},  {"select", "0"},
                                    {"set", "f", "1.5"},       {"mset", "a", "1", "b", "2"}};
  auto add = [&](args_t cmd) { s.push_back({base, std::move(cmd)}); };
  add({"set", "new", "value"});
  add({"set", "s", "world"});
  add({"set", "s", "a much longer value than the one before it"});
  add({"set", "t", "x"});
  add({"set", "t", "x", "keepttl"});
  add({"set", "s", "y", "exat", exat, "get"});
  add({"set", "new", "y", "nx", "pxat", pxat});
  add({"setnx", "new", "z"});
  add({"getset", "s", "q"});
  add({"getdel", "t"});
  add({"getex", "s", "pxat", pxat});
  add({"getex", "t", "persist"});
  add({"append", "new", "abc"});
  add({"append", "s", "+more"});
  add({"append", "big", big});
  add({"setrange", "new", "5", "xyz"});
  add({"setrange", "s", "2", "XY"});
  add({"setrange", "s", "100", "grow"});
  add({"setrange", "big", "69990", "0123456789abcdef"});
  add({"incr", "n"});
  add({"incr", "new"});
  add({"incrby", "n", "-1000000000000"});
  add({"decr", "n"});
  add({"incrbyfloat", "f", "1e10"});
  add({"incrbyfloat", "new", "2.5"});
  add({"setbit", "bits", "7", "1"});
  add({"setbit", "bits", "100000", "1"});
  add({"setbit", "new", "64", "1"});
  add({"bitfield", "bits", "set", "u8", "0", "255", "incrby", "i5", "100", "1", "set", "u16", "#100", "7"});
  add({"bitfield", "new", "set", "i64", "0", "-1"});
  add({"bitop", "and", "dest", "s", "big"});
  add({"bitop", "or", "s", "s", "n"});
  add({"bitop", "not", "s", "nosuch"});
  add({"mset", "a", "10", "new", "20", "s", "30", "big", "40"});
  add({"msetnx", "x1", "1", "x2", "2", "x3", "3"});
  add({"del", "s", "t", "big", "nosuch"});
  add({"unlink", "a", "b"});
  add({"rename", "s", "t"});
  add({"rename", "t", "renamed"});
  add({"renamenx", "s", "fresh"});
  add({"copy", "t", "c1"});
  add({"copy", "s", "t", "replace"});
  add({"copy", "big", "big", "db", "3"});
  add({"move", "t", "2"});
  add({"expire", "s", "100"});
  add({"pexpireat", "t", pxat});
  add({"expireat", "s", exat});
  add({"persist", "t"});
  add({"pexpire", "s", "-1"});
  add({"setex", "new", "100", "v"});
  add({"psetex", "s", "100000", "v"});
  add({"flushdb"});
  add({"flushall"});
  add({"swapdb", "0", "1"});
  // A transaction: each queued command is its own unit inside EXEC's.
  {
    scenario tx{base, {"exec"}};
    for (args_t q : std::vector<args_t>{{"multi"},
                                        {"set", "s", "tx"},
                                        {"append", "big", "tail"},
                                        {"del", "t"},
                                        {"incr", "n"},
                                        {"setrange", "new", "3", "abc"},
                                        {"swapdb", "0", "5"},
                                        {"flushdb"},
                                        {"set", "after", "flush"}})
      tx.setup.push_back(std::move(q));
    s.push_back(std::move(tx));
  }
  return s;
}

struct outcome {
  std::string reply;
  dump_t keyspace;
};

outcome reference(const scenario& sc) {
  kv_fixture f;
  auto c = f.connect();
  for (const auto& a : sc.setup) run(*c, a);
  outcome o;
  o.reply = run(*c, sc.command);
  o.keyspace = dump(*f.st);
  return o;
}

TEST(alloc_faults, every_failed_allocation_leaves_the_keyspace_as_it_was) {
  std::size_t injected = 0, absorbed = 0, failed_inside_exec = 0;
  for (const scenario& sc : scenarios()) {
    const outcome ref = reference(sc);
    for (long k = 1;; ++k) {
      kv_fixture f;
      auto c = f.connect();
      for (const auto& a : sc.setup) run(*c, a);
      const dump_t before = dump(*f.st);
      std::string reply;
      if (!run_failing(f, *c, sc.command, k, reply)) break;  // the command needed fewer than k allocations
      ++injected;
      const std::string where = show(sc.command) + " k=" + std::to_string(k);
      const dump_t after = dump(*f.st);
      EXPECT_EQ(f.st->undo().size(), 0u) << where;
      EXPECT_FALSE(f.st->undo().active()) << where;
      if (reply.rfind("-OOM ", 0) == 0) {
        EXPECT_TRUE(after == before) << where << ": the reply was an error, but the keyspace changed";
      } else if (sc.command[0] == "exec" && reply.find("\r\n-OOM ") != std::string::npos) {
        // One queued command failed: the transaction is what it would have been without that command.
        ++failed_inside_exec;
        const auto elements = exec_elements(reply);
        const auto bad = std::find_if(elements.begin(), elements.end(),
                                      [](const std::string& e) { return e.rfind("-OOM ", 0) == 0; });
        const auto i = static_cast<std::size_t>(bad - elements.begin());
        scenario without = sc;
        without.setup.erase(without.setup.end() - static_cast<std::ptrdiff_t>(elements.size() - i));
        const outcome alt = reference(without);
        auto expected = exec_elements(alt.reply);
        expected.insert(expected.begin() + static_cast<std::ptrdiff_t>(i), *bad);
        EXPECT_EQ(elements, expected) << where;
        EXPECT_TRUE(after == alt.keyspace) << where << ": queued command " << i << " failed and left effects";
      } else {
        ++absorbed;
        EXPECT_EQ(reply, ref.reply) << where;
        EXPECT_TRUE(after == ref.keyspace) << where << ": a reply as if it succeeded, but not its keyspace";
      }
      // The connection's session still works afterwards.
      EXPECT_EQ(run(*c, {"ping"}), "+PONG\r\n") << where;
      if (k > 10000) {
        ADD_FAILURE() << where << ": no end of allocations";
        break;
      }
    }
  }
  // Every scenario allocates: the injection really happened (a test that cannot fail would not).
  EXPECT_GT(injected, scenarios().size());
  EXPECT_GT(failed_inside_exec, 0u);
  std::printf("allocation failures injected: %zu (absorbed: %zu, inside EXEC: %zu)\n", injected, absorbed,
              failed_inside_exec);
}

TEST(alloc_faults, setrange_beyond_memory_creates_nothing) {
  kv_fixture f;
  auto c = f.connect();
  // Within proto-max-bulk-len, so the size check lets it through; the 100 MB block itself cannot be had.
  (*c)({"config", "set", "proto-max-bulk-len", "4gb"});
  failed = false;
  fail_from_size = 50'000'000;
  const std::string reply = (*c)({"setrange", "k", "100000000", "x"});
  fail_from_size = 0;
  ASSERT_TRUE(failed);
  EXPECT_EQ(reply.rfind("-OOM ", 0), 0u) << reply;
  EXPECT_EQ((*c)({"exists", "k"}), ":0\r\n");
  EXPECT_EQ((*c)({"dbsize"}), ":0\r\n");
  const std::string list = (*c)({"client", "list"});
  EXPECT_NE(list.find("cmd=client|list"), std::string::npos) << list;
  EXPECT_NE((*c)({"info", "errorstats"}).find("errorstat_OOM:count=1"), std::string::npos);
  // The same on a key that exists: it keeps its value.
  (*c)({"set", "k", "v"});
  const std::string huge(60'000'000, 'a');
  fail_from_size = 50'000'000;
  EXPECT_EQ((*c)({"setrange", "k", "100000000", "x"}).rfind("-OOM ", 0), 0u);
  EXPECT_EQ((*c)({"append", "k", huge}).rfind("-OOM ", 0), 0u);
  fail_from_size = 0;
  EXPECT_EQ((*c)({"get", "k"}), "$1\r\nv\r\n");
}

}  // namespace
}  // namespace turret::kv
