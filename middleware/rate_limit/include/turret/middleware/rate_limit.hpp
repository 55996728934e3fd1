#pragma once
// rate_limit: a token bucket (GCRA) per process, per client or per command class.
//
// ```yaml
// - layer: rate_limit
//   scope: global            # global | per_client | per_command_class
//   rate: 1000/s             # tokens per second (/s), minute (/m) or hour (/h); fractions allowed (0.5/s)
//   burst: 100               # bucket size, >= 1; default max(1, rate per second)
//   max_wait: 0s             # wait up to this for a token; 0 = reject at once
//   max_clients: 10000       # per_client only: clients tracked at most (bounded memory)
//   classes: {read: 5000/s, write: 500/s, admin: 10/s, pubsub: 100/s}   # per_command_class only
// ```
//
// # The bucket
// GCRA (the generic cell rate algorithm, a token bucket kept as one number): a bucket is its "theoretical arrival
// time" TAT in nanoseconds of the layer's clock; with emission interval T = 1/rate and tolerance tau = (burst-1)*T,
// a request at time t conforms when max(TAT, t) - tau <= t, and then moves TAT to max(TAT, t) + T. Over a period
// D at any load above the rate, exactly floor(rate * D) + burst requests are admitted (an idle bucket holds
// `burst` tokens). `scope: global` is ONE bucket per layer entry, shared by every thread without a lock: an atomic
// 64-bit TAT updated by compare-and-swap. `per_command_class` has one such bucket per turret::traffic_class
// (turret::request_rate_class(req): read, write, admin, pubsub, connection; `classes` overrides the rate of some,
// the others use `rate`; `burst` applies to every class, by default max(1, the class's rate per second)).
// `per_client` keys buckets by the authenticated identity (request_context::identity) when set, else by the peer's
// address (not its port: one client, many connections); they live in sharded maps of fixed total capacity
// `max_clients` with LRU eviction (a short lock per shard). The least recently used client is evicted first: once
// it has been idle for burst/rate its bucket is full, which is what a new entry starts with, so eviction loses
// nothing unless more than max_clients clients are active within that time. Keys are 64-bit hashes (identity and
// address spaces kept apart): two clients share a bucket only on a hash collision.
//
// # Where the token is taken
// ready() only sees the request_context, which knows the client but not the command. So `global` and `per_client`
// take the token in ready() (before the inner readiness: a request waiting for a token holds no inner capacity),
// while `per_command_class` takes it in call(), where the request is known: its ready() is the inner ready(), and
// with max_wait > 0 its wait for a token happens in call(), holding the inner permit. try_call_now knows the request
// and takes the token of any scope with one CAS.
//
// # Exhaustion
// With no token free, the request reserves the next one (moves TAT as if admitted) when it would be due within
// max_wait, and sleeps until then on the layer's clock, bound to ctx.cancel_slot(): a cancellation (a timeout
// above, a client gone) ends the wait with operation_aborted and gives the reservation back. Otherwise it fails at
// once with rate_limit_errc::limited, whose condition is turret::errc::overloaded: RESP "BUSY overloaded: rate limit
// exceeded", HTTP 429 with Retry-After, gRPC RESOURCE_EXHAUSTED (turret/error_mapping.hpp). The rejection carries
// its Retry-After as a value (rate_limited_error: the time until the bucket would admit the request, rounded up to
// whole seconds, at least 1), which the HTTP mapping sends. Counted in turret_rate_limit_rejected_total{pipeline}.
//
// # Permits
// The token is spent when call() starts. A permit dropped unspent (a timeout above, the inner ready() failing, a
// load_shed above) gives its token back, as does try_call_now when the inner fast path declines (nullopt: no side
// effect is left). Giving back moves TAT back by T; the bucket never exceeds `burst` tokens, since a request
// measures from max(TAT, now).
//
// try_ready (load_shed's probe): a token with one CAS (global, per_client), else nullopt when max_wait > 0 (ready()
// would wait) or the rejection when max_wait is 0; then the inner probe, whose wait, if any, is deferred to call().
//
// # State
// The buckets belong to the layer object: every service it wraps shares them (tower's RateLimit is per service;
// here a copied or re-wrapped service never multiplies the rate). A layer built from config takes them from the
// layer_context (shared_state), so a reload keeps them for an unchanged entry.
//
// Threading: any thread, any number of requests; the layer's clock must be thread-safe (both clocks are).
#include <turret/clock.hpp>
#include <turret/fast_clock.hpp>
#include <turret/error.hpp>
#include <turret/layer_context.hpp>
#include <turret/request_traits.hpp>
#include <turret/service.hpp>

#include <boost/asio/error.hpp>
#include <boost/system/error_category.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

namespace turret {

namespace metrics {
class counter;
}

enum class rate_limit_errc {
  limited = 1,  ///< "rate limit exceeded"; condition overloaded
};

/// The category "turret.rate_limit" (a retry_after_category: turret/error_mapping.hpp).
const boost::system::error_category& rate_limit_category() noexcept;
inline error_code make_error_code(rate_limit_errc e) noexcept { return {static_cast<int>(e), rate_limit_category()}; }

/// The rejection of a request its bucket would admit in `wait_ns`: rate_limit_errc::limited (same message and
/// condition) carrying Retry-After = wait rounded up to whole seconds, at least 1 (at most about 97 days). Its value
/// is limited | seconds << 8, so compare rejections with is_rate_limited(), not == rate_limit_errc::limited.
error_code rate_limited_error(std::int64_t wait_ns) noexcept;
/// True for every rate_limit rejection (with a Retry-After or without).
bool is_rate_limited(const error_code& ec) noexcept;
/// The Retry-After seconds a rejection carries; 0 for any other error and for a bare rate_limit_errc::limited.
int rate_limit_retry_after(const error_code& ec) noexcept;

}  // namespace turret

template <>
struct boost::system::is_error_code_enum<turret::rate_limit_errc> : std::true_type {};

namespace turret {

class config_node;

/// Number of turret::traffic_class values (buckets of per_command_class).
inline constexpr std::size_t traffic_class_count = 5;

/// Immutable configuration.
struct rate_limit_config {
  enum class scope_kind { global, per_client, per_command_class };
  /// A rate as tokens per `per` (1000/s = {1000, 1s}).
  struct rate {
    double tokens = 1000;
    std::chrono::nanoseconds per{std::chrono::seconds(1)};
    /// Nanoseconds between two tokens (>= 1).
    std::int64_t interval_ns() const noexcept;
    double per_second() const noexcept { return tokens * 1e9 / static_cast<double>(per.count()); }
  };
  scope_kind scope = scope_kind::global;
  rate default_rate;
  std::optional<std::uint64_t> burst;        ///< unset: max(1, rate per second) of each bucket
  std::chrono::nanoseconds max_wait{0};
  std::size_t max_clients = 10000;           ///< per_client
  std::array<std::optional<rate>, traffic_class_count> classes;  ///< per_command_class overrides, by traffic_class

  /// The rate of a class's bucket (its override, else the default rate).
  const rate& rate_of(traffic_class c) const noexcept;
  /// The burst of a bucket of rate `r`.
  std::uint64_t burst_of(const rate& r) const noexcept;
};

/// Parses the `rate_limit` entry (see the top of this file; unknown keys rejected, `classes` only with
/// per_command_class, `max_clients` only with per_client). Throws config_error.
rate_limit_config parse_rate_limit_config(const config_node& entry);

/// Parses "1000/s", "30/m", "0.5/s", "100/h" (nullopt when invalid; at most 1e9 per second).
std::optional<rate_limit_config::rate> parse_rate(std::string_view text) noexcept;

namespace detail {

/// GCRA parameters of one bucket, in nanoseconds.
struct gcra_params {
  std::int64_t interval = 1;   ///< T: time between tokens
  std::int64_t tolerance = 0;  ///< tau = (burst - 1) * T
};

/// One attempt at a bucket: admitted now (wait 0), admitted after `wait` (a reservation), or refused.
struct gcra_step {
  bool ok = false;
  std::int64_t wait = 0;  ///< ns until the token is due (when refused: how long it would have been)
  std::int64_t next = 0;  ///< the new TAT when ok
};

/// The GCRA decision for TAT `tat` at time `now`, accepting a wait up to `max_wait`.
inline gcra_step gcra_decide(std::int64_t tat, std::int64_t now, const gcra_params& p, std::int64_t max_wait) noexcept {
  const std::int64_t base = tat > now ? tat : now;
  const std::int64_t due = base - p.tolerance - now;
  gcra_step s;
  s.wait = due > 0 ? due : 0;
  s.ok = s.wait <= max_wait;
  s.next = base + p.interval;
  return s;
}

/// A lock-free bucket: one atomic TAT on its own cache line.
struct alignas(64) atomic_bucket {
  std::atomic<std::int64_t> tat{0};
  gcra_params params;

  gcra_step take(std::int64_t now, std::int64_t max_wait) noexcept {
    std::int64_t cur = tat.load(std::memory_order_relaxed);
    for (;;) {
      const gcra_step s = gcra_decide(cur, now, params, max_wait);
      if (!s.ok) return s;
      if (tat.compare_exchange_weak(cur, s.next, std::memory_order_acq_rel, std::memory_order_relaxed)) return s;
    }
  }
  void give_back() noexcept { tat.fetch_sub(params.interval, std::memory_order_acq_rel); }
};

/// per_client buckets: sharded LRU maps of fixed total capacity.
class client_buckets {
 public:
  client_buckets(std::size_t max_clients, gcra_params params);
  ~client_buckets();
  client_buckets(const client_buckets&) = delete;
  client_buckets& operator=(const client_buckets&) = delete;

  gcra_step take(std::uint64_t key, std::int64_t now, std::int64_t max_wait);
  /// Gives a token back to `key`'s bucket (no effect when it has been evicted meanwhile: it is then full).
  void give_back(std::uint64_t key) noexcept;
  /// Clients tracked now (at most max_clients).
  std::size_t size() const;
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  struct shard;
  shard& shard_of(std::uint64_t key) const noexcept;
  std::size_t capacity_;
  gcra_params params_;
  std::size_t shard_count_;
  std::unique_ptr<shard[]> shards_;
};

/// The bucket key of a request_context for per_client: its identity when authenticated, else its peer address.
std::uint64_t client_key(request_context& ctx);

}  // namespace detail

/// The buckets of one rate_limit entry (carried over by a reload when the entry is unchanged).
class rate_limit_state {
 public:
  explicit rate_limit_state(const rate_limit_config& cfg);

  detail::atomic_bucket& global() noexcept { return classes_[0]; }
  detail::atomic_bucket& of_class(traffic_class c) noexcept { return classes_[static_cast<std::size_t>(c)]; }
  detail::client_buckets& clients() noexcept { return *clients_; }

 private:
  std::array<detail::atomic_bucket, traffic_class_count> classes_;  ///< global uses [0]
  std::unique_ptr<detail::client_buckets> clients_;
};

namespace detail {

/// What the services of one layer share: configuration, clock, buckets, counter.
struct rate_limit_shared {
  rate_limit_config cfg;
  std::shared_ptr<clock> clk;
  std::shared_ptr<rate_limit_state> state;
  metrics::counter* rejected = nullptr;  ///< turret_rate_limit_rejected_total{pipeline}
  std::int64_t max_wait = 0;

  /// Which bucket a token comes from: a class (global: read's slot 0) or a client key.
  struct bucket_ref {
    std::uint64_t key = 0;
    std::uint8_t cls = 0;
  };

  duration_clock timing{steady_clock()};  ///< on clk (set with it): the buckets' time base (turret/fast_clock.hpp)

  /// The buckets' time base: every arrival time a bucket keeps is on it (waits are relative durations, so a
  /// bucket never mixes it with the clock's time points).
  std::int64_t now_ns() const noexcept { return timing.now_ns(); }
  /// The bucket of a request known only by its context (global, per_client).
  bucket_ref ref_for(request_context& ctx) const {
    if (cfg.scope == rate_limit_config::scope_kind::per_client) return {client_key(ctx), 0};
    return {};
  }
  static bucket_ref ref_for(traffic_class c) noexcept { return {0, static_cast<std::uint8_t>(c)}; }

  gcra_step take(const bucket_ref& b, std::int64_t now, std::int64_t wait_limit) const {
    if (cfg.scope == rate_limit_config::scope_kind::per_client) return state->clients().take(b.key, now, wait_limit);
    return state->of_class(static_cast<traffic_class>(b.cls)).take(now, wait_limit);
  }
  void give_back(const bucket_ref& b) const noexcept {
    if (cfg.scope == rate_limit_config::scope_kind::per_client) {
      state->clients().give_back(b.key);
    } else {
      state->of_class(static_cast<traffic_class>(b.cls)).give_back();
    }
  }
  void count_reject() const noexcept;
};

}  // namespace detail

/// RAII ownership of one token: given back when dropped unspent.
class rate_token {
 public:
  rate_token() noexcept = default;
  rate_token(const detail::rate_limit_shared* sh, detail::rate_limit_shared::bucket_ref b) noexcept : sh_(sh), b_(b) {}
  rate_token(rate_token&& o) noexcept : sh_(std::exchange(o.sh_, nullptr)), b_(o.b_) {}
  rate_token& operator=(rate_token&& o) noexcept {
    if (this != &o) {
      reset();
      sh_ = std::exchange(o.sh_, nullptr);
      b_ = o.b_;
    }
    return *this;
  }
  ~rate_token() { reset(); }
  /// Gives the token back (no effect when none is held).
  void reset() noexcept {
    if (sh_) std::exchange(sh_, nullptr)->give_back(b_);
  }
  /// The request goes through: the token is used up.
  void spend() noexcept { sh_ = nullptr; }
  explicit operator bool() const noexcept { return sh_ != nullptr; }

 private:
  const detail::rate_limit_shared* sh_ = nullptr;
  detail::rate_limit_shared::bucket_ref b_;
};

template <class S>
class rate_limit_service {
 public:
  using response_type = typename S::response_type;
  using scope_kind = rate_limit_config::scope_kind;

  /// The token (none for per_command_class: taken in call()) and the inner permit (empty when try_ready deferred
  /// the inner readiness to call()).
  struct permit_type {
    rate_token token;
    std::optional<typename S::permit_type> inner;
  };

  rate_limit_service(S inner, std::shared_ptr<const detail::rate_limit_shared> shared)
      : inner_(std::move(inner)), shared_(std::move(shared)) {}

  S& inner() noexcept { return inner_; }
  const S& inner() const noexcept { return inner_; }
  const rate_limit_config& config() const noexcept { return shared_->cfg; }
  rate_limit_state& state() const noexcept { return *shared_->state; }

  awaitable<result<permit_type>> ready(request_context& ctx) {
    permit_type p;
    if (shared_->cfg.scope != scope_kind::per_command_class) {
      if (auto ec = co_await take_token(shared_->ref_for(ctx), ctx, p.token)) co_return ec;
    }
    auto r = co_await inner_.ready(ctx);
    if (!r) co_return r.error();
    p.inner.emplace(std::move(*r));
    co_return std::move(p);
  }

  std::optional<result<permit_type>> try_ready(request_context& ctx) {
    const detail::rate_limit_shared& sh = *shared_;
    permit_type p;
    if (sh.cfg.scope != scope_kind::per_command_class) {
      const auto b = sh.ref_for(ctx);
      const detail::gcra_step s = sh.take(b, sh.now_ns(), 0);
      if (!s.ok) {
        if (sh.max_wait > 0) return std::nullopt;
        sh.count_reject();
        return result<permit_type>(rate_limited_error(s.wait));
      }
      p.token = rate_token(&sh, b);
    }
    if (auto r = turret::try_ready(inner_, ctx)) {
      if (!*r) return result<permit_type>(r->error());
      p.inner.emplace(std::move(**r));
    }
    return result<permit_type>(std::move(p));
  }

  /// Synchronous fast path: a token with one CAS, then the inner fast path (its nullopt gives the token back). No
  /// token: nullopt when max_wait > 0 (ready()/call() will wait), else the rejection.
  template <class Request>
    requires immediate_service<S, Request> && contextual_request<Request>
  std::optional<result<response_type>> try_call_now(Request& req) {
    const detail::rate_limit_shared& sh = *shared_;
    const auto b = sh.cfg.scope == scope_kind::per_command_class ? sh.ref_for(request_rate_class(req))
                                                                  : sh.ref_for(req.context());
    const detail::gcra_step s = sh.take(b, sh.now_ns(), 0);
    if (!s.ok) {
      if (sh.max_wait > 0) return std::nullopt;
      sh.count_reject();
      return result<response_type>(rate_limited_error(s.wait));
    }
    rate_token token(&sh, b);
    std::optional<result<response_type>> r = inner_.try_call_now(req);
    if (r) token.spend();
    return r;
  }

  awaitable<result<response_type>> call(permit_type p, auto& req) {
    if (shared_->cfg.scope == scope_kind::per_command_class) {
      request_context none;
      if (auto ec = co_await take_token(shared_->ref_for(request_rate_class(req)), context_or(req, none), p.token))
        co_return ec;
    }
    p.token.spend();
    if (!p.inner) {  // deferred by try_ready
      auto r = co_await deferred_ready(inner_, req);
      if (!r) co_return r.error();
      p.inner.emplace(std::move(*r));
    }
    co_return co_await inner_.call(std::move(*p.inner), req);
  }

 private:
  /// Takes a token of `b` into `out`, waiting up to max_wait (cancellable); an error when refused or cancelled
  /// (the reservation is then given back).
  awaitable<error_code> take_token(detail::rate_limit_shared::bucket_ref b, request_context& ctx, rate_token& out) {
    const detail::rate_limit_shared& sh = *shared_;
    const detail::gcra_step s = sh.take(b, sh.now_ns(), sh.max_wait);
    if (!s.ok) {
      sh.count_reject();
      co_return rate_limited_error(s.wait);
    }
    rate_token token(&sh, b);
    if (s.wait > 0) {
      if (ctx.cancelled()) co_return make_error_code(boost::asio::error::operation_aborted);
      const auto wait = std::chrono::duration_cast<clock::duration>(std::chrono::nanoseconds(s.wait));
      if (auto ec = co_await sleep_for(*sh.clk, wait, ctx.cancel_slot())) co_return ec;
    }
    out = std::move(token);
    co_return error_code{};
  }

  S inner_;
  std::shared_ptr<const detail::rate_limit_shared> shared_;
};

class rate_limit_layer {
 public:
  /// `ctx` gives the clock and the metrics ({pipeline}); `state` the buckets (default: fresh ones).
  explicit rate_limit_layer(rate_limit_config cfg, const layer_context& ctx = {},
                            std::shared_ptr<rate_limit_state> state = nullptr);

  /// Every service of one layer shares its buckets.
  template <class S>
  rate_limit_service<S> wrap(S inner) const {
    return rate_limit_service<S>(std::move(inner), shared_);
  }

  const rate_limit_config& config() const noexcept { return shared_->cfg; }
  rate_limit_state& state() const noexcept { return *shared_->state; }

 private:
  std::shared_ptr<const detail::rate_limit_shared> shared_;
};

}  // namespace turret
