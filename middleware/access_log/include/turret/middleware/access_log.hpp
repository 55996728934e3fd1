#pragma once
// access_log: one JSON object per line for the requests that pass, sampled, written off the request path.
//
// ```yaml
// - layer: access_log
//   path: /var/log/turret/access.log   # a file (appended, created 0644), or stdout, or stderr
//   sample: 0.1                         # share of successful requests logged, 0..1 (default 1)
//   errors: always                      # always (default): error replies and failures are logged unsampled
//                                       # sampled: they are sampled like the rest
//   queue: 8192                         # lines waiting for the writer at most (default 8192); more are dropped
// ```
//
// A line (keys in this order; `identity` and `error` only when not empty):
// ```
// {"time":"2026-12-07T05:21:13.123Z","request_id":"...","protocol":"resp","peer":"127.0.0.1:50412",
//  "identity":"alice","command":"get","outcome":"ok","duration_us":12}
// {"time":...,"outcome":"error","error":"WRONGTYPE","duration_us":3}         an error reply and its Redis code
// {"time":...,"outcome":"failed","error":"timed_out","duration_us":2000104}  a pipeline error and its condition
// ```
// - time: the wall clock (UTC, RFC 3339 with milliseconds) when the request completed; request_id:
//   request_context::request_id() (the client's x-request-id, or generated); command: request_name_of(req)
//   (turret/request_traits.hpp; empty when the request type has none); duration_us: from the layer's ready() (or
//   the fast path's start) to the inner call's completion, on the layer's clock. A failure of the inner ready()
//   (before the layer sees the request) is logged with an empty command.
// - Strings are JSON-escaped byte by byte: `"` `\` and control characters escaped, bytes that are not valid UTF-8
//   written as \u00XX (their Latin-1 reading), so a binary command name still yields one valid JSON line.
//
// Sampling: a request is sampled when mix64(ctx.sample() + salt) < sample * 2^64 (request_context::sample(): one
// uniform value per request, as the fault layer), so the decision is the same on the fast path and on ready()/call().
//
// Writing never blocks the request path on I/O. A line is formatted on the request's thread and pushed onto a
// bounded queue under a short lock (no I/O, no allocation beyond the line); a writer thread drains the queue in
// batches and writes them with one write(2) each. A full queue drops the line and counts it:
// turret_access_log_dropped_total{pipeline}. Lines written: turret_access_log_lines_total{pipeline}.
// The writer thread is started when the layer wraps a service and the factory's layer_context has a runtime (turretd),
// or by start_writer(); without one (unit tests, --check-config) lines stay queued until flush() writes them on the
// caller's thread. The thread stops (after writing what is queued) when the last service of the layer goes away.
//
// The file is opened by the writer (first write), not by the factory: the factory only checks that the directory
// exists. An open or write failure is logged once and the lines are counted as dropped.
//
// Reload: the factory (access_log_layer::from_entry) takes the queue, the writer thread and the open file from
// layer_context::shared_state, so a configuration reload that leaves the entry unchanged (same pipeline, same place,
// same settings, path included) keeps them: the file is not reopened, and the lines of requests finishing on the old
// pipeline and those of the new one go through the one queue, each written once. A changed entry gets a queue, a
// writer and a file handle of its own; the old ones write what is queued and stop when the old pipeline is gone.
//
// Fast path: try_call_now forwards; when it declines nothing is logged (ready()/call() log the request).
#include <turret/clock.hpp>
#include <turret/fast_clock.hpp>
#include <turret/error.hpp>
#include <turret/layer_context.hpp>
#include <turret/request_traits.hpp>
#include <turret/service.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

namespace turret {

namespace metrics {
class counter;
}
class config_node;

/// Immutable configuration.
struct access_log_config {
  std::string path = "stdout";  ///< a file path, "stdout" or "stderr"
  double sample = 1.0;          ///< 0..1
  bool errors_always = true;    ///< `errors: always`
  std::size_t queue = 8192;     ///< lines queued at most
};

/// Parses the entry above (unknown keys rejected; `path` required). Throws config_error.
access_log_config parse_access_log_config(const config_node& entry);

/// Where lines go: write() receives one batch of complete lines (each ending in '\n'). Called from one thread at a
/// time (the writer, or flush()'s caller).
class access_log_sink {
 public:
  virtual ~access_log_sink() = default;
  /// Returns false when the batch could not be written (its lines are counted as dropped).
  virtual bool write(std::string_view lines) = 0;
};

/// The sink of a config path: a file (O_APPEND, opened on first write), stdout or stderr.
std::shared_ptr<access_log_sink> make_access_log_sink(const std::string& path);

/// The fields of one line (views valid during format_access_log_line()).
struct access_log_record {
  std::chrono::system_clock::time_point time;
  std::string_view request_id, protocol, peer, identity, command;
  std::string_view outcome;  ///< ok | error | failed
  std::string_view error;    ///< the error reply's code, or the failure's condition; empty for ok
  std::int64_t duration_us = 0;
};
/// Appends the JSON line of `r` (with its '\n') to `out`.
void format_access_log_line(const access_log_record& r, std::string& out);
/// Appends `s` as a JSON string (quotes included), escaped as described above.
void append_json_string(std::string& out, std::string_view s);

namespace detail {

/// The queue, the writer thread and the counters of one access_log layer (shared by its services).
class access_log_shared {
 public:
  access_log_shared(access_log_config cfg, std::shared_ptr<access_log_sink> sink, const layer_context& ctx,
                    std::function<std::chrono::system_clock::time_point()> wall_clock);
  ~access_log_shared();
  access_log_shared(const access_log_shared&) = delete;
  access_log_shared& operator=(const access_log_shared&) = delete;

  const access_log_config cfg;
  std::shared_ptr<clock> clk;
  duration_clock timing;  ///< on clk, for durations (turret/fast_clock.hpp)

  /// A time point for durations only (duration_clock).
  clock::time_point now() const noexcept { return timing.now(); }
  std::uint64_t threshold = 0;  ///< sample * 2^64
  bool always = false;          ///< sample >= 1
  std::uint64_t salt = 0;

  bool sampled(request_context& ctx) const noexcept {
    return always || (threshold != 0 && request_context::mix64(ctx.sample() + salt) < threshold);
  }
  /// Formats and queues the line of one completed request (or drops and counts it).
  void log(request_context& ctx, std::string_view command, std::string_view outcome, std::string_view error,
           clock::time_point start);

  /// Starts the writer thread (idempotent).
  void start_writer();
  /// Writes everything queued on the calling thread (tests, and a layer without a writer).
  void flush();
  std::uint64_t dropped() const noexcept;

 private:
  void run_writer();
  bool write_batch(std::deque<std::string>& batch);

  std::shared_ptr<access_log_sink> sink_;
  std::function<std::chrono::system_clock::time_point()> wall_;
  metrics::counter* dropped_ = nullptr;
  metrics::counter* lines_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  bool stop_ = false;
  std::once_flag started_;
  std::thread writer_;
  std::mutex write_mu_;  ///< one writer of the sink at a time (writer thread or flush())
};

}  // namespace detail

template <class S>
class access_log_service {
 public:
  using response_type = typename S::response_type;
  struct permit_type {
    typename S::permit_type inner;
    clock::time_point start;
  };

  access_log_service(S inner, std::shared_ptr<detail::access_log_shared> shared)
      : inner_(std::move(inner)), shared_(std::move(shared)) {}

  S& inner() noexcept { return inner_; }
  const S& inner() const noexcept { return inner_; }

  awaitable<result<permit_type>> ready(request_context& ctx) {
    const clock::time_point start = shared_->now();
    auto p = co_await inner_.ready(ctx);
    if (!p) {
      if (shared_->cfg.errors_always || shared_->sampled(ctx)) log_failure(ctx, {}, p.error(), start);
      co_return p.error();
    }
    co_return permit_type{std::move(*p), start};
  }

  template <class Request>
    requires contextual_request<Request>
  awaitable<result<response_type>> call(permit_type p, Request& req) {
    result<response_type> r = co_await inner_.call(std::move(p.inner), req);
    record(req, r, p.start);
    co_return r;
  }

  template <class Request>
    requires immediate_service<S, Request> && contextual_request<Request>
  std::optional<result<response_type>> try_call_now(Request& req) {
    const clock::time_point start = shared_->now();
    std::optional<result<response_type>> r = inner_.try_call_now(req);
    if (r) record(req, *r, start);
    return r;
  }

 private:
  template <class Request>
  void record(Request& req, const result<response_type>& r, clock::time_point start) {
    request_context& ctx = req.context();
    if (!r) {
      if (shared_->cfg.errors_always || shared_->sampled(ctx)) log_failure(ctx, request_name_of(req), r.error(), start);
      return;
    }
    std::string_view code;
    if constexpr (requires(const response_type& v) { { v.error_code() } -> std::convertible_to<std::string_view>; }) {
      code = r->error_code();
    }
    const bool is_error = !code.empty();
    if (!(is_error && shared_->cfg.errors_always) && !shared_->sampled(ctx)) return;
    shared_->log(ctx, request_name_of(req), is_error ? "error" : "ok", code, start);
  }

  void log_failure(request_context& ctx, std::string_view command, const error_code& ec, clock::time_point start) {
    const errc c = classify(ec, shared_->clk->now() >= ctx.deadline).value_or(errc::internal);
    shared_->log(ctx, command, "failed", to_string(c), start);
  }

  S inner_;
  std::shared_ptr<detail::access_log_shared> shared_;
};

class access_log_layer {
 public:
  /// `ctx`: clock, metrics, pipeline name and runtime (a runtime: wrap() starts the writer thread). `sink`: where
  /// lines go (default: make_access_log_sink(cfg.path)). `wall_clock`: the `time` field's source (default
  /// system_clock::now). `seed`: the sampling salt (default random).
  explicit access_log_layer(access_log_config cfg, const layer_context& ctx = {},
                            std::shared_ptr<access_log_sink> sink = nullptr,
                            std::function<std::chrono::system_clock::time_point()> wall_clock = {},
                            std::optional<std::uint64_t> seed = {});

  template <class S>
  access_log_service<S> wrap(S inner) const {
    if (background_) shared_->start_writer();
    return access_log_service<S>(std::move(inner), shared_);
  }

  /// The layer of the configuration entry `entry` as the factory builds it: parsed (throws config_error), its
  /// queue, writer and file taken from ctx.shared_state (carried over a reload while the entry is unchanged).
  static access_log_layer from_entry(const config_node& entry, const layer_context& ctx);

  const access_log_config& config() const noexcept { return shared_->cfg; }
  /// Starts the writer thread now (a static pipeline outside turretd).
  void start_writer() const { shared_->start_writer(); }
  /// Writes what is queued, on the calling thread.
  void flush() const { shared_->flush(); }
  std::uint64_t dropped() const noexcept { return shared_->dropped(); }

 private:
  access_log_layer(std::shared_ptr<detail::access_log_shared> shared, bool background)
      : shared_(std::move(shared)), background_(background) {}
  static std::shared_ptr<detail::access_log_shared> make_shared_state(
      access_log_config cfg, const layer_context& ctx, std::shared_ptr<access_log_sink> sink,
      std::function<std::chrono::system_clock::time_point()> wall_clock, std::optional<std::uint64_t> seed);

  std::shared_ptr<detail::access_log_shared> shared_;
  bool background_ = false;
};

}  // namespace turret
