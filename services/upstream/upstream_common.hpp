#pragma once
// What the upstream backends' modes share (private to services/upstream/): the endpoint service at the bottom of
// every pipeline, the commands answered here or refused, the pipelines built around provider endpoints, and the
// session bookkeeping of the backend facade, the split of multi-key commands (split_request.cpp). The contracts are at
// shard_backend.hpp, replicas_backend.hpp and cluster_backend.hpp.
#include <turret/upstream/backend_base.hpp>
#include <turret/upstream/upstream_options.hpp>
#include <turret/clients/resp_upstream.hpp>
#include <turret/kv/backend.hpp>
#include <turret/kv/command_info.hpp>
#include <turret/kv/plugin.hpp>
#include <turret/layer_context.hpp>
#include <turret/middleware/load_balance.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace turret::upstream {

/// The innermost service of an endpoint: the upstream client, its reply written into the request's sink as the
/// bytes the server sent (reply_builder::raw; error replies also set response::set_error). `on_unavailable`, when
/// set, is told of every transport failure (an error of condition unavailable from ready() or call()).
class endpoint_service {
 public:
  using response_type = kv::response;
  using permit_type = resp::upstream_client::permit_type;

  explicit endpoint_service(resp::upstream_client c, std::function<void()> on_unavailable = {})
      : client_(std::move(c)) {
    if (on_unavailable) on_unavailable_ = std::make_shared<const std::function<void()>>(std::move(on_unavailable));
  }

  awaitable<result<permit_type>> ready(request_context& ctx);
  std::optional<result<permit_type>> try_ready(request_context& ctx);
  awaitable<result<kv::response>> call(permit_type p, kv::request& req);
  /// Callback start: the client's try_start; the callback writes the reply's bytes into req.out (which outlives
  /// it: service.hpp). A client session's requests keep their order (affinity: the session).
  bool try_start(kv::request& req, completion<kv::response>& done);

 private:
  void failed(const error_code& ec) const { notify(on_unavailable_, ec); }
  static void notify(const std::shared_ptr<const std::function<void()>>& f, const error_code& ec);

  resp::upstream_client client_;
  std::shared_ptr<const std::function<void()>> on_unavailable_;  ///< shared with started requests' callbacks
};

/// `pipeline`'s awaitable for `req`: its call() itself when try_ready() gives a permit at once (the caller's frame is
/// the only one above it while the reply is awaited), else ready_and_call. For routers that are not coroutines.
awaitable<result<kv::response>> forward_to(kv::pipeline_service& pipeline, kv::request& req);
/// An awaitable that completes at once with `r` (a router's locally answered command or early error).
awaitable<result<kv::response>> answered(result<kv::response> r);

/// ASCII upper case ("subscribe" -> "SUBSCRIBE"), for error texts.
std::string upper(std::string_view s);

/// Writes `text` as an error reply and returns the matching response (its error set).
kv::response error_reply(kv::request& req, std::string_view text);

/// The command resolved (req.cmd, else resolved into `own`).
const kv::resolved_command& resolved(const kv::command_table& table, kv::request& req,
                                     std::optional<kv::resolved_command>& own);

/// PING, ECHO, QUIT and SELECT 0 answered here; the commands no mode proxies refused with "ERR <CMD> is not supported
/// in <mode> mode" (connection state, transactions, subscriptions, server administration), and in shard and cluster
/// modes also those that concern every server (FLUSHALL, KEYS, SCAN, DBSIZE...). nullopt: the command goes upstream.
std::optional<kv::response> answer_locally(std::string_view family, kv::request& req, upstream_options::mode_kind mode);
/// "POST" or "Host:" (any case) as the command: redis-server takes it for an HTTP request sent to it (a
/// cross-protocol attack) and closes the connection it came on, here a connection that other clients share. An error
/// reply instead of forwarding it (the RESP front end closes the client's connection first, as redis-server does).
std::optional<kv::response> refuse_connection_closers(kv::request& req);
/// Would answer_locally answer a command of `family` (without answering it)?
bool answers_locally(std::string_view family, upstream_options::mode_kind mode) noexcept;
/// The families answer_locally refuses in `mode`.
bool refused_locally(std::string_view family, upstream_options::mode_kind mode) noexcept;

/// Does this command go to replicas (replicas mode, cluster mode with read_from: replicas)? Flagged readonly, not
/// may-replicate (EVAL_RO...), and not SCAN (its cursor belongs to one server).
bool is_read_command(const kv::command_info& info, std::string_view family) noexcept;

/// How a multi-key command whose keys live in several places is split and merged (see split_request).
enum class split_kind {
  none,  ///< cannot be split: CROSSSLOT
  mget,  ///< MGET: the parts' arrays merged in key order
  mset,  ///< MSET: key-value pairs split; +OK when every part is
  sum,   ///< DEL, EXISTS, UNLINK, TOUCH: the parts' integers added
};
/// The split kind of a command family ("mget", "del"...).
split_kind split_kind_of(std::string_view family) noexcept;

/// Where the parts of a split command go: `group` places a key (a shard, a Cluster slot); `service` is the pipeline
/// of a group (nullopt: the group has no server, the command fails with `unserved`); `name` names it in errors;
/// `any` takes a command the split cannot parse (the upstream answers its arity error).
struct split_target {
  std::function<std::size_t(std::string_view key)> group;
  std::function<std::optional<kv::pipeline_service>(std::size_t group)> service;
  std::function<std::string(std::size_t group)> name;
  std::function<kv::pipeline_service()> any;
  std::string unserved = "CLUSTERDOWN Hash slot not served";
};

/// `req` (of split `kind`) split by group, every part sent at once on a fork of the request (its own context and
/// sink: kv::attempt_fork) and merged in request order; any failed part fails the request (its error, or its error
/// reply). Cancelling the request cancels every part. `keep` holds what `target` refers to.
awaitable<result<kv::response>> split_request(std::shared_ptr<const void> keep, const kv::command_table& table,
                                              split_kind kind, kv::request& req, split_target target);

/// Waits until `flag` is set, at most `limit` (requests that arrive before a backend's first discovery).
awaitable<void> wait_for(const std::atomic<bool>& flag, std::chrono::milliseconds limit);

/// The command's family: its table name up to '|' ("client" for "client|kill"); "" when unknown.
inline std::string_view family_of(const kv::resolved_command& cmd) noexcept {
  if (!cmd.info) return {};
  const std::string_view name = cmd.info->name;
  return name.substr(0, name.find('|'));
}

/// Is `family` one of the subscribe commands (subscribe, psubscribe, ssubscribe and their unsubscribes)?
inline bool is_subscribe_family(std::string_view family) noexcept {
  return family == "subscribe" || family == "psubscribe" || family == "ssubscribe" || family == "unsubscribe" ||
         family == "punsubscribe" || family == "sunsubscribe";
}

/// Does `req` belong to transaction_step (a transaction is open, or it opens, runs or discards one, or WATCHes)?
inline bool transaction_command(const kv::request& req, std::string_view family) noexcept {
  return req.sess.in_multi || family == "multi" || family == "exec" || family == "discard" || family == "watch" ||
         family == "unwatch";
}

/// The sessions that WATCH (one table per backend): each one's own upstream client, a connection of its own to the
/// server of its watched keys (resp::upstream_client::with_own_connection), from its first WATCH to its EXEC,
/// DISCARD, UNWATCH or end, when the connection closes (the server forgets the WATCH with it). Thread-safe.
class watch_table {
 public:
  struct entry {
    resp::upstream_client client;
    std::uint64_t connects = 0;  ///< client.connects() when the first WATCH was answered
    bool resp3 = false;          ///< the session's protocol at its first WATCH (its twin connection then)
  };
  std::optional<entry> find(const kv::session& s) const;
  void set(const kv::session& s, entry e);
  /// Forgets the session's WATCH and closes its connection. Never throws.
  void release(const kv::session& s) noexcept;

 private:
  mutable std::mutex mu_;
  std::vector<std::pair<const kv::session*, entry>> entries_;
};

/// Where a transaction's EXEC goes, given the keys of all its commands (empty: none has keys): the upstream client
/// that serves them all, an error reply's text ("CROSSSLOT ..."), or a pipeline error (no primary).
using transaction_target =
    std::function<std::variant<resp::upstream_client, std::string, error_code>(std::span<const std::string_view>)>;

/// MULTI, EXEC, DISCARD, WATCH, UNWATCH and the commands in between, for a router (shard_backend.hpp,
/// "Transactions"). The commands are queued in the session (Redis's queue-time errors: unknown command, arity, not
/// allowed in a transaction, not supported in this mode; then EXEC answers EXECABORT); EXEC sends MULTI, the queue
/// and EXEC as one adjacent batch on one connection of `target`'s client (their replies dropped but EXEC's) and
/// answers EXEC's reply as the server sent it. WATCH opens the session's own connection to `target`'s server
/// (`watches`) and sends it there; EXEC then runs on it (keys elsewhere: -CROSSSLOT; the connection lost since the
/// WATCH: the null reply of an aborted EXEC, nothing ran). nullopt: `req` is not part of a transaction.
std::optional<awaitable<result<kv::response>>> transaction_step(kv::request& req, std::string_view family,
                                                                const kv::resolved_command& cmd,
                                                                const kv::command_table& table,
                                                                upstream_options::mode_kind mode,
                                                                const transaction_target& target,
                                                                watch_table& watches);

/// One upstream client for `e` with the options' connections and connect timeout (and `on_connect` commands).
resp::upstream_client make_client(const upstream_options::endpoint& e, const upstream_options& opts,
                                  const std::vector<boost::asio::any_io_executor>& executors,
                                  std::vector<std::vector<std::string>> on_connect = {});

/// `opts.pipeline` built in front of `endpoints` as the endpoint set its load_balance entries balance over (the
/// provider of load_balance.hpp), metrics labelled {pipeline="upstream/NAME"}; with `implicit_balancer`, a pipeline
/// without a load_balance entry gets `{layer: load_balance, policy: p2c}` as its innermost layer. Without a
/// pipeline: the first endpoint's service. Throws config_error.
kv::pipeline_service build_pipeline(const upstream_options& opts, std::vector<lb_endpoint<kv::pipeline_service>> endpoints,
                                    const kv::layer_registry_type& layers, const layer_context& ctx,
                                    const std::string& name, bool implicit_balancer);

}  // namespace turret::upstream
