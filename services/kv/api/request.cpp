// kv::request's binding of the auth layer (declared in <turret/kv/request.hpp>).
#include <turret/ascii.hpp>
#include <turret/kv/request.hpp>

#include <string>

namespace turret::kv {

std::optional<auth_credentials> auth_command(const request& r) noexcept {
  const auto& a = r.args;
  if (a.empty()) return std::nullopt;
  if (iequals(a[0], "auth")) {
    if (a.size() == 2) return auth_credentials{{}, a[1], false};
    if (a.size() == 3) return auth_credentials{a[1], a[2], false};
    return std::nullopt;
  }
  if (iequals(a[0], "hello")) {
    // HELLO [protover [AUTH username password] [SETNAME clientname]]: the options as the backend's HELLO reads them.
    for (std::size_t j = 2; j < a.size(); ++j) {
      const std::size_t more = a.size() - 1 - j;
      if (iequals(a[j], "auth") && more >= 2) return auth_credentials{a[j + 1], a[j + 2], true};
      if (!iequals(a[j], "setname") || more < 1) return std::nullopt;  // a syntax error: the backend answers it
      ++j;
    }
  }
  return std::nullopt;
}

std::optional<response> auth_reply(request& r, auth_verdict v, std::string_view identity) {
  response resp;
  switch (v) {
    case auth_verdict::accepted:
      r.sess.authenticated = true;  // the session's own thread (store::auth_required)
      if (auth_command(r) && auth_command(r)->continues) {
        r.sess.auth_checked_by_layer = true;
        return std::nullopt;  // HELLO goes on to the backend, which answers it
      }
      r.out.ok();
      return resp;
    case auth_verdict::wrong_password:
    case auth_verdict::unauthenticated:
    case auth_verdict::forbidden: break;
  }
  if (r.ctx.protocol != "resp") return std::nullopt;
  std::string text;
  if (v == auth_verdict::wrong_password) {
    text = "WRONGPASS invalid username-password pair or user is disabled.";
  } else if (v == auth_verdict::unauthenticated) {
    text = "NOAUTH Authentication required.";
  } else {
    std::string name(request_name(r));
    for (char& ch : name) {
      if (ch == '\r' || ch == '\n') ch = ' ';  // a RESP simple error is one line
    }
    text = "NOPERM this user has no permissions to run the '" + name + "' command";
  }
  r.out.error(text);
  resp.set_error(text);
  return resp;
}

}  // namespace turret::kv
