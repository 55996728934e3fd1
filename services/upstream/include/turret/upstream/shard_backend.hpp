#pragma once
// shard_backend: turretd in front of real Redis servers, keys spread over them (`store: {kind: upstream, mode:
// shard}`). Implements the backend facade, so the front ends (RESP, HTTP, gRPC) do not change.
//
// ```yaml
// store:
//   kind: upstream
//   mode: shard                 # replicas: replicas_backend.hpp; cluster: a config error
//   endpoints: [127.0.0.1:7001, 127.0.0.1:7002, 127.0.0.1:7003]
//   connections: 1              # pipelined connections per endpoint (resp::upstream_client)
//   connect_timeout: 1s
//   pipeline:                   # layers in front of EACH endpoint (first outermost), built with the layer registry
//     - {layer: retry, max_attempts: 3}
//     - {layer: circuit_breaker, consecutive_failures: 5}
//     - {layer: load_balance, policy: ring_hash}
// ```
//
// # Routing
// The backend's service() is a router. It places each key with the placement of load_balance's `ring_hash` or
// `maglev` (<turret/middleware/load_balance_placement.hpp>: endpoints named "host:port" as written, the parameters of
// the pipeline's load_balance entry, ring_hash with its defaults when the pipeline has none; p2c and round_robin are
// a config error: they do not place keys), then sends the request through THAT endpoint's pipeline. Every endpoint
// has its own instance of `pipeline` (state and metrics labelled {pipeline="upstream/HOST:PORT"}), so a circuit
// breaker opened by a dead server rejects only that server's keys; a load_balance entry in it balances over the
// endpoint's one upstream client (its outlier ejection and health checks then act per server; never failover: a
// shard does not answer for another's keys). The innermost service is the endpoint's resp::upstream_client.
// - Commands with keys: every key on one endpoint -> that endpoint. MGET, MSET, DEL, EXISTS, UNLINK and TOUCH whose
//   keys span endpoints are split per endpoint (one sub-request each, all at once) and merged in request order (MGET's
//   array, the sum of the integers, +OK for MSET); any failed part fails the request (its error). Any other command
//   whose keys span endpoints: `-CROSSSLOT Keys in request don't hash to the same slot`.
// - Keyless commands (TIME, INFO, COMMAND, PUBLISH, unknown commands...) go to the endpoints in turn; PING, ECHO and
//   QUIT are answered here.
// - Pipelined clients: when every endpoint's pipeline has try_start (service.hpp; load_balance alone has it, so
//   `pipeline: [{layer: load_balance, ...}]` or no pipeline), the router starts a command whose keys are on one
//   endpoint, outside MULTI and subscriptions, without waiting: the RESP front end starts a batch's commands
//   together and answers them in order (services/resp/started_batch.hpp), so a client's pipeline reaches each
//   server as a pipeline. A session's started commands go on one connection per server (resp::upstream_request::
//   affinity), so they run there in the order sent. Everything else (split commands, keyless, transactions, a
//   pipeline with retry or circuit_breaker...) goes through call(), one command after another per client.
// - Not proxied (an error reply "ERR <CMD> is not supported in shard mode"): SELECT of another database than 0 (SELECT
//   0 is +OK), SSUBSCRIBE/SUNSUBSCRIBE, AUTH (also as HELLO's option: the upstream connections are
//   shared), CLIENT, CONFIG, DEBUG, SHUTDOWN, MONITOR, FLUSHALL, FLUSHDB, SWAPDB, MOVE, MIGRATE, KEYS, SCAN,
//   RANDOMKEY, DBSIZE, CLUSTER, RESET, replication and persistence commands.
// # Pub/sub
// SUBSCRIBE, PSUBSCRIBE and their unsubscribes are served by turretd's own registry and ONE subscriber connection per
// server (resp::upstream_subscriber), subscribed to the union of the clients' channels and patterns on EVERY server:
// a message published on any server, and the keyspace notifications of every server (their notify-keyspace-events
// is the servers' own configuration), reach the client once. A lost subscriber connection reconnects and subscribes
// everything again. PUBLISH goes to one server; its reply counts turretd's clients as Redis would. The replies are
// redis-server's; the details are in services/upstream/pubsub_hub.hpp. PUBSUB CHANNELS/NUMSUB/NUMPAT are forwarded:
// they count turretd's subscriber connection as one client.
// # Transactions
// MULTI opens a transaction in the client's session; the commands after it are checked as Redis checks them when
// queueing (unknown command, arity, not allowed in a transaction, not supported in this mode: an error reply now,
// -EXECABORT at EXEC) and answered +QUEUED. EXEC sends MULTI, the queued commands and EXEC to the server of all
// their keys (keyless: any server) as one batch, adjacent on one upstream connection, so no other client's command
// comes between them, and answers EXEC's reply as the server sent it; keys of several servers: -CROSSSLOT at EXEC,
// and nothing runs. DISCARD drops the queue. The transaction bypasses `pipeline` (a transaction is not retried).
// WATCH (keys of one server; else -CROSSSLOT) opens a connection of the client's own to that server
// (resp::upstream_client::with_own_connection, on the client's thread) and is sent there; EXEC then sends the batch on
// it, so the server checks the WATCH as Redis does (a change aborts EXEC: a null reply). The queue's keys must be on
// the same server (else -CROSSSLOT at EXEC). That connection closes at EXEC, DISCARD, UNWATCH or the client's end; if it
// was lost in between (the server restarted, CLIENT KILL), EXEC answers the null reply of an aborted transaction and
// nothing runs, since the server forgot the WATCH. Each WATCHing client costs one upstream connection (a connect on
// its first WATCH).
// # Replies
// An upstream reply goes into the request's reply_builder as the bytes the server sent (reply_builder::raw): the RESP
// front end appends them (no re-encoding), HTTP and gRPC parse them into their value tree. HELLO is answered here
// (redis-server 7.0's checks and reply; AUTH refused); a client that chose RESP3 has its commands sent on RESP3
// connections (resp::upstream_client's twins, HELLO 3), so it gets the server's RESP3 bytes (maps, sets, doubles,
// nulls, push frames), RESP2 clients RESP2 ones. Error replies set
// kv::response::set_error, so retry and circuit_breaker classify them. Transport failures are pipeline errors of
// condition unavailable (the front end's error mapping).
// # Sessions and gauges
// upstream_backend_base's (backend_base.hpp).
#include <turret/upstream/backend_base.hpp>
#include <turret/upstream/upstream_options.hpp>
#include <turret/kv/backend.hpp>
#include <turret/kv/plugin.hpp>
#include <turret/layer_context.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <memory>
#include <vector>

namespace turret::upstream {

/// `mode: shard` (see the top of this file).
class shard_backend final : public upstream_backend_base {
 public:
  /// Builds each endpoint's pipeline with `layers` and `ctx` (throws config_error) and starts connecting, connection
  /// i of each endpoint on executors[i % size].
  shard_backend(const upstream_options& opts, std::shared_ptr<const kv::command_table> table,
                const kv::layer_registry_type& layers, const layer_context& ctx,
                std::vector<boost::asio::any_io_executor> executors);
  /// Stops the clients and lets them go: destroy the backend after its executors stopped running and before
  /// their io_contexts go (turretd's shutdown order), not from one of their threads.
  ~shard_backend() override;

  kv::pipeline_service service() override;
  /// Also drops the session's subscriptions (pub/sub through the upstreams).
  void close_session(kv::session& s) noexcept override;

  struct state;

 private:
  std::shared_ptr<state> state_;
};

}  // namespace turret::upstream
