#include <services/http/message_framing.hpp>
#include <turret/ascii.hpp>

#include <limits>
#include <optional>

namespace turret::http_frontend {

namespace {

/// tchar (RFC 9110 5.6.2).
bool is_tchar(char c) noexcept {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return c != '\0' && std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

/// A cursor over one field value.
struct scanner {
  std::string_view s;
  std::size_t i = 0;

  bool done() const noexcept { return i >= s.size(); }
  char peek() const noexcept { return s[i]; }
  void skip_ows() noexcept {
    while (!done() && is_ows(s[i])) ++i;
  }
  std::string_view token() noexcept {
    const std::size_t b = i;
    while (!done() && is_tchar(s[i])) ++i;
    return s.substr(b, i - b);
  }
  /// quoted-string (RFC 9110 5.6.4); the cursor is on the opening quote.
  bool quoted_string() noexcept {
    ++i;
    while (!done()) {
      const auto c = static_cast<unsigned char>(s[i++]);
      if (c == '"') return true;
      if (c == '\\') {
        if (done()) return false;
        const auto q = static_cast<unsigned char>(s[i++]);
        if (q != '\t' && (q < 0x20 || q == 0x7f)) return false;
      } else if (c != '\t' && (c < 0x20 || c == 0x7f)) {
        return false;
      }
    }
    return false;
  }
};

/// One transfer-coding list element: its name and whether it carried parameters.
struct coding {
  std::string_view name;
  bool has_params = false;
};

/// Parses `value` as `#transfer-coding`, calling `on(coding)` per non-empty element. False on a syntax error.
template <class F>
bool for_each_coding(std::string_view value, F&& on) {
  scanner sc{value};
  for (;;) {
    sc.skip_ows();
    if (sc.done()) return true;
    if (sc.peek() == ',') {  // empty element
      ++sc.i;
      continue;
    }
    coding c{sc.token()};
    if (c.name.empty()) return false;
    for (;;) {
      sc.skip_ows();
      if (sc.done() || sc.peek() != ';') break;
      ++sc.i;
      sc.skip_ows();
      if (sc.token().empty()) return false;
      sc.skip_ows();  // BWS
      if (sc.done() || sc.peek() != '=') return false;
      ++sc.i;
      sc.skip_ows();
      if (!sc.done() && sc.peek() == '"') {
        if (!sc.quoted_string()) return false;
      } else if (sc.token().empty()) {
        return false;
      }
      c.has_params = true;
    }
    on(c);
    if (sc.done()) return true;
    if (sc.peek() != ',') return false;
    ++sc.i;
  }
}

/// Parses a Content-Length field value: 1*DIGIT, or a list of such (RFC 9110 8.6). nullopt when malformed, when the
/// list holds different values, or when a value exceeds 2^64-1.
std::optional<std::uint64_t> parse_content_length(std::string_view value, std::optional<std::uint64_t> seen,
                                                  bool& conflict) {
  scanner sc{value};
  bool any = false;
  for (;;) {
    sc.skip_ows();
    if (sc.done()) break;
    if (sc.peek() == ',') {
      ++sc.i;
      continue;
    }
    std::uint64_t v = 0;
    std::size_t digits = 0;
    while (!sc.done() && sc.peek() >= '0' && sc.peek() <= '9') {
      const auto d = static_cast<std::uint64_t>(sc.peek() - '0');
      if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return std::nullopt;
      v = v * 10 + d;
      ++sc.i;
      ++digits;
    }
    if (digits == 0) return std::nullopt;
    if (seen && *seen != v) {
      conflict = true;
      return std::nullopt;
    }
    seen = v;
    any = true;
    sc.skip_ows();
    if (sc.done()) break;
    if (sc.peek() != ',') return std::nullopt;
    ++sc.i;
  }
  if (!any) return std::nullopt;
  return seen;
}

framing_verdict reject(int status, std::string_view code, std::string message) {
  framing_verdict v;
  v.status = status;
  v.code = code;
  v.message = std::move(message);
  return v;
}

framing_verdict bad_request(std::string message) { return reject(400, "bad_request", std::move(message)); }

}  // namespace

framing_verdict check_request_framing(int version, std::span<const std::string_view> transfer_encoding,
                                      std::span<const std::string_view> content_length) {
  if (!transfer_encoding.empty()) {
    if (version < 11) return bad_request("Transfer-Encoding in an HTTP/1.0 request");
    if (!content_length.empty()) return bad_request("both Transfer-Encoding and Content-Length");
    // One list over every field line. Each coding before the last is "earlier": chunked there is framing twice,
    // anything else a coding this server does not decode.
    std::size_t count = 0;
    coding last;
    bool chunked_earlier = false;
    std::string_view unsupported;
    auto on = [&](const coding& c) {
      if (count++ > 0) {
        if (turret::iequals(last.name, "chunked")) chunked_earlier = true;
        else if (unsupported.empty()) unsupported = last.name;
      }
      last = c;
    };
    for (std::string_view v : transfer_encoding)
      if (!for_each_coding(v, on)) return bad_request("malformed Transfer-Encoding");
    if (count == 0) return bad_request("Transfer-Encoding without a transfer coding");
    if (!turret::iequals(last.name, "chunked") || last.has_params)
      return bad_request("chunked is not the final transfer coding of the request");
    if (chunked_earlier) return bad_request("chunked applied more than once");
    if (!unsupported.empty())
      return reject(501, "not_implemented", "transfer coding '" + std::string(unsupported) + "' is not implemented");
    framing_verdict ok;
    ok.framing = body_framing::chunked;
    return ok;
  }
  if (content_length.empty()) return {};
  std::optional<std::uint64_t> len;
  for (std::string_view v : content_length) {
    bool conflict = false;
    len = parse_content_length(v, len, conflict);
    if (conflict) return bad_request("Content-Length values differ");
    if (!len) return bad_request("malformed Content-Length");
  }
  framing_verdict ok;
  ok.framing = body_framing::content_length;
  ok.content_length = *len;
  return ok;
}

bool framing_agrees(const framing_verdict& v, bool chunked, std::optional<std::uint64_t> content_length) noexcept {
  switch (v.framing) {
    case body_framing::chunked: return chunked && !content_length;
    case body_framing::content_length: return !chunked && content_length == v.content_length;
    case body_framing::none: return !chunked && !content_length;
  }
  return false;
}

}  // namespace turret::http_frontend
