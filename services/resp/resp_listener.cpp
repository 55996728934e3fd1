#include <services/resp/connection.hpp>
#include <services/resp/resp_listener.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include <exception>
#include <vector>

namespace turret::resp_frontend {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr std::string_view max_clients_error = "-ERR max number of clients reached\r\n";

std::string endpoint_string(const tcp::endpoint& ep) {
  if (ep.address().is_v6()) return "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

void log_exception(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    spdlog::error("resp: connection coroutine failed: {}", x.what());
  } catch (...) {
    spdlog::error("resp: connection coroutine failed");
  }
}

/// Acceptor and idle sweep: on runtime context 0, kept alive by the coroutines that use it.
struct accept_core {
  accept_core(runtime& r, std::shared_ptr<listener_shared> s)
      : rt(r), shared(std::move(s)), acceptor(r.context(0)), sweep(r.context(0)) {}

  runtime& rt;
  std::shared_ptr<listener_shared> shared;
  tcp::acceptor acceptor;
  asio::steady_timer sweep;
  bool stopped = false;  // context 0 only
};

asio::awaitable<void> accept_loop(std::shared_ptr<accept_core> core) {
  listener_shared& sh = *core->shared;
  kv::backend& be = *sh.backend;
  for (;;) {
    auto ex = core->rt.next_executor();
    auto [ec, sock] = co_await core->acceptor.async_accept(ex, asio::as_tuple(asio::use_awaitable));
    if (core->stopped || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // EMFILE/ENFILE/ENOBUFS: back off briefly instead of spinning (the pending connection stays queued).
      spdlog::warn("resp {}: accept failed: {}", sh.name, ec.message());
      asio::steady_timer t(core->acceptor.get_executor(), std::chrono::milliseconds(50));
      co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
      if (core->stopped) co_return;
      continue;
    }
    boost::system::error_code ignored;
    if (sh.draining.load(std::memory_order_acquire)) {
      sock.close(ignored);
      continue;
    }
    const std::size_t n = sh.clients.fetch_add(1, std::memory_order_acq_rel) + 1;
    if (n > be.limits().maxclients.load(std::memory_order_relaxed)) {
      // Redis: the error is written straight to the new socket, then it is closed.
      sh.clients.fetch_sub(1, std::memory_order_acq_rel);
      be.counters().rejected_connections.fetch_add(1, std::memory_order_relaxed);
      sock.non_blocking(true, ignored);
      sock.write_some(asio::buffer(max_clients_error.data(), max_clients_error.size()), ignored);
      sock.close(ignored);
      continue;
    }
    if (sh.opts.tcp_nodelay) sock.set_option(tcp::no_delay(true), ignored);
    auto conn_ex = sock.get_executor();
    auto conn = std::make_shared<connection>(core->shared, std::move(sock));
    asio::co_spawn(conn_ex, connection::run(std::move(conn)), log_exception);
  }
}

/// Idle client timeout (Redis's clientsCronHandleTimeout): once per second, close clients idle for longer than
/// `timeout` seconds, except subscribers. CONFIG SET timeout applies at the next sweep.
void arm_sweep(std::shared_ptr<accept_core> core) {
  core->sweep.expires_after(std::chrono::seconds(1));
  core->sweep.async_wait([core](boost::system::error_code ec) {
    if (ec || core->stopped) return;
    listener_shared& sh = *core->shared;
    const long long timeout_s = sh.backend->limits().timeout.load(std::memory_order_relaxed);
    if (timeout_s > 0) {
      const std::int64_t now = connection::steady_ms();
      std::vector<std::shared_ptr<connection>> idle;
      {
        std::lock_guard lk(sh.mu);
        for (connection* c : sh.conns) {
          if (c->subscriber()) continue;
          if (now - c->last_active_ms() > timeout_s * 1000) {
            if (auto p = c->weak_from_this().lock()) idle.push_back(std::move(p));
          }
        }
      }
      for (auto& c : idle) c->kill();
    }
    arm_sweep(core);
  });
}

class resp_listener final : public server::listener {
 public:
  explicit resp_listener(kv::listener_env env) : endpoint_(env.endpoint) {
    auto sh = std::make_shared<listener_shared>();
    sh->name = env.name;
    if (auto* o = std::any_cast<resp_options>(&env.options)) sh->opts = *o;
    sh->parser_opts.max_bulk_len = static_cast<std::size_t>(env.backend->limits().proto_max_bulk_len.load());
    sh->pipeline = std::move(env.pipeline);
    sh->backend = std::move(env.backend);
    sh->shutdown = &env.shutdown;
    name_ = env.name;
    core_ = std::make_shared<accept_core>(env.rt, std::move(sh));
  }

  ~resp_listener() override {
    // Stop the acceptor and the sweep; connections keep their shared state alive while they unwind.
    auto core = core_;
    boost::system::error_code ec;
    if (core->rt.stopped()) {
      core->stopped = true;
      core->acceptor.close(ec);
      core->sweep.cancel();
    } else {
      stop_accepting();
    }
  }

  const std::string& name() const noexcept override { return name_; }
  std::string_view protocol() const noexcept override { return "resp"; }

  void start() override {
    tcp::acceptor& a = core_->acceptor;
    a.open(endpoint_.protocol());
    a.set_option(tcp::acceptor::reuse_address(true));
    a.bind(endpoint_);
    a.listen(asio::socket_base::max_listen_connections);
    bound_ = a.local_endpoint();
    core_->shared->laddr = endpoint_string(bound_);
    asio::co_spawn(core_->rt.context(0), accept_loop(core_), [](std::exception_ptr e) { log_exception(e); });
    arm_sweep(core_);
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
      core->sweep.cancel();
    });
    for (auto& c : snapshot()) c->drain();
  }

  void force_close() override {
    for (auto& c : snapshot()) c->kill();
  }

  std::size_t connections() const noexcept override {
    return core_->shared->clients.load(std::memory_order_acquire);
  }

 private:
  std::vector<std::shared_ptr<connection>> snapshot() const {
    std::vector<std::shared_ptr<connection>> out;
    listener_shared& sh = *core_->shared;
    std::lock_guard lk(sh.mu);
    out.reserve(sh.conns.size());
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
  return std::make_unique<resp_listener>(std::move(env));
}

kv::frontend make_frontend() {
  kv::frontend f;
  f.keys = {"resp"};
  f.parse = [](const config_node& entry) -> std::any { return parse_resp_options(entry.child("resp")); };
  f.create = [](kv::listener_env env) { return make_listener(std::move(env)); };
  return f;
}

}  // namespace turret::resp_frontend
