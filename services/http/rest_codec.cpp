// The REST API's codec: UTF-8 and base64, query parameters and JSON bodies, and the mapping of operation outcomes
// to responses (see rest_codec.hpp).
#include <services/http/rest_codec.hpp>

#include <algorithm>

namespace turret::http_frontend {

namespace json = boost::json;

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

void set_reply_error(rest_response& out, std::string_view err) {
  if (err.starts_with("WRONGTYPE")) return set_error(out, 409, "wrong_type", err);
  if (err.starts_with("NOAUTH") || err.starts_with("WRONGPASS")) return set_error(out, 401, "unauthorized", err);
  if (err.find("not an integer") != std::string_view::npos || err.find("overflow") != std::string_view::npos)
    return set_error(out, 409, "not_integer", err);
  if (err.starts_with("OOM") || err.starts_with("BUSY") || err.starts_with("LOADING"))
    return set_error(out, 503, "unavailable", err);
  set_error(out, 400, "command_error", err);
}

void set_status_error(rest_response& out, const ops::status& st) {
  switch (st.code) {
    case ops::outcome::not_found: return set_error(out, 404, "not_found", st.message);
    case ops::outcome::precondition_failed: return set_error(out, 412, "precondition_failed", st.message);
    case ops::outcome::invalid_argument: return set_error(out, 400, "bad_request", st.message);
    case ops::outcome::redis_error: return set_reply_error(out, st.message);
    case ops::outcome::ok:  // not an error: a caller's mistake
    case ops::outcome::unexpected: break;
  }
  set_error(out, 500, "internal", st.message);
}

bool succeeded(const result<ops::status>& r, rest_response& out) {
  if (!r) {
    set_pipeline_error(out, r.error());
    return false;
  }
  if (!r->ok()) [[unlikely]] {
    set_status_error(out, *r);
    return false;
  }
  return true;
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

void set_value(rest_response& out, std::string&& value) {
  out.status = 200;
  out.content_type = "application/octet-stream";
  out.body = std::move(value);
}

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
  if (!v) {
    set_error(out, 400, "bad_request", malformed);
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

std::optional<std::string> json_bytes(const json::value& v, bool b64) {
  if (!v.is_string()) return std::nullopt;
  const auto& s = v.get_string();
  if (b64) return base64_decode(std::string_view(s.data(), s.size()));
  return std::string(s.data(), s.size());
}

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

void bytes_array(json::object& root, std::string_view field, const std::vector<const std::string*>& items,
                 bool b64) {
  if (!b64)
    for (const std::string* it : items)
      if (it && !valid_utf8(*it)) b64 = true;
  json::array arr;
  arr.reserve(items.size());
  for (const std::string* it : items) {
    if (!it) arr.emplace_back(nullptr);
    else arr.emplace_back(b64 ? json::string(base64_encode(*it)) : json::string(*it));
  }
  root[field] = std::move(arr);
  root["encoding"] = b64 ? "base64" : "utf8";
}

}  // namespace turret::http_frontend
