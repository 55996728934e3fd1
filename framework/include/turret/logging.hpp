#pragma once
// Logging setup (spdlog) and structured fields.
//
// Formats
// - text: `[2024-05-01 12:00:00.123] [info] message key=value ...`
// - json: one object per line: {"ts":"2024-05-01T12:00:00.123456Z","level":"info","msg":"...","request_id":"..."}
//
// Use spdlog as usual (`spdlog::info("listening on {}", addr)`); to attach fields use turret::log(level, fields, msg)
// (fields are added as extra keys in JSON, as ` key=value` in text).
#include <spdlog/spdlog.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace turret {

class config_node;

struct logging_config {
  spdlog::level::level_enum level = spdlog::level::info;
  bool json = false;
};

/// Parses "trace|debug|info|warn|error" (throws config_error naming "logging.level" otherwise).
spdlog::level::level_enum parse_log_level(std::string_view level);
/// Parses the `logging:` section ({level, format}; unknown keys rejected; defaults info/text).
logging_config parse_logging_config(const config_node& section);

/// Installs the default logger (stderr) with `level` and `format` ("text" | "json"). Invalid values -> config_error.
void init_logging(std::string_view level, std::string_view format);
void init_logging(const logging_config& cfg);

using log_field = std::pair<std::string_view, std::string_view>;

/// Logs `msg` with extra fields (e.g. {{"request_id", ctx.request_id()}}) through the default logger.
void log(spdlog::level::level_enum level, std::initializer_list<log_field> fields, std::string_view msg);

/// Escapes a string for inclusion in a JSON string literal (without the quotes).
std::string json_escape(std::string_view s);

}  // namespace turret
