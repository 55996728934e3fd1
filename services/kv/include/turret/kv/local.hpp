#pragma once
// The in-process backend: turretd's own key-value store (Redis 7.0 semantics, one mutex, see
// services/kv/store.hpp), behind the backend interface. Only the composition root (turretd), tools and tests create
// it; front ends see the backend interface alone.
#include <turret/kv/backend.hpp>
#include <turret/kv/reply.hpp>

#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace turret::kv {

class store;

/// One client-output-buffer-limit class (bytes; 0 = no limit).
struct output_buffer_limit {
  unsigned long long hard = 0, soft = 0;
  long long soft_seconds = 0;
};

/// The in-process store's options (turretd: the `store:` section, plus the RESP listener's client limits).
struct store_options {
  int databases = 16;
  std::size_t maxclients = 10000;
  std::string requirepass;     ///< empty: no AUTH needed
  std::string notify_keyspace_events;  ///< Redis letters, e.g. "KEA"; invalid -> std::invalid_argument
  int hz = 10;
  long long timeout = 0;       ///< idle client timeout in seconds (0 = never)
  long long proto_max_bulk_len = 512ll * 1024 * 1024;
  long long client_query_buffer_limit = 1024ll * 1024 * 1024;
  output_buffer_limit obuf_normal{0, 0, 0};
  output_buffer_limit obuf_replica{256ull << 20, 64ull << 20, 60};
  output_buffer_limit obuf_pubsub{32ull << 20, 8ull << 20, 60};
  int port = 6379;             ///< for INFO / CONFIG GET (the front end's real port)
  std::string bind = "127.0.0.1";
};

class local_backend final : public backend {
 public:
  /// A store with these options and the default command table (every command family bound). Throws
  /// std::invalid_argument for invalid options (start-up).
  explicit local_backend(const store_options& opts);
  ~local_backend() override;

  std::uint64_t open_session(session& s) override;
  void close_session(session& s) noexcept override;
  bool auth_required(const session& s) const noexcept override;
  const client_limits& limits() const noexcept override;
  connection_stats& counters() noexcept override;
  const command_table& commands() const noexcept override;
  backend_summary summary() const override;
  pipeline_service service() override;

  /// The engine itself, for the composition root (SHUTDOWN hook, INFO process fields, expiry timer) and the core's
  /// own tests.
  store& engine() noexcept { return *store_; }
  const std::shared_ptr<store>& engine_ptr() const noexcept { return store_; }

  /// Runs one command on a private session (RESP3) and returns its reply: for tests and tools that inspect the
  /// engine the way a client would (PUBSUB NUMSUB, DBSIZE, CLIENT LIST).
  reply_value run(std::span<const std::string_view> args);
  reply_value run(std::initializer_list<std::string_view> args) { return run(std::span(args.begin(), args.size())); }

 private:
  std::shared_ptr<store> store_;
  std::shared_ptr<const command_table> table_;
};

}  // namespace turret::kv
