#pragma once
// Integer arguments as Redis's object.c reads them (getLongLongFromObjectOrReply, getRangeLongFromObjectOrReply,
// getIntFromObjectOrReply): string2ll's rules, then Redis's error text when the argument is not an integer or out of
// the command's range. Every command family reads its numeric arguments through these, so that each argument is
// range-checked before a handler does anything with it. Internal to services/kv/commands; handlers run under the
// store lock.
#include <services/kv/command.hpp>
#include <services/kv/dispatch.hpp>
#include <services/kv/numbers.hpp>

#include <climits>
#include <string>
#include <string_view>

namespace turret::kv {

inline constexpr std::string_view err_not_int = "ERR value is not an integer or out of range";
inline constexpr std::string_view err_syntax = "ERR syntax error";

/// getLongLongFromObjectOrReply: false after replying `msg` (default: err_not_int) when `arg` is not an integer.
inline bool ll_arg(command_ctx& c, std::string_view arg, long long& out, std::string_view msg = {}) {
  if (parse_ll(arg, out)) return true;
  reply_error(c.st, c.out, msg.empty() ? err_not_int : msg);
  return false;
}

/// getRangeLongFromObjectOrReply: an integer in [min, max]; `msg`, when given, is the reply for both failures.
inline bool range_arg(command_ctx& c, std::string_view arg, long long min, long long max, long long& out,
                      std::string_view msg = {}) {
  if (!ll_arg(c, arg, out, msg)) return false;
  if (out >= min && out <= max) return true;
  if (!msg.empty()) {
    reply_error(c.st, c.out, msg);
  } else {
    reply_error(c.st, c.out, "ERR value is out of range, value must between " + std::to_string(min) + " and " +
                                 std::to_string(max));
  }
  return false;
}

/// getIntFromObjectOrReply: an integer that fits in an int (SELECT, MOVE, COPY DB, SWAPDB).
inline bool int_arg(command_ctx& c, std::string_view arg, int& out, std::string_view msg = {}) {
  long long v;
  if (!range_arg(c, arg, INT_MIN, INT_MAX, v, msg)) return false;
  out = static_cast<int>(v);
  return true;
}

}  // namespace turret::kv
