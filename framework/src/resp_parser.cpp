// Client command parser: see turret/resp/parser.hpp. Mirrors redis 7.0 src/networking.c processMultibulkBuffer and
// processInlineBuffer, and src/sds.c sdssplitargs, including their quirks (documented in the header).
#include "turret/resp/parser.hpp"

#include <algorithm>
#include <climits>

namespace turret::resp {

namespace {

constexpr std::size_t long_str_size = 21;  // Redis LONG_STR_SIZE

// Redis util.c string2ll: no '+', no leading zeros (except "0"), no "-0", no spaces, < 21 chars.
inline bool string2ll(const char* s, std::size_t slen, long long* value) noexcept {
  if (slen == 0 || slen >= long_str_size) return false;
  if (slen == 1 && s[0] == '0') {
    *value = 0;
    return true;
  }
  const char* p = s;
  const char* end = s + slen;
  bool negative = false;
  if (*p == '-') {
    negative = true;
    if (++p == end) return false;
  }
  unsigned long long v;
  if (*p >= '1' && *p <= '9') {
    v = static_cast<unsigned long long>(*p - '0');
    ++p;
  } else {
    return false;
  }
  while (p < end && *p >= '0' && *p <= '9') {
    if (v > ULLONG_MAX / 10) return false;
    v *= 10;
    const unsigned d = static_cast<unsigned>(*p - '0');
    if (v > ULLONG_MAX - d) return false;
    v += d;
    ++p;
  }
  if (p < end) return false;
  if (negative) {
    if (v > static_cast<unsigned long long>(-(LLONG_MIN + 1)) + 1) return false;
    *value = static_cast<long long>(0 - v);
  } else {
    if (v > static_cast<unsigned long long>(LLONG_MAX)) return false;
    *value = static_cast<long long>(v);
  }
  return true;
}

inline bool has_nul(const char* p, std::size_t n) noexcept { return n && std::memchr(p, '\0', n) != nullptr; }

// Fast path for a count line "<digits>\r?" starting at p (after the '*' or '$'): a plain positive number of at most
// 18 digits without leading zero (or "0"), followed by '\r' that is not the last byte. Returns the position after
// the 2-byte terminator, or nullptr when the general (exact Redis) path must decide. For such lines both paths agree:
// the '\r' is the first one (digits precede it) and string2ll accepts exactly these digits.
inline const char* fast_count(const char* p, const char* end, long long& out) noexcept {
  if (p >= end) return nullptr;
  unsigned long long v = static_cast<unsigned char>(*p) - '0';
  if (v > 9) return nullptr;
  ++p;
  if (v == 0) {
    if (p + 1 < end && *p == '\r') {
      out = 0;
      return p + 2;
    }
    return nullptr;
  }
  const char* limit = p + 17;
  while (p < end && p < limit) {
    const unsigned d = static_cast<unsigned char>(*p) - '0';
    if (d > 9) break;
    v = v * 10 + d;
    ++p;
  }
  if (p + 1 < end && *p == '\r') {
    out = static_cast<long long>(v);
    return p + 2;
  }
  return nullptr;
}

inline bool c_isspace(char c) noexcept {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}
inline bool is_hex(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
inline int hex_val(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

}  // namespace

bool split_inline_args(std::string_view line, std::string& storage, std::vector<std::string_view>& out) {
  // Treat the end of `line` as sdssplitargs's terminating NUL (the line never holds a NUL: see parse_inline).
  const char* s = line.data();
  const std::size_t n = line.size();
  auto at = [&](std::size_t i) -> char { return i < n ? s[i] : '\0'; };
  std::size_t i = 0;
  for (;;) {
    while (i < n && c_isspace(s[i])) ++i;
    if (i >= n) return true;
    const std::size_t start = storage.size();
    bool inq = false, insq = false, done = false;
    while (!done) {
      const char c = at(i);
      if (inq) {
        if (c == '\\' && at(i + 1) == 'x' && is_hex(at(i + 2)) && is_hex(at(i + 3))) {
          storage.push_back(static_cast<char>(hex_val(at(i + 2)) * 16 + hex_val(at(i + 3))));
          i += 3;
        } else if (c == '\\' && at(i + 1)) {
          ++i;
          char e = at(i);
          switch (e) {
            case 'n': e = '\n'; break;
            case 'r': e = '\r'; break;
            case 't': e = '\t'; break;
            case 'b': e = '\b'; break;
            case 'a': e = '\a'; break;
            default: break;
          }
          storage.push_back(e);
        } else if (c == '"') {
          if (at(i + 1) && !c_isspace(at(i + 1))) return false;  // closing quote must be followed by a space
          done = true;
        } else if (!c) {
          return false;  // unterminated quotes
        } else {
          storage.push_back(c);
        }
      } else if (insq) {
        if (c == '\\' && at(i + 1) == '\'') {
          ++i;
          storage.push_back('\'');
        } else if (c == '\'') {
          if (at(i + 1) && !c_isspace(at(i + 1))) return false;
          done = true;
        } else if (!c) {
          return false;
        } else {
          storage.push_back(c);
        }
      } else {
        switch (c) {
          case ' ':
          case '\n':
          case '\r':
          case '\t':
          case '\0': done = true; break;
          case '"': inq = true; break;
          case '\'': insq = true; break;
          default: storage.push_back(c); break;
        }
      }
      if (at(i)) ++i;
    }
    out.emplace_back(storage.data() + start, storage.size() - start);
  }
}

request_parser::request_parser(parser_options opts) : opts_(opts) { args_.reserve(16); }

void request_parser::reset() noexcept {
  args_.clear();
  error_.clear();
  consumed_ = wanted_ = pos_ = 0;
  multibulk_left_ = 0;
  bulk_len_ = -1;
  base_ = 0;
  in_command_ = inline_ = failed_ = inline_nul_ = false;
}

request_parser::status request_parser::fail(std::string text) {
  failed_ = true;
  in_command_ = false;
  args_.clear();
  error_ = std::move(text);
  return status::error;
}

request_parser::status request_parser::parse(std::string_view in) {
  if (failed_) return status::error;
  consumed_ = 0;
  wanted_ = 0;
  for (;;) {
    std::string_view rest = in.substr(consumed_);
    if (!in_command_) {
      if (rest.empty()) return status::need_more;
      in_command_ = true;
      inline_ = rest[0] != '*';
      pos_ = 0;
      multibulk_left_ = 0;
      bulk_len_ = -1;
      inline_nul_ = false;
      args_.clear();
    } else if (!inline_ && !args_.empty()) {
      const auto now = reinterpret_cast<std::uintptr_t>(rest.data());
      if (now != base_) {  // the caller moved its buffer: rebase the recorded arguments
        for (auto& a : args_) a = std::string_view(rest.data() + (reinterpret_cast<std::uintptr_t>(a.data()) - base_), a.size());
        base_ = now;
      }
    }
    const status st = inline_ ? parse_inline(rest) : parse_multibulk(rest);
    if (st == status::ok) {
      in_command_ = false;
      consumed_ += pos_;
      if (args_.empty()) continue;  // empty command (*0, *-1, blank line): skipped, as Redis's resetClient
      return st;
    }
    return st;
  }
}

request_parser::status request_parser::parse_multibulk(std::string_view in) {
  const char* b = in.data();
  const std::size_t n = in.size();
  std::size_t pos = pos_;
  long long left = multibulk_left_;
  long long bulk = bulk_len_;

  if (left == 0) {
    // "*<count>\r\n"; Redis: strchr(querybuf+qb_pos, '\r').
    long long ll = 0;
    const char* cr = nullptr;
    if (const char* after = fast_count(b + 1, b + n, ll)) {
      cr = after - 2;
    } else if ((cr = static_cast<const char*>(std::memchr(b, '\r', n))) == nullptr ||
               static_cast<std::size_t>(cr - b) + 1 == n || !string2ll(b + 1, static_cast<std::size_t>(cr - b - 1), &ll)) {
      const bool found = cr != nullptr && !has_nul(b, static_cast<std::size_t>(cr - b));
      if (!found) {
        if (n > opts_.max_inline_size) return fail("Protocol error: too big mbulk count string");
        return status::need_more;
      }
      if (static_cast<std::size_t>(cr - b) + 1 == n) return status::need_more;  // "\n" not here yet
      return fail("Protocol error: invalid multibulk length");
    }
    if (ll > opts_.max_multibulk_len || ll > INT_MAX) return fail("Protocol error: invalid multibulk length");
    if (auth_required_ && ll > opts_.unauth_max_multibulk_len)
      return fail("Protocol error: unauthenticated multibulk length");
    pos = static_cast<std::size_t>(cr - b) + 2;
    if (ll <= 0) {
      pos_ = pos;
      return status::ok;  // empty command
    }
    left = ll;
    bulk = -1;
    if (args_.capacity() < static_cast<std::size_t>(std::min<long long>(ll, 1024)))
      args_.reserve(static_cast<std::size_t>(std::min<long long>(ll, 1024)));
  }

  while (left) {
    if (bulk < 0) {
      const char* line = b + pos;
      const std::size_t avail = n - pos;
      long long ll = 0;
      const char* cr = nullptr;
      if (const char* after = (avail > 0 && *line == '$') ? fast_count(line + 1, b + n, ll) : nullptr) {
        cr = after - 2;
      } else if ((cr = static_cast<const char*>(std::memchr(line, '\r', avail))) == nullptr ||
                 static_cast<std::size_t>(cr - line) + 1 == avail || *line != '$' ||
                 !string2ll(line + 1, static_cast<std::size_t>(cr - line - 1), &ll)) {
        // Slow path: decide exactly as Redis would (strchr stops at a NUL).
        const bool found = cr != nullptr && !has_nul(line, static_cast<std::size_t>(cr - line));
        if (!found) {
          if (avail > opts_.max_inline_size) return fail("Protocol error: too big bulk count string");
          break;
        }
        if (static_cast<std::size_t>(cr - line) + 1 == avail) break;
        if (*line != '$') {
          std::string msg = "Protocol error: expected '$', got '";
          const char c = *line;
          if (c == '\0') return fail(std::move(msg));  // vsnprintf %c of NUL truncates the sds
          msg.push_back(c == '\r' || c == '\n' ? ' ' : c);
          msg.push_back('\'');
          return fail(std::move(msg));
        }
        return fail("Protocol error: invalid bulk length");
      }
      if (ll < 0 || static_cast<unsigned long long>(ll) > opts_.max_bulk_len)
        return fail("Protocol error: invalid bulk length");
      if (auth_required_ && ll > opts_.unauth_max_bulk_len) return fail("Protocol error: unauthenticated bulk length");
      pos = static_cast<std::size_t>(cr - b) + 2;
      bulk = ll;
    }
    const std::size_t need = static_cast<std::size_t>(bulk) + 2;
    if (n - pos < need) break;
    args_.emplace_back(b + pos, static_cast<std::size_t>(bulk));
    pos += need;  // the 2 bytes after the data are skipped unchecked, as Redis does
    bulk = -1;
    --left;
  }

  pos_ = pos;
  multibulk_left_ = left;
  bulk_len_ = bulk;
  if (left == 0) return status::ok;
  base_ = reinterpret_cast<std::uintptr_t>(b);
  if (bulk >= 0) wanted_ = pos + static_cast<std::size_t>(bulk) + 2;
  return status::need_more;
}

request_parser::status request_parser::parse_inline(std::string_view in) {
  const char* b = in.data();
  const std::size_t n = in.size();
  // Redis: strchr(querybuf+qb_pos, '\n'): a NUL before the '\n' hides it.
  const char* nl = nullptr;
  if (!inline_nul_) {
    const std::size_t from = pos_;  // bytes already scanned (no '\n', no NUL)
    nl = static_cast<const char*>(std::memchr(b + from, '\n', n - from));
    const std::size_t scan_end = nl ? static_cast<std::size_t>(nl - b) : n;
    if (has_nul(b + from, scan_end - from)) {
      inline_nul_ = true;
      nl = nullptr;
    } else if (!nl) {
      pos_ = n;
    }
  }
  if (nl == nullptr) {
    if (n > opts_.max_inline_size) return fail("Protocol error: too big inline request");
    return status::need_more;
  }
  std::size_t line_len = static_cast<std::size_t>(nl - b);
  if (line_len > 0 && b[line_len - 1] == '\r') --line_len;
  inline_storage_.clear();
  if (inline_storage_.capacity() < line_len) inline_storage_.reserve(line_len);
  args_.clear();
  if (!split_inline_args(std::string_view(b, line_len), inline_storage_, args_)) {
    return fail("Protocol error: unbalanced quotes in request");
  }
  pos_ = static_cast<std::size_t>(nl - b) + 1;
  return status::ok;
}

// ---------------------------------------------------------------------------------------------------------------

input_buffer::input_buffer(std::size_t initial_capacity)
    : buf_(new char[std::max<std::size_t>(initial_capacity, 64)]), cap_(std::max<std::size_t>(initial_capacity, 64)) {}

void input_buffer::relocate(std::size_t new_cap) {
  std::unique_ptr<char[]> nb(new char[new_cap]);
  const std::size_t sz = end_ - begin_;
  if (sz) std::memcpy(nb.get(), buf_.get() + begin_, sz);
  buf_ = std::move(nb);
  cap_ = new_cap;
  begin_ = 0;
  end_ = sz;
}

std::span<char> input_buffer::prepare(std::size_t min_bytes) {
  if (cap_ - end_ < min_bytes) {
    const std::size_t sz = end_ - begin_;
    if (begin_ > 0 && cap_ - sz >= min_bytes) {
      std::memmove(buf_.get(), buf_.get() + begin_, sz);
      begin_ = 0;
      end_ = sz;
    } else {
      relocate(std::max(cap_ * 2, sz + min_bytes));
    }
  }
  return {buf_.get() + end_, cap_ - end_};
}

void input_buffer::reserve(std::size_t total) {
  if (cap_ - begin_ >= total) return;
  const std::size_t sz = end_ - begin_;
  if (cap_ >= total) {
    std::memmove(buf_.get(), buf_.get() + begin_, sz);
    begin_ = 0;
    end_ = sz;
    return;
  }
  relocate(std::max(total, sz));
}

void input_buffer::shrink_to(std::size_t capacity) {
  const std::size_t sz = end_ - begin_;
  if (cap_ <= capacity || sz > capacity) return;
  relocate(std::max<std::size_t>(capacity, 64));
}

}  // namespace turret::resp
