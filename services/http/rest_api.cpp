#include <services/http/openapi.hpp>
#include <services/http/rest_api.hpp>
#include <turret/error_mapping.hpp>
#include <turret/kv/value_reply_builder.hpp>
#include <turret/metrics.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
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
}

bool valid_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* e = p + s.size();
  while (p < e) {
    const unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int n;
    std::uint32_t cp;
    if ((c & 0xE0) == 0xC0) n = 1, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) n = 2, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) n = 3, cp = c & 0x07;
    else return false;
    if (e - p <= n) return false;
    for (int i = 1; i <= n; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    p += n + 1;
  }
  return true;
}

std::string base64_encode(std::string_view in) {
  static constexpr char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  const auto* d = reinterpret_cast<const unsigned char*>(in.data());
  for (; i + 2 < in.size(); i += 3) {
    const std::uint32_t v = (d[i] << 16) | (d[i + 1] << 8) | d[i + 2];
    out.push_back(tbl[v >> 18]);
    out.push_back(tbl[(v >> 12) & 63]);
    out.push_back(tbl[(v >> 6) & 63]);
    out.push_back(tbl[v & 63]);
  }
  if (i + 1 == in.size()) {
    const std::uint32_t v = d[i] << 16;
    out.push_back(tbl[v >> 18]);
    out.push_back(tbl[(v >> 12) & 63]);
    out += "==";
  } else if (i + 2 == in.size()) {
    const std::uint32_t v = (d[i] << 16) | (d[i + 1] << 8);
    out.push_back(tbl[v >> 18]);
    out.push_back(tbl[(v >> 12) & 63]);
    out.push_back(tbl[(v >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
  // RFC 4648 section 4 (the standard alphabet), canonical encodings only (section 3.5): a multiple of 4 characters,
  // '=' only as the last one or two, and the unused low bits of the last symbol zero. Every byte string then has
  // exactly one accepted spelling, so two different strings in a request never name the same key.
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (in.size() % 4 != 0) return std::nullopt;
  std::size_t pad = 0;
  while (pad < 2 && pad < in.size() && in[in.size() - 1 - pad] == '=') ++pad;
  in.remove_suffix(pad);
  std::string out;
  out.reserve(in.size() / 4 * 3 + 2);
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = val(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;  // non-zero unused bits ("YR==" for "a")
  return out;
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

namespace {

/// Maps a Redis error reply to a status.
void set_reply_error(rest_response& out, std::string_view err) {
  if (err.starts_with("WRONGTYPE")) return set_error(out, 409, "wrong_type", err);
  if (err.starts_with("NOAUTH") || err.starts_with("WRONGPASS")) return set_error(out, 401, "unauthorized", err);
  if (err.find("not an integer") != std::string_view::npos || err.find("overflow") != std::string_view::npos)
    return set_error(out, 409, "not_integer", err);
  if (err.starts_with("OOM") || err.starts_with("BUSY") || err.starts_with("LOADING"))
    return set_error(out, 503, "unavailable", err);
  set_error(out, 400, "command_error", err);
}

void set_json(rest_response& out, int status, const json::value& v) {
  out.status = status;
  out.content_type = "application/json";
  out.body = json::serialize(v);
}

void set_no_content(rest_response& out) {
  out.status = 204;
  out.content_type = {};
  out.body.clear();
}

/// The TTL of a request, the one rule of every route that takes one: ?ttl_ms=1500 (wins) or ?ttl=30s, a positive number
/// of milliseconds. `ms` stays empty when neither is given; false (with `out` set to a 400) when malformed or not
/// positive.
bool query_ttl(const query& q, std::optional<long long>& ms, rest_response& out) {
  std::optional<long long> v;
  std::string_view malformed;
  if (auto t = q.get("ttl_ms")) {
    v = parse_int(*t);
    malformed = "invalid ttl_ms (milliseconds, e.g. ttl_ms=1500)";
  } else if (auto t = q.get("ttl")) {
    v = parse_ttl_ms(*t);
    malformed = "invalid ttl (e.g. ttl=30s, ttl=1500ms, ttl_ms=1500)";
  } else {
    return true;
  }
  if (!v || *v <= 0) {
    set_error(out, 400, "bad_request", v ? "ttl must be positive" : malformed);
    return false;
  }
  ms = v;
  return true;
}

bool query_flag(const query& q, std::string_view name, bool& out) {
  auto v = q.get(name);
  if (!v) {
    out = false;
    return true;
  }
  auto b = parse_bool(*v);
  if (!b) return false;
  out = *b;
  return true;
}

/// Glob-escapes a literal prefix for MATCH (Redis stringmatchlen specials: * ? [ ] \).
std::string glob_prefix(std::string_view prefix) {
  std::string out;
  for (char c : prefix) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('*');
  return out;
}

/// Reads a string (or base64 string) from a JSON value; nullopt when not a string or bad base64.
std::optional<std::string> json_bytes(const json::value& v, bool b64) {
  if (!v.is_string()) return std::nullopt;
  const auto& s = v.get_string();
  if (b64) return base64_decode(std::string_view(s.data(), s.size()));
  return std::string(s.data(), s.size());
}

/// A key of a JSON body (an object's field name or a string of an array): base64-decoded when `b64`, then held to the
/// key rule of every route (key_error, router.hpp). Sets a 400 and returns nullopt when refused.
std::optional<std::string> body_key(std::string_view text, bool b64, rest_response& out) {
  std::optional<std::string> key = b64 ? base64_decode(text) : std::optional<std::string>(text);
  if (!key) {
    set_error(out, 400, "bad_request", "keys must be canonical base64 (RFC 4648, padded) with \"encoding\":\"base64\"");
    return std::nullopt;
  }
  if (const std::string_view why = key_error(*key); !why.empty()) {
    set_error(out, 400, "bad_request", why);
    return std::nullopt;
  }
  return key;
}

/// Parses a JSON body: an object with the fields `known` (plus "encoding") and no other. Sets an error (400, naming
/// an unknown field) and returns false on failure.
bool parse_body(std::string_view body, std::initializer_list<std::string_view> known, json::object& obj, bool& b64,
                rest_response& out) {
  json::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) {
    set_error(out, 400, "bad_json", ec ? "request body is not valid JSON: " + ec.message() : "expected a JSON object");
    return false;
  }
  obj = std::move(v.get_object());
  for (const auto& field : obj) {
    const std::string_view name(field.key().data(), field.key().size());
    if (name != "encoding" && std::find(known.begin(), known.end(), name) == known.end()) {
      set_error(out, 400, "bad_request", "unknown field \"" + std::string(name) + "\"");
      return false;
    }
  }
  b64 = false;
  if (auto* e = obj.if_contains("encoding")) {
    if (!e->is_string() || (e->get_string() != "base64" && e->get_string() != "utf8" && e->get_string() != "utf-8")) {
      set_error(out, 400, "bad_request", "encoding must be \"utf8\" or \"base64\"");
      return false;
    }
    b64 = e->get_string() == "base64";
  }
  return true;
}

/// JSON array of byte strings (null for null replies) in utf8 or base64 (forced when any string is not UTF-8).
void bytes_array(json::object& root, std::string_view field, const std::vector<const kv::reply_value*>& items,
                 bool b64) {
  if (!b64)
    for (const auto* it : items)
      if (it && it->type != kv::reply_value::kind::null && !valid_utf8(it->str)) b64 = true;
  json::array arr;
  arr.reserve(items.size());
  for (const auto* it : items) {
    if (!it || it->type == kv::reply_value::kind::null) arr.emplace_back(nullptr);
    else arr.emplace_back(b64 ? json::string(base64_encode(it->str)) : json::string(it->str));
  }
  root[field] = std::move(arr);
  root["encoding"] = b64 ? "base64" : "utf8";
}

}  // namespace

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

awaitable<result<kv::reply_value>> rest_api::exec(request_context& ctx, kv::session& sess,
                                                  std::span<const std::string_view> args) {
  kv::value_reply_builder b(sess.resp);
  kv::request req{ctx, sess, args, b};
  const kv::pipeline_handle_type::snapshot pin = env_.pipeline.load();  // the command finishes on this pipeline
  const auto t0 = kv::command_meter::clock::now();
  const result<kv::response> r = co_await kv::dispatch(*pin, req);
  command_meter().record(env_.backend->commands().find(args[0]), r, t0, kv::command_meter::clock::now());
  if (!r) co_return r.error();
  auto replies = b.take();
  if (replies.empty()) co_return kv::reply_value{};
  co_return std::move(replies.front());
}

namespace {
void finish_get(result<kv::reply_value>& r, rest_response& out) {
  if (!r) return set_pipeline_error(out, r.error());
  if (r->is_error()) return set_reply_error(out, r->str);
  if (r->is_null()) return set_error(out, 404, "not_found", "key not found");
  out.status = 200;
  out.content_type = "application/octet-stream";
  out.body = std::move(r->str);
}
}  // namespace

bool rest_api::try_handle_now(const rest_request& req, request_context& ctx, kv::session& sess, rest_response& out) {
  if (req.m != method::get && req.m != method::head) return false;
  const auto [path, qs] = split_target(req.target);
  if (!qs.empty()) return false;
  match_result m = match(req.m, path);
  if (m.r != route::kv_get) return false;
  const kv::pipeline_handle_type::snapshot pin = env_.pipeline.load();
  if (!pin->supports_immediate()) return false;
  const std::string_view args[] = {"GET", m.param};
  kv::value_reply_builder b(sess.resp);
  kv::request kreq{ctx, sess, args, b};
  const auto t0 = kv::command_meter::clock::now();
  auto now = kv::dispatch_now(*pin, kreq);
  if (!now) return false;
  command_meter().record(env_.backend->commands().find(args[0]), *now, t0, kv::command_meter::clock::now());
  result<kv::reply_value> r = kv::reply_value{};
  if (!*now) {
    r = now->error();
  } else {
    auto replies = b.take();
    if (!replies.empty()) r = std::move(replies.front());
  }
  finish_get(r, out);
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

  auto fail = [&](const error_code& ec) { set_pipeline_error(out, ec); };

  switch (m.r) {
    case route::kv_get: {
      const std::string_view args[] = {"GET", m.param};
      auto r = co_await exec(ctx, sess, args);
      co_return finish_get(r, out);
    }
    case route::kv_put: {
      if (!req.has_framing) co_return set_error(out, 411, "length_required", "Content-Length or chunked body required");
      std::optional<long long> ttl;
      if (!query_ttl(q, ttl, out)) co_return;
      bool nx = false, xx = false, get = false;
      if (!query_flag(q, "nx", nx) || !query_flag(q, "xx", xx) || !query_flag(q, "get", get))
        co_return set_error(out, 400, "bad_request", "nx, xx and get take true or false");
      if (nx && xx) co_return set_error(out, 400, "bad_request", "nx and xx are mutually exclusive");
      std::string ms;
      std::string_view args[7];
      std::size_t n = 0;
      args[n++] = "SET";
      args[n++] = m.param;
      args[n++] = req.body;
      if (ttl) {
        ms = std::to_string(*ttl);
        args[n++] = "PX";
        args[n++] = ms;
      }
      if (nx) args[n++] = "NX";
      if (xx) args[n++] = "XX";
      args[n++] = "GET";
      auto r = co_await exec(ctx, sess, std::span<const std::string_view>(args, n));
      if (!r) co_return fail(r.error());
      if (r->is_error()) co_return set_reply_error(out, r->str);
      const bool existed = !r->is_null();
      if ((nx && existed) || (xx && !existed))
        co_return set_error(out, 412, "precondition_failed", nx ? "key already exists (nx)" : "key does not exist (xx)");
      out.status = existed ? 200 : 201;
      if (get && existed) {
        out.content_type = "application/octet-stream";
        out.body = std::move(r->str);
      } else {
        out.content_type = {};
        out.body.clear();
      }
      co_return;
    }
    case route::kv_delete: {
      const std::string_view args[] = {"DEL", m.param};
      auto r = co_await exec(ctx, sess, args);
      if (!r) co_return fail(r.error());
      if (r->is_error()) co_return set_reply_error(out, r->str);
      if (r->integer == 0) co_return set_error(out, 404, "not_found", "key not found");
      co_return set_no_content(out);
    }
    case route::kv_incr: {
      std::string_view by = "1";
      if (auto b = q.get("by")) {
        if (!parse_int(*b)) co_return set_error(out, 400, "bad_request", "by must be a 64-bit integer");
        by = *b;
        if (!by.empty() && by.front() == '+') by.remove_prefix(1);
      }
      const std::string_view args[] = {"INCRBY", m.param, by};
      auto r = co_await exec(ctx, sess, args);
      if (!r) co_return fail(r.error());
      if (r->is_error()) co_return set_reply_error(out, r->str);
      out.status = 200;
      out.content_type = "application/json";
      out.body = std::to_string(r->integer);
      co_return;
    }
    case route::ttl_get: {
      const std::string_view args[] = {"PTTL", m.param};
      auto r = co_await exec(ctx, sess, args);
      if (!r) co_return fail(r.error());
      if (r->is_error()) co_return set_reply_error(out, r->str);
      if (r->integer == -2) co_return set_error(out, 404, "not_found", "key not found");
      json::object o;
      if (r->integer < 0) o["ttl_ms"] = nullptr;
      else o["ttl_ms"] = r->integer;
      co_return set_json(out, 200, o);
    }
    case route::ttl_put: {
      std::optional<long long> ttl;
      if (!query_ttl(q, ttl, out)) co_return;
      if (!ttl) co_return set_error(out, 400, "bad_request", "ttl or ttl_ms query parameter required (e.g. ttl=30s)");
      const std::string ms = std::to_string(*ttl);
      const std::string_view args[] = {"PEXPIRE", m.param, ms};
      auto r = co_await exec(ctx, sess, args);
      if (!r) co_return fail(r.error());
      if (r->is_error()) co_return set_reply_error(out, r->str);
      if (r->integer == 0) co_return set_error(out, 404, "not_found", "key not found");
      co_return set_no_content(out);
    }
    case route::ttl_delete: {
      const std::string_view args[] = {"PERSIST", m.param};
      auto r = co_await exec(ctx, sess, args);
      if (!r) co_return fail(r.error());
      if (r->is_error()) co_return set_reply_error(out, r->str);
      if (r->integer == 0) {
        const std::string_view ex[] = {"EXISTS", m.param};
        auto e = co_await exec(ctx, sess, ex);
        if (!e) co_return fail(e.error());
        if (e->integer == 0) co_return set_error(out, 404, "not_found", "key not found");
      }
      co_return set_no_content(out);
    }
    case route::kv_mget: {
      json::object body;
      bool b64 = false;
      if (!parse_body(req.body, {"keys"}, body, b64, out)) co_return;
      const auto* keys = body.if_contains("keys");
      if (!keys || !keys->is_array() || keys->get_array().empty())
        co_return set_error(out, 400, "bad_request", "expected {\"keys\": [\"k1\", ...]}");
      std::vector<std::string> owned;
      owned.reserve(keys->get_array().size());
      for (const auto& k : keys->get_array()) {
        if (!k.is_string()) co_return set_error(out, 400, "bad_request", "keys must be strings");
        auto key = body_key(std::string_view(k.get_string().data(), k.get_string().size()), b64, out);
        if (!key) co_return;
        owned.push_back(std::move(*key));
      }
      std::vector<std::string_view> args;
      args.reserve(owned.size() + 1);
      args.push_back("MGET");
      for (const auto& k : owned) args.push_back(k);
      auto r = co_await exec(ctx, sess, args);
      if (!r) co_return fail(r.error());
      if (r->is_error()) co_return set_reply_error(out, r->str);
      std::vector<const kv::reply_value*> items;
      for (const auto& e : r->elements) items.push_back(&e);
      json::object root;
      bytes_array(root, "values", items, b64);
      co_return set_json(out, 200, root);
    }
    case route::kv_mset: {
      if (!req.has_framing) co_return set_error(out, 411, "length_required", "Content-Length or chunked body required");
      json::object body;
      bool b64 = false;
      if (!parse_body(req.body, {"values", "nx"}, body, b64, out)) co_return;
      const auto* values = body.if_contains("values");
      if (!values || !values->is_object() || values->get_object().empty())
        co_return set_error(out, 400, "bad_request", "expected {\"values\": {\"k1\": \"v1\", ...}}");
      bool nx = false;
      if (const auto* n = body.if_contains("nx")) {
        if (!n->is_bool()) co_return set_error(out, 400, "bad_request", "nx must be a boolean");
        nx = n->get_bool();
      }
      std::vector<std::string> owned;
      owned.reserve(values->get_object().size() * 2);
      for (const auto& kvp : values->get_object()) {
        auto key = body_key(std::string_view(kvp.key().data(), kvp.key().size()), b64, out);
        if (!key) co_return;
        owned.push_back(std::move(*key));
        auto v = json_bytes(kvp.value(), b64);
        if (!v)
          co_return set_error(out, 400, "bad_request",
                              "values must be strings (canonical base64 with \"encoding\":\"base64\")");
        owned.push_back(std::move(*v));
      }
      std::vector<std::string_view> args;
      args.reserve(owned.size() + 1);
      args.push_back(nx ? "MSETNX" : "MSET");
      for (const auto& s : owned) args.push_back(s);
      auto r = co_await exec(ctx, sess, args);
      if (!r) co_return fail(r.error());
      if (r->is_error()) co_return set_reply_error(out, r->str);
      if (nx && r->integer == 0) co_return set_error(out, 412, "precondition_failed", "a key already exists (nx)");
      co_return set_no_content(out);
    }
    case route::kv_scan: {
      const std::string_view prefix = q.get("prefix").value_or("");
      const std::string_view cursor = q.get("cursor").value_or("0");
      long long limit = 100;
      if (auto l = q.get("limit")) {
        auto v = parse_int(*l);
        if (!v || *v < 1 || *v > 10000) co_return set_error(out, 400, "bad_request", "limit must be 1..10000");
        limit = *v;
      }
      {
        auto c = parse_int(cursor);
        if (!c || *c < 0) co_return set_error(out, 400, "bad_request", "cursor must be a non-negative integer");
      }
      bool b64 = q.get("encoding") == std::optional<std::string_view>("base64");
      const std::string match = glob_prefix(prefix);
      const std::string count = std::to_string(limit);
      // SCAN's COUNT bounds the buckets visited, not the keys returned: a selective prefix gives mostly empty
      // pages. Keep scanning (a bounded number of steps, each its own request through the pipeline) until the
      // page has `limit` keys or the scan is complete, so a client rarely sees empty pages.
      constexpr int max_steps = 64;
      std::string next(cursor);
      std::vector<kv::reply_value> pages;
      std::size_t found = 0;
      for (int step = 0; step < max_steps; ++step) {
        const std::string_view args[] = {"SCAN", next, "MATCH", match, "COUNT", count};
        auto r = co_await exec(ctx, sess, args);
        if (!r) co_return fail(r.error());
        if (r->is_error()) co_return set_reply_error(out, r->str);
        if (r->elements.size() != 2) co_return set_error(out, 500, "internal", "unexpected SCAN reply");
        next = r->elements[0].str;
        found += r->elements[1].elements.size();
        pages.push_back(std::move(*r));
        if (next == "0" || found >= static_cast<std::size_t>(limit)) break;
      }
      json::object root;
      std::vector<const kv::reply_value*> items;
      for (const auto& p : pages)
        for (const auto& e : p.elements[1].elements) items.push_back(&e);
      bytes_array(root, "keys", items, b64);
      if (next == "0") root["next_cursor"] = nullptr;
      else root["next_cursor"] = next;
      co_return set_json(out, 200, root);
    }
    case route::publish: {
      if (!req.has_framing) co_return set_error(out, 411, "length_required", "Content-Length or chunked body required");
      const std::string_view args[] = {"PUBLISH", m.param, req.body};
      auto r = co_await exec(ctx, sess, args);
      if (!r) co_return fail(r.error());
      if (r->is_error()) co_return set_reply_error(out, r->str);
      co_return set_json(out, 200, json::object{{"receivers", r->integer}});
    }
    case route::subscribe: {
      bool pattern = false;
      if (!query_flag(q, "pattern", pattern)) co_return set_error(out, 400, "bad_request", "pattern takes true or false");
      const std::string_view args[] = {pattern ? "PSUBSCRIBE" : "SUBSCRIBE", m.param};
      auto r = co_await exec(ctx, sess, args);
      if (!r) co_return fail(r.error());
      if (r->is_error()) co_return set_reply_error(out, r->str);
      out.status = 200;
      out.content_type = "text/event-stream";
      out.start_sse = true;
      json::object o;
      const bool bin = !valid_utf8(m.param);
      o[pattern ? "pattern" : "channel"] = bin ? json::string(base64_encode(m.param)) : json::string(m.param);
      if (bin) o["encoding"] = "base64";
      out.body = "event: subscribed\ndata: " + json::serialize(o) + "\n\n";
      co_return;
    }
    default:
      set_error(out, 500, "internal", "unhandled route");
      co_return;
  }
}

}  // namespace turret::http_frontend
