#pragma once
// One error model for layer errors: generic conditions that every layer's error maps to.
//
// Each middleware keeps its own error enum and category (turret.timeout, turret.fault, a plugin's acme.quota...),
// so a log line or a test can still tell exactly which layer failed. What a front end sends for an error, however,
// depends only on its *condition*: a small, closed set declared here as a boost::system error_condition enum in the
// category "turret". A layer's category declares the condition of each of its codes by overriding
// `default_error_condition`:
//
// ```
// boost::system::error_condition default_error_condition(int ev) const noexcept override {
//   return make_error_condition(turret::errc::timed_out);
// }
// ```
//
// and then `ec == turret::errc::timed_out` holds for such a code, wherever it came from. Errors of other origins are
// classified here once, through their generic (errno) condition:
//   ECANCELED (Asio's operation_aborted)                               -> cancelled
//   ETIMEDOUT                                                          -> timed_out
//   EAGAIN, ENOBUFS, EMFILE, ENFILE, EBUSY, ENOMEM                     -> overloaded
//   ECONNREFUSED, ECONNRESET, ECONNABORTED, EHOSTUNREACH, ENETUNREACH,
//   ENETDOWN, ENOTCONN, EPIPE                                          -> unavailable
//   EACCES, EPERM                                                      -> permission_denied
//   EINVAL, EMSGSIZE                                                   -> invalid_argument
// Anything else (including a plugin category whose default condition is not a turret one) is `internal`.
// What each condition becomes on RESP, HTTP and gRPC is decided in one place: turret/error_mapping.hpp.
#include <turret/result.hpp>

#include <boost/system/error_category.hpp>
#include <boost/system/error_condition.hpp>

#include <optional>
#include <string_view>
#include <type_traits>

namespace turret {

/// The generic conditions of layer errors (values start at 1: 0 is "no error" in boost::system).
enum class errc {
  overloaded = 1,     ///< too much load right now: shed, limited, quota exhausted; retrying later may succeed
  unavailable,        ///< the service cannot serve at all right now (upstream down, circuit open, draining)
  timed_out,          ///< the request's time ran out before an answer
  cancelled,          ///< the request was cancelled (client gone, server shutting down) before an answer
  unauthenticated,    ///< the client has not authenticated (or its credentials are invalid)
  permission_denied,  ///< the client is authenticated but not allowed to do this
  invalid_argument,   ///< the request itself is malformed; retrying it unchanged cannot succeed
  internal,           ///< anything else: a bug, an unclassified error of some layer
};

/// Every condition, in declaration order (tests and documentation iterate over it).
inline constexpr errc all_conditions[] = {errc::overloaded,       errc::unavailable,     errc::timed_out,
                                          errc::cancelled,        errc::unauthenticated, errc::permission_denied,
                                          errc::invalid_argument, errc::internal};

/// The category "turret" of the conditions. Its `equivalent(code, condition)` implements the classification above.
const boost::system::error_category& condition_category() noexcept;

inline boost::system::error_condition make_error_condition(errc e) noexcept {
  return {static_cast<int>(e), condition_category()};
}

/// The condition's name as used in config and labels: "overloaded", "timed_out", ...
std::string_view to_string(errc e) noexcept;

/// The turret condition of `ec`, nullopt when `ec` is not an error. An error of no known condition is
/// errc::internal. `deadline_passed`: the request's deadline is in the past; a cancellation is then reported as
/// timed_out (a deadline cancels the request; the client should see "timed out", not "cancelled").
std::optional<errc> classify(const error_code& ec, bool deadline_passed = false) noexcept;

}  // namespace turret

template <>
struct boost::system::is_error_condition_enum<turret::errc> : std::true_type {};
