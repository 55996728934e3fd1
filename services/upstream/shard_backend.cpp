#include <turret/upstream/shard_backend.hpp>
#include "upstream_common.hpp"

#include <turret/clients/resp_upstream.hpp>
#include <turret/kv/command_table.hpp>
#include <turret/kv/value_reply_builder.hpp>
#include <turret/middleware/load_balance.hpp>
#include <turret/middleware/load_balance_placement.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <mutex>
#include <optional>

namespace turret::upstream {

namespace {

using kv::reply_builder;
using kv::request;
using kv::response;

enum class split_kind { none, mget, mset, sum };

}  // namespace

struct shard_backend::state {
  std::shared_ptr<const kv::command_table> table;
  std::vector<std::string> names;
  std::vector<kv::pipeline_service> shards;
  std::vector<resp::upstream_client> clients;
  std::optional<hash_ring> ring;
  std::optional<maglev_table> maglev;
  bool hash_tag = false;
  std::atomic<std::size_t> next{0};

  std::size_t owner(std::string_view key) const noexcept {
    const std::uint64_t h = routing_hash(key, hash_tag);
    return ring ? ring->owner(h) : maglev->owner(h);
  }
};

namespace {

/// The router: the backend's service().
class router {
 public:
  using response_type = response;
  using permit_type = unit_permit;

  explicit router(std::shared_ptr<shard_backend::state> s) : s_(std::move(s)) {}

  awaitable<result<permit_type>> ready(request_context&) { co_return permit_type{}; }
  std::optional<result<permit_type>> try_ready(request_context&) { return result<permit_type>(permit_type{}); }

  // Not a coroutine: a command for one server returns that server's pipeline's awaitable (forward_to), so no frame
  // of the router's stays alive while the reply is awaited; split commands get a coroutine.
  awaitable<result<response>> call(permit_type, request& req) {
    shard_backend::state& s = *s_;
    if (req.args.empty()) return answered(error_reply(req, "ERR empty command"));
    std::optional<kv::resolved_command> own;
    const kv::resolved_command* cmd = &resolved(*s.table, req, own);
    if (!cmd->info) return forward(s, any_shard(s), req);  // the upstream answers unknown commands
    std::string_view name = cmd->info->name;
    const std::string_view family = name.substr(0, name.find('|'));
    if (auto local = answer_locally(family, req, upstream_options::mode_kind::shard)) return answered(*local);

    const auto& refs = cmd->keys.refs;
    if (refs.empty()) return forward(s, any_shard(s), req);
    const std::size_t first = s.owner(req.args[refs.front().index]);
    bool same = true;
    for (const auto& r : refs) same = same && s.owner(req.args[r.index]) == first;
    if (same) return forward(s, first, req);

    split_kind kind = split_kind::none;
    if (family == "mget") kind = split_kind::mget;
    else if (family == "mset") kind = split_kind::mset;
    else if (family == "del" || family == "exists" || family == "unlink" || family == "touch") kind = split_kind::sum;
    if (kind == split_kind::none)
      return answered(error_reply(req, "CROSSSLOT Keys in request don't hash to the same slot"));
    return split(s_, kind, req);
  }

 private:
  static std::size_t any_shard(shard_backend::state& s) noexcept {
    return s.next.fetch_add(1, std::memory_order_relaxed) % s.shards.size();
  }

  static awaitable<result<response>> forward(shard_backend::state& s, std::size_t i, request& req) {
    return forward_to(s.shards[i], req);
  }

  /// One part of a split request: its shard, its arguments, and where its keys were in the original.
  struct part {
    std::size_t shard = 0;
    std::vector<std::string_view> args;
    std::vector<std::size_t> positions;  ///< index of each key among the original's keys
  };

  static awaitable<result<response>> split(std::shared_ptr<shard_backend::state> keep, split_kind kind,
                                           request& req) {
    shard_backend::state& s = *keep;
    const std::size_t step = kind == split_kind::mset ? 2 : 1;
    if ((req.args.size() - 1) % step != 0 || req.args.size() < 2)
      co_return co_await forward(s, any_shard(s), req);  // the upstream answers the arity error
    std::vector<part> parts;
    std::size_t nkeys = 0;
    for (std::size_t i = 1; i < req.args.size(); i += step, ++nkeys) {
      const std::size_t sh = s.owner(req.args[i]);
      part* p = nullptr;
      for (auto& q : parts) {
        if (q.shard == sh) p = &q;
      }
      if (!p) {
        parts.push_back({sh, {req.args[0]}, {}});
        p = &parts.back();
      }
      for (std::size_t j = 0; j < step; ++j) p->args.push_back(req.args[i + j]);
      p->positions.push_back(nkeys);
    }
    // Every part at once, each on a fork of the request (its own context and sink: kv::attempt_fork), on this
    // executor; a cancellation of the request cancels every part. The parts are awaited whatever happens: they
    // refer to this frame.
    struct child {
      std::unique_ptr<kv::attempt_fork> fork;
      kv::resolved_command rc;
      result<response> r = make_error_code(boost::asio::error::operation_aborted);
    };
    if (req.ctx.cancelled()) co_return make_error_code(boost::asio::error::operation_aborted);
    std::vector<child> kids(parts.size());
    auto ex = co_await boost::asio::this_coro::executor;
    boost::asio::steady_timer all_done(ex, boost::asio::steady_timer::time_point::max());
    std::size_t remaining = parts.size();
    for (std::size_t i = 0; i < parts.size(); ++i) {
      child& k = kids[i];
      k.fork = kv::fork_attempt(req);
      k.rc = kv::resolve(*s.table, parts[i].args);
      k.fork->req.args = parts[i].args;
      k.fork->req.cmd = &k.rc;
      boost::asio::co_spawn(
          ex,
          [&k, &remaining, &all_done, svc = s.shards[parts[i].shard]]() mutable -> awaitable<void> {
            k.r = co_await ready_and_call(svc, k.fork->req);
            if (--remaining == 0) all_done.cancel();
          },
          boost::asio::detached);
    }
    if (!req.ctx.cancelled()) {
      req.ctx.cancel_slot().assign([&kids](boost::asio::cancellation_type t) {
        for (auto& k : kids) k.fork->ctx.cancel(t);
      });
    }
    while (remaining > 0) co_await all_done.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    req.ctx.cancel_slot().clear();
    if (req.ctx.cancelled()) co_return make_error_code(boost::asio::error::operation_aborted);

    std::vector<kv::reply_value> mget(kind == split_kind::mget ? nkeys : 0);
    long long sum = 0;
    for (std::size_t i = 0; i < parts.size(); ++i) {
      const part& p = parts[i];
      const auto& r = kids[i].r;
      if (!r) co_return r.error();
      const auto& replies = kids[i].fork->out.replies();
      if (replies.size() != 1) co_return error_reply(req, "ERR unexpected reply from upstream " + s.names[p.shard]);
      const kv::reply_value& v = replies.front();
      if (v.is_error()) {
        kv::replay(v, req.out);
        response e;
        e.set_error(v.str);
        co_return e;
      }
      if (kind == split_kind::mget) {
        if (v.type != kv::reply_value::kind::array || v.elements.size() != p.positions.size())
          co_return error_reply(req, "ERR unexpected reply from upstream " + s.names[p.shard]);
        for (std::size_t i = 0; i < p.positions.size(); ++i) mget[p.positions[i]] = v.elements[i];
      } else if (kind == split_kind::sum) {
        if (v.type != kv::reply_value::kind::integer)
          co_return error_reply(req, "ERR unexpected reply from upstream " + s.names[p.shard]);
        sum += v.integer;
      }
    }
    switch (kind) {
      case split_kind::mget:
        req.out.array(mget.size());
        for (const auto& v : mget) kv::replay(v, req.out);
        break;
      case split_kind::sum: req.out.integer(sum); break;
      default: req.out.ok(); break;
    }
    co_return response{};
  }

  std::shared_ptr<shard_backend::state> s_;
};

}  // namespace

shard_backend::shard_backend(const upstream_options& opts, std::shared_ptr<const kv::command_table> table,
                             const kv::layer_registry_type& layers, const layer_context& ctx,
                             std::vector<boost::asio::any_io_executor> executors)
    : upstream_backend_base(table), state_(std::make_shared<state>()) {
  state& s = *state_;
  s.table = std::move(table);
  for (const auto& e : opts.endpoints) s.names.push_back(e.name);
  // Placement: the pipeline's load_balance entry (validated by parse_upstream_options), else ring_hash's defaults.
  lb_config placement;
  placement.pol = lb_config::policy::ring_hash;
  if (!opts.pipeline.is_null()) {
    for (std::size_t i = 0; i < opts.pipeline.size(); ++i) {
      const config_node e = opts.pipeline.at(i);
      if (e.is_map() && e.has("layer") && e.child("layer").as_string() == "load_balance")
        placement = parse_load_balance_config(e);
    }
  }
  if (placement.pol == lb_config::policy::maglev) {
    s.maglev.emplace(s.names, placement.maglev.table_size);
    s.hash_tag = placement.maglev.hash_tag;
  } else {
    s.ring.emplace(s.names, placement.ring_hash.vnodes);
    s.hash_tag = placement.ring_hash.hash_tag;
  }
  for (const auto& e : opts.endpoints) {
    resp::upstream_client client = make_client(e, opts, executors);
    s.clients.push_back(client);
    kv::pipeline_service endpoint{endpoint_service(client)};
    s.shards.push_back(build_pipeline(opts, {{e.name, endpoint, {}, {}}}, layers, ctx, e.name, false));
  }
}

shard_backend::~shard_backend() {
  for (auto& c : state_->clients) c.stop();
  // Runs while the io_contexts exist (turretd's shutdown): the last copies of the clients (a connection waiting out
  // its reconnection backoff holds a timer) go now, not when the last router copy does.
  state_->shards.clear();
  state_->clients.clear();
}

kv::pipeline_service shard_backend::service() { return kv::pipeline_service(router(state_)); }

}  // namespace turret::upstream
