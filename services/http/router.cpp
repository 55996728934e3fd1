#include <services/http/router.hpp>

#include <charconv>
#include <limits>

namespace turret::http_frontend {

method parse_method(std::string_view m) noexcept {
  if (m == "GET") return method::get;
  if (m == "HEAD") return method::head;
  if (m == "PUT") return method::put;
  if (m == "POST") return method::post;
  if (m == "DELETE") return method::delete_;
  return method::other;
}

std::string_view to_string(method m) noexcept {
  switch (m) {
    case method::get: return "GET";
    case method::head: return "HEAD";
    case method::put: return "PUT";
    case method::post: return "POST";
    case method::delete_: return "DELETE";
    case method::other: break;
  }
  return "OTHER";
}

std::string_view route_name(route r) noexcept {
  switch (r) {
    case route::healthz: return "healthz";
    case route::readyz: return "readyz";
    case route::metrics: return "metrics";
    case route::openapi: return "openapi";
    case route::kv_scan: return "kv.scan";
    case route::kv_mget: return "kv.mget";
    case route::kv_mset: return "kv.mset";
    case route::kv_get: return "kv.get";
    case route::kv_put: return "kv.put";
    case route::kv_delete: return "kv.delete";
    case route::ttl_get: return "ttl.get";
    case route::ttl_put: return "ttl.put";
    case route::ttl_delete: return "ttl.delete";
    case route::kv_incr: return "kv.incr";
    case route::publish: return "publish";
    case route::subscribe: return "subscribe";
    case route::admin_reload: return "admin.reload";
    case route::not_found: return "not_found";
    case route::method_not_allowed: return "method_not_allowed";
    case route::bad_request: return "bad_request";
  }
  return "unknown";
}

namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

match_result not_allowed(std::string_view allow) {
  match_result r;
  r.r = route::method_not_allowed;
  r.allow = allow;
  return r;
}

match_result bad(std::string_view why) {
  match_result r;
  r.r = route::bad_request;
  r.error = why;
  return r;
}

bool is_get(method m) noexcept { return m == method::get || m == method::head; }

/// A route without parameters that answers GET and HEAD only.
match_result get_only(method m, route r) {
  if (!is_get(m)) return not_allowed("GET, HEAD");
  match_result out;
  out.r = r;
  return out;
}

enum class param_kind : std::uint8_t { key, channel };

/// Decodes one parameter segment; sets `out` to bad_request on failure.
bool decode_param(std::string_view seg, param_kind kind, match_result& out) {
  auto d = percent_decode(seg);
  if (!d) {
    out = bad("malformed percent-encoding in path");
    return false;
  }
  const std::string_view why = kind == param_kind::key ? key_error(*d) : d->empty() ? "empty channel" : "";
  if (!why.empty()) {
    out = bad(why);
    return false;
  }
  out.param = std::move(*d);
  return true;
}

}  // namespace

match_result match(method m, std::string_view path) {
  match_result out;
  if (path == "/healthz") return get_only(m, route::healthz);
  if (path == "/readyz") return get_only(m, route::readyz);
  if (path == "/metrics") return get_only(m, route::metrics);
  if (path == "/admin/reload") {
    if (m != method::post) return not_allowed("POST");
    out.r = route::admin_reload;
    return out;
  }
  if (path.substr(0, 4) != "/v1/") return out;
  std::string_view rest = path.substr(4);

  if (rest == "openapi.json") return get_only(m, route::openapi);
  if (rest == "kv") return get_only(m, route::kv_scan);
  if (rest == "kv:mget" || rest == "kv:mset") {
    if (m != method::post) return not_allowed("POST");
    out.r = rest == "kv:mget" ? route::kv_mget : route::kv_mset;
    return out;
  }
  if (rest.substr(0, 3) == "kv/") {
    rest.remove_prefix(3);
    const auto slash = rest.find('/');
    const std::string_view seg = rest.substr(0, slash);
    const std::string_view tail = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
    if (slash == std::string_view::npos) {
      switch (m) {
        case method::get:
        case method::head: out.r = route::kv_get; break;
        case method::put: out.r = route::kv_put; break;
        case method::delete_: out.r = route::kv_delete; break;
        default: return not_allowed("GET, HEAD, PUT, DELETE");
      }
    } else if (tail == "/ttl") {
      switch (m) {
        case method::get:
        case method::head: out.r = route::ttl_get; break;
        case method::put: out.r = route::ttl_put; break;
        case method::delete_: out.r = route::ttl_delete; break;
        default: return not_allowed("GET, HEAD, PUT, DELETE");
      }
    } else if (tail == "/incr") {
      if (m != method::post) return not_allowed("POST");
      out.r = route::kv_incr;
    } else {
      return out;  // not_found
    }
    decode_param(seg, param_kind::key, out);
    return out;
  }
  struct prefixed {
    std::string_view prefix;
    route r;
    method allowed;
  };
  static constexpr prefixed prefixed_routes[] = {{"publish/", route::publish, method::post},
                                                 {"subscribe/", route::subscribe, method::get}};
  for (const auto& [prefix, r, allowed] : prefixed_routes) {
    if (rest.substr(0, prefix.size()) != prefix) continue;
    const std::string_view seg = rest.substr(prefix.size());
    if (seg.find('/') != std::string_view::npos) return out;
    if (m != allowed) return not_allowed(allowed == method::post ? "POST" : "GET");
    out.r = r;
    decode_param(seg, param_kind::channel, out);
    return out;
  }
  return out;
}

std::string_view key_error(std::string_view key) noexcept { return key.empty() ? "empty key" : ""; }

std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      const int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}


std::optional<std::string_view> query::get(std::string_view name) const {
  for (auto it = params.rbegin(); it != params.rend(); ++it)
    if (it->first == name) return std::string_view(it->second);
  return std::nullopt;
}

query parse_query(std::string_view qs) {
  query q;
  while (!qs.empty()) {
    const auto amp = qs.find('&');
    const std::string_view part = qs.substr(0, amp);
    qs = amp == std::string_view::npos ? std::string_view{} : qs.substr(amp + 1);
    if (part.empty()) continue;
    const auto eq = part.find('=');
    auto name = percent_decode(part.substr(0, eq), true);
    auto value = percent_decode(eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1), true);
    if (!name || !value) {
      q.ok = false;
      continue;
    }
    q.params.emplace_back(std::move(*name), std::move(*value));
  }
  return q;
}

std::pair<std::string_view, std::string_view> split_target(std::string_view target) noexcept {
  const auto q = target.find('?');
  if (q == std::string_view::npos) return {target, {}};
  return {target.substr(0, q), target.substr(q + 1)};
}

std::optional<bool> parse_bool(std::string_view v) noexcept {
  if (v.empty() || v == "true" || v == "1" || v == "yes" || v == "on") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off") return false;
  return std::nullopt;
}

std::optional<long long> parse_int(std::string_view v) noexcept {
  if (v.empty()) return std::nullopt;
  const char* b = v.data();
  if (*b == '+') ++b;
  long long out = 0;
  auto [p, ec] = std::from_chars(b, v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size()) return std::nullopt;
  return out;
}

std::optional<long long> parse_ttl_ms(std::string_view v) noexcept {
  if (v.empty()) return std::nullopt;
  std::size_t i = 0;
  while (i < v.size() && ((v[i] >= '0' && v[i] <= '9') || v[i] == '.')) ++i;
  const std::string_view num = v.substr(0, i), unit = v.substr(i);
  if (num.empty()) return std::nullopt;
  double factor;
  if (unit.empty() || unit == "s") factor = 1000;
  else if (unit == "ms") factor = 1;
  else if (unit == "m") factor = 60'000;
  else if (unit == "h") factor = 3'600'000;
  else if (unit == "d") factor = 86'400'000;
  else return std::nullopt;
  if (num.find('.') == std::string_view::npos) {
    long long n = 0;
    auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), n);
    if (ec != std::errc() || p != num.data() + num.size()) return std::nullopt;
    if (n > std::numeric_limits<long long>::max() / static_cast<long long>(factor)) return std::nullopt;
    return n * static_cast<long long>(factor);
  }
  double d = 0;
  auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), d);
  if (ec != std::errc() || p != num.data() + num.size()) return std::nullopt;
  const double ms = d * factor;
  if (!(ms >= 0) || ms > 9.2e18) return std::nullopt;
  return static_cast<long long>(ms);
}

const std::vector<route_doc>& route_table() {
  static const std::vector<route_doc> t{
      {"/healthz", "get"},           {"/healthz", "head"},          {"/readyz", "get"},
      {"/readyz", "head"},           {"/metrics", "get"},           {"/metrics", "head"},
      {"/v1/openapi.json", "get"},   {"/v1/openapi.json", "head"},  {"/v1/kv", "get"},
      {"/v1/kv", "head"},            {"/v1/kv:mget", "post"},       {"/v1/kv:mset", "post"},
      {"/v1/kv/{key}", "get"},       {"/v1/kv/{key}", "head"},      {"/v1/kv/{key}", "put"},
      {"/v1/kv/{key}", "delete"},    {"/v1/kv/{key}/ttl", "get"},   {"/v1/kv/{key}/ttl", "head"},
      {"/v1/kv/{key}/ttl", "put"},   {"/v1/kv/{key}/ttl", "delete"}, {"/v1/kv/{key}/incr", "post"},
      {"/v1/publish/{channel}", "post"}, {"/v1/subscribe/{channel}", "get"}, {"/admin/reload", "post"},
  };
  return t;
}

}  // namespace turret::http_frontend
