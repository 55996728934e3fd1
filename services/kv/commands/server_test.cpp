#include <services/kv/commands/test_support.hpp>

#include <gtest/gtest.h>

namespace turret::kv {
namespace {

using testing::kv_fixture;

TEST(server, dbsize_flush_time) {
  kv_fixture f;
  auto c = f.connect();
  (*c)({"set", "a", "1"});
  EXPECT_EQ((*c)({"dbsize"}), ":1\r\n");
  EXPECT_EQ((*c)({"flushdb", "foo"}), "-ERR syntax error\r\n");
  EXPECT_EQ((*c)({"flushdb", "sync", "async"}), "-ERR syntax error\r\n");
  EXPECT_EQ((*c)({"flushdb", "ASYNC"}), "+OK\r\n");
  EXPECT_EQ((*c)({"dbsize"}), ":0\r\n");
  (*c)({"set", "a", "1"});
  (*c)({"select", "5"});
  (*c)({"set", "a", "1"});
  EXPECT_EQ((*c)({"flushall"}), "+OK\r\n");
  EXPECT_EQ(f.st->db(0).size() + f.st->db(5).size(), 0u);
  auto t = (*c)({"time"});
  EXPECT_EQ(t.substr(0, 9), "*2\r\n$10\r\n");
}

TEST(server, config) {
  kv_fixture f;
  auto c = f.connect();
  EXPECT_EQ((*c)({"config", "get", "maxclients"}), "*2\r\n$10\r\nmaxclients\r\n$5\r\n10000\r\n");
  EXPECT_EQ((*c)({"config", "get", "MAXCLIENTS"}), "*2\r\n$10\r\nMAXCLIENTS\r\n$5\r\n10000\r\n");
  EXPECT_EQ((*c)({"config", "get", "nosuch"}), "*0\r\n");
  EXPECT_EQ((*c)({"config", "get", "save"}), "*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
  EXPECT_EQ((*c)({"config", "get", "appendonly"}), "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
  EXPECT_EQ((*c)({"config", "get", "client-output-buffer-limit"}),
            "*2\r\n$26\r\nclient-output-buffer-limit\r\n$67\r\nnormal 0 0 0 slave 268435456 67108864 60 pubsub "
            "33554432 8388608 60\r\n");
  EXPECT_EQ((*c)({"config", "get", "proto-max-bulk-len"}), "*2\r\n$18\r\nproto-max-bulk-len\r\n$9\r\n536870912\r\n");
  auto m = (*c)({"config", "get", "maxc*", "time*"});
  EXPECT_NE(m.find("$10\r\nmaxclients\r\n"), std::string::npos);
  EXPECT_NE(m.find("$7\r\ntimeout\r\n$1\r\n0\r\n"), std::string::npos);
  EXPECT_EQ((*c)({"config", "set", "databases", "3"}),
            "-ERR CONFIG SET failed (possibly related to argument 'databases') - can't set immutable config\r\n");
  EXPECT_EQ((*c)({"config", "set", "hz", "abc"}),
            "-ERR CONFIG SET failed (possibly related to argument 'hz') - argument couldn't be parsed into an "
            "integer\r\n");
  EXPECT_EQ((*c)({"config", "set", "maxclients", "10", "hz"}), "-ERR syntax error\r\n");
  EXPECT_EQ((*c)({"config", "set", "foo", "bar"}),
            "-ERR Unknown option or number of arguments for CONFIG SET - 'foo'\r\n");
  EXPECT_EQ((*c)({"config", "set", "hz", "5", "hz", "6"}),
            "-ERR CONFIG SET failed (possibly related to argument 'hz') - duplicate parameter\r\n");
  EXPECT_EQ((*c)({"config", "set", "timeout", "-1"}),
            "-ERR CONFIG SET failed (possibly related to argument 'timeout') - argument must be between 0 and "
            "2147483647 inclusive\r\n");
  EXPECT_EQ((*c)({"config", "set", "maxmemory-policy", "foo"}),
            "-ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be one of "
            "the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, "
            "allkeys-random, noeviction\r\n");
  EXPECT_EQ((*c)({"config", "set", "client-output-buffer-limit", "pubsub 1mb 2mb"}),
            "-ERR CONFIG SET failed (possibly related to argument 'client-output-buffer-limit') - Wrong number of "
            "arguments in buffer limit configuration.\r\n");
  // atomic: a failing parameter leaves the others untouched
  EXPECT_NE((*c)({"config", "set", "maxclients", "50", "hz", "x"}), "+OK\r\n");
  EXPECT_EQ(f.st->limits().maxclients.load(), 10000u);
  EXPECT_EQ((*c)({"config", "set", "maxclients", "50", "hz", "0", "timeout", "7"}), "+OK\r\n");
  EXPECT_EQ(f.st->limits().maxclients.load(), 50u);
  EXPECT_EQ(f.st->limits().timeout.load(), 7);
  EXPECT_EQ((*c)({"config", "get", "hz"}), "*2\r\n$2\r\nhz\r\n$1\r\n1\r\n");
  EXPECT_EQ((*c)({"config", "set", "client-output-buffer-limit", "pubsub 1mb 2mb 3"}), "+OK\r\n");
  EXPECT_EQ(f.st->limits().pubsub_hard.load(), 1048576u);
  EXPECT_EQ((*c)({"config", "set", "requirepass", "pw"}), "+OK\r\n");
  EXPECT_EQ((*c)({"ping"}), "+PONG\r\n");  // existing connections stay authenticated
  auto d = f.connect();
  EXPECT_EQ((*d)({"ping"}), "-NOAUTH Authentication required.\r\n");
  EXPECT_EQ((*c)({"config", "resetstat"}), "+OK\r\n");
  (*c)({"hello", "3"});
  EXPECT_EQ((*c)({"config", "get", "timeout"}), "%1\r\n$7\r\ntimeout\r\n$1\r\n7\r\n");
}

TEST(server, command_introspection) {
  kv_fixture f;
  auto c = f.connect();
  EXPECT_EQ((*c)({"command", "info", "get", "nosuch"}),
            "*2\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@read\r\n+@string\r\n+@"
            "fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$"
            "5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$"
            "4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n$-1\r\n");
  EXPECT_EQ((*c)({"command", "docs", "get", "nosuch"}),
            "*2\r\n$3\r\nget\r\n*10\r\n$7\r\nsummary\r\n$22\r\nGet the value of a key\r\n$5\r\nsince\r\n$5\r\n1.0.0\r\n$"
            "5\r\ngroup\r\n$6\r\nstring\r\n$10\r\ncomplexity\r\n$4\r\nO(1)\r\n$9\r\narguments\r\n*1\r\n*6\r\n$4\r\nname\r\n$"
            "3\r\nkey\r\n$4\r\ntype\r\n$3\r\nkey\r\n$14\r\nkey_spec_index\r\n:0\r\n");
  auto count = (*c)({"command", "count"});
  auto n = std::stoul(count.substr(1));
  EXPECT_GT(n, 60u);
  auto all = (*c)({"command"});
  EXPECT_EQ(all.substr(0, count.size() - 2), "*" + count.substr(1, count.size() - 3));
  EXPECT_EQ((*c)({"command", "list", "foo"}), "-ERR syntax error\r\n");
  EXPECT_EQ((*c)({"command", "list", "filterby", "aclcat", "nosuch"}), "*0\r\n");
  EXPECT_EQ((*c)({"command", "list", "filterby", "pattern", "pubsub*"}),
            "*5\r\n$6\r\npubsub\r\n$15\r\npubsub|channels\r\n$13\r\npubsub|numsub\r\n$13\r\npubsub|numpat\r\n$"
            "11\r\npubsub|help\r\n");
  EXPECT_EQ((*c)({"command", "info", "client|kill"}).substr(0, 25), "*1\r\n*10\r\n$11\r\nclient|kill");
  (*c)({"hello", "3"});
  EXPECT_EQ((*c)({"command", "docs", "nosuch"}), "%0\r\n");
}

TEST(server, info_sections) {
  kv_fixture f;
  auto c = f.connect();
  EXPECT_EQ((*c)({"info", "foo"}), "$0\r\n\r\n");
  EXPECT_EQ((*c)({"info", "keyspace"}), "$12\r\n# Keyspace\r\n\r\n");
  (*c)({"set", "a", "1"});
  EXPECT_EQ((*c)({"info", "keyspace"}), "$44\r\n# Keyspace\r\ndb0:keys=1,expires=0,avg_ttl=0\r\n\r\n");
  auto all = (*c)({"info"});
  for (auto s : {"# Server\r\n", "# Clients\r\n", "# Memory\r\n", "# Persistence\r\n", "# Stats\r\n",
                 "# Replication\r\n", "# CPU\r\n", "# Keyspace\r\n", "redis_version:7.0.15\r\n",
                 "connected_clients:1\r\n"})
    EXPECT_NE(all.find(s), std::string::npos) << s;
  EXPECT_EQ(all.find("# Commandstats"), std::string::npos);
  auto two = (*c)({"info", "keyspace", "CLIENTS"});
  EXPECT_LT(two.find("# Clients"), two.find("# Keyspace"));
  auto cs = (*c)({"info", "commandstats"});
  EXPECT_NE(cs.find("cmdstat_set:calls=1,"), std::string::npos);
  (*c)({"hello", "3"});
  EXPECT_EQ((*c)({"info", "keyspace"}).substr(0, 9), "=48\r\ntxt:");
}

TEST(server, function_and_shutdown) {
  kv_fixture f;
  auto c = f.connect();
  EXPECT_EQ((*c)({"function", "list"}), "*0\r\n");
  EXPECT_EQ((*c)({"function", "list", "libraryname", "x", "withcode"}), "*0\r\n");
  EXPECT_EQ((*c)({"function", "list", "foo"}), "-ERR Unknown argument foo\r\n");
  EXPECT_EQ((*c)({"function", "list", "withcode", "withcode"}), "-ERR Unknown argument withcode\r\n");
  EXPECT_EQ((*c)({"function", "flush"}), "+OK\r\n");
  EXPECT_EQ((*c)({"function", "flush", "foo"}), "-ERR FUNCTION FLUSH only supports SYNC|ASYNC option\r\n");
  EXPECT_EQ((*c)({"shutdown", "foo"}), "-ERR syntax error\r\n");
  EXPECT_EQ((*c)({"shutdown", "save", "nosave"}), "-ERR syntax error\r\n");
  EXPECT_EQ((*c)({"shutdown", "abort"}), "-ERR No shutdown in progress.\r\n");
  bool called = false;
  f.st->on_shutdown = [&](const shutdown_request& r) { called = r.nosave; };
  EXPECT_EQ((*c)({"shutdown", "nosave"}), "");
  EXPECT_TRUE(called);
  EXPECT_TRUE(c->s.close_after_reply);
}

}  // namespace
}  // namespace turret::kv
