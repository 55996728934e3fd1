// The unary calls of the gRPC front end: the inline driver (grpc's thread, the pipeline's synchronous fast path)
// and the asynchronous one (unary_call, on the runtime), over the operations of grpc_unary_ops.hpp.
#include <services/grpc/grpc_unary.hpp>
#include <services/grpc/grpc_status.hpp>
#include <services/grpc/grpc_unary_ops.hpp>

#include <optional>

namespace turret::grpc_frontend {

namespace asio = boost::asio;
using namespace unary_ops;

namespace {

/// The reply builder of the inline unary driver: a command's first top-level reply, built without the reply list
/// of value_reply_builder when it is a scalar (GET's bulk is copied once, into `first_`, then moved into the
/// response). Containers, raw RESP and any further top-level replies go to an inner value_reply_builder.
class unary_reply_builder final : public kv::reply_builder {
 public:
  explicit unary_reply_builder(int protocol) : protocol_(protocol) {}

  void simple(std::string_view s) override { leaf(kind::simple, s, [&] { rest().simple(s); }); }
  void error(std::string_view s) override { leaf(kind::error, s, [&] { rest().error(s); }); }
  void integer(long long v) override {
    if (take_scalar()) {
      first_.type = kind::integer;
      first_.integer = v;
    } else {
      rest().integer(v);
    }
  }
  void bulk(std::string_view s) override { leaf(kind::bulk, s, [&] { rest().bulk(s); }); }
  void null_bulk() override { leaf(kind::null, {}, [&] { rest().null_bulk(); }); }
  void null_array() override { leaf(kind::null, {}, [&] { rest().null_array(); }); }
  void array(std::size_t n) override { nested().array(n); }
  void map(std::size_t n) override { nested().map(n); }
  void set(std::size_t n) override { nested().set(n); }
  void push(std::size_t n) override { nested().push(n); }
  void dbl(double v) override { nested().dbl(v); }
  void boolean(bool v) override { nested().boolean(v); }
  void verbatim(std::string_view s, std::string_view format = "txt") override { nested().verbatim(s, format); }
  void big_number(std::string_view digits) override { nested().big_number(digits); }
  void raw(std::string_view resp_bytes) override { nested().raw(resp_bytes); }
  int protocol() const noexcept override { return protocol_; }
  /// Marks are taken between top-level replies (a command's start): a = state_, then inner's completed and open
  /// counts.
  checkpoint mark() const noexcept override {
    checkpoint c{static_cast<std::size_t>(state_)};
    if (inner_) {
      const auto m = inner_->mark();
      c.b = m.a;
      c.c = m.b;
    }
    return c;
  }
  void rollback(const checkpoint& to) noexcept override {
    state_ = static_cast<first>(to.a);
    if (state_ == first::none) {
      first_.str.clear();
      first_.elements.clear();
      first_.type = kind::null;
    }
    if (inner_) inner_->rollback({to.b, to.c});
  }

  /// The first reply (in place, valid while the builder lives), or nullptr with `st` set to the status
  /// replies_status() gives for all the top-level replies when that is not OK.
  kv::reply_value* first_reply(grpc::Status& st) {
    if (state_ == first::scalar && !inner_ && !first_.is_error()) [[likely]] return &first_;
    return first_reply_slow(st);
  }

 private:
  [[gnu::noinline]] kv::reply_value* first_reply_slow(grpc::Status& st) {
    if (state_ == first::none) {
      st = grpc::Status(grpc::StatusCode::INTERNAL, "no reply");
      return nullptr;
    }
    if (state_ == first::scalar && first_.is_error()) {
      st = grpc::Status(reply_error_code(first_.str), first_.str);
      return nullptr;
    }
    if (inner_) {  // containers, or more than one top-level reply
      auto more = inner_->take();
      if (auto s = replies_status(more); !s.ok() && !more.empty()) {
        st = std::move(s);
        return nullptr;
      }
      if (state_ == first::inner) {
        if (more.empty()) {
          st = grpc::Status(grpc::StatusCode::INTERNAL, "no reply");
          return nullptr;
        }
        first_ = std::move(more.front());
      }
    }
    return &first_;
  }

  using kind = kv::reply_value::kind;
  enum class first : std::uint8_t { none, scalar, inner };

  /// True when this top-level scalar is the first reply (then stored in first_). (While state_ is none nothing went
  /// to inner_, so no container is open.)
  bool take_scalar() noexcept {
    if (state_ != first::none) return false;
    state_ = first::scalar;
    return true;
  }
  template <class F>
  void leaf(kind k, std::string_view s, F forward) {
    if (take_scalar()) {
      first_.type = k;
      first_.str = std::string(s.data(), s.size());  // construct + move: leaner code than assign()
    } else {
      forward();
    }
  }
  /// Everything that is not stored in first_ (built on first use: GET, SET, INCR... never need it).
  kv::value_reply_builder& rest() {
    if (!inner_) inner_.emplace(protocol_);
    return *inner_;
  }
  /// A container or RESP3 type: when it is the first reply, it becomes inner's first.
  kv::value_reply_builder& nested() {
    if (state_ == first::none) state_ = first::inner;
    return rest();
  }

  int protocol_;
  std::optional<kv::value_reply_builder> inner_;
  kv::reply_value first_;
  first state_ = first::none;
};

/// A unary call continued on the runtime (readiness + call, with the client's cancellation and deadline bound to the
/// request's context) from step `first_step` on.
template <class Op>
class unary_call final : public call_base, public grpc::ServerUnaryReactor {
 public:
  using request_type = typename Op::request;
  using response_type = typename Op::response;

  /// `rq`: the decoded request (the call owns it). `first_step`: the step to start from (the inline driver ran the
  /// ones before it). `echoed`: the inline driver ran first (and put the request id into the initial metadata).
  unary_call(std::shared_ptr<listener_shared> sh, grpc::CallbackServerContext* sctx, request_type&& rq,
             response_type* rs, int first_step, steady::time_point start, bool echoed,
             kv::pipeline_handle_type::snapshot pipeline)
      : call_base(std::move(sh), sctx, Op::id, start, echoed, std::move(pipeline)),
        rq_(std::move(rq)),
        rs_(rs),
        step_(first_step) {}

  void start() noexcept {
    spawn([this] { return run(); });
  }

  void OnCancel() noexcept override { cancel_in_pipeline(); }
  void OnDone() noexcept override { done(); }
  void force_finish(grpc::Status s) noexcept override {
    if (claim_finish(s)) Finish(std::move(s));
  }

 private:
  asio::awaitable<grpc::Status> steps() {
    for (;; ++step_) {
      cmd_args a;
      grpc::Status st = Op::command(rq_, step_, a);
      if (!st.ok()) co_return st;
      kv::reply_value v;
      st = co_await exec1(a.view(), v);
      if (!st.ok()) co_return st;
      if (auto done = Op::reply(rq_, step_, v, local_)) co_return std::move(*done);
    }
  }

  asio::awaitable<void> run() {
    grpc::Status st = co_await steps();
    if (!claim_finish(st)) co_return;
    if (st.ok()) rs_->Swap(&local_);
    Finish(std::move(st));
  }

  request_type rq_;
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
template <class Op>
[[gnu::noinline]] grpc::ServerUnaryReactor* continue_async(const std::shared_ptr<listener_shared>& sh,
                                                           grpc::CallbackServerContext* c,
                                                           typename Op::request&& rq, typename Op::response* rs,
                                                           int step, steady::time_point start,
                                                           kv::pipeline_handle_type::snapshot pipe) {
  const bool inline_ran = pipe->supports_immediate();  // then its init_call echoed the request id
  auto* call = new unary_call<Op>(sh, c, std::move(rq), rs, step, start, inline_ran, std::move(pipe));
  call->start();  // never throws: a failure to start finishes the call
  return call;
}

/// A unary call. Inline driver: when the pipeline has the synchronous fast path (every layer implements
/// try_call_now, see immediate_service in turret/service.hpp), the call's commands run right here on grpc's
/// thread and the call finishes before the handler returns: no call object, no hop to the runtime and back, no
/// coroutine. This keeps the front end's contract (never block grpc's threads): try_call_now never waits; the core
/// holds the store mutex for a few hundred nanoseconds, like any short lock. When a layer would have to suspend
/// (try_call_now declines, without side effect: a concurrency limit with no free slot, a layer without fast path)
/// the call continues from that step on the runtime (unary_call). Inline calls are not listed in connections() and
/// need no cancellation: nothing of theirs outlives the handler except grpc's own finishing of the call.
/// Whatever is thrown before the call is finished or handed over finishes it with exception_status().
template <class Op>
grpc::ServerUnaryReactor* serve_unary(const std::shared_ptr<listener_shared>& sh, grpc::CallbackServerContext* c,
                                      const grpc::ByteBuffer* raw, typename Op::response* rs) noexcept {
  const auto start = steady::now();
  try {
    if (sh->draining.load(std::memory_order_acquire)) [[unlikely]]
      return finish_inline(c, Op::id, start, grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"));
    typename Op::request rq;
    if (grpc::Status st = parse_request(raw, rq); !st.ok()) [[unlikely]]
      return finish_inline(c, Op::id, start, std::move(st));
    int step = 0;
    kv::pipeline_handle_type::snapshot pipe = sh->pipeline.load();  // the call finishes on this pipeline
    if (pipe->supports_immediate()) {
      // The context and session are this thread's, reset per call: nothing of an inline call outlives the
      // handler, and building and destroying a session (strings, sets, vectors) per call showed in profiles.
      thread_local inline_call_state state;
      request_context& ctx = state.ctx;
      kv::session& sess = state.sess;
      state.reset();
      init_call(c, ctx, sess);
      for (;; ++step) {
        cmd_args a;
        grpc::Status st = Op::command(rq, step, a);
        if (!st.ok()) return finish_inline(c, Op::id, start, std::move(st));
        unary_reply_builder builder(sess.resp);
        kv::request req{ctx, sess, a.view(), builder};
        const auto t0 = steady::now();
        auto now = kv::dispatch_now(*pipe, req);
        if (!now) break;  // would suspend: continue from this step on the runtime
        command_meter().record(sh->backend->commands().find(a.v[0]), *now, t0, steady::now());
        if (!*now) return finish_inline(c, Op::id, start, pipeline_status(*sh, c, ctx, now->error(), a.v[0]));
        kv::reply_value* v = builder.first_reply(st);
        if (!v) return finish_inline(c, Op::id, start, std::move(st));
        if (auto done = Op::reply(rq, step, *v, *rs)) return finish_inline(c, Op::id, start, std::move(*done));
      }
    }
    return continue_async<Op>(sh, c, std::move(rq), rs, step, start, std::move(pipe));
  } catch (...) {
    return finish_inline(c, Op::id, start,
                         exception_status(rpc_names[static_cast<std::size_t>(Op::id)], std::current_exception()));
  }
}

template <class Op>
std::unique_ptr<grpc::internal::MethodHandler> handler_for(std::shared_ptr<listener_shared> sh) {
  using handler = grpc::internal::CallbackUnaryHandler<grpc::ByteBuffer, typename Op::response>;
  return std::make_unique<handler>(
      [sh = std::move(sh)](grpc::CallbackServerContext* c, const grpc::ByteBuffer* rq, typename Op::response* rs) {
        return serve_unary<Op>(sh, c, rq, rs);
      });
}

}  // namespace

std::unique_ptr<grpc::internal::MethodHandler> make_unary_handler(rpc r, std::shared_ptr<listener_shared> sh) {
  switch (r) {
    case rpc::get: return handler_for<get_op>(std::move(sh));
    case rpc::set: return handler_for<set_op>(std::move(sh));
    case rpc::del: return handler_for<delete_op>(std::move(sh));
    case rpc::mget: return handler_for<mget_op>(std::move(sh));
    case rpc::mset: return handler_for<mset_op>(std::move(sh));
    case rpc::incr: return handler_for<incr_op>(std::move(sh));
    case rpc::expire: return handler_for<expire_op>(std::move(sh));
    case rpc::ttl: return handler_for<ttl_op>(std::move(sh));
    case rpc::persist: return handler_for<persist_op>(std::move(sh));
    case rpc::publish: return handler_for<publish_op>(std::move(sh));
    case rpc::scan:
    case rpc::subscribe: break;
  }
  return nullptr;
}

}  // namespace turret::grpc_frontend
