#pragma once
// pubsub_hub: SUBSCRIBE and PSUBSCRIBE through the upstream modes (private to services/upstream/; the contract each
// mode keeps is in its header, "Pub/sub").
//
// The client sessions' subscriptions are kept here, in one registry (channel -> sessions, pattern -> sessions). Each
// upstream node the mode names (set_nodes) gets ONE dedicated connection (resp::upstream_subscriber) subscribed to the
// union of the registry: a channel's first local subscriber subscribes it upstream, its last one (UNSUBSCRIBE, or the
// session closing) unsubscribes it. A message a node pushes goes to the sessions of its channel (`message`) or
// pattern (`pmessage`) through their session_host, as the in-process store delivers. After a lost connection the
// subscriber reconnects and subscribes the whole set again (messages published meanwhile are lost: pub/sub is
// at-most-once).
//
// # Replies
// The confirmations, PING in the RESP2 subscribed context and that context's error are redis-server 7.0's. The
// confirmation of a SUBSCRIBE or PSUBSCRIBE is written once every node that is up confirmed the upstream
// subscription (a PING behind it answered; all nodes at once, within one connect_timeout): a PUBLISH made after the
// client read its confirmation reaches it. SSUBSCRIBE and SUNSUBSCRIBE are refused ("ERR SSUBSCRIBE is not supported in <mode>
// mode"); so are the subscribe commands inside MULTI.
//
// # Deduplication (cluster mode)
// Redis Cluster broadcasts PUBLISH to every node but not keyspace notifications. With a designated node
// (set_designated), an ordinary message is delivered only when that node pushed it; notifications (channels starting
// "__keyspace@" or "__keyevent@") from every node.
//
// # Threads
// Every member is thread-safe (one mutex). Deliveries run on the subscribers' executors, under the mutex, as the
// store's do under its lock; close_session() returns once no delivery can reach the session any more.
#include <turret/upstream/upstream_options.hpp>
#include <turret/kv/backend.hpp>
#include <turret/kv/command_info.hpp>
#include <turret/result.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace turret::upstream {

class pubsub_hub {
 public:
  pubsub_hub(upstream_options::mode_kind mode, const upstream_options& opts,
             std::vector<boost::asio::any_io_executor> executors);
  /// Stops the subscribers (destroy it while the executors' io_contexts exist, like the backends' clients).
  ~pubsub_hub();
  pubsub_hub(const pubsub_hub&) = delete;
  pubsub_hub& operator=(const pubsub_hub&) = delete;

  /// The nodes to subscribe on: a new one is subscribed to the whole registry, one no longer named is stopped.
  void set_nodes(const std::vector<upstream_options::endpoint>& nodes);
  /// Ordinary messages only from this node ("host:port"); empty: from every node.
  void set_designated(std::string name);

  /// The pub/sub commands and the RESP2 subscribed context, for a router, before anything else it does (after
  /// MULTI's queueing): (P)SUBSCRIBE, (P)UNSUBSCRIBE, S(UN)SUBSCRIBE, PING while subscribed, and the error of any
  /// other command while subscribed. nullopt: the router goes on with `req`.
  std::optional<awaitable<result<kv::response>>> handle(std::string_view family, const kv::resolved_command& cmd,
                                                        kv::request& req);
  /// PUBLISH's reply through turretd: the upstream's count without this hub's own connection's subscriptions that
  /// match the channel (the channel, each matching pattern), plus the local sessions' matching subscriptions. Exact
  /// when this turretd is the only proxy subscribed (another one counts once per subscription of its own).
  long long publish_receivers(std::string_view channel, long long upstream_count) const;
  /// Drops the session's subscriptions; no delivery reaches it afterwards.
  void close_session(kv::session& s) noexcept;
  /// Stops every subscriber (the backends' destructors, while the io_contexts exist). Idempotent.
  void stop();

  struct state;

 private:
  std::shared_ptr<state> state_;
};

/// PUBLISH through `pipeline` (kept alive by `keep`, with `hub`), its integer reply corrected by
/// hub.publish_receivers; any other reply as the server sent it.
awaitable<result<kv::response>> publish_through(std::shared_ptr<const void> keep, kv::pipeline_service& pipeline,
                                                const pubsub_hub& hub, kv::request& req);

}  // namespace turret::upstream
