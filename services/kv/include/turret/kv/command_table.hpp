#pragma once
// command_table: the key-value command registry, built from Redis's own metadata
// (services/kv/generated/*.inc, written by scripts/gen_commands.py from redis-server 7.0.15).
//
// Contract
// - The table is built once at start-up (command_table::make_default() or the constructor plus add() calls) and is
//   immutable afterwards; it is shared read-only by every worker thread. Only the per-command statistics change at
//   run time, and only under the store lock.
// - A command or subcommand exists for dispatch only once a handler is bound with add(); metadata without a handler
//   is invisible (unknown command, COMMAND COUNT/LIST/INFO skip it).
// - find() is case-insensitive and allocation-free (it runs for every request).
#include <turret/ascii.hpp>
#include <turret/kv/command_info.hpp>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace turret::kv {

/// What a command handler gets (defined by the in-process core, services/kv/command.hpp).
struct command_ctx;
using command_handler = void (*)(command_ctx&);

/// Category name ("read") -> bit, 0 when unknown. Case-insensitive.
std::uint64_t acl_category_from_name(std::string_view name) noexcept;

/// Dispatcher properties derived from the command name (Redis compares command procs for these).
enum dispatch_flag : std::uint8_t {
  dispatch_allowed_in_pubsub = 1 << 0,  ///< PING, (P)SUBSCRIBE, (P)UNSUBSCRIBE, QUIT, RESET (RESP2 subscribed mode)
  dispatch_not_queued = 1 << 1,         ///< EXEC, DISCARD, MULTI, WATCH, QUIT, RESET run even inside MULTI
};

/// One command or subcommand: Redis metadata (command_info: name, arity, flags, ACL categories, key specs, turret
/// columns) plus the raw COMMAND INFO/DOCS replies and the bound handler.
struct command_def : command_info {
  std::string_view short_name;  ///< "get", "kill"
  std::string_view info2, info3, docs2, docs3;  ///< raw COMMAND INFO / DOCS elements (RESP2 / RESP3); empty for
                                                ///< commands turretd does not implement
  command_handler handler = nullptr;
  const command_def* parent = nullptr;          ///< container of a subcommand
  std::vector<const command_def*> subcommands;  ///< bound subcommands of a container, table order
  std::string_view help2, help3;                ///< raw "<CONTAINER> HELP" reply of containers
  std::uint8_t dispatch = 0;                    ///< dispatch_flag bits

  // Statistics (INFO commandstats), updated under the store lock.
  mutable std::uint64_t calls = 0;
  mutable std::uint64_t rejected_calls = 0;
  mutable std::uint64_t failed_calls = 0;
  mutable std::uint64_t usec = 0;

  bool is_container() const noexcept { return !subcommands.empty(); }
  bool implemented() const noexcept { return handler != nullptr || is_container(); }
  std::string_view info(int resp) const noexcept { return resp == 3 ? info3 : info2; }
  std::string_view docs(int resp) const noexcept { return resp == 3 ? docs3 : docs2; }
  std::string_view help(int resp) const noexcept { return resp == 3 ? help3 : help2; }
};

class command_table {
 public:
  /// Loads the generated metadata; no handler is bound.
  command_table();
  ~command_table();
  command_table(const command_table&) = delete;
  command_table& operator=(const command_table&) = delete;

  /// The table with every command family of turretd registered.
  static std::shared_ptr<command_table> make_default();
  /// A table in which every command and subcommand redis-server knows resolves (name, arity, flags, keys), for
  /// backends that forward commands to Redis servers instead of running them (the upstream store): its handlers do
  /// nothing and must never be called. COMMAND INFO/DOCS replies stay empty for what turretd does not implement.
  static std::shared_ptr<command_table> make_forwarding();

  /// Bind a handler to a command ("get") or subcommand ("client|kill"). Throws std::invalid_argument when the name
  /// is not in the generated metadata (start-up only).
  void add(std::string_view name, command_handler handler);

  /// Top-level command by name as sent (any case); nullptr when unknown or not implemented.
  const command_def* find(std::string_view name) const noexcept;
  /// Subcommand of a container by name as sent (any case); nullptr when unknown or not implemented.
  static const command_def* find_sub(const command_def& container, std::string_view sub) noexcept;
  /// Redis's lookupCommand: args[0] (any case), resolved to the subcommand args[1] for containers when there are
  /// at least two arguments. nullptr when unknown (use find() to tell an unknown subcommand from a command).
  const command_def* lookup(std::span<const std::string_view> args) const noexcept {
    if (args.empty()) return nullptr;
    const command_def* c = find(args[0]);
    if (c && args.size() >= 2 && c->is_container()) return find_sub(*c, args[1]);
    return c;
  }
  /// "get" or "client|kill" (any case), as COMMAND INFO/DOCS accept them; nullptr when unknown.
  const command_def* find_full(std::string_view fullname) const noexcept;

  /// Whether `def` is an entry of this table (a resolved_command made against it).
  bool owns(const command_def* def) const noexcept {
    return !defs_.empty() && def >= defs_.data() && def < defs_.data() + defs_.size();
  }
  /// The metadata of every command and subcommand redis-server knows, implemented or not, in table order.
  std::span<const command_def> all() const noexcept { return defs_; }
  /// Any entry by full name ("zunionstore", "xgroup|create"; any case), implemented or not; nullptr when redis-server
  /// does not know it. A linear search: for tools and start-up, not per request.
  const command_def* metadata(std::string_view fullname) const noexcept;

  /// Implemented top-level commands in table order.
  std::span<const command_def* const> commands() const noexcept { return implemented_; }

  /// Resets every command's statistics (CONFIG RESETSTAT); call under the store lock.
  void reset_stats() const noexcept;

 private:
  void rebuild_index();

  std::vector<command_def> defs_;                 // all generated rows, stable addresses
  std::vector<const command_def*> implemented_;   // top level, implemented
  std::vector<const command_def*> slots_;         // open addressing over implemented top-level commands
  std::size_t mask_ = 0;
};

using ::turret::iequals;  // <turret/ascii.hpp>: command names and options compare ASCII case-insensitively


}  // namespace turret::kv
