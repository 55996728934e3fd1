#include <turret/middleware/concurrency_limit.hpp>
#include <turret/config.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/post.hpp>

namespace turret {

struct async_semaphore::waiter {
  // Boost 1.81's any_completion_handler move ASSIGNMENT recurses forever (it re-wraps the lvalue): only ever
  // move-construct it.
  waiter(handler_type h, boost::asio::any_io_executor e) : handler(std::move(h)), ex(std::move(e)) {}

  waiter* prev = nullptr;
  waiter* next = nullptr;
  handler_type handler;
  boost::asio::any_io_executor ex;
  boost::asio::cancellation_slot slot;
  bool queued = false;
  error_code result;
};

struct async_semaphore::cancel_handler {
  async_semaphore* sem;
  waiter* w;
  void operator()(boost::asio::cancellation_type) const { sem->cancel(w); }
};

async_semaphore::~async_semaphore() {
  // Waiters still queued belong to coroutines that can no longer be resumed meaningfully; destroy their handlers
  // (this destroys the suspended frames, as an io_context does for its pending operations).
  waiter* w = head_;
  while (w) {
    waiter* next = w->next;
    if (w->slot.is_connected()) w->slot.clear();
    delete w;
    w = next;
  }
}

void async_semaphore::complete(waiter* w, error_code ec) noexcept {
  w->result = ec;
  // Always posted: the waiter resumes on its own executor, and the releasing thread never runs foreign code.
  boost::asio::post(w->ex, [w]() {
    if (w->slot.is_connected()) w->slot.clear();
    handler_type h = std::move(w->handler);
    const error_code ec = w->result;
    delete w;
    std::move(h)(ec);
  });
}

void async_semaphore::unlink_locked(waiter* w) noexcept {
  (w->prev ? w->prev->next : head_) = w->next;
  (w->next ? w->next->prev : tail_) = w->prev;
  w->prev = w->next = nullptr;
  w->queued = false;
  waiting_.fetch_sub(1, std::memory_order_seq_cst);
}

async_semaphore::waiter* async_semaphore::pop_front_locked() noexcept {
  waiter* w = head_;
  if (w) unlink_locked(w);
  return w;
}

async_semaphore::waiter* async_semaphore::grant_from_available_locked() noexcept {
  waiter* granted = nullptr;
  waiter** tail = &granted;
  while (head_) {
    std::int64_t a = available_.load(std::memory_order_seq_cst);
    bool took = false;
    while (a > 0) {
      if (available_.compare_exchange_weak(a, a - 1, std::memory_order_seq_cst, std::memory_order_relaxed)) {
        took = true;
        break;
      }
    }
    if (!took) break;
    waiter* w = pop_front_locked();
    *tail = w;
    tail = &w->next;
  }
  return granted;
}

void async_semaphore::start_wait(handler_type handler, boost::asio::any_io_executor ex) {
  auto* w = new waiter(std::move(handler), std::move(ex));
  w->slot = boost::asio::get_associated_cancellation_slot(w->handler);
  // Install the cancellation handler before the waiter becomes visible to releasers (a grant posts the completion,
  // which clears the slot on the waiter's executor).
  if (w->slot.is_connected()) w->slot.template emplace<cancel_handler>(cancel_handler{this, w});
  waiter* granted;
  {
    std::lock_guard lock(mutex_);
    w->queued = true;
    w->prev = tail_;
    (tail_ ? tail_->next : head_) = w;
    tail_ = w;
    waiting_.fetch_add(1, std::memory_order_seq_cst);
    // A slot may have been freed between the caller's try_acquire and now: hand it out in FIFO order.
    granted = grant_from_available_locked();
  }
  while (granted) {
    waiter* next = granted->next;
    granted->next = nullptr;
    complete(granted, {});
    granted = next;
  }
}

void async_semaphore::release() noexcept {
  if (waiting_.load(std::memory_order_seq_cst) != 0) {
    waiter* w = nullptr;
    {
      std::lock_guard lock(mutex_);
      w = pop_front_locked();
    }
    if (w) {  // direct hand-off: the slot passes to the first waiter
      complete(w, {});
      return;
    }
  }
  available_.fetch_add(1, std::memory_order_seq_cst);
  if (waiting_.load(std::memory_order_seq_cst) != 0) {
    // A waiter queued concurrently may have missed the slot we just freed.
    waiter* granted;
    {
      std::lock_guard lock(mutex_);
      granted = grant_from_available_locked();
    }
    while (granted) {
      waiter* next = granted->next;
      granted->next = nullptr;
      complete(granted, {});
      granted = next;
    }
  }
}

void async_semaphore::cancel(waiter* w) noexcept {
  {
    std::lock_guard lock(mutex_);
    if (!w->queued) return;  // already granted: its completion (success) is on its way
    unlink_locked(w);
  }
  complete(w, boost::asio::error::operation_aborted);
}

concurrency_limit_config parse_concurrency_limit_config(const config_node& entry) {
  entry.reject_unknown_keys({"layer", "max"});
  concurrency_limit_config cfg;
  cfg.max = static_cast<std::size_t>(entry.get_int("max", 1, std::int64_t{1} << 31));
  return cfg;
}

}  // namespace turret
