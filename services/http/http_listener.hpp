#pragma once
// The HTTP/1.1 front end of turretd (Boost.Beast, one coroutine per connection), registered as protocol "http" in
// turretd's frontend_registry. REST semantics live in rest_api.hpp; the codec and connections in http_connection.hpp
// (http_connection.cpp is the only translation unit that includes Beast), request framing (RFC 9112) in
// message_framing.hpp, and the listener in http_server.cpp.
//
// Connection model (as the RESP front end): one acceptor on runtime context 0; accepted sockets are spread round
// robin over the worker contexts and stay there. Per connection: one kv::session (attached to the store, visible in
// CLIENT LIST with protocol "http"), one request_context reused per request (protocol "http", peer, request id from
// x-request-id or generated, echoed in the response), requests answered in order (keep-alive and pipelining).
//
// Timeouts (a slowloris client cannot hold a connection): a per-connection watchdog ticks a few times per second and
// compares a deadline that the connection moves as it goes: idle_timeout while waiting for a request,
// header_timeout from the first byte of a request to the end of its headers, body_timeout for the body. A request
// that times out mid-way gets 408 and the connection is closed.
//
// Server-Sent Events (GET /v1/subscribe/{channel}): the connection is the session's session_host; deliver() (called
// by the store under its lock, from any thread) appends the encoded event to a bounded outbox and wakes the
// connection, which writes it as one chunk. A subscriber whose outbox exceeds sse_buffer_bytes is disconnected.
#include <services/http/http_options.hpp>
#include <turret/kv/frontend.hpp>

#include <memory>

namespace turret::http_frontend {

/// The "http" protocol for turretd's frontend_registry: parses a listener's `http:` section (http_options.hpp) and
/// creates HTTP listeners.
kv::frontend make_frontend();

/// Creates an HTTP listener directly (tests); env.options must hold an http_options (or be empty: defaults).
std::unique_ptr<server::listener> make_listener(kv::listener_env env);

}  // namespace turret::http_frontend
