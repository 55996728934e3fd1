#pragma once
// started_batch: the commands of one pipelined batch that a RESP connection started through the pipeline's callback
// start (service.hpp, kv::dispatch_start), answered in request order once all of them completed.
//
// Why: a proxy that forwards a client's pipelined commands one after another has one command per client in flight,
// so each batch costs as many round trips to the upstream as it has commands (and a sleep and a wake-up of every
// process between them). Started commands go out together, as a pipeline; their callbacks run on the upstream
// connections' threads and cost no coroutine frame.
//
// Threads: the connection's thread adds slots and reads them after wait(); each callback writes its own slot only,
// then counts down. `remaining` starts at 1 (the connection's own count, given up in wait()), so whoever takes it
// to zero (the last callback, or wait() when every callback already ran) wakes the connection, by a post to its
// executor. The acquire-release countdown orders every slot's writes before the connection reads them.
// The batch is shared with the callbacks (shared_ptr): a callback that outlives its connection writes into a
// batch nobody reads.
#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <services/resp/resp_reply_builder.hpp>
#include <string>
#include <turret/completion.hpp>
#include <turret/kv/request.hpp>
#include <turret/result.hpp>

namespace turret::resp_frontend {

class started_batch {
 public:
  /// Most commands started before the connection waits for them (bounds the slots' memory per connection).
  static constexpr std::size_t max_started = 256;

  struct slot {
    slot() : builder(bytes, proto) {}
    slot(const slot&) = delete;
    slot& operator=(const slot&) = delete;
    std::string bytes;  ///< the reply, in the protocol the session had when the command started
    int proto = 2;
    resp_reply_builder builder;
    std::optional<result<kv::response>> outcome;
    const kv::command_def* def = nullptr;  ///< for the per-command metrics
    std::chrono::steady_clock::time_point started;
  };

  explicit started_batch(boost::asio::any_io_executor ex) : ex_(std::move(ex)) {}

  std::size_t size() const noexcept { return used_; }
  bool empty() const noexcept { return used_ == 0; }
  bool full() const noexcept { return used_ == max_started; }

  /// The next slot, cleared, for a command about to start; counted once committed.
  slot& prepare(int proto) {
    if (used_ == slots_.size()) slots_.emplace_back();
    slot& s = slots_[used_];
    s.bytes.clear();
    s.proto = proto;
    s.outcome.reset();
    return s;
  }
  /// The slot prepare() gave: its command started; `self` is this batch's owner.
  completion<kv::response> commit(const std::shared_ptr<started_batch>& self, const kv::command_def* def,
                                  std::chrono::steady_clock::time_point now) {
    slot& s = slots_[used_];
    s.def = def;
    s.started = now;
    remaining_.fetch_add(1, std::memory_order_relaxed);
    ++used_;
    return completion<kv::response>(callback{self, &s});
  }
  /// A committed completion that its service did not take (try_start declined): the slot is free again.
  void uncommit() noexcept {
    --used_;
    remaining_.fetch_sub(1, std::memory_order_relaxed);
  }

  /// Completes (on the connection's executor) once every committed command completed.
  template <class Token>
  auto async_wait(Token&& token) {
    return boost::asio::async_initiate<Token, void()>(
        [this](auto handler) {
          waiter_ = std::make_unique<waiter_for<decltype(handler)>>(std::move(handler));
          if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) wake();
        },
        token);
  }
  /// Every slot in order (after async_wait completed); then clear() for the next batch.
  slot& at(std::size_t i) noexcept { return slots_[i]; }
  void clear() noexcept {
    used_ = 0;
    remaining_.store(1, std::memory_order_relaxed);
  }

 private:
  /// Touches its own slot by address (never slots_ itself, which the connection's thread may grow meanwhile).
  struct callback {
    std::shared_ptr<started_batch> b;
    slot* s;
    void operator()(result<kv::response> r) {
      s->outcome.emplace(std::move(r));
      if (b->remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) b->wake();
    }
  };

  void wake() {
    boost::asio::post(ex_, [w = std::move(waiter_)] { w->resume(); });
  }

  // The waiting coroutine's handler. (Not asio::any_completion_handler: Boost 1.81's recurses without end when one
  // is moved.)
  struct waiter {
    virtual ~waiter() = default;
    virtual void resume() = 0;
  };
  template <class Handler>
  struct waiter_for final : waiter {
    explicit waiter_for(Handler&& h) : handler(std::move(h)) {}
    void resume() override { std::move(handler)(); }
    Handler handler;
  };

  boost::asio::any_io_executor ex_;
  std::deque<slot> slots_;  ///< a deque: slots stay where they are (their builders point into them)
  std::size_t used_ = 0;
  std::atomic<std::size_t> remaining_{1};
  std::unique_ptr<waiter> waiter_;
};

}  // namespace turret::resp_frontend
