#pragma once
// A scriptable inner service for middleware tests (no gtest dependency).
//
// mock_service waits `ready_delay` in ready() and `call_delay` in call() on the given clock (a manual_clock in
// tests), both bound to the request's cancel_slot(), so a layer's cancellation interrupts them; try_ready answers
// without waiting (nullopt while ready_delay is set). It counts live
// permits (RAII), calls, and the peak number of concurrent calls.
//
// Per-call scripts: the k-th call (k = calls before it, from 0) fails with `call_errors[k]` when that is an error,
// and waits `call_delays[k]` instead of `call_delay` (for layers that make several attempts: retry, hedge). A call
// that succeeds appends "<value*2>;" to the request's reply sink (`reply`), so that tests can check that exactly one
// attempt's reply is left. mock_request supports the attempt customization points of <turret/request_traits.hpp>
// (mark/discard on `reply`, fork/commit) and says how it may be retried (`safety`).
#include <turret/clock.hpp>
#include <turret/completion.hpp>
#include <turret/request_traits.hpp>
#include <turret/service.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace turret::testing {

struct mock_request {
  request_context ctx;
  int value = 0;
  retry_safety safety = retry_safety::idempotent;
  std::string reply;  ///< the reply sink
  request_context& context() noexcept { return ctx; }
};

inline retry_safety retry_class(const mock_request& r) noexcept { return r.safety; }
inline std::size_t attempt_mark(mock_request& r) noexcept { return r.reply.size(); }
inline void discard_attempt(mock_request& r, std::size_t mark) noexcept { r.reply.resize(mark); }

/// A mock_request forked for a parallel attempt: its own context (deadline copied) and reply sink.
struct mock_fork {
  explicit mock_fork(mock_request& original) {
    req.value = original.value;
    req.safety = original.safety;
    req.ctx.deadline = original.ctx.deadline;
  }
  mock_request& request() noexcept { return req; }
  mock_request req;
};
inline std::unique_ptr<mock_fork> fork_attempt(mock_request& r) { return std::make_unique<mock_fork>(r); }
inline void commit_attempt(mock_request& r, mock_fork& f) { r.reply += f.req.reply; }

struct mock_state {
  explicit mock_state(std::shared_ptr<clock> c) : clk(std::move(c)) {}
  std::shared_ptr<clock> clk;
  std::chrono::nanoseconds ready_delay{0};
  std::chrono::nanoseconds call_delay{0};
  error_code ready_error;
  error_code call_error;
  bool immediate = false;  ///< offer try_call_now
  bool startable = false;  ///< accept try_start: the completions wait in `started` for the test to run them
  std::vector<std::pair<completion<int>, int>> started;  ///< (completion, request value) of started requests
  std::vector<error_code> call_errors;                ///< per call (see above); beyond it: call_error
  std::vector<std::chrono::nanoseconds> call_delays;  ///< per call; beyond it: call_delay

  error_code error_for(int k) const { return k < static_cast<int>(call_errors.size()) ? call_errors[k] : call_error; }
  std::chrono::nanoseconds delay_for(int k) const {
    return k < static_cast<int>(call_delays.size()) ? call_delays[k] : call_delay;
  }
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
    const int k = st->calls.fetch_add(1);
    const int now = st->in_call.fetch_add(1) + 1;
    int peak = st->peak_in_call.load();
    while (now > peak && !st->peak_in_call.compare_exchange_weak(peak, now)) {
    }
    error_code ec;
    if (st->delay_for(k).count() > 0) ec = co_await sleep_for(*st->clk, st->delay_for(k), req.ctx.cancel_slot());
    st->in_call.fetch_sub(1);
    if (ec) co_return ec;
    if (auto e = st->error_for(k)) co_return e;
    st->completed.fetch_add(1);
    req.reply += std::to_string(req.value * 2) + ";";
    co_return req.value * 2;
  }

  std::optional<result<int>> try_call_now(mock_request& req) {
    const int k = st->calls.load();
    if (!st->immediate || st->ready_delay.count() > 0 || st->delay_for(k).count() > 0) return std::nullopt;
    st->calls.fetch_add(1);
    if (auto e = st->error_for(k)) return result<int>(e);
    st->completed.fetch_add(1);
    req.reply += std::to_string(req.value * 2) + ";";
    return result<int>(req.value * 2);
  }

  /// Callback start (when `startable`): counts a call and keeps the completion in `started`; finish() runs it.
  bool try_start(mock_request& req, completion<int>& done) {
    if (!st->startable) return false;
    st->calls.fetch_add(1);
    st->started.emplace_back(std::move(done), req.value);
    return true;
  }
  /// Completes the oldest started request: its value x 2, or `ec`.
  void finish(error_code ec = {}) {
    auto [done, value] = std::move(st->started.front());
    st->started.erase(st->started.begin());
    if (ec) {
      done(ec);
    } else {
      st->completed.fetch_add(1);
      done(value * 2);
    }
  }
};

}  // namespace turret::testing
