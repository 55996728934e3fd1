#pragma once
// kv_service: the key-value core as a turret Service. Every front end builds a kv::request and sends it through its
// listener's pipeline into this service.
#include <services/kv/command.hpp>
#include <turret/kv/request.hpp>
#include <turret/service.hpp>

#include <memory>
#include <optional>
#include <span>
#include <string_view>

namespace turret::kv {

class store;
class command_table;


class kv_service {
 public:
  using response_type = response;
  using permit_type = unit_permit;

  kv_service(std::shared_ptr<store> st, std::shared_ptr<const command_table> table);

  awaitable<result<unit_permit>> ready(request_context&) { co_return unit_permit{}; }
  /// Always ready (see turret::probing_service): load_shed right above the core never sheds.
  std::optional<result<unit_permit>> try_ready(request_context&) { return result<unit_permit>(unit_permit{}); }
  awaitable<result<response>> call(unit_permit, request& req) { co_return execute(req); }

  /// Immediate fast path (see turret::immediate_service): the core never suspends, so a pipeline of layers that
  /// also complete synchronously skips coroutine frames entirely.
  std::optional<result<response>> try_call_now(request& req) { return result<response>(execute(req)); }

  /// Synchronous execution (the whole of call): dispatch, arity/auth/MULTI/pub-sub checks, run under the store lock.
  /// Whatever a command throws becomes an error reply to that command, with the keyspace left as it was before it
  /// (see undo_log) and no partial reply (reply_builder::mark/rollback). Only when even that error reply cannot be
  /// written (out of memory in the front end's buffer) does std::bad_alloc reach the caller.
  response execute(request& req);

  store& get_store() noexcept { return *store_; }

 private:
  void execute_unchecked(request& req, response& resp);

  std::shared_ptr<store> store_;
  std::shared_ptr<const command_table> table_;
};

}  // namespace turret::kv
