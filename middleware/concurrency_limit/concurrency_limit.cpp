#include <turret/middleware/concurrency_limit.hpp>
#include <turret/config.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/post.hpp>

#include <string>

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

struct connection_semaphores::entry {
  explicit entry(std::size_t max) : sem(max) {}
  async_semaphore sem;
  std::uint64_t id = 0;
  std::size_t users = 0;
};

async_semaphore& connection_semaphores::ref::semaphore() const noexcept { return e_->sem; }

connection_semaphores::~connection_semaphores() {
  // Refs point at their entries: the state outlives every permit (services hold it by shared_ptr).
  for (auto& sh : shards_) {
    for (auto& [id, e] : sh.live) delete e;
    for (entry* e : sh.spare) delete e;
  }
}

connection_semaphores::ref connection_semaphores::acquire(std::uint64_t id) {
  shard& sh = shard_of(id);
  std::lock_guard lock(sh.mu);
  auto [it, inserted] = sh.live.try_emplace(id, nullptr);
  if (inserted) {
    if (!sh.spare.empty()) {
      it->second = sh.spare.back();  // full and without waiters: an idle entry is as good as a new one
      sh.spare.pop_back();
    } else {
      try {
        it->second = new entry(max_);
      } catch (...) {
        sh.live.erase(it);
        throw;
      }
    }
    it->second->id = id;
  }
  ++it->second->users;
  return ref(this, it->second);
}

void connection_semaphores::unref(entry* e) noexcept {
  shard& sh = shard_of(e->id);
  std::lock_guard lock(sh.mu);
  if (--e->users != 0) return;
  // No permit, waiter or fast-path call of this connection is left: the semaphore is full and nobody waits.
  sh.live.erase(e->id);
  if (sh.spare.size() < spare_per_shard) {
    try {
      sh.spare.push_back(e);
      return;
    } catch (...) {
    }
  }
  delete e;
}

std::size_t connection_semaphores::size() const {
  std::size_t n = 0;
  for (const auto& sh : shards_) {
    std::lock_guard lock(sh.mu);
    n += sh.live.size();
  }
  return n;
}

std::shared_ptr<concurrency_limit_state> concurrency_limit_state::make(const concurrency_limit_config& cfg) {
  auto st = std::make_shared<concurrency_limit_state>();
  if (cfg.scope == concurrency_limit_config::scope_kind::per_connection) {
    st->per_connection = std::make_shared<connection_semaphores>(cfg.max);
  } else {
    st->global = std::make_shared<async_semaphore>(cfg.max);
  }
  return st;
}

concurrency_limit_config parse_concurrency_limit_config(const config_node& entry) {
  entry.reject_unknown_keys({"layer", "max", "scope"});
  concurrency_limit_config cfg;
  cfg.max = static_cast<std::size_t>(entry.get_int("max", 1, std::int64_t{1} << 31));
  if (entry.has("scope")) {
    const config_node sc = entry.child("scope");
    const std::string name = sc.as_string();
    if (name == "global") {
      cfg.scope = concurrency_limit_config::scope_kind::global;
    } else if (name == "per_connection") {
      cfg.scope = concurrency_limit_config::scope_kind::per_connection;
    } else {
      sc.fail("unknown scope '" + name + "' (expected global or per_connection)");
    }
  }
  return cfg;
}

}  // namespace turret
