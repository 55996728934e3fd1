#pragma once
// Typed gRPC client of turret's key-value API (service turret.kv.v1.KV, protos/turret/kv/v1/kv.proto), usable from
// coroutines:
//
// ```
// auto kv = turret::clients::grpc_kv_client::connect("127.0.0.1:50051");
// auto v = co_await kv.get("k");            // result<std::optional<std::string>>: nullopt = NOT_FOUND
// co_await kv.set("k", "v", {.ttl = 30s});
// ```
//
// Layers. Unary RPCs go through a Service (turret/service.hpp): `grpc_transport` is the innermost one; any turret
// layer whose request only needs a request_context (timeout, concurrency_limit, a retry layer later) can wrap it:
//
// ```
// auto svc = turret::service_builder{}.layer(turret::timeout_layer(2s)).service(grpc_transport::connect(target));
// turret::clients::grpc_kv_client kv(turret::erase_service<grpc_call>(std::move(svc)));
// ```
//
// Threading and completion. grpc++'s callback API completes on grpc's threads; every operation here resumes the
// awaiting coroutine on ITS OWN executor (the handler's associated executor), never on a grpc thread. Many coroutines
// on many threads may share one client (the channel multiplexes calls).
//
// Deadlines and cancellation. A call's request_context::deadline becomes the gRPC deadline; ctx.cancel() (a timeout
// layer, the caller) cancels the RPC (ClientContext::TryCancel), which then completes with grpc_errc::cancelled.
//
// Errors. Non-OK gRPC statuses are error_codes of grpc_category() whose values are grpc::StatusCode numbers
// (grpc_errc); the server's status message is kept in grpc_call::status_message. Only Get maps NOT_FOUND to a value
// (std::nullopt); Ttl/Persist/Expire report it as grpc_errc::not_found.
#include <turret/any_service.hpp>
#include <turret/context.hpp>
#include <turret/result.hpp>
#include <turret/service.hpp>

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace google::protobuf {
class Message;
}

namespace turret::clients {

/// gRPC status codes as an error enum (values are grpc::StatusCode's).
enum class grpc_errc {
  cancelled = 1,
  unknown = 2,
  invalid_argument = 3,
  deadline_exceeded = 4,
  not_found = 5,
  already_exists = 6,
  permission_denied = 7,
  resource_exhausted = 8,
  failed_precondition = 9,
  aborted = 10,
  out_of_range = 11,
  unimplemented = 12,
  internal = 13,
  unavailable = 14,
  data_loss = 15,
  unauthenticated = 16,
};

/// The category "grpc" (messages are the status code names, e.g. "NOT_FOUND").
const boost::system::error_category& grpc_category() noexcept;
inline error_code make_error_code(grpc_errc e) noexcept { return {static_cast<int>(e), grpc_category()}; }

}  // namespace turret::clients

template <>
struct boost::system::is_error_code_enum<turret::clients::grpc_errc> : std::true_type {};

namespace turret::clients {

/// The unary RPCs of turret.kv.v1.KV.
enum class grpc_method : std::uint8_t { get, set, del, mget, mset, incr, expire, ttl, persist, publish };

/// One unary RPC: the request of the client-side Service. `request`/`response` point at the method's generated
/// messages (turret::kv::v1::GetRequest/GetResponse ...); they outlive the call.
struct grpc_call {
  request_context ctx;
  grpc_method method = grpc_method::get;
  const google::protobuf::Message* request = nullptr;
  google::protobuf::Message* response = nullptr;
  std::string status_message;  ///< the server's status message when the call failed

  request_context& context() noexcept { return ctx; }
};

/// The response of the client-side Service: the response message has been filled in.
struct grpc_reply {};

/// Channel settings.
struct grpc_client_options {
  std::size_t max_receive_message_size = 64u << 20;
  std::size_t max_send_message_size = 64u << 20;
};

/// The innermost client Service: performs the RPC on a shared grpc channel. Always ready.
class grpc_transport {
 public:
  using response_type = grpc_reply;
  using permit_type = unit_permit;

  /// An insecure channel to `target` ("host:port"); connects lazily.
  static grpc_transport connect(const std::string& target, const grpc_client_options& opts = {});

  awaitable<result<unit_permit>> ready(request_context&) { co_return unit_permit{}; }
  awaitable<result<grpc_reply>> call(unit_permit, grpc_call& c);

  struct state;  ///< channel + stub (opaque)
  explicit grpc_transport(std::shared_ptr<state> s) : state_(std::move(s)) {}
  const std::shared_ptr<state>& shared_state() const noexcept { return state_; }

 private:
  std::shared_ptr<state> state_;
};

enum class set_condition : std::uint8_t { always, if_not_exists, if_exists };
enum class expire_condition : std::uint8_t { always, if_no_ttl, if_has_ttl, if_greater, if_less };

struct set_options {
  std::chrono::milliseconds ttl{0};  ///< 0 = no expiry
  bool keep_ttl = false;
  set_condition condition = set_condition::always;  ///< unmet: grpc_errc::failed_precondition
  bool return_previous = false;
};

/// Options of one call. Kept trivially copyable on purpose: it is passed by value (often as a default argument) to
/// coroutines, where g++ 12 may relocate parameters bitwise. `request_id` must outlive the call.
struct call_options {
  std::chrono::milliseconds timeout{0};  ///< 0 = no deadline (layers may still set one)
  std::string_view request_id;           ///< sent as x-request-id when not empty
};
static_assert(std::is_trivially_copyable_v<call_options>);

/// A published message received by a subscription.
struct grpc_message {
  std::string channel;
  std::string pattern;  ///< empty for channel subscriptions
  std::string payload;
};

/// A Subscribe stream. next() returns messages in order; an error ends the stream (cancelled after cancel(),
/// unavailable when the server drains, resource_exhausted when too slow). Destroying it cancels the stream.
class grpc_subscription {
 public:
  struct impl;
  explicit grpc_subscription(std::shared_ptr<impl> i) : impl_(std::move(i)) {}
  grpc_subscription(grpc_subscription&&) noexcept = default;
  grpc_subscription& operator=(grpc_subscription&&) noexcept = default;
  ~grpc_subscription();

  /// Number of active subscriptions the server confirmed.
  std::int64_t count() const noexcept;
  /// The next message (waits; resumes on the awaiting coroutine's executor).
  awaitable<result<grpc_message>> next();
  /// Cancels the stream (thread-safe).
  void cancel();

 private:
  std::shared_ptr<impl> impl_;
};

/// The typed key-value client.
class grpc_kv_client {
 public:
  using service_type = any_service<grpc_call, grpc_reply>;

  /// A client whose unary calls go through `svc` (a grpc_transport, possibly wrapped in layers); Scan and
  /// Subscribe (streaming) use `transport`'s channel directly.
  grpc_kv_client(service_type svc, grpc_transport transport);
  /// No layers: the transport alone.
  explicit grpc_kv_client(grpc_transport transport);
  static grpc_kv_client connect(const std::string& target, const grpc_client_options& opts = {});

  awaitable<result<std::optional<std::string>>> get(std::string_view key, call_options o = {});
  /// The previous value with return_previous (nullopt when none), else nullopt.
  awaitable<result<std::optional<std::string>>> set(std::string_view key, std::string_view value,
                                                    set_options s = {}, call_options o = {});
  awaitable<result<std::int64_t>> del(std::span<const std::string_view> keys, call_options o = {});
  awaitable<result<std::vector<std::optional<std::string>>>> mget(std::span<const std::string_view> keys,
                                                                  call_options o = {});
  awaitable<result<void>> mset(std::span<const std::pair<std::string_view, std::string_view>> entries,
                               bool if_none_exist = false, call_options o = {});
  awaitable<result<std::int64_t>> incr(std::string_view key, std::int64_t delta = 1, call_options o = {});
  awaitable<result<bool>> expire(std::string_view key, std::chrono::milliseconds ttl,
                                 expire_condition c = expire_condition::always, call_options o = {});
  /// Remaining TTL in ms, -1 without TTL; grpc_errc::not_found when the key does not exist.
  awaitable<result<std::int64_t>> ttl(std::string_view key, call_options o = {});
  awaitable<result<bool>> persist(std::string_view key, call_options o = {});
  awaitable<result<std::int64_t>> publish(std::string_view channel, std::string_view message, call_options o = {});
  /// Every key starting with `prefix` (and matching `match` when given), at most `limit` (0 = all).
  awaitable<result<std::vector<std::string>>> scan(std::string_view prefix = {}, std::string_view match = {},
                                                   std::uint64_t limit = 0, call_options o = {});
  /// Subscribes; completes once the server confirmed the subscription.
  awaitable<result<grpc_subscription>> subscribe(std::span<const std::string_view> channels,
                                                 std::span<const std::string_view> patterns = {});

  service_type& service() noexcept { return svc_; }

 private:
  awaitable<result<grpc_reply>> unary(grpc_method m, const google::protobuf::Message& rq,
                                      google::protobuf::Message& rs, const call_options& o);

  service_type svc_;
  grpc_transport transport_;
};

/// `turret-cli --protocol grpc`: runs one redis-cli style command against `target` ("host:port") and prints the reply
/// like redis-cli (`"v"`, `(nil)`, `(integer) 1`, `OK`, `(error) NOT_FOUND: ...`). Commands: GET, SET k v [EX s|PX ms]
/// [NX|XX] [KEEPTTL] [GET], DEL, MGET, MSET, MSETNX, INCR, INCRBY, DECR, DECRBY, EXPIRE, PEXPIRE, TTL, PTTL, PERSIST,
/// PUBLISH, SCAN [prefix] (all keys), KEYS pattern, SUBSCRIBE ch..., PSUBSCRIBE pat..., PING.
/// Returns the process exit code (0 ok, 1 error reply/transport error, 2 usage).
int grpc_cli_run(const std::string& target, const std::vector<std::string>& args, std::ostream& out,
                 std::ostream& err);

}  // namespace turret::clients
