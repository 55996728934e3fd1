// The operations of <turret/ops/operations.hpp>: their rules, commands and replies.
#include <turret/ops/operations.hpp>

#include <charconv>

namespace turret::ops {

namespace {

using kind = kv::reply_value::kind;

status check_keys(const keys_type& keys) {
  if (keys.empty()) return status::invalid(no_keys_error);
  return {};
}

/// The integer of an integer reply, else nullopt.
std::optional<long long> integer_of(const kv::reply_value& v) {
  if (v.type != kind::integer) return std::nullopt;
  return v.integer;
}

status unexpected_reply(std::string_view command) {
  std::string what = "unexpected reply to ";
  what += command;
  return status::unexpected(what);
}

}  // namespace

// --- set --------------------------------------------------------------------------------------------------------------

status set_op::validate(const input& in) {
  if (in.ttl_ms) {
    if (const std::string_view why = ttl_error(*in.ttl_ms); !why.empty()) return status::invalid(why);
    if (in.keep_ttl) return status::invalid("keep_ttl and ttl are mutually exclusive");
  }
  return {};
}

void set_op::command(const input& in, int, cmd_args& a) {
  a.push("SET");
  a.push(in.key);
  a.push(in.value);
  if (in.ttl_ms) {
    a.push("PX");
    a.push_number(0, *in.ttl_ms);
  }
  if (in.keep_ttl) a.push("KEEPTTL");
  if (in.cond == condition::if_not_exists) a.push("NX");
  if (in.cond == condition::if_exists) a.push("XX");
  if (in.return_previous) a.push("GET");
}

final_status set_op::reply(const input& in, int, kv::reply_value& v, output& out) {
  const auto unmet = [&] {
    return status::precondition_failed(in.cond == condition::if_not_exists ? "key already exists"
                                                                           : "key does not exist");
  };
  if (!in.return_previous) {
    // SET answers OK, or null when NX/XX did not let it store.
    if (v.is_null()) return unmet();
    if (v.type != kind::simple) return unexpected_reply("SET");
    return status{};
  }
  // SET ... GET: the previous value (null: none) whether or not it stored; NX stored only if there was none, XX
  // only if there was one.
  if (!v.is_null() && v.type != kind::bulk) return unexpected_reply("SET");
  const bool had = !v.is_null();
  if ((in.cond == condition::if_not_exists && had) || (in.cond == condition::if_exists && !had)) return unmet();
  out.had_previous = had;
  if (had) out.previous = std::move(v.str);
  return status{};
}

// --- delete -----------------------------------------------------------------------------------------------------------

status delete_op::validate(const input& in) { return check_keys(in.keys); }

void delete_op::command(const input& in, int, cmd_args& a) {
  a.v.reserve(in.keys.size() + 1);
  a.push("DEL");
  for (std::string_view k : in.keys) a.push(k);
}

final_status delete_op::reply(const input& in, int, kv::reply_value& v, output& out) {
  const auto n = integer_of(v);
  if (!n) return unexpected_reply("DEL");
  if (*n == 0 && in.not_found_when_none) return status::not_found();
  out.deleted = *n;
  return status{};
}

// --- mget -------------------------------------------------------------------------------------------------------------

status mget_op::validate(const input& in) { return check_keys(in.keys); }

void mget_op::command(const input& in, int, cmd_args& a) {
  a.v.reserve(in.keys.size() + 1);
  a.push("MGET");
  for (std::string_view k : in.keys) a.push(k);
}

final_status mget_op::reply(const input& in, int, kv::reply_value& v, output& out) {
  if (v.type != kind::array || v.elements.size() != in.keys.size()) return unexpected_reply("MGET");
  out.values.reserve(v.elements.size());
  for (auto& e : v.elements) {
    if (e.type == kind::bulk) out.values.emplace_back(std::move(e.str));
    else out.values.emplace_back(std::nullopt);
  }
  return status{};
}

// --- mset -------------------------------------------------------------------------------------------------------------

status mset_op::validate(const input& in) {
  if (in.entries.empty()) return status::invalid(no_keys_error);
  return {};
}

void mset_op::command(const input& in, int, cmd_args& a) {
  a.v.reserve(in.entries.size() * 2 + 1);
  a.push(in.if_none_exist ? "MSETNX" : "MSET");
  for (const auto& [k, v] : in.entries) {
    a.push(k);
    a.push(v);
  }
}

final_status mset_op::reply(const input& in, int, kv::reply_value& v, output&) {
  if (!in.if_none_exist) {
    if (v.type != kind::simple) return unexpected_reply("MSET");
    return status{};
  }
  const auto n = integer_of(v);
  if (!n) return unexpected_reply("MSETNX");
  if (*n == 0) return status::precondition_failed("a key already exists");
  return status{};
}

// --- incr -------------------------------------------------------------------------------------------------------------

status incr_op::validate(const input&) { return {}; }

void incr_op::command(const input& in, int, cmd_args& a) {
  a.push("INCRBY");
  a.push(in.key);
  a.push_number(0, in.delta);
}

final_status incr_op::reply(const input&, int, kv::reply_value& v, output& out) {
  const auto n = integer_of(v);
  if (!n) return unexpected_reply("INCRBY");
  out.value = *n;
  return status{};
}

// --- expire -----------------------------------------------------------------------------------------------------------

status expire_op::validate(const input& in) {
  if (const std::string_view why = ttl_error(in.ttl_ms); !why.empty()) return status::invalid(why);
  return {};
}

void expire_op::command(const input& in, int, cmd_args& a) {
  a.push("PEXPIRE");
  a.push(in.key);
  a.push_number(0, in.ttl_ms);
  switch (in.cond) {
    case expire_condition::none: break;
    case expire_condition::if_no_ttl: a.push("NX"); break;
    case expire_condition::if_has_ttl: a.push("XX"); break;
    case expire_condition::if_greater: a.push("GT"); break;
    case expire_condition::if_less: a.push("LT"); break;
  }
}

final_status expire_op::reply(const input& in, int, kv::reply_value& v, output& out) {
  const auto n = integer_of(v);
  if (!n) return unexpected_reply("PEXPIRE");
  if (*n == 0 && in.cond == expire_condition::none) return status::not_found();
  out.applied = *n != 0;
  return status{};
}

// --- ttl --------------------------------------------------------------------------------------------------------------

status ttl_op::validate(const input&) { return {}; }

void ttl_op::command(const input& in, int, cmd_args& a) {
  a.push("PTTL");
  a.push(in.key);
}

final_status ttl_op::reply(const input&, int, kv::reply_value& v, output& out) {
  const auto n = integer_of(v);
  if (!n) return unexpected_reply("PTTL");
  if (*n == -2) return status::not_found();
  if (*n >= 0) out.ttl_ms = *n;
  return status{};
}

// --- persist ----------------------------------------------------------------------------------------------------------

status persist_op::validate(const input&) { return {}; }

void persist_op::command(const input& in, int step, cmd_args& a) {
  a.push(step == 0 ? "PERSIST" : "EXISTS");
  a.push(in.key);
}

final_status persist_op::reply(const input&, int step, kv::reply_value& v, output& out) {
  const auto n = integer_of(v);
  if (!n) return unexpected_reply(step == 0 ? "PERSIST" : "EXISTS");
  if (step == 0) {
    if (*n == 0) return std::nullopt;  // no TTL removed: a missing key, or one without a TTL?
    out.removed = true;
    return status{};
  }
  if (*n == 0) return status::not_found();
  out.removed = false;
  return status{};
}

// --- publish ----------------------------------------------------------------------------------------------------------

status publish_op::validate(const input&) { return {}; }

void publish_op::command(const input& in, int, cmd_args& a) {
  a.push("PUBLISH");
  a.push(in.channel);
  a.push(in.message);
}

final_status publish_op::reply(const input&, int, kv::reply_value& v, output& out) {
  const auto n = integer_of(v);
  if (!n) return unexpected_reply("PUBLISH");
  out.receivers = *n;
  return status{};
}

// --- scan -------------------------------------------------------------------------------------------------------------

scan_filter make_scan_filter(std::string_view prefix, std::string_view pattern) {
  scan_filter f;
  if (!pattern.empty()) {
    f.pattern.assign(pattern);
    f.prefix = prefix;
    return f;
  }
  if (prefix.empty()) return f;
  // Redis's stringmatchlen specials: * ? [ ] and the escape itself.
  f.pattern.reserve(prefix.size() + 4);
  for (char c : prefix) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') f.pattern.push_back('\\');
    f.pattern.push_back(c);
  }
  f.pattern.push_back('*');
  return f;
}

status scan_op::validate(const input& in) {
  if (in.count == 0) return status::invalid("count must be positive");
  return {};
}

void scan_op::command(const input& in, int, cmd_args& a) {
  a.push("SCAN");
  a.push_number(0, static_cast<unsigned long long>(in.cursor));
  if (!in.pattern.empty()) {
    a.push("MATCH");
    a.push(in.pattern);
  }
  a.push("COUNT");
  a.push_number(1, static_cast<unsigned long long>(in.count));
}

final_status scan_op::reply(const input& in, int, kv::reply_value& v, output& out) {
  if (v.type != kind::array || v.elements.size() != 2 || v.elements[1].type != kind::array)
    return unexpected_reply("SCAN");
  const std::string& cursor = v.elements[0].str;
  std::uint64_t next = 0;
  const auto [end, ec] = std::from_chars(cursor.data(), cursor.data() + cursor.size(), next);
  if (ec != std::errc() || end != cursor.data() + cursor.size()) return unexpected_reply("SCAN");
  out.next = next;
  out.keys.reserve(v.elements[1].elements.size());
  for (auto& k : v.elements[1].elements) {
    if (!in.prefix.empty() && !std::string_view(k.str).starts_with(in.prefix)) continue;
    out.keys.push_back(std::move(k.str));
  }
  return status{};
}

}  // namespace turret::ops
