// Generic key commands (Redis's db.c and expire.c): DEL, UNLINK, EXISTS, TYPE, KEYS, SCAN, RANDOMKEY, RENAME,
// RENAMENX, COPY, MOVE, TOUCH, EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT, TTL, PTTL, EXPIRETIME, PEXPIRETIME, PERSIST.
// Every write calls key_modified (WATCH, dirty) and notify (keyspace events) exactly where Redis does.
#include <turret/kv/command_table.hpp>
#include <services/kv/commands/arguments.hpp>
#include <services/kv/dispatch.hpp>
#include <turret/kv/glob.hpp>
#include <services/kv/store.hpp>

#include <algorithm>
#include <cerrno>
#include <cctype>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace turret::kv {
namespace {

constexpr std::string_view err_same_object = "ERR source and destination objects are the same";

std::string_view type_name(const entry* e) {
  switch (keyspace::type_of(e)) {
    case value_type::string: return "string";
  }
  return "none";
}

/// Redis's lookupKeyRead: lazy expiry, keyspace hits/misses, keymiss notification.
entry* lookup_read(command_ctx& c, keyspace& db, std::string_view key) {
  entry* e = db.find(key, c.now);
  if (e) {
    ++c.st.stats().keyspace_hits;
  } else {
    ++c.st.stats().keyspace_misses;
    c.st.notify(notify_key_miss, "keymiss", key, db.index());
  }
  return e;
}

/// Redis's lookupKeyWrite: lazy expiry only.
entry* lookup_write(command_ctx& c, keyspace& db, std::string_view key) { return db.find(key, c.now); }

void del_generic(command_ctx& c) {
  keyspace& db = c.db();
  long long n = 0;
  for (std::size_t j = 1; j < c.args.size(); ++j) {
    entry* e = db.find(c.args[j], c.now);
    if (!e) continue;
    db.erase(e);
    c.st.key_modified(db.index(), c.args[j]);
    c.st.notify(notify_generic, "del", c.args[j], db.index());
    ++n;
  }
  c.out.integer(n);
}

void exists_cmd(command_ctx& c) {
  keyspace& db = c.db();
  long long n = 0;
  for (std::size_t j = 1; j < c.args.size(); ++j)
    if (lookup_read(c, db, c.args[j])) ++n;
  c.out.integer(n);
}

void type_cmd(command_ctx& c) {
  entry* e = lookup_read(c, c.db(), c.args[1]);
  c.out.simple(e ? type_name(e) : "none");
}

void keys_cmd(command_ctx& c) {
  keyspace& db = c.db();
  std::string_view pattern = c.args[1];
  const bool all = pattern == "*";
  std::vector<std::string_view> keys;
  db.for_each([&](const entry* e) {
    std::string_view k = keyspace::key_of(e);
    if (!all && !glob_match(pattern, k)) return;
    ms_t exp = db.expire_of(e);
    if (exp != no_expiry && c.now > exp) return;
    keys.push_back(k);
  });
  c.out.array(keys.size());
  for (auto k : keys) c.out.bulk(k);
}

void scan_cmd(command_ctx& c) {
  // parseScanCursorOrReply: strtoul, no leading space, whole string, no ERANGE.
  std::string cur(c.args[1]);
  errno = 0;
  char* eptr = nullptr;
  unsigned long cursor = std::strtoul(cur.c_str(), &eptr, 10);
  if ((!cur.empty() && std::isspace(static_cast<unsigned char>(cur[0]))) || *eptr != '\0' || errno == ERANGE) {
    reply_error(c.st, c.out, "ERR invalid cursor");
    return;
  }
  long long count = 10;
  std::string_view pattern;
  bool use_pattern = false;
  bool has_type = false;
  std::string_view type;
  for (std::size_t i = 2; i < c.args.size();) {
    std::size_t j = c.args.size() - i;
    if (iequals(c.args[i], "count") && j >= 2) {
      if (!ll_arg(c, c.args[i + 1], count)) return;
      if (count < 1) {
        reply_error(c.st, c.out, err_syntax);
        return;
      }
      i += 2;
    } else if (iequals(c.args[i], "match") && j >= 2) {
      pattern = c.args[i + 1];
      use_pattern = pattern != "*";
      i += 2;
    } else if (iequals(c.args[i], "type") && j >= 2) {
      type = c.args[i + 1];
      has_type = true;
      i += 2;
    } else {
      reply_error(c.st, c.out, err_syntax);
      return;
    }
  }
  keyspace& db = c.db();
  std::vector<std::string> keys;
  // keyspace::scan bounds its work by count * 10 buckets: a COUNT above SIZE_MAX / 10 means "no bound" (the whole
  // table), never a product that wraps to a small one.
  count = std::min<long long>(count, static_cast<long long>(SIZE_MAX / 10));
  std::uint64_t next = db.scan(cursor, static_cast<std::size_t>(count),
                               [&](const entry* e) { keys.emplace_back(keyspace::key_of(e)); });
  std::vector<std::string_view> out;
  out.reserve(keys.size());
  for (auto& k : keys) {
    if (use_pattern && !glob_match(pattern, k)) continue;
    if (has_type) {
      entry* e = db.find_raw(k);
      std::string_view tn = e ? type_name(e) : "none";
      if (!iequals(type, tn)) continue;
    }
    if (!db.find(k, c.now)) continue;  // expired: deleted now, as Redis's expireIfNeeded
    out.push_back(k);
  }
  c.out.array(2);
  c.out.bulk(std::to_string(next));
  c.out.array(out.size());
  for (auto k : out) c.out.bulk(k);
}

void randomkey_cmd(command_ctx& c) {
  entry* e = c.db().random(c.now);
  if (!e) c.out.null_bulk();
  else c.out.bulk(keyspace::key_of(e));
}

void rename_generic(command_ctx& c, bool nx) {
  keyspace& db = c.db();
  std::string_view src = c.args[1], dst = c.args[2];
  entry* e = lookup_write(c, db, src);
  if (!e) {
    reply_error(c.st, c.out, "ERR no such key");
    return;
  }
  if (src == dst) {
    if (nx) c.out.integer(0);
    else c.out.ok();
    return;
  }
  std::string value(keyspace::value_of(e));
  ms_t expire = db.expire_of(e);
  if (lookup_write(c, db, dst)) {
    if (nx) {
      c.out.integer(0);
      return;
    }
    db.erase(dst);
  }
  db.set(dst, value, expire);
  db.erase(src);
  c.st.key_modified(db.index(), src);
  c.st.key_modified(db.index(), dst);
  c.st.notify(notify_generic, "rename_from", src, db.index());
  c.st.notify(notify_generic, "rename_to", dst, db.index());
  if (nx) c.out.integer(1);
  else c.out.ok();
}

void rename_cmd(command_ctx& c) { rename_generic(c, false); }
void renamenx_cmd(command_ctx& c) { rename_generic(c, true); }

void copy_cmd(command_ctx& c) {
  keyspace& src = c.db();
  keyspace* dst = &src;
  bool replace = false;
  for (std::size_t j = 3; j < c.args.size(); ++j) {
    std::size_t additional = c.args.size() - j - 1;
    if (iequals(c.args[j], "replace")) {
      replace = true;
    } else if (iequals(c.args[j], "db") && additional >= 1) {
      int id;
      if (!int_arg(c, c.args[j + 1], id)) return;
      if (id < 0 || id >= c.st.databases()) {
        reply_error(c.st, c.out, "ERR DB index is out of range");
        return;
      }
      dst = &c.st.db(id);
      ++j;
    } else {
      reply_error(c.st, c.out, err_syntax);
      return;
    }
  }
  std::string_view key = c.args[1], newkey = c.args[2];
  if (dst == &src && key == newkey) {
    reply_error(c.st, c.out, err_same_object);
    return;
  }
  entry* e = lookup_read(c, src, key);
  if (!e) {
    c.out.integer(0);
    return;
  }
  std::string value(keyspace::value_of(e));
  ms_t expire = src.expire_of(e);
  if (lookup_write(c, *dst, newkey)) {
    if (!replace) {
      c.out.integer(0);
      return;
    }
    dst->erase(newkey);
  }
  dst->set(newkey, value, expire);
  c.st.key_modified(dst->index(), newkey);
  c.st.notify(notify_generic, "copy_to", newkey, dst->index());
  c.out.integer(1);
}

void move_cmd(command_ctx& c) {
  keyspace& src = c.db();
  int id;
  if (!int_arg(c, c.args[2], id)) return;
  if (id < 0 || id >= c.st.databases()) {
    reply_error(c.st, c.out, "ERR DB index is out of range");
    return;
  }
  keyspace& dst = c.st.db(id);
  if (&dst == &src) {
    reply_error(c.st, c.out, err_same_object);
    return;
  }
  std::string_view key = c.args[1];
  entry* e = lookup_write(c, src, key);
  if (!e) {
    c.out.integer(0);
    return;
  }
  std::string value(keyspace::value_of(e));
  ms_t expire = src.expire_of(e);
  if (lookup_write(c, dst, key)) {
    c.out.integer(0);
    return;
  }
  dst.set(key, value, expire);
  src.erase(key);
  c.st.key_modified(src.index(), key);
  c.st.key_modified(dst.index(), key);
  c.st.notify(notify_generic, "move_from", key, src.index());
  c.st.notify(notify_generic, "move_to", key, dst.index());
  c.out.integer(1);
}

void touch_cmd(command_ctx& c) {
  keyspace& db = c.db();
  long long n = 0;
  for (std::size_t j = 1; j < c.args.size(); ++j)
    if (lookup_read(c, db, c.args[j])) ++n;
  c.out.integer(n);
}

enum expire_flag { exp_nx = 1, exp_xx = 2, exp_gt = 4, exp_lt = 8 };

void expire_generic(command_ctx& c, ms_t basetime, bool seconds) {
  int flags = 0;
  for (std::size_t j = 3; j < c.args.size(); ++j) {
    auto opt = c.args[j];
    if (iequals(opt, "nx")) flags |= exp_nx;
    else if (iequals(opt, "xx")) flags |= exp_xx;
    else if (iequals(opt, "gt")) flags |= exp_gt;
    else if (iequals(opt, "lt")) flags |= exp_lt;
    else {
      std::string o(opt.substr(0, std::min(opt.find('\0'), opt.size())));
      reply_error(c.st, c.out, "ERR Unsupported option " + o);
      return;
    }
  }
  if ((flags & exp_nx) && (flags & (exp_xx | exp_gt | exp_lt))) {
    reply_error(c.st, c.out, "ERR NX and XX, GT or LT options at the same time are not compatible");
    return;
  }
  if ((flags & exp_gt) && (flags & exp_lt)) {
    reply_error(c.st, c.out, "ERR GT and LT options at the same time are not compatible");
    return;
  }
  long long when;
  if (!ll_arg(c, c.args[2], when)) return;
  const command_def* def = c.st.commands() ? c.st.commands()->find(c.args[0]) : nullptr;
  std::string err = "ERR invalid expire time in '" + std::string(def ? def->name : std::string_view("expire")) +
                    "' command";
  if (seconds) {
    if (when > LLONG_MAX / 1000 || when < LLONG_MIN / 1000) {
      reply_error(c.st, c.out, err);
      return;
    }
    when *= 1000;
  }
  if (when > LLONG_MAX - basetime) {
    reply_error(c.st, c.out, err);
    return;
  }
  when += basetime;
  keyspace& db = c.db();
  std::string_view key = c.args[1];
  entry* e = lookup_write(c, db, key);
  if (!e) {
    c.out.integer(0);
    return;
  }
  if (flags) {
    ms_t current = db.expire_of(e);
    if ((flags & exp_nx) && current != no_expiry) return c.out.integer(0);
    if ((flags & exp_xx) && current == no_expiry) return c.out.integer(0);
    if ((flags & exp_gt) && (when <= current || current == no_expiry)) return c.out.integer(0);
    if ((flags & exp_lt) && current != no_expiry && when >= current) return c.out.integer(0);
  }
  if (when <= c.now) {
    db.erase(e);
    c.st.key_modified(db.index(), key);
    c.st.notify(notify_generic, "del", key, db.index());
    c.out.integer(1);
    return;
  }
  db.set_expire(e, when);
  c.out.integer(1);
  c.st.key_modified(db.index(), key);
  c.st.notify(notify_generic, "expire", key, db.index());
}

void expire_cmd(command_ctx& c) { expire_generic(c, c.now, true); }
void pexpire_cmd(command_ctx& c) { expire_generic(c, c.now, false); }
void expireat_cmd(command_ctx& c) { expire_generic(c, 0, true); }
void pexpireat_cmd(command_ctx& c) { expire_generic(c, 0, false); }

void ttl_generic(command_ctx& c, bool output_ms, bool output_abs) {
  keyspace& db = c.db();
  entry* e = lookup_read(c, db, c.args[1]);
  if (!e) {
    c.out.integer(-2);
    return;
  }
  long long ttl = -1;
  ms_t expire = db.expire_of(e);
  if (expire != no_expiry) {
    ttl = output_abs ? expire : expire - c.now;
    if (ttl < 0) ttl = 0;
  }
  // Seconds rounded half up, as Redis's (ttl + 500) / 1000, without its overflow when ttl is an absolute time
  // near LLONG_MAX (EXPIRETIME after PEXPIREAT 9223372036854775807 is 9223372036854776).
  if (ttl == -1) c.out.integer(-1);
  else c.out.integer(output_ms ? ttl : ttl / 1000 + (ttl % 1000 >= 500 ? 1 : 0));
}

void ttl_cmd(command_ctx& c) { ttl_generic(c, false, false); }
void pttl_cmd(command_ctx& c) { ttl_generic(c, true, false); }
void expiretime_cmd(command_ctx& c) { ttl_generic(c, false, true); }
void pexpiretime_cmd(command_ctx& c) { ttl_generic(c, true, true); }

void persist_cmd(command_ctx& c) {
  keyspace& db = c.db();
  entry* e = lookup_write(c, db, c.args[1]);
  if (!e || db.expire_of(e) == no_expiry) {
    c.out.integer(0);
    return;
  }
  db.set_expire(e, no_expiry);
  c.st.key_modified(db.index(), c.args[1]);
  c.st.notify(notify_generic, "persist", c.args[1], db.index());
  c.out.integer(1);
}

}  // namespace

void register_key_commands(command_table& t) {
  t.add("del", del_generic);
  t.add("unlink", del_generic);
  t.add("exists", exists_cmd);
  t.add("type", type_cmd);
  t.add("keys", keys_cmd);
  t.add("scan", scan_cmd);
  t.add("randomkey", randomkey_cmd);
  t.add("rename", rename_cmd);
  t.add("renamenx", renamenx_cmd);
  t.add("copy", copy_cmd);
  t.add("move", move_cmd);
  t.add("touch", touch_cmd);
  t.add("expire", expire_cmd);
  t.add("pexpire", pexpire_cmd);
  t.add("expireat", expireat_cmd);
  t.add("pexpireat", pexpireat_cmd);
  t.add("ttl", ttl_cmd);
  t.add("pttl", pttl_cmd);
  t.add("expiretime", expiretime_cmd);
  t.add("pexpiretime", pexpiretime_cmd);
  t.add("persist", persist_cmd);
}

}  // namespace turret::kv
