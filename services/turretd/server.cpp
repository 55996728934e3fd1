#include <services/kv/store.hpp>
#include <services/turretd/server.hpp>
#include <turret/kv/local.hpp>
#include <turret/metrics.hpp>
#include <turret/middleware/metrics.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <climits>
#include <csignal>
#include <random>

namespace turret::turretd {

namespace asio = boost::asio;

namespace {

std::string endpoint_string(const asio::ip::tcp::endpoint& ep) {
  if (ep.address().is_v6()) return "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

std::string random_run_id() {
  std::random_device rd;
  std::mt19937_64 g((static_cast<std::uint64_t>(rd()) << 32) ^ rd());
  static constexpr char hex[] = "0123456789abcdef";
  std::string s(40, '0');
  for (auto& c : s) c = hex[g() & 15];
  return s;
}

std::string executable_path() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

}  // namespace

server::server(std::shared_ptr<const config> cfg, std::shared_ptr<registries> regs, std::string config_file)
    : cfg_(std::move(cfg)),
      regs_(std::move(regs)),
      config_file_(std::move(config_file)),
      shutdown_(cfg_->server.shutdown_grace) {}

kv::store& server::store() noexcept { return *store_; }

server::~server() {
  if (rt_) rt_->stop();
  expiry_timer_.reset();
  drain_timer_.reset();
  reload_signal_.reset();
  listeners_.clear();
  draining_.clear();
  serving_.reset();  // an upstream backend stops its connections while their io_contexts exist
  rt_.reset();
}

void server::start() {
  for (const auto& p : regs_->plugins) spdlog::info("plugin {} {} loaded from {}", p.name, p.version, p.path);
  rt_ = std::make_unique<runtime>(cfg_->server.threads ? cfg_->server.threads : auto_worker_threads());

  backend_ = std::make_shared<kv::local_backend>(cfg_->store.options);
  store_ = &backend_->engine();
  auto& proc = store_->process();
  proc.executable = executable_path();
  proc.config_file = config_file_;
  proc.run_id = random_run_id();
  proc.threads = static_cast<int>(rt_->size());
  store_->on_shutdown = [this](const kv::shutdown_request&) {
    // Called under the store lock from a worker: only post the stop.
    asio::post(rt_->context(0), [this] { request_shutdown(); });
  };

  // INFO pipelines: the metrics layers' counters (the registry outlives the store: a process-wide one).
  store_->extra_info_sections.push_back(
      {"pipelines", "Pipelines", [reg = &layer_ctx_.metrics()] { return pipelines_info(*reg); }});

  // Every pipeline ends in the same core (copies of an any_service share it), behind the admin endpoint.
  layer_ctx_.rt = rt_.get();
  layer_ctx_.set_commands<kv::command_table>(
      std::shared_ptr<const kv::command_table>(backend_, &backend_->commands()));  // keeps the backend alive
  layer_ctx_.states = std::make_shared<layer_state_store>();  // the first generation: reloads carry it over
  serving_ = backend_;
  if (cfg_->store.kind == "upstream") {
    // The in-process store stays (INFO, expiry timer) but serves nothing. The front ends resolve against a table of
    // every command redis-server knows: commands turretd does not implement itself (LPUSH, HSET...) have keys too.
    std::vector<boost::asio::any_io_executor> executors;
    for (std::size_t i = 0; i < rt_->size(); ++i) executors.push_back(rt_->context(i).get_executor());
    layer_context uctx = layer_ctx_;
    uctx.set_extension<kv_layer_registry>(std::shared_ptr<const kv_layer_registry>(regs_, &regs_->layers));
    serving_ = upstream::make_upstream_backend(
        cfg_->store.upstream, kv::command_table::make_forwarding(), regs_->layers, uctx, std::move(executors));
  }
  admin_ = std::make_shared<const kv::admin_handler>([this](kv::request& req) { return admin_request(req); });
  core_ = kv_pipeline(kv::admin_service(serving_->service(), admin_));
  for (const auto& [name, pc] : cfg_->pipelines) {
    auto layers = build_layers(pc, *regs_, layer_ctx_);
    pipelines_.emplace(name, kv_pipeline_handle(kv_layer_registry::wrap_all(layers, core_)));
  }

  for (const auto& lc : cfg_->listeners) listeners_.push_back(start_listener(lc, pipelines_.at(lc.pipeline)));

  shutdown_.on_stop_accepting([this] {
    state_.store(server_state::draining, std::memory_order_release);
    if (reload_signal_) reload_signal_->cancel();
    for (auto& l : listeners_) l->stop_accepting();
  });
  shutdown_.on_force_close([this] {
    for (auto& l : listeners_) {
      if (l->connections() != 0)
        spdlog::warn("shutdown grace elapsed: closing {} remaining connection(s) of {}", l->connections(), l->name());
      l->force_close();
    }
    for (auto& d : draining_) d.l->force_close();
  });
  rt_->handle_signals([this](int) { request_shutdown(); });

  auto& reloads = metrics::default_registry().counter(
      "turret_config_reloads_total", "Configuration reloads (SIGHUP, POST /admin/reload) by outcome", {"result"});
  reloads_ok_ = &reloads.with({"success"});
  reloads_failed_ = &reloads.with({"failure"});
  last_reload_success_ = &metrics::default_registry()
                              .gauge("turret_config_last_reload_success_timestamp_seconds",
                                     "When the configuration was last loaded successfully (start-up or reload), "
                                     "in seconds since the epoch")
                              .with({});
  last_reload_success_->set(unix_time_now());
  drain_timer_ = std::make_unique<asio::steady_timer>(rt_->context(0));
  reload_signal_ = std::make_unique<asio::signal_set>(rt_->context(0), SIGHUP);
  arm_reload_signal();

  expiry_timer_ = std::make_unique<asio::steady_timer>(rt_->context(0));
  arm_expiry_timer();

  spdlog::info("turretd ready: {} worker thread(s), {} database(s), config {}", rt_->size(), store_->databases(),
               config_file_.empty() ? std::string("<embedded>") : config_file_);
  state_.store(server_state::ready, std::memory_order_release);
}

void server::arm_expiry_timer() {
  // Redis's serverCron cadence: activeExpireCycle hz times per second (CONFIG SET hz applies at the next tick).
  const int hz = std::max(1, store_->hz());
  expiry_timer_->expires_after(std::chrono::microseconds(1'000'000 / hz));
  expiry_timer_->async_wait([this](boost::system::error_code ec) {
    if (ec || state() == server_state::stopped) return;
    store_->active_expire_cycle();
    arm_expiry_timer();
  });
}

int server::run() {
  rt_->run();
  state_.store(server_state::stopped, std::memory_order_release);
  spdlog::info("turretd stopped");
  return 0;
}

void server::request_shutdown() {
  if (!rt_) return;
  asio::post(rt_->context(0), [this] {
    if (state() == server_state::draining || state() == server_state::stopped) return;
    spdlog::info("shutting down: draining connections (grace {})", format_duration(shutdown_.grace()));
    if (expiry_timer_) expiry_timer_->cancel();
    shutdown_.start(rt_->executor(0), [this](bool clean) {
      if (!clean) spdlog::warn("shutdown grace elapsed with requests in flight");
      state_.store(server_state::stopped, std::memory_order_release);
      rt_->stop();
    });
  });
}

kv_pipeline_handle* server::pipeline(std::string_view name) noexcept {
  auto it = pipelines_.find(name);
  return it == pipelines_.end() ? nullptr : &it->second;
}

std::vector<asio::ip::tcp::endpoint> server::endpoints() const {
  std::lock_guard lk(listeners_mu_);
  std::vector<asio::ip::tcp::endpoint> out;
  for (const auto& l : listeners_) out.push_back(l->local_endpoint());
  return out;
}

std::optional<asio::ip::tcp::endpoint> server::endpoint(std::string_view name) const {
  std::lock_guard lk(listeners_mu_);
  for (const auto& l : listeners_)
    if (l->name() == name) return l->local_endpoint();
  return std::nullopt;
}

std::unique_ptr<listener> server::start_listener(const listener_config& lc, const kv_pipeline_handle& pipeline) {
  const frontend* fe = regs_->frontends.find(lc.protocol);
  listener_env env{lc.name, lc.endpoint, lc.options, *rt_, shutdown_, serving_, pipeline, &state_};
  auto l = fe->create(std::move(env));
  try {
    l->start();
  } catch (const std::system_error& e) {
    throw std::system_error(e.code(), "listener " + lc.name + " (" + lc.protocol + " " + lc.address + ")");
  } catch (const boost::system::system_error& e) {  // what Asio's acceptor throws
    throw std::system_error(std::error_code(e.code()), "listener " + lc.name + " (" + lc.protocol + " " + lc.address + ")");
  }
  const auto ep = l->local_endpoint();
  if (store_->process().tcp_port == 0 && lc.protocol == "resp") store_->process().tcp_port = ep.port();
  spdlog::info("listening {} {} name={} pipeline={}", lc.protocol, endpoint_string(ep), lc.name, lc.pipeline);
  return l;
}

}  // namespace turret::turretd
