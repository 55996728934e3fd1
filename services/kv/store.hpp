#pragma once
// store: the one key-value core shared by every front end and every worker thread.
//
// Concurrency design: one mutex serialises command execution (as Redis's single thread does), while parsing,
// I/O and encoding run in parallel on the worker threads outside it. Critical sections are a few hundred
// nanoseconds (a GET or SET through the core: build/bench/store_core_bench, bench/store_core_bench.cpp), MULTI/EXEC, MSET, RENAME, SWAPDB and FLUSHALL are trivially atomic with respect to every other
// client, and there is no cross-shard coordination to get wrong. How this behaves as cores grow:
// docs/architecture.md.
//
// Locking contract
// - Everything below is called with mutex() held, unless its comment says "locks internally".
// - attach/detach/active_expire_cycle take the lock themselves (front ends and timers call them).
// - limits() is lock-free (atomics): front ends read maxclients, timeout and output-buffer limits per connection.
#include <services/kv/command.hpp>
#include <services/kv/keyspace.hpp>
#include <turret/kv/backend.hpp>
#include <turret/kv/local.hpp>
#include <turret/kv/request.hpp>
#include <turret/kv/session.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace turret::kv {

class command_table;

/// notify-keyspace-events classes (Redis's letters).
enum notify_class : std::uint32_t {
  notify_keyspace = 1u << 0,  // K
  notify_keyevent = 1u << 1,  // E
  notify_generic = 1u << 2,   // g
  notify_string = 1u << 3,    // $
  notify_list = 1u << 4,      // l
  notify_set = 1u << 5,       // s
  notify_hash = 1u << 6,      // h
  notify_zset = 1u << 7,      // z
  notify_expired = 1u << 8,   // x
  notify_evicted = 1u << 9,   // e
  notify_stream = 1u << 10,   // t
  notify_key_miss = 1u << 11, // m
  notify_module = 1u << 12,   // d
  notify_new = 1u << 13,      // n
};
inline constexpr std::uint32_t notify_all = notify_generic | notify_string | notify_list | notify_set | notify_hash |
                                            notify_zset | notify_expired | notify_evicted | notify_stream |
                                            notify_module;  // 'A'

/// Redis's keyspaceEventsStringToFlags: -1 on an invalid character.
long long keyspace_events_from_string(std::string_view classes) noexcept;
/// Redis's keyspaceEventsFlagsToString.
std::string keyspace_events_to_string(std::uint32_t flags);

/// INFO stats counters (Redis names). Updated under the store lock, except the connection counters (atomics,
/// connection_stats: maintained by front ends that accept/reject outside the lock).
struct store_stats : connection_stats {
  std::uint64_t total_commands_processed = 0;
  std::uint64_t expired_keys = 0;
  std::uint64_t expired_stale_perc_x100 = 0;
  std::uint64_t expired_time_cap_reached_count = 0;
  std::uint64_t keyspace_hits = 0;       ///< string/key commands count read hits/misses here
  std::uint64_t keyspace_misses = 0;
  std::uint64_t pubsub_messages = 0;     ///< messages delivered
  std::uint64_t total_error_replies = 0;
  std::uint64_t unexpected_error_replies = 0;
  std::uint64_t total_connections_received = 0;
  std::map<std::string, std::uint64_t, std::less<>> errorstats;  ///< error code ("ERR") -> count
};

/// What SHUTDOWN asked for (turretd's hook stops the process gracefully).
struct shutdown_request {
  bool nosave = false, save = false, now = false, force = false;
};

/// One CONFIG parameter (name, value as CONFIG GET prints it).
using config_pair = std::pair<std::string, std::string>;

class store {
 public:
  explicit store(store_options opts);
  ~store();
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  std::mutex& mutex() noexcept { return mutex_; }
  int databases() const noexcept { return static_cast<int>(dbs_.size()); }
  keyspace& db(int i) { return *dbs_[static_cast<std::size_t>(i)]; }
  /// What the running command changed in every database (the dispatcher rolls a failed command back with it).
  undo_log& undo() noexcept { return undo_; }

  /// The response of the request being executed (set by kv_service under the lock, null inside EXEC's queued
  /// commands): reply_error records top-level error replies in it.
  response* reply_status() const noexcept { return reply_status_; }
  void set_reply_status(response* r) noexcept { reply_status_ = r; }

  /// The command table the service dispatches with (set by kv_service; EXEC and COMMAND use it).
  const command_table* commands() const noexcept { return commands_; }
  void set_commands(const command_table* t) noexcept { commands_ = t; }

  // --- modifications, WATCH, notifications --------------------------------------------------------------------
  /// Write commands call this for every key they modify (WATCH invalidation, server.dirty).
  void key_modified(int db, std::string_view key) {
    ++dirty_;
    if (watched_count_ != 0) touch_watched(db, key);
  }
  /// FLUSHDB / FLUSHALL / SWAPDB: every watched key of `db` (-1: all dbs) that exists is touched (Redis's
  /// touchAllWatchedKeysInDb). Call before clearing.
  void db_modified(int db);
  /// SWAPDB: watched keys of either db that exist in either db before or after the swap are touched.
  void dbs_swapped(int a, int b);
  /// Keyspace notification (no-op unless enabled by notify-keyspace-events).
  void notify(std::uint32_t cls, std::string_view event, std::string_view key, int db) {
    if (notify_flags_ & cls) publish_notification(cls, event, key, db);
  }
  std::uint32_t notify_flags() const noexcept { return notify_flags_; }
  std::uint64_t dirty() const noexcept { return dirty_; }
  void add_dirty(std::uint64_t n) noexcept { dirty_ += n; }

  void watch(session& s, int db, std::string_view key);
  void unwatch_all(session& s);

  // --- clients ---------------------------------------------------------------------------------------------------
  /// Registers a session (locks internally): assigns id and created time, sets `authenticated` when no password is
  /// required. Front ends check maxclients (limits()) before attaching.
  std::uint64_t attach(session& s);
  /// Unregisters (locks internally): drops subscriptions and WATCHes. Never throws. Front ends go through
  /// the backend interface and kv::session_guard (<turret/kv/backend.hpp>).
  void detach(session& s) noexcept;
  /// Same as attach/detach with the lock already held.
  std::uint64_t attach_locked(session& s);
  void detach_locked(session& s) noexcept;
  const std::map<std::uint64_t, session*>& clients() const noexcept { return clients_; }
  std::size_t connected_clients() const noexcept { return clients_.size(); }
  std::size_t pubsub_clients() const noexcept;

  // --- auth ---------------------------------------------------------------------------------------------------------
  const std::string& requirepass() const noexcept { return requirepass_; }  ///< under the lock
  void set_requirepass(std::string p);                                         ///< under the lock
  /// Lock-free (front ends ask before parsing): whether a password is configured is an atomic mirror of
  /// requirepass_, written under the lock with it; `authenticated` belongs to the session's own thread.
  bool auth_required(const session& s) const noexcept {
    return auth_enabled_.load(std::memory_order_acquire) && !s.authenticated;
  }

  // --- pub/sub -------------------------------------------------------------------------------------------------------
  bool subscribe(session& s, std::string_view channel);    ///< true when newly subscribed
  bool unsubscribe(session& s, std::string_view channel);  ///< true when it was subscribed
  bool psubscribe(session& s, std::string_view pattern);
  bool punsubscribe(session& s, std::string_view pattern);
  /// Delivers to channel subscribers then pattern subscribers; returns the number of receivers (Redis's count).
  std::size_t publish(std::string_view channel, std::string_view message);
  /// PUBSUB CHANNELS [pattern]: active channels (with at least one subscriber).
  std::vector<std::string_view> channels(std::string_view pattern, bool all) const;
  std::size_t numsub(std::string_view channel) const;
  std::size_t numpat() const noexcept { return patterns_.size(); }

  // --- config --------------------------------------------------------------------------------------------------------
  /// CONFIG GET for one pattern (glob, Redis's rules incl. aliases); appends matches not already in `out`.
  void config_get(std::string_view pattern, std::vector<config_pair>& out) const;
  /// CONFIG SET of several parameters at once (args are name, value, name, value...). On failure nothing changes and
  /// the Redis error text (without "-") is returned; empty string on success.
  std::string config_set(std::span<const std::string_view> name_values);
  void reset_stats();
  const client_limits& limits() const noexcept { return limits_; }
  client_limits& limits() noexcept { return limits_; }
  int hz() const noexcept { return hz_.load(std::memory_order_relaxed); }  ///< lock-free (the expiry timer)
  const store_options& options() const noexcept { return opts_; }

  // --- stats, time, lifecycle ------------------------------------------------------------------------------------------
  store_stats& stats() noexcept { return stats_; }
  const store_stats& stats() const noexcept { return stats_; }
  ms_t start_time_ms() const noexcept { return start_ms_; }
  std::uint64_t lazyfreed_objects = 0;

  /// Active expiry: Redis's adaptive activeExpireCycle (slow cycle) with a time budget in microseconds
  /// (0 = Redis's default 25% of 1/hz). Locks internally; turretd's timer calls it hz times per second.
  void active_expire_cycle(long long budget_us = 0);

  /// SHUTDOWN: turretd installs the hook (before serving). It is called with the store lock held: it must only
  /// schedule the graceful stop (post to an executor), never block or call back into the store.
  /// request_shutdown returns false when no hook is installed.
  std::function<void(const shutdown_request&)> on_shutdown;
  bool request_shutdown(const shutdown_request& r);

  /// INFO sections that only the process knows, beyond Redis's (turretd: "Pipelines", the metrics layers' counters).
  /// Shown by `INFO <name>` (any case) and `INFO everything`, never by `INFO`/`INFO default`/`INFO all`, so INFO
  /// stays section for section what redis-server answers. `fields` returns the section's lines ("field:value\r\n"
  /// each); it runs with the store lock held: it must not call back into the store. Set before serving.
  struct info_section {
    std::string name;   ///< lower case, as INFO selects it: "pipelines"
    std::string title;  ///< the "# Title" header: "Pipelines"
    std::function<std::string()> fields;
  };
  std::vector<info_section> extra_info_sections;

  /// INFO server fields that only the process knows (set by turretd at start-up).
  struct process_info {
    std::string executable, config_file, run_id;
    int tcp_port = 0;
    int threads = 1;
  };
  process_info& process() noexcept { return process_; }
  const process_info& process() const noexcept { return process_; }

 private:
  friend struct store_config;
  void touch_watched(int db, std::string_view key);
  void publish_notification(std::uint32_t cls, std::string_view event, std::string_view key, int db);
  std::size_t deliver(session* s, std::string_view pattern, std::string_view channel, std::string_view message);

  struct sv_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  template <class V>
  using sv_map = std::unordered_map<std::string, V, sv_hash, std::equal_to<>>;

  std::mutex mutex_;
  store_options opts_;
  undo_log undo_;  // before dbs_: every keyspace records into it
  std::vector<std::unique_ptr<keyspace>> dbs_;
  const command_table* commands_ = nullptr;

  std::uint64_t dirty_ = 0;
  std::uint32_t notify_flags_ = 0;
  std::string requirepass_;
  response* reply_status_ = nullptr;
  std::atomic<bool> auth_enabled_{false};  ///< !requirepass_.empty(), readable without the lock
  std::atomic<int> hz_{10};  ///< CONFIG SET hz writes it under the lock; the expiry timer reads it without
  client_limits limits_;
  store_stats stats_;
  ms_t start_ms_ = 0;
  process_info process_;

  // WATCH: per db, key -> watching sessions.
  std::vector<sv_map<std::vector<session*>>> watched_;
  std::size_t watched_count_ = 0;

  // clients by id
  std::map<std::uint64_t, session*> clients_;
  std::uint64_t next_client_id_ = 1;

  // pub/sub
  sv_map<std::vector<session*>> channels_;
  std::vector<std::pair<std::string, std::vector<session*>>> patterns_;  // insertion order

  // active expiry state (Redis's static variables of activeExpireCycle)
  int expire_current_db_ = 0;

  // CONFIG parameters turretd only stores and reports (save, appendonly, maxmemory...)
  std::map<std::string, std::string, std::less<>> misc_config_;
};


inline keyspace& command_ctx::db() const { return st.db(sess.db); }

}  // namespace turret::kv
