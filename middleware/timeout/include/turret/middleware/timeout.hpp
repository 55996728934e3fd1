#pragma once
// timeout: bounds a request, readiness wait included, by a fixed duration.
//
// Semantics (differs from tower's Timeout, which does not bound readiness):
// - ONE deadline per request, starting when ready() begins; it bounds the readiness wait AND the call.
// - The deadline tightens ctx.deadline (never loosens it).
// - On expiry the layer calls ctx.cancel() (cooperative cancellation, see context.hpp): the inner service's pending
//   operation, bound to ctx.cancel_slot(), completes with operation_aborted; the layer then returns
//   timeout_errc::elapsed. A permit obtained but not spent before the deadline is dropped (releasing the inner
//   reservation) and call() returns elapsed without calling the inner service. An inner service that never suspends
//   is never interrupted; if the deadline expired meanwhile, the result is still elapsed.
//
// Cost: no timer is armed per request. Deadlines are registered in a per-thread intrusive FIFO (deadline_queue.hpp):
// O(1), no allocation, no syscall, no lock. The registration lives in the permit (RAII) and is removed when the
// call completes or the permit is dropped.
//
// Threading: a request's ready() and call() must run on the executor of one io_context run by one thread
// (turret::runtime's model).
#include <turret/clock.hpp>
#include <turret/deadline_queue.hpp>
#include <turret/service.hpp>

#include <boost/asio/this_coro.hpp>
#include <boost/system/error_category.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <type_traits>

namespace turret {

enum class timeout_errc {
  elapsed = 1,  ///< "request timed out"
};

/// The category "turret.timeout".
const boost::system::error_category& timeout_category() noexcept;
inline error_code make_error_code(timeout_errc e) noexcept { return {static_cast<int>(e), timeout_category()}; }

}  // namespace turret

template <>
struct boost::system::is_error_code_enum<turret::timeout_errc> : std::true_type {};

namespace turret {

/// Immutable configuration, shared by every instance the layer creates.
struct timeout_config {
  std::chrono::nanoseconds duration{std::chrono::seconds(2)};  ///< must be > 0
};

namespace detail {
struct timeout_shared {
  std::chrono::nanoseconds duration;
  std::shared_ptr<clock> clk;
  std::uint64_t owner = deadline_queue::new_owner_id();
};
}  // namespace detail

template <class S>
class timeout_service {
 public:
  using response_type = typename S::response_type;

  /// The inner permit plus this request's deadline registration.
  struct permit_type {
    deadline_entry entry;
    std::optional<typename S::permit_type> inner;
  };

  timeout_service(S inner, std::shared_ptr<const detail::timeout_shared> shared)
      : inner_(std::move(inner)), shared_(std::move(shared)) {}

  std::chrono::nanoseconds duration() const noexcept { return shared_->duration; }
  S& inner() noexcept { return inner_; }
  const S& inner() const noexcept { return inner_; }

  awaitable<result<permit_type>> ready(request_context& ctx) {
    const auto ex = co_await boost::asio::this_coro::executor;
    deadline_queue& q = deadline_queue::get(shared_->owner, shared_->clk, ex);
    const auto deadline = q.get_clock().now() + shared_->duration;
    if (deadline < ctx.deadline) ctx.deadline = deadline;
    permit_type p{deadline_entry(deadline, &ctx), std::nullopt};
    q.push(p.entry);
    auto r = co_await inner_.ready(ctx);
    if (p.entry.expired()) co_return timeout_errc::elapsed;  // r (a permit, if any) is dropped: RAII release
    if (!r) co_return r.error();
    p.inner.emplace(std::move(*r));
    co_return std::move(p);
  }

  /// Synchronous fast path: forwards to the inner service (nothing can elapse while nothing suspends, so no
  /// deadline is registered).
  template <class Request>
    requires immediate_service<S, Request>
  std::optional<result<response_type>> try_call_now(Request& req) {
    return inner_.try_call_now(req);
  }

  /// Non-suspending probe: the inner service's try_ready (nullopt when it would wait). The deadline starts now, as
  /// in ready(); it is registered (in this thread's deadline queue) when call() starts, so it bounds the call.
  std::optional<result<permit_type>> try_ready(request_context& ctx)
    requires probing_service<S>
  {
    if (!probe_supported(inner_)) return std::nullopt;
    const auto deadline = shared_->clk->now() + shared_->duration;
    auto r = inner_.try_ready(ctx);
    if (!r) return std::nullopt;
    if (!*r) return result<permit_type>(r->error());
    if (deadline < ctx.deadline) ctx.deadline = deadline;
    permit_type p{deadline_entry(deadline, &ctx), std::nullopt};
    p.inner.emplace(std::move(**r));
    return result<permit_type>(std::move(p));
  }

  awaitable<result<response_type>> call(permit_type p, auto& req) {
    if (!p.entry.linked() && !p.entry.expired() && p.entry.context() != nullptr) {  // from try_ready
      const auto ex = co_await boost::asio::this_coro::executor;
      deadline_queue& q = deadline_queue::get(shared_->owner, shared_->clk, ex);
      if (q.get_clock().now() >= p.entry.deadline()) co_return timeout_errc::elapsed;
      q.push(p.entry);
    }
    if (p.entry.expired() || !p.inner) co_return timeout_errc::elapsed;
    auto r = co_await inner_.call(std::move(*p.inner), req);
    const bool expired = p.entry.expired();
    p.entry.unlink();
    if (expired) co_return timeout_errc::elapsed;
    co_return r;
  }

 private:
  S inner_;
  std::shared_ptr<const detail::timeout_shared> shared_;
};

/// The layer: holds the validated config and the clock (default: the real steady clock).
class timeout_layer {
 public:
  explicit timeout_layer(timeout_config cfg, std::shared_ptr<clock> clk = steady_clock())
      : cfg_(cfg), clock_(std::move(clk)) {}
  explicit timeout_layer(std::chrono::nanoseconds d, std::shared_ptr<clock> clk = steady_clock())
      : timeout_layer(timeout_config{d}, std::move(clk)) {}

  /// Each wrap creates one instance (its own deadline queues).
  template <class S>
  timeout_service<S> wrap(S inner) const {
    return timeout_service<S>(std::move(inner),
                              std::make_shared<const detail::timeout_shared>(detail::timeout_shared{cfg_.duration, clock_}));
  }

  const timeout_config& config() const noexcept { return cfg_; }

 private:
  timeout_config cfg_;
  std::shared_ptr<clock> clock_;
};

}  // namespace turret

namespace turret {
class config_node;
/// Parses `{layer: timeout, duration: 2s}` (duration > 0; unknown keys rejected). Throws config_error.
timeout_config parse_timeout_config(const config_node& entry);
}  // namespace turret
