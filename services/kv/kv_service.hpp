#pragma once
// kv_service: the key-value core as a turret Service. Every front end builds a kv::request and sends it through its
// listener's pipeline into this service.
#include <services/kv/command.hpp>
#include <services/kv/reply.hpp>
#include <services/kv/session.hpp>
#include <turret/kv/command_info.hpp>
#include <turret/service.hpp>

#include <memory>
#include <optional>
#include <span>
#include <string_view>

namespace turret::kv {

class store;
class command_table;

/// One command. Non-owning: everything it refers to outlives the call (the front end's connection frame).
struct request {
  request(request_context& c, session& s, std::span<const std::string_view> a, reply_builder& o,
          const resolved_command* rc = nullptr) noexcept
      : ctx(c), sess(s), args(a), out(o), cmd(rc) {}

  request_context& ctx;
  session& sess;
  std::span<const std::string_view> args;  ///< command name + arguments, binary safe
  reply_builder& out;
  /// The command resolved once by the front end (resolve() against the core's command table, over `args`), for the
  /// layers on the path and for the core, which then skips its own lookup. nullptr: not resolved (the layers see
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

/// Response: the reply has been written to request.out. Errors are reserved for the pipeline (timeouts, limits);
/// a Redis error reply (-ERR ...) is a successful call.
struct response {};

class kv_service {
 public:
  using response_type = response;
  using permit_type = unit_permit;

  kv_service(std::shared_ptr<store> st, std::shared_ptr<const command_table> table);

  awaitable<result<unit_permit>> ready(request_context&) { co_return unit_permit{}; }
  awaitable<result<response>> call(unit_permit, request& req) {
    execute(req);
    co_return response{};
  }

  /// Immediate fast path (see turret::immediate_service): the core never suspends, so a pipeline of layers that
  /// also complete synchronously skips coroutine frames entirely.
  std::optional<result<response>> try_call_now(request& req) {
    execute(req);
    return result<response>(response{});
  }

  /// Synchronous execution (the whole of call): dispatch, arity/auth/MULTI/pub-sub checks, run under the store lock.
  /// Whatever a command throws becomes an error reply to that command, with the keyspace left as it was before it
  /// (see undo_log) and no partial reply (reply_builder::mark/rollback). Only when even that error reply cannot be
  /// written (out of memory in the front end's buffer) does std::bad_alloc reach the caller.
  void execute(request& req);

  store& get_store() noexcept { return *store_; }

 private:
  void execute_unchecked(request& req);

  std::shared_ptr<store> store_;
  std::shared_ptr<const command_table> table_;
};

}  // namespace turret::kv
