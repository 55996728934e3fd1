#pragma once
// The key-value request and response: what every front end sends through its pipeline into the backend, whatever
// the protocol (RESP, REST, gRPC) and whatever the backend (the in-process store, upstream Redis servers).
#include <turret/context.hpp>
#include <turret/kv/reply.hpp>
#include <turret/kv/session.hpp>

#include <span>
#include <string_view>

namespace turret::kv {

/// One command. Non-owning: everything it refers to outlives the call (the front end's connection frame).
struct request {
  request_context& ctx;
  session& sess;
  std::span<const std::string_view> args;  ///< command name + arguments, binary safe
  reply_builder& out;

  request_context& context() noexcept { return ctx; }
};

/// Response: the reply has been written to request.out. Errors are reserved for the pipeline (timeouts, limits);
/// a Redis error reply (-ERR ...) is a successful call.
struct response {};

}  // namespace turret::kv
