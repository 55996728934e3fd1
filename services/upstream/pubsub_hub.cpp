#include "pubsub_hub.hpp"
#include "upstream_common.hpp"

#include <turret/clients/resp_subscriber.hpp>
#include <turret/kv/command_table.hpp>

#include <turret/kv/glob.hpp>
#include <turret/kv/value_reply_builder.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <map>
#include <mutex>

namespace turret::upstream {

namespace {

/// The sessions of one channel or pattern, and the SUBSCRIBEs still waiting for the nodes' confirmation (the
/// upstream subscription stays while either is non-zero).
struct entry {
  std::vector<kv::session*> sessions;
  std::size_t pending = 0;
  bool idle() const noexcept { return sessions.empty() && pending == 0; }
};

using registry = std::map<std::string, entry, std::less<>>;

bool is_notification(std::string_view channel) noexcept {
  return channel.starts_with("__keyspace@") || channel.starts_with("__keyevent@");
}

void erase_session(std::vector<kv::session*>& v, kv::session* s) {
  auto it = std::find(v.begin(), v.end(), s);
  if (it != v.end()) v.erase(it);
}

}  // namespace

struct pubsub_hub::state : std::enable_shared_from_this<state> {
  upstream_options::mode_kind mode;
  upstream_options opts;
  std::vector<boost::asio::any_io_executor> executors;

  mutable std::mutex mu;  ///< guards everything below
  registry channels, patterns;
  struct node {
    std::string name;
    std::shared_ptr<resp::upstream_subscriber> sub;
  };
  std::vector<node> nodes;
  std::size_t created = 0;  ///< subscribers made so far (spreads them over the executors)
  std::string designated;

  /// A node's push: to the sessions of its channel or pattern (on the node's executor).
  void on_message(const std::string& from, const resp::subscriber_message& m) {
    std::lock_guard lock(mu);
    if (!designated.empty() && from != designated && !is_notification(m.channel)) return;
    const registry& reg = m.pattern.empty() ? channels : patterns;
    auto it = reg.find(m.pattern.empty() ? m.channel : m.pattern);
    if (it == reg.end()) return;
    const kv::pubsub_message msg{m.pattern, m.channel, m.payload};
    for (kv::session* s : it->second.sessions) {
      if (s->host && !s->host->deliver(msg)) s->host->kill();
    }
  }

  std::shared_ptr<resp::upstream_subscriber> make_subscriber(const upstream_options::endpoint& e) {
    resp::subscriber_options so;
    so.host = e.host;
    so.port = e.port;
    so.connect_timeout = opts.connect_timeout;
    auto sub = std::make_shared<resp::upstream_subscriber>(
        executors[created++ % executors.size()], so,
        [weak = weak_from_this(), name = e.name](const resp::subscriber_message& m) {
          if (auto s = weak.lock()) s->on_message(name, m);
        });
    for (const auto& [ch, en] : channels) sub->subscribe(ch);
    for (const auto& [p, en] : patterns) sub->psubscribe(p);
    return sub;
  }

  /// Under mu: one more SUBSCRIBE waiting for `name` (the nodes subscribe when it is new).
  void add_pending(bool pattern, std::string_view name) {
    registry& reg = pattern ? patterns : channels;
    auto it = reg.find(name);
    if (it == reg.end()) {
      it = reg.emplace(std::string(name), entry{}).first;
      for (auto& n : nodes) pattern ? n.sub->psubscribe(it->first) : n.sub->subscribe(it->first);
    }
    ++it->second.pending;
  }

  /// Under mu: the entry lost a session or a pending SUBSCRIBE; idle entries unsubscribe upstream.
  void release(bool pattern, registry::iterator it) {
    registry& reg = pattern ? patterns : channels;
    if (!it->second.idle()) return;
    for (auto& n : nodes) pattern ? n.sub->punsubscribe(it->first) : n.sub->unsubscribe(it->first);
    reg.erase(it);
  }

  /// Under mu: the session leaves `name`; false when it was not subscribed.
  bool leave(kv::session& s, bool pattern, std::string_view name) {
    auto& mine = pattern ? s.patterns : s.channels;
    auto sit = mine.find(name);
    if (sit == mine.end()) return false;
    registry& reg = pattern ? patterns : channels;
    if (auto it = reg.find(name); it != reg.end()) {
      erase_session(it->second.sessions, &s);
      release(pattern, it);
    }
    mine.erase(sit);
    return true;
  }
};

namespace {

void confirm(kv::request& req, std::string_view kind, const std::string_view* name) {
  req.out.push(3);
  req.out.bulk(kind);
  if (name) req.out.bulk(*name);
  else req.out.null_bulk();
  req.out.integer(static_cast<long long>(req.sess.subscriptions()));
}

/// Every subscriber's sync() at once, on this coroutine's executor; returns when all completed (each is bounded by
/// `timeout`).
awaitable<void> sync_all(std::vector<std::shared_ptr<resp::upstream_subscriber>> subs, std::chrono::milliseconds timeout) {
  if (subs.empty()) co_return;
  if (subs.size() == 1) {
    co_await subs.front()->sync(timeout);
    co_return;
  }
  struct group {
    explicit group(const boost::asio::any_io_executor& ex, std::size_t n) : done(ex), left(n) {}
    boost::asio::steady_timer done;
    std::size_t left;  // touched on the executor only
  };
  const auto ex = co_await boost::asio::this_coro::executor;
  auto g = std::make_shared<group>(ex, subs.size());
  g->done.expires_at(boost::asio::steady_timer::time_point::max());
  for (auto& sub : subs) {
    boost::asio::co_spawn(ex, [sub, g, timeout]() -> awaitable<void> {
      co_await sub->sync(timeout);
      if (--g->left == 0) g->done.cancel();
    }, boost::asio::detached);
  }
  while (g->left != 0) co_await g->done.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
}

/// (P)SUBSCRIBE: every name pending, the nodes synced, then the session joins and the confirmations go out.
awaitable<result<kv::response>> subscribe(std::shared_ptr<pubsub_hub::state> keep, bool pattern, kv::request& req) {
  pubsub_hub::state& h = *keep;
  std::vector<std::shared_ptr<resp::upstream_subscriber>> subs;
  {
    std::lock_guard lock(h.mu);
    for (std::size_t i = 1; i < req.args.size(); ++i) h.add_pending(pattern, req.args[i]);
    for (auto& n : h.nodes) subs.push_back(n.sub);
  }
  // Each node's PING answered behind the SUBSCRIBEs: all nodes at once, within one connect_timeout (a stalled node
  // delays the confirmation by that much, no more).
  co_await sync_all(std::move(subs), h.opts.connect_timeout);
  std::lock_guard lock(h.mu);
  registry& reg = pattern ? h.patterns : h.channels;
  auto& mine = pattern ? req.sess.patterns : req.sess.channels;
  for (std::size_t i = 1; i < req.args.size(); ++i) {
    const std::string_view name = req.args[i];
    auto it = reg.find(name);  // present: pending > 0
    --it->second.pending;
    if (mine.emplace(name).second) it->second.sessions.push_back(&req.sess);
    else h.release(pattern, it);
    confirm(req, pattern ? "psubscribe" : "subscribe", &name);
  }
  co_return kv::response{};
}

kv::response unsubscribe(pubsub_hub::state& h, bool pattern, kv::request& req) {
  std::lock_guard lock(h.mu);
  const std::string_view kind = pattern ? "punsubscribe" : "unsubscribe";
  if (req.args.size() == 1) {
    const auto& mine = pattern ? req.sess.patterns : req.sess.channels;
    std::vector<std::string> all(mine.begin(), mine.end());
    for (const auto& name : all) {
      h.leave(req.sess, pattern, name);
      const std::string_view v = name;
      confirm(req, kind, &v);
    }
    if (all.empty()) confirm(req, kind, nullptr);
    return {};
  }
  for (std::size_t i = 1; i < req.args.size(); ++i) {
    h.leave(req.sess, pattern, req.args[i]);
    confirm(req, kind, &req.args[i]);
  }
  return {};
}

}  // namespace

pubsub_hub::pubsub_hub(upstream_options::mode_kind mode, const upstream_options& opts,
                       std::vector<boost::asio::any_io_executor> executors)
    : state_(std::make_shared<state>()) {
  state_->mode = mode;
  state_->opts = opts;
  state_->executors = std::move(executors);
}

pubsub_hub::~pubsub_hub() { stop(); }

void pubsub_hub::stop() {
  std::vector<state::node> nodes;
  {
    std::lock_guard lock(state_->mu);
    nodes.swap(state_->nodes);
  }
  for (auto& n : nodes) n.sub->stop();
}

void pubsub_hub::set_nodes(const std::vector<upstream_options::endpoint>& wanted) {
  std::vector<state::node> gone;
  {
    std::lock_guard lock(state_->mu);
    auto& nodes = state_->nodes;
    for (auto it = nodes.begin(); it != nodes.end();) {
      const bool keep = std::any_of(wanted.begin(), wanted.end(), [&](const auto& e) { return e.name == it->name; });
      if (keep) {
        ++it;
      } else {
        gone.push_back(std::move(*it));
        it = nodes.erase(it);
      }
    }
    for (const auto& e : wanted) {
      if (std::none_of(nodes.begin(), nodes.end(), [&](const auto& n) { return n.name == e.name; }))
        nodes.push_back({e.name, state_->make_subscriber(e)});
    }
  }
  for (auto& n : gone) n.sub->stop();
}

void pubsub_hub::set_designated(std::string name) {
  std::lock_guard lock(state_->mu);
  state_->designated = std::move(name);
}

std::optional<awaitable<result<kv::response>>> pubsub_hub::handle(std::string_view family,
                                                                   const kv::resolved_command& cmd, kv::request& req) {
  kv::session& s = req.sess;
  const bool subscribed = s.resp == 2 && s.subscriptions() > 0;
  if (!cmd.info || (!subscribed && !is_subscribe_family(family))) return std::nullopt;
  if (!kv::arity_ok(*cmd.info, req.args.size())) return answered(error_reply(req, kv::arity_error(*cmd.info)));
  if (subscribed && !(cmd.def && (cmd.def->dispatch & kv::dispatch_allowed_in_pubsub))) {
    std::string msg = "ERR Can't execute '";
    msg.append(cmd.info->name).append(
        "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context");
    return answered(error_reply(req, msg));
  }
  if (family == "ping" && subscribed) {
    req.out.array(2);
    req.out.bulk("pong");
    req.out.bulk(req.args.size() == 1 ? std::string_view() : req.args[1]);
    return answered(kv::response{});
  }
  if (family == "subscribe" || family == "psubscribe") return subscribe(state_, family == "psubscribe", req);
  if (family == "unsubscribe" || family == "punsubscribe")
    return answered(unsubscribe(*state_, family == "punsubscribe", req));
  if (family == "ssubscribe" || family == "sunsubscribe")
    return answered(error_reply(req, "ERR " + upper(family) + " is not supported in " +
                                         std::string(to_string(state_->mode)) + " mode"));
  return std::nullopt;
}

long long pubsub_hub::publish_receivers(std::string_view channel, long long upstream_count) const {
  // Redis counts one receiver per matching subscription: the hub's connection is one for the channel and one for
  // each matching pattern, the sessions behind it likewise.
  std::lock_guard lock(state_->mu);
  long long local = 0, own = 0;
  if (auto it = state_->channels.find(channel); it != state_->channels.end()) {
    ++own;
    local += static_cast<long long>(it->second.sessions.size());
  }
  for (const auto& [pattern, en] : state_->patterns) {
    if (!kv::glob_match(pattern, channel)) continue;
    ++own;
    local += static_cast<long long>(en.sessions.size());
  }
  return std::max(0ll, upstream_count - own) + local;
}

awaitable<result<kv::response>> publish_through(std::shared_ptr<const void> keep, kv::pipeline_service& pipeline,
                                                const pubsub_hub& hub, kv::request& req) {
  auto fork = kv::fork_attempt(req);
  result<kv::response> r = co_await ready_and_call(pipeline, fork->req);
  if (!r) co_return r;
  const auto& replies = fork->out.replies();
  if (replies.size() == 1 && replies.front().type == kv::reply_value::kind::integer && req.args.size() == 3) {
    req.out.integer(hub.publish_receivers(req.args[1], replies.front().integer));
  } else {
    kv::commit_attempt(req, *fork);
  }
  (void)keep;
  co_return r;
}

void pubsub_hub::close_session(kv::session& s) noexcept {
  if (s.subscriptions() == 0) return;
  std::lock_guard lock(state_->mu);
  while (!s.channels.empty()) state_->leave(s, false, std::string(*s.channels.begin()));
  while (!s.patterns.empty()) state_->leave(s, true, std::string(*s.patterns.begin()));
}

}  // namespace turret::upstream
