// echo_service: how a third party writes a service on turret's framework and wraps it in middleware.
//
// 1. A Service (turret/service.hpp): `ready(ctx)` hands out a permit, `call(permit, req)` answers; both are
//    coroutines and return errors as values (result<T>). Our echo service is always ready (unit_permit) and may
//    "work" for a while, waiting on a timer bound to the request's cancellation slot so that a timeout can stop it.
// 2. The same service composed statically (service_builder: no allocation, no virtual call) and from YAML through
//    the layer registry (type-erased: the pipeline is chosen at run time). The FIRST layer is the OUTERMOST.
//
// Build: part of the normal build (target `echo_service`); with an installed turret, link turret::middleware.
// Run: ./echo_service  (prints each request's outcome; exit code 0 when every outcome was the expected one).
#include <turret/layer.hpp>
#include <turret/middleware/builtin.hpp>  // register_builtin_layers
#include <turret/middleware/concurrency_limit.hpp>  // concurrency_limit_layer
#include <turret/middleware/timeout.hpp>  // timeout_layer, timeout_errc
#include <turret/registry.hpp>
#include <turret/service.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <iostream>
#include <optional>
#include <string>

namespace asio = boost::asio;
using namespace std::chrono_literals;

// --- the request, the response and the service ------------------------------------------------------------------

/// Requests carry a request_context (deadline, cancellation, request id): generic layers such as timeout need it.
/// The context is neither copyable nor movable, so requests are built in place and passed by reference.
struct echo_request {
  std::string text;
  std::chrono::milliseconds work{0};  ///< simulated processing time
  turret::request_context ctx;
  turret::request_context& context() noexcept { return ctx; }
};

struct echo_response {
  std::string text;
};

class echo_service {
 public:
  using response_type = echo_response;
  using permit_type = turret::unit_permit;  // always ready: the permit reserves nothing

  turret::awaitable<turret::result<permit_type>> ready(turret::request_context&) { co_return permit_type{}; }

  turret::awaitable<turret::result<echo_response>> call(permit_type, echo_request& req) {
    if (req.work > 0ms) {
      // Suspending work binds to the context's cancellation slot: a timeout (or a disconnecting client) cancels it,
      // the wait completes with operation_aborted and we return that error (no exception on the request path).
      asio::steady_timer timer(co_await asio::this_coro::executor, req.work);
      auto [ec] = co_await timer.async_wait(
          asio::bind_cancellation_slot(req.ctx.cancel_slot(), asio::as_tuple(asio::use_awaitable)));
      if (ec) co_return ec;
    }
    co_return echo_response{"echo: " + req.text};
  }

  /// Optional synchronous fast path (see immediate_service): answer now when nothing has to wait, else nullopt
  /// ("use ready() + call()"). Layers forward it, so a fast request through the whole chain costs no coroutine frame.
  std::optional<turret::result<echo_response>> try_call_now(echo_request& req) {
    if (req.work > 0ms) return std::nullopt;
    return turret::result<echo_response>(echo_response{"echo: " + req.text});
  }
};
static_assert(turret::service<echo_service, echo_request>);
static_assert(turret::immediate_service<echo_service, echo_request>);

// --- exercising it ----------------------------------------------------------------------------------------------

int failures = 0;

/// Runs one request through `svc` (ready + call, fast path first) and prints the outcome.
template <class S>
turret::awaitable<void> run(std::string_view label, S& svc, std::string text, std::chrono::milliseconds work,
                            std::string_view expected) {
  echo_request req;  // built in place (its context cannot be copied or moved)
  req.text = std::move(text);
  req.work = work;
  auto r = co_await turret::ready_and_call(svc, req);
  const std::string got = r ? r->text : "error: " + r.error().message();
  std::cout << label << ": " << got << "\n";
  if (got != expected) {
    std::cout << "  unexpected, wanted: " << expected << "\n";
    ++failures;
  }
}

turret::awaitable<void> demo() {
  // (a) Static composition: the type is timeout_service<concurrency_limit_service<echo_service>>.
  auto stat = turret::service_builder{}
                  .layer(turret::timeout_layer(100ms))           // outermost: bounds readiness wait + call
                  .layer(turret::concurrency_limit_layer(64))    // at most 64 requests inside at once
                  .service(echo_service{});
  co_await run("static fast", stat, "hi", 0ms, "echo: hi");
  co_await run("static slow", stat, "zzz", 500ms, "error: request timed out");

  // (b) The same pipeline from configuration. The registry maps config names to layer factories; registration is
  //     an explicit call (no static initialisers). Factories validate their entry (unknown keys are errors).
  turret::layer_registry<echo_request, echo_response> registry;
  turret::register_builtin_layers(registry);
  const turret::config_node root = turret::load_config_string(R"(
pipeline:
  - layer: timeout
    duration: 100ms
  - layer: concurrency_limit
    max: 64
)",
                                                              "echo.yaml");
  turret::any_service<echo_request, echo_response> dyn =
      registry.build(root.child("pipeline"), turret::any_service<echo_request, echo_response>(echo_service{}));
  co_await run("config fast", dyn, "hi", 0ms, "echo: hi");
  co_await run("config slow", dyn, "zzz", 500ms, "error: request timed out");

  // (c) Config errors name the file, position and key path (exceptions are fine at start-up).
  try {
    registry.build(turret::load_config_string("pipeline:\n  - layer: timeout\n    duraton: 1s\n", "bad.yaml")
                       .child("pipeline"),
                   turret::any_service<echo_request, echo_response>(echo_service{}));
    std::cout << "bad config accepted\n";
    ++failures;
  } catch (const turret::config_error& e) {
    std::cout << "config error: " << e.what() << "\n";
  }
}

int main() {
  // One io_context run by one thread: the model the timeout layer requires (turret::runtime does the same per worker).
  asio::io_context io(1);
  asio::co_spawn(io, demo(), [](std::exception_ptr e) {
    if (e) {
      std::cout << "demo failed with an exception\n";
      ++failures;
    }
  });
  io.run();
  return failures == 0 ? 0 : 1;
}
