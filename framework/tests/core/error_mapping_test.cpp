// The one error model (turret/error.hpp) and its protocol mapping (turret/error_mapping.hpp), row by row.
#include <turret/error.hpp>
#include <turret/error_mapping.hpp>

#include <boost/asio/error.hpp>
#include <boost/system/errc.hpp>
#include <boost/system/system_category.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <string>

namespace turret {
namespace {

namespace sys_errc = boost::system::errc;

/// A plugin's category: value 1..8 declare the turret condition of that value; 100 declares the generic
/// ETIMEDOUT; 200 declares nothing (its own condition); 300 has a two-line message.
class plugin_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "acme.plugin"; }
  std::string message(int ev) const override {
    if (ev == 300) return "first line\r\nsecond line";
    return "plugin error " + std::to_string(ev);
  }
  boost::system::error_condition default_error_condition(int ev) const noexcept override {
    if (ev >= 1 && ev <= 8) return make_error_condition(static_cast<errc>(ev));
    if (ev == 100) return sys_errc::make_error_condition(sys_errc::timed_out);
    return {ev, *this};
  }
};
const plugin_category_impl plugin_category;
error_code plugin(int ev) { return {ev, plugin_category}; }

struct row {
  errc condition;
  const char* resp;  // for plugin(condition): "plugin error N" is the message
  int http_status;
  const char* http_code;
  int retry_after;
  int grpc;
};

// The whole table, as documented in error_mapping.hpp.
const row expected[] = {
    {errc::overloaded, "BUSY overloaded: plugin error 1", 429, "too_many_requests", 1, 8},
    {errc::unavailable, "ERR unavailable: plugin error 2", 503, "unavailable", 1, 14},
    {errc::timed_out, "ERR request timed out", 504, "timeout", 0, 4},
    {errc::cancelled, "ERR request cancelled", 503, "cancelled", 0, 1},
    {errc::unauthenticated, "NOAUTH Authentication required.", 401, "unauthorized", 0, 16},
    {errc::permission_denied, "NOPERM plugin error 6", 403, "forbidden", 0, 7},
    {errc::invalid_argument, "ERR invalid argument: plugin error 7", 400, "bad_request", 0, 3},
    {errc::internal, "ERR plugin error 8", 500, "internal", 0, 13},
};

TEST(ErrorModel, EveryConditionHasItsRow) {
  ASSERT_EQ(std::size(expected), std::size(all_conditions));
  for (std::size_t i = 0; i < std::size(expected); ++i) {
    const row& r = expected[i];
    SCOPED_TRACE(std::string(to_string(r.condition)));
    EXPECT_EQ(all_conditions[i], r.condition);
    const error_code ec = plugin(static_cast<int>(r.condition));
    EXPECT_EQ(classify(ec), r.condition);
    EXPECT_EQ(ec, r.condition);  // equivalence through the category's default condition
    for (errc other : all_conditions) {
      if (other != r.condition) {
        EXPECT_NE(ec, other) << to_string(other);
      }
    }
    EXPECT_EQ(resp_error(ec), r.resp);
    const http_error h = to_http_error(ec);
    EXPECT_EQ(h.status, r.http_status);
    EXPECT_EQ(h.code, r.http_code);
    EXPECT_EQ(h.retry_after, r.retry_after);
    const grpc_error g = to_grpc_error(ec);
    EXPECT_EQ(g.code, r.grpc);
    const condition_mapping& m = mapping_of(r.condition);
    EXPECT_EQ(m.condition, r.condition);
    EXPECT_EQ(m.http_status, r.http_status);
    EXPECT_EQ(m.grpc_status, r.grpc);
    // Messages: the layer's own, except an internal error, which names its category.
    const std::string msg = r.condition == errc::internal
                                ? "acme.plugin: plugin error 8"
                                : "plugin error " + std::to_string(static_cast<int>(r.condition));
    EXPECT_EQ(h.message, msg);
    EXPECT_EQ(g.message, msg);
  }
  // gRPC codes are google.rpc.Code's values.
  EXPECT_EQ(grpc_code::resource_exhausted, 8);
  EXPECT_EQ(grpc_code::unavailable, 14);
  EXPECT_EQ(grpc_code::deadline_exceeded, 4);
  EXPECT_EQ(grpc_code::cancelled, 1);
  EXPECT_EQ(grpc_code::unauthenticated, 16);
  EXPECT_EQ(grpc_code::permission_denied, 7);
  EXPECT_EQ(grpc_code::invalid_argument, 3);
  EXPECT_EQ(grpc_code::internal, 13);
}

TEST(ErrorModel, ConditionCategory) {
  EXPECT_STREQ(condition_category().name(), "turret");
  const boost::system::error_condition c = errc::overloaded;
  EXPECT_EQ(c.category(), condition_category());
  EXPECT_EQ(c.message(), "overloaded");
  EXPECT_EQ(to_string(errc::timed_out), "timed_out");
  EXPECT_EQ(to_string(errc::permission_denied), "permission_denied");
}

TEST(ErrorModel, NoErrorHasNoCondition) {
  EXPECT_EQ(classify(error_code()), std::nullopt);
  for (errc c : all_conditions) EXPECT_NE(error_code(), c);
}

TEST(ErrorModel, AsioAndGenericErrors) {
  const error_code aborted = boost::asio::error::operation_aborted;
  EXPECT_EQ(classify(aborted), errc::cancelled);
  EXPECT_EQ(aborted, errc::cancelled);
  EXPECT_EQ(resp_error(aborted), "ERR request cancelled");
  EXPECT_EQ(to_grpc_error(aborted).code, grpc_code::cancelled);
  EXPECT_EQ(to_http_error(aborted).status, 503);

  const std::pair<int, errc> generic[] = {
      {ECANCELED, errc::cancelled},          {ETIMEDOUT, errc::timed_out},
      {EAGAIN, errc::overloaded},            {ENOBUFS, errc::overloaded},
      {EMFILE, errc::overloaded},            {ENFILE, errc::overloaded},
      {EBUSY, errc::overloaded},             {ENOMEM, errc::overloaded},
      {ECONNREFUSED, errc::unavailable},     {ECONNRESET, errc::unavailable},
      {ECONNABORTED, errc::unavailable},     {EHOSTUNREACH, errc::unavailable},
      {ENETUNREACH, errc::unavailable},      {ENETDOWN, errc::unavailable},
      {ENOTCONN, errc::unavailable},         {EPIPE, errc::unavailable},
      {EACCES, errc::permission_denied},     {EPERM, errc::permission_denied},
      {EINVAL, errc::invalid_argument},      {EMSGSIZE, errc::invalid_argument},
      {ENOENT, errc::internal},              {EIO, errc::internal},
  };
  for (const auto& [ev, c] : generic) {
    SCOPED_TRACE(ev);
    // The same errno from the system category (what Asio reports) and the generic one.
    EXPECT_EQ(classify(error_code(ev, boost::system::system_category())), c);
    EXPECT_EQ(classify(error_code(ev, boost::system::generic_category())), c);
    EXPECT_EQ(error_code(ev, boost::system::system_category()), c);
  }
  // Asio's own categories beyond errno: no condition of ours.
  EXPECT_EQ(classify(boost::asio::error::eof), errc::internal);
  EXPECT_EQ(resp_error(boost::asio::error::eof), "ERR End of file");
  EXPECT_EQ(to_http_error(boost::asio::error::eof).message, "asio.misc: End of file");
}

TEST(ErrorModel, PluginCategories) {
  // Declares a generic condition: classified through it.
  EXPECT_EQ(classify(plugin(100)), errc::timed_out);
  EXPECT_EQ(to_http_error(plugin(100)).status, 504);
  // Declares nothing: internal, and the message names the category.
  EXPECT_EQ(classify(plugin(200)), errc::internal);
  EXPECT_EQ(plugin(200), errc::internal);
  EXPECT_EQ(resp_error(plugin(200)), "ERR plugin error 200");
  EXPECT_EQ(to_http_error(plugin(200)).message, "acme.plugin: plugin error 200");
  EXPECT_EQ(to_grpc_error(plugin(200)).code, grpc_code::internal);
  // A RESP simple error is one line.
  EXPECT_EQ(resp_error(plugin(300)), "ERR first line  second line");
  EXPECT_EQ(to_grpc_error(plugin(300)).message, "acme.plugin: first line  second line");
}

TEST(ErrorModel, CancellationAfterTheDeadlineIsATimeout) {
  const error_code aborted = boost::asio::error::operation_aborted;
  EXPECT_EQ(classify(aborted, true), errc::timed_out);
  EXPECT_EQ(resp_error(aborted, true), "ERR request timed out");
  EXPECT_EQ(to_http_error(aborted, true).status, 504);
  EXPECT_EQ(to_http_error(aborted, true).message, "request timed out");
  EXPECT_EQ(to_grpc_error(aborted, true).code, grpc_code::deadline_exceeded);
  EXPECT_EQ(to_grpc_error(aborted, true).message, "request timed out");
  // Other conditions are not affected by the deadline.
  EXPECT_EQ(classify(plugin(1), true), errc::overloaded);
  EXPECT_EQ(classify(plugin(2), true), errc::unavailable);
  EXPECT_EQ(to_grpc_error(plugin(3), true).message, "plugin error 3");
}

}  // namespace
}  // namespace turret
