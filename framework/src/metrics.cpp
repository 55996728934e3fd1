#include <turret/metrics.hpp>

#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <stdexcept>

namespace turret::metrics {

namespace detail {

thread_local std::uint32_t thread_shard_tag = 0;

namespace {

/// Owners of the exclusive shards (bit i: shard i is taken).
std::mutex shard_owners_mu;
std::uint32_t shard_owners = 0;
std::atomic<std::uint32_t> next_shared{0};

/// Frees the thread's exclusive shard when it exits; records after that (other thread_local destructors) go to a
/// shared shard.
struct shard_release {
  std::uint32_t index = 0;
  ~shard_release() {
    {
      std::lock_guard lock(shard_owners_mu);
      shard_owners &= ~(1u << index);
    }
    thread_shard_tag = assigned_bit | static_cast<std::uint32_t>(exclusive_shard_count);
  }
};

}  // namespace

std::uint32_t assign_thread_shard() noexcept {
  {
    std::lock_guard lock(shard_owners_mu);
    for (std::uint32_t i = 0; i < exclusive_shard_count; ++i) {
      if ((shard_owners & (1u << i)) == 0) {
        shard_owners |= 1u << i;
        thread_local shard_release release;  // constructed here, once per thread
        release.index = i;
        thread_shard_tag = exclusive_bit | assigned_bit | i;
        return thread_shard_tag;
      }
    }
  }
  constexpr std::uint32_t shared = shard_count - exclusive_shard_count;
  const std::uint32_t i = exclusive_shard_count + next_shared.fetch_add(1, std::memory_order_relaxed) % shared;
  thread_shard_tag = assigned_bit | i;
  return thread_shard_tag;
}

}  // namespace detail

std::uint64_t counter::value() const noexcept {
  std::uint64_t v = 0;
  for (const auto& s : shards_) v += s.v.load(std::memory_order_relaxed);
  return v;
}

std::uint64_t gauge::to_bits(double v) noexcept {
  std::uint64_t b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}
double gauge::from_bits(std::uint64_t b) noexcept {
  double v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}
void gauge::add(double d) noexcept {
  std::uint64_t cur = bits_.load(std::memory_order_relaxed);
  while (!bits_.compare_exchange_weak(cur, to_bits(from_bits(cur) + d), std::memory_order_relaxed)) {
  }
}

histogram::histogram(const std::vector<double>* bounds) : bounds_(bounds) {
  bounds_ns_.reserve(bounds_->size());
  for (double b : *bounds_) {
    const double ns = std::floor(b * 1e9);
    bounds_ns_.push_back(ns >= 9.2e18 ? std::numeric_limits<std::int64_t>::max()
                         : ns <= -9.2e18 ? std::numeric_limits<std::int64_t>::min()
                                         : static_cast<std::int64_t>(ns));
  }
  for (auto& s : shards_) {
    s.buckets.reset(new std::atomic<std::uint64_t>[bounds_->size() + 1]);
    for (std::size_t i = 0; i <= bounds_->size(); ++i) s.buckets[i].store(0, std::memory_order_relaxed);
  }
}

void histogram::observe(double v) noexcept {
  // Upper bounds are few (~16): a linear scan beats a binary search on branch prediction.
  const auto& b = *bounds_;
  std::size_t i = 0;
  while (i < b.size() && v > b[i]) ++i;
  const std::uint32_t tag = detail::thread_shard();
  auto& s = shards_[detail::shard_index(tag)];
  detail::shard_add<std::uint64_t>(s.buckets[i], 1, tag);
  detail::shard_add<std::int64_t>(s.sum_nano, static_cast<std::int64_t>(v * 1e9), tag);
}

void histogram::observe_ns(std::int64_t ns) noexcept {
  const auto& b = bounds_ns_;
  std::size_t i = 0;
  while (i < b.size() && ns > b[i]) ++i;
  const std::uint32_t tag = detail::thread_shard();
  auto& s = shards_[detail::shard_index(tag)];
  detail::shard_add<std::uint64_t>(s.buckets[i], 1, tag);
  detail::shard_add<std::int64_t>(s.sum_nano, ns, tag);
}

histogram::snapshot histogram::collect() const {
  snapshot out;
  const std::size_t n = bounds_->size() + 1;
  out.cumulative.assign(n, 0);
  std::int64_t sum = 0;
  for (const auto& s : shards_) {
    for (std::size_t i = 0; i < n; ++i) out.cumulative[i] += s.buckets[i].load(std::memory_order_relaxed);
    sum += s.sum_nano.load(std::memory_order_relaxed);
  }
  for (std::size_t i = 1; i < n; ++i) out.cumulative[i] += out.cumulative[i - 1];
  out.count = out.cumulative[n - 1];
  out.sum = static_cast<double>(sum) / 1e9;
  return out;
}

const std::vector<double>& default_latency_buckets() {
  static const std::vector<double> b{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                     0.01,    0.025,  0.05,    0.1,    0.25,  0.5,    1,
                                     2.5,     5,      10};
  return b;
}

template <class T>
T& family<T>::with(const std::vector<std::string_view>& values) {
  if (values.size() != labels_.size())
    throw std::invalid_argument("metric " + name_ + ": expected " + std::to_string(labels_.size()) + " label values");
  std::string key;
  for (auto v : values) {
    key.append(v);
    key.push_back('\xff');
  }
  std::lock_guard lock(mu_);
  auto it = series_.find(key);
  if (it != series_.end()) return *it->second.second;
  std::vector<std::string> owned(values.begin(), values.end());
  std::unique_ptr<T> s;
  if constexpr (std::is_same_v<T, histogram>) {
    s = std::make_unique<T>(&bounds_);
  } else {
    s = std::make_unique<T>();
  }
  T& ref = *s;
  series_.emplace(std::move(key), std::make_pair(std::move(owned), std::move(s)));
  return ref;
}

template class family<counter>;
template class family<gauge>;
template class family<histogram>;

namespace {

bool valid_name(std::string_view n) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

std::string escape_help(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out.push_back(c);
  }
  return out;
}

void append_labels(std::string& out, const std::vector<std::string>& names, const std::vector<std::string>& values,
                   std::string_view extra_name = {}, std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return;
  out.push_back('{');
  bool first = true;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (!first) out.push_back(',');
    first = false;
    out += names[i];
    out += "=\"";
    out += escape_label(values[i]);
    out.push_back('"');
  }
  if (!extra_name.empty()) {
    if (!first) out.push_back(',');
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out.push_back('"');
  }
  out.push_back('}');
}

}  // namespace

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.17g", v);
    // Prefer the shortest representation that round-trips.
    for (int prec = 1; prec <= 17; ++prec) {
      char tmp[64];
      std::snprintf(tmp, sizeof tmp, "%.*g", prec, v);
      if (std::strtod(tmp, nullptr) == v) {
        std::memcpy(buf, tmp, sizeof tmp);
        break;
      }
    }
  }
  return buf;
}

std::string escape_label(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out.push_back(c);
  }
  return out;
}

registry::entry& registry::find_or_add(std::string_view name, metric_type type, std::string_view help,
                                       const std::vector<std::string>& labels, const std::vector<double>* bounds) {
  if (!valid_name(name)) throw std::invalid_argument("invalid metric name '" + std::string(name) + "'");
  for (const auto& l : labels)
    if (!valid_name(l) || l == "le") throw std::invalid_argument("invalid label name '" + l + "'");
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  if (it != families_.end()) {
    const std::vector<std::string>* have = nullptr;
    if (it->second.type == type) {
      if (it->second.c) have = &it->second.c->label_names();
      if (it->second.g) have = &it->second.g->label_names();
      if (it->second.h) have = &it->second.h->label_names();
    }
    if (!have || *have != labels)
      throw std::invalid_argument("metric '" + std::string(name) + "' registered twice with different type/labels");
    return it->second;
  }
  entry e;
  e.type = type;
  e.help = std::string(help);
  switch (type) {
    case metric_type::counter:
      e.c = std::make_unique<family<metrics::counter>>(std::string(name), e.help, labels);
      break;
    case metric_type::gauge:
      e.g = std::make_unique<family<metrics::gauge>>(std::string(name), e.help, labels);
      break;
    case metric_type::histogram: {
      std::vector<double> b = bounds ? *bounds : default_latency_buckets();
      std::sort(b.begin(), b.end());
      e.h = std::make_unique<family<metrics::histogram>>(std::string(name), e.help, labels, std::move(b));
      break;
    }
  }
  return families_.emplace(std::string(name), std::move(e)).first->second;
}

family<metrics::counter>& registry::counter(std::string_view name, std::string_view help, std::vector<std::string> labels) {
  return *find_or_add(name, metric_type::counter, help, labels, nullptr).c;
}
family<metrics::gauge>& registry::gauge(std::string_view name, std::string_view help, std::vector<std::string> labels) {
  auto& e = find_or_add(name, metric_type::gauge, help, labels, nullptr);
  if (!e.g) throw std::invalid_argument("metric '" + std::string(name) + "' is a callback gauge");
  return *e.g;
}
family<metrics::histogram>& registry::histogram(std::string_view name, std::string_view help, std::vector<std::string> labels,
                                       std::vector<double> bounds) {
  return *find_or_add(name, metric_type::histogram, help, labels, &bounds).h;
}

const family<metrics::counter>* registry::find_counter(std::string_view name) const {
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  return it == families_.end() ? nullptr : it->second.c.get();
}
const family<metrics::histogram>* registry::find_histogram(std::string_view name) const {
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  return it == families_.end() ? nullptr : it->second.h.get();
}

void registry::gauge_callback(std::string_view name, std::string_view help, std::function<double()> fn) {
  if (!valid_name(name)) throw std::invalid_argument("invalid metric name '" + std::string(name) + "'");
  std::lock_guard lock(mu_);
  auto& e = families_[std::string(name)];
  if (e.c || e.g || e.h) throw std::invalid_argument("metric '" + std::string(name) + "' already registered");
  e.type = metric_type::gauge;
  e.help = std::string(help);
  e.callback = std::move(fn);
}

std::string registry::expose() const {
  // Callback gauges run outside the registry lock: a callback takes its component's own locks (the store's), and
  // that component may register metrics while holding them; calling it under mu_ would order the two locks both
  // ways (TSan: lock-order inversion between the store's gauges and /metrics).
  std::vector<std::pair<std::string, std::function<double()>>> callbacks;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, e] : families_)
      if (e.callback) callbacks.emplace_back(name, e.callback);
  }
  std::map<std::string, double, std::less<>> values;
  for (auto& [name, fn] : callbacks) values.emplace(name, fn());

  std::string out;
  out.reserve(4096);
  std::lock_guard lock(mu_);
  for (const auto& family : families_) {
    // (Not a structured binding: the lambdas below capture these, which clang before 16 rejects.)
    const std::string& name = family.first;
    const auto& e = family.second;
    if (e.callback && !values.count(name)) continue;  // registered meanwhile: next time
    out += "# HELP ";
    out += name;
    out.push_back(' ');
    out += escape_help(e.help);
    out += "\n# TYPE ";
    out += name;
    out += e.type == metric_type::counter ? " counter\n" : e.type == metric_type::gauge ? " gauge\n" : " histogram\n";
    if (e.callback) {
      out += name;
      out.push_back(' ');
      out += format_value(values.find(name)->second);
      out.push_back('\n');
    } else if (e.c) {
      e.c->for_each([&](const std::vector<std::string>& labels, const metrics::counter& c) {
        out += name;
        append_labels(out, e.c->label_names(), labels);
        out.push_back(' ');
        out += std::to_string(c.value());
        out.push_back('\n');
      });
    } else if (e.g) {
      e.g->for_each([&](const std::vector<std::string>& labels, const metrics::gauge& g) {
        out += name;
        append_labels(out, e.g->label_names(), labels);
        out.push_back(' ');
        out += format_value(g.value());
        out.push_back('\n');
      });
    } else if (e.h) {
      const auto& bounds = e.h->bounds();
      e.h->for_each([&](const std::vector<std::string>& labels, const metrics::histogram& h) {
        const auto snap = h.collect();
        for (std::size_t i = 0; i <= bounds.size(); ++i) {
          out += name;
          out += "_bucket";
          append_labels(out, e.h->label_names(), labels, "le", i < bounds.size() ? format_value(bounds[i]) : "+Inf");
          out.push_back(' ');
          out += std::to_string(snap.cumulative[i]);
          out.push_back('\n');
        }
        out += name;
        out += "_sum";
        append_labels(out, e.h->label_names(), labels);
        out.push_back(' ');
        out += format_value(snap.sum);
        out += '\n';
        out += name;
        out += "_count";
        append_labels(out, e.h->label_names(), labels);
        out.push_back(' ');
        out += std::to_string(snap.count);
        out.push_back('\n');
      });
    }
  }
  return out;
}

registry& default_registry() {
  static registry* r = new registry();  // never destroyed: threads may record during static destruction
  return *r;
}

request_metrics& request_metrics::get() {
  static request_metrics* m = [] {
    auto& r = default_registry();
    return new request_metrics{
        r.counter("turret_requests_total", "Requests handled, by front end, command and status.",
                  {"frontend", "command", "status"}),
        r.histogram("turret_request_duration_seconds", "Request latency in seconds, by front end and command.",
                    {"frontend", "command"}),
        r.gauge("turret_connections", "Open client connections, by front end.", {"frontend"}),
        r.counter("turret_connections_total", "Accepted client connections, by front end.", {"frontend"}),
    };
  }();
  return *m;
}

}  // namespace turret::metrics
