#pragma once
// The `store:` section of kind upstream, parsed once at start-up (every key but `kind` is checked here), and the
// factory of the backend it describes. The modes' contracts are at their backends: shard_backend.hpp (`mode: shard`,
// keys spread over the endpoints), replicas_backend.hpp (`mode: replicas`, one primary and its replicas) and
// cluster_backend.hpp (`mode: cluster`, a Redis Cluster).
//
// ```yaml
// store:
//   kind: upstream
//   mode: shard                 # shard | replicas | cluster
//   endpoints: [127.0.0.1:7001, 127.0.0.1:7002, 127.0.0.1:7003]
//   connections: 1              # pipelined connections per endpoint (resp::upstream_client)
//   connect_timeout: 1s
//   refresh_interval: 1s        # replicas: how often roles are read (INFO replication); cluster: the slot map
//   refresh_timeout: 500ms      # replicas, cluster: an endpoint that does not answer within it is skipped
//   max_lag: 1mb                # replicas mode only: replication offset bytes a readable replica may lag
//   read_from: primary          # cluster mode only: primary | replicas (readonly commands to the slot's replicas)
//   max_redirects: 5            # cluster mode only: MOVED / ASK redirections followed per command
//   pipeline: [...]             # layers in front of the endpoints, built with the layer registry
// ```
#include <turret/config.hpp>
#include <turret/kv/backend.hpp>
#include <turret/kv/plugin.hpp>
#include <turret/layer_context.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace turret::kv {
class command_table;
}

namespace turret::upstream {

struct upstream_options {
  enum class mode_kind { shard, replicas, cluster };
  struct endpoint {
    std::string host;
    std::uint16_t port = 0;
    std::string name;  ///< "host:port" as written
  };
  mode_kind mode = mode_kind::shard;
  std::vector<endpoint> endpoints;
  std::size_t connections = 1;
  std::chrono::milliseconds connect_timeout{1000};
  config_node pipeline;  ///< the `pipeline:` list (null: none)
  // replicas mode
  std::chrono::milliseconds refresh_interval{1000};
  std::chrono::milliseconds refresh_timeout{500};
  std::uint64_t max_lag = 1024 * 1024;  ///< bytes of replication offset
  // cluster mode
  bool read_from_replicas = false;
  unsigned max_redirects = 5;
};

/// "shard" | "replicas" | "cluster".
std::string_view to_string(upstream_options::mode_kind m) noexcept;

/// Parses a `store:` section of kind upstream. Throws config_error naming file, line and key (an unknown key, a key
/// of another mode, a pipeline whose load_balance does not suit the mode).
upstream_options parse_upstream_options(const config_node& store);

/// The backend of `opts.mode`, whose front ends resolve commands against `table` (kv::command_table::make_forwarding():
/// every command redis-server knows has its keys and flags, implemented by turretd or not): builds its pipelines with `layers` and `ctx` (throws config_error) and starts
/// connecting (connection i of each endpoint on executors[i % size]; background work on executors[0]).
std::shared_ptr<kv::backend> make_upstream_backend(const upstream_options& opts,
                                                   std::shared_ptr<const kv::command_table> table,
                                                   const kv::layer_registry_type& layers, const layer_context& ctx,
                                                   std::vector<boost::asio::any_io_executor> executors);

}  // namespace turret::upstream
