// The string command family (Redis 7.0's t_string.c): GET, SET and its variants, GETEX, GETDEL, MGET/MSET(NX),
// INCR/DECR(BY), INCRBYFLOAT, APPEND, STRLEN, GETRANGE/SUBSTR, SETRANGE, LCS. Replies, error texts, argument
// validation order and keyspace events follow redis-server 7.0.15 (verified against it: strings_test.cpp).
#include <turret/kv/command_table.hpp>
#include <services/kv/commands/string_support.hpp>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace turret::kv {
namespace {

using namespace detail;

// ---- GET / SET family ------------------------------------------------------------------------------------------

enum set_flag : unsigned {
  f_nx = 1u << 0,
  f_xx = 1u << 1,
  f_ex = 1u << 2,
  f_px = 1u << 3,
  f_keepttl = 1u << 4,
  f_get = 1u << 5,
  f_exat = 1u << 6,
  f_pxat = 1u << 7,
  f_persist = 1u << 8,
};
constexpr unsigned any_expire = f_ex | f_px | f_exat | f_pxat;

// parseExtendedStringArgumentsOrReply. Options start at args[first].
bool parse_extended(command_ctx& c, bool is_set, std::size_t first, unsigned& flags, std::string_view& expire) {
  const auto& a = c.args;
  for (std::size_t j = first; j < a.size(); ++j) {
    std::string_view opt = a[j];
    const bool next = j + 1 < a.size();
    if (is_set && iequals(opt, "nx") && !(flags & f_xx)) {
      flags |= f_nx;
    } else if (is_set && iequals(opt, "xx") && !(flags & f_nx)) {
      flags |= f_xx;
    } else if (is_set && iequals(opt, "get")) {
      flags |= f_get;
    } else if (is_set && iequals(opt, "keepttl") && !(flags & (f_persist | any_expire))) {
      flags |= f_keepttl;
    } else if (!is_set && iequals(opt, "persist") && !(flags & (any_expire | f_keepttl))) {
      flags |= f_persist;
    } else if (iequals(opt, "ex") && !(flags & (f_keepttl | f_persist | f_exat | f_px | f_pxat)) && next) {
      flags |= f_ex;
      expire = a[++j];
    } else if (iequals(opt, "px") && !(flags & (f_keepttl | f_persist | f_ex | f_exat | f_pxat)) && next) {
      flags |= f_px;
      expire = a[++j];
    } else if (iequals(opt, "exat") && !(flags & (f_keepttl | f_persist | f_ex | f_px | f_pxat)) && next) {
      flags |= f_exat;
      expire = a[++j];
    } else if (iequals(opt, "pxat") && !(flags & (f_keepttl | f_persist | f_ex | f_exat | f_px)) && next) {
      flags |= f_pxat;
      expire = a[++j];
    } else {
      fail(c, err_syntax);
      return false;
    }
  }
  return true;
}

void expire_time_error(command_ctx& c, std::string_view cmd) {
  std::string msg = "ERR invalid expire time in '";
  msg += cmd;
  msg += "' command";
  fail(c, msg);
}

// getExpireMillisecondsOrReply: absolute unix ms.
bool expire_at_ms(command_ctx& c, std::string_view arg, unsigned flags, std::string_view cmd, ms_t& when) {
  long long ms;
  if (!parse_ll(arg, ms)) {
    fail(c, err_not_int);
    return false;
  }
  const bool seconds = flags & (f_ex | f_exat);
  if (ms <= 0 || (seconds && ms > LLONG_MAX / 1000)) {
    expire_time_error(c, cmd);
    return false;
  }
  if (seconds) ms *= 1000;
  if (flags & (f_ex | f_px)) {
    if (__builtin_add_overflow(ms, c.now.get(), &ms)) ms = -1;
  }
  if (ms <= 0) {
    expire_time_error(c, cmd);
    return false;
  }
  when = ms;
  return true;
}

// getGenericCommand: replies the value (or null); false on WRONGTYPE.
bool get_generic(command_ctx& c, std::string_view key) {
  entry* e = lookup_read(c, key);
  if (!e) {
    c.out.null_bulk();
    return true;
  }
  if (wrong_type(c, e)) return false;
  c.out.bulk(keyspace::value_of(e));
  return true;
}

enum class set_reply : std::uint8_t { ok_null, one_zero };

// setGenericCommand.
void set_generic(command_ctx& c, unsigned flags, std::string_view key, std::string_view val,
                 const std::string_view* expire, std::string_view cmd, set_reply kind) {
  ms_t when = no_expiry;
  if (expire && !expire_at_ms(c, *expire, flags, cmd, when)) return;
  if ((flags & f_get) && !get_generic(c, key)) return;
  keyspace& db = c.db();
  const bool found = lookup_write(c, key) != nullptr;
  if (((flags & f_nx) && found) || ((flags & f_xx) && !found)) {
    if (!(flags & f_get)) kind == set_reply::ok_null ? c.out.null_bulk() : c.out.integer(0);
    return;
  }
  if ((flags & f_keepttl) && found)
    db.set_keep_ttl(key, val);
  else
    db.set(key, val, when);
  modified(c, key, "set");
  if (expire) c.st.notify(notify_generic, "expire", key, c.sess.db);
  if (!(flags & f_get)) kind == set_reply::ok_null ? c.out.ok() : c.out.integer(1);
}

void cmd_get(command_ctx& c) {
  entry* e = lookup_read(c, c.args[1]);
  if (!e) return c.out.null_bulk();
  if (wrong_type(c, e)) return;
  c.out.bulk(keyspace::value_of(e));
}

void cmd_set(command_ctx& c) {
  if (c.args.size() == 3) {  // fast path: SET key value
    keyspace& db = c.db();
    db.find(c.args[1], c.now);  // lazy expiry of an old value, as lookupKeyWrite
    db.set(c.args[1], c.args[2]);
    modified(c, c.args[1], "set");
    return c.out.ok();
  }
  unsigned flags = 0;
  std::string_view expire;
  if (!parse_extended(c, true, 3, flags, expire)) return;
  set_generic(c, flags, c.args[1], c.args[2], (flags & any_expire) ? &expire : nullptr, "set", set_reply::ok_null);
}

void cmd_setnx(command_ctx& c) { set_generic(c, f_nx, c.args[1], c.args[2], nullptr, "setnx", set_reply::one_zero); }
void cmd_setex(command_ctx& c) { set_generic(c, f_ex, c.args[1], c.args[3], &c.args[2], "setex", set_reply::ok_null); }
void cmd_psetex(command_ctx& c) {
  set_generic(c, f_px, c.args[1], c.args[3], &c.args[2], "psetex", set_reply::ok_null);
}

void cmd_getset(command_ctx& c) {
  if (!get_generic(c, c.args[1])) return;
  c.db().set(c.args[1], c.args[2]);
  modified(c, c.args[1], "set");
}

void cmd_getdel(command_ctx& c) {
  if (!get_generic(c, c.args[1])) return;
  if (c.db().erase(c.args[1])) modified(c, c.args[1], "del", notify_generic);
}

void cmd_getex(command_ctx& c) {
  unsigned flags = 0;
  std::string_view expire;
  if (!parse_extended(c, false, 2, flags, expire)) return;
  std::string_view key = c.args[1];
  entry* e = lookup_read(c, key);
  if (!e) return c.out.null_bulk();
  if (wrong_type(c, e)) return;
  ms_t when = no_expiry;
  if ((flags & any_expire) && !expire_at_ms(c, expire, flags, "getex", when)) return;
  c.out.bulk(keyspace::value_of(e));
  keyspace& db = c.db();
  if ((flags & (f_exat | f_pxat)) && when <= c.now) {
    db.erase(e);
    modified(c, key, "del", notify_generic);
  } else if (flags & any_expire) {
    db.set_expire(e, when);
    modified(c, key, "expire", notify_generic);
  } else if ((flags & f_persist) && db.expire_of(e) != no_expiry) {
    db.set_expire(e, no_expiry);
    modified(c, key, "persist", notify_generic);
  }
}

void cmd_mget(command_ctx& c) {
  c.out.array(c.args.size() - 1);
  for (std::size_t j = 1; j < c.args.size(); ++j) {
    entry* e = lookup_read(c, c.args[j]);
    if (!e || keyspace::type_of(e) != value_type::string)
      c.out.null_bulk();
    else
      c.out.bulk(keyspace::value_of(e));
  }
}

void mset_generic(command_ctx& c, bool nx) {
  if (c.args.size() % 2 == 0) {
    std::string msg = "ERR wrong number of arguments for '";
    msg += nx ? "msetnx" : "mset";
    msg += "' command";
    return fail(c, msg);
  }
  if (nx) {
    for (std::size_t j = 1; j < c.args.size(); j += 2)
      if (lookup_write(c, c.args[j])) return c.out.integer(0);
  }
  keyspace& db = c.db();
  for (std::size_t j = 1; j < c.args.size(); j += 2) {
    db.find(c.args[j], c.now);
    db.set(c.args[j], c.args[j + 1]);
    modified(c, c.args[j], "set");
  }
  nx ? c.out.integer(1) : c.out.ok();
}
void cmd_mset(command_ctx& c) { mset_generic(c, false); }
void cmd_msetnx(command_ctx& c) { mset_generic(c, true); }

// ---- counters --------------------------------------------------------------------------------------------------

// Overwrite the value of `key` (entry e, may be null) keeping its TTL (dbOverwrite / dbAdd).
void store_value(command_ctx& c, std::string_view key, entry* e, std::string_view v) {
  keyspace& db = c.db();
  if (!e) {
    db.set(key, v);
    return;
  }
  db.resize_value(e, v.size());
  if (!v.empty()) std::memcpy(db.mutable_value(e, 0, v.size()).data(), v.data(), v.size());
}

void incr_decr(command_ctx& c, long long incr) {
  std::string_view key = c.args[1];
  entry* e = lookup_write(c, key);
  if (wrong_type(c, e)) return;
  long long value = 0;
  if (e && !parse_ll(keyspace::value_of(e), value)) return fail(c, err_not_int);
  if ((incr < 0 && value < 0 && incr < (LLONG_MIN - value)) || (incr > 0 && value > 0 && incr > (LLONG_MAX - value)))
    return fail(c, "ERR increment or decrement would overflow");
  value += incr;
  char buf[24];
  store_value(c, key, e, std::string_view(buf, format_ll(buf, value)));
  modified(c, key, "incrby");
  c.out.integer(value);
}

void cmd_incr(command_ctx& c) { incr_decr(c, 1); }
void cmd_decr(command_ctx& c) { incr_decr(c, -1); }
void cmd_incrby(command_ctx& c) {
  long long incr;
  if (!parse_ll(c.args[2], incr)) return fail(c, err_not_int);
  incr_decr(c, incr);
}
void cmd_decrby(command_ctx& c) {
  long long incr;
  if (!parse_ll(c.args[2], incr)) return fail(c, err_not_int);
  if (incr == LLONG_MIN) return fail(c, "ERR decrement would overflow");
  incr_decr(c, -incr);
}

constexpr std::size_t max_long_double_chars = 5 * 1024;

// string2ld.
bool parse_ld(std::string_view s, long double& out) {
  char buf[max_long_double_chars];
  if (s.empty() || s.size() >= sizeof buf) return false;
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  errno = 0;
  char* end = nullptr;
  long double v = std::strtold(buf, &end);
  if (std::isspace(static_cast<unsigned char>(buf[0])) || *end != '\0' || static_cast<std::size_t>(end - buf) != s.size() ||
      (errno == ERANGE && (v == HUGE_VALL || v == -HUGE_VALL || std::fpclassify(v) == FP_ZERO)) || std::isnan(v))
    return false;
  out = v;
  return true;
}

// ld2string(LD_STR_HUMAN): %.17Lf with trailing zeros (and a trailing '.') removed, "-0" -> "0".
std::size_t format_ld_human(char* buf, std::size_t len, long double v) {
  int l = std::snprintf(buf, len, "%.17Lf", v);
  if (l < 0 || static_cast<std::size_t>(l) + 1 > len) return 0;
  if (std::memchr(buf, '.', static_cast<std::size_t>(l))) {
    char* p = buf + l - 1;
    while (*p == '0') {
      --p;
      --l;
    }
    if (*p == '.') --l;
  }
  if (l == 2 && buf[0] == '-' && buf[1] == '0') {
    buf[0] = '0';
    l = 1;
  }
  return static_cast<std::size_t>(l);
}

void cmd_incrbyfloat(command_ctx& c) {
  std::string_view key = c.args[1];
  entry* e = lookup_write(c, key);
  if (wrong_type(c, e)) return;
  long double value = 0, incr = 0;
  if ((e && !parse_ld(keyspace::value_of(e), value)) || !parse_ld(c.args[2], incr)) return fail(c, err_not_float);
  value += incr;
  if (std::isnan(value) || std::isinf(value)) return fail(c, "ERR increment would produce NaN or Infinity");
  char buf[max_long_double_chars];
  std::size_t n = format_ld_human(buf, sizeof buf, value);
  store_value(c, key, e, std::string_view(buf, n));
  modified(c, key, "incrbyfloat");
  c.out.bulk(std::string_view(buf, n));
}

// ---- byte strings ----------------------------------------------------------------------------------------------

void cmd_append(command_ctx& c) {
  std::string_view key = c.args[1], add = c.args[2];
  entry* e = lookup_write(c, key);
  std::size_t total;
  if (!e) {
    c.db().set(key, add);
    total = add.size();
  } else {
    if (wrong_type(c, e)) return;
    std::size_t old = keyspace::value_of(e).size();
    if (!check_string_length(c, old, add.size())) return;
    total = old + add.size();
    auto tail = c.db().resize_value(e, total);  // the added bytes
    if (!add.empty()) std::memcpy(tail.data(), add.data(), add.size());
  }
  modified(c, key, "append");
  c.out.integer(static_cast<long long>(total));
}

void cmd_strlen(command_ctx& c) {
  entry* e = lookup_read(c, c.args[1]);
  if (!e) return c.out.integer(0);
  if (wrong_type(c, e)) return;
  c.out.integer(static_cast<long long>(keyspace::value_of(e).size()));
}

void cmd_getrange(command_ctx& c) {
  long long start, end;
  if (!parse_ll(c.args[2], start) || !parse_ll(c.args[3], end)) return fail(c, err_not_int);
  entry* e = lookup_read(c, c.args[1]);
  if (!e) return c.out.bulk("");
  if (wrong_type(c, e)) return;
  std::string_view s = keyspace::value_of(e);
  const long long len = static_cast<long long>(s.size());
  if (start < 0 && end < 0 && start > end) return c.out.bulk("");
  if (start < 0) start = len + start;
  if (end < 0) end = len + end;
  if (start < 0) start = 0;
  if (end < 0) end = 0;
  if (end >= len) end = len - 1;
  if (start > end || len == 0) return c.out.bulk("");
  c.out.bulk(s.substr(static_cast<std::size_t>(start), static_cast<std::size_t>(end - start + 1)));
}

void cmd_setrange(command_ctx& c) {
  std::string_view key = c.args[1], val = c.args[3];
  long long offset;
  if (!parse_ll(c.args[2], offset)) return fail(c, err_not_int);
  if (offset < 0) return fail(c, "ERR offset is out of range");
  keyspace& db = c.db();
  entry* e = lookup_write(c, key);
  if (!e) {
    if (val.empty()) return c.out.integer(0);
    if (!check_string_length(c, static_cast<unsigned long long>(offset), val.size())) return;
    e = db.set(key, std::string_view());
  } else {
    if (wrong_type(c, e)) return;
    std::size_t olen = keyspace::value_of(e).size();
    if (val.empty()) return c.out.integer(static_cast<long long>(olen));
    if (!check_string_length(c, static_cast<unsigned long long>(offset), val.size())) return;
  }
  std::size_t need = static_cast<std::size_t>(offset) + val.size();
  std::size_t cur = keyspace::value_of(e).size();
  if (need > cur) db.resize_value(e, need);
  std::memcpy(db.mutable_value(e, static_cast<std::size_t>(offset), val.size()).data(), val.data(), val.size());
  modified(c, key, "setrange");
  c.out.integer(static_cast<long long>(keyspace::value_of(e).size()));
}

// ---- LCS -------------------------------------------------------------------------------------------------------

void cmd_lcs(command_ctx& c) {
  entry* ea = lookup_read(c, c.args[1]);
  entry* eb = lookup_read(c, c.args[2]);
  if ((ea && keyspace::type_of(ea) != value_type::string) || (eb && keyspace::type_of(eb) != value_type::string))
    return fail(c, "ERR The specified keys must contain string values");
  // Copies: lookups above may not invalidate each other, but keep the views independent of the keyspace anyway.
  std::string a(ea ? keyspace::value_of(ea) : std::string_view());
  std::string b(eb ? keyspace::value_of(eb) : std::string_view());
  long long minmatchlen = 0;
  bool getlen = false, getidx = false, withmatchlen = false;
  for (std::size_t j = 3; j < c.args.size(); ++j) {
    std::string_view opt = c.args[j];
    const std::size_t moreargs = c.args.size() - 1 - j;
    if (iequals(opt, "idx")) {
      getidx = true;
    } else if (iequals(opt, "len")) {
      getlen = true;
    } else if (iequals(opt, "withmatchlen")) {
      withmatchlen = true;
    } else if (iequals(opt, "minmatchlen") && moreargs) {
      if (!parse_ll(c.args[j + 1], minmatchlen)) return fail(c, err_not_int);
      if (minmatchlen < 0) minmatchlen = 0;
      ++j;
    } else {
      return fail(c, err_syntax);
    }
  }
  if (getlen && getidx) return fail(c, "ERR If you want both the length and indexes, please just use IDX.");
  if (a.size() >= UINT32_MAX - 1 || b.size() >= UINT32_MAX - 1) return fail(c, "ERR String too long for LCS");

  const std::uint32_t alen = static_cast<std::uint32_t>(a.size()), blen = static_cast<std::uint32_t>(b.size());
  const unsigned long long cells = static_cast<unsigned long long>(alen + 1) * (blen + 1);  // < 2^64: sizes above
  // Redis 7.0: a table whose byte size does not fit in size_t cannot be allocated; one larger than
  // proto-max-bulk-len is refused before trying. Sizes are compared by division: cells * 4 may overflow.
  if (cells >= SIZE_MAX / sizeof(std::uint32_t))
    return fail(c, "ERR Insufficient memory, failed allocating transient memory for LCS");
  if (cells > static_cast<unsigned long long>(proto_max_bulk_len(c)) / sizeof(std::uint32_t))
    return fail(c, "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len");
  std::unique_ptr<std::uint32_t[]> table(new (std::nothrow) std::uint32_t[cells]);
  if (!table) return fail(c, "ERR Insufficient memory, failed allocating transient memory for LCS");
  auto L = [&](std::uint32_t i, std::uint32_t j) -> std::uint32_t& { return table[j + static_cast<std::size_t>(i) * (blen + 1)]; };
  for (std::uint32_t i = 0; i <= alen; ++i) {
    for (std::uint32_t j = 0; j <= blen; ++j) {
      if (i == 0 || j == 0)
        L(i, j) = 0;
      else if (a[i - 1] == b[j - 1])
        L(i, j) = L(i - 1, j - 1) + 1;
      else
        L(i, j) = std::max(L(i - 1, j), L(i, j - 1));
    }
  }
  std::uint32_t idx = L(alen, blen);
  const std::uint32_t total = idx;
  const bool computelcs = getidx || !getlen;
  std::string result(computelcs ? idx : 0, '\0');
  struct match {
    std::uint32_t a0, a1, b0, b1, len;
  };
  std::vector<match> matches;
  std::uint32_t arange_start = alen, arange_end = 0, brange_start = 0, brange_end = 0;
  std::uint32_t i = alen, j = blen;
  while (computelcs && i > 0 && j > 0) {
    bool emit_range = false;
    if (a[i - 1] == b[j - 1]) {
      result[idx - 1] = a[i - 1];
      if (arange_start == alen) {
        arange_start = i - 1;
        arange_end = i - 1;
        brange_start = j - 1;
        brange_end = j - 1;
      } else if (arange_start == i && brange_start == j) {
        --arange_start;
        --brange_start;
      } else {
        emit_range = true;
      }
      if (arange_start == 0 || brange_start == 0) emit_range = true;
      --idx;
      --i;
      --j;
    } else {
      if (L(i - 1, j) > L(i, j - 1))
        --i;
      else
        --j;
      if (arange_start != alen) emit_range = true;
    }
    const std::uint32_t match_len = arange_end - arange_start + 1;
    if (emit_range) {
      if ((minmatchlen == 0 || match_len >= minmatchlen) && getidx)
        matches.push_back({arange_start, arange_end, brange_start, brange_end, match_len});
      arange_start = alen;
    }
  }
  if (getidx) {
    c.out.map(2);
    c.out.bulk("matches");
    c.out.array(matches.size());
    for (const match& m : matches) {
      c.out.array(withmatchlen ? 3 : 2);
      c.out.array(2);
      c.out.integer(m.a0);
      c.out.integer(m.a1);
      c.out.array(2);
      c.out.integer(m.b0);
      c.out.integer(m.b1);
      if (withmatchlen) c.out.integer(m.len);
    }
    c.out.bulk("len");
    c.out.integer(total);
  } else if (getlen) {
    c.out.integer(total);
  } else {
    c.out.bulk(result);
  }
}

}  // namespace

void register_string_commands(command_table& t) {
  t.add("get", &cmd_get);
  t.add("set", &cmd_set);
  t.add("setnx", &cmd_setnx);
  t.add("setex", &cmd_setex);
  t.add("psetex", &cmd_psetex);
  t.add("getset", &cmd_getset);
  t.add("getdel", &cmd_getdel);
  t.add("getex", &cmd_getex);
  t.add("mget", &cmd_mget);
  t.add("mset", &cmd_mset);
  t.add("msetnx", &cmd_msetnx);
  t.add("incr", &cmd_incr);
  t.add("decr", &cmd_decr);
  t.add("incrby", &cmd_incrby);
  t.add("decrby", &cmd_decrby);
  t.add("incrbyfloat", &cmd_incrbyfloat);
  t.add("append", &cmd_append);
  t.add("strlen", &cmd_strlen);
  t.add("getrange", &cmd_getrange);
  t.add("substr", &cmd_getrange);
  t.add("setrange", &cmd_setrange);
  t.add("lcs", &cmd_lcs);
}

}  // namespace turret::kv
