#pragma once
#include <turret/percent_encoding.hpp>
// Routing of the REST API (no Beast here: unit-testable and cheap to compile).
//
// Routes (see docs/openapi.json, which a test checks against route_table()):
//   GET|HEAD /healthz                  GET|HEAD /readyz              GET|HEAD /metrics     GET|HEAD /v1/openapi.json
//   GET|HEAD /v1/kv                    (scan: ?prefix=&cursor=&limit=)
//   POST     /v1/kv:mget               POST /v1/kv:mset
//   GET|HEAD|PUT|DELETE /v1/kv/{key}
//   GET|HEAD|PUT|DELETE /v1/kv/{key}/ttl
//   POST     /v1/kv/{key}/incr
//   POST     /v1/publish/{channel}
//   GET      /v1/subscribe/{channel}   (Server-Sent Events)
//   POST     /admin/reload             (reload the server's configuration file: rest_api.hpp)
//
// `{key}` and `{channel}` are ONE path segment, percent-decoded, binary safe (a key containing '/' is sent as %2F).
// Only the target's path is routed; the query string is parsed separately (parse_query).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace turret::http_frontend {

enum class method : std::uint8_t { get, head, put, post, delete_, other };

/// "GET" -> method::get ... (case-sensitive, as HTTP).
method parse_method(std::string_view m) noexcept;
std::string_view to_string(method m) noexcept;

enum class route : std::uint8_t {
  healthz,
  readyz,
  metrics,
  openapi,
  kv_scan,
  kv_mget,
  kv_mset,
  kv_get,     // GET/HEAD /v1/kv/{key}
  kv_put,     // PUT /v1/kv/{key}
  kv_delete,  // DELETE /v1/kv/{key}
  ttl_get,
  ttl_put,
  ttl_delete,
  kv_incr,
  publish,
  subscribe,
  admin_reload,        // POST /admin/reload
  not_found,           // no such path
  method_not_allowed,  // path exists, method does not (see match_result::allow)
  bad_request,         // malformed percent-encoding, empty key
};
inline constexpr std::size_t route_count = static_cast<std::size_t>(route::bad_request) + 1;

/// A stable name per route (metrics label `command`, logs): "kv.get", "kv.put", ... "not_found".
std::string_view route_name(route r) noexcept;

struct match_result {
  route r = route::not_found;
  std::string param;            ///< decoded {key} or {channel}
  std::string_view allow;       ///< for method_not_allowed: the Allow header value
  std::string_view error;       ///< for bad_request: why
};

/// Routes `path` (the target without '?query'); `m` is the request method. An empty {key} or {channel} is a
/// bad_request.
match_result match(method m, std::string_view path);

/// The key rule of every route, whether the key comes from the path or from a JSON body: a key is a non-empty byte
/// string (binary safe; its size is bounded by max_uri_bytes or max_body_bytes). Returns why `key` is refused, or an
/// empty view when it is acceptable. (REST's own: the operations, and gRPC, accept an empty key as Redis does.)
std::string_view key_error(std::string_view key) noexcept;

/// Decodes %XX escapes (and '+' as a space when `plus_is_space`, for query strings). nullopt on a malformed escape.
std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space = false);
/// Encodes every byte outside RFC 3986's unreserved set as %XX.
using turret::percent_encode;  // framework/include/turret/percent_encoding.hpp

/// A parsed query string: decoded (name, value) pairs in order. `ok` is false when an escape is malformed.
struct query {
  std::vector<std::pair<std::string, std::string>> params;
  bool ok = true;

  /// The last value of `name`, or nullopt.
  std::optional<std::string_view> get(std::string_view name) const;
  bool has(std::string_view name) const { return get(name).has_value(); }
};
query parse_query(std::string_view qs);

/// Splits a request target into path and query string (without '?').
std::pair<std::string_view, std::string_view> split_target(std::string_view target) noexcept;

/// Parses a boolean query value: "true"/"1"/"yes"/"" (present without value) -> true, "false"/"0"/"no" -> false.
std::optional<bool> parse_bool(std::string_view v) noexcept;
/// Parses a TTL: "30s", "1500ms", "2m", "1h" (units us are rejected below 1ms) or a plain integer of seconds.
/// Returns milliseconds (>= 0), nullopt when malformed.
std::optional<long long> parse_ttl_ms(std::string_view v) noexcept;
/// Parses a signed 64-bit decimal integer (the whole string).
std::optional<long long> parse_int(std::string_view v) noexcept;

/// One documented route, for the OpenAPI consistency test: OpenAPI path template and lower-case method.
struct route_doc {
  std::string_view path;    ///< e.g. "/v1/kv/{key}"
  std::string_view method;  ///< "get", "head", "put", "post", "delete"
};
/// Every (path, method) pair the router serves.
const std::vector<route_doc>& route_table();

}  // namespace turret::http_frontend
