#pragma once
// Mapping of turret's errors and of the operations' outcomes to gRPC statuses (kept free of grpc++ headers except
// the status types, so it is cheap to include and to unit-test).
//
// The outcomes of the key-value operations (<turret/ops/operations.hpp>), to_status(): not_found -> NOT_FOUND,
// precondition_failed -> FAILED_PRECONDITION, invalid_argument -> INVALID_ARGUMENT, unexpected -> INTERNAL, a Redis
// error reply -> reply_error_code() below; the message is the outcome's (the same text REST answers with).
//
// Two sources of errors besides:
// - the pipeline (error_code from a layer): timeout elapsed -> DEADLINE_EXCEEDED; cancelled -> CANCELLED (or
//   DEADLINE_EXCEEDED when the request's deadline has passed); limits/overload/rate -> RESOURCE_EXHAUSTED;
//   draining/shutting down -> UNAVAILABLE; anything else -> INTERNAL.
// - Redis error replies of the core ("WRONGTYPE ...", "ERR syntax error", "NOAUTH ..."): see reply_error_code().
#include <turret/ops/operations.hpp>
#include <turret/result.hpp>

#include <grpcpp/support/status.h>
#include <grpcpp/support/status_code_enum.h>

#include <string_view>

namespace turret::grpc_frontend {

/// Status code for an error returned by the pipeline (<turret/error_mapping.hpp>, the table of every front end).
/// `deadline_passed`: the request's deadline is in the past.
::grpc::StatusCode pipeline_error_code(const error_code& ec, bool deadline_passed) noexcept;

/// Status code for a Redis error reply (the text without the leading '-'):
///   WRONGTYPE, "ERR value is not an integer", "... would overflow", "ERR ... not a valid float" -> FAILED_PRECONDITION
///   "ERR syntax error", "ERR wrong number of arguments", "ERR invalid ..." -> INVALID_ARGUMENT
///   NOAUTH, WRONGPASS -> UNAUTHENTICATED; NOPERM -> PERMISSION_DENIED
///   OOM, "ERR max number of clients" -> RESOURCE_EXHAUSTED; LOADING, BUSY, MASTERDOWN, "... shutting down" -> UNAVAILABLE
///   anything else -> INTERNAL.
::grpc::StatusCode reply_error_code(std::string_view redis_error) noexcept;

/// The status of an operation's outcome (OK for ok).
::grpc::Status to_status(const ops::status& st);

/// The canonical name of a status code ("OK", "NOT_FOUND", ... as in grpc's status.proto), the `status` label of
/// the gRPC front end's request metrics; "UNKNOWN" for a value outside the enum.
std::string_view status_code_name(::grpc::StatusCode code) noexcept;

}  // namespace turret::grpc_frontend
