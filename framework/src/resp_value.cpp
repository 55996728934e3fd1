// RESP reply parser, encoder and redis-cli-style rendering: see turret/resp/value.hpp.
#include "turret/resp/value.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "turret/resp/writer.hpp"

namespace turret::resp {

namespace {

bool parse_ll(const char* s, std::size_t n, long long* out) noexcept {
  if (n == 0 || n > 20) return false;
  const char* p = s;
  const char* e = s + n;
  bool neg = false;
  if (*p == '-' || *p == '+') {
    neg = *p == '-';
    if (++p == e) return false;
  }
  unsigned long long v = 0;
  for (; p < e; ++p) {
    if (*p < '0' || *p > '9') return false;
    const unsigned d = static_cast<unsigned>(*p - '0');
    if (v > (ULLONG_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  if (neg) {
    if (v > static_cast<unsigned long long>(LLONG_MAX) + 1) return false;
    *out = static_cast<long long>(0 - v);
  } else {
    if (v > static_cast<unsigned long long>(LLONG_MAX)) return false;
    *out = static_cast<long long>(v);
  }
  return true;
}

}  // namespace

void reply_parser::reset() {
  stack_.clear();
  result_ = value{};
  error_.clear();
  consumed_ = wanted_ = 0;
  failed_ = false;
}

reply_parser::status reply_parser::fail(std::string why) {
  failed_ = true;
  stack_.clear();
  error_ = std::move(why);
  return status::error;
}

bool reply_parser::complete(value&& v) {
  for (;;) {
    if (stack_.empty()) {
      result_ = std::move(v);
      return true;
    }
    frame& top = stack_.back();
    if (!top.attribute) top.v.elements.push_back(std::move(v));
    if (--top.left > 0) return false;
    // The aggregate is complete: pop it and add it to its parent.
    frame done = std::move(top);
    stack_.pop_back();
    if (done.attribute) return false;  // attributes are discarded; the real reply follows
    v = std::move(done.v);
  }
}

reply_parser::status reply_parser::parse(std::string_view in) {
  if (failed_) return status::error;
  consumed_ = 0;
  wanted_ = 0;
  const char* b = in.data();
  const std::size_t n = in.size();
  std::size_t pos = 0;
  for (;;) {
    if (pos >= n) {
      consumed_ = pos;
      return status::need_more;
    }
    const char* line = b + pos + 1;
    const char* cr = static_cast<const char*>(std::memchr(b + pos, '\r', n - pos));
    if (cr == nullptr || cr + 1 >= b + n) {
      consumed_ = pos;
      return status::need_more;
    }
    if (cr[1] != '\n') return fail("expected CRLF after a reply line");
    if (cr < line) return fail("empty reply line");
    const std::size_t len = static_cast<std::size_t>(cr - line);
    const std::size_t after = static_cast<std::size_t>(cr - b) + 2;
    const char type = b[pos];
    value v;
    switch (type) {
      case '+':
        v.type = value::kind::simple;
        v.str.assign(line, len);
        break;
      case '-':
        v.type = value::kind::error;
        v.str.assign(line, len);
        break;
      case ':':
        v.type = value::kind::integer;
        if (!parse_ll(line, len, &v.integer)) return fail("invalid integer reply");
        break;
      case '(':
        v.type = value::kind::big_number;
        v.str.assign(line, len);
        break;
      case '_':
        v.type = value::kind::null;
        break;
      case '#':
        if (len != 1 || (line[0] != 't' && line[0] != 'f')) return fail("invalid boolean reply");
        v.type = value::kind::boolean;
        v.integer = line[0] == 't';
        break;
      case ',': {
        v.type = value::kind::dbl;
        v.str.assign(line, len);
        if (v.str == "inf" || v.str == "+inf")
          v.dbl = HUGE_VAL;
        else if (v.str == "-inf")
          v.dbl = -HUGE_VAL;
        else {
          char* end = nullptr;
          v.dbl = std::strtod(v.str.c_str(), &end);
          if (end != v.str.c_str() + v.str.size()) return fail("invalid double reply");
        }
        break;
      }
      case '$':
      case '!':
      case '=': {
        long long blen = 0;
        if (!parse_ll(line, len, &blen)) return fail("invalid bulk length");
        if (blen == -1 && type == '$') {
          v.type = value::kind::null;
          break;
        }
        if (blen < 0 || static_cast<unsigned long long>(blen) > max_bulk_) return fail("invalid bulk length");
        const std::size_t total = after + static_cast<std::size_t>(blen) + 2;
        if (n < total) {
          consumed_ = pos;
          wanted_ = total - pos;
          return status::need_more;
        }
        const char* data = b + after;
        if (data[blen] != '\r' || data[blen + 1] != '\n') return fail("expected CRLF after bulk data");
        if (type == '=') {
          if (blen < 4 || data[3] != ':') return fail("invalid verbatim string");
          v.type = value::kind::verbatim;
          v.format.assign(data, 3);
          v.str.assign(data + 4, static_cast<std::size_t>(blen) - 4);
        } else {
          v.type = type == '!' ? value::kind::error : value::kind::bulk;
          v.str.assign(data, static_cast<std::size_t>(blen));
        }
        pos = total;
        if (complete(std::move(v))) {
          consumed_ = pos;
          return status::ok;
        }
        continue;
      }
      case '*':
      case '%':
      case '~':
      case '>':
      case '|': {
        long long count = 0;
        if (!parse_ll(line, len, &count)) return fail("invalid aggregate length");
        if (count == -1 && type == '*') {
          v.type = value::kind::null;
          break;
        }
        if (count < 0 || count > INT_MAX) return fail("invalid aggregate length");
        if (type == '%' || type == '|') count *= 2;
        v.type = type == '*'   ? value::kind::array
                 : type == '%' ? value::kind::map
                 : type == '~' ? value::kind::set
                               : value::kind::push;
        pos = after;
        if (count == 0) {
          if (type == '|') continue;
          if (complete(std::move(v))) {
            consumed_ = pos;
            return status::ok;
          }
          continue;
        }
        if (stack_.size() >= max_depth_) return fail("reply nested too deeply");
        v.elements.reserve(static_cast<std::size_t>(std::min<long long>(count, 1024)));
        stack_.push_back(frame{std::move(v), count, type == '|'});
        continue;
      }
      default:
        return fail(std::string("unknown reply type byte '") + type + "'");
    }
    pos = after;
    if (complete(std::move(v))) {
      consumed_ = pos;
      return status::ok;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------

namespace {
void encode_into(writer& w, const value& v) {
  switch (v.type) {
    case value::kind::simple: w.simple(v.str); break;
    case value::kind::error: w.error(v.str); break;
    case value::kind::integer: w.integer(v.integer); break;
    case value::kind::bulk: w.bulk(v.str); break;
    case value::kind::null: w.null_bulk(); break;
    case value::kind::dbl: w.dbl(v.dbl); break;
    case value::kind::boolean: w.boolean(v.integer != 0); break;
    case value::kind::verbatim: w.verbatim(v.str, v.format.empty() ? "txt" : v.format); break;
    case value::kind::big_number: w.big_number(v.str); break;
    case value::kind::array: w.array(v.elements.size()); break;
    case value::kind::map: w.map(v.elements.size() / 2); break;
    case value::kind::set: w.set(v.elements.size()); break;
    case value::kind::push: w.push(v.elements.size()); break;
  }
  if (v.is_aggregate())
    for (const auto& e : v.elements) encode_into(w, e);
}

void display(std::string& out, const value& v, const std::string& prefix) {
  switch (v.type) {
    case value::kind::error: out += "(error) " + v.str + "\n"; return;
    case value::kind::simple: out += v.str + "\n"; return;
    case value::kind::integer: out += "(integer) " + std::to_string(v.integer) + "\n"; return;
    case value::kind::dbl: out += "(double) " + v.str + "\n"; return;
    case value::kind::bulk: out += quote_repr(v.str) + "\n"; return;
    case value::kind::verbatim: out += v.str + "\n"; return;
    case value::kind::null: out += "(nil)\n"; return;
    case value::kind::boolean: out += v.integer ? "(true)\n" : "(false)\n"; return;
    case value::kind::big_number: out += "(big number) " + v.str + "\n"; return;
    default: break;
  }
  if (v.elements.empty()) {
    out += v.type == value::kind::array ? "(empty array)\n"
           : v.type == value::kind::map ? "(empty hash)\n"
           : v.type == value::kind::set ? "(empty set)\n"
                                        : "(empty push)\n";
    return;
  }
  const bool is_map = v.type == value::kind::map;
  std::size_t count = is_map ? v.elements.size() / 2 : v.elements.size();
  unsigned idxlen = 0;
  do {
    ++idxlen;
    count /= 10;
  } while (count);
  const std::string child_prefix = prefix + std::string(idxlen + 2, ' ');
  const char sep = v.type == value::kind::set ? '~' : is_map ? '#' : ')';
  for (std::size_t i = 0; i < v.elements.size(); ++i) {
    const std::size_t human = (is_map ? i / 2 : i) + 1;
    std::string idx = std::to_string(human);
    if (i != 0) out += prefix;
    out += std::string(idxlen > idx.size() ? idxlen - idx.size() : 0, ' ') + idx + sep + ' ';
    display(out, v.elements[i], child_prefix);
    if (is_map && i + 1 < v.elements.size()) {
      ++i;
      out.pop_back();
      out += " => ";
      display(out, v.elements[i], child_prefix);
    }
  }
}
}  // namespace

std::string encode(const value& v, bool resp2) {
  std::string out;
  writer w(out, resp2 ? 2 : 3);
  encode_into(w, v);
  return out;
}

std::string quote_repr(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  static constexpr char hex[] = "0123456789abcdef";
  for (unsigned char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\a': out += "\\a"; break;
      case '\b': out += "\\b"; break;
      default:
        if (c >= 0x20 && c <= 0x7e) {
          out.push_back(static_cast<char>(c));
        } else {
          out += "\\x";
          out.push_back(hex[c >> 4]);
          out.push_back(hex[c & 15]);
        }
    }
  }
  out.push_back('"');
  return out;
}

std::string to_display_string(const value& v) {
  std::string out;
  display(out, v, "");
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace turret::resp
