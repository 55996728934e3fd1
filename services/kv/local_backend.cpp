// local_backend: the in-process store behind the backend interface.
#include <services/kv/kv_service.hpp>
#include <services/kv/store.hpp>
#include <turret/kv/command_table.hpp>
#include <turret/kv/local.hpp>
#include <turret/kv/value_reply_builder.hpp>

#include <mutex>

namespace turret::kv {

local_backend::local_backend(const store_options& opts)
    : store_(std::make_shared<store>(opts)), table_(command_table::make_default()) {
  store_->set_commands(table_.get());
}

local_backend::~local_backend() = default;

std::uint64_t local_backend::open_session(session& s) { return store_->attach(s); }
void local_backend::close_session(session& s) noexcept { store_->detach(s); }
bool local_backend::auth_required(const session& s) const noexcept { return store_->auth_required(s); }
const client_limits& local_backend::limits() const noexcept { return store_->limits(); }
connection_stats& local_backend::counters() noexcept { return store_->stats(); }
const command_table& local_backend::commands() const noexcept { return *table_; }

backend_summary local_backend::summary() const {
  backend_summary out;
  std::lock_guard lock(store_->mutex());
  out.clients = store_->connected_clients();
  for (int i = 0; i < store_->databases(); ++i) {
    keyspace& db = store_->db(i);
    out.keys += db.size();
    out.expires += db.expires_size();
    out.used_memory += db.memory_usage();
  }
  return out;
}

pipeline_service local_backend::service() { return pipeline_service(kv_service(store_, table_)); }

reply_value local_backend::run(std::span<const std::string_view> args) {
  session s;
  s.resp = 3;
  session_guard guard(*this, s);
  request_context ctx;
  ctx.protocol = "internal";
  value_reply_builder out(3);
  request req{ctx, s, args, out};
  kv_service(store_, table_).execute(req);
  auto replies = out.take();
  return replies.empty() ? reply_value{} : std::move(replies.front());
}

}  // namespace turret::kv
