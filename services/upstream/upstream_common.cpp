#include "upstream_common.hpp"

#include <turret/ascii.hpp>
#include <turret/kv/command_table.hpp>
#include <turret/kv/hello.hpp>
#include <turret/error.hpp>

#include <charconv>
#include <optional>

namespace turret::upstream {

std::string upper(std::string_view s) {
  std::string u(s);
  for (char& c : u) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
  return u;
}

namespace {

/// The inner service of pipelines whose load_balance takes its endpoints from the provider: never called.
struct provider_only_service {
  using response_type = kv::response;
  using permit_type = unit_permit;
  awaitable<result<permit_type>> ready(request_context&) { co_return permit_type{}; }
  awaitable<result<kv::response>> call(permit_type, kv::request& req) {
    co_return error_reply(req, "ERR no upstream endpoint in this pipeline");
  }
};

}  // namespace

// --- endpoint_service ----------------------------------------------------------------------------------------------

void endpoint_service::notify(const std::shared_ptr<const std::function<void()>>& f, const error_code& ec) {
  if (f && ec == errc::unavailable) (*f)();
}

awaitable<result<endpoint_service::permit_type>> endpoint_service::ready(request_context& ctx) {
  auto r = co_await client_.ready(ctx);
  if (!r) failed(r.error());
  co_return r;
}

std::optional<result<endpoint_service::permit_type>> endpoint_service::try_ready(request_context& ctx) {
  auto r = client_.try_ready(ctx);
  if (r && !*r) failed(r->error());
  return r;
}

awaitable<result<kv::response>> endpoint_service::call(permit_type p, kv::request& req) {
  resp::upstream_request ur{req.ctx, req.args};
  ur.resp3 = req.sess.resp == 3;  // a RESP3 client gets the server's RESP3 bytes
  auto r = co_await client_.call(std::move(p), ur);
  if (!r) {
    failed(r.error());
    co_return r.error();
  }
  kv::response resp;
  if (r->v.is_error()) resp.set_error(r->v.str);
  req.out.raw(r->raw);  // RESP bytes: appended by the RESP front end, parsed into a value tree by the others
  co_return resp;
}

bool endpoint_service::try_start(kv::request& req, completion<kv::response>& done) {
  resp::upstream_request ur{req.ctx, req.args};
  ur.resp3 = req.sess.resp == 3;
  ur.affinity = reinterpret_cast<std::uintptr_t>(&req.sess);
  completion<resp::upstream_reply> writing(
      [out = &req.out, d = std::move(done), f = on_unavailable_](result<resp::upstream_reply> r) mutable {
        if (!r) {
          notify(f, r.error());
          d(r.error());
          return;
        }
        kv::response resp;
        if (r->v.is_error()) resp.set_error(r->v.str);
        out->raw(r->raw);
        d(std::move(resp));
      });
  return client_.try_start(ur, writing);  // always starts
}

// --- requests ------------------------------------------------------------------------------------------------------

kv::response error_reply(kv::request& req, std::string_view text) {
  req.out.error(text);
  kv::response r;
  r.set_error(text);
  return r;
}

const kv::resolved_command& resolved(const kv::command_table& table, kv::request& req,
                                     std::optional<kv::resolved_command>& own) {
  if (req.cmd) return *req.cmd;
  own.emplace(kv::resolve(table, req.args));
  return *own;
}

namespace {

/// Redis's string2ll: an optional '-', then digits without leading zeros, in range.
bool parse_ll(std::string_view s, long long& v) noexcept {
  if (s.empty() || s.size() > 20 || s.front() == '+') return false;
  const std::string_view digits = s.front() == '-' ? s.substr(1) : s;
  if (digits.empty() || (digits.size() > 1 && digits.front() == '0')) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size();
}

/// HELLO [protover [AUTH user pass] [SETNAME name]], with redis-server 7.0's checks and reply. The session's
/// protocol version picks the upstream connections (RESP3: resp::upstream_client's twins). AUTH is refused (the
/// upstream connections are shared).
kv::response hello(kv::request& req, const std::string& mode_name) {
  long long ver = 0;
  std::size_t next = 1;
  if (req.args.size() >= 2) {
    if (!parse_ll(req.args[next++], ver)) return error_reply(req, "ERR Protocol version is not an integer or out of range");
    if (ver < 2 || ver > 3) return error_reply(req, "NOPROTO unsupported protocol version");
  }
  std::optional<std::string_view> name;
  for (std::size_t j = next; j < req.args.size(); ++j) {
    const std::size_t more = req.args.size() - 1 - j;
    if (iequals(req.args[j], "AUTH") && more >= 2) {
      return error_reply(req, "ERR AUTH is not supported in " + mode_name + " mode");
    } else if (iequals(req.args[j], "SETNAME") && more) {
      name = req.args[++j];
    } else {
      const std::string_view a = req.args[j];
      return error_reply(req, "ERR Syntax error in HELLO option '" + std::string(a.substr(0, std::min(a.find('\0'), a.size()))) + "'");
    }
  }
  if (name) {
    for (char c : *name) {
      if (c < '!' || c > '~')
        return error_reply(req, "ERR Client names cannot contain spaces, newlines or special characters.");
    }
    req.sess.name.assign(*name);
  }
  if (ver) req.sess.resp = static_cast<int>(ver);
  // Encoded in the new protocol: the front end's reply builder follows sess.resp.
  kv::hello_reply(req.out, req.sess);
  return {};
}

}  // namespace

std::optional<kv::response> answer_locally(std::string_view family, kv::request& req,
                                           upstream_options::mode_kind mode) {
  const std::string mode_name(to_string(mode));
  if (family == "hello") return hello(req, mode_name);
  if (family == "ping") {
    if (req.args.size() == 1) req.out.simple("PONG");
    else if (req.args.size() == 2) req.out.bulk(req.args[1]);
    else return error_reply(req, "ERR wrong number of arguments for 'ping' command");
    return kv::response{};
  }
  if (family == "echo") {
    if (req.args.size() != 2) return error_reply(req, "ERR wrong number of arguments for 'echo' command");
    req.out.bulk(req.args[1]);
    return kv::response{};
  }
  if (family == "quit") {
    req.out.ok();
    req.sess.close_after_reply.store(true);
    return kv::response{};
  }
  if (family == "select") {
    if (req.args.size() == 2 && req.args[1] == "0") {
      req.out.ok();
      return kv::response{};
    }
    return error_reply(req, "ERR SELECT is not supported in " + mode_name + " mode (only database 0)");
  }
  if (refused_locally(family, mode))
    return error_reply(req, "ERR " + upper(family) + " is not supported in " + mode_name + " mode");
  return std::nullopt;
}

std::optional<kv::response> refuse_connection_closers(kv::request& req) {
  if (req.args.empty() || !(iequals(req.args[0], "post") || iequals(req.args[0], "host:"))) return std::nullopt;
  return error_reply(req, "ERR " + upper(req.args[0]) + " is refused: redis-server closes the connection that sends it");
}

bool refused_locally(std::string_view family, upstream_options::mode_kind mode) noexcept {
  // Connection state (the upstream connections are shared) and server administration: no mode proxies them.
  static constexpr std::string_view refused[] = {
      "ssubscribe", "sunsubscribe", "auth", "client", "config", "debug", "shutdown", "monitor",
      "swapdb", "move", "migrate", "cluster", "reset", "sync", "psync", "replicaof", "slaveof", "failover", "save",
      "bgsave", "bgrewriteaof", "acl", "module", "script", "function", "readonly", "readwrite", "asking", "wait"};
  // What concerns every server: one dataset in replicas mode, not in shard mode.
  static constexpr std::string_view every_server[] = {"flushall", "flushdb", "keys", "scan", "randomkey", "dbsize"};
  for (auto r : refused) {
    if (family == r) return true;
  }
  if (mode != upstream_options::mode_kind::replicas) {
    for (auto r : every_server) {
      if (family == r) return true;
    }
  }
  return false;
}

bool answers_locally(std::string_view family, upstream_options::mode_kind mode) noexcept {
  return family == "hello" || family == "ping" || family == "echo" || family == "quit" || family == "select" ||
         refused_locally(family, mode);
}

bool is_read_command(const kv::command_info& info, std::string_view family) noexcept {
  return (info.flags & kv::cmd_readonly) != 0 && (info.flags & kv::cmd_may_replicate) == 0 && family != "scan";
}

// --- construction --------------------------------------------------------------------------------------------------

resp::upstream_client make_client(const upstream_options::endpoint& e, const upstream_options& opts,
                                  const std::vector<boost::asio::any_io_executor>& executors,
                                  std::vector<std::vector<std::string>> on_connect) {
  resp::upstream_options uo;
  uo.on_connect = std::move(on_connect);
  uo.host = e.host;
  uo.port = e.port;
  uo.connections = opts.connections;
  uo.connect_timeout = opts.connect_timeout;
  return resp::upstream_client(executors, uo);
}

kv::pipeline_service build_pipeline(const upstream_options& opts,
                                    std::vector<lb_endpoint<kv::pipeline_service>> endpoints,
                                    const kv::layer_registry_type& layers, const layer_context& ctx,
                                    const std::string& name, bool implicit_balancer) {
  using provider_type = lb_endpoint_provider<kv::request, kv::response>;
  layer_context c = ctx;
  c.pipeline_name = "upstream/" + name;
  auto provider = std::make_shared<provider_type>();
  provider->has = [](std::string_view set) { return set.empty(); };
  provider->make = [endpoints](std::string_view, kv::pipeline_service) { return endpoints; };
  c.set_extension<provider_type>(provider);

  std::vector<kv::layer_registry_type::layer_type> built;
  bool balanced = false;
  if (!opts.pipeline.is_null()) {
    built = layers.make_all(opts.pipeline, c);
    for (std::size_t i = 0; i < opts.pipeline.size(); ++i) {
      const config_node e = opts.pipeline.at(i);
      balanced = balanced || (e.is_map() && e.has("layer") && e.child("layer").as_string() == "load_balance");
    }
  }
  if (implicit_balancer && !balanced) {
    const config_node lb = load_config_string("{layer: load_balance, policy: p2c}", "<upstream pipeline>");
    built.push_back(layers.make(lb, c));
    balanced = true;
  }
  if (!balanced && built.empty()) return endpoints.front().service;
  kv::pipeline_service inner = balanced ? kv::pipeline_service(provider_only_service{}) : endpoints.front().service;
  return kv::layer_registry_type::wrap_all(built, inner);
}

// --- upstream_backend_base -----------------------------------------------------------------------------------------

std::uint64_t upstream_backend_base::open_session(kv::session& s) {
  s.id = next_id_.fetch_add(1);
  s.authenticated = true;
  clients_open_.fetch_add(1);
  return s.id;
}

void upstream_backend_base::close_session(kv::session&) noexcept { clients_open_.fetch_sub(1); }

kv::backend_summary upstream_backend_base::summary() const {
  kv::backend_summary b;
  b.clients = clients_open_.load();
  return b;
}

awaitable<result<kv::response>> forward_to(kv::pipeline_service& pipeline, kv::request& req) {
  if (auto p = pipeline.try_ready(req.ctx)) {
    if (!*p) return answered(p->error());
    return pipeline.call(std::move(**p), req);
  }
  return ready_and_call(pipeline, req);
}

awaitable<result<kv::response>> answered(result<kv::response> r) { co_return r; }

}  // namespace turret::upstream
