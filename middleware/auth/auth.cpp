#include <turret/middleware/auth.hpp>
#include <turret/ascii.hpp>
#include <turret/config.hpp>
#include <turret/metrics.hpp>

#include <string>

namespace turret {

namespace {

class auth_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "turret.auth"; }
  std::string message(int ev) const override {
    switch (static_cast<auth_errc>(ev)) {
      case auth_errc::unauthenticated: return "authentication required";
      case auth_errc::wrong_credentials: return "invalid username-password pair or token";
      case auth_errc::forbidden: return "this identity may not send this request";
    }
    return "unknown auth error";
  }
  boost::system::error_condition default_error_condition(int ev) const noexcept override {
    switch (static_cast<auth_errc>(ev)) {
      case auth_errc::unauthenticated:
      case auth_errc::wrong_credentials: return make_error_condition(errc::unauthenticated);
      case auth_errc::forbidden: return make_error_condition(errc::permission_denied);
    }
    return {ev, *this};
  }
};

constexpr std::pair<std::string_view, traffic_class> class_names[] = {
    {"read", traffic_class::read},     {"write", traffic_class::write},
    {"admin", traffic_class::admin},   {"pubsub", traffic_class::pubsub},
    {"connection", traffic_class::connection},
};

std::uint32_t parse_allow(const config_node& list) {
  if (!list.is_sequence()) list.fail("expected a list of classes, e.g. [read, write]");
  std::uint32_t mask = 0;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const config_node c = list.at(i);
    const std::string name = c.as_string();
    bool found = false;
    for (const auto& [n, v] : class_names) {
      if (n == name) {
        mask |= class_bit(v);
        found = true;
      }
    }
    if (!found) c.fail("unknown class '" + name + "' (expected read, write, admin, pubsub or connection)");
  }
  return mask;
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

sha256_digest parse_digest(const config_node& n) {
  const std::string s = n.as_string();
  sha256_digest d{};
  bool ok = s.size() == 64;
  for (std::size_t i = 0; ok && i < 32; ++i) {
    const int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
    if (hi < 0 || lo < 0) ok = false;
    else d[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  if (!ok) n.fail("expected a SHA-256 hash: 64 hexadecimal digits (e.g. from `echo -n secret | sha256sum`)");
  return d;
}

/// Standard base64 (RFC 4648), padding optional; nullopt on any other character.
std::optional<std::string> base64_decode(std::string_view in) {
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (char ch : in) {
    int v;
    if (ch >= 'A' && ch <= 'Z') v = ch - 'A';
    else if (ch >= 'a' && ch <= 'z') v = ch - 'a' + 26;
    else if (ch >= '0' && ch <= '9') v = ch - '0' + 52;
    else if (ch == '+') v = 62;
    else if (ch == '/') v = 63;
    else if (ch == '=') break;
    else return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

/// The rest of `s` when it starts with `scheme` and a space (scheme case-insensitive, RFC 9110 11.1).
std::optional<std::string_view> after_scheme(std::string_view s, std::string_view scheme) {
  if (s.size() <= scheme.size() || !iequals(s.substr(0, scheme.size()), scheme) || s[scheme.size()] != ' ')
    return std::nullopt;
  s.remove_prefix(scheme.size());
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

}  // namespace

const boost::system::error_category& auth_category() noexcept {
  static const auth_category_impl instance;
  return instance;
}

auth_config parse_auth_config(const config_node& entry) {
  entry.reject_unknown_keys({"layer", "identities", "tokens", "anonymous"});
  auth_config cfg;
  std::unordered_map<std::string, std::pair<std::uint32_t, std::string>> seen;  // name -> allow, where
  auto remember = [&](const config_node& at, const std::string& name, std::uint32_t allow) {
    auto [it, inserted] = seen.emplace(name, std::make_pair(allow, at.path()));
    if (!inserted && it->second.first != allow)
      at.fail("identity '" + name + "' has another allow list at " + it->second.second + " (one identity, one list)");
  };
  if (entry.has("identities")) {
    const config_node list = entry.child("identities");
    if (!list.is_sequence()) list.fail("expected a list of {name, password_sha256, allow}");
    for (std::size_t i = 0; i < list.size(); ++i) {
      const config_node e = list.at(i);
      if (!e.is_map()) e.fail("expected a mapping {name, password_sha256, allow}");
      e.reject_unknown_keys({"name", "password_sha256", "allow"});
      auth_config::identity id;
      const config_node n = e.required("name");
      id.name = n.as_string();
      if (id.name.empty()) n.fail("name must not be empty");
      for (const auto& other : cfg.identities)
        if (other.name == id.name) n.fail("identity '" + id.name + "' defined twice");
      id.password_sha256 = parse_digest(e.required("password_sha256"));
      id.allow = parse_allow(e.required("allow"));
      remember(e.child("allow"), id.name, id.allow);
      cfg.identities.push_back(std::move(id));
    }
  }
  if (entry.has("tokens")) {
    const config_node list = entry.child("tokens");
    if (!list.is_sequence()) list.fail("expected a list of {token_sha256, identity, allow}");
    for (std::size_t i = 0; i < list.size(); ++i) {
      const config_node e = list.at(i);
      if (!e.is_map()) e.fail("expected a mapping {token_sha256, identity, allow}");
      e.reject_unknown_keys({"token_sha256", "identity", "allow"});
      auth_config::token t;
      t.token_sha256 = parse_digest(e.required("token_sha256"));
      const config_node n = e.required("identity");
      t.identity = n.as_string();
      if (t.identity.empty()) n.fail("identity must not be empty");
      t.allow = parse_allow(e.required("allow"));
      remember(e.child("allow"), t.identity, t.allow);
      cfg.tokens.push_back(std::move(t));
    }
  }
  if (cfg.identities.empty() && cfg.tokens.empty())
    entry.fail("an auth layer needs 'identities' and/or 'tokens'");
  if (entry.has("anonymous")) {
    const config_node a = entry.child("anonymous");
    if (a.is_scalar() && a.as_string() == "deny") {
      cfg.anonymous_allow = 0;
    } else if (a.is_map()) {
      a.reject_unknown_keys({"allow"});
      cfg.anonymous_allow = parse_allow(a.required("allow"));
    } else {
      a.fail("expected deny or {allow: [classes]}");
    }
  }
  return cfg;
}

auth_guard::auth_guard(auth_config cfg, const layer_context& ctx) : cfg_(std::move(cfg)) {
  for (const auto& id : cfg_.identities) {
    principals_.emplace(id.name, principal{id.name, id.allow});
    passwords_.emplace(id.name, id.password_sha256);
  }
  for (const auto& t : cfg_.tokens) principals_.emplace(t.identity, principal{t.identity, t.allow});
  for (const auto& t : cfg_.tokens) tokens_.emplace_back(t.token_sha256, &principals_.find(t.identity)->second);
  auto& family = ctx.metrics().counter("turret_auth_rejected_total",
                                       "Requests rejected by auth layers (reason: unauthenticated, wrong_password, "
                                       "forbidden)",
                                       {"pipeline", "reason"});
  rejected_[static_cast<std::size_t>(auth_errc::unauthenticated)] = &family.with({ctx.pipeline_name, "unauthenticated"});
  rejected_[static_cast<std::size_t>(auth_errc::wrong_credentials)] = &family.with({ctx.pipeline_name, "wrong_password"});
  rejected_[static_cast<std::size_t>(auth_errc::forbidden)] = &family.with({ctx.pipeline_name, "forbidden"});
}

void auth_guard::count(auth_errc e) const noexcept {
  if (auto* c = rejected_[static_cast<std::size_t>(e)]) c->inc();
}

const auth_guard::principal* auth_guard::find(std::string_view name) const noexcept {
  auto it = principals_.find(name);
  return it == principals_.end() ? nullptr : &it->second;
}

const auth_guard::principal* auth_guard::login(std::string_view user, std::string_view password) const noexcept {
  const sha256_digest h = sha256(password);
  if (user.empty()) {
    const principal* match = nullptr;
    for (const auto& [digest, who] : tokens_)  // every token compared: the time does not tell which matched
      if (digest_equal(digest, h) && match == nullptr) match = who;
    if (match != nullptr) return match;
    user = "default";
  }
  auto it = passwords_.find(user);
  if (it == passwords_.end()) return nullptr;
  return digest_equal(it->second, h) ? find(user) : nullptr;
}

const auth_guard::principal* auth_guard::from_credentials(std::string_view credentials) const noexcept {
  if (auto token = after_scheme(credentials, "Bearer")) {
    if (token->empty()) return nullptr;
    const sha256_digest h = sha256(*token);
    const principal* match = nullptr;
    for (const auto& [digest, who] : tokens_)
      if (digest_equal(digest, h) && match == nullptr) match = who;
    return match;
  }
  if (auto b64 = after_scheme(credentials, "Basic")) {
    std::optional<std::string> pair;
    try {
      pair = base64_decode(*b64);
    } catch (...) {
      return nullptr;
    }
    if (!pair) return nullptr;
    const auto colon = pair->find(':');
    if (colon == std::string::npos || colon == 0) return nullptr;
    return login(std::string_view(*pair).substr(0, colon), std::string_view(*pair).substr(colon + 1));
  }
  return nullptr;
}

error_code auth_guard::authorize(request_context& ctx, traffic_class cls, bool before_auth) const {
  const principal* who = nullptr;
  if (!ctx.credentials.empty()) {
    who = from_credentials(ctx.credentials);
    if (who == nullptr) {
      count(auth_errc::wrong_credentials);
      return auth_errc::wrong_credentials;
    }
    if (ctx.identity != who->name) ctx.identity = who->name;
  } else if (!ctx.identity.empty()) {
    who = find(ctx.identity);
  }
  if (who == nullptr) {
    if (before_auth || (cfg_.anonymous_allow & class_bit(cls))) return {};
    // An anonymous client allowed anything is a client like any other (Redis's default user without a password).
    if (cls == traffic_class::connection && cfg_.anonymous_allow != 0) return {};
    count(auth_errc::unauthenticated);
    return auth_errc::unauthenticated;
  }
  if (cls == traffic_class::connection || (who->allow & class_bit(cls))) return {};
  count(auth_errc::forbidden);
  return auth_errc::forbidden;
}

std::shared_ptr<const auth_guard> find_auth_guard(const config_node& pipeline_list, const layer_context& ctx) {
  if (!pipeline_list.is_sequence()) return nullptr;
  for (std::size_t i = 0; i < pipeline_list.size(); ++i) {
    const config_node e = pipeline_list.at(i);
    if (e.is_map() && e.has("layer") && e.child("layer").as_string() == "auth")
      return std::make_shared<const auth_guard>(parse_auth_config(e), ctx);
  }
  return nullptr;
}

}  // namespace turret
