// Command metadata on the request: key extraction, hash slots, idempotency, resolve() and the customization points.
// (Key extraction is also compared with redis-server itself over many argvs: tests/integration/test_command_keys.py.)

// The counting operator new below pairs malloc with free; GCC's inliner mistakes that for a mismatch.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#include <services/kv/commands/test_support.hpp>
#include <turret/kv/command_info.hpp>
#include <turret/request_traits.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <set>
#include <string>
#include <vector>

// Counts this binary's heap allocations, to check that resolve() allocates nothing for commands with few keys.
namespace {
std::atomic<long> g_allocations{0};
}
void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace turret::kv {
namespace {

using args_t = std::vector<std::string_view>;

const command_table& all_commands() {
  static const command_table t;
  return t;
}

// Any command redis-server knows (the subcommand of a container), implemented or not.
const command_def* find_meta(const args_t& args) {
  const command_def* cmd = all_commands().metadata(args[0]);
  if (cmd && args.size() >= 2) {
    const std::string sub = std::string(cmd->name) + "|" + std::string(args[1]);
    if (const command_def* s = all_commands().metadata(sub)) cmd = s;
  }
  return cmd;
}

// The keys of argv as "pos:flags" pairs (flags in hex), after the status when it is not complete.
std::string keys_of(const args_t& args) {
  const command_def* cmd = find_meta(args);
  if (!cmd) return "unknown";
  command_keys k;
  extract_keys(*cmd, args, k);
  std::string out = k.status == keys_status::complete ? "" : k.status == keys_status::invalid ? "invalid" : "incomplete";
  for (const key_ref& r : k.refs) {
    char b[32];
    std::snprintf(b, sizeof b, "%s%u:%x", out.empty() ? "" : " ", r.index, r.flags);
    out += b;
  }
  return out;
}

bool idempotent(const args_t& args) {
  const command_def* cmd = find_meta(args);
  command_keys k;
  extract_keys(*cmd, args, k);
  return is_idempotent(*cmd, args, k);
}

constexpr unsigned ro_access = key_ro | key_access;

TEST(command_info, hash_slots_are_redis_key_hash_slot) {
  EXPECT_EQ(key_hash_slot("foo"), 12182);
  EXPECT_EQ(key_hash_slot("bar"), 5061);
  EXPECT_EQ(key_hash_slot("123456789"), 0x31C3);  // the CRC16/XMODEM check value
  EXPECT_EQ(key_hash_slot(""), 0);
  EXPECT_EQ(key_hash_slot("{user1000}.following"), key_hash_slot("{user1000}.followers"));
  EXPECT_EQ(key_hash_slot("{user1000}.following"), key_hash_slot("user1000"));
  EXPECT_NE(key_hash_slot("foo{}{bar}"), key_hash_slot("bar"));  // empty tag: the whole key
  EXPECT_EQ(key_hash_slot("foo{}{bar}"), 8363);
  EXPECT_EQ(key_hash_slot("foo{{bar}}zap"), key_hash_slot("{bar"));
  EXPECT_EQ(key_hash_slot("foo{bar}{zap}"), key_hash_slot("bar"));
  EXPECT_EQ(key_hash_slot("{foo"), key_hash_slot("{foo"));
  EXPECT_EQ(key_hash_slot(std::string_view("a\0b", 3)), 8383);  // binary safe (CLUSTER KEYSLOT says so)
}

TEST(command_info, keys_from_specs) {
  EXPECT_EQ(keys_of({"GET", "k"}), "1:11");
  EXPECT_EQ(keys_of({"get"}), "invalid");  // a short argv: Redis's GETKEYS says invalid too
  EXPECT_EQ(keys_of({"MSET", "a", "1", "b", "2"}), "1:24 3:24");  // OW update, every other argument
  EXPECT_EQ(keys_of({"MGET", "a", "b", "c"}), "1:11 2:11 3:11");
  EXPECT_EQ(keys_of({"DEL", "a", "b"}), "1:88 2:88");                           // RM delete
  EXPECT_EQ(keys_of({"COPY", "s", "d", "REPLACE"}), "1:11 2:24");
  EXPECT_EQ(keys_of({"LCS", "a", "b", "LEN"}), "1:11 2:11");
  EXPECT_EQ(keys_of({"BITOP", "AND", "d", "a", "b"}), "2:24 3:11 4:11");
  EXPECT_EQ(keys_of({"OBJECT", "ENCODING", "k"}), "2:1");
  EXPECT_EQ(keys_of({"XGROUP", "CREATE", "s", "g", "$"}), "2:42");  // RW insert
  EXPECT_EQ(keys_of({"SPUBLISH", "ch", "m"}), "");  // a shard channel is not a key
  EXPECT_EQ(keys_of({"PING"}), "");
  // keynum
  EXPECT_EQ(keys_of({"EVAL", "s", "2", "a", "b", "x"}), "3:32 4:32");
  EXPECT_EQ(keys_of({"EVAL", "s", "0"}), "");               // no_mandatory_keys
  EXPECT_EQ(keys_of({"EVAL", "s", "3", "a"}), "");          // more keys than arguments: none (no error)
  EXPECT_EQ(keys_of({"ZINTERCARD", "3", "a"}), "invalid");  // the same for a command that needs keys
  EXPECT_EQ(keys_of({"EVAL", "s", "1x", "a"}), "3:0");      // the spec fails; Redis's fallback uses atoi
  EXPECT_EQ(keys_of({"ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"}), "1:24 3:11 4:11");
  EXPECT_EQ(keys_of({"ZUNIONSTORE", "d", "5", "a", "b"}), "invalid");
  EXPECT_EQ(keys_of({"LMPOP", "2", "a", "b", "LEFT"}), "2:92 3:92");
  // keyword
  EXPECT_EQ(keys_of({"XREAD", "COUNT", "2", "STREAMS", "a", "b", "0", "0"}), "4:11 5:11");
  EXPECT_EQ(keys_of({"XREAD", "STREAMS", "a", "b", "0"}), "2:11");  // odd: what Redis's spec arithmetic gives
  EXPECT_EQ(keys_of({"XREAD", "COUNT", "2"}), "invalid");
  EXPECT_EQ(keys_of({"GEORADIUS", "k", "0", "0", "1", "km", "STORE", "d"}), "1:11 7:24");
  EXPECT_EQ(keys_of({"GEORADIUS", "k", "0", "0", "1", "km", "STORE", "d", "STOREDIST", "e"}), "1:11 7:24 9:24");
}

TEST(command_info, a_command_info_made_by_hand_derives_its_key_source) {
  for (const char* name : {"get", "mset", "zunionstore", "set", "ping", "spublish"}) {
    command_info c = *all_commands().metadata(name);
    EXPECT_EQ(c.keys_from, key_source_of(c)) << name;
    c.keys_from = key_source::unset;
    const args_t args = {name, "a", "2", "b", "c"};
    command_keys by_hand, from_table;
    extract_keys(c, args, by_hand);
    extract_keys(*all_commands().metadata(name), args, from_table);
    EXPECT_EQ(by_hand.status, from_table.status) << name;
    ASSERT_EQ(by_hand.refs.size(), from_table.refs.size()) << name;
    for (std::size_t i = 0; i < by_hand.refs.size(); ++i) EXPECT_EQ(by_hand.refs[i].index, from_table.refs[i].index);
  }
  EXPECT_EQ(all_commands().metadata("set")->keys_from, key_source::proc);  // variable flags
  EXPECT_EQ(all_commands().metadata("spublish")->keys_from, key_source::none);  // a shard channel
  EXPECT_EQ(all_commands().metadata("sort")->keys_from, key_source::specs);
}

TEST(command_info, keys_from_getkeys_procedures) {
  EXPECT_EQ(keys_of({"SORT", "k"}), "1:11");
  EXPECT_EQ(keys_of({"SORT", "k", "LIMIT", "0", "1", "STORE", "d"}), "1:11 6:24");
  EXPECT_EQ(keys_of({"SORT", "k", "STORE", "d", "STORE", "e"}), "1:11 5:24");  // the last STORE wins
  EXPECT_EQ(keys_of({"SORT", "k", "BY", "w_*", "GET", "#"}), "incomplete 1:11");
  EXPECT_EQ(keys_of({"SORT", "k", "BY", "nosort"}), "1:11");
  EXPECT_EQ(keys_of({"SORT_RO", "k", "GET", "o_*"}), "incomplete 1:11");
  EXPECT_EQ(keys_of({"MIGRATE", "h", "1", "k", "0", "5000"}), "3:92");
  EXPECT_EQ(keys_of({"MIGRATE", "h", "1", "", "0", "5000", "KEYS", "a", "b"}), "7:92 8:92");
  EXPECT_EQ(keys_of({"SET", "k", "v"}), "1:24");
  EXPECT_EQ(keys_of({"SET", "k", "v", "EX", "5", "GeT"}), "1:32");
  EXPECT_EQ(keys_of({"BITFIELD", "k", "GET", "u8", "0"}), "1:11");
  EXPECT_EQ(keys_of({"BITFIELD", "k", "GET", "u8", "0", "SET", "u8", "0", "1"}), "1:32");
  EXPECT_EQ(keys_of({"BITFIELD", "k", "GET", "u8"}), "1:32");  // a syntax error counts as a write
}

TEST(command_info, metadata_of_every_command) {
  const auto all = all_commands().all();
  EXPECT_GE(all.size(), 360u);  // every command and subcommand of redis-server 7.0, implemented or not
  std::size_t idempotent = 0, session = 0;
  for (const command_def& d : all) {
    SCOPED_TRACE(std::string(d.name));
    EXPECT_NE(d.arity, 0);
    if (d.first_key > 0 && !(d.key_specs.size() == 1 && (d.key_specs[0].flags & key_not_key))) {
      EXPECT_TRUE(d.has_keys());  // (shard channels have a legacy key range but no key)
    }
    for (const key_spec& s : d.key_specs) {
      EXPECT_GT(s.keystep, 0);
      if (s.begin == key_begin::keyword) {
        EXPECT_FALSE(s.keyword.empty());
      }
    }
    idempotent += (d.turret & turret_idempotent) != 0;
    session += d.session_state();
  }
  EXPECT_GT(idempotent, 150u);
  EXPECT_GT(session, 20u);
  const command_def* xadd = all_commands().metadata("xadd");
  ASSERT_NE(xadd, nullptr);
  EXPECT_TRUE(xadd->flags & cmd_write);
  EXPECT_TRUE(xadd->acl & acl_stream);
  EXPECT_EQ(xadd->traffic(), traffic_class::write);
  EXPECT_EQ(all_commands().metadata("GET")->traffic(), traffic_class::read);
  EXPECT_EQ(all_commands().metadata("publish")->traffic(), traffic_class::pubsub);
  EXPECT_EQ(all_commands().metadata("client|kill")->traffic(), traffic_class::admin);
  EXPECT_EQ(all_commands().metadata("select")->traffic(), traffic_class::connection);
  EXPECT_EQ(all_commands().metadata("multi")->traffic(), traffic_class::connection);
  EXPECT_EQ(all_commands().metadata("eval")->traffic(), traffic_class::write);
  EXPECT_EQ(all_commands().metadata("time")->traffic(), traffic_class::read);
}

TEST(command_info, every_argument_dependent_command_has_a_rule) {
  // is_idempotent() decides these by name; a command the generator marks by-args without a rule here would fall
  // to the "destination is not a source" default.
  const std::set<std::string_view> rules = {
      "set", "expire", "pexpire", "expireat", "pexpireat", "copy", "restore", "restore-asking", "function|load",
      "function|restore", "zadd", "bitfield", "sort", "georadius", "georadiusbymember", "bitop", "sunionstore",
      "sinterstore", "sdiffstore", "zunionstore", "zinterstore", "zdiffstore", "zrangestore", "geosearchstore"};
  std::set<std::string_view> marked;
  for (const command_def& d : all_commands().all())
    if (d.turret & turret_idempotent_by_args) marked.insert(d.name);
  EXPECT_EQ(marked, rules);
}

TEST(command_info, idempotency) {
  EXPECT_TRUE(idempotent({"GET", "k"}));
  EXPECT_TRUE(idempotent({"TTL", "k"}));
  EXPECT_TRUE(idempotent({"MSET", "a", "1"}));
  EXPECT_TRUE(idempotent({"SETRANGE", "k", "0", "x"}));
  EXPECT_FALSE(idempotent({"DEL", "k"}));  // 1, then 0
  EXPECT_FALSE(idempotent({"INCR", "k"}));
  EXPECT_FALSE(idempotent({"LPUSH", "k", "x"}));
  EXPECT_FALSE(idempotent({"PUBLISH", "c", "m"}));
  EXPECT_FALSE(idempotent({"EVAL", "s", "0"}));
  EXPECT_TRUE(idempotent({"EVAL_RO", "s", "0"}));
  // by arguments
  EXPECT_TRUE(idempotent({"SET", "k", "v"}));
  EXPECT_TRUE(idempotent({"SET", "k", "v", "XX", "EX", "10"}));
  EXPECT_FALSE(idempotent({"SET", "k", "v", "NX"}));
  EXPECT_FALSE(idempotent({"SET", "k", "v", "get"}));
  EXPECT_TRUE(idempotent({"SET", "k", "nx"}));  // a value, not an option
  EXPECT_TRUE(idempotent({"EXPIRE", "k", "10"}));
  EXPECT_FALSE(idempotent({"EXPIRE", "k", "10", "NX"}));
  EXPECT_FALSE(idempotent({"COPY", "a", "b"}));
  EXPECT_TRUE(idempotent({"COPY", "a", "b", "REPLACE"}));
  EXPECT_TRUE(idempotent({"ZADD", "k", "XX", "1", "m"}));
  EXPECT_FALSE(idempotent({"ZADD", "k", "1", "m"}));
  EXPECT_FALSE(idempotent({"ZADD", "k", "XX", "CH", "1", "m"}));
  EXPECT_FALSE(idempotent({"ZADD", "k", "1", "xx"}));  // a member, not an option
  EXPECT_TRUE(idempotent({"BITFIELD", "k", "GET", "u8", "0"}));
  EXPECT_FALSE(idempotent({"BITFIELD", "k", "INCRBY", "u8", "0", "1"}));
  EXPECT_TRUE(idempotent({"ZUNIONSTORE", "d", "2", "a", "b"}));
  EXPECT_FALSE(idempotent({"ZUNIONSTORE", "d", "2", "d", "b"}));
  EXPECT_TRUE(idempotent({"BITOP", "XOR", "d", "a", "b"}));
  EXPECT_FALSE(idempotent({"BITOP", "XOR", "d", "d", "b"}));
  EXPECT_TRUE(idempotent({"SORT", "k", "BY", "w_*"}));
  EXPECT_TRUE(idempotent({"SORT", "k", "STORE", "d"}));
  EXPECT_FALSE(idempotent({"SORT", "k", "STORE", "k"}));
  EXPECT_FALSE(idempotent({"SORT", "k", "BY", "w_*", "STORE", "d"}));
  EXPECT_TRUE(idempotent({"GEORADIUS", "k", "0", "0", "1", "km", "STORE", "d"}));
  EXPECT_FALSE(idempotent({"GEORADIUS", "k", "0", "0", "1", "km", "STORE", "k"}));
  EXPECT_TRUE(idempotent({"FUNCTION", "LOAD", "REPLACE", "code"}));
  EXPECT_FALSE(idempotent({"FUNCTION", "LOAD", "replace"}));  // the code, not the option
  EXPECT_FALSE(idempotent({"FUNCTION", "LOAD", "code"}));
  EXPECT_TRUE(idempotent({"CLIENT", "SETNAME", "x"}));
}

TEST(command_info, resolve_follows_lookup) {
  const auto table = command_table::make_default();
  const args_t get = {"get", "k"};
  const resolved_command r = resolve(*table, get);
  ASSERT_TRUE(r.known());
  EXPECT_EQ(r.info->name, "get");
  EXPECT_EQ(static_cast<const command_info*>(r.def), r.info);
  EXPECT_EQ(r.base, r.def);
  EXPECT_EQ(r.def, table->lookup(get));
  EXPECT_EQ(r.first_key(), "k");

  const args_t kill = {"CLIENT", "Kill", "ID", "1"};
  const resolved_command c = resolve(*table, kill);
  ASSERT_TRUE(c.known());
  EXPECT_EQ(c.info->name, "client|kill");
  EXPECT_EQ(c.base, table->find("client"));
  EXPECT_EQ(c.def, table->lookup(kill));
  EXPECT_FALSE(c.slot().has_value());

  const args_t client = {"client"};
  EXPECT_EQ(resolve(*table, client).def, table->find("client"));
  const args_t nosub = {"client", "nosuch"};
  const resolved_command n = resolve(*table, nosub);
  EXPECT_FALSE(n.known());
  EXPECT_EQ(n.base, table->find("client"));  // the metrics label stays "client"
  const args_t unknown = {"hset", "k", "f", "v"};  // redis-server knows it; this table does not implement it
  EXPECT_FALSE(resolve(*table, unknown).known());
  EXPECT_EQ(resolve(*table, unknown).base, nullptr);
  EXPECT_FALSE(resolve(*table, args_t{}).known());
}

TEST(command_info, resolve_allocates_nothing_for_a_few_keys) {
  const auto table = command_table::make_default();
  const args_t set = {"SET", "key", "value"};
  const args_t mset = {"MSET", "a", "1", "b", "2", "c", "3", "d", "4"};
  long keys = 0;
  const long before = g_allocations.load();
  for (int i = 0; i < 100; ++i) {
    keys += static_cast<long>(resolve(*table, set).keys.refs.size());
    keys += static_cast<long>(resolve(*table, mset).keys.refs.size());
  }
  EXPECT_EQ(g_allocations.load() - before, 0);
  EXPECT_EQ(keys, 500);
}

TEST(command_info, slot_and_crossslot) {
  const auto table = command_table::make_default();
  const args_t same = {"MSET", "{u1}.a", "1", "{u1}.b", "2"};
  const resolved_command s = resolve(*table, same);
  ASSERT_EQ(s.keys.refs.size(), 2u);
  EXPECT_EQ(s.slot(), key_hash_slot("u1"));
  EXPECT_FALSE(s.crossslot());
  const args_t cross = {"DEL", "foo", "bar"};
  const resolved_command c = resolve(*table, cross);
  EXPECT_EQ(c.slot(), 12182);
  EXPECT_TRUE(c.crossslot());
  const args_t none = {"PING"};
  EXPECT_FALSE(resolve(*table, none).slot().has_value());
  EXPECT_FALSE(resolve(*table, none).crossslot());
}

TEST(command_info, customization_points_on_kv_request) {
  const auto table = command_table::make_default();
  request_context ctx;
  session sess;
  int proto = 2;
  testing::resp_test_builder out(&proto);
  const args_t incr = {"INCR", "counter"};
  request unresolved{ctx, sess, incr, out};
  EXPECT_EQ(request_routing_key(unresolved), std::nullopt);
  EXPECT_EQ(request_retry_class(unresolved), retry_safety::non_idempotent);
  EXPECT_EQ(request_rate_class(unresolved), traffic_class::write);

  const resolved_command ri = resolve(*table, incr);
  request r1{ctx, sess, incr, out, &ri};
  EXPECT_EQ(request_routing_key(r1), "counter");
  EXPECT_EQ(request_retry_class(r1), retry_safety::non_idempotent);
  EXPECT_EQ(request_rate_class(r1), traffic_class::write);

  const args_t get = {"GET", "k"};
  const resolved_command rg = resolve(*table, get);
  request r2{ctx, sess, get, out, &rg};
  EXPECT_EQ(request_retry_class(r2), retry_safety::idempotent);
  EXPECT_EQ(request_rate_class(r2), traffic_class::read);

  const args_t select = {"SELECT", "1"};
  const resolved_command rs = resolve(*table, select);
  request r3{ctx, sess, select, out, &rs};
  EXPECT_EQ(request_retry_class(r3), retry_safety::session);
  EXPECT_EQ(request_rate_class(r3), traffic_class::connection);
  EXPECT_EQ(request_routing_key(r3), std::nullopt);

  struct other_request {};  // a request type that supplies nothing gets the conservative defaults
  EXPECT_EQ(request_retry_class(other_request{}), retry_safety::non_idempotent);
  EXPECT_EQ(request_rate_class(other_request{}), traffic_class::write);
}

TEST(command_info, core_runs_the_resolved_command) {
  testing::kv_fixture f;
  auto c = f.connect();
  const args_t get = {"GET", "k"};
  // The core takes the front end's resolution when it was made over these arguments against its own table: a
  // resolution that says TYPE runs TYPE, which proves the core did not look GET up again.
  resolved_command r = resolve(*f.table, get);
  r.def = f.table->find("type");
  testing::resp_test_builder b(&c->s.resp);
  request_context ctx;
  request req{ctx, c->s, get, b, &r};
  f.svc.execute(req);
  EXPECT_EQ(b.out, "+none\r\n");

  // Made against another table, or over other arguments: the core looks the command up itself.
  const auto other = command_table::make_default();
  resolved_command foreign = resolve(*other, get);
  foreign.def = other->find("type");
  testing::resp_test_builder b2(&c->s.resp);
  request req2{ctx, c->s, get, b2, &foreign};
  f.svc.execute(req2);
  EXPECT_EQ(b2.out, "$-1\r\n");

  const args_t copy = get;
  testing::resp_test_builder b3(&c->s.resp);
  request req3{ctx, c->s, copy, b3, &r};
  f.svc.execute(req3);
  EXPECT_EQ(b3.out, "$-1\r\n");
}

}  // namespace
}  // namespace turret::kv
