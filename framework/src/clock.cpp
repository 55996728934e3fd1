#include <turret/clock.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

#include <map>
#include <mutex>
#include <optional>
#include <vector>

namespace turret {

namespace {

class real_timer final : public timer {
 public:
  explicit real_timer(const boost::asio::any_io_executor& ex) : t_(ex) {}
  void async_wait_until(time_point tp, handler_type handler) override {
    t_.expires_at(tp);
    t_.async_wait(std::move(handler));
  }
  void cancel() override { t_.cancel(); }

 private:
  boost::asio::steady_timer t_;
};

class real_clock final : public clock {
 public:
  time_point now() const noexcept override { return std::chrono::steady_clock::now(); }
  std::unique_ptr<timer> make_timer(const boost::asio::any_io_executor& ex) override {
    return std::make_unique<real_timer>(ex);
  }
};

}  // namespace

std::shared_ptr<clock> steady_clock() {
  static const std::shared_ptr<clock> instance = std::make_shared<real_clock>();
  return instance;
}

// ---- manual clock ------------------------------------------------------------------------------------------------

struct manual_clock::state {
  using key = std::pair<time_point, std::uint64_t>;
  struct pending {
    timer::handler_type handler;
    boost::asio::any_io_executor ex;
  };

  mutable std::mutex m;
  time_point now;
  std::uint64_t seq = 0;
  std::map<key, pending> timers;

  /// Posts the completion to the handler's executor; the cancellation slot is cleared there, before invocation.
  static void complete(pending p, error_code ec) {
    boost::asio::post(p.ex, [h = std::move(p.handler), ec]() mutable {
      auto slot = boost::asio::get_associated_cancellation_slot(h);
      if (slot.is_connected()) slot.clear();
      std::move(h)(ec);
    });
  }

  /// Removes `k` if still armed and completes it with operation_aborted.
  void cancel(const key& k) {
    std::optional<pending> p;
    {
      std::lock_guard lock(m);
      auto it = timers.find(k);
      if (it == timers.end()) return;
      p.emplace(std::move(it->second));
      timers.erase(it);
    }
    complete(std::move(*p), boost::asio::error::operation_aborted);
  }
};

namespace {

class manual_timer final : public timer {
 public:
  manual_timer(std::shared_ptr<manual_clock::state> st, const boost::asio::any_io_executor& ex)
      : st_(std::move(st)), ex_(ex) {}
  ~manual_timer() override { cancel(); }

  void async_wait_until(time_point tp, handler_type handler) override {
    cancel();
    auto slot = boost::asio::get_associated_cancellation_slot(handler);
    manual_clock::state::key k;
    {
      std::lock_guard lock(st_->m);
      k = {tp, st_->seq++};
    }
    // Install the cancellation handler before the wait can complete (completion clears the slot).
    if (slot.is_connected()) slot.template emplace<slot_handler>(slot_handler{st_, k});
    {
      std::lock_guard lock(st_->m);
      st_->timers.emplace(k, manual_clock::state::pending{std::move(handler), ex_});
    }
    armed_ = k;
  }

  void cancel() override {
    if (armed_) {
      st_->cancel(*armed_);
      armed_.reset();
    }
  }

 private:
  struct slot_handler {
    std::shared_ptr<manual_clock::state> st;
    manual_clock::state::key k;
    void operator()(boost::asio::cancellation_type) { st->cancel(k); }
  };

  std::shared_ptr<manual_clock::state> st_;
  boost::asio::any_io_executor ex_;
  std::optional<manual_clock::state::key> armed_;
};

}  // namespace

manual_clock::manual_clock(time_point start) : state_(std::make_shared<state>()) { state_->now = start; }
manual_clock::~manual_clock() = default;

clock::time_point manual_clock::now() const noexcept {
  std::lock_guard lock(state_->m);
  return state_->now;
}

std::unique_ptr<timer> manual_clock::make_timer(const boost::asio::any_io_executor& ex) {
  return std::make_unique<manual_timer>(state_, ex);
}

std::size_t manual_clock::advance(duration d) {
  std::vector<state::pending> due;
  {
    std::lock_guard lock(state_->m);
    state_->now += d;
    while (!state_->timers.empty() && state_->timers.begin()->first.first <= state_->now) {
      due.push_back(std::move(state_->timers.begin()->second));
      state_->timers.erase(state_->timers.begin());
    }
  }
  for (auto& p : due) state::complete(std::move(p), error_code{});
  return due.size();
}

std::size_t manual_clock::pending_timers() const {
  std::lock_guard lock(state_->m);
  return state_->timers.size();
}

// ---- sleeping ----------------------------------------------------------------------------------------------------

boost::asio::awaitable<error_code> sleep_until(clock& c, clock::time_point tp, boost::asio::cancellation_slot slot) {
  auto ex = co_await boost::asio::this_coro::executor;
  auto t = c.make_timer(ex);
  auto [ec] = co_await t->async_wait(
      tp, boost::asio::bind_cancellation_slot(slot, boost::asio::as_tuple(boost::asio::use_awaitable)));
  // Asio leaves the timer's cancellation handler installed in the slot after the wait completes; it points into the
  // timer, destroyed when this returns. A later emit on the same slot (a timeout cancelling the request, a hedge
  // stopping its siblings) would then touch freed memory: clear it while the timer is still alive.
  if (slot.is_connected()) slot.clear();
  co_return ec;
}

boost::asio::awaitable<error_code> sleep_for(clock& c, clock::duration d, boost::asio::cancellation_slot slot) {
  co_return co_await sleep_until(c, c.now() + d, slot);
}

}  // namespace turret
