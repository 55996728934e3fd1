// The REST API: routing of a request to its handling, the error responses every route shares, and the routes that
// are not key-value operations (health, metrics, the document, subscribe). The key-value routes: rest_ops.cpp.
#include <services/http/openapi.hpp>
#include <services/http/rest_api.hpp>
#include <services/http/rest_codec.hpp>
#include <turret/error_mapping.hpp>
#include <turret/kv/admin.hpp>
#include <turret/kv/value_reply_builder.hpp>
#include <turret/metrics.hpp>
#include <turret/ops/run.hpp>

#include <boost/json.hpp>

#include <string>

namespace turret::http_frontend {

namespace json = boost::json;

std::string_view reason_phrase(int status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
  }
  return "Unknown";
}

void set_error(rest_response& out, int status, std::string_view code, std::string_view message) {
  out.status = status;
  out.content_type = "application/json";
  json::object err;
  err["code"] = code;
  err["message"] = valid_utf8(message) ? json::string(message) : json::string("(binary message)");
  json::object root;
  root["error"] = std::move(err);
  out.body = json::serialize(root);
}

void set_pipeline_error(rest_response& out, const error_code& ec, bool deadline_passed) {
  const http_error e = to_http_error(ec, deadline_passed);
  set_error(out, e.status, e.code, e.message);
  out.retry_after = e.retry_after;
  if (e.status == 401) out.www_authenticate = R"(Bearer realm="turret", Basic realm="turret")";
}

std::string describe_exception(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown exception";
  }
}

std::string set_exception_error(rest_response& out, const std::exception_ptr& e) {
  std::string what = describe_exception(e);
  bool oom = false;
  try {
    std::rethrow_exception(e);
  } catch (const std::bad_alloc&) {
    oom = true;
  } catch (...) {
  }
  out = rest_response{};
  if (oom) set_error(out, 503, "unavailable", "out of memory");
  else set_error(out, 500, "internal", "internal error");
  return what;
}

std::string sse_event(std::string_view pattern, std::string_view channel, std::string_view payload) {
  json::object o;
  const bool binary = !valid_utf8(channel) || !valid_utf8(payload) || !valid_utf8(pattern);
  auto enc = [&](std::string_view s) { return binary ? json::string(base64_encode(s)) : json::string(s); };
  if (!pattern.empty()) o["pattern"] = enc(pattern);
  o["channel"] = enc(channel);
  o["message"] = enc(payload);
  if (binary) o["encoding"] = "base64";
  std::string out = pattern.empty() ? "event: message\ndata: " : "event: pmessage\ndata: ";
  out += json::serialize(o);  // JSON escapes newlines: one data line
  out += "\n\n";
  return out;
}

rest_api::rest_api(env e) : env_(std::move(e)) {}

kv::command_meter& rest_api::command_meter() {
  thread_local kv::command_meter meter("http");  // connections of a listener share their thread's meter
  return meter;
}

bool rest_api::ready() const noexcept {
  if (env_.shutdown && env_.shutdown->draining()) return false;
  if (env_.state) return env_.state->load(std::memory_order_acquire) == server::server_state::ready;
  return true;
}

ops::target rest_api::target(kv::pipeline_service& pipeline, request_context& ctx, kv::session& sess) {
  return {pipeline, env_.backend->commands(), &rest_api::command_meter, ctx, sess};
}

awaitable<result<std::vector<kv::reply_value>>> rest_api::exec(request_context& ctx, kv::session& sess,
                                                               std::span<const std::string_view> args) {
  kv::value_reply_builder b(sess.resp);
  const kv::pipeline_handle_type::snapshot pin = env_.pipeline.load();  // the command finishes on this pipeline
  const result<kv::response> r = co_await ops::exec(target(*pin, ctx, sess), args, b);
  if (!r) co_return r.error();
  co_return b.take();
}

awaitable<void> rest_api::handle_admin_reload(request_context& ctx, kv::session& sess, rest_response& out) {
  const std::string_view args[] = {kv::reload_command_name};
  const kv::resolved_command cmd = kv::resolve_admin(kv::reload_command(), args);
  kv::value_reply_builder b(sess.resp);
  const kv::pipeline_handle_type::snapshot pin = env_.pipeline.load();  // finishes on this pipeline
  kv::request req{ctx, sess, args, b, &cmd};
  const result<kv::response> r = co_await kv::dispatch(*pin, req);
  if (!r) co_return set_pipeline_error(out, r.error());
  const std::vector<kv::reply_value> replies = b.take();
  if (replies.empty()) co_return set_error(out, 500, "internal", "no reply to the reload request");
  const kv::reply_value& v = replies.front();
  if (!v.is_error()) {
    out.status = 200;
    out.content_type = "application/json";
    out.body = v.str;
    co_return;
  }
  const std::string_view text = v.str;
  const std::string_view code = text.substr(0, text.find(' '));
  const std::string_view message = code.size() < text.size() ? text.substr(code.size() + 1) : std::string_view{};
  if (code == kv::invalid_config_code) co_return set_error(out, 400, "invalid_config", message);
  if (code == kv::reload_failed_code) co_return set_error(out, 500, "reload_failed", message);
  if (text.starts_with("ERR unknown command"))
    co_return set_error(out, 404, "not_available", "configuration reload is not available on this listener");
  set_status_error(out, ops::status::redis_error(text));  // an error reply of a layer on the way (NOAUTH: 401)
}

bool rest_api::try_handle_now(const rest_request& req, request_context& ctx, kv::session& sess, rest_response& out) {
  if (req.m != method::get && req.m != method::head) return false;
  const auto [path, qs] = split_target(req.target);
  if (!qs.empty()) return false;
  match_result m = match(req.m, path);
  if (m.r != route::kv_get) return false;
  const kv::pipeline_handle_type::snapshot pin = env_.pipeline.load();
  if (!pin->supports_immediate()) return false;
  const ops::get_op::input in{m.param};
  ops::get_op::output value;
  int step = 0;
  auto r = ops::run_now<ops::get_op>(target(*pin, ctx, sess), in, step, value);
  if (!r) return false;  // would suspend: nothing happened, handle() runs it
  if (succeeded(*r, out)) set_value(out, std::move(value.value));
  return true;
}

awaitable<void> rest_api::handle(const rest_request& req, request_context& ctx, kv::session& sess,
                                 rest_response& out) {
  const auto [path, qs] = split_target(req.target);
  match_result m = match(req.m, path);

  switch (m.r) {
    case route::not_found:
      set_error(out, 404, "not_found", "no such route");
      co_return;
    case route::method_not_allowed:
      set_error(out, 405, "method_not_allowed", "method not allowed on this route");
      out.allow = m.allow;
      co_return;
    case route::bad_request:
      set_error(out, 400, "bad_request", m.error);
      co_return;
    case route::healthz:
      set_json(out, 200, json::object{{"status", "ok"}});
      co_return;
    case route::readyz:
      if (ready()) {
        set_json(out, 200, json::object{{"status", "ready"}});
      } else {
        const auto st = env_.state ? to_string(env_.state->load()) : std::string_view("draining");
        set_json(out, 503, json::object{{"status", (env_.shutdown && env_.shutdown->draining()) ? "draining" : st}});
      }
      co_return;
    case route::metrics:
      out.status = 200;
      out.content_type = "text/plain; version=0.0.4; charset=utf-8";
      out.body = metrics::default_registry().expose();
      co_return;
    case route::openapi:
      out.status = 200;
      out.content_type = "application/json";
      out.body = std::string(openapi_json());
      co_return;
    default:
      break;
  }

  const query q = parse_query(qs);
  if (!q.ok) {
    set_error(out, 400, "bad_request", "malformed percent-encoding in query string");
    co_return;
  }
  if (!ready() && env_.shutdown && env_.shutdown->draining()) {
    set_error(out, 503, "unavailable", "server is shutting down");
    out.close = true;
    co_return;
  }

  if (m.r == route::admin_reload) co_return co_await handle_admin_reload(ctx, sess, out);
  if (m.r != route::subscribe) co_return co_await handle_kv(req, m, q, ctx, sess, out);

  // GET /v1/subscribe/{channel}: the connection holds the subscribed session (http_connection.cpp).
  bool pattern = false;
  if (!query_flag(q, "pattern", pattern)) co_return set_error(out, 400, "bad_request", "pattern takes true or false");
  const std::string_view args[] = {pattern ? "PSUBSCRIBE" : "SUBSCRIBE", m.param};
  auto r = co_await exec(ctx, sess, args);
  if (!r) co_return set_pipeline_error(out, r.error());
  for (const kv::reply_value& v : *r)
    if (v.is_error()) co_return set_status_error(out, ops::status::redis_error(v.str));
  out.status = 200;
  out.content_type = "text/event-stream";
  out.start_sse = true;
  json::object o;
  const bool bin = !valid_utf8(m.param);
  o[pattern ? "pattern" : "channel"] = bin ? json::string(base64_encode(m.param)) : json::string(m.param);
  if (bin) o["encoding"] = "base64";
  out.body = "event: subscribed\ndata: " + json::serialize(o) + "\n\n";
}

}  // namespace turret::http_frontend
