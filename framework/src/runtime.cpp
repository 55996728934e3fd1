#include <turret/runtime.hpp>

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include <csignal>
#include <exception>

namespace turret {

runtime::runtime(std::size_t threads) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  contexts_.reserve(threads);
  guards_.reserve(threads);
  for (std::size_t i = 0; i < threads; ++i) {
    contexts_.push_back(std::make_unique<boost::asio::io_context>(1));
    guards_.push_back(boost::asio::make_work_guard(*contexts_.back()));
  }
}

namespace {
// execution_context::shutdown() is protected; this names it through a derived class (standard access rules).
struct context_teardown : boost::asio::io_context {
  static void shutdown_services(boost::asio::io_context& ctx) {
    auto fn = &context_teardown::shutdown;  // execution_context::shutdown, a void (execution_context::*)()
    (ctx.*fn)();
  }
};
}  // namespace

runtime::~runtime() {
  stop();
  signals_.reset();
  guards_.clear();
  // Two phases. First shut every context down: this destroys the pending handlers of all of them (suspended
  // coroutine frames, accept operations holding a socket for another context, handlers owning timers...) while
  // the services of every context are still alive, since an I/O object is often owned by a handler queued on a
  // different context than its own. Only then destroy the contexts (reverse order of creation).
  for (auto& c : contexts_) context_teardown::shutdown_services(*c);
  while (!contexts_.empty()) contexts_.pop_back();
}

boost::asio::any_io_executor runtime::next_executor() noexcept {
  const std::size_t i = next_.fetch_add(1, std::memory_order_relaxed) % contexts_.size();
  return contexts_[i]->get_executor();
}

namespace {
void run_context(boost::asio::io_context& ctx) {
  for (;;) {
    try {
      ctx.run();
      return;
    } catch (const std::exception& e) {
      spdlog::error("unhandled exception in worker: {}", e.what());
    } catch (...) {
      spdlog::error("unhandled exception in worker");
    }
  }
}
}  // namespace

void runtime::run() {
  if (stopped()) return;
  std::vector<std::thread> threads;
  threads.reserve(contexts_.size() - 1);
  for (std::size_t i = 1; i < contexts_.size(); ++i) {
    threads.emplace_back([this, i] { run_context(*contexts_[i]); });
  }
  run_context(*contexts_[0]);
  for (auto& t : threads) t.join();
}

void runtime::stop() noexcept {
  std::lock_guard lock(guard_mutex_);
  if (stopped_.exchange(true, std::memory_order_acq_rel)) return;
  for (auto& g : guards_) g.reset();
  for (auto& c : contexts_) c->stop();
}

void runtime::handle_signals(std::function<void(int)> on_signal) {
  on_signal_ = std::move(on_signal);
  signals_ = std::make_unique<boost::asio::signal_set>(*contexts_[0], SIGINT, SIGTERM);
  wait_signal();
}

void runtime::wait_signal() {
  signals_->async_wait([this](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    ++signals_seen_;
    if (signals_seen_ == 1 && on_signal_) {
      spdlog::info("received signal {}, shutting down (send again to stop immediately)", signo);
      on_signal_(signo);
    } else {
      spdlog::warn("received signal {} again, stopping now", signo);
      stop();
      return;
    }
    wait_signal();
  });
}

// ---- shutdown_coordinator ----------------------------------------------------------------------------------------

void shutdown_coordinator::start(boost::asio::any_io_executor ex, std::function<void(bool clean)> done) {
  if (draining_.exchange(true, std::memory_order_acq_rel)) return;
  done_ = std::move(done);
  deadline_ = std::chrono::steady_clock::now() + grace_;
  ex_ = ex;
  boost::asio::post(ex, [this] {
    for (auto& f : stop_accepting_) f();
    poll();
  });
}

void shutdown_coordinator::poll() {
  const bool idle = in_flight() == 0;
  const auto now = std::chrono::steady_clock::now();
  if (idle || now >= deadline_) {
    if (!idle) {
      spdlog::warn("shutdown grace period elapsed with {} in flight; closing", in_flight());
      for (auto& f : force_close_) f();
    }
    if (auto d = std::move(done_)) d(idle);
    return;
  }
  // The timer is owned by its pending wait, not by the coordinator: when the runtime stops before the sequence
  // ends, the context's teardown destroys it together with the handler, before the context itself (a member timer
  // would outlive the io_context it belongs to, since the coordinator outlives the runtime).
  auto timer = std::make_shared<boost::asio::steady_timer>(ex_, std::min(deadline_, now + std::chrono::milliseconds(5)));
  timer->async_wait([this, timer](const boost::system::error_code& ec) {
    if (!ec) poll();
  });
}

}  // namespace turret
