#pragma once
// upstream_backend_base: the part of the backend facade every upstream mode shares (shard_backend.hpp,
// replicas_backend.hpp): sessions are counted and numbered, auth is never required (the upstream connections are
// shared: AUTH is refused), limits() and counters() are the defaults, commands() is the table given, summary() has
// clients only. A mode adds service().
#include <turret/kv/backend.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace turret::upstream {

/// The backend facade's bookkeeping shared by the modes: sessions (ids, count; auth is never required), limits,
/// counters and the command table.
class upstream_backend_base : public kv::backend {
 public:
  explicit upstream_backend_base(std::shared_ptr<const kv::command_table> table) : table_(std::move(table)) {}

  std::uint64_t open_session(kv::session& s) override;
  void close_session(kv::session& s) noexcept override;
  bool auth_required(const kv::session&) const noexcept override { return false; }
  const kv::client_limits& limits() const noexcept override { return limits_; }
  kv::connection_stats& counters() noexcept override { return stats_; }
  const kv::command_table& commands() const noexcept override { return *table_; }
  /// Clients only (keys, expires and memory are 0: unknown here).
  kv::backend_summary summary() const override;

 protected:
  const std::shared_ptr<const kv::command_table>& table() const noexcept { return table_; }

 private:
  std::shared_ptr<const kv::command_table> table_;
  std::atomic<std::uint64_t> next_id_{1};
  std::atomic<std::size_t> clients_open_{0};
  kv::client_limits limits_;
  kv::connection_stats stats_;
};

}  // namespace turret::upstream
