#pragma once
// What each protocol sends for a layer error: ONE table, used by every front end (RESP, HTTP, gRPC), so an error
// means the same on every protocol whatever layer produced it. Nothing here depends on a front end: gRPC status
// codes are plain ints (the values of grpc::StatusCode / google.rpc.Code).
//
// An error is first classified into a turret condition (turret/error.hpp: the layer's default_error_condition, or
// the generic errno classification; anything else is `internal`), then mapped:
//
// | condition         | RESP error (after '-')          | HTTP status, JSON code, Retry-After | gRPC status        |
// |-------------------|---------------------------------|-------------------------------------|--------------------|
// | overloaded        | BUSY overloaded: <message>      | 429 too_many_requests, 1 s          | RESOURCE_EXHAUSTED |
// | unavailable       | ERR unavailable: <message>      | 503 unavailable, 1 s                | UNAVAILABLE        |
// | timed_out         | ERR request timed out           | 504 timeout                         | DEADLINE_EXCEEDED  |
// | cancelled         | ERR request cancelled           | 503 cancelled                       | CANCELLED          |
// | unauthenticated   | NOAUTH Authentication required. | 401 unauthorized                    | UNAUTHENTICATED    |
// | permission_denied | NOPERM <message>                | 403 forbidden                       | PERMISSION_DENIED  |
// | invalid_argument  | ERR invalid argument: <message> | 400 bad_request                     | INVALID_ARGUMENT   |
// | internal          | ERR <message>                   | 500 internal                        | INTERNAL           |
//
// Why these RESP texts. Clients act on the error code (the first word), so each code must mean for them what it
// means here:
// - `BUSY` for overloaded: Redis answers BUSY while a script runs too long ("try again later"). Clients report it
//   as an error and keep the connection: redis-py 4.3 raises a plain ResponseError (its table of special codes has
//   LOADING -> BusyLoadingError, a ConnectionError subclass that makes it drop the connection, but not BUSY),
//   Jedis a JedisBusyException, Lettuce a RedisBusyException; go-redis does not retry it. LOADING, MASTERDOWN and
//   TRYAGAIN are avoided: clients reconnect on LOADING and retry TRYAGAIN at once, which amplifies overload.
// - `ERR` for unavailable, timeouts and cancellation: every client surfaces it as a plain command error.
//   "ERR request timed out" is the text turret has always sent for the timeout layer.
// - `NOAUTH Authentication required.` is Redis's exact text (redis-py: AuthenticationError); `NOPERM` is Redis's
//   ACL error code (redis-py: NoPermissionError).
// A message is made single-line (CR and LF become spaces): a RESP simple error cannot contain them.
//
// Why these HTTP and gRPC codes: they are the pairs of gRPC's own HTTP mapping (RESOURCE_EXHAUSTED <-> 429,
// UNAVAILABLE <-> 503, DEADLINE_EXCEEDED <-> 504, UNAUTHENTICATED <-> 401, PERMISSION_DENIED <-> 403,
// INVALID_ARGUMENT <-> 400, INTERNAL <-> 500), except cancelled, which is 503 (gRPC's 499 is not an HTTP status;
// the request was abandoned, typically by a server that is shutting down). `Retry-After` (RFC 9110 10.2.3) is sent
// with 429 and 503-unavailable: both say "later may work".
//
// The HTTP JSON codes keep the REST API's existing names (timeout, too_many_requests, unavailable, unauthorized).
// The previous per-front-end mappings classified unknown categories by substrings of their names ("limit",
// "quota", "circuit"); that guesswork is gone: a layer declares its condition (default_error_condition).
#include <turret/error.hpp>

#include <string>
#include <string_view>

namespace turret {

/// gRPC status codes (google.rpc.Code), as ints.
namespace grpc_code {
inline constexpr int ok = 0;
inline constexpr int cancelled = 1;
inline constexpr int unknown = 2;
inline constexpr int invalid_argument = 3;
inline constexpr int deadline_exceeded = 4;
inline constexpr int not_found = 5;
inline constexpr int already_exists = 6;
inline constexpr int permission_denied = 7;
inline constexpr int resource_exhausted = 8;
inline constexpr int failed_precondition = 9;
inline constexpr int aborted = 10;
inline constexpr int out_of_range = 11;
inline constexpr int unimplemented = 12;
inline constexpr int internal = 13;
inline constexpr int unavailable = 14;
inline constexpr int data_loss = 15;
inline constexpr int unauthenticated = 16;
}  // namespace grpc_code

/// One row of the table above (static data).
struct condition_mapping {
  errc condition;
  std::string_view resp_code;  ///< first word of the RESP error: "ERR", "BUSY", "NOAUTH", "NOPERM"
  std::string_view resp_text;  ///< fixed text after the code (may be empty)
  bool resp_message;           ///< the error's message follows the fixed text (after ": " when the text is not empty)
  int http_status;
  std::string_view http_code;  ///< the REST API's JSON error code
  int retry_after;             ///< seconds for a Retry-After header; 0 = no header
  int grpc_status;             ///< a grpc_code value
};

/// The row of `c`.
const condition_mapping& mapping_of(errc c) noexcept;

/// A category whose error values may carry their own Retry-After: to_http_error sends retry_after(ev) seconds
/// instead of the row's fixed value when it is positive and the row sends the header at all (429, 503-unavailable).
/// A layer that knows when a retry may succeed (rate_limit: when its bucket admits again) derives its category
/// from this one and encodes the seconds in the value (the value is all an error_code carries).
class retry_after_category : public boost::system::error_category {
 public:
  /// Seconds for a Retry-After header for the error value `ev`; 0: no hint (the row's fixed value).
  virtual int retry_after(int ev) const noexcept = 0;
};

/// The RESP error for a layer error, without the leading '-' and the CRLF, e.g. "ERR request timed out",
/// "BUSY overloaded: request quota exhausted". Precondition: `ec` is an error.
std::string resp_error(const error_code& ec, bool deadline_passed = false);

/// The HTTP response for a layer error.
struct http_error {
  int status = 500;
  std::string_view code;  ///< JSON error code
  std::string message;    ///< for the JSON body
  int retry_after = 0;    ///< seconds; 0 = no Retry-After header
};
/// Precondition: `ec` is an error.
http_error to_http_error(const error_code& ec, bool deadline_passed = false);

/// The gRPC status for a layer error.
struct grpc_error {
  int code = grpc_code::internal;  ///< a grpc_code value
  std::string message;
};
/// Precondition: `ec` is an error.
grpc_error to_grpc_error(const error_code& ec, bool deadline_passed = false);

/// The message every protocol shows for `ec`: "request timed out" when a cancellation is reported as a timeout
/// (deadline_passed); "<category>: <message>" for an internal error (to tell which layer failed); else
/// ec.message(). CR and LF are replaced by spaces.
std::string error_message(const error_code& ec, bool deadline_passed = false);

}  // namespace turret
