#include <turret/middleware/rate_limit.hpp>
#include <turret/config.hpp>
#include <turret/error_mapping.hpp>
#include <turret/metrics.hpp>

#include <algorithm>

#include <charconv>
#include <cmath>
#include <functional>
#include <list>
#include <string>
#include <unordered_map>

namespace turret {

namespace {

/// Values: the rate_limit_errc in the low 8 bits, a Retry-After in seconds above (rate_limited_error).
constexpr int errc_bits = 8;
constexpr std::int64_t max_retry_after_s = (std::int64_t{1} << 23) - 1;

rate_limit_errc errc_of(int ev) noexcept { return static_cast<rate_limit_errc>(ev & ((1 << errc_bits) - 1)); }

class rate_limit_category_impl final : public retry_after_category {
 public:
  const char* name() const noexcept override { return "turret.rate_limit"; }
  std::string message(int ev) const override {
    if (errc_of(ev) == rate_limit_errc::limited) return "rate limit exceeded";
    return "unknown rate_limit error";
  }
  boost::system::error_condition default_error_condition(int ev) const noexcept override {
    if (errc_of(ev) == rate_limit_errc::limited) return make_error_condition(errc::overloaded);
    return {ev, *this};
  }
  int retry_after(int ev) const noexcept override {
    return errc_of(ev) == rate_limit_errc::limited ? (ev >> errc_bits) : 0;
  }
};

/// Config names of the traffic classes, by traffic_class value.
constexpr std::string_view class_names[traffic_class_count] = {"read", "write", "admin", "pubsub", "connection"};

constexpr double max_rate_per_second = 1e9;
/// GCRA times are nanoseconds in an int64: keep tau = (burst - 1) * T far from overflow.
constexpr std::int64_t max_tolerance_ns = std::int64_t{1} << 61;

rate_limit_config::rate parse_rate_node(const config_node& node) {
  const std::string text = node.as_string();
  auto r = parse_rate(text);
  if (!r) node.fail("invalid rate '" + text + "' (expected e.g. 1000/s, 30/m or 100/h; more than 0, at most 1e9/s)");
  return *r;
}

}  // namespace

error_code rate_limited_error(std::int64_t wait_ns) noexcept {
  constexpr std::int64_t second = 1'000'000'000;
  std::int64_t s = wait_ns <= 0 ? 1 : wait_ns / second + (wait_ns % second != 0 ? 1 : 0);
  s = std::clamp<std::int64_t>(s, 1, max_retry_after_s);
  return {static_cast<int>(rate_limit_errc::limited) | static_cast<int>(s << errc_bits), rate_limit_category()};
}

bool is_rate_limited(const error_code& ec) noexcept {
  return ec.category() == rate_limit_category() && errc_of(ec.value()) == rate_limit_errc::limited;
}

int rate_limit_retry_after(const error_code& ec) noexcept {
  return ec.category() == rate_limit_category() ? static_cast<const retry_after_category&>(ec.category()).retry_after(ec.value()) : 0;
}

const boost::system::error_category& rate_limit_category() noexcept {
  static const rate_limit_category_impl instance;
  return instance;
}

std::int64_t rate_limit_config::rate::interval_ns() const noexcept {
  const double t = std::round(static_cast<double>(per.count()) / tokens);
  return t < 1 ? 1 : static_cast<std::int64_t>(t);
}

const rate_limit_config::rate& rate_limit_config::rate_of(traffic_class c) const noexcept {
  const auto& o = classes[static_cast<std::size_t>(c)];
  return o ? *o : default_rate;
}

std::uint64_t rate_limit_config::burst_of(const rate& r) const noexcept {
  if (burst) return *burst;
  const double per_second = std::floor(r.per_second());
  return per_second < 1 ? 1 : static_cast<std::uint64_t>(per_second);
}

std::optional<rate_limit_config::rate> parse_rate(std::string_view text) noexcept {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0) return std::nullopt;
  const std::string_view number = text.substr(0, slash), unit = text.substr(slash + 1);
  if (number.find_first_not_of("0123456789.") != std::string_view::npos) return std::nullopt;
  double v = 0;
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), v);
  if (ec != std::errc{} || end != number.data() + number.size() || !(v > 0)) return std::nullopt;
  rate_limit_config::rate r;
  r.tokens = v;
  if (unit == "s") {
    r.per = std::chrono::seconds(1);
  } else if (unit == "m") {
    r.per = std::chrono::minutes(1);
  } else if (unit == "h") {
    r.per = std::chrono::hours(1);
  } else {
    return std::nullopt;
  }
  if (r.per_second() > max_rate_per_second) return std::nullopt;
  return r;
}

rate_limit_config parse_rate_limit_config(const config_node& entry) {
  entry.reject_unknown_keys({"layer", "scope", "rate", "burst", "max_wait", "classes", "max_clients"});
  rate_limit_config cfg;
  using scope_kind = rate_limit_config::scope_kind;
  if (entry.has("scope")) {
    const config_node sc = entry.child("scope");
    const std::string name = sc.as_string();
    if (name == "global") {
      cfg.scope = scope_kind::global;
    } else if (name == "per_client") {
      cfg.scope = scope_kind::per_client;
    } else if (name == "per_command_class") {
      cfg.scope = scope_kind::per_command_class;
    } else {
      sc.fail("unknown scope '" + name + "' (expected global, per_client or per_command_class)");
    }
  }
  cfg.default_rate = parse_rate_node(entry.required("rate"));
  if (entry.has("burst")) cfg.burst = static_cast<std::uint64_t>(entry.get_int("burst", 1, 1'000'000'000));
  if (entry.has("max_wait")) {
    const config_node mw = entry.child("max_wait");
    cfg.max_wait = mw.as_duration();
    if (cfg.max_wait < std::chrono::nanoseconds::zero()) mw.fail("max_wait must not be negative");
  }
  if (entry.has("max_clients")) {
    const config_node mc = entry.child("max_clients");
    if (cfg.scope != scope_kind::per_client) mc.fail("max_clients applies to scope: per_client only");
    cfg.max_clients = static_cast<std::size_t>(mc.as_int(1, 100'000'000));
  }
  if (entry.has("classes")) {
    const config_node cl = entry.child("classes");
    if (cfg.scope != scope_kind::per_command_class) cl.fail("classes applies to scope: per_command_class only");
    if (!cl.is_map()) cl.fail("expected a mapping, e.g. {read: 5000/s, write: 500/s}");
    cl.reject_unknown_keys({"read", "write", "admin", "pubsub", "connection"});
    for (std::size_t i = 0; i < traffic_class_count; ++i) {
      if (cl.has(class_names[i])) cfg.classes[i] = parse_rate_node(cl.child(class_names[i]));
    }
  }
  // Every bucket's tolerance must fit the nanosecond arithmetic.
  for (std::size_t i = 0; i < traffic_class_count; ++i) {
    const auto& r = cfg.rate_of(static_cast<traffic_class>(i));
    const double tau = static_cast<double>(cfg.burst_of(r) - 1) * static_cast<double>(r.interval_ns());
    if (tau >= static_cast<double>(max_tolerance_ns)) {
      (entry.has("burst") ? entry.child("burst") : entry.child("rate")).fail("burst too large for this rate");
    }
  }
  return cfg;
}

namespace detail {

namespace {
gcra_params params_of(const rate_limit_config& cfg, const rate_limit_config::rate& r) {
  gcra_params p;
  p.interval = r.interval_ns();
  p.tolerance = static_cast<std::int64_t>(cfg.burst_of(r) - 1) * p.interval;
  return p;
}
}  // namespace

struct client_buckets::shard {
  struct node {
    std::uint64_t key;
    std::int64_t tat;
  };
  std::mutex mu;
  std::size_t capacity = 0;
  std::list<node> lru;  ///< most recently used first
  std::unordered_map<std::uint64_t, std::list<node>::iterator> index;
};

client_buckets::client_buckets(std::size_t max_clients, gcra_params params)
    : capacity_(max_clients), params_(params), shard_count_(max_clients < 16 ? max_clients : 16),
      shards_(std::make_unique<shard[]>(shard_count_)) {
  // The capacity is split exactly: the total never exceeds max_clients.
  for (std::size_t i = 0; i < shard_count_; ++i) {
    shards_[i].capacity = max_clients / shard_count_ + (i < max_clients % shard_count_ ? 1 : 0);
    shards_[i].index.reserve(shards_[i].capacity);
  }
}

client_buckets::~client_buckets() = default;

client_buckets::shard& client_buckets::shard_of(std::uint64_t key) const noexcept {
  return shards_[(key >> 32) % shard_count_];
}

gcra_step client_buckets::take(std::uint64_t key, std::int64_t now, std::int64_t max_wait) {
  shard& sh = shard_of(key);
  std::lock_guard lock(sh.mu);
  auto it = sh.index.find(key);
  if (it == sh.index.end()) {
    if (sh.lru.size() >= sh.capacity) {  // evict the least recently used: its node becomes this client's
      auto last = std::prev(sh.lru.end());
      sh.index.erase(last->key);
      *last = {key, 0};
      sh.lru.splice(sh.lru.begin(), sh.lru, last);
    } else {
      sh.lru.push_front({key, 0});
    }
    it = sh.index.emplace(key, sh.lru.begin()).first;
  } else if (it->second != sh.lru.begin()) {
    sh.lru.splice(sh.lru.begin(), sh.lru, it->second);
  }
  const gcra_step s = gcra_decide(it->second->tat, now, params_, max_wait);
  if (s.ok) it->second->tat = s.next;
  return s;
}

void client_buckets::give_back(std::uint64_t key) noexcept {
  shard& sh = shard_of(key);
  std::lock_guard lock(sh.mu);
  if (auto it = sh.index.find(key); it != sh.index.end()) it->second->tat -= params_.interval;
}

std::size_t client_buckets::size() const {
  std::size_t n = 0;
  for (std::size_t i = 0; i < shard_count_; ++i) {
    std::lock_guard lock(shards_[i].mu);
    n += shards_[i].lru.size();
  }
  return n;
}

std::uint64_t client_key(request_context& ctx) {
  if (!ctx.identity.empty()) {
    return request_context::mix64(std::hash<std::string_view>{}(ctx.identity) ^ 0x6964656e74697479ULL) | 1;
  }
  const auto addr = ctx.peer().address();
  std::uint64_t h = 0x61646472ULL;
  if (addr.is_v4()) {
    h = request_context::mix64(h ^ addr.to_v4().to_uint());
  } else {
    const auto bytes = addr.to_v6().to_bytes();
    for (std::size_t i = 0; i < bytes.size(); i += 8) {
      std::uint64_t w = 0;
      for (std::size_t j = 0; j < 8; ++j) w = (w << 8) | bytes[i + j];
      h = request_context::mix64(h ^ w);
    }
  }
  return h & ~std::uint64_t{1};  // identities are odd, addresses even: the two spaces never meet
}

void rate_limit_shared::count_reject() const noexcept {
  if (rejected) rejected->inc();
}

}  // namespace detail

rate_limit_state::rate_limit_state(const rate_limit_config& cfg) {
  for (std::size_t i = 0; i < traffic_class_count; ++i) {
    classes_[i].params = detail::params_of(cfg, cfg.rate_of(static_cast<traffic_class>(i)));
  }
  if (cfg.scope == rate_limit_config::scope_kind::global) {
    classes_[0].params = detail::params_of(cfg, cfg.default_rate);
  } else if (cfg.scope == rate_limit_config::scope_kind::per_client) {
    clients_ = std::make_unique<detail::client_buckets>(cfg.max_clients, detail::params_of(cfg, cfg.default_rate));
  }
}

rate_limit_layer::rate_limit_layer(rate_limit_config cfg, const layer_context& ctx,
                                   std::shared_ptr<rate_limit_state> state) {
  auto sh = std::make_shared<detail::rate_limit_shared>();
  sh->cfg = cfg;
  sh->clk = ctx.clk;
  sh->timing = duration_clock(ctx.clk);
  sh->state = state ? std::move(state) : std::make_shared<rate_limit_state>(cfg);
  sh->max_wait = cfg.max_wait.count();
  sh->rejected = &ctx.metrics()
                      .counter("turret_rate_limit_rejected_total", "Requests rejected by rate_limit layers",
                               {"pipeline"})
                      .with({ctx.pipeline_name});
  shared_ = std::move(sh);
}

}  // namespace turret
