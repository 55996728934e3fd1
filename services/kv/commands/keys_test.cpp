#include <services/kv/commands/test_support.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <thread>

namespace turret::kv {
namespace {

using testing::kv_fixture;

TEST(keys, del_exists_type_touch) {
  kv_fixture f;
  auto c = f.connect();
  (*c)({"set", "a", "1"});
  (*c)({"set", "b", "2"});
  EXPECT_EQ((*c)({"exists", "a", "a", "z"}), ":2\r\n");
  EXPECT_EQ((*c)({"type", "a"}), "+string\r\n");
  EXPECT_EQ((*c)({"type", "z"}), "+none\r\n");
  EXPECT_EQ((*c)({"touch", "a", "z"}), ":1\r\n");
  EXPECT_EQ((*c)({"del", "a", "b", "z"}), ":2\r\n");
  (*c)({"set", "u", "1"});
  EXPECT_EQ((*c)({"unlink", "u", "u"}), ":1\r\n");
  EXPECT_EQ((*c)({"dbsize"}), ":0\r\n");
}

TEST(keys, keys_scan_randomkey) {
  kv_fixture f;
  auto c = f.connect();
  EXPECT_EQ((*c)({"randomkey"}), "$-1\r\n");
  (*c)({"set", "hello", "1"});
  (*c)({"set", "hallo", "1"});
  (*c)({"set", "other", "1"});
  auto k = (*c)({"keys", "h?llo"});
  EXPECT_TRUE(k == "*2\r\n$5\r\nhello\r\n$5\r\nhallo\r\n" || k == "*2\r\n$5\r\nhallo\r\n$5\r\nhello\r\n") << k;
  EXPECT_EQ((*c)({"keys", "nomatch*"}), "*0\r\n");
  EXPECT_EQ((*c)({"scan", "x"}), "-ERR invalid cursor\r\n");
  EXPECT_EQ((*c)({"scan", "0", "count", "0"}), "-ERR syntax error\r\n");
  EXPECT_EQ((*c)({"scan", "0", "count", "x"}), "-ERR value is not an integer or out of range\r\n");
  EXPECT_EQ((*c)({"scan", "0", "foo"}), "-ERR syntax error\r\n");
  auto s = (*c)({"scan", "0", "match", "o*", "count", "100"});
  EXPECT_EQ(s, "*2\r\n$1\r\n0\r\n*1\r\n$5\r\nother\r\n");
  EXPECT_EQ((*c)({"scan", "0", "type", "list", "count", "100"}), "*2\r\n$1\r\n0\r\n*0\r\n");
  auto r = (*c)({"randomkey"});
  EXPECT_EQ(r.substr(0, 4), "$5\r\n");
}

TEST(keys, rename_copy_move) {
  kv_fixture f;
  auto c = f.connect();
  EXPECT_EQ((*c)({"rename", "a", "b"}), "-ERR no such key\r\n");
  (*c)({"set", "a", "1"});
  EXPECT_EQ((*c)({"rename", "a", "a"}), "+OK\r\n");
  EXPECT_EQ((*c)({"renamenx", "a", "a"}), ":0\r\n");
  (*c)({"pexpire", "a", "100000"});
  EXPECT_EQ((*c)({"rename", "a", "b"}), "+OK\r\n");
  EXPECT_EQ((*c)({"exists", "a"}), ":0\r\n");
  EXPECT_EQ((*c)({"ttl", "b"}), ":100\r\n");
  (*c)({"set", "c", "3"});
  EXPECT_EQ((*c)({"renamenx", "b", "c"}), ":0\r\n");
  EXPECT_EQ((*c)({"renamenx", "b", "d"}), ":1\r\n");
  EXPECT_EQ((*c)({"copy", "d", "d"}), "-ERR source and destination objects are the same\r\n");
  EXPECT_EQ((*c)({"copy", "d", "c"}), ":0\r\n");
  EXPECT_EQ((*c)({"copy", "d", "c", "replace"}), ":1\r\n");
  EXPECT_EQ((*c)({"get", "c"}), "$1\r\n1\r\n");
  EXPECT_EQ((*c)({"copy", "d", "x", "db", "99"}), "-ERR DB index is out of range\r\n");
  EXPECT_EQ((*c)({"copy", "d", "x", "db"}), "-ERR syntax error\r\n");
  EXPECT_EQ((*c)({"copy", "d", "x", "db", "1"}), ":1\r\n");
  EXPECT_EQ((*c)({"copy", "nokey", "x"}), ":0\r\n");
  EXPECT_EQ((*c)({"move", "d", "0"}), "-ERR source and destination objects are the same\r\n");
  EXPECT_EQ((*c)({"move", "d", "x"}), "-ERR value is not an integer or out of range\r\n");
  EXPECT_EQ((*c)({"move", "d", "16"}), "-ERR DB index is out of range\r\n");
  EXPECT_EQ((*c)({"move", "d", "1"}), ":1\r\n");
  EXPECT_EQ((*c)({"move", "c", "1"}), ":1\r\n");
  (*c)({"set", "c", "again"});
  (*c)({"select", "1"});
  EXPECT_EQ((*c)({"dbsize"}), ":3\r\n");
  (*c)({"select", "0"});
  EXPECT_EQ((*c)({"move", "c", "1"}), ":0\r\n");  // exists in target
}

TEST(keys, expire_family) {
  kv_fixture f;
  auto c = f.connect();
  EXPECT_EQ((*c)({"expire", "a", "10"}), ":0\r\n");
  (*c)({"set", "a", "1"});
  EXPECT_EQ((*c)({"ttl", "a"}), ":-1\r\n");
  EXPECT_EQ((*c)({"ttl", "z"}), ":-2\r\n");
  EXPECT_EQ((*c)({"expire", "a", "x"}), "-ERR value is not an integer or out of range\r\n");
  EXPECT_EQ((*c)({"expire", "a", "10", "foo"}), "-ERR Unsupported option foo\r\n");
  EXPECT_EQ((*c)({"expire", "a", "10", "nx", "xx"}),
            "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n");
  EXPECT_EQ((*c)({"expire", "a", "10", "gt", "lt"}),
            "-ERR GT and LT options at the same time are not compatible\r\n");
  EXPECT_EQ((*c)({"expire", "a", "9223372036854775807"}), "-ERR invalid expire time in 'expire' command\r\n");
  EXPECT_EQ((*c)({"pexpireat", "a", "9223372036854775807"}), ":1\r\n");
  EXPECT_EQ((*c)({"persist", "a"}), ":1\r\n");
  EXPECT_EQ((*c)({"persist", "a"}), ":0\r\n");
  EXPECT_EQ((*c)({"expire", "a", "100", "xx"}), ":0\r\n");
  EXPECT_EQ((*c)({"expire", "a", "100", "gt"}), ":0\r\n");
  EXPECT_EQ((*c)({"expire", "a", "100", "nx"}), ":1\r\n");
  EXPECT_EQ((*c)({"expire", "a", "50", "gt"}), ":0\r\n");
  EXPECT_EQ((*c)({"expire", "a", "200", "gt"}), ":1\r\n");
  EXPECT_EQ((*c)({"expire", "a", "50", "lt"}), ":1\r\n");
  EXPECT_EQ((*c)({"ttl", "a"}), ":50\r\n");
  EXPECT_EQ((*c)({"pexpireat", "a", "4102444800000"}), ":1\r\n");
  EXPECT_EQ((*c)({"expiretime", "a"}), ":4102444800\r\n");
  EXPECT_EQ((*c)({"pexpiretime", "a"}), ":4102444800000\r\n");
  EXPECT_EQ((*c)({"expireat", "a", "4102444801"}), ":1\r\n");
  EXPECT_EQ((*c)({"pexpiretime", "a"}), ":4102444801000\r\n");
  EXPECT_EQ((*c)({"expiretime", "z"}), ":-2\r\n");
  // a time in the past deletes the key
  EXPECT_EQ((*c)({"expire", "a", "-1"}), ":1\r\n");
  EXPECT_EQ((*c)({"exists", "a"}), ":0\r\n");
  (*c)({"set", "p", "1"});
  EXPECT_EQ((*c)({"pexpire", "p", "100000"}), ":1\r\n");
  auto pttl = (*c)({"pttl", "p"});
  EXPECT_TRUE(pttl == ":100000\r\n" || pttl == ":99999\r\n" || pttl.substr(0, 3) == ":99") << pttl;
}

TEST(keys, active_expiry_deletes_and_notifies) {
  kv_fixture f;
  auto c = f.connect();
  (*c)({"set", "a", "1"});
  (*c)({"pexpire", "a", "1"});
  (*c)({"config", "set", "notify-keyspace-events", "Ex"});
  auto s = f.connect();
  (*s)({"subscribe", "__keyevent@0__:expired"});
  for (int i = 0; i < 100 && f.st->db(0).size() != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    f.st->active_expire_cycle();
  }
  EXPECT_EQ(f.st->db(0).size(), 0u);
  EXPECT_NE(s->host.delivered.find("$22\r\n__keyevent@0__:expired\r\n$1\r\na\r\n"), std::string::npos);
  auto info = (*c)({"info", "stats"});
  EXPECT_NE(info.find("expired_keys:1\r\n"), std::string::npos);
}

}  // namespace
}  // namespace turret::kv
