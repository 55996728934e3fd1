#include <services/kv/store.hpp>
#include <services/kv/numbers.hpp>

#include <services/kv/glob.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cctype>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

namespace turret::kv {
namespace {

long long now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void erase_one(std::vector<session*>& v, session* s) {
  auto it = std::find(v.begin(), v.end(), s);
  if (it != v.end()) v.erase(it);
}

// sdssplitlen(value, " "): CONFIG SET's split of a multi-argument value (save, client-output-buffer-limit). Every
// single space separates, so "a  b" has an empty middle argument; an empty value has no argument at all.
std::vector<std::string_view> split_config_args(std::string_view v) {
  std::vector<std::string_view> parts;
  if (v.empty()) return parts;
  for (;;) {
    const std::size_t sp = v.find(' ');
    parts.push_back(v.substr(0, sp));
    if (sp == std::string_view::npos) return parts;
    v.remove_prefix(sp + 1);
  }
}

// strtoll(s, &end, 10) with `*end == '\0'` required, on the C string Redis sees (up to the first NUL): leading
// white space and a sign are accepted, out-of-range values saturate, and "" is 0.
bool c_strtoll(std::string_view s, long long& out) {
  const std::string c(s.substr(0, s.find('\0')));
  char* end = nullptr;
  out = std::strtoll(c.c_str(), &end, 10);
  return *end == '\0';
}

// Redis's strcasecmp(a, b) == 0 where `a` is an argument: compared as the C string up to its first NUL.
bool c_iequals(std::string_view a, std::string_view b) {
  a = a.substr(0, a.find('\0'));
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

std::string ll_str(long long v) { return std::to_string(v); }

}  // namespace

// --- notify-keyspace-events ----------------------------------------------------------------------------------------

long long keyspace_events_from_string(std::string_view classes) noexcept {
  long long flags = 0;
  for (char c : classes) {
    switch (c) {
      case 'A': flags |= notify_all; break;
      case 'g': flags |= notify_generic; break;
      case '$': flags |= notify_string; break;
      case 'l': flags |= notify_list; break;
      case 's': flags |= notify_set; break;
      case 'h': flags |= notify_hash; break;
      case 'z': flags |= notify_zset; break;
      case 'x': flags |= notify_expired; break;
      case 'e': flags |= notify_evicted; break;
      case 'K': flags |= notify_keyspace; break;
      case 'E': flags |= notify_keyevent; break;
      case 't': flags |= notify_stream; break;
      case 'm': flags |= notify_key_miss; break;
      case 'd': flags |= notify_module; break;
      case 'n': flags |= notify_new; break;
      default: return -1;
    }
  }
  return flags;
}

std::string keyspace_events_to_string(std::uint32_t flags) {
  std::string res;
  if ((flags & notify_all) == notify_all) {
    res += 'A';
  } else {
    if (flags & notify_generic) res += 'g';
    if (flags & notify_string) res += '$';
    if (flags & notify_list) res += 'l';
    if (flags & notify_set) res += 's';
    if (flags & notify_hash) res += 'h';
    if (flags & notify_zset) res += 'z';
    if (flags & notify_expired) res += 'x';
    if (flags & notify_evicted) res += 'e';
    if (flags & notify_stream) res += 't';
    if (flags & notify_module) res += 'd';
    if (flags & notify_new) res += 'n';
  }
  if (flags & notify_keyspace) res += 'K';
  if (flags & notify_keyevent) res += 'E';
  if (flags & notify_key_miss) res += 'm';
  return res;
}

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

// --- pub/sub ---------------------------------------------------------------------------------------------------------

bool store::subscribe(session& s, std::string_view channel) {
  if (s.channels.find(channel) != s.channels.end()) return false;
  s.channels.emplace(channel);
  auto it = channels_.find(channel);
  if (it == channels_.end()) it = channels_.emplace(std::string(channel), std::vector<session*>{}).first;
  it->second.push_back(&s);
  return true;
}

bool store::unsubscribe(session& s, std::string_view channel) {
  auto sit = s.channels.find(channel);
  if (sit == s.channels.end()) return false;
  auto it = channels_.find(channel);
  if (it != channels_.end()) {
    erase_one(it->second, &s);
    if (it->second.empty()) channels_.erase(it);
  }
  s.channels.erase(sit);
  return true;
}

bool store::psubscribe(session& s, std::string_view pattern) {
  if (s.patterns.find(pattern) != s.patterns.end()) return false;
  s.patterns.emplace(pattern);
  auto it = std::find_if(patterns_.begin(), patterns_.end(), [&](auto& p) { return p.first == pattern; });
  if (it == patterns_.end()) {
    patterns_.emplace_back(std::string(pattern), std::vector<session*>{});
    it = patterns_.end() - 1;
  }
  it->second.push_back(&s);
  return true;
}

bool store::punsubscribe(session& s, std::string_view pattern) {
  auto sit = s.patterns.find(pattern);
  if (sit == s.patterns.end()) return false;
  auto it = std::find_if(patterns_.begin(), patterns_.end(), [&](auto& p) { return p.first == pattern; });
  if (it != patterns_.end()) {
    erase_one(it->second, &s);
    if (it->second.empty()) patterns_.erase(it);
  }
  s.patterns.erase(sit);
  return true;
}

std::size_t store::deliver(session* s, std::string_view pattern, std::string_view channel, std::string_view message) {
  ++stats_.pubsub_messages;
  if (s->host) {
    if (!s->host->deliver(pubsub_message{pattern, channel, message})) s->host->kill();
  }
  return 1;
}

std::size_t store::publish(std::string_view channel, std::string_view message) {
  std::size_t receivers = 0;
  if (auto it = channels_.find(channel); it != channels_.end()) {
    // copy: a host may not call back, but be defensive against vector changes
    for (session* s : it->second) receivers += deliver(s, {}, it->first, message);
  }
  for (auto& [pattern, sessions] : patterns_) {
    if (!glob_match(pattern, channel)) continue;
    for (session* s : sessions) receivers += deliver(s, pattern, channel, message);
  }
  return receivers;
}

std::vector<std::string_view> store::channels(std::string_view pattern, bool all) const {
  std::vector<std::string_view> out;
  for (auto& [name, subs] : channels_)
    if (all || glob_match(pattern, name)) out.push_back(name);
  return out;
}

std::size_t store::numsub(std::string_view channel) const {
  auto it = channels_.find(channel);
  return it == channels_.end() ? 0 : it->second.size();
}

void store::publish_notification(std::uint32_t cls, std::string_view event, std::string_view key, int db) {
  char dbbuf[16];
  auto r = std::to_chars(dbbuf, dbbuf + sizeof dbbuf, db);
  std::string_view dbs(dbbuf, static_cast<std::size_t>(r.ptr - dbbuf));
  std::string chan;
  if (notify_flags_ & notify_keyspace) {
    chan.reserve(16 + dbs.size() + key.size());
    chan.append("__keyspace@").append(dbs).append("__:").append(key);
    publish(chan, event);
  }
  if (notify_flags_ & notify_keyevent) {
    chan.clear();
    chan.append("__keyevent@").append(dbs).append("__:").append(event);
    publish(chan, key);
  }
}

// --- config --------------------------------------------------------------------------------------------------------------

struct store_config {
  // k_memory: memtoull value checked against [min, max] as a long long (Redis's signed numeric configs);
  // k_umemory: an unsigned long long config spanning 0..ULLONG_MAX (maxmemory), so every memory value is valid.
  enum kind { k_int, k_memory, k_umemory, k_bool, k_string, k_special, k_enum };
  struct param {
    std::string_view name, alias;
    kind k;
    bool immutable;
    long long min, max;
    std::string (*get)(const store&);
    std::string (*set)(store&, std::string_view);  ///< validated value; returns error text or ""
  };

  static std::string misc_get(const store& st, std::string_view name) {
    auto it = st.misc_config_.find(name);
    return it == st.misc_config_.end() ? std::string() : it->second;
  }

  static std::string obuf_string(const store& st) {
    const auto& l = st.limits_;
    std::string s = "normal " + std::to_string(l.normal_hard.load()) + " " + std::to_string(l.normal_soft.load()) +
                    " " + std::to_string(l.normal_soft_seconds.load());
    s += " slave " + std::to_string(st.opts_.obuf_replica.hard) + " " + std::to_string(st.opts_.obuf_replica.soft) +
         " " + std::to_string(st.opts_.obuf_replica.soft_seconds);
    s += " pubsub " + std::to_string(l.pubsub_hard.load()) + " " + std::to_string(l.pubsub_soft.load()) + " " +
         std::to_string(l.pubsub_soft_seconds.load());
    return s;
  }

  // setConfigClientOutputBufferLimitOption (updateClientOutputBufferLimit): groups of <class> <hard> <soft>
  // <soft_seconds>; hard and soft are memtoull values (saturating), soft_seconds is strtoll truncated to an int.
  // Every group is checked before any is applied.
  static std::string obuf_set(store& st, std::string_view v) {
    const std::vector<std::string_view> parts = split_config_args(v);
    if (parts.size() % 4 != 0) return "Wrong number of arguments in buffer limit configuration.";
    struct item { int cls; unsigned long long hard, soft; long long secs; };
    std::vector<item> items;
    for (std::size_t k = 0; k < parts.size(); k += 4) {
      int cls;
      if (c_iequals(parts[k], "normal"))
        cls = 0;
      else if (c_iequals(parts[k], "slave") || c_iequals(parts[k], "replica"))
        cls = 1;
      else if (c_iequals(parts[k], "pubsub"))
        cls = 2;
      else
        return "Invalid client class specified in buffer limit configuration.";
      unsigned long long hard, soft;
      long long secs;
      const bool secs_ok = c_strtoll(parts[k + 3], secs);
      secs = static_cast<int>(secs);  // Redis keeps it in an int
      if (!parse_memory(parts[k + 1], hard) || !parse_memory(parts[k + 2], soft) || !secs_ok || secs < 0)
        return "Error in hard, soft or soft_seconds setting in buffer limit configuration.";
      items.push_back({cls, hard, soft, secs});
    }
    for (auto& it : items) {
      if (it.cls == 0) {
        st.limits_.normal_hard = it.hard;
        st.limits_.normal_soft = it.soft;
        st.limits_.normal_soft_seconds = it.secs;
      } else if (it.cls == 1) {
        st.opts_.obuf_replica = {it.hard, it.soft, it.secs};
      } else {
        st.limits_.pubsub_hard = it.hard;
        st.limits_.pubsub_soft = it.soft;
        st.limits_.pubsub_soft_seconds = it.secs;
      }
    }
    return {};
  }

  // setConfigSaveOption: pairs "<seconds> <changes>" (strtoll; seconds >= 1, changes >= 0 and kept in an int), or
  // "" for none. CONFIG GET shows them as Redis's "%jd %d" pairs.
  static std::string save_set(store& st, std::string_view v) {
    std::vector<std::string_view> parts = split_config_args(v);
    if (parts.size() == 1 && c_iequals(parts[0], "")) parts.clear();
    if (parts.size() % 2) return "Invalid save parameters";
    std::string norm;
    for (std::size_t j = 0; j < parts.size(); ++j) {
      long long x;
      if (!c_strtoll(parts[j], x) || x < (j % 2 == 0 ? 1 : 0)) return "Invalid save parameters";
      if (!norm.empty()) norm += ' ';
      norm += std::to_string(j % 2 == 0 ? x : static_cast<int>(x));
    }
    st.misc_config_["save"] = norm;
    return {};
  }

  static const std::vector<param>& params() {
    static const std::vector<param> ps = [] {
      std::vector<param> v;
      auto misc = [&](std::string_view name, std::string_view alias, kind k, bool immutable, long long mn = 0,
                      long long mx = LLONG_MAX) {
        v.push_back(param{name, alias, k, immutable, mn, mx, nullptr, nullptr});
      };
      v.push_back({"maxclients", {}, k_int, false, 1, 4294967295ll,
                   [](const store& s) { return std::to_string(s.limits_.maxclients.load()); },
                   [](store& s, std::string_view x) {
                     long long n = 0;
                     parse_ll(x, n);  // validated already
                     s.limits_.maxclients = static_cast<std::size_t>(n);
                     return std::string();
                   }});
      v.push_back({"timeout", {}, k_int, false, 0, INT_MAX,
                   [](const store& s) { return std::to_string(s.limits_.timeout.load()); },
                   [](store& s, std::string_view x) {
                     long long n = 0;
                     parse_ll(x, n);  // validated already
                     s.limits_.timeout = n;
                     return std::string();
                   }});
      v.push_back({"notify-keyspace-events", {}, k_special, false, 0, 0,
                   [](const store& s) { return keyspace_events_to_string(s.notify_flags_); },
                   [](store& s, std::string_view x) {
                     long long f = keyspace_events_from_string(x);
                     if (f < 0) return std::string("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.");
                     s.notify_flags_ = static_cast<std::uint32_t>(f);
                     return std::string();
                   }});
      v.push_back({"requirepass", {}, k_string, false, 0, 0, [](const store& s) { return s.requirepass_; },
                   [](store& s, std::string_view x) {
                     s.set_requirepass(std::string(x));
                     return std::string();
                   }});
      v.push_back({"databases", {}, k_int, true, 1, INT_MAX,
                   [](const store& s) { return std::to_string(s.databases()); }, nullptr});
      v.push_back({"proto-max-bulk-len", {}, k_memory, false, 1024 * 1024, LLONG_MAX,
                   [](const store& s) { return std::to_string(s.limits_.proto_max_bulk_len.load()); },
                   [](store& s, std::string_view x) {
                     unsigned long long n = 0;
                     parse_memory(x, n);  // validated already
                     s.limits_.proto_max_bulk_len = static_cast<long long>(n);
                     return std::string();
                   }});
      v.push_back({"client-query-buffer-limit", {}, k_memory, false, 1024 * 1024, LLONG_MAX,
                   [](const store& s) { return std::to_string(s.limits_.client_query_buffer_limit.load()); },
                   [](store& s, std::string_view x) {
                     unsigned long long n = 0;
                     parse_memory(x, n);  // validated already
                     s.limits_.client_query_buffer_limit = static_cast<long long>(n);
                     return std::string();
                   }});
      v.push_back({"client-output-buffer-limit", {}, k_special, false, 0, 0, &obuf_string, &obuf_set});
      v.push_back({"hz", {}, k_int, false, 0, INT_MAX, [](const store& s) { return std::to_string(s.hz()); },
                   [](store& s, std::string_view x) {
                     long long n = 0;
                     parse_ll(x, n);  // validated already
                     s.hz_ = static_cast<int>(std::clamp<long long>(n, 1, 500));
                     return std::string();
                   }});
      v.push_back({"port", {}, k_int, true, 0, 65535,
                   [](const store& s) { return std::to_string(s.process_.tcp_port); }, nullptr});
      v.push_back({"bind", {}, k_string, true, 0, 0, [](const store& s) { return s.opts_.bind; }, nullptr});
      v.push_back({"save", {}, k_special, false, 0, 0, [](const store& s) { return misc_get(s, "save"); },
                   &save_set});
      misc("appendonly", {}, k_bool, false);
      misc("maxmemory", {}, k_umemory, false);
      misc("maxmemory-policy", {}, k_enum, false);
      misc("maxmemory-samples", {}, k_int, false, 1, INT_MAX);
      misc("dbfilename", {}, k_string, false);
      misc("appendfilename", {}, k_string, true);
      misc("dir", {}, k_string, true);
      misc("loglevel", {}, k_enum, false);
      misc("tcp-keepalive", {}, k_int, false, 0, INT_MAX);
      misc("lazyfree-lazy-user-flush", {}, k_bool, false);
      misc("lazyfree-lazy-expire", {}, k_bool, false);
      misc("lazyfree-lazy-eviction", {}, k_bool, false);
      misc("lazyfree-lazy-server-del", {}, k_bool, false);
      misc("active-expire-effort", {}, k_int, false, 1, 10);
      misc("dynamic-hz", {}, k_bool, false);
      misc("slowlog-log-slower-than", {}, k_int, false, -1, LLONG_MAX);
      misc("slowlog-max-len", {}, k_int, false, 0, LONG_MAX);
      misc("latency-monitor-threshold", {}, k_int, false, 0, LLONG_MAX);
      misc("replica-read-only", "slave-read-only", k_bool, false);
      misc("protected-mode", {}, k_bool, false);
      misc("io-threads", {}, k_int, true, 1, 128);
      misc("daemonize", {}, k_bool, true);
      misc("cluster-enabled", {}, k_bool, true);
      misc("tcp-backlog", {}, k_int, true, 0, INT_MAX);
      misc("supervised", {}, k_enum, true);
      return v;
    }();
    return ps;
  }

  static std::string get(const store& st, const param& p) {
    if (p.get) return p.get(st);
    return misc_get(st, p.name);
  }

  static const param* lookup(std::string_view name) {
    for (const auto& p : params())
      if (glob_iequal(p.name, name) || (!p.alias.empty() && glob_iequal(p.alias, name))) return &p;
    return nullptr;
  }
  static bool glob_iequal(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
        return false;
    return true;
  }

  // Validates `value` for `p`; returns error text or "".
  static std::string validate(const param& p, std::string_view value) {
    switch (p.k) {
      case k_int: {
        long long n;
        if (!parse_ll(value, n)) return "argument couldn't be parsed into an integer";
        if (n < p.min || n > p.max)
          return "argument must be between " + ll_str(p.min) + " and " + ll_str(p.max) + " inclusive";
        return {};
      }
      case k_umemory: {
        unsigned long long n;
        if (!parse_memory(value, n)) return "argument must be a memory value";
        return {};
      }
      case k_memory: {
        unsigned long long n;
        if (!parse_memory(value, n)) return "argument must be a memory value";
        if (n > static_cast<unsigned long long>(LLONG_MAX) || static_cast<long long>(n) < p.min ||
            static_cast<long long>(n) > p.max)
          return "argument must be between " + ll_str(p.min) + " and " + ll_str(p.max) + " inclusive";
        return {};
      }
      case k_bool:
        if (!glob_iequal(value, "yes") && !glob_iequal(value, "no")) return "argument must be 'yes' or 'no'";
        return {};
      case k_enum: {
        std::vector<std::string_view> allowed;
        if (p.name == "maxmemory-policy")
          allowed = {"volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl", "allkeys-lru",
                     "allkeys-lfu",  "allkeys-random", "noeviction"};
        else if (p.name == "loglevel")
          allowed = {"debug", "verbose", "notice", "warning"};
        else
          allowed = {"upstart", "systemd", "auto", "no"};
        for (auto a : allowed)
          if (glob_iequal(a, value)) return {};
        std::string msg = "argument(s) must be one of the following: ";
        for (std::size_t i = 0; i < allowed.size(); ++i) msg += (i ? ", " : "") + std::string(allowed[i]);
        return msg;
      }
      default:
        return {};
    }
  }

  static std::string apply(store& st, const param& p, std::string_view value) {
    if (p.set) return p.set(st, value);
    std::string v(value);
    if (p.k == k_bool || p.k == k_enum)
      for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (p.k == k_memory || p.k == k_umemory) {
      unsigned long long n = 0;
      parse_memory(value, n);
      v = std::to_string(n);
    }
    st.misc_config_[std::string(p.name)] = v;
    return {};
  }
};

void store::config_get(std::string_view pattern, std::vector<config_pair>& out) const {
  auto add = [&](std::string_view key, const store_config::param& p) {
    for (auto& [k, v] : out)
      if (k == key) return;
    out.emplace_back(std::string(key), store_config::get(*this, p));
  };
  if (pattern.find_first_of("[*?") == std::string_view::npos) {
    if (const auto* p = store_config::lookup(pattern)) add(pattern, *p);
    return;
  }
  for (const auto& p : store_config::params()) {
    if (glob_match(pattern, p.name, true)) add(p.name, p);
    if (!p.alias.empty() && glob_match(pattern, p.alias, true)) add(p.alias, p);
  }
}

std::string store::config_set(std::span<const std::string_view> nv) {
  if (nv.size() % 2 != 0 || nv.empty()) return "ERR syntax error";
  std::vector<const store_config::param*> ps;
  for (std::size_t i = 0; i < nv.size(); i += 2) {
    const auto* p = store_config::lookup(nv[i]);
    if (!p) return "ERR Unknown option or number of arguments for CONFIG SET - '" + std::string(nv[i]) + "'";
    auto fail = [&](std::string_view why) {
      return "ERR CONFIG SET failed (possibly related to argument '" + std::string(nv[i]) + "') - " +
             std::string(why);
    };
    if (p->immutable) return fail("can't set immutable config");
    for (auto* q : ps)
      if (q == p) return fail("duplicate parameter");
    ps.push_back(p);
  }
  for (std::size_t i = 0; i < nv.size(); i += 2) {
    auto err = store_config::validate(*ps[i / 2], nv[i + 1]);
    if (!err.empty())
      return "ERR CONFIG SET failed (possibly related to argument '" + std::string(nv[i]) + "') - " + err;
  }
  std::vector<std::string> old;
  for (auto* p : ps) old.push_back(store_config::get(*this, *p));
  for (std::size_t i = 0; i < nv.size(); i += 2) {
    auto err = store_config::apply(*this, *ps[i / 2], nv[i + 1]);
    if (!err.empty()) {
      for (std::size_t j = 0; j < i; j += 2) store_config::apply(*this, *ps[j / 2], old[j / 2]);
      return "ERR CONFIG SET failed (possibly related to argument '" + std::string(nv[i]) + "') - " + err;
    }
  }
  return {};
}

void store::reset_stats() {
  stats_.total_commands_processed = 0;
  stats_.expired_keys = 0;
  stats_.expired_stale_perc_x100 = 0;
  stats_.expired_time_cap_reached_count = 0;
  stats_.keyspace_hits = 0;
  stats_.keyspace_misses = 0;
  stats_.pubsub_messages = 0;
  stats_.total_error_replies = 0;
  stats_.unexpected_error_replies = 0;
  stats_.total_connections_received = 0;
  stats_.rejected_connections = 0;
  stats_.net_input_bytes = 0;
  stats_.net_output_bytes = 0;
  stats_.errorstats.clear();
}

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
