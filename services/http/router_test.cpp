#include <services/http/http_options.hpp>
#include <services/http/rest_api.hpp>
#include <services/http/router.hpp>

#include <gtest/gtest.h>

#include <stdexcept>

namespace turret::http_frontend {
namespace {

TEST(HttpRouter, PercentDecode) {
  EXPECT_EQ(percent_decode("a%2Fb"), "a/b");
  EXPECT_EQ(percent_decode("%00%ff"), std::string("\0\xff", 2));
  EXPECT_EQ(percent_decode("a+b"), "a+b");
  EXPECT_EQ(percent_decode("a+b", true), "a b");
  EXPECT_FALSE(percent_decode("%"));
  EXPECT_FALSE(percent_decode("%2"));
  EXPECT_FALSE(percent_decode("%zz"));
  EXPECT_EQ(percent_encode(std::string("a/b \xff", 5)), "a%2Fb%20%FF");
  EXPECT_EQ(percent_decode(percent_encode(std::string("\0\1\2k", 4))), std::string("\0\1\2k", 4));
}

TEST(HttpRouter, Query) {
  auto q = parse_query("ttl=30s&nx=true&empty&x=1&x=2&sp=a+b%21");
  ASSERT_TRUE(q.ok);
  EXPECT_EQ(q.get("ttl"), "30s");
  EXPECT_EQ(q.get("nx"), "true");
  EXPECT_EQ(q.get("empty"), "");
  EXPECT_EQ(q.get("x"), "2");
  EXPECT_EQ(q.get("sp"), "a b!");
  EXPECT_FALSE(q.get("missing"));
  EXPECT_FALSE(parse_query("a=%zz").ok);
  auto [p, s] = split_target("/v1/kv/a?b=c");
  EXPECT_EQ(p, "/v1/kv/a");
  EXPECT_EQ(s, "b=c");
}

TEST(HttpRouter, Values) {
  EXPECT_EQ(parse_ttl_ms("30s"), 30000);
  EXPECT_EQ(parse_ttl_ms("30"), 30000);
  EXPECT_EQ(parse_ttl_ms("1500ms"), 1500);
  EXPECT_EQ(parse_ttl_ms("1.5s"), 1500);
  EXPECT_EQ(parse_ttl_ms("2m"), 120000);
  EXPECT_EQ(parse_ttl_ms("1h"), 3600000);
  EXPECT_FALSE(parse_ttl_ms("abc"));
  EXPECT_FALSE(parse_ttl_ms("-1s"));
  EXPECT_FALSE(parse_ttl_ms("10x"));
  EXPECT_EQ(parse_int("-42"), -42);
  EXPECT_EQ(parse_int("+7"), 7);
  EXPECT_FALSE(parse_int("4x"));
  EXPECT_FALSE(parse_int("99999999999999999999"));
  EXPECT_EQ(parse_bool("true"), true);
  EXPECT_EQ(parse_bool(""), true);
  EXPECT_EQ(parse_bool("0"), false);
  EXPECT_FALSE(parse_bool("maybe"));
}

TEST(HttpRouter, Routes) {
  auto m = match(method::get, "/v1/kv/a%2Fb");
  EXPECT_EQ(m.r, route::kv_get);
  EXPECT_EQ(m.param, "a/b");
  EXPECT_EQ(match(method::head, "/v1/kv/x").r, route::kv_get);
  EXPECT_EQ(match(method::put, "/v1/kv/x").r, route::kv_put);
  EXPECT_EQ(match(method::delete_, "/v1/kv/x").r, route::kv_delete);
  EXPECT_EQ(match(method::post, "/v1/kv/x/incr").r, route::kv_incr);
  EXPECT_EQ(match(method::get, "/v1/kv/x/ttl").r, route::ttl_get);
  EXPECT_EQ(match(method::put, "/v1/kv/x/ttl").r, route::ttl_put);
  EXPECT_EQ(match(method::delete_, "/v1/kv/x/ttl").r, route::ttl_delete);
  EXPECT_EQ(match(method::get, "/v1/kv/ttl").param, "ttl");
  EXPECT_EQ(match(method::post, "/v1/kv:mget").r, route::kv_mget);
  EXPECT_EQ(match(method::post, "/v1/kv:mset").r, route::kv_mset);
  EXPECT_EQ(match(method::get, "/v1/kv").r, route::kv_scan);
  EXPECT_EQ(match(method::post, "/v1/publish/news").r, route::publish);
  EXPECT_EQ(match(method::get, "/v1/subscribe/n%2A").param, "n*");
  EXPECT_EQ(match(method::get, "/healthz").r, route::healthz);
  EXPECT_EQ(match(method::get, "/readyz").r, route::readyz);
  EXPECT_EQ(match(method::get, "/metrics").r, route::metrics);
  EXPECT_EQ(match(method::get, "/v1/openapi.json").r, route::openapi);

  EXPECT_EQ(match(method::get, "/v2/kv/x").r, route::not_found);
  EXPECT_EQ(match(method::get, "/v1/kv/x/y").r, route::not_found);
  EXPECT_EQ(match(method::get, "/v1/publish/a/b").r, route::not_found);
  auto na = match(method::post, "/v1/kv/x");
  EXPECT_EQ(na.r, route::method_not_allowed);
  EXPECT_EQ(na.allow, "GET, HEAD, PUT, DELETE");
  EXPECT_EQ(match(method::get, "/v1/kv:mget").r, route::method_not_allowed);
  EXPECT_EQ(match(method::other, "/healthz").r, route::method_not_allowed);
  EXPECT_EQ(match(method::get, "/v1/kv/%zz").r, route::bad_request);
  EXPECT_EQ(match(method::get, "/v1/kv/").r, route::bad_request);
  EXPECT_EQ(match(method::get, "/v1/kv/").error, "empty key");
  EXPECT_EQ(match(method::put, "/v1/kv//ttl").error, "empty key");
  EXPECT_EQ(match(method::post, "/v1/publish/").error, "empty channel");
  EXPECT_EQ(key_error(""), "empty key");
  EXPECT_EQ(key_error(std::string_view("\0", 1)), "");
}

TEST(HttpRouter, AdminReloadIsPostOnly) {
  EXPECT_EQ(match(method::post, "/admin/reload").r, route::admin_reload);
  EXPECT_EQ(route_name(route::admin_reload), "admin.reload");
  const match_result get = match(method::get, "/admin/reload");
  EXPECT_EQ(get.r, route::method_not_allowed);
  EXPECT_EQ(get.allow, "POST");
  EXPECT_EQ(match(method::post, "/admin/reload/x").r, route::not_found);
  EXPECT_EQ(match(method::post, "/admin").r, route::not_found);
}

TEST(HttpRouter, RouteTableMatchesRouter) {
  for (const auto& d : route_table()) {
    std::string path(d.path);
    for (auto ph : {std::string("{key}"), std::string("{channel}")})
      if (auto p = path.find(ph); p != std::string::npos) path.replace(p, ph.size(), "x");
    const method m = d.method == "get" ? method::get : d.method == "head" ? method::head
                   : d.method == "put" ? method::put : d.method == "post" ? method::post : method::delete_;
    const route r = match(m, path).r;
    EXPECT_NE(r, route::not_found) << d.path << " " << d.method;
    EXPECT_NE(r, route::method_not_allowed) << d.path << " " << d.method;
  }
}

TEST(HttpRest, EncodingHelpers) {
  EXPECT_TRUE(valid_utf8("héllo"));
  EXPECT_FALSE(valid_utf8("\xff"));
  EXPECT_FALSE(valid_utf8("\xc3"));
  EXPECT_EQ(base64_encode("hello"), "aGVsbG8=");
  EXPECT_EQ(base64_decode("aGVsbG8="), "hello");
  EXPECT_EQ(base64_decode(base64_encode(std::string("\0\xff\x10", 3))), std::string("\0\xff\x10", 3));
  EXPECT_FALSE(base64_decode("a$=="));
  // Canonical RFC 4648 only: one spelling per byte string.
  EXPECT_EQ(base64_decode(""), "");
  EXPECT_EQ(base64_decode("YQ=="), "a");
  EXPECT_EQ(base64_decode("YWI="), "ab");
  EXPECT_EQ(base64_decode("YWJj"), "abc");
  EXPECT_EQ(base64_decode("+/+/"), "\xfb\xff\xbf");
  for (std::string_view bad : {"YR==", "YWJ=", "YQ", "YQ=", "YWI", "=", "==", "====", "Y===", "YQ==YQ==", "Y=Q=",
                               "-_-_", "YQ== ", " YQ==", "YQ\n==", "YWJj\n"})
    EXPECT_FALSE(base64_decode(bad)) << bad;
  for (int n = 0; n < 64; ++n) {  // every length and tail: decode(encode(x)) == x
    std::string bytes;
    for (int i = 0; i < n; ++i) bytes.push_back(static_cast<char>(i * 37 + n));
    EXPECT_EQ(base64_decode(base64_encode(bytes)), bytes) << n;
  }
  EXPECT_EQ(sse_event("", "c", "hi\nthere"), "event: message\ndata: {\"channel\":\"c\",\"message\":\"hi\\nthere\"}\n\n");
  rest_response r;
  set_error(r, 404, "not_found", "key not found");
  EXPECT_EQ(r.body, R"({"error":{"code":"not_found","message":"key not found"}})");
}

TEST(HttpRest, ExceptionResponses) {
  rest_response r;
  r.start_sse = true;
  r.allow = "GET";
  EXPECT_EQ(set_exception_error(r, std::make_exception_ptr(std::runtime_error("secret detail"))), "secret detail");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body, R"({"error":{"code":"internal","message":"internal error"}})");  // no internals in the body
  EXPECT_FALSE(r.start_sse);
  EXPECT_TRUE(r.allow.empty());
  set_exception_error(r, std::make_exception_ptr(std::bad_alloc()));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, R"({"error":{"code":"unavailable","message":"out of memory"}})");
  EXPECT_EQ(set_exception_error(r, std::make_exception_ptr(42)), "unknown exception");
  EXPECT_EQ(r.status, 500);
}

TEST(HttpOptions, Parse) {
  auto root = load_config_string("http: {max_header_bytes: 8kb, idle_timeout: 5s, header_timeout: 1s}\n");
  auto o = parse_http_options(root.child("http"));
  EXPECT_EQ(o.max_header_bytes, 8u * 1024);
  EXPECT_EQ(o.idle_timeout, std::chrono::seconds(5));
  EXPECT_EQ(o.header_timeout, std::chrono::seconds(1));
  EXPECT_THROW(parse_http_options(load_config_string("http: {bogus: 1}\n").child("http")), config_error);
  EXPECT_THROW(parse_http_options(load_config_string("http: {header_timeout: 0}\n").child("http")), config_error);
}

}  // namespace
}  // namespace turret::http_frontend
