#pragma once
// command_probe (for tests): a pass-through layer that records what it sees of each request's resolved command, the
// metadata every layer may use (kv::request::cmd): whether the front end resolved it, its name, its keys, whether it
// is idempotent, its traffic class, and whether it came on the synchronous fast path or through ready() + call().
// With `immediate` false it declines the fast path, so that requests take the suspending path.
#include <turret/kv/backend.hpp>
#include <turret/kv/request.hpp>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace turret::ops::testing {

/// What the probe saw of one request.
struct seen_command {
  bool resolved = false;   ///< the request carried a resolved command
  bool same_args = false;  ///< ... made over the request's own arguments
  std::string name;        ///< the table entry's name ("get"); empty when unresolved or unknown
  std::vector<std::string> keys;
  bool idempotent = false;
  traffic_class traffic = traffic_class::write;
  bool immediate = false;  ///< came through try_call_now
};

/// What a test expects a probe to have seen of one command.
struct expected_command {
  std::string_view name;
  std::vector<std::string> keys;
  bool idempotent = false;
  traffic_class traffic = traffic_class::write;
};

/// Empty when `seen` was resolved over the request's own arguments, matches `want` and came on the fast path or not
/// as `immediate` says; otherwise what differs (for a test's failure message).
inline std::string differences(const seen_command& seen, const expected_command& want, bool immediate) {
  std::string d;
  auto note = [&](bool bad, std::string_view what) {
    if (bad) d.append(d.empty() ? "" : ", ").append(what);
  };
  note(!seen.resolved, "not resolved");
  note(!seen.same_args, "resolved over other arguments");
  note(seen.name != want.name, "name " + seen.name);
  note(seen.keys != want.keys, "keys");
  note(seen.idempotent != want.idempotent, "idempotent");
  note(seen.traffic != want.traffic, "traffic class");
  note(seen.immediate != immediate, seen.immediate ? "on the fast path" : "not on the fast path");
  return d;
}

/// The requests a probe saw, shared between the probe (on the server's threads) and the test.
class command_log {
 public:
  void add(seen_command c) {
    std::lock_guard lk(mutex_);
    seen_.push_back(std::move(c));
  }
  std::vector<seen_command> take() {
    std::lock_guard lk(mutex_);
    return std::exchange(seen_, {});
  }

 private:
  std::mutex mutex_;
  std::vector<seen_command> seen_;
};

struct command_probe {
  using response_type = kv::response;
  using permit_type = any_permit;

  kv::pipeline_service inner;
  std::shared_ptr<command_log> log;
  bool immediate = true;

  awaitable<result<any_permit>> ready(request_context& ctx) { return inner.ready(ctx); }
  awaitable<result<kv::response>> call(any_permit p, kv::request& r) {
    note(r, false);
    co_return co_await inner.call(std::move(p), r);
  }
  std::optional<result<kv::response>> try_call_now(kv::request& r) {
    if (!immediate) return std::nullopt;
    note(r, true);
    return inner.try_call_now(r);
  }

 private:
  void note(const kv::request& r, bool now) {
    seen_command c;
    c.immediate = now;
    c.traffic = rate_class(r);
    if (const kv::resolved_command* cmd = r.cmd) {
      c.resolved = true;
      c.same_args = cmd->args.data() == r.args.data() && cmd->args.size() == r.args.size();
      if (cmd->info) c.name = std::string(cmd->info->name);
      for (const kv::key_ref& k : cmd->keys.refs) c.keys.emplace_back(cmd->args[k.index]);
      c.idempotent = cmd->idempotent();
    }
    log->add(std::move(c));
  }
};

}  // namespace turret::ops::testing
