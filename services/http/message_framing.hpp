#pragma once
// Request message framing (RFC 9112 section 6): how long a request's body is, decided from its Transfer-Encoding and
// Content-Length field lines alone. No Beast here: the connection hands over the raw field values, and a unit test or
// a fuzz target can call the check directly.
//
// Why this exists: Beast 1.81's parser treats a Transfer-Encoding whose final coding is not `chunked` (`xchunked`,
// `chunked, gzip`) as "no body" and goes on parsing the would-be body as the next request: request smuggling behind
// any proxy that reads the same bytes differently. Beast also ignores the codings before `chunked` (`gzip, chunked`),
// and accepts `Transfer-Encoding: chunked, chunked` as bodyless. The rules below decide first; the connection then
// checks that Beast frames the body the same way (it rejects the request when not).
//
// Rules (every failure is answered, then the connection is closed: the rest of its bytes cannot be trusted):
//   - Transfer-Encoding in an HTTP/1.0 request                        -> 400 (RFC 9112 6.1: faulty framing)
//   - Transfer-Encoding together with Content-Length                  -> 400 (RFC 9112 6.1, 6.3 item 3)
//   - Transfer-Encoding not a valid list of transfer codings (RFC 9110 5.6.1 list syntax: OWS, empty elements;
//     `coding *( OWS ";" OWS name BWS "=" BWS ( token / quoted-string ) )`)               -> 400
//   - no coding, or the final coding is not exactly `chunked` (no parameters)            -> 400 (RFC 9112 6.3 item 4)
//   - `chunked` more than once (RFC 9112 7: applied at most once)                         -> 400
//   - any coding before the final `chunked` (this server decodes none: gzip, deflate...)  -> 501 (RFC 9112 6.1)
//   - Content-Length not 1*DIGIT (a list of identical values is accepted, RFC 9110 8.6), or over 2^64-1 -> 400
//   - Content-Length values that differ (in one field line or across several)           -> 400
// Coding names compare case-insensitively. Several field lines of one name form one list, in order (RFC 9110 5.3).
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace turret::http_frontend {

enum class body_framing : std::uint8_t { none, content_length, chunked };

struct framing_verdict {
  body_framing framing = body_framing::none;
  std::uint64_t content_length = 0;  ///< when framing == content_length
  int status = 0;                    ///< 0: acceptable; else 400 or 501, and the connection must close
  std::string_view code;             ///< error code of the JSON error body ("bad_request", "not_implemented")
  std::string message;               ///< why (names the unsupported coding for a 501)

  bool ok() const noexcept { return status == 0; }
};

/// Decides the framing of a request. `version` is 10 or 11; `transfer_encoding` and `content_length` are the values
/// of every field line of that name, in the order received (leading and trailing whitespace already removed or not:
/// both are accepted). Never throws except std::bad_alloc building an error message.
framing_verdict check_request_framing(int version, std::span<const std::string_view> transfer_encoding,
                                      std::span<const std::string_view> content_length);

/// True when a parser that is about to read the body as `chunked` or as `content_length` bytes (neither: no body)
/// frames it as the accepted verdict `v` says. A request on which they disagree must be refused (400, close).
bool framing_agrees(const framing_verdict& v, bool chunked, std::optional<std::uint64_t> content_length) noexcept;

}  // namespace turret::http_frontend
