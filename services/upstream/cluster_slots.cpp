#include <turret/upstream/cluster_slots.hpp>

#include <charconv>

namespace turret::upstream {

namespace {

bool parse_port(std::string_view s, std::uint16_t& out) {
  unsigned v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v == 0 || v > 65535) return false;
  out = static_cast<std::uint16_t>(v);
  return true;
}

std::optional<cluster_address> node_of(const resp::value& v, std::string_view asked_host) {
  if (v.type != resp::value::kind::array || v.elements.size() < 2) return std::nullopt;
  const resp::value& host = v.elements[0];
  const resp::value& port = v.elements[1];
  if (!host.is_string() || port.type != resp::value::kind::integer || port.integer <= 0 || port.integer > 65535)
    return std::nullopt;
  cluster_address a;
  a.host = host.str.empty() || host.str == "?" ? std::string(asked_host) : host.str;
  a.port = static_cast<std::uint16_t>(port.integer);
  return a;
}

}  // namespace

std::string cluster_address::name() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::optional<std::vector<cluster_slot_range>> parse_cluster_slots(const resp::value& reply,
                                                                   std::string_view asked_host) {
  if (reply.type != resp::value::kind::array) return std::nullopt;
  std::vector<cluster_slot_range> out;
  for (const auto& r : reply.elements) {
    if (r.type != resp::value::kind::array || r.elements.size() < 3) return std::nullopt;
    const auto& first = r.elements[0];
    const auto& last = r.elements[1];
    if (first.type != resp::value::kind::integer || last.type != resp::value::kind::integer) return std::nullopt;
    if (first.integer < 0 || last.integer < first.integer ||
        last.integer >= static_cast<long long>(cluster_slot_count))
      return std::nullopt;
    cluster_slot_range range;
    range.first = static_cast<std::uint16_t>(first.integer);
    range.last = static_cast<std::uint16_t>(last.integer);
    auto primary = node_of(r.elements[2], asked_host);
    if (!primary) return std::nullopt;
    range.primary = std::move(*primary);
    for (std::size_t i = 3; i < r.elements.size(); ++i) {
      auto replica = node_of(r.elements[i], asked_host);
      if (!replica) return std::nullopt;
      range.replicas.push_back(std::move(*replica));
    }
    out.push_back(std::move(range));
  }
  return out;
}

std::optional<cluster_redirect> parse_redirect(std::string_view e) {
  cluster_redirect r;
  if (e.starts_with("MOVED ")) {
    r.moved = true;
    e.remove_prefix(6);
  } else if (e.starts_with("ASK ")) {
    e.remove_prefix(4);
  } else {
    return std::nullopt;
  }
  const auto space = e.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  unsigned slot = 0;
  const std::string_view slot_text = e.substr(0, space);
  const auto [end, ec] = std::from_chars(slot_text.data(), slot_text.data() + slot_text.size(), slot);
  if (ec != std::errc() || end != slot_text.data() + slot_text.size() || slot >= cluster_slot_count)
    return std::nullopt;
  r.slot = static_cast<std::uint16_t>(slot);
  std::string_view addr = e.substr(space + 1);
  const auto colon = addr.rfind(':');
  if (colon == std::string_view::npos || !parse_port(addr.substr(colon + 1), r.to.port)) return std::nullopt;
  std::string_view host = addr.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  r.to.host = std::string(host);
  return r;
}

}  // namespace turret::upstream
