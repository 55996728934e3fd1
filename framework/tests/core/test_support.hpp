#pragma once
// Helpers shared by the framework unit tests: a recording service and layer, and a request type.
#include <turret/service.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace turret::test {

struct request {
  request_context ctx;
  std::vector<std::string>* trace = nullptr;
  request_context& context() noexcept { return ctx; }
};

struct counting_permit {
  int* live = nullptr;
  explicit counting_permit(int* l) : live(l) { ++*live; }
  counting_permit(counting_permit&& o) noexcept : live(std::exchange(o.live, nullptr)) {}
  counting_permit& operator=(counting_permit&& o) noexcept {
    if (live) --*live;
    live = std::exchange(o.live, nullptr);
    return *this;
  }
  ~counting_permit() {
    if (live) --*live;
  }
};

/// Core service: appends "core" to the trace, answers with the trace length.
struct core_service {
  using response_type = int;
  using permit_type = counting_permit;
  std::shared_ptr<int> live = std::make_shared<int>(0);

  awaitable<result<permit_type>> ready(request_context&) { co_return counting_permit(live.get()); }
  awaitable<result<int>> call(permit_type, request& req) {
    if (req.trace) req.trace->push_back("core");
    co_return static_cast<int>(req.trace ? req.trace->size() : 0);
  }
  std::optional<result<int>> try_call_now(request& req) {
    if (req.trace) req.trace->push_back("core-now");
    return result<int>(static_cast<int>(req.trace ? req.trace->size() : 0));
  }
};

/// Wrapper recording its name when called (before the inner service).
template <class S>
struct named_service {
  using response_type = typename S::response_type;
  using permit_type = typename S::permit_type;
  S inner_;
  std::string name;

  S& inner() noexcept { return inner_; }
  awaitable<result<permit_type>> ready(request_context& ctx) { return inner_.ready(ctx); }
  awaitable<result<response_type>> call(permit_type p, request& req) {
    if (req.trace) req.trace->push_back(name);
    co_return co_await inner_.call(std::move(p), req);
  }
};

struct named_layer {
  std::string name;
  template <class S>
  named_service<S> wrap(S s) const {
    return named_service<S>{std::move(s), name};
  }
};

}  // namespace turret::test
