#include <turret/config.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>

namespace turret {

namespace {

std::string make_what(const std::string& file, int line, int column, const std::string& key,
                      const std::string& message) {
  std::string out;
  if (!file.empty()) {
    out += file;
    if (line > 0) {
      out += ':' + std::to_string(line);
      if (column > 0) out += ':' + std::to_string(column);
    }
    out += ": ";
  }
  if (!key.empty()) out += key + ": ";
  out += message;
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

config_error::config_error(std::string file, int line, int column, std::string key, std::string message)
    : std::runtime_error(make_what(file, line, column, key, message)),
      file_(std::move(file)),
      line_(line),
      column_(column),
      key_(std::move(key)),
      message_(std::move(message)) {}

// ---- durations and sizes -----------------------------------------------------------------------------------------

std::optional<duration> try_parse_duration(std::string_view text) noexcept {
  if (text == "0") return duration::zero();
  std::size_t i = 0;
  unsigned __int128 int_part = 0;
  std::size_t int_digits = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    int_part = int_part * 10 + static_cast<unsigned>(text[i] - '0');
    if (int_part > (static_cast<unsigned __int128>(1) << 100)) return std::nullopt;
    ++i;
    ++int_digits;
  }
  unsigned __int128 frac = 0, frac_scale = 1;
  std::size_t frac_digits = 0;
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      if (frac_digits < 18) {
        frac = frac * 10 + static_cast<unsigned>(text[i] - '0');
        frac_scale *= 10;
      }
      ++frac_digits;
      ++i;
    }
    if (frac_digits == 0) return std::nullopt;
  }
  if (int_digits == 0 && frac_digits == 0) return std::nullopt;
  const std::string_view unit = text.substr(i);
  std::uint64_t ns_per_unit = 0;
  if (unit == "ns") ns_per_unit = 1;
  else if (unit == "us") ns_per_unit = 1'000;
  else if (unit == "ms") ns_per_unit = 1'000'000;
  else if (unit == "s") ns_per_unit = 1'000'000'000;
  else if (unit == "m") ns_per_unit = 60'000'000'000ULL;
  else if (unit == "h") ns_per_unit = 3'600'000'000'000ULL;
  else return std::nullopt;
  const unsigned __int128 total = int_part * ns_per_unit + frac * ns_per_unit / frac_scale;
  if (total > static_cast<unsigned __int128>(std::numeric_limits<duration::rep>::max())) return std::nullopt;
  return duration(static_cast<duration::rep>(total));
}

duration parse_duration(std::string_view text) {
  if (auto d = try_parse_duration(text)) return *d;
  throw std::invalid_argument("invalid duration '" + std::string(text) + "' (expected e.g. 250ms, 2s, 1m)");
}

std::string format_duration(duration d) {
  const auto n = d.count();
  if (n == 0) return "0";
  struct unit {
    std::int64_t ns;
    const char* name;
  };
  static constexpr unit units[] = {{3'600'000'000'000LL, "h"}, {60'000'000'000LL, "m"}, {1'000'000'000LL, "s"},
                                   {1'000'000LL, "ms"},       {1'000LL, "us"},          {1LL, "ns"}};
  for (const auto& u : units) {
    if (n % u.ns == 0) return std::to_string(n / u.ns) + u.name;
  }
  return std::to_string(n) + "ns";
}

std::optional<std::uint64_t> try_parse_size(std::string_view text) noexcept {
  std::size_t i = 0;
  std::uint64_t value = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  if (i == 0) return std::nullopt;
  auto [p, ec] = std::from_chars(text.data(), text.data() + i, value);
  if (ec != std::errc{}) return std::nullopt;
  const std::string_view unit = text.substr(i);
  std::uint64_t mul = 1;
  if (unit.empty() || iequals(unit, "b")) mul = 1;
  else if (iequals(unit, "k")) mul = 1000;
  else if (iequals(unit, "kb")) mul = 1024;
  else if (iequals(unit, "m")) mul = 1000 * 1000;
  else if (iequals(unit, "mb")) mul = 1024 * 1024;
  else if (iequals(unit, "g")) mul = 1000ULL * 1000 * 1000;
  else if (iequals(unit, "gb")) mul = 1024ULL * 1024 * 1024;
  else return std::nullopt;
  if (value > std::numeric_limits<std::uint64_t>::max() / mul) return std::nullopt;
  return value * mul;
}

std::uint64_t parse_size(std::string_view text) {
  if (auto s = try_parse_size(text)) return *s;
  throw std::invalid_argument("invalid size '" + std::string(text) + "' (expected e.g. 1024, 64kb, 512mb)");
}

// ---- config_node -------------------------------------------------------------------------------------------------

const config_source& config_node::source() const noexcept {
  static const config_source embedded{};
  return source_ ? *source_ : embedded;
}

YAML::Mark config_node::mark() const noexcept {
  try {
    if (node_.IsDefined()) {
      YAML::Mark m = node_.Mark();
      if (!m.is_null()) return m;
    }
  } catch (...) {
  }
  return fallback_mark_;
}

int config_node::line() const noexcept {
  const auto m = mark();
  return m.is_null() ? 0 : m.line + 1;
}
int config_node::column() const noexcept {
  const auto m = mark();
  return m.is_null() ? 0 : m.column + 1;
}

void config_node::fail(std::string_view message) const {
  throw config_error(source().name, line(), column(), path_, std::string(message));
}

bool config_node::has(std::string_view key) const {
  if (!is_map()) return false;
  return node_[std::string(key)].IsDefined();
}

config_node config_node::child(std::string_view key) const {
  std::string path = path_.empty() ? std::string(key) : path_ + "." + std::string(key);
  const YAML::Mark m = mark();
  if (!is_map()) return config_node(YAML::Node(YAML::NodeType::Undefined), source_, std::move(path), m);
  const YAML::Node& self = node_;
  return config_node(self[std::string(key)], source_, std::move(path), m);
}

config_node config_node::at(std::size_t i) const {
  std::string path = path_ + "[" + std::to_string(i) + "]";
  const YAML::Mark m = mark();
  if (!is_sequence() || i >= node_.size())
    return config_node(YAML::Node(YAML::NodeType::Undefined), source_, std::move(path), m);
  const YAML::Node& self = node_;
  return config_node(self[i], source_, std::move(path), m);
}

void config_node::expect_map() const {
  if (is_null() || is_map()) return;
  fail("expected a mapping");
}

void config_node::expect_sequence() const {
  if (is_null() || is_sequence()) return;
  fail("expected a list");
}

void config_node::reject_unknown_keys(std::initializer_list<std::string_view> allowed) const {
  expect_map();
  if (!is_map()) return;
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    const std::string key = it->first.Scalar();
    if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
    std::string list;
    for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    const YAML::Mark m = it->first.Mark();
    const std::string path = path_.empty() ? key : path_ + "." + key;
    throw config_error(source().name, m.is_null() ? 0 : m.line + 1, m.is_null() ? 0 : m.column + 1, path,
                       "unknown key '" + key + "' (allowed: " + list + ")");
  }
}

config_node config_node::required(std::string_view key) const {
  config_node c = child(key);
  if (!c.defined()) {
    if (!is_map() && !is_null()) fail("expected a mapping");
    throw config_error(source().name, line(), column(), c.path_, "missing required key");
  }
  if (c.is_null()) c.fail("value required");
  return c;
}

std::string config_node::as_string() const {
  if (!is_scalar()) fail("expected a string");
  return node_.Scalar();
}

bool config_node::as_bool() const {
  if (is_scalar()) {
    const std::string& s = node_.Scalar();
    for (const char* t : {"true", "yes", "on"})
      if (iequals(s, t)) return true;
    for (const char* f : {"false", "no", "off"})
      if (iequals(s, f)) return false;
  }
  fail("expected a boolean (true/false), got '" + (is_scalar() ? node_.Scalar() : std::string("<non-scalar>")) +
       "'");
}

std::int64_t config_node::as_int(std::int64_t min, std::int64_t max) const {
  if (!is_scalar()) fail("expected an integer");
  const std::string& s = node_.Scalar();
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size()) fail("expected an integer, got '" + s + "'");
  if (v < min || v > max)
    fail("value " + s + " out of range [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  return v;
}

double config_node::as_double() const {
  if (!is_scalar()) fail("expected a number");
  const std::string& s = node_.Scalar();
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v)) fail("expected a number, got '" + s + "'");
  return v;
}

duration config_node::as_duration() const {
  if (!is_scalar()) fail("expected a duration (e.g. 250ms, 2s, 1m)");
  const std::string& s = node_.Scalar();
  if (auto d = try_parse_duration(s)) return *d;
  fail("invalid duration '" + s + "' (expected e.g. 250ms, 2s, 1m)");
}

std::uint64_t config_node::as_size() const {
  if (!is_scalar()) fail("expected a size (e.g. 1024, 64kb, 512mb)");
  const std::string& s = node_.Scalar();
  if (auto v = try_parse_size(s)) return *v;
  fail("invalid size '" + s + "' (expected e.g. 1024, 64kb, 512mb)");
}

std::string config_node::get_string(std::string_view key, std::string_view def) const {
  auto c = child(key);
  return c.is_null() ? std::string(def) : c.as_string();
}
bool config_node::get_bool(std::string_view key, bool def) const {
  auto c = child(key);
  return c.is_null() ? def : c.as_bool();
}
std::int64_t config_node::get_int(std::string_view key, std::int64_t def, std::int64_t min, std::int64_t max) const {
  auto c = child(key);
  return c.is_null() ? def : c.as_int(min, max);
}
double config_node::get_double(std::string_view key, double def) const {
  auto c = child(key);
  return c.is_null() ? def : c.as_double();
}
duration config_node::get_duration(std::string_view key, duration def) const {
  auto c = child(key);
  return c.is_null() ? def : c.as_duration();
}
std::uint64_t config_node::get_size(std::string_view key, std::uint64_t def) const {
  auto c = child(key);
  return c.is_null() ? def : c.as_size();
}

// ---- loading -----------------------------------------------------------------------------------------------------

namespace {
config_node load_impl(std::istream& in, std::string name) {
  auto src = std::make_shared<const config_source>(config_source{std::move(name)});
  try {
    YAML::Node root = YAML::Load(in);
    return config_node(std::move(root), src, "");
  } catch (const YAML::Exception& e) {
    const YAML::Mark& m = e.mark;
    throw config_error(src->name, m.is_null() ? 0 : m.line + 1, m.is_null() ? 0 : m.column + 1, "", e.msg);
  }
}
}  // namespace

config_node load_config_file(const std::string& file_name) {
  std::ifstream in(file_name);
  if (!in) throw config_error(file_name, 0, 0, "", "cannot open file");
  return load_impl(in, file_name);
}

namespace {
void append_canonical(std::string& out, const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) {
    out += '~';
  } else if (n.IsScalar()) {
    out += '"';
    for (const char c : n.Scalar()) {
      if (c == '"' || c == '\\') out += '\\';
      if (c == '\n') {
        out += "\\n";
        continue;
      }
      out += c;
    }
    out += '"';
  } else if (n.IsSequence()) {
    out += '[';
    bool first = true;
    for (const auto& e : n) {
      if (!first) out += ", ";
      first = false;
      append_canonical(out, e);
    }
    out += ']';
  } else {
    out += '{';
    bool first = true;
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (!first) out += ", ";
      first = false;
      append_canonical(out, it->first);
      out += ": ";
      append_canonical(out, it->second);
    }
    out += '}';
  }
}
}  // namespace

std::string canonical_text(const YAML::Node& node) {
  std::string out;
  append_canonical(out, node);
  return out;
}

config_node load_config_string(std::string_view text, std::string name) {
  std::istringstream in{std::string(text)};
  return load_impl(in, std::move(name));
}

}  // namespace turret
