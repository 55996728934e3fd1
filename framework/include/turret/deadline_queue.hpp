#pragma once
// deadline_queue: O(1) per-request deadlines without arming an OS timer per request.
//
// Arming and cancelling an asio timer per request costs a lock and often a timerfd syscall; the key-value core
// answers in ~200 ns. Deadlines of one owner (e.g. one timeout layer instance) all have the same duration, so in
// arrival order they are also in deadline order: an intrusive FIFO list per (owner, execution context) with ONE
// timer, re-armed only when it fires, is enough. Registering a deadline links a node (no allocation, no syscall);
// completing the request unlinks it. When the timer fires it expires every due node (marks it, unlinks it, calls
// its request_context's cancel(); see context.hpp) and re-arms for the new head, if any.
//
// Threading: a queue belongs to one execution context and is used only from the thread running it (turret::runtime
// runs each io_context on exactly one thread). A request's coroutine stays on its executor, so its node is linked,
// expired and unlinked on that thread. Do not use with an io_context run by several threads at once.
//
// Lifetime: queues live in an execution_context service, so they exist as long as the io_context; their timers are
// destroyed when the context shuts down.
//
// Out-of-order deadlines (a shorter owner-less deadline, or a clock jump) are still correct: push() inserts in
// order, walking back from the tail.
#include <turret/clock.hpp>
#include <turret/context.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <cstdint>
#include <memory>
#include <utility>

namespace turret {

class deadline_queue;

/// An intrusive deadline registration. Movable (a move takes over the list position); unlinks on destruction.
class deadline_entry {
 public:
  using time_point = clock::time_point;

  deadline_entry() noexcept = default;
  deadline_entry(time_point deadline, request_context* ctx) noexcept : deadline_(deadline), ctx_(ctx) {}
  deadline_entry(deadline_entry&& o) noexcept { take(o); }
  deadline_entry& operator=(deadline_entry&& o) noexcept {
    if (this != &o) {
      unlink();
      take(o);
    }
    return *this;
  }
  deadline_entry(const deadline_entry&) = delete;
  deadline_entry& operator=(const deadline_entry&) = delete;
  ~deadline_entry() { unlink(); }

  time_point deadline() const noexcept { return deadline_; }
  request_context* context() const noexcept { return ctx_; }
  /// True once the deadline passed while the entry was linked (the context was then cancelled).
  bool expired() const noexcept { return expired_; }
  bool linked() const noexcept { return queue_ != nullptr; }
  /// Removes the entry from its queue (no effect when not linked). O(1), no timer operation.
  inline void unlink() noexcept;

 private:
  friend class deadline_queue;
  void take(deadline_entry& o) noexcept {
    deadline_ = o.deadline_;
    ctx_ = o.ctx_;
    expired_ = o.expired_;
    queue_ = o.queue_;
    if (queue_) {
      prev_ = o.prev_;
      next_ = o.next_;
      prev_->next_ = this;
      next_->prev_ = this;
      o.queue_ = nullptr;
      o.prev_ = o.next_ = nullptr;
    }
  }

  time_point deadline_{};
  request_context* ctx_ = nullptr;
  deadline_entry* prev_ = nullptr;
  deadline_entry* next_ = nullptr;
  deadline_queue* queue_ = nullptr;
  bool expired_ = false;
};

/// The queue of one (owner, execution context). Obtain it with deadline_queue::get().
class deadline_queue {
 public:
  deadline_queue(std::shared_ptr<clock> clk, const boost::asio::any_io_executor& ex);
  ~deadline_queue();
  deadline_queue(const deadline_queue&) = delete;
  deadline_queue& operator=(const deadline_queue&) = delete;

  /// A new owner id (never reused). Each owner gets its own queue per context.
  static std::uint64_t new_owner_id() noexcept;

  /// The queue for `owner` on the execution context of `ex` (created on first use with `clk`; the clock of an
  /// owner must not change). Fast path: a thread-local cache hit, no lock.
  static deadline_queue& get(std::uint64_t owner, const std::shared_ptr<clock>& clk,
                             const boost::asio::any_io_executor& ex);

  /// Links `e` (which must not be linked). Arms the timer only when it is idle or the new deadline is earlier than
  /// the armed one.
  void push(deadline_entry& e) noexcept;
  bool empty() const noexcept { return sentinel_.next_ == &sentinel_; }
  std::size_t size() const noexcept;
  clock& get_clock() const noexcept { return *clock_; }

  /// Stops using the timer (context shutdown). Entries can still be unlinked afterwards.
  void shutdown() noexcept;

 private:
  friend class deadline_entry;
  void remove(deadline_entry& e) noexcept {
    e.prev_->next_ = e.next_;
    e.next_->prev_ = e.prev_;
    e.prev_ = e.next_ = nullptr;
    e.queue_ = nullptr;
  }
  void arm(clock::time_point tp) noexcept;
  void on_timer(const error_code& ec, std::uint64_t generation) noexcept;

  std::shared_ptr<clock> clock_;
  boost::asio::any_io_executor ex_;
  std::unique_ptr<timer> timer_;
  deadline_entry sentinel_;
  clock::time_point armed_at_{};
  std::uint64_t generation_ = 0;  ///< identifies the current arming (stale completions are ignored)
  bool armed_ = false;
  bool shut_down_ = false;
};

inline void deadline_entry::unlink() noexcept {
  if (queue_) queue_->remove(*this);
}

}  // namespace turret
