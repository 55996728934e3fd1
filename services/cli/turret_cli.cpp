// turret-cli: a small command-line client in the spirit of mini-redis-cli / redis-cli.
//
//   turret-cli [--host H] [--port P] [--protocol resp|http|grpc] <command> [args...]
//     get KEY | set KEY VALUE [--expires MS] | del KEY... | publish CHANNEL MESSAGE | ping
//     subscribe CHANNEL... | psubscribe PATTERN...    (prints messages until Ctrl-C)
//     any other command is sent as is (RESP only) and its reply printed like redis-cli.
//
// Output follows redis-cli's interactive format ("OK", "\"value\"", "(nil)", "(integer) 1", "(error) ERR ...").
// Exit status: 0 on success, 1 on a server error reply or a connection failure (message on stderr), 2 on usage errors.
//
// Structure: argument parsing produces a protocol-neutral `cli_request` (normalised command words); one runner per
// protocol executes it. RESP is built in; HTTP and gRPC runners are compiled in when their client libraries exist.
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "turret/resp/client.hpp"

#if __has_include(<turret/clients/http_client.hpp>)
#include <turret/clients/http_client.hpp>
#define TURRET_CLI_HTTP 1
#endif
#if __has_include(<turret/clients/grpc_client.hpp>)
#include <turret/clients/grpc_client.hpp>
#define TURRET_CLI_GRPC 1
#endif

namespace {

namespace asio = boost::asio;
using turret::resp::value;

constexpr const char* usage_text =
    "usage: turret-cli [--host H] [--port P] [--protocol resp|http|grpc] <command> [args...]\n"
    "  get KEY\n"
    "  set KEY VALUE [--expires MS]\n"
    "  del KEY [KEY...]\n"
    "  publish CHANNEL MESSAGE\n"
    "  subscribe CHANNEL [CHANNEL...]     (Ctrl-C to quit)\n"
    "  psubscribe PATTERN [PATTERN...]    (Ctrl-C to quit)\n"
    "  ping\n"
    "  <any other command and arguments>  (resp only)\n";

struct cli_request {
  std::string host = "127.0.0.1";
  std::optional<std::uint16_t> port;
  std::string protocol = "resp";
  std::string name;                  // lower-case command name
  std::vector<std::string> args;     // arguments after the name
  std::optional<long long> expires_ms;
  /// The command as Redis words (e.g. {"SET", k, v, "PX", "100"}); what non-typed runners send.
  std::vector<std::string> words() const {
    std::vector<std::string> w;
    std::string upper = name;
    for (char& c : upper)
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    w.push_back(upper);
    w.insert(w.end(), args.begin(), args.end());
    if (expires_ms) {
      w.push_back("PX");
      w.push_back(std::to_string(*expires_ms));
    }
    return w;
  }
};

int usage(const std::string& why) {
  if (!why.empty()) std::cerr << "turret-cli: " << why << "\n";
  std::cerr << usage_text;
  return 2;
}

bool parse_number(const std::string& s, long long& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtoll(s.c_str(), &end, 10);
  return errno == 0 && end == s.c_str() + s.size();
}

// Returns an exit code >= 0 on a usage error, -1 when `req` is ready.
int parse_args(int argc, char** argv, cli_request& req) {
  int i = 1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    auto take = [&](std::string& dst) {
      if (i + 1 >= argc) return false;
      dst = argv[++i];
      return true;
    };
    if (a == "--help" || a == "-h") {
      std::cout << usage_text;
      return 0;
    } else if (a == "--host" || a == "-H") {
      if (!take(req.host)) return usage("--host needs a value");
    } else if (a == "--port" || a == "-p") {
      std::string v;
      long long p = 0;
      if (!take(v) || !parse_number(v, p) || p <= 0 || p > 65535) return usage("--port needs a port number");
      req.port = static_cast<std::uint16_t>(p);
    } else if (a == "--protocol") {
      if (!take(req.protocol)) return usage("--protocol needs a value");
      if (req.protocol != "resp" && req.protocol != "http" && req.protocol != "grpc")
        return usage("unknown protocol '" + req.protocol + "' (resp, http or grpc)");
    } else {
      break;
    }
  }
  if (i >= argc) return usage("missing command");
  req.name = argv[i++];
  for (char& c : req.name)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (req.name == "set" && (a == "--expires" || a == "--ex")) {
      long long ms = 0;
      if (i + 1 >= argc || !parse_number(argv[i + 1], ms) || ms <= 0)
        return usage("--expires needs a positive number of milliseconds");
      req.expires_ms = ms;
      ++i;
      continue;
    }
    req.args.push_back(std::move(a));
  }
  const auto n = req.args.size();
  if (req.name == "get" && n != 1) return usage("get takes one KEY");
  if (req.name == "set" && n != 2) return usage("set takes KEY VALUE [--expires MS]");
  if (req.name == "del" && n < 1) return usage("del takes at least one KEY");
  if (req.name == "publish" && n != 2) return usage("publish takes CHANNEL MESSAGE");
  if ((req.name == "subscribe" || req.name == "psubscribe") && n < 1)
    return usage(req.name + " takes at least one channel");
  if (req.name == "ping" && n > 1) return usage("ping takes at most one MESSAGE");
  if (!req.port) req.port = req.protocol == "http" ? 8080 : req.protocol == "grpc" ? 50051 : 6379;
  return -1;
}

void print_line(const std::string& s) { std::cout << s << "\n" << std::flush; }

// --- RESP runner -----------------------------------------------------------------------------------------------

asio::awaitable<int> run_resp(cli_request req) {
  auto ex = co_await asio::this_coro::executor;
  auto c = co_await turret::resp::client::connect(ex, req.host, *req.port);
  if (!c) {
    std::cerr << "Could not connect to " << req.host << ":" << *req.port << ": " << c.error().message() << "\n";
    co_return 1;
  }
  auto fail = [&](const turret::error_code& ec) {
    if (ec == turret::resp::client_errc::server_error)
      print_line("(error) " + c->last_error());
    else
      std::cerr << "turret-cli: " << ec.message() << "\n";
    return 1;
  };

  if (req.name == "get") {
    auto r = co_await c->get(req.args[0]);
    if (!r) co_return fail(r.error());
    print_line(*r ? turret::resp::quote_repr(**r) : "(nil)");
    co_return 0;
  }
  if (req.name == "set") {
    std::optional<std::chrono::milliseconds> exp;
    if (req.expires_ms) exp = std::chrono::milliseconds(*req.expires_ms);
    auto r = co_await c->set(req.args[0], req.args[1], exp);
    if (!r) co_return fail(r.error());
    print_line("OK");
    co_return 0;
  }
  if (req.name == "del") {
    std::vector<std::string_view> keys(req.args.begin(), req.args.end());
    auto r = co_await c->del(keys);
    if (!r) co_return fail(r.error());
    print_line("(integer) " + std::to_string(*r));
    co_return 0;
  }
  if (req.name == "publish") {
    auto r = co_await c->publish(req.args[0], req.args[1]);
    if (!r) co_return fail(r.error());
    print_line("(integer) " + std::to_string(*r));
    co_return 0;
  }
  if (req.name == "subscribe" || req.name == "psubscribe") {
    const bool pattern = req.name == "psubscribe";
    // (no co_await inside ?: : g++ 12 miscompiles it)
    turret::result<turret::resp::subscriber> s = turret::error_code(turret::resp::client_errc::not_connected);
    if (pattern)
      s = co_await c->psubscribe(req.args);
    else
      s = co_await c->subscribe(req.args);
    if (!s) co_return fail(s.error());
    print_line("Reading messages... (press Ctrl-C to quit)");
    std::size_t count = 0;
    for (const auto& ch : req.args) {
      ++count;
      print_line("1) \"" + req.name + "\"\n2) " + turret::resp::quote_repr(ch) + "\n3) (integer) " +
                 std::to_string(count));
    }
    for (;;) {
      auto m = co_await s->next_message();
      if (!m) {
        if (m.error() == turret::resp::client_errc::connection_closed) {
          std::cerr << "turret-cli: connection closed by server\n";
          co_return 1;
        }
        co_return fail(m.error());
      }
      std::string out = "1) \"" + m->kind + "\"\n";
      int idx = 2;
      if (m->kind == "pmessage") out += std::to_string(idx++) + ") " + turret::resp::quote_repr(m->pattern) + "\n";
      out += std::to_string(idx++) + ") " + turret::resp::quote_repr(m->channel) + "\n";
      out += std::to_string(idx) + ") " + turret::resp::quote_repr(m->payload);
      print_line(out);
    }
  }
  // ping and any other command: send as is, print like redis-cli.
  auto words = req.words();
  auto r = co_await c->command(words);
  if (!r) co_return fail(r.error());
  print_line(turret::resp::to_display_string(*r));
  co_return r->is_error() ? 1 : 0;
}

int run_resp_main(const cli_request& req) {
  asio::io_context io(1);
  int rc = 1;
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    rc = 0;  // Ctrl-C ends a subscription normally
    io.stop();
  });
  asio::co_spawn(io, run_resp(req), [&](std::exception_ptr e, int r) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        std::cerr << "turret-cli: " << ex.what() << "\n";
      }
      rc = 1;
    } else {
      rc = r;
    }
    signals.cancel();
    io.stop();
  });
  io.run();
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  cli_request req;
  if (int rc = parse_args(argc, argv, req); rc >= 0) return rc;
  if (req.protocol == "resp") return run_resp_main(req);
  if (req.protocol == "http") {
#ifdef TURRET_CLI_HTTP
    auto words = req.words();
    return turret::clients::http_cli_command(req.host, *req.port, std::span<const std::string>(words), std::cout,
                                             std::cerr);
#else
    std::cerr << "turret-cli: this build has no HTTP client\n";
    return 2;
#endif
  }
#ifdef TURRET_CLI_GRPC
  return turret::clients::grpc_cli_run(req.host + ":" + std::to_string(*req.port), req.words(), std::cout, std::cerr);
#else
  std::cerr << "turret-cli: this build has no gRPC client\n";
  return 2;
#endif
}
