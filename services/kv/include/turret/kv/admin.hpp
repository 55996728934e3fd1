#pragma once
// Administrative operations of a server that are not Redis commands (today: reloading the configuration), sent
// through a listener's pipeline as kv::requests like any command, so that every layer on that pipeline applies to
// them: their metadata says @admin, so request_rate_class() is traffic_class::admin (an auth layer's admin class, a
// rate limit per command class, metrics and access logs see them as such).
//
// ```
//   // the front end (HTTP POST /admin/reload):
//   const std::string_view args[] = {kv::reload_command_name};
//   const kv::resolved_command cmd = kv::resolve_admin(kv::reload_command(), args);
//   kv::request req{ctx, sess, args, out, &cmd};          // then dispatch() through the listener's pipeline
//   // the server: the inner end of every pipeline it serves
//   kv::pipeline_service inner = kv::admin_service(backend->service(), handler);
// ```
//
// # Contract
// - Requests are recognised by their metadata object (resolved_command::info == &reload_command()), never by their
//   text: a client of another protocol sending "TURRET.RELOAD" gets the core's "unknown command" (the command table
//   does not have it: COMMAND, COMMAND COUNT stay Redis's).
// - A pipeline without an admin_service at its end (a front end wired straight to the core, in a test) answers the
//   same "ERR unknown command": the front end reports the operation as not available.
// - The reply of reload: a bulk string holding the JSON summary; an error reply "INVALIDCONFIG <file:line:col: key:
//   message>" when the new configuration is invalid (nothing changed); "RELOADFAILED <message>" when it was valid
//   but could not be applied, or no reload is possible (no configuration file, shutting down).
// - The handler may suspend for as long as the operation takes (the request keeps its pipeline snapshot: a reload
//   that swaps that pipeline lets this request finish on it, like any other).
#include <turret/kv/command_info.hpp>
#include <turret/kv/request.hpp>
#include <turret/any_service.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <utility>

namespace turret::kv {

/// args[0] of a reload request (for logs and the per-command metrics' "unknown" label: it is not in the table).
inline constexpr std::string_view reload_command_name = "TURRET.RELOAD";
/// Error codes of reload's error replies.
inline constexpr std::string_view invalid_config_code = "INVALIDCONFIG";
inline constexpr std::string_view reload_failed_code = "RELOADFAILED";

/// The metadata of the reload operation: @admin @dangerous @slow, flags admin noscript, no keys, arity 1.
inline const command_info& reload_command() noexcept {
  static const command_info info = [] {
    command_info c;
    c.name = "turret|reload";
    c.arity = 1;
    c.flags = cmd_admin | cmd_noscript | cmd_no_multi;
    c.acl = acl_admin | acl_dangerous | acl_slow;
    c.keys_from = key_source::none;
    return c;
  }();
  return info;
}

/// A resolved_command for an administrative operation `info` over `args` (no keys, no table entry).
inline resolved_command resolve_admin(const command_info& info, std::span<const std::string_view> args) noexcept {
  resolved_command c;
  c.info = &info;
  c.args = args;
  return c;
}

/// Whether `req` is the administrative operation `info`.
inline bool is_admin_request(const request& req, const command_info& info) noexcept {
  return req.cmd && req.cmd->info == &info;
}

/// Answers administrative requests (writes the reply into req.out and says whether it is an error, as the core does).
using admin_handler = std::function<awaitable<result<response>>(request&)>;

/// The inner end of a server's pipelines: administrative requests go to `handler`, everything else to `inner`
/// (the backend's service) unchanged. The cost for the others is one pointer compare; the synchronous fast path
/// stays available (try_call_now forwards; an administrative request always takes the suspending path).
class admin_service {
 public:
  using response_type = response;
  using permit_type = any_permit;

  admin_service(pipeline_service inner, std::shared_ptr<const admin_handler> handler)
      : inner_(std::move(inner)), handler_(std::move(handler)) {}

  bool supports_immediate() const noexcept { return inner_.supports_immediate(); }

  awaitable<result<permit_type>> ready(request_context& ctx) { return inner_.ready(ctx); }

  awaitable<result<response>> call(permit_type permit, request& req) {
    if (is_admin_request(req, reload_command())) [[unlikely]] return (*handler_)(req);
    return inner_.call(std::move(permit), req);
  }

  std::optional<result<response>> try_call_now(request& req) {
    if (is_admin_request(req, reload_command())) [[unlikely]] return std::nullopt;
    return inner_.try_call_now(req);
  }

  bool supports_start() const noexcept { return inner_.supports_start(); }
  bool try_start(request& req, completion<response>& done) {
    if (is_admin_request(req, reload_command())) [[unlikely]] return false;
    return inner_.try_start(req, done);
  }

 private:
  pipeline_service inner_;
  std::shared_ptr<const admin_handler> handler_;
};

}  // namespace turret::kv
