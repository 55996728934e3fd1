#pragma once
// The gRPC front end of turretd (service turret.kv.v1.KV, protos/turret/kv/v1/kv.proto): registered as protocol
// "grpc" in turretd's frontend_registry.
//
// Design
// - grpc++ callback API (ServerUnaryReactor for unary RPCs, ServerWriteReactor for Scan and Subscribe). grpc's
//   threads never block: a unary call runs inline on grpc's thread when every layer of the pipeline has the
//   synchronous fast path (try_call_now, which never waits); otherwise, and for the streams, the handler builds a
//   per-call state (request_context with protocol "grpc", peer, request id from metadata `x-request-id` or
//   generated, deadline = the client's deadline; a kv::session) and posts it to one of the runtime's io_contexts
//   (round robin) with co_spawn. There the call's kv::request(s) go through the listener's pipeline (ready + call)
//   into the core, and the reactor is finished from the runtime thread.
// - Cancellation: a call cancelled by the client (OnCancel) posts request_context::cancel() to the call's executor,
//   so that a layer waiting for readiness (concurrency limit) or a timer wakes with operation_aborted.
// - Status codes: see kv.proto (NOT_FOUND, FAILED_PRECONDITION, INVALID_ARGUMENT, RESOURCE_EXHAUSTED,
//   DEADLINE_EXCEEDED, UNAVAILABLE while draining, CANCELLED). Every method takes its request as raw bytes and
//   decodes it in the handler: an undecodable request is INVALID_ARGUMENT (grpc++'s typed methods would answer
//   UNIMPLEMENTED before any handler runs).
// - Exceptions: whatever is thrown while serving a call (the pipeline, building a response, allocating the call)
//   finishes it exactly once, with RESOURCE_EXHAUSTED for std::bad_alloc / std::length_error and INTERNAL for
//   anything else, and is logged; reactor callbacks never throw into grpc (grpc_call.hpp, call_base).
// - Scan: SCAN batches on the runtime; a `limit` cuts a call only between SCAN steps, so its cursor resumes without
//   loss (the cursor contract is in kv.proto).
// - Subscribe: a kv::session opened on the backend (kv::session_guard: closed however the stream ends) whose
//   session_host::deliver() queues messages (bounded by `subscribe_buffer`) for a ServerWriteReactor; one write in
//   flight at a time.
// - grpc.health.v1 follows the server state (SERVING once turretd is ready, NOT_SERVING from stop_accepting());
//   server reflection is on (both configurable).
// - Shutdown: stop_accepting() marks the listener draining (new calls: UNAVAILABLE), ends Subscribe streams with
//   UNAVAILABLE and shuts the grpc server down on a helper thread with the coordinator's grace as deadline (grpc
//   waits for in-flight calls, then cancels them); every open call counts as in-flight work.
//
// Files: grpc_call (what every call shares), grpc_unary + grpc_unary_ops (unary RPCs), grpc_streams (Scan,
// Subscribe), grpc_listener.cpp (the service's method table and the listener); each includes only those before it.
#include <services/grpc/grpc_options.hpp>
#include <turret/kv/frontend.hpp>

#include <memory>

namespace turret::grpc_frontend {

/// The "grpc" protocol for turretd's frontend_registry: parses a listener's `grpc:` section into grpc_options and
/// creates gRPC listeners.
kv::frontend make_frontend();

/// Creates a gRPC listener directly (tests); env.options must hold a grpc_options (or be empty: defaults).
std::unique_ptr<server::listener> make_listener(kv::listener_env env);

}  // namespace turret::grpc_frontend
