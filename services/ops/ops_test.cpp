// The operations of <turret/ops/operations.hpp> against the in-process backend, through both drivers
// (<turret/ops/run.hpp>): each outcome of each operation, the steps of the multi-step ones, and the resolved command
// every request carries to the layers.
#include <turret/kv/local.hpp>
#include <turret/ops/command_probe.hpp>
#include <turret/ops/run.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace turret::ops {
namespace {

namespace asio = boost::asio;
using testing::command_log;
using testing::command_probe;

kv::command_meter& meter() {
  thread_local kv::command_meter m("ops_test");
  return m;
}

/// A backend behind a command_probe; `immediate` false: the probe declines the fast path, so only run() works.
class ops_test : public ::testing::TestWithParam<bool> {
 protected:
  /// Runs Op with the driver of the parameter: run_now (fast path) or run (on a coroutine).
  template <class Op>
  result<status> exec_op(const typename Op::input& in, typename Op::output& out) {
    const target t{pipeline_, backend_->commands(), &meter, ctx_, sess_};
    if (GetParam()) {
      int step = 0;
      auto r = run_now<Op>(t, in, step, out);
      if (!r) ADD_FAILURE() << "the fast path declined";
      return r ? *r : result<status>(status::unexpected("declined"));
    }
    std::optional<result<status>> r;
    asio::io_context io;
    asio::co_spawn(io, run<Op>(t, in, out), [&](std::exception_ptr e, result<status> v) {
      if (e) std::rethrow_exception(e);
      r = std::move(v);
    });
    io.run();
    return r ? *r : result<status>(status::unexpected("did not finish"));
  }
  /// The outcome of Op (its output discarded).
  template <class Op>
  outcome outcome_of(const typename Op::input& in) {
    typename Op::output out;
    auto r = exec_op<Op>(in, out);
    EXPECT_TRUE(r.has_value()) << r.error().message();
    return r ? r->code : outcome::unexpected;
  }
  std::string message_of_set(const set_op::input& in) {
    set_op::output out;
    auto r = exec_op<set_op>(in, out);
    return r ? r->message : "";
  }

  std::shared_ptr<kv::local_backend> backend_ = std::make_shared<kv::local_backend>(kv::store_options{});
  std::shared_ptr<command_log> log_ = std::make_shared<command_log>();
  kv::pipeline_service pipeline_{command_probe{backend_->service(), log_, GetParam()}};
  request_context ctx_;
  kv::session sess_;
};

set_op::input set_in(std::string_view key, std::string_view value) {
  set_op::input in;
  in.key = key;
  in.value = value;
  return in;
}

TEST_P(ops_test, get_and_set) {
  EXPECT_EQ(outcome_of<get_op>({"k"}), outcome::not_found);
  EXPECT_EQ(outcome_of<set_op>(set_in("k", "v1")), outcome::ok);
  get_op::output got;
  ASSERT_TRUE(exec_op<get_op>({"k"}, got).value().ok());
  EXPECT_EQ(got.value, "v1");

  set_op::input in = set_in("k", "v2");
  in.cond = condition::if_not_exists;
  EXPECT_EQ(outcome_of<set_op>(in), outcome::precondition_failed);
  EXPECT_EQ(message_of_set(in), "key already exists");
  in.return_previous = true;  // the same with SET ... GET
  EXPECT_EQ(message_of_set(in), "key already exists");
  in = set_in("absent", "v");
  in.cond = condition::if_exists;
  EXPECT_EQ(message_of_set(in), "key does not exist");
  in.return_previous = true;
  EXPECT_EQ(message_of_set(in), "key does not exist");
  EXPECT_EQ(outcome_of<get_op>({"absent"}), outcome::not_found);

  in = set_in("k", "v3");
  in.return_previous = true;
  set_op::output prev;
  ASSERT_TRUE(exec_op<set_op>(in, prev).value().ok());
  EXPECT_TRUE(prev.had_previous);
  EXPECT_EQ(prev.previous, "v1");
}

TEST_P(ops_test, one_ttl_rule) {
  set_op::input in = set_in("k", "v");
  for (long long bad : {0LL, -1LL}) {
    in.ttl_ms = bad;
    EXPECT_EQ(message_of_set(in), "ttl must be positive");
    expire_op::output out;
    auto r = exec_op<expire_op>({"k", bad}, out);
    EXPECT_EQ(r->code, outcome::invalid_argument);
    EXPECT_EQ(r->message, "ttl must be positive");
  }
  in.ttl_ms = 5000;
  in.keep_ttl = true;
  EXPECT_EQ(message_of_set(in), "keep_ttl and ttl are mutually exclusive");
  EXPECT_TRUE(log_->take().empty());  // refused inputs send no command
}

TEST_P(ops_test, expire_ttl_persist) {
  EXPECT_EQ(outcome_of<expire_op>({"k", 1000}), outcome::not_found);
  EXPECT_EQ(outcome_of<ttl_op>({"k"}), outcome::not_found);
  EXPECT_EQ(outcome_of<persist_op>({"k"}), outcome::not_found);
  expire_op::output applied;
  ASSERT_TRUE(exec_op<expire_op>({"k", 1000, expire_condition::if_no_ttl}, applied).value().ok());
  EXPECT_FALSE(applied.applied);  // a condition turns a missing key into "not applied"

  ASSERT_EQ(outcome_of<set_op>(set_in("k", "v")), outcome::ok);
  ttl_op::output ttl;
  ASSERT_TRUE(exec_op<ttl_op>({"k"}, ttl).value().ok());
  EXPECT_FALSE(ttl.ttl_ms.has_value());  // no TTL
  persist_op::output persisted;
  ASSERT_TRUE(exec_op<persist_op>({"k"}, persisted).value().ok());  // a key without TTL: ok, nothing removed
  EXPECT_FALSE(persisted.removed);

  ASSERT_TRUE(exec_op<expire_op>({"k", 100000}, applied).value().ok());
  EXPECT_TRUE(applied.applied);
  ASSERT_TRUE(exec_op<ttl_op>({"k"}, ttl).value().ok());
  EXPECT_GT(ttl.ttl_ms.value_or(0), 90000);
  ASSERT_TRUE(exec_op<persist_op>({"k"}, persisted).value().ok());
  EXPECT_TRUE(persisted.removed);

  // Persist is PERSIST, then (nothing removed) EXISTS: the layers see both, resolved.
  log_->take();
  ASSERT_TRUE(exec_op<persist_op>({"k"}, persisted).value().ok());
  const auto seen = log_->take();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].name, "persist");
  EXPECT_EQ(seen[1].name, "exists");
}

TEST_P(ops_test, multi_key_operations) {
  mset_op::input ms;
  EXPECT_EQ(outcome_of<mset_op>(ms), outcome::invalid_argument);
  ms.entries = {{"a", "1"}, {"b", "2"}};
  ASSERT_EQ(outcome_of<mset_op>(ms), outcome::ok);
  ms.entries = {{"a", "9"}, {"c", "3"}};
  ms.if_none_exist = true;
  EXPECT_EQ(outcome_of<mset_op>(ms), outcome::precondition_failed);
  EXPECT_EQ(outcome_of<get_op>({"c"}), outcome::not_found);

  mget_op::output values;
  EXPECT_EQ(outcome_of<mget_op>({}), outcome::invalid_argument);
  ASSERT_TRUE(exec_op<mget_op>({{"a", "nope", "b"}}, values).value().ok());
  ASSERT_EQ(values.values.size(), 3u);
  EXPECT_EQ(values.values[0], "1");
  EXPECT_FALSE(values.values[1].has_value());
  EXPECT_EQ(values.values[2], "2");

  delete_op::output deleted;
  ASSERT_TRUE(exec_op<delete_op>({{"a", "nope"}}, deleted).value().ok());
  EXPECT_EQ(deleted.deleted, 1);
  EXPECT_EQ(outcome_of<delete_op>({{"a"}}), outcome::ok);                 // none existed: 0 deleted
  EXPECT_EQ(outcome_of<delete_op>({{"a"}, true}), outcome::not_found);  // ... unless asked to say so
}

TEST_P(ops_test, incr_publish_and_redis_errors) {
  incr_op::output n;
  ASSERT_TRUE(exec_op<incr_op>({"n", 41}, n).value().ok());
  ASSERT_TRUE(exec_op<incr_op>({"n"}, n).value().ok());
  EXPECT_EQ(n.value, 42);
  ASSERT_EQ(outcome_of<set_op>(set_in("s", "abc")), outcome::ok);
  auto r = exec_op<incr_op>({"s", 1}, n);
  EXPECT_EQ(r->code, outcome::redis_error);
  EXPECT_EQ(r->message, "ERR value is not an integer or out of range");
  ASSERT_EQ(outcome_of<set_op>(set_in("big", "9223372036854775807")), outcome::ok);
  r = exec_op<incr_op>({"big", 1}, n);
  EXPECT_EQ(r->code, outcome::redis_error);
  EXPECT_EQ(r->message, "ERR increment or decrement would overflow");

  publish_op::output receivers;
  ASSERT_TRUE(exec_op<publish_op>({"ch", "hello"}, receivers).value().ok());
  EXPECT_EQ(receivers.receivers, 0);
}

TEST_P(ops_test, scan_steps_and_filters) {
  for (std::string k : {"p:1", "p:2", "p:*x", "other"}) ASSERT_EQ(outcome_of<set_op>(set_in(k, "v")), outcome::ok);
  const scan_filter literal = make_scan_filter("p:*");
  EXPECT_EQ(literal.pattern, "p:\\**");
  scan_op::output out;
  ASSERT_TRUE(exec_op<scan_op>({0, 100, literal.pattern, literal.prefix}, out).value().ok());
  EXPECT_EQ(out.next, 0u);
  EXPECT_EQ(out.keys, std::vector<std::string>{"p:*x"});
  const scan_filter both = make_scan_filter("p:", "*2");  // a pattern, and the prefix as a filter
  ASSERT_TRUE(exec_op<scan_op>({0, 100, both.pattern, both.prefix}, out = {}).value().ok());
  EXPECT_EQ(out.keys, std::vector<std::string>{"p:2"});
  EXPECT_EQ(outcome_of<scan_op>({0, 0, {}, {}}), outcome::invalid_argument);
}

TEST_P(ops_test, every_command_carries_its_resolution_to_the_layers) {
  ASSERT_EQ(outcome_of<set_op>(set_in("k", "v")), outcome::ok);
  mget_op::output values;
  ASSERT_TRUE(exec_op<mget_op>({{"k", "k2"}}, values).value().ok());
  ASSERT_EQ(outcome_of<get_op>({"k"}), outcome::ok);
  const testing::expected_command want[] = {
      {"set", {"k"}, true, traffic_class::write},  // SET k v (no NX, no GET)
      {"mget", {"k", "k2"}, true, traffic_class::read},
      {"get", {"k"}, true, traffic_class::read},
  };
  const auto seen = log_->take();
  ASSERT_EQ(seen.size(), std::size(want));
  for (std::size_t i = 0; i < seen.size(); ++i)
    EXPECT_EQ(testing::differences(seen[i], want[i], GetParam()), "") << want[i].name;
}

INSTANTIATE_TEST_SUITE_P(drivers, ops_test, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "run_now" : "run"; });

}  // namespace
}  // namespace turret::ops
