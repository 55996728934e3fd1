// split_request: a multi-key command whose keys live in several places (shards, Cluster slots), split and merged
// (upstream_common.hpp).
#include "upstream_common.hpp"

#include <turret/kv/command_table.hpp>
#include <turret/kv/value_reply_builder.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace turret::upstream {

split_kind split_kind_of(std::string_view family) noexcept {
  if (family == "mget") return split_kind::mget;
  if (family == "mset") return split_kind::mset;
  if (family == "del" || family == "exists" || family == "unlink" || family == "touch") return split_kind::sum;
  return split_kind::none;
}

namespace {

/// One part of a split request: its group, its arguments, and where its keys were in the original.
struct part {
  std::size_t group = 0;
  std::vector<std::string_view> args;
  std::vector<std::size_t> positions;  ///< index of each key among the original's keys
};

}  // namespace

awaitable<result<kv::response>> split_request(std::shared_ptr<const void> keep, const kv::command_table& table,
                                              split_kind kind, kv::request& req, split_target target) {
  const std::size_t step = kind == split_kind::mset ? 2 : 1;
  if ((req.args.size() - 1) % step != 0 || req.args.size() < 2) {
    kv::pipeline_service any = target.any();
    co_return co_await ready_and_call(any, req);  // the upstream answers the arity error
  }
  std::vector<part> parts;
  std::size_t nkeys = 0;
  for (std::size_t i = 1; i < req.args.size(); i += step, ++nkeys) {
    const std::size_t g = target.group(req.args[i]);
    part* p = nullptr;
    for (auto& q : parts) {
      if (q.group == g) p = &q;
    }
    if (!p) {
      parts.push_back({g, {req.args[0]}, {}});
      p = &parts.back();
    }
    for (std::size_t j = 0; j < step; ++j) p->args.push_back(req.args[i + j]);
    p->positions.push_back(nkeys);
  }
  std::vector<kv::pipeline_service> services;
  for (const auto& p : parts) {
    auto svc = target.service(p.group);
    if (!svc) co_return error_reply(req, target.unserved);
    services.push_back(std::move(*svc));
  }
  // Every part at once, on this executor. The parts are awaited whatever happens: they refer to this frame.
  struct child {
    std::unique_ptr<kv::attempt_fork> fork;
    kv::resolved_command rc;
    result<kv::response> r = make_error_code(boost::asio::error::operation_aborted);
  };
  if (req.ctx.cancelled()) co_return make_error_code(boost::asio::error::operation_aborted);
  std::vector<child> kids(parts.size());
  auto ex = co_await boost::asio::this_coro::executor;
  boost::asio::steady_timer all_done(ex, boost::asio::steady_timer::time_point::max());
  std::size_t remaining = parts.size();
  for (std::size_t i = 0; i < parts.size(); ++i) {
    child& k = kids[i];
    k.fork = kv::fork_attempt(req);
    k.rc = kv::resolve(table, parts[i].args);
    k.fork->req.args = parts[i].args;
    k.fork->req.cmd = &k.rc;
    boost::asio::co_spawn(
        ex,
        [&k, &remaining, &all_done, svc = services[i]]() mutable -> awaitable<void> {
          k.r = co_await ready_and_call(svc, k.fork->req);
          if (--remaining == 0) all_done.cancel();
        },
        boost::asio::detached);
  }
  if (!req.ctx.cancelled()) {
    req.ctx.cancel_slot().assign([&kids](boost::asio::cancellation_type t) {
      for (auto& k : kids) k.fork->ctx.cancel(t);
    });
  }
  while (remaining > 0) co_await all_done.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
  req.ctx.cancel_slot().clear();
  if (req.ctx.cancelled()) co_return make_error_code(boost::asio::error::operation_aborted);

  std::vector<kv::reply_value> mget(kind == split_kind::mget ? nkeys : 0);
  long long sum = 0;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const part& p = parts[i];
    const auto& r = kids[i].r;
    if (!r) co_return r.error();
    const auto& replies = kids[i].fork->out.replies();
    if (replies.size() != 1) co_return error_reply(req, "ERR unexpected reply from upstream " + target.name(p.group));
    const kv::reply_value& v = replies.front();
    if (v.is_error()) {
      kv::replay(v, req.out);
      kv::response e;
      e.set_error(v.str);
      co_return e;
    }
    if (kind == split_kind::mget) {
      if (v.type != kv::reply_value::kind::array || v.elements.size() != p.positions.size())
        co_return error_reply(req, "ERR unexpected reply from upstream " + target.name(p.group));
      for (std::size_t j = 0; j < p.positions.size(); ++j) mget[p.positions[j]] = v.elements[j];
    } else if (kind == split_kind::sum) {
      if (v.type != kv::reply_value::kind::integer)
        co_return error_reply(req, "ERR unexpected reply from upstream " + target.name(p.group));
      sum += v.integer;
    }
  }
  switch (kind) {
    case split_kind::mget:
      req.out.array(mget.size());
      for (const auto& v : mget) kv::replay(v, req.out);
      break;
    case split_kind::sum: req.out.integer(sum); break;
    default: req.out.ok(); break;
  }
  (void)keep;
  co_return kv::response{};
}

awaitable<void> wait_for(const std::atomic<bool>& flag, std::chrono::milliseconds limit) {
  auto ex = co_await boost::asio::this_coro::executor;
  boost::asio::steady_timer t(ex);
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!flag.load(std::memory_order_acquire) && std::chrono::steady_clock::now() < until) {
    t.expires_after(std::chrono::milliseconds(5));
    co_await t.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
  }
}

}  // namespace turret::upstream
