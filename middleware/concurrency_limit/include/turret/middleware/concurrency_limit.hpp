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
//   A layer built from config takes its limiter from the layer_context (shared_state: one per config entry, carried
//   over by a reload when the entry is unchanged), so every service it wraps shares that one.
//   A service must outlive its in-flight requests (permits point at its limiter).
// - `scope: per_connection`: the limit applies to each client connection separately (request_context::
//   connection_id(): HTTP/2 streams of one gRPC connection, a RESP or HTTP/1.1 client pipelining). Each connection
//   with requests in flight (or waiting) has its own semaphore of `max` slots, in a sharded map; the entry goes
//   away when its last request completes (an idle connection's semaphore is full anyway), so memory is bounded by
//   the number of connections with requests in flight. The global scope's path is unchanged (one semaphore).
// - After a reload, slots held by requests still running on the old pipeline keep counting against `max`
//   (the new pipeline's limiter is the same object).
// - try_ready (load_shed's probe): takes a slot without waiting (nullopt when none is free), then probes the inner
//   service; when that one would wait, the permit defers the inner ready() to call() (the slot is held during the
//   inner readiness wait, as ready() holds it).
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

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

namespace turret {

class config_node;

/// Immutable configuration.
struct concurrency_limit_config {
  enum class scope_kind { global, per_connection };
  std::size_t max = 10000;  ///< >= 1
  scope_kind scope = scope_kind::global;
};

/// Parses `{layer: concurrency_limit, max: N, scope: global | per_connection}` (N in 1..2^31; scope defaults to
/// global; unknown keys rejected). Throws config_error.
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

/// The semaphores of `scope: per_connection`: one per connection id with requests in flight or waiting, in a
/// sharded map (a short lock per lookup), removed when its last user goes. Thread-safe.
class connection_semaphores {
  struct entry;

 public:
  explicit connection_semaphores(std::size_t max_per_connection) : max_(max_per_connection) {}
  ~connection_semaphores();
  connection_semaphores(const connection_semaphores&) = delete;
  connection_semaphores& operator=(const connection_semaphores&) = delete;

  /// RAII use of one connection's semaphore: the entry lives while a ref to it does.
  class ref {
   public:
    ref() noexcept = default;
    ref(ref&& o) noexcept : owner_(std::exchange(o.owner_, nullptr)), e_(std::exchange(o.e_, nullptr)) {}
    ref& operator=(ref&& o) noexcept {
      if (this != &o) {
        reset();
        owner_ = std::exchange(o.owner_, nullptr);
        e_ = std::exchange(o.e_, nullptr);
      }
      return *this;
    }
    ~ref() { reset(); }
    void reset() noexcept {
      if (e_) std::exchange(owner_, nullptr)->unref(std::exchange(e_, nullptr));
    }
    async_semaphore& semaphore() const noexcept;
    explicit operator bool() const noexcept { return e_ != nullptr; }

   private:
    friend class connection_semaphores;
    ref(connection_semaphores* o, entry* e) noexcept : owner_(o), e_(e) {}
    connection_semaphores* owner_ = nullptr;
    entry* e_ = nullptr;
  };

  /// The semaphore of connection `id` (created full on first use).
  ref acquire(std::uint64_t id);

  std::size_t max_per_connection() const noexcept { return max_; }
  /// Connections with an entry now (requests in flight or waiting).
  std::size_t size() const;

 private:
  static constexpr std::size_t shard_count = 16;
  static constexpr std::size_t spare_per_shard = 16;  ///< idle entries kept for reuse (no allocation per request)
  struct shard {
    mutable std::mutex mu;
    std::unordered_map<std::uint64_t, entry*> live;
    std::vector<entry*> spare;
  };
  void unref(entry* e) noexcept;
  shard& shard_of(std::uint64_t id) noexcept { return shards_[request_context::mix64(id) % shard_count]; }

  std::size_t max_;
  std::array<shard, shard_count> shards_;
};

/// The limiter state of one concurrency_limit entry: a global semaphore, or the per-connection ones.
struct concurrency_limit_state {
  std::shared_ptr<async_semaphore> global;
  std::shared_ptr<connection_semaphores> per_connection;

  /// Fresh state for `cfg`.
  static std::shared_ptr<concurrency_limit_state> make(const concurrency_limit_config& cfg);
};

template <class S>
class concurrency_limit_service {
 public:
  using response_type = typename S::response_type;

  /// The slot (and, per connection, the connection's semaphore it belongs to) plus the inner permit; the inner
  /// permit is empty when try_ready deferred the inner readiness to call(). Members are released in reverse order:
  /// the inner permit, then the slot, then the connection entry.
  struct permit_type {
    connection_semaphores::ref conn;
    semaphore_slot slot;
    std::optional<typename S::permit_type> inner;
  };

  /// Global scope.
  concurrency_limit_service(S inner, std::shared_ptr<async_semaphore> sem)
      : inner_(std::move(inner)), sem_(std::move(sem)) {}
  /// Per-connection scope.
  concurrency_limit_service(S inner, std::shared_ptr<connection_semaphores> conns)
      : inner_(std::move(inner)), conns_(std::move(conns)) {}

  S& inner() noexcept { return inner_; }
  const S& inner() const noexcept { return inner_; }
  /// The global semaphore (global scope only).
  async_semaphore& semaphore() const noexcept { return *sem_; }
  /// The per-connection semaphores (per_connection scope only).
  connection_semaphores& connections() const noexcept { return *conns_; }

  awaitable<result<permit_type>> ready(request_context& ctx) {
    permit_type p;
    async_semaphore* sem = sem_.get();
    if (!sem) {
      p.conn = conns_->acquire(ctx.connection_id());
      sem = &p.conn.semaphore();
    }
    if (sem->try_acquire()) {
      p.slot = semaphore_slot(sem);
    } else {
      if (ctx.cancelled()) co_return make_error_code(boost::asio::error::operation_aborted);
      auto [ec] = co_await sem->async_acquire(
          boost::asio::bind_cancellation_slot(ctx.cancel_slot(), boost::asio::as_tuple(boost::asio::use_awaitable)));
      if (ec) co_return ec;
      p.slot = semaphore_slot(sem);
    }
    auto r = co_await inner_.ready(ctx);
    if (!r) co_return r.error();
    p.inner.emplace(std::move(*r));
    co_return std::move(p);
  }

  /// Non-suspending probe: a slot by atomic try-acquire (nullopt when none is free or requests wait), then the inner
  /// service's try_ready; when that would wait (or the inner service has none), the permit defers the inner ready()
  /// to call().
  std::optional<result<permit_type>> try_ready(request_context& ctx) {
    permit_type p;
    async_semaphore* sem = sem_.get();
    if (!sem) {
      p.conn = conns_->acquire(ctx.connection_id());
      sem = &p.conn.semaphore();
    }
    if (!sem->try_acquire()) return std::nullopt;
    p.slot = semaphore_slot(sem);
    if (auto r = turret::try_ready(inner_, ctx)) {
      if (!*r) return result<permit_type>(r->error());
      p.inner.emplace(std::move(**r));
    }
    return result<permit_type>(std::move(p));
  }

  /// Synchronous fast path: a slot by atomic try-acquire (nullopt when none is free or requests wait: FIFO is kept),
  /// held for the inner service's synchronous call. Nullopt from the inner service releases the slot.
  template <class Request>
    requires immediate_service<S, Request>
  std::optional<result<response_type>> try_call_now(Request& req) {
    if (sem_) {
      if (!sem_->try_acquire()) return std::nullopt;
      semaphore_slot slot(sem_.get());
      return inner_.try_call_now(req);
    }
    connection_semaphores::ref conn = conns_->acquire(connection_of(req));
    if (!conn.semaphore().try_acquire()) return std::nullopt;
    semaphore_slot slot(&conn.semaphore());
    return inner_.try_call_now(req);
  }

  awaitable<result<response_type>> call(permit_type p, auto& req) {
    // Held until the inner call completes; released slot first, then the connection entry.
    connection_semaphores::ref conn = std::move(p.conn);
    semaphore_slot slot = std::move(p.slot);
    if (!p.inner) {  // deferred by try_ready
      auto r = co_await deferred_ready(inner_, req);
      if (!r) co_return r.error();
      p.inner.emplace(std::move(*r));
    }
    co_return co_await inner_.call(std::move(*p.inner), req);
  }

 private:
  template <class Request>
  static std::uint64_t connection_of(Request& req) noexcept {
    if constexpr (contextual_request<Request>) {
      return req.context().connection_id();
    } else {
      return 0;
    }
  }
  S inner_;
  std::shared_ptr<async_semaphore> sem_;
  std::shared_ptr<connection_semaphores> conns_;
};

class concurrency_limit_layer {
 public:
  explicit concurrency_limit_layer(concurrency_limit_config cfg) : cfg_(cfg) {}
  explicit concurrency_limit_layer(std::size_t max) : cfg_{max} {}
  /// Every service this layer wraps shares `state` (a factory passes the layer_context's shared state).
  concurrency_limit_layer(concurrency_limit_config cfg, std::shared_ptr<concurrency_limit_state> state)
      : cfg_(cfg), state_(std::move(state)) {}

  /// Each wrap creates one independent limiter, unless the layer was given a shared state.
  template <class S>
  concurrency_limit_service<S> wrap(S inner) const {
    const std::shared_ptr<concurrency_limit_state> st = state_ ? state_ : concurrency_limit_state::make(cfg_);
    if (st->per_connection) return concurrency_limit_service<S>(std::move(inner), st->per_connection);
    return concurrency_limit_service<S>(std::move(inner), st->global);
  }

  const concurrency_limit_config& config() const noexcept { return cfg_; }

 private:
  concurrency_limit_config cfg_;
  std::shared_ptr<concurrency_limit_state> state_;
};

}  // namespace turret
