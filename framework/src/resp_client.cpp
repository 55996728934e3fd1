// Coroutine RESP client: see turret/resp/client.hpp.
#include "turret/resp/client.hpp"

#include <algorithm>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "turret/resp/writer.hpp"

namespace turret::resp {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {
constexpr auto nothrow_awaitable = asio::as_tuple(asio::use_awaitable);

class client_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "turret.resp.client"; }
  std::string message(int ev) const override {
    switch (static_cast<client_errc>(ev)) {
      case client_errc::not_connected: return "not connected";
      case client_errc::protocol_error: return "protocol error in server reply";
      case client_errc::server_error: return "server replied with an error";
      case client_errc::unexpected_reply: return "unexpected reply type";
      case client_errc::connection_closed: return "connection closed by server";
    }
    return "unknown resp client error";
  }
};

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return r;
}
}  // namespace

const boost::system::error_category& client_category() noexcept {
  static const client_category_impl cat;
  return cat;
}

void append_command(std::string& out, std::span<const std::string_view> args) {
  writer w(out, 2);
  w.array(args.size());
  for (auto a : args) w.bulk(a);
}

// --- connection ------------------------------------------------------------------------------------------------

namespace detail {

asio::awaitable<result<value>> connection::read_reply() {
  for (;;) {
    const auto st = parser.parse(in.readable());
    in.consume(parser.consumed());
    if (st == reply_parser::status::ok) co_return parser.take();
    if (st == reply_parser::status::error) {
      close();
      co_return error_code(client_errc::protocol_error);
    }
    // Need more bytes: reserve a large bulk once, then read at most what fits.
    const std::size_t wanted = parser.wanted_size();
    if (wanted > in.capacity()) in.reserve(wanted + 16 * 1024);
    std::size_t want = 4096;
    if (wanted > in.size()) want = std::min(want, wanted - in.size());
    auto space = in.prepare(want);
    auto [ec, n] = co_await socket.async_read_some(asio::buffer(space.data(), space.size()), nothrow_awaitable);
    if (ec) {
      close();
      if (ec == asio::error::eof || ec == asio::error::connection_reset)
        co_return error_code(client_errc::connection_closed);
      co_return ec;
    }
    in.commit(n);
  }
}

asio::awaitable<error_code> connection::write(std::string_view bytes) {
  auto [ec, n] = co_await asio::async_write(socket, asio::buffer(bytes.data(), bytes.size()), nothrow_awaitable);
  if (ec) close();
  co_return ec;
}

asio::awaitable<result<value>> connection::roundtrip(std::string_view request) {
  if (auto ec = co_await write(request)) co_return ec;
  co_return co_await read_reply();
}

void connection::close() noexcept {
  error_code ignored;
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

}  // namespace detail

// --- client ----------------------------------------------------------------------------------------------------

asio::awaitable<result<client>> client::connect(asio::any_io_executor ex, std::string host, std::uint16_t port,
                                                client_options opts) {
  tcp::resolver resolver(ex);
  auto [rec, endpoints] = co_await resolver.async_resolve(host, std::to_string(port), nothrow_awaitable);
  if (rec) co_return rec;
  tcp::socket socket(ex);
  auto [cec, ep] = co_await asio::async_connect(socket, endpoints, nothrow_awaitable);
  if (cec) co_return cec;
  if (opts.tcp_nodelay) {
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
  }
  client c;
  c.conn_ = std::make_unique<detail::connection>(std::move(socket), opts);
  co_return std::move(c);
}

void client::close() noexcept {
  if (conn_) conn_->close();
  conn_.reset();
}

asio::awaitable<result<value>> client::command(std::span<const std::string_view> args) {
  if (!conn_) co_return error_code(client_errc::not_connected);
  conn_->out.clear();
  append_command(conn_->out, args);
  auto r = co_await conn_->roundtrip(conn_->out);
  if (!r && conn_ && !conn_->socket.is_open()) conn_.reset();
  co_return r;
}

asio::awaitable<result<value>> client::command(const std::vector<std::string>& args) {
  std::vector<std::string_view> views(args.begin(), args.end());
  co_return co_await command(std::span<const std::string_view>(views));
}

asio::awaitable<result<value>> client::typed(std::span<const std::string_view> args) {
  auto r = co_await command(args);
  if (r && r->is_error()) {
    last_error_ = r->str;
    co_return error_code(client_errc::server_error);
  }
  co_return r;
}

asio::awaitable<result<std::string>> client::ping() {
  const std::string_view args[] = {"PING"};
  auto r = co_await typed(args);
  if (!r) co_return r.error();
  if (!r->is_string()) co_return error_code(client_errc::unexpected_reply);
  co_return std::move(r->str);
}

asio::awaitable<result<std::optional<std::string>>> client::get(std::string_view key) {
  const std::string_view args[] = {"GET", key};
  auto r = co_await typed(args);
  if (!r) co_return r.error();
  if (r->is_null()) co_return std::optional<std::string>{};
  if (r->type != value::kind::bulk) co_return error_code(client_errc::unexpected_reply);
  co_return std::optional<std::string>(std::move(r->str));
}

asio::awaitable<result<void>> client::set(std::string_view key, std::string_view val,
                                          std::optional<std::chrono::milliseconds> expiry) {
  result<value> r = error_code(client_errc::not_connected);
  if (expiry) {
    char buf[24];
    const std::size_t n = format_integer(buf, static_cast<long long>(expiry->count()));
    const std::string_view args[] = {"SET", key, val, "PX", std::string_view(buf, n)};
    r = co_await typed(args);
  } else {
    const std::string_view args[] = {"SET", key, val};
    r = co_await typed(args);
  }
  if (!r) co_return r.error();
  if (r->type != value::kind::simple) co_return error_code(client_errc::unexpected_reply);
  co_return result<void>{};
}

asio::awaitable<result<long long>> client::del(std::span<const std::string_view> keys) {
  std::vector<std::string_view> args;
  args.reserve(keys.size() + 1);
  args.push_back("DEL");
  args.insert(args.end(), keys.begin(), keys.end());
  auto r = co_await typed(args);
  if (!r) co_return r.error();
  if (r->type != value::kind::integer) co_return error_code(client_errc::unexpected_reply);
  co_return r->integer;
}

asio::awaitable<result<long long>> client::publish(std::string_view channel, std::string_view msg) {
  const std::string_view args[] = {"PUBLISH", channel, msg};
  auto r = co_await typed(args);
  if (!r) co_return r.error();
  if (r->type != value::kind::integer) co_return error_code(client_errc::unexpected_reply);
  co_return r->integer;
}

asio::awaitable<result<std::vector<value>>> client::exec(const pipeline& p) {
  if (!conn_) co_return error_code(client_errc::not_connected);
  std::vector<value> replies;
  if (p.empty()) co_return replies;
  if (auto ec = co_await conn_->write(p.bytes())) {
    conn_.reset();
    co_return ec;
  }
  replies.reserve(p.size());
  for (std::size_t i = 0; i < p.size(); ++i) {
    auto r = co_await conn_->read_reply();
    if (!r) {
      conn_.reset();
      co_return r.error();
    }
    replies.push_back(std::move(*r));
  }
  co_return replies;
}

asio::awaitable<result<subscriber>> client::subscribe(std::vector<std::string> channels) {
  if (!conn_) co_return error_code(client_errc::not_connected);
  subscriber s;
  s.conn_ = std::move(conn_);
  auto r = co_await s.subscribe(std::move(channels));
  if (!r) co_return r.error();
  co_return std::move(s);
}

asio::awaitable<result<subscriber>> client::psubscribe(std::vector<std::string> patterns) {
  if (!conn_) co_return error_code(client_errc::not_connected);
  subscriber s;
  s.conn_ = std::move(conn_);
  auto r = co_await s.psubscribe(std::move(patterns));
  if (!r) co_return r.error();
  co_return std::move(s);
}

// --- subscriber ------------------------------------------------------------------------------------------------

void subscriber::close() noexcept {
  if (conn_) conn_->close();
  conn_.reset();
}

std::string subscriber::absorb(value&& v) {
  if ((v.type != value::kind::array && v.type != value::kind::push) || v.elements.empty() ||
      !v.elements[0].is_string())
    return {};
  auto& e = v.elements;
  std::string kind = lower(e[0].str);
  if (kind == "message" && e.size() >= 3) {
    pending_.push_back(message{std::move(kind), {}, std::move(e[1].str), std::move(e[2].str)});
    return {};
  }
  if (kind == "pmessage" && e.size() >= 4) {
    pending_.push_back(message{std::move(kind), std::move(e[1].str), std::move(e[2].str), std::move(e[3].str)});
    return {};
  }
  if (e.size() >= 2 && e[1].is_string()) {
    auto& list = (kind == "subscribe" || kind == "unsubscribe") ? channels_ : patterns_;
    auto it = std::find(list.begin(), list.end(), e[1].str);
    if ((kind == "subscribe" || kind == "psubscribe") && it == list.end()) list.push_back(e[1].str);
    if ((kind == "unsubscribe" || kind == "punsubscribe") && it != list.end()) list.erase(it);
  }
  return kind;
}

asio::awaitable<result<void>> subscriber::change(std::string_view cmd, std::vector<std::string> names) {
  if (!conn_) co_return error_code(client_errc::not_connected);
  const std::string kind = lower(cmd);
  std::size_t expected = names.size();
  if (names.empty()) {
    const auto& list = (kind == "unsubscribe") ? channels_ : patterns_;
    expected = std::max<std::size_t>(1, list.size());
  }
  std::vector<std::string_view> args;
  args.reserve(names.size() + 1);
  args.push_back(cmd);
  for (const auto& n : names) args.push_back(n);
  conn_->out.clear();
  append_command(conn_->out, args);
  if (auto ec = co_await conn_->write(conn_->out)) {
    conn_.reset();
    co_return ec;
  }
  while (expected > 0) {
    auto r = co_await conn_->read_reply();
    if (!r) {
      conn_.reset();
      co_return r.error();
    }
    if (r->is_error()) co_return error_code(client_errc::server_error);
    if (absorb(std::move(*r)) == kind) --expected;
  }
  co_return result<void>{};
}

asio::awaitable<result<void>> subscriber::subscribe(std::vector<std::string> channels) {
  co_return co_await change("SUBSCRIBE", std::move(channels));
}
asio::awaitable<result<void>> subscriber::psubscribe(std::vector<std::string> patterns) {
  co_return co_await change("PSUBSCRIBE", std::move(patterns));
}
asio::awaitable<result<void>> subscriber::unsubscribe(std::vector<std::string> channels) {
  co_return co_await change("UNSUBSCRIBE", std::move(channels));
}
asio::awaitable<result<void>> subscriber::punsubscribe(std::vector<std::string> patterns) {
  co_return co_await change("PUNSUBSCRIBE", std::move(patterns));
}

asio::awaitable<result<message>> subscriber::next_message() {
  for (;;) {
    if (!pending_.empty()) {
      message m = std::move(pending_.front());
      pending_.pop_front();
      co_return m;
    }
    if (!conn_) co_return error_code(client_errc::not_connected);
    auto r = co_await conn_->read_reply();
    if (!r) {
      conn_.reset();
      co_return r.error();
    }
    absorb(std::move(*r));
  }
}

}  // namespace turret::resp
