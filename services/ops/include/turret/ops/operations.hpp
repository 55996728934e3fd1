#pragma once
// The key-value operations of the REST and gRPC front ends, protocol-neutral: one table, so that an operation means
// the same on both (the same rules for its input, the same commands, the same interpretation of the replies).
//
// Each operation is a struct with
//   input                        the request (views into the front end's message: valid while it is)
//   output                       what it answers on success
//   id                           its row in op_names
//   static status validate(const input&)
//       the operation's input rules (a TTL that is not positive, no keys ...): invalid_argument, or ok
//   static void command(const input&, int step, cmd_args&)
//       the command of step `step` (0, 1, ...), views into `input` and literals (numbers go to cmd_args::nums)
//   static std::optional<status> reply(const input&, int step, kv::reply_value&, output&)
//       the interpretation of that command's reply (never an error reply: the drivers turn those into
//       outcome::redis_error first): the operation's final status, or nullopt = run step + 1. It writes `output`
//       only together with a final ok, so a driver may stop before any step and another continue from there.
// The drivers (<turret/ops/run.hpp>) run the steps through the pipeline. The front ends only translate: their
// message into `input` (their own syntax: query strings, JSON, protobuf enums), and the status and output back,
// REST to an HTTP status and JSON body (outcomes in services/http/rest_codec.cpp, outputs in rest_ops.cpp), gRPC to
// a grpc::Status and a protobuf message (outcomes in services/grpc/grpc_status.cpp, outputs in grpc_unary_ops.hpp),
// each in one place.
//
// Input rules, the same for every operation and protocol: <turret/ops/rules.hpp>.
#include <turret/kv/reply.hpp>
#include <turret/ops/rules.hpp>

#include <boost/container/small_vector.hpp>

#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace turret::ops {

// --- outcomes -----------------------------------------------------------------------------------------------------

/// What an operation came to, whatever the protocol.
enum class outcome : std::uint8_t {
  ok,                   ///< done; the output holds the answer
  not_found,            ///< the key does not exist
  precondition_failed,  ///< a condition of the request (NX, XX, MSETNX) was not met; nothing changed
  invalid_argument,     ///< the input breaks a rule (the message says which); nothing ran
  redis_error,          ///< the backend answered with an error reply; the message is its text ("WRONGTYPE ...")
  unexpected,           ///< a reply of a shape the operation does not know; the message says which
};

/// An outcome and its message (empty for ok). The messages are part of both APIs: REST puts them into
/// {"error":{"message"}}, gRPC into the status message.
struct status {
  outcome code = outcome::ok;
  std::string message;

  bool ok() const noexcept { return code == outcome::ok; }
  static status not_found() { return {outcome::not_found, "key not found"}; }
  static status precondition_failed(std::string_view why) { return {outcome::precondition_failed, std::string(why)}; }
  static status invalid(std::string_view why) { return {outcome::invalid_argument, std::string(why)}; }
  static status redis_error(std::string_view text) { return {outcome::redis_error, std::string(text)}; }
  static status unexpected(std::string_view what) { return {outcome::unexpected, std::string(what)}; }
};

// --- commands ---------------------------------------------------------------------------------------------------------

/// Decimal of an integer in a buffer of its own.
struct number {
  char buf[24];
  std::size_t len = 0;
  number() = default;
  explicit number(long long v) { len = static_cast<std::size_t>(std::to_chars(buf, buf + sizeof buf, v).ptr - buf); }
  explicit number(unsigned long long v) {
    len = static_cast<std::size_t>(std::to_chars(buf, buf + sizeof buf, v).ptr - buf);
  }
  std::string_view view() const noexcept { return {buf, len}; }
};

/// The arguments of one command: views into the input, literals, and the numbers it formats into `nums`. Not
/// copyable: the views may point into `nums`.
struct cmd_args {
  boost::container::small_vector<std::string_view, 8> v;
  std::array<number, 2> nums;

  cmd_args() = default;
  cmd_args(const cmd_args&) = delete;
  cmd_args& operator=(const cmd_args&) = delete;
  void push(std::string_view s) { v.push_back(s); }
  /// Formats `n` into nums[i] and pushes it.
  template <class Int>
  void push_number(std::size_t i, Int n) {
    nums[i] = number(n);
    v.push_back(nums[i].view());
  }
  std::span<const std::string_view> view() const noexcept { return {v.data(), v.size()}; }
};

using final_status = std::optional<status>;
using keys_type = boost::container::small_vector<std::string_view, 8>;

// --- the operations ---------------------------------------------------------------------------------------------------

enum class op_id : std::uint8_t { get, set, del, mget, mset, incr, expire, ttl, persist, publish, scan };
inline constexpr std::array<std::string_view, 11> op_names{"get",    "set", "delete",  "mget",    "mset", "incr",
                                                           "expire", "ttl", "persist", "publish", "scan"};

/// GET key: the value; not_found when the key does not exist (a non-string is Redis's WRONGTYPE error).
struct get_op {
  struct input {
    std::string_view key;
  };
  struct output {
    std::string value;
  };
  static constexpr op_id id = op_id::get;
  // Inline: the fast path of both front ends.
  static status validate(const input&) { return {}; }
  static void command(const input& in, int, cmd_args& a) {
    a.push("GET");
    a.push(in.key);
  }
  static final_status reply(const input&, int, kv::reply_value& v, output& out) {
    if (v.type == kv::reply_value::kind::bulk) [[likely]] {
      out.value = std::move(v.str);
      return status{};
    }
    if (v.is_null()) return status::not_found();
    return status::unexpected("unexpected reply to GET");
  }
};

/// Existence conditions of set (Redis NX / XX).
enum class condition : std::uint8_t { none, if_not_exists, if_exists };

/// SET key value [PX ttl | KEEPTTL] [NX | XX] [GET]. precondition_failed when the condition is not met ("key
/// already exists" for if_not_exists, "key does not exist" for if_exists). With return_previous the output says
/// whether the key existed and holds its previous value (and, as Redis's SET ... GET, a key holding a non-string is
/// a WRONGTYPE error instead of being overwritten).
struct set_op {
  struct input {
    std::string_view key, value;
    std::optional<long long> ttl_ms;  ///< none: no TTL (the key's TTL is discarded unless keep_ttl)
    bool keep_ttl = false;
    condition cond = condition::none;
    bool return_previous = false;
  };
  struct output {
    bool had_previous = false;  ///< with return_previous
    std::string previous;       ///< with return_previous and had_previous
  };
  static constexpr op_id id = op_id::set;
  static status validate(const input& in);
  static void command(const input& in, int, cmd_args& a);
  static final_status reply(const input& in, int, kv::reply_value& v, output& out);
};

/// DEL keys: how many existed. With not_found_when_none, none existing is not_found (REST's DELETE of one key).
struct delete_op {
  struct input {
    keys_type keys;
    bool not_found_when_none = false;
  };
  struct output {
    long long deleted = 0;
  };
  static constexpr op_id id = op_id::del;
  static status validate(const input& in);
  static void command(const input& in, int, cmd_args& a);
  static final_status reply(const input& in, int, kv::reply_value& v, output& out);
};

/// MGET keys: one value per key, in order; none for a missing key (or one holding a non-string, as Redis).
struct mget_op {
  struct input {
    keys_type keys;
  };
  struct output {
    std::vector<std::optional<std::string>> values;
  };
  static constexpr op_id id = op_id::mget;
  static status validate(const input& in);
  static void command(const input& in, int, cmd_args& a);
  static final_status reply(const input& in, int, kv::reply_value& v, output& out);
};

/// MSET k v ... atomically, or MSETNX with if_none_exist (precondition_failed "a key already exists" when any did).
struct mset_op {
  struct input {
    boost::container::small_vector<std::pair<std::string_view, std::string_view>, 4> entries;
    bool if_none_exist = false;
  };
  struct output {};
  static constexpr op_id id = op_id::mset;
  static status validate(const input& in);
  static void command(const input& in, int, cmd_args& a);
  static final_status reply(const input& in, int, kv::reply_value& v, output& out);
};

/// INCRBY key delta: the new value (a value that is not an integer, or an overflow, is Redis's error).
struct incr_op {
  struct input {
    std::string_view key;
    long long delta = 1;
  };
  struct output {
    long long value = 0;
  };
  static constexpr op_id id = op_id::incr;
  static status validate(const input& in);
  static void command(const input& in, int, cmd_args& a);
  static final_status reply(const input& in, int, kv::reply_value& v, output& out);
};

/// Conditions on the current TTL of expire (Redis 7 NX / XX / GT / LT).
enum class expire_condition : std::uint8_t { none, if_no_ttl, if_has_ttl, if_greater, if_less };

/// PEXPIRE key ttl [NX|XX|GT|LT]. Without a condition a missing key is not_found; with one, a missing key or an unmet
/// condition gives applied = false.
struct expire_op {
  struct input {
    std::string_view key;
    long long ttl_ms = 0;
    expire_condition cond = expire_condition::none;
  };
  struct output {
    bool applied = false;
  };
  static constexpr op_id id = op_id::expire;
  static status validate(const input& in);
  static void command(const input& in, int, cmd_args& a);
  static final_status reply(const input& in, int, kv::reply_value& v, output& out);
};

/// PTTL key: the remaining TTL in milliseconds, none when the key does not expire; not_found when it does not exist.
struct ttl_op {
  struct input {
    std::string_view key;
  };
  struct output {
    std::optional<long long> ttl_ms;
  };
  static constexpr op_id id = op_id::ttl;
  static status validate(const input& in);
  static void command(const input& in, int, cmd_args& a);
  static final_status reply(const input& in, int, kv::reply_value& v, output& out);
};

/// PERSIST key, then, when it removed no TTL, EXISTS key to tell a missing key (not_found) from one without a TTL
/// (ok, removed = false).
struct persist_op {
  struct input {
    std::string_view key;
  };
  struct output {
    bool removed = false;
  };
  static constexpr op_id id = op_id::persist;
  static status validate(const input& in);
  static void command(const input& in, int step, cmd_args& a);
  static final_status reply(const input& in, int step, kv::reply_value& v, output& out);
};

/// PUBLISH channel message: the number of receivers (every protocol's subscribers).
struct publish_op {
  struct input {
    std::string_view channel, message;
  };
  struct output {
    long long receivers = 0;
  };
  static constexpr op_id id = op_id::publish;
  static status validate(const input& in);
  static void command(const input& in, int, cmd_args& a);
  static final_status reply(const input& in, int, kv::reply_value& v, output& out);
};

/// A scan's MATCH pattern and prefix filter: a literal prefix becomes the glob `prefix*` (metacharacters escaped);
/// with a pattern as well, the pattern is the MATCH and the prefix filters its keys.
struct scan_filter {
  std::string pattern;      ///< empty: no MATCH
  std::string_view prefix;  ///< keys not starting with it are dropped (empty: none)
};
scan_filter make_scan_filter(std::string_view prefix, std::string_view pattern = {});

/// One SCAN step: SCAN cursor [MATCH pattern] COUNT count; the keys (those starting with `prefix`) and the cursor to
/// resume from (0: the scan is complete). The paging over steps is the front end's (REST pages, gRPC streams).
struct scan_op {
  struct input {
    std::uint64_t cursor = 0;
    std::uint64_t count = 100;    ///< SCAN's COUNT (a hint for the buckets visited), at least 1
    std::string_view pattern;     ///< see scan_filter
    std::string_view prefix;
  };
  struct output {
    std::uint64_t next = 0;
    std::vector<std::string> keys;
  };
  static constexpr op_id id = op_id::scan;
  static status validate(const input& in);
  static void command(const input& in, int, cmd_args& a);
  static final_status reply(const input& in, int, kv::reply_value& v, output& out);
};

}  // namespace turret::ops
