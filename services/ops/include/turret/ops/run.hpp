#pragma once
// Running the operations of <turret/ops/operations.hpp> (and single commands) through a front end's pipeline.
//
// Every command goes the one way of <turret/kv/dispatch.hpp>: resolved once against the backend's command table
// (kv::resolve), the resolution on the kv::request (so that every layer sees the command's metadata: keys,
// idempotence, traffic class, and the core skips its own lookup), dispatched (the synchronous fast path, else
// ready() + call()), and counted in the front end's per-command metrics by its table entry.
//
// Two drivers run an operation's steps:
// - run_now(): the synchronous fast path only, for a front end that answers inline (gRPC on grpc's thread, REST's
//   GET). When a step would suspend it stops before that step (nothing of it happened) and says where, and run()
//   continues from there on a coroutine.
// - run(): every step on the caller's coroutine.
// Both return the operation's status, or the pipeline's error (a layer's: timeout, limit, cancellation...), which
// the front end maps with <turret/error_mapping.hpp>.
#include <turret/kv/backend.hpp>
#include <turret/kv/command_table.hpp>
#include <turret/kv/dispatch.hpp>
#include <turret/kv/value_reply_builder.hpp>
#include <turret/ops/operations.hpp>

#include <optional>
#include <span>

namespace turret::ops {

/// Where an operation's commands go: the pipeline (the snapshot the operation finishes on), the backend's command
/// table, the front end's per-command metrics (a function: meters are per thread, and a coroutine's steps need not
/// run on the thread it started on), and the request's context and session. All of it outlives the operation.
struct target {
  kv::pipeline_service& pipeline;
  const kv::command_table& table;
  kv::command_meter& (*meter)();
  request_context& ctx;
  kv::session& sess;
};

/// The reply sink of an operation's command: its first top-level reply, built without value_reply_builder's reply
/// list when it is a scalar (GET's bulk is copied once, into the value, then moved on). Containers, raw RESP and any
/// further top-level replies go to an inner value_reply_builder.
class first_reply_builder final : public kv::reply_builder {
 public:
  explicit first_reply_builder(int protocol) : protocol_(protocol) {}

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
  /// Marks are taken between top-level replies (a command's start): a = the first reply's state, then the inner
  /// builder's completed and open counts.
  checkpoint mark() const noexcept override;
  void rollback(const checkpoint& to) noexcept override;

  /// The first reply (in place, valid while the builder lives); nullptr with `st` set when any top-level reply is
  /// an error (redis_error: the first one) or there is none (unexpected).
  kv::reply_value* first_reply(status& st) {
    if (state_ == first::scalar && !inner_ && !first_.is_error()) [[likely]] return &first_;
    return first_reply_slow(st);
  }

 private:
  using kind = kv::reply_value::kind;
  enum class first : std::uint8_t { none, scalar, inner };

  kv::reply_value* first_reply_slow(status& st);
  /// True when this top-level scalar is the first reply (then stored in first_). While state_ is none nothing went
  /// to inner_, so no container is open.
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
  /// Everything not stored in first_ (built on first use: GET, SET, INCR... never need it).
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

/// One command through the pipeline, resolved first (see the top of this file): the synchronous attempt; nullopt
/// when it would suspend (then nothing happened and nothing is counted).
std::optional<result<kv::response>> exec_now(const target& t, std::span<const std::string_view> args,
                                             kv::reply_builder& out);
/// One command through the pipeline, resolved first: the whole dispatch.
/// (`t` by value: a coroutine's reference parameter would dangle if the caller's target did not outlive it.)
awaitable<result<kv::response>> exec(target t, std::span<const std::string_view> args, kv::reply_builder& out);

/// The final status of step `step` of Op from its result: nullopt = run step + 1.
template <class Op>
std::optional<result<status>> finish_step(const typename Op::input& in, int step, const result<kv::response>& r,
                                          first_reply_builder& b, typename Op::output& out) {
  if (!r) return result<status>(r.error());
  status st;
  kv::reply_value* v = b.first_reply(st);
  if (!v) return result<status>(std::move(st));
  if (auto done = Op::reply(in, step, *v, out)) return result<status>(std::move(*done));
  return std::nullopt;
}

/// Runs Op from step `step` on the synchronous fast path: its status or the pipeline's error; nullopt when a step
/// would suspend, with `step` set to that step (continue with run()). Validates the input at step 0.
template <class Op>
std::optional<result<status>> run_now(const target& t, const typename Op::input& in, int& step,
                                      typename Op::output& out) {
  if (step == 0) {
    if (status s = Op::validate(in); !s.ok()) [[unlikely]]
      return result<status>(std::move(s));
  }
  for (;; ++step) {
    cmd_args a;
    Op::command(in, step, a);
    first_reply_builder b(t.sess.resp);
    auto r = exec_now(t, a.view(), b);
    if (!r) return std::nullopt;
    if (auto done = finish_step<Op>(in, step, *r, b, out)) return done;
  }
}

/// Runs Op from step `first_step` on, on the caller's coroutine. Validates the input at step 0.
/// `in` and `out` must outlive the coroutine (the caller co_awaits it at once).
template <class Op>
awaitable<result<status>> run(target t, const typename Op::input& in, typename Op::output& out, int first_step = 0) {
  if (first_step == 0) {
    if (status s = Op::validate(in); !s.ok()) co_return std::move(s);
  }
  for (int step = first_step;; ++step) {
    cmd_args a;
    Op::command(in, step, a);
    first_reply_builder b(t.sess.resp);
    const result<kv::response> r = co_await exec(t, a.view(), b);
    if (auto done = finish_step<Op>(in, step, r, b, out)) co_return std::move(*done);
  }
}

}  // namespace turret::ops
