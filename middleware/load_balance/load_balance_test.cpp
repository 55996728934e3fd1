#include <turret/any_service.hpp>
#include <turret/error_mapping.hpp>
#include <turret/metrics.hpp>
#include <turret/middleware/builtin.hpp>
#include <turret/middleware/hedge.hpp>
#include <turret/middleware/load_balance.hpp>
#include <turret/middleware/retry.hpp>
#include <turret/middleware/testing/layer_harness.hpp>
#include <turret/middleware/testing/mock_service.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <thread>
#include <string>
#include <vector>

namespace turret {
namespace {

using namespace std::chrono_literals;
using testing::mock_request;
using testing::mock_service;
using testing::mock_state;

/// A request with a routing key (found by ADL through request_routing_key).
struct keyed_request : mock_request {
  std::optional<std::string> key;
};
std::optional<std::string_view> routing_key(const keyed_request& r) noexcept {
  if (!r.key) return std::nullopt;
  return std::string_view(*r.key);
}

struct LoadBalanceTest : ::testing::Test, testing::layer_harness {
  metrics::registry reg;
  layer_context lctx = [this] {
    layer_context c;
    c.clk = clk;
    c.metric_registry = &reg;
    c.pipeline_name = "p1";
    return c;
  }();
  std::vector<std::shared_ptr<mock_state>> states;

  /// n mock endpoints named "e0".."e{n-1}", each with its own state on the harness clock.
  std::vector<lb_endpoint<mock_service>> endpoints(std::size_t n) {
    std::vector<lb_endpoint<mock_service>> eps;
    for (std::size_t i = 0; i < n; ++i) {
      states.push_back(std::make_shared<mock_state>(clk));
      eps.push_back({"e" + std::to_string(i), mock_service{states.back()}, {}, {}});
    }
    return eps;
  }

  static lb_config config(lb_config::policy p) {
    lb_config c;
    c.pol = p;
    return c;
  }

  std::uint64_t picks(const std::string& endpoint) {
    return reg.counter("turret_lb_picks_total", "", {"pipeline", "endpoint"}).with({"p1", endpoint}).value();
  }
  std::uint64_t ejections() { return reg.counter("turret_lb_ejections_total", "", {"pipeline"}).with({"p1"}).value(); }
  double healthy() { return reg.gauge("turret_lb_endpoints_healthy", "", {"pipeline"}).with({"p1"}).value(); }

  /// Runs one request to completion (advancing the clock 1ms at a time) and returns its result.
  template <class S>
  result<int> run(S& svc) {
    mock_request req;
    return run(svc, req);
  }
  template <class S, class R>
  result<int> run(S& svc, R& req) {
    req.ctx.reset_for_next_request();
    std::optional<result<int>> out;
    boost::asio::co_spawn(
        io, [&]() -> awaitable<void> { out.emplace(co_await ready_and_call(svc, req)); }, boost::asio::detached);
    io.poll();
    for (int i = 0; i < 100000 && !out; ++i) advance(1ms);
    return *out;
  }

  /// svc.ready(ctx), run until it suspends (the permit, or nullopt while it waits).
  template <class S>
  std::optional<result<typename S::permit_type>> take_permit(S& svc, request_context& ctx) {
    std::optional<result<typename S::permit_type>> p;
    boost::asio::co_spawn(
        io, [&]() -> awaitable<void> { p.emplace(co_await svc.ready(ctx)); }, boost::asio::detached);
    io.poll();
    return p;
  }

  std::vector<int> calls() {
    std::vector<int> v;
    for (auto& s : states) v.push_back(s->calls.load());
    return v;
  }

  void expect_no_leaks(detail::lb_balancer& bal) {
    for (std::size_t i = 0; i < states.size(); ++i) {
      EXPECT_EQ(states[i]->live_permits, 0) << i;
      EXPECT_EQ(bal.state(i).pending.load(), 0) << i;
    }
  }
};

TEST_F(LoadBalanceTest, ErrorMapsToUnavailable) {
  const error_code ec = lb_errc::no_endpoint;
  EXPECT_STREQ(ec.category().name(), "turret.load_balance");
  EXPECT_EQ(ec, errc::unavailable);
  EXPECT_EQ(resp_error(ec), "ERR unavailable: no endpoint available");
  EXPECT_EQ(to_http_error(ec).status, 503);
}

TEST_F(LoadBalanceTest, RoundRobinIsExact) {
  auto svc = load_balance_layer(config(lb_config::policy::round_robin), lctx).balance(endpoints(3));
  std::vector<std::size_t> order;
  for (int k = 0; k < 9; ++k) {
    request_context ctx;
    auto p = take_permit(svc, ctx);
    ASSERT_TRUE(p && *p);
    order.push_back((*p)->index);
  }
  EXPECT_EQ(order, (std::vector<std::size_t>{0, 1, 2, 0, 1, 2, 0, 1, 2}));
  for (int k = 0; k < 6; ++k) ASSERT_TRUE(run(svc));
  EXPECT_EQ(calls(), (std::vector<int>{2, 2, 2}));
  EXPECT_EQ(picks("e0"), 5u);  // 3 permits dropped unspent + 2 calls
  expect_no_leaks(svc.balancer());
}

TEST_F(LoadBalanceTest, RoundRobinFastPathIsExactAndDeclinesWithoutSideEffect) {
  auto svc = load_balance_layer(config(lb_config::policy::round_robin), lctx).balance(endpoints(3));
  static_assert(immediate_service<decltype(svc), mock_request>);
  for (auto& s : states) s->immediate = true;
  mock_request req;
  for (int k = 0; k < 6; ++k) ASSERT_TRUE(svc.try_call_now(req));
  EXPECT_EQ(calls(), (std::vector<int>{2, 2, 2}));
  states[0]->immediate = false;  // endpoint 0 would suspend: declined, nothing counted, the turn stays
  EXPECT_FALSE(svc.try_call_now(req));
  EXPECT_FALSE(svc.try_call_now(req));
  EXPECT_EQ(picks("e0"), 2u);
  states[0]->immediate = true;
  ASSERT_TRUE(svc.try_call_now(req));
  EXPECT_EQ(calls(), (std::vector<int>{3, 2, 2}));
  expect_no_leaks(svc.balancer());
}

TEST_F(LoadBalanceTest, CallbackStartPicksCountsPendingAndRecordsTheOutcome) {
  lb_config cfg = config(lb_config::policy::round_robin);
  cfg.outlier.emplace();
  cfg.outlier->consecutive_failures = 2;
  auto svc = load_balance_layer(cfg, lctx).balance(endpoints(2));
  static_assert(startable_service<decltype(svc), mock_request>);
  for (auto& s : states) s->startable = true;
  std::vector<result<int>> got;
  auto collect = [&got] { return completion<int>([&got](result<int> r) { got.push_back(r); }); };
  for (int k = 0; k < 4; ++k) {
    mock_request req;
    req.value = k;
    completion<int> done = collect();
    ASSERT_TRUE(svc.try_start(req, done));
    EXPECT_FALSE(done);
  }
  // Round robin; all four in flight: each counts as pending on its endpoint until it completes.
  EXPECT_EQ(calls(), (std::vector<int>{2, 2}));
  EXPECT_EQ(picks("e0"), 2u);
  EXPECT_EQ(svc.balancer().state(0).pending.load(), 2);
  EXPECT_EQ(svc.balancer().state(1).pending.load(), 2);
  mock_service{states[1]}.finish();
  mock_service{states[1]}.finish();
  EXPECT_EQ(svc.balancer().state(1).pending.load(), 0);
  EXPECT_EQ(got.size(), 2u);
  EXPECT_EQ(*got[0], 2);  // value 1 x 2
  // Two failures of endpoint 0 recorded by the callbacks: ejected (consecutive_failures 2).
  mock_service{states[0]}.finish(make_error_code(lb_errc::no_endpoint));
  EXPECT_EQ(ejections(), 0u);
  mock_service{states[0]}.finish(make_error_code(lb_errc::no_endpoint));
  EXPECT_EQ(ejections(), 1u);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_FALSE(got[3]);
  expect_no_leaks(svc.balancer());

  // Endpoint 0 is out: picks go to endpoint 1. When it declines to start, so does the balancer, with its
  // completion untouched and nothing counted.
  states[1]->startable = false;
  mock_request req;
  completion<int> done = collect();
  EXPECT_FALSE(svc.try_start(req, done));
  EXPECT_TRUE(done);
  EXPECT_EQ(picks("e1"), 2u);
  EXPECT_EQ(calls(), (std::vector<int>{2, 2}));
  expect_no_leaks(svc.balancer());
}

TEST_F(LoadBalanceTest, P2cPeakEwmaPrefersTheFastEndpoint) {
  auto eps = endpoints(2);
  states[0]->call_delay = 10ms;
  states[1]->call_delay = 1ms;
  auto svc = load_balance_layer(config(lb_config::policy::p2c), lctx).balance(std::move(eps));
  for (int k = 0; k < 1000; ++k) ASSERT_TRUE(run(svc));
  // Two endpoints: every pick compares both; once the slow one answered once, it is not chosen again (its 10ms
  // estimate decays with a 10s time constant: below the fast one's 1ms only after ~23s without answers).
  EXPECT_LE(states[0]->calls, 2);
  EXPECT_GE(states[1]->calls, 998);
  expect_no_leaks(svc.balancer());
}

TEST_F(LoadBalanceTest, P2cPeakEwmaOverFourEndpointsGivesTheFastOneHalf) {
  auto eps = endpoints(4);
  for (int i = 1; i < 4; ++i) states[i]->call_delay = 10ms;
  states[0]->call_delay = 1ms;
  auto svc = load_balance_layer(config(lb_config::policy::p2c), lctx).balance(std::move(eps));
  for (int k = 0; k < 1200; ++k) ASSERT_TRUE(run(svc));
  // The fast endpoint wins every pair it is drawn in: 3 of the 6 pairs, so half the requests (p2c's bound).
  const double fast = states[0]->calls / 1200.0;
  EXPECT_GT(fast, 0.45);
  EXPECT_LT(fast, 0.56);
}

TEST_F(LoadBalanceTest, P2cPeakEwmaWeighsPendingRequests) {
  auto eps = endpoints(2);
  states[0]->call_delay = 10ms;
  states[1]->call_delay = 1ms;
  auto svc = load_balance_layer(config(lb_config::policy::p2c), lctx).balance(std::move(eps));
  while (states[0]->calls == 0 || states[1]->calls == 0) ASSERT_TRUE(run(svc));  // both estimates learnt
  states[0]->calls = states[1]->calls = 0;
  // 22 concurrent requests: the fast one (1ms x (pending + 1)) takes requests until its cost reaches the slow one's
  // (10ms): about ten for one.
  std::vector<std::optional<result<int>>> outs(22);
  std::vector<mock_request> reqs(22);
  for (std::size_t k = 0; k < outs.size(); ++k) start(svc, reqs[k], outs[k]);
  EXPECT_GE(states[1]->calls, 18);
  EXPECT_GE(states[0]->calls, 1);
  advance(10ms);
  for (auto& o : outs) ASSERT_TRUE(o && *o);
  expect_no_leaks(svc.balancer());
}

TEST_F(LoadBalanceTest, P2cPeakEwmaDoesNotFavourAnEndpointThatFailsFast) {
  auto eps = endpoints(2);
  states[0]->call_error = make_error_code(lb_errc::no_endpoint);  // answers at once, with an error
  states[1]->call_delay = 1ms;
  auto svc = load_balance_layer(config(lb_config::policy::p2c), lctx).balance(std::move(eps));
  int failed = 0;
  for (int k = 0; k < 200; ++k) failed += run(svc) ? 0 : 1;
  // A failure counts as twice the estimate (at least default_rtt), however fast it came: the failing endpoint
  // loses to the 1ms one. (Without it, its 0ms "answers" would draw every request.)
  EXPECT_LE(failed, 5);
}

/// Two endpoints whose estimates are learnt: e0 answers in 1ms, e1 in 10ms; then e0 stops answering (a SIGSTOPped
/// server) while p2c still rates it best (an estimate moves only when answers come back).
template <class Fixture>
auto stalled_cheap_endpoint(Fixture& f) {
  auto eps = f.endpoints(2);
  f.states[0]->call_delay = 1ms;
  f.states[1]->call_delay = 10ms;
  auto lb = load_balance_layer(Fixture::config(lb_config::policy::p2c), f.lctx).balance(std::move(eps));
  while (f.states[1]->calls == 0) EXPECT_TRUE(f.run(lb));
  while (f.states[0]->calls == 0) EXPECT_TRUE(f.run(lb));
  f.states[0]->calls = f.states[1]->calls = 0;
  f.states[0]->call_delay = 10s;
  return lb;
}

TEST_F(LoadBalanceTest, AHedgeGoesToAnEndpointTheRequestHasNotTried) {
  auto lb = stalled_cheap_endpoint(*this);
  hedge_config hc;
  hc.delay = 5ms;
  auto svc = hedge_layer(hc, lctx).wrap(lb);
  mock_request req;
  std::optional<result<int>> out;
  start(svc, req, out);
  EXPECT_EQ(calls(), (std::vector<int>{1, 0}));  // e0 costs 1ms x 1, e1 10ms
  advance(5ms);
  // The hedge: e0 would still cost less (1ms x 2 pending), but the request is on it already.
  EXPECT_EQ(calls(), (std::vector<int>{1, 1}));
  for (int i = 0; i < 10 && !out; ++i) advance(1ms);
  ASSERT_TRUE(out && *out);
  EXPECT_EQ(states[0]->in_call, 0);  // the first attempt was interrupted
  expect_no_leaks(lb.balancer());
}

TEST_F(LoadBalanceTest, ARetryGoesToAnEndpointTheRequestHasNotTried) {
  auto lb = stalled_cheap_endpoint(*this);
  states[0]->call_delay = 1ms;
  states[0]->call_error = make_error_code(boost::asio::error::connection_reset);  // e0 fails fast
  retry_config rc;
  rc.backoff_base = 1ms;
  rc.backoff_max = 1ms;
  auto svc = retry_layer(rc, lctx, nullptr, 1).wrap(lb);
  for (int k = 0; k < 20; ++k) {
    mock_request req;
    const auto before = calls();
    ASSERT_TRUE(run(svc, req));
    // At most one attempt on e0: its failure sends the retry to e1, however cheap e0 still looks.
    EXPECT_LE(states[0]->calls - before[0], 1) << k;
    EXPECT_EQ(states[1]->calls - before[1], 1) << k;
  }
  // e0 was tried (it still looked cheapest to a new request): the retries above had an endpoint to avoid.
  EXPECT_GE(states[0]->calls, 1);
  expect_no_leaks(lb.balancer());
}

TEST_F(LoadBalanceTest, RoundRobinSkipsTriedEndpointsUnlessAllWereTried) {
  auto svc = load_balance_layer(config(lb_config::policy::round_robin), lctx).balance(endpoints(3));
  mock_request req;
  // The request tried e0 and e1 already: round robin's turn (e0) is skipped.
  req.ctx.note_attempted_endpoint(&svc.balancer(), 0);
  req.ctx.note_attempted_endpoint(&svc.balancer(), 1);
  auto p = take_permit(svc, req.ctx);
  ASSERT_TRUE(p && *p);
  EXPECT_EQ((*p)->index, 2u);
  // Every endpoint tried: any endpoint in service will do.
  req.ctx.note_attempted_endpoint(&svc.balancer(), 2);
  auto q = take_permit(svc, req.ctx);
  ASSERT_TRUE(q && *q);
  EXPECT_NE((*q)->index, no_endpoint_index);
  // Another balancer's marks do not count here.
  mock_request other;
  int foreign = 0;
  other.ctx.note_attempted_endpoint(&foreign, 0);
  EXPECT_EQ(other.ctx.attempted_endpoints(&svc.balancer()), 0u);
}

TEST_F(LoadBalanceTest, P2cPendingBalancesInFlightRequests) {
  lb_config c = config(lb_config::policy::p2c);
  c.p2c.load = lb_config::load_metric::pending;
  auto eps = endpoints(2);
  for (auto& s : states) s->call_delay = 1s;
  auto svc = load_balance_layer(c, lctx).balance(std::move(eps));
  std::vector<std::optional<result<int>>> outs(10);
  std::vector<mock_request> reqs(10);
  for (std::size_t k = 0; k < outs.size(); ++k) start(svc, reqs[k], outs[k]);
  EXPECT_EQ(calls(), (std::vector<int>{5, 5}));  // always the one with fewer pending
  EXPECT_EQ(svc.balancer().state(0).pending, 5);
  advance(1s);
  expect_no_leaks(svc.balancer());
}

TEST_F(LoadBalanceTest, KeyedPoliciesSendAKeyToOneEndpoint) {
  for (auto pol : {lb_config::policy::ring_hash, lb_config::policy::maglev}) {
    states.clear();
    auto svc = load_balance_layer(config(pol), lctx).balance(endpoints(4));
    const hash_ring ring({"e0", "e1", "e2", "e3"}, 160);
    const maglev_table mag({"e0", "e1", "e2", "e3"}, 65537);
    for (int k = 0; k < 40; ++k) {
      keyed_request req;
      req.key = "user:" + std::to_string(k % 8);
      const std::size_t owner = pol == lb_config::policy::ring_hash ? ring.owner(routing_hash(*req.key))
                                                                     : mag.owner(routing_hash(*req.key));
      const auto before = calls();
      ASSERT_TRUE(run(svc, req));
      auto after = calls();
      EXPECT_EQ(after[owner], before[owner] + 1) << to_string(pol) << " " << *req.key;  // the documented owner
    }
    expect_no_leaks(svc.balancer());
  }
}

TEST_F(LoadBalanceTest, HashTagsKeepTaggedKeysTogether) {
  lb_config c = config(lb_config::policy::ring_hash);
  c.ring_hash.hash_tag = true;
  auto svc = load_balance_layer(c, lctx).balance(endpoints(4));
  for (auto& s : states) s->immediate = true;
  for (int t = 0; t < 8; ++t) {
    std::set<std::size_t> owners;
    for (const char* suffix : {":a", ":b", ":c", ":d"}) {
      keyed_request req;
      req.key = "{tag" + std::to_string(t) + "}" + suffix;
      const auto before = calls();
      ASSERT_TRUE(svc.try_call_now(req));
      const auto after = calls();
      for (std::size_t i = 0; i < after.size(); ++i) {
        if (after[i] != before[i]) owners.insert(i);
      }
    }
    EXPECT_EQ(owners.size(), 1u) << t;
  }
}

TEST_F(LoadBalanceTest, KeyedFastPathAndKeylessFallback) {
  lb_config c = config(lb_config::policy::ring_hash);
  c.p2c.load = lb_config::load_metric::pending;  // (instant mock answers: every peak-EWMA estimate would be 0)
  auto svc = load_balance_layer(c, lctx).balance(endpoints(3));
  for (auto& s : states) s->immediate = true;
  const hash_ring ring({"e0", "e1", "e2"}, 160);
  keyed_request req;
  req.key = "k";
  for (int k = 0; k < 5; ++k) ASSERT_TRUE(svc.try_call_now(req));
  EXPECT_EQ(states[ring.owner(routing_hash("k"))]->calls, 5);
  keyed_request keyless;  // no key: p2c over all of them
  for (int k = 0; k < 300; ++k) ASSERT_TRUE(svc.try_call_now(keyless));
  for (auto& s : states) EXPECT_GT(s->calls, 50);
}

lb_config with_outlier(lb_config c, std::uint32_t failures, std::chrono::nanoseconds base, std::chrono::nanoseconds max,
                       double percent = 50) {
  c.outlier = lb_config::outlier_options{failures, base, max, percent};
  return c;
}

TEST_F(LoadBalanceTest, OutlierEjectsAfterConsecutiveFailuresWithGrowingTime) {
  auto eps = endpoints(2);
  states[1]->call_error = make_error_code(lb_errc::no_endpoint);  // any error of condition unavailable
  auto svc = load_balance_layer(with_outlier(config(lb_config::policy::round_robin), 3, 30s, 300s), lctx)
                 .balance(std::move(eps));
  EXPECT_EQ(healthy(), 2);
  int failed = 0;
  for (int k = 0; k < 6; ++k) failed += run(svc) ? 0 : 1;
  EXPECT_EQ(failed, 3);  // requests 1, 3, 5 went to the failing endpoint; the third failure ejected it
  EXPECT_EQ(ejections(), 1u);
  EXPECT_EQ(healthy(), 1);
  for (int k = 0; k < 20; ++k) ASSERT_TRUE(run(svc));  // all on endpoint 0 now
  EXPECT_EQ(states[1]->calls, 3);

  // Back after 30s (base x 1); three failures again: ejected for 60s (base x 2), then 90s.
  const std::pair<std::chrono::seconds, std::uint64_t> rounds[] = {{30s, 2}, {60s, 3}, {90s, 4}};
  for (const auto& [length, n] : rounds) {
    const auto ejected_at = clk->now();
    advance(length - (clk->now() - ejected_at) - 1s);
    for (int k = 0; k < 4; ++k) ASSERT_TRUE(run(svc));  // still out
    advance(length - (clk->now() - ejected_at));          // its time is up
    int f = 0;
    for (int k = 0; k < 6; ++k) f += run(svc) ? 0 : 1;
    EXPECT_EQ(f, 3) << length.count();
    EXPECT_EQ(ejections(), n);
  }
  expect_no_leaks(svc.balancer());
}

// With an executor the ejected endpoint comes back when its time is up, and the gauge with it, without any pick.
TEST_F(LoadBalanceTest, TheHealthyGaugeIsExactAtEjectionAndReturn) {
  auto eps = endpoints(2);
  states[1]->call_error = make_error_code(lb_errc::no_endpoint);
  auto svc = load_balance_layer(with_outlier(config(lb_config::policy::round_robin), 3, 30s, 300s), lctx)
                 .balance(std::move(eps), io.get_executor());
  EXPECT_EQ(healthy(), 2);
  for (int k = 0; k < 6; ++k) (void)run(svc);
  EXPECT_EQ(ejections(), 1u);
  EXPECT_EQ(healthy(), 1);  // at the ejection
  advance(29s);
  EXPECT_EQ(healthy(), 1);
  advance(1s);
  EXPECT_EQ(healthy(), 2);  // at the return, no request sent
  EXPECT_FALSE(svc.balancer().ejected(1, clk->now()));
  EXPECT_EQ(svc.balancer().in_service(), 2u);
  expect_no_leaks(svc.balancer());
}

TEST_F(LoadBalanceTest, OutlierEjectionIsCappedAtMaxAndDecaysInService) {
  auto eps = endpoints(2);
  auto svc = load_balance_layer(with_outlier(config(lb_config::policy::round_robin), 1, 100s, 250s), lctx)
                 .balance(std::move(eps));
  auto& bal = svc.balancer();
  auto fail_once = [&] {
    bal.record(1, make_error_code(lb_errc::no_endpoint), std::nullopt);
  };
  const std::chrono::seconds expected[] = {100s, 200s, 250s, 250s};
  for (auto length : expected) {
    fail_once();
    EXPECT_TRUE(bal.ejected(1, clk->now()));
    advance(length - 1s);
    EXPECT_TRUE(bal.ejected(1, clk->now())) << length.count();
    advance(1s);
    EXPECT_FALSE(bal.ejected(1, clk->now())) << length.count();
    EXPECT_EQ(bal.in_service(), 2u);  // brings it back
  }
  // Four ejections so far; 300s in service take three off the multiplier: the next one lasts (4 - 3 + 1) x 100s.
  advance(300s);
  fail_once();
  advance(199s);
  EXPECT_TRUE(bal.ejected(1, clk->now()));
  advance(1s);
  EXPECT_FALSE(bal.ejected(1, clk->now()));
}

TEST_F(LoadBalanceTest, SuccessResetsConsecutiveFailures) {
  auto eps = endpoints(1);
  auto svc = load_balance_layer(with_outlier(config(lb_config::policy::round_robin), 3, 30s, 300s), lctx)
                 .balance(std::move(eps));
  for (int k = 0; k < 10; ++k) {
    states[0]->call_error = make_error_code(lb_errc::no_endpoint);
    EXPECT_FALSE(run(svc));
    EXPECT_FALSE(run(svc));
    states[0]->call_error = {};
    EXPECT_TRUE(run(svc));
  }
  EXPECT_EQ(ejections(), 0u);
  // Errors of other conditions are not failures.
  states[0]->call_error = make_error_code(boost::system::errc::resource_unavailable_try_again);  // overloaded
  for (int k = 0; k < 5; ++k) EXPECT_FALSE(run(svc));
  EXPECT_EQ(ejections(), 0u);
}

TEST_F(LoadBalanceTest, MaxEjectedPercentLimitsEjections) {
  auto eps = endpoints(4);
  for (auto& s : states) s->call_error = make_error_code(lb_errc::no_endpoint);
  auto svc = load_balance_layer(with_outlier(config(lb_config::policy::round_robin), 2, 30s, 300s, 50), lctx)
                 .balance(std::move(eps));
  for (int k = 0; k < 40; ++k) EXPECT_FALSE(run(svc));
  EXPECT_EQ(ejections(), 2u);  // 50% of 4
  EXPECT_EQ(svc.balancer().in_service(), 2u);
  EXPECT_EQ(healthy(), 2);

  // 0%: still one may be ejected.
  states.clear();
  auto one = load_balance_layer(with_outlier(config(lb_config::policy::round_robin), 1, 30s, 300s, 0), lctx)
                 .balance(endpoints(3));
  for (auto& s : states) s->call_error = make_error_code(lb_errc::no_endpoint);
  for (int k = 0; k < 9; ++k) EXPECT_FALSE(run(one));
  EXPECT_EQ(one.balancer().in_service(), 2u);
}

TEST_F(LoadBalanceTest, ReadinessFailuresCountAndAllEjectedFailsFast) {
  auto eps = endpoints(2);
  states[0]->ready_error = make_error_code(lb_errc::no_endpoint);
  auto svc = load_balance_layer(with_outlier(config(lb_config::policy::round_robin), 2, 30s, 300s, 100), lctx)
                 .balance(std::move(eps));
  for (int k = 0; k < 50; ++k) run(svc);
  EXPECT_EQ(ejections(), 1u);
  EXPECT_EQ(states[0]->calls, 0);
  states[1]->call_error = make_error_code(lb_errc::no_endpoint);
  for (int k = 0; k < 2; ++k) EXPECT_FALSE(run(svc));
  EXPECT_EQ(ejections(), 2u);
  auto r = run(svc);  // none in service: fails at once
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), lb_errc::no_endpoint);
  EXPECT_EQ(healthy(), 0);
  expect_no_leaks(svc.balancer());
}

TEST_F(LoadBalanceTest, KeyedWithoutFailoverFailsWhenTheOwnerIsOut) {
  lb_config c = with_outlier(config(lb_config::policy::maglev), 1, 30s, 300s);
  c.maglev.failover = false;
  auto svc = load_balance_layer(c, lctx).balance(endpoints(3));
  const maglev_table mag({"e0", "e1", "e2"}, 65537);
  keyed_request req;
  req.key = "user:7";
  const std::size_t owner = mag.owner(routing_hash("user:7"));
  states[owner]->call_error = make_error_code(lb_errc::no_endpoint);
  EXPECT_FALSE(run(svc, req));  // ejects the owner
  auto r = run(svc, req);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), lb_errc::no_endpoint);
  EXPECT_EQ(states[owner]->calls, 1);
  // With failover (the default), the key goes to the next endpoint.
  states.clear();
  auto fo = load_balance_layer(with_outlier(config(lb_config::policy::maglev), 1, 30s, 300s), lctx).balance(endpoints(3));
  states[owner]->call_error = make_error_code(lb_errc::no_endpoint);
  EXPECT_FALSE(run(fo, req));
  EXPECT_TRUE(run(fo, req));
  EXPECT_TRUE(run(fo, req));
  expect_no_leaks(fo.balancer());
}

TEST_F(LoadBalanceTest, ClosedGatesAreNeverPicked) {
  auto eps = endpoints(3);
  std::vector<std::shared_ptr<std::atomic<bool>>> gates;
  for (auto& e : eps) {
    gates.push_back(std::make_shared<std::atomic<bool>>(true));
    e.gate = gates.back();
  }
  gates[0]->store(false);
  gates[2]->store(false);
  auto svc = load_balance_layer(config(lb_config::policy::p2c), lctx).balance(std::move(eps));
  for (int k = 0; k < 20; ++k) ASSERT_TRUE(run(svc));
  EXPECT_EQ(calls(), (std::vector<int>{0, 20, 0}));
  EXPECT_EQ(svc.balancer().in_service(), 1u);
  EXPECT_EQ(ejections(), 0u);  // a closed gate is not an ejection
  // Closing the last open gate: no endpoint, at once; opening one brings it back.
  gates[1]->store(false);
  auto r = run(svc);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), lb_errc::no_endpoint);
  gates[2]->store(true);
  for (int k = 0; k < 5; ++k) ASSERT_TRUE(run(svc));
  EXPECT_EQ(calls(), (std::vector<int>{0, 20, 5}));
  // Keyed policies fail over past a closed gate.
  states.clear();
  auto keyed_eps = endpoints(3);
  const hash_ring ring({"e0", "e1", "e2"}, 160);
  keyed_request req;
  req.key = "user:7";
  const std::size_t owner = ring.owner(routing_hash("user:7"));
  auto closed = std::make_shared<std::atomic<bool>>(false);
  keyed_eps[owner].gate = closed;
  auto keyed = load_balance_layer(config(lb_config::policy::ring_hash), lctx).balance(std::move(keyed_eps));
  ASSERT_TRUE(run(keyed, req));
  EXPECT_EQ(states[owner]->calls, 0);
  expect_no_leaks(keyed.balancer());
}

TEST_F(LoadBalanceTest, HealthChecksTakeOutAndBringBack) {
  lb_config c = config(lb_config::policy::round_robin);
  c.health_check = lb_config::health_check_options{5s, 1s, 2, 2};
  auto eps = endpoints(2);
  states[1]->ready_error = make_error_code(lb_errc::no_endpoint);  // its readiness probe fails
  std::optional svc = load_balance_layer(c, lctx).balance(std::move(eps), io.get_executor());
  io.poll();  // first round at once: one failure
  EXPECT_EQ(svc->balancer().in_service(), 2u);
  advance(5s);  // second failure: out
  EXPECT_EQ(svc->balancer().in_service(), 1u);
  EXPECT_EQ(healthy(), 1);
  states[1]->ready_error = {};
  advance(5s);
  EXPECT_EQ(svc->balancer().in_service(), 1u);  // one success is not enough
  advance(5s);
  EXPECT_EQ(svc->balancer().in_service(), 2u);
  EXPECT_EQ(healthy(), 2);
  // A probe slower than the timeout fails: endpoint 0 takes 2s to be ready, the timeout is 1s.
  states[0]->ready_delay = 2s;
  for (int k = 0; k < 12; ++k) advance(1s);  // two rounds: each probe of endpoint 0 times out after 1s
  EXPECT_FALSE(svc->balancer().state(0).healthy);
  expect_no_leaks(svc->balancer());
  // The service goes: the loop ends at its next wake-up (it holds the manual clock, whose pending timer holds the
  // loop: until then a cycle, reported as a leak if the test ended here).
  svc.reset();
  for (int k = 0; k < 12; ++k) advance(1s);
  EXPECT_EQ(clk->pending_timers(), 0u);
}

TEST_F(LoadBalanceTest, CustomProbeAndTheLoopEndsWithTheService) {
  lb_config c = config(lb_config::policy::p2c);
  c.health_check = lb_config::health_check_options{5s, 1s, 1, 1};
  auto eps = endpoints(2);
  int probes = 0;
  bool fail = true;
  eps[0].probe = [&](request_context&) -> awaitable<error_code> {
    ++probes;
    co_return fail ? make_error_code(lb_errc::no_endpoint) : error_code{};
  };
  {
    auto svc = load_balance_layer(c, lctx).balance(std::move(eps), io.get_executor());
    io.poll();
    EXPECT_EQ(probes, 1);
    EXPECT_FALSE(svc.balancer().state(0).healthy);
    for (int k = 0; k < 20; ++k) ASSERT_TRUE(run(svc));
    EXPECT_EQ(states[0]->calls, 0);
    fail = false;
    advance(5s);
    EXPECT_TRUE(svc.balancer().state(0).healthy);
  }
  advance(5s);
  advance(5s);
  EXPECT_EQ(probes, 2);  // the service is gone: no more rounds
}

TEST_F(LoadBalanceTest, PermitsNeverLeak) {
  auto svc = load_balance_layer(config(lb_config::policy::p2c), lctx).balance(endpoints(2));
  for (auto& s : states) s->call_delay = 1s;
  // A permit dropped unspent, a call cancelled midway, a completed call.
  {
    request_context ctx;
    auto p = take_permit(svc, ctx);
    ASSERT_TRUE(p && *p);
    EXPECT_EQ(svc.balancer().state((*p)->index).pending, 1);
  }
  expect_no_leaks(svc.balancer());
  mock_request req;
  std::optional<result<int>> out;
  start(svc, req, out);
  req.ctx.cancel();
  io.poll();
  ASSERT_TRUE(out);
  EXPECT_FALSE(*out);
  expect_no_leaks(svc.balancer());
  // An erased balancer over erased endpoints: the same.
  using erased = any_service<mock_request, int>;
  std::vector<lb_endpoint<erased>> eps;
  eps.push_back({"a", erased(mock_service{states[0]}), {}, {}});
  eps.push_back({"b", erased(mock_service{states[1]}), {}, {}});
  erased top(load_balance_layer(config(lb_config::policy::round_robin), lctx).balance(std::move(eps)));
  mock_request r2;
  std::optional<result<int>> out2;
  start(top, r2, out2);
  advance(1s);
  ASSERT_TRUE(out2 && *out2);
  for (auto& s : states) EXPECT_EQ(s->live_permits, 0);
}

TEST_F(LoadBalanceTest, ConcurrentFastPathsKeepCountsExact) {
  // Four threads through one balancer: every request answered and counted once, the turns shared out evenly, no
  // pending count left behind.
  auto eps = endpoints(3);
  for (auto& s : states) s->immediate = true;
  auto svc = load_balance_layer(with_outlier(config(lb_config::policy::round_robin), 5, 300s, 300s), lctx)
                 .balance(std::move(eps));
  constexpr int per_thread = 20000;
  std::atomic<int> answered{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      mock_request req;
      for (int k = 0; k < per_thread; ++k) {
        if (svc.try_call_now(req)) answered.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(answered, 4 * per_thread);
  EXPECT_EQ(picks("e0") + picks("e1") + picks("e2"), 4u * per_thread);
  for (auto& st : states) {
    EXPECT_GT(st->calls, 4 * per_thread / 4);  // a third each, give or take the turns two threads took at once
    EXPECT_LT(st->calls, 4 * per_thread / 2);
  }
  expect_no_leaks(svc.balancer());

  // Failures of one endpoint reported from four threads at once: it is ejected exactly once.
  threads.clear();
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int k = 0; k < 1000; ++k) svc.balancer().record(2, make_error_code(lb_errc::no_endpoint), std::nullopt);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ejections(), 1u);
  EXPECT_EQ(svc.balancer().in_service(), 2u);
}

// --- from config -----------------------------------------------------------------------------------------------

struct LoadBalanceFactoryTest : LoadBalanceTest {
  layer_registry<mock_request, int> registry;
  LoadBalanceFactoryTest() { register_builtin_layers(registry); }

  any_service<mock_request, int> build(std::string_view yaml) {
    auto cfg = load_config_string(yaml, "lb.yaml");
    states.push_back(std::make_shared<mock_state>(clk));
    return registry.build(cfg.child("pipeline"), any_service<mock_request, int>(mock_service{states.back()}), lctx);
  }
  void expect_error(std::string_view yaml, const char* what) {
    try {
      build(yaml);
      ADD_FAILURE() << "no error for " << yaml;
    } catch (const config_error& e) {
      EXPECT_STREQ(e.what(), what);
    }
  }
};

TEST_F(LoadBalanceFactoryTest, EndpointSubPipelinesAndOutlierFromYaml) {
  auto svc = build(R"(pipeline:
  - layer: load_balance
    policy: round_robin
    endpoints:
      - {name: ok}
      - name: bad
        pipeline: [{layer: fault, abort: {percent: 100, error: unavailable}}]
    outlier: {consecutive_failures: 3, base_ejection: 30s}
)");
  int failed = 0;
  for (int k = 0; k < 20; ++k) failed += run(svc) ? 0 : 1;
  EXPECT_EQ(failed, 3);
  EXPECT_EQ(states[0]->calls, 17);  // one core behind both endpoints; the bad one never reached it
  EXPECT_EQ(picks("ok"), 17u);
  EXPECT_EQ(picks("bad"), 3u);
  EXPECT_EQ(ejections(), 1u);
  EXPECT_EQ(healthy(), 1);
}

TEST_F(LoadBalanceFactoryTest, ReplicasAndKeyedPolicyFromYaml) {
  auto svc = build(R"(pipeline:
  - layer: load_balance
    policy: maglev
    maglev: {table_size: 251, failover: false}
    p2c: {load: pending}
    endpoints: 3
)");
  states[0]->immediate = true;
  ASSERT_TRUE(svc.supports_immediate());
  mock_request req;
  for (int k = 0; k < 30; ++k) ASSERT_TRUE(svc.try_call_now(req));  // keyless: p2c
  EXPECT_EQ(picks("0") + picks("1") + picks("2"), 30u);
  EXPECT_GT(picks("0"), 0u);
  EXPECT_GT(picks("2"), 0u);
}

TEST_F(LoadBalanceFactoryTest, EndpointsFromTheHostsProvider) {
  using erased = any_service<mock_request, int>;
  auto remote = std::make_shared<mock_state>(clk);
  lb_endpoint_provider<mock_request, int> provider;
  provider.has = [](std::string_view set) { return set.empty() || set == "upstream"; };
  provider.make = [remote](std::string_view set, erased) {
    std::vector<lb_endpoint<erased>> eps;
    eps.push_back({"127.0.0.1:7001", erased(mock_service{remote}), {}, {}});
    return eps;
  };
  lctx.set_extension(std::make_shared<const lb_endpoint_provider<mock_request, int>>(provider));
  for (const char* yaml : {"pipeline: [{layer: load_balance, policy: ring_hash}]\n",
                           "pipeline: [{layer: load_balance, endpoints: upstream}]\n"}) {
    auto svc = build(yaml);
    ASSERT_TRUE(run(svc));
  }
  EXPECT_EQ(remote->calls, 2);
  EXPECT_EQ(states[0]->calls, 0);  // provider endpoints do not call the inner service
  expect_error("pipeline: [{layer: load_balance, endpoints: elsewhere}]\n",
               "lb.yaml:1:45: pipeline[0].endpoints: unknown endpoint set 'elsewhere'");
}

TEST_F(LoadBalanceFactoryTest, ErrorsNameFileLineAndKey) {
  expect_error("pipeline: [{layer: load_balance, endpoints: 2, policy: random}]\n",
               "lb.yaml:1:56: pipeline[0].policy: unknown policy 'random' (expected p2c, round_robin, ring_hash or "
               "maglev)");
  expect_error("pipeline: [{layer: load_balance, endpoints: 2, ring_hash: {vnodes: 10}}]\n",
               "lb.yaml:1:59: pipeline[0].ring_hash: ring_hash options with policy p2c");
  expect_error("pipeline: [{layer: load_balance, endpoints: 2, policy: maglev, maglev: {table_size: 1000}}]\n",
               "lb.yaml:1:85: pipeline[0].maglev.table_size: table_size must be a prime (e.g. 65537, 655373)");
  expect_error("pipeline: [{layer: load_balance}]\n",
               "lb.yaml:1:12: pipeline[0]: missing 'endpoints' (a count, e.g. 2, or a list of {name, pipeline}); no "
               "endpoint set is provided here");
  expect_error("pipeline: [{layer: load_balance, endpoints: []}]\n",
               "lb.yaml:1:45: pipeline[0].endpoints: at least one endpoint is required");
  expect_error("pipeline: [{layer: load_balance, endpoints: [{name: a}, {name: a}]}]\n",
               "lb.yaml:1:64: pipeline[0].endpoints[1].name: duplicate endpoint name 'a'");
  expect_error("pipeline: [{layer: load_balance, endpoints: 2, outlier: {consecutive: 3}}]\n",
               "lb.yaml:1:58: pipeline[0].outlier.consecutive: unknown key 'consecutive' (allowed: "
               "consecutive_failures, base_ejection, max_ejection, max_ejected_percent)");
  expect_error("pipeline: [{layer: load_balance, endpoints: [{pipeline: [{layer: nope}]}]}]\n",
               "lb.yaml:1:66: pipeline[0].endpoints[0].pipeline[0].layer: unknown layer 'nope' (registered: "
               "access_log, auth, circuit_breaker, concurrency_limit, fault, hedge, load_balance, load_shed, "
               "metrics, rate_limit, retry, timeout)");
  expect_error("pipeline: [{layer: load_balance, endpoints: 2, health_check: {interval: 0s}}]\n",
               "lb.yaml:1:73: pipeline[0].health_check.interval: must be greater than 0");
}

TEST_F(LoadBalanceFactoryTest, StateCarriesOverForAnUnchangedEntry) {
  lctx.states = std::make_shared<layer_state_store>();
  const char* yaml = R"(pipeline:
  - layer: load_balance
    policy: round_robin
    endpoints: [{name: a}, {name: b, pipeline: [{layer: fault, abort: {percent: 100, error: internal}}]}]
    outlier: {consecutive_failures: 1}
)";
  auto first = build(yaml);
  run(first);
  EXPECT_FALSE(run(first));  // b fails once: ejected
  auto second = build(yaml);  // a reload: the same state, b is still ejected
  for (int k = 0; k < 6; ++k) EXPECT_TRUE(run(second));
  EXPECT_EQ(ejections(), 1u);
}

}  // namespace
}  // namespace turret
