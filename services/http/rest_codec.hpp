#pragma once
// The REST API's side of the key-value operations (private to rest_api.cpp and rest_ops.cpp): how a request's query
// string and JSON body become an operation's input, and how an operation's outcome becomes a status and a body.
// The outcomes map in one place, set_status_error():
//   not_found -> 404 not_found, precondition_failed -> 412 precondition_failed, invalid_argument -> 400 bad_request,
//   unexpected -> 500 internal, a Redis error reply -> set_reply_error(): WRONGTYPE -> 409 wrong_type, not an
//   integer / overflow -> 409 not_integer, NOAUTH / WRONGPASS -> 401 unauthorized, OOM / BUSY / LOADING -> 503
//   unavailable, anything else -> 400 command_error.
// The messages are the operations' (the same text gRPC answers with).
#include <services/http/rest_api.hpp>
#include <services/http/router.hpp>
#include <turret/ops/operations.hpp>

#include <boost/json.hpp>

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace turret::http_frontend {

/// Maps a Redis error reply (its text) to a response.
void set_reply_error(rest_response& out, std::string_view err);
/// Maps an operation's outcome other than ok to a response.
void set_status_error(rest_response& out, const ops::status& st);
/// True when `r` is ok; otherwise writes the pipeline's error or the outcome's and returns false.
bool succeeded(const result<ops::status>& r, rest_response& out);

void set_json(rest_response& out, int status, const boost::json::value& v);
void set_no_content(rest_response& out);
/// 200 with a raw value (application/octet-stream).
void set_value(rest_response& out, std::string&& value);

/// The TTL of a request: ?ttl_ms=1500 (wins) or ?ttl=30s, in milliseconds; `ms` stays empty when neither is given.
/// False (with `out` set to a 400) when malformed. Whether it is acceptable (positive) is the operations' rule.
bool query_ttl(const query& q, std::optional<long long>& ms, rest_response& out);
/// A boolean query parameter (absent: false); false when malformed.
bool query_flag(const query& q, std::string_view name, bool& out);

/// Reads a string (or base64 string) from a JSON value; nullopt when not a string or bad base64.
std::optional<std::string> json_bytes(const boost::json::value& v, bool b64);
/// A key of a JSON body (an object's field name or a string of an array): base64-decoded when `b64`, then held to the
/// key rule of every route (key_error, router.hpp). Sets a 400 and returns nullopt when refused.
std::optional<std::string> body_key(std::string_view text, bool b64, rest_response& out);
/// Parses a JSON body: an object with the fields `known` (plus "encoding") and no other. Sets an error (400, naming
/// an unknown field) and returns false on failure.
bool parse_body(std::string_view body, std::initializer_list<std::string_view> known, boost::json::object& obj,
                bool& b64, rest_response& out);
/// JSON array `field` of byte strings (nullptr: null) in utf8 or base64 (forced when any string is not UTF-8), and
/// "encoding" saying which.
void bytes_array(boost::json::object& root, std::string_view field, const std::vector<const std::string*>& items,
                 bool b64);

}  // namespace turret::http_frontend
