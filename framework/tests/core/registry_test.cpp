#include "test_support.hpp"

#include <turret/metrics.hpp>
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
  reg.add("named", [](const config_node& entry, const layer_context&) -> any_layer<test::request, int> {
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
  auto none = [](const config_node&, const layer_context&) { return any_layer<test::request, int>{}; };
  EXPECT_THROW(reg.add("named", none), std::logic_error);
}

TEST(RegistryTest, EveryFactoryReceivesThePipelinesContext) {
  registry reg;
  std::vector<std::string> seen;
  struct table {
    int commands = 7;
  };
  reg.add("probe", [&](const config_node& entry, const layer_context& ctx) -> any_layer<test::request, int> {
    const auto t = ctx.commands<table>();
    seen.push_back(ctx.pipeline_name + " " + (t ? std::to_string(t->commands) : "none") + " " +
                   (ctx.rt ? "rt" : "no-rt") + " " + (ctx.clk.get() == steady_clock().get() ? "steady" : "manual"));
    EXPECT_EQ(ctx.commands<int>(), nullptr);  // asked as another type: nothing
    EXPECT_EQ(&ctx.metrics(), &metrics::default_registry());
    return test::named_layer{entry.path()};
  });
  auto cfg = load_config_string("pipeline: [{layer: probe}, {layer: probe}]\n");
  layer_context ctx;
  ctx.pipeline_name = "edge";
  ctx.clk = std::make_shared<manual_clock>();
  ctx.set_commands(std::make_shared<const table>());
  erased svc = reg.build(cfg.child("pipeline"), erased(test::core_service{}), ctx);
  EXPECT_EQ(run(svc), (std::vector<std::string>{"pipeline[0]", "pipeline[1]", "core"}));
  EXPECT_EQ(seen, (std::vector<std::string>{"edge 7 no-rt manual", "edge 7 no-rt manual"}));
  seen.clear();
  reg.build(cfg.child("pipeline"), erased(test::core_service{}), ctx.for_pipeline("other"));
  reg.make(cfg.child("pipeline").at(0));  // the default context
  EXPECT_EQ(seen,
            (std::vector<std::string>{"other 7 no-rt manual", "other 7 no-rt manual", "default none no-rt steady"}));
}

TEST(RegistryTest, FactoriesSeeTheirRegistryAndTheHostsExtensions) {
  registry reg;
  struct endpoints {
    int n = 3;
  };
  std::vector<std::string> seen;
  reg.add("probe", [&](const config_node&, const layer_context& ctx) -> any_layer<test::request, int> {
    const auto self = ctx.extension<registry>();  // the registry building the entry (sub-pipelines)
    const auto host = ctx.extension<endpoints>();
    seen.push_back(std::string(self.get() == &reg ? "self" : "other") + " " +
                   (host ? std::to_string(host->n) : "none"));
    EXPECT_EQ(ctx.extension<int>(), nullptr);
    return {};
  });
  auto cfg = load_config_string("pipeline: [{layer: probe}]\n");
  layer_context ctx;
  reg.make(cfg.child("pipeline").at(0), ctx);
  ctx.set_extension(std::make_shared<const endpoints>());
  ctx.set_extension(std::make_shared<const endpoints>(endpoints{4}));  // replaces
  reg.make(cfg.child("pipeline").at(0), ctx);
  EXPECT_EQ(seen, (std::vector<std::string>{"self none", "self 4"}));
  EXPECT_EQ(ctx.extension<registry>(), nullptr);  // only the factory's copy of the context holds the registry
}

}  // namespace
}  // namespace turret
