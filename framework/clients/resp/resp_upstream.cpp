#include <turret/clients/resp_upstream.hpp>
#include <turret/error.hpp>
#include <turret/resp/client.hpp>
#include "connect.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <deque>
#include <mutex>

namespace turret::resp {

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

class upstream_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "turret.resp_upstream"; }
  std::string message(int ev) const override {
    switch (static_cast<upstream_errc>(ev)) {
      case upstream_errc::down: return "upstream down (reconnecting)";
      case upstream_errc::connection_lost: return "upstream connection lost";
      case upstream_errc::stopped: return "upstream client stopped";
    }
    return "unknown upstream error";
  }
  boost::system::error_condition default_error_condition(int) const noexcept override {
    return make_error_condition(errc::unavailable);
  }
};

/// One request waiting for its reply. Completed exactly once (`done`): by its reply, by a connection failure, or by
/// its cancellation, whichever comes first.
struct pending_op {
  virtual ~pending_op() = default;
  /// Hands the outcome to the caller (once: `done` was just set).
  virtual void deliver(const std::shared_ptr<pending_op>& self, error_code ec, upstream_reply r) = 0;
  std::atomic<bool> done{false};
};

/// call()'s: the caller's handler, invoked on its executor, which also owns `slot`.
template <class Handler>
struct pending_op_for final : pending_op {
  explicit pending_op_for(Handler&& h) : handler(std::move(h)) {}
  void deliver(const std::shared_ptr<pending_op>& self, error_code ec, upstream_reply r) override {
    asio::post(ex, [op = std::static_pointer_cast<pending_op_for>(self), ec, r = std::move(r)]() mutable {
      if (op->slot.is_connected()) op->slot.clear();
      std::move(op->handler)(ec, std::move(r));
    });
  }
  Handler handler;
  asio::cancellation_slot slot;
  asio::any_io_executor ex;
};

/// try_start()'s: the completion, invoked where the outcome is known (the reader's thread, or the caller's).
struct callback_op final : pending_op {
  explicit callback_op(completion<upstream_reply>&& d) : done_cb(std::move(d)) {}
  void deliver(const std::shared_ptr<pending_op>&, error_code ec, upstream_reply r) override {
    if (ec) {
      done_cb(ec);
    } else {
      done_cb(std::move(r));
    }
  }
  completion<upstream_reply> done_cb;
};

/// The place of a reply that is read and dropped (ASKING's, an on_connect command's): born done, so finish() on it
/// does nothing.
struct dropped_reply final : pending_op {
  dropped_reply() { done.store(true); }
  void deliver(const std::shared_ptr<pending_op>&, error_code, upstream_reply) override {}
};

void finish(const std::shared_ptr<pending_op>& op, error_code ec, upstream_reply r) {
  if (op->done.exchange(true, std::memory_order_acq_rel)) return;
  op->deliver(op, ec, std::move(r));
}

}  // namespace

const boost::system::error_category& upstream_category() noexcept {
  static const upstream_category_impl cat;
  return cat;
}

namespace detail {

class upstream_connection : public std::enable_shared_from_this<upstream_connection> {
 public:
  enum class state : std::uint8_t { connecting, up, down, stopped };

  upstream_connection(asio::any_io_executor ex, const upstream_options& o)
      : ex_(ex), opts_(o), sock_(ex), wake_(ex), sleep_(ex), connect_timer_(ex), resolver_(ex), parser_(o.max_bulk_len) {}

  void start() { asio::co_spawn(ex_, [self = shared_from_this()] { return self->run(); }, asio::detached); }

  void stop() {
    std::shared_ptr<upstream_connection> twin;
    {
      std::lock_guard lk(mu_);
      if (st_.load() == state::stopped) return;
      st_.store(state::stopped);
      twin = twin_;
    }
    if (twin) twin->stop();
    // Every request queued or written fails now, not when the connection's coroutine next runs: at shutdown the
    // io_context may never run it again, and a request's handler (its coroutine frames) must not stay behind.
    fail_all(upstream_errc::stopped);
    asio::post(ex_, [self = shared_from_this()] {
      error_code ignored;
      self->sock_.close(ignored);
      self->wake_.cancel();
      self->sleep_.cancel();
      self->connect_timer_.cancel();
      self->resolver_.cancel();
    });
  }

  state current() const noexcept { return st_.load(std::memory_order_acquire); }
  std::uint64_t connects() const noexcept { return connects_.load(std::memory_order_acquire); }
  std::uint64_t connects_with_twin() {
    std::shared_ptr<upstream_connection> t;
    {
      std::lock_guard lk(mu_);
      t = twin_;
    }
    return connects() + (t ? t->connects() : 0);
  }
  const upstream_options& options() const noexcept { return opts_; }

  /// The RESP3 twin (opened now if it is not yet): the same server and executor, HELLO 3 first.
  std::shared_ptr<upstream_connection> twin() {
    std::shared_ptr<upstream_connection> t;
    {
      std::lock_guard lk(mu_);
      if (twin_ || st_.load() == state::stopped) return twin_;
      upstream_options o = opts_;
      o.on_connect.insert(o.on_connect.begin(), {"HELLO", "3"});
      t = twin_ = std::make_shared<upstream_connection>(ex_, o);
    }
    t->start();
    return t;
  }
  const asio::any_io_executor& executor() const noexcept { return ex_; }

  /// Queues the command for the writer; an error when the connection is down or stopped (nothing queued then).
  error_code enqueue(std::span<const std::string_view> args, std::span<const std::vector<std::string_view>> before,
                     std::shared_ptr<pending_op> op) {
    bool wake = false;
    {
      std::lock_guard lk(mu_);
      const state s = st_.load();
      if (s == state::down) return upstream_errc::down;
      if (s == state::stopped) return upstream_errc::stopped;
      for (const auto& cmd : before) {
        append_command(queued_, cmd);
        pending_.push_back(dropped_);
      }
      append_command(queued_, args);
      pending_.push_back(std::move(op));
      if (s == state::up && !write_scheduled_) wake = write_scheduled_ = true;
    }
    if (wake) asio::post(ex_, [self = shared_from_this()] { self->wake_.cancel(); });
    return {};
  }

 private:
  asio::awaitable<void> run() {
    auto backoff = opts_.backoff_initial;
    while (current() != state::stopped) {
      if (!co_await connect_once()) {
        backoff = opts_.backoff_initial;
        connects_.fetch_add(1, std::memory_order_release);
        {
          std::lock_guard lk(mu_);
          if (st_.load() == state::stopped) break;
          st_.store(state::up);
          write_scheduled_ = true;  // the writer starts by sending what queued while connecting
          if (!opts_.on_connect.empty()) {  // before what queued while connecting
            std::string first;
            for (const auto& cmd : opts_.on_connect) {
              std::vector<std::string_view> args(cmd.begin(), cmd.end());
              append_command(first, args);
              pending_.push_front(dropped_);
            }
            queued_.insert(0, first);
          }
        }
        co_await (reader() || writer());
      }
      error_code ignored;
      sock_.close(ignored);
      {
        std::lock_guard lk(mu_);
        if (st_.load() == state::stopped) break;
        st_.store(state::down);
      }
      fail_all(upstream_errc::connection_lost);
      sleep_.expires_after(backoff);
      co_await sleep_.async_wait(nothrow);
      backoff = std::min(backoff * 2, opts_.backoff_max);
      std::lock_guard lk(mu_);
      if (st_.load() == state::stopped) break;
      st_.store(state::connecting);
    }
    error_code ignored;
    sock_.close(ignored);
    fail_all(upstream_errc::stopped);
  }

  /// Resolves and connects within connect_timeout; TCP_NODELAY. Returns an error on failure.
  asio::awaitable<error_code> connect_once() {
    parser_.reset();
    in_.clear();
    partial_.clear();
    co_return co_await connect_within(sock_, resolver_, connect_timer_, opts_.host, opts_.port, opts_.connect_timeout);
  }

  /// Sends what is queued, one write per batch; waits on wake_ while there is nothing.
  asio::awaitable<error_code> writer() {
    std::string buf;
    for (;;) {
      buf.clear();
      {
        std::lock_guard lk(mu_);
        if (queued_.empty()) {
          write_scheduled_ = false;
        } else {
          buf.swap(queued_);
          write_scheduled_ = true;
        }
      }
      if (buf.empty()) {
        wake_.expires_at(asio::steady_timer::time_point::max());
        co_await wake_.async_wait(nothrow);
        if ((co_await asio::this_coro::cancellation_state).cancelled() != asio::cancellation_type::none)
          co_return asio::error::operation_aborted;
        if (current() == state::stopped) co_return upstream_errc::stopped;
        continue;
      }
      auto [ec, n] = co_await asio::async_write(sock_, asio::buffer(buf), nothrow);
      if (ec) co_return ec;
    }
  }

  /// Parses replies and hands each to the oldest pending request.
  asio::awaitable<error_code> reader() {
    std::size_t start = 0;
    for (;;) {
      if (start == in_.size()) {
        in_.clear();
        start = 0;
      } else if (start > 64 * 1024) {
        in_.erase(0, start);
        start = 0;
      }
      const std::size_t old = in_.size();
      const std::size_t want = std::max<std::size_t>(16 * 1024, parser_.wanted_size());
      in_.resize(old + want);
      auto [ec, n] = co_await sock_.async_read_some(asio::buffer(in_.data() + old, want), nothrow);
      in_.resize(old + n);
      if (ec) co_return ec;
      while (start < in_.size()) {
        const std::string_view rest = std::string_view(in_).substr(start);
        const auto st = parser_.parse(rest);
        const std::size_t used = parser_.consumed();
        if (st == reply_parser::status::error) co_return make_error_code(client_errc::protocol_error);
        if (st == reply_parser::status::need_more) {
          partial_.append(rest.substr(0, used));
          start += used;
          break;
        }
        upstream_reply r;
        if (partial_.empty()) {
          r.raw.assign(rest.substr(0, used));
        } else {
          partial_.append(rest.substr(0, used));
          r.raw = std::move(partial_);
          partial_.clear();
        }
        r.v = parser_.take();
        start += used;
        std::shared_ptr<pending_op> op;
        {
          std::lock_guard lk(mu_);
          if (!pending_.empty()) {
            op = std::move(pending_.front());
            pending_.pop_front();
          }
        }
        if (!op) co_return make_error_code(client_errc::protocol_error);  // a reply nobody asked for
        finish(op, {}, std::move(r));
      }
    }
  }

  void fail_all(error_code ec) {
    std::deque<std::shared_ptr<pending_op>> ops;
    {
      std::lock_guard lk(mu_);
      ops.swap(pending_);
      queued_.clear();
      write_scheduled_ = false;
    }
    for (auto& op : ops) finish(op, ec, {});
  }

  asio::any_io_executor ex_;
  upstream_options opts_;
  tcp::socket sock_;
  asio::steady_timer wake_, sleep_, connect_timer_;
  tcp::resolver resolver_;
  reply_parser parser_;
  std::string in_;       ///< read buffer (the reader's)
  std::string partial_;  ///< bytes of a reply not complete yet, already absorbed by the parser

  std::atomic<state> st_{state::connecting};
  std::atomic<std::uint64_t> connects_{0};  ///< successful connects so far
  std::mutex mu_;  ///< guards the three below and the transitions of st_
  std::string queued_;
  std::deque<std::shared_ptr<pending_op>> pending_;
  bool write_scheduled_ = false;
  const std::shared_ptr<pending_op> dropped_ = std::make_shared<dropped_reply>();
  std::shared_ptr<upstream_connection> twin_;  ///< RESP3 (guarded by mu_)
};

}  // namespace detail

struct upstream_client::shared {
  std::string name;
  std::vector<std::shared_ptr<detail::upstream_connection>> conns;
  std::atomic<std::size_t> next{0};
  ~shared() {
    for (auto& c : conns) c->stop();
  }
  const std::shared_ptr<detail::upstream_connection>& pick() noexcept {
    return conns[next.fetch_add(1, std::memory_order_relaxed) % conns.size()];
  }
};

upstream_client::upstream_client(std::vector<asio::any_io_executor> executors, upstream_options opts)
    : shared_(std::make_shared<shared>()) {
  shared_->name = opts.host + ":" + std::to_string(opts.port);
  const std::size_t n = std::max<std::size_t>(1, opts.connections);
  for (std::size_t i = 0; i < n; ++i) {
    auto c = std::make_shared<detail::upstream_connection>(executors[i % executors.size()], opts);
    c->start();
    shared_->conns.push_back(std::move(c));
  }
}

std::optional<result<upstream_client::permit_type>> upstream_client::try_ready(request_context&) {
  const auto& c = shared_->pick();
  switch (c->current()) {
    case detail::upstream_connection::state::down: return result<permit_type>(make_error_code(upstream_errc::down));
    case detail::upstream_connection::state::stopped:
      return result<permit_type>(make_error_code(upstream_errc::stopped));
    default: return result<permit_type>(permit_type{c});
  }
}

awaitable<result<upstream_client::permit_type>> upstream_client::ready(request_context& ctx) {
  co_return *try_ready(ctx);
}

namespace {

template <class Token>
auto async_execute(std::shared_ptr<detail::upstream_connection> conn, std::span<const std::string_view> args,
                   std::span<const std::vector<std::string_view>> before, Token&& token) {
  return asio::async_initiate<Token, void(error_code, upstream_reply)>(
      [](auto handler, std::shared_ptr<detail::upstream_connection> conn, std::span<const std::string_view> args,
         std::span<const std::vector<std::string_view>> before) {
        auto ex = asio::get_associated_executor(handler, conn->executor());
        auto slot = asio::get_associated_cancellation_slot(handler);
        auto typed = std::make_shared<pending_op_for<decltype(handler)>>(std::move(handler));
        typed->ex = ex;
        typed->slot = slot;
        std::shared_ptr<pending_op> op = typed;
        if (typed->slot.is_connected()) {
          typed->slot.assign([weak = std::weak_ptr<pending_op>(op)](asio::cancellation_type t) {
            if (t == asio::cancellation_type::none) return;
            if (auto o = weak.lock()) finish(o, asio::error::operation_aborted, {});
          });
        }
        if (error_code ec = conn->enqueue(args, before, op)) finish(op, ec, {});
      },
      token, std::move(conn), args, before);
}

}  // namespace

awaitable<result<upstream_reply>> upstream_client::call(permit_type p, upstream_request& req) {
  if (req.ctx.cancelled()) co_return make_error_code(asio::error::operation_aborted);
  if (!p.conn) co_return make_error_code(upstream_errc::stopped);
  if (req.resp3) {
    p.conn = p.conn->twin();
    if (!p.conn) co_return make_error_code(upstream_errc::stopped);
  }
  auto [ec, r] = co_await async_execute(std::move(p.conn), req.args, req.before,
                                        asio::bind_cancellation_slot(req.ctx.cancel_slot(), nothrow));
  if (ec) co_return ec;
  co_return std::move(r);
}

bool upstream_client::try_start(upstream_request& req, completion<upstream_reply>& done) {
  std::shared_ptr<pending_op> op = std::make_shared<callback_op>(std::move(done));
  std::shared_ptr<detail::upstream_connection> conn =
      req.affinity != 0 ? shared_->conns[(req.affinity >> 4) % shared_->conns.size()] : shared_->pick();
  if (req.resp3) conn = conn->twin();
  const error_code ec = conn ? conn->enqueue(req.args, req.before, op) : make_error_code(upstream_errc::stopped);
  if (ec) finish(op, ec, {});
  return true;
}

const std::string& upstream_client::name() const noexcept { return shared_->name; }

upstream_client upstream_client::with_own_connection(asio::any_io_executor ex) const {
  upstream_options o = shared_->conns.front()->options();
  o.connections = 1;
  return upstream_client({std::move(ex)}, std::move(o));
}

std::uint64_t upstream_client::connects() const noexcept {
  std::uint64_t n = 0;
  for (const auto& c : shared_->conns) n += c->connects_with_twin();
  return n;
}

bool upstream_client::connected() const noexcept {
  for (const auto& c : shared_->conns) {
    if (c->current() == detail::upstream_connection::state::up) return true;
  }
  return false;
}

void upstream_client::stop() {
  for (auto& c : shared_->conns) c->stop();
}

}  // namespace turret::resp
