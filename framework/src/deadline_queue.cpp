#include <turret/deadline_queue.hpp>

#include <boost/asio/execution/context.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/query.hpp>

#include <atomic>
#include <mutex>
#include <unordered_map>

namespace turret {

namespace {

std::atomic<std::uint64_t> g_next_owner{1};
/// Bumped whenever a context's queues shut down: invalidates every thread's cache (a new io_context may reuse the
/// address of a destroyed one).
std::atomic<std::uint64_t> g_epoch{1};

/// Owns the queues of one execution context; they live exactly as long as the context.
class deadline_queue_service final : public boost::asio::execution_context::service {
 public:
  static inline boost::asio::execution_context::id id;

  explicit deadline_queue_service(boost::asio::execution_context& ctx) : service(ctx) {}

  deadline_queue& get(std::uint64_t owner, const std::shared_ptr<clock>& clk, const boost::asio::any_io_executor& ex) {
    std::lock_guard lock(mutex_);
    auto& q = queues_[owner];
    if (!q) q = std::make_unique<deadline_queue>(clk, ex);
    return *q;
  }

 private:
  void shutdown() override {
    std::lock_guard lock(mutex_);
    for (auto& [owner, q] : queues_) q->shutdown();
    g_epoch.fetch_add(1, std::memory_order_acq_rel);
  }

  std::mutex mutex_;
  std::unordered_map<std::uint64_t, std::unique_ptr<deadline_queue>> queues_;
};

struct cache_entry {
  std::uint64_t owner = 0;
  const boost::asio::execution_context* ctx = nullptr;
  std::uint64_t epoch = 0;
  deadline_queue* queue = nullptr;
};
constexpr std::size_t cache_size = 4;
thread_local cache_entry t_cache[cache_size];
thread_local std::size_t t_cache_next = 0;

}  // namespace

deadline_queue::deadline_queue(std::shared_ptr<clock> clk, const boost::asio::any_io_executor& ex)
    : clock_(std::move(clk)), ex_(ex) {
  sentinel_.prev_ = sentinel_.next_ = &sentinel_;
}

deadline_queue::~deadline_queue() {
  // Unlink whatever is still linked (frames that never resumed) so that no entry points at freed memory.
  while (!empty()) remove(*sentinel_.next_);
  sentinel_.prev_ = sentinel_.next_ = nullptr;
}

std::uint64_t deadline_queue::new_owner_id() noexcept { return g_next_owner.fetch_add(1, std::memory_order_relaxed); }

deadline_queue& deadline_queue::get(std::uint64_t owner, const std::shared_ptr<clock>& clk,
                                    const boost::asio::any_io_executor& ex) {
  boost::asio::execution_context& ctx = boost::asio::query(ex, boost::asio::execution::context);
  const std::uint64_t epoch = g_epoch.load(std::memory_order_acquire);
  for (auto& e : t_cache) {
    if (e.owner == owner && e.ctx == &ctx && e.epoch == epoch) return *e.queue;
  }
  deadline_queue& q = boost::asio::use_service<deadline_queue_service>(ctx).get(owner, clk, ex);
  t_cache[t_cache_next++ % cache_size] = cache_entry{owner, &ctx, epoch, &q};
  return q;
}

std::size_t deadline_queue::size() const noexcept {
  std::size_t n = 0;
  for (const deadline_entry* e = sentinel_.next_; e != &sentinel_; e = e->next_) ++n;
  return n;
}

void deadline_queue::push(deadline_entry& e) noexcept {
  // Find the insertion point: after the last entry whose deadline is <= e's (usually the tail).
  deadline_entry* after = sentinel_.prev_;
  while (after != &sentinel_ && after->deadline_ > e.deadline_) after = after->prev_;
  e.prev_ = after;
  e.next_ = after->next_;
  after->next_->prev_ = &e;
  after->next_ = &e;
  e.queue_ = this;
  e.expired_ = false;
  if (!armed_ || e.deadline_ < armed_at_) arm(e.deadline_);
}

void deadline_queue::arm(clock::time_point tp) noexcept {
  if (shut_down_) return;
  if (!timer_) timer_ = clock_->make_timer(ex_);
  const std::uint64_t gen = ++generation_;
  armed_ = true;
  armed_at_ = tp;
  timer_->async_wait_until(tp, timer::handler_type([this, gen](error_code ec) { on_timer(ec, gen); }));
}

void deadline_queue::on_timer(const error_code& ec, std::uint64_t gen) noexcept {
  if (gen != generation_) return;  // superseded by a re-arm
  armed_ = false;
  if (ec || shut_down_) return;
  const auto now = clock_->now();
  while (!empty() && sentinel_.next_->deadline_ <= now) {
    deadline_entry& e = *sentinel_.next_;
    remove(e);
    e.expired_ = true;
    request_context* ctx = e.ctx_;
    // `e` may be destroyed by what cancel() triggers: do not touch it afterwards.
    if (ctx) ctx->cancel();
  }
  if (!empty() && !armed_) arm(sentinel_.next_->deadline_);
}

void deadline_queue::shutdown() noexcept {
  shut_down_ = true;
  ++generation_;
  armed_ = false;
  timer_.reset();
}

}  // namespace turret
