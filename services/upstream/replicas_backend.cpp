#include <turret/upstream/replicas_backend.hpp>
#include "pubsub_hub.hpp"
#include "upstream_common.hpp"

#include <turret/upstream/replication_roles.hpp>
#include <turret/clients/resp_upstream.hpp>
#include <turret/error.hpp>
#include <turret/kv/command_table.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>
#include <optional>

namespace turret::upstream {

namespace {

class replicas_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "turret.upstream.replicas"; }
  std::string message(int ev) const override {
    if (static_cast<replicas_errc>(ev) == replicas_errc::no_primary)
      return "no primary (no reachable endpoint reports role:master)";
    return "unknown replicas mode error";
  }
  boost::system::error_condition default_error_condition(int ev) const noexcept override {
    if (static_cast<replicas_errc>(ev) == replicas_errc::no_primary) return make_error_condition(errc::unavailable);
    return {ev, *this};
  }
};

using gate = std::shared_ptr<std::atomic<bool>>;
using boost::asio::as_tuple;
using boost::asio::use_awaitable;

}  // namespace

const boost::system::error_category& replicas_category() noexcept {
  static const replicas_category_impl instance;
  return instance;
}

struct replicas_backend::state {
  std::shared_ptr<const kv::command_table> table;
  std::vector<std::string> names;
  std::vector<resp::upstream_client> clients;
  std::vector<gate> read_gates, write_gates;
  /// The pipelines (reset by the backend's destructor: their endpoint services hold the upstream clients, whose
  /// connections must go while their io_contexts exist; the router's copies of the state outlive the backend).
  std::optional<kv::pipeline_service> reads, writes;
  std::chrono::milliseconds refresh_interval{1000}, refresh_timeout{500}, first_wait{1500};
  std::uint64_t max_lag = 0;
  std::atomic<bool> has_primary{false};
  std::atomic<bool> discovered{false};  ///< the first refresh is done
  std::atomic<bool> stopped{false};
  std::vector<upstream_options::endpoint> endpoints;
  std::optional<pubsub_hub> hub;  ///< subscribed on the primary
  watch_table watches;

  std::mutex mu;  // guards what follows
  std::vector<replication_info> seen;
  role_assignment roles;

  /// New observations of every endpoint (a refresh).
  void observed(std::vector<replication_info> obs) {
    std::lock_guard lock(mu);
    seen = std::move(obs);
    apply_locked();
    discovered.store(true, std::memory_order_release);
  }

  /// A transport failure on endpoint i: out at once, roles decided again without it.
  void endpoint_failed(std::size_t i) {
    std::lock_guard lock(mu);
    if (i >= seen.size() || !seen[i].reachable) return;
    seen[i].reachable = false;
    apply_locked();
  }

  void apply_locked() {
    role_assignment a = assign_roles(seen, roles.primary, max_lag);
    // Open first, close after: a read never finds every gate closed while one endpoint moves to another.
    for (int pass = 0; pass < 2; ++pass) {
      const bool open = pass == 0;
      for (std::size_t i = 0; i < names.size(); ++i) {
        if (a.reads[i] == open) read_gates[i]->store(open, std::memory_order_release);
        if ((i == a.primary) == open) write_gates[i]->store(open, std::memory_order_release);
      }
    }
    has_primary.store(a.primary != role_assignment::none, std::memory_order_release);
    if (a.primary != roles.primary) {
      std::vector<upstream_options::endpoint> sub;
      if (a.primary != role_assignment::none) sub.push_back(endpoints[a.primary]);
      hub->set_nodes(sub);
    }
    if (a.primary != roles.primary || a.reads != roles.reads || a.tier != roles.tier) {
      std::string readers;
      for (std::size_t i = 0; i < names.size(); ++i) {
        if (a.reads[i]) readers += (readers.empty() ? "" : ", ") + names[i];
      }
      spdlog::info("upstream replicas: primary {}; reads from {} ({})",
                   a.primary == role_assignment::none ? std::string("none") : names[a.primary],
                   readers.empty() ? std::string("nowhere") : readers, to_string(a.tier));
    }
    roles = std::move(a);
  }
};

namespace {

using state = replicas_backend::state;

/// One endpoint's `INFO replication` (unreachable when it fails, times out or does not parse).
awaitable<replication_info> observe_one(resp::upstream_client client, request_context& ctx) {
  static constexpr std::string_view args[] = {"INFO", "replication"};
  resp::upstream_request ur{ctx, args};
  auto r = co_await ready_and_call(client, ur);
  if (!r || !r->v.is_string()) co_return replication_info{};
  co_return parse_replication_info(r->v.str).value_or(replication_info{});
}

/// Every endpoint at once, each given at most `refresh_timeout`.
awaitable<std::vector<replication_info>> observe_all(state& s) {
  auto ex = co_await boost::asio::this_coro::executor;
  struct round {
    explicit round(const boost::asio::any_io_executor& ex, std::size_t n)
        : out(n), ctxs(n), remaining(n), done(ex, boost::asio::steady_timer::time_point::max()) {}
    std::vector<replication_info> out;
    std::vector<request_context> ctxs;
    std::size_t remaining;
    boost::asio::steady_timer done;
  };
  auto r = std::make_shared<round>(ex, s.clients.size());
  for (std::size_t i = 0; i < s.clients.size(); ++i) {
    boost::asio::co_spawn(
        ex,
        [r, i, client = s.clients[i]]() -> awaitable<void> {
          r->out[i] = co_await observe_one(client, r->ctxs[i]);
          if (--r->remaining == 0) r->done.cancel();
        },
        boost::asio::detached);
  }
  boost::asio::steady_timer deadline(ex, s.refresh_timeout);
  deadline.async_wait([r](error_code ec) {
    if (ec) return;
    for (auto& c : r->ctxs) c.cancel();
  });
  while (r->remaining > 0) co_await r->done.async_wait(as_tuple(use_awaitable));
  deadline.cancel();
  co_return std::move(r->out);
}

/// Refreshes roles every refresh_interval while the backend lives (holds it only during a round).
awaitable<void> refresh_loop(std::weak_ptr<state> weak) {
  auto ex = co_await boost::asio::this_coro::executor;
  boost::asio::steady_timer timer(ex);
  while (true) {
    std::chrono::milliseconds interval;
    {
      std::shared_ptr<state> s = weak.lock();
      if (!s || s->stopped.load()) co_return;
      interval = s->refresh_interval;
      auto seen = co_await observe_all(*s);
      if (s->stopped.load()) co_return;
      s->observed(std::move(seen));
    }
    timer.expires_after(interval);
    co_await timer.async_wait(as_tuple(use_awaitable));
  }
}

/// The router: the backend's service().
class router {
 public:
  using response_type = kv::response;
  using permit_type = unit_permit;

  explicit router(std::shared_ptr<state> s) : s_(std::move(s)) {}

  awaitable<result<permit_type>> ready(request_context&) { co_return permit_type{}; }

  std::optional<result<permit_type>> try_ready(request_context&) { return result<permit_type>(permit_type{}); }

  // Not a coroutine once the roles are known: the chosen pipeline's awaitable is returned (forward_to), so no frame
  // of the router's stays alive while the reply is awaited.
  awaitable<result<kv::response>> call(permit_type, kv::request& req) {
    if (!s_->discovered.load(std::memory_order_acquire)) return route_after_first_refresh(s_, req);
    return route(s_, req);
  }

 private:
  static awaitable<result<kv::response>> route(const std::shared_ptr<state>& keep, kv::request& req) {
    state& s = *keep;
    if (req.args.empty()) return answered(error_reply(req, "ERR empty command"));
    std::optional<kv::resolved_command> own;
    const kv::resolved_command& cmd = resolved(*s.table, req, own);
    const std::string_view family = family_of(cmd);
    if (auto refused = refuse_connection_closers(req)) return answered(*refused);
    if (!req.sess.in_multi) {
      if (auto p = s.hub->handle(family, cmd, req)) return std::move(*p);
    }
    if (transaction_command(req, family)) {
      if (auto t = transaction_step(req, family, cmd, *s.table, upstream_options::mode_kind::replicas,
                                    transaction_target_of(s), s.watches))
        return std::move(*t);
    }
    bool read = false;
    if (cmd.info) {
      if (auto local = answer_locally(family, req, upstream_options::mode_kind::replicas)) return answered(*local);
      read = is_read_command(*cmd.info, family);
    }
    if (s.stopped.load(std::memory_order_acquire)) return answered(make_error_code(resp::upstream_errc::stopped));
    if (read) return forward_to(*s.reads, req);
    if (!s.has_primary.load(std::memory_order_acquire)) return answered(make_error_code(replicas_errc::no_primary));
    if (family == "publish") return publish_through(keep, *s.writes, *s.hub, req);
    return forward_to(*s.writes, req);
  }

  /// A transaction goes to the primary.
  static transaction_target transaction_target_of(state& s) {
    return [&s](std::span<const std::string_view>) -> std::variant<resp::upstream_client, std::string, error_code> {
      std::lock_guard lock(s.mu);
      if (s.roles.primary == role_assignment::none) return make_error_code(replicas_errc::no_primary);
      return s.clients[s.roles.primary];
    };
  }

  static awaitable<result<kv::response>> route_after_first_refresh(std::shared_ptr<state> keep, kv::request& req) {
    // Requests that arrive before the first refresh completes wait for it (at most connect + refresh timeout).
    co_await wait_for(keep->discovered, keep->first_wait);
    co_return co_await route(keep, req);
  }

  std::shared_ptr<state> s_;
};

}  // namespace

replicas_backend::replicas_backend(const upstream_options& opts, std::shared_ptr<const kv::command_table> table,
                                   const kv::layer_registry_type& layers, const layer_context& ctx,
                                   std::vector<boost::asio::any_io_executor> executors)
    : upstream_backend_base(table), state_(std::make_shared<state>()) {
  state& s = *state_;
  s.table = std::move(table);
  s.refresh_interval = opts.refresh_interval;
  s.refresh_timeout = opts.refresh_timeout;
  s.first_wait = opts.connect_timeout + opts.refresh_timeout;
  s.max_lag = opts.max_lag;
  s.endpoints = opts.endpoints;
  s.hub.emplace(upstream_options::mode_kind::replicas, opts, executors);
  s.seen.resize(opts.endpoints.size());
  s.roles.reads.assign(opts.endpoints.size(), false);
  std::vector<lb_endpoint<kv::pipeline_service>> readable, writable;
  std::weak_ptr<state> weak = state_;
  for (std::size_t i = 0; i < opts.endpoints.size(); ++i) {
    const auto& e = opts.endpoints[i];
    s.names.push_back(e.name);
    resp::upstream_client client = make_client(e, opts, executors);
    s.clients.push_back(client);
    s.read_gates.push_back(std::make_shared<std::atomic<bool>>(false));
    s.write_gates.push_back(std::make_shared<std::atomic<bool>>(false));
    kv::pipeline_service svc{endpoint_service(client, [weak, i] {
      if (auto st = weak.lock()) st->endpoint_failed(i);
    })};
    readable.push_back({e.name, svc, {}, s.read_gates.back()});
    writable.push_back({e.name, svc, {}, s.write_gates.back()});
  }
  s.reads = build_pipeline(opts, std::move(readable), layers, ctx, "reads", true);
  s.writes = build_pipeline(opts, std::move(writable), layers, ctx, "writes", true);
  boost::asio::co_spawn(executors.front(), refresh_loop(state_), boost::asio::detached);
}

replicas_backend::~replicas_backend() {
  state& s = *state_;
  s.stopped.store(true);
  for (auto& c : s.clients) c.stop();
  s.hub->stop();
  // Runs while the io_contexts exist, their threads stopped (turretd's shutdown): the last copies of the clients go
  // now, not when the last router copy does.
  s.reads.reset();
  s.writes.reset();
  s.clients.clear();
}

kv::pipeline_service replicas_backend::service() { return kv::pipeline_service(router(state_)); }

void replicas_backend::close_session(kv::session& s) noexcept {
  state_->hub->close_session(s);
  state_->watches.release(s);
  upstream_backend_base::close_session(s);
}

}  // namespace turret::upstream
