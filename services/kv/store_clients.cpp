// The store's clients: attach/detach of sessions, requirepass, WATCH (the keys watched per database).
#include <services/kv/store.hpp>
#include <services/kv/session_list.hpp>

#include <string>

namespace turret::kv {
// --- WATCH -------------------------------------------------------------------------------------------------------------

void store::watch(session& s, int db, std::string_view key) {
  for (auto& [d, k] : s.watched)
    if (d == db && k == key) return;
  s.watched.emplace_back(db, std::string(key));
  auto& m = watched_[static_cast<std::size_t>(db)];
  auto it = m.find(key);
  if (it == m.end()) it = m.emplace(std::string(key), std::vector<session*>{}).first;
  it->second.push_back(&s);
  ++watched_count_;
}

void store::unwatch_all(session& s) {
  for (auto& [db, key] : s.watched) {
    auto& m = watched_[static_cast<std::size_t>(db)];
    auto it = m.find(key);
    if (it == m.end()) continue;
    erase_one(it->second, &s);
    if (it->second.empty()) m.erase(it);
    --watched_count_;
  }
  s.watched.clear();
  s.watch_dirty = false;
}

void store::touch_watched(int db, std::string_view key) {
  auto& m = watched_[static_cast<std::size_t>(db)];
  auto it = m.find(key);
  if (it == m.end()) return;
  for (session* s : it->second) s->watch_dirty = true;
}

void store::db_modified(int db) {
  if (watched_count_ == 0) return;
  for (int d = 0; d < databases(); ++d) {
    if (db != -1 && d != db) continue;
    for (auto& [key, sessions] : watched_[static_cast<std::size_t>(d)]) {
      if (!dbs_[static_cast<std::size_t>(d)]->find_raw(key)) continue;
      for (session* s : sessions) s->watch_dirty = true;
    }
  }
}

void store::dbs_swapped(int a, int b) {
  // Called before the swap: a key watched in `a` changes if it exists in `a` or in `b` (and vice versa).
  if (watched_count_ == 0) return;
  auto touch = [&](int d, int other) {
    for (auto& [key, sessions] : watched_[static_cast<std::size_t>(d)]) {
      if (!dbs_[static_cast<std::size_t>(d)]->find_raw(key) && !dbs_[static_cast<std::size_t>(other)]->find_raw(key))
        continue;
      for (session* s : sessions) s->watch_dirty = true;
    }
  };
  touch(a, b);
  touch(b, a);
}

// --- clients -------------------------------------------------------------------------------------------------------------

void store::set_requirepass(std::string p) {
  requirepass_ = std::move(p);
  auth_enabled_.store(!requirepass_.empty(), std::memory_order_release);
}

std::uint64_t store::attach(session& s) {
  std::lock_guard lock(mutex_);
  return attach_locked(s);
}

std::uint64_t store::attach_locked(session& s) {
  s.id = next_client_id_++;
  s.created_ms = s.last_interaction_ms = unix_time_ms();
  s.authenticated = requirepass_.empty();
  clients_[s.id] = &s;
  ++stats_.total_connections_received;
  return s.id;
}

void store::detach(session& s) noexcept {
  std::lock_guard lock(mutex_);
  detach_locked(s);
}

void store::detach_locked(session& s) noexcept {
  unwatch_all(s);
  while (!s.channels.empty()) unsubscribe(s, *s.channels.begin());
  while (!s.patterns.empty()) punsubscribe(s, *s.patterns.begin());
  clients_.erase(s.id);
}

std::size_t store::pubsub_clients() const noexcept {
  std::size_t n = 0;
  for (auto& [id, s] : clients_)
    if (s->subscriptions() > 0) ++n;
  return n;
}

}  // namespace turret::kv
