#include <turret/any_service.hpp>
#include <turret/layer.hpp>
#include <turret/middleware/builtin.hpp>
#include <turret/middleware/concurrency_limit.hpp>
#include <turret/middleware/testing/layer_harness.hpp>
#include <turret/middleware/testing/mock_service.hpp>
#include <turret/middleware/timeout.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <gtest/gtest.h>

#include <thread>

namespace turret {
namespace {

using namespace std::chrono_literals;
using testing::mock_request;
using testing::mock_service;
using testing::mock_state;

struct ConcurrencyLimitTest : ::testing::Test, testing::layer_harness {};

TEST_F(ConcurrencyLimitTest, LimitsInFlightCalls) {
  st->call_delay = 1s;
  auto svc = concurrency_limit_layer(2).wrap(mock_service{st});
  mock_request r[3];
  std::optional<result<int>> out[3];
  for (int i = 0; i < 3; ++i) start(svc, r[i], out[i]);
  EXPECT_EQ(st->calls, 2);
  EXPECT_EQ(svc.semaphore().waiters(), 1u);
  EXPECT_EQ(svc.semaphore().available(), 0u);
  advance(1s);
  EXPECT_TRUE(out[0] && *out[0]);
  EXPECT_TRUE(out[1] && *out[1]);
  EXPECT_FALSE(out[2]);
  EXPECT_EQ(st->calls, 3);
  advance(1s);
  EXPECT_TRUE(out[2] && *out[2]);
  EXPECT_EQ(st->peak_in_call, 2);
  EXPECT_EQ(svc.semaphore().available(), 2u);
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(ConcurrencyLimitTest, FifoOrder) {
  auto svc = concurrency_limit_layer(1).wrap(mock_service{st});
  std::vector<int> order;
  std::optional<decltype(svc)::permit_type> held;
  mock_request holder;
  boost::asio::co_spawn(
      io, [&]() -> awaitable<void> { held.emplace(std::move(*co_await svc.ready(holder.ctx))); },
      boost::asio::detached);
  io.poll();
  ASSERT_TRUE(held);
  mock_request r[4];
  std::vector<std::optional<decltype(svc)::permit_type>> permits(4);
  for (int i = 0; i < 4; ++i) {
    boost::asio::co_spawn(
        io,
        [&, i]() -> awaitable<void> {
          auto p = co_await svc.ready(r[i].ctx);
          order.push_back(i);
          permits[i].emplace(std::move(*p));
        },
        boost::asio::detached);
    io.poll();
  }
  EXPECT_EQ(svc.semaphore().waiters(), 4u);
  held.reset();  // releases: hands the slot to the first waiter
  io.poll();
  for (int i = 0; i < 3; ++i) {
    // A newcomer must not overtake the queue even though a slot moves between permits.
    EXPECT_FALSE(svc.semaphore().try_acquire());
    permits[i].reset();
    io.poll();
  }
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3}));
  permits[3].reset();
  EXPECT_EQ(svc.semaphore().available(), 1u);
}

TEST_F(ConcurrencyLimitTest, CancelledWaiterNeitherLeaksNorSteals) {
  auto svc = concurrency_limit_layer(1).wrap(mock_service{st});
  std::optional<decltype(svc)::permit_type> held;
  mock_request holder, waiter, second;
  boost::asio::co_spawn(
      io, [&]() -> awaitable<void> { held.emplace(std::move(*co_await svc.ready(holder.ctx))); },
      boost::asio::detached);
  std::optional<result<int>> out, out2;
  start(svc, waiter, out);
  start(svc, second, out2);
  EXPECT_EQ(svc.semaphore().waiters(), 2u);
  waiter.ctx.cancel();
  io.poll();
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), boost::asio::error::operation_aborted);
  EXPECT_EQ(svc.semaphore().waiters(), 1u);
  EXPECT_EQ(svc.semaphore().available(), 0u);
  held.reset();
  io.poll();
  ASSERT_TRUE(out2 && *out2);  // the next waiter got the slot
  EXPECT_EQ(svc.semaphore().available(), 1u);
  EXPECT_EQ(st->live_permits, 0);
  // Already-cancelled context: no wait at all.
  std::optional<decltype(svc)::permit_type> held2;
  boost::asio::co_spawn(
      io, [&]() -> awaitable<void> { held2.emplace(std::move(*co_await svc.ready(holder.ctx))); },
      boost::asio::detached);
  io.poll();
  std::optional<result<int>> out3;
  start(svc, waiter, out3);  // waiter.ctx is cancelled
  ASSERT_TRUE(out3);
  EXPECT_EQ(out3->error(), boost::asio::error::operation_aborted);
  EXPECT_EQ(svc.semaphore().waiters(), 0u);
}

TEST_F(ConcurrencyLimitTest, PermitReleasedOnDropAndOnError) {
  auto svc = concurrency_limit_layer(1).wrap(mock_service{st});
  request_context dropped;
  boost::asio::co_spawn(
      io, [&]() -> awaitable<void> { auto p = co_await svc.ready(dropped); }, boost::asio::detached);
  io.poll();
  EXPECT_EQ(svc.semaphore().available(), 1u);
  st->call_error = boost::asio::error::connection_reset;
  mock_request req;
  std::optional<result<int>> out;
  start(svc, req, out);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), boost::asio::error::connection_reset);
  EXPECT_EQ(svc.semaphore().available(), 1u);
  st->call_error = {};
  st->ready_error = boost::asio::error::no_buffer_space;  // inner not ready: our slot is returned
  std::optional<result<int>> out2;
  mock_request req2;
  start(svc, req2, out2);
  ASSERT_TRUE(out2);
  EXPECT_EQ(svc.semaphore().available(), 1u);
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(ConcurrencyLimitTest, TimeoutBoundsTheWait) {
  st->call_delay = 10s;
  auto svc = service_builder{}.layer(timeout_layer(1s, clk)).layer(concurrency_limit_layer(1)).service(mock_service{st});
  mock_request a, b;
  std::optional<result<int>> out_a, out_b;
  start(svc, a, out_a);
  advance(500ms);
  start(svc, b, out_b);  // waits for a slot
  EXPECT_EQ(svc.inner().semaphore().waiters(), 1u);
  advance(500ms);  // a's deadline: its call is cancelled, which frees the slot for b
  ASSERT_TRUE(out_a);
  EXPECT_EQ(out_a->error(), timeout_errc::elapsed);
  EXPECT_FALSE(out_b);
  EXPECT_EQ(st->calls, 2);
  advance(500ms);  // b's deadline, 1s after its ready() began (500ms waiting + 500ms in the call)
  ASSERT_TRUE(out_b);
  EXPECT_EQ(out_b->error(), timeout_errc::elapsed);
  EXPECT_EQ(svc.inner().semaphore().available(), 1u);
  EXPECT_EQ(svc.inner().semaphore().waiters(), 0u);
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(ConcurrencyLimitTest, TimeoutWhileQueued) {
  auto svc = service_builder{}.layer(timeout_layer(1s, clk)).layer(concurrency_limit_layer(1)).service(mock_service{st});
  auto& limit = svc.inner();
  std::optional<std::remove_reference_t<decltype(limit)>::permit_type> held;
  mock_request holder, waiter;
  boost::asio::co_spawn(
      io, [&]() -> awaitable<void> { held.emplace(std::move(*co_await limit.ready(holder.ctx))); },
      boost::asio::detached);
  std::optional<result<int>> out;
  start(svc, waiter, out);
  advance(1s);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), timeout_errc::elapsed);
  EXPECT_EQ(limit.semaphore().waiters(), 0u);
  held.reset();
  EXPECT_EQ(limit.semaphore().available(), 1u);  // not leaked, not stolen
}

TEST_F(ConcurrencyLimitTest, FastPath) {
  st->immediate = true;
  auto svc = concurrency_limit_layer(1).wrap(mock_service{st});
  mock_request req;
  req.value = 5;
  auto r = svc.try_call_now(req);
  ASSERT_TRUE(r && *r);
  EXPECT_EQ(**r, 10);
  EXPECT_EQ(svc.semaphore().available(), 1u);
  {
    auto p = svc.semaphore().try_acquire();
    ASSERT_TRUE(p);
    EXPECT_FALSE(svc.try_call_now(req));  // no slot: would suspend
    svc.semaphore().release();
  }
  st->immediate = false;
  EXPECT_FALSE(svc.try_call_now(req));  // inner would suspend: slot given back
  EXPECT_EQ(svc.semaphore().available(), 1u);
  // Through erasure.
  any_service<mock_request, int> erased(service_builder{}
                                            .layer(timeout_layer(1s, clk))
                                            .layer(concurrency_limit_layer(1))
                                            .service(mock_service{st}));
  EXPECT_TRUE(erased.supports_immediate());
}

TEST(ConcurrencyLimitCrossThread, WaitersOnSeveralContexts) {
  constexpr int threads = 4, per_thread = 300, max = 3;
  auto st = std::make_shared<mock_state>(steady_clock());
  st->call_delay = 50us;
  auto svc = concurrency_limit_layer(max).wrap(mock_service{st});
  std::vector<std::unique_ptr<boost::asio::io_context>> ios;
  std::atomic<int> ok{0}, wrong_thread{0};
  for (int t = 0; t < threads; ++t) ios.push_back(std::make_unique<boost::asio::io_context>(1));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    auto& io = *ios[t];
    for (int i = 0; i < per_thread; ++i) {
      boost::asio::co_spawn(
          io,
          [&]() -> awaitable<void> {
            mock_request req;
            req.value = 1;
            const auto me = std::this_thread::get_id();
            auto p = co_await svc.ready(req.ctx);
            if (std::this_thread::get_id() != me) wrong_thread++;
            if (!p) co_return;
            auto r = co_await svc.call(std::move(*p), req);
            if (r && *r == 2) ok++;
          },
          boost::asio::detached);
    }
    workers.emplace_back([&io] { io.run(); });
  }
  for (auto& w : workers) w.join();
  EXPECT_EQ(ok.load(), threads * per_thread);
  EXPECT_EQ(wrong_thread.load(), 0);
  EXPECT_LE(st->peak_in_call.load(), max);
  EXPECT_EQ(svc.semaphore().available(), static_cast<std::size_t>(max));
  EXPECT_EQ(svc.semaphore().waiters(), 0u);
  EXPECT_EQ(st->live_permits, 0);
}

TEST(ConcurrencyLimitCrossThread, CancellationRaces) {
  // Waiters cancelled from their own thread while other threads release: no slot may leak or be duplicated.
  constexpr int threads = 3, per_thread = 300, max = 2;
  auto st = std::make_shared<mock_state>(steady_clock());
  st->call_delay = 20us;
  auto svc = service_builder{}.layer(timeout_layer(100us)).layer(concurrency_limit_layer(max)).service(mock_service{st});
  std::vector<std::unique_ptr<boost::asio::io_context>> ios;
  std::atomic<int> done{0};
  for (int t = 0; t < threads; ++t) ios.push_back(std::make_unique<boost::asio::io_context>(1));
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    auto& io = *ios[t];
    for (int i = 0; i < per_thread; ++i) {
      boost::asio::co_spawn(
          io,
          [&]() -> awaitable<void> {
            mock_request req;
            (void)co_await ready_and_call(svc, req);
            done++;
          },
          boost::asio::detached);
    }
    workers.emplace_back([&io] { io.run(); });
  }
  for (auto& w : workers) w.join();
  EXPECT_EQ(done.load(), threads * per_thread);
  EXPECT_LE(st->peak_in_call.load(), max);
  EXPECT_EQ(svc.inner().semaphore().available(), static_cast<std::size_t>(max));
  EXPECT_EQ(svc.inner().semaphore().waiters(), 0u);
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(ConcurrencyLimitTest, FactoryFromYaml) {
  layer_registry<mock_request, int> reg;
  register_builtin_layers(reg);
  layer_context lctx;
  lctx.clk = clk;
  st->call_delay = 1s;
  auto cfg = load_config_string(
      "pipeline:\n  - {layer: timeout, duration: 5s}\n  - layer: concurrency_limit\n    max: 1\n", "turret.yaml");
  auto svc = reg.build(cfg.child("pipeline"), any_service<mock_request, int>(mock_service{st}), lctx);
  mock_request a, b;
  std::optional<result<int>> oa, ob;
  start(svc, a, oa);
  start(svc, b, ob);
  EXPECT_EQ(st->calls, 1);
  advance(1s);
  EXPECT_TRUE(oa && *oa);
  EXPECT_EQ(st->calls, 2);
  advance(1s);
  EXPECT_TRUE(ob && *ob);

  auto expect_error = [&](const char* yaml, const char* what) {
    auto c = load_config_string(yaml, "turret.yaml");
    try {
      reg.build(c.child("pipeline"), any_service<mock_request, int>(mock_service{st}));
      ADD_FAILURE() << "no error for " << yaml;
    } catch (const config_error& e) {
      EXPECT_STREQ(e.what(), what);
    }
  };
  expect_error("pipeline:\n  - layer: concurrency_limit\n    max: 0\n",
               "turret.yaml:3:10: pipeline[0].max: value 0 out of range [1, 2147483648]");
  expect_error("pipeline:\n  - layer: concurrency_limit\n    max: many\n",
               "turret.yaml:3:10: pipeline[0].max: expected an integer, got 'many'");
  expect_error("pipeline:\n  - layer: concurrency_limit\n    max: 1\n    burst: 2\n",
               "turret.yaml:4:5: pipeline[0].burst: unknown key 'burst' (allowed: layer, max, scope)");
  expect_error("pipeline:\n  - layer: concurrency_limit\n    max: 1\n    scope: per_client\n",
               "turret.yaml:4:12: pipeline[0].scope: unknown scope 'per_client' (expected global or per_connection)");
}

// Hot reload: a pipeline rebuilt from the same entry in a new state generation shares the limiter, so a slot held
// by a request still running on the old pipeline counts against the new one; a changed entry gets a fresh limiter.
TEST_F(ConcurrencyLimitTest, ReloadCarriesTheLimiterOverForAnUnchangedEntry) {
  layer_registry<mock_request, int> reg;
  register_builtin_layers(reg);
  st->call_delay = 1s;
  auto build = [&](const char* yaml, std::shared_ptr<layer_state_store> states) {
    layer_context lctx;
    lctx.clk = clk;
    lctx.states = std::move(states);
    auto cfg = load_config_string(yaml, "turret.yaml");
    return reg.build(cfg.child("pipeline"), any_service<mock_request, int>(mock_service{st}), lctx);
  };
  const char* limit1 = "pipeline:\n  - layer: concurrency_limit\n    max: 1\n";
  auto gen1 = std::make_shared<layer_state_store>();
  auto old_pipeline = build(limit1, gen1);
  mock_request held;
  std::optional<result<int>> held_out;
  start(old_pipeline, held, held_out);  // holds the only slot for 1s
  ASSERT_EQ(st->calls, 1);

  auto gen2 = std::make_shared<layer_state_store>(gen1);
  auto new_pipeline = build(limit1, gen2);
  gen2->drop_previous();
  gen1.reset();
  EXPECT_EQ(gen2->size(), 1u);
  mock_request second;
  std::optional<result<int>> second_out;
  start(new_pipeline, second, second_out);
  EXPECT_EQ(st->calls, 1) << "the slot held on the old pipeline must still count";
  EXPECT_FALSE(second_out);
  advance(1s);  // the held request ends on the old pipeline: its slot goes to the waiter on the new one
  EXPECT_TRUE(held_out && *held_out);
  EXPECT_EQ(st->calls, 2);
  advance(1s);
  EXPECT_TRUE(second_out && *second_out);

  // A changed entry (max: 2) starts with a fresh limiter: both requests run at once.
  auto gen3 = std::make_shared<layer_state_store>(gen2);
  auto changed = build("pipeline:\n  - layer: concurrency_limit\n    max: 2\n", gen3);
  mock_request c1, c2;
  std::optional<result<int>> o1, o2;
  start(new_pipeline, c1, o1);  // holds gen2's only slot
  start(changed, c2, o2);
  EXPECT_EQ(st->calls, 4);
  advance(1s);
  EXPECT_TRUE(o1 && *o1);
  EXPECT_TRUE(o2 && *o2);
}

/// Puts requests on connections: on_connections({&a, 1}, {&b, 2}).
void on_connections(std::initializer_list<std::pair<mock_request*, std::uint64_t>> reqs) {
  for (auto [r, id] : reqs) r->ctx.set_connection_id(id);
}

TEST_F(ConcurrencyLimitTest, PerConnectionLimitsEachConnectionSeparately) {
  st->call_delay = 1s;
  concurrency_limit_config cfg;
  cfg.max = 1;
  cfg.scope = concurrency_limit_config::scope_kind::per_connection;
  auto svc = concurrency_limit_layer(cfg).wrap(mock_service{st});
  mock_request a1, a2, b1;
  on_connections({{&a1, 1}, {&a2, 1}, {&b1, 2}});
  std::optional<result<int>> oa1, oa2, ob1;
  start(svc, a1, oa1);
  start(svc, a2, oa2);  // waits behind a1 (same connection)
  start(svc, b1, ob1);  // another connection: its own slot
  EXPECT_EQ(st->calls, 2);
  EXPECT_EQ(st->peak_in_call, 2);
  EXPECT_EQ(svc.connections().size(), 2u);
  advance(1s);
  EXPECT_TRUE(oa1 && *oa1);
  EXPECT_TRUE(ob1 && *ob1);
  EXPECT_FALSE(oa2);
  EXPECT_EQ(svc.connections().size(), 1u);  // connection 2 is idle: its entry is gone
  advance(1s);
  EXPECT_TRUE(oa2 && *oa2);
  EXPECT_EQ(svc.connections().size(), 0u);
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(ConcurrencyLimitTest, PerConnectionFastPathCancellationAndMemory) {
  st->immediate = true;
  concurrency_limit_config cfg;
  cfg.max = 2;
  cfg.scope = concurrency_limit_config::scope_kind::per_connection;
  auto svc = concurrency_limit_layer(cfg).wrap(mock_service{st});
  for (std::uint64_t id = 1; id <= 1000; ++id) {
    mock_request r;
    r.ctx.set_connection_id(id);
    auto out = svc.try_call_now(r);
    ASSERT_TRUE(out && *out);
  }
  EXPECT_EQ(svc.connections().size(), 0u);  // nothing in flight: nothing kept
  // A full connection: the fast path declines, a waiter can be cancelled, nothing leaks.
  st->immediate = false;
  st->call_delay = 1s;
  mock_request r[3];
  on_connections({{&r[0], 7}, {&r[1], 7}, {&r[2], 7}});
  std::optional<result<int>> out[3];
  for (int i = 0; i < 3; ++i) start(svc, r[i], out[i]);
  st->immediate = true;
  EXPECT_FALSE(svc.try_call_now(r[2]));
  r[2].ctx.cancel();
  io.poll();
  ASSERT_TRUE(out[2]);
  EXPECT_EQ(out[2]->error(), boost::asio::error::operation_aborted);
  advance(1s);
  EXPECT_TRUE(out[0] && *out[0] && out[1] && *out[1]);
  EXPECT_EQ(svc.connections().size(), 0u);
  EXPECT_EQ(st->live_permits, 0);
}

TEST(ConcurrencyLimitContext, ConnectionIds) {
  const auto a = request_context::new_connection_id(), b = request_context::new_connection_id();
  EXPECT_NE(a, 0u);
  EXPECT_NE(a, b);
  EXPECT_EQ(a >> 63, 0u);
  request_context none;
  EXPECT_EQ(none.connection_id(), 0u);  // no peer: unknown
  request_context x, y, z;
  x.set_peer({boost::asio::ip::make_address("10.1.2.3"), 5000});
  y.set_peer({boost::asio::ip::make_address("10.1.2.3"), 5001});
  z.set_peer({boost::asio::ip::make_address("10.1.2.3"), 5000});
  EXPECT_EQ(x.connection_id() >> 63, 1u);  // derived from the peer (gRPC)
  EXPECT_NE(x.connection_id(), y.connection_id());
  EXPECT_EQ(x.connection_id(), z.connection_id());
  x.reset_for_next_request();
  EXPECT_EQ(x.connection_id(), z.connection_id());
}

TEST_F(ConcurrencyLimitTest, TryReady) {
  auto svc = concurrency_limit_layer(1).wrap(mock_service{st});
  mock_request req;
  auto p = svc.try_ready(req.ctx);
  ASSERT_TRUE(p && *p);
  EXPECT_TRUE((*p)->inner);
  EXPECT_EQ(svc.semaphore().available(), 0u);
  EXPECT_FALSE(svc.try_ready(req.ctx));  // full: would wait
  p.reset();
  EXPECT_EQ(svc.semaphore().available(), 1u);
  EXPECT_EQ(st->live_permits, 0);
  st->ready_error = make_error_code(boost::asio::error::connection_refused);
  auto e = svc.try_ready(req.ctx);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->error(), boost::asio::error::connection_refused);
  EXPECT_EQ(svc.semaphore().available(), 1u);
  // The inner service would wait: the slot is taken, the inner ready() deferred to call().
  st->ready_error = {};
  st->ready_delay = 400ms;
  auto d = svc.try_ready(req.ctx);
  ASSERT_TRUE(d && *d);
  EXPECT_FALSE((*d)->inner);
  std::optional<result<int>> out;
  boost::asio::co_spawn(
      io, [&]() -> awaitable<void> { out.emplace(co_await svc.call(std::move(**d), req)); }, boost::asio::detached);
  io.poll();
  EXPECT_EQ(svc.semaphore().available(), 0u);
  EXPECT_TRUE(completes_after(out, 400ms));
  EXPECT_TRUE(*out);
  EXPECT_EQ(svc.semaphore().available(), 1u);
  EXPECT_EQ(st->live_permits, 0);
}

TEST_F(ConcurrencyLimitTest, FactoryStateCarriesOverAndScopeFromYaml) {
  layer_registry<mock_request, int> reg;
  register_builtin_layers(reg);
  layer_context lctx;
  lctx.clk = clk;
  lctx.states = std::make_shared<layer_state_store>();
  st->call_delay = 1s;
  const char* yaml = "pipeline:\n  - {layer: concurrency_limit, max: 1, scope: per_connection}\n";
  auto one = reg.build(load_config_string(yaml, "turret.yaml").child("pipeline"),
                       any_service<mock_request, int>(mock_service{st}), lctx);
  auto two = reg.build(load_config_string(yaml, "turret.yaml").child("pipeline"),
                       any_service<mock_request, int>(mock_service{st}), lctx);
  mock_request a, b, c;
  on_connections({{&a, 3}, {&b, 3}, {&c, 4}});
  std::optional<result<int>> oa, ob, oc;
  start(one, a, oa);
  start(two, b, ob);  // the rebuilt pipeline shares the limiter: connection 3 is full
  start(two, c, oc);
  EXPECT_EQ(st->calls, 2);
  advance(1s);
  EXPECT_TRUE(oa && *oa && oc && *oc);
  EXPECT_FALSE(ob);
  advance(1s);
  EXPECT_TRUE(ob && *ob);
  EXPECT_EQ(st->live_permits, 0);
}


}  // namespace
}  // namespace turret
