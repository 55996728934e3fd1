#pragma once
// replicas_backend: turretd in front of one Redis primary and its replicas (`store: {kind: upstream, mode:
// replicas}`): writes to the primary, reads balanced over the replicas. Implements the backend facade, so the front
// ends (RESP, HTTP, gRPC) do not change.
//
// ```yaml
// store:
//   kind: upstream
//   mode: replicas
//   endpoints: [127.0.0.1:7001, 127.0.0.1:7002, 127.0.0.1:7003]   # the primary and its replicas, in any order
//   refresh_interval: 1s        # roles are read again this often
//   refresh_timeout: 500ms      # an endpoint that does not answer INFO within it is unusable until it does
//   max_lag: 1mb                # a replica further behind the primary (replication offset bytes) takes no reads
//   pipeline:                   # layers in front of the endpoints (first outermost)
//     - {layer: retry, max_attempts: 3}
//     - {layer: hedge, delay: 20ms, max_hedges: 1}
//     - {layer: load_balance, policy: p2c}   # p2c (peak EWMA) or round_robin; added (p2c) when absent
// ```
//
// # Roles
// Roles are discovered, never configured: at start and every `refresh_interval`, `INFO replication` goes to every
// endpoint at once (over its data connection), each answer awaited at most `refresh_timeout`. replication_roles.hpp
// decides from the answers: the primary is a reachable role:master (the current one while it stays master; else
// the one with the most connected replicas); reads go to the reachable replicas whose master_link_status is up and
// whose lag (primary's master_repl_offset - replica's slave_repl_offset) is at most `max_lag`; to the primary when no
// replica qualifies; to any reachable replica (stale) when there is no primary either. A promotion (REPLICAOF NO ONE
// on a replica, a Sentinel failover) is followed at the first refresh after it; a replica that comes back or catches
// up takes reads again at the first refresh that sees it so.
// An endpoint whose connection fails (a transport error of condition unavailable: kill -9, a reset) is taken out
// at once, not at the next refresh: its reads and, if it was the primary, the writes stop going there, and roles are
// decided again without it (the primary then takes reads if it was the last replica).
//
// # Pipelines
// `pipeline` is built twice, around the same endpoint services (one resp::upstream_client per endpoint, `connections`
// pipelined connections each): the read pipeline {pipeline="upstream/reads"} and the write pipeline
// {pipeline="upstream/writes"}. The load_balance entry of each balances over every endpoint through gates
// (load_balance.hpp, "Gates") that the role decisions open and close: the read set for reads, the primary alone for
// writes. So p2c compares the replicas' latency (peak EWMA x pending): a slow (SIGSTOPped) replica gets few reads
// before the next refresh takes it out, and a hedge layer in the pipeline covers those few (the hedge goes to a
// replica the read has not tried: load_balance.hpp); retry sends a failed idempotent read again, to another replica
// likewise. Writes are not retried unless the retry
// entry says `writes: true` (never do that for non-idempotent commands you cannot afford twice).
//
// # Routing
// - PING, ECHO, QUIT and SELECT 0 are answered here.
// - Commands flagged readonly (GET, MGET, EXISTS, KEYS, DBSIZE, EVAL_RO, ...) but SCAN go through the read pipeline.
//   Multi-key commands go as they are (one dataset).
// - Everything else (writes, may-replicate commands such as EVAL and PUBLISH, SCAN (its cursor belongs to one
//   server), keyless commands such as TIME and INFO, unknown commands) goes through the write pipeline to the
//   primary; with no primary known it fails at once with replicas_errc::no_primary (condition unavailable: "ERR
//   unavailable: no primary ...", HTTP 503, gRPC UNAVAILABLE).
// - MULTI/EXEC/DISCARD: the transaction runs on the primary, as shard mode runs it ("Transactions" in
//   shard_backend.hpp).
// - Not proxied (an error reply "ERR <CMD> is not supported in replicas mode"): SELECT other than 0,
//   SSUBSCRIBE/SUNSUBSCRIBE, AUTH, CLIENT, CONFIG, DEBUG, SHUTDOWN, MONITOR, SWAPDB, MOVE,
//   MIGRATE, CLUSTER, RESET, WAIT, replication, persistence, ACL, MODULE, SCRIPT and FUNCTION commands.
// - SUBSCRIBE and PSUBSCRIBE as in shard mode ("Pub/sub" in shard_backend.hpp), subscribed on the primary only
//   (PUBLISH goes there; a new primary is subscribed when the roles change).
// # Consistency
// Reads may be stale as Redis replica reads are: a read right after a write, even on the same client connection,
// may go to a replica that has not applied the write yet (bounded by max_lag only at refresh time). Read from the
// primary (a pipeline without replicas) when that matters.
// # Replies
// As shard mode: the bytes the server sent (RESP2, or RESP3 for a client that chose it with HELLO 3), error replies also set kv::response::set_error.
#include <turret/upstream/backend_base.hpp>
#include <turret/upstream/upstream_options.hpp>
#include <turret/kv/plugin.hpp>
#include <turret/layer_context.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/system/error_category.hpp>

#include <memory>
#include <vector>

namespace turret::upstream {

enum class replicas_errc {
  no_primary = 1,  ///< a write, and no endpoint is a reachable master: unavailable
};
/// The category "turret.upstream.replicas"; every code maps to the condition errc::unavailable.
const boost::system::error_category& replicas_category() noexcept;
inline boost::system::error_code make_error_code(replicas_errc e) noexcept {
  return {static_cast<int>(e), replicas_category()};
}

class replicas_backend final : public upstream_backend_base {
 public:
  /// Builds the read and write pipelines with `layers` and `ctx` (throws config_error), starts connecting
  /// (connection i of each endpoint on executors[i % size]) and refreshing roles on executors[0].
  replicas_backend(const upstream_options& opts, std::shared_ptr<const kv::command_table> table,
                   const kv::layer_registry_type& layers, const layer_context& ctx,
                   std::vector<boost::asio::any_io_executor> executors);
  /// Stops the clients and lets them go: destroy the backend after its executors stopped running and before
  /// their io_contexts go (turretd's shutdown order), not from one of their threads.
  ~replicas_backend() override;

  kv::pipeline_service service() override;
  /// Also drops the session's subscriptions (pub/sub through the upstreams).
  void close_session(kv::session& s) noexcept override;

  struct state;

 private:
  std::shared_ptr<state> state_;
};

}  // namespace turret::upstream

template <>
struct boost::system::is_error_code_enum<turret::upstream::replicas_errc> : std::true_type {};
