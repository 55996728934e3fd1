#include <turret/upstream/shard_backend.hpp>
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
#include <charconv>
#include <mutex>
#include <optional>

namespace turret::upstream {

namespace {

using kv::reply_builder;
using kv::request;
using kv::response;

// --- config ------------------------------------------------------------------------------------------------------

shard_options::endpoint parse_endpoint(const config_node& n) {
  const std::string s = n.as_string();
  const auto colon = s.rfind(':');
  unsigned port = 0;
  if (colon == std::string::npos || colon == 0 ||
      std::from_chars(s.data() + colon + 1, s.data() + s.size(), port).ec != std::errc() || port == 0 ||
      port > 65535)
    n.fail("expected HOST:PORT, e.g. 127.0.0.1:7001, not '" + s + "'");
  return {s.substr(0, colon), static_cast<std::uint16_t>(port), s};
}

/// The innermost service of an endpoint's pipeline: the upstream client, its reply written into the request's sink.
class endpoint_service {
 public:
  using response_type = response;
  using permit_type = resp::upstream_client::permit_type;

  explicit endpoint_service(resp::upstream_client c) : client_(std::move(c)) {}

  awaitable<result<permit_type>> ready(request_context& ctx) { return client_.ready(ctx); }
  std::optional<result<permit_type>> try_ready(request_context& ctx) { return client_.try_ready(ctx); }
  awaitable<result<response>> call(permit_type p, request& req) {
    resp::upstream_request ur{req.ctx, req.args};
    auto r = co_await client_.call(std::move(p), ur);
    if (!r) co_return r.error();
    response resp;
    if (r->v.is_error()) resp.set_error(r->v.str);
    req.out.raw(r->raw);  // RESP bytes: appended by the RESP front end, parsed into a value tree by the others
    co_return resp;
  }

 private:
  resp::upstream_client client_;
};

/// Answers every request with `text` as an error reply (the inner service of pipelines whose load_balance takes its
/// endpoints from the provider: never called).
response error_reply(request& req, std::string_view text) {
  req.out.error(text);
  response r;
  r.set_error(text);
  return r;
}

std::string upper(std::string_view s) {
  std::string u(s);
  for (char& c : u) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
  return u;
}

enum class split_kind { none, mget, mset, sum };

}  // namespace

shard_options parse_shard_options(const config_node& n) {
  n.reject_unknown_keys({"kind", "mode", "endpoints", "connections", "connect_timeout", "pipeline"});
  shard_options o;
  const std::string mode = n.get_string("mode", "shard");
  if (mode != "shard") {
    n.child("mode").fail(mode == "replicas" || mode == "cluster"
                             ? "mode '" + mode + "' is not supported yet (supported: shard)"
                             : "unknown mode '" + mode + "' (supported: shard)");
  }
  const config_node eps = n.required("endpoints");
  eps.expect_sequence();
  if (eps.is_null() || eps.size() == 0) eps.fail("at least one endpoint is required");
  for (std::size_t i = 0; i < eps.size(); ++i) {
    auto e = parse_endpoint(eps.at(i));
    for (const auto& prev : o.endpoints) {
      if (prev.name == e.name) eps.at(i).fail("endpoint '" + e.name + "' is listed twice");
    }
    o.endpoints.push_back(std::move(e));
  }
  o.connections = static_cast<std::size_t>(n.get_int("connections", 1, 1, 64));
  const auto ct = n.get_duration("connect_timeout", std::chrono::seconds(1));
  if (ct <= duration::zero()) n.child("connect_timeout").fail("must be greater than 0");
  o.connect_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(ct);
  if (n.has("pipeline")) {
    o.pipeline = n.child("pipeline");
    o.pipeline.expect_sequence();
  }
  // Placement: only the keyed policies of load_balance place keys.
  if (!o.pipeline.is_null()) {
    for (std::size_t i = 0; i < o.pipeline.size(); ++i) {
      const config_node e = o.pipeline.at(i);
      if (!e.is_map() || !e.has("layer") || e.child("layer").as_string() != "load_balance") continue;
      const lb_config cfg = parse_load_balance_config(e);
      if (cfg.pol != lb_config::policy::ring_hash && cfg.pol != lb_config::policy::maglev)
        e.child("policy").fail("shard mode places keys by ring_hash or maglev");
      if (e.has("endpoints")) e.child("endpoints").fail("the endpoints of shard mode are the store's 'endpoints'");
    }
  }
  return o;
}

struct shard_backend::state {
  std::shared_ptr<const kv::command_table> table;
  std::vector<std::string> names;
  std::vector<kv::pipeline_service> shards;
  std::vector<resp::upstream_client> clients;
  std::optional<hash_ring> ring;
  std::optional<maglev_table> maglev;
  bool hash_tag = false;
  std::atomic<std::size_t> next{0};
  std::atomic<std::uint64_t> next_id{1};
  std::atomic<std::size_t> clients_open{0};
  kv::client_limits limits;
  kv::connection_stats stats;

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

  awaitable<result<response>> call(permit_type, request& req) {
    auto s = s_;
    if (req.args.empty()) co_return error_reply(req, "ERR empty command");
    std::optional<kv::resolved_command> own;
    const kv::resolved_command* cmd = req.cmd;
    if (!cmd) {
      own.emplace(kv::resolve(*s->table, req.args));
      cmd = &*own;
    }
    if (!cmd->info) co_return co_await forward(*s, any_shard(*s), req);  // the upstream answers unknown commands
    std::string_view name = cmd->info->name;
    const std::string_view family = name.substr(0, name.find('|'));
    if (auto local = answer_locally(family, req)) co_return *local;

    const auto& refs = cmd->keys.refs;
    if (refs.empty()) co_return co_await forward(*s, any_shard(*s), req);
    const std::size_t first = s->owner(req.args[refs.front().index]);
    bool same = true;
    for (const auto& r : refs) same = same && s->owner(req.args[r.index]) == first;
    if (same) co_return co_await forward(*s, first, req);

    split_kind kind = split_kind::none;
    if (family == "mget") kind = split_kind::mget;
    else if (family == "mset") kind = split_kind::mset;
    else if (family == "del" || family == "exists" || family == "unlink" || family == "touch") kind = split_kind::sum;
    if (kind == split_kind::none) co_return error_reply(req, "CROSSSLOT Keys in request don't hash to the same slot");
    co_return co_await split(*s, kind, req);
  }

 private:
  static std::size_t any_shard(shard_backend::state& s) noexcept {
    return s.next.fetch_add(1, std::memory_order_relaxed) % s.shards.size();
  }

  static awaitable<result<response>> forward(shard_backend::state& s, std::size_t i, request& req) {
    co_return co_await ready_and_call(s.shards[i], req);
  }

  static std::optional<response> answer_locally(std::string_view family, request& req) {
    if (family == "ping") {
      if (req.args.size() == 1) req.out.simple("PONG");
      else if (req.args.size() == 2) req.out.bulk(req.args[1]);
      else return error_reply(req, "ERR wrong number of arguments for 'ping' command");
      return response{};
    }
    if (family == "echo") {
      if (req.args.size() != 2) return error_reply(req, "ERR wrong number of arguments for 'echo' command");
      req.out.bulk(req.args[1]);
      return response{};
    }
    if (family == "quit") {
      req.out.ok();
      req.sess.close_after_reply.store(true);
      return response{};
    }
    if (family == "select") {
      if (req.args.size() == 2 && req.args[1] == "0") {
        req.out.ok();
        return response{};
      }
      return error_reply(req, "ERR SELECT is not supported in shard mode (only database 0)");
    }
    static constexpr std::string_view refused[] = {
        "multi", "exec", "discard", "watch", "unwatch", "subscribe", "psubscribe", "ssubscribe", "unsubscribe",
        "punsubscribe", "sunsubscribe", "hello", "auth", "client", "config", "debug", "shutdown", "monitor",
        "flushall", "flushdb", "swapdb", "move", "migrate", "keys", "scan", "randomkey", "dbsize", "cluster",
        "reset", "sync", "psync", "replicaof", "slaveof", "failover", "save", "bgsave", "bgrewriteaof", "acl",
        "module", "script", "function", "readonly", "readwrite", "asking", "wait"};
    for (auto r : refused) {
      if (family == r) return error_reply(req, "ERR " + upper(family) + " is not supported in shard mode");
    }
    return std::nullopt;
  }

  /// One part of a split request: its shard, its arguments, and where its keys were in the original.
  struct part {
    std::size_t shard = 0;
    std::vector<std::string_view> args;
    std::vector<std::size_t> positions;  ///< index of each key among the original's keys
  };

  static awaitable<result<response>> split(shard_backend::state& s, split_kind kind, request& req) {
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

shard_backend::shard_backend(const shard_options& opts, std::shared_ptr<const kv::command_table> table,
                             const kv::layer_registry_type& layers, const layer_context& ctx,
                             std::vector<boost::asio::any_io_executor> executors)
    : state_(std::make_shared<state>()) {
  state& s = *state_;
  s.table = std::move(table);
  for (const auto& e : opts.endpoints) s.names.push_back(e.name);
  // Placement: the pipeline's load_balance entry (validated by parse_shard_options), else ring_hash's defaults.
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
  using provider_type = lb_endpoint_provider<request, response>;
  for (const auto& e : opts.endpoints) {
    resp::upstream_options uo;
    uo.host = e.host;
    uo.port = e.port;
    uo.connections = opts.connections;
    uo.connect_timeout = opts.connect_timeout;
    resp::upstream_client client(executors, uo);
    s.clients.push_back(client);
    kv::pipeline_service endpoint{endpoint_service(client)};
    layer_context c = ctx;
    c.pipeline_name = "upstream/" + e.name;
    auto provider = std::make_shared<provider_type>();
    provider->has = [](std::string_view set) { return set.empty(); };
    provider->make = [endpoint, name = e.name](std::string_view, kv::pipeline_service) {
      return std::vector<lb_endpoint<kv::pipeline_service>>{{name, endpoint, {}}};
    };
    c.set_extension<provider_type>(provider);
    s.shards.push_back(opts.pipeline.is_null() ? endpoint : layers.build(opts.pipeline, endpoint, c));
  }
}

shard_backend::~shard_backend() {
  for (auto& c : state_->clients) c.stop();
}

std::uint64_t shard_backend::open_session(kv::session& s) {
  s.id = state_->next_id.fetch_add(1);
  s.authenticated = true;
  state_->clients_open.fetch_add(1);
  return s.id;
}

void shard_backend::close_session(kv::session&) noexcept { state_->clients_open.fetch_sub(1); }
const kv::client_limits& shard_backend::limits() const noexcept { return state_->limits; }
kv::connection_stats& shard_backend::counters() noexcept { return state_->stats; }
const kv::command_table& shard_backend::commands() const noexcept { return *state_->table; }

kv::backend_summary shard_backend::summary() const {
  kv::backend_summary b;
  b.clients = state_->clients_open.load();
  return b;
}

kv::pipeline_service shard_backend::service() { return kv::pipeline_service(router(state_)); }

}  // namespace turret::upstream
