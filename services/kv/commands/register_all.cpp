// command_table::make_default: the table with every command family of the in-process core bound (the table itself
// is part of the contract, <turret/kv/command_table.hpp>; the handlers are the core's).
#include <services/kv/command.hpp>
#include <turret/kv/command_table.hpp>

#include <memory>

namespace turret::kv {

std::shared_ptr<command_table> command_table::make_default() {
  auto t = std::make_shared<command_table>();
  register_connection_commands(*t);
  register_server_commands(*t);
  register_key_commands(*t);
  register_string_commands(*t);
  register_bitmap_commands(*t);
  register_pubsub_commands(*t);
  register_transaction_commands(*t);
  return t;
}

}  // namespace turret::kv
