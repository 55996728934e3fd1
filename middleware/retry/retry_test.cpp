#include <turret/any_service.hpp>
#include <turret/metrics.hpp>
#include <turret/middleware/builtin.hpp>
#include <turret/middleware/fault.hpp>
#include <turret/middleware/retry.hpp>
#include <turret/middleware/testing/layer_harness.hpp>
#include <turret/middleware/testing/mock_service.hpp>

#include <boost/asio/error.hpp>
#include <boost/system/errc.hpp>

#include <gtest/gtest.h>

#include <random>
#include <tuple>
#include <string>
#include <vector>

namespace turret {
namespace {

using namespace std::chrono_literals;
using testing::mock_permit;
using testing::mock_request;
using testing::mock_service;

const error_code refused = boost::asio::error::connection_refused;  // condition unavailable
const error_code invalid = make_error_code(boost::system::errc::invalid_argument);

/// A response with a Redis-style error code (for retry_on: [TRYAGAIN]).
struct coded {
  int value = 0;
  std::string code;
};
std::optional<std::string_view> reply_error_code(const coded& c) noexcept {
  if (c.code.empty()) return std::nullopt;
  return std::string_view(c.code);
}

/// mock_service whose k-th successful call answers with error reply codes[k] ("" = a normal reply).
struct coded_service {
  using response_type = coded;
  using permit_type = mock_permit;
  mock_service m;
  std::vector<std::string> codes;

  awaitable<result<mock_permit>> ready(request_context& ctx) { return m.ready(ctx); }
  awaitable<result<coded>> call(mock_permit p, mock_request& req) {
    auto r = co_await m.call(std::move(p), req);
    if (!r) co_return r.error();
    const std::size_t k = static_cast<std::size_t>(m.st->calls.load() - 1);
    co_return coded{*r, k < codes.size() ? codes[k] : std::string()};
  }
};

struct RetryTest : ::testing::Test, testing::layer_harness {
  metrics::registry reg;
  layer_context lctx = context_for(reg);
  retry_config cfg = [] {
    retry_config c;
    c.backoff_base = 10ms;
    c.backoff_max = 1s;
    return c;
  }();

  std::uint64_t attempts() { return reg.counter("turret_retry_attempts_total", "", {"pipeline"}).with({"p1"}).value(); }
  std::uint64_t exhausted() {
    return reg.counter("turret_retry_budget_exhausted_total", "", {"pipeline"}).with({"p1"}).value();
  }
  /// Advances in 1ms steps until `out` is set (at most `limit`).
  void run_until_done(const std::optional<result<int>>& out, clock::duration limit = 10s) {
    for (clock::duration t{}; !out && t < limit; t += 1ms) advance(1ms);
  }
};

TEST_F(RetryTest, RetriesRetryableErrorsUntilSuccess) {
  st->call_errors = {refused, refused};
  auto svc = retry_layer(cfg, lctx, nullptr, 1).wrap(mock_service{st});
  mock_request req;
  req.value = 21;
  std::optional<result<int>> out;
  start(svc, req, out);
  EXPECT_FALSE(out);
  EXPECT_EQ(st->calls, 1);
  run_until_done(out);
  ASSERT_TRUE(out && *out);
  EXPECT_EQ(**out, 42);
  EXPECT_EQ(st->calls, 3);
  EXPECT_EQ(req.reply, "42;");  // one reply
  EXPECT_EQ(attempts(), 3u);
  EXPECT_EQ(st->live_permits, 0);
  EXPECT_FALSE(req.ctx.cancelled());
}

TEST_F(RetryTest, NonRetryableErrorIsReturnedAtOnce) {
  st->call_error = invalid;
  auto svc = retry_layer(cfg, lctx, nullptr, 1).wrap(mock_service{st});
  mock_request req;
  std::optional<result<int>> out;
  start(svc, req, out);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), invalid);
  EXPECT_EQ(st->calls, 1);
  EXPECT_EQ(attempts(), 1u);
}

TEST_F(RetryTest, ExhaustedAttemptsReturnTheLastError) {
  st->call_errors = {refused, refused, make_error_code(boost::system::errc::connection_reset)};
  auto svc = retry_layer(cfg, lctx, nullptr, 1).wrap(mock_service{st});
  mock_request req;
  std::optional<result<int>> out;
  start(svc, req, out);
  run_until_done(out);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), make_error_code(boost::system::errc::connection_reset));
  EXPECT_EQ(st->calls, 3);
  EXPECT_EQ(attempts(), 3u);
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(RetryTest, IdempotencyIsRespected) {
  st->call_error = refused;
  // (writes, retry class, calls): writes: true retries non-idempotent requests too, session ones never.
  const std::tuple<bool, retry_safety, int> cases[] = {
      {false, retry_safety::idempotent, 3}, {false, retry_safety::non_idempotent, 1},
      {false, retry_safety::session, 1},    {true, retry_safety::non_idempotent, 3},
      {true, retry_safety::session, 1}};
  for (const auto& [writes, safety, calls] : cases) {
    cfg.writes = writes;
    st->calls = 0;
    auto svc = retry_layer(cfg, lctx, nullptr, 1).wrap(mock_service{st});
    mock_request req;
    req.safety = safety;
    auto out = run(svc, req);
    ASSERT_TRUE(out);
    EXPECT_EQ(out->error(), refused);
    EXPECT_EQ(st->calls, calls) << writes << " " << static_cast<int>(safety);
  }
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(RetryTest, BackoffIsFullJitterWithinBounds) {
  detail::retry_shared sh;
  sh.cfg = cfg;
  sh.salt = request_context::mix64(7);
  std::mt19937_64 gen(42);
  double sum1 = 0;
  const int n = 4000;
  for (int i = 0; i < n; ++i) {
    const std::uint64_t s = gen();
    const auto d1 = sh.backoff(1, s), d3 = sh.backoff(3, s), d20 = sh.backoff(20, s);
    ASSERT_GE(d1, 0ns);
    ASSERT_LT(d1, 10ms);
    ASSERT_LT(d3, 40ms);
    ASSERT_LT(d20, 1s);
    sum1 += std::chrono::duration<double>(d1).count();
  }
  EXPECT_NEAR(sum1 / n, 0.005, 0.0005);  // uniform on [0, 10ms): mean 5ms
  EXPECT_NE(sh.backoff(1, 1), sh.backoff(1, 2));

  // The service waits exactly the drawn backoff before each retry.
  st->call_errors = {refused, refused};
  auto svc = retry_layer(cfg, lctx, nullptr, 7).wrap(mock_service{st});
  mock_request req;
  req.ctx.set_sample(12345);
  std::optional<result<int>> out;
  start(svc, req, out);
  for (unsigned retry = 1; retry <= 2; ++retry) {
    const auto d = sh.backoff(retry, 12345);
    if (d > 1ns) advance(d - 1ns);
    EXPECT_EQ(st->calls, static_cast<int>(retry)) << retry;
    advance(1ns);
    EXPECT_EQ(st->calls, static_cast<int>(retry + 1)) << retry;
  }
  ASSERT_TRUE(out && *out);
}

TEST_F(RetryTest, BudgetBoundsRetries) {
  // 100 requests over 10s (10 per second), inner always failing, 3 attempts each wanted: the budget allows
  // 0.2 x 100 + 1/s x 10s = 30 retries, exactly.
  cfg.budget_ratio = 0.2;
  cfg.budget_min_per_second = 1;
  cfg.budget_window = 10s;
  cfg.backoff_base = cfg.backoff_max = 1ms;
  st->call_error = refused;
  auto svc = retry_layer(cfg, lctx, nullptr, 1).wrap(mock_service{st});
  const int n = 100;
  std::vector<mock_request> reqs(n);
  std::vector<std::optional<result<int>>> outs(n);
  const auto t0 = clk->now();
  for (int i = 0; i < n; ++i) {
    if (i % 10 == 0 && i > 0) advance(t0 + std::chrono::seconds(i / 10) - clk->now());  // the next second
    start(svc, reqs[i], outs[i]);
    run_until_done(outs[i]);
    ASSERT_TRUE(outs[i]);
    EXPECT_EQ(outs[i]->error(), refused);
  }
  EXPECT_LT(clk->now() - t0, 10s);
  const int bound = n + static_cast<int>(0.2 * n) + 1 * 10;
  EXPECT_EQ(st->calls, bound);
  EXPECT_EQ(attempts(), static_cast<std::uint64_t>(bound));
  EXPECT_EQ(exhausted(), static_cast<std::uint64_t>(n));  // none got both retries: each found the budget empty once
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(RetryTest, BudgetFloorIsARate) {
  // No requests' share (ratio 0): only the floor, 5 retries per second, credited slot by slot (window 5s: 0.5s).
  retry_budget b(0, 5, 5s, clk);
  EXPECT_EQ(b.available(), 2);
  int allowed = 0;
  for (int i = 0; i < 100 && b.withdraw(); ++i) ++allowed;
  EXPECT_EQ(allowed, 2);  // 5/s x 0.5s
  advance(500ms);
  allowed = 0;
  for (int i = 0; i < 100 && b.withdraw(); ++i) ++allowed;
  EXPECT_EQ(allowed, 3);  // the next slot's 2.5 and the half left of the first
}

TEST_F(RetryTest, BudgetWindowSlides) {
  retry_budget b(0.5, 0, 10s, clk);
  EXPECT_EQ(b.available(), 0);
  EXPECT_FALSE(b.withdraw());
  for (int i = 0; i < 4; ++i) b.deposit();
  EXPECT_EQ(b.available(), 2);
  EXPECT_TRUE(b.withdraw());
  advance(5s);
  EXPECT_EQ(b.available(), 1);
  advance(6s);  // the deposits left the window
  EXPECT_EQ(b.available(), 0);
  EXPECT_FALSE(b.withdraw());
}

TEST_F(RetryTest, PerTryTimeoutRetriesASlowAttempt) {
  cfg.per_try_timeout = 50ms;
  st->call_delays = {1s, 1s, 0ns};
  auto svc = retry_layer(cfg, lctx, nullptr, 1).wrap(mock_service{st});
  mock_request req;
  req.value = 1;
  std::optional<result<int>> out;
  start(svc, req, out);
  advance(49ms);
  EXPECT_EQ(st->calls, 1);
  run_until_done(out, 200ms);
  ASSERT_TRUE(out && *out) << (out ? out->error().message() : "pending");
  EXPECT_EQ(st->calls, 3);
  EXPECT_EQ(req.reply, "2;");
  EXPECT_FALSE(req.ctx.cancelled());
  EXPECT_EQ(st->live_permits, 0);
  EXPECT_EQ(clk->pending_timers(), 0u);

  // Every attempt too slow: the per-try timeout is the error (condition timed_out).
  st->calls = 0;
  st->call_delays.clear();
  st->call_delay = 1s;
  mock_request req2;
  std::optional<result<int>> out2;
  start(svc, req2, out2);
  run_until_done(out2, 500ms);
  ASSERT_TRUE(out2);
  EXPECT_EQ(out2->error(), retry_errc::attempt_timed_out);
  EXPECT_EQ(out2->error(), errc::timed_out);
  EXPECT_EQ(st->calls, 3);
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(RetryTest, CancellationDuringBackoffEndsTheRequest) {
  cfg.backoff_base = cfg.backoff_max = 1s;
  st->call_error = refused;
  auto svc = retry_layer(cfg, lctx, nullptr, 1).wrap(mock_service{st});
  mock_request req;
  req.ctx.set_sample(3);
  std::optional<result<int>> out;
  start(svc, req, out);
  EXPECT_FALSE(out);
  req.ctx.cancel();
  io.poll();
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), boost::asio::error::operation_aborted);
  EXPECT_EQ(st->calls, 1);
  advance(5s);
  EXPECT_EQ(st->calls, 1);
  EXPECT_EQ(st->live_permits, 0);

  // Cancelled during an attempt: no retry.
  st->calls = 0;
  st->call_delay = 1s;
  mock_request req2;
  std::optional<result<int>> out2;
  start(svc, req2, out2);
  req2.ctx.cancel();
  io.poll();
  ASSERT_TRUE(out2);
  EXPECT_EQ(out2->error(), boost::asio::error::operation_aborted);
  EXPECT_EQ(st->calls, 1);
}

TEST_F(RetryTest, NoRetryPastTheDeadline) {
  cfg.backoff_base = cfg.backoff_max = 1s;
  st->call_error = refused;
  detail::retry_shared sh;
  sh.cfg = cfg;
  sh.salt = request_context::mix64(1);
  std::uint64_t sample = 0;
  while (sh.backoff(1, sample) <= 2ms) ++sample;  // a request whose first backoff ends after its deadline
  auto svc = retry_layer(cfg, lctx, nullptr, 1).wrap(mock_service{st});
  mock_request req;
  req.ctx.deadline = clk->now() + 2ms;
  req.ctx.set_sample(sample);
  std::optional<result<int>> out;
  start(svc, req, out);
  ASSERT_TRUE(out);  // no wait: returned at once
  EXPECT_EQ(out->error(), refused);
  EXPECT_EQ(st->calls, 1);
}

TEST_F(RetryTest, FastPathStaysSynchronousOnSuccess) {
  st->immediate = true;
  auto svc = retry_layer(cfg, lctx, nullptr, 1).wrap(mock_service{st});
  mock_request req;
  req.value = 2;
  auto r = svc.try_call_now(req);
  ASSERT_TRUE(r && *r);
  EXPECT_EQ(**r, 4);
  EXPECT_EQ(attempts(), 1u);
  EXPECT_FALSE(req.ctx.has_fast_path_note(nullptr));
}

TEST_F(RetryTest, FastPathFailureContinuesWithBackoffInCall) {
  st->immediate = true;
  st->call_errors = {refused, refused};
  auto svc = retry_layer(cfg, lctx, nullptr, 1).wrap(mock_service{st});
  mock_request req;
  req.value = 2;
  std::optional<result<int>> out;
  start(svc, req, out);  // try_call_now: attempt 1 fails, declines; ready() + call(): backoff, attempts 2 and 3
  EXPECT_FALSE(out);
  EXPECT_EQ(st->calls, 1);
  EXPECT_EQ(req.reply, "");
  run_until_done(out);
  ASSERT_TRUE(out && *out);
  EXPECT_EQ(st->calls, 3);
  EXPECT_EQ(attempts(), 3u);
  EXPECT_EQ(req.reply, "4;");
  EXPECT_EQ(st->live_permits, 0);

  // A non-retryable failure on the fast path is returned there.
  st->calls = 0;
  st->call_errors = {invalid};
  mock_request req2;
  auto r = svc.try_call_now(req2);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->error(), invalid);
}

TEST_F(RetryTest, RetriesErrorRepliesByCode) {
  auto svc = retry_layer(cfg, lctx, nullptr, 1).wrap(coded_service{mock_service{st}, {"TRYAGAIN", "LOADING", "ERR"}});
  mock_request req;
  req.value = 5;
  std::optional<result<coded>> out;
  boost::asio::co_spawn(
      io, [&]() -> awaitable<void> { out.emplace(co_await ready_and_call(svc, req)); }, boost::asio::detached);
  io.poll();
  for (int i = 0; i < 5000 && !out; ++i) advance(1ms);
  ASSERT_TRUE(out && *out);
  EXPECT_EQ((*out)->code, "ERR");  // not in retry_on: the third reply is kept
  EXPECT_EQ(st->calls, 3);
  EXPECT_EQ(req.reply, "10;");  // the replies of the first two attempts were discarded
}

TEST_F(RetryTest, RetriedAttemptsAreSampledAnew) {
  // A fault aborting half the requests, inside the retry: each retry is sampled anew, so about 7 in 8 requests
  // succeed within 3 attempts (with the same sample every attempt, exactly half would).
  fault_config f;
  f.abort = fault_config::abort_fault{fault_errc::unavailable, 50};
  cfg.budget_ratio = 10;
  cfg.backoff_base = cfg.backoff_max = 1ms;
  auto svc = retry_layer(cfg, lctx, nullptr, 1).wrap(fault_layer(f, lctx, 2).wrap(mock_service{st}));
  int ok = 0;
  const int n = 400;
  for (int i = 0; i < n; ++i) {
    mock_request req;
    req.ctx.set_sample(request_context::mix64(i));
    std::optional<result<int>> out;
    start(svc, req, out);
    run_until_done(out);
    ASSERT_TRUE(out);
    if (*out) ++ok;
  }
  EXPECT_GT(ok, n * 80 / 100);
  EXPECT_LT(ok, n * 95 / 100);
}

TEST_F(RetryTest, FactoryFromYaml) {
  layer_registry<mock_request, int> registry;
  register_builtin_layers(registry);
  auto c = load_config_string(
      "pipeline:\n  - layer: retry\n    max_attempts: 2\n    backoff: {base: 1ms, max: 2ms}\n"
      "    budget: {ratio: 0.5, min_per_second: 0, window: 10s}\n    per_try_timeout: 100ms\n"
      "    retry_on: [unavailable, TRYAGAIN]\n    writes: false\n",
      "turret.yaml");
  const retry_config parsed = parse_retry_config(c.child("pipeline").at(0));
  EXPECT_EQ(parsed.max_attempts, 2u);
  EXPECT_EQ(parsed.backoff_base, 1ms);
  EXPECT_EQ(parsed.backoff_max, 2ms);
  EXPECT_EQ(parsed.budget_ratio, 0.5);
  EXPECT_EQ(parsed.budget_min_per_second, 0u);
  EXPECT_EQ(parsed.per_try_timeout, 100ms);
  EXPECT_EQ(parsed.retry_on_conditions, std::vector<errc>{errc::unavailable});
  EXPECT_EQ(parsed.retry_on_codes, std::vector<std::string>{"TRYAGAIN"});

  st->call_error = refused;
  auto svc = registry.build(c.child("pipeline"), any_service<mock_request, int>(mock_service{st}), lctx);
  // ratio 0.5, no floor: the first request's deposit allows no retry, the second's makes one.
  for (int expected_calls : {1, 3}) {
    mock_request req;
    std::optional<result<int>> out;
    start(svc, req, out);
    run_until_done(out);
    ASSERT_TRUE(out);
    EXPECT_EQ(out->error(), refused);
    EXPECT_EQ(st->calls, expected_calls);
  }
  EXPECT_NE(reg.expose().find("turret_retry_attempts_total{pipeline=\"p1\"} 3"), std::string::npos) << reg.expose();
  EXPECT_NE(reg.expose().find("turret_retry_budget_exhausted_total{pipeline=\"p1\"} 1"), std::string::npos);

  auto expect_error = [&](const char* yaml, const char* what) { EXPECT_EQ(build_error(registry, yaml, lctx), what); };
  expect_error("pipeline:\n  - layer: retry\n    retry_on: [gone]\n",
               "turret.yaml:3:16: pipeline[0].retry_on[0]: unknown retry_on entry 'gone' (expected a condition: "
               "overloaded, unavailable, timed_out, cancelled, internal..., or a Redis error code in capitals: "
               "TRYAGAIN, LOADING, BUSY...)");
  expect_error("pipeline:\n  - layer: retry\n    backoff: {base: 0s}\n",
               "turret.yaml:3:21: pipeline[0].backoff.base: duration must be greater than 0");
  expect_error("pipeline:\n  - layer: retry\n    backoff: {base: 10ms, max: 1ms}\n",
               "turret.yaml:3:32: pipeline[0].backoff.max: max must not be less than base");
  expect_error("pipeline:\n  - layer: retry\n    budget: {ratio: -1}\n",
               "turret.yaml:3:21: pipeline[0].budget.ratio: ratio must be between 0 and 1000");
}

TEST_F(RetryTest, FactoryRejectsUnknownKeys) {
  layer_registry<mock_request, int> registry;
  register_builtin_layers(registry);
  const std::string e = build_error(registry, "pipeline:\n  - layer: retry\n    attempts: 3\n", lctx);
  EXPECT_NE(e.find("pipeline[0]"), std::string::npos) << e;
  EXPECT_NE(e.find("attempts"), std::string::npos) << e;
}

TEST_F(RetryTest, BudgetIsCarriedOverForAnUnchangedEntry) {
  layer_registry<mock_request, int> registry;
  register_builtin_layers(registry);
  auto store = std::make_shared<layer_state_store>();
  lctx.states = store;
  auto c = load_config_string("pipeline:\n  - layer: retry\n    budget: {ratio: 1, min_per_second: 0}\n",
                              "turret.yaml");
  st->call_error = refused;
  auto svc1 = registry.build(c.child("pipeline"), any_service<mock_request, int>(mock_service{st}), lctx);
  mock_request req;
  std::optional<result<int>> out;
  start(svc1, req, out);
  run_until_done(out);
  EXPECT_EQ(st->calls, 2);  // one deposit: one retry
  // Reload: a new store whose previous one is the served one; the same entry gets the same (now empty) budget.
  lctx.states = std::make_shared<layer_state_store>(store);
  auto svc2 = registry.build(c.child("pipeline"), any_service<mock_request, int>(mock_service{st}), lctx);
  EXPECT_EQ(store->size(), 1u);
  EXPECT_EQ(lctx.states->size(), 1u);
}

}  // namespace
}  // namespace turret
