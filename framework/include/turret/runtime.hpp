#pragma once
// runtime: worker threads for servers, signal handling, graceful shutdown.
//
// Model: one io_context per worker thread (concurrency hint 1: no locking inside Asio's scheduler), each run by
// exactly one thread. Accepted connections are spread over the contexts with next_executor() (round robin) and
// stay on their context for life, so per-connection state needs no synchronisation and per-thread structures
// (e.g. the timeout layer's deadline queues) are lock-free. Shared state (the keyspace, limits) is thread-safe.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace turret {

class runtime {
 public:
  /// `threads` worker threads (0 = std::thread::hardware_concurrency(), at least 1). Contexts exist from
  /// construction (servers may be set up before run()); threads start in run().
  explicit runtime(std::size_t threads = 0);
  ~runtime();  ///< stops and joins
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  std::size_t size() const noexcept { return contexts_.size(); }
  boost::asio::io_context& context(std::size_t i) noexcept { return *contexts_[i]; }
  /// Round robin over the contexts (thread-safe).
  boost::asio::any_io_executor next_executor() noexcept;
  /// Executor of context i.
  boost::asio::any_io_executor executor(std::size_t i) noexcept { return contexts_[i]->get_executor(); }

  /// Runs every context (size()-1 new threads plus the calling thread, which runs context 0) until stop().
  /// Exceptions escaping a handler are logged and the context keeps running.
  void run();
  /// Stops every context (thread-safe, idempotent). run() returns once all threads finished.
  void stop() noexcept;
  bool stopped() const noexcept { return stopped_.load(std::memory_order_acquire); }

  /// Handles SIGINT and SIGTERM (on context 0): the first signal calls `on_signal(signo)` once (start a graceful
  /// shutdown there, which ends with stop()); a second signal stops immediately. Call before run().
  void handle_signals(std::function<void(int)> on_signal);

 private:
  std::vector<std::unique_ptr<boost::asio::io_context>> contexts_;
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guards_;
  std::unique_ptr<boost::asio::signal_set> signals_;
  std::function<void(int)> on_signal_;
  int signals_seen_ = 0;
  std::atomic<std::size_t> next_{0};
  std::atomic<bool> stopped_{false};
  std::mutex guard_mutex_;

  void wait_signal();
};

/// Graceful shutdown in three phases:
///   1. stop accepting: the registered `on_stop_accepting` hooks run (listeners close their acceptors), draining()
///      becomes true (front ends answer new requests with "shutting down" and close idle connections);
///   2. wait until in_flight() reaches 0, at most `grace`;
///   3. force close: the `on_force_close` hooks run (front ends cancel what remains), then `done(clean)` is called
///      (clean = everything finished within grace), typically calling runtime::stop().
/// Front ends count in-flight work (connections or requests) with track()/enter()/leave().
class shutdown_coordinator {
 public:
  explicit shutdown_coordinator(std::chrono::nanoseconds grace) : grace_(grace) {}

  /// RAII in-flight counter.
  class tracker {
   public:
    tracker() = default;
    explicit tracker(shutdown_coordinator* c) noexcept : c_(c) {
      if (c_) c_->enter();
    }
    tracker(tracker&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
    tracker& operator=(tracker&& o) noexcept {
      if (this != &o) {
        reset();
        c_ = std::exchange(o.c_, nullptr);
      }
      return *this;
    }
    ~tracker() { reset(); }
    void reset() noexcept {
      if (c_) std::exchange(c_, nullptr)->leave();
    }

   private:
    shutdown_coordinator* c_ = nullptr;
  };

  tracker track() noexcept { return tracker(this); }
  void enter() noexcept { in_flight_.fetch_add(1, std::memory_order_relaxed); }
  void leave() noexcept { in_flight_.fetch_sub(1, std::memory_order_acq_rel); }
  std::size_t in_flight() const noexcept { return in_flight_.load(std::memory_order_acquire); }
  bool draining() const noexcept { return draining_.load(std::memory_order_acquire); }
  std::chrono::nanoseconds grace() const noexcept { return grace_; }

  /// Hooks (register before shutdown starts; they run on the executor passed to start()).
  void on_stop_accepting(std::function<void()> f) { stop_accepting_.push_back(std::move(f)); }
  void on_force_close(std::function<void()> f) { force_close_.push_back(std::move(f)); }

  /// Starts the shutdown sequence on `ex` (idempotent: a second call is ignored). `done(clean)` runs on `ex`.
  /// The coordinator must outlive the sequence.
  void start(boost::asio::any_io_executor ex, std::function<void(bool clean)> done);

 private:
  void poll();

  std::chrono::nanoseconds grace_;
  std::atomic<std::size_t> in_flight_{0};
  std::atomic<bool> draining_{false};
  std::vector<std::function<void()>> stop_accepting_;
  std::vector<std::function<void()>> force_close_;
  std::function<void(bool)> done_;
  boost::asio::any_io_executor ex_;
  std::chrono::steady_clock::time_point deadline_;
};

}  // namespace turret
