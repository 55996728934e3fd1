#pragma once
// resp::value: a RESP2/RESP3 reply as a tree; resp::reply_parser: incremental parser of server replies into values
// (used by resp::client and by tests).
//
// reply_parser contract
// - parse(in) looks for ONE complete reply at the front of `in`:
//     status::ok        -> take() returns it; consumed() bytes belong to it.
//     status::need_more -> incomplete; consumed() bytes (complete leading elements of an aggregate) were absorbed into
//                          the parser's partial tree and must be dropped by the caller; call again with the rest
//                          plus more bytes. So a large aggregate arriving in fragments is parsed in O(bytes).
//     status::error     -> malformed reply; error_text() says why. Sticky until reset().
// - RESP3 attributes (`|`) are parsed and discarded, as clients that do not ask for them do.
// - Streamed strings/aggregates (`$?`, `*?`) are not supported (Redis 7.0 never sends them): error.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace turret::resp {

struct value {
  enum class kind : std::uint8_t {
    simple,      // +
    error,       // - and ! (blob error)
    integer,     // :
    bulk,        // $
    null,        // _ , $-1, *-1
    array,       // *
    map,         // %  (elements: k, v, k, v ...)
    set,         // ~
    push,        // >
    dbl,         // ,
    boolean,     // #
    verbatim,    // =  (str holds the text without "txt:"; format holds "txt")
    big_number,  // (
  };
  kind type = kind::null;
  std::string str;          // simple, error, bulk, verbatim, big_number; dbl: the text as sent
  std::string format;       // verbatim only
  long long integer = 0;    // integer, boolean (0/1)
  double dbl = 0;
  std::vector<value> elements;

  bool is_error() const noexcept { return type == kind::error; }
  bool is_null() const noexcept { return type == kind::null; }
  bool is_string() const noexcept {
    return type == kind::bulk || type == kind::simple || type == kind::verbatim || type == kind::big_number;
  }
  bool is_aggregate() const noexcept {
    return type == kind::array || type == kind::map || type == kind::set || type == kind::push;
  }

  static value make_string(kind k, std::string s) {
    value r;
    r.type = k;
    r.str = std::move(s);
    return r;
  }
  static value make_simple(std::string s) { return make_string(kind::simple, std::move(s)); }
  static value make_error(std::string s) { return make_string(kind::error, std::move(s)); }
  static value make_bulk(std::string s) { return make_string(kind::bulk, std::move(s)); }
  static value make_integer(long long v) {
    value r;
    r.type = kind::integer;
    r.integer = v;
    return r;
  }

  friend bool operator==(const value&, const value&) = default;
};

/// Encode a value back to RESP3 bytes (RESP2 when resp2 == true: the same downgrades as resp::writer).
std::string encode(const value& v, bool resp2 = false);
/// redis-cli-like rendering ("OK", "\"bar\"", "(nil)", "(integer) 1", "(error) ERR ...", "1) ...").
std::string to_display_string(const value& v);
/// Redis's sdscatrepr quoting: "..." with \n \r \t \a \b \\ \" escaped and other non-printables as \xHH.
std::string quote_repr(std::string_view s);

class reply_parser {
 public:
  enum class status : std::uint8_t { ok, need_more, error };

  /// max_bulk_len bounds declared lengths (a hostile server cannot make us reserve gigabytes); default 512 MB.
  explicit reply_parser(std::size_t max_bulk_len = 512ull * 1024 * 1024, std::size_t max_depth = 256)
      : max_bulk_(max_bulk_len), max_depth_(max_depth) {}

  status parse(std::string_view in);
  std::size_t consumed() const noexcept { return consumed_; }
  /// Minimum bytes needed at the front of the (remaining) input to finish the current element; 0 if unknown.
  std::size_t wanted_size() const noexcept { return wanted_; }
  /// The reply, after status::ok (moves it out).
  value take() { return std::move(result_); }
  const std::string& error_text() const noexcept { return error_; }
  void reset();

 private:
  struct frame {
    value v;
    long long left;  // elements still expected
    bool attribute;  // RESP3 attribute: discarded when complete
  };
  status fail(std::string why);
  // Adds a finished element to the innermost open aggregate; returns true when the top-level reply is complete.
  bool complete(value&& v);

  std::size_t max_bulk_, max_depth_;
  std::vector<frame> stack_;
  value result_;
  std::string error_;
  std::size_t consumed_ = 0;
  std::size_t wanted_ = 0;
  bool failed_ = false;
};

}  // namespace turret::resp
