// Server commands: INFO, DBSIZE, FLUSHDB, FLUSHALL, CONFIG (GET, SET, RESETSTAT, HELP), COMMAND (COUNT, INFO, DOCS,
// LIST, HELP), TIME, SHUTDOWN, FUNCTION (FLUSH, LIST, HELP) answering as a Redis with no functions.
#include <turret/kv/hello.hpp>
#include <turret/kv/command_table.hpp>
#include <services/kv/commands/arguments.hpp>
#include <services/kv/dispatch.hpp>
#include <turret/kv/glob.hpp>
#include <services/kv/store.hpp>

#include <sys/resource.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace turret::kv {
namespace {

// --- INFO --------------------------------------------------------------------------------------------------------------

std::string human_bytes(double n) {
  char buf[64];
  if (n < 1024) std::snprintf(buf, sizeof buf, "%lluB", static_cast<unsigned long long>(n));
  else if (n < 1024.0 * 1024) std::snprintf(buf, sizeof buf, "%.2fK", n / 1024);
  else if (n < 1024.0 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.2fM", n / (1024.0 * 1024));
  else if (n < 1024.0 * 1024 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.2fG", n / (1024.0 * 1024 * 1024));
  else std::snprintf(buf, sizeof buf, "%.2fT", n / (1024.0 * 1024 * 1024 * 1024));
  return buf;
}

std::size_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

struct info_writer {
  std::string out;
  bool first = true;
  void section(std::string_view name) {
    if (!first) out += "\r\n";
    first = false;
    out += "# ";
    out += name;
    out += "\r\n";
  }
  template <class T>
  void field(std::string_view k, const T& v) {
    out += k;
    out += ':';
    if constexpr (std::is_convertible_v<T, std::string_view>) out += std::string_view(v);
    else out += std::to_string(v);
    out += "\r\n";
  }
};

std::size_t peak_memory = 0;

void info_cmd(command_ctx& c) {
  // Section selection as Redis 7.0's genInfoSectionDict.
  static constexpr std::string_view defaults[] = {"server", "clients", "memory", "persistence", "stats",
                                                  "replication", "cpu", "modules", "errorstats", "cluster",
                                                  "keyspace"};
  std::vector<std::string> want;
  bool everything = false;
  auto add = [&](std::string_view s) {
    std::string l(s);
    for (auto& ch : l) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    want.push_back(l);
  };
  if (c.args.size() == 1) {
    for (auto d : defaults) add(d);
  } else {
    for (std::size_t i = 1; i < c.args.size(); ++i) {
      if (iequals(c.args[i], "default")) {
        for (auto d : defaults) add(d);
      } else if (iequals(c.args[i], "all")) {
        for (auto d : defaults) add(d);
        add("commandstats");
        add("latencystats");
      } else if (iequals(c.args[i], "everything")) {
        everything = true;
        for (auto d : defaults) add(d);
        add("commandstats");
        add("latencystats");
      } else {
        add(c.args[i]);
      }
    }
  }
  auto has = [&](std::string_view s) {
    for (auto& w : want)
      if (w == s) return true;
    return false;
  };
  store& st = c.st;
  info_writer w;
  struct timeval tv;
  ::gettimeofday(&tv, nullptr);
  const long long uptime = (c.now - st.start_time_ms()) / 1000;
  if (has("server")) {
    w.section("Server");
    w.field("redis_version", redis_version);
    w.field("redis_git_sha1", "00000000");
    w.field("redis_git_dirty", "0");
    w.field("redis_build_id", "turret");
    w.field("redis_mode", "standalone");
    struct utsname u;
    ::uname(&u);
    w.field("os", std::string(u.sysname) + " " + u.release + " " + u.machine);
    w.field("arch_bits", "64");
    w.field("monotonic_clock", "POSIX clock_gettime");
    w.field("multiplexing_api", "epoll");
    w.field("atomicvar_api", "c11-builtin");
    w.field("gcc_version", std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__) + "." +
                               std::to_string(__GNUC_PATCHLEVEL__));
    w.field("process_id", static_cast<long long>(::getpid()));
    w.field("process_supervised", "no");
    w.field("run_id", st.process().run_id);
    w.field("tcp_port", st.process().tcp_port);
    w.field("server_time_usec", static_cast<long long>(tv.tv_sec) * 1000000 + tv.tv_usec);
    w.field("uptime_in_seconds", uptime);
    w.field("uptime_in_days", uptime / 86400);
    w.field("hz", st.hz());
    w.field("configured_hz", st.hz());
    w.field("lru_clock", static_cast<long long>((c.now / 1000) & ((1 << 24) - 1)));
    w.field("executable", st.process().executable);
    w.field("config_file", st.process().config_file);
    w.field("io_threads_active", "0");
    w.field("turret_threads", st.process().threads);
  }
  if (has("clients")) {
    w.section("Clients");
    w.field("connected_clients", st.connected_clients());
    w.field("cluster_connections", "0");
    w.field("maxclients", st.limits().maxclients.load());
    w.field("client_recent_max_input_buffer", "0");
    w.field("client_recent_max_output_buffer", "0");
    w.field("blocked_clients", "0");
    w.field("tracking_clients", "0");
    w.field("clients_in_timeout_table", "0");
  }
  std::size_t used = 0;
  for (int i = 0; i < st.databases(); ++i) used += st.db(i).memory_usage();
  if (used > peak_memory) peak_memory = used;
  if (has("memory")) {
    const std::size_t rss = rss_bytes();
    w.section("Memory");
    w.field("used_memory", used);
    w.field("used_memory_human", human_bytes(static_cast<double>(used)));
    w.field("used_memory_rss", rss);
    w.field("used_memory_rss_human", human_bytes(static_cast<double>(rss)));
    w.field("used_memory_peak", peak_memory);
    w.field("used_memory_peak_human", human_bytes(static_cast<double>(peak_memory)));
    w.field("maxmemory", "0");
    w.field("maxmemory_human", "0B");
    w.field("maxmemory_policy", "noeviction");
    char frag[32];
    std::snprintf(frag, sizeof frag, "%.2f", used ? static_cast<double>(rss) / static_cast<double>(used) : 0.0);
    w.field("mem_fragmentation_ratio", frag);
    w.field("mem_allocator", "libc");
    w.field("lazyfree_pending_objects", "0");
    w.field("lazyfreed_objects", st.lazyfreed_objects);
  }
  if (has("persistence")) {
    w.section("Persistence");
    w.field("loading", "0");
    w.field("async_loading", "0");
    w.field("rdb_changes_since_last_save", st.dirty());
    w.field("rdb_bgsave_in_progress", "0");
    w.field("rdb_last_save_time", st.start_time_ms() / 1000);
    w.field("rdb_last_bgsave_status", "ok");
    w.field("rdb_saves", "0");
    w.field("aof_enabled", "0");
    w.field("aof_rewrite_in_progress", "0");
    w.field("aof_last_bgrewrite_status", "ok");
    w.field("aof_last_write_status", "ok");
  }
  if (has("stats")) {
    const auto& s = st.stats();
    w.section("Stats");
    w.field("total_connections_received", s.total_connections_received);
    w.field("total_commands_processed", s.total_commands_processed);
    w.field("instantaneous_ops_per_sec", "0");
    w.field("total_net_input_bytes", s.net_input_bytes.load());
    w.field("total_net_output_bytes", s.net_output_bytes.load());
    w.field("rejected_connections", s.rejected_connections.load());
    w.field("expired_keys", s.expired_keys);
    w.field("expired_stale_perc", "0.00");
    w.field("expired_time_cap_reached_count", s.expired_time_cap_reached_count);
    w.field("evicted_keys", "0");
    w.field("evicted_clients", "0");
    w.field("keyspace_hits", s.keyspace_hits);
    w.field("keyspace_misses", s.keyspace_misses);
    std::size_t nch = st.channels({}, true).size();
    w.field("pubsub_channels", nch);
    w.field("pubsub_patterns", st.numpat());
    w.field("pubsubshard_channels", "0");
    w.field("unexpected_error_replies", s.unexpected_error_replies);
    w.field("total_error_replies", s.total_error_replies);
  }
  if (has("replication")) {
    w.section("Replication");
    w.field("role", "master");
    w.field("connected_slaves", "0");
    w.field("master_failover_state", "no-failover");
    w.field("master_replid", st.process().run_id);
    w.field("master_replid2", "0000000000000000000000000000000000000000");
    w.field("master_repl_offset", "0");
    w.field("second_repl_offset", "-1");
    w.field("repl_backlog_active", "0");
    w.field("repl_backlog_size", "1048576");
    w.field("repl_backlog_first_byte_offset", "0");
    w.field("repl_backlog_histlen", "0");
  }
  if (has("cpu")) {
    auto fmt = [](const struct timeval& t) {
      char b[48];
      std::snprintf(b, sizeof b, "%ld.%06ld", static_cast<long>(t.tv_sec), static_cast<long>(t.tv_usec));
      return std::string(b);
    };
    struct rusage self, children;
    ::getrusage(RUSAGE_SELF, &self);
    ::getrusage(RUSAGE_CHILDREN, &children);
    w.section("CPU");
    w.field("used_cpu_sys", fmt(self.ru_stime));
    w.field("used_cpu_user", fmt(self.ru_utime));
    w.field("used_cpu_sys_children", fmt(children.ru_stime));
    w.field("used_cpu_user_children", fmt(children.ru_utime));
  }
  if (has("modules")) w.section("Modules");
  if (has("commandstats")) {
    w.section("Commandstats");
    auto one = [&](const command_def* d) {
      if (d->calls == 0 && d->rejected_calls == 0 && d->failed_calls == 0) return;
      char b[256];
      double per = d->calls ? static_cast<double>(d->usec) / static_cast<double>(d->calls) : 0.0;
      std::snprintf(b, sizeof b, "calls=%llu,usec=%llu,usec_per_call=%.2f,rejected_calls=%llu,failed_calls=%llu",
                    static_cast<unsigned long long>(d->calls), static_cast<unsigned long long>(d->usec), per,
                    static_cast<unsigned long long>(d->rejected_calls),
                    static_cast<unsigned long long>(d->failed_calls));
      w.field("cmdstat_" + std::string(d->name), std::string(b));
    };
    for (const command_def* d : st.commands()->commands()) {
      if (d->is_container()) {
        for (const command_def* s : d->subcommands) one(s);
      } else {
        one(d);
      }
    }
  }
  if (has("errorstats")) {
    w.section("Errorstats");
    for (auto& [code, n] : st.stats().errorstats) w.field("errorstat_" + code, "count=" + std::to_string(n));
  }
  if (has("latencystats")) w.section("Latencystats");
  if (has("cluster")) {
    w.section("Cluster");
    w.field("cluster_enabled", "0");
  }
  if (has("keyspace")) {
    w.section("Keyspace");
    for (int i = 0; i < st.databases(); ++i) {
      keyspace& db = st.db(i);
      if (db.size() == 0) continue;
      w.field("db" + std::to_string(i), "keys=" + std::to_string(db.size()) +
                                            ",expires=" + std::to_string(db.expires_size()) + ",avg_ttl=0");
    }
  }
  for (const auto& extra : st.extra_info_sections) {
    if (!everything && !has(extra.name)) continue;
    w.section(extra.title);
    if (extra.fields) w.out += extra.fields();
  }
  c.out.verbatim(w.out, "txt");
}

// --- DBSIZE, FLUSHDB, FLUSHALL, TIME ------------------------------------------------------------------------------------

void dbsize_cmd(command_ctx& c) { c.out.integer(static_cast<long long>(c.db().size())); }

bool flush_flags(command_ctx& c) {
  if (c.args.size() == 2) {
    if (iequals(c.args[1], "sync") || iequals(c.args[1], "async")) return true;
    reply_error(c.st, c.out, err_syntax);
    return false;
  }
  if (c.args.size() == 1) return true;
  reply_error(c.st, c.out, err_syntax);
  return false;
}

void flushdb_cmd(command_ctx& c) {
  if (!flush_flags(c)) return;
  keyspace& db = c.db();
  c.st.db_modified(db.index());
  c.st.add_dirty(db.size());
  db.clear();
  c.out.ok();
}

void flushall_cmd(command_ctx& c) {
  if (!flush_flags(c)) return;
  c.st.db_modified(-1);
  for (int i = 0; i < c.st.databases(); ++i) {
    c.st.add_dirty(c.st.db(i).size());
    c.st.db(i).clear();
  }
  c.st.add_dirty(1);
  c.out.ok();
}

void time_cmd(command_ctx& c) {
  struct timeval tv;
  ::gettimeofday(&tv, nullptr);
  c.out.array(2);
  c.out.bulk(std::to_string(tv.tv_sec));
  c.out.bulk(std::to_string(tv.tv_usec));
}

// --- SHUTDOWN ----------------------------------------------------------------------------------------------------------

void shutdown_cmd(command_ctx& c) {
  shutdown_request r;
  bool abort = false;
  for (std::size_t i = 1; i < c.args.size(); ++i) {
    if (iequals(c.args[i], "nosave")) r.nosave = true;
    else if (iequals(c.args[i], "save")) r.save = true;
    else if (iequals(c.args[i], "now")) r.now = true;
    else if (iequals(c.args[i], "force")) r.force = true;
    else if (iequals(c.args[i], "abort")) abort = true;
    else {
      reply_error(c.st, c.out, err_syntax);
      return;
    }
  }
  const bool any = r.nosave || r.save || r.now || r.force;
  if ((abort && any) || (r.nosave && r.save)) {
    reply_error(c.st, c.out, err_syntax);
    return;
  }
  if (abort) {
    reply_error(c.st, c.out, "ERR No shutdown in progress.");
    return;
  }
  if (!c.st.request_shutdown(r)) {
    reply_error(c.st, c.out, "ERR Errors trying to SHUTDOWN. Check logs.");
    return;
  }
  // Redis exits without replying: the connection just closes.
  c.sess.close_after_reply = true;
}

// --- CONFIG --------------------------------------------------------------------------------------------------------------

void config_get(command_ctx& c) {
  std::vector<config_pair> out;
  for (std::size_t i = 2; i < c.args.size(); ++i) c.st.config_get(c.args[i], out);
  c.out.map(out.size());
  for (auto& [k, v] : out) {
    c.out.bulk(k);
    c.out.bulk(v);
  }
}

void config_set(command_ctx& c) {
  auto err = c.st.config_set(c.args.subspan(2));
  if (err.empty()) c.out.ok();
  else reply_error(c.st, c.out, err);
}

void config_resetstat(command_ctx& c) {
  c.st.reset_stats();
  c.st.commands()->reset_stats();
  c.out.ok();
}

void config_help(command_ctx& c) { c.out.raw(c.st.commands()->find("config")->help(c.out.protocol())); }

// --- COMMAND -----------------------------------------------------------------------------------------------------------

void command_all(command_ctx& c) {
  auto cmds = c.st.commands()->commands();
  c.out.array(cmds.size());
  for (const command_def* d : cmds) c.out.raw(d->info(c.out.protocol()));
}

void command_count(command_ctx& c) { c.out.integer(static_cast<long long>(c.st.commands()->commands().size())); }

void command_info_cmd(command_ctx& c) {  // (command_info is the metadata type)
  if (c.args.size() == 2) {
    command_all(c);
    return;
  }
  c.out.array(c.args.size() - 2);
  for (std::size_t i = 2; i < c.args.size(); ++i) {
    const command_def* d = c.st.commands()->find_full(c.args[i]);
    if (d) c.out.raw(d->info(c.out.protocol()));
    else c.out.null_bulk();
  }
}

void command_docs(command_ctx& c) {
  std::vector<const command_def*> ds;
  if (c.args.size() == 2) {
    for (const command_def* d : c.st.commands()->commands()) ds.push_back(d);
  } else {
    for (std::size_t i = 2; i < c.args.size(); ++i)
      if (const command_def* d = c.st.commands()->find_full(c.args[i])) ds.push_back(d);
  }
  c.out.map(ds.size());
  for (const command_def* d : ds) {
    c.out.bulk(d->name);
    c.out.raw(d->docs(c.out.protocol()));
  }
}

void command_list(command_ctx& c) {
  int filter = 0;  // 1 module, 2 aclcat, 3 pattern
  std::string_view arg;
  for (std::size_t i = 2; i < c.args.size(); ++i) {
    std::size_t more = c.args.size() - 1 - i;
    if (iequals(c.args[i], "filterby") && more == 2) {
      auto t = c.args[i + 1];
      if (iequals(t, "module")) filter = 1;
      else if (iequals(t, "aclcat")) filter = 2;
      else if (iequals(t, "pattern")) filter = 3;
      else {
        reply_error(c.st, c.out, err_syntax);
        return;
      }
      arg = c.args[i + 2];
      i += 2;
    } else {
      reply_error(c.st, c.out, err_syntax);
      return;
    }
  }
  const std::uint64_t cat = filter == 2 ? acl_category_from_name(arg) : 0;
  std::vector<std::string_view> names;
  auto consider = [&](const command_def* d) {
    if (filter == 1) return;
    if (filter == 2 && (cat == 0 || !(d->acl & cat))) return;
    if (filter == 3 && !glob_match(arg, d->name, true)) return;
    names.push_back(d->name);
  };
  for (const command_def* d : c.st.commands()->commands()) {
    consider(d);
    for (const command_def* s : d->subcommands) consider(s);
  }
  c.out.array(names.size());
  for (auto n : names) c.out.bulk(n);
}

void command_help(command_ctx& c) { c.out.raw(c.st.commands()->find("command")->help(c.out.protocol())); }

void command_cmd(command_ctx& c) {
  // COMMAND with no subcommand (a container reached with argc == 1 would be an arity error, but COMMAND's arity is -1)
  command_all(c);
}

// --- FUNCTION -------------------------------------------------------------------------------------------------------------

void function_flush(command_ctx& c) {
  if (c.args.size() == 3) {
    if (!iequals(c.args[2], "sync") && !iequals(c.args[2], "async")) {
      reply_error(c.st, c.out, "ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
      return;
    }
  } else if (c.args.size() > 3) {
    reply_error(c.st, c.out, "ERR FUNCTION FLUSH only supports SYNC|ASYNC option");
    return;
  }
  c.out.ok();
}

void function_list(command_ctx& c) {
  bool with_code = false, has_lib = false;
  for (std::size_t i = 2; i < c.args.size(); ++i) {
    if (!with_code && iequals(c.args[i], "withcode")) {
      with_code = true;
      continue;
    }
    if (!has_lib && iequals(c.args[i], "libraryname")) {
      if (i >= c.args.size() - 1) {
        reply_error(c.st, c.out, "ERR library name argument was not given");
        return;
      }
      has_lib = true;
      ++i;
      continue;
    }
    std::string a(c.args[i].substr(0, std::min(c.args[i].find('\0'), c.args[i].size())));
    reply_error(c.st, c.out, "ERR Unknown argument " + a);
    return;
  }
  c.out.array(0);
}

void function_help(command_ctx& c) { c.out.raw(c.st.commands()->find("function")->help(c.out.protocol())); }

}  // namespace

void register_server_commands(command_table& t) {
  t.add("info", info_cmd);
  t.add("dbsize", dbsize_cmd);
  t.add("flushdb", flushdb_cmd);
  t.add("flushall", flushall_cmd);
  t.add("time", time_cmd);
  t.add("shutdown", shutdown_cmd);
  t.add("config|get", config_get);
  t.add("config|set", config_set);
  t.add("config|resetstat", config_resetstat);
  t.add("config|help", config_help);
  t.add("command", command_cmd);
  t.add("command|count", command_count);
  t.add("command|info", command_info_cmd);
  t.add("command|docs", command_docs);
  t.add("command|list", command_list);
  t.add("command|help", command_help);
  t.add("function|flush", function_flush);
  t.add("function|list", function_list);
  t.add("function|help", function_help);
}

}  // namespace turret::kv
