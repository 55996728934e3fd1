// line: a key-value protocol registered by a plugin (for tests/integration/test_plugins.py), to show that a plugin's
// front end is configured, started, drained and served like a built-in one. One command per line, arguments separated
// by single spaces; each goes through the listener's pipeline into turretd's backend and is answered in RESP2.
//
//   listeners:
//     - {name: text, protocol: line, address: 127.0.0.1:0, pipeline: greeted, line: {max_line: 1024}}
//
// A line longer than max_line closes the connection. Built against turret::plugin only, like any plugin.
#include <turret/config.hpp>
#include <turret/error_mapping.hpp>
#include <turret/kv/dispatch.hpp>
#include <turret/kv/frontend.hpp>
#include <turret/kv/plugin.hpp>
#include <turret/kv/value_reply_builder.hpp>
#include <turret/plugin.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace line {

namespace asio = boost::asio;
using asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

struct options {
  std::size_t max_line = 4096;
};

options parse(const turret::config_node& entry) {
  options o;
  if (!entry.has("line")) return o;
  const turret::config_node l = entry.child("line");
  l.expect_map();
  l.reject_unknown_keys({"max_line"});
  o.max_line = static_cast<std::size_t>(l.get_int("max_line", 4096, 16, 1 << 20));
  return o;
}

class line_listener final : public turret::server::listener {
 public:
  line_listener(turret::kv::listener_env env, options o)
      : env_(std::move(env)), opts_(o), acceptor_(env_.rt.context(0)) {}

  const std::string& name() const noexcept override { return env_.name; }
  std::string_view protocol() const noexcept override { return "line"; }

  void start() override {
    acceptor_.open(env_.endpoint.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(env_.endpoint);
    acceptor_.listen();
    endpoint_ = acceptor_.local_endpoint();
    asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached);
  }
  tcp::endpoint local_endpoint() const override { return endpoint_; }
  // Between two lines a connection has nothing in flight: draining closes them all at once.
  void stop_accepting() override {
    asio::post(acceptor_.get_executor(), [this] {
      boost::system::error_code ec;
      acceptor_.close(ec);
    });
    close_all();
  }
  void force_close() override { close_all(); }
  std::size_t connections() const noexcept override { return open_.load(std::memory_order_relaxed); }

 private:
  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto sock = std::make_shared<tcp::socket>(env_.rt.next_executor());
      auto [ec] = co_await acceptor_.async_accept(*sock, use_tuple);
      if (ec) co_return;
      std::uint64_t id = 0;
      {
        std::lock_guard lk(mu_);
        id = ++last_id_;
        sockets_.emplace(id, sock);
      }
      open_.fetch_add(1, std::memory_order_relaxed);
      asio::co_spawn(sock->get_executor(), serve(sock, id), asio::detached);
    }
  }

  asio::awaitable<void> serve(std::shared_ptr<tcp::socket> sock, std::uint64_t id) {
    turret::shutdown_coordinator::tracker in_flight(&env_.shutdown);
    turret::kv::session sess;
    sess.protocol_name = "line";
    turret::kv::session_guard attached(*env_.backend, sess);
    turret::kv::pipeline_handle_type::reader pipeline(env_.pipeline);
    std::string in;
    for (;;) {
      auto [ec, n] = co_await asio::async_read_until(*sock, asio::dynamic_buffer(in, opts_.max_line), '\n', use_tuple);
      if (ec) break;
      std::string_view text(in.data(), n - 1);
      if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
      std::vector<std::string_view> args;
      for (std::size_t at = 0; at <= text.size() && !text.empty();) {
        const std::size_t end = std::min(text.find(' ', at), text.size());
        args.push_back(text.substr(at, end - at));
        at = end + 1;
      }
      std::string out;
      if (!args.empty()) {
        turret::request_context ctx;
        turret::kv::value_reply_builder replies(2);
        turret::kv::request req(ctx, sess, args, replies);
        auto& svc = pipeline.get();
        auto r = turret::kv::dispatch_now(svc, req);
        if (!r) r = co_await turret::kv::dispatch_suspending(svc, req);
        if (*r) {
          for (const auto& v : replies.replies()) out += turret::kv::to_resp(v, 2);
        } else {
          out.append("-").append(turret::resp_error(r->error())).append("\r\n");
        }
      }
      in.erase(0, n);
      auto [wec, written] = co_await asio::async_write(*sock, asio::buffer(out), use_tuple);
      if (wec || sess.close_after_reply.load()) break;
    }
    {
      std::lock_guard lk(mu_);
      sockets_.erase(id);
    }
    open_.fetch_sub(1, std::memory_order_relaxed);
  }

  void close_all() {
    std::lock_guard lk(mu_);
    for (const auto& [id, weak] : sockets_) {
      if (auto s = weak.lock()) {
        asio::post(s->get_executor(), [s] {
          boost::system::error_code ec;
          s->close(ec);
        });
      }
    }
  }

  turret::kv::listener_env env_;
  options opts_;
  tcp::acceptor acceptor_;
  tcp::endpoint endpoint_;
  std::atomic<std::size_t> open_{0};
  std::mutex mu_;
  std::uint64_t last_id_ = 0;
  std::map<std::uint64_t, std::weak_ptr<tcp::socket>> sockets_;
};

void register_line(turret::plugin_context& ctx) {
  turret::kv::frontend fe;
  fe.keys = {"line"};
  fe.parse = [](const turret::config_node& entry) -> std::any { return parse(entry); };
  fe.create = [](turret::kv::listener_env env) -> std::unique_ptr<turret::server::listener> {
    const options o = std::any_cast<options>(env.options);
    return std::make_unique<line_listener>(std::move(env), o);
  };
  ctx.get<turret::kv::frontend_registry>().add("line", std::move(fe));
}

}  // namespace line

TURRET_PLUGIN("line", "1.0", line::register_line)
