#pragma once
// Clock and timer abstraction, so that time-based middleware is testable with a manual clock.
//
// - `steady_clock()` returns the process-wide real clock (std::chrono::steady_clock + asio steady_timer).
// - `manual_clock` only moves when a test calls `advance(d)`; due timers then complete, in deadline order (ties in
//   arming order), each posted to its own executor (never invoked inline), so a test does
//   `clock->advance(2s); io.poll();` and observes a deterministic outcome.
//
// Timer waits complete with success when due and with `boost::asio::error::operation_aborted` when cancelled:
// through `timer::cancel()`, by re-arming, by destroying the timer, or through the cancellation slot associated with
// the completion handler (e.g. `bind_cancellation_slot(ctx.cancel_slot(), ...)`). Boost 1.81 has no cancel_after;
// this is how turret bounds waits.
#include <turret/result.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <memory>

namespace turret {

/// A one-shot timer bound to an executor. Not thread-safe: use it from its executor's thread.
class timer {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  using handler_type = boost::asio::any_completion_handler<void(error_code)>;

  virtual ~timer() = default;  ///< a pending wait completes with operation_aborted

  /// Arms the timer for `tp` (a pending wait is first cancelled with operation_aborted). The handler is invoked
  /// on the timer's executor (create the timer with the waiter's executor), never from inside this call. If the
  /// handler has a connected cancellation slot, emitting it cancels the wait.
  virtual void async_wait_until(time_point tp, handler_type handler) = 0;
  /// Cancels a pending wait (its handler completes with operation_aborted). No effect when idle.
  virtual void cancel() = 0;

  /// Completion-token form: `co_await t.async_wait(tp, use_awaitable)`.
  template <class Token>
  auto async_wait(time_point tp, Token&& token) {
    return boost::asio::async_initiate<Token, void(error_code)>(
        [this, tp](auto handler) { async_wait_until(tp, handler_type(std::move(handler))); }, token);
  }
};

/// A source of time and timers (steady: never goes backwards).
class clock {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  using duration = std::chrono::steady_clock::duration;

  virtual ~clock() = default;
  virtual time_point now() const noexcept = 0;
  /// A new timer whose completions run on `ex` by default.
  virtual std::unique_ptr<timer> make_timer(const boost::asio::any_io_executor& ex) = 0;
};

/// The real steady clock (process-wide, never destroyed before its users: a static shared_ptr).
std::shared_ptr<clock> steady_clock();

/// A clock for tests: time only moves through advance()/set(). Thread-safe.
class manual_clock : public clock {
 public:
  explicit manual_clock(time_point start = time_point{} + std::chrono::hours(1));
  ~manual_clock() override;

  time_point now() const noexcept override;
  std::unique_ptr<timer> make_timer(const boost::asio::any_io_executor& ex) override;

  /// Moves time forward by d at once and completes every timer due at the new time (posted to their executors,
  /// earliest deadline first). Returns the number of timers fired. Handlers observe now() == the new time, so to
  /// simulate time passing between events, advance in steps and poll the io_context after each.
  std::size_t advance(duration d);
  /// Number of armed timers (for tests: "is anything waiting?").
  std::size_t pending_timers() const;

  struct state;  // implementation detail (shared with its timers)

 private:
  std::shared_ptr<state> state_;
};

/// Sleeps until `tp` on `c`. Returns success when due, operation_aborted when `slot` was emitted.
boost::asio::awaitable<error_code> sleep_until(clock& c, clock::time_point tp, boost::asio::cancellation_slot slot = {});
/// Sleeps for `d` (sleep_until(c, c.now() + d, slot)).
boost::asio::awaitable<error_code> sleep_for(clock& c, clock::duration d, boost::asio::cancellation_slot slot = {});

}  // namespace turret
