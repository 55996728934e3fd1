#pragma once
// rest_api: the REST semantics of the HTTP front end, independent of the HTTP codec (no Beast here).
//
// The connection (http_connection.cpp, the only Beast translation unit) parses a request, hands method, target,
// body and a few headers to rest_api::handle, and serialises the rest_response it gets back. handle() routes the
// request (router.hpp); a key-value route becomes an operation of <turret/ops/operations.hpp>, the table the gRPC
// front end shares (the same input rules, commands and interpretation of replies): rest_ops.cpp decodes the request
// into the operation's input, the drivers of <turret/ops/run.hpp> send its commands through the listener's pipeline
// (the same layers and core as every other front end; each kv::request carries the connection's session, the
// request's context and its resolved command), and rest_codec.cpp maps the outcome to a status and a body.
//
// Mapping (REST -> operation -> kv command -> status):
//   GET/HEAD /v1/kv/{key}        get: GET key                 200 value | 404
//   PUT      /v1/kv/{key}        set with return_previous: SET key body [PX ms] [NX|XX] GET
//                                                             201 created | 200 replaced | 412 NX/XX failed
//   DELETE   /v1/kv/{key}        delete (not_found_when_none): DEL key   204 | 404
//   POST     /v1/kv/{key}/incr   incr: INCRBY key by          200 JSON number
//   GET      /v1/kv/{key}/ttl    ttl: PTTL key                200 {"ttl_ms": n|null} | 404
//   PUT      /v1/kv/{key}/ttl    expire: PEXPIRE key ms       204 | 404
//   DELETE   /v1/kv/{key}/ttl    persist: PERSIST key (+EXISTS)          204 | 404
//   POST     /v1/kv:mget         mget: MGET k...              200 {"values": [...], "encoding": ...}
//   POST     /v1/kv:mset         mset: MSET / MSETNX k v ...  204 | 412 (nx and a key existed)
//   GET      /v1/kv              scan steps: SCAN cursor MATCH prefix* COUNT limit   200 {"keys": [...], "next_cursor": ...}
//   POST     /v1/publish/{ch}    publish: PUBLISH ch body     200 {"receivers": n}
//   GET      /v1/subscribe/{ch}  SUBSCRIBE ch | PSUBSCRIBE ch (?pattern=true)   text/event-stream
//   POST     /admin/reload       TURRET.RELOAD (<turret/kv/admin.hpp>), through the pipeline as an @admin request:
//                                200 JSON summary | 400 invalid_config | 500 reload_failed | 404 not_available (the
//                                pipeline does not end in an admin endpoint) | the pipeline's errors (an auth layer)
// Errors: JSON {"error":{"code":"...","message":"..."}}. Pipeline errors: a timeout layer's `elapsed` -> 504,
// limits / overload -> 429, cancelled (draining) -> 503, anything else -> 500. Operation outcomes and Redis error
// replies: see rest_codec.hpp (not_found 404, precondition_failed 412, invalid_argument 400; WRONGTYPE and
// non-integer values 409, NOAUTH 401, OOM 503, other 400). An exception escaping a request's handling:
// std::bad_alloc -> 503, anything else -> 500 (set_exception_error).
//
// Input rules, the same on every route and over gRPC (<turret/ops/rules.hpp>): a TTL (ttl / ttl_ms) is a positive
// number of milliseconds. REST's own: a key is a non-empty byte string (key_error, router.hpp) whether it comes from
// the path or a JSON body; a JSON body is an object with the route's fields only (an unknown field is a 400 naming
// it); base64 is RFC 4648's standard alphabet, padded and canonical.
#include <services/http/http_options.hpp>
#include <services/http/router.hpp>
#include <turret/kv/backend.hpp>
#include <turret/kv/dispatch.hpp>
#include <turret/kv/request.hpp>
#include <turret/kv/reply.hpp>
#include <turret/kv/frontend.hpp>

#include <atomic>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace turret::ops {
struct target;
}  // namespace turret::ops

namespace turret::http_frontend {

/// What the codec extracted from a request.
struct rest_request {
  method m = method::other;
  std::string_view target;        ///< origin-form target, e.g. "/v1/kv/a%2Fb?ttl=30s"
  std::string_view body;
  bool has_framing = false;       ///< Content-Length or Transfer-Encoding: chunked was present
};

/// What the codec serialises. `content_type` points to static storage.
struct rest_response {
  int status = 200;
  std::string_view content_type = "application/json";
  std::string body;
  std::string_view allow;         ///< Allow header (405)
  int retry_after = 0;            ///< Retry-After header in seconds (429, 503 from a layer); 0 = none
  std::string_view www_authenticate;  ///< WWW-Authenticate header (401 from a layer: the schemes the auth layer takes)
  bool close = false;             ///< close the connection after this response
  bool start_sse = false;         ///< subscribe: write event-stream headers, `body` is the first event, then stream
};

/// The reason phrase of a status code.
std::string_view reason_phrase(int status) noexcept;
/// Sets `out` to a JSON error response.
void set_error(rest_response& out, int status, std::string_view code, std::string_view message);
/// Maps a pipeline error (not a Redis error reply) to its response: <turret/error_mapping.hpp>, the table every
/// front end uses; a 401 (errc::unauthenticated) carries `WWW-Authenticate: Bearer realm="turret", Basic
/// realm="turret"` (the credentials the auth layer accepts, RFC 9110 11.6.1). `deadline_passed`: a cancellation after the request's deadline is a timeout.
void set_pipeline_error(rest_response& out, const error_code& ec, bool deadline_passed = false);
/// Replaces `out` with the response to an exception that escaped a request's handling: std::bad_alloc -> 503
/// "unavailable", message "out of memory" (memory is short now and a retry may succeed: the status Redis's -OOM gets
/// here too); anything else -> 500 "internal". The body never carries the exception's text (it may expose internals);
/// the returned description is for the server's log.
std::string set_exception_error(rest_response& out, const std::exception_ptr& e);
/// The what() of an exception (or "unknown exception"), for logs.
std::string describe_exception(const std::exception_ptr& e);

/// Encodes one pub/sub message as a Server-Sent Event: `event: message` and one `data:` line holding
/// {"channel":...,"message":...} (plus "pattern" for pattern subscriptions; values base64 with "encoding":"base64"
/// when not valid UTF-8).
std::string sse_event(std::string_view pattern, std::string_view channel, std::string_view payload);

/// True when `s` is valid UTF-8.
bool valid_utf8(std::string_view s) noexcept;
/// Base64 of RFC 4648 section 4 (standard alphabet, padded).
std::string base64_encode(std::string_view in);
/// The inverse of base64_encode, accepting only its output: a multiple of 4 characters of the standard alphabet,
/// '=' padding only at the end, zero unused bits (RFC 4648 3.5). nullopt for anything else ("YQ", "YR==", "=", "-_").
std::optional<std::string> base64_decode(std::string_view in);

class rest_api {
 public:
  struct env {
    kv::pipeline_handle_type pipeline;  ///< each command pins a snapshot (load())
    std::shared_ptr<kv::backend> backend;
    const std::atomic<server::server_state>* state = nullptr;  ///< null: always ready unless draining
    shutdown_coordinator* shutdown = nullptr;
    http_options opts;
  };
  explicit rest_api(env e);

  /// Handles one request for the session of its connection; `ctx` carries the request id. Errors are responses;
  /// an exception (std::bad_alloc, or anything a pipeline layer throws) propagates, and the connection answers it
  /// with set_exception_error (the same for try_handle_now).
  awaitable<void> handle(const rest_request& req, request_context& ctx, kv::session& sess, rest_response& out);

  /// Synchronous fast path (GET /v1/kv/{key} when the whole pipeline completes without suspending): true when the
  /// request was handled into `out`; false = nothing happened, use handle().
  bool try_handle_now(const rest_request& req, request_context& ctx, kv::session& sess, rest_response& out);

  /// Runs one command through the pipeline (resolved, counted); its top-level replies, or the pipeline's error.
  awaitable<result<std::vector<kv::reply_value>>> exec(request_context& ctx, kv::session& sess,
                                                       std::span<const std::string_view> args);

  /// Readiness as /readyz reports it.
  bool ready() const noexcept;

  const http_options& options() const noexcept { return env_.opts; }
  kv::backend& backend() noexcept { return *env_.backend; }
  static kv::command_meter& command_meter();

 private:
  /// Where the commands of a request go (<turret/ops/run.hpp>): `pipeline` (a pinned snapshot), the backend's
  /// table, this front end's metrics.
  ops::target target(kv::pipeline_service& pipeline, request_context& ctx, kv::session& sess);
  /// The key-value routes (rest_ops.cpp): the request as an operation's input, run, its outcome as the response.
  awaitable<void> handle_kv(const rest_request& req, const match_result& m, const query& q, request_context& ctx,
                            kv::session& sess, rest_response& out);
  /// POST /admin/reload: the reload request through the pipeline, its reply as the response.
  awaitable<void> handle_admin_reload(request_context& ctx, kv::session& sess, rest_response& out);
  /// Runs `Op` on a pinned snapshot of the pipeline; true when it succeeded (`o` holds its output), else `out` holds
  /// the error response.
  template <class Op>
  awaitable<bool> run(request_context& ctx, kv::session& sess, const typename Op::input& in,
                      typename Op::output& o, rest_response& out);

  env env_;
};

}  // namespace turret::http_frontend
