#include <turret/middleware/access_log.hpp>
#include <turret/config.hpp>
#include <turret/metrics.hpp>

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <random>

namespace turret {

namespace {

/// Writes to a file descriptor, retrying short writes and EINTR.
bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

class fd_sink final : public access_log_sink {
 public:
  explicit fd_sink(int fd) : fd_(fd) {}
  bool write(std::string_view lines) override { return write_all(fd_, lines); }

 private:
  int fd_;
};

class file_sink final : public access_log_sink {
 public:
  explicit file_sink(std::string path) : path_(std::move(path)) {}
  ~file_sink() override {
    if (fd_ >= 0) ::close(fd_);
  }
  bool write(std::string_view lines) override {
    if (fd_ < 0) {
      fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
      if (fd_ < 0) {
        if (!reported_) spdlog::error("access_log: cannot open {}: {}", path_, std::strerror(errno));
        reported_ = true;
        return false;
      }
    }
    if (write_all(fd_, lines)) return true;
    if (!reported_) spdlog::error("access_log: cannot write {}: {}", path_, std::strerror(errno));
    reported_ = true;
    return false;
  }

 private:
  std::string path_;
  int fd_ = -1;
  bool reported_ = false;
};

std::uint64_t random_seed() {
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

/// The length of the valid UTF-8 sequence at s[i], 0 when it is not one (overlong forms, surrogates and values
/// above U+10FFFF are not valid).
std::size_t utf8_length(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  std::size_t n = 0;
  std::uint32_t cp = 0;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3f);
  }
  if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
    return 0;
  return n;
}

void append_u00(std::string& out, unsigned char c) {
  static constexpr char hex[] = "0123456789abcdef";
  out += "\\u00";
  out.push_back(hex[c >> 4]);
  out.push_back(hex[c & 15]);
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (std::size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (c < 0x20 || c == 0x7f) append_u00(out, c);
          else out.push_back(static_cast<char>(c));
      }
      ++i;
      continue;
    }
    if (const std::size_t n = utf8_length(s, i); n != 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      append_u00(out, c);  // not UTF-8: the byte as the code point of the same value
      ++i;
    }
  }
  out.push_back('"');
}

void format_access_log_line(const access_log_record& r, std::string& out) {
  using namespace std::chrono;
  const auto ms = duration_cast<milliseconds>(r.time.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  const int millis = static_cast<int>(ms - static_cast<std::int64_t>(secs) * 1000);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char when[96];  // 24 bytes for any year of 4 digits; room for what the compiler cannot bound
  std::snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  out += "{\"time\":\"";
  out += when;
  out.push_back('"');
  // `,"key":"value"`; optional fields only when not empty
  const auto field = [&out](std::string_view key, std::string_view value, bool optional = false) {
    if (optional && value.empty()) return;
    out += ",\"";
    out += key;
    out += "\":";
    append_json_string(out, value);
  };
  field("request_id", r.request_id);
  field("protocol", r.protocol);
  field("peer", r.peer);
  field("identity", r.identity, true);
  field("command", r.command);
  field("outcome", r.outcome);
  field("error", r.error, true);
  out += ",\"duration_us\":";
  out += std::to_string(r.duration_us);
  out += "}\n";
}

std::shared_ptr<access_log_sink> make_access_log_sink(const std::string& path) {
  if (path == "stdout") return std::make_shared<fd_sink>(STDOUT_FILENO);
  if (path == "stderr") return std::make_shared<fd_sink>(STDERR_FILENO);
  return std::make_shared<file_sink>(path);
}

access_log_config parse_access_log_config(const config_node& entry) {
  entry.reject_unknown_keys({"layer", "path", "sample", "errors", "queue"});
  access_log_config cfg;
  const config_node p = entry.required("path");
  cfg.path = p.as_string();
  if (cfg.path.empty()) p.fail("path must be a file, stdout or stderr");
  if (cfg.path != "stdout" && cfg.path != "stderr") {
    const std::filesystem::path dir = std::filesystem::path(cfg.path).parent_path();
    std::error_code ec;
    if (!dir.empty() && !std::filesystem::is_directory(dir, ec))
      p.fail("directory '" + dir.string() + "' does not exist");
  }
  if (entry.has("sample")) {
    const config_node s = entry.child("sample");
    cfg.sample = s.as_double();
    if (!(cfg.sample >= 0 && cfg.sample <= 1)) s.fail("sample must be between 0 and 1 (a share, e.g. 0.1)");
  }
  if (entry.has("errors")) {
    const config_node e = entry.child("errors");
    const std::string v = e.as_string();
    if (v == "always") cfg.errors_always = true;
    else if (v == "sampled") cfg.errors_always = false;
    else e.fail("unknown value '" + v + "' (expected always or sampled)");
  }
  if (entry.has("queue")) cfg.queue = static_cast<std::size_t>(entry.child("queue").as_int(1, 1 << 24));
  return cfg;
}

namespace detail {

access_log_shared::access_log_shared(access_log_config c, std::shared_ptr<access_log_sink> sink,
                                     const layer_context& ctx,
                                     std::function<std::chrono::system_clock::time_point()> wall_clock)
    : cfg(std::move(c)), clk(ctx.clk), timing(ctx.clk), sink_(std::move(sink)), wall_(std::move(wall_clock)) {
  if (cfg.sample >= 1) always = true;
  else if (cfg.sample > 0) threshold = static_cast<std::uint64_t>(cfg.sample * 18446744073709551616.0);
  if (!wall_) wall_ = [] { return std::chrono::system_clock::now(); };
  dropped_ = &ctx.metrics()
                  .counter("turret_access_log_dropped_total",
                           "Access log lines dropped (queue full or write failed)", {"pipeline"})
                  .with({ctx.pipeline_name});
  lines_ = &ctx.metrics()
                .counter("turret_access_log_lines_total", "Access log lines written", {"pipeline"})
                .with({ctx.pipeline_name});
}

access_log_shared::~access_log_shared() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

void access_log_shared::log(request_context& ctx, std::string_view command, std::string_view outcome,
                            std::string_view error, clock::time_point start) {
  access_log_record rec;
  rec.time = wall_();
  rec.request_id = ctx.request_id();
  rec.protocol = ctx.protocol;
  std::string peer;
  if (const auto& ep = ctx.peer(); ep.port() != 0 || !ep.address().is_unspecified()) {
    const bool v6 = ep.address().is_v6();
    if (v6) peer += '[';
    peer += ep.address().to_string();
    if (v6) peer += ']';
    peer += ':';
    peer += std::to_string(ep.port());
  }
  rec.peer = peer;
  rec.identity = ctx.identity;
  rec.command = command;
  rec.outcome = outcome;
  rec.error = error;
  rec.duration_us = std::chrono::duration_cast<std::chrono::microseconds>(now() - start).count();
  std::string line;
  line.reserve(192 + command.size());
  format_access_log_line(rec, line);
  bool queued = false;
  {
    std::lock_guard lock(mu_);
    if (queue_.size() < cfg.queue) {
      queue_.push_back(std::move(line));
      queued = true;
    }
  }
  if (!queued) {
    dropped_->inc();
    return;
  }
  cv_.notify_one();
}

void access_log_shared::start_writer() {
  std::call_once(started_, [this] { writer_ = std::thread([this] { run_writer(); }); });
}

bool access_log_shared::write_batch(std::deque<std::string>& batch) {
  std::string buf;
  for (const auto& l : batch) buf += l;
  std::lock_guard lock(write_mu_);
  const bool ok = sink_->write(buf);
  (ok ? lines_ : dropped_)->inc(batch.size());
  batch.clear();
  return ok;
}

void access_log_shared::flush() {
  std::deque<std::string> batch;
  {
    std::lock_guard lock(mu_);
    batch.swap(queue_);
  }
  if (!batch.empty()) write_batch(batch);
}

void access_log_shared::run_writer() {
  std::deque<std::string> batch;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty() && stop_) return;
      batch.swap(queue_);
    }
    write_batch(batch);
  }
}

std::uint64_t access_log_shared::dropped() const noexcept { return dropped_->value(); }

}  // namespace detail

access_log_layer::access_log_layer(access_log_config cfg, const layer_context& ctx,
                                   std::shared_ptr<access_log_sink> sink,
                                   std::function<std::chrono::system_clock::time_point()> wall_clock,
                                   std::optional<std::uint64_t> seed)
    : shared_(make_shared_state(std::move(cfg), ctx, std::move(sink), std::move(wall_clock), seed)),
      background_(ctx.rt != nullptr) {}

std::shared_ptr<detail::access_log_shared> access_log_layer::make_shared_state(
    access_log_config cfg, const layer_context& ctx, std::shared_ptr<access_log_sink> sink,
    std::function<std::chrono::system_clock::time_point()> wall_clock, std::optional<std::uint64_t> seed) {
  if (!sink) sink = make_access_log_sink(cfg.path);
  auto shared =
      std::make_shared<detail::access_log_shared>(std::move(cfg), std::move(sink), ctx, std::move(wall_clock));
  shared->salt = request_context::mix64((seed ? *seed : random_seed()) ^ 0x2545f4914f6cdd1dULL);
  return shared;
}

access_log_layer access_log_layer::from_entry(const config_node& entry, const layer_context& ctx) {
  access_log_config cfg = parse_access_log_config(entry);
  auto shared = ctx.shared_state<detail::access_log_shared>(
      entry, [&] { return make_shared_state(std::move(cfg), ctx, nullptr, {}, std::nullopt); });
  return access_log_layer(std::move(shared), ctx.rt != nullptr);
}

}  // namespace turret
