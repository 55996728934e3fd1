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
// ```
// and a response type may supply
// ```
//   std::optional<std::string_view> reply_error_code(const Response&);  // the Redis error code of an error reply
// ```
// Layers never call them directly: they call turret::request_routing_key / request_retry_class /
// request_rate_class / response_error_code below, which fall back to the conservative default when a type supplies
// none (no routing key, non_idempotent, write, no error code). The functions are cheap, noexcept and callable from any thread while the
// request is alive; their results are views into the request (the routing key points into its arguments).
// turret::kv::request implements all three (<turret/kv/request.hpp>) from the command metadata the front end
// resolved once (<turret/kv/command_info.hpp>); turret::kv::response implements reply_error_code.
#include <concepts>
#include <cstdint>
#include <optional>
#include <string_view>

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

namespace request_traits_detail {
// Poison pills: unqualified calls below find only the request type's own functions (by ADL).
void routing_key() = delete;
void retry_class() = delete;
void rate_class() = delete;
void reply_error_code() = delete;

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
std::optional<std::string_view> reply_error_code_of(const R& r) noexcept {
  if constexpr (has_reply_error_code<R>) return reply_error_code(r);
  else return std::nullopt;
}
}  // namespace request_traits_detail

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

}  // namespace turret
