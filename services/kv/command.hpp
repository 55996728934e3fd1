#pragma once
// Command table. Every command is data, following Redis's own table (src/commands/*.json): name, arity, flags,
// key positions, ACL categories. The metadata is generated from redis-server 7.0 itself
// (scripts/gen_commands.py -> services/kv/generated/redis_commands.inc), so arity errors, COMMAND INFO and
// COMMAND DOCS match Redis byte for byte. Command families only bind handlers to names.
#include <services/kv/keyspace.hpp>
#include <services/kv/reply.hpp>
#include <services/kv/session.hpp>

#include <cstdint>
#include <span>
#include <string_view>

namespace turret::kv {

class store;

/// Redis command flags (subset used by the dispatcher; the generated table keeps them all).
enum command_flag : std::uint64_t {
  cmd_write = 1u << 0,
  cmd_readonly = 1u << 1,
  cmd_denyoom = 1u << 2,
  cmd_admin = 1u << 3,
  cmd_pubsub = 1u << 4,
  cmd_noscript = 1u << 5,
  cmd_blocking = 1u << 6,
  cmd_loading = 1u << 7,
  cmd_stale = 1u << 8,
  cmd_skip_monitor = 1u << 9,
  cmd_skip_slowlog = 1u << 10,
  cmd_fast = 1u << 11,
  cmd_no_auth = 1u << 12,
  cmd_may_replicate = 1u << 13,
  cmd_no_multi = 1u << 14,
  cmd_allow_busy = 1u << 15,
};

/// What a handler gets. The store lock is held for the whole call; handlers never suspend.
struct command_ctx {
  store& st;
  session& sess;
  std::span<const std::string_view> args;  ///< args[0] is the command name as sent (subcommand in args[1])
  reply_builder& out;
  command_time now;                        ///< unix ms, read on first use and fixed for the command (Redis's mstime)

  keyspace& db() const;                    ///< the session's selected database
};

using command_handler = void (*)(command_ctx&);

class command_table;

// Registration functions of the command families (one per file under services/kv/commands/).
void register_connection_commands(command_table&);
void register_server_commands(command_table&);
void register_key_commands(command_table&);
void register_string_commands(command_table&);
void register_bitmap_commands(command_table&);
void register_pubsub_commands(command_table&);
void register_transaction_commands(command_table&);

}  // namespace turret::kv
