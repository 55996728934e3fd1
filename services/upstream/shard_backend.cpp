#include <turret/upstream/shard_backend.hpp>
#include "pubsub_hub.hpp"
#include "upstream_common.hpp"

#include <turret/clients/resp_upstream.hpp>
#include <turret/kv/command_table.hpp>
#include <turret/middleware/load_balance.hpp>
#include <turret/middleware/load_balance_placement.hpp>


#include <atomic>
#include <mutex>
#include <optional>

namespace turret::upstream {

namespace {

using kv::reply_builder;
using kv::request;
using kv::response;

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
  std::optional<pubsub_hub> hub;  ///< subscribed on every shard
  watch_table watches;

  std::size_t owner(std::string_view key) const noexcept {
    const std::uint64_t h = routing_hash(key, hash_tag);
    return ring ? ring->owner(h) : maglev->owner(h);
  }
  /// The shard of every key of `cmd` in `req` (it has some), or nullopt when they span shards.
  std::optional<std::size_t> owner_of_keys(const kv::resolved_command& cmd, const request& req) const noexcept {
    const std::size_t first = owner(req.args[cmd.keys.refs.front().index]);
    for (const auto& r : cmd.keys.refs) {
      if (owner(req.args[r.index]) != first) return std::nullopt;
    }
    return first;
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
    const std::string_view family = family_of(*cmd);
    if (auto refused = refuse_connection_closers(req)) return answered(*refused);
    if (!req.sess.in_multi) {
      if (auto p = s.hub->handle(family, *cmd, req)) return std::move(*p);
    }
    if (transaction_command(req, family)) {
      if (auto t = transaction_step(req, family, *cmd, *s.table, upstream_options::mode_kind::shard,
                                    transaction_target_of(s), s.watches))
        return std::move(*t);
    }
    if (!cmd->info) return forward(s, any_shard(s), req);  // the upstream answers unknown commands
    if (auto local = answer_locally(family, req, upstream_options::mode_kind::shard)) return answered(*local);
    // Every shard carries every subscription (pubsub_hub.hpp): a message may go to any of them.
    if (family == "publish") return publish_through(s_, s.shards[any_shard(s)], *s.hub, req);

    if (cmd->keys.refs.empty()) return forward(s, any_shard(s), req);
    if (const auto one = s.owner_of_keys(*cmd, req)) return forward(s, *one, req);

    const split_kind kind = split_kind_of(family);
    if (kind == split_kind::none)
      return answered(error_reply(req, "CROSSSLOT Keys in request don't hash to the same slot"));
    return split(s_, kind, req);
  }

  /// Callback start, for what call() forwards to one server as it is: a command resolved by the front end, with keys
  /// all on one shard, outside transactions and subscriptions, that no step before the forward answers. Anything
  /// else (split commands, PUBLISH, locally answered ones...) declines and takes call().
  bool try_start(request& req, completion<response>& done) {
    shard_backend::state& s = *s_;
    if (req.args.empty() || !req.cmd || !req.cmd->info || req.sess.in_multi || req.sess.subscriptions() != 0)
      return false;
    const kv::resolved_command& cmd = *req.cmd;
    // Keyless commands decline below: (P)SUBSCRIBE and PUBLISH among them (channels are not keys).
    if (cmd.keys.refs.empty()) return false;
    const std::string_view family = family_of(cmd);
    if (transaction_command(req, family) || answers_locally(family, upstream_options::mode_kind::shard)) return false;
    const auto one = s.owner_of_keys(cmd, req);
    return one && s.shards[*one].try_start(req, done);
  }
  bool supports_start() const noexcept {
    for (const auto& p : s_->shards) {
      if (!p.supports_start()) return false;
    }
    return true;
  }

 private:
  static std::size_t any_shard(shard_backend::state& s) noexcept {
    return s.next.fetch_add(1, std::memory_order_relaxed) % s.shards.size();
  }

  /// A transaction goes to the server of all its keys (keyless: any server).
  static transaction_target transaction_target_of(shard_backend::state& s) {
    return [&s](std::span<const std::string_view> keys) -> std::variant<resp::upstream_client, std::string, error_code> {
      if (keys.empty()) return s.clients[any_shard(s)];
      const std::size_t first = s.owner(keys.front());
      for (auto k : keys) {
        if (s.owner(k) != first) return std::string("CROSSSLOT Keys in request don't hash to the same slot");
      }
      return s.clients[first];
    };
  }

  static awaitable<result<response>> forward(shard_backend::state& s, std::size_t i, request& req) {
    return forward_to(s.shards[i], req);
  }

  static awaitable<result<response>> split(std::shared_ptr<shard_backend::state> keep, split_kind kind,
                                           request& req) {
    shard_backend::state& s = *keep;
    split_target t;
    t.group = [&s](std::string_view key) { return s.owner(key); };
    t.service = [&s](std::size_t shard) { return std::optional<kv::pipeline_service>(s.shards[shard]); };
    t.name = [&s](std::size_t shard) { return s.names[shard]; };
    t.any = [&s] { return s.shards[any_shard(s)]; };
    return split_request(std::move(keep), *s.table, kind, req, std::move(t));
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
  s.hub.emplace(upstream_options::mode_kind::shard, opts, executors);
  s.hub->set_nodes(opts.endpoints);
}

void shard_backend::close_session(kv::session& s) noexcept {
  state_->hub->close_session(s);
  state_->watches.release(s);
  upstream_backend_base::close_session(s);
}

shard_backend::~shard_backend() {
  for (auto& c : state_->clients) c.stop();
  state_->hub->stop();
  // Runs while the io_contexts exist (turretd's shutdown): the last copies of the clients (a connection waiting out
  // its reconnection backoff holds a timer) go now, not when the last router copy does.
  state_->shards.clear();
  state_->clients.clear();
}

kv::pipeline_service shard_backend::service() { return kv::pipeline_service(router(state_)); }

}  // namespace turret::upstream
