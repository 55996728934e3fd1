#pragma once
// request_context: what every request carries through a pipeline, whatever front end it came from.
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace turret {

/// Per-request context. Created by a front end for each request and owned by it until the response is produced.
///
/// Contract
/// - `deadline` is the latest time the caller still wants an answer (time_point::max() = none). Front ends set it
///   from the protocol (gRPC deadline); a timeout layer may tighten it, never loosen it.
/// - Cancellation is cooperative and explicit: a service that suspends (waits for readiness, I/O, a timer) binds its
///   asynchronous operation to `cancel_slot()`. Whoever decides the request is over (a timeout layer, a gRPC client
///   cancelling, a draining server) calls `cancel()`; the pending operation then completes with
///   `boost::asio::error::operation_aborted`, and the service returns that error (layers above translate it, e.g. the
///   timeout layer into `timeout_errc::elapsed`). A service that never suspends ignores cancellation.
///   Only one operation at a time may be bound to the slot (requests are sequential within themselves).
/// - The context is not shared between threads while a request runs; it lives on the front end's coroutine frame.
struct request_context {
  using clock = std::chrono::steady_clock;

  using endpoint = boost::asio::ip::tcp::endpoint;

  std::string_view protocol;                 ///< "resp", "http" or "grpc" (static storage)
  std::string identity;                      ///< authenticated principal; empty = anonymous
  /// The credentials the request carries in its protocol's envelope, verbatim: HTTP's `Authorization` header value,
  /// gRPC's `authorization` metadata ("Bearer <token>", "Basic <base64 of user:password>"); empty when none (RESP
  /// authenticates with a command, AUTH / HELLO AUTH, not per request). Set by the front end for each request and
  /// valid while the request runs (it views the front end's message); cleared by reset_for_next_request(). The auth
  /// layer reads it (middleware/auth): a request with credentials is authenticated from them alone.
  std::string_view credentials;
  clock::time_point deadline = clock::time_point::max();

  /// Remote address of the client (unspecified when not TCP). A front end either sets it (set_peer: a connection's
  /// address, known once) or, where finding it costs something per request (grpc++ builds a string per call),
  /// installs a resolver that runs on first use: most requests never ask.
  const endpoint& peer() {
    if (peer_resolver_ != nullptr) {
      peer_ = peer_resolver_(peer_source_);
      peer_resolver_ = nullptr;
    }
    return peer_;
  }
  void set_peer(const endpoint& ep) noexcept {
    peer_ = ep;
    peer_resolver_ = nullptr;
  }
  /// `fn(source)` gives the peer when first asked; `source` must stay valid while the request can run.
  using peer_resolver = endpoint (*)(const void* source);
  void set_peer_resolver(peer_resolver fn, const void* source) noexcept {
    peer_resolver_ = fn;
    peer_source_ = source;
  }

  /// The client connection the request came in on, for per-connection limits: a process-unique id that a front
  /// end assigns once per connection (set_connection_id(new_connection_id()): RESP and HTTP/1.1 connections). A
  /// front end that does not see its connections (grpc++ hides the HTTP/2 connection behind its calls) leaves it
  /// unset, and the id is then derived on first use from the peer's address and port, which name one TCP connection
  /// while it is open (such ids have the top bit set, so they never equal an assigned one). 0 = unknown (no id and
  /// no peer port: requests made in-process, tests): all such requests count as one connection.
  std::uint64_t connection_id() {
    if (connection_id_ == 0) {
      const endpoint& ep = peer();
      if (ep.port() != 0) connection_id_ = derived_connection_id(ep);
    }
    return connection_id_;
  }
  void set_connection_id(std::uint64_t id) noexcept { connection_id_ = id; }
  /// A new process-unique connection id (a counter from 1; never has the top bit set).
  static std::uint64_t new_connection_id() noexcept;
  /// The id of the connection from `ep` (address and port mixed; top bit set).
  static std::uint64_t derived_connection_id(const endpoint& ep) noexcept;

  /// Request id: the one the client sent (x-request-id, gRPC metadata) or one generated on first use.
  const std::string& request_id() {
    if (request_id_.empty()) request_id_ = generate_request_id();
    return request_id_;
  }
  void set_request_id(std::string id) { request_id_ = std::move(id); }
  bool has_request_id() const noexcept { return !request_id_.empty(); }

  /// A uniformly distributed 64-bit value for this request, drawn on first use from the calling thread's PRNG
  /// (splitmix64, seeded once per thread from std::random_device) and stable until the request ends. Layers that
  /// sample requests (fault injection; later tracing, hedging) decide from it, so that a decision taken on the
  /// synchronous fast path is taken again, identically, by ready()/call() when the fast path declines: the decision
  /// lives in the request, and try_call_now keeps its promise of no side effect on shared state. A layer mixes the
  /// value with a salt of its own, so that two sampling layers of one pipeline decide independently.
  std::uint64_t sample() {
    if (!has_sample_) {
      sample_ = next_thread_sample();
      has_sample_ = true;
    }
    return sample_;
  }
  /// Fixes the value sample() returns for this request (tests drive sampling layers with a seeded generator).
  void set_sample(std::uint64_t v) noexcept {
    sample_ = v;
    has_sample_ = true;
  }

  boost::asio::cancellation_slot cancel_slot() noexcept { return cancel_.slot(); }
  void cancel(boost::asio::cancellation_type type = boost::asio::cancellation_type::total) {
    cancelled_ = true;
    cancel_.emit(type);
  }
  bool cancelled() const noexcept { return cancelled_; }

  /// Cancels the operation currently bound to cancel_slot() WITHOUT ending the request: cancelled() stays false and
  /// the next operation may bind the slot again. For layers that bound one attempt of a request, not the request:
  /// retry's per_try_timeout ends a slow attempt and tries again, a hedge ends the losing attempt. The interrupted
  /// operation completes with operation_aborted like a cancelled one; the layer that interrupted tells the two apart.
  void interrupt(boost::asio::cancellation_type type = boost::asio::cancellation_type::total) { cancel_.emit(type); }

  /// A note that a layer leaves for itself across the synchronous fast path. A layer whose try_call_now made an
  /// attempt and must continue asynchronously (a retry after a failed fast attempt needs a backoff wait) records
  /// what it did here, keyed by an address of its own (`owner`), and returns nullopt; its ready()/call() for the
  /// same request take the note and go on from there (middleware/retry documents its use). Reset with the request.
  void set_fast_path_note(const void* owner, std::uint32_t value) noexcept {
    note_owner_ = owner;
    note_value_ = value;
  }
  /// The note `owner` left, if any (it stays until taken or the request is reset).
  bool has_fast_path_note(const void* owner) const noexcept { return note_owner_ == owner && owner != nullptr; }
  /// Takes (and clears) the note `owner` left; 0 when there is none.
  std::uint32_t take_fast_path_note(const void* owner) noexcept {
    if (!has_fast_path_note(owner)) return 0;
    note_owner_ = nullptr;
    return std::exchange(note_value_, 0);
  }

  /// The endpoints a balancer already sent this request to (load_balance): bit i is its endpoint i (i < 64), set at
  /// each pick. A retry on this context, and a hedge on a fork (the hedge layer merges the marks of the request and
  /// of its earlier hedges into each new fork), then goes to another endpoint while one is in service: Envoy's
  /// previous_hosts retry predicate. The marks belong to one balancer (`balancer`, an address of its own): a pick by
  /// another one replaces them. Reset with the request.
  std::uint64_t attempted_endpoints(const void* balancer) const noexcept {
    return attempted_owner_ == balancer ? attempted_ : 0;
  }
  void note_attempted_endpoint(const void* balancer, std::size_t i) noexcept {
    if (attempted_owner_ != balancer) {
      attempted_owner_ = balancer;
      attempted_ = 0;
    }
    if (i < 64) attempted_ |= std::uint64_t{1} << i;
  }
  /// Adds `other`'s marks (a parallel attempt's) to this context's.
  void merge_attempted_endpoints(const request_context& other) noexcept {
    if (other.attempted_owner_ == nullptr) return;
    if (attempted_owner_ != other.attempted_owner_) {
      attempted_owner_ = other.attempted_owner_;
      attempted_ = 0;
    }
    attempted_ |= other.attempted_;
  }

  /// Reset for reuse by the next request of the same connection (keeps protocol, peer, identity: a RESP connection
  /// authenticates once; front ends whose requests carry their own credentials clear identity themselves).
  void reset_for_next_request() {
    deadline = clock::time_point::max();
    credentials = {};
    request_id_.clear();
    has_sample_ = false;
    cancelled_ = false;
    note_owner_ = nullptr;
    note_value_ = 0;
    attempted_owner_ = nullptr;
    attempted_ = 0;
    cancel_.slot().clear();
  }

  /// A process-unique id: the process's start time and a counter, 32 hex digits. Out of line on purpose: its
  /// counter is a process-wide singleton, and a function-local static in a header would be one per plugin.
  static std::string generate_request_id();

  /// splitmix64's finaliser: a bijection of 64-bit values whose outputs look independent for nearby inputs.
  static constexpr std::uint64_t mix64(std::uint64_t z) noexcept {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  /// The next value of the calling thread's splitmix64 sequence (what sample() draws from).
  static std::uint64_t next_thread_sample() noexcept;

 private:
  endpoint peer_;
  std::uint64_t connection_id_ = 0;
  peer_resolver peer_resolver_ = nullptr;
  const void* peer_source_ = nullptr;
  std::string request_id_;
  std::uint64_t sample_ = 0;
  bool has_sample_ = false;
  boost::asio::cancellation_signal cancel_;
  bool cancelled_ = false;
  const void* note_owner_ = nullptr;
  std::uint32_t note_value_ = 0;
  const void* attempted_owner_ = nullptr;
  std::uint64_t attempted_ = 0;
};

}  // namespace turret
