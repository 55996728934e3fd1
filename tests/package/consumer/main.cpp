// Consumer of the installed turret package: a custom service and a custom layer, composed with the built-in
// layers statically and from YAML. Prints one line per check and "consumer: ok" when all passed (exit code 0).
#include <turret/any_service.hpp>
#include <turret/config.hpp>
#include <turret/layer.hpp>
#include <turret/middleware/builtin.hpp>  // every middleware header is <turret/middleware/NAME.hpp>
#include <turret/middleware/concurrency_limit.hpp>
#include <turret/middleware/timeout.hpp>
#include <turret/registry.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#ifdef CONSUMER_HAVE_HTTP_CLIENT
#include <turret/clients/http_client.hpp>
#endif

#include <cctype>
#include <chrono>
#include <iostream>
#include <string>

namespace asio = boost::asio;
using namespace std::chrono_literals;

struct request {
  std::string text;
  bool slow = false;  // wait 10 s (cancellable) before answering
  turret::request_context ctx;
  turret::request_context& context() noexcept { return ctx; }
};

// The service: upper-cases its input.
struct upper_service {
  using response_type = std::string;
  using permit_type = turret::unit_permit;
  turret::awaitable<turret::result<permit_type>> ready(turret::request_context&) { co_return permit_type{}; }
  turret::awaitable<turret::result<std::string>> call(permit_type, request& req) {
    if (req.slow) {
      asio::steady_timer t(co_await asio::this_coro::executor, 10s);
      auto [ec] = co_await t.async_wait(asio::bind_cancellation_slot(req.ctx.cancel_slot(), asio::as_tuple(asio::use_awaitable)));
      if (ec) co_return ec;
    }
    std::string out = req.text;
    for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    co_return out;
  }
};

// A custom layer: appends a suffix to every successful response.
template <class S>
struct suffix_service {
  using response_type = std::string;
  using permit_type = typename S::permit_type;
  S inner;
  std::string suffix;
  turret::awaitable<turret::result<permit_type>> ready(turret::request_context& ctx) { return inner.ready(ctx); }
  turret::awaitable<turret::result<std::string>> call(permit_type p, auto& req) {
    auto r = co_await inner.call(std::move(p), req);
    if (r) *r += suffix;
    co_return r;
  }
};
struct suffix_layer {
  std::string suffix;
  template <class S>
  suffix_service<S> wrap(S inner) const { return {std::move(inner), suffix}; }
};

int failures = 0;

template <class S>
turret::awaitable<void> check(const char* label, S& svc, std::string text, bool slow, std::string expected) {
  request req;
  req.text = std::move(text);
  req.slow = slow;
  auto r = co_await turret::ready_and_call(svc, req);
  const std::string got = r ? *r : "error: " + r.error().message();
  const bool ok = got == expected;
  if (!ok) ++failures;
  std::cout << label << ": " << got << (ok ? "" : "  <-- expected: " + expected) << "\n";
}

// Serving the pipeline over TCP: one line in, one line out ("slow " prefix: a request that waits 10 s, which the
// pipeline's timeout layer answers). One coroutine per connection, requests answered in order.
using pipeline = turret::any_service<request, std::string>;

turret::awaitable<void> session(asio::ip::tcp::socket sock, pipeline& svc) {
  asio::streambuf in;
  for (;;) {
    auto [ec, n] = co_await asio::async_read_until(sock, in, '\n', asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    std::string line(asio::buffers_begin(in.data()), asio::buffers_begin(in.data()) + static_cast<std::ptrdiff_t>(n) - 1);
    in.consume(n);
    request req;
    req.slow = line.rfind("slow ", 0) == 0;
    req.text = req.slow ? line.substr(5) : line;
    auto r = co_await turret::ready_and_call(svc, req);
    std::string reply = (r ? *r : "-ERR " + r.error().message()) + "\n";
    auto [wec, w] = co_await asio::async_write(sock, asio::buffer(reply), asio::as_tuple(asio::use_awaitable));
    if (wec) co_return;
  }
}

turret::awaitable<void> serve_and_query(pipeline& svc) {
  auto ex = co_await asio::this_coro::executor;
  asio::ip::tcp::acceptor acceptor(ex, {asio::ip::make_address("127.0.0.1"), 0});
  const auto ep = acceptor.local_endpoint();
  asio::co_spawn(
      ex,
      [&]() -> turret::awaitable<void> {
        auto [ec, sock] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
        if (!ec) co_await session(std::move(sock), svc);
      },
      asio::detached);
  asio::ip::tcp::socket client(ex);
  co_await client.async_connect(ep, asio::use_awaitable);
  std::cout << "serving on 127.0.0.1:" << ep.port() << "\n";
  asio::streambuf in;
  for (auto [send, expected] : {std::pair<std::string, std::string>{"over tcp", "OVER TCP?"},
                                {"slow late", "-ERR request timed out"},
                                {"again", "AGAIN?"}}) {
    co_await asio::async_write(client, asio::buffer(send + "\n"), asio::use_awaitable);
    const std::size_t n = co_await asio::async_read_until(client, in, '\n', asio::use_awaitable);
    std::string got(asio::buffers_begin(in.data()), asio::buffers_begin(in.data()) + static_cast<std::ptrdiff_t>(n) - 1);
    in.consume(n);
    const bool ok = got == expected;
    if (!ok) ++failures;
    std::cout << "served: " << got << (ok ? "" : "  <-- expected: " + expected) << "\n";
  }
  client.close();
}

turret::awaitable<void> run() {
  auto stat = turret::service_builder{}
                  .layer(turret::timeout_layer(50ms))
                  .layer(turret::concurrency_limit_layer(8))
                  .layer(suffix_layer{"!"})
                  .service(upper_service{});
  co_await check("static", stat, "hello", false, "HELLO!");
  co_await check("static timeout", stat, "hello", true, "error: request timed out");

  turret::layer_registry<request, std::string> reg;
  turret::register_builtin_layers(reg);
  reg.add("suffix", [](const turret::config_node& e,
                       const turret::layer_context&) -> turret::any_layer<request, std::string> {
    e.reject_unknown_keys({"layer", "text"});
    return suffix_layer{e.get_string("text")};
  });
  auto cfg = turret::load_config_string(
      "pipeline:\n  - {layer: timeout, duration: 50ms}\n  - {layer: concurrency_limit, max: 8}\n"
      "  - {layer: suffix, text: '?'}\n", "consumer.yaml");
  auto dyn = reg.build(cfg.child("pipeline"), turret::any_service<request, std::string>(upper_service{}));
  co_await check("config", dyn, "world", false, "WORLD?");
  co_await check("config timeout", dyn, "world", true, "error: request timed out");

  co_await serve_and_query(dyn);

#ifdef CONSUMER_HAVE_HTTP_CLIENT
  const std::string enc = turret::percent_encode("a b/c");
  if (enc != "a%20b%2Fc") ++failures;
  std::cout << "http_client: " << enc << "\n";
#endif
}

int main() {
  asio::io_context io(1);
  asio::co_spawn(io, run(), [](std::exception_ptr e) {
    if (e) {
      std::cout << "exception\n";
      ++failures;
    }
  });
  io.run();
  std::cout << (failures == 0 ? "consumer: ok" : "consumer: FAILED") << "\n";
  return failures == 0 ? 0 : 1;
}
