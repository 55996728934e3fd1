// HTTP/1.1 codec and connections (the only Beast translation unit of the front end).
#include <services/http/http_connection.hpp>
#include <services/http/message_framing.hpp>
#include <services/http/rest_api.hpp>
#include <turret/ascii.hpp>
#include <turret/kv/backend.hpp>
#include <turret/logging.hpp>
#include <turret/metrics.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/container/small_vector.hpp>

#include <array>
#include <ctime>
#include <unordered_map>

namespace turret::http_frontend {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using steady = std::chrono::steady_clock;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

listener_shared::listener_shared() = default;
listener_shared::~listener_shared() = default;

std::string endpoint_string(const tcp::endpoint& ep) {
  if (ep.address().is_v6()) return "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

namespace {

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

/// Writes one chunk of the event stream (chunked transfer encoding).
void append_chunk(std::string& out, std::string_view data) {
  char hex[20];
  const int n = std::snprintf(hex, sizeof hex, "%zx\r\n", data.size());
  out.append(hex, static_cast<std::size_t>(n));
  out += data;
  out += "\r\n";
}

using request_parser = bhttp::request_parser<bhttp::string_body>;

/// The values of every field line named `f`, in the order received.
boost::container::small_vector<std::string_view, 2> field_values(const bhttp::fields& h, bhttp::field f) {
  boost::container::small_vector<std::string_view, 2> out;
  for (auto [it, end] = h.equal_range(f); it != end; ++it) out.emplace_back(it->value().data(), it->value().size());
  return out;
}

/// The framing of a request whose header Beast has parsed: RFC 9112's rules (message_framing.hpp) decide, and Beast,
/// which reads the body, must frame it the same way.
framing_verdict request_framing(const request_parser& p) {
  const auto& h = p.get();
  const auto te = field_values(h, bhttp::field::transfer_encoding);
  const auto cl = field_values(h, bhttp::field::content_length);
  framing_verdict v = check_request_framing(h.version(), te, cl);
  if (!v.ok()) return v;
  const auto beast_length = p.content_length();
  if (!framing_agrees(v, p.chunked(), beast_length ? std::optional<std::uint64_t>(*beast_length) : std::nullopt)) {
    v.status = 400;
    v.code = "bad_request";
    v.message = "request framing not understood";
  }
  return v;
}

}  // namespace

connection::connection(std::shared_ptr<listener_shared> sh, tcp::socket sock)
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
  ctx_.set_connection_id(request_context::new_connection_id());
  sess_.protocol_name = "http";
  sess_.addr = ec ? std::string("?:0") : endpoint_string(peer);
  sess_.laddr = sh_->laddr;
  sess_.host = this;
  const auto& o = sh_->opts;
  auto tick = std::min(o.header_timeout, o.body_timeout) / 4;
  if (o.idle_timeout.count() > 0) tick = std::min(tick, o.idle_timeout / 4);
  tick_ = std::clamp<std::chrono::milliseconds>(tick, std::chrono::milliseconds(20), std::chrono::milliseconds(1000));
  auto& m = metrics::request_metrics::get();
  open_ = &m.connections.with({"http"});
  m.connections_total.with({"http"}).inc();
  open_->inc();  // last: nothing after it throws, so the destructor runs whenever this did
}

connection::~connection() {
  open_->dec();
  sh_->clients.fetch_sub(1, std::memory_order_acq_rel);
  std::lock_guard lk(sh_->mu);
  sh_->conns.erase(this);
}

/// Closes the socket and stops the watchdog when run() ends, however it ends.
class connection::socket_closer {
 public:
  explicit socket_closer(connection& c) noexcept : c_(c) {}
  socket_closer(const socket_closer&) = delete;
  socket_closer& operator=(const socket_closer&) = delete;
  ~socket_closer() {
    c_.closed_ = true;
    c_.watchdog_.cancel();
    c_.close_socket();
  }

 private:
  connection& c_;
};

asio::awaitable<void> connection::run(std::shared_ptr<connection> self) {
  // Released by destructors whatever way this coroutine ends (return, exception, or its frame destroyed by a stopped
  // runtime): first the store forgets the session (no deliver()/kill() reaches us after that), then the socket
  // closes and the watchdog stops. The gauge and the client count follow the connection object (its destructor).
  const socket_closer closer(*this);
  {
    std::lock_guard lk(sh_->mu);
    sh_->conns.insert(this);
  }
  const kv::session_guard attached(sh_->api->backend(), sess_);
  asio::co_spawn(sock_.get_executor(), watch(self), asio::detached);
  co_await serve();
}

bool connection::deliver(const kv::pubsub_message& m) {
  try {
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
  } catch (...) {  // no memory for the event: handled as an overflow (the stream is closed)
    std::lock_guard lk(mu_);
    overflow_ = true;
    try {
      post_wake_locked();
    } catch (...) {  // then the stream's keep-alive timer wakes it
    }
    return false;
  }
}

void connection::kill() {
  killed_.store(true, std::memory_order_release);
  asio::post(sock_.get_executor(), [w = weak_from_this()] {
    if (auto s = w.lock()) s->close_socket();
  });
}

kv::session_host::buffers connection::buffer_info() const {
  buffers b;
  b.qbuf = qbuf_.load(std::memory_order_relaxed);
  std::lock_guard lk(mu_);
  b.omem = outbox_.size();
  b.tot_mem = b.omem + b.qbuf;
  return b;
}

void connection::drain() {
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

void connection::post_wake_locked() {
  if (wake_posted_) return;
  asio::post(sock_.get_executor(), [w = weak_from_this()] {
    if (auto s = w.lock()) {
      {
        std::lock_guard lk(s->mu_);
        s->wake_posted_ = false;
      }
      s->wake_.cancel();
    }
  });
  wake_posted_ = true;  // after the post, which may throw (mu_ is held: the handler cannot run before this)
}

void connection::close_socket() {
  boost::system::error_code ec;
  sock_.shutdown(tcp::socket::shutdown_both, ec);
  sock_.close(ec);
  wake_.cancel();
}

void connection::set_deadline(std::chrono::milliseconds d) {
  deadline_ = d.count() > 0 ? steady::now() + d : steady::time_point::max();
}

/// The watchdog: closes (or cancels, to answer 408) a connection whose current deadline has passed.
asio::awaitable<void> connection::watch(std::shared_ptr<connection> self) {
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
asio::awaitable<bool> connection::flush() {
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
void connection::append_response(const rest_response& r, bool head, bool keep_alive, int version) {
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
  if (r.retry_after > 0) {
    out_ += "\r\nRetry-After: ";
    out_ += std::to_string(r.retry_after);
  }
  if (!r.www_authenticate.empty()) {
    out_ += "\r\nWWW-Authenticate: ";
    out_ += r.www_authenticate;
  }
  out_ += "\r\nx-request-id: ";
  out_ += ctx_.request_id();
  if (!keep_alive) out_ += "\r\nConnection: close";
  else if (version == 10) out_ += "\r\nConnection: keep-alive";
  out_ += "\r\n\r\n";
  if (!head && !no_body) out_ += r.body;
}

/// Answers an error found by the codec (before routing); the caller then closes: after such an error nothing that
/// follows in the connection's bytes is trusted, let alone run.
asio::awaitable<void> connection::codec_error(int status, std::string_view code, std::string_view msg) {
  rest_response resp;
  set_error(resp, status, code, msg);
  append_response(resp, false, false, 11);
  metric_cache::get().record(route::bad_request, status, std::chrono::nanoseconds(0));
  if (spdlog::should_log(spdlog::level::info))
    turret::log(spdlog::level::info, {{"request_id", ctx_.request_id()}, {"peer", sess_.addr}},
                fmt::format("http {}: {} {}", sh_->name, status, msg));
  timed_out_ = false;
  set_deadline(std::chrono::milliseconds(2000));  // the error write must not hang on a client that does not read
  if (co_await flush()) co_await linger();
}

/// Before the server closes a connection that may still carry unread request bytes: stop sending (FIN), then read
/// and discard what the client sends, for at most a second and 1 MiB. Closing a socket with unread received data
/// makes the kernel send RST, and a client that has not read our last response yet may then lose it.
asio::awaitable<void> connection::linger() {
  boost::system::error_code ec;
  sock_.shutdown(tcp::socket::shutdown_send, ec);
  if (ec) co_return;
  state_ = conn_state::writing;  // at the deadline the watchdog cancels the read (below), then closes
  timed_out_ = false;
  set_deadline(std::chrono::milliseconds(1000));
  char scratch[4096];
  for (std::size_t total = 0; total < (std::size_t{1} << 20);) {
    auto [rec, n] = co_await sock_.async_read_some(asio::buffer(scratch), use_tuple);
    if (rec) break;
    total += n;
  }
}

/// Runs the REST handler. Whatever it throws becomes the response (set_exception_error); the connection goes on.
asio::awaitable<void> connection::dispatch(const rest_request& rq, rest_response& resp) {
  std::exception_ptr failure;
  try {
    if (!sh_->api->try_handle_now(rq, ctx_, sess_, resp)) co_await sh_->api->handle(rq, ctx_, sess_, resp);
  } catch (...) {
    failure = std::current_exception();
  }
  if (!failure) co_return;
  resp = rest_response{};
  const std::string what = set_exception_error(resp, failure);
  turret::log(spdlog::level::err, {{"request_id", ctx_.request_id()}, {"peer", sess_.addr}},
              fmt::format("http {}: request failed: {}", sh_->name, what));
}

asio::awaitable<void> connection::serve() {
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
    request_parser parser;
    parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(o.max_header_bytes, UINT32_MAX)));
    parser.body_limit(static_cast<std::uint64_t>(o.max_body_bytes));
    {
      auto [ec, n] = co_await bhttp::async_read_header(sock_, buf, parser, use_tuple);
      if (ec) {
        if (timed_out_) co_return co_await codec_error(408, "request_timeout", "request header timeout");
        if (ec == bhttp::error::end_of_stream || ec == asio::error::eof || ec == asio::error::operation_aborted ||
            ec == asio::error::connection_reset || killed_) {
          spdlog::debug("http {}: {} closed while reading a header: {}", sh_->name, sess_.addr, ec.message());
          co_return;
        }
        if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow)
          co_return co_await codec_error(431, "header_too_large", "request header fields too large");
        if (ec == bhttp::error::body_limit)
          co_return co_await codec_error(413, "payload_too_large", "request body too large");
        co_return co_await codec_error(400, "bad_request", "malformed request: " + ec.message());
      }
    }
    auto& msg = parser.get();
    const auto start = steady::now();
    const int version = msg.version();
    if (version != 10 && version != 11)
      co_return co_await codec_error(505, "http_version_not_supported", "HTTP/1.0 or HTTP/1.1 only");
    if (auto id = msg["x-request-id"]; valid_request_id(std::string_view(id.data(), id.size())))
      ctx_.set_request_id(std::string(id.data(), id.size()));
    // Each request authenticates with its own credentials (the auth layer): nothing carries over from the previous one.
    ctx_.identity.clear();
    if (auto auth = msg[bhttp::field::authorization]; !auth.empty())
      ctx_.credentials = std::string_view(auth.data(), auth.size());
    // The body's length, decided before any of it is read. A refusal closes the connection: whatever follows the
    // header in the same bytes (a smuggled request) is never run.
    if (const framing_verdict fv = request_framing(parser); !fv.ok())
      co_return co_await codec_error(fv.status, fv.code, fv.message);
    const std::string_view target(msg.target().data(), msg.target().size());
    if (target.size() > o.max_uri_bytes)
      co_return co_await codec_error(414, "uri_too_long", "request target too long");
    if (target.empty() || target.front() != '/')
      co_return co_await codec_error(400, "bad_request", "origin-form target required");

    // Body: Expect: 100-continue, Content-Length or chunked, with limits and a deadline.
    const bool has_framing = msg.has_content_length() || parser.chunked();
    if (!parser.is_done()) {
      if (auto ex = msg[bhttp::field::expect]; turret::iequals(std::string_view(ex.data(), ex.size()), "100-continue")) {
        out_ += version == 10 ? "" : "HTTP/1.1 100 Continue\r\n\r\n";
      }
      if (!co_await flush()) co_return;
      state_ = conn_state::body;
      set_deadline(o.body_timeout);
      auto [ec, n] = co_await bhttp::async_read(sock_, buf, parser, use_tuple);
      if (ec) {
        if (timed_out_) co_return co_await codec_error(408, "request_timeout", "request body timeout");
        if (ec == bhttp::error::body_limit)
          co_return co_await codec_error(413, "payload_too_large", "request body too large");
        if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message || ec == asio::error::eof ||
            ec == asio::error::operation_aborted || killed_)
          co_return;
        co_return co_await codec_error(400, "bad_request", "malformed body: " + ec.message());
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
    co_await dispatch(rq, resp);

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
      if (co_await flush() && buf.size() != 0) co_await linger();  // pipelined requests after a last response
      co_return;
    }
    if (out_.size() >= 64 * 1024 || buf.size() == 0)
      if (!co_await flush()) co_return;
  }
}

/// Server-Sent Events until the client goes away, the subscriber overflows, or the server drains.
asio::awaitable<void> connection::serve_events(std::string first_event, int version) {
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
      spdlog::info("http {}: closing slow event-stream subscriber {} (sse_buffer_bytes exceeded)", sh_->name,
                   sess_.addr);
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

}  // namespace turret::http_frontend
