#pragma once
// Request traits for generic layers: what a retry, rate-limit, load-balancing or sharding layer may ask of a request
// it knows nothing else about.
//
// # Customization points
// A request type supplies any of these as free functions in its own namespace (found by argument-dependent lookup):
// ```
//   std::optional<std::string_view> routing_key(const Request&);  // the key to hash for sharding / affinity
//   turret::retry_safety            retry_class(const Request&);  // may a failed attempt be sent again?
//   turret::traffic_class           rate_class(const Request&);   // which budget the request draws from
//   std::string_view                request_name(const Request&); // what the request is, for logs ("get")
// ```
// and a response type may supply
// ```
//   std::optional<std::string_view> reply_error_code(const Response&);  // the Redis error code of an error reply
// ```
// And, for the auth layer (middleware/auth), a request type whose protocol authenticates with a command of its own
// (RESP's AUTH and HELLO ... AUTH) supplies
// ```
//   std::optional<turret::auth_credentials> auth_command(const Request&);
//   std::optional<Response> auth_reply(Request&, turret::auth_verdict, std::string_view identity);
//   bool allowed_before_auth(const Request&);  // may a client that has not authenticated send it (Redis: no_auth)
// ```
// (see auth_verdict below).
// Layers never call them directly: they call turret::request_routing_key / request_retry_class /
// request_rate_class / request_name_of / response_error_code / request_auth_command / request_auth_reply below,
// which fall back to the conservative default when a type supplies none (no routing key, non_idempotent, write, no
// name, no error code, not an authentication command). The functions are cheap, noexcept and callable from any
// thread while the request is alive; their results are views into the request (the routing key points into its
// arguments). turret::kv::request implements them (<turret/kv/request.hpp>) from the command metadata the front end
// resolved once (<turret/kv/command_info.hpp>); turret::kv::response implements reply_error_code.
//
// # Attempts: what a layer that sends a request more than once needs (retry, hedge)
// A request whose reply is written into a sink it carries (the key-value request writes into req.out) cannot simply
// be sent twice: the second attempt would append to what the first one wrote. Three more customization points,
// also found by ADL, let a generic layer keep exactly one reply:
// ```
//   M    attempt_mark(Request&);                     // a position in the request's reply sink (before an attempt)
//   void discard_attempt(Request&, const M&);        // drop what an attempt wrote after the mark (it failed)
//   std::unique_ptr<F> fork_attempt(Request&);       // a copy for a parallel attempt, F::request() its Request,
//                                                    //   with its own reply sink and its own request_context
//                                                    //   (deadline, identity, peer and request id copied)
//   void commit_attempt(Request& original, F& fork); // write the fork's reply into the original's sink
// ```
// and one for responses:
// ```
//   std::optional<std::string_view> reply_error_code(const Response&);  // "TRYAGAIN" when the reply is an error
// ```
// The defaults: a request without attempt_mark has no sink (marking and discarding do nothing: its response is the
// whole reply); a request without fork_attempt cannot be attempted in parallel (hedging passes it through); a
// response without reply_error_code is never an error reply (only pipeline errors are). A fork lives on the heap
// (its request refers to its own members) and must not outlive the original request; it is used from the original
// request's thread.
#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>

namespace turret {

/// Whether a request may be sent again when an attempt failed without a known outcome.
enum class retry_safety : std::uint8_t {
  idempotent,      ///< sending it twice has the same effect and reply as once: a layer may retry or hedge it
  non_idempotent,  ///< a second send may change the outcome (INCR, LPUSH, DEL's count): never resend blindly
  session,         ///< reads or changes per-connection state (SELECT, MULTI, SUBSCRIBE, AUTH): only on the
                   ///< connection it was meant for, never hedged onto another one
};

/// The kind of traffic a request is, for rate limits and budgets.
enum class traffic_class : std::uint8_t { read, write, admin, pubsub, connection };

/// The credentials of an authentication command (RESP `AUTH [user] password`, `HELLO ... AUTH user password`).
/// Views into the request's arguments.
struct auth_credentials {
  std::string_view user;  ///< empty when the command names no user (`AUTH password`: Redis's "default" user)
  std::string_view password;
  /// false: an accepted command is answered by auth_reply() (AUTH: +OK); true: it continues inward to the service,
  /// whose reply is the command's (HELLO ... AUTH: the request then no longer authenticates, see auth_reply()).
  bool continues = false;
};

/// What the auth layer decided about a request, for auth_reply():
enum class auth_verdict : std::uint8_t {
  accepted,         ///< auth_command()'s credentials are valid; `identity` is now the connection's identity
  wrong_password,   ///< auth_command()'s credentials are not valid
  unauthenticated,  ///< a request other than an authentication command, from a client not authenticated
  forbidden,        ///< the authenticated identity may not send requests of this traffic class
};

namespace request_traits_detail {
// Poison pills: unqualified calls below find only the request type's own functions (by ADL).
void routing_key() = delete;
void retry_class() = delete;
void rate_class() = delete;
void request_name() = delete;
void auth_command() = delete;
void auth_reply() = delete;
void allowed_before_auth() = delete;
void attempt_mark() = delete;
void discard_attempt() = delete;
void fork_attempt() = delete;
void commit_attempt() = delete;
void reply_error_code() = delete;

/// The mark of a request type without a reply sink.
struct no_attempt_mark {};

template <class R>
concept has_attempt_mark = requires(R& r) {
  { attempt_mark(r) };
  { discard_attempt(r, attempt_mark(r)) };
};
template <class R>
concept has_fork_attempt = requires(R& r) {
  { fork_attempt(r)->request() } -> std::same_as<R&>;
  { commit_attempt(r, *fork_attempt(r)) };
};

template <class R>
concept has_routing_key = requires(const R& r) {
  { routing_key(r) } -> std::convertible_to<std::optional<std::string_view>>;
};
template <class R>
concept has_retry_class = requires(const R& r) {
  { retry_class(r) } -> std::same_as<retry_safety>;
};
template <class R>
concept has_rate_class = requires(const R& r) {
  { rate_class(r) } -> std::same_as<traffic_class>;
};

template <class R>
concept has_request_name = requires(const R& r) {
  { request_name(r) } -> std::convertible_to<std::string_view>;
};
template <class R>
concept has_auth_command = requires(const R& r) {
  { auth_command(r) } -> std::same_as<std::optional<auth_credentials>>;
};
template <class R, class Response>
concept has_auth_reply = requires(R& r, auth_verdict v, std::string_view id) {
  { auth_reply(r, v, id) } -> std::convertible_to<std::optional<Response>>;
};

template <class R>
std::string_view request_name_of(const R& r) noexcept {
  if constexpr (has_request_name<R>) return request_name(r);
  else return {};
}
template <class R>
std::optional<auth_credentials> auth_command_of(const R& r) noexcept {
  if constexpr (has_auth_command<R>) return auth_command(r);
  else return std::nullopt;
}
template <class Response, class R>
std::optional<Response> auth_reply_of(R& r, auth_verdict v, std::string_view identity) {
  if constexpr (has_auth_reply<R, Response>) return auth_reply(r, v, identity);
  else return std::nullopt;
}
template <class R>
concept has_reply_error_code = requires(const R& r) {
  { reply_error_code(r) } -> std::convertible_to<std::optional<std::string_view>>;
};

template <class R>
std::optional<std::string_view> routing_key_of(const R& r) noexcept {
  if constexpr (has_routing_key<R>) return routing_key(r);
  else return std::nullopt;
}
template <class R>
retry_safety retry_class_of(const R& r) noexcept {
  if constexpr (has_retry_class<R>) return retry_class(r);
  else return retry_safety::non_idempotent;
}
template <class R>
traffic_class rate_class_of(const R& r) noexcept {
  if constexpr (has_rate_class<R>) return rate_class(r);
  else return traffic_class::write;
}
template <class R>
concept has_allowed_before_auth = requires(const R& r) {
  { allowed_before_auth(r) } -> std::same_as<bool>;
};
template <class R>
bool allowed_before_auth_of(const R& r) noexcept {
  if constexpr (has_allowed_before_auth<R>) return allowed_before_auth(r);
  else return rate_class_of(r) == traffic_class::connection;
}

template <class R>
auto attempt_mark_of(R& r) noexcept {
  if constexpr (has_attempt_mark<R>) return attempt_mark(r);
  else return no_attempt_mark{};
}
template <class R, class M>
void discard_attempt_of(R& r, const M& m) noexcept {
  if constexpr (has_attempt_mark<R>) discard_attempt(r, m);
}
template <class Resp>
std::optional<std::string_view> reply_error_code_of(const Resp& r) noexcept {
  if constexpr (has_reply_error_code<Resp>) return reply_error_code(r);
  else return std::nullopt;
}
}  // namespace request_traits_detail

/// Requests that can be forked for a parallel attempt (see fork_attempt above).
template <class R>
concept forkable_request = request_traits_detail::has_fork_attempt<R>;

/// A mark of the request's reply sink, taken before an attempt (no_attempt_mark when the type has none).
template <class R>
auto request_attempt_mark(R& r) noexcept {
  return request_traits_detail::attempt_mark_of(r);
}
/// Drops what the attempt begun at `m` wrote into the request's reply sink.
template <class R, class M>
void request_discard_attempt(R& r, const M& m) noexcept {
  request_traits_detail::discard_attempt_of(r, m);
}
/// A fork of `r` for a parallel attempt: a unique_ptr to an object whose request() is the forked request.
template <forkable_request R>
auto request_fork(R& r) {
  return fork_attempt(r);
}
/// Writes the reply of `fork` (the winning parallel attempt) into `r`'s reply sink.
template <forkable_request R, class F>
void request_commit(R& r, F& fork) {
  commit_attempt(r, fork);
}
/// The request's routing key (for hashing to a shard, a Cluster slot, a sticky backend); nullopt when it has none
/// or its type supplies no routing_key().
template <class R>
std::optional<std::string_view> request_routing_key(const R& r) noexcept {
  return request_traits_detail::routing_key_of(r);
}
/// The request's retry class; non_idempotent when its type supplies no retry_class().
template <class R>
retry_safety request_retry_class(const R& r) noexcept {
  return request_traits_detail::retry_class_of(r);
}
/// The request's traffic class; write when its type supplies no rate_class().
template <class R>
traffic_class request_rate_class(const R& r) noexcept {
  return request_traits_detail::rate_class_of(r);
}
/// The Redis error code of a response that is an error reply ("ERR", "WRONGTYPE", "TRYAGAIN"...), for layers that
/// act on error replies (retry_on, a breaker's failure_on); nullopt when it is not an error reply or its type
/// supplies no reply_error_code().
template <class R>
std::optional<std::string_view> response_error_code(const R& r) noexcept {
  return request_traits_detail::reply_error_code_of(r);
}

/// What the request is, for logs and metrics (the key-value request: its command's name, "get", "client|list"; the
/// first argument as sent for an unknown command: may be binary). Empty when its type supplies no request_name().
template <class R>
std::string_view request_name_of(const R& r) noexcept {
  return request_traits_detail::request_name_of(r);
}

/// The credentials when the request is an authentication command of its protocol (RESP AUTH, HELLO ... AUTH); nullopt
/// for any other request, and always when its type supplies no auth_command(). The auth layer answers such a
/// request itself (it never reaches the service behind it unless auth_reply() lets it through).
template <class R>
std::optional<auth_credentials> request_auth_command(const R& r) noexcept {
  return request_traits_detail::auth_command_of(r);
}

/// May a client that has not authenticated send this request? Redis lets such a client send only the commands
/// flagged no_auth (AUTH, HELLO, QUIT...: PING and SELECT get -NOAUTH); a type that supplies no
/// allowed_before_auth() answers by its traffic class (connection: yes).
template <class R>
bool request_allowed_before_auth(const R& r) noexcept {
  return request_traits_detail::allowed_before_auth_of(r);
}

/// The auth layer's decision, answered in the request's protocol: an engaged optional is the request's response (its
/// reply written into the request's reply sink: RESP's +OK, -WRONGPASS, -NOAUTH, -NOPERM texts); nullopt lets the
/// layer go on: an accepted request continues inward (HELLO ... AUTH, whose reply is the service's), a rejected one
/// fails with the layer's error (errc::unauthenticated or errc::permission_denied: 401/403 on HTTP, UNAUTHENTICATED /
/// PERMISSION_DENIED on gRPC). Without auth_reply() every decision takes the second way.
template <class Response, class R>
std::optional<Response> request_auth_reply(R& r, auth_verdict v, std::string_view identity) {
  return request_traits_detail::auth_reply_of<Response>(r, v, identity);
}

}  // namespace turret
