#include <turret/kv/command_table.hpp>

#include <stdexcept>
#include <string>

namespace turret::kv {
namespace {

using namespace std::literals;

// --- generated metadata (services/kv/generated/, scripts/gen_commands.py) -----------------------------------------

struct begin_part {
  key_begin type;
  int index;
  std::string_view keyword;
  int startfrom;
};
struct find_part {
  key_find type;
  int a, b, c;
};
constexpr begin_part begin_index(int pos) { return {key_begin::index, pos, {}, 0}; }
constexpr begin_part begin_keyword(std::string_view kw, int startfrom) { return {key_begin::keyword, 0, kw, startfrom}; }
constexpr begin_part begin_unknown() { return {key_begin::unknown, 0, {}, 0}; }
constexpr find_part find_range(int lastkey, int keystep, int limit) { return {key_find::range, lastkey, keystep, limit}; }
constexpr find_part find_keynum(int keynumidx, int firstkey, int keystep) {
  return {key_find::keynum, keynumidx, firstkey, keystep};
}
constexpr find_part find_unknown() { return {key_find::unknown, 0, 1, 0}; }

constexpr key_spec make_spec(std::uint16_t flags, begin_part b, find_part f) {
  key_spec s;
  s.flags = flags;
  s.begin = b.type;
  s.index = b.index;
  s.keyword = b.keyword;
  s.startfrom = b.startfrom;
  s.find = f.type;
  if (f.type == key_find::keynum) {
    s.keynumidx = f.a;
    s.firstkey = f.b;
    s.keystep = f.c;
  } else {
    s.lastkey = f.a;
    s.keystep = f.b;
    s.limit = f.c;
  }
  return s;
}

constexpr key_spec generated_key_specs[] = {
#define TURRET_KV_KEY_SPEC(flags, begin, find) make_spec(flags, begin_##begin, find_##find),
#include "../generated/redis_key_specs.inc"
#undef TURRET_KV_KEY_SPEC
};

struct generated_row {
  std::string_view name;
  int arity;
  std::uint64_t flags, acl;
  int first, last, step;
  std::size_t spec_first, spec_count;
  getkeys_proc getkeys;
  std::uint8_t turret;
};

constexpr generated_row generated_rows[] = {
#define TURRET_KV_COMMAND(name, arity, flags, acl, first, last, step, spec_first, spec_count, getkeys, turret) \
  {name, arity, static_cast<std::uint64_t>(flags), static_cast<std::uint64_t>(acl), first, last, step, spec_first,  \
   spec_count, getkeys_proc::getkeys, static_cast<std::uint8_t>(turret)},
#include "../generated/redis_commands.inc"
#undef TURRET_KV_COMMAND
};

struct generated_replies {
  std::string_view name, info2, info3, docs2, docs3;
};
constexpr generated_replies generated_reply_rows[] = {
#define TURRET_KV_REPLIES(name, i2, i3, d2, d3) {name, i2, i3, d2, d3},
#include "../generated/redis_replies.inc"
#undef TURRET_KV_REPLIES
};

struct generated_help {
  std::string_view container, help2, help3;
};
constexpr generated_help generated_helps[] = {
#define TURRET_KV_HELP(container, h2, h3) {container, h2, h3},
#include "../generated/redis_replies.inc"
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
    d.acl = r.acl;
    d.first_key = r.first;
    d.last_key = r.last;
    d.key_step = r.step;
    d.key_specs = std::span<const key_spec>(generated_key_specs).subspan(r.spec_first, r.spec_count);
    d.getkeys = r.getkeys;
    d.turret = r.turret;
    d.keys_from = key_source_of(d);
    for (const auto& rr : generated_reply_rows)
      if (rr.name == r.name) {
        d.info2 = rr.info2;
        d.info3 = rr.info3;
        d.docs2 = rr.docs2;
        d.docs3 = rr.docs3;
      }
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

namespace {
void forwarded_only(command_ctx&) {}  // see make_forwarding: never called
}  // namespace

std::shared_ptr<command_table> command_table::make_forwarding() {
  auto t = std::make_shared<command_table>();
  for (auto& d : t->defs_) d.handler = &forwarded_only;
  for (auto& d : t->defs_) {
    if (d.parent) const_cast<command_def*>(d.parent)->subcommands.push_back(&d);  // table order
  }
  t->rebuild_index();
  return t;
}

void command_table::add(std::string_view name, command_handler handler) {
  command_def* def = nullptr;
  for (auto& d : defs_)
    if (iequals(d.name, name)) def = &d;
  if (!def) throw std::invalid_argument("command_table::add: no Redis metadata for '" + std::string(name) + "'");
  if (def->info2.empty())
    throw std::invalid_argument("command_table::add: no COMMAND INFO/DOCS replies for '" + std::string(name) +
                                "': add it to COMMANDS in scripts/gen_commands.py");
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

const command_def* command_table::metadata(std::string_view fullname) const noexcept {
  for (const auto& d : defs_)
    if (iequals(d.name, fullname)) return &d;
  return nullptr;
}

void command_table::reset_stats() const noexcept {
  for (const auto& d : defs_) {
    d.calls = d.rejected_calls = d.failed_calls = d.usec = 0;
  }
}

}  // namespace turret::kv
