#pragma once
// cluster_backend: turretd in front of a Redis Cluster (`store: {kind: upstream, mode: cluster}`). Implements the
// backend facade, so the front ends (RESP, HTTP, gRPC) do not change: clients that know nothing of Redis Cluster
// (redis-cli without -c, any REST or gRPC client) use the whole cluster as one server.
//
// ```yaml
// store:
//   kind: upstream
//   mode: cluster
//   endpoints: [127.0.0.1:7001, 127.0.0.1:7002]   # seed nodes: any of the cluster's nodes (more are discovered)
//   refresh_interval: 1s        # the slot map is read again this often (and at once after a change is seen)
//   refresh_timeout: 500ms      # a node that does not answer CLUSTER SLOTS within it is skipped for the next one
//   read_from: primary          # or replicas: readonly commands go to the slot's replicas (READONLY connections)
//   max_redirects: 5            # MOVED / ASK redirections followed per command
//   pipeline:                   # layers in front of EACH node (first outermost)
//     - {layer: retry, max_attempts: 3, retry_on: [unavailable, TRYAGAIN]}
//     - {layer: circuit_breaker, consecutive_failures: 5}
// ```
//
// # Slot map
// At start and every `refresh_interval`, `CLUSTER SLOTS` goes to the known nodes in turn (seeds first, then the
// nodes it listed) until one answers within `refresh_timeout`; its answer replaces the map: for each of the 16384
// slots, its primary and up to three replicas. Nodes it names that are new get an upstream client and their own
// instance of `pipeline` ({pipeline="upstream/HOST:PORT"}), kept for the process's life (at most 1024 nodes). A
// refresh also runs at once (at most one per 100 ms) when a command is redirected with MOVED and when a node's
// connection fails: a failover (CLUSTER FAILOVER, or a replica promoted after its primary died) is followed at the
// first refresh after the cluster itself agreed on it. Requests that arrive before the first map wait for it (at
// most connect_timeout + refresh_timeout); a slot that no node serves gets `-CLUSTERDOWN Hash slot not served`.
//
// # Routing
// - The slot of a command is its keys' hash slot (CRC16 with hash tags: kv::key_hash_slot). All keys in one slot ->
//   the slot's primary's pipeline (its replicas' with `read_from: replicas` for readonly commands, in turn, skipping
//   those whose connection is down; the primary when none is up). MGET, MSET, DEL, EXISTS, UNLINK and TOUCH whose
//   keys span slots are split per slot, sent at once and merged in request order (as shard mode); any other command
//   whose keys span slots: `-CROSSSLOT Keys in request don't hash to the same slot`, as a cluster node answers.
// - Keyless commands (TIME, INFO, PUBLISH, unknown commands...) go to the primaries in turn; PING, ECHO, QUIT and
//   SELECT 0 are answered here; the commands shard mode refuses are refused here ("ERR <CMD> is not supported in
//   cluster mode": SSUBSCRIBE, connection state, KEYS, SCAN, DBSIZE, FLUSHALL, CLUSTER...).
// - SUBSCRIBE and PSUBSCRIBE as in shard mode ("Pub/sub" in shard_backend.hpp), subscribed on every primary of the
//   slot map (followed at each change): keyspace notifications are per node. Redis Cluster broadcasts PUBLISH to
//   every node, so an ordinary message is taken from one primary only (that of the lowest slot served) and arrives
//   once. PUBLISH goes to any primary.
// - MULTI/EXEC/DISCARD as shard mode runs them ("Transactions" in shard_backend.hpp), on the primary of the one slot
//   of all their keys; keys of several slots: -CROSSSLOT at EXEC, as a node answers.
// # Redirections
// `-MOVED slot host:port` from a node: the slot is now that node's (the map is updated at once, a refresh is
// requested) and the command goes there. `-ASK slot host:port` (a slot being migrated): the command goes there once,
// preceded by ASKING on the same connection. At most `max_redirects` hops; then the last redirection is the reply.
// A redirected command goes to the named node's upstream client directly: the layers of `pipeline` ran for the first
// node only. The client never sees MOVED or ASK (unless max_redirects is exceeded).
// # Replies
// As shard mode: the bytes the node sent (RESP2, or RESP3 after HELLO 3); error replies also set kv::response::set_error (retry's retry_on
// can name TRYAGAIN, returned during a migration for multi-key commands). Transport failures are pipeline errors of
// condition unavailable.
#include <turret/upstream/backend_base.hpp>
#include <turret/upstream/upstream_options.hpp>
#include <turret/kv/plugin.hpp>
#include <turret/layer_context.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <memory>
#include <vector>

namespace turret::upstream {

/// `mode: cluster` (see the top of this file).
class cluster_backend final : public upstream_backend_base {
 public:
  /// Keeps `layers` (it must outlive the backend: turretd's registries do) and `ctx` to build the pipelines of
  /// nodes discovered later; builds the seeds' pipelines now (throws config_error) and starts the slot map refresh
  /// on executors[0]; connection i of each node on executors[i % size].
  cluster_backend(const upstream_options& opts, std::shared_ptr<const kv::command_table> table,
                  const kv::layer_registry_type& layers, const layer_context& ctx,
                  std::vector<boost::asio::any_io_executor> executors);
  /// Stops the clients and lets them go: destroy the backend after its executors stopped running and before
  /// their io_contexts go (turretd's shutdown order), not from one of their threads.
  ~cluster_backend() override;

  kv::pipeline_service service() override;
  /// Also drops the session's subscriptions (pub/sub through the upstreams).
  void close_session(kv::session& s) noexcept override;

  struct state;

 private:
  std::shared_ptr<state> state_;
};

}  // namespace turret::upstream
