#include <turret/upstream/cluster_backend.hpp>
#include "pubsub_hub.hpp"
#include "upstream_common.hpp"

#include <turret/upstream/cluster_slots.hpp>
#include <turret/clients/resp_upstream.hpp>
#include <turret/error.hpp>
#include <turret/kv/command_table.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>
#include <optional>

namespace turret::upstream {

namespace {

using kv::request;
using kv::response;
using boost::asio::as_tuple;
using boost::asio::use_awaitable;
using namespace std::chrono_literals;

constexpr std::size_t max_nodes = 1024;
constexpr std::size_t no_node = 0xFFFF;
/// A slot's entry: its primary's node index in bits 0-15, up to three replicas in bits 16-31, 32-47, 48-63;
/// no_node in a field that has none. One atomic word per slot: a request reads its slot with one load (acquire: the
/// nodes it names were created before it was stored, with release).
constexpr std::uint64_t unmapped = ~std::uint64_t{0};
constexpr std::size_t max_replicas = 3;
/// Refreshes asked for by requests (MOVED, a failed node) come at most this often.
constexpr auto min_refresh_gap = 100ms;

std::size_t field(std::uint64_t entry, std::size_t k) noexcept { return (entry >> (16 * k)) & 0xFFFF; }

/// One node: its upstream client and its instance of the pipeline.
struct node {
  std::string name;
  std::string host;
  resp::upstream_client client;
  kv::pipeline_service pipeline;
};

}  // namespace

struct cluster_backend::state {
  std::weak_ptr<state> self;
  std::shared_ptr<const kv::command_table> table;
  upstream_options opts;
  const kv::layer_registry_type* layers = nullptr;
  layer_context ctx;
  std::vector<boost::asio::any_io_executor> executors;
  std::vector<std::vector<std::string>> on_connect;  ///< READONLY with read_from: replicas
  std::chrono::milliseconds first_wait{1500};

  /// Nodes by index, only ever added (under mu), published by `count` (release): readers index below count.
  std::unique_ptr<std::unique_ptr<node>[]> nodes{new std::unique_ptr<node>[max_nodes]};
  std::atomic<std::size_t> count{0};
  std::unique_ptr<std::atomic<std::uint64_t>[]> slots{new std::atomic<std::uint64_t>[cluster_slot_count]};
  std::atomic<bool> discovered{false};      ///< the first slot map is in
  std::atomic<bool> stopped{false};
  std::atomic<bool> refresh_wanted{false};  ///< a request saw the map change (MOVED) or a node fail
  /// The refresh loop's timer (on executors.front()), shared with the loop: request_refresh() wakes it by a post.
  /// The backend's destructor drops this reference: the last ones are then the loop's and a posted wake-up's, owned
  /// by the io_context (the state itself may outlive the io_context, in router copies).
  std::atomic<std::shared_ptr<boost::asio::steady_timer>> refresh_timer;
  std::atomic<std::uint64_t> next{0};       ///< keyless commands and replica reads go in turn
  std::size_t last_answered = 0;            ///< the refresh loop's: the node that answered CLUSTER SLOTS last
  std::mutex mu;                            ///< node creation
  std::optional<pubsub_hub> hub;            ///< subscribed on every primary (apply names them)
  watch_table watches;

  node& at(std::size_t i) const noexcept { return *nodes[i]; }

  /// The node at `a` ("host:port"), created (client, pipeline) when new; no_node when max_nodes are known.
  std::size_t node_for(const cluster_address& a);

  std::size_t primary_of(std::size_t slot) const noexcept {
    return field(slots[slot].load(std::memory_order_acquire), 0);
  }
  /// A replica of the slot whose connection is up, in turn; else its primary.
  std::size_t reader_of(std::size_t slot) noexcept {
    const std::uint64_t e = slots[slot].load(std::memory_order_acquire);
    std::size_t n = 0;
    while (n < max_replicas && field(e, n + 1) != no_node) ++n;
    if (n != 0) {
      const std::size_t first = next.fetch_add(1, std::memory_order_relaxed) % n;
      for (std::size_t k = 0; k < n; ++k) {
        const std::size_t r = field(e, 1 + (first + k) % n);
        if (at(r).client.connected()) return r;
      }
    }
    return field(e, 0);
  }
  /// The primary of a slot in turn (keyless commands); no_node when no slot is served.
  std::size_t any_primary() noexcept {
    // 2731 is odd: successive picks visit every slot, jumping a sixth of the slot space each time.
    const std::size_t slot = (next.fetch_add(1, std::memory_order_relaxed) * 2731) % cluster_slot_count;
    std::size_t n = primary_of(slot);
    for (std::size_t k = 1; n == no_node && k < cluster_slot_count; k *= 2) n = primary_of((slot + k) % cluster_slot_count);
    return n;
  }

  /// MOVED: `slot` is node n's now (until the next refresh says more).
  void moved(std::size_t slot, std::size_t n) noexcept {
    std::uint64_t e = slots[slot].load(std::memory_order_relaxed);
    e = (e & ~std::uint64_t{0xFFFF}) | n;
    slots[slot].store(e, std::memory_order_release);
    request_refresh();
  }
  /// Asks the refresh loop for a refresh soon (at most every min_refresh_gap): the first request of a round wakes it.
  void request_refresh() noexcept {
    if (refresh_wanted.load(std::memory_order_relaxed) || refresh_wanted.exchange(true, std::memory_order_relaxed))
      return;
    wake_refresh_loop();
  }
  void wake_refresh_loop() noexcept {
    std::shared_ptr<boost::asio::steady_timer> t = refresh_timer.load();
    if (!t) return;  // the backend is gone
    try {
      const auto ex = t->get_executor();
      boost::asio::post(ex, [t = std::move(t)] { t->cancel(); });
    } catch (...) {  // out of memory: the loop still refreshes at its interval
    }
  }

  /// Replaces the slot map with `ranges` (slots not listed become unserved).
  void apply(const std::vector<cluster_slot_range>& ranges, const std::string& from);
};

namespace {

using state = cluster_backend::state;

/// The innermost service of a node's pipeline: the node's upstream client, with MOVED and ASK followed (see
/// "Redirections" in cluster_backend.hpp) and the reply written as the bytes the server sent.
class cluster_node_service {
 public:
  using response_type = response;
  using permit_type = resp::upstream_client::permit_type;

  cluster_node_service(resp::upstream_client c, std::string host, std::weak_ptr<state> s)
      : client_(std::move(c)), host_(std::move(host)), state_(std::move(s)) {}

  awaitable<result<permit_type>> ready(request_context& ctx) {
    auto r = co_await client_.ready(ctx);
    if (!r) failed(r.error());
    co_return r;
  }
  std::optional<result<permit_type>> try_ready(request_context& ctx) {
    auto r = client_.try_ready(ctx);
    if (r && !*r) failed(r->error());
    return r;
  }

  awaitable<result<response>> call(permit_type p, request& req) {
    resp::upstream_request ur{req.ctx, req.args};
    ur.resp3 = req.sess.resp == 3;  // a RESP3 client gets the server's RESP3 bytes
    auto r = co_await client_.call(std::move(p), ur);
    if (!r) {
      failed(r.error());
      co_return r.error();
    }
    if (r->v.is_error()) {
      if (auto redirect = parse_redirect(r->v.str)) {
        auto followed = co_await follow(*redirect, req);
        if (!followed) co_return followed.error();
        if (*followed) r = std::move(**followed);
      }
    }
    response resp;
    if (r->v.is_error()) resp.set_error(r->v.str);
    req.out.raw(r->raw);
    co_return resp;
  }

 private:
  void failed(const error_code& ec) const {
    if (ec != errc::unavailable) return;
    if (auto s = state_.lock()) s->request_refresh();
  }

  /// Follows `red` (and the redirections after it, at most max_redirects hops): the reply of the node reached, or
  /// nullopt when no hop was possible (the redirection is then the reply).
  awaitable<result<std::optional<resp::upstream_reply>>> follow(cluster_redirect red, request& req) {
    auto s = state_.lock();
    if (!s) co_return std::optional<resp::upstream_reply>{};
    std::optional<resp::upstream_reply> last;
    std::string from = host_;
    for (unsigned hop = 0; hop < s->opts.max_redirects; ++hop) {
      if (red.to.host.empty()) red.to.host = from;
      const std::size_t n = s->node_for(red.to);
      if (n == no_node) break;
      if (red.moved) s->moved(red.slot, n);
      node& target = s->at(n);
      auto p = target.client.try_ready(req.ctx);
      if (!*p) {
        s->request_refresh();
        co_return p->error();
      }
      static const std::vector<std::string_view> asking[] = {{"ASKING"}};
      resp::upstream_request ur{req.ctx, req.args};
      ur.resp3 = req.sess.resp == 3;  // a RESP3 client gets the server's RESP3 bytes
      if (!red.moved) ur.before = asking;
      auto r = co_await target.client.call(std::move(**p), ur);
      if (!r) {
        if (r.error() == errc::unavailable) s->request_refresh();
        co_return r.error();
      }
      std::optional<cluster_redirect> again = r->v.is_error() ? parse_redirect(r->v.str) : std::nullopt;
      last = std::move(*r);
      if (!again) break;
      red = std::move(*again);
      from = target.host;
    }
    co_return last;
  }

  resp::upstream_client client_;
  std::string host_;
  std::weak_ptr<state> state_;
};

}  // namespace

std::size_t state::node_for(const cluster_address& a) {
  const std::string name = a.name();
  std::lock_guard lock(mu);
  const std::size_t n = count.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < n; ++i) {
    if (nodes[i]->name == name) return i;
  }
  if (n == max_nodes) {
    spdlog::error("upstream cluster: more than {} nodes; {} is not used", max_nodes, name);
    return no_node;
  }
  upstream_options::endpoint e{a.host, a.port, name};
  resp::upstream_client client = make_client(e, opts, executors, on_connect);
  kv::pipeline_service inner{cluster_node_service(client, a.host, self)};
  kv::pipeline_service pipeline = build_pipeline(opts, {{name, inner, {}, {}}}, *layers, ctx, name, false);
  nodes[n] = std::make_unique<node>(node{name, a.host, std::move(client), std::move(pipeline)});
  count.store(n + 1, std::memory_order_release);
  return n;
}

void state::apply(const std::vector<cluster_slot_range>& ranges, const std::string& from) {
  std::vector<std::uint64_t> fresh(cluster_slot_count, unmapped);
  std::size_t served = 0;
  for (const auto& r : ranges) {
    std::uint64_t e = unmapped;
    const std::size_t p = node_for(r.primary);
    if (p == no_node) continue;
    e = (e & ~std::uint64_t{0xFFFF}) | p;
    std::size_t k = 1;
    for (const auto& rep : r.replicas) {
      if (k > max_replicas) break;
      const std::size_t i = node_for(rep);
      if (i == no_node) continue;
      e = (e & ~(std::uint64_t{0xFFFF} << (16 * k))) | (std::uint64_t{i} << (16 * k));
      ++k;
    }
    for (std::size_t slot = r.first; slot <= r.last; ++slot) fresh[slot] = e;
    served += r.last - r.first + 1u;
  }
  std::size_t changed = 0;
  for (std::size_t slot = 0; slot < cluster_slot_count; ++slot) {
    if (slots[slot].load(std::memory_order_relaxed) == fresh[slot]) continue;
    slots[slot].store(fresh[slot], std::memory_order_release);
    ++changed;
  }
  if (changed != 0) {
    // Pub/sub: every primary subscribed (keyspace notifications are per node), ordinary messages (broadcast by the
    // cluster) taken from one of them: the primary of the lowest slot served.
    std::vector<upstream_options::endpoint> primaries;
    const cluster_slot_range* lowest = nullptr;
    for (const auto& r : ranges) {
      const std::string name = r.primary.name();
      if (!lowest || r.first < lowest->first) lowest = &r;
      if (std::none_of(primaries.begin(), primaries.end(), [&](const auto& e) { return e.name == name; }))
        primaries.push_back({r.primary.host, r.primary.port, name});
    }
    hub->set_nodes(primaries);
    hub->set_designated(lowest ? lowest->primary.name() : std::string());
    std::string map;
    for (const auto& r : ranges) {
      if (!map.empty()) map.append(", ");
      map.append(fmt::format("{}-{} {}", r.first, r.last, r.primary.name()));
      for (const auto& rep : r.replicas) map.append(" ").append(rep.name());
    }
    spdlog::info("upstream cluster: slot map from {}: {} slots changed, {} of {} served (first-last primary replicas: {})",
                 from, changed, served, cluster_slot_count, map);
  }
}

namespace {

/// CLUSTER SLOTS from the known nodes in turn (the last one that answered first), each given refresh_timeout;
/// the first answer replaces the map. Returns whether one answered.
awaitable<bool> refresh_once(state& s) {
  static constexpr std::string_view args[] = {"CLUSTER", "SLOTS"};
  auto ex = co_await boost::asio::this_coro::executor;
  const std::size_t n = s.count.load(std::memory_order_acquire);
  for (std::size_t k = 0; k < n && !s.stopped.load(); ++k) {
    const std::size_t i = (s.last_answered + k) % n;
    node& nd = s.at(i);
    auto ctx = std::make_shared<request_context>();
    boost::asio::steady_timer deadline(ex, s.opts.refresh_timeout);
    deadline.async_wait([ctx](error_code ec) {
      if (!ec) ctx->cancel();
    });
    resp::upstream_request ur{*ctx, args};
    resp::upstream_client client = nd.client;
    auto r = co_await ready_and_call(client, ur);
    deadline.cancel();
    if (!r || r->v.is_error()) continue;
    auto ranges = parse_cluster_slots(r->v, nd.host);
    if (!ranges || ranges->empty()) continue;  // not a cluster node, or one that serves nothing yet
    try {
      s.apply(*ranges, nd.name);
    } catch (const std::exception& e) {  // a new node's pipeline failed to build (it did for the seeds: unlikely)
      spdlog::error("upstream cluster: slot map from {} not applied: {}", nd.name, e.what());
      continue;
    }
    s.last_answered = i;
    s.discovered.store(true, std::memory_order_release);
    co_return true;
  }
  co_return false;
}

/// Refreshes the slot map every refresh_interval, and min_refresh_gap after the round's start when a request asked
/// for it (request_refresh wakes the timer) or no node answered, while the backend lives (holds it only during a
/// round and between two wake-ups; the timer is shared, so it outlives the state).
awaitable<void> refresh_loop(std::weak_ptr<state> weak, std::shared_ptr<boost::asio::steady_timer> timer) {
  using clock = std::chrono::steady_clock;
  while (true) {
    const auto started = clock::now();
    bool answered = false;
    std::chrono::milliseconds interval{};
    {
      std::shared_ptr<state> s = weak.lock();
      if (!s || s->stopped.load()) co_return;
      s->refresh_wanted.store(false, std::memory_order_relaxed);
      answered = co_await refresh_once(*s);
      interval = s->opts.refresh_interval;
    }
    // No node answered: try again soon (the cluster may be starting, or every known node failing over).
    auto next = answered ? started + interval : started + std::min<clock::duration>(interval, min_refresh_gap);
    while (true) {
      {
        std::shared_ptr<state> s = weak.lock();
        if (!s || s->stopped.load()) co_return;
        // Asked during the round or since (a wake-up that came while the round ran is not lost: the flag stays).
        if (s->refresh_wanted.load(std::memory_order_relaxed))
          next = std::min<clock::time_point>(next, started + min_refresh_gap);
      }
      if (clock::now() >= next) break;
      timer->expires_at(next);
      co_await timer->async_wait(as_tuple(use_awaitable));  // expired, or woken by request_refresh / the destructor
    }
  }
}

/// The router: the backend's service().
class router {
 public:
  using response_type = response;
  using permit_type = unit_permit;

  explicit router(std::shared_ptr<state> s) : s_(std::move(s)) {}

  awaitable<result<permit_type>> ready(request_context&) { co_return permit_type{}; }
  std::optional<result<permit_type>> try_ready(request_context&) { return result<permit_type>(permit_type{}); }

  // Not a coroutine once the map is known: a command for one node returns that node's pipeline's awaitable
  // (forward_to); split commands get a coroutine.
  awaitable<result<response>> call(permit_type, request& req) {
    if (!s_->discovered.load(std::memory_order_acquire)) return route_after_first_refresh(s_, req);
    return route(s_, req);
  }

 private:
  static awaitable<result<response>> route(const std::shared_ptr<state>& keep, request& req) {
    state& s = *keep;
    if (req.args.empty()) return answered(error_reply(req, "ERR empty command"));
    if (s.stopped.load(std::memory_order_acquire)) return answered(make_error_code(resp::upstream_errc::stopped));
    std::optional<kv::resolved_command> own;
    const kv::resolved_command& cmd = resolved(*s.table, req, own);
    const std::string_view family = family_of(cmd);
    if (auto refused = refuse_connection_closers(req)) return answered(*refused);
    if (!req.sess.in_multi) {
      if (auto p = s.hub->handle(family, cmd, req)) return std::move(*p);
    }
    if (transaction_command(req, family)) {
      if (auto t = transaction_step(req, family, cmd, *s.table, upstream_options::mode_kind::cluster,
                                    transaction_target_of(s), s.watches))
        return std::move(*t);
    }
    if (!cmd.info) return forward(s, s.any_primary(), req);  // the upstream answers unknown commands
    if (auto local = answer_locally(family, req, upstream_options::mode_kind::cluster)) return answered(*local);
    if (family == "publish") {  // the cluster broadcasts it: any primary
      const std::size_t n = s.any_primary();
      if (n == no_node) return answered(error_reply(req, "CLUSTERDOWN Hash slot not served"));
      return publish_through(keep, s.at(n).pipeline, *s.hub, req);
    }
    if (cmd.keys.refs.empty()) return forward(s, s.any_primary(), req);
    if (cmd.crossslot()) {
      const split_kind kind = split_kind_of(family);
      if (kind == split_kind::none)
        return answered(error_reply(req, "CROSSSLOT Keys in request don't hash to the same slot"));
      return split(keep, kind, req);
    }
    const std::size_t slot = *cmd.slot();
    const bool read = s.opts.read_from_replicas && is_read_command(*cmd.info, family);
    return forward(s, read ? s.reader_of(slot) : s.primary_of(slot), req);
  }

  /// A transaction goes to the primary of its one slot (keyless: any primary).
  static transaction_target transaction_target_of(state& s) {
    return [&s](std::span<const std::string_view> keys) -> std::variant<resp::upstream_client, std::string, error_code> {
      std::size_t n = no_node;
      if (keys.empty()) {
        n = s.any_primary();
      } else {
        const std::uint16_t slot = kv::key_hash_slot(keys.front());
        for (auto k : keys) {
          if (kv::key_hash_slot(k) != slot) return std::string("CROSSSLOT Keys in request don't hash to the same slot");
        }
        n = s.primary_of(slot);
      }
      if (n == no_node) return std::string("CLUSTERDOWN Hash slot not served");
      return s.at(n).client;
    };
  }

  static awaitable<result<response>> forward(state& s, std::size_t n, request& req) {
    if (n == no_node) return answered(error_reply(req, "CLUSTERDOWN Hash slot not served"));
    return forward_to(s.at(n).pipeline, req);
  }

  static awaitable<result<response>> split(std::shared_ptr<state> keep, split_kind kind, request& req) {
    state& s = *keep;
    split_target t;
    t.group = [](std::string_view key) { return static_cast<std::size_t>(kv::key_hash_slot(key)); };
    t.service = [&s](std::size_t slot) -> std::optional<kv::pipeline_service> {
      const std::size_t n = s.primary_of(slot);
      if (n == no_node) return std::nullopt;
      return s.at(n).pipeline;
    };
    t.name = [](std::size_t slot) { return "for slot " + std::to_string(slot); };
    t.any = [&s]() -> kv::pipeline_service {
      const std::size_t n = s.any_primary();
      return s.at(n == no_node ? 0 : n).pipeline;
    };
    return split_request(std::move(keep), *s.table, kind, req, std::move(t));
  }

  static awaitable<result<response>> route_after_first_refresh(std::shared_ptr<state> keep, request& req) {
    co_await wait_for(keep->discovered, keep->first_wait);
    co_return co_await route(keep, req);
  }

  std::shared_ptr<state> s_;
};

}  // namespace

cluster_backend::cluster_backend(const upstream_options& opts, std::shared_ptr<const kv::command_table> table,
                                 const kv::layer_registry_type& layers, const layer_context& ctx,
                                 std::vector<boost::asio::any_io_executor> executors)
    : upstream_backend_base(table), state_(std::make_shared<state>()) {
  state& s = *state_;
  s.self = state_;
  s.table = std::move(table);
  s.opts = opts;
  s.layers = &layers;
  s.ctx = ctx;
  s.executors = std::move(executors);
  if (opts.read_from_replicas) s.on_connect = {{"READONLY"}};
  s.hub.emplace(upstream_options::mode_kind::cluster, opts, s.executors);
  s.first_wait = opts.connect_timeout + opts.refresh_timeout;
  for (std::size_t i = 0; i < cluster_slot_count; ++i) s.slots[i].store(unmapped, std::memory_order_relaxed);
  for (const auto& e : opts.endpoints) s.node_for({e.host, e.port});
  auto timer = std::make_shared<boost::asio::steady_timer>(s.executors.front());
  s.refresh_timer.store(timer);
  boost::asio::co_spawn(s.executors.front(), refresh_loop(state_, std::move(timer)), boost::asio::detached);
}

cluster_backend::~cluster_backend() {
  state& s = *state_;
  s.stopped.store(true);
  s.wake_refresh_loop();  // it ends at its next wake-up
  s.refresh_timer.store(nullptr);
  s.hub->stop();
  std::lock_guard lock(s.mu);
  const std::size_t n = s.count.load();
  for (std::size_t i = 0; i < n; ++i) s.nodes[i]->client.stop();
  // Runs while the io_contexts exist, their threads stopped (turretd's shutdown): the last copies of the clients go
  // now, not when the last router copy does.
  s.count.store(0);
  for (std::size_t i = 0; i < n; ++i) s.nodes[i].reset();
}

kv::pipeline_service cluster_backend::service() { return kv::pipeline_service(router(state_)); }

void cluster_backend::close_session(kv::session& s) noexcept {
  state_->hub->close_session(s);
  state_->watches.release(s);
  upstream_backend_base::close_session(s);
}

}  // namespace turret::upstream
