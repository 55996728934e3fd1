#pragma once
// Command table. Every command is data, following Redis's own table (src/commands/*.json): name, arity, flags,
// key positions, ACL categories. The metadata is generated from redis-server 7.0 itself
// (scripts/gen_commands.py -> services/kv/generated/*.inc), so arity errors, COMMAND INFO and
// COMMAND DOCS match Redis byte for byte. Command families only bind handlers to names.
#include <services/kv/keyspace.hpp>
#include <turret/kv/command_table.hpp>
#include <turret/kv/reply.hpp>
#include <turret/kv/session.hpp>

#include <cstdint>
#include <span>
#include <string_view>

namespace turret::kv {

class store;

/// What a handler gets. The store lock is held for the whole call; handlers never suspend.
struct command_ctx {
  store& st;
  session& sess;
  std::span<const std::string_view> args;  ///< args[0] is the command name as sent (subcommand in args[1])
  reply_builder& out;
  command_time now;                        ///< unix ms, read on first use and fixed for the command (Redis's mstime)

  keyspace& db() const;                    ///< the session's selected database
};


// Registration functions of the command families (one per file under services/kv/commands/).
void register_connection_commands(command_table&);
void register_server_commands(command_table&);
void register_key_commands(command_table&);
void register_string_commands(command_table&);
void register_bitmap_commands(command_table&);
void register_pubsub_commands(command_table&);
void register_transaction_commands(command_table&);

}  // namespace turret::kv
