#pragma once
// concurrency_limit: at most `max` requests in flight (from ready() until the call completes).
//
// - ready() takes a slot: an atomic fast path (no lock) when one is free and nobody waits; otherwise the request
//   waits in a FIFO queue (strict arrival order: a new arrival never overtakes a waiter). Waiters may be on different
//   threads and io_contexts: each completes on its own executor (never inline in the releasing thread).
// - The wait is cancellable through ctx.cancel_slot() (a timeout layer above, a client going away): it then completes
//   with boost::asio::error::operation_aborted, and the waiter neither leaks nor steals a slot. If a slot was handed to
//   a waiter just before its cancellation, the waiter receives it (RAII permit) and the layer above drops it.
// - The permit is RAII: the slot is released when the call completes, or when the permit is dropped unspent.
// - One limiter per wrap(): copies of the service share it (a pointer), so a copied service never doubles the limit.
//   A service must outlive its in-flight requests (permits point at its limiter).
// - From config, the limiter is the entry's shared state (layer_context::shared_state): a reload that leaves the
//   entry unchanged gives the new pipeline the same limiter, so slots held by requests still running on the old
//   pipeline keep counting against `max`.
#include <turret/service.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>

namespace turret {

class config_node;

/// Immutable configuration.
struct concurrency_limit_config {
  std::size_t max = 10000;  ///< >= 1
};

/// Parses `{layer: concurrency_limit, max: N}` (N in 1..2^31; unknown keys rejected). Throws config_error.
concurrency_limit_config parse_concurrency_limit_config(const config_node& entry);

/// A FIFO async semaphore with cancellable waits (the limiter state shared by copies of one service).
class async_semaphore {
 public:
  explicit async_semaphore(std::size_t slots) : available_(static_cast<std::int64_t>(slots)), max_(slots) {}
  ~async_semaphore();
  async_semaphore(const async_semaphore&) = delete;
  async_semaphore& operator=(const async_semaphore&) = delete;

  /// Takes a slot if one is free and no one waits (lock-free).
  bool try_acquire() noexcept {
    if (waiting_.load(std::memory_order_seq_cst) != 0) return false;
    std::int64_t a = available_.load(std::memory_order_relaxed);
    while (a > 0) {
      if (available_.compare_exchange_weak(a, a - 1, std::memory_order_acquire, std::memory_order_relaxed)) return true;
    }
    return false;
  }

  /// Returns a slot: hands it to the first waiter if any (completing it on its executor), else frees it.
  void release() noexcept;

  /// Waits for a slot (FIFO). Completes with success (the caller owns a slot) or operation_aborted when the
  /// handler's associated cancellation slot is emitted first. Completion is always posted to the handler's executor.
  template <class Token>
  auto async_acquire(Token&& token) {
    return boost::asio::async_initiate<Token, void(error_code)>(
        [this](auto handler) {
          // The handler's own executor (for a coroutine: its executor); completions are posted there.
          boost::asio::any_io_executor ex =
              boost::asio::get_associated_executor(handler, boost::asio::any_io_executor(boost::asio::system_executor()));
          start_wait(handler_type(std::move(handler)), std::move(ex));
        },
        token);
  }

  std::size_t max() const noexcept { return max_; }
  std::size_t available() const noexcept {
    const auto a = available_.load(std::memory_order_acquire);
    return a > 0 ? static_cast<std::size_t>(a) : 0;
  }
  std::size_t waiters() const noexcept { return static_cast<std::size_t>(waiting_.load(std::memory_order_acquire)); }

 private:
  using handler_type = boost::asio::any_completion_handler<void(error_code)>;
  struct waiter;
  struct cancel_handler;

  void start_wait(handler_type handler, boost::asio::any_io_executor ex);
  void cancel(waiter* w) noexcept;
  static void complete(waiter* w, error_code ec) noexcept;
  waiter* pop_front_locked() noexcept;
  void unlink_locked(waiter* w) noexcept;
  /// Under lock: while waiters and free slots, pop a waiter and grant; returns a chain of granted waiters.
  waiter* grant_from_available_locked() noexcept;

  std::atomic<std::int64_t> available_;
  std::atomic<std::int64_t> waiting_{0};
  std::size_t max_;
  std::mutex mutex_;
  waiter* head_ = nullptr;
  waiter* tail_ = nullptr;
};

/// RAII ownership of one slot.
class semaphore_slot {
 public:
  semaphore_slot() noexcept = default;
  explicit semaphore_slot(async_semaphore* s) noexcept : sem_(s) {}
  semaphore_slot(semaphore_slot&& o) noexcept : sem_(std::exchange(o.sem_, nullptr)) {}
  semaphore_slot& operator=(semaphore_slot&& o) noexcept {
    if (this != &o) {
      reset();
      sem_ = std::exchange(o.sem_, nullptr);
    }
    return *this;
  }
  ~semaphore_slot() { reset(); }
  void reset() noexcept {
    if (sem_) std::exchange(sem_, nullptr)->release();
  }
  explicit operator bool() const noexcept { return sem_ != nullptr; }

 private:
  async_semaphore* sem_ = nullptr;
};

template <class S>
class concurrency_limit_service {
 public:
  using response_type = typename S::response_type;

  struct permit_type {
    semaphore_slot slot;
    typename S::permit_type inner;
  };

  concurrency_limit_service(S inner, std::shared_ptr<async_semaphore> sem)
      : inner_(std::move(inner)), sem_(std::move(sem)) {}

  S& inner() noexcept { return inner_; }
  const S& inner() const noexcept { return inner_; }
  async_semaphore& semaphore() const noexcept { return *sem_; }

  awaitable<result<permit_type>> ready(request_context& ctx) {
    semaphore_slot slot;
    if (sem_->try_acquire()) {
      slot = semaphore_slot(sem_.get());
    } else {
      if (ctx.cancelled()) co_return make_error_code(boost::asio::error::operation_aborted);
      auto [ec] = co_await sem_->async_acquire(
          boost::asio::bind_cancellation_slot(ctx.cancel_slot(), boost::asio::as_tuple(boost::asio::use_awaitable)));
      if (ec) co_return ec;
      slot = semaphore_slot(sem_.get());
    }
    auto r = co_await inner_.ready(ctx);
    if (!r) co_return r.error();
    co_return permit_type{std::move(slot), std::move(*r)};
  }

  /// Synchronous fast path: a slot by atomic try-acquire (nullopt when none is free or requests wait: FIFO is kept),
  /// held for the inner service's synchronous call. Nullopt from the inner service releases the slot.
  template <class Request>
    requires immediate_service<S, Request>
  std::optional<result<response_type>> try_call_now(Request& req) {
    if (!sem_->try_acquire()) return std::nullopt;
    semaphore_slot slot(sem_.get());
    return inner_.try_call_now(req);
  }

  awaitable<result<response_type>> call(permit_type p, auto& req) {
    semaphore_slot slot = std::move(p.slot);  // held until the inner call completes
    co_return co_await inner_.call(std::move(p.inner), req);
  }

 private:
  S inner_;
  std::shared_ptr<async_semaphore> sem_;
};

class concurrency_limit_layer {
 public:
  explicit concurrency_limit_layer(concurrency_limit_config cfg) : cfg_(cfg) {}
  explicit concurrency_limit_layer(std::size_t max) : cfg_{max} {}
  /// Every wrap shares `shared` (cfg.max slots): the factory takes it from layer_context::shared_state, so that a
  /// configuration reload that leaves the entry unchanged keeps the slots held by requests in flight counted.
  concurrency_limit_layer(concurrency_limit_config cfg, std::shared_ptr<async_semaphore> shared)
      : cfg_(cfg), shared_(std::move(shared)) {}

  /// Each wrap creates one independent limiter, unless the layer was given a shared one.
  template <class S>
  concurrency_limit_service<S> wrap(S inner) const {
    return concurrency_limit_service<S>(std::move(inner),
                                        shared_ ? shared_ : std::make_shared<async_semaphore>(cfg_.max));
  }

  const concurrency_limit_config& config() const noexcept { return cfg_; }

 private:
  concurrency_limit_config cfg_;
  std::shared_ptr<async_semaphore> shared_;
};

}  // namespace turret
