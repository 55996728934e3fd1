#include "test_support.hpp"

#include <turret/any_service.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <array>

namespace turret {
namespace {

using erased = any_service<test::request, int>;

struct big_permit {
  std::array<char, 256> data{};
  int* live;
  explicit big_permit(int* l) : live(l) { ++*live; }
  big_permit(big_permit&& o) noexcept : data(o.data), live(std::exchange(o.live, nullptr)) {}
  ~big_permit() {
    if (live) --*live;
  }
};

TEST(AnyPermitTest, SmallBufferAndRaii) {
  static_assert(any_permit::stored_inline<test::counting_permit>);
  static_assert(any_permit::stored_inline<unit_permit>);
  static_assert(!any_permit::stored_inline<big_permit>);
  int live = 0;
  {
    any_permit p{test::counting_permit(&live)};
    EXPECT_EQ(live, 1);
    EXPECT_TRUE(p.holds<test::counting_permit>());
    EXPECT_EQ(p.get<big_permit>(), nullptr);
    any_permit q(std::move(p));
    EXPECT_FALSE(p.has_value());
    EXPECT_EQ(live, 1);
    any_permit r;
    r = std::move(q);
    EXPECT_EQ(live, 1);
    r.reset();
    EXPECT_EQ(live, 0);
    any_permit s{test::counting_permit(&live)};
    EXPECT_EQ(live, 1);
  }
  EXPECT_EQ(live, 0);  // dropped unspent: released
  {
    any_permit big{big_permit(&live)};  // heap path
    any_permit moved(std::move(big));
    EXPECT_EQ(live, 1);
    ASSERT_NE(moved.get<big_permit>(), nullptr);
  }
  EXPECT_EQ(live, 0);
}

template <class S>
std::optional<result<int>> drive(S& svc, test::request& req, bool drop_permit = false) {
  boost::asio::io_context io;
  std::optional<result<int>> out;
  boost::asio::co_spawn(
      io,
      [&]() -> awaitable<void> {
        auto p = co_await svc.ready(req.ctx);
        if (!p) {
          out.emplace(p.error());
          co_return;
        }
        if (drop_permit) co_return;
        out.emplace(co_await svc.call(std::move(*p), req));
      },
      boost::asio::detached);
  io.run();
  return out;
}

TEST(AnyServiceTest, ErasesAndSharesState) {
  test::core_service core;
  auto live = core.live;
  erased svc(service_builder{}.layer(test::named_layer{"outer"}).service(core));
  erased copy = svc;  // shares the same service
  std::vector<std::string> trace;
  test::request req;
  req.trace = &trace;
  auto r = drive(copy, req);
  ASSERT_TRUE(r && *r);
  EXPECT_EQ(**r, 2);
  EXPECT_EQ(trace, (std::vector<std::string>{"outer", "core"}));
  EXPECT_EQ(*live, 0);
  ASSERT_NE(svc.target<test::named_service<test::core_service>>(), nullptr);
  EXPECT_EQ(svc.target<test::core_service>(), nullptr);
}

TEST(AnyServiceTest, DroppedPermitDoesNotLeak) {
  test::core_service core;
  auto live = core.live;
  erased svc(core);
  test::request req;
  auto r = drive(svc, req, /*drop_permit=*/true);
  EXPECT_FALSE(r);
  EXPECT_EQ(*live, 0);
}

TEST(AnyServiceTest, ForeignPermitRejected) {
  erased svc(test::core_service{});
  test::request req;
  boost::asio::io_context io;
  std::optional<result<int>> out;
  boost::asio::co_spawn(
      io, [&]() -> awaitable<void> { out.emplace(co_await svc.call(any_permit(unit_permit{}), req)); },
      boost::asio::detached);
  io.run();
  ASSERT_TRUE(out);
  EXPECT_EQ(out->error(), boost::system::errc::invalid_argument);
}

TEST(AnyServiceTest, ImmediateFastPath) {
  erased direct(test::core_service{});
  EXPECT_TRUE(direct.supports_immediate());
  std::vector<std::string> trace;
  test::request req;
  req.trace = &trace;
  auto r = direct.try_call_now(req);
  ASSERT_TRUE(r && *r);
  EXPECT_EQ(trace, (std::vector<std::string>{"core-now"}));

  // named_service has no fast path: the whole chain reports "would suspend".
  erased wrapped(test::named_layer{"x"}.wrap(test::core_service{}));
  EXPECT_FALSE(wrapped.supports_immediate());
  EXPECT_FALSE(wrapped.try_call_now(req));
  // An erased chain inside an erased chain keeps the flag.
  erased outer(direct);
  EXPECT_TRUE(outer.supports_immediate());
}

/// A service whose try_start keeps the completions it took (started) and declines when `accept` is false.
struct deferred_service {
  using response_type = int;
  using permit_type = unit_permit;
  std::shared_ptr<std::vector<completion<int>>> started = std::make_shared<std::vector<completion<int>>>();
  bool accept = true;
  awaitable<result<permit_type>> ready(request_context&) { co_return unit_permit{}; }
  awaitable<result<int>> call(permit_type, test::request&) { co_return 0; }
  bool try_start(test::request&, completion<int>& done) {
    if (!accept) return false;
    started->push_back(std::move(done));
    return true;
  }
};
static_assert(startable_service<deferred_service, test::request>);
static_assert(!startable_service<test::core_service, test::request>);

TEST(CompletionTest, InvokedOnceInlineOrOnTheHeap) {
  std::vector<int> got;
  completion<int> small([&got](result<int> r) { got.push_back(r ? *r : -1); });
  completion<int> moved(std::move(small));
  EXPECT_FALSE(small);
  ASSERT_TRUE(moved);
  moved(7);
  EXPECT_FALSE(moved);  // consumed
  struct big {
    std::array<char, 200> pad{};
    std::vector<int>* out;
    void operator()(result<int> r) { out->push_back(r ? *r : -1); }
  };
  completion<int> large(big{{}, &got});
  ASSERT_NE(large.target<big>(), nullptr);
  struct other {
    void operator()(result<int>) {}
  };
  EXPECT_EQ(large.target<other>(), nullptr);
  completion<int> other;
  other = std::move(large);
  other(make_error_code(boost::system::errc::timed_out));
  EXPECT_EQ(got, (std::vector<int>{7, -1}));

  // Never invoked: destroyed without a call (and without a leak, under ASan).
  auto token = std::make_shared<int>(1);
  { completion<int> dropped([token](result<int>) {}); }
  EXPECT_EQ(token.use_count(), 1);
}

TEST(CompletionTest, TheCallableMayDestroyItsOwner) {
  auto owner = std::make_unique<completion<int>>();
  int seen = 0;
  *owner = completion<int>([&owner, &seen](result<int> r) {
    owner.reset();  // what a batch does when its last callback runs
    seen = *r;
  });
  (*owner)(5);
  EXPECT_EQ(seen, 5);
  EXPECT_EQ(owner, nullptr);
}

TEST(AnyServiceTest, CallbackStartThroughErasure) {
  deferred_service inner;
  erased direct(inner);
  EXPECT_TRUE(direct.supports_start());
  test::request req;
  int got = 0;
  completion<int> done([&got](result<int> r) { got = *r; });
  ASSERT_TRUE(direct.try_start(req, done));
  EXPECT_FALSE(done);  // taken
  ASSERT_EQ(inner.started->size(), 1u);
  (*inner.started)[0](42);
  EXPECT_EQ(got, 42);

  // Declined: the completion is left as it was.
  deferred_service declining;
  declining.accept = false;
  erased no(declining);
  completion<int> kept([&got](result<int> r) { got = *r; });
  EXPECT_FALSE(no.try_start(req, kept));
  ASSERT_TRUE(kept);

  // A chain with a service that has no try_start: the erased chain has none either (the coroutine path).
  erased plain(test::core_service{});
  EXPECT_FALSE(plain.supports_start());
  EXPECT_FALSE(plain.try_start(req, kept));
  ASSERT_TRUE(kept);
  erased outer(direct);  // an erased chain inside an erased chain keeps the flag
  EXPECT_TRUE(outer.supports_start());
  EXPECT_TRUE(start_supported<test::request>(outer));
}

TEST(AnyLayerTest, WrapsErasedServices) {
  any_layer<test::request, int> identity;
  any_layer<test::request, int> named(test::named_layer{"L"});
  erased svc = named.wrap(identity.wrap(erased(test::core_service{})));
  std::vector<std::string> trace;
  test::request req;
  req.trace = &trace;
  auto r = drive(svc, req);
  ASSERT_TRUE(r && *r);
  EXPECT_EQ(trace, (std::vector<std::string>{"L", "core"}));
}

}  // namespace
}  // namespace turret
