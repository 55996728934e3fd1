#pragma once
// Command metadata as a request carries it: what a generic layer (retry, rate limit, load balancing, sharding,
// Redis Cluster routing) may know about a Redis command without running it.
//
// # Where it comes from
// Every command and subcommand redis-server 7.0 knows, not only those turretd implements, with Redis's own metadata
// (name, arity, flags, ACL categories, key specs) generated from redis-server itself by scripts/gen_commands.py
// (services/kv/generated/redis_commands.inc, redis_key_specs.inc), plus two turret columns decided by a documented
// table in that script:
// - idempotent: sending the command twice in a row, with nothing in between, has the same keyspace effect AND the
//   same reply as sending it once (SET k v, MSET, SETRANGE, LSET, every read). DEL is not (its count drops to 0),
//   nor INCR, LPUSH, SETNX, PUBLISH. A read counts as idempotent although TTL or SRANDMEMBER may answer differently
//   the second time: a repeat is a fresh reading of the same data. Relative expirations (SET ... EX, EXPIRE) count as
//   the same effect: the repeat sets the deadline as if the one command had arrived that much later. Some commands
//   depend on their arguments (SET with NX or GET is not; ZUNIONSTORE whose destination is a source is not):
//   is_idempotent() decides for a concrete argv.
// - session_state: the command reads or changes the state of the connection it runs on (SELECT, MULTI/EXEC/DISCARD/
//   WATCH/UNWATCH, (P|S)SUBSCRIBE and their UNSUBSCRIBE, HELLO, AUTH, RESET, QUIT, READONLY/READWRITE, ASKING,
//   CLIENT SETNAME/GETNAME/ID/INFO/REPLY/TRACKING/CACHING/NO-EVICT, WAIT, MONITOR, ...). A proxy pins such a
//   command to the client's own upstream connection; a retry layer never moves it to another connection.
//
// # Threads and lifetime
// The metadata is immutable from start-up on and shared read-only by every thread: a command_info reference stays
// valid as long as the command_table it came from. A resolved_command belongs to one request: it refers to the
// request's arguments, is built by one thread (the front end's, once per request, see resolve()) and may then be
// read by the layers on the request's path. Its slot is computed lazily on first use, without synchronisation:
// read it from one thread at a time (the request's).
//
// # Cost
// resolve() does the one table lookup the core needs anyway and extracts the keys from the key specs; it allocates
// nothing for up to inline_keys keys (bench/command_info_bench.cpp measures it). Slots are computed only when asked.
#include <boost/container/small_vector.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <turret/request_traits.hpp>

namespace turret::kv {

/// Redis command flags (COMMAND INFO's third element), one bit each.
enum command_flag : std::uint64_t {
  cmd_write = 1ull << 0,
  cmd_readonly = 1ull << 1,
  cmd_denyoom = 1ull << 2,
  cmd_admin = 1ull << 3,
  cmd_pubsub = 1ull << 4,
  cmd_noscript = 1ull << 5,
  cmd_blocking = 1ull << 6,
  cmd_loading = 1ull << 7,
  cmd_stale = 1ull << 8,
  cmd_skip_monitor = 1ull << 9,
  cmd_skip_slowlog = 1ull << 10,
  cmd_fast = 1ull << 11,
  cmd_no_auth = 1ull << 12,
  cmd_may_replicate = 1ull << 13,
  cmd_no_multi = 1ull << 14,
  cmd_allow_busy = 1ull << 15,
  cmd_module = 1ull << 16,
  cmd_asking = 1ull << 17,
  cmd_sentinel = 1ull << 18,
  cmd_only_sentinel = 1ull << 19,
  cmd_no_mandatory_keys = 1ull << 20,
  cmd_protected = 1ull << 21,
  cmd_no_async_loading = 1ull << 22,
  cmd_movablekeys = 1ull << 23,
};

/// Redis ACL categories (@read, @write, ...), one bit each.
enum acl_category : std::uint64_t {
  acl_keyspace = 1ull << 0, acl_read = 1ull << 1, acl_write = 1ull << 2, acl_set = 1ull << 3,
  acl_sortedset = 1ull << 4, acl_list = 1ull << 5, acl_hash = 1ull << 6, acl_string = 1ull << 7,
  acl_bitmap = 1ull << 8, acl_hyperloglog = 1ull << 9, acl_geo = 1ull << 10, acl_stream = 1ull << 11,
  acl_pubsub = 1ull << 12, acl_admin = 1ull << 13, acl_fast = 1ull << 14, acl_slow = 1ull << 15,
  acl_blocking = 1ull << 16, acl_dangerous = 1ull << 17, acl_connection = 1ull << 18, acl_transaction = 1ull << 19,
  acl_scripting = 1ull << 20,
};

/// Key spec flags (Redis's CMD_KEY_*): how a command uses a key.
enum key_flag : std::uint16_t {
  key_ro = 1 << 0,      ///< read only
  key_rw = 1 << 1,      ///< read and modified
  key_ow = 1 << 2,      ///< overwritten without being read
  key_rm = 1 << 3,      ///< removed
  key_access = 1 << 4,  ///< the value is returned or copied
  key_update = 1 << 5,  ///< the value is updated or replaced
  key_insert = 1 << 6,  ///< data is added, nothing is replaced
  key_delete = 1 << 7,  ///< data is removed
  key_not_key = 1 << 8,         ///< not a key (a shard channel): key extraction skips it
  key_incomplete = 1 << 9,      ///< the spec may miss keys: Redis falls back to the command's getkeys procedure
  key_variable_flags = 1 << 10, ///< the flags depend on the arguments: the getkeys procedure says which
};

/// turret's columns (see the top of this file).
enum turret_column : std::uint8_t {
  turret_idempotent = 1 << 0,          ///< idempotent whatever the arguments
  turret_idempotent_by_args = 1 << 1,  ///< idempotent for some arguments only: ask is_idempotent()
  turret_session_state = 1 << 2,       ///< reads or changes per-connection state
};

/// Where a key spec's first key is (Redis's begin_search).
enum class key_begin : std::uint8_t { unknown, index, keyword };
/// How a key spec's keys follow the first one (Redis's find_keys).
enum class key_find : std::uint8_t { unknown, range, keynum };

/// One Redis key spec (COMMAND INFO's 9th element), positions counted in the full argv (argv[0] is the command).
struct key_spec {
  std::uint16_t flags = 0;           ///< key_flag bits
  key_begin begin = key_begin::unknown;
  key_find find = key_find::unknown;
  int index = 0;                     ///< begin == index: the first key's position
  std::string_view keyword;          ///< begin == keyword: the first key follows this argument (any case)
  int startfrom = 0;                 ///< begin == keyword: search from here; negative: from argc+startfrom backwards
  int lastkey = 0;                   ///< find == range: last key relative to the first; negative: from the end
  int keystep = 1;                   ///< range and keynum: distance between keys
  int limit = 0;                     ///< find == range, lastkey -1: only 1/limit of the remaining arguments
  int keynumidx = 0;                 ///< find == keynum: the key count's position relative to the first key
  int firstkey = 0;                  ///< find == keynum: the first key's position relative to the first key
};

/// The procedure Redis 7.0 falls back to when a command's key specs cannot describe a concrete argv (a spec is
/// incomplete, unknown or invalid for it, or the flags vary with the arguments). Commands that have one:
/// numkeys1 (SINTERCARD, ZUNION, ZINTER, ZDIFF, ZINTERCARD, LMPOP, ZMPOP), numkeys2 (EVAL*, FCALL*, BLMPOP,
/// BZMPOP), dest_numkeys2 (ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE), sort, sort_ro, migrate (KEYS), georadius (STORE,
/// STOREDIST), xread (XREAD, XREADGROUP: STREAMS), set and bitfield (flags only).
enum class getkeys_proc : std::uint8_t {
  none, numkeys1, numkeys2, dest_numkeys2, sort, sort_ro, migrate, georadius, xread, set, bitfield,
};

/// How a command's keys are found (derived from its key specs and getkeys procedure; see key_source_of()).
enum class key_source : std::uint8_t {
  unset,  ///< not derived yet: extract_keys() derives it on every call (a command_info made by hand)
  none,   ///< no key arguments (no getkeys procedure, every key spec not_key)
  specs,  ///< the key specs, then the getkeys procedure when they fail for an argv
  proc,   ///< the getkeys procedure only (variable flags, or no usable key spec)
};

/// A command's metadata: the read-only view every layer may use.
struct command_info {
  std::string_view name;        ///< lower case full name: "get", "client|kill"
  int arity = 0;                ///< Redis arity: n exact, -n at least n (argv[0] included)
  std::uint64_t flags = 0;      ///< command_flag bits
  std::uint64_t acl = 0;        ///< acl_category bits
  int first_key = 0, last_key = 0, key_step = 0;  ///< Redis's legacy key range (COMMAND INFO elements 4-6)
  std::span<const key_spec> key_specs;
  getkeys_proc getkeys = getkeys_proc::none;
  key_source keys_from = key_source::unset;  ///< key_source_of(*this), set by the command table
  std::uint8_t turret = 0;      ///< turret_column bits

  bool session_state() const noexcept { return turret & turret_session_state; }
  /// Redis's doesCommandHaveKeys: a getkeys procedure or a key spec that is not marked not_key.
  bool has_keys() const noexcept;
  /// The argv-independent traffic class, from the ACL categories: @admin -> admin, @pubsub -> pubsub, @write ->
  /// write, @read -> read, @connection/@transaction -> connection; otherwise write for @scripting (EVAL may write)
  /// and read for the rest (TIME, INFO, MEMORY ...).
  traffic_class traffic() const noexcept;
};

/// One key argument of a concrete argv.
struct key_ref {
  std::uint32_t index = 0;  ///< position in argv
  std::uint16_t flags = 0;  ///< key_flag bits as Redis reports them (COMMAND GETKEYSANDFLAGS); 0 when it says none
};

/// Keys held inline (without allocating) by command_keys; more spill to the heap.
inline constexpr std::size_t inline_keys = 8;

enum class keys_status : std::uint8_t {
  complete,    ///< every key the command touches is in `refs` (possibly none)
  incomplete,  ///< `refs` holds the keys the arguments name, but the command also touches keys computed at run time
               ///< (SORT ... BY/GET with a pattern), or memory ran out while collecting them
  invalid,     ///< Redis would reject these arguments (wrong arity, bad numkeys, ...): COMMAND GETKEYS answers
               ///< "Invalid arguments"; `refs` is empty
};

/// The key arguments of a concrete argv.
struct command_keys {
  boost::container::small_vector<key_ref, inline_keys> refs;
  keys_status status = keys_status::complete;
};

/// Redis's choice in getKeysFromCommandWithSpecs: the specs when one is a key and none has variable flags, else the
/// getkeys procedure when there is one.
key_source key_source_of(const command_info& cmd) noexcept;

/// Redis's getKeysFromCommandWithSpecs + COMMAND GETKEYS: the key positions (and flags) of `args` (args[0] is the
/// command name, args[1] the subcommand of a container), from the key specs and, where they cannot tell, the
/// command's getkeys procedure. Positions come in Redis's order (spec by spec). A command without keys gives
/// complete and none; a command with keys that finds none gives invalid, unless it is flagged no_mandatory_keys
/// (EVAL with numkeys 0). Does not check the arity first: a short argv usually gives invalid.
void extract_keys(const command_info& cmd, std::span<const std::string_view> args, command_keys& out) noexcept;

/// The text of Redis's unknown-command error for `args` (without the leading '-'): "ERR unknown command '<name>',
/// with args beginning with: '<arg>' ..." (the name and the arguments cut as Redis's %.128s does).
std::string unknown_command_error(std::span<const std::string_view> args);
/// "ERR unknown subcommand '<sub>'. Try <CONTAINER> HELP." (Redis's wording for a container's unknown subcommand).
std::string unknown_subcommand_error(std::string_view container, std::string_view sub);
/// Whether `argc` arguments (the name included) suit the command's arity; Redis's error otherwise is
/// arity_error(cmd).
inline bool arity_ok(const command_info& cmd, std::size_t argc) noexcept {
  const auto n = static_cast<long>(argc);
  return cmd.arity > 0 ? cmd.arity == n : n >= -cmd.arity;
}
/// "ERR wrong number of arguments for '<name>' command".
std::string arity_error(const command_info& cmd);

/// Redis Cluster's hash slot of a key: CRC16 (XMODEM) mod 16384 over the key, or over the part between the first
/// '{' and the first '}' after it when that part is not empty (Redis's keyHashSlot, byte for byte).
std::uint16_t key_hash_slot(std::string_view key) noexcept;

/// Whether sending `args` twice in a row has the same effect and reply as sending it once (see the top of this
/// file). `keys` are the argv's keys (for the "destination is not a source" rules).
bool is_idempotent(const command_info& cmd, std::span<const std::string_view> args,
                   const command_keys& keys) noexcept;

class command_table;
struct command_def;

/// A request's command, resolved once by the front end: the table entry, the key arguments, and, on demand, the
/// Cluster hash slot. Refers to the request's arguments: valid while they are.
class resolved_command {
 public:
  const command_info* info = nullptr;  ///< the command (the subcommand of a container); nullptr: unknown
  const command_def* def = nullptr;    ///< the same entry as the key-value core's type; nullptr: unknown
  const command_def* base = nullptr;   ///< args[0]'s entry (the container of a subcommand): set even when the
                                       ///< subcommand is unknown; nullptr: unknown command
  std::span<const std::string_view> args;
  command_keys keys;

  bool known() const noexcept { return info != nullptr; }
  /// The first key argument; nullopt when there is none (or the command is unknown).
  std::optional<std::string_view> first_key() const noexcept {
    if (keys.refs.empty()) return std::nullopt;
    return args[keys.refs.front().index];
  }
  /// The hash slot of the first key, computed on first use; nullopt without keys.
  std::optional<std::uint16_t> slot() const noexcept;
  /// Whether the keys hash to more than one slot (a Redis Cluster node answers -CROSSSLOT).
  bool crossslot() const noexcept;
  bool idempotent() const noexcept { return info && is_idempotent(*info, args, keys); }
  bool session_state() const noexcept { return info && info->session_state(); }

 private:
  mutable std::int32_t slot_ = not_computed;
  mutable std::int8_t cross_ = -1;  // -1: not computed
  static constexpr std::int32_t not_computed = -1, no_slot = -2;
};

/// Looks the command up exactly as command_table::lookup does (args[0] in any case, then args[1] among the
/// container's subcommands when there are at least two arguments) and extracts its keys. Commands the table does
/// not implement are unknown (info == nullptr). Allocation-free for up to inline_keys keys.
resolved_command resolve(const command_table& table, std::span<const std::string_view> args) noexcept;

// Customization points (see <turret/request_traits.hpp>) for anything that exposes a resolved_command.

/// The first key argument: what a sharding or Cluster layer hashes.
inline std::optional<std::string_view> routing_key(const resolved_command& c) noexcept { return c.first_key(); }
/// session for session_state commands, idempotent when is_idempotent() says so, else (and for unknown commands)
/// non_idempotent.
inline retry_safety retry_class(const resolved_command& c) noexcept {
  if (c.session_state()) return retry_safety::session;
  return c.idempotent() ? retry_safety::idempotent : retry_safety::non_idempotent;
}
/// command_info::traffic(); write for unknown commands.
inline traffic_class rate_class(const resolved_command& c) noexcept {
  return c.info ? c.info->traffic() : traffic_class::write;
}

}  // namespace turret::kv
