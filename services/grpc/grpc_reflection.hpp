#pragma once
// gRPC server reflection (grpc.reflection.v1 and v1alpha) on grpc++'s callback API.
//
// grpc++ ships reflection as libgrpc++_reflection, a *synchronous* service that its static initialiser adds to every
// server of the process. A synchronous service makes grpc++ start a thread pool that polls the server's completion
// queues; on a callback-API server those threads compete with the callback pollers for every call's I/O. This
// implementation answers the same protocol from the callback pollers,
// from the protobuf generated descriptor pool, and is only registered when the listener enables reflection.
//
// Behaviour follows grpc++'s ProtoServerReflection: one response per request, in order; file answers carry the file
// and its transitive dependencies (each once per answer); unknown names get an ErrorResponse with NOT_FOUND; a
// request without a known message_request gets UNIMPLEMENTED.
#include <grpcpp/impl/codegen/service_type.h>

#include <memory>
#include <string>
#include <vector>

namespace turret::grpc_frontend {

/// The two reflection services (v1 and v1alpha), listing `service_names` (plus themselves) in list_services.
std::vector<std::unique_ptr<grpc::Service>> make_reflection_services(std::vector<std::string> service_names);

}  // namespace turret::grpc_frontend
