// The in-process store: construction, active expiry, shutdown requests (the rest of store.hpp: store_clients.cpp,
// store_pubsub.cpp, store_config.cpp).
#include <services/kv/store.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>

#include <unistd.h>

namespace turret::kv {
namespace {

long long now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

// --- construction ----------------------------------------------------------------------------------------------------

store::store(store_options opts) : opts_(std::move(opts)) {
  if (opts_.databases < 1) throw std::invalid_argument("store: databases must be at least 1");
  long long nf = keyspace_events_from_string(opts_.notify_keyspace_events);
  if (nf < 0) throw std::invalid_argument("store: invalid notify-keyspace-events '" + opts_.notify_keyspace_events + "'");
  notify_flags_ = static_cast<std::uint32_t>(nf);
  set_requirepass(opts_.requirepass);
  hz_ = std::clamp(opts_.hz, 1, 500);
  limits_.maxclients = opts_.maxclients;
  limits_.timeout = opts_.timeout;
  limits_.proto_max_bulk_len = opts_.proto_max_bulk_len;
  limits_.client_query_buffer_limit = opts_.client_query_buffer_limit;
  limits_.pubsub_hard = opts_.obuf_pubsub.hard;
  limits_.pubsub_soft = opts_.obuf_pubsub.soft;
  limits_.pubsub_soft_seconds = opts_.obuf_pubsub.soft_seconds;
  limits_.normal_hard = opts_.obuf_normal.hard;
  limits_.normal_soft = opts_.obuf_normal.soft;
  limits_.normal_soft_seconds = opts_.obuf_normal.soft_seconds;
  start_ms_ = unix_time_ms();
  process_.tcp_port = opts_.port;
  {
    static constexpr char hex[] = "0123456789abcdef";
    std::uint64_t x = static_cast<std::uint64_t>(now_us()) * 0x9E3779B97F4A7C15ull ^ reinterpret_cast<std::uintptr_t>(this);
    for (int i = 0; i < 40; ++i) {
      x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
      process_.run_id += hex[(x * 0x2545F4914F6CDD1Dull) >> 60];
    }
  }
  misc_config_ = {{"save", ""},
                  {"appendonly", "no"},
                  {"maxmemory", "0"},
                  {"maxmemory-policy", "noeviction"},
                  {"maxmemory-samples", "5"},
                  {"dbfilename", "dump.rdb"},
                  {"appendfilename", "appendonly.aof"},
                  {"loglevel", "notice"},
                  {"tcp-keepalive", "300"},
                  {"lazyfree-lazy-user-flush", "no"},
                  {"lazyfree-lazy-expire", "no"},
                  {"lazyfree-lazy-eviction", "no"},
                  {"lazyfree-lazy-server-del", "no"},
                  {"active-expire-effort", "1"},
                  {"dynamic-hz", "yes"},
                  {"slowlog-log-slower-than", "10000"},
                  {"slowlog-max-len", "128"},
                  {"latency-monitor-threshold", "0"},
                  {"replica-read-only", "yes"},
                  {"protected-mode", "yes"},
                  {"io-threads", "1"},
                  {"daemonize", "no"},
                  {"cluster-enabled", "no"},
                  {"tcp-backlog", "511"},
                  {"supervised", "no"},
                  {"dir", "/"}};
  {
    char cwd[4096];
    if (::getcwd(cwd, sizeof cwd)) misc_config_["dir"] = cwd;
  }
  dbs_.reserve(static_cast<std::size_t>(opts_.databases));
  watched_.resize(static_cast<std::size_t>(opts_.databases));
  for (int i = 0; i < opts_.databases; ++i) {
    dbs_.push_back(std::make_unique<keyspace>(i));
    dbs_.back()->set_undo_log(&undo_);
    dbs_.back()->on_expired = [this, i](std::string_view key) {
      ++stats_.expired_keys;
      notify(notify_expired, "expired", key, i);
      key_modified(i, key);
    };
  }
}

store::~store() = default;

// --- active expiry -----------------------------------------------------------------------------------------------------

void store::active_expire_cycle(long long budget_us) {
  // Redis activeExpireCycle (ACTIVE_EXPIRE_CYCLE_SLOW), active-expire-effort 1.
  constexpr std::size_t keys_per_loop = 20;
  constexpr long long acceptable_stale = 10;
  constexpr int slow_time_perc = 25;
  std::lock_guard lock(mutex_);
  const long long start = now_us();
  const long long timelimit = budget_us > 0 ? budget_us : std::max<long long>(1, slow_time_perc * 1000000ll / hz_ / 100);
  const int dbs_per_call = databases();
  bool timelimit_exit = false;
  const ms_t now = unix_time_ms();
  // databasesCron: incremental resize work for every db (Redis spends up to 1 ms per db on rehashing).
  for (auto& db : dbs_)
    if (db->rehashing()) db->rehash_step();
  for (int j = 0; j < dbs_per_call && !timelimit_exit; ++j) {
    keyspace& db = *dbs_[static_cast<std::size_t>(expire_current_db_ % databases())];
    expire_current_db_ = (expire_current_db_ + 1) % databases();
    int iteration = 0;
    for (;;) {
      std::size_t num = db.expires_size();
      if (num == 0) break;
      std::size_t sampled = std::min(num, keys_per_loop);
      std::size_t expired = db.active_expire(now, keys_per_loop);
      ++iteration;
      if ((iteration & 0xf) == 0 && now_us() - start > timelimit) {
        timelimit_exit = true;
        ++stats_.expired_time_cap_reached_count;
        break;
      }
      if (sampled == 0 || static_cast<long long>(expired * 100 / sampled) <= acceptable_stale) break;
    }
  }
}

bool store::request_shutdown(const shutdown_request& r) {
  if (!on_shutdown) return false;
  on_shutdown(r);
  return true;
}

}  // namespace turret::kv
