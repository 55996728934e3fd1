#include <turret/upstream/replication_roles.hpp>

#include <gtest/gtest.h>

namespace turret::upstream {
namespace {

constexpr std::string_view master_info =
    "# Replication\r\nrole:master\r\nconnected_slaves:2\r\n"
    "slave0:ip=127.0.0.1,port=7002,state=online,offset=1000,lag=0\r\nmaster_failover_state:no-failover\r\n"
    "master_replid:8a1c\r\nmaster_repl_offset:1000\r\nsecond_repl_offset:-1\r\n";

std::string replica_info(bool up, std::uint64_t offset) {
  return "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:7001\r\nmaster_link_status:" +
         std::string(up ? "up" : "down") + "\r\nslave_repl_offset:" + std::to_string(offset) +
         "\r\nmaster_repl_offset:" + std::to_string(offset) + "\r\n";
}

replication_info replica(bool up, std::uint64_t offset) { return *parse_replication_info(replica_info(up, offset)); }
replication_info master() { return *parse_replication_info(master_info); }

TEST(ReplicationRoles, ParsesInfoReplication) {
  const auto m = parse_replication_info(master_info);
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->reachable);
  EXPECT_TRUE(m->master);
  EXPECT_EQ(m->connected_slaves, 2u);
  EXPECT_EQ(m->master_repl_offset, 1000u);
  const auto r = parse_replication_info(replica_info(true, 990));
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->master);
  EXPECT_TRUE(r->link_up);
  EXPECT_EQ(r->slave_repl_offset, 990u);
  EXPECT_FALSE(parse_replication_info("# Replication\nconnected_slaves:0\n"));
  EXPECT_FALSE(parse_replication_info(""));
}

TEST(ReplicationRoles, WritesToThePrimaryReadsFromHealthyReplicas) {
  const auto a = assign_roles({replica(true, 990), master(), replica(true, 1000)}, role_assignment::none, 100);
  EXPECT_EQ(a.primary, 1u);
  EXPECT_EQ(a.reads, (std::vector<bool>{true, false, true}));
  EXPECT_EQ(a.tier, role_assignment::read_tier::replicas);
  EXPECT_EQ(a.lag, (std::vector<std::uint64_t>{10, 0, 0}));
}

TEST(ReplicationRoles, LaggingDownAndUnreachableReplicasAreOut) {
  replication_info gone = replica(true, 1000);
  gone.reachable = false;
  auto a = assign_roles({replica(true, 800), master(), replica(false, 1000), gone}, role_assignment::none, 100);
  EXPECT_EQ(a.primary, 1u);
  EXPECT_EQ(a.reads, (std::vector<bool>{false, true, false, false}));  // none qualifies: the primary reads
  EXPECT_EQ(a.tier, role_assignment::read_tier::primary);
  a = assign_roles({replica(true, 800), master(), replica(false, 1000)}, role_assignment::none, 200);
  EXPECT_EQ(a.reads, (std::vector<bool>{true, false, false}));
}

TEST(ReplicationRoles, WithoutAPrimaryReplicasServeStaleReads) {
  replication_info dead = master();
  dead.reachable = false;
  const auto a = assign_roles({dead, replica(false, 900), replica(false, 950)}, 0, 100);
  EXPECT_EQ(a.primary, role_assignment::none);
  EXPECT_EQ(a.reads, (std::vector<bool>{false, true, true}));
  EXPECT_EQ(a.tier, role_assignment::read_tier::stale_replicas);
  const auto none = assign_roles({dead}, 0, 100);
  EXPECT_EQ(none.tier, role_assignment::read_tier::none);
  EXPECT_EQ(none.reads, std::vector<bool>{false});
}

TEST(ReplicationRoles, PromotionAndTwoMasters) {
  replication_info dead = master();
  dead.reachable = false;
  replication_info promoted = *parse_replication_info("role:master\nconnected_slaves:0\nmaster_repl_offset:1000\n");
  // The old primary is dead, a replica was promoted, the other still follows the dead one.
  auto a = assign_roles({dead, promoted, replica(false, 1000)}, 0, 100);
  EXPECT_EQ(a.primary, 1u);
  EXPECT_EQ(a.tier, role_assignment::read_tier::primary);
  // The old primary comes back as a master: the current primary stays.
  replication_info back = *parse_replication_info("role:master\nconnected_slaves:0\nmaster_repl_offset:0\n");
  a = assign_roles({back, promoted, replica(false, 1000)}, 1, 100);
  EXPECT_EQ(a.primary, 1u);
  // With no current primary, the master with the most replicas wins.
  a = assign_roles({back, master()}, role_assignment::none, 100);
  EXPECT_EQ(a.primary, 1u);
}

}  // namespace
}  // namespace turret::upstream
