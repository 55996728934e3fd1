// kv_command_keys: turret's key extraction and hash slots on the command line, for
// tests/integration/test_command_keys.py, which compares them with redis-server's COMMAND GETKEYSANDFLAGS and
// CLUSTER KEYSLOT.
//
//   kv_command_keys keys    stdin: one argv per line, arguments hex-encoded and separated by one space
//                           stdout, one line each, mirroring COMMAND GETKEYS's checks in its order:
//                             unknown | nokeys | arity | invalid | <complete|incomplete> [pos:flags ...]
//                           (flags: the key_flag bits in hex)
//   kv_command_keys slots   stdin: one hex-encoded key per line; stdout: its hash slot
//
// Commands are looked up among all of redis-server's commands (command_table::metadata), as COMMAND GETKEYS does,
// not only those turretd implements.
#include <turret/kv/command_table.hpp>
#include <turret/kv/command_info.hpp>

#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using turret::kv::command_def;
using turret::kv::command_table;

std::string unhex(std::string_view h) {
  auto val = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) out += static_cast<char>(val(h[i]) * 16 + val(h[i + 1]));
  return out;
}

std::vector<std::string> split_hex(const std::string& line) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= line.size()) {
    auto sp = line.find(' ', pos);
    if (sp == std::string::npos) sp = line.size();
    out.push_back(unhex(std::string_view(line).substr(pos, sp - pos)));
    pos = sp + 1;
  }
  return out;
}

// Redis's lookupCommandLogic over every command: args[0], then args[1] among a container's subcommands.
const command_def* lookup_any(const command_table& t, const std::vector<std::string_view>& args) {
  const command_def* base = nullptr;
  for (const command_def& d : t.all())
    if (!d.parent && turret::kv::iequals(d.name, args[0])) base = &d;
  if (!base || args.size() < 2) return base;
  bool container = false;
  for (const command_def& d : t.all()) container |= d.parent == base;
  if (!container) return base;
  for (const command_def& d : t.all())
    if (d.parent == base && turret::kv::iequals(d.short_name, args[1])) return &d;
  return nullptr;
}

std::string keys_line(const command_table& t, const std::vector<std::string_view>& args) {
  using namespace turret::kv;
  const command_def* cmd = args.empty() || args[0].empty() ? nullptr : lookup_any(t, args);
  if (!cmd) return "unknown";
  if (!cmd->has_keys()) return "nokeys";
  const long argc = static_cast<long>(args.size());
  if ((cmd->arity > 0 && cmd->arity != argc) || argc < -cmd->arity) return "arity";
  command_keys keys;
  extract_keys(*cmd, args, keys);
  std::string out;
  if (keys.status == keys_status::invalid) {
    out = "invalid";
  } else {
    out = keys.status == keys_status::complete ? "complete" : "incomplete";
    for (const key_ref& k : keys.refs) {
      char b[32];
      std::snprintf(b, sizeof b, " %u:%x", k.index, k.flags);
      out += b;
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode != "keys" && mode != "slots") {
    std::fprintf(stderr, "usage: kv_command_keys keys|slots < input\n");
    return 2;
  }
  const command_table table;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (mode == "slots") {
      std::cout << turret::kv::key_hash_slot(unhex(line)) << '\n';
      continue;
    }
    const std::vector<std::string> owned = split_hex(line);
    const std::vector<std::string_view> args(owned.begin(), owned.end());
    std::cout << keys_line(table, args) << '\n';
  }
  return 0;
}
