#pragma once
// The unary RPCs of turret.kv.v1.KV (every RPC but Scan and Subscribe): their grpc++ method handlers.
#include <services/grpc/grpc_call.hpp>

#include <memory>

namespace turret::grpc_frontend {

/// The grpc++ callback handler of the unary RPC `r`. It takes the request as raw bytes and decodes it itself, so that
/// an undecodable request gets INVALID_ARGUMENT (grpc++'s decoding would answer UNIMPLEMENTED); the response is the
/// generated message, serialised by grpc++. For the service to register with Service::MarkMethodRawCallback.
std::unique_ptr<grpc::internal::MethodHandler> make_unary_handler(rpc r, std::shared_ptr<listener_shared> sh);

}  // namespace turret::grpc_frontend
