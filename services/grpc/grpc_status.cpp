#include <services/grpc/grpc_status.hpp>
#include <turret/error_mapping.hpp>

#include <boost/asio/error.hpp>
#include <boost/system/errc.hpp>

#include <cstring>

namespace turret::grpc_frontend {

namespace {

bool starts_with(std::string_view s, std::string_view p) noexcept { return s.substr(0, p.size()) == p; }
bool contains(std::string_view s, std::string_view p) noexcept { return s.find(p) != std::string_view::npos; }

}  // namespace

::grpc::StatusCode pipeline_error_code(const error_code& ec, bool deadline_passed) noexcept {
  if (!ec) return ::grpc::StatusCode::OK;
  return static_cast<::grpc::StatusCode>(to_grpc_error(ec, deadline_passed).code);
}

::grpc::StatusCode reply_error_code(std::string_view e) noexcept {
  using ::grpc::StatusCode;
  if (starts_with(e, "WRONGTYPE")) return StatusCode::FAILED_PRECONDITION;
  if (starts_with(e, "NOAUTH") || starts_with(e, "WRONGPASS")) return StatusCode::UNAUTHENTICATED;
  if (starts_with(e, "NOPERM")) return StatusCode::PERMISSION_DENIED;
  if (starts_with(e, "OOM")) return StatusCode::RESOURCE_EXHAUSTED;
  if (starts_with(e, "LOADING") || starts_with(e, "BUSY") || starts_with(e, "MASTERDOWN") ||
      contains(e, "shutting down"))
    return StatusCode::UNAVAILABLE;
  if (contains(e, "max number of clients")) return StatusCode::RESOURCE_EXHAUSTED;
  if (contains(e, "not an integer") || contains(e, "overflow") || contains(e, "not a valid float") ||
      contains(e, "is not a float"))
    return StatusCode::FAILED_PRECONDITION;
  if (contains(e, "syntax error") || contains(e, "wrong number of arguments") || contains(e, "invalid") ||
      contains(e, "out of range") || contains(e, "not allowed"))
    return StatusCode::INVALID_ARGUMENT;
  return StatusCode::INTERNAL;
}

::grpc::Status to_status(const ops::status& st) {
  using ::grpc::StatusCode;
  switch (st.code) {
    case ops::outcome::ok: return ::grpc::Status();
    case ops::outcome::not_found: return {StatusCode::NOT_FOUND, st.message};
    case ops::outcome::precondition_failed: return {StatusCode::FAILED_PRECONDITION, st.message};
    case ops::outcome::invalid_argument: return {StatusCode::INVALID_ARGUMENT, st.message};
    case ops::outcome::redis_error: return {reply_error_code(st.message), st.message};
    case ops::outcome::unexpected: break;
  }
  return {StatusCode::INTERNAL, st.message};
}

std::string_view status_code_name(::grpc::StatusCode code) noexcept {
  static constexpr std::string_view names[] = {
      "OK",        "CANCELLED",          "UNKNOWN",           "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
      "OUT_OF_RANGE", "UNIMPLEMENTED",   "INTERNAL",          "UNAVAILABLE",      "DATA_LOSS",         "UNAUTHENTICATED"};
  const auto i = static_cast<unsigned>(code);
  return i < std::size(names) ? names[i] : names[2];
}

}  // namespace turret::grpc_frontend
