// undo_log: what the running command changed, and putting it back (see keyspace.hpp).
#include <services/kv/keyspace_impl.hpp>

namespace turret::kv {

// ---- undo log ------------------------------------------------------------------------------------------------------

undo_log::~undo_log() { release(0); }

void undo_log::commit(std::size_t mark) noexcept {
  (void)mark;
  if (--depth_ != 0) return;  // an inner unit: the outer one may still roll back
  release(0);
}

void undo_log::release(std::size_t from) noexcept {
  for (std::size_t i = from; i < records_.size(); ++i) {
    record& r = records_[i];
    if (r.what == kind::retained) std::free(r.block);
    if (r.what == kind::cleared) delete r.table;
  }
  records_.resize(from);
  if (from == 0 && records_.capacity() > 4096) std::vector<record>().swap(records_);
}

void undo_log::rollback(std::size_t mark) noexcept {
  // Newest first: each record restores the state just before its own change, which every later record has
  // already been brought back to. Entry identity holds throughout: an entry that a later change moved or removed
  // is put back before an earlier record that names it is undone.
  for (std::size_t i = records_.size(); i-- > mark;) {
    record& r = records_[i];
    keyspace::impl& m = *r.db->impl_;
    switch (r.what) {
      case kind::created: {
        auto loc = m.locate_ptr(r.block);
        assert(loc);
        if (B(r.block)[0] & f_expire) m.xremove(B(r.block));
        m.remove_slot(*loc.t, loc.i);
        m.free_entry(r.block);
        break;
      }
      case kind::retained: {
        entry* old = r.block;
        const std::string_view key = e_keyv(B(old));
        const std::uint64_t h = m.hash(key);
        if (auto loc = m.locate(key, h)) {  // replaced: the old entry takes the new one's slot
          entry* now = slot_ptr(loc.t->slots[loc.i]);
          if (B(now)[0] & f_expire) m.xremove(B(now));
          loc.t->slots[loc.i] = make_slot(old, h);
          m.free_entry(now);
        } else {  // deleted: tables have not shrunk since, so there is room
          assert(m.cur.used + 1 < m.cur.cap);
          keyspace::impl::place(m.cur, make_slot(old, h), h);
        }
        if (B(old)[0] & f_expire) m.xadd(old);  // the vector has held this many before: no reallocation
        m.entry_bytes += usable(old);
        r.block = nullptr;  // owned by the table again
        break;
      }
      case kind::bytes: {
        unsigned char* p = B(r.block);
        const std::uint32_t now = e_vlen(p);
        if (now != r.length)  // the block held r.length bytes before, in place: it still has the room
          keyspace::impl::relayout(p, r.length, p[0] & f_expire, std::min<std::size_t>(now, r.length));
        copy_bytes(p + hdr_size(p[0]) + e_klen(p) + r.offset, r.saved.data(), r.saved.size());
        break;
      }
      case kind::expire: {
        unsigned char* p = B(r.block);
        const bool has = p[0] & f_expire;
        const std::uint32_t vl = e_vlen(p);
        if (r.expire == no_expiry) {
          if (has) {
            m.xremove(p);
            keyspace::impl::relayout(p, vl, 0, vl);
          }
        } else if (has) {
          set_e_expire(p, r.expire);
        } else {  // the TTL was removed in place, so the block has the room for it
          keyspace::impl::relayout(p, vl, f_expire, vl);
          set_e_expire(p, r.expire);
          m.xadd(r.block);
        }
        break;
      }
      case kind::cleared:
        delete r.db->impl_;
        r.db->impl_ = r.table;
        r.table = nullptr;
        break;
      case kind::swapped:
        r.db->swap_tables(*r.other);
        break;
    }
  }
  records_.resize(mark);
  if (--depth_ == 0) release(0);
}

}  // namespace turret::kv
