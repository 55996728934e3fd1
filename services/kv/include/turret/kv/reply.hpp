#pragma once
// reply_builder: the key-value core writes every reply through this interface, so that one command implementation
// serves every front end. The RESP front end writes RESP2/RESP3 bytes directly into the connection's output
// buffer (framework/include/turret/resp/writer.hpp); HTTP and gRPC build a reply_value tree and map it to their
// own formats. Methods mirror RESP3 types; RESP2 downgrades them exactly as redis-server 7.0 does
// (map -> flat array, set -> array, double -> bulk string, boolean -> integer, null -> $-1 / *-1 by context,
// verbatim -> bulk, push -> array).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace turret::kv {

class reply_builder {
 public:
  virtual ~reply_builder() = default;

  virtual void simple(std::string_view s) = 0;             ///< +s  (status reply: "OK", "PONG", "QUEUED")
  virtual void error(std::string_view s) = 0;              ///< -s  (s starts with the code: "ERR ...", "WRONGTYPE ...")
  virtual void integer(long long v) = 0;                   ///< :v
  virtual void bulk(std::string_view s) = 0;               ///< $len\r\ns
  virtual void null_bulk() = 0;                            ///< RESP2 $-1 ; RESP3 _
  virtual void null_array() = 0;                           ///< RESP2 *-1 ; RESP3 _
  virtual void array(std::size_t n) = 0;                   ///< *n, then n elements
  virtual void map(std::size_t n) = 0;                     ///< RESP3 %n (n pairs); RESP2 *2n
  virtual void set(std::size_t n) = 0;                     ///< RESP3 ~n ; RESP2 *n
  virtual void push(std::size_t n) = 0;                    ///< RESP3 >n ; RESP2 *n
  virtual void dbl(double v) = 0;                          ///< RESP3 ,v ; RESP2 bulk, formatted like Redis %.17g
  virtual void boolean(bool v) = 0;                        ///< RESP3 #t/#f ; RESP2 :1/:0
  virtual void verbatim(std::string_view s, std::string_view format = "txt") = 0;  ///< RESP3 =; RESP2 bulk
  virtual void big_number(std::string_view digits) = 0;    ///< RESP3 ( ; RESP2 bulk
  /// Pre-encoded bytes (RESP front end only; e.g. cached COMMAND replies). Other builders parse them.
  virtual void raw(std::string_view resp_bytes) = 0;
  /// Protocol version the reply is encoded for (2 or 3); commands use it where Redis replies differ by version.
  virtual int protocol() const noexcept = 0;

  /// A position in what this builder has received, and discarding everything written after it: a command that
  /// fails half-way leaves no partial reply behind (the dispatcher marks before each command and rolls back before
  /// replying with the error). Rolling back never allocates.
  struct checkpoint {
    std::size_t a = 0, b = 0, c = 0, d = 0;  // the builder's own meaning
  };
  virtual checkpoint mark() const noexcept = 0;
  virtual void rollback(const checkpoint& to) noexcept = 0;

  // Conveniences used all over the command families.
  void ok() { simple("OK"); }
  void bulk_or_null(const std::string_view* s) { s ? bulk(*s) : null_bulk(); }
};

/// A reply as a value tree, built by value_reply_builder (HTTP, gRPC, tests).
struct reply_value {
  enum class kind : std::uint8_t { simple, error, integer, bulk, null, array, map, set, push, dbl, boolean, verbatim, big_number };
  kind type = kind::null;
  std::string str;          // simple, error, bulk, verbatim, big_number
  long long integer = 0;    // integer, boolean (0/1)
  double dbl = 0;
  std::vector<reply_value> elements;  // array/set/push elements; map: key, value, key, value ...

  bool is_error() const noexcept { return type == kind::error; }
  bool is_null() const noexcept { return type == kind::null; }
};

}  // namespace turret::kv
