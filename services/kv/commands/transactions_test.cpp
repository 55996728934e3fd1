#include <services/kv/commands/test_support.hpp>

#include <gtest/gtest.h>

namespace turret::kv {
namespace {

using testing::kv_fixture;

TEST(transactions, multi_exec) {
  kv_fixture f;
  auto c = f.connect();
  EXPECT_EQ((*c)({"exec"}), "-ERR EXEC without MULTI\r\n");
  EXPECT_EQ((*c)({"discard"}), "-ERR DISCARD without MULTI\r\n");
  EXPECT_EQ((*c)({"multi"}), "+OK\r\n");
  EXPECT_EQ((*c)({"multi"}), "-ERR MULTI calls can not be nested\r\n");
  EXPECT_EQ((*c)({"watch", "a"}), "-ERR WATCH inside MULTI is not allowed\r\n");
  EXPECT_EQ((*c)({"set", "a", "1"}), "+QUEUED\r\n");
  EXPECT_EQ((*c)({"get", "a"}), "+QUEUED\r\n");
  EXPECT_EQ((*c)({"exec"}), "*2\r\n+OK\r\n$1\r\n1\r\n");
  EXPECT_FALSE(c->s.in_multi);
}

TEST(transactions, execabort_on_queue_errors) {
  kv_fixture f;
  auto c = f.connect();
  (*c)({"multi"});
  EXPECT_EQ((*c)({"shutdown"}), "-ERR Command not allowed inside a transaction\r\n");
  EXPECT_EQ((*c)({"get"}), "-ERR wrong number of arguments for 'get' command\r\n");
  EXPECT_EQ((*c)({"nosuch"}), "-ERR unknown command 'nosuch', with args beginning with: \r\n");
  EXPECT_EQ((*c)({"exec"}), "-EXECABORT Transaction discarded because of previous errors.\r\n");
  EXPECT_FALSE(c->s.in_multi);
}

TEST(transactions, rejected_exec_aborts_with_reason) {
  kv_fixture f;
  auto c = f.connect();
  (*c)({"multi"});
  EXPECT_EQ((*c)({"exec", "x"}),
            "-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command\r\n");
  EXPECT_EQ((*c)({"exec"}), "-ERR EXEC without MULTI\r\n");
  (*c)({"subscribe", "a"});
  EXPECT_EQ((*c)({"exec"}),
            "-EXECABORT Transaction discarded because of: Can't execute 'exec': only (P|S)SUBSCRIBE / "
            "(P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n");
  // SUBSCRIBE queued inside MULTI runs at EXEC
  (*c)({"reset"});
  (*c)({"multi"});
  EXPECT_EQ((*c)({"subscribe", "a"}), "+QUEUED\r\n");
  EXPECT_EQ((*c)({"exec"}), "*1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n");
  EXPECT_EQ((*c)({"ping"}), "*2\r\n$4\r\npong\r\n$0\r\n\r\n");
}

TEST(transactions, discard) {
  kv_fixture f;
  auto c = f.connect();
  (*c)({"multi"});
  (*c)({"set", "a", "1"});
  EXPECT_EQ((*c)({"discard"}), "+OK\r\n");
  EXPECT_EQ((*c)({"exists", "a"}), ":0\r\n");
}

TEST(transactions, watch) {
  kv_fixture f;
  auto c = f.connect();
  auto d = f.connect();
  EXPECT_EQ((*c)({"watch", "k"}), "+OK\r\n");
  (*d)({"set", "k", "x"});
  (*c)({"multi"});
  (*c)({"set", "k", "y"});
  EXPECT_EQ((*c)({"exec"}), "*-1\r\n");
  EXPECT_EQ((*c)({"get", "k"}), "$1\r\nx\r\n");
  // unchanged watched key: EXEC runs
  (*c)({"watch", "k"});
  (*c)({"multi"});
  (*c)({"set", "k", "y"});
  EXPECT_EQ((*c)({"exec"}), "*1\r\n+OK\r\n");
  // UNWATCH forgets
  (*c)({"watch", "k"});
  (*d)({"del", "k"});
  (*c)({"unwatch"});
  (*c)({"multi"});
  (*c)({"ping"});
  EXPECT_EQ((*c)({"exec"}), "*1\r\n+PONG\r\n");
  // FLUSHALL touches existing watched keys; RESP3 null
  (*c)({"hello", "3"});
  (*d)({"set", "k", "1"});
  (*c)({"watch", "k"});
  (*d)({"flushall"});
  (*c)({"multi"});
  (*c)({"ping"});
  EXPECT_EQ((*c)({"exec"}), "_\r\n");
}

TEST(transactions, watch_expire_and_other_db) {
  kv_fixture f;
  auto c = f.connect();
  auto d = f.connect();
  (*c)({"watch", "k"});
  (*d)({"select", "1"});
  (*d)({"set", "k", "x"});  // other db: not the watched key
  (*c)({"multi"});
  (*c)({"ping"});
  EXPECT_EQ((*c)({"exec"}), "*1\r\n+PONG\r\n");
}

}  // namespace
}  // namespace turret::kv
