// Fuzz target: the RESP request parser (resp::request_parser + resp::input_buffer, framework/src/resp_parser.cpp).
//
// Input: one option byte, then the bytes a client sends. The option byte picks the parser limits (Redis's defaults
// or tiny ones, so that the "too big" and "invalid bulk length" paths are reachable with small inputs), whether the
// client still has to authenticate (the tighter unauthenticated limits), and a seed for how the bytes are split
// into reads.
//
// The same bytes are parsed twice: whole (one contiguous view, as when a pipeline arrives in one read) and fed in
// fragments through an input_buffer that starts tiny, so that it compacts, grows and moves while a command is
// pending (the parser must rebase the views it recorded). Checked after every parse():
// - ok: at least one argument; consumed() > 0 and within the input; a multibulk command's arguments lie inside the
//   consumed bytes and respect max_bulk_len (unauth_max_bulk_len and unauth_max_multibulk_len while unauthenticated);
// - need_more: nothing beyond the input is claimed; wanted_size(), when known, exceeds what is buffered;
// - error: a "Protocol error: ..." text, and the state is sticky.
// Every argument is read byte by byte (ASan catches a view into freed or foreign memory). Both runs must produce the
// same commands and end the same way, except that a fragment may legitimately hit a "too big" limit that the whole
// input resolves (Redis behaves the same: the limit applies to what is buffered). Each command, re-encoded as a
// multibulk request, must parse back to the same arguments.
#include <turret/resp/parser.hpp>

#include "check.hpp"

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

using turret::resp::input_buffer;
using turret::resp::parser_options;
using turret::resp::request_parser;
using status = request_parser::status;


struct outcome {
  std::vector<std::vector<std::string>> commands;
  status last = status::need_more;
  std::string error;
  bool too_big = false;  // the error is one of the buffered-size limits
};

/// Reads every byte of every argument (a stale view is a use-after-free that ASan reports here).
std::vector<std::string> copy_args(const request_parser& p) {
  std::vector<std::string> out;
  for (std::string_view a : p.args()) out.emplace_back(a.data(), a.size());
  return out;
}

void check_ok(const request_parser& p, std::string_view in, bool auth_required) {
  CHECK(!p.args().empty());
  CHECK(p.consumed() > 0 && p.consumed() <= in.size());
  if (p.inline_command()) return;  // inline arguments live in the parser's own storage (quotes, escapes)
  const parser_options& o = p.options();
  const char* begin = in.data();
  const char* end = in.data() + p.consumed();
  for (std::string_view a : p.args()) {
    CHECK(a.data() >= begin && a.data() + a.size() <= end);
    CHECK(a.size() <= o.max_bulk_len);
    if (auth_required) CHECK(static_cast<long long>(a.size()) <= o.unauth_max_bulk_len);
  }
  if (auth_required) CHECK(static_cast<long long>(p.args().size()) <= o.unauth_max_multibulk_len);
  CHECK(static_cast<long long>(p.args().size()) <= o.max_multibulk_len);
}

void record_error(const request_parser& p, outcome& r) {
  CHECK(p.failed());
  CHECK(p.error_text().rfind("Protocol error: ", 0) == 0);
  CHECK(p.args().empty());
  r.error = p.error_text();
  r.too_big = r.error.find("too big") != std::string::npos;
}

/// Whole input at once.
outcome parse_whole(std::string_view in, const parser_options& o, bool auth) {
  outcome r;
  request_parser p(o);
  p.set_auth_required(auth);
  for (;;) {
    const status st = p.parse(in);
    r.last = st;
    if (st == status::error) {
      record_error(p, r);
      CHECK(p.parse(in) == status::error);  // sticky
      return r;
    }
    CHECK(p.consumed() <= in.size());
    if (st == status::need_more) {
      if (p.wanted_size() != 0) CHECK(p.wanted_size() > in.size() - p.consumed());
      in.remove_prefix(p.consumed());
      return r;
    }
    check_ok(p, in, auth);
    r.commands.push_back(copy_args(p));
    in.remove_prefix(p.consumed());
  }
}

/// The same bytes in fragments through an input_buffer (the RESP front end's read loop).
outcome parse_split(std::string_view in, const parser_options& o, bool auth, std::uint32_t seed) {
  outcome r;
  request_parser p(o);
  p.set_auth_required(auth);
  input_buffer buf(64);
  std::size_t fed = 0;
  while (fed < in.size()) {
    // Fragment sizes from a small LCG over the seed: 1..64 bytes, sometimes the rest.
    seed = seed * 1103515245u + 12345u;
    std::size_t n = (seed >> 16) % 64 + 1;
    if ((seed >> 8) % 16 == 0) n = in.size() - fed;
    n = std::min(n, in.size() - fed);
    auto room = buf.prepare(n);
    CHECK(room.size() >= n);
    std::memcpy(room.data(), in.data() + fed, n);
    buf.commit(n);
    fed += n;
    for (;;) {
      const std::string_view before = buf.readable();
      const status st = turret::resp::parse(p, buf);
      r.last = st;
      if (st == status::error) {
        record_error(p, r);
        return r;
      }
      if (st == status::need_more) {
        CHECK(p.consumed() <= before.size());
        if (p.wanted_size() != 0) CHECK(p.wanted_size() > before.size() - p.consumed());
        if ((seed >> 4) % 8 == 0) buf.shrink_to(64);  // give memory back while a command is pending
        break;
      }
      check_ok(p, before, auth);
      r.commands.push_back(copy_args(p));
    }
  }
  return r;
}

/// Multibulk encoding of a command.
std::string encode(const std::vector<std::string>& args) {
  std::string out = "*" + std::to_string(args.size()) + "\r\n";
  for (const auto& a : args) {
    out += "$" + std::to_string(a.size()) + "\r\n";
    out += a;
    out += "\r\n";
  }
  return out;
}

void check_round_trip(const std::vector<std::string>& cmd) {
  const std::string wire = encode(cmd);
  request_parser p;  // default limits: every argument the fuzz input can produce fits
  CHECK(p.parse(wire) == status::ok);
  CHECK(p.consumed() == wire.size());
  CHECK(copy_args(p) == cmd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t opt = data[0];
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);

  parser_options o;
  if (opt & 1) {  // tiny limits: reach every limit with a few bytes
    o.max_bulk_len = (opt >> 4) & 7;
    o.max_inline_size = 8 + ((opt >> 4) & 15);
    o.max_multibulk_len = 1 + ((opt >> 5) & 3);
    o.unauth_max_multibulk_len = 2;
    o.unauth_max_bulk_len = 3;
  }
  const bool auth = (opt & 2) != 0;
  const std::uint32_t seed = opt * 2654435761u + static_cast<std::uint32_t>(size);

  const outcome whole = parse_whole(in, o, auth);
  const outcome split = parse_split(in, o, auth, seed);

  // The same commands, in order, up to the first "too big" limit either run hit on a partial buffer.
  const std::size_t common = std::min(whole.commands.size(), split.commands.size());
  for (std::size_t i = 0; i < common; ++i) CHECK(whole.commands[i] == split.commands[i]);
  if (!whole.too_big && !split.too_big) {
    CHECK(whole.commands.size() == split.commands.size());
    CHECK(whole.last == split.last);
    CHECK(whole.error == split.error);
  } else if (split.too_big && !whole.too_big) {
    CHECK(split.commands.size() <= whole.commands.size());
  }
  for (const auto& cmd : whole.commands) check_round_trip(cmd);
  return 0;
}
