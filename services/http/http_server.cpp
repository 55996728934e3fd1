// The HTTP listener: acceptor, accept loop, graceful shutdown and the process gauges (connections are
// http_connection.cpp, the only translation unit with Beast).
#include <services/http/http_connection.hpp>
#include <services/http/http_listener.hpp>
#include <services/http/rest_api.hpp>
#include <turret/logging.hpp>
#include <turret/metrics.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <mutex>

namespace turret::http_frontend {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {

void log_exception(std::exception_ptr e) {
  if (e) spdlog::error("http: coroutine failed: {}", describe_exception(e));
}

struct accept_core {
  accept_core(runtime& r, std::shared_ptr<listener_shared> s) : rt(r), shared(std::move(s)), acceptor(r.context(0)) {}
  runtime& rt;
  std::shared_ptr<listener_shared> shared;
  tcp::acceptor acceptor;
  bool stopped = false;  // context 0 only
};

asio::awaitable<void> accept_loop(std::shared_ptr<accept_core> core) {
  listener_shared& sh = *core->shared;
  for (;;) {
    auto ex = core->rt.next_executor();
    auto [ec, sock] = co_await core->acceptor.async_accept(ex, use_tuple);
    if (core->stopped || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      spdlog::warn("http {}: accept failed: {}", sh.name, ec.message());
      asio::steady_timer t(core->acceptor.get_executor(), std::chrono::milliseconds(50));
      co_await t.async_wait(use_tuple);
      if (core->stopped) co_return;
      continue;
    }
    boost::system::error_code ignored;
    if (sh.draining.load(std::memory_order_acquire)) {
      sock.close(ignored);
      continue;
    }
    const std::size_t n = sh.clients.fetch_add(1, std::memory_order_acq_rel) + 1;
    if (n > sh.opts.max_connections) {
      sh.clients.fetch_sub(1, std::memory_order_acq_rel);
      static constexpr std::string_view busy =
          "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 73\r\n"
          "Connection: close\r\n\r\n{\"error\":{\"code\":\"unavailable\",\"message\":\"too many open connections\"}}";
      sock.non_blocking(true, ignored);
      sock.write_some(asio::buffer(busy.data(), busy.size()), ignored);
      sock.close(ignored);
      continue;
    }
    if (sh.opts.tcp_nodelay) sock.set_option(tcp::no_delay(true), ignored);
    // Nothing thrown for one connection may end the loop (the listener would stop accepting for good).
    auto conn_ex = sock.get_executor();
    std::shared_ptr<connection> conn;
    try {
      conn = std::make_shared<connection>(core->shared, std::move(sock));
    } catch (...) {
      sh.clients.fetch_sub(1, std::memory_order_acq_rel);  // not taken over by a connection
      log_exception(std::current_exception());
      continue;
    }
    try {
      asio::co_spawn(conn_ex, conn->run(conn), log_exception);
    } catch (...) {  // the connection's destructor gives its client slot back
      log_exception(std::current_exception());
    }
  }
}

class http_listener final : public server::listener {
 public:
  explicit http_listener(kv::listener_env env) : name_(env.name), endpoint_(env.endpoint) {
    auto sh = std::make_shared<listener_shared>();
    sh->name = env.name;
    if (auto* o = std::any_cast<http_options>(&env.options)) sh->opts = *o;
    sh->shutdown = &env.shutdown;
    rest_api::env api_env;
    api_env.pipeline = std::move(env.pipeline);
    api_env.backend = env.backend;
    api_env.shutdown = &env.shutdown;
    api_env.opts = sh->opts;
    if constexpr (requires { env.state; }) api_env.state = env.state;
    sh->api = std::make_unique<rest_api>(std::move(api_env));
    register_gauges(env.backend);
    core_ = std::make_shared<accept_core>(env.rt, std::move(sh));
  }

  ~http_listener() override {
    auto core = core_;
    boost::system::error_code ec;
    if (core->rt.stopped()) {
      core->stopped = true;
      core->acceptor.close(ec);
    } else {
      stop_accepting();
    }
  }

  const std::string& name() const noexcept override { return name_; }
  std::string_view protocol() const noexcept override { return "http"; }

  void start() override {
    tcp::acceptor& a = core_->acceptor;
    a.open(endpoint_.protocol());
    a.set_option(tcp::acceptor::reuse_address(true));
    a.bind(endpoint_);
    a.listen(asio::socket_base::max_listen_connections);
    bound_ = a.local_endpoint();
    core_->shared->laddr = endpoint_string(bound_);
    asio::co_spawn(core_->rt.context(0), accept_loop(core_), log_exception);
  }

  tcp::endpoint local_endpoint() const override { return bound_; }

  void stop_accepting() override {
    auto core = core_;
    core->shared->draining.store(true, std::memory_order_release);
    asio::post(core->rt.context(0), [core] {
      if (core->stopped) return;
      core->stopped = true;
      boost::system::error_code ec;
      core->acceptor.close(ec);
    });
    for (auto& c : snapshot()) c->drain();
  }

  void force_close() override {
    for (auto& c : snapshot()) c->force_close();
  }

  std::size_t connections() const noexcept override { return core_->shared->clients.load(std::memory_order_acquire); }

 private:
  /// Process-level gauges for /metrics (keys, memory); registered once per process, reading the latest backend.
  static void register_gauges(const std::shared_ptr<kv::backend>& be) {
    static std::mutex mu;
    static std::weak_ptr<kv::backend> current;
    static bool registered = false;
    {
      std::lock_guard lk(mu);  // not held while registering: the callbacks take mu under the registry's lock
      current = be;
      if (registered) return;
      registered = true;
    }
    static constexpr auto summary = []() -> kv::backend_summary {
      std::shared_ptr<kv::backend> b;
      {
        std::lock_guard lk2(mu);
        b = current.lock();
      }
      return b ? b->summary() : kv::backend_summary{};
    };
    auto& reg = metrics::default_registry();
    reg.gauge_callback("turret_keys", "Keys in all databases.", [] { return static_cast<double>(summary().keys); });
    reg.gauge_callback("turret_keyspace_memory_bytes", "Bytes used by the keyspaces (entries and tables).",
                       [] { return static_cast<double>(summary().used_memory); });
    reg.gauge_callback("process_resident_memory_bytes", "Resident memory size in bytes.", [] {
      long pages = 0, resident = 0;
      if (FILE* f = std::fopen("/proc/self/statm", "r")) {
        if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        std::fclose(f);
      }
      return static_cast<double>(resident) * 4096.0;
    });
  }

  std::vector<std::shared_ptr<connection>> snapshot() const {
    std::vector<std::shared_ptr<connection>> out;
    listener_shared& sh = *core_->shared;
    std::lock_guard lk(sh.mu);
    for (connection* c : sh.conns)
      if (auto p = c->weak_from_this().lock()) out.push_back(std::move(p));
    return out;
  }

  std::string name_;
  tcp::endpoint endpoint_;
  tcp::endpoint bound_;
  std::shared_ptr<accept_core> core_;
};

}  // namespace

std::unique_ptr<server::listener> make_listener(kv::listener_env env) {
  return std::make_unique<http_listener>(std::move(env));
}

kv::frontend make_frontend() {
  kv::frontend f;
  f.keys = {"http"};
  f.parse = [](const config_node& entry) -> std::any { return parse_http_options(entry.child("http")); };
  f.create = [](kv::listener_env env) { return make_listener(std::move(env)); };
  return f;
}

}  // namespace turret::http_frontend
