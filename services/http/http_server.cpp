// HTTP/1.1 codec, connections and listener (the only Beast translation unit of the front end).
#include <services/http/http_listener.hpp>
#include <services/http/rest_api.hpp>
#include <services/kv/store.hpp>
#include <turret/logging.hpp>
#include <turret/metrics.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>

#include <atomic>
#include <chrono>
#include <ctime>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

namespace turret::http_frontend {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {

std::string endpoint_string(const tcp::endpoint& ep) {
  if (ep.address().is_v6()) return "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

void log_exception(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    spdlog::error("http: connection coroutine failed: {}", x.what());
  } catch (...) {
    spdlog::error("http: connection coroutine failed");
  }
}

/// The Date header value, cached per thread and second.
std::string_view http_date() {
  thread_local std::time_t cached_at = 0;
  thread_local char buf[64];
  thread_local std::size_t len = 0;
  const std::time_t now = std::time(nullptr);
  if (now != cached_at) {
    cached_at = now;
    std::tm tm;
    gmtime_r(&now, &tm);
    len = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  }
  return {buf, len};
}

/// Per-thread cache of metric series (the registry's families live forever, so raw pointers are safe).
struct metric_cache {
  std::unordered_map<std::uint32_t, metrics::counter*> requests;
  std::array<metrics::histogram*, route_count> duration{};

  static metric_cache& get() {
    thread_local metric_cache c;
    return c;
  }
  void record(route r, int status, steady::duration elapsed) {
    auto& m = metrics::request_metrics::get();
    const auto ri = static_cast<std::size_t>(r);
    const std::uint32_t key = static_cast<std::uint32_t>(ri) * 1000u + static_cast<std::uint32_t>(status);
    auto it = requests.find(key);
    if (it == requests.end()) {
      const std::string st = std::to_string(status);
      it = requests.emplace(key, &m.requests.with({"http", route_name(r), st})).first;
    }
    it->second->inc();
    if (!duration[ri]) duration[ri] = &m.duration.with({"http", route_name(r)});
    duration[ri]->observe(std::chrono::duration<double>(elapsed).count());
  }
};

/// Valid x-request-id: 1..128 visible ASCII characters.
bool valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id)
    if (c < 0x21 || c > 0x7e) return false;
  return true;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

class connection;

/// State shared by a listener and its connections.
struct listener_shared {
  std::string name;
  std::string laddr;
  std::unique_ptr<rest_api> api;
  http_options opts;
  shutdown_coordinator* shutdown = nullptr;
  std::atomic<std::size_t> clients{0};
  std::atomic<bool> draining{false};
  std::mutex mu;
  std::unordered_set<connection*> conns;
};

enum class conn_state : std::uint8_t { idle, header, body, handling, writing, sse };

class connection final : public kv::session_host, public std::enable_shared_from_this<connection> {
 public:
  connection(std::shared_ptr<listener_shared> sh, tcp::socket sock)
      : sh_(std::move(sh)),
        sock_(std::move(sock)),
        watchdog_(sock_.get_executor()),
        wake_(sock_.get_executor()),
        tracker_(sh_->shutdown ? sh_->shutdown->track() : shutdown_coordinator::tracker()) {
    boost::system::error_code ec;
    fd_ = static_cast<int>(sock_.native_handle());
    const auto peer = sock_.remote_endpoint(ec);
    ctx_.protocol = "http";
    if (!ec) ctx_.set_peer(peer);
    sess_.protocol_name = "http";
    sess_.addr = ec ? std::string("?:0") : endpoint_string(peer);
    sess_.laddr = sh_->laddr;
    sess_.host = this;
    const auto& o = sh_->opts;
    auto tick = std::min(o.header_timeout, o.body_timeout) / 4;
    if (o.idle_timeout.count() > 0) tick = std::min(tick, o.idle_timeout / 4);
    tick_ = std::clamp<std::chrono::milliseconds>(tick, std::chrono::milliseconds(20), std::chrono::milliseconds(1000));
  }

  ~connection() override {
    std::lock_guard lk(sh_->mu);
    sh_->conns.erase(this);
  }

  /// `self` keeps the connection alive for the coroutine's life (a coroutine parameter lives in its frame).
  asio::awaitable<void> run(std::shared_ptr<connection> self) {
    {
      std::lock_guard lk(sh_->mu);
      sh_->conns.insert(this);
    }
    auto& m = metrics::request_metrics::get();
    metrics::gauge& open = m.connections.with({"http"});
    open.inc();
    m.connections_total.with({"http"}).inc();
    kv::store& st = sh_->api->store();
    st.attach(sess_);
    asio::co_spawn(sock_.get_executor(), watch(self), asio::detached);
    co_await serve();
    closed_ = true;
    watchdog_.cancel();
    boost::system::error_code ec;
    sock_.shutdown(tcp::socket::shutdown_both, ec);
    sock_.close(ec);
    st.detach(sess_);  // after this no deliver()/kill() can reach us
    open.dec();
    sh_->clients.fetch_sub(1, std::memory_order_acq_rel);
  }

  // kv::session_host: any thread, store lock held. Only enqueue and wake.
  bool deliver(const kv::pubsub_message& m) override {
    std::string ev = sse_event(m.pattern, m.channel, m.payload);
    std::lock_guard lk(mu_);
    if (overflow_) return false;
    if (outbox_.size() + ev.size() > sh_->opts.sse_buffer_bytes) {
      overflow_ = true;
      post_wake_locked();
      return false;
    }
    outbox_ += ev;
    post_wake_locked();
    return true;
  }

  void kill() override {
    killed_.store(true, std::memory_order_release);
    asio::post(sock_.get_executor(), [w = weak_from_this()] {
      if (auto s = w.lock()) s->close_socket();
    });
  }

  buffers buffer_info() const override {
    buffers b;
    b.qbuf = qbuf_.load(std::memory_order_relaxed);
    std::lock_guard lk(mu_);
    b.omem = outbox_.size();
    b.tot_mem = b.omem + b.qbuf;
    return b;
  }
  int fd() const override { return fd_; }

  /// Graceful shutdown: idle connections close now, busy ones after their response, event streams end.
  void drain() {
    asio::post(sock_.get_executor(), [w = weak_from_this()] {
      auto s = w.lock();
      if (!s) return;
      s->draining_ = true;
      if (s->state_ == conn_state::idle) {
        boost::system::error_code ec;
        s->sock_.cancel(ec);
      }
      s->wake_.cancel();
    });
  }

  void force_close() { kill(); }

 private:
  void post_wake_locked() {
    if (wake_posted_) return;
    wake_posted_ = true;
    asio::post(sock_.get_executor(), [w = weak_from_this()] {
      if (auto s = w.lock()) {
        {
          std::lock_guard lk(s->mu_);
          s->wake_posted_ = false;
        }
        s->wake_.cancel();
      }
    });
  }

  void close_socket() {
    boost::system::error_code ec;
    sock_.shutdown(tcp::socket::shutdown_both, ec);
    sock_.close(ec);
    wake_.cancel();
  }

  void set_deadline(std::chrono::milliseconds d) { deadline_ = d.count() > 0 ? steady::now() + d : steady::time_point::max(); }

  /// The watchdog: closes (or cancels, to answer 408) a connection whose current deadline has passed.
  asio::awaitable<void> watch(std::shared_ptr<connection> self) {
    while (!closed_) {
      watchdog_.expires_after(tick_);
      co_await watchdog_.async_wait(use_tuple);
      if (closed_) co_return;
      if (steady::now() < deadline_) continue;
      if (timed_out_) {  // the 408 itself did not go out in time
        close_socket();
        co_return;
      }
      timed_out_ = true;
      boost::system::error_code ignored;
      if (state_ == conn_state::idle) close_socket();
      else sock_.cancel(ignored);
      deadline_ = steady::now() + std::chrono::seconds(1);
    }
  }

  /// Writes out_ (the responses of a batch) and clears it.
  asio::awaitable<bool> flush() {
    if (out_.empty()) co_return true;
    const auto prev = state_;
    state_ = conn_state::writing;
    if (deadline_ == steady::time_point::max()) set_deadline(sh_->opts.body_timeout);  // a client must read
    // Try a direct non-blocking send first (the usual case: the socket buffer has room).
    boost::system::error_code ec;
    std::size_t sent = 0;
    if (!sock_.non_blocking()) sock_.non_blocking(true, ec);
    sent = sock_.write_some(asio::buffer(out_), ec);
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
      out_.clear();
      co_return false;
    }
    if (sent < out_.size()) {
      auto [wec, n] = co_await asio::async_write(sock_, asio::buffer(out_.data() + sent, out_.size() - sent), use_tuple);
      if (wec) {
        out_.clear();
        co_return false;
      }
    }
    out_.clear();
    state_ = prev;
    co_return true;
  }

  /// Appends a serialised response to out_.
  void append_response(const rest_response& r, bool head, bool keep_alive, int version) {
    const bool no_body = r.status == 204 || r.status == 304 || (r.status >= 100 && r.status < 200);
    out_ += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    out_ += std::to_string(r.status);
    out_.push_back(' ');
    out_ += reason_phrase(r.status);
    out_ += "\r\nServer: turret\r\nDate: ";
    out_ += http_date();
    if (!r.content_type.empty() && !no_body) {
      out_ += "\r\nContent-Type: ";
      out_ += r.content_type;
    }
    if (!no_body) {
      out_ += "\r\nContent-Length: ";
      out_ += std::to_string(r.body.size());
    }
    if (!r.allow.empty()) {
      out_ += "\r\nAllow: ";
      out_ += r.allow;
    }
    out_ += "\r\nx-request-id: ";
    out_ += ctx_.request_id();
    if (!keep_alive) out_ += "\r\nConnection: close";
    else if (version == 10) out_ += "\r\nConnection: keep-alive";
    out_ += "\r\n\r\n";
    if (!head && !no_body) out_ += r.body;
  }

  /// Answers an error found by the codec (before routing) and closes.
  asio::awaitable<void> codec_error(int status, std::string_view code, std::string_view msg, route r) {
    rest_response resp;
    set_error(resp, status, code, msg);
    append_response(resp, false, false, 11);
    metric_cache::get().record(r, status, std::chrono::nanoseconds(0));
    if (spdlog::should_log(spdlog::level::info))
      turret::log(spdlog::level::info, {{"request_id", ctx_.request_id()}, {"peer", sess_.addr}},
                  fmt::format("http {}: {} {}", sh_->name, status, msg));
    timed_out_ = false;
    set_deadline(std::chrono::milliseconds(2000));  // the error write must not hang on a client that does not read
    co_await flush();
  }

  asio::awaitable<void> serve() {
    const http_options& o = sh_->opts;
    beast::flat_buffer buf;
    for (;;) {
      if (killed_.load(std::memory_order_acquire)) co_return;
      // Wait for the start of the next request (keep-alive idle time).
      if (buf.size() == 0) {
        if (!co_await flush()) co_return;
        if (draining_) co_return;
        state_ = conn_state::idle;
        set_deadline(o.idle_timeout);
        auto [ec, n] = co_await sock_.async_read_some(buf.prepare(16 * 1024), use_tuple);
        if (ec) co_return;  // closed, idle timeout or drain
        buf.commit(n);
      } else if (!out_.empty()) {
        // Pipelined: flush earlier responses unless the next request's header is already complete.
        const std::string_view pending(static_cast<const char*>(buf.data().data()), buf.size());
        if (pending.find("\r\n\r\n") == std::string_view::npos)
          if (!co_await flush()) co_return;
      }
      qbuf_.store(buf.size(), std::memory_order_relaxed);

      state_ = conn_state::header;
      set_deadline(o.header_timeout);
      ctx_.reset_for_next_request();
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(o.max_header_bytes, UINT32_MAX)));
      parser.body_limit(static_cast<std::uint64_t>(o.max_body_bytes));
      {
        auto [ec, n] = co_await bhttp::async_read_header(sock_, buf, parser, use_tuple);
        if (ec) {
          if (timed_out_) co_return co_await codec_error(408, "request_timeout", "request header timeout", route::bad_request);
          if (ec == bhttp::error::end_of_stream || ec == asio::error::eof || ec == asio::error::operation_aborted ||
              ec == asio::error::connection_reset || killed_) {
            spdlog::debug("http {}: {} closed while reading a header: {}", sh_->name, sess_.addr, ec.message());
            co_return;
          }
          if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow)
            co_return co_await codec_error(431, "header_too_large", "request header fields too large", route::bad_request);
          if (ec == bhttp::error::body_limit)
            co_return co_await codec_error(413, "payload_too_large", "request body too large", route::bad_request);
          co_return co_await codec_error(400, "bad_request", "malformed request: " + ec.message(), route::bad_request);
        }
      }
      auto& msg = parser.get();
      const auto start = steady::now();
      const int version = msg.version();
      if (version != 10 && version != 11)
        co_return co_await codec_error(505, "http_version_not_supported", "HTTP/1.0 or HTTP/1.1 only", route::bad_request);
      if (auto id = msg["x-request-id"]; valid_request_id(std::string_view(id.data(), id.size())))
        ctx_.set_request_id(std::string(id.data(), id.size()));
      const std::string_view target(msg.target().data(), msg.target().size());
      if (target.size() > o.max_uri_bytes)
        co_return co_await codec_error(414, "uri_too_long", "request target too long", route::bad_request);
      if (target.empty() || target.front() != '/')
        co_return co_await codec_error(400, "bad_request", "origin-form target required", route::bad_request);

      // Body: Expect: 100-continue, Content-Length or chunked, with limits and a deadline.
      const bool has_framing = msg.has_content_length() || parser.chunked();
      if (!parser.is_done()) {
        if (auto ex = msg[bhttp::field::expect]; iequals(std::string_view(ex.data(), ex.size()), "100-continue")) {
          out_ += version == 10 ? "" : "HTTP/1.1 100 Continue\r\n\r\n";
        }
        if (!co_await flush()) co_return;
        state_ = conn_state::body;
        set_deadline(o.body_timeout);
        auto [ec, n] = co_await bhttp::async_read(sock_, buf, parser, use_tuple);
        if (ec) {
          if (timed_out_) co_return co_await codec_error(408, "request_timeout", "request body timeout", route::bad_request);
          if (ec == bhttp::error::body_limit)
            co_return co_await codec_error(413, "payload_too_large", "request body too large", route::bad_request);
          if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message || ec == asio::error::eof ||
              ec == asio::error::operation_aborted || killed_)
            co_return;
          co_return co_await codec_error(400, "bad_request", "malformed body: " + ec.message(), route::bad_request);
        }
      }

      state_ = conn_state::handling;
      deadline_ = steady::time_point::max();
      rest_request rq;
      rq.m = parse_method(std::string_view(msg.method_string().data(), msg.method_string().size()));
      rq.target = target;
      rq.body = msg.body();
      rq.has_framing = has_framing;
      rest_response resp;
      if (!sh_->api->try_handle_now(rq, ctx_, sess_, resp)) co_await sh_->api->handle(rq, ctx_, sess_, resp);

      const bool keep_alive = msg.keep_alive() && !resp.close && !draining_ && !sess_.close_after_reply &&
                              !killed_.load(std::memory_order_relaxed);
      const route r = match(rq.m, split_target(target).first).r;
      metric_cache::get().record(r, resp.status, steady::now() - start);
      if (resp.status >= 500 || spdlog::should_log(spdlog::level::debug)) {
        turret::log(resp.status >= 500 ? spdlog::level::warn : spdlog::level::debug,
                    {{"request_id", ctx_.request_id()}, {"peer", sess_.addr}},
                    fmt::format("http {} {} {} -> {}", sh_->name, to_string(rq.m), route_name(r), resp.status));
      }

      if (resp.start_sse) {
        co_await serve_events(std::move(resp.body), version);
        co_return;
      }
      append_response(resp, rq.m == method::head, keep_alive, version);
      if (!keep_alive) {
        co_await flush();
        co_return;
      }
      if (out_.size() >= 64 * 1024 || buf.size() == 0)
        if (!co_await flush()) co_return;
    }
  }

  /// Writes one chunk of the event stream (chunked transfer encoding).
  static void append_chunk(std::string& out, std::string_view data) {
    char hex[20];
    const int n = std::snprintf(hex, sizeof hex, "%zx\r\n", data.size());
    out.append(hex, static_cast<std::size_t>(n));
    out += data;
    out += "\r\n";
  }

  /// Server-Sent Events until the client goes away, the subscriber overflows, or the server drains.
  asio::awaitable<void> serve_events(std::string first_event, int version) {
    state_ = conn_state::sse;
    deadline_ = steady::time_point::max();
    out_ += version == 10 ? "HTTP/1.0 200 OK\r\n" : "HTTP/1.1 200 OK\r\n";
    out_ += "Server: turret\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n";
    if (version != 10) out_ += "Transfer-Encoding: chunked\r\n";
    out_ += "x-request-id: ";
    out_ += ctx_.request_id();
    out_ += "\r\nConnection: close\r\n\r\n";
    const bool chunked = version != 10;
    auto add = [&](std::string_view data) {
      if (chunked) append_chunk(out_, data);
      else out_ += data;
    };
    add(first_event);
    if (!co_await flush()) co_return;

    // Detect the client going away: read (and ignore) until EOF/error, then wake the writer.
    auto self = shared_from_this();
    asio::co_spawn(
        sock_.get_executor(),
        [self]() -> asio::awaitable<void> {
          char scratch[512];
          for (;;) {
            auto [ec, n] = co_await self->sock_.async_read_some(asio::buffer(scratch), use_tuple);
            if (ec) break;
          }
          self->peer_gone_ = true;
          self->wake_.cancel();
        },
        asio::detached);

    for (;;) {
      std::string batch;
      bool overflow;
      {
        std::lock_guard lk(mu_);
        batch.swap(outbox_);
        overflow = overflow_;
      }
      if (overflow) {
        spdlog::info("http {}: closing slow event-stream subscriber {} (sse_buffer_bytes exceeded)", sh_->name, sess_.addr);
        break;
      }
      if (peer_gone_ || killed_ || draining_) break;
      if (!batch.empty()) {
        add(batch);
        if (!co_await flush()) co_return;
        deadline_ = steady::time_point::max();
        continue;
      }
      wake_.expires_after(sh_->opts.sse_keepalive);
      auto [ec] = co_await wake_.async_wait(use_tuple);
      if (!ec) {  // idle: keep-alive comment
        add(": keepalive\n\n");
        if (!co_await flush()) co_return;
        deadline_ = steady::time_point::max();
      }
    }
    if (chunked && !peer_gone_) {
      out_ += "0\r\n\r\n";
      co_await flush();
    }
  }

  std::shared_ptr<listener_shared> sh_;
  tcp::socket sock_;
  asio::steady_timer watchdog_;
  asio::steady_timer wake_;
  shutdown_coordinator::tracker tracker_;
  int fd_ = -1;
  std::chrono::milliseconds tick_{1000};

  // Connection-thread state.
  kv::session sess_;
  request_context ctx_;
  std::string out_;
  conn_state state_ = conn_state::idle;
  steady::time_point deadline_ = steady::time_point::max();
  bool timed_out_ = false;
  bool closed_ = false;
  bool draining_ = false;
  bool peer_gone_ = false;

  // Shared with other threads.
  mutable std::mutex mu_;
  std::string outbox_;
  bool overflow_ = false;
  bool wake_posted_ = false;
  std::atomic<bool> killed_{false};
  std::atomic<std::size_t> qbuf_{0};
};

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
    auto conn_ex = sock.get_executor();
    auto conn = std::make_shared<connection>(core->shared, std::move(sock));
    asio::co_spawn(conn_ex, conn->run(conn), log_exception);
  }
}

class http_listener final : public turretd::listener {
 public:
  explicit http_listener(turretd::listener_env env) : name_(env.name), endpoint_(env.endpoint) {
    auto sh = std::make_shared<listener_shared>();
    sh->name = env.name;
    if (auto* o = std::any_cast<http_options>(&env.options)) sh->opts = *o;
    sh->shutdown = &env.shutdown;
    rest_api::env api_env;
    api_env.pipeline = std::move(env.pipeline);
    api_env.store = env.store;
    api_env.shutdown = &env.shutdown;
    api_env.opts = sh->opts;
    if constexpr (requires { env.state; }) api_env.state = env.state;
    sh->api = std::make_unique<rest_api>(std::move(api_env));
    register_gauges(env.store);
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
  /// Process-level gauges for /metrics (keys, memory); registered once per process, reading the latest store.
  static void register_gauges(const std::shared_ptr<kv::store>& st) {
    static std::mutex mu;
    static std::weak_ptr<kv::store> current;
    static bool registered = false;
    {
      std::lock_guard lk(mu);  // not held while registering: the callbacks take mu under the registry's lock
      current = st;
      if (registered) return;
      registered = true;
    }
    auto& reg = metrics::default_registry();
    reg.gauge_callback("turret_keys", "Keys in all databases.", [] {
      std::shared_ptr<kv::store> s;
      {
        std::lock_guard lk2(mu);
        s = current.lock();
      }
      if (!s) return 0.0;
      std::lock_guard lock(s->mutex());
      std::size_t n = 0;
      for (int i = 0; i < s->databases(); ++i) n += s->db(i).size();
      return static_cast<double>(n);
    });
    reg.gauge_callback("turret_keyspace_memory_bytes", "Bytes used by the keyspaces (entries and tables).", [] {
      std::shared_ptr<kv::store> s;
      {
        std::lock_guard lk2(mu);
        s = current.lock();
      }
      if (!s) return 0.0;
      std::lock_guard lock(s->mutex());
      std::size_t n = 0;
      for (int i = 0; i < s->databases(); ++i) n += s->db(i).memory_usage();
      return static_cast<double>(n);
    });
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

std::unique_ptr<turretd::listener> make_listener(turretd::listener_env env) {
  return std::make_unique<http_listener>(std::move(env));
}

turretd::frontend make_frontend() {
  turretd::frontend f;
  f.keys = {"http"};
  f.parse = [](const config_node& entry) -> std::any { return parse_http_options(entry.child("http")); };
  f.create = [](turretd::listener_env env) { return make_listener(std::move(env)); };
  return f;
}

}  // namespace turret::http_frontend
