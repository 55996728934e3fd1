#pragma once
// resp::request_parser: incremental, zero-copy parser of CLIENT COMMANDS, exactly as redis-server 7.0 parses them
// (src/networking.c: processInputBuffer / processMultibulkBuffer / processInlineBuffer).
//
// Contract
// - Input is the connection's unconsumed bytes. `parse(in)` looks for ONE command at the front of `in`:
//     status::ok        -> args() holds the command; consumed() bytes of `in` belong to it (caller drops them).
//     status::need_more -> no complete command yet; consumed() == 0. Call again with the same bytes plus more
//                          (the prefix must be unchanged; it may live at another address: the parser keeps offsets,
//                          so fragments are never re-scanned and a command in N fragments costs O(total bytes)).
//                          wanted_size() tells how many unconsumed bytes the pending command needs at least
//                          (known once a bulk length has been read): parse(parser, input_buffer) below grows the
//                          buffer towards it as the bytes arrive.
//     status::error     -> a protocol error; error_text() is Redis's exact text ("Protocol error: ..."). The front end
//                          replies `-ERR <text>\r\n` after the replies of every complete command before it, then
//                          closes. The parser stays in the error state (every later parse() returns error).
//   Empty commands (`*0\r\n`, `*-1\r\n`, an empty/blank inline line) are skipped inside parse(); they only add to
//   consumed() of the next real command (or are consumed alone: status::ok never carries zero args, but parse() can
//   return need_more with consumed() > 0 when only skipped input was present, so always drop consumed() bytes).
// - args() views point into `in` (multibulk: always; inline: into the parser's own storage, because quotes and escapes
//   rewrite the bytes). They stay valid until the next parse() call or until the caller moves/frees the input bytes.
// - Redis quirks kept on purpose: the CRLF after bulk data is not checked (2 bytes are skipped); a count line or inline
//   line holding a NUL byte before its terminator is "not complete yet" (Redis uses strchr), so it only ends with a
//   "too big" error; `*N` with N <= 0 is an empty command; "expected '$', got '%c'" maps CR/LF to a space and a NUL
//   truncates the message, as sds/vsnprintf do.
// - No allocation per command in the steady state (the args vector is reused); memchr finds line ends.
//
// resp::input_buffer is a simple contiguous read buffer (read position + write position) that pairs with the parser:
// read into prepare(), commit(), then `while (parser.parse(buf) == ok) { run(parser.args()); }`.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace turret::resp {

/// Limits, named after Redis's config (defaults are Redis 7.0's).
struct parser_options {
  /// proto-max-bulk-len: largest accepted bulk argument ("invalid bulk length" above it).
  std::size_t max_bulk_len = 512ull * 1024 * 1024;
  /// PROTO_INLINE_MAX_SIZE: largest inline line / count line kept waiting for its terminator.
  std::size_t max_inline_size = 64 * 1024;
  /// Largest multibulk count. Redis 7.0.15 accepts up to INT_MAX (verified: `*2000000\r\n` is accepted and waits;
  /// `*2147483648` is "invalid multibulk length"). Argument storage grows with the arguments actually received.
  long long max_multibulk_len = 2147483647;
  /// While a client must still authenticate (requirepass set, not yet AUTHed), Redis 7.0 caps the count at 10 and
  /// bulk lengths at 16384 ("Protocol error: unauthenticated multibulk length" / "... bulk length").
  long long unauth_max_multibulk_len = 10;
  long long unauth_max_bulk_len = 16384;
};

class request_parser {
 public:
  enum class status : std::uint8_t { ok, need_more, error };

  explicit request_parser(parser_options opts = {});

  /// Parse one command from the front of `in`. See the contract above.
  status parse(std::string_view in);

  /// The parsed command (valid after status::ok, see lifetime above). Never empty after ok.
  std::span<const std::string_view> args() const noexcept { return {args_.data(), args_.size()}; }
  /// Bytes of `in` the last parse() consumed (command plus skipped empty commands before it).
  std::size_t consumed() const noexcept { return consumed_; }
  /// Minimum unconsumed bytes the pending (incomplete) command needs; 0 if unknown.
  std::size_t wanted_size() const noexcept { return wanted_; }
  /// True if the last parsed command was inline (front ends may want to know; Redis treats both alike).
  bool inline_command() const noexcept { return inline_; }

  bool failed() const noexcept { return failed_; }
  /// Redis's error text (without the "ERR " prefix), e.g. "Protocol error: invalid bulk length".
  const std::string& error_text() const noexcept { return error_; }

  /// Whether the client still has to authenticate (tightens limits, see parser_options).
  void set_auth_required(bool v) noexcept { auth_required_ = v; }
  const parser_options& options() const noexcept { return opts_; }
  void set_options(const parser_options& o) noexcept { opts_ = o; }

  /// Forget any partial command and the error state (e.g. after RESET on a reused connection object).
  void reset() noexcept;

 private:
  status parse_multibulk(std::string_view in);
  status parse_inline(std::string_view in);
  status fail(std::string text);

  parser_options opts_;
  std::vector<std::string_view> args_;
  std::string inline_storage_;
  std::string error_;
  std::size_t consumed_ = 0;
  std::size_t wanted_ = 0;
  // Partial multibulk state (offsets relative to the start of the pending command).
  std::size_t pos_ = 0;            // resume offset
  long long multibulk_left_ = 0;   // arguments still to read (0: header not read yet)
  long long bulk_len_ = -1;        // length of the bulk being read (-1: "$len" line not read yet)
  std::uintptr_t base_ = 0;        // address `in` had when args_ were recorded (to rebase them)
  bool inline_nul_ = false;        // pending inline line holds a NUL: Redis (strchr) never sees its end
  bool in_command_ = false;
  bool inline_ = false;
  bool failed_ = false;
  bool auth_required_ = false;
};

/// Contiguous growable input buffer: [data, data+size) is unconsumed, then free space up to capacity.
class input_buffer {
 public:
  explicit input_buffer(std::size_t initial_capacity = 16 * 1024);

  /// Writable space of at least `min_bytes` at the end (compacts, or grows geometrically). Invalidates views into
  /// readable().
  std::span<char> prepare(std::size_t min_bytes = 16 * 1024);
  void commit(std::size_t n) noexcept { end_ += n; }
  std::string_view readable() const noexcept { return {buf_.get() + begin_, end_ - begin_}; }
  std::size_t size() const noexcept { return end_ - begin_; }
  bool empty() const noexcept { return begin_ == end_; }
  /// Drop n bytes from the front. Does not move data: views into readable() stay valid until prepare()/reserve().
  void consume(std::size_t n) noexcept {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  /// Make room for `total` unconsumed bytes without further reallocation (one move at most).
  void reserve(std::size_t total);
  std::size_t capacity() const noexcept { return cap_; }
  /// Give memory back after a huge command (keeps data).
  void shrink_to(std::size_t capacity);

 private:
  void relocate(std::size_t new_cap);
  std::unique_ptr<char[]> buf_;
  std::size_t cap_ = 0, begin_ = 0, end_ = 0;
};

/// Convenience: parse from an input_buffer, consuming what was parsed and reserving room for large bulks.
/// Views in parser.args() stay valid until the next buf.prepare()/reserve().
inline request_parser::status parse(request_parser& p, input_buffer& buf) {
  auto st = p.parse(buf.readable());
  buf.consume(p.consumed());
  // Room for the pending bulk, growing with the bytes that actually arrived: at least double, at most what the
  // command still needs plus one read. Redis reserves a big argument whole at once (sdsMakeRoomForNonGreedy); here a
  // client that declares 512 MB and sends 1 KB costs ~64 KB, not 512 MB of address space, and a real 512 MB
  // argument is copied O(log n) times (2x its size in all).
  if (st == request_parser::status::need_more && p.wanted_size() > buf.capacity()) {
    constexpr std::size_t one_read = 16 * 1024, step = 64 * 1024;
    const std::size_t grown = std::max(2 * buf.capacity(), buf.size() + step);
    buf.reserve(std::min(p.wanted_size() + one_read, grown));
  }
  return st;
}

/// Split an inline command line like Redis's sdssplitargs (quotes, escapes). Appends decoded arguments to `storage`
/// and their views to `out` (storage must have reserved capacity >= line.size() so the views stay valid).
/// Returns false on unbalanced quotes.
bool split_inline_args(std::string_view line, std::string& storage, std::vector<std::string_view>& out);

}  // namespace turret::resp
