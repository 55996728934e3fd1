#pragma once
// The unary RPCs of turret.kv.v1.KV as data for the drivers of grpc_unary.cpp. Each operation is a struct with the
// message types and two pure, synchronous functions:
//   static grpc::Status command(const Request&, int step, cmd_args&)
//       builds the command of step `step` (0, 1, ...); a non-OK status ends the call at once (invalid argument);
//   static std::optional<grpc::Status> reply(const Request&, int step, kv::reply_value&, Response&)
//       interprets that command's (non-error) reply: the call's final status, or nullopt = run step + 1.
//       It writes the response only together with a final status.
// Both drivers use them: the inline one (grpc's thread, the pipeline's try_call_now) and the asynchronous one
// (unary_call, on the runtime, readiness + call), which can take over at any step because try_call_now has no side
// effect when it declines.
#include <services/grpc/grpc_call.hpp>

#include <turret/kv/v1/kv.grpc.pb.h>

#include <boost/container/small_vector.hpp>

#include <optional>

namespace turret::grpc_frontend::unary_ops {

namespace pb = ::turret::kv::v1;

/// The arguments of one command: string views into the request message, the literals, and `num` (decimal).
struct cmd_args {
  boost::container::small_vector<std::string_view, 8> v;
  number num;
  void push(std::string_view s) { v.push_back(s); }
  std::span<const std::string_view> view() const noexcept { return {v.data(), v.size()}; }
};

inline grpc::Status not_found() { return {grpc::StatusCode::NOT_FOUND, "key not found"}; }
inline grpc::Status unexpected(const kv::reply_value&) { return {grpc::StatusCode::INTERNAL, "unexpected reply"}; }
using final_status = std::optional<grpc::Status>;

struct get_op {
  using request = pb::GetRequest;
  using response = pb::GetResponse;
  static constexpr rpc id = rpc::get;
  static grpc::Status command(const request& rq, int, cmd_args& a) {
    a.push("GET");
    a.push(sv(rq.key()));
    return grpc::Status();
  }
  static final_status reply(const request&, int, kv::reply_value& v, response& rs) {
    if (v.is_null()) return not_found();
    if (v.type != kv::reply_value::kind::bulk) return unexpected(v);
    rs.set_value(std::move(v.str));
    return grpc::Status();
  }
};

struct set_op {
  using request = pb::SetRequest;
  using response = pb::SetResponse;
  static constexpr rpc id = rpc::set;
  static grpc::Status command(const request& rq, int, cmd_args& a) {
    if (rq.ttl_ms() < 0) return invalid("ttl_ms must not be negative");
    if (rq.keep_ttl() && rq.ttl_ms() != 0) return invalid("keep_ttl and ttl_ms are mutually exclusive");
    a.push("SET");
    a.push(sv(rq.key()));
    a.push(sv(rq.value()));
    if (rq.ttl_ms() > 0) {
      a.num = number(static_cast<long long>(rq.ttl_ms()));
      a.push("PX");
      a.push(a.num.view());
    }
    if (rq.keep_ttl()) a.push("KEEPTTL");
    switch (rq.condition()) {
      case pb::CONDITION_IF_NOT_EXISTS: a.push("NX"); break;
      case pb::CONDITION_IF_EXISTS: a.push("XX"); break;
      case pb::CONDITION_UNSPECIFIED: break;
      default: return invalid("unknown condition");
    }
    if (rq.return_previous()) a.push("GET");
    return grpc::Status();
  }
  static final_status reply(const request& rq, int, kv::reply_value& v, response& rs) {
    if (!rq.return_previous()) {
      if (v.is_null()) return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "condition not met");
      return grpc::Status();
    }
    // SET ... GET: the reply is the old value either way; the condition failed when NX found a value or XX none.
    const bool had = !v.is_null();
    if ((rq.condition() == pb::CONDITION_IF_NOT_EXISTS && had) || (rq.condition() == pb::CONDITION_IF_EXISTS && !had))
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "condition not met");
    rs.set_had_previous(had);
    if (had) *rs.mutable_previous() = std::move(v.str);
    return grpc::Status();
  }
};

struct delete_op {
  using request = pb::DeleteRequest;
  using response = pb::DeleteResponse;
  static constexpr rpc id = rpc::del;
  static grpc::Status command(const request& rq, int, cmd_args& a) {
    if (rq.keys_size() == 0) return invalid("keys must not be empty");
    a.v.reserve(static_cast<std::size_t>(rq.keys_size()) + 1);
    a.push("DEL");
    for (const auto& k : rq.keys()) a.push(sv(k));
    return grpc::Status();
  }
  static final_status reply(const request&, int, kv::reply_value& v, response& rs) {
    rs.set_deleted(v.integer);
    return grpc::Status();
  }
};

struct mget_op {
  using request = pb::MGetRequest;
  using response = pb::MGetResponse;
  static constexpr rpc id = rpc::mget;
  static grpc::Status command(const request& rq, int, cmd_args& a) {
    if (rq.keys_size() == 0) return invalid("keys must not be empty");
    a.v.reserve(static_cast<std::size_t>(rq.keys_size()) + 1);
    a.push("MGET");
    for (const auto& k : rq.keys()) a.push(sv(k));
    return grpc::Status();
  }
  static final_status reply(const request&, int, kv::reply_value& v, response& rs) {
    rs.mutable_values()->Reserve(static_cast<int>(v.elements.size()));
    for (auto& e : v.elements) {
      auto* o = rs.add_values();
      if (e.type == kv::reply_value::kind::bulk) {
        o->set_found(true);
        *o->mutable_value() = std::move(e.str);
      }
    }
    return grpc::Status();
  }
};

struct mset_op {
  using request = pb::MSetRequest;
  using response = pb::MSetResponse;
  static constexpr rpc id = rpc::mset;
  static grpc::Status command(const request& rq, int, cmd_args& a) {
    if (rq.entries_size() == 0) return invalid("entries must not be empty");
    a.v.reserve(static_cast<std::size_t>(rq.entries_size()) * 2 + 1);
    a.push(rq.if_none_exist() ? "MSETNX" : "MSET");
    for (const auto& e : rq.entries()) {
      a.push(sv(e.key()));
      a.push(sv(e.value()));
    }
    return grpc::Status();
  }
  static final_status reply(const request& rq, int, kv::reply_value& v, response&) {
    if (rq.if_none_exist() && v.integer == 0)
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "a key already exists");
    return grpc::Status();
  }
};

struct incr_op {
  using request = pb::IncrRequest;
  using response = pb::IncrResponse;
  static constexpr rpc id = rpc::incr;
  static grpc::Status command(const request& rq, int, cmd_args& a) {
    a.num = number(static_cast<long long>(rq.delta()));
    a.push("INCRBY");
    a.push(sv(rq.key()));
    a.push(a.num.view());
    return grpc::Status();
  }
  static final_status reply(const request&, int, kv::reply_value& v, response& rs) {
    rs.set_value(v.integer);
    return grpc::Status();
  }
};

struct expire_op {
  using request = pb::ExpireRequest;
  using response = pb::ExpireResponse;
  static constexpr rpc id = rpc::expire;
  static grpc::Status command(const request& rq, int, cmd_args& a) {
    a.num = number(static_cast<long long>(rq.ttl_ms()));
    a.push("PEXPIRE");
    a.push(sv(rq.key()));
    a.push(a.num.view());
    switch (rq.condition()) {
      case pb::EXPIRE_CONDITION_UNSPECIFIED: break;
      case pb::EXPIRE_CONDITION_IF_NO_TTL: a.push("NX"); break;
      case pb::EXPIRE_CONDITION_IF_HAS_TTL: a.push("XX"); break;
      case pb::EXPIRE_CONDITION_IF_GREATER: a.push("GT"); break;
      case pb::EXPIRE_CONDITION_IF_LESS: a.push("LT"); break;
      default: return invalid("unknown condition");
    }
    return grpc::Status();
  }
  static final_status reply(const request& rq, int, kv::reply_value& v, response& rs) {
    if (v.integer == 0 && rq.condition() == pb::EXPIRE_CONDITION_UNSPECIFIED) return not_found();
    rs.set_applied(v.integer != 0);
    return grpc::Status();
  }
};

struct ttl_op {
  using request = pb::TtlRequest;
  using response = pb::TtlResponse;
  static constexpr rpc id = rpc::ttl;
  static grpc::Status command(const request& rq, int, cmd_args& a) {
    a.push("PTTL");
    a.push(sv(rq.key()));
    return grpc::Status();
  }
  static final_status reply(const request&, int, kv::reply_value& v, response& rs) {
    if (v.integer == -2) return not_found();
    rs.set_ttl_ms(v.integer);
    return grpc::Status();
  }
};

/// PERSIST, then (when it removed nothing) PTTL to tell "missing" (-2) from "no TTL".
struct persist_op {
  using request = pb::PersistRequest;
  using response = pb::PersistResponse;
  static constexpr rpc id = rpc::persist;
  static grpc::Status command(const request& rq, int step, cmd_args& a) {
    a.push(step == 0 ? "PERSIST" : "PTTL");
    a.push(sv(rq.key()));
    return grpc::Status();
  }
  static final_status reply(const request&, int step, kv::reply_value& v, response& rs) {
    if (step == 0) {
      if (v.integer == 0) return std::nullopt;  // no TTL removed: missing or persistent?
      rs.set_removed(true);
      return grpc::Status();
    }
    if (v.integer == -2) return not_found();
    rs.set_removed(false);
    return grpc::Status();
  }
};

struct publish_op {
  using request = pb::PublishRequest;
  using response = pb::PublishResponse;
  static constexpr rpc id = rpc::publish;
  static grpc::Status command(const request& rq, int, cmd_args& a) {
    a.push("PUBLISH");
    a.push(sv(rq.channel()));
    a.push(sv(rq.message()));
    return grpc::Status();
  }
  static final_status reply(const request&, int, kv::reply_value& v, response& rs) {
    rs.set_receivers(v.integer);
    return grpc::Status();
  }
};


}  // namespace turret::grpc_frontend::unary_ops
