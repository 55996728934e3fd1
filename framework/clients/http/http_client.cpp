#include <turret/clients/http_client.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ostream>

#include <turret/percent_encoding.hpp>

namespace turret::clients {

namespace asio = boost::asio;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

const boost::system::error_category& http_client_category() noexcept {
  struct category final : boost::system::error_category {
    const char* name() const noexcept override { return "turret.http_client"; }
    std::string message(int ev) const override {
      switch (static_cast<http_client_errc>(ev)) {
        case http_client_errc::status: return "unexpected HTTP status";
        case http_client_errc::bad_response: return "malformed response body";
      }
      return "unknown";
    }
  };
  static const category c;
  return c;
}


struct http_client::impl {
  impl(asio::any_io_executor ex, std::string h, std::uint16_t p) : host(std::move(h)), port(p), sock(ex) {}
  std::string host;
  std::uint16_t port;
  tcp::socket sock;
  boost::beast::flat_buffer buf;
  bool connected = false;

  asio::awaitable<error_code> connect() {
    tcp::resolver resolver(sock.get_executor());
    auto [ec, eps] = co_await resolver.async_resolve(host, std::to_string(port), use_tuple);
    if (ec) co_return ec;
    boost::system::error_code ignored;
    sock.close(ignored);
    auto [cec, ep] = co_await asio::async_connect(sock, eps, use_tuple);
    if (cec) co_return cec;
    sock.set_option(tcp::no_delay(true), ignored);
    buf.clear();
    connected = true;
    co_return error_code{};
  }
};

http_client::http_client(asio::any_io_executor ex, std::string host, std::uint16_t port)
    : impl_(std::make_unique<impl>(std::move(ex), std::move(host), port)) {}
http_client::~http_client() = default;

asio::awaitable<result<http_response>> http_client::request(std::string_view method, std::string_view target,
                                                             std::string_view body, std::string_view content_type) {
  bhttp::request<bhttp::string_body> req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(bhttp::field::host, impl_->host + ":" + std::to_string(impl_->port));
  req.set(bhttp::field::user_agent, "turret-http-client");
  if (!content_type.empty()) req.set(bhttp::field::content_type, content_type);
  req.body().assign(body);
  if (!body.empty() || method == "PUT" || method == "POST") req.prepare_payload();
  req.keep_alive(true);

  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool fresh = !impl_->connected;
    if (fresh)
      if (auto ec = co_await impl_->connect()) co_return ec;
    auto [wec, wn] = co_await bhttp::async_write(impl_->sock, req, use_tuple);
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(std::uint64_t(1) << 32);
    if (method == "HEAD") parser.skip(true);
    error_code rec = wec;
    if (!wec) {
      auto [ec, n] = co_await bhttp::async_read(impl_->sock, impl_->buf, parser, use_tuple);
      rec = ec;
    }
    if (rec) {
      impl_->connected = false;
      // A kept-alive connection the server closed meanwhile: retry once on a new connection.
      if (!fresh) continue;
      co_return rec;
    }
    auto& res = parser.get();
    http_response out;
    out.status = static_cast<int>(res.result_int());
    out.body = std::move(res.body());
    if (auto ct = res[bhttp::field::content_type]; !ct.empty()) out.content_type.assign(ct.data(), ct.size());
    if (auto id = res["x-request-id"]; !id.empty()) out.request_id.assign(id.data(), id.size());
    if (!res.keep_alive()) {
      boost::system::error_code ignored;
      impl_->sock.close(ignored);
      impl_->connected = false;
    }
    last_ = out;
    co_return out;
  }
  co_return make_error_code(boost::system::errc::connection_aborted);
}

asio::awaitable<result<std::optional<std::string>>> http_client::get(std::string_view key) {
  auto r = co_await request("GET", "/v1/kv/" + percent_encode(key));
  if (!r) co_return r.error();
  if (r->status == 404) co_return std::optional<std::string>();
  if (r->status != 200) co_return make_error_code(http_client_errc::status);
  co_return std::optional<std::string>(std::move(r->body));
}

asio::awaitable<result<bool>> http_client::set(std::string_view key, std::string_view value,
                                               std::optional<std::chrono::milliseconds> ttl) {
  std::string target = "/v1/kv/" + percent_encode(key);
  if (ttl) target += "?ttl_ms=" + std::to_string(ttl->count());
  auto r = co_await request("PUT", target, value, "application/octet-stream");
  if (!r) co_return result<bool>(boost::system::in_place_error, r.error());
  if (r->status == 201) co_return true;
  if (r->status == 200) co_return false;
  co_return result<bool>(boost::system::in_place_error, make_error_code(http_client_errc::status));
}

asio::awaitable<result<bool>> http_client::del(std::string_view key) {
  auto r = co_await request("DELETE", "/v1/kv/" + percent_encode(key));
  if (!r) co_return result<bool>(boost::system::in_place_error, r.error());
  if (r->status == 204) co_return true;
  if (r->status == 404) co_return false;
  co_return result<bool>(boost::system::in_place_error, make_error_code(http_client_errc::status));
}

asio::awaitable<result<long long>> http_client::incr(std::string_view key, long long by) {
  auto r = co_await request("POST", "/v1/kv/" + percent_encode(key) + "/incr?by=" + std::to_string(by));
  if (!r) co_return r.error();
  if (r->status != 200) co_return make_error_code(http_client_errc::status);
  long long v = 0;
  auto [p, ec] = std::from_chars(r->body.data(), r->body.data() + r->body.size(), v);
  if (ec != std::errc()) co_return make_error_code(http_client_errc::bad_response);
  co_return v;
}

asio::awaitable<result<std::optional<long long>>> http_client::ttl(std::string_view key) {
  auto r = co_await request("GET", "/v1/kv/" + percent_encode(key) + "/ttl");
  if (!r) co_return r.error();
  if (r->status != 200) co_return make_error_code(http_client_errc::status);
  boost::system::error_code jec;
  auto v = boost::json::parse(r->body, jec);
  if (jec || !v.is_object() || !v.get_object().contains("ttl_ms")) co_return make_error_code(http_client_errc::bad_response);
  const auto& t = v.get_object().at("ttl_ms");
  if (t.is_null()) co_return std::optional<long long>();
  if (!t.is_int64()) co_return make_error_code(http_client_errc::bad_response);
  co_return std::optional<long long>(t.get_int64());
}

asio::awaitable<result<long long>> http_client::publish(std::string_view channel, std::string_view message) {
  auto r = co_await request("POST", "/v1/publish/" + percent_encode(channel), message, "application/octet-stream");
  if (!r) co_return r.error();
  if (r->status != 200) co_return make_error_code(http_client_errc::status);
  boost::system::error_code jec;
  auto v = boost::json::parse(r->body, jec);
  if (jec || !v.is_object() || !v.get_object().contains("receivers")) co_return make_error_code(http_client_errc::bad_response);
  co_return v.get_object().at("receivers").to_number<long long>();
}

namespace {

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return s;
}

/// The server's error message of the last response, or the error code's message.
std::string describe(const http_client& c, const error_code& ec) {
  if (ec == http_client_errc::status) {
    boost::system::error_code jec;
    auto v = boost::json::parse(c.last_response().body, jec);
    if (!jec && v.is_object())
      if (auto* e = v.get_object().if_contains("error"); e && e->is_object())
        if (auto* m = e->get_object().if_contains("message"); m && m->is_string())
          return "(error) " + std::string(m->get_string().c_str()) + " (HTTP " +
                 std::to_string(c.last_response().status) + ")";
    return "(error) HTTP " + std::to_string(c.last_response().status);
  }
  return "Could not connect or request failed: " + ec.message();
}

asio::awaitable<int> run_cli(http_client& c, std::vector<std::string> a, std::ostream& out, std::ostream& err) {
  if (a.empty()) co_return 1;
  const std::string cmd = upper(a[0]);
  auto fail = [&](const error_code& ec) {
    err << describe(c, ec) << "\n";
    return 1;
  };
  auto arity = [&](std::size_t min, std::size_t max) {
    if (a.size() < min || a.size() > max) {
      err << "(error) ERR wrong number of arguments for '" << a[0] << "' command\n";
      return false;
    }
    return true;
  };
  if (cmd == "PING") {
    auto r = co_await c.request("GET", "/healthz");
    if (!r) co_return fail(r.error());
    out << (r->status == 200 ? "PONG" : "(error) not healthy") << "\n";
    co_return r->status == 200 ? 0 : 1;
  }
  if (cmd == "GET") {
    if (!arity(2, 2)) co_return 1;
    auto r = co_await c.get(a[1]);
    if (!r) co_return fail(r.error());
    out << (*r ? **r : std::string("(nil)")) << "\n";
    co_return 0;
  }
  if (cmd == "SET") {
    if (!arity(3, 6)) co_return 1;
    std::string q;
    for (std::size_t i = 3; i < a.size(); ++i) {
      const std::string o = upper(a[i]);
      if ((o == "EX" || o == "PX") && i + 1 < a.size()) {
        q += q.empty() ? '?' : '&';
        q += o == "EX" ? std::string("ttl=") : std::string("ttl_ms=");
        q += a[++i];
      } else if (o == "NX" || o == "XX") {
        q += q.empty() ? '?' : '&';
        q += o == "NX" ? std::string("nx=true") : std::string("xx=true");
      } else {
        err << "(error) ERR syntax error\n";
        co_return 1;
      }
    }
    auto r = co_await c.request("PUT", "/v1/kv/" + percent_encode(a[1]) + q, a[2], "application/octet-stream");
    if (!r) co_return fail(r.error());
    if (r->status == 412) {
      out << "(nil)\n";
      co_return 0;
    }
    if (r->status != 200 && r->status != 201) co_return fail(make_error_code(http_client_errc::status));
    out << "OK\n";
    co_return 0;
  }
  if (cmd == "DEL" || cmd == "EXISTS") {
    if (!arity(2, SIZE_MAX)) co_return 1;
    long long n = 0;
    for (std::size_t i = 1; i < a.size(); ++i) {
      if (cmd == "DEL") {
        auto r = co_await c.del(a[i]);
        if (!r) co_return fail(r.error());
        n += *r ? 1 : 0;
      } else {
        auto r = co_await c.request("HEAD", "/v1/kv/" + percent_encode(a[i]));
        if (!r) co_return fail(r.error());
        n += r->status == 200 ? 1 : 0;
      }
    }
    out << "(integer) " << n << "\n";
    co_return 0;
  }
  if (cmd == "INCR" || cmd == "DECR" || cmd == "INCRBY" || cmd == "DECRBY") {
    const bool by = cmd == "INCRBY" || cmd == "DECRBY";
    if (!arity(by ? 3 : 2, by ? 3 : 2)) co_return 1;
    long long n = 1;
    if (by) {
      auto [p, ec] = std::from_chars(a[2].data(), a[2].data() + a[2].size(), n);
      if (ec != std::errc()) {
        err << "(error) ERR value is not an integer or out of range\n";
        co_return 1;
      }
    }
    if (cmd[0] == 'D') n = -n;
    auto r = co_await c.incr(a[1], n);
    if (!r) co_return fail(r.error());
    out << "(integer) " << *r << "\n";
    co_return 0;
  }
  if (cmd == "TTL" || cmd == "PTTL") {
    if (!arity(2, 2)) co_return 1;
    auto r = co_await c.ttl(a[1]);
    long long v;
    if (!r) {
      if (r.error() == http_client_errc::status && c.last_response().status == 404) v = -2;
      else co_return fail(r.error());
    } else {
      v = *r ? (cmd == "TTL" ? (**r + 500) / 1000 : **r) : -1;
    }
    out << "(integer) " << v << "\n";
    co_return 0;
  }
  if (cmd == "EXPIRE" || cmd == "PEXPIRE") {
    if (!arity(3, 3)) co_return 1;
    auto r = co_await c.request("PUT", "/v1/kv/" + percent_encode(a[1]) + "/ttl?" +
                                           (cmd == "EXPIRE" ? std::string("ttl=") : std::string("ttl_ms=")) + a[2]);
    if (!r) co_return fail(r.error());
    if (r->status != 204 && r->status != 404) co_return fail(make_error_code(http_client_errc::status));
    out << "(integer) " << (r->status == 204 ? 1 : 0) << "\n";
    co_return 0;
  }
  if (cmd == "PERSIST") {
    if (!arity(2, 2)) co_return 1;
    auto t = co_await c.ttl(a[1]);
    const bool had_ttl = t && *t && **t >= 0;
    auto r = co_await c.request("DELETE", "/v1/kv/" + percent_encode(a[1]) + "/ttl");
    if (!r) co_return fail(r.error());
    out << "(integer) " << (had_ttl && r->status == 204 ? 1 : 0) << "\n";
    co_return 0;
  }
  if (cmd == "MGET") {
    if (!arity(2, SIZE_MAX)) co_return 1;
    boost::json::array keys;
    for (std::size_t i = 1; i < a.size(); ++i) keys.emplace_back(a[i]);
    boost::json::object body;
    body["keys"] = std::move(keys);
    const std::string text = boost::json::serialize(body);
    auto r = co_await c.request("POST", "/v1/kv:mget", text, "application/json");
    if (!r) co_return fail(r.error());
    if (r->status != 200) co_return fail(make_error_code(http_client_errc::status));
    boost::system::error_code jec;
    auto v = boost::json::parse(r->body, jec);
    if (jec) co_return fail(make_error_code(http_client_errc::bad_response));
    const auto& vals = v.at("values").as_array();
    std::size_t i = 0;
    for (const auto& e : vals)
      out << ++i << ") " << (e.is_null() ? std::string("(nil)") : std::string(e.as_string().c_str())) << "\n";
    co_return 0;
  }
  if (cmd == "MSET") {
    if (a.size() < 3 || a.size() % 2 == 0) {
      err << "(error) ERR wrong number of arguments for 'mset' command\n";
      co_return 1;
    }
    boost::json::object values;
    for (std::size_t i = 1; i + 1 < a.size(); i += 2) values[a[i]] = a[i + 1];
    boost::json::object body;
    body["values"] = std::move(values);
    const std::string text = boost::json::serialize(body);
    auto r = co_await c.request("POST", "/v1/kv:mset", text, "application/json");
    if (!r) co_return fail(r.error());
    if (r->status != 204) co_return fail(make_error_code(http_client_errc::status));
    out << "OK\n";
    co_return 0;
  }
  if (cmd == "PUBLISH") {
    if (!arity(3, 3)) co_return 1;
    auto r = co_await c.publish(a[1], a[2]);
    if (!r) co_return fail(r.error());
    out << "(integer) " << *r << "\n";
    co_return 0;
  }
  err << "(error) ERR command '" << a[0] << "' is not available over --protocol http\n";
  co_return 1;
}

}  // namespace

int http_cli_command(const std::string& host, std::uint16_t port, std::span<const std::string> argv, std::ostream& out,
                     std::ostream& err) {
  asio::io_context io;
  http_client client(io.get_executor(), host, port);
  int rc = 1;
  asio::co_spawn(io, run_cli(client, std::vector<std::string>(argv.begin(), argv.end()), out, err),
                 [&](std::exception_ptr e, int r) {
                   if (e) {
                     err << "(error) internal error\n";
                     rc = 1;
                   } else {
                     rc = r;
                   }
                 });
  io.run();
  return rc;
}

}  // namespace turret::clients
