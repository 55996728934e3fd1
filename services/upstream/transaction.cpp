// transaction_step: MULTI/EXEC/DISCARD through the upstream modes (upstream_common.hpp).
#include "upstream_common.hpp"

#include <turret/kv/command_table.hpp>

#include <boost/asio/this_coro.hpp>

namespace turret::upstream {

namespace {

void reset(kv::session& s) {
  s.in_multi = false;
  s.multi_error = false;
  s.queued.clear();
}

/// A queue-time error: the reply now, EXECABORT at EXEC.
kv::response refuse(kv::request& req, std::string_view text) {
  req.sess.multi_error = true;
  return error_reply(req, text);
}

awaitable<result<kv::response>> exec(kv::request& req, std::vector<std::vector<std::string>> queued,
                                     resp::upstream_client client, bool resp3) {
  std::vector<std::vector<std::string_view>> before;
  before.reserve(queued.size() + 1);
  before.push_back({"MULTI"});
  for (const auto& cmd : queued) before.emplace_back(cmd.begin(), cmd.end());
  static constexpr std::string_view exec_args[] = {"EXEC"};
  auto p = client.try_ready(req.ctx);
  if (!*p) co_return p->error();
  resp::upstream_request ur{req.ctx, exec_args, before};
  ur.resp3 = resp3;  // a RESP3 client gets the server's RESP3 bytes
  auto r = co_await client.call(std::move(**p), ur);
  if (!r) co_return r.error();
  kv::response out;
  if (r->v.is_error()) out.set_error(r->v.str);
  req.out.raw(r->raw);
  co_return out;
}

/// EXEC on the session's WATCH connection: the queue must live on its server; a connection lost since the WATCH
/// aborts (the server forgot the WATCH with it). The connection closes after, whatever happens.
awaitable<result<kv::response>> exec_watched(kv::request& req, std::vector<std::vector<std::string>> queued,
                                             watch_table::entry w, watch_table& watches,
                                             std::variant<resp::upstream_client, std::string, error_code> t) {
  struct release_at_end {
    watch_table& w;
    const kv::session& s;
    ~release_at_end() { w.release(s); }
  } release{watches, req.sess};
  if (auto* text = std::get_if<std::string>(&t)) co_return error_reply(req, *text);
  if (auto* c = std::get_if<resp::upstream_client>(&t); c && c->name() != w.client.name())
    co_return error_reply(req, "CROSSSLOT Keys in request don't hash to the same slot");
  if (w.client.connects() != w.connects || !w.client.connected()) {
    req.out.null_array();  // as an EXEC whose watched keys changed: nothing ran, the client may try again
    co_return kv::response{};
  }
  co_return co_await exec(req, std::move(queued), w.client, w.resp3);
}

/// WATCH outside MULTI: on the session's own connection to `target`'s server, opened by its first WATCH.
awaitable<result<kv::response>> watch(kv::request& req, watch_table& watches,
                                      std::variant<resp::upstream_client, std::string, error_code> t) {
  if (auto* text = std::get_if<std::string>(&t)) co_return error_reply(req, *text);
  if (auto* ec = std::get_if<error_code>(&t)) co_return *ec;
  const resp::upstream_client& server = std::get<resp::upstream_client>(t);
  std::optional<watch_table::entry> existing = watches.find(req.sess);
  if (existing && existing->client.name() != server.name())
    co_return error_reply(req, "CROSSSLOT Keys in request don't hash to the same slot");
  // (No co_await inside a conditional expression: GCC 12 miscompiles that.)
  const boost::asio::any_io_executor ex = co_await boost::asio::this_coro::executor;
  watch_table::entry w = existing ? *existing : watch_table::entry{server.with_own_connection(ex), 0, req.sess.resp == 3};
  resp::upstream_request ur{req.ctx, req.args};
  ur.resp3 = w.resp3;
  auto r = co_await ready_and_call(w.client, ur);
  if (!r || r->v.is_error()) {
    if (!existing) w.client.stop();
  } else if (!existing) {
    w.connects = w.client.connects();
    watches.set(req.sess, w);
  }
  if (!r) co_return r.error();
  kv::response out;
  if (r->v.is_error()) out.set_error(r->v.str);
  req.out.raw(r->raw);
  co_return out;
}

/// Every key of the queued commands.
std::vector<std::string_view> keys_of(const std::vector<std::vector<std::string>>& queued,
                                      const kv::command_table& table) {
  std::vector<std::string_view> keys;
  for (const auto& c : queued) {
    std::vector<std::string_view> args(c.begin(), c.end());
    const kv::resolved_command rc = kv::resolve(table, args);
    for (const auto& ref : rc.keys.refs) keys.push_back(c[ref.index]);
  }
  return keys;
}

}  // namespace

std::optional<watch_table::entry> watch_table::find(const kv::session& s) const {
  std::lock_guard lock(mu_);
  for (const auto& [sess, e] : entries_) {
    if (sess == &s) return e;
  }
  return std::nullopt;
}

void watch_table::set(const kv::session& s, entry e) {
  std::lock_guard lock(mu_);
  for (auto& [sess, old] : entries_) {
    if (sess == &s) {
      old = std::move(e);
      return;
    }
  }
  entries_.emplace_back(&s, std::move(e));
}

void watch_table::release(const kv::session& s) noexcept {
  std::optional<resp::upstream_client> gone;
  {
    std::lock_guard lock(mu_);
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
      if (it->first != &s) continue;
      gone.emplace(std::move(it->second.client));
      entries_.erase(it);
      break;
    }
  }
  if (gone) gone->stop();
}

std::optional<awaitable<result<kv::response>>> transaction_step(kv::request& req, std::string_view family,
                                                                const kv::resolved_command& cmd,
                                                                const kv::command_table& table,
                                                                upstream_options::mode_kind mode,
                                                                const transaction_target& target,
                                                                watch_table& watches) {
  kv::session& s = req.sess;
  if (!s.in_multi) {
    if (!cmd.info) return std::nullopt;
    if (family == "watch" || family == "unwatch") {
      if (!kv::arity_ok(*cmd.info, req.args.size())) return answered(error_reply(req, kv::arity_error(*cmd.info)));
      if (family == "unwatch") {
        watches.release(s);
        req.out.ok();
        return answered(kv::response{});
      }
      const std::vector<std::string_view> keys(req.args.begin() + 1, req.args.end());
      return watch(req, watches, target(keys));
    }
    if (family == "exec") return answered(error_reply(req, "ERR EXEC without MULTI"));
    if (family == "discard") return answered(error_reply(req, "ERR DISCARD without MULTI"));
    if (family != "multi") return std::nullopt;
    if (!kv::arity_ok(*cmd.info, req.args.size())) return answered(error_reply(req, kv::arity_error(*cmd.info)));
    reset(s);
    s.in_multi = true;
    req.out.ok();
    return answered(kv::response{});
  }
  // Inside MULTI: Redis's processCommand checks, in its order.
  if (!cmd.info) {
    if (cmd.base && req.args.size() >= 2) return answered(refuse(req, kv::unknown_subcommand_error(req.args[0], req.args[1])));
    return answered(refuse(req, kv::unknown_command_error(req.args)));
  }
  if (!kv::arity_ok(*cmd.info, req.args.size())) return answered(refuse(req, kv::arity_error(*cmd.info)));
  if (family == "multi") return answered(error_reply(req, "ERR MULTI calls can not be nested"));
  if (family == "watch") return answered(error_reply(req, "ERR WATCH inside MULTI is not allowed"));
  if (family == "discard") {
    reset(s);
    watches.release(s);  // DISCARD unwatches
    req.out.ok();
    return answered(kv::response{});
  }
  if (family == "quit") return std::nullopt;  // runs at once, as in Redis
  if (family == "exec") {
    std::optional<watch_table::entry> watched = watches.find(s);
    if (s.multi_error) {
      reset(s);
      watches.release(s);
      return answered(error_reply(req, "EXECABORT Transaction discarded because of previous errors."));
    }
    std::vector<std::vector<std::string>> queued = std::move(s.queued);
    reset(s);
    const std::vector<std::string_view> keys = keys_of(queued, table);
    if (watched) {
      if (keys.empty()) return exec_watched(req, std::move(queued), *watched, watches, watched->client);
      return exec_watched(req, std::move(queued), *watched, watches, target(keys));
    }
    if (queued.empty()) {
      req.out.array(0);
      return answered(kv::response{});
    }
    auto t = target(keys);
    if (auto* text = std::get_if<std::string>(&t)) return answered(error_reply(req, *text));
    if (auto* ec = std::get_if<error_code>(&t)) return answered(*ec);
    return exec(req, std::move(queued), std::get<resp::upstream_client>(std::move(t)), req.sess.resp == 3);
  }
  if (is_subscribe_family(family) || family == "hello") {
    return answered(refuse(req, "ERR " + upper(family) + " inside MULTI is not supported in " +
                                    std::string(to_string(mode)) + " mode"));
  }
  if ((cmd.info->flags & kv::cmd_no_multi) != 0)
    return answered(refuse(req, "ERR Command not allowed inside a transaction"));
  // What this mode answers or refuses itself: PING and ECHO are queued (the server answers them in EXEC's array),
  // SELECT 0 too (the upstream connections are on database 0); the rest is a queue-time error.
  const bool select0 = family == "select" && req.args.size() == 2 && req.args[1] == "0";
  if (family != "ping" && family != "echo" && !select0) {
    if (auto local = answer_locally(family, req, mode)) {
      req.sess.multi_error = true;
      return answered(std::move(*local));
    }
  }
  s.queued.emplace_back(req.args.begin(), req.args.end());
  req.out.simple("QUEUED");
  return answered(kv::response{});
}

}  // namespace turret::upstream
