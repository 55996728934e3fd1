#pragma once
// server: turretd assembled from a validated config: runtime (worker threads), the backend (the in-process store),
// the pipelines (each named pipeline's layers around the backend's service, behind a swappable handle), one listener
// per `listeners[]` entry (created through the frontend_registry, reading the handle of the pipeline it names), the
// active-expiry timer, signals and graceful shutdown.
//
// Layers are built here, with the serving layer_context: the real clock, the runtime, the default metrics registry,
// the server's command table, the pipeline's name.
//
// Shutdown (SIGINT/SIGTERM, the SHUTDOWN command, or request_shutdown()): listeners stop accepting and ask their
// connections to finish what they are doing; after at most `server.shutdown_grace` the remaining connections are
// closed; then the runtime stops and run() returns 0.
#include <services/turretd/config.hpp>
#include <turret/kv/frontend.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace turret::kv {
class store;
class local_backend;
}  // namespace turret::kv

namespace turret::turretd {

class server {
 public:
  /// `config_file` is reported by INFO (empty for the embedded default).
  server(std::shared_ptr<const config> cfg, std::shared_ptr<const registries> regs, std::string config_file = {});
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Creates the store and listeners and binds every address (throws std::system_error when one cannot be
  /// bound), logs `listening <protocol> <ip:port> name=<name>` per listener, installs signal handlers.
  void start();
  /// Serves until shutdown completes (the calling thread runs worker context 0). Returns the exit code (0).
  int run();
  /// Starts the graceful shutdown (thread-safe, idempotent).
  void request_shutdown();

  server_state state() const noexcept { return state_.load(std::memory_order_acquire); }
  /// Bound addresses, in listener order (valid after start()).
  std::vector<boost::asio::ip::tcp::endpoint> endpoints() const;
  const std::vector<std::unique_ptr<listener>>& listeners() const noexcept { return listeners_; }
  /// The in-process engine (tests inspect it).
  kv::store& store() noexcept;
  kv::local_backend& backend() noexcept { return *backend_; }
  runtime& rt() noexcept { return *rt_; }
  /// The handle of the pipeline `name` (every listener naming it reads it; swap() through it reaches them all), or
  /// nullptr. Valid after start().
  kv_pipeline_handle* pipeline(std::string_view name) noexcept;
  /// What a replacement pipeline is built from (after start()): the layer_context of the server's pipelines, and
  /// the key-value core they all end in.
  const layer_context& pipeline_context() const noexcept { return layer_ctx_; }
  const kv_pipeline& core() const noexcept { return core_; }

 private:
  void arm_expiry_timer();

  std::shared_ptr<const config> cfg_;
  std::shared_ptr<const registries> regs_;
  std::string config_file_;
  std::atomic<server_state> state_{server_state::starting};
  // Declaration order matters: the runtime (and with it every connection coroutine) is destroyed before the
  // coordinator and the store they refer to.
  shutdown_coordinator shutdown_;
  std::shared_ptr<kv::local_backend> backend_;
  kv::store* store_ = nullptr;  ///< backend_'s engine
  std::unique_ptr<runtime> rt_;
  layer_context layer_ctx_;
  kv_pipeline core_;
  std::map<std::string, kv_pipeline_handle, std::less<>> pipelines_;
  std::vector<std::unique_ptr<listener>> listeners_;
  std::unique_ptr<boost::asio::steady_timer> expiry_timer_;
};

}  // namespace turret::turretd
