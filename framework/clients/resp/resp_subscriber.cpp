#include <turret/clients/resp_subscriber.hpp>
#include <turret/ascii.hpp>
#include <turret/resp/client.hpp>
#include <turret/resp/parser.hpp>
#include <turret/resp/value.hpp>
#include "connect.hpp"

#include <boost/asio/as_tuple.hpp>
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
#include <set>
#include <vector>

namespace turret::resp {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

/// A sync() waiting for its PING's reply.
struct pong_waiter {
  explicit pong_waiter(const asio::any_io_executor& ex) : timer(ex) {}
  asio::steady_timer timer;
  bool confirmed = false;
};

}  // namespace

struct upstream_subscriber::impl : std::enable_shared_from_this<impl> {
  impl(asio::any_io_executor e, subscriber_options o, message_handler h)
      : ex(e), opts(std::move(o)), handler(std::move(h)), name(opts.host + ":" + std::to_string(opts.port)),
        sock(e), wake(e), sleep(e), connect_timer(e), resolver(e), parser(opts.max_bulk_len) {}

  asio::any_io_executor ex;
  subscriber_options opts;
  message_handler handler;
  std::string name;
  std::atomic<bool> connected{false};

  // Everything below is touched on `ex` only.
  tcp::socket sock;
  asio::steady_timer wake, sleep, connect_timer;
  tcp::resolver resolver;
  reply_parser parser;
  std::string in;
  std::set<std::string, std::less<>> channels, patterns;
  std::string queued;  ///< commands for the writer (while up)
  bool up = false;
  bool connecting = false;  ///< a connect is in progress (or about to start: the set just became non-empty)
  bool stopped = false;
  std::deque<std::shared_ptr<pong_waiter>> pongs;     ///< sync()s, in the order of their PINGs
  std::deque<std::shared_ptr<pong_waiter>> connects;  ///< sync()s waiting for a connect in progress

  void start() { asio::co_spawn(ex, [self = shared_from_this()] { return self->run(); }, asio::detached); }

  /// On ex: a change of the set; the command goes out while up.
  void change(std::string_view command, std::set<std::string, std::less<>>& set, std::string name, bool add) {
    if (stopped) return;
    if (add ? !set.insert(name).second : set.erase(name) == 0) return;
    if (up) append_command(queued, {command, name});
    wake.cancel();  // the writer, or run() waiting for a first subscription
  }

  asio::awaitable<bool> sync_here(std::chrono::milliseconds timeout) {
    auto keep = shared_from_this();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const bool first_connect = !up && !connecting && !(channels.empty() && patterns.empty());
    if (!stopped && !up && (connecting || first_connect)) {  // wait for the connect in progress
      auto c = std::make_shared<pong_waiter>(ex);
      c->timer.expires_at(deadline);
      connects.push_back(c);
      co_await c->timer.async_wait(nothrow);
    }
    if (!up || stopped) co_return false;
    auto w = std::make_shared<pong_waiter>(ex);
    w->timer.expires_at(deadline);
    append_command(queued, {"PING"});
    pongs.push_back(w);
    wake.cancel();
    co_await w->timer.async_wait(nothrow);
    co_return w->confirmed;
  }

  void release_waiters() {
    for (auto& w : pongs) w->timer.cancel();
    pongs.clear();
    release_connects();
  }
  void release_connects() {
    for (auto& w : connects) w->timer.cancel();
    connects.clear();
  }

  void do_stop() {
    stopped = true;
    error_code ignored;
    sock.close(ignored);
    wake.cancel();
    sleep.cancel();
    connect_timer.cancel();
    resolver.cancel();
    release_waiters();
  }

  asio::awaitable<void> run() {
    auto backoff = opts.backoff_initial;
    while (!stopped) {
      if (channels.empty() && patterns.empty()) {  // connect once there is something to subscribe
        wake.expires_at(asio::steady_timer::time_point::max());
        co_await wake.async_wait(nothrow);
        continue;
      }
      connecting = true;
      const error_code ec = co_await connect_once();
      connecting = false;
      if (ec) release_connects();
      if (!ec && !stopped) {
        backoff = opts.backoff_initial;
        queued.clear();  // the whole set, as it is now
        for (auto [cmd, set] : {std::pair{"SUBSCRIBE", &channels}, std::pair{"PSUBSCRIBE", &patterns}}) {
          if (set->empty()) continue;
          std::vector<std::string_view> args{cmd};
          args.insert(args.end(), set->begin(), set->end());
          append_command(queued, args);
        }
        up = true;
        connected.store(true, std::memory_order_release);
        release_connects();  // their PINGs go behind the whole set
        co_await (reader() || writer());
        up = false;
        connected.store(false, std::memory_order_release);
        queued.clear();
        release_waiters();
      }
      error_code ignored;
      sock.close(ignored);
      if (stopped) break;
      sleep.expires_after(backoff);
      co_await sleep.async_wait(nothrow);
      backoff = std::min(backoff * 2, opts.backoff_max);
    }
  }

  asio::awaitable<error_code> connect_once() {
    parser.reset();
    in.clear();
    co_return co_await detail::connect_within(sock, resolver, connect_timer, opts.host, opts.port,
                                              opts.connect_timeout);
  }

  asio::awaitable<error_code> writer() {
    std::string buf;
    for (;;) {
      if (stopped) co_return asio::error::operation_aborted;
      if (queued.empty()) {
        wake.expires_at(asio::steady_timer::time_point::max());
        co_await wake.async_wait(nothrow);
        if ((co_await asio::this_coro::cancellation_state).cancelled() != asio::cancellation_type::none)
          co_return asio::error::operation_aborted;
        continue;
      }
      buf.clear();
      buf.swap(queued);
      auto [ec, n] = co_await asio::async_write(sock, asio::buffer(buf), nothrow);
      if (ec) co_return ec;
    }
  }

  /// One reply or push: a message for the handler, a PING's reply for the oldest sync(), anything else dropped.
  void take(const value& v) {
    if (v.type == value::kind::simple && iequals(v.str, "pong")) return pong();
    if (!v.is_aggregate() || v.elements.empty() || !v.elements[0].is_string()) return;
    const auto& e = v.elements;
    const std::string_view kind = e[0].str;
    if (iequals(kind, "message") && e.size() == 3) {
      handler(subscriber_message{{}, e[1].str, e[2].str});
    } else if (iequals(kind, "pmessage") && e.size() == 4) {
      handler(subscriber_message{e[1].str, e[2].str, e[3].str});
    } else if (iequals(kind, "pong")) {
      pong();
    }
  }

  void pong() {
    if (pongs.empty()) return;
    auto w = std::move(pongs.front());
    pongs.pop_front();
    w->confirmed = true;
    w->timer.cancel();
  }

  asio::awaitable<error_code> reader() {
    std::size_t start = 0;
    for (;;) {
      if (start == in.size()) {
        in.clear();
        start = 0;
      } else if (start > 64 * 1024) {
        in.erase(0, start);
        start = 0;
      }
      const std::size_t old = in.size();
      const std::size_t want = std::max<std::size_t>(16 * 1024, parser.wanted_size());
      in.resize(old + want);
      auto [ec, n] = co_await sock.async_read_some(asio::buffer(in.data() + old, want), nothrow);
      in.resize(old + n);
      if (ec) co_return ec;
      while (start < in.size()) {
        const std::string_view rest = std::string_view(in).substr(start);
        const auto st = parser.parse(rest);
        const std::size_t used = parser.consumed();
        if (st == reply_parser::status::error) co_return make_error_code(client_errc::protocol_error);
        start += used;
        if (st == reply_parser::status::need_more) break;
        take(parser.take());
        if (stopped) co_return asio::error::operation_aborted;
      }
    }
  }
};

upstream_subscriber::upstream_subscriber(asio::any_io_executor ex, subscriber_options opts, message_handler on_message)
    : impl_(std::make_shared<impl>(ex, std::move(opts), std::move(on_message))) {
  impl_->start();
}

upstream_subscriber::~upstream_subscriber() { stop(); }

void upstream_subscriber::subscribe(std::string channel) {
  asio::post(impl_->ex, [i = impl_, c = std::move(channel)]() mutable {
    i->change("SUBSCRIBE", i->channels, std::move(c), true);
  });
}

void upstream_subscriber::unsubscribe(std::string channel) {
  asio::post(impl_->ex, [i = impl_, c = std::move(channel)]() mutable {
    i->change("UNSUBSCRIBE", i->channels, std::move(c), false);
  });
}

void upstream_subscriber::psubscribe(std::string pattern) {
  asio::post(impl_->ex, [i = impl_, p = std::move(pattern)]() mutable {
    i->change("PSUBSCRIBE", i->patterns, std::move(p), true);
  });
}

void upstream_subscriber::punsubscribe(std::string pattern) {
  asio::post(impl_->ex, [i = impl_, p = std::move(pattern)]() mutable {
    i->change("PUNSUBSCRIBE", i->patterns, std::move(p), false);
  });
}

asio::awaitable<bool> upstream_subscriber::sync(std::chrono::milliseconds timeout) {
  std::shared_ptr<impl> i = impl_;
  // Behind the changes posted before (co_spawn alone may start sync_here at once, ahead of them, when the caller
  // runs on the subscriber's executor).
  co_await asio::post(i->ex, asio::use_awaitable);
  co_return co_await asio::co_spawn(i->ex, i->sync_here(timeout), asio::use_awaitable);
}

bool upstream_subscriber::connected() const noexcept { return impl_->connected.load(std::memory_order_acquire); }

const std::string& upstream_subscriber::name() const noexcept { return impl_->name; }

void upstream_subscriber::stop() {
  asio::post(impl_->ex, [i = impl_] { i->do_stop(); });
}

}  // namespace turret::resp
