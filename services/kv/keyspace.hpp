#pragma once
// keyspace: one logical database. A compact open-addressing hash table of entries; each entry is a single heap
// block holding key, value and (optionally) expiry, so that a million 16-byte keys with 16-byte values take less
// resident memory than redis-server. Not thread-safe: the store serialises access (see store.hpp).
//
// Design (keyspace.cpp has the details)
// - Table: linear probing over 8-byte slots; a slot holds the entry pointer with 16 bits of the key's hash in its
//   top bits, so a probe rarely touches an entry that is not the one sought. No tombstones in the live table
//   (backward-shift deletion). Grows at 3/4 load, shrinks below 1/10.
// - Entry: one malloc block [flags][klen][vlen][expire, expires-index]?[key bytes][value bytes]; lengths are 1 byte
//   each when both fit (3-byte header), 4 bytes otherwise. 16-byte key + 16-byte value = 35 bytes -> one 48-byte
//   malloc chunk.
// - Resizing is incremental, as Redis's dict: a new table is allocated and the old one is drained a few slots per
//   operation (and by rehash_step()); lookups consult both meanwhile. No pause proportional to the key count.
// - Keys with a TTL are also listed in a vector (each entry stores its index in it): O(1) add/remove, uniform
//   random sampling for active expiry.
// - Hash: a seeded multiply-fold hash (per keyspace random seed), allocation-free lookups by string_view.
//
// Invalidation: entry pointers (and views from key_of/value_of/mutable_value) are invalidated by any insert, erase,
// set, resize_value, set_expire, lazy expiry (find/random), active_expire, clear or swap on the same keyspace.
// Within one command handler, re-find after such a call (or use the entry*& overloads, which update the pointer).
//
// REQUIRED API (other command families code against it; extend, don't break):
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace turret::kv {

using ms_t = std::int64_t;          ///< unix time in milliseconds
inline constexpr ms_t no_expiry = -1;

/// Current unix time in milliseconds (CLOCK_REALTIME).
ms_t unix_time_ms() noexcept;

/// A command's time: read from the clock on first use, then fixed for the rest of the command (Redis's per-command
/// mstime snapshot). Most commands never need it (a GET of a key without a TTL), so most commands read no clock.
/// Converts to ms_t; pass it on by reference to keep it lazy (keyspace::find does).
class command_time {
 public:
  command_time() = default;
  explicit command_time(ms_t fixed) noexcept : ms_(fixed) {}
  ms_t get() const noexcept {
    if (ms_ == unset) ms_ = unix_time_ms();
    return ms_;
  }
  operator ms_t() const noexcept { return get(); }  // NOLINT(google-explicit-constructor): a time, used as one

 private:
  static constexpr ms_t unset = INT64_MIN;
  mutable ms_t ms_ = unset;
};

enum class value_type : std::uint8_t { string = 0 };

/// A stored key/value. Pointers to entries are invalidated by any insert, erase, resize or rehash of their keyspace.
class entry;

class keyspace {
 public:
  explicit keyspace(int index = 0);
  ~keyspace();
  keyspace(const keyspace&) = delete;
  keyspace& operator=(const keyspace&) = delete;

  int index() const noexcept;

  /// Lookup with lazy expiry: an expired key is deleted (on_expired is called) and reported missing.
  entry* find(std::string_view key, ms_t now);
  /// As find(key, ms_t), reading the clock only when the key has a TTL.
  entry* find(std::string_view key, const command_time& now);
  /// Lookup without expiring anything (for SCAN/KEYS filtering and internal use).
  entry* find_raw(std::string_view key) const;

  /// Keys and values are limited to 4 GiB each: set and resize_value throw std::length_error beyond.
  /// Create or replace `key` with a string value. expire_at == no_expiry clears any TTL.
  entry* set(std::string_view key, std::string_view value, ms_t expire_at = no_expiry);
  /// Replace the value of an existing or new key, keeping its TTL if it exists (SET KEEPTTL, APPEND on a new key...).
  entry* set_keep_ttl(std::string_view key, std::string_view value);
  /// Resize an entry's value (new bytes are zero); returns a writable view of the bytes added by a growth (empty
  /// after a shrink). `e` is updated if the entry moves. Rewriting bytes that existed before goes through
  /// mutable_value, so that the undo log sees it.
  std::span<char> resize_value(entry*& e, std::size_t new_len);
  /// Writable view of `len` bytes of an entry's value from `offset` (offset + len <= the value's length). With an
  /// undo log in a unit of work, their current content is recorded first (a copy of `len` bytes).
  std::span<char> mutable_value(entry* e, std::size_t offset, std::size_t len);

  bool erase(std::string_view key);
  void erase(entry* e);

  static std::string_view key_of(const entry* e) noexcept;
  static std::string_view value_of(const entry* e) noexcept;
  static value_type type_of(const entry* e) noexcept;
  /// Absolute expiry (unix ms) or no_expiry.
  ms_t expire_of(const entry* e) const noexcept;
  /// Set (ms) or clear (no_expiry) the expiry of an entry. `e` is updated if the entry moves.
  void set_expire(entry*& e, ms_t at);

  std::size_t size() const noexcept;
  std::size_t expires_size() const noexcept;
  void clear();
  void swap(keyspace& other);  ///< SWAPDB: swaps contents (not indices)

  /// Redis-style SCAN: reverse-binary cursor over table buckets; every key present for the whole scan is returned
  /// at least once, even across rehashes. Calls fn for entries (including not-yet-expired-checked ones; the caller
  /// filters with expire_of). Returns the next cursor (0 when done). Visits roughly `count` buckets' worth of keys.
  std::uint64_t scan(std::uint64_t cursor, std::size_t count, const std::function<void(const entry*)>& fn) const;
  /// Calls fn for every entry (KEYS, FLUSH accounting, COMMAND tests).
  void for_each(const std::function<void(const entry*)>& fn) const;
  /// A random live key (RANDOMKEY), expiring the expired keys it meets; nullptr when empty.
  entry* random(ms_t now);

  /// Active expiry, one step: samples up to `samples` keys that have a TTL and deletes the expired ones.
  /// Returns the number deleted. The store calls it repeatedly with a time budget, as Redis's activeExpireCycle.
  std::size_t active_expire(ms_t now, std::size_t samples);

  /// Bytes used by this keyspace (entries + table), for INFO memory.
  std::size_t memory_usage() const noexcept;

  // ---- additions (h3) ------------------------------------------------------------------------------------------
  /// Incremental rehash work: migrates up to `max_slots` slots of the table being drained. Returns true while a
  /// rehash is still in progress. Operations already do a little of this; the server cron may call it (as Redis's
  /// databasesCron does) to finish resizes of idle databases.
  bool rehash_step(std::size_t max_slots = 1024);
  /// True while an incremental resize is in progress.
  bool rehashing() const noexcept;
  /// Number of table slots (both tables while rehashing); for tests and INFO.
  std::size_t capacity() const noexcept;
  /// True when the entry has expired at `now` (Redis: now > expire time).
  bool is_expired(const entry* e, ms_t now) const noexcept { ms_t at = expire_of(e); return at != no_expiry && now > at; }
  /// Deletes an expired entry as lazy expiry does (calls on_expired first). `e` is invalid afterwards.
  void expire_entry(entry* e);
  /// Allocated bytes of one entry (MEMORY USAGE).
  static std::size_t entry_memory(const entry* e) noexcept;

  /// Called for every key deleted because it expired (lazily or actively), before the entry is freed.
  std::function<void(std::string_view key)> on_expired;

  /// Records this keyspace's modifications in `log` while a unit of work is open there (nullptr: none). The
  /// store gives every database its one log.
  void set_undo_log(class undo_log* log) noexcept;

 private:
  friend class undo_log;
  struct impl;
  bool journaling() const noexcept;
  /// Frees an entry that left the table, or hands it to the undo log during a unit of work.
  void drop_entry(entry* e) noexcept;
  void swap_tables(keyspace& other) noexcept;
  impl* impl_;
  int index_;
  undo_log* undo_ = nullptr;
};

/// undo_log: what the commands of a unit of work changed in the keyspaces, so that a command that fails half-way
/// (an exception out of its handler: std::bad_alloc, std::length_error, anything) leaves every keyspace exactly
/// as it was before the command, however many keys it had already written. The dispatcher opens a unit of work
/// around every command (undo_scope below); nothing else needs to know.
///
/// How it stays cheap: nothing is copied up front. An entry that a command replaces, deletes or moves is not freed
/// but kept in the log until the unit commits (zero copy); a created key is remembered by its entry; FLUSHDB keeps
/// the whole table; SWAPDB remembers the pair. Only bytes rewritten in place (mutable_value) are copied, and only
/// as many as the command writes. Growth is undone by truncating in place; a shrink copies the bytes it cuts.
/// Rolling back never allocates (tables do not shrink and the expires vector keeps its capacity meanwhile), so
/// it cannot fail.
///
/// Units nest (EXEC runs each queued command in its own unit inside EXEC's): committing an inner unit keeps its
/// records for the outer one, rolling it back undoes only its own. Not thread-safe: used under the store lock.
class undo_log {
 public:
  undo_log() = default;
  ~undo_log();
  undo_log(const undo_log&) = delete;
  undo_log& operator=(const undo_log&) = delete;

  /// Opens a unit of work; returns its mark.
  std::size_t begin() noexcept {
    ++depth_;
    return records_.size();
  }
  /// Closes the unit opened at `mark`, keeping its effects.
  void commit(std::size_t mark) noexcept;
  /// Closes the unit opened at `mark`, undoing everything recorded since, newest first.
  void rollback(std::size_t mark) noexcept;
  bool active() const noexcept { return depth_ != 0; }
  /// Records held (for tests).
  std::size_t size() const noexcept { return records_.size(); }

 private:
  friend class keyspace;
  enum class kind : std::uint8_t { created, retained, bytes, expire, cleared, swapped };
  struct record {
    kind what;
    keyspace* db;
    entry* block = nullptr;        ///< created: the new entry; retained: the old entry (owned); bytes/expire: target
    keyspace::impl* table = nullptr;  ///< cleared: the old contents (owned)
    keyspace* other = nullptr;     ///< swapped
    std::size_t offset = 0;        ///< bytes: where `saved` was
    std::size_t length = 0;        ///< bytes: the value's length before
    ms_t expire = no_expiry;       ///< expire: the TTL before
    std::string saved;             ///< bytes: the content before, from offset
  };
  /// Makes room for one record (may throw: call before changing anything).
  void reserve() {
    if (records_.size() == records_.capacity()) records_.reserve(std::max<std::size_t>(8, records_.capacity() * 2));
  }
  void add(record r) noexcept { records_.push_back(std::move(r)); }  // capacity reserved: no allocation
  void release(std::size_t from) noexcept;

  std::vector<record> records_;
  int depth_ = 0;
};

/// A unit of work of the undo log for one command: rolls back unless committed, so an exception (or any early exit
/// that skips commit) undoes the command's writes by construction.
class undo_scope {
 public:
  explicit undo_scope(undo_log& log) noexcept : log_(log), mark_(log.begin()) {}
  undo_scope(const undo_scope&) = delete;
  undo_scope& operator=(const undo_scope&) = delete;
  ~undo_scope() {
    if (!done_) log_.rollback(mark_);
  }
  void commit() noexcept {
    done_ = true;
    log_.commit(mark_);
  }

 private:
  undo_log& log_;
  std::size_t mark_;
  bool done_ = false;
};

}  // namespace turret::kv
