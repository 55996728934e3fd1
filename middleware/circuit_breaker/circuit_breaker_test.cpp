#include <turret/any_service.hpp>
#include <turret/error_mapping.hpp>
#include <turret/metrics.hpp>
#include <turret/middleware/builtin.hpp>
#include <turret/middleware/circuit_breaker.hpp>
#include <turret/middleware/fault.hpp>
#include <turret/middleware/testing/config_harness.hpp>
#include <turret/middleware/testing/layer_harness.hpp>
#include <turret/middleware/testing/mock_service.hpp>
#include <turret/middleware/timeout.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <gtest/gtest.h>

#include <random>
#include <thread>

namespace turret {
namespace {

using namespace std::chrono_literals;
using testing::mock_request;
using testing::mock_service;
using testing::mock_state;

circuit_breaker_config consecutive(std::uint32_t n, std::chrono::nanoseconds open_for = 10s, std::uint32_t probes = 3) {
  circuit_breaker_config c;
  c.consecutive_failures = n;
  c.open_for = open_for;
  c.half_open_probes = probes;
  return c;
}

circuit_breaker_config failure_rate(double rate, std::uint32_t min_requests, std::chrono::nanoseconds window) {
  circuit_breaker_config c;
  c.mode = circuit_breaker_config::trip_mode::failure_rate;
  c.failure_rate = rate;
  c.min_requests = min_requests;
  c.window = window;
  return c;
}

struct CircuitBreakerTest : ::testing::Test, testing::layer_harness {
  metrics::registry reg;  // the test's own registry: counts start at 0
  layer_context lctx = testing::test_context(clk, reg, "p1");

  std::uint64_t transitions_to(std::string_view to) {
    return reg.counter("turret_circuit_transitions_total", "", {"pipeline", "to"}).with({"p1", to}).value();
  }
  std::uint64_t rejected() { return reg.counter("turret_circuit_rejected_total", "", {"pipeline"}).with({"p1"}).value(); }
  double gauge() { return reg.gauge("turret_circuit_state", "", {"pipeline"}).with({"p1"}).value(); }

  /// One request through ready() + call(), run to completion.
  template <class S>
  result<int> run(S& svc, int value = 1) {
    mock_request req;
    req.value = value;
    std::optional<result<int>> out;
    start(svc, req, out);
    if (!out) {
      ADD_FAILURE() << "the request did not complete";
      return error_code(boost::asio::error::operation_aborted);
    }
    return *out;
  }
  /// One request that fails inward with `ec`.
  template <class S>
  result<int> fail(S& svc, error_code ec = fault_errc::unavailable) {
    st->call_error = ec;
    auto r = run(svc);
    st->call_error = {};
    return r;
  }
};

TEST_F(CircuitBreakerTest, RejectionMapsToUnavailable) {
  const error_code ec = circuit_breaker_errc::open;
  EXPECT_STREQ(ec.category().name(), "turret.circuit_breaker");
  EXPECT_EQ(ec.message(), "circuit open");
  EXPECT_EQ(ec, errc::unavailable);
  EXPECT_EQ(resp_error(ec), "ERR unavailable: circuit open");
  EXPECT_EQ(to_http_error(ec).status, 503);
  EXPECT_EQ(to_http_error(ec).retry_after, 1);
  EXPECT_EQ(to_grpc_error(ec).code, grpc_code::unavailable);
}

TEST_F(CircuitBreakerTest, OpensAfterExactlyNConsecutiveFailures) {
  auto layer = circuit_breaker_layer(consecutive(3), lctx);
  auto svc = layer.wrap(mock_service{st});
  EXPECT_EQ(fail(svc).error(), fault_errc::unavailable);
  EXPECT_EQ(fail(svc).error(), fault_errc::unavailable);
  ASSERT_TRUE(run(svc));  // a success resets the run
  EXPECT_EQ(fail(svc).error(), fault_errc::unavailable);
  EXPECT_EQ(fail(svc).error(), fault_errc::unavailable);
  EXPECT_EQ(layer.state()->state(), circuit_state::closed);
  EXPECT_EQ(transitions_to("open"), 0u);
  EXPECT_EQ(fail(svc).error(), fault_errc::unavailable);  // the third in a row: it went inward, then opened
  EXPECT_EQ(layer.state()->state(), circuit_state::open);
  EXPECT_EQ(transitions_to("open"), 1u);
  EXPECT_EQ(gauge(), 1);
  EXPECT_EQ(st->calls, 6);

  // Open: rejected at once, nothing inward.
  for (int i = 0; i < 4; ++i) EXPECT_EQ(run(svc).error(), circuit_breaker_errc::open);
  EXPECT_EQ(st->calls, 6);
  EXPECT_EQ(st->live_permits, 0);
  EXPECT_EQ(rejected(), 4u);
  EXPECT_EQ(layer.state()->transitions(), 1u);
}

TEST_F(CircuitBreakerTest, OnlyListedConditionsAreFailures) {
  auto layer = circuit_breaker_layer(consecutive(2), lctx);
  auto svc = layer.wrap(mock_service{st});
  // cancelled and invalid_argument are not failures, and do not reset the run either
  EXPECT_FALSE(fail(svc));
  fail(svc, boost::asio::error::operation_aborted);
  fail(svc, boost::system::errc::make_error_code(boost::system::errc::invalid_argument));
  EXPECT_EQ(layer.state()->state(), circuit_state::closed);
  fail(svc, fault_errc::timeout);
  EXPECT_EQ(layer.state()->state(), circuit_state::open);

  // The default list: unavailable, timed_out, internal, overloaded each count.
  for (fault_errc e : {fault_errc::unavailable, fault_errc::timeout, fault_errc::internal, fault_errc::overloaded}) {
    auto other = circuit_breaker_layer(consecutive(1)).wrap(mock_service{st});
    fail(other, e);
    EXPECT_EQ(other.state().state(), circuit_state::open) << to_string(e);
  }
}

TEST_F(CircuitBreakerTest, CancellationAfterTheDeadlineIsATimeout) {
  // [breaker, timeout 50ms, slow inner]: the timeout's elapsed error is timed_out: a failure.
  st->call_delay = 1s;
  auto layer = circuit_breaker_layer(consecutive(1), lctx);
  auto svc = layer.wrap(timeout_layer(50ms, clk).wrap(mock_service{st}));
  mock_request req;
  std::optional<result<int>> out;
  start(svc, req, out);
  ASSERT_TRUE(completes_after(out, 50ms));
  EXPECT_EQ(out->error(), timeout_errc::elapsed);
  EXPECT_EQ(layer.state()->state(), circuit_state::open);
  // And a bare cancellation before any deadline is not.
  EXPECT_EQ(layer.state()->outcome_of_error(boost::asio::error::operation_aborted, false), call_outcome::ignored);
  EXPECT_EQ(layer.state()->outcome_of_error(boost::asio::error::operation_aborted, true), call_outcome::failure);
}

TEST_F(CircuitBreakerTest, OpenForThenHalfOpenProbes) {
  auto layer = circuit_breaker_layer(consecutive(1, 5s, 2), lctx);
  auto svc = layer.wrap(mock_service{st});
  fail(svc);
  ASSERT_EQ(layer.state()->state(), circuit_state::open);
  EXPECT_EQ(layer.state()->remaining_open(), 5s);
  advance(5s - 1ms);
  EXPECT_EQ(layer.state()->remaining_open(), 1ms);
  EXPECT_EQ(run(svc).error(), circuit_breaker_errc::open);
  EXPECT_EQ(layer.state()->state(), circuit_state::open);  // half-open only once open_for has passed
  advance(1ms);
  EXPECT_EQ(layer.state()->state(), circuit_state::open);  // lazily: the next request moves it
  EXPECT_EQ(layer.state()->remaining_open(), 0s);

  ASSERT_TRUE(run(svc));  // probe 1 of 2 succeeds
  EXPECT_EQ(layer.state()->state(), circuit_state::half_open);
  EXPECT_EQ(transitions_to("half_open"), 1u);
  EXPECT_EQ(gauge(), 2);
  EXPECT_EQ(layer.state()->probes_admitted(), 1u);
  ASSERT_TRUE(run(svc));  // probe 2 of 2: closed
  EXPECT_EQ(layer.state()->state(), circuit_state::closed);
  EXPECT_EQ(transitions_to("closed"), 1u);
  EXPECT_EQ(gauge(), 0);
  EXPECT_EQ(st->calls, 3);
  EXPECT_EQ(layer.state()->transitions(), 3u);

  // Closed again with a fresh count: one failure opens it (consecutive_failures 1).
  ASSERT_TRUE(run(svc));
  fail(svc);
  EXPECT_EQ(layer.state()->state(), circuit_state::open);
  EXPECT_EQ(transitions_to("open"), 2u);
}

TEST_F(CircuitBreakerTest, HalfOpenAdmitsAtMostTheProbeLimit) {
  auto layer = circuit_breaker_layer(consecutive(1, 1s, 2), lctx);
  auto svc = layer.wrap(mock_service{st});
  fail(svc);
  advance(1s);
  st->call_delay = 100ms;
  mock_request r[4];
  std::optional<result<int>> out[4];
  for (int i = 0; i < 4; ++i) start(svc, r[i], out[i]);
  EXPECT_EQ(st->in_call, 2);  // two probes in flight
  ASSERT_TRUE(out[2] && out[3]);
  EXPECT_EQ(out[2]->error(), circuit_breaker_errc::open);
  EXPECT_EQ(out[3]->error(), circuit_breaker_errc::open);
  EXPECT_EQ(rejected(), 2u);
  EXPECT_EQ(layer.state()->probes_admitted(), 2u);
  advance(100ms);
  ASSERT_TRUE(out[0] && *out[0]);
  ASSERT_TRUE(out[1] && *out[1]);
  EXPECT_EQ(layer.state()->state(), circuit_state::closed);
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(CircuitBreakerTest, AProbeFailureReopensForAnotherOpenFor) {
  auto layer = circuit_breaker_layer(consecutive(1, 1s, 3), lctx);
  auto svc = layer.wrap(mock_service{st});
  fail(svc);
  advance(1s);
  ASSERT_TRUE(run(svc));  // probe 1 succeeds
  EXPECT_EQ(fail(svc).error(), fault_errc::unavailable);  // probe 2 fails: open again
  EXPECT_EQ(layer.state()->state(), circuit_state::open);
  EXPECT_EQ(transitions_to("open"), 2u);
  EXPECT_EQ(transitions_to("half_open"), 1u);
  EXPECT_EQ(transitions_to("closed"), 0u);
  EXPECT_EQ(layer.state()->remaining_open(), 1s);
  advance(999ms);
  EXPECT_EQ(run(svc).error(), circuit_breaker_errc::open);
  advance(1ms);
  ASSERT_TRUE(run(svc));  // a probe of the second half-open period
  EXPECT_EQ(transitions_to("half_open"), 2u);
  EXPECT_EQ(layer.state()->probes_admitted(), 1u);  // the first period's success is not carried over
}

TEST_F(CircuitBreakerTest, ProbePlacesNeverLeak) {
  auto layer = circuit_breaker_layer(consecutive(1, 1s, 1), lctx);
  auto svc = layer.wrap(mock_service{st});
  fail(svc);
  advance(1s);
  using permit = decltype(svc)::permit_type;

  // A probe permit dropped unspent gives its place back.
  {
    mock_request req;
    std::optional<permit> held;
    boost::asio::co_spawn(
        io, [&]() -> awaitable<void> { held.emplace(std::move(*co_await svc.ready(req.ctx))); },
        boost::asio::detached);
    io.poll();
    ASSERT_TRUE(held);
    EXPECT_EQ(layer.state()->probes_admitted(), 1u);
    EXPECT_EQ(run(svc).error(), circuit_breaker_errc::open);  // the one place is taken
    held.reset();
    EXPECT_EQ(layer.state()->probes_admitted(), 0u);
    EXPECT_EQ(st->live_permits, 0);
  }
  // A cancelled probe (not a failure) gives its place back.
  {
    st->call_delay = 1s;
    mock_request req;
    std::optional<result<int>> out;
    start(svc, req, out);
    EXPECT_EQ(layer.state()->probes_admitted(), 1u);
    req.ctx.cancel();
    io.poll();
    ASSERT_TRUE(out);
    EXPECT_EQ(out->error(), errc::cancelled);
    EXPECT_EQ(layer.state()->probes_admitted(), 0u);
    st->call_delay = 0s;
  }
  // An inner ready() error that is not a failure gives it back too; one that is reopens.
  st->ready_error = boost::system::errc::make_error_code(boost::system::errc::invalid_argument);
  EXPECT_EQ(run(svc).error(), errc::invalid_argument);
  EXPECT_EQ(layer.state()->probes_admitted(), 0u);
  EXPECT_EQ(layer.state()->state(), circuit_state::half_open);
  st->ready_error = fault_errc::overloaded;
  EXPECT_EQ(run(svc).error(), fault_errc::overloaded);
  EXPECT_EQ(layer.state()->state(), circuit_state::open);
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(CircuitBreakerTest, FastPath) {
  st->immediate = true;
  auto layer = circuit_breaker_layer(consecutive(2, 1s, 1), lctx);
  auto svc = layer.wrap(mock_service{st});
  static_assert(immediate_service<decltype(svc), mock_request>);
  mock_request req;
  req.value = 4;
  auto r = svc.try_call_now(req);  // closed: forwarded
  ASSERT_TRUE(r && *r);
  EXPECT_EQ(**r, 8);

  // Failures seen on the fast path are recorded.
  st->immediate = false;  // (the mock fails only through call())
  fail(svc, fault_errc::internal);
  fail(svc, fault_errc::internal);
  st->immediate = true;
  ASSERT_EQ(layer.state()->state(), circuit_state::open);

  // Open: the rejection, synchronously.
  r = svc.try_call_now(req);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error(), circuit_breaker_errc::open);
  EXPECT_EQ(rejected(), 1u);
  const int calls = st->calls;

  // Due for half-open, then half-open: nullopt, nothing changed.
  advance(1s);
  EXPECT_FALSE(svc.try_call_now(req));
  EXPECT_EQ(layer.state()->state(), circuit_state::open);
  EXPECT_EQ(layer.state()->transitions(), 1u);
  EXPECT_EQ(rejected(), 1u);
  EXPECT_EQ(st->calls, calls);
  {
    auto probe = layer.state()->admit();  // a probe taken elsewhere
    ASSERT_TRUE(probe);
    EXPECT_FALSE(svc.try_call_now(req));
    EXPECT_EQ(layer.state()->probes_admitted(), 1u);
    EXPECT_EQ(rejected(), 1u);
    probe->finish(call_outcome::success);
  }
  EXPECT_EQ(layer.state()->state(), circuit_state::closed);
  r = svc.try_call_now(req);
  ASSERT_TRUE(r && *r);
}

TEST_F(CircuitBreakerTest, FastPathRecordsOutcomes) {
  // An immediate inner service that fails: every fast-path outcome counts.
  struct failing {
    using response_type = int;
    using permit_type = unit_permit;
    int* calls;
    awaitable<result<unit_permit>> ready(request_context&) { co_return unit_permit{}; }
    awaitable<result<int>> call(unit_permit, mock_request&) { co_return fault_errc::unavailable; }
    std::optional<result<int>> try_call_now(mock_request& req) {
      ++*calls;
      if (req.value < 0) return result<int>(fault_errc::unavailable);
      return result<int>(req.value);
    }
  };
  int calls = 0;
  auto layer = circuit_breaker_layer(consecutive(3), lctx);
  auto svc = layer.wrap(failing{&calls});
  mock_request bad, good;
  bad.value = -1;
  good.value = 1;
  for (int i = 0; i < 2; ++i) EXPECT_EQ(svc.try_call_now(bad)->error(), fault_errc::unavailable);
  EXPECT_TRUE(*svc.try_call_now(good));
  for (int i = 0; i < 2; ++i) EXPECT_EQ(svc.try_call_now(bad)->error(), fault_errc::unavailable);
  EXPECT_EQ(layer.state()->state(), circuit_state::closed);
  EXPECT_EQ(svc.try_call_now(bad)->error(), fault_errc::unavailable);
  EXPECT_EQ(layer.state()->state(), circuit_state::open);
  EXPECT_EQ(svc.try_call_now(good)->error(), circuit_breaker_errc::open);
  EXPECT_EQ(calls, 6);
}

TEST_F(CircuitBreakerTest, FailureRateNeedsMinRequestsAndTheRate) {
  auto layer = circuit_breaker_layer(failure_rate(0.5, 10, 10s), lctx);
  auto svc = layer.wrap(mock_service{st});
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(run(svc));
  for (int i = 0; i < 4; ++i) fail(svc);
  EXPECT_EQ(layer.state()->state(), circuit_state::closed);  // 4 of 9: fewer than min_requests
  ASSERT_TRUE(run(svc));                                     // 4 of 10: below the rate
  EXPECT_EQ(layer.state()->state(), circuit_state::closed);
  fail(svc);  // 5 of 11 = 0.45
  EXPECT_EQ(layer.state()->state(), circuit_state::closed);
  fail(svc);  // 6 of 12 = 0.5: reaches the rate
  EXPECT_EQ(layer.state()->state(), circuit_state::open);
  EXPECT_EQ(transitions_to("open"), 1u);
}

TEST_F(CircuitBreakerTest, FailureRateWindowSlides) {
  auto layer = circuit_breaker_layer(failure_rate(0.5, 4, 10s), lctx);  // buckets of 1s
  auto svc = layer.wrap(mock_service{st});
  for (int i = 0; i < 3; ++i) fail(svc);  // 3 of 3, but fewer than 4
  advance(10s);                           // those left the window
  fail(svc);
  EXPECT_EQ(layer.state()->state(), circuit_state::closed);  // 1 of 1
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(run(svc));
  advance(9s);  // still in the window (the 10th bucket)
  fail(svc);    // 2 of 4
  EXPECT_EQ(layer.state()->state(), circuit_state::open);
}

TEST_F(CircuitBreakerTest, FailureRateStartsFreshAfterClosing) {
  circuit_breaker_config cfg = failure_rate(0.5, 2, 10s);
  cfg.open_for = 1s;
  cfg.half_open_probes = 1;
  auto layer = circuit_breaker_layer(cfg, lctx);
  auto svc = layer.wrap(mock_service{st});
  fail(svc);
  fail(svc);
  ASSERT_EQ(layer.state()->state(), circuit_state::open);
  advance(1s);
  ASSERT_TRUE(run(svc));  // the probe closes it
  ASSERT_EQ(layer.state()->state(), circuit_state::closed);
  fail(svc);  // 1 of 1 in the fresh window: below min_requests
  EXPECT_EQ(layer.state()->state(), circuit_state::closed);
}

// A response type with a Redis error code (as turret::kv::response), and a service answering with it.
struct coded_response {
  std::string code;
};
std::optional<std::string_view> reply_error_code(const coded_response& r) noexcept {
  if (r.code.empty()) return std::nullopt;
  return std::string_view(r.code);
}
struct coded_service {
  using response_type = coded_response;
  using permit_type = unit_permit;
  std::string* next_code;
  awaitable<result<unit_permit>> ready(request_context&) { co_return unit_permit{}; }
  awaitable<result<coded_response>> call(unit_permit, mock_request&) { co_return coded_response{*next_code}; }
  std::optional<result<coded_response>> try_call_now(mock_request&) {
    if (*next_code == "DOWN") return result<coded_response>(fault_errc::unavailable);
    return result<coded_response>(coded_response{*next_code});
  }
};

TEST_F(CircuitBreakerTest, RedisErrorRepliesAreSuccessesUnlessListed) {
  static_assert(!request_traits_detail::has_reply_error_code<int>);
  const coded_response tryagain{"TRYAGAIN"};
  EXPECT_EQ(response_error_code(tryagain), "TRYAGAIN");
  EXPECT_EQ(response_error_code(42), std::nullopt);
  std::string code;
  mock_request req;
  {
    auto layer = circuit_breaker_layer(consecutive(2), lctx);
    auto svc = layer.wrap(coded_service{&code});
    code = "WRONGTYPE";
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(*svc.try_call_now(req));
    code = "TRYAGAIN";
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(*svc.try_call_now(req));
    EXPECT_EQ(layer.state()->state(), circuit_state::closed);
  }
  circuit_breaker_config cfg = consecutive(2);
  cfg.failure_conditions = circuit_breaker_config::condition_bit(errc::timed_out);
  cfg.failure_codes = {"TRYAGAIN", "LOADING"};
  auto layer = circuit_breaker_layer(cfg, lctx);
  auto svc = layer.wrap(coded_service{&code});
  code = "DOWN";  // unavailable: not in this list
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(*svc.try_call_now(req));
  code = "TRYAGAIN";
  ASSERT_TRUE(*svc.try_call_now(req));  // the reply passes through; it counts as a failure
  code = "WRONGTYPE";
  ASSERT_TRUE(*svc.try_call_now(req));  // a success: resets
  code = "LOADING";
  ASSERT_TRUE(*svc.try_call_now(req));
  EXPECT_EQ(layer.state()->state(), circuit_state::closed);
  ASSERT_TRUE(*svc.try_call_now(req));
  EXPECT_EQ(layer.state()->state(), circuit_state::open);
}

TEST_F(CircuitBreakerTest, ConcurrentFailuresOpenExactlyOnce) {
  constexpr int threads = 4, per_thread = 2000;
  auto st_ptr = std::make_shared<circuit_breaker_state>(consecutive(50, 1h), clk, circuit_breaker_metrics::of(lctx));
  std::atomic<int> admitted{0}, rejections{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      for (int i = 0; i < per_thread; ++i) {
        auto tk = st_ptr->admit();
        if (!tk) {
          rejections++;
          continue;
        }
        admitted++;
        tk->finish(call_outcome::failure);
      }
    });
  }
  for (auto& w : workers) w.join();
  EXPECT_EQ(st_ptr->state(), circuit_state::open);
  EXPECT_EQ(st_ptr->transitions(), 1u);
  EXPECT_EQ(transitions_to("open"), 1u);
  EXPECT_GE(admitted.load(), 50);
  EXPECT_EQ(admitted + rejections, threads * per_thread);
  EXPECT_EQ(rejected(), static_cast<std::uint64_t>(rejections.load()));
}

// Threads hammer one breaker with random outcomes while time moves: every transition happens once and in a valid
// order (the counts agree with the state), and no probe place is lost.
TEST_F(CircuitBreakerTest, ConcurrentHammeringLosesNoTransition) {
  for (auto mode : {circuit_breaker_config::trip_mode::consecutive, circuit_breaker_config::trip_mode::failure_rate}) {
    metrics::registry own;
    layer_context c = lctx;
    c.metric_registry = &own;
    circuit_breaker_config cfg = consecutive(3, 2ms, 3);
    cfg.mode = mode;
    cfg.min_requests = 5;
    cfg.window = 10ms;
    auto brk = std::make_shared<circuit_breaker_state>(cfg, clk, circuit_breaker_metrics::of(c));
    // Time moves 1ms at a time (2000 steps) while the workers run; they stop when time has stopped moving.
    std::atomic<bool> stop{false};
    std::thread ticker([&] {
      for (int i = 0; i < 2000; ++i) {
        clk->advance(1ms);
        std::this_thread::sleep_for(20us);
      }
      stop = true;
    });
    constexpr int threads = 3;
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        std::mt19937 rng(t);
        for (int i = 0; !stop; ++i) {
          // Half of the admissions through the fast path's admit_now(), falling back to admit() as a service does.
          std::optional<result<circuit_ticket>> now = (i & 1) ? std::nullopt : brk->admit_now();
          result<circuit_ticket> tk = now ? std::move(*now) : brk->admit();
          if (!tk) {
            EXPECT_EQ(tk.error(), circuit_breaker_errc::open);
            continue;
          }
          const unsigned dice = rng() % 10;
          if (dice < 4) tk->finish(call_outcome::failure);
          else if (dice < 9) tk->finish(call_outcome::success);
          else if (i & 2) tk->finish(call_outcome::ignored);
          // else: dropped unspent
        }
      });
    }
    ticker.join();
    for (auto& w : workers) w.join();

    auto count = [&](std::string_view to) {
      return own.counter("turret_circuit_transitions_total", "", {"pipeline", "to"}).with({"p1", to}).value();
    };
    const std::uint64_t opens = count("open"), half = count("half_open"), closes = count("closed");
    const circuit_state s = brk->state();
    EXPECT_GT(opens, 10u);
    EXPECT_EQ(brk->transitions(), opens + half + closes);
    EXPECT_EQ(opens, half + (s == circuit_state::open ? 1 : 0));
    EXPECT_LE(closes, half);
    EXPECT_EQ(own.gauge("turret_circuit_state", "", {"pipeline"}).with({"p1"}).value(), static_cast<int>(s));
    // Every ticket is gone: half-open holds only succeeded probes, fewer than the limit (all of them: closed).
    if (s == circuit_state::half_open) {
      EXPECT_LT(brk->probes_admitted(), cfg.half_open_probes);
    }
  }
}

TEST_F(CircuitBreakerTest, FactoryFromYaml) {
  layer_registry<mock_request, int> registry;
  register_builtin_layers(registry);
  const any_service<mock_request, int> inner(mock_service{st});
  auto svc = testing::build_pipeline(
      registry,
      "pipeline:\n  - {layer: circuit_breaker, consecutive_failures: 2, open_for: 3s, half_open_probes: 1}\n"
      "  - {layer: fault, abort: {percent: 100, error: unavailable}}\n",
      inner, lctx);
  EXPECT_EQ(run(svc).error(), fault_errc::unavailable);
  EXPECT_EQ(run(svc).error(), fault_errc::unavailable);
  EXPECT_EQ(run(svc).error(), circuit_breaker_errc::open);
  EXPECT_EQ(st->calls, 0);
  const std::string text = reg.expose();
  EXPECT_NE(text.find("turret_circuit_state{pipeline=\"p1\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("turret_circuit_rejected_total{pipeline=\"p1\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("turret_circuit_transitions_total{pipeline=\"p1\",to=\"open\"} 1"), std::string::npos) << text;
  advance(3s);
  EXPECT_EQ(run(svc).error(), fault_errc::unavailable);  // the probe goes through, fails: open again
  EXPECT_EQ(run(svc).error(), circuit_breaker_errc::open);

  // Every key parses.
  auto full = load_config_string(
      "pipeline:\n  - layer: circuit_breaker\n    mode: failure_rate\n    consecutive_failures: 7\n"
      "    failure_rate: 0.25\n    min_requests: 40\n    window: 20s\n    open_for: 1m\n    half_open_probes: 5\n"
      "    failure_on: [timed_out, TRYAGAIN, LOADING]\n",
      "turret.yaml");
  circuit_breaker_config want;
  want.mode = circuit_breaker_config::trip_mode::failure_rate;
  want.consecutive_failures = 7;
  want.failure_rate = 0.25;
  want.min_requests = 40;
  want.window = 20s;
  want.open_for = 60s;
  want.half_open_probes = 5;
  want.failure_conditions = circuit_breaker_config::condition_bit(errc::timed_out);
  want.failure_codes = {"TRYAGAIN", "LOADING"};
  EXPECT_TRUE(parse_circuit_breaker_config(full.child("pipeline").at(0)) == want);
  // Defaults: the struct's (mode consecutive, 5 failures, rate 0.5 over 20 requests in 10s, open 30s, 3 probes,
  // failure on unavailable, timed_out, internal and overloaded).
  EXPECT_TRUE(parse_circuit_breaker_config(load_config_string("{layer: circuit_breaker}")) == circuit_breaker_config{});
  EXPECT_EQ(circuit_breaker_config{}.open_for, 30s);
  // overloaded (1), unavailable (2), timed_out (3), internal (8)
  EXPECT_EQ(circuit_breaker_config{}.failure_conditions, (1u << 1) | (1u << 2) | (1u << 3) | (1u << 8));
  auto expect_error = [&](const char* yaml, const char* what) {
    EXPECT_EQ(testing::pipeline_error(registry, yaml, inner, lctx), what);
  };
  expect_error("pipeline:\n  - {layer: circuit_breaker, mode: sometimes}\n",
               "turret.yaml:2:36: pipeline[0].mode: unknown mode 'sometimes' (expected consecutive or failure_rate)");
  expect_error("pipeline:\n  - {layer: circuit_breaker, failure_rate: 1.5}\n",
               "turret.yaml:2:44: pipeline[0].failure_rate: failure_rate must be greater than 0 and at most 1 (a "
               "share, e.g. 0.5)");
  expect_error("pipeline:\n  - {layer: circuit_breaker, consecutive_failures: 0}\n",
               "turret.yaml:2:52: pipeline[0].consecutive_failures: value 0 out of range [1, 1000000000]");
  expect_error("pipeline:\n  - {layer: circuit_breaker, half_open_probes: 10001}\n",
               "turret.yaml:2:48: pipeline[0].half_open_probes: value 10001 out of range [1, 10000]");
  expect_error("pipeline:\n  - {layer: circuit_breaker, open_for: 0s}\n",
               "turret.yaml:2:40: pipeline[0].open_for: open_for must be greater than 0");
  expect_error("pipeline:\n  - {layer: circuit_breaker, window: 1us}\n",
               "turret.yaml:2:38: pipeline[0].window: window must be at least 10us");
  expect_error("pipeline:\n  - {layer: circuit_breaker, window: soon}\n",
               "turret.yaml:2:38: pipeline[0].window: invalid duration 'soon' (expected e.g. 250ms, 2s, 1m)");
  expect_error("pipeline:\n  - {layer: circuit_breaker, failure_on: [unavailable, tryagain]}\n",
               "turret.yaml:2:56: pipeline[0].failure_on[1]: unknown failure 'tryagain' (expected a condition: "
               "overloaded, unavailable, timed_out, cancelled, unauthenticated, permission_denied, invalid_argument, "
               "internal; or a Redis error code in upper case, e.g. TRYAGAIN)");
  expect_error("pipeline:\n  - {layer: circuit_breaker, failure_on: unavailable}\n",
               "turret.yaml:2:42: pipeline[0].failure_on: expected a list, e.g. [unavailable, timed_out, TRYAGAIN]");
  expect_error("pipeline:\n  - {layer: circuit_breaker, failure_on: []}\n",
               "turret.yaml:2:42: pipeline[0].failure_on: failure_on must list at least one condition or error code");
  expect_error("pipeline:\n  - {layer: circuit_breaker, threshold: 5}\n",
               "turret.yaml:2:30: pipeline[0].threshold: unknown key 'threshold' (allowed: layer, mode, "
               "consecutive_failures, failure_rate, min_requests, window, open_for, half_open_probes, failure_on)");
}

TEST_F(CircuitBreakerTest, StateCarriesOverAReloadOfAnUnchangedEntry) {
  layer_registry<mock_request, int> registry;
  register_builtin_layers(registry);
  const char* yaml = "pipeline:\n  - {layer: circuit_breaker, consecutive_failures: 1, open_for: 5s}\n";
  const any_service<mock_request, int> inner(mock_service{st});
  layer_context gen1 = lctx;
  gen1.states = std::make_shared<layer_state_store>();
  auto svc1 = testing::build_pipeline(registry, yaml, inner, gen1);
  fail(svc1);
  ASSERT_EQ(run(svc1).error(), circuit_breaker_errc::open);

  // The next generation: the same entry keeps the open breaker; a changed entry starts closed.
  layer_context gen2 = lctx;
  gen2.states = std::make_shared<layer_state_store>(gen1.states);
  auto svc2 = testing::build_pipeline(registry, yaml, inner, gen2);
  EXPECT_EQ(run(svc2).error(), circuit_breaker_errc::open);
  layer_context gen3 = lctx;
  gen3.states = std::make_shared<layer_state_store>(gen1.states);
  auto svc3 = testing::build_pipeline(
      registry, "pipeline:\n  - {layer: circuit_breaker, consecutive_failures: 2, open_for: 5s}\n", inner, gen3);
  EXPECT_TRUE(run(svc3));
}

}  // namespace
}  // namespace turret
