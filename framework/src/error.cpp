#include <turret/error.hpp>
#include <turret/error_mapping.hpp>

#include <boost/system/errc.hpp>
#include <boost/system/generic_category.hpp>

#include <string>

namespace turret {

namespace {

/// The turret condition of a generic (errno) condition, if it has one.
std::optional<errc> from_generic(int ev) noexcept {
  using boost::system::errc::errc_t;
  switch (static_cast<errc_t>(ev)) {
    case errc_t::operation_canceled: return errc::cancelled;
    case errc_t::timed_out: return errc::timed_out;
    case errc_t::resource_unavailable_try_again:
    case errc_t::no_buffer_space:
    case errc_t::too_many_files_open:
    case errc_t::too_many_files_open_in_system:
    case errc_t::device_or_resource_busy:
    case errc_t::not_enough_memory: return errc::overloaded;
    case errc_t::connection_refused:
    case errc_t::connection_reset:
    case errc_t::connection_aborted:
    case errc_t::host_unreachable:
    case errc_t::network_unreachable:
    case errc_t::network_down:
    case errc_t::not_connected:
    case errc_t::broken_pipe: return errc::unavailable;
    case errc_t::permission_denied:
    case errc_t::operation_not_permitted: return errc::permission_denied;
    case errc_t::invalid_argument:
    case errc_t::message_size: return errc::invalid_argument;
    default: return std::nullopt;
  }
}

class condition_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "turret"; }

  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::overloaded: return "overloaded";
      case errc::unavailable: return "unavailable";
      case errc::timed_out: return "timed out";
      case errc::cancelled: return "cancelled";
      case errc::unauthenticated: return "unauthenticated";
      case errc::permission_denied: return "permission denied";
      case errc::invalid_argument: return "invalid argument";
      case errc::internal: return "internal error";
    }
    return "unknown turret condition";
  }

  /// `code == condition` for a turret condition: the code's own default condition when it is a turret one, else
  /// the generic classification; `internal` also holds for a code of no known condition.
  bool equivalent(const error_code& code, int condition) const noexcept override {
    if (!code) return false;
    const auto c = classify(code);
    return c && static_cast<int>(*c) == condition;
  }
};

const condition_category_impl& category_instance() noexcept {
  static const condition_category_impl instance;
  return instance;
}

// The table of error_mapping.hpp, in errc order.
constexpr condition_mapping table[] = {
    {errc::overloaded, "BUSY", "overloaded", true, 429, "too_many_requests", 1, grpc_code::resource_exhausted},
    {errc::unavailable, "ERR", "unavailable", true, 503, "unavailable", 1, grpc_code::unavailable},
    {errc::timed_out, "ERR", "request timed out", false, 504, "timeout", 0, grpc_code::deadline_exceeded},
    {errc::cancelled, "ERR", "request cancelled", false, 503, "cancelled", 0, grpc_code::cancelled},
    {errc::unauthenticated, "NOAUTH", "Authentication required.", false, 401, "unauthorized", 0,
     grpc_code::unauthenticated},
    {errc::permission_denied, "NOPERM", "", true, 403, "forbidden", 0, grpc_code::permission_denied},
    {errc::invalid_argument, "ERR", "invalid argument", true, 400, "bad_request", 0, grpc_code::invalid_argument},
    {errc::internal, "ERR", "", true, 500, "internal", 0, grpc_code::internal},
};
static_assert(std::size(table) == std::size(all_conditions));

void single_line(std::string& s) noexcept {
  for (char& c : s) {
    if (c == '\r' || c == '\n') c = ' ';
  }
}

/// classify() for an error (never nullopt).
errc condition_of(const error_code& ec, bool deadline_passed) noexcept {
  return classify(ec, deadline_passed).value_or(errc::internal);
}

}  // namespace

const boost::system::error_category& condition_category() noexcept { return category_instance(); }

std::string_view to_string(errc e) noexcept {
  switch (e) {
    case errc::overloaded: return "overloaded";
    case errc::unavailable: return "unavailable";
    case errc::timed_out: return "timed_out";
    case errc::cancelled: return "cancelled";
    case errc::unauthenticated: return "unauthenticated";
    case errc::permission_denied: return "permission_denied";
    case errc::invalid_argument: return "invalid_argument";
    case errc::internal: return "internal";
  }
  return "internal";
}

std::optional<errc> classify(const error_code& ec, bool deadline_passed) noexcept {
  if (!ec) return std::nullopt;
  errc c = errc::internal;
  const boost::system::error_condition dc = ec.default_error_condition();
  if (dc.category() == category_instance()) {
    const int v = dc.value();
    if (v >= static_cast<int>(errc::overloaded) && v <= static_cast<int>(errc::internal)) c = static_cast<errc>(v);
  } else if (dc.category() == boost::system::generic_category()) {
    c = from_generic(dc.value()).value_or(errc::internal);
  }
  if (c == errc::cancelled && deadline_passed) c = errc::timed_out;
  return c;
}

const condition_mapping& mapping_of(errc c) noexcept {
  const auto i = static_cast<std::size_t>(c) - 1;
  return i < std::size(table) ? table[i] : table[std::size(table) - 1];
}

std::string error_message(const error_code& ec, bool deadline_passed) {
  const errc c = condition_of(ec, deadline_passed);
  std::string msg;
  if (c == errc::timed_out && deadline_passed && classify(ec) == errc::cancelled) {
    msg = "request timed out";
  } else if (c == errc::internal) {
    msg = ec.category().name();
    msg += ": ";
    msg += ec.message();
  } else {
    msg = ec.message();
  }
  single_line(msg);
  return msg;
}

std::string resp_error(const error_code& ec, bool deadline_passed) {
  const condition_mapping& m = mapping_of(condition_of(ec, deadline_passed));
  std::string out(m.resp_code);
  out += ' ';
  out += m.resp_text;
  if (m.resp_message) {
    if (!m.resp_text.empty()) out += ": ";
    // An internal error shows the layer's own message (Redis style: "ERR <message>"); the category is in the logs.
    std::string msg = ec.message();
    single_line(msg);
    out += msg;
  }
  return out;
}

http_error to_http_error(const error_code& ec, bool deadline_passed) {
  const condition_mapping& m = mapping_of(condition_of(ec, deadline_passed));
  int retry_after = m.retry_after;
  if (retry_after > 0) {
    if (const auto* c = dynamic_cast<const retry_after_category*>(&ec.category())) {
      const int hint = c->retry_after(ec.value());
      if (hint > 0) retry_after = hint;
    }
  }
  return http_error{m.http_status, m.http_code, error_message(ec, deadline_passed), retry_after};
}

grpc_error to_grpc_error(const error_code& ec, bool deadline_passed) {
  const condition_mapping& m = mapping_of(condition_of(ec, deadline_passed));
  return grpc_error{m.grpc_status, error_message(ec, deadline_passed)};
}

}  // namespace turret
