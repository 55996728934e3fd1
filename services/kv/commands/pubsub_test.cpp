#include <services/kv/commands/test_support.hpp>

#include <gtest/gtest.h>

namespace turret::kv {
namespace {

using testing::kv_fixture;

TEST(pubsub, subscribe_publish_resp2) {
  kv_fixture f;
  auto c = f.connect();
  auto p = f.connect();
  EXPECT_EQ((*c)({"subscribe", "a", "b"}),
            "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n");
  EXPECT_EQ((*c)({"psubscribe", "a*"}), "*3\r\n$10\r\npsubscribe\r\n$2\r\na*\r\n:3\r\n");
  EXPECT_EQ((*p)({"publish", "a", "hi"}), ":2\r\n");
  EXPECT_EQ(c->host.delivered,
            "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n*4\r\n$8\r\npmessage\r\n$2\r\na*\r\n$1\r\na\r\n$2\r\nhi\r\n");
  EXPECT_EQ((*p)({"publish", "zzz", "hi"}), ":0\r\n");
  EXPECT_EQ((*c)({"get", "a"}),
            "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in "
            "this context\r\n");
  EXPECT_EQ((*c)({"ping"}), "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
  EXPECT_EQ((*c)({"ping", "x"}), "*2\r\n$4\r\npong\r\n$1\r\nx\r\n");
  EXPECT_EQ((*p)({"pubsub", "numsub", "a", "c"}), "*4\r\n$1\r\na\r\n:1\r\n$1\r\nc\r\n:0\r\n");
  EXPECT_EQ((*p)({"pubsub", "numpat"}), ":1\r\n");
  EXPECT_EQ((*p)({"pubsub", "channels", "b*"}), "*1\r\n$1\r\nb\r\n");
  EXPECT_EQ((*c)({"unsubscribe", "a", "x"}),
            "*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:2\r\n*3\r\n$11\r\nunsubscribe\r\n$1\r\nx\r\n:2\r\n");
  EXPECT_EQ((*c)({"unsubscribe"}), "*3\r\n$11\r\nunsubscribe\r\n$1\r\nb\r\n:1\r\n");
  EXPECT_EQ((*c)({"punsubscribe"}), "*3\r\n$12\r\npunsubscribe\r\n$2\r\na*\r\n:0\r\n");
  EXPECT_EQ((*c)({"unsubscribe"}), "*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n");
  EXPECT_EQ((*c)({"get", "a"}), "$-1\r\n");
}

TEST(pubsub, resp3_push_and_no_restriction) {
  kv_fixture f;
  auto c = f.connect();
  (*c)({"hello", "3"});
  EXPECT_EQ((*c)({"subscribe", "a"}), ">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
  EXPECT_EQ((*c)({"get", "a"}), "_\r\n");
  EXPECT_EQ((*c)({"ping"}), "+PONG\r\n");
  EXPECT_EQ((*c)({"publish", "a", "m"}), ":1\r\n");
  EXPECT_EQ(c->host.delivered, ">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nm\r\n");
  EXPECT_EQ((*c)({"unsubscribe"}), ">3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n");
}

TEST(pubsub, detach_drops_subscriptions) {
  kv_fixture f;
  auto p = f.connect();
  {
    auto c = f.connect();
    (*c)({"subscribe", "a"});
    EXPECT_EQ((*p)({"publish", "a", "x"}), ":1\r\n");
  }
  EXPECT_EQ((*p)({"publish", "a", "x"}), ":0\r\n");
  EXPECT_EQ((*p)({"pubsub", "channels"}), "*0\r\n");
}

TEST(pubsub, keyspace_notifications) {
  kv_fixture f;
  auto c = f.connect();
  auto w = f.connect();
  EXPECT_EQ((*w)({"config", "set", "notify-keyspace-events", "KEA"}), "+OK\r\n");
  EXPECT_EQ((*w)({"config", "get", "notify-keyspace-events"}),
            "*2\r\n$22\r\nnotify-keyspace-events\r\n$3\r\nAKE\r\n");
  (*c)({"psubscribe", "__key*__:*"});
  (*w)({"set", "k", "v"});
  (*w)({"expire", "k", "100"});
  (*w)({"del", "k"});
  const std::string& d = c->host.delivered;
  EXPECT_NE(d.find("$16\r\n__keyspace@0__:k\r\n$3\r\nset\r\n"), std::string::npos);
  EXPECT_NE(d.find("$18\r\n__keyevent@0__:set\r\n$1\r\nk\r\n"), std::string::npos);
  EXPECT_NE(d.find("$16\r\n__keyspace@0__:k\r\n$6\r\nexpire\r\n"), std::string::npos);
  EXPECT_NE(d.find("$16\r\n__keyspace@0__:k\r\n$3\r\ndel\r\n"), std::string::npos);
  EXPECT_EQ((*w)({"config", "set", "notify-keyspace-events", "Q"}),
            "-ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class "
            "character. Use 'Ag$lshzxeKEtmdn'.\r\n");
}

TEST(pubsub, keyspace_event_strings) {
  EXPECT_EQ(keyspace_events_to_string(static_cast<std::uint32_t>(keyspace_events_from_string("KEA"))), "AKE");
  EXPECT_EQ(keyspace_events_to_string(static_cast<std::uint32_t>(keyspace_events_from_string("Eg$x"))), "g$xE");
  EXPECT_EQ(keyspace_events_from_string("Z"), -1);
  EXPECT_EQ(keyspace_events_to_string(static_cast<std::uint32_t>(keyspace_events_from_string("Anm"))), "Am");
}

}  // namespace
}  // namespace turret::kv
