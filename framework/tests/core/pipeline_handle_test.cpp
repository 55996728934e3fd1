// pipeline_handle: swapping a pipeline while requests are in flight.
#include "test_support.hpp"

#include <turret/any_service.hpp>
#include <turret/clock.hpp>
#include <turret/pipeline_handle.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace turret {
namespace {

using namespace std::chrono_literals;
using erased = any_service<test::request, int>;

/// A pipeline that answers with its id after waiting `delay` (a manual clock), and counts its live instances.
struct tagged_service {
  using response_type = int;
  using permit_type = unit_permit;

  struct state {
    int id;
    std::shared_ptr<manual_clock> clk;
    std::shared_ptr<std::atomic<int>> live;
    std::chrono::nanoseconds delay{0};
    state(int i, std::shared_ptr<manual_clock> c, std::shared_ptr<std::atomic<int>> l)
        : id(i), clk(std::move(c)), live(std::move(l)) {
      live->fetch_add(1);
    }
    ~state() { live->fetch_sub(1); }
  };
  std::shared_ptr<state> st;

  awaitable<result<unit_permit>> ready(request_context&) { co_return unit_permit{}; }
  awaitable<result<int>> call(unit_permit, test::request& req) {
    if (st->delay.count() > 0) {
      if (auto ec = co_await sleep_for(*st->clk, st->delay, req.ctx.cancel_slot())) co_return ec;
    }
    co_return st->id;
  }
};

struct PipelineHandleTest : ::testing::Test {
  boost::asio::io_context io;
  std::shared_ptr<manual_clock> clk = std::make_shared<manual_clock>();
  std::shared_ptr<std::atomic<int>> live = std::make_shared<std::atomic<int>>(0);

  erased make(int id, std::chrono::nanoseconds delay = {}) {
    auto st = std::make_shared<tagged_service::state>(id, clk, live);
    st->delay = delay;
    return erased(tagged_service{std::move(st)});
  }
  void advance(clock::duration d) {
    clk->advance(d);
    io.poll();
  }
};

TEST_F(PipelineHandleTest, ReaderRefreshesWhenTheGenerationMoves) {
  pipeline_handle<erased> h(make(1));
  EXPECT_EQ(h.generation(), 1u);
  pipeline_handle<erased>::reader r(h);
  EXPECT_EQ(r.generation(), 1u);
  erased* first = &r.get();
  EXPECT_EQ(&r.get(), first);  // nothing changed: the same snapshot
  EXPECT_EQ(h.swap(make(2)), 2u);
  EXPECT_EQ(h.generation(), 2u);
  EXPECT_EQ(r.generation(), 1u);  // not refreshed before the next get()
  erased* second = &r.get();
  EXPECT_NE(second, first);
  EXPECT_EQ(r.generation(), 2u);
  EXPECT_EQ(r.pinned().get(), second);
  EXPECT_EQ(h.load().get(), second);
  EXPECT_EQ(live->load(), 1);  // the first pipeline went with the reader's refresh
}

TEST_F(PipelineHandleTest, CopiesShareTheSlot) {
  pipeline_handle<erased> server(make(1));
  pipeline_handle<erased> listener_a = server, listener_b = server;
  pipeline_handle<erased>::reader ra(listener_a), rb(listener_b);
  server.swap(make(2));
  EXPECT_EQ(ra.get().target<tagged_service>()->st->id, 2);
  EXPECT_EQ(rb.get().target<tagged_service>()->st->id, 2);
  // An implicit handle from a pipeline is a slot of its own.
  pipeline_handle<erased> other = make(3);
  server.swap(make(4));
  EXPECT_EQ(other.load()->target<tagged_service>()->st->id, 3);
}

// A request that started on pipeline 1 finishes on it, although pipeline 2 replaced it meanwhile; pipeline 1 lives
// exactly as long as a snapshot of it does.
TEST_F(PipelineHandleTest, InFlightRequestFinishesOnItsPipeline) {
  pipeline_handle<erased> h(make(1, 1s));
  pipeline_handle<erased>::reader conn(h);  // a connection
  test::request req;
  std::optional<result<int>> out;
  boost::asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        erased& p = conn.get();  // as a front end does when the request starts
        out.emplace(co_await ready_and_call(p, req));
      },
      boost::asio::detached);
  io.poll();
  EXPECT_FALSE(out);
  h.swap(make(2));
  EXPECT_EQ(live->load(), 2);  // pipeline 1 is held by the connection's snapshot
  // A request pinned with load() (no reader) now gets pipeline 2 and keeps it alive on its own.
  auto pin = h.load();
  EXPECT_EQ(pin->target<tagged_service>()->st->id, 2);
  advance(1s);
  ASSERT_TRUE(out && *out);
  EXPECT_EQ(**out, 1);         // answered by the pipeline it started on
  EXPECT_EQ(live->load(), 2);  // the connection's reader still holds pipeline 1 until its next request
  EXPECT_EQ(conn.get().target<tagged_service>()->st->id, 2);
  EXPECT_EQ(live->load(), 1);  // ...which dropped it
  h.swap(make(3));
  EXPECT_EQ(live->load(), 2);  // 2 is still pinned by `pin` and the reader
  pin.reset();
  (void)conn.get();
  EXPECT_EQ(live->load(), 1);
}

TEST_F(PipelineHandleTest, PinnedSnapshotOutlivesTheHandle) {
  pipeline_handle<erased>::snapshot pin;
  {
    pipeline_handle<erased> h(make(1));
    pin = h.load();
  }
  EXPECT_EQ(live->load(), 1);
  EXPECT_EQ(pin->target<tagged_service>()->st->id, 1);
  pin.reset();
  EXPECT_EQ(live->load(), 0);
}

// Readers on several threads while another thread swaps: every reader sees generations in order and a live
// pipeline whose id matches the generation it was published with. (Run under TSan by tests/sanitizers/tsan.sh.)
TEST_F(PipelineHandleTest, ConcurrentSwapsAndReaders) {
  struct numbered {
    int id;
    std::shared_ptr<std::atomic<int>> live;
    numbered(int i, std::shared_ptr<std::atomic<int>> l) : id(i), live(std::move(l)) { live->fetch_add(1); }
    numbered(const numbered&) = delete;
    ~numbered() { live->fetch_sub(1); }
  };
  pipeline_handle<numbered> h(std::make_shared<numbered>(1, live));
  constexpr int swaps = 2000;
  std::atomic<bool> done{false};
  std::atomic<int> errors{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      pipeline_handle<numbered>::reader r(h);
      std::uint64_t last_gen = 0;
      while (!done.load(std::memory_order_acquire)) {
        numbered& n = r.get();
        // generation g holds the pipeline with id g (published together under the slot's mutex)
        if (static_cast<std::uint64_t>(n.id) != r.generation() || r.generation() < last_gen) errors.fetch_add(1);
        last_gen = r.generation();
      }
      if (r.get().id != swaps + 1) errors.fetch_add(1);  // after the last swap, a reader sees the last pipeline
    });
  }
  for (int i = 2; i <= swaps + 1; ++i) {
    EXPECT_EQ(h.swap(std::make_shared<numbered>(i, live)), static_cast<std::uint64_t>(i));
    if (i % 256 == 0) std::this_thread::yield();
  }
  done.store(true, std::memory_order_release);
  for (auto& t : readers) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(live->load(), 1);  // every replaced pipeline was destroyed once its readers moved on
}

}  // namespace
}  // namespace turret
