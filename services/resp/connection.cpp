#include <services/resp/connection.hpp>
#include <turret/ascii.hpp>
#include <turret/kv/command_table.hpp>
#include <turret/error_mapping.hpp>
#include <turret/kv/dispatch.hpp>
#include <turret/metrics.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include <optional>
#include <unordered_map>

namespace turret::resp_frontend {

namespace asio = boost::asio;
using asio::use_awaitable;
constexpr auto as_tuple_awaitable = asio::as_tuple(use_awaitable);

namespace {

constexpr std::size_t initial_input_capacity = 16 * 1024;
constexpr std::size_t read_chunk = 4 * 1024;
constexpr std::size_t keep_output_capacity = 64 * 1024;  // larger reply buffers are released after the batch

std::string endpoint_string(const asio::ip::tcp::endpoint& ep) {
  const auto addr = ep.address();
  if (addr.is_v6() && !addr.to_v6().is_v4_mapped()) return addr.to_string() + ":" + std::to_string(ep.port());
  return (addr.is_v6() ? boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, addr.to_v6()).to_string()
                       : addr.to_string()) +
         ":" + std::to_string(ep.port());
}

}  // namespace

std::int64_t connection::steady_ms() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

connection::connection(std::shared_ptr<listener_shared> shared, socket_type sock)
    : shared_(std::move(shared)),
      sock_(std::move(sock)),
      tracker_(shared_->shutdown ? shared_->shutdown->track() : shutdown_coordinator::tracker()),
      in_(initial_input_capacity),
      parser_(shared_->parser_opts),
      builder_(out_, sess_.resp),
      started_(std::make_shared<started_batch>(sock_.get_executor())),
      push_done_(sock_.get_executor()) {
  fd_ = sock_.native_handle();
  last_active_ms_.store(steady_ms(), std::memory_order_relaxed);
}

connection::~connection() = default;

asio::awaitable<void> connection::run(std::shared_ptr<connection> self) {
  co_await self->run_impl();
}

asio::awaitable<void> connection::run_impl() {
  owner_ = std::this_thread::get_id();
  boost::system::error_code ec;
  sock_.non_blocking(true, ec);  // direct send() of replies; never blocks the thread
  {
    auto remote = sock_.remote_endpoint(ec);
    sess_.addr = ec ? std::string("?:0") : endpoint_string(remote);
    sess_.laddr = shared_->laddr;
  }
  sess_.protocol_name = "resp";
  sess_.host = this;
  ctx_.protocol = "resp";
  ctx_.set_peer(sock_.remote_endpoint(ec));
  ctx_.set_connection_id(request_context::new_connection_id());

  // Everything below is undone by destructors, in reverse order, however this coroutine ends: returning, an
  // exception, or its frame destroyed unresumed when the runtime stops. In particular the session is detached
  // before anything it points to goes away, so CLIENT LIST and pub/sub delivery never reach a closed connection.
  struct leave {
    connection& c;
    ~leave() {
      {
        std::lock_guard lk(c.shared_->mu);
        c.shared_->conns.erase(&c);
      }
      c.close_now();
      c.shared_->clients.fetch_sub(1, std::memory_order_acq_rel);
      c.tracker_.reset();
    }
  };
  {
    std::lock_guard lk(shared_->mu);
    shared_->conns.insert(this);
  }
  leave on_exit{*this};
  auto& rm = metrics::request_metrics::get();
  rm.connections_total.with({"resp"}).inc();
  struct open_gauge {
    metrics::gauge& g;
    explicit open_gauge(metrics::gauge& x) : g(x) { g.inc(); }
    ~open_gauge() { g.add(-1); }
  } open{rm.connections.with({"resp"})};
  kv::session_guard attached(*shared_->backend, sess_);  // detached first on the way out

  try {
    co_await serve();
  } catch (const std::exception& e) {
    // Commands never throw (the core turns their failures into error replies); this is the connection's own
    // bookkeeping failing, e.g. no memory for its buffers. Close this connection; the server goes on.
    spdlog::error("resp {}: closing {}: {}", shared_->name, sess_.addr, e.what());
  }
}

asio::awaitable<void> connection::serve() {
  kv::backend& be = *shared_->backend;
  const kv::client_limits& limits = be.limits();
  long long bulk_limit = -1;
  const kv::command_table* table = &be.commands();

  for (;;) {
    if (draining_ || killed_.load(std::memory_order_relaxed)) co_return;

    // --- read ---------------------------------------------------------------------------------------------------
    // One async_read_some per batch. Alternatives, counted with `strace -c -f -p PID` on turretd while bench/bench_resp.sh
    // runs its -P 1 case (redis-benchmark -c 50 -P 1), per request:
    // async_read_some costs 1 recv plus ~0.34 EAGAIN recv (Asio reads speculatively when an edge-triggered event
    // arrived while no read was pending, and that event is often for bytes an earlier read consumed);
    // async_wait + non-blocking recv costs 1 recv plus 1 epoll_ctl (Asio re-arms the descriptor for every
    // non-speculative wait), i.e. more. redis-server (level-triggered epoll) does 1 read.
    auto space = in_.prepare(read_chunk);
    reading_ = true;
    auto [ec, n] = co_await sock_.async_read_some(asio::buffer(space.data(), space.size()), as_tuple_awaitable);
    reading_ = false;
    if (ec) co_return;  // EOF, reset, cancelled by drain()/kill()
    in_.commit(n);
    auto t0 = std::chrono::steady_clock::now();  // per-command latency: each command ends where the next starts
    last_active_ms_.store(
        std::chrono::duration_cast<std::chrono::milliseconds>(t0.time_since_epoch()).count(),
        std::memory_order_relaxed);
    be.counters().net_input_bytes.fetch_add(n, std::memory_order_relaxed);
    qbuf_.store(in_.size(), std::memory_order_relaxed);  // as Redis: CLIENT LIST of itself shows the current command
    qbuf_cap_.store(in_.capacity(), std::memory_order_relaxed);

    // CONFIG SET proto-max-bulk-len applies from the next read on.
    if (const long long b = limits.proto_max_bulk_len.load(std::memory_order_relaxed); b != bulk_limit) {
      bulk_limit = b;
      auto po = parser_.options();
      po.max_bulk_len = static_cast<std::size_t>(b);
      parser_.set_options(po);
    }

    // --- parse and execute every complete command ---------------------------------------------------------------
    bool close_after = false;
    for (;;) {
      parser_.set_auth_required(be.auth_required(sess_));
      const auto status = resp::parse(parser_, in_);
      if (status == resp::request_parser::status::need_more) break;
      if (status == resp::request_parser::status::error) {
        // Redis: the replies of the commands before, then the error, then close.
        if (!started_->empty()) co_await answer_started();
        std::string msg = "ERR ";
        msg += parser_.error_text();
        builder_.error(msg);
        spdlog::debug("resp {}: protocol error from {}: {}", shared_->name, sess_.addr, parser_.error_text());
        close_after = true;
        break;
      }
      const auto args = parser_.args();
      if (!args.empty() && (iequals(args[0], "post") || iequals(args[0], "host:"))) [[unlikely]] {
        // An HTTP request sent to the RESP port (a cross-protocol attack, say from a browser): as redis-server, close
        // at once, without the replies not sent yet. (A started command's callback then writes into a batch that
        // nobody waits for.)
        spdlog::warn("resp {}: possible SECURITY ATTACK detected from {}: a POST or Host: command, as an HTTP client "
                     "sends (cross protocol scripting?); connection aborted",
                     shared_->name, sess_.addr);
        out_.clear();
        co_return;
      }
      // Resolved once: the layers and the core use it; the metrics label is args[0]'s entry.
      const kv::resolved_command cmd = kv::resolve(*table, args);
      const kv::command_def* def = cmd.base;
      ctx_.reset_for_next_request();
      kv::request req{ctx_, sess_, args, builder_, &cmd};

      executing_ = true;
      kv::pipeline_service& pipeline = pipeline_.get();  // the command finishes on this pipeline
      if (pipeline.supports_start()) {
        // The started commands' replies are collected later; their completions keep the pipeline's parts alive.
        started_batch::slot& sl = started_->prepare(sess_.resp);
        kv::request sreq{ctx_, sess_, args, sl.builder, &cmd};
        completion<kv::response> done = started_->commit(started_, def, t0);
        if (kv::dispatch_start(pipeline, sreq, done)) {
          executing_ = false;
          if (started_->full()) co_await answer_started();
          t0 = std::chrono::steady_clock::now();
          if (killed_.load(std::memory_order_relaxed)) {
            close_after = true;
            break;
          }
          continue;
        }
        started_->uncommit();
      }
      if (!started_->empty()) co_await answer_started();  // everything started before answers first
      std::optional<result<kv::response>> r = kv::dispatch_now(pipeline, req);
      if (!r) r.emplace(co_await kv::dispatch_suspending(pipeline, req));
      executing_ = false;
      if (!*r) {
        // The pipeline failed (its partial reply, if any, is already discarded): its error is the one reply.
        builder_.error(resp_error(r->error(), std::chrono::steady_clock::now() >= ctx_.deadline));
      }
      finish_command();
      {
        const auto t1 = std::chrono::steady_clock::now();
        meter_.record(def, *r, t0, t1);
        t0 = t1;
      }
      if (sess_.close_after_reply || killed_.load(std::memory_order_relaxed)) {
        close_after = true;
        break;
      }
    }

    if (!started_->empty()) co_await answer_started();

    const std::size_t qlimit = static_cast<std::size_t>(limits.client_query_buffer_limit.load(std::memory_order_relaxed));
    if (!close_after && in_.size() > qlimit) {
      spdlog::warn("resp {}: closing client {} that reached max query buffer length ({} bytes)", shared_->name,
                   sess_.addr, in_.size());
      close_after = true;
    }
    qbuf_.store(in_.size(), std::memory_order_relaxed);
    qbuf_cap_.store(in_.capacity(), std::memory_order_relaxed);

    // --- write the batch's replies (plus queued pub/sub messages) -----------------------------------------------------
    if (push_writing_) {
      // A wake-up write of the outbox started while we were reading: let it finish (bytes must not interleave).
      push_waiter_ = true;
      push_done_.expires_at(asio::steady_timer::time_point::max());
      co_await push_done_.async_wait(as_tuple_awaitable);
      push_waiter_ = false;
      if (closed_) co_return;
    }
    for (;;) {
      const auto fr = try_flush();
      if (fr == flush_result::done) break;
      if (fr == flush_result::failed) co_return;
      const std::size_t pending = out_.size();
      inflight_bytes_.fetch_add(pending, std::memory_order_relaxed);
      auto [wec, wn] = co_await asio::async_write(sock_, asio::buffer(out_), as_tuple_awaitable);
      inflight_bytes_.fetch_sub(pending, std::memory_order_relaxed);
      if (wec) co_return;
      be.counters().net_output_bytes.fetch_add(wn, std::memory_order_relaxed);
      out_.clear();
    }
    if (out_.capacity() > keep_output_capacity) std::string().swap(out_);
    if (close_after) co_return;
  }
}

asio::awaitable<void> connection::answer_started() {
  const bool was_executing = executing_;
  executing_ = true;
  co_await started_->async_wait(use_awaitable);
  executing_ = was_executing;
  const auto end = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < started_->size(); ++i) {
    started_batch::slot& sl = started_->at(i);
    const result<kv::response>& r = *sl.outcome;
    if (r) {
      builder_.raw(sl.bytes);
    } else {
      builder_.error(resp_error(r.error(), false));  // no deadline: a started command is not bound to one
    }
    meter_.record(sl.def, r, sl.started, end);
    if (sl.bytes.capacity() > keep_output_capacity) std::string().swap(sl.bytes);  // as out_: no large reply kept
  }
  meter_.count_started(started_->size());
  started_->clear();
}

void connection::finish_command() {
  // CLIENT REPLY OFF/SKIP is applied inside the key-value core (the reply goes to a null builder).
  const bool sub = sess_.subscriptions() != 0;
  if (sub != subscriber_.load(std::memory_order_relaxed)) subscriber_.store(sub, std::memory_order_relaxed);
}

void connection::take_outbox() {
  std::lock_guard lk(out_mu_);
  if (outbox_.empty()) return;
  if (out_.empty())
    out_.swap(outbox_);
  else
    out_.append(outbox_);
  outbox_.clear();
  soft_since_ms_ = 0;
}

connection::flush_result connection::try_flush() {
  take_outbox();
  if (out_.empty()) return flush_result::done;
  boost::system::error_code ec;
  const std::size_t n = sock_.write_some(asio::buffer(out_), ec);
  if (ec && ec != asio::error::would_block && ec != asio::error::try_again) return flush_result::failed;
  if (n > 0) shared_->backend->counters().net_output_bytes.fetch_add(n, std::memory_order_relaxed);
  if (n == out_.size()) {
    out_.clear();
    // Messages may have arrived from other threads meanwhile: loop until both are empty.
    std::lock_guard lk(out_mu_);
    return outbox_.empty() ? flush_result::done : flush_result::pending;
  }
  out_.erase(0, n);
  return flush_result::pending;
}

// --- pub/sub delivery and wake-ups ------------------------------------------------------------------------------------

bool connection::deliver(const kv::pubsub_message& m) {
  if (killed_.load(std::memory_order_relaxed)) return false;
  if (std::this_thread::get_id() == owner_ && executing_) {
    // Our own command published it: it goes before the command's reply, as in Redis.
    append_pubsub_message(out_, sess_.resp, m);
    return true;
  }
  const kv::client_limits& limits = shared_->backend->limits();
  const unsigned long long hard = limits.pubsub_hard.load(std::memory_order_relaxed);
  const unsigned long long soft = limits.pubsub_soft.load(std::memory_order_relaxed);
  const long long soft_seconds = limits.pubsub_soft_seconds.load(std::memory_order_relaxed);
  bool post_wake = false;
  bool over = false;
  {
    std::lock_guard lk(out_mu_);
    append_pubsub_message(outbox_, sess_.resp, m);
    const std::size_t total = outbox_.size() + inflight_bytes_.load(std::memory_order_relaxed);
    if (hard != 0 && total > hard) {
      over = true;
    } else if (soft != 0 && total > soft) {
      const std::int64_t now = steady_ms();
      if (soft_since_ms_ == 0)
        soft_since_ms_ = now;
      else if (now - soft_since_ms_ > soft_seconds * 1000)
        over = true;
    } else {
      soft_since_ms_ = 0;
    }
    if (over) {
      outbox_.clear();
      std::string().swap(outbox_);
    } else if (!wake_posted_) {
      wake_posted_ = true;
      post_wake = true;
    }
  }
  if (over) {
    spdlog::warn("resp {}: client {} scheduled to be closed for overcoming of output buffer limits (pubsub)",
                 shared_->name, sess_.addr);
    kill();
    return false;
  }
  if (post_wake) asio::post(sock_.get_executor(), [self = shared_from_this()] { self->on_wake(); });
  return true;
}

void connection::on_wake() {
  {
    std::lock_guard lk(out_mu_);
    wake_posted_ = false;
  }
  if (reading_ && !push_writing_ && !closed_) start_push_write();
}

void connection::start_push_write() {
  {
    std::lock_guard lk(out_mu_);
    if (outbox_.empty()) return;
    push_buf_.swap(outbox_);
    outbox_.clear();
    soft_since_ms_ = 0;
  }
  push_writing_ = true;
  const std::size_t bytes = push_buf_.size();
  inflight_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  asio::async_write(sock_, asio::buffer(push_buf_),
                    [self = shared_from_this(), bytes](boost::system::error_code ec, std::size_t n) {
                      self->inflight_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
                      self->push_writing_ = false;
                      self->push_buf_.clear();
                      if (self->push_buf_.capacity() > keep_output_capacity) std::string().swap(self->push_buf_);
                      if (!ec) self->shared_->backend->counters().net_output_bytes.fetch_add(n, std::memory_order_relaxed);
                      if (ec) self->close_now();
                      if (self->push_waiter_) {
                        self->push_done_.cancel();
                        return;
                      }
                      if (!ec && self->reading_) self->start_push_write();
                    });
}

void connection::kill() {
  if (std::this_thread::get_id() == owner_ && executing_) {
    // CLIENT KILL of ourselves: answer, then close (Redis's CLIENT_CLOSE_AFTER_REPLY).
    sess_.close_after_reply = true;
    return;
  }
  if (killed_.exchange(true)) return;
  asio::post(sock_.get_executor(), [self = shared_from_this()] { self->close_now(); });
}

void connection::drain() {
  auto self = weak_from_this().lock();
  if (!self) return;
  asio::post(sock_.get_executor(), [self] {
    self->draining_ = true;
    // Waiting for input: nothing in flight, close now. Otherwise the loop closes after answering its batch.
    if (self->reading_) {
      boost::system::error_code ec;
      self->sock_.cancel(ec);
    }
  });
}

void connection::close_now() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ec;
  sock_.shutdown(socket_type::shutdown_both, ec);
  sock_.close(ec);
  push_done_.cancel();
}

kv::session_host::buffers connection::buffer_info() const {
  buffers b;
  b.qbuf = qbuf_.load(std::memory_order_relaxed);
  const std::size_t cap = qbuf_cap_.load(std::memory_order_relaxed);
  b.qbuf_free = cap > b.qbuf ? cap - b.qbuf : 0;
  b.omem = inflight_bytes_.load(std::memory_order_relaxed);
  b.oll = b.omem ? 1 : 0;
  b.tot_mem = cap + b.omem;
  return b;
}

}  // namespace turret::resp_frontend
