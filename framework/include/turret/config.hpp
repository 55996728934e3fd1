#pragma once
// YAML configuration helpers shared by every piece of config code (turretd, layer factories, front ends).
//
// Config is parsed and validated once at start-up; every error is a `config_error` that names the file, line, column
// and key path, e.g.
//   turret.yaml:12:5: pipeline[0].duration: invalid duration '2x' (expected e.g. 250ms, 2s, 1m)
// Exceptions are fine here: config code never runs on the request path.
//
// `config_node` wraps a YAML node together with its source (file name) and key path, so that typed accessors can
// produce such messages without the caller threading context through. Unknown keys are errors (a typo must never
// be silently ignored): every mapping is checked with `reject_unknown_keys`.
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace turret {

/// Where a config document came from: a file name, or "<embedded>" for a built-in default.
struct config_source {
  std::string name = "<embedded>";
};

/// A configuration error. `what()` is "file:line:column: key.path: message" (line and column 1-based; the position
/// is omitted when unknown, the key path when empty).
class config_error : public std::runtime_error {
 public:
  config_error(std::string file, int line, int column, std::string key, std::string message);
  /// Error without a position (e.g. a value given on the command line).
  config_error(std::string key, std::string message) : config_error("", 0, 0, std::move(key), std::move(message)) {}

  const std::string& file() const noexcept { return file_; }
  int line() const noexcept { return line_; }      ///< 1-based, 0 = unknown
  int column() const noexcept { return column_; }  ///< 1-based, 0 = unknown
  const std::string& key() const noexcept { return key_; }
  const std::string& message() const noexcept { return message_; }

 private:
  std::string file_;
  int line_;
  int column_;
  std::string key_;
  std::string message_;
};

using duration = std::chrono::nanoseconds;

/// Parses "250ms", "2s", "1m", "1.5s", "100us", "2h" (units us, ms, s, m, h; "0" alone is allowed).
/// Returns nullopt when malformed, negative or out of range.
std::optional<duration> try_parse_duration(std::string_view text) noexcept;
/// As try_parse_duration; throws std::invalid_argument with "invalid duration '...' (expected e.g. 250ms, 2s, 1m)".
duration parse_duration(std::string_view text);
/// Formats a duration in the shortest exact unit ("250ms", "2s", "1m").
std::string format_duration(duration d);

/// Parses sizes as Redis does: plain bytes ("1024"), k/m/g = 1000-based, kb/mb/gb = 1024-based, case-insensitive
/// ("512mb", "64kb", "1gb"). Returns nullopt when malformed or out of range.
std::optional<std::uint64_t> try_parse_size(std::string_view text) noexcept;
/// As try_parse_size; throws std::invalid_argument with "invalid size '...' (expected e.g. 1024, 64kb, 512mb)".
std::uint64_t parse_size(std::string_view text);

/// A YAML node with its source and key path. Cheap to copy (YAML::Node and shared_ptr).
class config_node {
 public:
  config_node() = default;
  config_node(YAML::Node node, std::shared_ptr<const config_source> source, std::string path = {})
      : node_(std::move(node)), source_(std::move(source)), path_(std::move(path)) {}

  const YAML::Node& yaml() const noexcept { return node_; }
  const std::string& path() const noexcept { return path_; }
  const config_source& source() const noexcept;
  const std::shared_ptr<const config_source>& source_ptr() const noexcept { return source_; }

  bool defined() const noexcept { return node_.IsDefined(); }
  bool is_null() const noexcept { return !node_.IsDefined() || node_.IsNull(); }
  bool is_map() const noexcept { return defined() && node_.IsMap(); }
  bool is_sequence() const noexcept { return defined() && node_.IsSequence(); }
  bool is_scalar() const noexcept { return defined() && node_.IsScalar(); }

  /// True when this node is a map holding `key` (with any value, null included).
  bool has(std::string_view key) const;
  /// The child `key` of a map (an undefined node when missing; path "parent.key").
  config_node child(std::string_view key) const;
  /// Element i of a sequence (path "parent[i]").
  config_node at(std::size_t i) const;
  std::size_t size() const noexcept { return defined() ? node_.size() : 0; }

  // Structure checks: throw config_error at this node.
  void expect_map() const;        ///< "expected a mapping"; a null/undefined node counts as an empty map
  void expect_sequence() const;   ///< "expected a list"; a null/undefined node counts as an empty list
  /// Every key of this map must be in `allowed`, else config_error "unknown key 'x' (allowed: a, b)" at that key.
  void reject_unknown_keys(std::initializer_list<std::string_view> allowed) const;

  // Scalar conversions of this node (throw config_error on mismatch).
  std::string as_string() const;
  bool as_bool() const;                 ///< true/false/yes/no/on/off
  std::int64_t as_int(std::int64_t min = INT64_MIN, std::int64_t max = INT64_MAX) const;
  double as_double() const;
  duration as_duration() const;
  std::uint64_t as_size() const;

  // Typed field access on a map: required (missing -> "missing required key") or with a default.
  std::string get_string(std::string_view key) const { return required(key).as_string(); }
  std::string get_string(std::string_view key, std::string_view def) const;
  bool get_bool(std::string_view key) const { return required(key).as_bool(); }
  bool get_bool(std::string_view key, bool def) const;
  std::int64_t get_int(std::string_view key, std::int64_t min = INT64_MIN, std::int64_t max = INT64_MAX) const {
    return required(key).as_int(min, max);
  }
  std::int64_t get_int(std::string_view key, std::int64_t def, std::int64_t min, std::int64_t max) const;
  double get_double(std::string_view key) const { return required(key).as_double(); }
  double get_double(std::string_view key, double def) const;
  duration get_duration(std::string_view key) const { return required(key).as_duration(); }
  duration get_duration(std::string_view key, duration def) const;
  std::uint64_t get_size(std::string_view key) const { return required(key).as_size(); }
  std::uint64_t get_size(std::string_view key, std::uint64_t def) const;

  /// The child `key`, which must be present and non-null.
  config_node required(std::string_view key) const;

  /// Throws config_error positioned at this node, naming its path.
  [[noreturn]] void fail(std::string_view message) const;
  /// 1-based position of this node (0 when unknown).
  int line() const noexcept;
  int column() const noexcept;

 private:
  config_node(YAML::Node node, std::shared_ptr<const config_source> source, std::string path, YAML::Mark fallback)
      : node_(std::move(node)), source_(std::move(source)), path_(std::move(path)), fallback_mark_(fallback) {}
  YAML::Mark mark() const noexcept;

  YAML::Node node_;
  std::shared_ptr<const config_source> source_;
  std::string path_;
  /// The parent's position, for missing keys; a root without a position of its own (an empty document) is at 1:1.
  YAML::Mark fallback_mark_ = YAML::Mark();
};

/// A node's content as one line of text, the same for the same content however it is written (block or flow style,
/// quoting, comments, spacing): scalars double-quoted with escapes, maps `{k: v, ...}` in written order, lists
/// `[a, ...]`, null `~`. For comparing configuration (hot reload: an unchanged entry keeps its state).
std::string canonical_text(const YAML::Node& node);

/// Loads a YAML file (syntax errors -> config_error with position). The root is returned with an empty path.
config_node load_config_file(const std::string& file_name);
/// Parses YAML text; `name` is what errors call the source ("<embedded>" for a built-in default).
config_node load_config_string(std::string_view text, std::string name = "<embedded>");

}  // namespace turret
