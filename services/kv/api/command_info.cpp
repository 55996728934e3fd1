// Key extraction (Redis 7.0's getKeysFromCommandWithSpecs and the getkeys procedures of src/db.c), hash slots,
// idempotency rules and resolve(). Checked against redis-server itself by tests/integration/test_command_keys.py.
#include <turret/kv/command_info.hpp>

#include <turret/kv/command_table.hpp>

#include <array>
#include <climits>
#include <new>

namespace turret::kv {
namespace {

using keys_vector = decltype(command_keys::refs);
using args_t = std::span<const std::string_view>;

// Redis's string2ll: an optional '-', then no leading zeros (except "0"), at most 20 characters, no overflow.
bool string2ll(std::string_view s, long long& out) noexcept {
  if (s.empty() || s.size() > 20) return false;
  if (s.size() == 1 && s[0] == '0') {
    out = 0;
    return true;
  }
  std::size_t i = 0;
  bool negative = false;
  if (s[0] == '-') {
    negative = true;
    if (++i == s.size()) return false;
  }
  if (s[i] < '1' || s[i] > '9') return false;
  unsigned long long v = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    const unsigned d = static_cast<unsigned>(s[i] - '0');
    if (v > (ULLONG_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  if (negative) {
    if (v > static_cast<unsigned long long>(LLONG_MAX) + 1) return false;
    out = v == static_cast<unsigned long long>(LLONG_MAX) + 1 ? LLONG_MIN : -static_cast<long long>(v);
  } else {
    if (v > static_cast<unsigned long long>(LLONG_MAX)) return false;
    out = static_cast<long long>(v);
  }
  return true;
}

// glibc's atoi (what genericGetKeys uses): (int)strtol(s, NULL, 10): leading white space, a sign, digits up to the
// first other character, saturated to long, then truncated to int. The argument is a C string: it ends at a NUL.
int c_atoi(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r'))) ++i;
  bool negative = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
  unsigned long long v = 0;
  bool overflow = false;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
    const unsigned d = static_cast<unsigned>(s[i] - '0');
    if (v > (static_cast<unsigned long long>(LONG_MAX) + 1 - d) / 10) overflow = true;
    else v = v * 10 + d;
  }
  long l;
  if (negative) l = overflow || v > static_cast<unsigned long long>(LONG_MAX) ? LONG_MIN : -static_cast<long>(v);
  else l = overflow || v > static_cast<unsigned long long>(LONG_MAX) ? LONG_MAX : static_cast<long>(v);
  return static_cast<int>(l);  // truncation, as the C cast does (modulo 2^32 with GCC)
}

// strcasecmp against a lower-case literal: the argument is a C string (ends at its first NUL).
bool c_strcaseeq(std::string_view arg, std::string_view lower) noexcept {
  if (auto z = arg.find('\0'); z != std::string_view::npos) arg = arg.substr(0, z);
  return iequals(arg, lower);
}

void push(keys_vector& out, long pos, std::uint16_t flags) {
  out.push_back(key_ref{static_cast<std::uint32_t>(pos), flags});
}

// getKeysUsingKeySpecs: the number of keys appended, or -1 when a spec is invalid for this argv (nothing appended).
int keys_from_specs(const command_info& cmd, args_t args, keys_vector& out) {
  const long argc = static_cast<long>(args.size());
  const std::size_t base = out.size();
  for (const key_spec& spec : cmd.key_specs) {
    if (spec.flags & key_not_key) continue;
    long first = 0;
    if (spec.begin == key_begin::index) {
      first = spec.index;
    } else if (spec.begin == key_begin::keyword) {
      const long start = spec.startfrom > 0 ? spec.startfrom : argc + spec.startfrom;
      const long end = spec.startfrom > 0 ? argc - 1 : 1;
      for (long i = start; i != end; i = start <= end ? i + 1 : i - 1) {
        if (i >= argc || i < 1) break;
        if (c_strcaseeq(args[i], spec.keyword)) {
          first = i + 1;
          break;
        }
      }
      if (!first) continue;  // keyword not found: this spec has no keys
    } else {
      goto invalid;
    }

    long last, step;
    if (spec.find == key_find::range) {
      step = spec.keystep;
      if (spec.lastkey >= 0) last = first + spec.lastkey;
      else if (!spec.limit) last = argc + spec.lastkey;
      else last = first + ((argc - first) / spec.limit + spec.lastkey);
    } else if (spec.find == key_find::keynum) {
      step = spec.keystep;
      // Redis 7.0.15 checks only keynumidx < argc here; the position it then reads is first + keynumidx (fixed in
      // later versions): check that one, so a short argv is invalid instead of a read past its end.
      const long idx = first + spec.keynumidx;
      long long numkeys;
      if (idx >= argc || idx < 0 || !string2ll(args[idx], numkeys) || numkeys < 0) goto invalid;
      first += spec.firstkey;
      last = first + static_cast<int>(numkeys) - 1;
    } else {
      goto invalid;
    }

    if (last >= argc || last < first || first >= argc || step <= 0) goto invalid;
    for (long i = first; i <= last; i += step) {
      if (i >= argc || i < first) continue;  // (Redis: only for negative arity; the command reports the error)
      push(out, i, spec.flags);
    }
    if (spec.flags & key_incomplete) goto invalid;
    continue;
  invalid:
    out.resize(base);
    return -1;
  }
  return static_cast<int>(out.size() - base);
}

// genericGetKeys: COMMAND [destkey] <numkeys> <key> ... (flags are not reported).
void keys_numkeys(long store, long count, long firstkey, args_t args, keys_vector& out) {
  const long argc = static_cast<long>(args.size());
  if (count >= argc) return;
  const long num = c_atoi(args[count]);
  if (num < 1 || num > (argc - firstkey)) return;
  for (long i = 0; i < num; ++i) push(out, firstkey + i, 0);
  if (store) push(out, store, 0);
}

// sortGetKeys / sortROGetKeys. A BY or GET pattern with '*' names keys computed from the data: incomplete.
bool keys_sort(bool store_allowed, args_t args, keys_vector& out) {
  const long argc = static_cast<long>(args.size());
  push(out, 1, key_ro | key_access);
  long store = -1;
  bool incomplete = false;
  for (long i = 2; i < argc; ++i) {
    const std::string_view a = args[i];
    if (c_strcaseeq(a, "limit")) {
      i += 2;
    } else if (store_allowed && c_strcaseeq(a, "store") && i + 1 < argc) {
      store = i + 1;  // the last STORE wins, as in SORT; its argument is scanned as an option next (as Redis does)
    } else if (c_strcaseeq(a, "get") || c_strcaseeq(a, "by")) {
      if (i + 1 < argc && args[i + 1].find('*') != std::string_view::npos) incomplete = true;
      i += 1;
    }
  }
  if (store >= 0) push(out, store, key_ow | key_update);
  return incomplete;
}

// migrateGetKeys: MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw | AUTH2 user pw] [KEYS key ...].
// KEYS with a non-empty key argument is a syntax error: no keys.
void keys_migrate(args_t args, keys_vector& out) {
  const long argc = static_cast<long>(args.size());
  long first = 3, num = 1;
  for (long i = 6; i < argc; ++i) {
    const std::string_view a = args[i];
    if (c_strcaseeq(a, "keys")) {
      if (!args[3].empty()) {
        num = 0;
      } else {
        first = i + 1;
        num = argc - first;
      }
      break;
    }
    if (c_strcaseeq(a, "auth")) i += 1;
    else if (c_strcaseeq(a, "auth2")) i += 2;
  }
  for (long i = 0; i < num; ++i) push(out, first + i, key_rw | key_access | key_delete);
}

// georadiusGetKeys: the key, then the last STORE/STOREDIST destination.
void keys_georadius(args_t args, keys_vector& out) {
  const long argc = static_cast<long>(args.size());
  long stored = -1;
  for (long i = 5; i < argc; ++i)
    if ((c_strcaseeq(args[i], "store") || c_strcaseeq(args[i], "storedist")) && i + 1 < argc) stored = ++i;
  push(out, 1, 0);
  if (stored >= 0) push(out, stored, 0);
}

// xreadGetKeys: the options up to STREAMS, then half of what follows.
void keys_xread(args_t args, keys_vector& out) {
  const long argc = static_cast<long>(args.size());
  long streams = -1;
  for (long i = 1; i < argc; ++i) {
    const std::string_view a = args[i];
    if (c_strcaseeq(a, "block") || c_strcaseeq(a, "count")) {
      ++i;
    } else if (c_strcaseeq(a, "group")) {
      i += 2;
    } else if (c_strcaseeq(a, "noack")) {
    } else if (c_strcaseeq(a, "streams")) {
      streams = i;
      break;
    } else {
      break;
    }
  }
  if (streams < 0) return;
  const long num = argc - streams - 1;
  if (num == 0 || num % 2 != 0) return;
  for (long i = streams + 1; i < argc - num / 2; ++i) push(out, i, 0);
}

// setGetKeys: RW when a GET option is present (Redis compares the C string with "get", any case).
void keys_set(args_t args, keys_vector& out) {
  for (std::size_t i = 3; i < args.size(); ++i)
    if (c_strcaseeq(args[i], "get")) {
      push(out, 1, key_rw | key_access | key_update);
      return;
    }
  push(out, 1, key_ow | key_update);
}

// bitfieldGetKeys: read-only when every operation is GET (OVERFLOW allowed).
void keys_bitfield(args_t args, keys_vector& out) {
  const long argc = static_cast<long>(args.size());
  bool readonly = true;
  for (long i = 2; i < argc; ++i) {
    const long remargs = argc - i - 1;
    const std::string_view a = args[i];
    if (c_strcaseeq(a, "get") && remargs >= 2) {
      i += 2;
    } else if ((c_strcaseeq(a, "set") || c_strcaseeq(a, "incrby")) && remargs >= 3) {
      readonly = false;
      break;
    } else if (c_strcaseeq(a, "overflow") && remargs >= 1) {
      i += 1;
    } else {
      readonly = false;
      break;
    }
  }
  push(out, 1, readonly ? key_ro | key_access : key_rw | key_access | key_update);
}

// The getkeys procedure; true when the keys are incomplete.
bool keys_from_proc(getkeys_proc proc, args_t args, keys_vector& out) {
  switch (proc) {
    case getkeys_proc::none: break;
    case getkeys_proc::numkeys1: keys_numkeys(0, 1, 2, args, out); break;
    case getkeys_proc::numkeys2: keys_numkeys(0, 2, 3, args, out); break;
    case getkeys_proc::dest_numkeys2: keys_numkeys(1, 2, 3, args, out); break;
    case getkeys_proc::sort: return keys_sort(true, args, out);
    case getkeys_proc::sort_ro: return keys_sort(false, args, out);
    case getkeys_proc::migrate: keys_migrate(args, out); break;
    case getkeys_proc::georadius: keys_georadius(args, out); break;
    case getkeys_proc::xread: keys_xread(args, out); break;
    case getkeys_proc::set: keys_set(args, out); break;
    case getkeys_proc::bitfield: keys_bitfield(args, out); break;
  }
  return false;
}

// The CRC16 of Redis Cluster (XMODEM: polynomial 0x1021, initial value 0), one table lookup per byte.
constexpr std::array<std::uint16_t, 256> make_crc16_table() {
  std::array<std::uint16_t, 256> t{};
  for (unsigned i = 0; i < 256; ++i) {
    std::uint16_t crc = static_cast<std::uint16_t>(i << 8);
    for (int b = 0; b < 8; ++b) crc = static_cast<std::uint16_t>(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    t[i] = crc;
  }
  return t;
}
constexpr auto crc16_table = make_crc16_table();

std::uint16_t crc16(std::string_view s) noexcept {
  std::uint16_t crc = 0;
  for (unsigned char c : s) crc = static_cast<std::uint16_t>((crc << 8) ^ crc16_table[((crc >> 8) ^ c) & 0xff]);
  return crc;
}

// --- idempotency rules for turret_idempotent_by_args (the table in scripts/gen_commands.py gives the reasons) ---

// Any argument from `from` on equals one of `options` (any case).
bool has_option(args_t args, std::size_t from, std::initializer_list<std::string_view> options) noexcept {
  for (std::size_t i = from; i < args.size(); ++i)
    for (auto o : options)
      if (iequals(args[i], o)) return true;
  return false;
}

// No key written (RW, OW or RM) is byte-equal to another key of the command.
bool destination_distinct(args_t args, const command_keys& keys) noexcept {
  if (keys.status != keys_status::complete) return false;
  for (const key_ref& w : keys.refs) {
    if (!(w.flags & (key_rw | key_ow | key_rm))) continue;
    for (const key_ref& k : keys.refs)
      if (&k != &w && args[k.index] == args[w.index]) return false;
  }
  return true;
}

// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member ...: the options come first.
bool zadd_idempotent(args_t args) noexcept {
  bool xx = false;
  for (std::size_t i = 2; i < args.size(); ++i) {
    const std::string_view a = args[i];
    if (iequals(a, "xx")) xx = true;
    else if (iequals(a, "ch") || iequals(a, "incr")) return false;
    else if (!iequals(a, "nx") && !iequals(a, "gt") && !iequals(a, "lt")) break;
  }
  return xx;
}

}  // namespace

bool command_info::has_keys() const noexcept {
  if (getkeys != getkeys_proc::none) return true;
  for (const key_spec& s : key_specs)
    if (!(s.flags & key_not_key)) return true;
  return false;
}

key_source key_source_of(const command_info& cmd) noexcept {
  bool has_keyspec = false, has_varflags = false;
  for (const key_spec& s : cmd.key_specs) {
    has_keyspec |= !(s.flags & key_not_key);
    has_varflags |= (s.flags & key_variable_flags) != 0;
  }
  if (has_keyspec && !has_varflags) return key_source::specs;
  return cmd.getkeys != getkeys_proc::none ? key_source::proc : key_source::none;
}

traffic_class command_info::traffic() const noexcept {
  if (acl & acl_admin) return traffic_class::admin;
  if (acl & acl_pubsub) return traffic_class::pubsub;
  if (acl & acl_write) return traffic_class::write;
  if (acl & acl_read) return traffic_class::read;
  if (acl & (acl_connection | acl_transaction)) return traffic_class::connection;
  if (acl & acl_scripting) return traffic_class::write;
  return traffic_class::read;
}

void extract_keys(const command_info& cmd, std::span<const std::string_view> args, command_keys& out) noexcept {
  out.refs.clear();
  out.status = keys_status::complete;
  const key_source from = cmd.keys_from != key_source::unset ? cmd.keys_from : key_source_of(cmd);
  if (from == key_source::none) return;
  if (from == key_source::specs && cmd.key_specs.size() == 1) {
    // The common shape (GET, SET's siblings, INCR, HSET ...): one key spec at a fixed index with a fixed range.
    const key_spec& s = cmd.key_specs.front();
    const long argc = static_cast<long>(args.size());
    if (s.begin == key_begin::index && s.find == key_find::range && s.lastkey >= 0 && s.keystep > 0 &&
        !(s.flags & (key_incomplete | key_not_key)) && s.lastkey < static_cast<int>(inline_keys) &&
        s.index + s.lastkey < argc) {
      for (long i = s.index; i <= s.index + s.lastkey; i += s.keystep) push(out.refs, i, s.flags);
      return;
    }
  }
  try {
    int n = from == key_source::specs ? keys_from_specs(cmd, args, out.refs) : -1;
    if (n < 0 && keys_from_proc(cmd.getkeys, args, out.refs)) out.status = keys_status::incomplete;
  } catch (const std::bad_alloc&) {
    out.status = keys_status::incomplete;  // what fitted before memory ran out
    return;
  }
  if (out.refs.empty() && !(cmd.flags & cmd_no_mandatory_keys)) out.status = keys_status::invalid;
}

std::uint16_t key_hash_slot(std::string_view key) noexcept {
  const auto open = key.find('{');
  if (open != std::string_view::npos) {
    const auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close != open + 1) return crc16(key.substr(open + 1, close - open - 1)) & 0x3FFF;
  }
  return crc16(key) & 0x3FFF;
}

bool is_idempotent(const command_info& cmd, std::span<const std::string_view> args,
                   const command_keys& keys) noexcept {
  if (cmd.turret & turret_idempotent) return true;
  if (!(cmd.turret & turret_idempotent_by_args)) return false;
  const std::string_view n = cmd.name;
  if (n == "set") return !has_option(args, 3, {"nx", "get"});
  if (n == "expire" || n == "pexpire" || n == "expireat" || n == "pexpireat")
    return !has_option(args, 3, {"nx", "gt", "lt"});
  if (n == "copy") return has_option(args, 3, {"replace"});
  if (n == "restore" || n == "restore-asking") return has_option(args, 4, {"replace"});
  if (n == "function|load") return args.size() > 3 && has_option(args.first(args.size() - 1), 2, {"replace"});
  if (n == "function|restore") return has_option(args, 3, {"flush", "replace"});
  if (n == "zadd") return zadd_idempotent(args);
  if (n == "bitfield") return keys.refs.size() == 1 && (keys.refs[0].flags & key_ro);
  if (n == "sort") {
    if (keys.refs.size() < 2) return true;  // no STORE: a read
    return destination_distinct(args, keys) && !has_option(args, 2, {"by", "get"});
  }
  if (n == "georadius" || n == "georadiusbymember") return keys.refs.size() < 2 || destination_distinct(args, keys);
  // BITOP, S*STORE, Z*STORE, ZRANGESTORE, GEOSEARCHSTORE
  return destination_distinct(args, keys);
}

std::optional<std::uint16_t> resolved_command::slot() const noexcept {
  if (slot_ == not_computed) slot_ = keys.refs.empty() ? no_slot : key_hash_slot(args[keys.refs.front().index]);
  if (slot_ == no_slot) return std::nullopt;
  return static_cast<std::uint16_t>(slot_);
}

bool resolved_command::crossslot() const noexcept {
  if (cross_ < 0) {
    cross_ = 0;
    if (auto first = slot(); first && keys.refs.size() > 1)
      for (std::size_t i = 1; i < keys.refs.size(); ++i)
        if (key_hash_slot(args[keys.refs[i].index]) != *first) {
          cross_ = 1;
          break;
        }
  }
  return cross_ == 1;
}

resolved_command resolve(const command_table& table, std::span<const std::string_view> args) noexcept {
  resolved_command r;
  r.args = args;
  if (args.empty()) return r;
  r.base = table.find(args[0]);
  const command_def* def = r.base;
  if (def && args.size() >= 2 && def->is_container()) def = command_table::find_sub(*def, args[1]);
  if (!def) return r;
  r.def = def;
  r.info = def;
  extract_keys(*def, args, r.keys);
  return r;
}

namespace {

// C's "%.Ns": at most n bytes, stopping at a NUL.
std::string_view c_str_prefix(std::string_view s, std::size_t n) {
  s = s.substr(0, std::min(s.size(), n));
  auto z = s.find('\0');
  return z == std::string_view::npos ? s : s.substr(0, z);
}

}  // namespace

std::string unknown_command_error(std::span<const std::string_view> args) {
  std::string msg = "ERR unknown command '";
  msg.append(c_str_prefix(args[0], 128));
  msg.append("', with args beginning with: ");
  std::string a;
  for (std::size_t i = 1; i < args.size() && a.size() < 128; ++i) {
    const std::size_t precision = 128 - a.size();
    a += '\'';
    a.append(c_str_prefix(args[i], precision));
    a += "' ";
  }
  msg += a;
  return msg;
}

std::string unknown_subcommand_error(std::string_view container, std::string_view sub) {
  std::string up(c_str_prefix(container, container.size()));
  for (auto& c : up)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
  std::string msg = "ERR unknown subcommand '";
  msg.append(c_str_prefix(sub, 128)).append("'. Try ").append(up).append(" HELP.");
  return msg;
}

std::string arity_error(const command_info& cmd) {
  return "ERR wrong number of arguments for '" + std::string(cmd.name) + "' command";
}

}  // namespace turret::kv
