// plugin_layer: how a third party adds its own middleware and makes it selectable by name in YAML.
//
// A middleware has the same parts as turret's built-in ones (middleware/timeout/): an error enum, an immutable
// config parsed once, a service wrapping an inner service, a layer that wraps, and a factory registered by name.
// Our example is `quota`: each instance admits its first N requests and then fails fast with quota_errc::exhausted.
// It is generic over the request type, so the same code works on turret's key-value pipeline (kv::request) or on
// any other service.
//
// Readiness: the quota is checked in ready() (like a rate limiter), so an exhausted quota rejects a request before
// the inner service sees it. The layer reserves nothing of its own, so it passes the inner permit through unchanged.
//
// Errors: the category declares which of turret's generic conditions its codes are (turret/error.hpp): an exhausted
// quota is `overloaded`, so every front end answers it as it answers any overload (RESP -BUSY, HTTP 429 with
// Retry-After, gRPC RESOURCE_EXHAUSTED: turret/error_mapping.hpp), without knowing this plugin.
//
// Run: ./plugin_layer  (exit code 0 when every outcome was the expected one).
#include <turret/config.hpp>
#include <turret/error.hpp>
#include <turret/error_mapping.hpp>
#include <turret/middleware/builtin.hpp>  // register_builtin_layers
#include <turret/registry.hpp>
#include <turret/service.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/system/error_category.hpp>

#include <atomic>
#include <cstdint>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

namespace acme {

// --- 1. the error enum, registered as a boost::system error category ------------------------------------------
enum class quota_errc { exhausted = 1 };

inline const boost::system::error_category& quota_category() noexcept {
  struct category final : boost::system::error_category {
    const char* name() const noexcept override { return "acme.quota"; }
    std::string message(int) const override { return "request quota exhausted"; }
    boost::system::error_condition default_error_condition(int) const noexcept override {
      return turret::make_error_condition(turret::errc::overloaded);
    }
  };
  static const category instance;
  return instance;
}
inline boost::system::error_code make_error_code(quota_errc e) noexcept { return {static_cast<int>(e), quota_category()}; }

}  // namespace acme

template <>
struct boost::system::is_error_code_enum<acme::quota_errc> : std::true_type {};

namespace acme {

// --- 2. the configuration, validated once at start-up ----------------------------------------------------------
struct quota_config {
  std::int64_t requests = 1000;  ///< admitted requests per instance, >= 1
};

/// Parses `{layer: quota, requests: N}`. Throws turret::config_error (with file:line:col and key path).
inline quota_config parse_quota_config(const turret::config_node& entry) {
  entry.reject_unknown_keys({"layer", "requests"});  // a typo must never be silently ignored
  return quota_config{entry.get_int("requests", 1, INT32_MAX)};
}

// --- 3. the service: wraps an inner service, shares its state through a pointer --------------------------------
template <class S>
class quota_service {
 public:
  using response_type = typename S::response_type;
  using permit_type = typename S::permit_type;  // nothing reserved here: pass the inner permit through

  quota_service(S inner, std::shared_ptr<std::atomic<std::int64_t>> left) : inner_(std::move(inner)), left_(std::move(left)) {}

  S& inner() noexcept { return inner_; }  // every wrapper exposes its inner service
  const S& inner() const noexcept { return inner_; }

  turret::awaitable<turret::result<permit_type>> ready(turret::request_context& ctx) {
    if (!take()) co_return quota_errc::exhausted;  // fail fast: a typed error, not an exception
    co_return co_await inner_.ready(ctx);
  }

  turret::awaitable<turret::result<response_type>> call(permit_type p, auto& req) {
    co_return co_await inner_.call(std::move(p), req);
  }

  /// Fast path: forwarded when the inner service has one. Returning nullopt must leave no trace, so a token taken
  /// for a request that then has to suspend is given back (it is taken again in ready()).
  template <class Request>
    requires turret::immediate_service<S, Request>
  std::optional<turret::result<response_type>> try_call_now(Request& req) {
    if (!take()) return turret::result<response_type>(quota_errc::exhausted);
    auto r = inner_.try_call_now(req);
    if (!r) left_->fetch_add(1, std::memory_order_relaxed);
    return r;
  }

 private:
  bool take() noexcept {
    auto n = left_->load(std::memory_order_relaxed);
    while (n > 0 && !left_->compare_exchange_weak(n, n - 1, std::memory_order_relaxed)) {
    }
    return n > 0;
  }

  S inner_;
  std::shared_ptr<std::atomic<std::int64_t>> left_;  // copies of this service share one quota
};

// --- 4. the layer: configuration + wrap() ------------------------------------------------------------------------
class quota_layer {
 public:
  explicit quota_layer(quota_config cfg) : cfg_(cfg) {}

  /// Each wrap creates an independent quota.
  template <class S>
  quota_service<S> wrap(S inner) const {
    return quota_service<S>(std::move(inner), std::make_shared<std::atomic<std::int64_t>>(cfg_.requests));
  }

 private:
  quota_config cfg_;
};

// --- 5. registration by name: an explicit call, made by the program at start-up ---------------------------------
template <class Req, class Resp>
void register_quota_layer(turret::layer_registry<Req, Resp>& reg) {
  // A factory receives its entry and the pipeline's layer_context (clock, runtime, metrics registry, pipeline name):
  // a layer with metrics would declare them in ctx.metrics(), labelled {pipeline=ctx.pipeline_name}.
  reg.add("quota", [](const turret::config_node& entry, const turret::layer_context&) -> turret::any_layer<Req, Resp> {
    return quota_layer(parse_quota_config(entry));
  });
}

}  // namespace acme

// --- using it ---------------------------------------------------------------------------------------------------

struct greet_request {
  std::string name;
  turret::request_context ctx;
  turret::request_context& context() noexcept { return ctx; }
};

/// A trivial service (always ready, never suspends).
struct greet_service {
  using response_type = std::string;
  using permit_type = turret::unit_permit;
  turret::awaitable<turret::result<permit_type>> ready(turret::request_context&) { co_return permit_type{}; }
  turret::awaitable<turret::result<std::string>> call(permit_type, greet_request& req) { co_return "hello, " + req.name; }
};

int failures = 0;

turret::awaitable<void> demo() {
  using registry_type = turret::layer_registry<greet_request, std::string>;
  registry_type registry;
  turret::register_builtin_layers(registry);  // "timeout", "rate_limit", "retry", ... (every shipped layer)
  acme::register_quota_layer(registry);        // "quota": now usable in config like a built-in layer

  std::cout << "registered layers:";
  for (const auto& n : registry.names()) std::cout << " " << n;
  std::cout << "\n";

  const auto root = turret::load_config_string(R"(
pipeline:
  - layer: timeout
    duration: 1s
  - layer: quota
    requests: 2
)",
                                               "greet.yaml");
  auto svc = registry.build(root.child("pipeline"), registry_type::service_type(greet_service{}));

  const char* expected[] = {"hello, ada", "hello, bob", "error: request quota exhausted"};
  const char* names[] = {"ada", "bob", "eve"};
  for (int i = 0; i < 3; ++i) {
    greet_request req;
    req.name = names[i];
    auto r = co_await turret::ready_and_call(svc, req);
    const std::string got = r ? *r : "error: " + r.error().message();
    std::cout << names[i] << " -> " << got << "\n";
    if (got != expected[i]) ++failures;
    if (!r && r.error() != acme::quota_errc::exhausted) ++failures;
    // A front end maps errors by their condition, whatever layer produced them.
    if (!r) {
      if (r.error() != turret::errc::overloaded) ++failures;
      std::cout << "  RESP -" << turret::resp_error(r.error()) << ", HTTP " << turret::to_http_error(r.error()).status
                << ", gRPC " << turret::to_grpc_error(r.error()).code << "\n";
      if (turret::resp_error(r.error()) != "BUSY overloaded: request quota exhausted") ++failures;
    }
  }

  // The plugin's factory validates its entry like the built-in ones do.
  try {
    registry.build(turret::load_config_string("pipeline: [{layer: quota, request: 2}]", "typo.yaml").child("pipeline"),
                   registry_type::service_type(greet_service{}));
    ++failures;
  } catch (const turret::config_error& e) {
    std::cout << "config error: " << e.what() << "\n";
  }
}

int main() {
  boost::asio::io_context io(1);
  boost::asio::co_spawn(io, demo(), [](std::exception_ptr e) {
    if (e) ++failures;
  });
  io.run();
  return failures == 0 ? 0 : 1;
}
