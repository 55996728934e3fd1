#pragma once
// auth: authenticates clients (passwords and bearer tokens, stored as SHA-256 hashes in the config) and allows each
// identity the traffic classes of its allow list (turret::traffic_class from request_rate_class(req)).
//
// ```yaml
// - layer: auth
//   identities:
//     - {name: alice, password_sha256: <64 hex digits>, allow: [read, write]}
//     - {name: ops, password_sha256: <hex>, allow: [read, write, admin]}
//   tokens:
//     - {token_sha256: <hex>, identity: svc-a, allow: [read]}
//   anonymous: deny          # deny (default) | {allow: [read]}
// ```
// `allow` lists classes: read, write, admin, pubsub, connection (connection is always allowed, see below). An
// identity named in `identities` and by tokens must have the same allow list in both (one identity, one list).
// `echo -n secret | sha256sum` gives a hash.
//
// # Where the credentials come from
// - RESP: the AUTH command (`AUTH password`, `AUTH user password`) and HELLO's AUTH option (`HELLO 3 AUTH user
//   password`), recognised through request_auth_command(req) (turret/request_traits.hpp; kv::request implements it).
//   `AUTH password` without a user matches a token (the password is the token) or else the identity `default`.
//   A valid AUTH sets ctx.identity for the connection (request_context keeps identity across a connection's
//   requests) and is answered by the layer itself (+OK); a valid HELLO ... AUTH continues inward without its AUTH
//   option, so the service's own HELLO reply follows. Invalid credentials: WRONGPASS; the connection's identity is
//   unchanged (Redis keeps the previous user).
// - HTTP and gRPC: each request's ctx.credentials (the front end sets it from the `Authorization` header / the
//   `authorization` metadata): `Bearer <token>` or `Basic <base64 of user:password>`. A request with credentials is
//   authenticated from them alone, every time (those front ends clear ctx.identity between requests).
//
// # Decisions
// For every request: an authentication command is answered as above. Otherwise the identity (from the request's
// credentials, else the connection's) must exist in the current config (an identity removed by a reload counts as
// not authenticated); anonymous clients are treated by `anonymous`. Requests of class `connection` (PING, ECHO,
// HELLO, QUIT, RESET, SELECT, CLIENT SETNAME, ...) touch only the client's own connection: allowed to every
// authenticated identity whatever its `allow`, and to anonymous clients when `anonymous` allows them anything. A
// client that is not authenticated (anonymous allowed nothing) may send only what request_allowed_before_auth()
// says (the key-value request: Redis's no_auth commands, AUTH, HELLO, QUIT...): PING and SELECT get -NOAUTH, as
// from redis-server with requirepass.
// Rejections are errors of auth_errc, mapped to turret's conditions, which every front end answers by
// turret/error_mapping.hpp: unauthenticated -> 401 with `WWW-Authenticate` (HTTP), UNAUTHENTICATED (gRPC);
// forbidden -> 403, PERMISSION_DENIED. On RESP, request_auth_reply() (kv::request) writes Redis's exact replies
// instead: `-WRONGPASS invalid username-password pair or user is disabled.`, `-NOAUTH Authentication required.`,
// `-NOPERM this user has no permissions to run the '<command>' command`.
//
// # With the store's requirepass
// The layer sits in front of the store: a request it rejects never reaches the store; a request it allows then
// meets the store's own checks. A successful AUTH through the layer also marks the store's session authenticated
// (kv::request's auth_reply): the layer is then the authority and the store's requirepass is not asked. Without an
// auth layer in the pipeline, `CONFIG SET requirepass` and AUTH work exactly as in Redis.
//
// # Non-command requests (POST /admin/reload)
// auth_guard::authorize(ctx, traffic_class::admin) decides for a request that is not sent through a pipeline: the
// HTTP front end sets ctx.credentials and asks the guard of the listener pipeline's auth entry
// (find_auth_guard(pipeline_list, ctx)).
//
// Metrics: turret_auth_rejected_total{pipeline,reason} (reason: unauthenticated, wrong_password, forbidden).
//
// Fast path: try_call_now decides synchronously. An accepted HELLO ... AUTH (which continues inward) is left to
// ready()/call() (nullopt, nothing changed). Setting ctx.identity from the request's own credentials before the
// inner service declines is not a side effect on shared state (call() sets the same again).
#include <turret/error.hpp>
#include <turret/layer_context.hpp>
#include <turret/request_traits.hpp>
#include <turret/service.hpp>

#include <boost/system/error_category.hpp>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace turret {

namespace metrics {
class counter;
}
class config_node;

enum class auth_errc {
  unauthenticated = 1,  ///< no credentials, and anonymous clients may not send this (condition unauthenticated)
  wrong_credentials,    ///< credentials that match no identity or token (condition unauthenticated)
  forbidden,            ///< the identity's allow list lacks the request's class (condition permission_denied)
};

/// The category "turret.auth".
const boost::system::error_category& auth_category() noexcept;
inline error_code make_error_code(auth_errc e) noexcept { return {static_cast<int>(e), auth_category()}; }

}  // namespace turret

template <>
struct boost::system::is_error_code_enum<turret::auth_errc> : std::true_type {};

namespace turret {

using sha256_digest = std::array<std::uint8_t, 32>;
/// SHA-256 of `data`.
sha256_digest sha256(std::string_view data) noexcept;
/// Compares every byte whatever the first difference (no timing leak of where they differ).
bool digest_equal(const sha256_digest& a, const sha256_digest& b) noexcept;

/// The bit of a traffic class in allow masks.
constexpr std::uint32_t class_bit(traffic_class c) noexcept { return 1u << static_cast<unsigned>(c); }

/// Immutable configuration.
struct auth_config {
  struct identity {
    std::string name;
    sha256_digest password_sha256{};
    std::uint32_t allow = 0;  ///< class_bit()s
  };
  struct token {
    sha256_digest token_sha256{};
    std::string identity;
    std::uint32_t allow = 0;
  };
  std::vector<identity> identities;
  std::vector<token> tokens;
  std::uint32_t anonymous_allow = 0;  ///< deny: 0 (connection requests are allowed anyway)
};

/// Parses the entry above (unknown keys rejected; hashes are 64 hex digits; at least one identity or token).
/// Throws config_error.
auth_config parse_auth_config(const config_node& entry);

/// The decisions of one auth configuration, usable without a pipeline (POST /admin/reload). Thread-safe, immutable.
class auth_guard {
 public:
  auth_guard(auth_config cfg, const layer_context& ctx = {});

  /// An identity known to the config, with its allow list.
  struct principal {
    std::string name;
    std::uint32_t allow = 0;
  };

  /// `user`/`password` of an authentication command (user empty: a token, else the identity "default").
  const principal* login(std::string_view user, std::string_view password) const noexcept;
  /// The principal of `Bearer <token>` / `Basic <base64 user:password>`; null when they match none or are malformed.
  const principal* from_credentials(std::string_view credentials) const noexcept;
  /// The principal called `name`; null when the config has none.
  const principal* find(std::string_view name) const noexcept;

  /// May a request of class `cls` with this context go on? Authenticates from ctx.credentials when present (and
  /// sets ctx.identity), else from ctx.identity, else anonymous. `before_auth`: the request is one a client that
  /// has not authenticated may send (request_allowed_before_auth). An error of auth_errc otherwise (counted).
  error_code authorize(request_context& ctx, traffic_class cls, bool before_auth = false) const;

  const auth_config& config() const noexcept { return cfg_; }

  void count(auth_errc e) const noexcept;

 private:
  struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  auth_config cfg_;
  std::unordered_map<std::string, principal, string_hash, std::equal_to<>> principals_;
  std::unordered_map<std::string, sha256_digest, string_hash, std::equal_to<>> passwords_;
  std::vector<std::pair<sha256_digest, const principal*>> tokens_;
  std::array<metrics::counter*, 4> rejected_{};  ///< by auth_errc value
};

/// The guard of the first `layer: auth` entry of a pipeline list (YAML as in the config), null when it has none.
/// Throws config_error for an invalid auth entry.
std::shared_ptr<const auth_guard> find_auth_guard(const config_node& pipeline_list, const layer_context& ctx = {});

template <class S>
class auth_service {
 public:
  using response_type = typename S::response_type;
  using permit_type = typename S::permit_type;  // decided in call(): ready() cannot see the request

  auth_service(S inner, std::shared_ptr<const auth_guard> guard) : inner_(std::move(inner)), guard_(std::move(guard)) {}

  S& inner() noexcept { return inner_; }
  const S& inner() const noexcept { return inner_; }

  awaitable<result<permit_type>> ready(request_context& ctx) { return inner_.ready(ctx); }

  template <class Request>
    requires contextual_request<Request>
  awaitable<result<response_type>> call(permit_type p, Request& req) {
    if (auto answer = decide(req)) co_return std::move(*answer);
    co_return co_await inner_.call(std::move(p), req);
  }

  template <class Request>
    requires immediate_service<S, Request> && contextual_request<Request>
  std::optional<result<response_type>> try_call_now(Request& req) {
    if (auto cred = request_auth_command(req)) {
      // An accepted HELLO ... AUTH goes inward: leave it to ready()/call(), which decide again (nothing changed).
      if (cred->continues && guard_->login(cred->user, cred->password) != nullptr) return std::nullopt;
    }
    if (auto answer = decide(req)) return answer;
    return inner_.try_call_now(req);
  }

 private:
  /// The layer's answer (a response, or an error), or nullopt: go inward.
  template <class Request>
  std::optional<result<response_type>> decide(Request& req) {
    request_context& ctx = req.context();
    const auth_guard& g = *guard_;
    if (auto cred = request_auth_command(req)) {
      const auth_guard::principal* who = g.login(cred->user, cred->password);
      if (who == nullptr) {
        g.count(auth_errc::wrong_credentials);
        return reply(req, auth_verdict::wrong_password, {}, auth_errc::wrong_credentials);
      }
      ctx.identity = who->name;
      if (auto r = request_auth_reply<response_type>(req, auth_verdict::accepted, who->name))
        return result<response_type>(std::move(*r));
      return std::nullopt;  // continues inward (HELLO ... AUTH)
    }
    if (error_code ec = g.authorize(ctx, request_rate_class(req), request_allowed_before_auth(req))) {
      const auth_errc e = static_cast<auth_errc>(ec.value());
      return reply(req, e == auth_errc::forbidden ? auth_verdict::forbidden : auth_verdict::unauthenticated, ctx.identity, e);
    }
    return std::nullopt;
  }

  template <class Request>
  std::optional<result<response_type>> reply(Request& req, auth_verdict v, std::string_view identity, auth_errc e) {
    if (auto r = request_auth_reply<response_type>(req, v, identity)) return result<response_type>(std::move(*r));
    return result<response_type>(make_error_code(e));
  }

  S inner_;
  std::shared_ptr<const auth_guard> guard_;
};

class auth_layer {
 public:
  explicit auth_layer(auth_config cfg, const layer_context& ctx = {})
      : guard_(std::make_shared<const auth_guard>(std::move(cfg), ctx)) {}

  template <class S>
  auth_service<S> wrap(S inner) const {
    return auth_service<S>(std::move(inner), guard_);
  }

  const auth_config& config() const noexcept { return guard_->config(); }
  const std::shared_ptr<const auth_guard>& guard() const noexcept { return guard_; }

 private:
  std::shared_ptr<const auth_guard> guard_;
};

}  // namespace turret
