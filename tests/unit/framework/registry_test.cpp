#include "test_support.hpp"

#include <turret/registry.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

namespace turret {
namespace {

using registry = layer_registry<test::request, int>;
using erased = any_service<test::request, int>;

registry make_registry() {
  registry reg;
  reg.add("named", [](const config_node& entry) -> any_layer<test::request, int> {
    entry.reject_unknown_keys({"layer", "name"});
    return test::named_layer{entry.get_string("name")};
  });
  return reg;
}

std::vector<std::string> run(erased& svc) {
  std::vector<std::string> trace;
  test::request req;
  req.trace = &trace;
  boost::asio::io_context io;
  boost::asio::co_spawn(io, [&]() -> awaitable<void> { (void)co_await ready_and_call(svc, req); },
                        boost::asio::detached);
  io.run();
  return trace;
}

TEST(RegistryTest, BuildsByNameFirstEntryOutermost) {
  auto reg = make_registry();
  auto cfg = load_config_string(R"(
pipeline:
  - layer: named
    name: first
  - {layer: named, name: second}
)",
                                "turret.yaml");
  erased svc = reg.build(cfg.child("pipeline"), erased(test::core_service{}));
  EXPECT_EQ(run(svc), (std::vector<std::string>{"first", "second", "core"}));
  EXPECT_TRUE(reg.contains("named"));
  EXPECT_EQ(reg.names(), std::vector<std::string>{"named"});
}

TEST(RegistryTest, EmptyPipelineIsTheInnerService) {
  auto reg = make_registry();
  auto cfg = load_config_string("pipeline:\n");
  erased svc = reg.build(cfg.child("pipeline"), erased(test::core_service{}));
  EXPECT_EQ(run(svc), (std::vector<std::string>{"core-now"}));  // core's fast path: nothing in between
  auto cfg2 = load_config_string("other: 1\n");
  erased svc2 = reg.build(cfg2.child("pipeline"), erased(test::core_service{}));
  EXPECT_TRUE(svc2);
}

TEST(RegistryTest, UnknownLayerNamesFileLineAndKey) {
  auto reg = make_registry();
  auto cfg = load_config_string("pipeline:\n  - layer: named\n    name: a\n  - layer: timeuot\n", "turret.yaml");
  try {
    reg.build(cfg.child("pipeline"), erased(test::core_service{}));
    FAIL() << "expected config_error";
  } catch (const config_error& e) {
    EXPECT_STREQ(e.what(), "turret.yaml:4:12: pipeline[1].layer: unknown layer 'timeuot' (registered: named)");
    EXPECT_EQ(e.line(), 4);
    EXPECT_EQ(e.key(), "pipeline[1].layer");
  }
}

TEST(RegistryTest, UnknownKeyAndMissingLayer) {
  auto reg = make_registry();
  auto cfg = load_config_string("pipeline:\n  - layer: named\n    nmae: a\n", "t.yaml");
  try {
    reg.build(cfg.child("pipeline"), erased(test::core_service{}));
    FAIL();
  } catch (const config_error& e) {
    EXPECT_STREQ(e.what(), "t.yaml:3:5: pipeline[0].nmae: unknown key 'nmae' (allowed: layer, name)");
  }
  auto cfg2 = load_config_string("pipeline:\n  - name: a\n", "t.yaml");
  EXPECT_THROW(reg.build(cfg2.child("pipeline"), erased(test::core_service{})), config_error);
  auto cfg3 = load_config_string("pipeline: {layer: named}\n", "t.yaml");
  try {
    reg.build(cfg3.child("pipeline"), erased(test::core_service{}));
    FAIL();
  } catch (const config_error& e) {
    EXPECT_STREQ(e.what(), "t.yaml:1:11: pipeline: expected a list");
  }
}

TEST(RegistryTest, RawYamlOverloadAndDuplicates) {
  auto reg = make_registry();
  YAML::Node list = YAML::Load("[{layer: named, name: x}]");
  erased svc = reg.build(list, erased(test::core_service{}), config_source{"inline"});
  EXPECT_EQ(run(svc), (std::vector<std::string>{"x", "core"}));
  EXPECT_THROW(reg.add("named", [](const config_node&) { return any_layer<test::request, int>{}; }), std::logic_error);
}

}  // namespace
}  // namespace turret
