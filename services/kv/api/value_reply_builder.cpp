#include <turret/kv/value_reply_builder.hpp>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace turret::kv {

void value_reply_builder::integer(long long v) {
  reply_value r;
  r.type = reply_value::kind::integer;
  r.integer = v;
  add(std::move(r));
}

void value_reply_builder::dbl(double v) {
  reply_value r;
  r.type = reply_value::kind::dbl;
  r.dbl = v;
  add(std::move(r));
}

void value_reply_builder::boolean(bool v) {
  reply_value r;
  r.type = reply_value::kind::boolean;
  r.integer = v ? 1 : 0;
  add(std::move(r));
}

reply_builder::checkpoint value_reply_builder::mark() const noexcept {
  checkpoint c{done_.size(), stack_.size()};
  if (!stack_.empty()) {
    c.c = stack_.back().value.elements.size();
    c.d = stack_.back().remaining;
  }
  return c;
}

void value_reply_builder::rollback(const checkpoint& to) noexcept {
  while (stack_.size() > to.b) stack_.pop_back();
  if (done_.size() > to.a) done_.erase(done_.begin() + static_cast<std::ptrdiff_t>(to.a), done_.end());
  if (to.b != 0 && stack_.size() == to.b) {
    frame& f = stack_.back();
    if (f.value.elements.size() > to.c) {
      f.value.elements.erase(f.value.elements.begin() + static_cast<std::ptrdiff_t>(to.c), f.value.elements.end());
      f.remaining = to.d;
    }
  }
}

void value_reply_builder::open(reply_value::kind k, std::size_t elements) {
  reply_value v;
  v.type = k;
  if (elements == 0) {
    add(std::move(v));
    return;
  }
  v.elements.reserve(elements);
  stack_.push_back(frame{std::move(v), elements});
}

void value_reply_builder::add(reply_value v) {
  for (;;) {
    if (stack_.empty()) {
      done_.push_back(std::move(v));
      return;
    }
    frame& f = stack_.back();
    f.value.elements.push_back(std::move(v));
    if (--f.remaining != 0) return;
    v = std::move(f.value);
    stack_.pop_back();
  }
}

namespace {

struct resp_parser {
  std::string_view in;
  std::size_t pos = 0;
  bool ok = true;

  std::string_view line() {
    auto e = in.find("\r\n", pos);
    if (e == std::string_view::npos) {
      ok = false;
      return {};
    }
    auto l = in.substr(pos, e - pos);
    pos = e + 2;
    return l;
  }
  static long long num(std::string_view s) {
    long long v = 0;
    std::from_chars(s.data(), s.data() + s.size(), v);
    return v;
  }

  void parse(reply_builder& out) {
    if (pos >= in.size()) {
      ok = false;
      return;
    }
    char t = in[pos++];
    auto l = line();
    if (!ok) return;
    switch (t) {
      case '+': out.simple(l); break;
      case '-': out.error(l); break;
      case ':': out.integer(num(l)); break;
      case '_': out.null_bulk(); break;
      case '#': out.boolean(l == "t"); break;
      case ',': out.dbl(std::strtod(std::string(l).c_str(), nullptr)); break;
      case '(': out.big_number(l); break;
      case '$':
      case '=': {
        long long n = num(l);
        if (n < 0) {
          out.null_bulk();
          break;
        }
        if (pos + static_cast<std::size_t>(n) + 2 > in.size()) {
          ok = false;
          return;
        }
        auto body = in.substr(pos, static_cast<std::size_t>(n));
        pos += static_cast<std::size_t>(n) + 2;
        if (t == '$') out.bulk(body);
        else out.verbatim(body.size() >= 4 ? body.substr(4) : body, body.substr(0, 3));
        break;
      }
      case '*':
      case '~':
      case '>':
      case '%': {
        long long n = num(l);
        if (n < 0) {
          out.null_array();
          break;
        }
        auto un = static_cast<std::size_t>(n);
        if (t == '*') out.array(un);
        else if (t == '~') out.set(un);
        else if (t == '>') out.push(un);
        else out.map(un);
        std::size_t elems = t == '%' ? un * 2 : un;
        for (std::size_t i = 0; i < elems && ok; ++i) parse(out);
        break;
      }
      default: ok = false;
    }
  }
};

void append_double(std::string& out, double v) {
  if (std::isinf(v)) {
    out += v > 0 ? "inf" : "-inf";
    return;
  }
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%.17g", v);
  out.append(buf, static_cast<std::size_t>(n));
}

void encode(const reply_value& v, int proto, std::string& out) {
  using k = reply_value::kind;
  auto bulk = [&](std::string_view s) {
    out += '$';
    out += std::to_string(s.size());
    out += "\r\n";
    out.append(s);
    out += "\r\n";
  };
  auto agg = [&](char c3, std::size_t n) {
    out += proto == 3 ? c3 : '*';
    out += std::to_string(n);
    out += "\r\n";
  };
  switch (v.type) {
    case k::simple: out += '+'; out += v.str; out += "\r\n"; break;
    case k::error: out += '-'; out += v.str; out += "\r\n"; break;
    case k::integer: out += ':'; out += std::to_string(v.integer); out += "\r\n"; break;
    case k::bulk: bulk(v.str); break;
    case k::null: out += proto == 3 ? "_\r\n" : "$-1\r\n"; break;
    case k::array: agg('*', v.elements.size()); break;
    case k::set: agg('~', v.elements.size()); break;
    case k::push: agg('>', v.elements.size()); break;
    case k::map:
      if (proto == 3) {
        out += '%';
        out += std::to_string(v.elements.size() / 2);
        out += "\r\n";
      } else {
        agg('*', v.elements.size());
      }
      break;
    case k::dbl: {
      std::string d;
      append_double(d, v.dbl);
      if (proto == 3) {
        out += ',';
        out += d;
        out += "\r\n";
      } else {
        bulk(d);
      }
      break;
    }
    case k::boolean:
      if (proto == 3) out += v.integer ? "#t\r\n" : "#f\r\n";
      else out += v.integer ? ":1\r\n" : ":0\r\n";
      break;
    case k::verbatim:
      if (proto == 3) {
        out += '=';
        out += std::to_string(v.str.size() + 4);
        out += "\r\ntxt:";
        out += v.str;
        out += "\r\n";
      } else {
        bulk(v.str);
      }
      break;
    case k::big_number:
      if (proto == 3) {
        out += '(';
        out += v.str;
        out += "\r\n";
      } else {
        bulk(v.str);
      }
      break;
  }
  for (const auto& e : v.elements) encode(e, proto, out);
}

}  // namespace

void value_reply_builder::raw(std::string_view resp_bytes) {
  resp_parser p{resp_bytes};
  while (p.ok && p.pos < resp_bytes.size()) p.parse(*this);
  if (!p.ok) {
    // unwind any container the malformed input left open
    while (!stack_.empty()) {
      reply_value v = std::move(stack_.back().value);
      stack_.pop_back();
      add(std::move(v));
    }
    error("ERR malformed reply");
  }
}

void replay(const reply_value& v, reply_builder& out) {
  using k = reply_value::kind;
  switch (v.type) {
    case k::simple: out.simple(v.str); return;
    case k::error: out.error(v.str); return;
    case k::integer: out.integer(v.integer); return;
    case k::bulk: out.bulk(v.str); return;
    case k::null: out.null_bulk(); return;
    case k::dbl: out.dbl(v.dbl); return;
    case k::boolean: out.boolean(v.integer != 0); return;
    case k::verbatim: out.verbatim(v.str); return;
    case k::big_number: out.big_number(v.str); return;
    case k::array: out.array(v.elements.size()); break;
    case k::map: out.map(v.elements.size() / 2); break;
    case k::set: out.set(v.elements.size()); break;
    case k::push: out.push(v.elements.size()); break;
  }
  for (const reply_value& e : v.elements) replay(e, out);
}

std::string to_resp(const reply_value& v, int protocol) {
  std::string out;
  encode(v, protocol, out);
  return out;
}

}  // namespace turret::kv
