// Fuzz target: the command dispatcher and every command family of the key-value core, in process.
//
// The input decodes into a sequence of commands (fuzz/README.md describes the format; fuzz/kv_seed.py writes seeds
// from readable command scripts). Command names are drawn from the command table itself (every implemented command
// and subcommand), arguments from a small key pool, keywords, extreme numbers (LLONG_MAX, LLONG_MIN, -1, 0, 2^32,
// 2^63, 2^64, nan, inf ...), numbers and doubles built from input bytes, glob patterns with many '*', binary
// literals and huge arguments. They run through kv::kv_service::execute, as a front end sends them, with four
// sessions attached to one store, each with a RESP writer as its connection (services/resp/resp_reply_builder.hpp):
//   0: RESP2, 1: RESP3 (HELLO 3), 2: inside MULTI, 3: RESP2 subscribed to channels and patterns.
// A session that QUIT or was killed (CLIENT KILL, output limit) is detached and replaced by a new connection, as
// the front end does.
//
// Checked after every command: each session's output is a sequence of complete, well-formed RESP replies (pushes
// included). Checked after the whole input:
// - every key each database iterates is findable, the iterated count is keyspace::size() and DBSIZE, the keys with
//   a TTL are expires_size(), and a full SCAN returns every key;
// - CLIENT LIST parses (its fields in Redis's order) and lists exactly the attached sessions, which are exactly the
//   store's clients;
// - pub/sub bookkeeping: NUMSUB of every subscribed channel is the number of sessions subscribed to it;
// - INFO everything parses (each line "field:value", "# Section" or empty) and its keyspace lines agree with the
//   databases.
// Any exception out of the core, sanitizer report or failed check is a finding.
//
// Bounded memory: the store runs with proto-max-bulk-len 1mb (Redis's minimum; the same limit checks run as with
// 512mb) and CONFIG SET of that parameter is not sent, so no legitimate value exceeds 1 MB; run with
// -malloc_limit_mb (fuzz/run.sh: 2048) so that an allocation the core should have refused is reported.
#include <turret/kv/command_table.hpp>
#include <services/kv/kv_service.hpp>
#include <services/kv/store.hpp>
#include <services/resp/resp_reply_builder.hpp>
#include "check.hpp"
#include <turret/resp/value.hpp>
#include <turret/resp/writer.hpp>

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace turret;
using namespace std::string_view_literals;


constexpr std::size_t max_bulk = 1024 * 1024;  // the store's proto-max-bulk-len here
constexpr std::size_t max_output = 4 * 1024 * 1024;

// --- argument vocabulary ------------------------------------------------------------------------------------------

constexpr std::string_view extremes[] = {
    "9223372036854775807", "-9223372036854775808", "9223372036854775808", "-9223372036854775809",
    "18446744073709551615", "18446744073709551616", "4294967295", "4294967296", "4294967297", "2147483647",
    "2147483648", "-2147483648", "-2147483649", "-1", "0", "1", "2", "3", "-0", "+1", "01", " 1", "1 ", "1e3",
    "0x10", "nan", "NaN", "-nan", "inf", "-inf", "+inf", "infinity", "1e308", "1e309", "-1e309",
    "1.7976931348623157e308", "4.9e-324", "0.1", "-0.0", "3.14", "", "536870911", "536870912", "4294967295999",
    "99999999999999999999", "1048576", "1048577", "16", "15", "17", "100", "1000", "5", "10",
    "*", "?", "[a-z]*", "[^a]", "[", "[a-", "\\", "*\\", "[]", "[!]", "k*", "*k*", "k?", "[k]?", "__key*__:*",
    "__keyspace@0__:k0", "__keyevent@0__:set", "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b",
};
constexpr std::string_view keys[] = {"k0", "k1", "k2", "k3", "ch", "", "\0\xff"sv, "{k}\r\n"};
constexpr std::string_view keywords[] = {
    "EX", "PX", "EXAT", "PXAT", "NX", "XX", "GT", "LT", "GET", "KEEPTTL", "PERSIST", "MATCH", "COUNT", "TYPE",
    "string", "none", "normal", "pubsub", "master", "replica", "AND", "OR", "XOR", "NOT", "BIT", "BYTE", "OVERFLOW",
    "WRAP", "SAT", "FAIL", "INCRBY", "SET", "i8", "u8", "i16", "u32", "i63", "u63", "i64", "u64", "#0", "#1", "LEN",
    "IDX", "MINMATCHLEN", "WITHMATCHLEN", "ID", "ADDR", "LADDR", "USER", "SKIPME", "MAXAGE", "ON", "OFF", "SKIP",
    "yes", "no", "ASYNC", "SYNC", "REPLACE", "DB", "NOSAVE", "SAVE", "NOW", "FORCE", "ABORT", "AUTH", "SETNAME",
    "default", "HELP", "hz", "maxmemory", "notify-keyspace-events", "KEA", "Kx", "Eg$", "requirepass", "timeout",
    "maxclients", "client-output-buffer-limit", "pubsub 1 1 1", "normal 0 0 0", "FILTERBY", "MODULE", "ACLCAT",
    "PATTERN", "everything", "all", "server", "clients", "memory", "stats", "keyspace", "commandstats",
    "errorstats", "latencystats", "NUMSUB", "NUMPAT", "CHANNELS", "127.0.0.1:40000", "127.0.0.1:40001",
    "127.0.0.1:6379", "LIBRARYNAME", "WITHCODE", "DOCS", "INFO", "LIST", "KILL", "REPLY", "GETNAME", "get", "set",
    "client|list", "config|set", "@string", "@keyspace", "@pubsub", "save", "appendonly", "*max*",
};

// --- sessions ---------------------------------------------------------------------------------------------------------

/// One connection: a session with a RESP writer, and the host that receives pub/sub deliveries and kills.
struct client final : kv::session_host {
  kv::session sess;
  std::string out;
  resp_frontend::resp_reply_builder builder{out, sess.resp};
  bool killed = false;
  bool attached = false;

  explicit client(int n) {
    sess.host = this;
    sess.addr = "127.0.0.1:" + std::to_string(40000 + n);
    sess.laddr = "127.0.0.1:6379";
  }
  bool deliver(const kv::pubsub_message& m) override {
    if (out.size() > max_output) return false;  // the output buffer limit: the store kills us
    resp_frontend::append_pubsub_message(out, sess.resp, m);
    return true;
  }
  void kill() override { killed = true; }
  buffers buffer_info() const override { return {0, 0, 0, 0, out.size(), out.size()}; }
  int fd() const override { return 7; }
};

/// Parses every reply in `bytes`; they must all be complete. Returns the replies.
std::vector<resp::value> parse_replies(std::string_view bytes) {
  std::vector<resp::value> out;
  resp::reply_parser p(max_output * 2);
  while (!bytes.empty()) {
    const auto st = p.parse(bytes);
    CHECK(st != resp::reply_parser::status::error, "malformed reply", bytes.substr(0, 300));
    CHECK(st == resp::reply_parser::status::ok, "incomplete reply", bytes.substr(0, 300));
    out.push_back(p.take());
    bytes.remove_prefix(p.consumed());
  }
  return out;
}

struct harness {
  std::shared_ptr<const kv::command_table> table;
  std::shared_ptr<kv::store> st;
  kv::kv_service svc;
  std::array<std::unique_ptr<client>, 4> clients;
  int next_port = 0;

  static kv::store_options options() {
    kv::store_options o;
    o.proto_max_bulk_len = static_cast<long long>(max_bulk);
    return o;
  }

  explicit harness(std::shared_ptr<const kv::command_table> t)
      : table(std::move(t)), st(std::make_shared<kv::store>(options())), svc(st, table) {
    for (std::size_t i = 0; i < clients.size(); ++i) connect(i);
  }
  ~harness() {
    for (auto& c : clients) disconnect(*c);
  }

  /// Runs a command as the session's connection does; the reply is appended to c.out.
  void execute(client& c, std::span<const std::string_view> args) {
    request_context ctx;
    kv::request req{ctx, c.sess, args, c.builder};
    svc.execute(req);
  }
  /// Runs a command and returns (and clears) the session's output.
  std::string run(client& c, std::span<const std::string_view> args) {
    execute(c, args);
    std::string reply;
    reply.swap(c.out);
    return reply;
  }
  std::string run(client& c, std::initializer_list<std::string_view> args) {
    return run(c, std::span<const std::string_view>(args.begin(), args.size()));
  }

  /// A new connection in slot i, in the slot's initial state.
  void connect(std::size_t i) {
    if (clients[i]) disconnect(*clients[i]);
    clients[i] = std::make_unique<client>(next_port++);
    client& c = *clients[i];
    st->attach(c.sess);
    c.attached = true;
    if (!c.sess.authenticated) c.sess.authenticated = true;  // a password set by CONFIG SET: this one logged in
    if (i == 1) run(c, {"HELLO", "3"});
    if (i == 2) run(c, {"MULTI"});
    if (i == 3) {
      run(c, {"SUBSCRIBE", "ch", "k0", "__keyspace@0__:k1"});
      run(c, {"PSUBSCRIBE", "k*", "__key*__:*", "*"});
    }
    c.out.clear();
  }
  void disconnect(client& c) {
    if (c.attached) st->detach(c.sess);
    c.attached = false;
  }
};

// --- decoding ---------------------------------------------------------------------------------------------------------

/// Every command name the table dispatches: top-level commands, and containers with each subcommand.
struct name_list {
  std::vector<std::vector<std::string>> names;
  explicit name_list(const kv::command_table& t) {
    for (const kv::command_def* c : t.commands()) {
      names.push_back({std::string(c->name)});
      for (const kv::command_def* sub : c->subcommands) names.push_back({std::string(c->name), std::string(sub->short_name)});
    }
  }
};

class reader {
 public:
  reader(const std::uint8_t* d, std::size_t n) : p_(d), end_(d + n) {}
  bool empty() const { return p_ >= end_; }
  std::uint8_t byte() { return p_ < end_ ? *p_++ : 0; }
  std::string_view bytes(std::size_t n) {
    n = std::min<std::size_t>(n, static_cast<std::size_t>(end_ - p_));
    std::string_view v(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return v;
  }
  std::uint64_t le(std::size_t n) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= static_cast<std::uint64_t>(byte()) << (8 * i);
    return v;
  }

 private:
  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

/// Decodes one argument (see fuzz/README.md for the tags). Text that is built lives in `pool`.
std::string_view decode_arg(reader& r, std::deque<std::string>& pool, std::string_view huge) {
  const std::uint8_t t = r.byte();
  if (t < 0x40) return extremes[t % std::size(extremes)];
  if (t < 0x50) return keys[t % std::size(keys)];
  if (t < 0xa0) return keywords[(t - 0x50) % std::size(keywords)];
  char buf[64];
  switch (t >> 3) {
    case 0xa0 >> 3: {  // signed integer of 1..8 little-endian bytes
      const std::size_t n = (t & 7) + 1;
      std::uint64_t v = r.le(n);
      if (n < 8 && (v >> (8 * n - 1)) & 1) v |= ~0ull << (8 * n);  // sign-extend
      std::snprintf(buf, sizeof buf, "%" PRId64, static_cast<std::int64_t>(v));
      return pool.emplace_back(buf);
    }
    case 0xa8 >> 3: {  // unsigned integer of 1..8 bytes
      std::snprintf(buf, sizeof buf, "%" PRIu64, r.le((t & 7) + 1));
      return pool.emplace_back(buf);
    }
    case 0xb0 >> 3: {  // a double from 8 bytes, in one of a few formats
      const std::uint64_t bits = r.le(8);
      double d;
      std::memcpy(&d, &bits, sizeof d);
      static constexpr const char* formats[] = {"%.17g", "%g", "%f", "%a", "%.3e", "%.1f", "%.0f", "%.20g"};
      std::snprintf(buf, sizeof buf, formats[t & 7], d);
      return pool.emplace_back(buf);
    }
    case 0xb8 >> 3: {  // glob patterns with many wildcards
      const std::size_t n = static_cast<std::size_t>(r.byte()) * 8 + 1;
      std::string s;
      switch (t & 7) {
        case 0: s.assign(n, '*'); break;
        case 1: for (std::size_t i = 0; i < n; ++i) s += "a*"; s += 'b'; break;
        case 2: s.assign(n, '?'); break;
        case 3: s.assign(n, '['); break;
        case 4: for (std::size_t i = 0; i < n; ++i) s += "[a-z]*"; break;
        case 5: s.assign(n, '\\'); break;
        case 6: s = "k"; s.append(n, '*'); s += "0"; break;
        default: for (std::size_t i = 0; i < n; ++i) s += "*?"; break;
      }
      return pool.emplace_back(std::move(s));
    }
    default: break;
  }
  if (t < 0xe0) return r.bytes(t & 0x1f);   // short literal
  if (t < 0xf0) return r.bytes(r.byte());   // literal up to 255 bytes
  // Huge: 4 KiB .. 1 MiB (proto-max-bulk-len) of one repeated character.
  const std::size_t n = std::min<std::size_t>((static_cast<std::size_t>(r.byte()) + 1) * 4096 * ((t & 3) + 1), max_bulk);
  return huge.substr(((t >> 2) & 3) * max_bulk, n);
}

/// Four runs of max_bulk bytes: digits, letters, '*' and 0xff.
const std::string& huge_storage() {
  static const std::string s = [] {
    std::string h;
    for (char c : {'1', 'x', '*', '\xff'}) h.append(max_bulk, c);
    return h;
  }();
  return s;
}

/// CONFIG SET proto-max-bulk-len would lift the bound on legitimate allocations (see the header comment).
bool filtered(std::span<const std::string_view> args) {
  if (args.size() < 2 || !kv::iequals(args[0], "config") || !kv::iequals(args[1], "set")) return false;
  for (std::size_t i = 2; i < args.size(); ++i)
    if (kv::iequals(args[i], "proto-max-bulk-len")) return true;
  return false;
}

// --- consistency checks --------------------------------------------------------------------------------------------

void check_keyspaces(harness& h, client& obs) {
  kv::store& st = *h.st;
  for (int i = 0; i < st.databases(); ++i) {
    kv::keyspace* db;
    std::size_t count = 0, with_ttl = 0;
    std::set<std::string> all;
    {
      std::lock_guard lock(st.mutex());
      db = &st.db(i);
      db->for_each([&](const kv::entry* e) {
        const std::string_view k = kv::keyspace::key_of(e);
        CHECK(db->find_raw(k) == e, "iterated key not findable", k);
        ++count;
        if (db->expire_of(e) != kv::no_expiry) ++with_ttl;
        all.emplace(k);
      });
      CHECK(all.size() == count, "a key iterated twice");
      CHECK(count == db->size(), "keyspace::size() differs from the iterated count");
      CHECK(with_ttl == db->expires_size(), "expires_size() differs from the keys with a TTL");
      // A full SCAN returns every key (nothing changes meanwhile).
      std::set<std::string> scanned;
      std::uint64_t cursor = 0;
      std::size_t rounds = 0;
      do {
        cursor = db->scan(cursor, 1 + rounds % 7, [&](const kv::entry* e) { scanned.emplace(kv::keyspace::key_of(e)); });
        CHECK(++rounds < 1'000'000, "SCAN does not terminate");
      } while (cursor != 0);
      CHECK(scanned == all, "a full SCAN misses keys");
    }
    if (count == 0 && i != 0) continue;
    const std::string idx = std::to_string(i);
    h.run(obs, {"SELECT", idx});
    const std::string r = h.run(obs, {"DBSIZE"});
    CHECK(r == ":" + std::to_string(count) + "\r\n", "DBSIZE differs from the iterated count", r);
  }
  h.run(obs, {"SELECT", "0"});
}

/// CLIENT LIST fields, in Redis's order.
constexpr std::string_view client_fields[] = {
    "id", "addr", "laddr", "fd", "name", "age", "idle", "flags", "db", "sub", "psub", "ssub", "multi", "qbuf",
    "qbuf-free", "argv-mem", "multi-mem", "rbs", "rbp", "obl", "oll", "omem", "tot-mem", "events", "cmd", "user",
    "redir", "resp"};

void check_clients(harness& h, client& obs) {
  std::set<std::uint64_t> attached{obs.sess.id};
  for (auto& c : h.clients)
    if (c->attached) attached.insert(c->sess.id);
  {
    std::lock_guard lock(h.st->mutex());
    std::set<std::uint64_t> registered;
    for (auto& [id, s] : h.st->clients()) {
      registered.insert(id);
      CHECK(s->id == id, "store client map id mismatch");
    }
    CHECK(registered == attached, "the store's clients are not the attached sessions");
  }
  const auto replies = parse_replies(h.run(obs, {"CLIENT", "LIST"}));
  CHECK(replies.size() == 1 && replies[0].type == resp::value::kind::bulk, "CLIENT LIST is not one bulk reply");
  std::string_view text = replies[0].str;
  std::set<std::uint64_t> listed;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    CHECK(nl != std::string_view::npos, "CLIENT LIST line without newline", text);
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    std::size_t f = 0;
    while (!line.empty()) {
      const auto sp = line.find(' ');
      const std::string_view tok = line.substr(0, sp);
      line = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
      const auto eq = tok.find('=');
      CHECK(eq != std::string_view::npos && f < std::size(client_fields) && tok.substr(0, eq) == client_fields[f],
            "CLIENT LIST field out of order", tok);
      if (f == 0) {
        std::uint64_t id = 0;
        for (char ch : tok.substr(3)) {
          CHECK(ch >= '0' && ch <= '9', "CLIENT LIST id not a number", tok);
          id = id * 10 + static_cast<std::uint64_t>(ch - '0');
        }
        CHECK(listed.insert(id).second, "CLIENT LIST lists a client twice");
      }
      ++f;
    }
    CHECK(f == std::size(client_fields), "CLIENT LIST line with missing fields");
  }
  CHECK(listed == attached, "CLIENT LIST does not list exactly the attached sessions");
}

void check_pubsub(harness& h) {
  std::map<std::string, std::size_t> subs;
  std::set<std::string> patterns;
  for (auto& c : h.clients) {
    if (!c->attached) continue;
    for (auto& ch : c->sess.channels) ++subs[ch];
    for (auto& p : c->sess.patterns) patterns.insert(p);
  }
  std::lock_guard lock(h.st->mutex());
  for (auto& [ch, n] : subs) CHECK(h.st->numsub(ch) == n, "NUMSUB differs from the subscribed sessions", ch);
  CHECK(h.st->numpat() == patterns.size(), "NUMPAT differs from the sessions' patterns");
  CHECK(h.st->channels("*", true).size() == subs.size(), "PUBSUB CHANNELS differs from the subscribed channels");
}

void check_info(harness& h, client& obs) {
  const auto replies = parse_replies(h.run(obs, {"INFO", "everything"}));
  CHECK(replies.size() == 1 && replies[0].type == resp::value::kind::bulk, "INFO is not one bulk reply");
  std::string_view text = replies[0].str;
  std::map<std::string, std::string, std::less<>> keyspace_lines;
  bool in_keyspace = false;
  while (!text.empty()) {
    const auto end = text.find("\r\n");
    CHECK(end != std::string_view::npos, "INFO line without CRLF", text.substr(0, 200));
    const std::string_view line = text.substr(0, end);
    text.remove_prefix(end + 2);
    CHECK(line.find_first_of("\r\n") == std::string_view::npos, "INFO line with CR or LF", line);
    if (line.empty()) continue;
    if (line.starts_with("# ")) {
      in_keyspace = line == "# Keyspace";
      continue;
    }
    const auto colon = line.find(':');
    CHECK(colon != std::string_view::npos && colon > 0, "INFO line is not field:value", line);
    CHECK(line.substr(0, colon).find_first_of(" #") == std::string_view::npos, "INFO field name with a space", line);
    if (in_keyspace) keyspace_lines.emplace(line.substr(0, colon), line.substr(colon + 1));
  }
  std::lock_guard lock(h.st->mutex());
  std::size_t nonempty = 0;
  for (int i = 0; i < h.st->databases(); ++i) {
    kv::keyspace& db = h.st->db(i);
    if (db.size() == 0) continue;
    ++nonempty;
    auto it = keyspace_lines.find("db" + std::to_string(i));
    CHECK(it != keyspace_lines.end(), "INFO keyspace misses a database");
    const std::string want = "keys=" + std::to_string(db.size()) + ",expires=" + std::to_string(db.expires_size()) + ",";
    CHECK(it->second.starts_with(want), "INFO keyspace counts differ", it->second);
  }
  CHECK(nonempty == keyspace_lines.size(), "INFO keyspace lists an empty database");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::shared_ptr<const kv::command_table> table = kv::command_table::make_default();
  static const name_list names(*table);
  const std::string_view huge = huge_storage();

  harness h(table);
  reader r(data, size);
  std::deque<std::string> pool;  // stable addresses: args view into it
  std::vector<std::string_view> args;
  std::size_t commands = 0;
  while (!r.empty() && commands++ < 256) {
    const std::uint8_t hdr = r.byte();
    const std::size_t slot = hdr & 3;
    const unsigned op = hdr >> 5;
    if (op == 6) {  // a server tick: active expiry
      h.st->active_expire_cycle(1000);
      continue;
    }
    if (op == 7) {  // the connection goes away and a new one takes its place
      h.connect(slot);
      continue;
    }
    std::size_t argc = (hdr >> 2) & 7;
    if (argc == 7) argc = 7 + r.byte() % 32;
    pool.clear();
    args.clear();
    const std::uint8_t n = r.byte();
    if (n == 0xff) {
      args.push_back(r.bytes(r.byte()));  // a literal name (unknown commands, odd case)
    } else {
      for (const auto& part : names.names[n % names.names.size()]) args.push_back(part);
    }
    for (std::size_t i = 0; i < argc && !r.empty(); ++i) args.push_back(decode_arg(r, pool, huge));
    if (filtered(args)) continue;

    h.execute(*h.clients[slot], args);
    // Every session's output holds complete replies only (the executing one's reply, pushes to the others).
    for (std::size_t i = 0; i < h.clients.size(); ++i) {
      client& k = *h.clients[i];
      parse_replies(k.out);
      k.out.clear();
      if (k.killed || k.sess.close_after_reply) h.connect(i);
    }
  }

  client obs(9999);
  h.st->attach(obs.sess);
  obs.sess.authenticated = true;
  obs.attached = true;
  check_keyspaces(h, obs);
  check_clients(h, obs);
  check_pubsub(h);
  check_info(h, obs);
  h.st->detach(obs.sess);
  return 0;
}
