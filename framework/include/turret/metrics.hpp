#pragma once
// metrics: a small Prometheus registry (counters, gauges, histograms with labels) and the text exposition format
// 0.0.4 (what `GET /metrics` serves).
//
// Model (as prometheus client libraries): a *family* has a name, a help text and label names; each combination of
// label values is one *series*. Families are created once (at start-up, or lazily by a front end) and live as long
// as the registry; series live as long as their family. References returned by `registry::counter()` /
// `family::with()` therefore stay valid, and the intended hot-path use is to look a series up once and cache the
// reference:
//
//   auto& requests = metrics::default_registry().counter("turret_requests_total", "Requests", {"frontend", "status"});
//   metrics::counter& ok = requests.with({"http", "200"});   // lookup: mutex + hash, do it once
//   ok.inc();                                                 // hot path: one relaxed atomic add on a per-thread shard
//
// Thread safety: everything is thread-safe. Counters and histograms are sharded per thread (a fixed number of
// cache-line-padded shards, picked by a thread-local index) so that worker threads do not contend on one cache line;
// exposition sums the shards. The first exclusive_shard_count threads own a shard each and record with plain
// loads and stores (no locked instruction: a few ns less per record); threads beyond share the remaining shards
// and record with atomic adds. Gauges are one atomic (they are set rather than incremented on hot paths).
//
// Callback gauges (`registry::gauge_callback`) are evaluated at exposition time (keys, memory, connections).
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace turret::metrics {

/// Number of per-thread shards of counters and histograms.
inline constexpr std::size_t shard_count = 16;
/// Shards [0, exclusive_shard_count) are owned by one thread each (the first threads to record, a shard freed when
/// its thread exits); the threads beyond share the others, round robin.
inline constexpr std::size_t exclusive_shard_count = 12;

namespace detail {
/// The calling thread's shard, plus `exclusive_bit` when it owns it alone; 0 before its first record.
inline constexpr std::uint32_t exclusive_bit = 0x80000000u;
inline constexpr std::uint32_t assigned_bit = 0x40000000u;
// Defined once, in the framework library (not inline): a plugin reads turretd's variable, never a copy of its own.
extern thread_local std::uint32_t thread_shard_tag;
/// Assigns the calling thread's shard (first record on a thread) and returns its tag.
std::uint32_t assign_thread_shard() noexcept;
inline std::uint32_t thread_shard() noexcept {
  const std::uint32_t t = thread_shard_tag;
  return t != 0 ? t : assign_thread_shard();
}
inline std::size_t shard_index(std::uint32_t tag) noexcept { return tag & 0xffffu; }
/// Adds `n` to one shard's cell: a plain load and store (no locked instruction) when the thread owns the shard
/// alone, a relaxed atomic add when it shares it. Readers (value(), collect()) load the cells relaxed.
template <class T>
inline void shard_add(std::atomic<T>& cell, T n, std::uint32_t tag) noexcept {
  if (tag & exclusive_bit) cell.store(cell.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  else cell.fetch_add(n, std::memory_order_relaxed);
}
}  // namespace detail

/// The calling thread's shard (see exclusive_shard_count).
inline std::size_t this_thread_shard() noexcept { return detail::shard_index(detail::thread_shard()); }

/// A monotonically increasing counter.
class counter {
 public:
  void inc(std::uint64_t n = 1) noexcept {
    const std::uint32_t tag = detail::thread_shard();
    detail::shard_add<std::uint64_t>(shards_[detail::shard_index(tag)].v, n, tag);
  }
  std::uint64_t value() const noexcept;

 private:
  struct alignas(64) shard {
    std::atomic<std::uint64_t> v{0};
  };
  std::array<shard, shard_count> shards_{};
};

/// A value that goes up and down (stored as a double).
class gauge {
 public:
  void set(double v) noexcept { bits_.store(to_bits(v), std::memory_order_relaxed); }
  void add(double d) noexcept;
  void inc() noexcept { add(1); }
  void dec() noexcept { add(-1); }
  double value() const noexcept { return from_bits(bits_.load(std::memory_order_relaxed)); }

 private:
  static std::uint64_t to_bits(double v) noexcept;
  static double from_bits(std::uint64_t b) noexcept;
  std::atomic<std::uint64_t> bits_{0};
};

/// A histogram with fixed upper bounds (seconds for latencies). Observations are sharded per thread; the sum is
/// kept in nanounits (1e-9) as an integer so that it can be added atomically.
class histogram {
 public:
  explicit histogram(const std::vector<double>* bounds);
  void observe(double v) noexcept;
  /// observe(ns / 1e9) for a duration in nanoseconds, without floating point (the bounds are kept in ns too): what
  /// latency histograms record per request.
  void observe_ns(std::int64_t ns) noexcept;
  /// Cumulative counts per bound (+Inf last), sum and count, summed over shards.
  struct snapshot {
    std::vector<std::uint64_t> cumulative;
    double sum = 0;
    std::uint64_t count = 0;
  };
  snapshot collect() const;

 private:
  const std::vector<double>* bounds_;
  std::vector<std::int64_t> bounds_ns_;  ///< bounds_ in ns, rounded down (observe_ns: ns > bound <=> ns/1e9 > bound)
  struct alignas(64) shard {
    std::unique_ptr<std::atomic<std::uint64_t>[]> buckets;  // bounds + 1 (+Inf)
    std::atomic<std::int64_t> sum_nano{0};
  };
  std::array<shard, shard_count> shards_;
};

/// Default latency buckets (seconds): 50us .. 10s.
const std::vector<double>& default_latency_buckets();

enum class metric_type { counter, gauge, histogram };

/// One labelled family of T (counter, gauge or histogram).
template <class T>
class family {
 public:
  family(std::string name, std::string help, std::vector<std::string> labels, std::vector<double> bounds = {})
      : name_(std::move(name)), help_(std::move(help)), labels_(std::move(labels)), bounds_(std::move(bounds)) {}

  /// The series with these label values (created on first use). The number of values must equal the number of
  /// label names (else std::invalid_argument). The reference is valid for the family's lifetime.
  T& with(std::initializer_list<std::string_view> values) { return with(std::vector<std::string_view>(values)); }
  T& with(const std::vector<std::string_view>& values);

  const std::string& name() const noexcept { return name_; }
  const std::string& help() const noexcept { return help_; }
  const std::vector<std::string>& label_names() const noexcept { return labels_; }
  const std::vector<double>& bounds() const noexcept { return bounds_; }

  /// Calls f(label_values, series) for every series, sorted by label values (under the family's lock).
  template <class F>
  void for_each(F&& f) const {
    std::lock_guard lock(mu_);
    for (const auto& [key, s] : series_) f(s.first, *s.second);
  }

 private:
  std::string name_, help_;
  std::vector<std::string> labels_;
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  // key: label values joined with '\xff'
  std::map<std::string, std::pair<std::vector<std::string>, std::unique_ptr<T>>, std::less<>> series_;
};

/// A set of families, exposed together.
class registry {
 public:
  registry() = default;
  registry(const registry&) = delete;
  registry& operator=(const registry&) = delete;

  /// Families by name: a second call with the same name returns the existing family (its type and labels must
  /// match, else std::invalid_argument). Names and label names must match [a-zA-Z_:][a-zA-Z0-9_:]*.
  family<metrics::counter>& counter(std::string_view name, std::string_view help, std::vector<std::string> labels = {});
  family<metrics::gauge>& gauge(std::string_view name, std::string_view help, std::vector<std::string> labels = {});
  family<metrics::histogram>& histogram(std::string_view name, std::string_view help, std::vector<std::string> labels = {},
                               std::vector<double> bounds = default_latency_buckets());

  /// The family called `name` when it exists and has that type, else null (for readers that must not create one:
  /// INFO's per-pipeline section). Valid for the registry's lifetime.
  const family<metrics::counter>* find_counter(std::string_view name) const;
  const family<metrics::histogram>* find_histogram(std::string_view name) const;

  /// A gauge computed at exposition time; `fn` runs on the scraping thread (keep it cheap and thread-safe).
  /// Registering the same name again replaces the callback (a restarted component re-registers).
  void gauge_callback(std::string_view name, std::string_view help, std::function<double()> fn);

  /// The text exposition format 0.0.4 (families sorted by name; `# HELP` and `# TYPE` lines; label values escaped).
  std::string expose() const;

 private:
  struct entry {
    metric_type type;
    std::unique_ptr<family<metrics::counter>> c;
    std::unique_ptr<family<metrics::gauge>> g;
    std::unique_ptr<family<metrics::histogram>> h;
    std::string help;
    std::function<double()> callback;
  };
  entry& find_or_add(std::string_view name, metric_type type, std::string_view help,
                     const std::vector<std::string>& labels, const std::vector<double>* bounds);

  mutable std::mutex mu_;
  std::map<std::string, entry, std::less<>> families_;
};

/// The process-wide registry (turretd's front ends record here; GET /metrics exposes it).
registry& default_registry();

/// Formats a double as Prometheus does (integers without exponent, +Inf/-Inf/NaN).
std::string format_value(double v);
/// Escapes a label value (backslash, double quote, newline).
std::string escape_label(std::string_view v);

/// The standard request metrics every front end records:
///   turret_requests_total{frontend,command,status}            counter
///   turret_request_duration_seconds{frontend,command}          histogram
///   turret_connections{frontend}                               gauge (open connections)
///   turret_connections_total{frontend}                         counter (accepted)
/// `status` is the protocol's status ("200", "ok", "err", "NOT_FOUND"...). Look series up once and cache them.
struct request_metrics {
  family<metrics::counter>& requests;
  family<metrics::histogram>& duration;
  family<metrics::gauge>& connections;
  family<metrics::counter>& connections_total;

  static request_metrics& get();  ///< the families in default_registry()
};

}  // namespace turret::metrics
