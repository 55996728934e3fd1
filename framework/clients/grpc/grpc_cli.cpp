// turret-cli --protocol grpc: redis-cli style commands mapped to turret.kv.v1.KV RPCs.
#include <turret/clients/grpc_client.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <exception>
#include <ostream>

namespace turret::clients {

namespace asio = boost::asio;

namespace {

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

bool to_int(const std::string& s, long long& v) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size();
}

struct printer {
  std::ostream& out;
  std::ostream& err;
  // redis-cli's output when stdout is not a terminal: bulk strings raw, nil as an empty line, integers bare.
  void bulk(const std::optional<std::string>& v) { out << (v ? *v : std::string()) << '\n'; }
  void integer(long long v) { out << v << '\n'; }
  void status(std::string_view s) { out << s << '\n'; }
  int error(const error_code& ec, const std::string& msg = {}) {
    out << "(error) " << ec.message();
    if (!msg.empty()) out << ": " << msg;
    out << '\n';
    return 1;
  }
};

awaitable<int> run(grpc_kv_client& kv, std::vector<std::string> a, printer& p) {
  const std::string cmd = upper(a[0]);
  auto arity = [&](std::size_t min) { return a.size() >= min; };
  auto usage = [&]() -> int {
    p.err << "turret-cli: wrong arguments for '" << a[0] << "' over gRPC\n";
    return 2;
  };
  std::vector<std::string_view> rest(a.begin() + 1, a.end());
  if (cmd == "PING") {
    auto r = co_await kv.ttl("\x01turret-cli-ping");
    if (!r && r.error() != grpc_errc::not_found) co_return p.error(r.error());
    p.status("PONG");
    co_return 0;
  }
  if (cmd == "GET") {
    if (a.size() != 2) co_return usage();
    auto r = co_await kv.get(a[1]);
    if (!r) co_return p.error(r.error());
    p.bulk(*r);
    co_return 0;
  }
  if (cmd == "SET") {
    if (!arity(3)) co_return usage();
    set_options s;
    for (std::size_t i = 3; i < a.size(); ++i) {
      const std::string o = upper(a[i]);
      long long n = 0;
      if ((o == "EX" || o == "PX") && i + 1 < a.size() && to_int(a[i + 1], n) && n > 0) {
        s.ttl = std::chrono::milliseconds(o == "EX" ? n * 1000 : n);
        ++i;
      } else if (o == "NX") {
        s.condition = set_condition::if_not_exists;
      } else if (o == "XX") {
        s.condition = set_condition::if_exists;
      } else if (o == "KEEPTTL") {
        s.keep_ttl = true;
      } else if (o == "GET") {
        s.return_previous = true;
      } else {
        co_return usage();
      }
    }
    auto r = co_await kv.set(a[1], a[2], s);
    if (!r) {
      if (r.error() == grpc_errc::failed_precondition) {
        p.bulk(std::nullopt);
        co_return 0;
      }
      co_return p.error(r.error());
    }
    if (s.return_previous) p.bulk(*r);
    else p.status("OK");
    co_return 0;
  }
  if (cmd == "DEL") {
    if (!arity(2)) co_return usage();
    auto r = co_await kv.del(rest);
    if (!r) co_return p.error(r.error());
    p.integer(*r);
    co_return 0;
  }
  if (cmd == "MGET") {
    if (!arity(2)) co_return usage();
    auto r = co_await kv.mget(rest);
    if (!r) co_return p.error(r.error());
    for (const auto& v : *r) p.bulk(v);
    co_return 0;
  }
  if (cmd == "MSET" || cmd == "MSETNX") {
    if (a.size() < 3 || a.size() % 2 == 0) co_return usage();
    std::vector<std::pair<std::string_view, std::string_view>> e;
    for (std::size_t i = 1; i + 1 < a.size(); i += 2) e.emplace_back(a[i], a[i + 1]);
    auto r = co_await kv.mset(e, cmd == "MSETNX");
    if (cmd == "MSETNX") {
      if (!r && r.error() != grpc_errc::failed_precondition) co_return p.error(r.error());
      p.integer(r ? 1 : 0);
      co_return 0;
    }
    if (!r) co_return p.error(r.error());
    p.status("OK");
    co_return 0;
  }
  if (cmd == "INCR" || cmd == "DECR" || cmd == "INCRBY" || cmd == "DECRBY") {
    long long d = 1;
    const bool by = cmd.size() == 6;
    if (a.size() != (by ? 3u : 2u) || (by && !to_int(a[2], d))) co_return usage();
    if (cmd[0] == 'D') d = -d;
    auto r = co_await kv.incr(a[1], d);
    if (!r) co_return p.error(r.error());
    p.integer(*r);
    co_return 0;
  }
  if (cmd == "EXPIRE" || cmd == "PEXPIRE") {
    long long n = 0;
    if (a.size() < 3 || a.size() > 4 || !to_int(a[2], n)) co_return usage();
    expire_condition c = expire_condition::always;
    if (a.size() == 4) {
      const std::string o = upper(a[3]);
      if (o == "NX") c = expire_condition::if_no_ttl;
      else if (o == "XX") c = expire_condition::if_has_ttl;
      else if (o == "GT") c = expire_condition::if_greater;
      else if (o == "LT") c = expire_condition::if_less;
      else co_return usage();
    }
    if (n <= 0 && c == expire_condition::always) {
      // Redis deletes the key at once; the API's TTL must be positive, so this is a Delete.
      const std::string_view key[] = {a[1]};
      auto d = co_await kv.del(key);
      if (!d) co_return p.error(d.error());
      p.integer(*d);
      co_return 0;
    }
    auto r = co_await kv.expire(a[1], std::chrono::milliseconds(cmd[0] == 'E' ? n * 1000 : n), c);
    if (!r && r.error() != grpc_errc::not_found) co_return p.error(r.error());
    p.integer(r && *r ? 1 : 0);
    co_return 0;
  }
  if (cmd == "TTL" || cmd == "PTTL") {
    if (a.size() != 2) co_return usage();
    auto r = co_await kv.ttl(a[1]);
    if (!r) {
      if (r.error() != grpc_errc::not_found) co_return p.error(r.error());
      p.integer(-2);
      co_return 0;
    }
    long long v = *r;
    if (cmd == "TTL" && v > 0) v = (v + 500) / 1000;
    p.integer(v);
    co_return 0;
  }
  if (cmd == "PERSIST") {
    if (a.size() != 2) co_return usage();
    auto r = co_await kv.persist(a[1]);
    if (!r && r.error() != grpc_errc::not_found) co_return p.error(r.error());
    p.integer(r && *r ? 1 : 0);
    co_return 0;
  }
  if (cmd == "PUBLISH") {
    if (a.size() != 3) co_return usage();
    auto r = co_await kv.publish(a[1], a[2]);
    if (!r) co_return p.error(r.error());
    p.integer(*r);
    co_return 0;
  }
  if (cmd == "SCAN" || cmd == "KEYS") {
    if (a.size() > 2) co_return usage();
    const std::string arg = a.size() == 2 ? a[1] : std::string();
    auto r = cmd == "SCAN" ? co_await kv.scan(arg) : co_await kv.scan({}, arg == "*" ? std::string() : arg);
    if (!r) co_return p.error(r.error());
    for (const auto& k : *r) p.bulk(k);
    co_return 0;
  }
  if (cmd == "SUBSCRIBE" || cmd == "PSUBSCRIBE") {
    if (!arity(2)) co_return usage();
    std::span<const std::string_view> none;
    auto s = cmd == "SUBSCRIBE" ? co_await kv.subscribe(rest, none) : co_await kv.subscribe(none, rest);
    if (!s) co_return p.error(s.error());
    for (auto n : rest) {
      p.status(cmd == "SUBSCRIBE" ? "subscribe" : "psubscribe");
      p.status(n);
      p.integer(s->count());
    }
    p.out.flush();
    for (;;) {
      auto m = co_await s->next();
      if (!m) co_return p.error(m.error());
      if (m->pattern.empty()) {
        p.status("message");
      } else {
        p.status("pmessage");
        p.status(m->pattern);
      }
      p.status(m->channel);
      p.status(m->payload);
      p.out.flush();
    }
  }
  p.err << "turret-cli: '" << a[0] << "' is not available over gRPC\n";
  co_return 2;
}

}  // namespace

int grpc_cli_run(const std::string& target, const std::vector<std::string>& args, std::ostream& out,
                 std::ostream& err) {
  if (args.empty()) {
    err << "turret-cli: no command\n";
    return 2;
  }
  asio::io_context io(1);
  auto kv = grpc_kv_client::connect(target);
  printer p{out, err};
  int rc = 1;
  asio::co_spawn(io, run(kv, args, p), [&](std::exception_ptr e, int r) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        err << "turret-cli: " << x.what() << '\n';
      }
      rc = 1;
    } else {
      rc = r;
    }
  });
  io.run();
  return rc;
}

}  // namespace turret::clients
