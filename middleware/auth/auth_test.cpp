#include <turret/any_service.hpp>
#include <turret/error_mapping.hpp>
#include <turret/metrics.hpp>
#include <turret/middleware/auth.hpp>
#include <turret/middleware/builtin.hpp>
#include <turret/middleware/testing/layer_harness.hpp>
#include <turret/middleware/testing/mock_service.hpp>

#include <gtest/gtest.h>

#include <vector>

namespace turret {
namespace {

using testing::mock_request;
using testing::mock_service;

std::string hex(const sha256_digest& d) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s;
  for (auto b : d) {
    s.push_back(digits[b >> 4]);
    s.push_back(digits[b & 15]);
  }
  return s;
}

/// A request of a protocol with authentication commands (as RESP): `args` is the command line, `cls` its class;
/// replies are recorded as strings (as the RESP reply sink would write them).
struct cmd_request {
  request_context ctx;
  std::vector<std::string_view> args;
  traffic_class cls = traffic_class::read;
  std::vector<std::string> replies;
  bool resp = true;  ///< answer rejections in protocol (else: the layer's error)
  request_context& context() noexcept { return ctx; }
};
traffic_class rate_class(const cmd_request& r) noexcept { return r.cls; }
std::optional<auth_credentials> auth_command(const cmd_request& r) noexcept {
  if (r.args.size() == 2 && r.args[0] == "AUTH") return auth_credentials{{}, r.args[1], false};
  if (r.args.size() == 3 && r.args[0] == "AUTH") return auth_credentials{r.args[1], r.args[2], false};
  if (r.args.size() == 5 && r.args[0] == "HELLO" && r.args[2] == "AUTH") return auth_credentials{r.args[3], r.args[4], true};
  return std::nullopt;
}
std::optional<std::string> auth_reply(cmd_request& r, auth_verdict v, std::string_view identity) {
  switch (v) {
    case auth_verdict::accepted:
      if (auth_command(r)->continues) return std::nullopt;
      r.replies.push_back("+OK");
      return "+OK";
    case auth_verdict::wrong_password: r.replies.push_back("-WRONGPASS"); break;
    case auth_verdict::unauthenticated: r.replies.push_back("-NOAUTH"); break;
    case auth_verdict::forbidden: r.replies.push_back("-NOPERM " + std::string(identity)); break;
  }
  if (!r.resp) {
    r.replies.pop_back();
    return std::nullopt;
  }
  return r.replies.back();
}

/// A request type that says which requests a client may send before authenticating (as kv::request does: Redis's
/// no_auth commands).
struct strict_request : cmd_request {
  bool no_auth = false;
};
bool allowed_before_auth(const strict_request& r) noexcept { return r.no_auth; }

struct cmd_service {
  using response_type = std::string;
  using permit_type = unit_permit;
  int* calls;
  awaitable<result<unit_permit>> ready(request_context&) { co_return unit_permit{}; }
  awaitable<result<std::string>> call(unit_permit, cmd_request& req) { co_return answer(req); }
  std::optional<result<std::string>> try_call_now(cmd_request& req) {
    if (!req.args.empty() && req.args[0] == "HELLO") return std::nullopt;  // as a core that must suspend
    return result<std::string>(answer(req));
  }
  std::string answer(cmd_request& req) {
    ++*calls;
    return "inner:" + (req.args.empty() ? std::string() : std::string(req.args[0]));
  }
};

struct AuthTest : ::testing::Test, testing::context_harness {
  int calls = 0;

  auth_config make_config(std::uint32_t anonymous = 0) {
    auth_config c;
    c.identities.push_back({"alice", sha256("alice-pw"), class_bit(traffic_class::read) | class_bit(traffic_class::write)});
    c.identities.push_back({"ops", sha256("ops-pw"), class_bit(traffic_class::read) | class_bit(traffic_class::admin)});
    c.identities.push_back({"default", sha256("default-pw"), class_bit(traffic_class::read)});
    c.tokens.push_back({sha256("tok-a"), "svc-a", class_bit(traffic_class::read)});
    c.anonymous_allow = anonymous;
    return c;
  }
  std::uint64_t rejected(std::string_view reason) {
    return reg.counter("turret_auth_rejected_total", "", {"pipeline", "reason"}).with({"p1", reason}).value();
  }

  /// ready_and_call, run to completion.
  template <class S, class R>
  result<std::string> run(S& svc, R& req) {
    std::optional<result<std::string>> out;
    boost::asio::co_spawn(
        io, [&]() -> awaitable<void> { out.emplace(co_await ready_and_call(svc, req)); }, boost::asio::detached);
    io.poll();
    EXPECT_TRUE(out);
    return out ? std::move(*out) : result<std::string>(std::string());
  }
};

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(hex(sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(hex(sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(hex(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(hex(sha256(std::string(1000000, 'a'))), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // Around the padding boundaries (55/56 bytes: one or two final blocks; 64, 119/120).
  const std::pair<int, const char*> xs[] = {
      {55, "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072"},
      {56, "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e"},
      {63, "75220b47218278e656f2013bb8f0c455a25eaf01e86c64924e9d48d89776d6f2"},
      {64, "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c"},
      {65, "9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9"},
      {119, "000b48d4edf0fa7bee3c6236ecd2785baa5db4eeb8bb54341b029e0d9fa5fb0c"},
      {120, "13f05a0b594787f5ecd315edc96141bd3243203d1b7d4f0836f37308b276ba98"}};
  for (const auto& [n, digest] : xs) EXPECT_EQ(hex(sha256(std::string(n, 'x'))), digest) << n;
  EXPECT_TRUE(digest_equal(sha256("a"), sha256("a")));
  EXPECT_FALSE(digest_equal(sha256("a"), sha256("b")));
}

TEST_F(AuthTest, AuthCommandSetsTheConnectionsIdentity) {
  auto svc = auth_layer(make_config(), lctx).wrap(cmd_service{&calls});
  cmd_request req;
  req.args = {"GET", "k"};
  auto r = run(svc, req);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "-NOAUTH");
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(rejected("unauthenticated"), 1u);

  cmd_request login;
  login.args = {"AUTH", "alice", "wrong"};
  EXPECT_EQ(*run(svc, login), "-WRONGPASS");
  EXPECT_EQ(login.ctx.identity, "");
  EXPECT_EQ(rejected("wrong_password"), 1u);
  login.args = {"AUTH", "alice", "alice-pw"};
  EXPECT_EQ(*run(svc, login), "+OK");
  EXPECT_EQ(login.ctx.identity, "alice");
  EXPECT_EQ(calls, 0);  // answered by the layer

  // The connection's next requests carry the identity (request_context keeps it across reset_for_next_request).
  login.ctx.reset_for_next_request();
  login.args = {"SET", "k", "v"};
  login.cls = traffic_class::write;
  EXPECT_EQ(*run(svc, login), "inner:SET");
  login.args = {"CONFIG", "SET"};
  login.cls = traffic_class::admin;
  EXPECT_EQ(*run(svc, login), "-NOPERM alice");
  EXPECT_EQ(rejected("forbidden"), 1u);
  // A wrong AUTH keeps the previous identity (as Redis keeps the previous user).
  login.args = {"AUTH", "ops", "nope"};
  EXPECT_EQ(*run(svc, login), "-WRONGPASS");
  EXPECT_EQ(login.ctx.identity, "alice");
}

TEST_F(AuthTest, SingleArgumentAuthIsATokenOrTheDefaultIdentity) {
  auto svc = auth_layer(make_config(), lctx).wrap(cmd_service{&calls});
  cmd_request req;
  req.args = {"AUTH", "tok-a"};
  EXPECT_EQ(*run(svc, req), "+OK");
  EXPECT_EQ(req.ctx.identity, "svc-a");
  req.args = {"AUTH", "default-pw"};
  EXPECT_EQ(*run(svc, req), "+OK");
  EXPECT_EQ(req.ctx.identity, "default");
  req.args = {"AUTH", "alice-pw"};  // alice's password without her name: the default identity's is asked
  EXPECT_EQ(*run(svc, req), "-WRONGPASS");
}

TEST_F(AuthTest, HelloAuthContinuesInward) {
  auto svc = auth_layer(make_config(), lctx).wrap(cmd_service{&calls});
  cmd_request req;
  req.args = {"HELLO", "3", "AUTH", "ops", "ops-pw"};
  EXPECT_FALSE(svc.try_call_now(req));  // accepted HELLO goes inward: left to ready()/call(), nothing changed
  EXPECT_EQ(req.ctx.identity, "");
  EXPECT_EQ(*run(svc, req), "inner:HELLO");
  EXPECT_EQ(req.ctx.identity, "ops");
  EXPECT_EQ(calls, 1);
  cmd_request bad;
  bad.args = {"HELLO", "3", "AUTH", "ops", "x"};
  auto r = svc.try_call_now(bad);
  ASSERT_TRUE(r && *r);
  EXPECT_EQ(**r, "-WRONGPASS");
  EXPECT_EQ(calls, 1);
}

TEST_F(AuthTest, ConnectionClassIsAlwaysAllowed) {
  auto svc = auth_layer(make_config(), lctx).wrap(cmd_service{&calls});
  cmd_request req;
  req.args = {"PING"};
  req.cls = traffic_class::connection;
  EXPECT_EQ(*run(svc, req), "inner:PING");
}

TEST_F(AuthTest, BeforeAuthOnlyWhatTheRequestTypeAllowsAsRedisDoes) {
  auto svc = auth_layer(make_config(), lctx).wrap(cmd_service{&calls});
  strict_request ping;
  ping.args = {"PING"};
  ping.cls = traffic_class::connection;
  EXPECT_EQ(*run(svc, ping), "-NOAUTH");  // redis-server with requirepass: -NOAUTH to PING before AUTH
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(rejected("unauthenticated"), 1u);
  strict_request quit;
  quit.args = {"QUIT"};
  quit.cls = traffic_class::connection;
  quit.no_auth = true;
  EXPECT_EQ(*run(svc, quit), "inner:QUIT");
  // Authenticated (the connection's context keeps the identity): every connection request goes.
  ping.args = {"AUTH", "alice", "alice-pw"};
  EXPECT_EQ(*run(svc, ping), "+OK");
  ping.args = {"PING"};
  EXPECT_EQ(*run(svc, ping), "inner:PING");
  // Anonymous clients allowed something are clients: PING goes.
  auto open = auth_layer(make_config(class_bit(traffic_class::read)), lctx).wrap(cmd_service{&calls});
  strict_request anon;
  anon.args = {"PING"};
  anon.cls = traffic_class::connection;
  EXPECT_EQ(*run(open, anon), "inner:PING");
}

TEST_F(AuthTest, AnonymousAllowList) {
  auto svc = auth_layer(make_config(class_bit(traffic_class::read)), lctx).wrap(cmd_service{&calls});
  cmd_request req;
  req.args = {"GET", "k"};
  EXPECT_EQ(*run(svc, req), "inner:GET");
  req.args = {"SET", "k", "v"};
  req.cls = traffic_class::write;
  EXPECT_EQ(*run(svc, req), "-NOAUTH");
}

TEST_F(AuthTest, EnvelopeCredentialsWithoutAnAuthBinding) {
  // mock_request has no auth_command/auth_reply: rejections are the layer's errors (HTTP and gRPC's way).
  st->immediate = true;
  auto svc = auth_layer(make_config(), lctx).wrap(mock_service{st});
  static_assert(immediate_service<decltype(svc), mock_request>);
  mock_request req;  // class write (no rate_class): alice may, svc-a may not
  auto r = svc.try_call_now(req);
  ASSERT_TRUE(r && !*r);
  EXPECT_EQ(r->error(), auth_errc::unauthenticated);
  EXPECT_EQ(r->error(), errc::unauthenticated);
  EXPECT_EQ(to_http_error(r->error()).status, 401);
  EXPECT_EQ(to_grpc_error(r->error()).code, grpc_code::unauthenticated);
  EXPECT_EQ(resp_error(r->error()), "NOAUTH Authentication required.");

  req.ctx.credentials = "Bearer tok-a";
  r = svc.try_call_now(req);
  ASSERT_TRUE(r && !*r);
  EXPECT_EQ(r->error(), auth_errc::forbidden);
  EXPECT_EQ(to_http_error(r->error()).status, 403);
  EXPECT_EQ(to_grpc_error(r->error()).code, grpc_code::permission_denied);
  EXPECT_EQ(req.ctx.identity, "svc-a");

  req.ctx.credentials = "Basic YWxpY2U6YWxpY2UtcHc=";  // alice:alice-pw
  r = svc.try_call_now(req);
  ASSERT_TRUE(r && *r);
  EXPECT_EQ(req.ctx.identity, "alice");

  for (std::string_view bad : {"Basic YWxpY2U6d3Jvbmc=", "Bearer nope", "Bearer ", "Digest x", "Basic !!!", "Basic Og=="}) {
    req.ctx.credentials = bad;
    r = svc.try_call_now(req);
    ASSERT_TRUE(r && !*r) << bad;
    EXPECT_EQ(r->error(), auth_errc::wrong_credentials) << bad;
    EXPECT_EQ(to_http_error(r->error()).status, 401);
  }
  req.ctx.credentials = "bearer   tok-a  ";  // scheme in any case, spaces around the token
  req.ctx.identity.clear();
  r = svc.try_call_now(req);
  ASSERT_TRUE(r && !*r);
  EXPECT_EQ(r->error(), auth_errc::forbidden);
  EXPECT_EQ(st->calls, 1);
}

TEST_F(AuthTest, RespStyleRejectionsCanBeErrorsOnOtherProtocols) {
  auto svc = auth_layer(make_config(), lctx).wrap(cmd_service{&calls});
  cmd_request req;
  req.resp = false;
  req.args = {"GET", "k"};
  auto r = run(svc, req);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), errc::unauthenticated);
}

TEST_F(AuthTest, AnIdentityRemovedFromTheConfigIsNoLongerAuthenticated) {
  auto svc = auth_layer(make_config(), lctx).wrap(cmd_service{&calls});
  cmd_request req;
  req.ctx.identity = "mallory";  // e.g. authenticated before a reload removed her
  req.args = {"GET", "k"};
  EXPECT_EQ(*run(svc, req), "-NOAUTH");
}

TEST_F(AuthTest, GuardForNonCommandRequests) {
  auth_guard g(make_config(), lctx);
  request_context ctx;
  EXPECT_EQ(g.authorize(ctx, traffic_class::admin), auth_errc::unauthenticated);
  ctx.credentials = "Basic b3BzOm9wcy1wdw==";  // ops:ops-pw
  EXPECT_FALSE(g.authorize(ctx, traffic_class::admin));
  EXPECT_EQ(ctx.identity, "ops");
  ctx.credentials = "Basic YWxpY2U6YWxpY2UtcHc=";
  EXPECT_EQ(g.authorize(ctx, traffic_class::admin), auth_errc::forbidden);

  auto cfg = load_config_string(
      "pipeline:\n  - layer: timeout\n    duration: 1s\n  - layer: auth\n    identities:\n"
      "      - {name: ops, password_sha256: " + hex(sha256("ops-pw")) + ", allow: [admin]}\n",
      "turret.yaml");
  auto guard = find_auth_guard(cfg.child("pipeline"), lctx);
  ASSERT_TRUE(guard);
  request_context c2;
  c2.credentials = "Basic b3BzOm9wcy1wdw==";
  EXPECT_FALSE(guard->authorize(c2, traffic_class::admin));
  auto none = load_config_string("pipeline:\n  - layer: timeout\n    duration: 1s\n", "turret.yaml");
  EXPECT_FALSE(find_auth_guard(none.child("pipeline"), lctx));
}

TEST_F(AuthTest, FactoryFromYaml) {
  layer_registry<mock_request, int> registry;
  register_builtin_layers(registry);
  const std::string yaml = "pipeline:\n  - layer: auth\n    identities:\n      - {name: alice, password_sha256: " +
                           hex(sha256("alice-pw")) + ", allow: [read, write]}\n    tokens:\n      - {token_sha256: " +
                           hex(sha256("tok")) + ", identity: svc-a, allow: [read]}\n    anonymous: deny\n";
  auto cfg = load_config_string(yaml, "turret.yaml");
  st->immediate = true;
  auto svc = registry.build(cfg.child("pipeline"), any_service<mock_request, int>(mock_service{st}), lctx);
  mock_request req;
  std::optional<result<int>> out;
  start(svc, req, out);
  ASSERT_TRUE(out && !*out);
  EXPECT_EQ(out->error(), errc::unauthenticated);
  mock_request ok;
  ok.ctx.credentials = "Basic YWxpY2U6YWxpY2UtcHc=";
  ok.value = 4;
  std::optional<result<int>> out2;
  start(svc, ok, out2);
  ASSERT_TRUE(out2 && *out2);
  EXPECT_EQ(**out2, 8);

  auto expect_error = [&](const std::string& y, const char* what) {
    EXPECT_EQ(testing::build_error(registry, y, any_service<mock_request, int>(mock_service{st}), lctx), what);
  };
  const std::string h = hex(sha256("x"));
  expect_error("pipeline:\n  - layer: auth\n", "turret.yaml:2:5: pipeline[0]: an auth layer needs 'identities' and/or 'tokens'");
  expect_error("pipeline:\n  - layer: auth\n    identities:\n      - {name: a, password_sha256: abc, allow: [read]}\n",
               "turret.yaml:4:36: pipeline[0].identities[0].password_sha256: expected a SHA-256 hash: 64 hexadecimal "
               "digits (e.g. from `echo -n secret | sha256sum`)");
  expect_error("pipeline:\n  - layer: auth\n    identities:\n      - {name: a, password_sha256: " + h +
                   ", allow: [read, everything]}\n",
               "turret.yaml:4:116: pipeline[0].identities[0].allow[1]: unknown class 'everything' (expected read, "
               "write, admin, pubsub or connection)");
  expect_error("pipeline:\n  - layer: auth\n    identities:\n      - {name: a, password: x, allow: [read]}\n",
               "turret.yaml:4:19: pipeline[0].identities[0].password: unknown key 'password' (allowed: name, "
               "password_sha256, allow)");
  expect_error("pipeline:\n  - layer: auth\n    tokens:\n      - {token_sha256: " + h + ", identity: a, allow: [read]}\n" +
                   "    anonymous: allow\n",
               "turret.yaml:5:16: pipeline[0].anonymous: expected deny or {allow: [classes]}");
  expect_error("pipeline:\n  - layer: auth\n    identities:\n      - {name: a, password_sha256: " + h +
                   ", allow: [read]}\n    tokens:\n      - {token_sha256: " + h + ", identity: a, allow: [write]}\n",
               "turret.yaml:6:110: pipeline[0].tokens[0].allow: identity 'a' has another allow list at "
               "pipeline[0].identities[0].allow (one identity, one list)");
}

}  // namespace
}  // namespace turret
