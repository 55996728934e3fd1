// The gRPC front end (see grpc_listener.hpp for the design). All grpc++ code of turretd lives in this file.
#include <services/grpc/grpc_listener.hpp>
#include <services/grpc/grpc_reflection.hpp>
#include <services/grpc/grpc_status.hpp>
#include <services/kv/store.hpp>
#include <services/kv/value_reply_builder.hpp>

#include <turret/kv/v1/kv.grpc.pb.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/container/small_vector.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>
#include <turret/metrics.hpp>

#include <array>
#include <charconv>
#include <chrono>
#include <deque>
#include <limits>
#include <mutex>
#include <thread>

namespace turret::grpc_frontend {

namespace asio = boost::asio;
namespace pb = ::turret::kv::v1;
using tcp = asio::ip::tcp;
using turretd::server_state;

namespace {

constexpr std::string_view kv_service_name = "turret.kv.v1.KV";

std::string endpoint_string(const tcp::endpoint& ep) {
  if (ep.address().is_v6()) return "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

/// grpc's peer string ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000") as an endpoint; unspecified when not TCP.
tcp::endpoint parse_peer(std::string_view p) {
  std::string_view host;
  if (p.substr(0, 5) == "ipv4:") {
    p.remove_prefix(5);
    const auto colon = p.rfind(':');
    if (colon == std::string_view::npos) return {};
    host = p.substr(0, colon);
    p.remove_prefix(colon + 1);
  } else if (p.substr(0, 5) == "ipv6:") {
    p.remove_prefix(5);
    const auto close = p.find("]:");
    if (p.empty() || p[0] != '[' || close == std::string_view::npos) return {};
    host = p.substr(1, close - 1);
    p.remove_prefix(close + 2);
  } else {
    return {};
  }
  unsigned short port = 0;
  std::from_chars(p.data(), p.data() + p.size(), port);
  // Every call parses its peer: remember the last host per thread (clients mostly share one address; the port
  // differs per connection), which saves make_address's inet_pton calls.
  thread_local std::string last_host;
  thread_local asio::ip::address last_addr;
  if (host.empty() || host != std::string_view(last_host)) {
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(std::string(host), ec);
    if (ec) return {};
    last_host.assign(host);
    last_addr = addr;
  }
  return {last_addr, port};
}

std::string_view sv(const std::string& s) noexcept { return {s.data(), s.size()}; }

/// Escapes Redis glob metacharacters so that `prefix` matches literally.
std::string glob_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 4);
  for (char c : s) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

/// Decimal of an integer into a caller-provided buffer.
struct number {
  char buf[24];
  std::size_t len = 0;
  number() = default;  // empty
  explicit number(long long v) { len = static_cast<std::size_t>(std::to_chars(buf, buf + sizeof buf, v).ptr - buf); }
  explicit number(unsigned long long v) {
    len = static_cast<std::size_t>(std::to_chars(buf, buf + sizeof buf, v).ptr - buf);
  }
  std::string_view view() const noexcept { return {buf, len}; }
};

/// The RPCs of turret.kv.v1.KV (the `command` label of the front end's request metrics).
enum class rpc : std::uint8_t { get, set, del, mget, mset, incr, expire, ttl, persist, publish, scan, subscribe };
constexpr std::array<std::string_view, 12> rpc_names{"Get",  "Set",     "Delete",  "MGet", "MSet", "Incr",
                                                     "Expire", "Ttl", "Persist", "Publish", "Scan", "Subscribe"};
constexpr std::size_t status_code_count = 17;  // OK .. UNAUTHENTICATED

using steady = std::chrono::steady_clock;

/// Records a finished call: turret_requests_total{frontend="grpc",command=<RPC>,status=<code name>} and
/// turret_request_duration_seconds{frontend="grpc",command=<RPC>} (from the handler's start to Finish; a stream's
/// whole life). The series are looked up once per thread (families live as long as the process).
void record_call(rpc r, grpc::StatusCode code, steady::time_point start) {
  struct series_cache {
    std::array<std::array<metrics::counter*, status_code_count>, rpc_names.size()> requests{};
    std::array<metrics::histogram*, rpc_names.size()> duration{};
  };
  thread_local series_cache cache;
  const auto ri = static_cast<std::size_t>(r);
  auto ci = static_cast<std::size_t>(code);
  if (ci >= status_code_count) ci = static_cast<std::size_t>(grpc::StatusCode::UNKNOWN);
  metrics::counter*& requests = cache.requests[ri][ci];
  metrics::histogram*& duration = cache.duration[ri];
  if (!requests || !duration) [[unlikely]] {
    auto& m = metrics::request_metrics::get();
    requests = &m.requests.with({"grpc", rpc_names[ri], status_code_name(static_cast<grpc::StatusCode>(ci))});
    duration = &m.duration.with({"grpc", rpc_names[ri]});
  }
  requests->inc();
  duration->observe(std::chrono::duration<double>(steady::now() - start).count());
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Listener state shared by every call (kept alive by the calls: a call may outlive the listener object when the
// runtime destroys its pending coroutines after the listener).

class call_base;

struct listener_shared {
  listener_shared(turretd::listener_env& env, grpc_options o)
      : name(env.name),
        rt(env.rt),
        shutdown(env.shutdown),
        store(env.store),
        pipeline(env.pipeline),
        state(env.state),
        opts(o) {}

  std::string name;
  runtime& rt;
  shutdown_coordinator& shutdown;
  std::shared_ptr<kv::store> store;
  turretd::kv_pipeline pipeline;
  const std::atomic<server_state>* state;
  grpc_options opts;
  std::atomic<bool> draining{false};

  // Open calls (for draining and forced close). Intrusive list under `mutex`.
  std::mutex mutex;
  call_base* head = nullptr;
  std::size_t open = 0;

  void add(call_base* c);
  void remove(call_base* c);
  /// Applies f to every open call (each kept alive by a reference meanwhile), outside the lock.
  template <class F>
  void for_each_open(F f);
};

// grpc++ 1.51 offers a call's client metadata only as a std::multimap (ServerContextBase::client_metadata()), built
// on first access: a tree node allocated per entry, per call, to look up one key. The array it is built from
// (grpc::internal::MetadataMap::arr(), public) sits in a private member. client_metadata_map() reaches that member
// through an explicit instantiation, where access checking does not apply ([temp.spec.general]/6); if grpc++ renames
// or retypes the member this stops compiling rather than misbehaving.
namespace {
grpc::internal::MetadataMap& client_metadata_map(grpc::ServerContextBase& c) noexcept;
template <grpc::internal::MetadataMap grpc::ServerContextBase::*Member>
struct client_metadata_access {
  friend grpc::internal::MetadataMap& client_metadata_map(grpc::ServerContextBase& c) noexcept { return c.*Member; }
};
template struct client_metadata_access<&grpc::ServerContextBase::client_metadata_>;

/// The value of the client's metadata entry `key` (lower case, as HTTP/2 sends it); empty when absent. Reads the
/// array grpc received, without building client_metadata()'s multimap.
std::string_view find_client_metadata(grpc::ServerContextBase& c, std::string_view key) noexcept {
  const grpc_metadata_array& arr = *client_metadata_map(c).arr();
  for (std::size_t i = 0; i < arr.count; ++i) {
    const grpc_metadata& m = arr.metadata[i];
    const std::string_view k(reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(m.key)), GRPC_SLICE_LENGTH(m.key));
    if (k == key)
      return {reinterpret_cast<const char*>(GRPC_SLICE_START_PTR(m.value)), GRPC_SLICE_LENGTH(m.value)};
  }
  return {};
}
}  // namespace

/// The peer of a call, for request_context::peer() (resolved on first use: grpc++ builds the string per call).
static tcp::endpoint resolve_peer(const void* sctx) {
  return parse_peer(static_cast<const grpc::CallbackServerContext*>(sctx)->peer());
}

/// Fills a call's context (protocol "grpc", peer (lazily), request id from `x-request-id` metadata, echoed; the
/// client's deadline) and session from grpc's server context. Used by both unary drivers and the streaming calls.
/// The session stays unauthenticated (gRPC has no AUTH): with a requirepass set, commands fail with NOAUTH, i.e.
/// UNAUTHENTICATED; the core checks the password under the store lock (reading it here would race CONFIG SET).
/// `echo`: add the request id to the response's initial metadata (false when an earlier init_call of the same call,
/// the inline driver's, already did).
static void init_call(grpc::CallbackServerContext* sctx, request_context& ctx, kv::session& sess, bool echo = true) {
  ctx.protocol = "grpc";
  ctx.set_peer_resolver(&resolve_peer, sctx);
  if (auto id = find_client_metadata(*sctx, "x-request-id"); !id.empty() && id.size() <= 128) {
    ctx.set_request_id(std::string(id));
    if (echo) sctx->AddInitialMetadata("x-request-id", ctx.request_id());
  }
  // No deadline is gpr_inf_future (tv_sec INT64_MAX): checked on the raw value, deadline() converts it first.
  if (sctx->raw_deadline().tv_sec != std::numeric_limits<std::int64_t>::max()) {
    const auto left = sctx->deadline() - std::chrono::system_clock::now();
    ctx.deadline = request_context::clock::now() + std::chrono::duration_cast<request_context::clock::duration>(left);
  }
  sess.protocol_name = "grpc";
  sess.authenticated = false;
}

/// The status of a call whose pipeline failed with `ec` (a layer's error: timeout, limit, draining...).
static grpc::Status pipeline_status(listener_shared& sh, grpc::CallbackServerContext* sctx, request_context& ctx,
                             const error_code& ec, std::string_view command) {
  if (sctx->IsCancelled()) return grpc::Status::CANCELLED;
  const bool late = request_context::clock::now() >= ctx.deadline;
  const auto code = pipeline_error_code(ec, late);
  spdlog::debug("grpc {}: request_id={} {} failed: {}", sh.name, ctx.request_id(), command, ec.message());
  return grpc::Status(code, ec.message());
}

/// The status of a command's top-level replies: the first Redis error reply, else OK (INTERNAL when none).
static grpc::Status replies_status(const std::vector<kv::reply_value>& out) {
  for (const auto& v : out) {
    if (v.is_error()) return grpc::Status(reply_error_code(v.str), v.str);
  }
  if (out.empty()) return grpc::Status(grpc::StatusCode::INTERNAL, "no reply");
  return grpc::Status();
}

/// Per-call state common to every RPC: context, session, reply builder, reference count, the one-time finish claim.
class call_base {
 public:
  /// `start`: when the handler was called (the request metrics' duration runs from there to finish()).
  /// `echoed`: the request id is already in the response's initial metadata.
  call_base(std::shared_ptr<listener_shared> sh, grpc::CallbackServerContext* sctx, rpc r,
            steady::time_point start = steady::now(), bool echoed = false)
      : sh_(std::move(sh)),
        sctx_(sctx),
        ex_(sh_->rt.next_executor()),
        track_(sh_->shutdown.track()),
        rpc_(r),
        start_(start) {
    init_call(sctx, ctx_, sess_, !echoed);
    sh_->add(this);
  }
  virtual ~call_base() = default;
  call_base(const call_base&) = delete;
  call_base& operator=(const call_base&) = delete;

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  /// True once, for the one party allowed to finish the reactor (the call's coroutine, or a forced close), which
  /// must then Finish with `s`: the call's request metrics are recorded with that status here.
  bool claim_finish(const grpc::Status& s) {
    if (claimed_.exchange(true, std::memory_order_acq_rel)) return false;
    record_call(rpc_, s.error_code(), start_);
    return true;
  }

  /// Ends the call now with `s` unless it already ended (draining, forced close). Thread-safe.
  virtual void force_finish(grpc::Status s) = 0;

  /// Client cancelled (or its deadline passed): cancel the request inside the pipeline, on the call's thread.
  void cancel_in_pipeline() {
    add_ref();
    asio::post(ex_, [this] {
      ctx_.cancel();
      release();
    });
  }

  /// Runs one command through the pipeline. On success the command's top-level replies are in `out`.
  /// Returns a non-OK status for pipeline errors and for a Redis error reply (the first one found).
  asio::awaitable<grpc::Status> exec(std::span<const std::string_view> args, std::vector<kv::reply_value>& out) {
    kv::value_reply_builder builder(sess_.resp);
    kv::request req{ctx_, sess_, args, builder};
    error_code ec;
    // Synchronous fast path (no coroutine frames) when every layer allows it; else readiness + call.
    std::optional<result<kv::response>> now;
    if (sh_->pipeline.supports_immediate()) now = sh_->pipeline.try_call_now(req);
    if (now) {
      if (!*now) ec = now->error();
    } else {
      auto permit = co_await sh_->pipeline.ready(ctx_);
      if (!permit) {
        ec = permit.error();
      } else {
        auto r = co_await sh_->pipeline.call(std::move(*permit), req);
        if (!r) ec = r.error();
      }
    }
    if (ec) co_return pipeline_status(*sh_, sctx_, ctx_, ec, args[0]);
    out = builder.take();
    co_return replies_status(out);
  }

  /// As exec() for a single-reply command: the reply in `out`.
  asio::awaitable<grpc::Status> exec1(std::span<const std::string_view> args, kv::reply_value& out) {
    std::vector<kv::reply_value> replies;
    auto st = co_await exec(args, replies);
    if (st.ok()) out = std::move(replies.front());
    co_return st;
  }

  request_context& ctx() noexcept { return ctx_; }
  kv::session& sess() noexcept { return sess_; }
  const asio::any_io_executor& executor() const noexcept { return ex_; }
  listener_shared& shared() noexcept { return *sh_; }
  grpc::CallbackServerContext* server_context() noexcept { return sctx_; }

  // intrusive list of open calls (listener_shared::mutex)
  call_base* prev_ = nullptr;
  call_base* next_ = nullptr;

 protected:
  /// Called from OnDone (exactly once): unlink, drop grpc's reference.
  void done() {
    sh_->remove(this);
    release();
  }

  std::shared_ptr<listener_shared> sh_;
  grpc::CallbackServerContext* sctx_;
  asio::any_io_executor ex_;
  shutdown_coordinator::tracker track_;
  request_context ctx_;
  kv::session sess_;

 private:
  std::atomic<int> refs_{2};  // grpc (until OnDone) + the call's coroutine
  std::atomic<bool> claimed_{false};
  const rpc rpc_;
  const steady::time_point start_;
};

void listener_shared::add(call_base* c) {
  std::lock_guard lk(mutex);
  c->next_ = head;
  if (head) head->prev_ = c;
  head = c;
  ++open;
}

void listener_shared::remove(call_base* c) {
  std::lock_guard lk(mutex);
  if (c->prev_) c->prev_->next_ = c->next_;
  else if (head == c) head = c->next_;
  if (c->next_) c->next_->prev_ = c->prev_;
  c->prev_ = c->next_ = nullptr;
  --open;
}

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

namespace {

void log_exception(std::string_view what, std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    spdlog::error("grpc: {} failed: {}", what, x.what());
  } catch (...) {
    spdlog::error("grpc: {} failed", what);
  }
}

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

// ---------------------------------------------------------------------------------------------------------------
// Unary calls. Each operation is a struct with the message types and two pure, synchronous functions:
//   static grpc::Status command(const Request&, int step, cmd_args&)
//       builds the command of step `step` (0, 1, ...); a non-OK status ends the call at once (invalid argument);
//   static std::optional<grpc::Status> reply(const Request&, int step, kv::reply_value&, Response&)
//       interprets that command's (non-error) reply: the call's final status, or nullopt = run step + 1.
//       It writes the response only together with a final status.
// Both drivers below use them: the inline one (kv_service_impl::unary, grpc's thread, pipeline's try_call_now) and
// the asynchronous one (unary_call, on the runtime, readiness + call), which can take over at any step because
// try_call_now has no side effect when it declines.

/// The arguments of one command: string views into the request message, the literals, and `num` (decimal).
struct cmd_args {
  boost::container::small_vector<std::string_view, 8> v;
  number num;
  void push(std::string_view s) { v.push_back(s); }
  std::span<const std::string_view> view() const noexcept { return {v.data(), v.size()}; }
};

template <class Op>
class unary_call final : public call_base, public grpc::ServerUnaryReactor {
 public:
  using request_type = typename Op::request;
  using response_type = typename Op::response;

  /// `first_step`: the step to start from (the inline driver ran the ones before it).
  /// `echoed`: the inline driver ran first (and put the request id into the initial metadata).
  unary_call(std::shared_ptr<listener_shared> sh, grpc::CallbackServerContext* sctx, const request_type* rq,
             response_type* rs, int first_step, steady::time_point start, bool echoed)
      : call_base(std::move(sh), sctx, Op::id, start, echoed), rq_(rq), rs_(rs), step_(first_step) {}

  void start() {
    asio::co_spawn(ex_, run(), [this](std::exception_ptr e) {
      if (e) {
        log_exception(rpc_names[static_cast<std::size_t>(Op::id)], e);
        finish(grpc::Status(grpc::StatusCode::INTERNAL, "internal error"));
      }
      release();
    });
  }

  void OnCancel() override { cancel_in_pipeline(); }
  void OnDone() override { done(); }
  void force_finish(grpc::Status s) override { finish(std::move(s)); }

 private:
  asio::awaitable<grpc::Status> steps() {
    for (;; ++step_) {
      cmd_args a;
      grpc::Status st = Op::command(*rq_, step_, a);
      if (!st.ok()) co_return st;
      kv::reply_value v;
      st = co_await exec1(a.view(), v);
      if (!st.ok()) co_return st;
      if (auto done = Op::reply(*rq_, step_, v, local_)) co_return std::move(*done);
    }
  }

  asio::awaitable<void> run() {
    grpc::Status st = co_await steps();
    if (!claim_finish(st)) co_return;
    if (st.ok()) rs_->Swap(&local_);
    Finish(std::move(st));
  }

  void finish(grpc::Status s) {
    if (claim_finish(s)) Finish(std::move(s));
  }

  const request_type* rq_;
  response_type* rs_;
  response_type local_;
  int step_;
};

grpc::Status invalid(std::string msg) { return {grpc::StatusCode::INVALID_ARGUMENT, std::move(msg)}; }
grpc::Status not_found() { return {grpc::StatusCode::NOT_FOUND, "key not found"}; }
grpc::Status unexpected(const kv::reply_value&) { return {grpc::StatusCode::INTERNAL, "unexpected reply"}; }
using final_status = std::optional<grpc::Status>;

struct get_op {
  using request = pb::GetRequest;
  using response = pb::GetResponse;
  static constexpr rpc id = rpc::get;
  static grpc::Status command(const request& rq, int, cmd_args& a) {
    a.push("GET");
    a.push(sv(rq.key()));
    return grpc::Status();
  }
  static final_status reply(const request&, int, kv::reply_value& v, response& rs) {
    if (v.is_null()) return not_found();
    if (v.type != kv::reply_value::kind::bulk) return unexpected(v);
    rs.set_value(std::move(v.str));
    return grpc::Status();
  }
};

struct set_op {
  using request = pb::SetRequest;
  using response = pb::SetResponse;
  static constexpr rpc id = rpc::set;
  static grpc::Status command(const request& rq, int, cmd_args& a) {
    if (rq.ttl_ms() < 0) return invalid("ttl_ms must not be negative");
    if (rq.keep_ttl() && rq.ttl_ms() != 0) return invalid("keep_ttl and ttl_ms are mutually exclusive");
    a.push("SET");
    a.push(sv(rq.key()));
    a.push(sv(rq.value()));
    if (rq.ttl_ms() > 0) {
      a.num = number(static_cast<long long>(rq.ttl_ms()));
      a.push("PX");
      a.push(a.num.view());
    }
    if (rq.keep_ttl()) a.push("KEEPTTL");
    switch (rq.condition()) {
      case pb::CONDITION_IF_NOT_EXISTS: a.push("NX"); break;
      case pb::CONDITION_IF_EXISTS: a.push("XX"); break;
      case pb::CONDITION_UNSPECIFIED: break;
      default: return invalid("unknown condition");
    }
    if (rq.return_previous()) a.push("GET");
    return grpc::Status();
  }
  static final_status reply(const request& rq, int, kv::reply_value& v, response& rs) {
    if (!rq.return_previous()) {
      if (v.is_null()) return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "condition not met");
      return grpc::Status();
    }
    // SET ... GET: the reply is the old value either way; the condition failed when NX found a value or XX none.
    const bool had = !v.is_null();
    if ((rq.condition() == pb::CONDITION_IF_NOT_EXISTS && had) || (rq.condition() == pb::CONDITION_IF_EXISTS && !had))
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "condition not met");
    rs.set_had_previous(had);
    if (had) *rs.mutable_previous() = std::move(v.str);
    return grpc::Status();
  }
};

struct delete_op {
  using request = pb::DeleteRequest;
  using response = pb::DeleteResponse;
  static constexpr rpc id = rpc::del;
  static grpc::Status command(const request& rq, int, cmd_args& a) {
    if (rq.keys_size() == 0) return invalid("keys must not be empty");
    a.v.reserve(static_cast<std::size_t>(rq.keys_size()) + 1);
    a.push("DEL");
    for (const auto& k : rq.keys()) a.push(sv(k));
    return grpc::Status();
  }
  static final_status reply(const request&, int, kv::reply_value& v, response& rs) {
    rs.set_deleted(v.integer);
    return grpc::Status();
  }
};

struct mget_op {
  using request = pb::MGetRequest;
  using response = pb::MGetResponse;
  static constexpr rpc id = rpc::mget;
  static grpc::Status command(const request& rq, int, cmd_args& a) {
    if (rq.keys_size() == 0) return invalid("keys must not be empty");
    a.v.reserve(static_cast<std::size_t>(rq.keys_size()) + 1);
    a.push("MGET");
    for (const auto& k : rq.keys()) a.push(sv(k));
    return grpc::Status();
  }
  static final_status reply(const request&, int, kv::reply_value& v, response& rs) {
    rs.mutable_values()->Reserve(static_cast<int>(v.elements.size()));
    for (auto& e : v.elements) {
      auto* o = rs.add_values();
      if (e.type == kv::reply_value::kind::bulk) {
        o->set_found(true);
        *o->mutable_value() = std::move(e.str);
      }
    }
    return grpc::Status();
  }
};

struct mset_op {
  using request = pb::MSetRequest;
  using response = pb::MSetResponse;
  static constexpr rpc id = rpc::mset;
  static grpc::Status command(const request& rq, int, cmd_args& a) {
    if (rq.entries_size() == 0) return invalid("entries must not be empty");
    a.v.reserve(static_cast<std::size_t>(rq.entries_size()) * 2 + 1);
    a.push(rq.if_none_exist() ? "MSETNX" : "MSET");
    for (const auto& e : rq.entries()) {
      a.push(sv(e.key()));
      a.push(sv(e.value()));
    }
    return grpc::Status();
  }
  static final_status reply(const request& rq, int, kv::reply_value& v, response&) {
    if (rq.if_none_exist() && v.integer == 0)
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "a key already exists");
    return grpc::Status();
  }
};

struct incr_op {
  using request = pb::IncrRequest;
  using response = pb::IncrResponse;
  static constexpr rpc id = rpc::incr;
  static grpc::Status command(const request& rq, int, cmd_args& a) {
    a.num = number(static_cast<long long>(rq.delta()));
    a.push("INCRBY");
    a.push(sv(rq.key()));
    a.push(a.num.view());
    return grpc::Status();
  }
  static final_status reply(const request&, int, kv::reply_value& v, response& rs) {
    rs.set_value(v.integer);
    return grpc::Status();
  }
};

struct expire_op {
  using request = pb::ExpireRequest;
  using response = pb::ExpireResponse;
  static constexpr rpc id = rpc::expire;
  static grpc::Status command(const request& rq, int, cmd_args& a) {
    a.num = number(static_cast<long long>(rq.ttl_ms()));
    a.push("PEXPIRE");
    a.push(sv(rq.key()));
    a.push(a.num.view());
    switch (rq.condition()) {
      case pb::EXPIRE_CONDITION_UNSPECIFIED: break;
      case pb::EXPIRE_CONDITION_IF_NO_TTL: a.push("NX"); break;
      case pb::EXPIRE_CONDITION_IF_HAS_TTL: a.push("XX"); break;
      case pb::EXPIRE_CONDITION_IF_GREATER: a.push("GT"); break;
      case pb::EXPIRE_CONDITION_IF_LESS: a.push("LT"); break;
      default: return invalid("unknown condition");
    }
    return grpc::Status();
  }
  static final_status reply(const request& rq, int, kv::reply_value& v, response& rs) {
    if (v.integer == 0 && rq.condition() == pb::EXPIRE_CONDITION_UNSPECIFIED) return not_found();
    rs.set_applied(v.integer != 0);
    return grpc::Status();
  }
};

struct ttl_op {
  using request = pb::TtlRequest;
  using response = pb::TtlResponse;
  static constexpr rpc id = rpc::ttl;
  static grpc::Status command(const request& rq, int, cmd_args& a) {
    a.push("PTTL");
    a.push(sv(rq.key()));
    return grpc::Status();
  }
  static final_status reply(const request&, int, kv::reply_value& v, response& rs) {
    if (v.integer == -2) return not_found();
    rs.set_ttl_ms(v.integer);
    return grpc::Status();
  }
};

/// PERSIST, then (when it removed nothing) PTTL to tell "missing" (-2) from "no TTL".
struct persist_op {
  using request = pb::PersistRequest;
  using response = pb::PersistResponse;
  static constexpr rpc id = rpc::persist;
  static grpc::Status command(const request& rq, int step, cmd_args& a) {
    a.push(step == 0 ? "PERSIST" : "PTTL");
    a.push(sv(rq.key()));
    return grpc::Status();
  }
  static final_status reply(const request&, int step, kv::reply_value& v, response& rs) {
    if (step == 0) {
      if (v.integer == 0) return std::nullopt;  // no TTL removed: missing or persistent?
      rs.set_removed(true);
      return grpc::Status();
    }
    if (v.integer == -2) return not_found();
    rs.set_removed(false);
    return grpc::Status();
  }
};

struct publish_op {
  using request = pb::PublishRequest;
  using response = pb::PublishResponse;
  static constexpr rpc id = rpc::publish;
  static grpc::Status command(const request& rq, int, cmd_args& a) {
    a.push("PUBLISH");
    a.push(sv(rq.channel()));
    a.push(sv(rq.message()));
    return grpc::Status();
  }
  static final_status reply(const request&, int, kv::reply_value& v, response& rs) {
    rs.set_receivers(v.integer);
    return grpc::Status();
  }
};

// ---------------------------------------------------------------------------------------------------------------
// Scan: one SCAN per batch on the runtime; one write in flight; the next batch starts from OnWriteDone.

class scan_call final : public call_base, public grpc::ServerWriteReactor<pb::ScanResponse> {
 public:
  scan_call(std::shared_ptr<listener_shared> sh, grpc::CallbackServerContext* sctx, const pb::ScanRequest* rq)
      : call_base(std::move(sh), sctx, rpc::scan), rq_(*rq) {
    cursor_ = rq_.cursor();
    if (!rq_.match().empty()) {
      pattern_ = rq_.match();
      filter_prefix_ = !rq_.prefix().empty();
    } else if (!rq_.prefix().empty()) {
      pattern_ = glob_escape(rq_.prefix()) + "*";
    }
    batch_ = rq_.batch_size() ? rq_.batch_size() : shared().opts.scan_batch;
  }

  /// Every step holds its own reference (spawn_step), so the call's initial coroutine reference is dropped here
  /// once the first step is running (it used to be kept forever: the reactor leaked, found by LeakSanitizer).
  void start() {
    spawn_step();
    release();
  }

  void OnWriteDone(bool ok) override {
    if (!ok || finished_batch_last_) {
      finish(ok ? grpc::Status::OK : grpc::Status::CANCELLED);
      return;
    }
    spawn_step();
  }
  void OnCancel() override { cancel_in_pipeline(); }
  void OnDone() override { done(); }
  void force_finish(grpc::Status s) override { finish(std::move(s)); }

 private:
  void finish(grpc::Status s) {
    if (claim_finish(s)) Finish(std::move(s));
  }

  void spawn_step() {
    add_ref();
    asio::co_spawn(ex_, step(), [this](std::exception_ptr e) {
      if (e) {
        log_exception("Scan", e);
        finish(grpc::Status(grpc::StatusCode::INTERNAL, "internal error"));
      }
      release();
    });
  }

  asio::awaitable<void> step() {
    if (sctx_->IsCancelled() || shared().draining.load(std::memory_order_acquire)) {
      finish(sctx_->IsCancelled() ? grpc::Status::CANCELLED
                                  : grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"));
      co_return;
    }
    out_.Clear();
    number count(static_cast<unsigned long long>(batch_));
    // Loop over empty batches (SCAN may return none) so that every write carries keys, or is the last.
    for (int spins = 0; spins < 64; ++spins) {
      number cur(static_cast<unsigned long long>(cursor_));
      std::string_view args[6] = {"SCAN", cur.view(), "COUNT", count.view()};
      std::size_t n = 4;
      if (!pattern_.empty()) {
        args[n++] = "MATCH";
        args[n++] = pattern_;
      }
      kv::reply_value v;
      auto st = co_await exec1(std::span(args, n), v);
      if (!st.ok()) {
        finish(std::move(st));
        co_return;
      }
      if (v.elements.size() != 2) {
        finish(grpc::Status(grpc::StatusCode::INTERNAL, "unexpected SCAN reply"));
        co_return;
      }
      std::uint64_t next = 0;
      const auto& cs = v.elements[0].str;
      std::from_chars(cs.data(), cs.data() + cs.size(), next);
      cursor_ = next;
      for (auto& k : v.elements[1].elements) {
        if (filter_prefix_ && std::string_view(k.str).substr(0, rq_.prefix().size()) != rq_.prefix()) continue;
        if (rq_.limit() != 0 && sent_ >= rq_.limit()) break;
        *out_.add_keys() = std::move(k.str);
        ++sent_;
      }
      if (cursor_ == 0 || (rq_.limit() != 0 && sent_ >= rq_.limit()) || out_.keys_size() != 0) break;
    }
    out_.set_cursor(cursor_);
    finished_batch_last_ = cursor_ == 0 || (rq_.limit() != 0 && sent_ >= rq_.limit());
    if (sctx_->IsCancelled()) {
      finish(grpc::Status::CANCELLED);
      co_return;
    }
    StartWrite(&out_);
  }

  pb::ScanRequest rq_;
  pb::ScanResponse out_;
  std::string pattern_;
  bool filter_prefix_ = false;
  std::uint64_t cursor_ = 0;
  std::uint64_t batch_ = 100;
  std::uint64_t sent_ = 0;
  bool finished_batch_last_ = false;
};

// ---------------------------------------------------------------------------------------------------------------
// Subscribe: an attached session whose host queues messages for the writer.

class subscribe_call final : public call_base,
                             public grpc::ServerWriteReactor<pb::SubscribeResponse>,
                             public kv::session_host {
 public:
  subscribe_call(std::shared_ptr<listener_shared> sh, grpc::CallbackServerContext* sctx,
                 const pb::SubscribeRequest* rq)
      : call_base(std::move(sh), sctx, rpc::subscribe), rq_(*rq), limit_(shared().opts.subscribe_buffer) {
    sess_.host = this;
    sess_.is_subscriber_only_front_end = true;
    const auto& peer = ctx_.peer();
    sess_.addr = peer.port() ? endpoint_string(peer) : sctx->peer();
    // The confirmation goes first; it is held (not written) until the subscriptions are in place, so that no
    // message can overtake it.
    pb::SubscribeResponse first;
    first.mutable_subscribed();
    queue_.push_back(std::move(first));
  }

  ~subscribe_call() override {
    if (attached_) shared().store->detach(sess_);
  }

  void start() {
    asio::co_spawn(ex_, subscribe(), [this](std::exception_ptr e) {
      if (e) {
        log_exception("Subscribe", e);
        schedule_finish(grpc::Status(grpc::StatusCode::INTERNAL, "internal error"));
      }
      release();
    });
  }

  // session_host (called with the store lock held, from any thread): only queue and post.
  bool deliver(const kv::pubsub_message& m) override {
    std::unique_lock lk(mutex_);
    if (finish_pending_) return true;
    if (queue_.size() >= limit_) {
      lk.unlock();
      schedule_finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                   "subscriber too slow: more than " + std::to_string(limit_) + " messages pending"));
      return false;
    }
    pb::SubscribeResponse r;
    auto* msg = r.mutable_message();
    msg->set_channel(m.channel.data(), m.channel.size());
    if (!m.pattern.empty()) msg->set_pattern(m.pattern.data(), m.pattern.size());
    msg->set_payload(m.payload.data(), m.payload.size());
    queue_.push_back(std::move(r));
    if (!writing_ && !held_ && !pump_posted_) {
      pump_posted_ = true;
      lk.unlock();
      post_pump();
    }
    return true;
  }
  void kill() override { schedule_finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "client killed")); }
  buffers buffer_info() const override {
    std::lock_guard lk(mutex_);
    buffers b;
    b.oll = queue_.size();
    return b;
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      std::lock_guard lk(mutex_);
      writing_ = false;
      if (!finish_pending_) {
        finish_pending_ = true;
        final_ = grpc::Status::CANCELLED;
      }
    } else {
      std::lock_guard lk(mutex_);
      writing_ = false;
    }
    pump();
  }
  void OnCancel() override {
    cancel_in_pipeline();
    schedule_finish(grpc::Status::CANCELLED);
  }
  void OnDone() override { done(); }
  void force_finish(grpc::Status s) override { schedule_finish(std::move(s)); }

 private:
  asio::awaitable<void> subscribe() {
    if (shared().draining.load(std::memory_order_acquire)) {
      schedule_finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"));
      co_return;
    }
    shared().store->attach(sess_);
    attached_ = true;
    long long count = 0;
    for (int kind = 0; kind < 2; ++kind) {
      const auto& names = kind == 0 ? rq_.channels() : rq_.patterns();
      if (names.empty()) continue;
      std::vector<std::string_view> args;
      args.reserve(static_cast<std::size_t>(names.size()) + 1);
      args.push_back(kind == 0 ? "SUBSCRIBE" : "PSUBSCRIBE");
      for (const auto& n : names) args.push_back(sv(n));
      std::vector<kv::reply_value> replies;
      auto st = co_await exec(args, replies);
      if (!st.ok()) {
        schedule_finish(std::move(st));
        co_return;
      }
      // Each confirmation is [subscribe, channel, count].
      const auto& last = replies.back();
      if (last.elements.size() == 3) count = last.elements[2].integer;
    }
    {
      std::lock_guard lk(mutex_);
      queue_.front().mutable_subscribed()->set_count(count);
      held_ = false;
    }
    pump();
  }

  /// Ends the stream with `s` once no write is in flight (thread-safe; safe under the store lock: posts).
  void schedule_finish(grpc::Status s) {
    {
      std::lock_guard lk(mutex_);
      if (finish_pending_) return;
      finish_pending_ = true;
      final_ = std::move(s);
      if (pump_posted_) return;
      pump_posted_ = true;
    }
    post_pump();
  }

  void post_pump() {
    add_ref();
    asio::post(ex_, [this] {
      {
        std::lock_guard lk(mutex_);
        pump_posted_ = false;
      }
      pump();
      release();
    });
  }

  /// Starts the next write, or finishes when asked to and idle. Never called with the store lock held.
  void pump() {
    std::unique_lock lk(mutex_);
    if (writing_ || finished_) return;
    if (finish_pending_) {
      finished_ = true;
      grpc::Status s = std::move(final_);
      // Leave the store before the client can see the status, so that a PUBLISH sent after it no longer counts
      // this subscriber (otherwise that waits for OnDone). Only once subscribe() is done with the session
      // (held_ == false); else the destructor detaches. The store lock is taken without mutex_ (deliver() takes
      // them in the other order).
      const bool detach_now = !held_ && attached_;
      if (detach_now) attached_ = false;
      lk.unlock();
      if (detach_now) shared().store->detach(sess_);
      if (claim_finish(s)) Finish(std::move(s));
      return;
    }
    if (held_ || queue_.empty()) return;
    current_ = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    lk.unlock();
    StartWrite(&current_);
  }

  pb::SubscribeRequest rq_;
  const std::size_t limit_;
  bool attached_ = false;  // set by subscribe() before held_ = false; then under mutex_ (pump), then the destructor

  mutable std::mutex mutex_;
  std::deque<pb::SubscribeResponse> queue_;
  pb::SubscribeResponse current_;
  bool held_ = true;
  bool writing_ = false;
  bool pump_posted_ = false;
  bool finish_pending_ = false;
  bool finished_ = false;
  grpc::Status final_;
};

// ---------------------------------------------------------------------------------------------------------------
// The service: handlers run on grpc's threads and only create the call and post it.

class kv_service_impl final : public pb::KV::CallbackService {
 public:
  explicit kv_service_impl(std::shared_ptr<listener_shared> sh) : sh_(std::move(sh)) {}

  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* c, const pb::GetRequest* rq, pb::GetResponse* rs) override {
    return unary<get_op>(c, rq, rs);
  }
  grpc::ServerUnaryReactor* Set(grpc::CallbackServerContext* c, const pb::SetRequest* rq, pb::SetResponse* rs) override {
    return unary<set_op>(c, rq, rs);
  }
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* c, const pb::DeleteRequest* rq,
                                   pb::DeleteResponse* rs) override {
    return unary<delete_op>(c, rq, rs);
  }
  grpc::ServerUnaryReactor* MGet(grpc::CallbackServerContext* c, const pb::MGetRequest* rq,
                                 pb::MGetResponse* rs) override {
    return unary<mget_op>(c, rq, rs);
  }
  grpc::ServerUnaryReactor* MSet(grpc::CallbackServerContext* c, const pb::MSetRequest* rq,
                                 pb::MSetResponse* rs) override {
    return unary<mset_op>(c, rq, rs);
  }
  grpc::ServerUnaryReactor* Incr(grpc::CallbackServerContext* c, const pb::IncrRequest* rq,
                                 pb::IncrResponse* rs) override {
    return unary<incr_op>(c, rq, rs);
  }
  grpc::ServerUnaryReactor* Expire(grpc::CallbackServerContext* c, const pb::ExpireRequest* rq,
                                   pb::ExpireResponse* rs) override {
    return unary<expire_op>(c, rq, rs);
  }
  grpc::ServerUnaryReactor* Ttl(grpc::CallbackServerContext* c, const pb::TtlRequest* rq, pb::TtlResponse* rs) override {
    return unary<ttl_op>(c, rq, rs);
  }
  grpc::ServerUnaryReactor* Persist(grpc::CallbackServerContext* c, const pb::PersistRequest* rq,
                                    pb::PersistResponse* rs) override {
    return unary<persist_op>(c, rq, rs);
  }
  grpc::ServerUnaryReactor* Publish(grpc::CallbackServerContext* c, const pb::PublishRequest* rq,
                                    pb::PublishResponse* rs) override {
    return unary<publish_op>(c, rq, rs);
  }
  grpc::ServerWriteReactor<pb::ScanResponse>* Scan(grpc::CallbackServerContext* c,
                                                   const pb::ScanRequest* rq) override {
    if (auto* r = refuse<grpc::ServerWriteReactor<pb::ScanResponse>>(rpc::scan)) return r;
    auto* call = new scan_call(sh_, c, rq);
    call->start();
    return call;
  }
  grpc::ServerWriteReactor<pb::SubscribeResponse>* Subscribe(grpc::CallbackServerContext* c,
                                                             const pb::SubscribeRequest* rq) override {
    if (auto* r = refuse<grpc::ServerWriteReactor<pb::SubscribeResponse>>(rpc::subscribe)) return r;
    if (rq->channels_size() == 0 && rq->patterns_size() == 0)
      return finished<grpc::ServerWriteReactor<pb::SubscribeResponse>>(
          rpc::subscribe, invalid("at least one channel or pattern is required"));
    auto* call = new subscribe_call(sh_, c, rq);
    call->start();
    return call;
  }

 private:
  /// A reactor that finishes at once with `s` and deletes itself.
  template <class Base>
  struct finish_only final : Base {
    explicit finish_only(grpc::Status s) { this->Finish(std::move(s)); }
    void OnDone() override { delete this; }
  };
  template <class Base>
  static Base* finished(rpc r, grpc::Status s) {
    record_call(r, s.error_code(), steady::now());
    return new finish_only<Base>(std::move(s));
  }
  template <class Base>
  Base* refuse(rpc r) {
    if (!sh_->draining.load(std::memory_order_acquire)) return nullptr;
    return finished<Base>(r, grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"));
  }

  /// A unary call. Inline driver: when the pipeline has the synchronous fast path (every layer implements
  /// try_call_now, see immediate_service in turret/service.hpp), the call's commands run right here on grpc's
  /// thread and the call finishes before the handler returns: no call object, no hop to the runtime and back, no
  /// coroutine. This keeps the front end's contract (never block grpc's threads): try_call_now never waits; the core
  /// holds the store mutex for a few hundred nanoseconds, like any short lock. When a layer would have to suspend
  /// (try_call_now declines, without side effect: a concurrency limit with no free slot, a layer without fast path)
  /// the call continues from that step on the runtime (unary_call: readiness + call, with the client's
  /// cancellation and deadline bound to the request's context). Inline calls are not listed in connections() and
  /// need no cancellation: nothing of theirs outlives the handler except grpc's own finishing of the call.
  template <class Op>
  grpc::ServerUnaryReactor* unary(grpc::CallbackServerContext* c, const typename Op::request* rq,
                                  typename Op::response* rs) {
    const auto start = steady::now();
    if (sh_->draining.load(std::memory_order_acquire)) [[unlikely]]
      return finish_inline(c, Op::id, start, grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"));
    int step = 0;
    if (sh_->pipeline.supports_immediate()) {
      // The context and session are this thread's, reset per call: nothing of an inline call outlives the
      // handler, and building and destroying a session (strings, sets, vectors) per call showed in profiles.
      thread_local inline_call_state state;
      request_context& ctx = state.ctx;
      kv::session& sess = state.sess;
      state.reset();
      init_call(c, ctx, sess);
      for (;; ++step) {
        cmd_args a;
        grpc::Status st = Op::command(*rq, step, a);
        if (!st.ok()) return finish_inline(c, Op::id, start, std::move(st));
        unary_reply_builder builder(sess.resp);
        kv::request req{ctx, sess, a.view(), builder};
        auto now = sh_->pipeline.try_call_now(req);
        if (!now) break;  // would suspend: continue from this step on the runtime
        if (!*now) return finish_inline(c, Op::id, start, pipeline_status(*sh_, c, ctx, now->error(), a.v[0]));
        kv::reply_value* v = builder.first_reply(st);
        if (!v) return finish_inline(c, Op::id, start, std::move(st));
        if (auto done = Op::reply(*rq, step, *v, *rs)) return finish_inline(c, Op::id, start, std::move(*done));
      }
    }
    return continue_async<Op>(c, rq, rs, step, start);
  }

  /// The asynchronous driver from step `step` on (out of line: the inline path above is the hot one).
  template <class Op>
  [[gnu::noinline]] grpc::ServerUnaryReactor* continue_async(grpc::CallbackServerContext* c,
                                                             const typename Op::request* rq,
                                                             typename Op::response* rs, int step,
                                                             steady::time_point start) {
    const bool inline_ran = sh_->pipeline.supports_immediate();  // then its init_call echoed the request id
    auto* call = new unary_call<Op>(sh_, c, rq, rs, step, start, inline_ran);
    call->start();
    return call;
  }

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
  /// reactor.
  static grpc::ServerUnaryReactor* finish_inline(grpc::CallbackServerContext* c, rpc r, steady::time_point start,
                                                 grpc::Status&& s) {
    record_call(r, s.error_code(), start);
    auto* reactor = c->DefaultReactor();
    reactor->Finish(std::move(s));
    return reactor;
  }

  std::shared_ptr<listener_shared> sh_;
};

// ---------------------------------------------------------------------------------------------------------------

class grpc_listener final : public turretd::listener {
 public:
  explicit grpc_listener(turretd::listener_env env)
      : env_endpoint_(env.endpoint),
        opts_(env.options.has_value() ? std::any_cast<grpc_options>(env.options) : grpc_options{}),
        sh_(std::make_shared<listener_shared>(env, opts_)),
        service_(sh_),
        health_timer_(env.rt.context(0)) {}

  ~grpc_listener() override {
    stop_accepting();
    if (shutdown_thread_.joinable()) shutdown_thread_.join();
    // Calls whose coroutine can no longer run (runtime stopped) would keep grpc's Shutdown waiting: end them.
    sh_->for_each_open([](call_base& c) { c.force_finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "closed")); });
    if (server_) {
      server_->Shutdown(std::chrono::system_clock::now());
      server_->Wait();
    }
  }

  const std::string& name() const noexcept override { return sh_->name; }
  std::string_view protocol() const noexcept override { return "grpc"; }

  void start() override {
    grpc::EnableDefaultHealthCheckService(opts_.health);

    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(endpoint_string(env_endpoint_), grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&service_);
    if (opts_.reflection) {
      std::vector<std::string> names{std::string(kv_service_name)};
      if (opts_.health) names.emplace_back("grpc.health.v1.Health");
      reflection_ = make_reflection_services(std::move(names));
      for (auto& s : reflection_) builder.RegisterService(s.get());
    }
    builder.SetMaxReceiveMessageSize(static_cast<int>(opts_.max_receive_message_size));
    builder.SetMaxSendMessageSize(static_cast<int>(opts_.max_send_message_size));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, static_cast<int>(opts_.max_concurrent_streams));
    builder.AddChannelArgument(GRPC_ARG_ENABLE_CHANNELZ, 0);
    server_ = builder.BuildAndStart();
    if (!server_ || port == 0)
      throw std::system_error(std::make_error_code(std::errc::address_in_use),
                              "cannot bind gRPC listener on " + endpoint_string(env_endpoint_));
    local_ = tcp::endpoint(env_endpoint_.address(), static_cast<unsigned short>(port));
    if (opts_.health) {
      if (auto* h = server_->GetHealthCheckService()) {
        h->SetServingStatus(std::string(kv_service_name), false);  // registers the name; SetServingStatus(bool)
        h->SetServingStatus(false);                                // then covers "" and it
        follow_readiness(std::chrono::milliseconds(0));
      }
    }
  }

  tcp::endpoint local_endpoint() const override { return local_; }

  void stop_accepting() override {
    if (sh_->draining.exchange(true, std::memory_order_acq_rel)) return;
    if (!server_) return;
    if (opts_.health)
      if (auto* h = server_->GetHealthCheckService()) h->SetServingStatus(false);
    // Streams never end by themselves: end Subscribe streams now (unary calls and scans finish on their own).
    sh_->for_each_open([](call_base& c) {
      if (dynamic_cast<subscribe_call*>(&c))
        c.force_finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"));
    });
    // grpc's Shutdown blocks until calls are done (or the deadline cancels them); never block a worker with it.
    const auto deadline = std::chrono::system_clock::now() +
                          std::chrono::duration_cast<std::chrono::system_clock::duration>(sh_->shutdown.grace());
    shutdown_thread_ = std::thread([s = server_.get(), deadline] { s->Shutdown(deadline); });
  }

  void force_close() override {
    sh_->for_each_open([](call_base& c) {
      c.cancel_in_pipeline();
      c.force_finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"));
    });
  }

  std::size_t connections() const noexcept override {
    std::lock_guard lk(sh_->mutex);
    return sh_->open;
  }

 private:
  /// Health: SERVING once the server reports ready (it becomes ready after every listener started).
  /// (Polls: the server's state is an atomic without notification; the first check runs as soon as the runtime runs,
  /// which is after turretd became ready.)
  void follow_readiness(std::chrono::milliseconds delay) {
    health_timer_.expires_after(delay);
    health_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec || sh_->draining.load(std::memory_order_acquire)) return;
      const auto st = sh_->state ? sh_->state->load(std::memory_order_acquire) : server_state::ready;
      if (st == server_state::ready) {
        if (auto* h = server_->GetHealthCheckService()) h->SetServingStatus(true);
        return;
      }
      if (st == server_state::starting) follow_readiness(std::chrono::milliseconds(10));
    });
  }

  tcp::endpoint env_endpoint_;
  grpc_options opts_;
  std::shared_ptr<listener_shared> sh_;
  kv_service_impl service_;
  std::vector<std::unique_ptr<grpc::Service>> reflection_;  // before server_: destroyed after it
  std::unique_ptr<grpc::Server> server_;
  tcp::endpoint local_;
  asio::steady_timer health_timer_;
  std::thread shutdown_thread_;
};

}  // namespace

std::unique_ptr<turretd::listener> make_listener(turretd::listener_env env) {
  return std::make_unique<grpc_listener>(std::move(env));
}

turretd::frontend make_frontend() {
  turretd::frontend f;
  f.keys = {"grpc"};
  f.parse = [](const config_node& entry) -> std::any { return parse_grpc_options(entry.child("grpc")); };
  f.create = [](turretd::listener_env env) { return make_listener(std::move(env)); };
  return f;
}

}  // namespace turret::grpc_frontend
