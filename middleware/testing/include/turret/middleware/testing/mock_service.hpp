#pragma once
// A scriptable inner service for middleware tests (no gtest dependency).
//
// mock_service waits `ready_delay` in ready() and `call_delay` in call() on the given clock (a manual_clock in
// tests), both bound to the request's cancel_slot(), so a layer's cancellation interrupts them; try_ready answers
// without waiting (nullopt while ready_delay is set). It counts live
// permits (RAII), calls, and the peak number of concurrent calls.
#include <turret/clock.hpp>
#include <turret/service.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>

namespace turret::testing {

struct mock_request {
  request_context ctx;
  int value = 0;
  request_context& context() noexcept { return ctx; }
};

struct mock_state {
  explicit mock_state(std::shared_ptr<clock> c) : clk(std::move(c)) {}
  std::shared_ptr<clock> clk;
  std::chrono::nanoseconds ready_delay{0};
  std::chrono::nanoseconds call_delay{0};
  error_code ready_error;
  error_code call_error;
  bool immediate = false;  ///< offer try_call_now
  std::atomic<int> live_permits{0};
  std::atomic<int> calls{0};
  std::atomic<int> completed{0};
  std::atomic<int> in_call{0};
  std::atomic<int> peak_in_call{0};
};

class mock_permit {
 public:
  explicit mock_permit(mock_state* s) : s_(s) { s_->live_permits.fetch_add(1); }
  mock_permit(mock_permit&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  mock_permit& operator=(mock_permit&& o) noexcept {
    if (s_) s_->live_permits.fetch_sub(1);
    s_ = std::exchange(o.s_, nullptr);
    return *this;
  }
  ~mock_permit() {
    if (s_) s_->live_permits.fetch_sub(1);
  }

 private:
  mock_state* s_;
};

struct mock_service {
  using response_type = int;
  using permit_type = mock_permit;

  std::shared_ptr<mock_state> st;

  awaitable<result<mock_permit>> ready(request_context& ctx) {
    if (st->ready_delay.count() > 0) {
      if (auto ec = co_await sleep_for(*st->clk, st->ready_delay, ctx.cancel_slot())) co_return ec;
    }
    if (st->ready_error) co_return st->ready_error;
    co_return mock_permit(st.get());
  }

  /// The readiness probe: nullopt when ready() would wait (ready_delay), else what ready() answers.
  std::optional<result<mock_permit>> try_ready(request_context&) {
    if (st->ready_delay.count() > 0) return std::nullopt;
    if (st->ready_error) return result<mock_permit>(st->ready_error);
    return result<mock_permit>(mock_permit(st.get()));
  }

  awaitable<result<int>> call(mock_permit p, mock_request& req) {
    st->calls.fetch_add(1);
    const int now = st->in_call.fetch_add(1) + 1;
    int peak = st->peak_in_call.load();
    while (now > peak && !st->peak_in_call.compare_exchange_weak(peak, now)) {
    }
    error_code ec;
    if (st->call_delay.count() > 0) ec = co_await sleep_for(*st->clk, st->call_delay, req.ctx.cancel_slot());
    st->in_call.fetch_sub(1);
    if (ec) co_return ec;
    if (st->call_error) co_return st->call_error;
    st->completed.fetch_add(1);
    co_return req.value * 2;
  }

  std::optional<result<int>> try_call_now(mock_request& req) {
    if (!st->immediate || st->ready_delay.count() > 0 || st->call_delay.count() > 0) return std::nullopt;
    st->calls.fetch_add(1);
    st->completed.fetch_add(1);
    return result<int>(req.value * 2);
  }
};

}  // namespace turret::testing
