#pragma once
// What every gRPC call of the front end shares (see grpc_listener.hpp for the design): the listener's state seen by
// its calls, a call's context and session, running one command through the pipeline, the request metrics, turning
// an exception into the call's status, and decoding a request. Used by the unary calls (grpc_unary.hpp), the
// streaming calls (grpc_streams.hpp) and the listener; includes nothing of theirs.
#include <services/grpc/grpc_options.hpp>
#include <turret/kv/backend.hpp>
#include <turret/kv/dispatch.hpp>
#include <turret/kv/value_reply_builder.hpp>
#include <turret/kv/frontend.hpp>
#include <turret/ops/run.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <grpcpp/grpcpp.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace google::protobuf {
class MessageLite;
}

namespace turret::grpc_frontend {

/// The RPCs of turret.kv.v1.KV (the `command` label of the front end's request metrics). rpc_names are the methods'
/// names in kv.proto, which is how the service finds each method's index.
enum class rpc : std::uint8_t { get, set, del, mget, mset, incr, expire, ttl, persist, publish, scan, subscribe };
inline constexpr std::array<std::string_view, 12> rpc_names{"Get",    "Set", "Delete",  "MGet",    "MSet", "Incr",
                                                            "Expire", "Ttl", "Persist", "Publish", "Scan", "Subscribe"};

using steady = std::chrono::steady_clock;

/// Records a finished call: turret_requests_total{frontend="grpc",command=<RPC>,status=<code name>} and
/// turret_request_duration_seconds{frontend="grpc",command=<RPC>} (from the handler's start to Finish; a stream's
/// whole life). Never throws (the metrics are best effort: a call must finish even when they cannot be recorded).
void record_call(rpc r, grpc::StatusCode code, steady::time_point start) noexcept;

/// "127.0.0.1:5000", "[::1]:5000".
std::string endpoint_string(const boost::asio::ip::tcp::endpoint& ep);

inline std::string_view sv(const std::string& s) noexcept { return {s.data(), s.size()}; }

inline grpc::Status invalid(std::string msg) { return {grpc::StatusCode::INVALID_ARGUMENT, std::move(msg)}; }

/// Decodes a call's request (the raw bytes grpc received) into `msg`. INVALID_ARGUMENT when the bytes are not a
/// valid encoding of the message (grpc++'s own decoding, before any handler runs, would answer UNIMPLEMENTED).
grpc::Status parse_request(const grpc::ByteBuffer* raw, google::protobuf::MessageLite& msg);

/// The status of a call whose serving threw `e` (and logs it, with `what`, the RPC's name):
/// RESOURCE_EXHAUSTED for std::bad_alloc and std::length_error (an allocation too large), INTERNAL for anything
/// else. Never throws: the messages fit std::string's small buffer.
grpc::Status exception_status(std::string_view what, std::exception_ptr e) noexcept;

class call_base;

/// Listener state shared by every call (kept alive by the calls: a call may outlive the listener object when the
/// runtime destroys its pending coroutines after the listener).
struct listener_shared {
  listener_shared(kv::listener_env& env, grpc_options o)
      : name(env.name),
        rt(env.rt),
        shutdown(env.shutdown),
        backend(env.backend),
        pipeline(env.pipeline),
        state(env.state),
        opts(o) {}

  std::string name;
  runtime& rt;
  shutdown_coordinator& shutdown;
  std::shared_ptr<kv::backend> backend;
  kv::pipeline_handle_type pipeline;
  const std::atomic<server::server_state>* state;
  grpc_options opts;
  std::atomic<bool> draining{false};

  // Open calls (for draining and forced close). Intrusive list under `mutex`.
  std::mutex mutex;
  call_base* head = nullptr;
  std::size_t open = 0;

  void add(call_base* c);
  /// Unlinks `c` (idempotent: a call leaves the list at OnDone, or in its destructor when it never reached grpc).
  void remove(call_base* c) noexcept;
  /// Applies f to every open call (each kept alive by a reference meanwhile), outside the lock.
  template <class F>
  void for_each_open(F f);
};

/// Fills a call's context (protocol "grpc", peer (lazily), credentials from `authorization` metadata, request id
/// from `x-request-id` metadata, echoed; the
/// client's deadline) and session from grpc's server context. Used by both unary drivers and the streaming calls.
/// The session stays unauthenticated (gRPC has no AUTH): with a requirepass set, commands fail with NOAUTH, i.e.
/// UNAUTHENTICATED; the core checks the password under the store lock (reading it here would race CONFIG SET).
/// `echo`: add the request id to the response's initial metadata (false when an earlier init_call of the same call,
/// the inline driver's, already did).
void init_call(grpc::CallbackServerContext* sctx, request_context& ctx, kv::session& sess, bool echo = true);

/// The status of a call whose pipeline failed with `ec` (a layer's error: timeout, limit, draining...).
grpc::Status pipeline_status(listener_shared& sh, grpc::CallbackServerContext* sctx, request_context& ctx,
                             const error_code& ec, std::string_view command);

/// Per-command metrics of the gRPC front end (one meter per thread: calls run on grpc's threads and the runtime's).
kv::command_meter& command_meter();

/// The status of a command's top-level replies: the first Redis error reply, else OK (INTERNAL when none).
grpc::Status replies_status(const std::vector<kv::reply_value>& out);

/// Per-call state common to the calls that outlive their handler (unary calls continued on the runtime, Scan,
/// Subscribe): context, session, reference count, the one-time finish claim, membership in the listener's list of
/// open calls.
///
/// Exception safety: whatever a call's coroutine throws, and whatever starting it throws, ends the call through
/// force_finish() with exception_status(); every reactor callback of a derived call is noexcept. So a call is
/// finished exactly once (claim_finish) and always reaches OnDone, which drops grpc's reference.
class call_base {
 public:
  /// `start`: when the handler was called (the request metrics' duration runs from there to finish()).
  /// `echoed`: the request id is already in the response's initial metadata.
  /// `pipeline`: the snapshot the call's commands run on (empty: the listener's current one).
  call_base(std::shared_ptr<listener_shared> sh, grpc::CallbackServerContext* sctx, rpc r,
            steady::time_point start = steady::now(), bool echoed = false,
            kv::pipeline_handle_type::snapshot pipeline = {});
  virtual ~call_base();
  call_base(const call_base&) = delete;
  call_base& operator=(const call_base&) = delete;

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  /// One counted reference, released when the holder is destroyed. Coroutine completion handlers and posted handlers
  /// hold one: a handler the runtime destroys without running it (a runtime stopped with work queued: shutdown, a
  /// test's teardown) still releases its reference, so the call is not leaked.
  class ref {
   public:
    explicit ref(call_base* c) noexcept : c_(c) { c_->add_ref(); }
    ref(ref&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
    ref(const ref&) = delete;
    ref& operator=(const ref&) = delete;
    ref& operator=(ref&&) = delete;
    ~ref() {
      if (c_) c_->release();
    }
    call_base* get() const noexcept { return c_; }

   private:
    call_base* c_;
  };

  /// True once, for the one party allowed to finish the reactor (the call's coroutine, or a forced close), which
  /// must then Finish with `s`: the call's request metrics are recorded with that status here.
  bool claim_finish(const grpc::Status& s) noexcept {
    if (claimed_.exchange(true, std::memory_order_acq_rel)) return false;
    record_call(rpc_, s.error_code(), start_);
    return true;
  }

  /// Ends the call now with `s` unless it already ended (draining, forced close, failure). Thread-safe.
  virtual void force_finish(grpc::Status s) noexcept = 0;

  /// Client cancelled (or its deadline passed): cancel the request inside the pipeline, on the call's thread.
  void cancel_in_pipeline() noexcept;

  rpc kind() const noexcept { return rpc_; }
  std::string_view name() const noexcept { return rpc_names[static_cast<std::size_t>(rpc_)]; }

  // intrusive list of open calls (listener_shared::mutex)
  call_base* prev_ = nullptr;
  call_base* next_ = nullptr;
  bool linked_ = false;

 protected:
  /// Runs `body()` (an awaitable<void>) on the call's executor, holding a reference meanwhile. An exception, thrown
  /// by the coroutine or by starting it, ends the call with exception_status(). Callable before the reactor is
  /// handed to grpc: a Finish before that waits in the reactor's backlog until grpc binds it.
  template <class Body>
  void spawn(Body body) noexcept {
    ref held(this);  // moved into the completion handler; released here if starting fails before that
    try {
      boost::asio::co_spawn(ex_, body(), [r = std::move(held)](std::exception_ptr e) noexcept {
        if (e) r.get()->force_finish(exception_status(r.get()->name(), e));
      });
    } catch (...) {
      force_finish(exception_status(name(), std::current_exception()));
    }
  }

  /// Where the call's commands go (<turret/ops/run.hpp>): its pipeline snapshot, the backend's command table, the
  /// front end's metrics, the call's context and session.
  ops::target target() noexcept { return {*pipeline_, sh_->backend->commands(), &command_meter, ctx_, sess_}; }

  /// Runs one command through the pipeline (resolved, counted). On success the command's top-level replies are in
  /// `out`. Returns a non-OK status for pipeline errors and for a Redis error reply (the first one found).
  boost::asio::awaitable<grpc::Status> exec(std::span<const std::string_view> args, std::vector<kv::reply_value>& out);

  /// Called from OnDone (exactly once): unlink, drop grpc's reference.
  void done() noexcept {
    sh_->remove(this);
    release();
  }

  listener_shared& shared() noexcept { return *sh_; }

  std::shared_ptr<listener_shared> sh_;
  kv::pipeline_handle_type::snapshot pipeline_;  ///< the call finishes on this pipeline
  grpc::CallbackServerContext* sctx_;
  boost::asio::any_io_executor ex_;
  shutdown_coordinator::tracker track_;
  request_context ctx_;
  kv::session sess_;

 private:
  std::atomic<int> refs_{1};  // grpc's (until OnDone); each coroutine and posted handler holds one more
  std::atomic<bool> claimed_{false};
  const rpc rpc_;
  const steady::time_point start_;
};

template <class F>
void listener_shared::for_each_open(F f) {
  std::vector<call_base*> calls;
  {
    std::lock_guard lk(mutex);
    for (call_base* c = head; c; c = c->next_) {
      c->add_ref();
      calls.push_back(c);
    }
  }
  for (call_base* c : calls) {
    f(*c);
    c->release();
  }
}

/// A reactor that finishes at once with `s` and deletes itself (a call refused before it started: draining,
/// undecodable request, failure to start).
template <class Base>
struct finish_only final : Base {
  explicit finish_only(grpc::Status s) { this->Finish(std::move(s)); }
  void OnDone() override { delete this; }
};

/// Ends a streaming call at once with `s` (and records it). nullptr when even that cannot be allocated: grpc++
/// then ends the call itself (UNIMPLEMENTED), which is all that is left to do.
template <class Base>
Base* finished(rpc r, grpc::Status s) noexcept {
  record_call(r, s.error_code(), steady::now());
  try {
    return new finish_only<Base>(std::move(s));
  } catch (...) {
    return nullptr;
  }
}

}  // namespace turret::grpc_frontend
