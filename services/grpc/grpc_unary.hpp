#pragma once
// The unary RPCs of turret.kv.v1.KV (every RPC but Scan and Subscribe): their grpc++ method handlers.
#include <services/grpc/grpc_call.hpp>

#include <memory>

namespace turret::grpc_frontend {

/// The grpc++ callback handler of the unary RPC `r`, for the service to register with Service::MarkMethodCallback.
std::unique_ptr<grpc::internal::MethodHandler> make_unary_handler(rpc r, std::shared_ptr<listener_shared> sh);

}  // namespace turret::grpc_frontend
