// The store's CONFIG GET / CONFIG SET / CONFIG RESETSTAT: the parameter table, Redis's parsing and range rules.
#include <services/kv/store.hpp>
#include <turret/kv/glob.hpp>
#include <services/kv/numbers.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace turret::kv {
namespace {

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

}  // namespace turret::kv
