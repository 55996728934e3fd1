#include <turret/config.hpp>
#include <turret/logging.hpp>

#include <spdlog/details/os.h>
#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>

#include <ctime>
#include <memory>

namespace turret {

namespace {

/// Fields of the log call in progress on this thread (set by turret::log around a synchronous spdlog call).
thread_local const std::initializer_list<log_field>* t_fields = nullptr;

void append(spdlog::memory_buf_t& dest, std::string_view s) { dest.append(s.data(), s.data() + s.size()); }

void append_json_escaped(spdlog::memory_buf_t& dest, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  for (unsigned char c : s) {
    switch (c) {
      case '"': append(dest, "\\\""); break;
      case '\\': append(dest, "\\\\"); break;
      case '\n': append(dest, "\\n"); break;
      case '\r': append(dest, "\\r"); break;
      case '\t': append(dest, "\\t"); break;
      default:
        if (c < 0x20) {
          const char esc[] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
          dest.append(esc, esc + 6);
        } else {
          dest.push_back(static_cast<char>(c));
        }
    }
  }
}

std::string_view level_name(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace: return "trace";
    case spdlog::level::debug: return "debug";
    case spdlog::level::info: return "info";
    case spdlog::level::warn: return "warn";
    case spdlog::level::err: return "error";
    case spdlog::level::critical: return "critical";
    default: return "off";
  }
}

/// {"ts":"...Z","level":"info","msg":"...",<fields>}
class json_formatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    using namespace std::chrono;
    const auto t = msg.time;
    const std::time_t secs = system_clock::to_time_t(t);
    const auto micros = duration_cast<microseconds>(t.time_since_epoch()).count() % 1000000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char ts[64];
    const int n = std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
                                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                                static_cast<long>(micros < 0 ? micros + 1000000 : micros));
    append(dest, "{\"ts\":\"");
    dest.append(ts, ts + n);
    append(dest, "\",\"level\":\"");
    append(dest, level_name(msg.level));
    append(dest, "\",\"msg\":\"");
    append_json_escaped(dest, std::string_view(msg.payload.data(), msg.payload.size()));
    dest.push_back('"');
    if (t_fields) {
      for (const auto& [k, v] : *t_fields) {
        append(dest, ",\"");
        append_json_escaped(dest, k);
        append(dest, "\":\"");
        append_json_escaped(dest, v);
        dest.push_back('"');
      }
    }
    append(dest, "}\n");
  }
  std::unique_ptr<spdlog::formatter> clone() const override { return std::make_unique<json_formatter>(); }
};

/// `%*` in text patterns: " key=value" for each field.
class fields_flag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&, spdlog::memory_buf_t& dest) override {
    if (!t_fields) return;
    for (const auto& [k, v] : *t_fields) {
      dest.push_back(' ');
      append(dest, k);
      dest.push_back('=');
      append(dest, v);
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<fields_flag>(); }
};

}  // namespace

spdlog::level::level_enum parse_log_level(std::string_view level) {
  if (level == "trace") return spdlog::level::trace;
  if (level == "debug") return spdlog::level::debug;
  if (level == "info") return spdlog::level::info;
  if (level == "warn") return spdlog::level::warn;
  if (level == "error") return spdlog::level::err;
  throw config_error("logging.level",
                     "invalid log level '" + std::string(level) + "' (expected trace, debug, info, warn or error)");
}

logging_config parse_logging_config(const config_node& section) {
  logging_config cfg;
  section.reject_unknown_keys({"level", "format"});
  if (auto l = section.child("level"); !l.is_null()) {
    const std::string s = l.as_string();
    try {
      cfg.level = parse_log_level(s);
    } catch (const config_error& e) {
      l.fail(e.message());
    }
  }
  if (auto f = section.child("format"); !f.is_null()) {
    const std::string s = f.as_string();
    if (s == "json") cfg.json = true;
    else if (s == "text") cfg.json = false;
    else f.fail("invalid log format '" + s + "' (expected text or json)");
  }
  return cfg;
}

void init_logging(const logging_config& cfg) {
  std::shared_ptr<spdlog::logger> logger;
  if (cfg.json) {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    sink->set_formatter(std::make_unique<json_formatter>());
    logger = std::make_shared<spdlog::logger>("turret", std::move(sink));
  } else {
    auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    auto f = std::make_unique<spdlog::pattern_formatter>();
    f->add_flag<fields_flag>('*').set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] %v%*");
    sink->set_formatter(std::move(f));
    logger = std::make_shared<spdlog::logger>("turret", std::move(sink));
  }
  logger->set_level(cfg.level);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
}

void init_logging(std::string_view level, std::string_view format) {
  logging_config cfg;
  cfg.level = parse_log_level(level);
  if (format == "json") cfg.json = true;
  else if (format == "text") cfg.json = false;
  else throw config_error("logging.format", "invalid log format '" + std::string(format) + "' (expected text or json)");
  init_logging(cfg);
}

void log(spdlog::level::level_enum level, std::initializer_list<log_field> fields, std::string_view msg) {
  auto* logger = spdlog::default_logger_raw();
  if (!logger->should_log(level)) return;
  t_fields = &fields;
  logger->log(level, msg);
  t_fields = nullptr;
}

std::string json_escape(std::string_view s) {
  spdlog::memory_buf_t buf;
  append_json_escaped(buf, s);
  return std::string(buf.data(), buf.size());
}

}  // namespace turret
