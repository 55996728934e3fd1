// The unary calls of the gRPC front end: the inline driver (grpc's thread, the pipeline's synchronous fast path:
// ops::run_now) and the asynchronous one (unary_call, on the runtime: ops::run), over the RPCs of grpc_unary_ops.hpp.
#include <services/grpc/grpc_unary.hpp>
#include <services/grpc/grpc_status.hpp>
#include <services/grpc/grpc_unary_ops.hpp>

#include <optional>

namespace turret::grpc_frontend {

namespace asio = boost::asio;
using namespace unary_ops;

namespace {

/// The status a finished operation ends its call with: the pipeline's error, the outcome's, or OK with the output
/// encoded into `rs`.
template <class Rpc>
grpc::Status finish_status(listener_shared& sh, grpc::CallbackServerContext* c, request_context& ctx,
                           const result<ops::status>& r, typename Rpc::op::output& o, typename Rpc::response& rs) {
  if (!r) return pipeline_status(sh, c, ctx, r.error(), ops::op_names[static_cast<std::size_t>(Rpc::op::id)]);
  if (!r->ok()) [[unlikely]] return to_status(*r);
  Rpc::encode(o, rs);
  return grpc::Status();
}

/// A unary call continued on the runtime (readiness + call, with the client's cancellation and deadline bound to the
/// request's context) from step `first_step` on.
template <class Rpc>
class unary_call final : public call_base, public grpc::ServerUnaryReactor {
 public:
  using request_type = typename Rpc::request;
  using response_type = typename Rpc::response;

  /// `rq`: the decoded request (the call owns it). `first_step`: the step to start from (the inline driver ran the
  /// ones before it). `echoed`: the inline driver ran first (and put the request id into the initial metadata).
  unary_call(std::shared_ptr<listener_shared> sh, grpc::CallbackServerContext* sctx, request_type&& rq,
             response_type* rs, int first_step, steady::time_point start, bool echoed,
             kv::pipeline_handle_type::snapshot pipeline)
      : call_base(std::move(sh), sctx, Rpc::id, start, echoed, std::move(pipeline)),
        rq_(std::move(rq)),
        rs_(rs),
        step_(first_step) {
    Rpc::decode(rq_, in_);  // views into rq_ (the handler decoded the same message: it cannot fail now)
  }

  void start() noexcept {
    spawn([this] { return run(); });
  }

  void OnCancel() noexcept override { cancel_in_pipeline(); }
  void OnDone() noexcept override { done(); }
  void force_finish(grpc::Status s) noexcept override {
    if (claim_finish(s)) Finish(std::move(s));
  }

 private:
  asio::awaitable<void> run() {
    typename Rpc::op::output out;
    const result<ops::status> r = co_await ops::run<typename Rpc::op>(target(), in_, out, step_);
    grpc::Status st = finish_status<Rpc>(shared(), sctx_, ctx_, r, out, local_);
    if (!claim_finish(st)) co_return;
    if (st.ok()) rs_->Swap(&local_);
    Finish(std::move(st));
  }

  request_type rq_;
  typename Rpc::op::input in_;
  response_type* rs_;
  response_type local_;
  int step_;
};

/// The per-thread request state of inline unary calls.
struct inline_call_state {
  request_context ctx;
  kv::session sess;
  /// Back to a fresh call's state. The commands of the unary operations (GET, SET, DEL, INCR, EXPIRE...) change no
  /// session state but the bookkeeping reset here.
  void reset() noexcept {
    ctx.reset_for_next_request();
    ctx.identity.clear();  // set by an auth layer for its call only
    sess.last_command = "NULL";
    sess.commands_processed = 0;
  }
};

/// Ends an inline unary call (or one refused at once) with `s`: records its metrics, finishes grpc's default
/// reactor. Nothing here throws, so a caller may use it from a catch block of the code that could not finish.
grpc::ServerUnaryReactor* finish_inline(grpc::CallbackServerContext* c, rpc r, steady::time_point start,
                                        grpc::Status&& s) noexcept {
  record_call(r, s.error_code(), start);
  auto* reactor = c->DefaultReactor();
  reactor->Finish(std::move(s));
  return reactor;
}

/// The asynchronous driver from step `step` on (out of line: the inline path is the hot one).
template <class Rpc>
[[gnu::noinline]] grpc::ServerUnaryReactor* continue_async(const std::shared_ptr<listener_shared>& sh,
                                                           grpc::CallbackServerContext* c,
                                                           typename Rpc::request&& rq, typename Rpc::response* rs,
                                                           int step, steady::time_point start,
                                                           kv::pipeline_handle_type::snapshot pipe) {
  const bool inline_ran = pipe->supports_immediate();  // then its init_call echoed the request id
  auto* call = new unary_call<Rpc>(sh, c, std::move(rq), rs, step, start, inline_ran, std::move(pipe));
  call->start();  // never throws: a failure to start finishes the call
  return call;
}

/// A unary call. Inline driver: when the pipeline has the synchronous fast path (every layer implements
/// try_call_now, see immediate_service in turret/service.hpp), the operation's commands run right here on grpc's
/// thread (ops::run_now) and the call finishes before the handler returns: no call object, no hop to the runtime
/// and back, no coroutine. This keeps the front end's contract (never block grpc's threads): try_call_now never
/// waits; the core holds the store mutex for a few hundred nanoseconds, like any short lock. When a layer would have
/// to suspend (try_call_now declines, without side effect: a concurrency limit with no free slot, a layer without
/// fast path) the call continues from that step on the runtime (unary_call). Inline calls are not listed in
/// connections() and need no cancellation: nothing of theirs outlives the handler except grpc's own finishing of
/// the call. Whatever is thrown before the call is finished or handed over finishes it with exception_status().
template <class Rpc>
grpc::ServerUnaryReactor* serve_unary(const std::shared_ptr<listener_shared>& sh, grpc::CallbackServerContext* c,
                                      const grpc::ByteBuffer* raw, typename Rpc::response* rs) noexcept {
  const auto start = steady::now();
  try {
    if (sh->draining.load(std::memory_order_acquire)) [[unlikely]]
      return finish_inline(c, Rpc::id, start, grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"));
    typename Rpc::request rq;
    if (grpc::Status st = parse_request(raw, rq); !st.ok()) [[unlikely]]
      return finish_inline(c, Rpc::id, start, std::move(st));
    typename Rpc::op::input in;
    if (grpc::Status st = Rpc::decode(rq, in); !st.ok()) [[unlikely]]
      return finish_inline(c, Rpc::id, start, std::move(st));
    int step = 0;
    kv::pipeline_handle_type::snapshot pipe = sh->pipeline.load();  // the call finishes on this pipeline
    if (pipe->supports_immediate()) {
      // The context and session are this thread's, reset per call: nothing of an inline call outlives the
      // handler, and building and destroying a session (strings, sets, vectors) per call showed in profiles.
      thread_local inline_call_state state;
      state.reset();
      init_call(c, state.ctx, state.sess);
      const ops::target t{*pipe, sh->backend->commands(), &command_meter, state.ctx, state.sess};
      typename Rpc::op::output out;
      if (auto r = ops::run_now<typename Rpc::op>(t, in, step, out))
        return finish_inline(c, Rpc::id, start, finish_status<Rpc>(*sh, c, state.ctx, *r, out, *rs));
      // would suspend at `step`: continue from there on the runtime
    }
    return continue_async<Rpc>(sh, c, std::move(rq), rs, step, start, std::move(pipe));
  } catch (...) {
    return finish_inline(c, Rpc::id, start,
                         exception_status(rpc_names[static_cast<std::size_t>(Rpc::id)], std::current_exception()));
  }
}

template <class Rpc>
std::unique_ptr<grpc::internal::MethodHandler> handler_for(std::shared_ptr<listener_shared> sh) {
  using handler = grpc::internal::CallbackUnaryHandler<grpc::ByteBuffer, typename Rpc::response>;
  return std::make_unique<handler>(
      [sh = std::move(sh)](grpc::CallbackServerContext* c, const grpc::ByteBuffer* rq, typename Rpc::response* rs) {
        return serve_unary<Rpc>(sh, c, rq, rs);
      });
}

}  // namespace

std::unique_ptr<grpc::internal::MethodHandler> make_unary_handler(rpc r, std::shared_ptr<listener_shared> sh) {
  switch (r) {
    case rpc::get: return handler_for<get_rpc>(std::move(sh));
    case rpc::set: return handler_for<set_rpc>(std::move(sh));
    case rpc::del: return handler_for<delete_rpc>(std::move(sh));
    case rpc::mget: return handler_for<mget_rpc>(std::move(sh));
    case rpc::mset: return handler_for<mset_rpc>(std::move(sh));
    case rpc::incr: return handler_for<incr_rpc>(std::move(sh));
    case rpc::expire: return handler_for<expire_rpc>(std::move(sh));
    case rpc::ttl: return handler_for<ttl_rpc>(std::move(sh));
    case rpc::persist: return handler_for<persist_rpc>(std::move(sh));
    case rpc::publish: return handler_for<publish_rpc>(std::move(sh));
    case rpc::scan:
    case rpc::subscribe: break;
  }
  return nullptr;
}

}  // namespace turret::grpc_frontend
