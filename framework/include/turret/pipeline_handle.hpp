#pragma once
// pipeline_handle: the pipeline a listener serves, replaceable while requests are in flight (hot reload).
//
// A handle refers to a shared slot holding the current pipeline (a service, typically an any_service built from
// config) and a generation counter. Copies of a handle refer to the same slot: the server keeps one copy to swap
// through, every listener of that pipeline another.
//
// ```
// pipeline_handle<kv_pipeline> h(build_pipeline(cfg));     // the server
// pipeline_handle<kv_pipeline>::reader pipe(h);             // one per connection
// for (;;) {                                                // each request of the connection
//   kv_pipeline& p = pipe.get();                            // one relaxed atomic load, unless a swap happened
//   co_await ready_and_call(p, req);                        // p stays alive until the next get()
// }
// h.swap(build_pipeline(new_cfg));                          // any thread, any time
// ```
//
// # Guarantees
// - A request finishes on the pipeline it started on: a snapshot (a shared_ptr to the service) keeps that pipeline
//   alive, and a reader changes its snapshot only in get(), which a connection calls when a request starts. The old
//   pipeline is destroyed when its last snapshot is released, on whichever thread releases it (so S's destructor
//   must be callable on any thread; any_service's is).
// - Requests that start after a swap see the new pipeline as soon as their reader observes the new generation.
//   The generation is read with a relaxed load (no fence on the hot path): on every platform turret runs on the
//   store becomes visible within the time of a cache-line transfer. Everything else a reader gets is read under
//   the slot's mutex, so the service and its generation are always consistent.
// - An idle connection keeps its snapshot (and so the old pipeline) until its next request or its end.
//
// # Cost
// get(): one relaxed load of the generation and a compare, when nothing changed. A refresh (after a swap) takes the
// slot's mutex once per reader. load() takes the mutex and copies a shared_ptr: for code that has no long-lived
// reader (a gRPC call takes one snapshot per call, the REST API one per command): small against a request's cost
// (bench/callgrind_grpc.sh prints a gRPC Get's instructions per call, the snapshot included).
//
// # Threads
// swap() and load() may be called from any thread concurrently. A reader belongs to one owner (a connection, a
// call) and is used by one thread at a time; it keeps the slot alive.
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>

namespace turret {

template <class S>
class pipeline_handle {
  struct slot {
    explicit slot(std::shared_ptr<S> s) : current(std::move(s)) {}
    mutable std::mutex mu;
    std::shared_ptr<S> current;                // guarded by mu
    std::atomic<std::uint64_t> generation{1};  // written under mu; read relaxed by readers
  };

 public:
  using service_type = S;
  /// Keeps one pipeline alive for as long as it is held.
  using snapshot = std::shared_ptr<S>;

  /// An empty handle (nothing may be read through it).
  pipeline_handle() = default;
  /// A handle on a new slot holding `initial`. Implicit so that a fixed pipeline can be passed where a handle is
  /// expected (a front end's tests hand a listener one service).
  pipeline_handle(S initial)  // NOLINT(google-explicit-constructor)
      : slot_(std::make_shared<slot>(std::make_shared<S>(std::move(initial)))) {}
  /// A handle on a new slot holding `initial` (not null).
  explicit pipeline_handle(snapshot initial) : slot_(std::make_shared<slot>(std::move(initial))) {}

  explicit operator bool() const noexcept { return slot_ != nullptr; }

  /// Publishes `next` (not null) to every reader of this slot and returns the new generation. Requests running on
  /// the previous pipeline finish on it; the previous pipeline is destroyed when its last snapshot goes.
  std::uint64_t swap(snapshot next) {
    snapshot old;
    std::uint64_t g;
    {
      std::lock_guard lk(slot_->mu);
      old = std::exchange(slot_->current, std::move(next));
      g = slot_->generation.load(std::memory_order_relaxed) + 1;
      slot_->generation.store(g, std::memory_order_relaxed);
    }
    return g;  // `old` is released here, outside the lock
  }
  std::uint64_t swap(S next) { return swap(std::make_shared<S>(std::move(next))); }

  /// The current pipeline (mutex + shared_ptr copy).
  snapshot load() const {
    std::lock_guard lk(slot_->mu);
    return slot_->current;
  }

  /// The number of pipelines published so far (1 for the initial one).
  std::uint64_t generation() const noexcept { return slot_->generation.load(std::memory_order_relaxed); }

  /// A cached view of a handle for one owner (a connection): get() returns its snapshot, refreshed when the
  /// handle's generation moved. Not thread-safe (one owner, one thread at a time).
  class reader {
   public:
    reader() = default;
    explicit reader(const pipeline_handle& h) : slot_(h.slot_) { refresh(); }

    /// The current pipeline, valid until the next get() or the reader's end.
    S& get() {
      if (slot_->generation.load(std::memory_order_relaxed) != generation_) [[unlikely]]
        refresh();
      return *current_;
    }
    /// The snapshot the last get() returned (copy it to keep that pipeline alive beyond the next get()).
    const snapshot& pinned() const noexcept { return current_; }
    /// The generation of pinned().
    std::uint64_t generation() const noexcept { return generation_; }

   private:
    [[gnu::noinline]] void refresh() {
      snapshot old = std::move(current_);  // released after the lock: its destructor may run a pipeline's teardown
      std::lock_guard lk(slot_->mu);
      current_ = slot_->current;
      generation_ = slot_->generation.load(std::memory_order_relaxed);
    }

    std::shared_ptr<slot> slot_;
    snapshot current_;
    std::uint64_t generation_ = 0;
  };

 private:
  std::shared_ptr<slot> slot_;
};

}  // namespace turret
