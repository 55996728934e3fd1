#pragma once
// The key-value request and response: what every front end sends through its pipeline into the backend, whatever
// the protocol (RESP, REST, gRPC) and whatever the backend (the in-process store, upstream Redis servers).
#include <turret/context.hpp>
#include <turret/kv/command_info.hpp>
#include <turret/kv/reply.hpp>
#include <turret/kv/session.hpp>
#include <turret/kv/value_reply_builder.hpp>

#include <memory>
#include <optional>
#include <span>
#include <string_view>

namespace turret::kv {

/// One command. Non-owning: everything it refers to outlives the call (the front end's connection frame).
struct request {
  request(request_context& c, session& s, std::span<const std::string_view> a, reply_builder& o,
          const resolved_command* rc = nullptr) noexcept
      : ctx(c), sess(s), args(a), out(o), cmd(rc) {}

  request_context& ctx;
  session& sess;
  std::span<const std::string_view> args;  ///< command name + arguments, binary safe
  reply_builder& out;                      ///< the reply sink (see dispatch.hpp: rolled back on a pipeline error)
  /// The command resolved once by the front end (resolve() against the backend's command table, over `args`), for
  /// the layers on the path and for the core, which then skips its own lookup. nullptr: not resolved (the layers see
  /// an unknown command, the core looks the command up itself).
  const resolved_command* cmd;

  request_context& context() noexcept { return ctx; }
};

// Customization points for generic layers (see <turret/request_traits.hpp>); an unresolved request has no routing
// key, is non_idempotent and counts as write.
inline std::optional<std::string_view> routing_key(const request& r) noexcept {
  return r.cmd ? routing_key(*r.cmd) : std::nullopt;
}
inline retry_safety retry_class(const request& r) noexcept {
  return r.cmd ? retry_class(*r.cmd) : retry_safety::non_idempotent;
}
inline traffic_class rate_class(const request& r) noexcept {
  return r.cmd ? rate_class(*r.cmd) : traffic_class::write;
}
/// Redis's rule: before AUTH a client may send only the commands flagged no_auth (AUTH, HELLO, QUIT, ...).
inline bool allowed_before_auth(const request& r) noexcept {
  return r.cmd && r.cmd->info && (r.cmd->info->flags & cmd_no_auth) != 0;
}

/// The command's table name ("get", "client|list"); args[0] as sent when the command is unknown (may be binary).
inline std::string_view request_name(const request& r) noexcept {
  if (r.cmd && r.cmd->info) return r.cmd->info->name;
  return r.args.empty() ? std::string_view() : r.args[0];
}

// Attempts (see <turret/request_traits.hpp>): the reply sink is req.out, marked before an attempt and rolled back
// when the attempt's reply is discarded.
inline reply_builder::checkpoint attempt_mark(request& r) noexcept { return r.out.mark(); }
inline void discard_attempt(request& r, const reply_builder::checkpoint& m) noexcept { r.out.rollback(m); }

/// A request forked for a parallel attempt (a hedge): the same command, session and arguments, with its own
/// request_context (protocol, identity, deadline, peer and request id copied) and its own reply sink, a
/// value_reply_builder of the original sink's protocol. commit_attempt() replays its replies into the original sink.
/// The sample (request_context::sample) is not copied: the fork draws its own, so that sampling layers inside a
/// hedge (fault injection) decide for it anew.
/// The session is shared: a forked attempt must be idempotent (it reads the session, never changes it).
struct attempt_fork {
  explicit attempt_fork(kv::request& original)
      : out(original.out.protocol()), req(ctx, original.sess, original.args, out, original.cmd) {
    request_context& from = original.ctx;
    ctx.protocol = from.protocol;
    ctx.identity = from.identity;
    ctx.deadline = from.deadline;
    ctx.set_peer(from.peer());
    if (from.has_request_id()) ctx.set_request_id(from.request_id());
  }
  attempt_fork(const attempt_fork&) = delete;
  attempt_fork& operator=(const attempt_fork&) = delete;

  kv::request& request() noexcept { return req; }

  request_context ctx;
  value_reply_builder out;
  kv::request req;
};
inline std::unique_ptr<attempt_fork> fork_attempt(request& r) { return std::make_unique<attempt_fork>(r); }
inline void commit_attempt(request& r, attempt_fork& f) {
  for (const reply_value& v : f.out.replies()) replay(v, r.out);
}

/// What the backend answered, as a value a layer can classify: the reply itself is in request.out (written there
/// without a copy); the response says whether it is an error reply and which one, by its Redis code ("ERR",
/// "WRONGTYPE", "MOVED", "TRYAGAIN", "LOADING", "BUSY", "OOM", ...). A Redis error reply is a successful call of the
/// pipeline (result<response> holds a value); result errors are the pipeline's own (timeouts, limits, faults).
/// Inside EXEC the queued commands' errors are elements of EXEC's array: EXEC's response is not an error.
class response {
 public:
  bool is_error() const noexcept { return code_len_ != 0; }
  /// The error's code (the first word of its text), empty when the reply is not an error.
  std::string_view error_code() const noexcept { return {code_, code_len_}; }
  /// Records an error reply by its full text ("ERR wrong number ..."); the first error of a request wins.
  void set_error(std::string_view text) noexcept {
    if (code_len_ != 0) return;
    std::size_t n = 0;
    while (n < text.size() && n < sizeof code_ && text[n] != ' ') ++n;
    if (n == 0) {
      text = "ERR";
      n = 3;
    }
    for (std::size_t i = 0; i < n; ++i) code_[i] = text[i];
    code_len_ = static_cast<unsigned char>(n);
  }

 private:
  char code_[15] = {};
  unsigned char code_len_ = 0;
};

// The auth layer's binding (see <turret/request_traits.hpp> and middleware/auth):
/// AUTH (`AUTH password`, `AUTH user password`: answered by the layer) and HELLO with its AUTH option (continues to
/// the backend, which then skips the AUTH option's check: session::auth_checked_by_layer). Any other request, or
/// AUTH with another number of arguments (the backend answers its syntax error): nullopt.
std::optional<auth_credentials> auth_command(const request& r) noexcept;
/// Redis's replies on RESP: accepted AUTH +OK; WRONGPASS, NOAUTH and NOPERM with redis-server 7.0's texts (NOPERM
/// names the command as ACL does: "config|get"). An accepted AUTH or HELLO also marks the session authenticated
/// (the layer is then the authority: the store's requirepass is not asked). On HTTP and gRPC rejections are left to
/// the layer's error (401/403, UNAUTHENTICATED/PERMISSION_DENIED): nullopt.
std::optional<response> auth_reply(request& r, auth_verdict v, std::string_view identity);
/// Customization point (see <turret/request_traits.hpp>): the error code of an error reply, else nullopt.
inline std::optional<std::string_view> reply_error_code(const response& r) noexcept {
  return r.is_error() ? std::optional<std::string_view>(r.error_code()) : std::nullopt;
}

}  // namespace turret::kv
