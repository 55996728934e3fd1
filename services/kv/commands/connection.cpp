// PING, ECHO, QUIT, SELECT, SWAPDB, AUTH, HELLO, RESET, CLIENT (ID, SETNAME, GETNAME, LIST, INFO, KILL, REPLY,
// NO-EVICT, HELP).
#include <turret/kv/hello.hpp>
#include <turret/kv/command_table.hpp>
#include <services/kv/commands/arguments.hpp>
#include <services/kv/dispatch.hpp>
#include <services/kv/store.hpp>

#include <charconv>
#include <climits>
#include <utility>
#include <string>
#include <vector>

namespace turret::kv {

namespace {


void ping_cmd(command_ctx& c) {
  if (c.args.size() > 2) {
    reply_error(c.st, c.out, "ERR wrong number of arguments for 'ping' command");
    return;
  }
  if (c.sess.subscriptions() > 0 && c.sess.resp == 2) {
    c.out.array(2);
    c.out.bulk("pong");
    c.out.bulk(c.args.size() == 1 ? std::string_view() : c.args[1]);
    return;
  }
  if (c.args.size() == 1) c.out.simple("PONG");
  else c.out.bulk(c.args[1]);
}

void echo_cmd(command_ctx& c) { c.out.bulk(c.args[1]); }

void quit_cmd(command_ctx& c) {
  c.out.ok();
  c.sess.close_after_reply = true;
}

void select_cmd(command_ctx& c) {
  int id;
  if (!int_arg(c, c.args[1], id)) return;
  if (id < 0 || id >= c.st.databases()) {
    reply_error(c.st, c.out, "ERR DB index is out of range");
    return;
  }
  c.sess.db = id;
  c.out.ok();
}

void swapdb_cmd(command_ctx& c) {
  int a, b;
  if (!int_arg(c, c.args[1], a, "ERR invalid first DB index")) return;
  if (!int_arg(c, c.args[2], b, "ERR invalid second DB index")) return;
  if (a < 0 || a >= c.st.databases() || b < 0 || b >= c.st.databases()) {
    reply_error(c.st, c.out, "ERR DB index is out of range");
    return;
  }
  if (a != b) {
    c.st.dbs_swapped(a, b);
    c.st.db(a).swap(c.st.db(b));
    c.st.add_dirty(1);
  }
  c.out.ok();
}

// Redis's ACLAuthenticateUser for the single "default" user. Returns true on success.
bool authenticate(command_ctx& c, std::string_view user, std::string_view pass) {
  const std::string& rp = c.st.requirepass();
  if (user == "default" && (rp.empty() || pass == rp)) {
    c.sess.authenticated = true;
    c.sess.user = "default";
    return true;
  }
  return false;
}

void auth_cmd(command_ctx& c) {
  if (c.args.size() > 3) {
    reply_error(c.st, c.out, err_syntax);
    return;
  }
  if (c.args.size() == 2) {
    if (c.st.requirepass().empty()) {
      reply_error(c.st, c.out,
                  "ERR AUTH <password> called without any password configured for the default user. Are you sure "
                  "your configuration is correct?");
      return;
    }
    if (authenticate(c, "default", c.args[1])) c.out.ok();
    else reply_error(c.st, c.out, "WRONGPASS invalid username-password pair or user is disabled.");
    return;
  }
  if (authenticate(c, c.args[1], c.args[2])) c.out.ok();
  else reply_error(c.st, c.out, "WRONGPASS invalid username-password pair or user is disabled.");
}

bool valid_client_name(std::string_view n) {
  for (char ch : n)
    if (ch < '!' || ch > '~') return false;
  return true;
}

bool set_name_or_reply(command_ctx& c, std::string_view name) {
  if (!valid_client_name(name)) {
    reply_error(c.st, c.out, "ERR Client names cannot contain spaces, newlines or special characters.");
    return false;
  }
  c.sess.name.assign(name);
  return true;
}

void hello_cmd(command_ctx& c) {
  // An auth layer in front accepted this HELLO's AUTH option (kv::auth_reply): consumed whatever HELLO answers.
  const bool checked = std::exchange(c.sess.auth_checked_by_layer, false);
  long long ver = 0;
  std::size_t next = 1;
  if (c.args.size() >= 2) {
    if (!ll_arg(c, c.args[next++], ver, "ERR Protocol version is not an integer or out of range")) return;
    if (ver < 2 || ver > 3) {
      reply_error(c.st, c.out, "NOPROTO unsupported protocol version");
      return;
    }
  }
  const std::string_view *user = nullptr, *pass = nullptr, *name = nullptr;
  for (std::size_t j = next; j < c.args.size(); ++j) {
    std::size_t more = c.args.size() - 1 - j;
    if (iequals(c.args[j], "AUTH") && more >= 2) {
      user = &c.args[j + 1];
      pass = &c.args[j + 2];
      j += 2;
    } else if (iequals(c.args[j], "SETNAME") && more) {
      name = &c.args[j + 1];
      j++;
    } else {
      std::string opt(c.args[j].substr(0, std::min(c.args[j].find('\0'), c.args[j].size())));
      reply_error(c.st, c.out, "ERR Syntax error in HELLO option '" + opt + "'");
      return;
    }
  }
  if (user && pass && !checked && !authenticate(c, *user, *pass)) {
    reply_error(c.st, c.out, "WRONGPASS invalid username-password pair or user is disabled.");
    return;
  }
  if (c.st.auth_required(c.sess)) {
    reply_error(c.st, c.out,
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO "
                "AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol "
                "version at the same time");
    return;
  }
  if (name && !set_name_or_reply(c, *name)) return;
  if (ver) c.sess.resp = static_cast<int>(ver);
  // The reply is encoded in the new protocol: the front end's builder follows sess.resp.
  hello_reply(c.out, c.sess);
}

void reset_cmd(command_ctx& c) {
  session& s = c.sess;
  s.queued.clear();
  s.in_multi = false;
  s.multi_error = false;
  c.st.unwatch_all(s);
  s.db = 0;
  s.resp = 2;
  s.name.clear();
  s.replies = reply_mode::on;
  s.reply_skip_pending = false;
  while (!s.channels.empty()) c.st.unsubscribe(s, *s.channels.begin());
  while (!s.patterns.empty()) c.st.punsubscribe(s, *s.patterns.begin());
  s.user = "default";
  s.authenticated = c.st.requirepass().empty();
  c.out.simple("RESET");
}

// --- CLIENT -------------------------------------------------------------------------------------------------------------

std::string client_flags(const session& s) {
  std::string f;
  if (s.subscriptions() > 0) f += 'P';
  if (s.in_multi) f += 'x';
  if (s.watch_dirty) f += 'd';
  if (s.close_after_reply) f += 'c';
  if (s.no_evict) f += 'e';
  if (f.empty()) f += 'N';
  return f;
}

void append_client_info(std::string& o, const session& s, ms_t now) {
  session_host::buffers b;
  int fd = -1;
  if (s.host) {
    b = s.host->buffer_info();
    fd = s.host->fd();
  }
  auto age = (now / 1000) - (s.created_ms / 1000);
  auto idle = (now / 1000) - (s.last_interaction_ms / 1000);
  std::size_t multi_mem = 0;
  for (auto& q : s.queued)
    for (auto& a : q) multi_mem += a.size();
  o += "id=" + std::to_string(s.id);
  o += " addr=" + s.addr;
  o += " laddr=" + s.laddr;
  o += " fd=" + std::to_string(fd);
  o += " name=" + s.name;
  o += " age=" + std::to_string(age < 0 ? 0 : age);
  o += " idle=" + std::to_string(idle < 0 ? 0 : idle);
  o += " flags=" + client_flags(s);
  o += " db=" + std::to_string(s.db);
  o += " sub=" + std::to_string(s.channels.size());
  o += " psub=" + std::to_string(s.patterns.size());
  o += " ssub=0";
  o += " multi=" + std::to_string(s.in_multi ? static_cast<long long>(s.queued.size()) : -1LL);
  o += " qbuf=" + std::to_string(b.qbuf);
  o += " qbuf-free=" + std::to_string(b.qbuf_free);
  o += " argv-mem=0";
  o += " multi-mem=" + std::to_string(multi_mem);
  o += " rbs=" + std::to_string(b.qbuf + b.qbuf_free);
  o += " rbp=" + std::to_string(b.qbuf);
  o += " obl=" + std::to_string(b.obl);
  o += " oll=" + std::to_string(b.oll);
  o += " omem=" + std::to_string(b.omem);
  o += " tot-mem=" + std::to_string(b.tot_mem);
  o += " events=r";
  o += " cmd=";
  o += s.last_command;
  o += " user=" + s.user;
  o += " redir=-1";
  o += " resp=" + std::to_string(s.resp);
  o += '\n';
}

// Client types of CLIENT LIST TYPE / CLIENT KILL TYPE: 0 normal, 1 replica, 2 pubsub, 3 master.
int client_type_by_name(std::string_view n) {
  if (iequals(n, "normal")) return 0;
  if (iequals(n, "slave") || iequals(n, "replica")) return 1;
  if (iequals(n, "pubsub")) return 2;
  if (iequals(n, "master")) return 3;
  return -1;
}
int client_type(const session& s) { return s.subscriptions() > 0 ? 2 : 0; }

std::string cstr(std::string_view s) { return std::string(s.substr(0, std::min(s.find('\0'), s.size()))); }

void client_id(command_ctx& c) { c.out.integer(static_cast<long long>(c.sess.id)); }

void client_setname(command_ctx& c) {
  if (set_name_or_reply(c, c.args[2])) c.out.ok();
}

void client_getname(command_ctx& c) {
  if (c.sess.name.empty()) c.out.null_bulk();
  else c.out.bulk(c.sess.name);
}

void client_list(command_ctx& c) {
  int type = -1;
  std::string o;
  bool by_id = false;
  if (c.args.size() == 4 && iequals(c.args[2], "type")) {
    type = client_type_by_name(c.args[3]);
    if (type == -1) {
      reply_error(c.st, c.out, "ERR Unknown client type '" + cstr(c.args[3]) + "'");
      return;
    }
  } else if (c.args.size() > 3 && iequals(c.args[2], "id")) {
    by_id = true;
    for (std::size_t j = 3; j < c.args.size(); ++j) {
      long long id;
      if (!ll_arg(c, c.args[j], id, "ERR Invalid client ID")) return;
      auto it = c.st.clients().find(static_cast<std::uint64_t>(id));
      if (it != c.st.clients().end()) append_client_info(o, *it->second, c.now);
      else if (static_cast<std::uint64_t>(id) == c.sess.id) append_client_info(o, c.sess, c.now);
    }
  } else if (c.args.size() != 2) {
    reply_error(c.st, c.out, err_syntax);
    return;
  }
  if (!by_id) {
    bool self_listed = false;
    for (auto& [id, s] : c.st.clients()) {
      if (s == &c.sess) self_listed = true;
      if (type != -1 && client_type(*s) != type) continue;
      append_client_info(o, *s, c.now);
    }
    if (!self_listed && (type == -1 || client_type(c.sess) == type)) append_client_info(o, c.sess, c.now);
  }
  c.out.verbatim(o, "txt");
}

void client_info(command_ctx& c) {
  std::string o;
  append_client_info(o, c.sess, c.now);
  c.out.verbatim(o, "txt");
}

void client_kill(command_ctx& c) {
  std::string_view addr, laddr;
  bool has_addr = false, has_laddr = false, has_user = false;
  std::string_view user;
  int type = -1;
  std::uint64_t id = 0;
  bool skipme = true;
  const std::size_t argc = c.args.size();
  if (argc == 3) {
    addr = c.args[2];
    has_addr = true;
    skipme = false;
  } else if (argc > 3) {
    std::size_t i = 2;
    while (i < argc) {
      bool moreargs = argc > i + 1;
      auto opt = c.args[i];
      if (iequals(opt, "id") && moreargs) {
        long long tmp;
        if (!range_arg(c, c.args[i + 1], 1, LONG_MAX, tmp, "ERR client-id should be greater than 0")) return;
        id = static_cast<std::uint64_t>(tmp);
      } else if (iequals(opt, "type") && moreargs) {
        type = client_type_by_name(c.args[i + 1]);
        if (type == -1) {
          reply_error(c.st, c.out, "ERR Unknown client type '" + cstr(c.args[i + 1]) + "'");
          return;
        }
      } else if (iequals(opt, "addr") && moreargs) {
        addr = c.args[i + 1];
        has_addr = true;
      } else if (iequals(opt, "laddr") && moreargs) {
        laddr = c.args[i + 1];
        has_laddr = true;
      } else if (iequals(opt, "user") && moreargs) {
        user = c.args[i + 1];
        if (user != "default") {
          reply_error(c.st, c.out, "ERR No such user '" + cstr(user) + "'");
          return;
        }
        has_user = true;
      } else if (iequals(opt, "skipme") && moreargs) {
        if (iequals(c.args[i + 1], "yes")) skipme = true;
        else if (iequals(c.args[i + 1], "no")) skipme = false;
        else {
          reply_error(c.st, c.out, err_syntax);
          return;
        }
      } else {
        reply_error(c.st, c.out, err_syntax);
        return;
      }
      i += 2;
    }
  } else {
    reply_error(c.st, c.out, err_syntax);
    return;
  }
  std::vector<session*> victims;
  for (auto& [cid, s] : c.st.clients()) {
    if (has_addr && s->addr != addr) continue;
    if (has_laddr && s->laddr != laddr) continue;
    if (type != -1 && client_type(*s) != type) continue;
    if (id != 0 && s->id != id) continue;
    if (has_user && s->user != user) continue;
    if (s == &c.sess && skipme) continue;
    victims.push_back(s);
  }
  long long killed = 0;
  for (session* s : victims) {
    ++killed;
    if (s == &c.sess) {
      s->close_after_reply = true;
      continue;
    }
    c.st.detach_locked(*s);
    s->close_after_reply = true;
    if (s->host) s->host->kill();
  }
  if (argc == 3) {
    if (killed == 0) reply_error(c.st, c.out, "ERR No such client");
    else c.out.ok();
  } else {
    c.out.integer(killed);
  }
}

void client_reply(command_ctx& c) {
  auto m = c.args[2];
  if (iequals(m, "on")) {
    c.sess.replies = reply_mode::on;
    c.sess.reply_skip_pending = false;
    c.out.ok();
  } else if (iequals(m, "off")) {
    c.sess.replies = reply_mode::off;
  } else if (iequals(m, "skip")) {
    if (c.sess.replies != reply_mode::off) c.sess.replies = reply_mode::skip;
  } else {
    reply_error(c.st, c.out, err_syntax);
  }
}

// CLIENT NO-EVICT on|off. RESET keeps the flag, as in Redis 7.0.
void client_no_evict(command_ctx& c) {
  if (iequals(c.args[2], "on")) {
    c.sess.no_evict = true;
  } else if (iequals(c.args[2], "off")) {
    c.sess.no_evict = false;
  } else {
    reply_error(c.st, c.out, err_syntax);
    return;
  }
  c.out.ok();
}

void client_help(command_ctx& c) { c.out.raw(c.st.commands()->find("client")->help(c.out.protocol())); }

}  // namespace


void register_connection_commands(command_table& t) {
  t.add("ping", ping_cmd);
  t.add("echo", echo_cmd);
  t.add("quit", quit_cmd);
  t.add("select", select_cmd);
  t.add("swapdb", swapdb_cmd);
  t.add("auth", auth_cmd);
  t.add("hello", hello_cmd);
  t.add("reset", reset_cmd);
  t.add("client|id", client_id);
  t.add("client|setname", client_setname);
  t.add("client|getname", client_getname);
  t.add("client|list", client_list);
  t.add("client|info", client_info);
  t.add("client|kill", client_kill);
  t.add("client|reply", client_reply);
  t.add("client|no-evict", client_no_evict);
  t.add("client|help", client_help);
}

}  // namespace turret::kv
