#include <turret/clock.hpp>
#include <turret/deadline_queue.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

namespace turret {
namespace {

using namespace std::chrono_literals;

TEST(ClockTest, ManualClockFiresInDeadlineOrder) {
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  auto clk = std::make_shared<manual_clock>();
  std::vector<int> fired;
  auto spawn = [&](int id, clock::duration d) {
    boost::asio::co_spawn(
        io,
        [&, id, d]() -> boost::asio::awaitable<void> {
          auto ec = co_await sleep_for(*clk, d);
          if (!ec) fired.push_back(id);
        },
        boost::asio::detached);
  };
  spawn(1, 3s);
  spawn(2, 1s);
  spawn(3, 2s);
  spawn(4, 1s);
  io.poll();
  EXPECT_EQ(clk->pending_timers(), 4u);
  EXPECT_EQ(clk->advance(999ms), 0u);
  io.poll();
  EXPECT_TRUE(fired.empty());
  EXPECT_EQ(clk->advance(1ms), 2u);
  io.poll();
  EXPECT_EQ(fired, (std::vector<int>{2, 4}));
  clk->advance(5s);
  io.poll();
  EXPECT_EQ(fired, (std::vector<int>{2, 4, 3, 1}));
  EXPECT_EQ(clk->pending_timers(), 0u);
}

TEST(ClockTest, SleepCancelledThroughSlot) {
  for (bool manual : {true, false}) {
    boost::asio::io_context io;
    std::shared_ptr<clock> clk = manual ? std::shared_ptr<clock>(std::make_shared<manual_clock>()) : steady_clock();
    boost::asio::cancellation_signal sig;
    std::optional<error_code> result;
    boost::asio::co_spawn(
        io, [&]() -> boost::asio::awaitable<void> { result = co_await sleep_for(*clk, 1h, sig.slot()); }, boost::asio::detached);
    io.poll();
    EXPECT_FALSE(result);
    sig.emit(boost::asio::cancellation_type::total);
    io.run_for(1s);
    ASSERT_TRUE(result);
    EXPECT_EQ(*result, boost::asio::error::operation_aborted);
  }
}

TEST(ClockTest, RealClockSleeps) {
  boost::asio::io_context io;
  auto clk = steady_clock();
  const auto start = clk->now();
  std::optional<error_code> result;
  boost::asio::co_spawn(io, [&]() -> boost::asio::awaitable<void> { result = co_await sleep_for(*clk, 20ms); },
                        boost::asio::detached);
  io.run();
  ASSERT_TRUE(result);
  EXPECT_FALSE(*result);
  EXPECT_GE(clk->now() - start, 20ms);
}

TEST(DeadlineQueueTest, ExpiresInOrderAndUnlinks) {
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);  // poll() must not stop the context when it runs dry
  auto clk = std::make_shared<manual_clock>();
  const auto owner = deadline_queue::new_owner_id();
  auto& q = deadline_queue::get(owner, clk, io.get_executor());
  EXPECT_EQ(&q, &deadline_queue::get(owner, clk, io.get_executor()));  // cached
  request_context c1, c2, c3;
  deadline_entry e1(clk->now() + 1s, &c1), e2(clk->now() + 2s, &c2), e3(clk->now() + 500ms, &c3);
  q.push(e1);
  q.push(e2);
  q.push(e3);  // out of order: inserted before e1, timer re-armed
  EXPECT_EQ(q.size(), 3u);
  deadline_entry moved(std::move(e2));  // takes e2's place
  EXPECT_FALSE(e2.linked());
  EXPECT_TRUE(moved.linked());
  clk->advance(600ms);
  io.poll();
  EXPECT_TRUE(e3.expired());
  EXPECT_TRUE(c3.cancelled());
  EXPECT_FALSE(c1.cancelled());
  e1.unlink();  // completed in time
  clk->advance(2s);
  io.poll();
  EXPECT_FALSE(c1.cancelled());
  EXPECT_TRUE(moved.expired());
  EXPECT_TRUE(c2.cancelled());
  EXPECT_TRUE(q.empty());
}

}  // namespace
}  // namespace turret
