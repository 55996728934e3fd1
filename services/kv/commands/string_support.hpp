#pragma once
// Helpers shared by the string and bitmap command families (strings.cpp, bitmap.cpp): Redis's number parsing and
// formatting rules, its error texts, and the lookups of db.c (lazy expiry + keyspace hit/miss statistics).
// Internal to services/kv/commands; handlers run under the store lock.
#include <services/kv/command.hpp>
#include <services/kv/commands/arguments.hpp>
#include <services/kv/dispatch.hpp>
#include <services/kv/numbers.hpp>
#include <services/kv/store.hpp>

#include <climits>
#include <cstdint>
#include <string_view>

namespace turret::kv::detail {

using kv::parse_ll;

inline constexpr std::string_view err_wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value";
inline constexpr std::string_view err_not_float = "ERR value is not a valid float";
inline constexpr std::string_view err_too_big = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

/// An error reply, counted in INFO's errorstats as Redis's addReplyError does.
inline void fail(command_ctx& c, std::string_view msg) { reply_error(c.st, c.out, msg); }

/// Decimal formatting of a long long into buf (at least 21 bytes); returns the length.
inline std::size_t format_ll(char* buf, long long value) noexcept {
  unsigned long long v = value < 0 ? 0 - static_cast<unsigned long long>(value) : static_cast<unsigned long long>(value);
  char tmp[24];
  std::size_t n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  std::size_t len = 0;
  if (value < 0) buf[len++] = '-';
  while (n) buf[len++] = tmp[--n];
  return len;
}

/// Keyspace hit/miss accounting + lazy expiry + the "keymiss" notification, as db.c's lookupKeyRead.
inline entry* lookup_read(command_ctx& c, std::string_view key) {
  keyspace& db = c.db();
  entry* e = db.find(key, c.now);
  if (e) {
    ++c.st.stats().keyspace_hits;
  } else {
    ++c.st.stats().keyspace_misses;
    c.st.notify(notify_key_miss, "keymiss", key, db.index());
  }
  return e;
}

/// lookupKeyWrite: lazy expiry, no statistics.
inline entry* lookup_write(command_ctx& c, std::string_view key) { return c.db().find(key, c.now); }

/// checkType: replies WRONGTYPE and returns true when e exists and is not a string.
inline bool wrong_type(command_ctx& c, const entry* e) {
  if (e && keyspace::type_of(e) != value_type::string) {
    fail(c, err_wrongtype);
    return true;
  }
  return false;
}

/// signalModifiedKey + notifyKeyspaceEvent.
inline void modified(command_ctx& c, std::string_view key, std::string_view event, std::uint32_t cls = notify_string) {
  c.st.key_modified(c.sess.db, key);
  c.st.notify(cls, event, key, c.sess.db);
}

/// server.proto_max_bulk_len (CONFIG SET proto-max-bulk-len changes it).
inline long long proto_max_bulk_len(const command_ctx& c) noexcept {
  return c.st.limits().proto_max_bulk_len.load(std::memory_order_relaxed);
}

/// checkStringLength: replies the proto-max-bulk-len error and returns false when a string of size + append bytes
/// would be too long (overflow-safe). Call it before anything is allocated or written.
inline bool check_string_length(command_ctx& c, unsigned long long size, unsigned long long append) {
  if (!exceeds_string_limit(size, append, proto_max_bulk_len(c))) return true;
  fail(c, err_too_big);
  return false;
}

}  // namespace turret::kv::detail
