#pragma once
// dispatch: how every front end sends one request through its pipeline. One implementation for RESP, REST and
// gRPC, so that they behave the same under every layer.
//
// Contract
// - The synchronous fast path first (try_call_now: no coroutine frame when every layer allows it), else ready() +
//   call() on the caller's coroutine.
// - Exactly one reply per request: the reply is written into req.out by the backend (zero copy); when the pipeline
//   returns an error (a timeout that fired while the inner service was suspended, a limit, an injected fault, a
//   cancellation, a layer failing after a partial write), everything written into req.out since the dispatch began
//   is discarded (reply_builder::rollback) and the front end writes the error's reply (<turret/error_mapping.hpp>
//   says which, the same for every protocol). Nothing reaches the client before the pipeline has returned.
// - Per-command metrics, for every front end: turret_commands_total{frontend,command,outcome} (outcome: ok, error
//   = an error reply, failed = a pipeline error) and turret_command_duration_seconds{frontend,command}. The command
//   label comes from the command table (unknown commands share "unknown"), so clients cannot create series.
//
// - A front end that reads pipelined batches may start requests (dispatch_start: the pipeline's callback start,
//   service.hpp) and collect their replies later, in request order, for a pipeline whose whole chain supports it
//   (pipeline.supports_start()): a proxy's round trips then overlap. A request the pipeline declines goes through
//   dispatch_now / dispatch_suspending after every started one was answered, so a session's requests run in order
//   (the started ones of a session that touch one key go to one upstream connection, in order).
//
// Threading: a dispatch runs on the caller's thread (the connection's); series are cached per thread.
#include <turret/kv/command_table.hpp>
#include <turret/kv/request.hpp>
#include <turret/service.hpp>

#include <chrono>
#include <optional>
#include <unordered_map>
#include <string_view>

namespace turret::metrics {
class counter;
class histogram;
}  // namespace turret::metrics

namespace turret::kv {

/// Per-command metric series of one front end. Series are looked up once per meter and command (a mutex and a
/// hash in the registry), then recording is a few relaxed atomic adds. Not thread-safe: one meter per connection
/// (or per thread).
class command_meter {
 public:
  using clock = std::chrono::steady_clock;
  explicit command_meter(std::string_view frontend) : frontend_(frontend) {}

  /// Records one command that ended at `end` after starting at `start`.
  void record(const command_def* def, const result<response>& r, clock::time_point start, clock::time_point end);
  /// Counts `n` commands that were started (dispatch_start) rather than dispatched: turret_commands_started_total.
  void count_started(std::size_t n);

 private:
  struct series {
    metrics::counter* ok;
    metrics::counter* error;
    metrics::counter* failed;
    metrics::histogram* duration;
  };
  series& series_for(const command_def* def);

  std::string_view frontend_;  ///< static storage ("resp", "http", "grpc")
  std::unordered_map<const command_def*, series> cache_;
  metrics::counter* started_ = nullptr;
};

/// The synchronous attempt: the pipeline's result, or nullopt when it would suspend (then nothing happened: call
/// dispatch() on a coroutine). On an error, req.out is rolled back to where it was.
template <class Pipeline>
std::optional<result<response>> dispatch_now(Pipeline& pipeline, request& req) {
  const reply_builder::checkpoint mark = req.out.mark();
  std::optional<result<response>> r = try_call_now(pipeline, req);
  if (r && !*r) req.out.rollback(mark);
  return r;
}

/// ready() + call() (after dispatch_now() returned nullopt). On an error, req.out is rolled back to where it was.
template <class Pipeline>
awaitable<result<response>> dispatch_suspending(Pipeline& pipeline, request& req) {
  const reply_builder::checkpoint mark = req.out.mark();
  auto permit = co_await pipeline.ready(req.context());
  if (!permit) {
    req.out.rollback(mark);  // readiness failed: nothing should have been written, but a layer may have
    co_return permit.error();
  }
  result<response> r = co_await pipeline.call(std::move(*permit), req);
  if (!r) req.out.rollback(mark);
  co_return r;
}

/// The callback start: true when the pipeline took `req` (its reply goes into req.out, which stays valid and
/// untouched until `done` ran; `done` runs once, on any thread; nothing is rolled back: a failed request's sink is
/// the caller's to discard); false when it declined (nothing happened: dispatch it).
template <class Pipeline>
bool dispatch_start(Pipeline& pipeline, request& req, completion<response>& done) {
  return try_start(pipeline, req, done);
}

}  // namespace turret::kv

namespace turret::kv {

/// The whole dispatch: the fast path, else ready() + call().
template <class Pipeline>
awaitable<result<response>> dispatch(Pipeline& pipeline, request& req) {
  if (auto now = dispatch_now(pipeline, req)) co_return std::move(*now);
  co_return co_await dispatch_suspending(pipeline, req);
}

}  // namespace turret::kv
