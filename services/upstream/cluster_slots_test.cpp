#include <turret/upstream/cluster_slots.hpp>

#include <gtest/gtest.h>

namespace turret::upstream {
namespace {

using resp::value;

value arr(std::vector<value> v) {
  value a;
  a.type = value::kind::array;
  a.elements = std::move(v);
  return a;
}
value node(std::string host, long long port, std::string id = "abc") {
  return arr({value::make_bulk(std::move(host)), value::make_integer(port), value::make_bulk(std::move(id)),
              arr({})});
}

TEST(ClusterSlots, ParsesRangesPrimariesAndReplicas) {
  const value reply = arr({
      arr({value::make_integer(0), value::make_integer(5460), node("127.0.0.1", 7001), node("127.0.0.1", 7004)}),
      arr({value::make_integer(5461), value::make_integer(10922), node("", 7002)}),  // the asked node, host unknown
      arr({value::make_integer(10923), value::make_integer(16383), node("::1", 7003), node("127.0.0.1", 7005),
           node("?", 7006)}),
  });
  auto r = parse_cluster_slots(reply, "10.0.0.9");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].first, 0);
  EXPECT_EQ((*r)[0].last, 5460);
  EXPECT_EQ((*r)[0].primary.name(), "127.0.0.1:7001");
  ASSERT_EQ((*r)[0].replicas.size(), 1u);
  EXPECT_EQ((*r)[0].replicas[0].name(), "127.0.0.1:7004");
  EXPECT_EQ((*r)[1].primary.name(), "10.0.0.9:7002");
  EXPECT_TRUE((*r)[1].replicas.empty());
  EXPECT_EQ((*r)[2].primary.name(), "[::1]:7003");
  ASSERT_EQ((*r)[2].replicas.size(), 2u);
  EXPECT_EQ((*r)[2].replicas[1].name(), "10.0.0.9:7006");
}

TEST(ClusterSlots, RejectsWhatIsNotASlotMap) {
  EXPECT_FALSE(parse_cluster_slots(value::make_error("ERR This instance has cluster support disabled"), "h"));
  EXPECT_FALSE(parse_cluster_slots(
      arr({arr({value::make_integer(0), value::make_integer(16384), node("127.0.0.1", 7001)})}), "h"));
  EXPECT_FALSE(parse_cluster_slots(
      arr({arr({value::make_integer(10), value::make_integer(5), node("127.0.0.1", 7001)})}), "h"));
  EXPECT_FALSE(parse_cluster_slots(
      arr({arr({value::make_integer(0), value::make_integer(5), node("127.0.0.1", 70000)})}), "h"));
  EXPECT_FALSE(parse_cluster_slots(arr({arr({value::make_integer(0), value::make_integer(5)})}), "h"));
  auto empty = parse_cluster_slots(arr({}), "h");  // a cluster without slots assigned yet
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
}

TEST(ClusterSlots, ParsesMovedAndAsk) {
  auto m = parse_redirect("MOVED 3999 127.0.0.1:6381");
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->moved);
  EXPECT_EQ(m->slot, 3999);
  EXPECT_EQ(m->to.name(), "127.0.0.1:6381");
  auto a = parse_redirect("ASK 16383 [::1]:7002");
  ASSERT_TRUE(a);
  EXPECT_FALSE(a->moved);
  EXPECT_EQ(a->slot, 16383);
  EXPECT_EQ(a->to.host, "::1");
  EXPECT_EQ(a->to.port, 7002);
  auto unknown_host = parse_redirect("MOVED 1 :7003");
  ASSERT_TRUE(unknown_host);
  EXPECT_EQ(unknown_host->to.host, "");
  for (const char* e : {"ERR unknown command", "MOVED", "MOVED 16384 127.0.0.1:1", "MOVED 1 127.0.0.1",
                        "ASK x 127.0.0.1:1", "MOVED 1 127.0.0.1:0", "CROSSSLOT Keys in request don't hash"}) {
    EXPECT_FALSE(parse_redirect(e)) << e;
  }
}

}  // namespace
}  // namespace turret::upstream
