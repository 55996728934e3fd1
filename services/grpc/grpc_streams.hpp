#pragma once
// The server-streaming RPCs of turret.kv.v1.KV, Scan and Subscribe: their grpc++ method handlers.
#include <services/grpc/grpc_call.hpp>

#include <memory>

namespace turret::grpc_frontend {

/// The grpc++ callback handler of the streaming RPC `r` (rpc::scan or rpc::subscribe; nullptr for any other). As
/// make_unary_handler: the request arrives as raw bytes (INVALID_ARGUMENT when undecodable), the responses are the
/// generated messages. For the service to register with Service::MarkMethodRawCallback.
std::unique_ptr<grpc::internal::MethodHandler> make_stream_handler(rpc r, std::shared_ptr<listener_shared> sh);

}  // namespace turret::grpc_frontend
