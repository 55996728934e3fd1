// One command through a front end's pipeline (resolved once, dispatched, counted), and the first-reply sink.
#include <turret/ops/run.hpp>

namespace turret::ops {

std::optional<result<kv::response>> exec_now(const target& t, std::span<const std::string_view> args,
                                             kv::reply_builder& out) {
  const kv::resolved_command cmd = kv::resolve(t.table, args);
  kv::request req{t.ctx, t.sess, args, out, &cmd};
  const auto t0 = kv::command_meter::clock::now();
  std::optional<result<kv::response>> r = kv::dispatch_now(t.pipeline, req);
  if (r) t.meter().record(cmd.base, *r, t0, kv::command_meter::clock::now());
  return r;
}

awaitable<result<kv::response>> exec(target t, std::span<const std::string_view> args, kv::reply_builder& out) {
  const kv::resolved_command cmd = kv::resolve(t.table, args);
  kv::request req{t.ctx, t.sess, args, out, &cmd};
  const auto t0 = kv::command_meter::clock::now();
  result<kv::response> r = co_await kv::dispatch(t.pipeline, req);
  t.meter().record(cmd.base, r, t0, kv::command_meter::clock::now());
  co_return r;
}

kv::reply_builder::checkpoint first_reply_builder::mark() const noexcept {
  checkpoint c{static_cast<std::size_t>(state_)};
  if (inner_) {
    const auto m = inner_->mark();
    c.b = m.a;
    c.c = m.b;
  }
  return c;
}

void first_reply_builder::rollback(const checkpoint& to) noexcept {
  state_ = static_cast<first>(to.a);
  if (state_ == first::none) {
    first_.str.clear();
    first_.elements.clear();
    first_.type = kind::null;
  }
  if (inner_) inner_->rollback({to.b, to.c});
}

kv::reply_value* first_reply_builder::first_reply_slow(status& st) {
  if (state_ == first::none) {
    st = status::unexpected("no reply");
    return nullptr;
  }
  if (state_ == first::scalar && first_.is_error()) {
    st = status::redis_error(first_.str);
    return nullptr;
  }
  if (inner_) {  // containers, or more than one top-level reply
    std::vector<kv::reply_value> more = inner_->take();
    for (const auto& v : more) {
      if (v.is_error()) {
        st = status::redis_error(v.str);
        return nullptr;
      }
    }
    if (state_ == first::inner) {
      if (more.empty()) {
        st = status::unexpected("no reply");
        return nullptr;
      }
      first_ = std::move(more.front());
    }
  }
  return &first_;
}

}  // namespace turret::ops
