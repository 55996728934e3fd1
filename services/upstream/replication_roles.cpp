#include <turret/upstream/replication_roles.hpp>

#include <charconv>

namespace turret::upstream {

namespace {

std::uint64_t to_u64(std::string_view v) {
  std::uint64_t n = 0;
  std::from_chars(v.data(), v.data() + v.size(), n);
  return n;
}

}  // namespace

std::optional<replication_info> parse_replication_info(std::string_view text) {
  replication_info r;
  r.reachable = true;
  bool has_role = false;
  while (!text.empty()) {
    const auto eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto colon = line.find(':');
    if (line.empty() || line.front() == '#' || colon == std::string_view::npos) continue;
    const std::string_view key = line.substr(0, colon), value = line.substr(colon + 1);
    if (key == "role") {
      has_role = true;
      r.master = value == "master";
    } else if (key == "master_link_status") {
      r.link_up = value == "up";
    } else if (key == "master_repl_offset") {
      r.master_repl_offset = to_u64(value);
    } else if (key == "slave_repl_offset") {
      r.slave_repl_offset = to_u64(value);
    } else if (key == "connected_slaves") {
      r.connected_slaves = static_cast<std::size_t>(to_u64(value));
    }
  }
  if (!has_role) return std::nullopt;
  return r;
}

role_assignment assign_roles(const std::vector<replication_info>& eps, std::size_t current, std::uint64_t max_lag) {
  role_assignment a;
  const std::size_t n = eps.size();
  a.reads.assign(n, false);
  a.lag.assign(n, 0);
  auto is_master = [&](std::size_t i) { return eps[i].reachable && eps[i].master; };
  auto is_replica = [&](std::size_t i) { return eps[i].reachable && !eps[i].master; };
  if (current < n && is_master(current)) {
    a.primary = current;
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      if (is_master(i) && (a.primary == role_assignment::none ||
                           eps[i].connected_slaves > eps[a.primary].connected_slaves))
        a.primary = i;
    }
  }
  const std::uint64_t head = a.primary == role_assignment::none ? 0 : eps[a.primary].master_repl_offset;
  bool any = false;
  for (std::size_t i = 0; i < n; ++i) {
    if (!is_replica(i)) continue;
    a.lag[i] = head > eps[i].slave_repl_offset ? head - eps[i].slave_repl_offset : 0;
    if (eps[i].link_up && a.lag[i] <= max_lag) a.reads[i] = any = true;
  }
  if (any) {
    a.tier = role_assignment::read_tier::replicas;
  } else if (a.primary != role_assignment::none) {
    a.reads[a.primary] = true;
    a.tier = role_assignment::read_tier::primary;
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      if (is_replica(i)) a.reads[i] = any = true;
    }
    a.tier = any ? role_assignment::read_tier::stale_replicas : role_assignment::read_tier::none;
  }
  return a;
}

std::string_view to_string(role_assignment::read_tier t) noexcept {
  switch (t) {
    case role_assignment::read_tier::replicas: return "replicas";
    case role_assignment::read_tier::primary: return "primary";
    case role_assignment::read_tier::stale_replicas: return "stale_replicas";
    case role_assignment::read_tier::none: return "none";
  }
  return "none";
}

}  // namespace turret::upstream
