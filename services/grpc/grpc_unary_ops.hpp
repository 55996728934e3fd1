#pragma once
// The unary RPCs of turret.kv.v1.KV over the operations of <turret/ops/operations.hpp> (the table the REST front end
// shares: the same input rules, commands and interpretation of replies). Each RPC is a struct naming its operation
// and message types, with two translations and nothing else:
//   static grpc::Status decode(const request&, op::input&)
//       the message as the operation's input (views into the message); a non-OK status (an enum value the proto
//       does not define) ends the call at once. The operation validates the input itself.
//   static void encode(op::output&, response&)
//       the operation's output (after an ok outcome) as the response message.
// The outcomes other than ok map to a status in one place, to_status() (grpc_status.hpp). Both drivers of
// grpc_unary.cpp use them: the inline one (grpc's thread, ops::run_now) and the asynchronous one (unary_call, on
// the runtime, ops::run), which can take over at any step.
#include <services/grpc/grpc_call.hpp>
#include <turret/ops/operations.hpp>

#include <turret/kv/v1/kv.grpc.pb.h>

namespace turret::grpc_frontend::unary_ops {

namespace pb = ::turret::kv::v1;

struct get_rpc {
  using op = ops::get_op;
  using request = pb::GetRequest;
  using response = pb::GetResponse;
  static constexpr rpc id = rpc::get;
  static grpc::Status decode(const request& rq, op::input& in) {
    in.key = sv(rq.key());
    return grpc::Status();
  }
  static void encode(op::output& o, response& rs) { rs.set_value(std::move(o.value)); }
};

struct set_rpc {
  using op = ops::set_op;
  using request = pb::SetRequest;
  using response = pb::SetResponse;
  static constexpr rpc id = rpc::set;
  static grpc::Status decode(const request& rq, op::input& in) {
    in.key = sv(rq.key());
    in.value = sv(rq.value());
    if (rq.ttl_ms() != 0) in.ttl_ms = static_cast<long long>(rq.ttl_ms());  // 0: none (a negative TTL is refused)
    in.keep_ttl = rq.keep_ttl();
    in.return_previous = rq.return_previous();
    switch (rq.condition()) {
      case pb::CONDITION_UNSPECIFIED: in.cond = ops::condition::none; break;
      case pb::CONDITION_IF_NOT_EXISTS: in.cond = ops::condition::if_not_exists; break;
      case pb::CONDITION_IF_EXISTS: in.cond = ops::condition::if_exists; break;
      default: return invalid("unknown condition");
    }
    return grpc::Status();
  }
  static void encode(op::output& o, response& rs) {
    rs.set_had_previous(o.had_previous);
    if (o.had_previous) *rs.mutable_previous() = std::move(o.previous);
  }
};

struct delete_rpc {
  using op = ops::delete_op;
  using request = pb::DeleteRequest;
  using response = pb::DeleteResponse;
  static constexpr rpc id = rpc::del;
  static grpc::Status decode(const request& rq, op::input& in) {
    in.keys.reserve(static_cast<std::size_t>(rq.keys_size()));
    for (const auto& k : rq.keys()) in.keys.push_back(sv(k));
    return grpc::Status();
  }
  static void encode(op::output& o, response& rs) { rs.set_deleted(o.deleted); }
};

struct mget_rpc {
  using op = ops::mget_op;
  using request = pb::MGetRequest;
  using response = pb::MGetResponse;
  static constexpr rpc id = rpc::mget;
  static grpc::Status decode(const request& rq, op::input& in) {
    in.keys.reserve(static_cast<std::size_t>(rq.keys_size()));
    for (const auto& k : rq.keys()) in.keys.push_back(sv(k));
    return grpc::Status();
  }
  static void encode(op::output& o, response& rs) {
    rs.mutable_values()->Reserve(static_cast<int>(o.values.size()));
    for (auto& v : o.values) {
      auto* e = rs.add_values();
      if (v) {
        e->set_found(true);
        *e->mutable_value() = std::move(*v);
      }
    }
  }
};

struct mset_rpc {
  using op = ops::mset_op;
  using request = pb::MSetRequest;
  using response = pb::MSetResponse;
  static constexpr rpc id = rpc::mset;
  static grpc::Status decode(const request& rq, op::input& in) {
    in.entries.reserve(static_cast<std::size_t>(rq.entries_size()));
    for (const auto& e : rq.entries()) in.entries.emplace_back(sv(e.key()), sv(e.value()));
    in.if_none_exist = rq.if_none_exist();
    return grpc::Status();
  }
  static void encode(op::output&, response&) {}
};

struct incr_rpc {
  using op = ops::incr_op;
  using request = pb::IncrRequest;
  using response = pb::IncrResponse;
  static constexpr rpc id = rpc::incr;
  static grpc::Status decode(const request& rq, op::input& in) {
    in.key = sv(rq.key());
    in.delta = static_cast<long long>(rq.delta());
    return grpc::Status();
  }
  static void encode(op::output& o, response& rs) { rs.set_value(o.value); }
};

struct expire_rpc {
  using op = ops::expire_op;
  using request = pb::ExpireRequest;
  using response = pb::ExpireResponse;
  static constexpr rpc id = rpc::expire;
  static grpc::Status decode(const request& rq, op::input& in) {
    in.key = sv(rq.key());
    in.ttl_ms = static_cast<long long>(rq.ttl_ms());
    switch (rq.condition()) {
      case pb::EXPIRE_CONDITION_UNSPECIFIED: in.cond = ops::expire_condition::none; break;
      case pb::EXPIRE_CONDITION_IF_NO_TTL: in.cond = ops::expire_condition::if_no_ttl; break;
      case pb::EXPIRE_CONDITION_IF_HAS_TTL: in.cond = ops::expire_condition::if_has_ttl; break;
      case pb::EXPIRE_CONDITION_IF_GREATER: in.cond = ops::expire_condition::if_greater; break;
      case pb::EXPIRE_CONDITION_IF_LESS: in.cond = ops::expire_condition::if_less; break;
      default: return invalid("unknown condition");
    }
    return grpc::Status();
  }
  static void encode(op::output& o, response& rs) { rs.set_applied(o.applied); }
};

struct ttl_rpc {
  using op = ops::ttl_op;
  using request = pb::TtlRequest;
  using response = pb::TtlResponse;
  static constexpr rpc id = rpc::ttl;
  static grpc::Status decode(const request& rq, op::input& in) {
    in.key = sv(rq.key());
    return grpc::Status();
  }
  static void encode(op::output& o, response& rs) { rs.set_ttl_ms(o.ttl_ms.value_or(-1)); }  // -1: no TTL
};

struct persist_rpc {
  using op = ops::persist_op;
  using request = pb::PersistRequest;
  using response = pb::PersistResponse;
  static constexpr rpc id = rpc::persist;
  static grpc::Status decode(const request& rq, op::input& in) {
    in.key = sv(rq.key());
    return grpc::Status();
  }
  static void encode(op::output& o, response& rs) { rs.set_removed(o.removed); }
};

struct publish_rpc {
  using op = ops::publish_op;
  using request = pb::PublishRequest;
  using response = pb::PublishResponse;
  static constexpr rpc id = rpc::publish;
  static grpc::Status decode(const request& rq, op::input& in) {
    in.channel = sv(rq.channel());
    in.message = sv(rq.message());
    return grpc::Status();
  }
  static void encode(op::output& o, response& rs) { rs.set_receivers(o.receivers); }
};

}  // namespace turret::grpc_frontend::unary_ops
