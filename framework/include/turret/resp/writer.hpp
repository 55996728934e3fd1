#pragma once
// resp::writer: appends RESP2/RESP3 replies to a byte buffer (std::string), formatted exactly as redis-server 7.0
// (src/networking.c addReply*). Non-virtual and header-only so the hot path inlines; kv::reply_builder
// (<turret/kv/reply.hpp>) is adapted onto it by the RESP front end, and the method set mirrors it one to one.
//
// RESP2 downgrades, as Redis 7.0: null -> $-1 (null_bulk) / *-1 (null_array); map -> *2n; set, push -> *n;
// double -> bulk "%.17g" ("inf"/"-inf"); boolean -> :1/:0; verbatim, big number -> bulk.
// RESP3: null -> _, map %n, set ~n, push >n, double ,%.17g (",inf"/",-inf"), boolean #t/#f, verbatim =len\r\nfmt:s,
// big number (digits.
//
// The writer never allocates except by growing the output string; integers are formatted without snprintf.
// It does not track nesting: after array(n)/map(n)/set(n)/push(n) the caller writes n (map: 2n) elements.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

namespace turret::resp {

namespace detail {
/// Writes the decimal digits of v ending at `end` (exclusive); returns the start. Buffer needs 20 chars.
inline char* format_u64_backwards(char* end, std::uint64_t v) noexcept {
  static constexpr char digits[] =
      "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
      "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
      "8081828384858687888990919293949596979899";
  char* p = end;
  while (v >= 100) {
    const unsigned i = static_cast<unsigned>(v % 100) * 2;
    v /= 100;
    *--p = digits[i + 1];
    *--p = digits[i];
  }
  if (v >= 10) {
    const unsigned i = static_cast<unsigned>(v) * 2;
    *--p = digits[i + 1];
    *--p = digits[i];
  } else {
    *--p = static_cast<char>('0' + v);
  }
  return p;
}
inline char* format_i64_backwards(char* end, long long v) noexcept {
  const bool neg = v < 0;
  std::uint64_t u = neg ? 0 - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
  char* p = format_u64_backwards(end, u);
  if (neg) *--p = '-';
  return p;
}
}  // namespace detail

/// Format like Redis's string2ll counterpart ll2string (into buf, >= 21 chars); returns the length.
inline std::size_t format_integer(char* buf, long long v) noexcept {
  char tmp[24];
  char* e = tmp + sizeof tmp;
  char* s = detail::format_i64_backwards(e, v);
  std::size_t n = static_cast<std::size_t>(e - s);
  std::memcpy(buf, s, n);
  return n;
}

/// Redis 7.0 addReplyDouble text: "%.17g", infinities as "inf"/"-inf". Returns length; buf >= 32 chars.
inline std::size_t format_double(char* buf, double v) noexcept {
  if (std::isinf(v)) {
    if (v > 0) {
      std::memcpy(buf, "inf", 3);
      return 3;
    }
    std::memcpy(buf, "-inf", 4);
    return 4;
  }
  int n = std::snprintf(buf, 32, "%.17g", v);
  return n < 0 ? 0 : static_cast<std::size_t>(n);
}

class writer {
 public:
  /// Appends to `out` (not owned). protocol: 2 or 3.
  explicit writer(std::string& out, int protocol = 2) noexcept : out_(&out), proto_(protocol) {}

  int protocol() const noexcept { return proto_; }
  void set_protocol(int p) noexcept { proto_ = p; }
  std::string& buffer() noexcept { return *out_; }
  const std::string& buffer() const noexcept { return *out_; }
  void rebind(std::string& out) noexcept { out_ = &out; }

  /// +s\r\n  (s must not contain CR/LF; status replies are constants)
  void simple(std::string_view s) {
    out_->push_back('+');
    out_->append(s);
    crlf();
  }
  /// -s\r\n ; s starts with the error code ("ERR ...", "WRONGTYPE ..."). CR/LF inside s become spaces (as Redis's
  /// addReplyErrorFormat does) so a user-supplied fragment cannot break the protocol.
  void error(std::string_view s) {
    out_->push_back('-');
    const std::size_t at = out_->size();
    out_->append(s);
    for (std::size_t i = at, e = out_->size(); i < e; ++i) {
      char& c = (*out_)[i];
      if (c == '\r' || c == '\n') c = ' ';
    }
    crlf();
  }
  /// :v\r\n
  void integer(long long v) { prefixed(':', v); }
  /// $len\r\ns\r\n
  void bulk(std::string_view s) {
    prefixed('$', static_cast<long long>(s.size()));
    out_->append(s);
    crlf();
  }
  /// RESP2 $-1 ; RESP3 _
  void null_bulk() { proto_ >= 3 ? out_->append("_\r\n", 3) : out_->append("$-1\r\n", 5); }
  /// RESP2 *-1 ; RESP3 _
  void null_array() { proto_ >= 3 ? out_->append("_\r\n", 3) : out_->append("*-1\r\n", 5); }
  /// *n
  void array(std::size_t n) { prefixed('*', static_cast<long long>(n)); }
  /// RESP3 %n (n pairs follow) ; RESP2 *2n
  void map(std::size_t n) {
    proto_ >= 3 ? prefixed('%', static_cast<long long>(n)) : prefixed('*', static_cast<long long>(2 * n));
  }
  /// RESP3 ~n ; RESP2 *n
  void set(std::size_t n) { prefixed(proto_ >= 3 ? '~' : '*', static_cast<long long>(n)); }
  /// RESP3 >n ; RESP2 *n
  void push(std::size_t n) { prefixed(proto_ >= 3 ? '>' : '*', static_cast<long long>(n)); }
  /// RESP3 ,v ; RESP2 bulk. "%.17g", inf/-inf (Redis 7.0 addReplyDouble).
  void dbl(double v) {
    char buf[40];
    std::size_t n = format_double(buf, v);
    if (proto_ >= 3) {
      out_->push_back(',');
      out_->append(buf, n);
      crlf();
    } else {
      bulk(std::string_view(buf, n));
    }
  }
  /// RESP3 #t/#f ; RESP2 :1/:0
  void boolean(bool v) {
    if (proto_ >= 3)
      out_->append(v ? "#t\r\n" : "#f\r\n", 4);
    else
      out_->append(v ? ":1\r\n" : ":0\r\n", 4);
  }
  /// RESP3 =len\r\nfmt:s\r\n (fmt is 3 chars, "txt" or "mkd") ; RESP2 bulk s
  void verbatim(std::string_view s, std::string_view format = "txt") {
    if (proto_ < 3) return bulk(s);
    prefixed('=', static_cast<long long>(s.size() + 4));
    out_->append(format.substr(0, 3));
    out_->push_back(':');
    out_->append(s);
    crlf();
  }
  /// RESP3 (digits ; RESP2 bulk
  void big_number(std::string_view digits) {
    if (proto_ < 3) return bulk(digits);
    out_->push_back('(');
    out_->append(digits);
    crlf();
  }
  /// Pre-encoded RESP bytes, appended as is.
  void raw(std::string_view resp_bytes) { out_->append(resp_bytes); }

  // Conveniences (as kv::reply_builder).
  void ok() { out_->append("+OK\r\n", 5); }
  void bulk_or_null(const std::string_view* s) { s ? bulk(*s) : null_bulk(); }

 private:
  void crlf() { out_->append("\r\n", 2); }
  // Writes <type><v>\r\n in one append.
  void prefixed(char type, long long v) {
    char buf[32];
    char* e = buf + sizeof buf;
    *--e = '\n';
    *--e = '\r';
    char* s = detail::format_i64_backwards(e, v);
    *--s = type;
    out_->append(s, static_cast<std::size_t>(buf + sizeof buf - s));
  }

  std::string* out_;
  int proto_;
};

}  // namespace turret::resp
