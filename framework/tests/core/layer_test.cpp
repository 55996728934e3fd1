#include "test_support.hpp"

#include <turret/any_service.hpp>
#include <turret/layer.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

namespace turret {
namespace {

template <class S>
result<typename S::response_type> run_request(S& svc, test::request& req) {
  boost::asio::io_context io;
  std::optional<result<typename S::response_type>> out;
  boost::asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        auto p = co_await svc.ready(req.ctx);
        if (!p) {
          out.emplace(p.error());
          co_return;
        }
        out.emplace(co_await svc.call(std::move(*p), req));
      },
      boost::asio::detached);
  io.run();
  return *out;
}

TEST(LayerTest, BuilderFirstLayerIsOutermost) {
  auto svc = service_builder{}
                 .layer(test::named_layer{"a"})
                 .layer(test::named_layer{"b"})
                 .layer(test::named_layer{"c"})
                 .service(test::core_service{});
  static_assert(std::is_same_v<decltype(svc),
                               test::named_service<test::named_service<test::named_service<test::core_service>>>>);
  EXPECT_EQ(svc.name, "a");
  EXPECT_EQ(svc.inner().name, "b");
  EXPECT_EQ(svc.inner().inner().name, "c");
  static_assert(service<decltype(svc), test::request>);

  std::vector<std::string> trace;
  test::request req;
  req.trace = &trace;
  auto r = run_request(svc, req);
  ASSERT_TRUE(r);
  EXPECT_EQ(trace, (std::vector<std::string>{"a", "b", "c", "core"}));
  EXPECT_EQ(*svc.inner().inner().inner().live, 0);  // permit released after the call
}

TEST(LayerTest, EmptyBuilderAndStackAndIdentity) {
  auto svc = service_builder{}.service(test::core_service{});
  static_assert(std::is_same_v<decltype(svc), test::core_service>);
  auto stacked = stack_layer<test::named_layer, test::named_layer>{{"outer"}, {"inner"}}.wrap(test::core_service{});
  EXPECT_EQ(stacked.name, "outer");
  EXPECT_EQ(stacked.inner().name, "inner");
  auto same = identity_layer{}.wrap(test::core_service{});
  static_assert(std::is_same_v<decltype(same), test::core_service>);
  // A builder is itself a layer.
  auto nested = service_builder{}.layer(service_builder{}.layer(test::named_layer{"x"})).layer(test::named_layer{"y"})
                    .service(test::core_service{});
  EXPECT_EQ(nested.name, "x");
  EXPECT_EQ(nested.inner().name, "y");
}

TEST(LayerTest, LayerFn) {
  auto l = layer_fn{[](auto s) { return test::named_service<decltype(s)>{std::move(s), "fn"}; }};
  auto svc = service_builder{}.layer(l).service(test::core_service{});
  EXPECT_EQ(svc.name, "fn");
}

}  // namespace
}  // namespace turret
