#pragma once
// Options of one HTTP listener: the `http:` section of a `protocol: http` listener in turretd's YAML.
//
//   http:
//     max_connections: 10000     # connections beyond this are closed at once (503 written first)
//     max_header_bytes: 16kb     # request line + headers; larger -> 431 (a target alone larger than
//     max_uri_bytes: 8kb         #   max_uri_bytes -> 414)
//     max_body_bytes: 8mb        # larger bodies -> 413 (checked against Content-Length before reading)
//     idle_timeout: 60s          # keep-alive connection without a request is closed (0 = never)
//     header_timeout: 10s        # from the first byte of a request to the end of its headers -> 408 + close
//     body_timeout: 30s          # reading the body -> 408 + close
//     sse_buffer_bytes: 1mb      # pending Server-Sent Events of a slow subscriber; beyond it the stream is closed
//     sse_keepalive: 15s         # comment line sent on an idle event stream (detects gone clients)
//     tcp_nodelay: true
#include <turret/config.hpp>

#include <chrono>
#include <cstddef>

namespace turret::http_frontend {

struct http_options {
  std::size_t max_connections = 10000;
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t max_uri_bytes = 8 * 1024;
  std::size_t max_body_bytes = 8 * 1024 * 1024;
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds body_timeout{30'000};
  std::size_t sse_buffer_bytes = 1024 * 1024;
  std::chrono::milliseconds sse_keepalive{15'000};
  bool tcp_nodelay = true;
};

/// Parses an `http:` mapping (null/undefined -> defaults). Unknown keys and bad values throw turret::config_error.
http_options parse_http_options(const config_node& node);

}  // namespace turret::http_frontend
