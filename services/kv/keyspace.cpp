// keyspace implementation: see keyspace.hpp for the design summary and the invalidation contract.
#include <services/kv/keyspace_impl.hpp>

namespace turret::kv {

// ---------------------------------------------------------------------------------------------------------------

keyspace::keyspace(int index) : impl_(new impl), index_(index) {}
keyspace::~keyspace() { delete impl_; }

int keyspace::index() const noexcept { return index_; }

entry* keyspace::find_raw(std::string_view key) const {
  impl& m = *impl_;
  std::uint64_t h = m.hash(key);
  std::size_t i = impl::find_in(m.cur, key, h);
  if (i != npos) return slot_ptr(m.cur.slots[i]);
  if (m.rehashing()) {
    i = impl::find_in(m.old, key, h);
    if (i != npos) return slot_ptr(m.old.slots[i]);
  }
  return nullptr;
}

entry* keyspace::find(std::string_view key, ms_t now) { return find(key, command_time(now)); }

entry* keyspace::find(std::string_view key, const command_time& now) {
  if (impl_->rehashing()) impl_->step(8);
  entry* e = find_raw(key);
  if (e && (B(e)[0] & f_expire) && now.get() > e_expire(B(e))) {
    expire_entry(e);
    return nullptr;
  }
  return e;
}

void keyspace::expire_entry(entry* e) {
  if (on_expired) on_expired(key_of(e));
  erase(e);
}

entry* keyspace::set(std::string_view key, std::string_view value, ms_t expire_at) {
  impl& m = *impl_;
  const bool j = journaling();
  if (j) undo_->reserve();
  if (m.rehashing()) m.step(8);
  const std::uint64_t h = m.hash(key);
  const std::uint8_t exp_flag = expire_at != no_expiry ? f_expire : 0;
  const std::uint8_t type = static_cast<std::uint8_t>(value_type::string);
  if (exp_flag) m.reserve_expire();
  if (auto loc = m.locate(key, h)) {
    entry* e = slot_ptr(loc.t->slots[loc.i]);
    unsigned char* p = B(e);
    const bool had_exp = p[0] & f_expire;
    std::uint8_t nf = static_cast<std::uint8_t>(type | exp_flag | (needs_wide(key.size(), value.size()) ? f_wide : 0));
    std::size_t need = hdr_size(nf) + key.size() + value.size();
    std::size_t have = usable(p);
    const bool aliased = value.data() >= reinterpret_cast<const char*>(p) &&
                         value.data() < reinterpret_cast<const char*>(p) + have;
    if (!j && need <= have && have <= need * 2 + 32 && !aliased) {
      // Overwrite in place: no allocation. (In a unit of work the old entry is kept instead: below.)
      if (had_exp && !exp_flag) m.xremove(p);
      impl::relayout(p, value.size(), exp_flag, 0);
      p[0] = static_cast<std::uint8_t>((p[0] & ~f_type_mask) | type);
      copy_bytes(p + hdr_size(p[0]) + key.size(), value.data(), value.size());
      if (exp_flag) {
        set_e_expire(p, expire_at);
        if (!had_exp) m.xadd(e);
      }
      return e;
    }
    // Needs a new block.
    entry* n = m.make_entry(key, value.size(), static_cast<std::uint8_t>(type | exp_flag));
    copy_bytes(B(n) + hdr_size(B(n)[0]) + key.size(), value.data(), value.size());
    if (had_exp) {
      std::uint32_t xi = e_xidx(p);
      if (exp_flag) {
        set_e_xidx(B(n), xi);
        m.expires[xi] = n;
      } else {
        m.xremove(p);
      }
    }
    if (exp_flag) {
      set_e_expire(B(n), expire_at);
      if (!had_exp) m.xadd(n);
    }
    loc.t->slots[loc.i] = make_slot(n, h);
    drop_entry(e);
    return n;
  }
  m.reserve_one();
  entry* n = m.make_entry(key, value.size(), static_cast<std::uint8_t>(type | exp_flag));
  copy_bytes(B(n) + hdr_size(B(n)[0]) + key.size(), value.data(), value.size());
  if (exp_flag) {
    set_e_expire(B(n), expire_at);
    m.xadd(n);
  }
  impl::place(m.cur, make_slot(n, h), h);
  if (j) undo_->add({.what = undo_log::kind::created, .db = this, .block = n});
  return n;
}

entry* keyspace::set_keep_ttl(std::string_view key, std::string_view value) {
  entry* e = find_raw(key);
  return set(key, value, e ? expire_of(e) : no_expiry);
}

std::span<char> keyspace::resize_value(entry*& e, std::size_t new_len) {
  impl& m = *impl_;
  impl::check_lengths(0, new_len);
  const bool j = journaling();
  if (j) undo_->reserve();
  unsigned char* p = B(e);
  const std::uint8_t f = p[0];
  const std::uint32_t kl = e_klen(p);
  const std::uint32_t ol = e_vlen(p);
  const std::uint8_t exp_flag = f & f_expire;
  std::uint8_t nf = static_cast<std::uint8_t>((f & f_type_mask) | exp_flag | (needs_wide(kl, new_len) ? f_wide : 0));
  std::size_t need = hdr_size(nf) + kl + new_len;
  std::size_t have = usable(p);
  std::size_t keep = std::min<std::size_t>(ol, new_len);
  if (need <= have && (new_len >= ol || have <= need * 2 + 64)) {
    if (j) {
      // In place: a rollback sets the length back and restores the bytes a shrink cuts (copied now, before any
      // change, since the copy may throw).
      undo_log::record r{.what = undo_log::kind::bytes, .db = this, .block = e, .offset = keep, .length = ol};
      if (new_len < ol) r.saved.assign(reinterpret_cast<const char*>(p) + hdr_size(f) + kl + keep, ol - keep);
      impl::relayout(p, new_len, exp_flag, keep);
      undo_->add(std::move(r));
    } else {
      impl::relayout(p, new_len, exp_flag, keep);
    }
  } else {
    auto loc = m.locate_ptr(e);
    assert(loc);
    // Grow greedily as Redis's sds does (double below 1 MB, +1 MB above) so that APPEND loops stay linear.
    std::size_t extra = 0;
    if (new_len > ol) extra = new_len < (1u << 20) ? new_len : (1u << 20);
    entry* n = m.make_entry(key_of(e), new_len, static_cast<std::uint8_t>((f & f_type_mask) | exp_flag), extra);
    unsigned char* q = B(n);
    copy_bytes(q + hdr_size(q[0]) + kl, p + hdr_size(f) + kl, keep);
    if (exp_flag) {
      set_e_expire(q, e_expire(p));
      set_e_xidx(q, e_xidx(p));
    }
    m.repoint(loc, n);
    drop_entry(e);
    e = n;
    p = q;
  }
  char* v = reinterpret_cast<char*>(p + hdr_size(p[0]) + kl);
  if (new_len > keep) std::memset(v + keep, 0, new_len - keep);
  return {v + keep, new_len - keep};
}

std::span<char> keyspace::mutable_value(entry* e, std::size_t offset, std::size_t len) {
  unsigned char* p = B(e);
  char* v = reinterpret_cast<char*>(p + hdr_size(p[0]) + e_klen(p));
  assert(offset <= e_vlen(p) && len <= e_vlen(p) - offset);
  if (journaling() && len != 0) {
    undo_->reserve();
    undo_->add({.what = undo_log::kind::bytes, .db = this, .block = e, .offset = offset, .length = e_vlen(p),
                .saved = std::string(v + offset, len)});
  }
  return {v + offset, len};
}

bool keyspace::erase(std::string_view key) {
  entry* e = find_raw(key);
  if (!e) return false;
  erase(e);
  return true;
}

void keyspace::erase(entry* e) {
  impl& m = *impl_;
  if (journaling()) undo_->reserve();
  auto loc = m.locate_ptr(e);
  assert(loc);
  if (B(e)[0] & f_expire) m.xremove(B(e));
  m.remove_slot(*loc.t, loc.i);
  drop_entry(e);
  if (m.rehashing())
    m.step(8);
  else
    m.maybe_shrink();
}

bool keyspace::journaling() const noexcept { return undo_ != nullptr && undo_->active(); }

void keyspace::drop_entry(entry* e) noexcept {
  if (!journaling()) {
    impl_->free_entry(e);
    return;
  }
  // Kept by the log until the unit of work commits (the caller reserved the record).
  impl_->entry_bytes -= usable(e);
  undo_->add({.what = undo_log::kind::retained, .db = this, .block = e});
}

std::string_view keyspace::key_of(const entry* e) noexcept { return e_keyv(B(e)); }

std::string_view keyspace::value_of(const entry* e) noexcept {
  const unsigned char* p = B(e);
  std::uint32_t kl = e_klen(p);
  return {e_key(p) + kl, e_vlen(p)};
}

value_type keyspace::type_of(const entry* e) noexcept { return static_cast<value_type>(B(e)[0] & f_type_mask); }

ms_t keyspace::expire_of(const entry* e) const noexcept { return e_expire(B(e)); }

void keyspace::set_expire(entry*& e, ms_t at) {
  impl& m = *impl_;
  unsigned char* p = B(e);
  const bool had = p[0] & f_expire;
  if (at == no_expiry && !had) return;
  const bool j = journaling();
  if (j) undo_->reserve();
  if (!had) m.reserve_expire();
  if (at == no_expiry) {
    if (j) undo_->add({.what = undo_log::kind::expire, .db = this, .block = e, .expire = e_expire(p)});
    m.xremove(p);
    const std::uint32_t vl = e_vlen(p);
    impl::relayout(p, vl, 0, vl);  // shrinks the header in place; the block keeps its size
    return;
  }
  if (had) {
    if (j) undo_->add({.what = undo_log::kind::expire, .db = this, .block = e, .expire = e_expire(p)});
    set_e_expire(p, at);
    return;
  }
  const std::uint32_t kl = e_klen(p), vl = e_vlen(p);
  std::uint8_t nf = static_cast<std::uint8_t>((p[0] & f_type_mask) | f_expire | (p[0] & f_wide));
  if (hdr_size(nf) + kl + vl <= usable(p)) {
    impl::relayout(p, vl, f_expire, vl);
    if (j) undo_->add({.what = undo_log::kind::expire, .db = this, .block = e, .expire = no_expiry});
  } else {
    auto loc = m.locate_ptr(e);
    assert(loc);
    entry* n = m.make_entry(key_of(e), vl, static_cast<std::uint8_t>((p[0] & f_type_mask) | f_expire));
    std::memcpy(B(n) + hdr_size(B(n)[0]) + kl, p + hdr_size(p[0]) + kl, vl);
    impl::repoint_slot(loc, n);  // no expires-vector entry yet (xadd below): its index field is still unset
    drop_entry(e);
    e = n;
    p = B(n);
  }
  set_e_expire(p, at);
  m.xadd(e);
}

std::size_t keyspace::size() const noexcept { return impl_->size(); }
std::size_t keyspace::expires_size() const noexcept { return impl_->expires.size(); }

void keyspace::clear() {
  if (!journaling()) {
    impl_->release_all();
    return;
  }
  // The old contents stay whole in the log (one allocation: the new, empty table).
  undo_->reserve();
  impl* fresh = new impl;
  fresh->log = undo_;
  undo_->add({.what = undo_log::kind::cleared, .db = this, .table = impl_});
  impl_ = fresh;
}

void keyspace::swap(keyspace& other) {
  if (journaling()) {
    undo_->reserve();
    undo_->add({.what = undo_log::kind::swapped, .db = this, .other = &other});
  }
  swap_tables(other);
}

void keyspace::swap_tables(keyspace& other) noexcept {
  std::swap(impl_, other.impl_);
  impl_->log = undo_;
  other.impl_->log = other.undo_;
}

void keyspace::set_undo_log(undo_log* log) noexcept {
  undo_ = log;
  impl_->log = log;
}

std::uint64_t keyspace::scan(std::uint64_t cursor, std::size_t count,
                             const std::function<void(const entry*)>& fn) const {
  const impl& m = *impl_;
  if (m.size() == 0) return 0;
  std::size_t emitted = 0;
  auto emit_bucket = [&](const table& t, std::size_t home) {
    if (t.used == 0) return;
    const std::size_t mask = t.mask();
    for (std::size_t i = home;; i = (i + 1) & mask) {
      slot_t s = t.slots[i];
      if (s == empty_slot) break;
      if (live(s)) {
        const entry* e = slot_ptr(s);
        if ((m.hash(e_keyv(B(e))) & mask) == home) {
          fn(e);
          ++emitted;
        }
      }
      if (((i + 1) & mask) == home) break;
    }
  };
  std::uint64_t v = cursor;
  std::size_t max_steps = std::max<std::size_t>(count, 1) * 10;
  do {
    if (!m.rehashing()) {
      const std::uint64_t m0 = m.cur.mask();
      emit_bucket(m.cur, v & m0);
      v |= ~m0;
      v = rev_bits(v);
      ++v;
      v = rev_bits(v);
    } else {
      const table* t0 = &m.cur;
      const table* t1 = &m.old;
      if (t0->cap > t1->cap) std::swap(t0, t1);
      const std::uint64_t m0 = t0->mask(), m1 = t1->mask();
      emit_bucket(*t0, v & m0);
      do {
        emit_bucket(*t1, v & m1);
        v |= ~m1;
        v = rev_bits(v);
        ++v;
        v = rev_bits(v);
      } while (v & (m0 ^ m1));
    }
  } while (v != 0 && emitted < count && --max_steps);
  return v;
}

void keyspace::for_each(const std::function<void(const entry*)>& fn) const {
  for (const table* t : {&impl_->cur, &impl_->old})
    for (std::size_t i = 0; i < t->cap; ++i)
      if (live(t->slots[i])) fn(slot_ptr(t->slots[i]));
}

entry* keyspace::random(ms_t now) {
  impl& m = *impl_;
  for (;;) {
    std::size_t n = m.size();
    if (n == 0) return nullptr;
    table* t = &m.cur;
    std::size_t lo = 0;
    if (m.rehashing() && m.rand() % n < m.old.used) {
      t = &m.old;
      lo = m.rehash_idx;
    }
    const std::size_t span = t->cap - lo;
    entry* e = nullptr;
    for (int tries = 0; tries < 64 && !e; ++tries) {
      slot_t s = t->slots[lo + m.rand() % span];
      if (live(s)) e = slot_ptr(s);
    }
    if (!e) {  // sparse table: take the first live slot from a random start
      std::size_t start = m.rand() % span;
      for (std::size_t k = 0; k < span && !e; ++k) {
        slot_t s = t->slots[lo + (start + k) % span];
        if (live(s)) e = slot_ptr(s);
      }
    }
    if (!e) return nullptr;  // unreachable: the chosen table has live entries
    if ((B(e)[0] & f_expire) && now > e_expire(B(e))) {
      expire_entry(e);
      continue;
    }
    return e;
  }
}

std::size_t keyspace::active_expire(ms_t now, std::size_t samples) {
  impl& m = *impl_;
  std::size_t deleted = 0;
  for (std::size_t k = 0; k < samples && !m.expires.empty(); ++k) {
    entry* e = m.expires[m.rand() % m.expires.size()];
    if (now > e_expire(B(e))) {
      expire_entry(e);
      ++deleted;
    }
  }
  if (m.rehashing()) m.step(64);
  return deleted;
}

std::size_t keyspace::memory_usage() const noexcept {
  const impl& m = *impl_;
  return sizeof(impl) + m.entry_bytes + (m.cur.cap + m.old.cap) * sizeof(slot_t) + m.expires.capacity() * sizeof(entry*);
}

bool keyspace::rehash_step(std::size_t max_slots) { return impl_->step(max_slots); }
bool keyspace::rehashing() const noexcept { return impl_->rehashing(); }
std::size_t keyspace::capacity() const noexcept { return impl_->cur.cap + impl_->old.cap; }
std::size_t keyspace::entry_memory(const entry* e) noexcept { return usable(e); }

}  // namespace turret::kv
