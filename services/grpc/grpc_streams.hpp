#pragma once
// The server-streaming RPCs of turret.kv.v1.KV, Scan and Subscribe: their grpc++ method handlers.
#include <services/grpc/grpc_call.hpp>

#include <memory>

namespace turret::grpc_frontend {

/// The grpc++ callback handler of the streaming RPC `r` (rpc::scan or rpc::subscribe; nullptr for any other), for
/// the service to register with Service::MarkMethodCallback.
std::unique_ptr<grpc::internal::MethodHandler> make_stream_handler(rpc r, std::shared_ptr<listener_shared> sh);

}  // namespace turret::grpc_frontend
