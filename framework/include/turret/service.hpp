#pragma once
// The Service contract. Everything in turret (middleware, the key-value core, upstream clients) is a Service.
#include <turret/completion.hpp>
#include <turret/context.hpp>
#include <turret/result.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/error.hpp>

#include <concepts>
#include <optional>
#include <utility>

namespace turret {

template <class T>
using awaitable = boost::asio::awaitable<T>;

/// A Service is an asynchronous function from a `Request` to a `result<response_type>`, with explicit readiness.
///
/// ```
/// struct S {
///   using response_type = ...;
///   using permit_type   = ...;                            // move-only RAII reservation
///   awaitable<result<permit_type>> ready(request_context&);
///   awaitable<result<response_type>> call(permit_type, Request&);
/// };
/// ```
///
/// # Readiness and backpressure
/// Before each `call` the caller obtains a permit from `ready`. The permit is the service's promise that it has
/// capacity for one request (a concurrency slot, a rate-limit token, a healthy upstream). `ready` may suspend while
/// capacity is unavailable (concurrency and rate limits hold back here), or fail immediately with a typed error
/// (load shedding turns "not ready" into `overloaded`). A permit is RAII: dropping it unspent releases the
/// reservation, so a cancelled or failed caller can never leak capacity. `call` consumes the permit; the
/// reservation lasts until the call completes. A permit belongs to one request and must not be shared.
///
/// # Cancellation and deadlines
/// `ready` receives the request's context so that the wait for readiness is bounded by the request's deadline and
/// cancellation, like the call itself (see request_context). A service that suspends binds its operation to
/// `ctx.cancel_slot()` and returns `boost::asio::error::operation_aborted` when cancelled. After cancellation the
/// service must still complete (never hang) and must leave no partial state visible to other requests.
///
/// # Ordering
/// A service makes no ordering promise across concurrent calls. Front ends of pipelined protocols (RESP, HTTP/1.1)
/// issue a connection's requests one after another and so answer in request order.
///
/// # Sharing and threads
/// One service object serves every connection of a listener, on every worker thread: `ready` and `call` may run
/// concurrently on several threads, and a service keeps its shared state thread-safe (atomics, short locks). All
/// per-request state lives in the permit, the request and its context. Services are held by `shared_ptr` when type
/// erased; copying a service object never copies limiter state (layers share it through a pointer).
///
/// # Errors
/// Errors are values (`result<T>`); no exception crosses `ready` or `call`. Each layer has its own error enum, whose
/// category maps every code to one of turret's generic conditions (turret/error.hpp: overloaded, unavailable,
/// timed_out, ...); front ends answer by condition (turret/error_mapping.hpp), never by layer.
template <class S, class Request>
concept service = requires(S& s, request_context& ctx, Request& req, typename S::permit_type&& permit) {
  typename S::response_type;
  typename S::permit_type;
  requires std::movable<typename S::permit_type>;
  { s.ready(ctx) } -> std::same_as<awaitable<result<typename S::permit_type>>>;
  { s.call(std::move(permit), req) } -> std::same_as<awaitable<result<typename S::response_type>>>;
};

/// Requests that carry a request_context (every request of turret's front ends). Generic layers (timeout, metrics,
/// access log) need it.
template <class Request>
concept contextual_request = requires(Request& r) {
  { r.context() } -> std::same_as<request_context&>;
};

/// The request's context when it carries one, else `fallback` (a layer's code path for requests without one).
template <class Request>
request_context& context_or(Request& req, request_context& fallback) noexcept {
  if constexpr (contextual_request<Request>) {
    return req.context();
  } else {
    return fallback;
  }
}

/// # Optional extension: immediate completion (synchronous fast path)
/// A service MAY also provide
/// ```
///   std::optional<result<response_type>> try_call_now(Request& req);
/// ```
/// which performs ready() + call() in one synchronous step when it can do so without suspending, and returns
/// `std::nullopt` WITHOUT ANY SIDE EFFECT when it would have to suspend (no capacity free right now, I/O needed...).
/// The caller then falls back to `co_await ready(ctx)` + `co_await call(...)`. This saves the coroutine frames of
/// the whole chain for the common case (the key-value core answers in ~200 ns; a frame per layer would dominate).
/// Layers implement it synchronously and forward to their inner service's try_call_now: a concurrency limit takes a
/// slot with an atomic try-acquire (nullopt if none free or someone waits), calls the inner service and releases; a
/// timeout layer just forwards (nothing can elapse while nothing suspends). A service without it is treated as
/// "would suspend" by the free function `try_call_now(s, req)`.
template <class S, class Request>
concept immediate_service = service<S, Request> && requires(S& s, Request& req) {
  { s.try_call_now(req) } -> std::same_as<std::optional<result<typename S::response_type>>>;
};

/// `s.try_call_now(req)` when S provides it, else nullopt ("use ready() + call()").
template <class Request, class S>
std::optional<result<typename S::response_type>> try_call_now(S& s, Request& req) {
  if constexpr (immediate_service<S, Request>) {
    return s.try_call_now(req);
  } else {
    return std::nullopt;
  }
}

/// # Optional extension: callback start (no coroutine per request)
/// A service MAY also provide
/// ```
///   bool try_start(Request& req, completion<response_type>& done);
/// ```
/// which performs ready() + call() without suspending and without a coroutine frame, for a request whose answer
/// comes later (a proxy's round trip): it returns true once the request is under way, having moved from `done`,
/// which is then invoked exactly once with the result, either before try_start returns or later, on any thread
/// (an upstream connection's). It returns false WITHOUT ANY SIDE EFFECT (`done` untouched) when it cannot start
/// the request so; the caller then uses try_call_now, else ready() + call().
/// - Lifetime: the request object and its arguments are needed only until try_start returns. What the response is
///   written to (the key-value request's reply sink) stays valid, and untouched by the caller, until `done` runs.
/// - Concurrency: a caller may start several requests before any completes (a pipelined batch): that is the point.
///   A service keeps the order of started requests only where it documents it (the upstream client: requests with
///   the same affinity, on one connection).
/// - Cancellation: a started request is not bound to the context's cancel slot; it completes when its service does.
///   So a layer that bounds time or that must see the reply before answering (timeout, retry, hedge) does not
///   provide try_start, and a chain holding one takes the coroutine path.
/// A layer provides it when its own work fits before the start and in the callback (load_balance picks at once and
/// records the outcome in the callback); a service without it is treated as "cannot start" by the free function
/// `try_start(s, req, done)`.
template <class S, class Request>
concept startable_service =
    service<S, Request> && requires(S& s, Request& req, completion<typename S::response_type>& done) {
      { s.try_start(req, done) } -> std::same_as<bool>;
    };

/// True when `s` answers try_start (an erased service: when its whole erased chain does).
template <class Request, class S>
bool start_supported(const S& s) noexcept {
  if constexpr (requires { s.supports_start(); }) {
    return s.supports_start();
  } else {
    return startable_service<S, Request>;
  }
}

/// `s.try_start(req, done)` when S provides it, else false ("use try_call_now, ready() + call()").
template <class Request, class S>
bool try_start(S& s, Request& req, completion<typename S::response_type>& done) {
  if constexpr (startable_service<S, Request>) {
    return s.try_start(req, done);
  } else {
    return false;
  }
}

/// # Optional extension: non-suspending readiness probe
/// A service MAY also provide
/// ```
///   std::optional<result<permit_type>> try_ready(request_context& ctx);
/// ```
/// which answers what `ready(ctx)` would answer if it can do so without suspending: a permit (the same RAII
/// reservation ready() gives, spent by call()), or an error, or `std::nullopt` WITHOUT ANY SIDE EFFECT when ready()
/// would have to wait (for a slot, a token, a timer). load_shed is built on it: it turns "would wait" into
/// `overloaded` instead of queueing (tower's LoadShed over poll_ready).
///
/// A layer answers for its own readiness and probes its inner service:
/// - a layer that reserves nothing (timeout) forwards the inner answer; one whose readiness is a wait of its own
///   (fault's delay) returns nullopt when that wait applies;
/// - a layer that reserves capacity (concurrency_limit's slot, rate_limit's token) takes it without suspending, then
///   probes its inner service. When the inner service would wait (or cannot be probed), the layer still returns a
///   permit holding its reservation, and call() first awaits the inner ready(): its ready() holds the reservation
///   while it awaits the inner readiness anyway, so the reservation bounds the same wait either way. Hence
///   `load_shed` sheds on the capacity of the layer right below it (put it directly above the limit to shed on).
/// A service without it is treated as "would suspend" by the free function `try_ready(s, ctx)`;
/// `probe_supported(s)` tells the two apart (load_shed over a service it cannot probe awaits ready() and sheds
/// nothing).
template <class S>
concept probing_service = requires(S& s, request_context& ctx) {
  { s.try_ready(ctx) } -> std::same_as<std::optional<result<typename S::permit_type>>>;
};

/// True when `s` answers try_ready (an erased service: when its whole erased chain does).
template <class S>
bool probe_supported(const S& s) noexcept {
  if constexpr (requires { s.supports_try_ready(); }) {
    return s.supports_try_ready();
  } else {
    return probing_service<S>;
  }
}

/// `s.try_ready(ctx)` when S provides it, else nullopt ("use ready()").
template <class S>
std::optional<result<typename S::permit_type>> try_ready(S& s, request_context& ctx) {
  if constexpr (probing_service<S>) {
    return s.try_ready(ctx);
  } else {
    return std::nullopt;
  }
}

/// The inner readiness a layer's try_ready deferred to call() (see probing_service): `s.ready()` for the request's
/// context (operation_aborted at once if it was cancelled meanwhile).
template <class S, class Request>
awaitable<result<typename S::permit_type>> deferred_ready(S& s, Request& req) {
  request_context none;
  request_context& ctx = context_or(req, none);
  if (ctx.cancelled()) co_return make_error_code(boost::asio::error::operation_aborted);
  co_return co_await s.ready(ctx);
}

/// The permit of a service that is always ready.
struct unit_permit {};

/// Convenience: ready + call in one step (what a front end does for each request).
template <class Request, service<Request> S>
awaitable<result<typename S::response_type>> ready_and_call(S& s, Request& req) {
  if (auto r = try_call_now(s, req)) co_return std::move(*r);
  auto permit = co_await s.ready(req.context());
  if (!permit) co_return permit.error();
  co_return co_await s.call(std::move(*permit), req);
}

}  // namespace turret
