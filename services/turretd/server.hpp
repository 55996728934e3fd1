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
//
// Hot reload (SIGHUP, POST /admin/reload on an HTTP listener, or reload()): the configuration file the server was
// started with is read and validated again exactly as at start-up (plugins it adds are loaded first); an invalid
// file changes nothing (an error naming file:line:col and key is logged and returned). A valid one is applied as
// reload.hpp describes: every pipeline is rebuilt with a layer_context whose `states` is a new layer_state_store
// whose previous is the served one (unchanged entries keep their state: a concurrency limit's held slots, a
// breaker's state), every handle is swapped (requests in flight finish on the pipeline they started on; no
// connection of an unchanged listener is touched), listeners are started, drained or restarted, then the previous
// store is dropped. Metrics: turret_config_reloads_total{result="success"|"failure"} and
// turret_config_last_reload_success_timestamp_seconds (also set at start-up, as Prometheus does).
//
// Admin requests: the inner end of every pipeline is a kv::admin_service (<turret/kv/admin.hpp>), so that POST
// /admin/reload travels through the listener's layers as a request of traffic_class admin (an auth layer decides
// who may send it) before it reaches the reload.
//
// # Threads
// Reloads run one at a time on worker context 0 (the SIGHUP handler runs there; an admin request hops there and
// back); the configuration, the pipeline map, the listener list and the state store are only changed there. Requests
// on other threads only ever see pipelines through their handles (atomic swaps: pipeline_handle.hpp).
#include <services/turretd/config.hpp>
#include <services/turretd/reload.hpp>
#include <turret/kv/admin.hpp>
#include <turret/kv/frontend.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace turret::kv {
class store;
class local_backend;
}  // namespace turret::kv

namespace turret::metrics {
class counter;
class gauge;
}  // namespace turret::metrics

namespace turret::turretd {

/// What a reload did: `summary` is reload_summary_json() when it succeeded, else `error` says why.
struct reload_result {
  enum class status : std::uint8_t {
    ok,       ///< applied
    invalid,  ///< the file is invalid: nothing changed (error: "file:line:col: key: message")
    failed,   ///< no reload possible (no file, shutting down), or valid but not (wholly) applied: a listener
              ///< could not be bound (error says which, and what was applied)
  };
  status st = status::failed;
  std::string summary;
  std::string error;
  bool ok() const noexcept { return st == status::ok; }
};

class server {
 public:
  /// `config_file` is reported by INFO (empty for the embedded default) and is what a reload reads. `regs` gains
  /// the plugins a reloaded file adds.
  server(std::shared_ptr<const config> cfg, std::shared_ptr<registries> regs, std::string config_file = {});
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
  /// Reloads the configuration file (see the top of this file) on worker context 0 and completes with the outcome
  /// on the caller's executor. Reloads never overlap: one that starts while another runs waits for it.
  awaitable<reload_result> reload();
  /// Starts a reload from any thread and returns at once (the outcome is logged and counted): what SIGHUP does.
  void request_reload();

  /// Bound addresses, in listener order (valid after start(); thread-safe).
  std::vector<boost::asio::ip::tcp::endpoint> endpoints() const;
  /// The bound address of the listener called `name` (thread-safe); nullopt when there is none.
  std::optional<boost::asio::ip::tcp::endpoint> endpoint(std::string_view name) const;
  /// The listeners (read on worker context 0, or while no reload can run: before run(), in tests).
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
  /// The layer-state store of the pipelines being served (tests check the carry-over).
  const std::shared_ptr<layer_state_store>& layer_states() const noexcept { return layer_ctx_.states; }

 private:
  /// A listener removed or replaced by a reload, until its connections are gone.
  struct draining_listener {
    std::unique_ptr<listener> l;
    std::chrono::steady_clock::time_point deadline;  ///< force_close() then
    bool forced = false;
  };

  void arm_expiry_timer();
  void arm_reload_signal();
  /// The reload itself (context 0, one at a time).
  awaitable<reload_result> reload_on_context0();
  /// Builds and publishes `next` (a valid file; `d` its changes against cfg_), starts and drains listeners; the
  /// restarted ones are left to restart_listeners().
  reload_result apply(std::shared_ptr<const config> next, const config_diff& d);
  awaitable<void> restart_listeners(const std::vector<std::string>& names, reload_result& out);
  /// Creates and starts the listener `lc` (throws std::system_error naming it); logs its `listening` line.
  std::unique_ptr<listener> start_listener(const listener_config& lc, const kv_pipeline_handle& pipeline);
  /// Removes the listener `name` from the served ones (nullptr when there is none).
  std::unique_ptr<listener> take_listener(const std::string& name);
  /// Stops `l` accepting and keeps it until its connections are gone (closed after server.shutdown_grace).
  void drain(std::unique_ptr<listener> l);
  void poll_draining();
  awaitable<result<kv::response>> admin_request(kv::request& req);
  void count_reload(bool ok);

  std::shared_ptr<const config> cfg_;  ///< served; replaced by reloads (context 0)
  std::shared_ptr<registries> regs_;
  std::string config_file_;
  std::atomic<server_state> state_{server_state::starting};
  // Declaration order matters: the runtime (and with it every connection coroutine) is destroyed before the
  // coordinator and the store they refer to.
  shutdown_coordinator shutdown_;
  std::shared_ptr<kv::local_backend> backend_;
  /// What the front ends and pipelines serve: backend_, or the upstream backend of `store: {kind: upstream}`.
  std::shared_ptr<kv::backend> serving_;
  kv::store* store_ = nullptr;  ///< backend_'s engine
  std::unique_ptr<runtime> rt_;
  layer_context layer_ctx_;
  kv_pipeline core_;
  std::map<std::string, kv_pipeline_handle, std::less<>> pipelines_;
  std::vector<std::unique_ptr<listener>> listeners_;  ///< changed on context 0 under listeners_mu_
  mutable std::mutex listeners_mu_;                   ///< for endpoints() from other threads
  std::vector<draining_listener> draining_;           ///< context 0
  std::unique_ptr<boost::asio::steady_timer> expiry_timer_;
  std::unique_ptr<boost::asio::steady_timer> drain_timer_;
  std::unique_ptr<boost::asio::signal_set> reload_signal_;
  std::shared_ptr<const kv::admin_handler> admin_;
  bool reloading_ = false;  ///< context 0
  metrics::counter* reloads_ok_ = nullptr;
  metrics::counter* reloads_failed_ = nullptr;
  metrics::gauge* last_reload_success_ = nullptr;
};

}  // namespace turret::turretd
