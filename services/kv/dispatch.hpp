#pragma once
// Dispatcher internals shared by kv_service (requests) and the transaction family (EXEC runs the queue).
// Everything here runs with the store lock held.
#include <turret/kv/command_table.hpp>
#include <services/kv/numbers.hpp>
#include <services/kv/store.hpp>

#include <string>
#include <string_view>

namespace turret::kv {

/// Redis's processCommand after the lookup: unknown command/subcommand, arity, NOAUTH, no-multi, RESP2 pub/sub
/// restriction, MULTI queueing, then the call. `out` receives the reply. `resolved`, when not null, is the entry
/// command_table::lookup(args) returns in the store's table (a request's resolved_command): the lookup is skipped.
void process_command(store& st, session& s, std::span<const std::string_view> args, reply_builder& out,
                     command_time now = {}, const command_def* resolved = nullptr);

/// Redis's call(): run the handler and account for it (commandstats, client bookkeeping).
void call_command(const command_def& cmd, command_ctx& ctx);

// unknown_command_error: <turret/kv/command_info.hpp>.

/// Writes an error reply as Redis's addReplyErrorSds does (CR/LF in the text become spaces), counts it.
void reply_error(store& st, reply_builder& out, std::string_view msg);


}  // namespace turret::kv
