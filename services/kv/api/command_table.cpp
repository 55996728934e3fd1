#include <turret/kv/command_table.hpp>

#include <stdexcept>
#include <string>

namespace turret::kv {
namespace {

using namespace std::literals;

struct generated_row {
  std::string_view name;
  int arity;
  std::uint64_t flags;
  int first, last, step;
  std::uint64_t acl;
  std::string_view info2, info3, docs2, docs3;
};

struct generated_help {
  std::string_view container, help2, help3;
};

constexpr generated_row generated_rows[] = {
#define TURRET_KV_COMMAND(name, arity, flags, first, last, step, acl, i2, i3, d2, d3) \
  {name, arity, static_cast<std::uint64_t>(flags), first, last, step, static_cast<std::uint64_t>(acl), i2, i3, d2, d3},
#include "../generated/redis_commands.inc"
#undef TURRET_KV_COMMAND
};

constexpr generated_help generated_helps[] = {
#define TURRET_KV_HELP(container, h2, h3) {container, h2, h3},
#include "../generated/redis_commands.inc"
#undef TURRET_KV_HELP
};

inline unsigned char lower(unsigned char c) noexcept { return static_cast<unsigned>(c - 'A') < 26u ? static_cast<unsigned char>(c + 32) : c; }

inline std::size_t hash_name(std::string_view s) noexcept {
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ lower(c)) * 1099511628211ull;
  return static_cast<std::size_t>(h ^ (h >> 29));
}

constexpr std::string_view acl_names[] = {"keyspace", "read", "write", "set", "sortedset", "list", "hash",
                                          "string", "bitmap", "hyperloglog", "geo", "stream", "pubsub", "admin",
                                          "fast", "slow", "blocking", "dangerous", "connection", "transaction",
                                          "scripting"};

}  // namespace

std::uint64_t acl_category_from_name(std::string_view name) noexcept {
  for (std::size_t i = 0; i < std::size(acl_names); ++i)
    if (iequals(name, acl_names[i])) return 1ull << i;
  return 0;
}

command_table::command_table() {
  defs_.reserve(std::size(generated_rows));
  for (const auto& r : generated_rows) {
    command_def d;
    d.name = r.name;
    auto bar = r.name.find('|');
    d.short_name = bar == std::string_view::npos ? r.name : r.name.substr(bar + 1);
    d.arity = r.arity;
    d.flags = r.flags;
    d.first_key = r.first;
    d.last_key = r.last;
    d.key_step = r.step;
    d.acl = r.acl;
    d.info2 = r.info2;
    d.info3 = r.info3;
    d.docs2 = r.docs2;
    d.docs3 = r.docs3;
    static constexpr std::string_view pubsub_ok[] = {"ping", "subscribe", "unsubscribe", "psubscribe",
                                                      "punsubscribe", "quit", "reset"};
    static constexpr std::string_view not_queued[] = {"exec", "discard", "multi", "watch", "quit", "reset"};
    for (auto n : pubsub_ok)
      if (d.name == n) d.dispatch |= dispatch_allowed_in_pubsub;
    for (auto n : not_queued)
      if (d.name == n) d.dispatch |= dispatch_not_queued;
    defs_.push_back(std::move(d));
  }
  for (auto& d : defs_) {
    auto bar = d.name.find('|');
    if (bar == std::string_view::npos) continue;
    auto parent_name = d.name.substr(0, bar);
    for (auto& p : defs_)
      if (p.name == parent_name) d.parent = &p;
  }
  for (const auto& h : generated_helps)
    for (auto& d : defs_)
      if (d.name == h.container) {
        d.help2 = h.help2;
        d.help3 = h.help3;
      }
  rebuild_index();
}

command_table::~command_table() = default;

void command_table::add(std::string_view name, command_handler handler) {
  command_def* def = nullptr;
  for (auto& d : defs_)
    if (iequals(d.name, name)) def = &d;
  if (!def) throw std::invalid_argument("command_table::add: no Redis metadata for '" + std::string(name) + "'");
  def->handler = handler;
  if (def->parent) {
    auto* parent = const_cast<command_def*>(def->parent);
    // keep subcommands in table order
    parent->subcommands.clear();
    for (auto& d : defs_)
      if (d.parent == parent && d.handler) parent->subcommands.push_back(&d);
  }
  rebuild_index();
}

void command_table::rebuild_index() {
  implemented_.clear();
  for (auto& d : defs_)
    if (!d.parent && d.implemented()) implemented_.push_back(&d);
  std::size_t cap = 16;
  while (cap < implemented_.size() * 4) cap <<= 1;
  slots_.assign(cap, nullptr);
  mask_ = cap - 1;
  for (auto* d : implemented_) {
    std::size_t i = hash_name(d->name) & mask_;
    while (slots_[i]) i = (i + 1) & mask_;
    slots_[i] = d;
  }
}

const command_def* command_table::find(std::string_view name) const noexcept {
  if (name.size() > 32 || slots_.empty()) return nullptr;
  std::size_t i = hash_name(name) & mask_;
  for (;;) {
    const command_def* d = slots_[i];
    if (!d) return nullptr;
    if (iequals(d->name, name)) return d;
    i = (i + 1) & mask_;
  }
}

const command_def* command_table::find_sub(const command_def& container, std::string_view sub) noexcept {
  for (const command_def* d : container.subcommands)
    if (iequals(d->short_name, sub)) return d;
  return nullptr;
}

const command_def* command_table::find_full(std::string_view fullname) const noexcept {
  auto bar = fullname.find('|');
  if (bar == std::string_view::npos) return find(fullname);
  const command_def* c = find(fullname.substr(0, bar));
  if (!c) return nullptr;
  return find_sub(*c, fullname.substr(bar + 1));
}

void command_table::reset_stats() const noexcept {
  for (const auto& d : defs_) {
    d.calls = d.rejected_calls = d.failed_calls = d.usec = 0;
  }
}

}  // namespace turret::kv
