#pragma once
// keyspace internals shared by keyspace.cpp and undo_log.cpp (not a public header): the hash, the entry layout
// (an entry is one malloc'd block: flags, lengths, optional expiry, key, value) and the open-addressing tables.
// See keyspace.hpp for the design summary and the invalidation contract.
#include <services/kv/keyspace.hpp>
#include <malloc.h>
#include <algorithm>
#include <cassert>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

namespace turret::kv {

// Entries are raw byte blocks; `entry` is only a name for pointers to them.
class entry {};

namespace {

// ---- hashing ---------------------------------------------------------------------------------------------------
// A multiply-fold hash: 128-bit products folded to 64 bits, 16 bytes per round (three lanes above 48 bytes).
// Seeded per keyspace so that hash flooding needs the (random) seed.

// memcpy/memcmp of possibly empty string_views: an empty view may have data() == nullptr, which memcpy and
// memcmp must not receive even with a zero length (UBSan: nonnull-attribute).
inline void copy_bytes(void* dst, const void* src, std::size_t n) noexcept {
  if (n) std::memcpy(dst, src, n);
}
inline bool same_bytes(const void* a, const void* b, std::size_t n) noexcept { return n == 0 || std::memcmp(a, b, n) == 0; }

inline std::uint64_t rd64(const unsigned char* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline std::uint64_t rd32(const unsigned char* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline std::uint64_t fold_mul(std::uint64_t a, std::uint64_t b) noexcept {
  unsigned __int128 r = static_cast<unsigned __int128>(a) * b;
  return static_cast<std::uint64_t>(r) ^ static_cast<std::uint64_t>(r >> 64);
}

constexpr std::uint64_t c0 = 0x9e3779b97f4a7c15ull;
constexpr std::uint64_t c1 = 0xc2b2ae3d27d4eb4full;
constexpr std::uint64_t c2 = 0x165667b19e3779f9ull;
constexpr std::uint64_t c3 = 0xd6e8feb86659fd93ull;

struct hash_keys {
  std::uint64_t seed, k1, k2;
};

inline std::uint64_t hash_bytes(const hash_keys& hk, const void* data, std::size_t n) noexcept {
  const auto* p = static_cast<const unsigned char*>(data);
  std::uint64_t seed = hk.seed, a, b;
  if (n <= 16) {
    if (n >= 8) {
      a = rd64(p);
      b = rd64(p + n - 8);
    } else if (n >= 4) {
      a = rd32(p);
      b = rd32(p + n - 4);
    } else if (n > 0) {
      a = (std::uint64_t{p[0]} << 16) | (std::uint64_t{p[n >> 1]} << 8) | p[n - 1];
      b = 0;
    } else {
      a = b = 0;
    }
  } else {
    std::size_t i = n;
    if (i > 48) {
      std::uint64_t s1 = seed, s2 = seed;
      do {
        seed = fold_mul(rd64(p) ^ c1, rd64(p + 8) ^ seed);
        s1 = fold_mul(rd64(p + 16) ^ c2, rd64(p + 24) ^ s1);
        s2 = fold_mul(rd64(p + 32) ^ c3, rd64(p + 40) ^ s2);
        p += 48;
        i -= 48;
      } while (i > 48);
      seed ^= s1 ^ s2;
    }
    while (i > 16) {
      seed = fold_mul(rd64(p) ^ c1, rd64(p + 8) ^ seed);
      p += 16;
      i -= 16;
    }
    a = rd64(p + i - 16);
    b = rd64(p + i - 8);
  }
  return fold_mul(c0 ^ n ^ hk.k2, fold_mul(a ^ hk.k1, b ^ seed));
}

inline std::uint64_t splitmix(std::uint64_t& s) noexcept {
  std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::uint64_t process_entropy() {
  static const std::uint64_t e = [] {
    std::random_device rd;
    return (std::uint64_t{rd()} << 32) ^ rd();
  }();
  return e;
}

// ---- entry layout ----------------------------------------------------------------------------------------------
// byte 0: flags = type (bits 0-3) | f_expire | f_wide
// narrow: [flags][klen u8][vlen u8]             (3 bytes)
// wide:   [flags][klen u32][vlen u32]           (9 bytes)
// then, with f_expire: [expire_at i64][index in the expires vector u32]  (12 bytes)
// then key bytes, then value bytes. Everything unaligned (memcpy).

constexpr std::uint8_t f_type_mask = 0x0f;
constexpr std::uint8_t f_expire = 0x10;
constexpr std::uint8_t f_wide = 0x20;

inline unsigned char* B(entry* e) noexcept { return reinterpret_cast<unsigned char*>(e); }
inline const unsigned char* B(const entry* e) noexcept { return reinterpret_cast<const unsigned char*>(e); }

inline std::size_t base_size(std::uint8_t f) noexcept { return (f & f_wide) ? 9 : 3; }
inline std::size_t hdr_size(std::uint8_t f) noexcept { return base_size(f) + ((f & f_expire) ? 12 : 0); }
inline bool needs_wide(std::size_t kl, std::size_t vl) noexcept { return kl > 255 || vl > 255; }

inline std::uint32_t e_klen(const unsigned char* p) noexcept {
  if (p[0] & f_wide) {
    std::uint32_t v;
    std::memcpy(&v, p + 1, 4);
    return v;
  }
  return p[1];
}
inline std::uint32_t e_vlen(const unsigned char* p) noexcept {
  if (p[0] & f_wide) {
    std::uint32_t v;
    std::memcpy(&v, p + 5, 4);
    return v;
  }
  return p[2];
}
inline void write_base(unsigned char* p, std::uint8_t f, std::uint32_t kl, std::uint32_t vl) noexcept {
  p[0] = f;
  if (f & f_wide) {
    std::memcpy(p + 1, &kl, 4);
    std::memcpy(p + 5, &vl, 4);
  } else {
    p[1] = static_cast<unsigned char>(kl);
    p[2] = static_cast<unsigned char>(vl);
  }
}
inline void set_vlen(unsigned char* p, std::uint32_t vl) noexcept {
  if (p[0] & f_wide)
    std::memcpy(p + 5, &vl, 4);
  else
    p[2] = static_cast<unsigned char>(vl);
}
inline ms_t e_expire(const unsigned char* p) noexcept {
  if (!(p[0] & f_expire)) return no_expiry;
  ms_t v;
  std::memcpy(&v, p + base_size(p[0]), 8);
  return v;
}
inline void set_e_expire(unsigned char* p, ms_t at) noexcept { std::memcpy(p + base_size(p[0]), &at, 8); }
inline std::uint32_t e_xidx(const unsigned char* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p + base_size(p[0]) + 8, 4);
  return v;
}
inline void set_e_xidx(unsigned char* p, std::uint32_t i) noexcept { std::memcpy(p + base_size(p[0]) + 8, &i, 4); }
inline const char* e_key(const unsigned char* p) noexcept {
  return reinterpret_cast<const char*>(p + hdr_size(p[0]));
}
inline std::string_view e_keyv(const unsigned char* p) noexcept { return {e_key(p), e_klen(p)}; }
inline std::size_t usable(const void* p) noexcept { return malloc_usable_size(const_cast<void*>(p)); }

// ---- slots -------------------------------------------------------------------------------------------------------
using slot_t = std::uintptr_t;
constexpr slot_t empty_slot = 0;
constexpr slot_t tomb_slot = 1;  // only in a table being drained
constexpr int tag_shift = 48;
constexpr slot_t ptr_mask = (slot_t{1} << tag_shift) - 1;

inline entry* slot_ptr(slot_t s) noexcept { return reinterpret_cast<entry*>(s & ptr_mask); }
inline slot_t make_slot(const entry* e, std::uint64_t h) noexcept {
  auto v = reinterpret_cast<slot_t>(e);
  assert((v & ~ptr_mask) == 0);
  return v | (static_cast<slot_t>(h >> tag_shift) << tag_shift);
}
inline bool live(slot_t s) noexcept { return s > tomb_slot; }

struct table {
  slot_t* slots = nullptr;
  std::size_t cap = 0;   // 0 or a power of two
  std::size_t used = 0;  // live entries
  std::size_t mask() const noexcept { return cap - 1; }
};

constexpr std::size_t min_cap = 16;
constexpr std::size_t npos = ~std::size_t{0};

inline std::uint64_t rev_bits(std::uint64_t v) noexcept {
  v = ((v >> 1) & 0x5555555555555555ull) | ((v & 0x5555555555555555ull) << 1);
  v = ((v >> 2) & 0x3333333333333333ull) | ((v & 0x3333333333333333ull) << 2);
  v = ((v >> 4) & 0x0f0f0f0f0f0f0f0full) | ((v & 0x0f0f0f0f0f0f0f0full) << 4);
  return __builtin_bswap64(v);
}

}  // namespace

struct keyspace::impl {
  table cur;                  // inserts go here
  table old;                  // being drained while rehashing (cap != 0)
  std::size_t rehash_idx = 0; // next slot of `old` to migrate
  std::vector<entry*> expires;
  std::size_t entry_bytes = 0;
  hash_keys hk{};
  std::uint64_t rng = 0;
  const undo_log* log = nullptr;  // the owning keyspace's; tables do not shrink while a unit of work is open

  impl() {
    static std::uint64_t counter = 0;
    std::uint64_t s = process_entropy() ^ (reinterpret_cast<std::uintptr_t>(this) * c1) ^ (++counter * c2);
    hk.seed = splitmix(s);
    hk.k1 = splitmix(s);
    hk.k2 = splitmix(s);
    rng = splitmix(s);
  }
  ~impl() { release_all(); }

  void release_all() noexcept {
    for (table* t : {&cur, &old}) {
      if (!t->slots) continue;
      for (std::size_t i = 0; i < t->cap; ++i)
        if (live(t->slots[i])) std::free(slot_ptr(t->slots[i]));
      std::free(t->slots);
      *t = table{};
    }
    rehash_idx = 0;
    expires.clear();
    expires.shrink_to_fit();
    entry_bytes = 0;
  }

  std::uint64_t hash(std::string_view k) const noexcept { return hash_bytes(hk, k.data(), k.size()); }
  std::uint64_t rand() noexcept { return splitmix(rng); }
  bool rehashing() const noexcept { return old.cap != 0; }
  std::size_t size() const noexcept { return cur.used + old.used; }

  static slot_t* alloc_slots(std::size_t cap) {
    void* p = std::calloc(cap, sizeof(slot_t));
    if (!p) throw std::bad_alloc();
    return static_cast<slot_t*>(p);
  }

  // Index of the slot holding `key` in t, or npos.
  static std::size_t find_in(const table& t, std::string_view key, std::uint64_t h) noexcept {
    if (t.used == 0) return npos;
    const std::size_t mask = t.mask();
    const slot_t tag = static_cast<slot_t>(h >> tag_shift);
    for (std::size_t i = h & mask;; i = (i + 1) & mask) {
      slot_t s = t.slots[i];
      if (s == empty_slot) return npos;
      if ((s >> tag_shift) == tag && s != tomb_slot) {
        const unsigned char* p = B(slot_ptr(s));
        if (e_klen(p) == key.size() && same_bytes(e_key(p), key.data(), key.size())) return i;
      }
    }
  }
  // Slot index of entry e (known present) in t, or npos.
  static std::size_t find_ptr_in(const table& t, const entry* e, std::uint64_t h) noexcept {
    if (t.used == 0) return npos;
    const std::size_t mask = t.mask();
    for (std::size_t i = h & mask;; i = (i + 1) & mask) {
      slot_t s = t.slots[i];
      if (s == empty_slot) return npos;
      if (live(s) && slot_ptr(s) == e) return i;
    }
  }

  struct location {
    table* t = nullptr;
    std::size_t i = npos;
    explicit operator bool() const noexcept { return t != nullptr; }
  };
  location locate(std::string_view key, std::uint64_t h) noexcept {
    std::size_t i = find_in(cur, key, h);
    if (i != npos) return {&cur, i};
    if (rehashing()) {
      i = find_in(old, key, h);
      if (i != npos) return {&old, i};
    }
    return {};
  }
  location locate_ptr(const entry* e) noexcept {
    std::uint64_t h = hash(e_keyv(B(e)));
    std::size_t i = find_ptr_in(cur, e, h);
    if (i != npos) return {&cur, i};
    if (rehashing()) {
      i = find_ptr_in(old, e, h);
      if (i != npos) return {&old, i};
    }
    return {};
  }

  // Place a slot value into t (no duplicate check; t has room).
  static void place(table& t, slot_t s, std::uint64_t h) noexcept {
    const std::size_t mask = t.mask();
    std::size_t i = h & mask;
    while (t.slots[i] != empty_slot) i = (i + 1) & mask;
    t.slots[i] = s;
    ++t.used;
  }

  // Remove slot i of t (the entry itself is not freed).
  void remove_slot(table& t, std::size_t i) noexcept {
    --t.used;
    if (&t == &old) {  // the drained table keeps its probe chains with tombstones
      t.slots[i] = tomb_slot;
      return;
    }
    // Backward-shift deletion: pull later members of the cluster back over the hole when their home allows it.
    const std::size_t mask = t.mask();
    std::size_t hole = i;
    for (std::size_t j = (i + 1) & mask;; j = (j + 1) & mask) {
      slot_t s = t.slots[j];
      if (s == empty_slot) break;
      std::size_t home = hash(e_keyv(B(slot_ptr(s)))) & mask;
      // The entry at j may move to `hole` unless its home lies cyclically in (hole, j].
      bool stays = (hole <= j) ? (hole < home && home <= j) : (hole < home || home <= j);
      if (stays) continue;
      t.slots[hole] = s;
      hole = j;
    }
    t.slots[hole] = empty_slot;
  }

  // ---- resizing ----
  void start_resize(std::size_t new_cap) {
    assert(!rehashing());
    slot_t* ns = alloc_slots(new_cap);
    if (cur.used == 0) {  // nothing to migrate
      std::free(cur.slots);
      cur = table{ns, new_cap, 0};
      return;
    }
    old = cur;
    cur = table{ns, new_cap, 0};
    rehash_idx = 0;
  }
  // Migrates up to max_slots slots of `old`; returns true while draining continues.
  bool step(std::size_t max_slots) noexcept {
    if (!rehashing()) return false;
    while (max_slots-- && rehash_idx < old.cap) {
      slot_t s = old.slots[rehash_idx];
      if (live(s)) {
        entry* e = slot_ptr(s);
        place(cur, s, hash(e_keyv(B(e))));
        old.slots[rehash_idx] = tomb_slot;
        --old.used;
      }
      ++rehash_idx;
      if (old.used == 0) break;
    }
    if (old.used == 0 || rehash_idx >= old.cap) {
      assert(old.used == 0);
      std::free(old.slots);
      old = table{};
      rehash_idx = 0;
      maybe_shrink();  // deletions during a resize may already call for a smaller table
      return rehashing();
    }
    return true;
  }
  void finish_rehash() noexcept {
    while (step(std::size_t{1} << 20)) {
    }
  }
  // Make room for one more insert into cur.
  void reserve_one() {
    if (cur.cap == 0) {
      cur = table{alloc_slots(min_cap), min_cap, 0};
      return;
    }
    if (rehashing()) {
      if ((cur.used + 1) * 10 <= cur.cap * 9) return;
      finish_rehash();
    }
    if ((cur.used + 1) * 4 > cur.cap * 3) start_resize(cur.cap * 2);
  }
  void maybe_shrink() noexcept {
    if (rehashing() || cur.cap <= min_cap || cur.used * 10 >= cur.cap) return;
    if (log && log->active()) return;  // a rollback may put back every key deleted meanwhile, without allocating
    std::size_t want = min_cap;
    while (want < cur.used * 2) want <<= 1;
    if (want < cur.cap) {
      try {
        start_resize(want);
      } catch (const std::bad_alloc&) {  // shrinking is optional
      }
    }
  }

  // ---- expires vector ----
  /// Room for one more xadd (geometric growth), taken before an entry changes so that xadd cannot throw after.
  void reserve_expire() {
    if (expires.size() == expires.capacity()) expires.reserve(std::max<std::size_t>(16, expires.capacity() * 2));
  }
  void xadd(entry* e) noexcept {  // capacity reserved by reserve_expire (or known: a rollback)
    set_e_xidx(B(e), static_cast<std::uint32_t>(expires.size()));
    expires.push_back(e);
  }
  void xremove(const unsigned char* p) noexcept {
    std::uint32_t i = e_xidx(p);
    entry* last = expires.back();
    expires[i] = last;
    set_e_xidx(B(last), i);
    expires.pop_back();
  }

  // ---- entry blocks ----
  /// Lengths are stored in 32 bits: a larger key or value is refused before anything changes (a command gets its
  /// -OOM reply through the undo log; Redis's own limit, proto-max-bulk-len, defaults to 512 MB).
  static void check_lengths(std::size_t kl, std::size_t vl) {
    if (kl > UINT32_MAX || vl > UINT32_MAX) throw std::length_error("keyspace: keys and values are limited to 4 GiB");
  }
  entry* alloc_entry(std::size_t total) {
    void* p = std::malloc(total);
    if (!p) throw std::bad_alloc();
    entry_bytes += usable(p);
    return static_cast<entry*>(p);
  }
  void free_entry(entry* e) noexcept {
    entry_bytes -= usable(e);
    std::free(e);
  }

  // Builds a new block for key with a value of vl bytes (uninitialised) and the given type/expiry flags.
  entry* make_entry(std::string_view key, std::size_t vl, std::uint8_t type_exp, std::size_t extra = 0) {
    check_lengths(key.size(), vl);
    std::uint8_t f = static_cast<std::uint8_t>(type_exp | (needs_wide(key.size(), vl) ? f_wide : 0));
    entry* e = alloc_entry(hdr_size(f) + key.size() + vl + extra);
    write_base(B(e), f, static_cast<std::uint32_t>(key.size()), static_cast<std::uint32_t>(vl));
    copy_bytes(B(e) + hdr_size(f), key.data(), key.size());
    return e;
  }

  // Rewrites the layout of `e` in place for a value of new_vl bytes whose first `keep` bytes are the current
  // value's (the rest is left for the caller), with `exp_flag` (0 or f_expire). The block must be large enough.
  static void relayout(unsigned char* p, std::size_t new_vl, std::uint8_t exp_flag, std::size_t keep) noexcept {
    const std::uint8_t of = p[0];
    const std::uint32_t kl = e_klen(p);
    const std::size_t old_hs = hdr_size(of);
    std::uint8_t nf = static_cast<std::uint8_t>((of & f_type_mask) | exp_flag | (needs_wide(kl, new_vl) ? f_wide : 0));
    const std::size_t new_hs = hdr_size(nf);
    ms_t at = e_expire(p);
    std::uint32_t xi = (of & f_expire) ? e_xidx(p) : 0;
    if (new_hs != old_hs) std::memmove(p + new_hs, p + old_hs, kl + keep);
    write_base(p, nf, kl, static_cast<std::uint32_t>(new_vl));
    if (nf & f_expire) {
      set_e_expire(p, at);
      set_e_xidx(p, xi);
    }
  }

  // Replace the pointer of entry `from` (at loc) by `to` everywhere (slot, expires vector).
  void repoint(location loc, entry* to) noexcept {
    repoint_slot(loc, to);
    if (B(to)[0] & f_expire) expires[e_xidx(B(to))] = to;
  }
  // Only the slot: for an entry that is not (yet) in the expires vector, whose index field is not set.
  static void repoint_slot(location loc, entry* to) noexcept {
    slot_t s = loc.t->slots[loc.i];
    loc.t->slots[loc.i] = (s & ~ptr_mask) | reinterpret_cast<slot_t>(to);
  }
};

}  // namespace turret::kv
