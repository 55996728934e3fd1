#pragma once
// HELLO's reply, shared by every backend that answers HELLO itself (the in-process store, the upstream modes), so
// that they all answer as redis-server 7.0 does.
#include <turret/kv/reply.hpp>
#include <turret/kv/session.hpp>

#include <string_view>

namespace turret::kv {

/// The Redis version turretd reports (HELLO, INFO server).
inline constexpr std::string_view redis_version = "7.0.15";

/// HELLO's map of seven: server, version, proto (s.resp), id (s.id), mode standalone, role master, modules (empty).
/// Encoded in the session's protocol as it is now (call it after switching).
void hello_reply(reply_builder& out, const session& s);

}  // namespace turret::kv
