#include <turret/config.hpp>
#include <turret/layer_context.hpp>
#include <turret/layer_state.hpp>

#include <gtest/gtest.h>

namespace turret {
namespace {

struct bucket {
  int tokens = 0;
};

config_node entry_of(std::string_view yaml, std::size_t i = 0) {
  return load_config_string(yaml, "test.yaml").child("pipeline").at(i);
}

TEST(LayerState, SameEntryAfterReloadKeepsItsState) {
  const char* v1 = "pipeline:\n  - {layer: rate_limit, rate: 10/s}\n  - {layer: retry, max_attempts: 3}\n";
  const char* v2 = "pipeline:\n  - layer: rate_limit\n    rate: 10/s\n  - {layer: retry, max_attempts: 4}\n";
  layer_context ctx;
  ctx.states = std::make_shared<layer_state_store>();
  auto b1 = ctx.shared_state<bucket>(entry_of(v1, 0), [] { return std::make_shared<bucket>(); });
  auto r1 = ctx.shared_state<bucket>(entry_of(v1, 1), [] { return std::make_shared<bucket>(); });
  b1->tokens = 7;
  r1->tokens = 9;
  EXPECT_EQ(ctx.states->size(), 2u);

  layer_context next = ctx;
  next.states = std::make_shared<layer_state_store>(ctx.states);
  // Same entry written in block style: same canonical YAML, same state.
  auto b2 = next.shared_state<bucket>(entry_of(v2, 0), [] { return std::make_shared<bucket>(); });
  auto r2 = next.shared_state<bucket>(entry_of(v2, 1), [] { return std::make_shared<bucket>(); });
  EXPECT_EQ(b2.get(), b1.get());
  EXPECT_EQ(b2->tokens, 7);
  EXPECT_NE(r2.get(), r1.get());  // changed entry: fresh state
  EXPECT_EQ(r2->tokens, 0);
  next.states->drop_previous();
  EXPECT_EQ(next.states->size(), 2u);
}

TEST(LayerState, OtherPipelineOrPositionGetsFreshState) {
  const char* y = "pipeline:\n  - {layer: x}\n  - {layer: x}\n";
  layer_context a;
  a.states = std::make_shared<layer_state_store>();
  auto s0 = a.shared_state<bucket>(entry_of(y, 0), [] { return std::make_shared<bucket>(); });
  auto s1 = a.shared_state<bucket>(entry_of(y, 1), [] { return std::make_shared<bucket>(); });
  EXPECT_NE(s0.get(), s1.get());
  layer_context b = a.for_pipeline("other");
  auto s2 = b.shared_state<bucket>(entry_of(y, 0), [] { return std::make_shared<bucket>(); });
  EXPECT_NE(s0.get(), s2.get());
}

TEST(LayerState, WithoutStoreEveryCallMakesFreshState) {
  layer_context ctx;
  const char* y = "pipeline:\n  - {layer: x}\n";
  auto a = ctx.shared_state<bucket>(entry_of(y), [] { return std::make_shared<bucket>(); });
  auto b = ctx.shared_state<bucket>(entry_of(y), [] { return std::make_shared<bucket>(); });
  EXPECT_NE(a.get(), b.get());
}

TEST(LayerState, RejectedGenerationLeavesTheOldOneIntact) {
  const char* y = "pipeline:\n  - {layer: x}\n";
  layer_context ctx;
  ctx.states = std::make_shared<layer_state_store>();
  auto a = ctx.shared_state<bucket>(entry_of(y), [] { return std::make_shared<bucket>(); });
  {
    layer_context scratch = ctx;
    scratch.states = std::make_shared<layer_state_store>(ctx.states);
    auto b = scratch.shared_state<bucket>(entry_of(y), [] { return std::make_shared<bucket>(); });
    EXPECT_EQ(a.get(), b.get());
  }  // the new generation is dropped (rejected config)
  auto c = ctx.shared_state<bucket>(entry_of(y), [] { return std::make_shared<bucket>(); });
  EXPECT_EQ(a.get(), c.get());
  EXPECT_EQ(ctx.states->size(), 1u);
}

}  // namespace
}  // namespace turret
