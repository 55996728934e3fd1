// transaction_step: MULTI/EXEC/DISCARD through the upstream modes (upstream_common.hpp).
#include "upstream_common.hpp"

#include <turret/kv/command_table.hpp>

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
                                     resp::upstream_client client) {
  std::vector<std::vector<std::string_view>> before;
  before.reserve(queued.size() + 1);
  before.push_back({"MULTI"});
  for (const auto& cmd : queued) before.emplace_back(cmd.begin(), cmd.end());
  static constexpr std::string_view exec_args[] = {"EXEC"};
  auto p = client.try_ready(req.ctx);
  if (!*p) co_return p->error();
  resp::upstream_request ur{req.ctx, exec_args, before};
  ur.resp3 = req.sess.resp == 3;  // a RESP3 client gets the server's RESP3 bytes
  auto r = co_await client.call(std::move(**p), ur);
  if (!r) co_return r.error();
  kv::response out;
  if (r->v.is_error()) out.set_error(r->v.str);
  req.out.raw(r->raw);
  co_return out;
}

}  // namespace

std::optional<awaitable<result<kv::response>>> transaction_step(kv::request& req, std::string_view family,
                                                                const kv::resolved_command& cmd,
                                                                const kv::command_table& table,
                                                                upstream_options::mode_kind mode,
                                                                const transaction_target& target) {
  kv::session& s = req.sess;
  if (!s.in_multi) {
    if (!cmd.info) return std::nullopt;
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
    req.out.ok();
    return answered(kv::response{});
  }
  if (family == "quit") return std::nullopt;  // runs at once, as in Redis
  if (family == "exec") {
    if (s.multi_error) {
      reset(s);
      return answered(error_reply(req, "EXECABORT Transaction discarded because of previous errors."));
    }
    std::vector<std::vector<std::string>> queued = std::move(s.queued);
    reset(s);
    if (queued.empty()) {
      req.out.array(0);
      return answered(kv::response{});
    }
    std::vector<std::string_view> keys;
    for (const auto& c : queued) {
      std::vector<std::string_view> args(c.begin(), c.end());
      const kv::resolved_command rc = kv::resolve(table, args);
      for (const auto& ref : rc.keys.refs) keys.push_back(c[ref.index]);
    }
    auto t = target(keys);
    if (auto* text = std::get_if<std::string>(&t)) return answered(error_reply(req, *text));
    if (auto* ec = std::get_if<error_code>(&t)) return answered(*ec);
    return exec(req, std::move(queued), std::get<resp::upstream_client>(std::move(t)));
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
