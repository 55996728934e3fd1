#include <services/kv/commands/test_support.hpp>
#include <turret/kv/glob.hpp>
#include <turret/kv/value_reply_builder.hpp>

#include <gtest/gtest.h>

namespace turret::kv {
namespace {

using testing::kv_fixture;

TEST(dispatch, unknown_command) {
  kv_fixture f;
  auto c = f.connect();
  EXPECT_EQ((*c)({"foo"}), "-ERR unknown command 'foo', with args beginning with: \r\n");
  EXPECT_EQ((*c)({"foo", "a", "b"}), "-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n");
  EXPECT_EQ((*c)({"foo", "a\r\nb"}), "-ERR unknown command 'foo', with args beginning with: 'a  b' \r\n");
  // args are cut at 128 characters in total
  std::string big(200, 'x');
  auto r = c->run({"foo", big, "y"});
  EXPECT_EQ(r, "-ERR unknown command 'foo', with args beginning with: '" + std::string(128, 'x') + "' \r\n");
}

TEST(dispatch, unknown_subcommand_and_arity) {
  kv_fixture f;
  auto c = f.connect();
  EXPECT_EQ((*c)({"client", "nope"}), "-ERR unknown subcommand 'nope'. Try CLIENT HELP.\r\n");
  EXPECT_EQ((*c)({"Config", "x"}), "-ERR unknown subcommand 'x'. Try CONFIG HELP.\r\n");
  EXPECT_EQ((*c)({"client"}), "-ERR wrong number of arguments for 'client' command\r\n");
  EXPECT_EQ((*c)({"client", "kill"}), "-ERR wrong number of arguments for 'client|kill' command\r\n");
  EXPECT_EQ((*c)({"GET"}), "-ERR wrong number of arguments for 'get' command\r\n");
  EXPECT_EQ((*c)({"echo", "a", "b"}), "-ERR wrong number of arguments for 'echo' command\r\n");
  EXPECT_EQ((*c)({"pInG"}), "+PONG\r\n");
}

TEST(dispatch, noauth) {
  store_options o;
  o.requirepass = "secret";
  kv_fixture f(o);
  auto c = f.connect();
  EXPECT_EQ((*c)({"get", "a"}), "-NOAUTH Authentication required.\r\n");
  EXPECT_EQ((*c)({"auth", "bad"}), "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
  EXPECT_EQ((*c)({"auth", "secret"}), "+OK\r\n");
  EXPECT_EQ((*c)({"ping"}), "+PONG\r\n");
  auto d = f.connect();
  EXPECT_EQ((*d)({"hello", "3"}).substr(0, 7), "-NOAUTH");
  EXPECT_EQ((*d)({"auth", "default", "secret"}), "+OK\r\n");
}

TEST(connection, auth_without_password) {
  kv_fixture f;
  auto c = f.connect();
  EXPECT_EQ((*c)({"auth", "x"}),
            "-ERR AUTH <password> called without any password configured for the default user. Are you sure your "
            "configuration is correct?\r\n");
  EXPECT_EQ((*c)({"auth", "default", "anything"}), "+OK\r\n");
  EXPECT_EQ((*c)({"auth", "bob", "x"}), "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
  EXPECT_EQ((*c)({"auth", "a", "b", "c"}), "-ERR syntax error\r\n");
}

TEST(connection, ping_echo_select_quit) {
  kv_fixture f;
  auto c = f.connect();
  EXPECT_EQ((*c)({"ping", "hi"}), "$2\r\nhi\r\n");
  EXPECT_EQ((*c)({"ping", "a", "b"}), "-ERR wrong number of arguments for 'ping' command\r\n");
  EXPECT_EQ((*c)({"echo", "x"}), "$1\r\nx\r\n");
  EXPECT_EQ((*c)({"select", "16"}), "-ERR DB index is out of range\r\n");
  EXPECT_EQ((*c)({"select", "x"}), "-ERR value is not an integer or out of range\r\n");
  EXPECT_EQ((*c)({"select", "3"}), "+OK\r\n");
  EXPECT_EQ(c->s.db, 3);
  EXPECT_EQ((*c)({"swapdb", "a", "1"}), "-ERR invalid first DB index\r\n");
  EXPECT_EQ((*c)({"swapdb", "1", "b"}), "-ERR invalid second DB index\r\n");
  EXPECT_EQ((*c)({"swapdb", "1", "99"}), "-ERR DB index is out of range\r\n");
  EXPECT_EQ((*c)({"quit"}), "+OK\r\n");
  EXPECT_TRUE(c->s.close_after_reply);
}

TEST(connection, swapdb_moves_data) {
  kv_fixture f;
  auto c = f.connect();
  (*c)({"set", "k", "v"});
  EXPECT_EQ((*c)({"swapdb", "0", "1"}), "+OK\r\n");
  EXPECT_EQ((*c)({"exists", "k"}), ":0\r\n");
  (*c)({"select", "1"});
  EXPECT_EQ((*c)({"get", "k"}), "$1\r\nv\r\n");
}

TEST(connection, hello) {
  kv_fixture f;
  auto c = f.connect();
  auto id = std::to_string(c->s.id);
  EXPECT_EQ((*c)({"hello", "4"}), "-NOPROTO unsupported protocol version\r\n");
  EXPECT_EQ((*c)({"hello", "x"}), "-ERR Protocol version is not an integer or out of range\r\n");
  EXPECT_EQ((*c)({"hello", "3", "foo"}), "-ERR Syntax error in HELLO option 'foo'\r\n");
  EXPECT_EQ((*c)({"hello", "3"}),
            "%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:" +
                id + "\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n");
  EXPECT_EQ((*c)({"hello", "2", "setname", "bob"}),
            "*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:2\r\n$2\r\nid\r\n:" +
                id + "\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n");
  EXPECT_EQ((*c)({"client", "getname"}), "$3\r\nbob\r\n");
  EXPECT_EQ((*c)({"hello", "3", "setname", "a b"}),
            "-ERR Client names cannot contain spaces, newlines or special characters.\r\n");
}

TEST(connection, reset) {
  kv_fixture f;
  auto c = f.connect();
  (*c)({"hello", "3", "setname", "x"});
  (*c)({"select", "2"});
  (*c)({"multi"});
  EXPECT_EQ((*c)({"reset"}), "+RESET\r\n");
  EXPECT_EQ(c->s.resp, 2);
  EXPECT_EQ(c->s.db, 0);
  EXPECT_FALSE(c->s.in_multi);
  EXPECT_EQ((*c)({"client", "getname"}), "$-1\r\n");
}

TEST(connection, client_basics) {
  kv_fixture f;
  auto c = f.connect();
  EXPECT_EQ((*c)({"client", "id"}), ":" + std::to_string(c->s.id) + "\r\n");
  EXPECT_EQ((*c)({"client", "getname"}), "$-1\r\n");
  EXPECT_EQ((*c)({"client", "setname", "a\nb"}),
            "-ERR Client names cannot contain spaces, newlines or special characters.\r\n");
  EXPECT_EQ((*c)({"client", "setname", "worker"}), "+OK\r\n");
  EXPECT_EQ((*c)({"client", "getname"}), "$6\r\nworker\r\n");
  auto info = (*c)({"client", "info"});
  EXPECT_NE(info.find("id=" + std::to_string(c->s.id) + " addr=" + c->s.addr + " laddr=127.0.0.1:6379 fd=-1 name=worker "),
            std::string::npos);
  EXPECT_NE(info.find(" flags=N db=0 sub=0 psub=0 ssub=0 multi=-1 "), std::string::npos);
  EXPECT_NE(info.find(" cmd=client|info user=default redir=-1 resp=2\n\r\n"), std::string::npos);
  auto d = f.connect();
  auto list = (*c)({"client", "list"});
  EXPECT_NE(list.find("id=" + std::to_string(d->s.id) + " "), std::string::npos);
  EXPECT_EQ((*c)({"client", "list", "type", "bad"}), "-ERR Unknown client type 'bad'\r\n");
  EXPECT_EQ((*c)({"client", "list", "id", "x"}), "-ERR Invalid client ID\r\n");
  EXPECT_EQ((*c)({"client", "list", "foo"}), "-ERR syntax error\r\n");
  (*c)({"hello", "3"});
  EXPECT_EQ((*c)({"client", "info"}).substr(0, 1), "=");
}

TEST(connection, client_kill) {
  kv_fixture f;
  auto c = f.connect();
  auto d = f.connect();
  EXPECT_EQ((*c)({"client", "kill", "1.2.3.4:5"}), "-ERR No such client\r\n");
  EXPECT_EQ((*c)({"client", "kill", "id", "0"}), "-ERR client-id should be greater than 0\r\n");
  EXPECT_EQ((*c)({"client", "kill", "type", "x"}), "-ERR Unknown client type 'x'\r\n");
  EXPECT_EQ((*c)({"client", "kill", "user", "bob"}), "-ERR No such user 'bob'\r\n");
  EXPECT_EQ((*c)({"client", "kill", "skipme", "maybe"}), "-ERR syntax error\r\n");
  EXPECT_EQ((*c)({"client", "kill", "foo", "bar"}), "-ERR syntax error\r\n");
  EXPECT_EQ((*c)({"client", "kill", d->s.addr}), "+OK\r\n");
  EXPECT_TRUE(d->host.killed);
  auto e = f.connect();
  EXPECT_EQ((*c)({"client", "kill", "id", std::to_string(e->s.id)}), ":1\r\n");
  EXPECT_EQ((*c)({"client", "kill", "user", "default"}), ":0\r\n");  // skipme yes by default
  EXPECT_EQ((*c)({"client", "kill", "user", "default", "skipme", "no"}), ":1\r\n");
  EXPECT_TRUE(c->s.close_after_reply);
}

TEST(connection, client_reply) {
  kv_fixture f;
  auto c = f.connect();
  EXPECT_EQ((*c)({"client", "reply", "bad"}), "-ERR syntax error\r\n");
  EXPECT_EQ((*c)({"client", "reply", "off"}), "");
  EXPECT_EQ((*c)({"ping"}), "");
  EXPECT_EQ((*c)({"client", "reply", "on"}), "+OK\r\n");
  EXPECT_EQ((*c)({"client", "reply", "skip"}), "");
  EXPECT_EQ((*c)({"ping"}), "");
  EXPECT_EQ((*c)({"ping"}), "+PONG\r\n");
}

TEST(connection, client_help_is_redis_text) {
  kv_fixture f;
  auto c = f.connect();
  auto h = (*c)({"client", "help"});
  EXPECT_EQ(h.substr(0, 1), "*");
  EXPECT_NE(h.find("CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"), std::string::npos);
}

TEST(glob, redis_stringmatchlen_cases) {
  EXPECT_FALSE(glob_match("*", ""));  // Redis: the loop never runs on an empty string
  EXPECT_TRUE(glob_match("h?llo", "hello"));
  EXPECT_TRUE(glob_match("h*llo", "heeeello"));
  EXPECT_TRUE(glob_match("h[ae]llo", "hallo"));
  EXPECT_FALSE(glob_match("h[^e]llo", "hello"));
  EXPECT_TRUE(glob_match("h[a-b]llo", "hbllo"));
  EXPECT_TRUE(glob_match("h[b-a]llo", "hbllo"));  // reversed range
  EXPECT_TRUE(glob_match("a\\*b", "a*b"));
  EXPECT_FALSE(glob_match("a\\*b", "axb"));
  EXPECT_FALSE(glob_match("a[", "a["));  // unterminated class: no match, as Redis
  EXPECT_TRUE(glob_match("HELLO", "hello", true));
  EXPECT_FALSE(glob_match("a*", "b"));
  EXPECT_TRUE(glob_match("a**", "abc"));
}

TEST(value_reply_builder, builds_trees_and_parses_raw) {
  value_reply_builder b(3);
  b.array(2);
  b.bulk("a");
  b.map(1);
  b.simple("k");
  b.integer(5);
  b.raw("*2\r\n$1\r\nx\r\n%1\r\n+y\r\n:1\r\n");
  ASSERT_EQ(b.replies().size(), 2u);
  EXPECT_EQ(to_resp(b.replies()[0], 3), "*2\r\n$1\r\na\r\n%1\r\n+k\r\n:5\r\n");
  EXPECT_EQ(to_resp(b.replies()[0], 2), "*2\r\n$1\r\na\r\n*2\r\n+k\r\n:5\r\n");
  EXPECT_EQ(to_resp(b.replies()[1], 3), "*2\r\n$1\r\nx\r\n%1\r\n+y\r\n:1\r\n");
}

}  // namespace
}  // namespace turret::kv
