#include <services/kv/kv_service.hpp>

#include <turret/kv/command_table.hpp>
#include <services/kv/dispatch.hpp>
#include <services/kv/store.hpp>

#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <exception>
#include <stdexcept>

namespace turret::kv {
namespace {

/// CLIENT REPLY OFF/SKIP: swallows a command's reply except its push frames (SUBSCRIBE & co. confirmations), which
/// redis-server 7.0 sends whatever the reply mode (its CLIENT_PUSHING flag), in RESP2 as in RESP3.
class silenced_reply_builder final : public reply_builder {
 public:
  explicit silenced_reply_builder(reply_builder& out) : out_(out) {}
  void simple(std::string_view s) override {
    if (pass()) out_.simple(s);
  }
  void error(std::string_view s) override {
    if (pass()) out_.error(s);
  }
  void integer(long long v) override {
    if (pass()) out_.integer(v);
  }
  void bulk(std::string_view s) override {
    if (pass()) out_.bulk(s);
  }
  void null_bulk() override {
    if (pass()) out_.null_bulk();
  }
  void null_array() override {
    if (pass()) out_.null_array();
  }
  void array(std::size_t n) override {
    if (pass(n)) out_.array(n);
  }
  void map(std::size_t n) override {
    if (pass(2 * n)) out_.map(n);
  }
  void set(std::size_t n) override {
    if (pass(n)) out_.set(n);
  }
  void push(std::size_t n) override {
    if (pending_ == 0) pending_ = 1;  // a push frame starts: it (and then its n elements) go out
    if (pass(n)) out_.push(n);
  }
  void dbl(double v) override {
    if (pass()) out_.dbl(v);
  }
  void boolean(bool v) override {
    if (pass()) out_.boolean(v);
  }
  void verbatim(std::string_view s, std::string_view f) override {
    if (pass()) out_.verbatim(s, f);
  }
  void big_number(std::string_view d) override {
    if (pass()) out_.big_number(d);
  }
  void raw(std::string_view r) override {
    if (pass()) out_.raw(r);
  }
  int protocol() const noexcept override { return out_.protocol(); }
  // Marks are taken between commands, never inside a push frame: a rollback leaves no frame open.
  checkpoint mark() const noexcept override { return out_.mark(); }
  void rollback(const checkpoint& to) noexcept override {
    out_.rollback(to);
    pending_ = 0;
  }

 private:
  // One element written: forwarded while a push frame is open. An aggregate opens `children` more elements.
  bool pass(std::size_t children = 0) noexcept {
    if (pending_ == 0) return false;
    pending_ = pending_ - 1 + children;
    return true;
  }
  reply_builder& out_;
  std::size_t pending_ = 0;  ///< elements of the open push frame still to forward (the frame's header included)
};

void reject(store& st, session& s, const command_def* cmd, reply_builder& out, std::string_view msg) {
  if (s.in_multi) s.multi_error = true;
  if (cmd) ++cmd->rejected_calls;
  if (cmd && cmd->name == "exec") {
    // Redis's execCommandAbort: a rejected EXEC discards the transaction and says why.
    s.queued.clear();
    s.in_multi = false;
    s.multi_error = false;
    st.unwatch_all(s);
    if (msg.substr(0, 4) == "ERR ") msg.remove_prefix(4);
    std::string m = "EXECABORT Transaction discarded because of: ";
    m.append(msg);
    reply_error(st, out, m);
    return;
  }
  reply_error(st, out, msg);
}

}  // namespace

namespace {
ms_t clock_ms(clockid_t id) noexcept {
  struct timespec ts;
  ::clock_gettime(id, &ts);
  return static_cast<ms_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}
/// CLOCK_REALTIME_COARSE: the last tick's time (a few ms old), without reading the clock source.
ms_t coarse_unix_time_ms() noexcept { return clock_ms(CLOCK_REALTIME_COARSE); }
}  // namespace

ms_t unix_time_ms() noexcept { return clock_ms(CLOCK_REALTIME); }

void reply_error(store& st, reply_builder& out, std::string_view msg) {
  ++st.stats().total_error_replies;
  if (response* r = st.reply_status()) r->set_error(msg);
  {
    auto code = msg.substr(0, std::min(msg.find(' '), msg.size()));
    auto& es = st.stats().errorstats;
    auto it = es.find(code);
    if (it != es.end()) ++it->second;
    else if (es.size() < 128) es.emplace(std::string(code), 1);
  }
  if (msg.find_first_of("\r\n") == std::string_view::npos) {
    out.error(msg);
    return;
  }
  std::string clean(msg);
  for (auto& c : clean)
    if (c == '\r' || c == '\n') c = ' ';
  out.error(clean);
}

namespace {

/// A handler threw: its writes are already undone (call_command's undo_scope); drop its partial reply and answer
/// with an error instead. Redis has no such path (it aborts on allocation failure); the codes follow its replies:
/// -OOM for memory, -ERR otherwise.
[[gnu::cold, gnu::noinline]] void command_failed(const command_def& cmd, command_ctx& ctx,
                                                  const reply_builder::checkpoint& mark, std::exception_ptr failure) {
  ctx.out.rollback(mark);
  ++cmd.failed_calls;
  std::string msg;
  try {
    std::rethrow_exception(failure);
  } catch (const std::bad_alloc&) {
    msg = "OOM not enough memory to run '";
  } catch (const std::length_error&) {
    msg = "OOM not enough memory to run '";
  } catch (const std::exception& e) {
    spdlog::error("kv: command '{}' failed: {}", cmd.name, e.what());
    msg = "ERR internal error running '";
  } catch (...) {
    spdlog::error("kv: command '{}' failed", cmd.name);
    msg = "ERR internal error running '";
  }
  msg.append(cmd.name).append("'; nothing was changed");
  reply_error(ctx.st, ctx.out, msg);
}

}  // namespace

void call_command(const command_def& cmd, command_ctx& ctx) {
  const reply_builder::checkpoint mark = ctx.out.mark();
  std::exception_ptr failure;
  {
    undo_scope unit(ctx.st.undo());
    try {
      cmd.handler(ctx);
      unit.commit();
    } catch (...) {
      failure = std::current_exception();
    }
  }  // not committed: every keyspace is back where it was before the handler ran
  if (failure) [[unlikely]] {
    command_failed(cmd, ctx, mark, std::move(failure));
    return;
  }
  ++cmd.calls;
  ++ctx.st.stats().total_commands_processed;
  ++ctx.sess.commands_processed;
}

namespace {

/// An unknown command or subcommand (Redis's processCommand wording).
[[gnu::cold, gnu::noinline]] void reject_unknown(store& st, session& s, const command_table& table,
                                                  std::span<const std::string_view> args, reply_builder& out) {
  const command_def* base = table.find(args[0]);
  if (base && base->is_container()) {
    reject(st, s, nullptr, out, unknown_subcommand_error(args[0], args[1]));
  } else {
    reject(st, s, nullptr, out, unknown_command_error(args));
  }
}

/// process_command for a known command when something needs a closer look: wrong arity, authentication pending,
/// a transaction open, RESP2 subscriber mode. Checks in Redis's order, then queues (MULTI) or runs the command.
[[gnu::cold, gnu::noinline]] void process_checked(store& st, session& s, const command_def* cmd,
                                                   std::span<const std::string_view> args, reply_builder& out,
                                                   command_time now) {
  const auto argc = static_cast<long>(args.size());
  if ((cmd->arity > 0 && cmd->arity != argc) || argc < -cmd->arity) {
    std::string msg = "ERR wrong number of arguments for '";
    msg.append(cmd->name).append("' command");
    reject(st, s, cmd, out, msg);
    return;
  }
  if (st.auth_required(s) && !(cmd->flags & cmd_no_auth)) {
    reject(st, s, cmd, out, "NOAUTH Authentication required.");
    return;
  }
  if (s.in_multi && (cmd->flags & cmd_no_multi)) {
    reject(st, s, cmd, out, "ERR Command not allowed inside a transaction");
    return;
  }
  if (s.resp == 2 && s.subscriptions() > 0 && !(cmd->dispatch & dispatch_allowed_in_pubsub)) {
    std::string msg = "ERR Can't execute '";
    msg.append(cmd->name).append(
        "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context");
    reject(st, s, cmd, out, msg);
    return;
  }
  s.last_command = cmd->name;
  if (s.in_multi && !(cmd->dispatch & dispatch_not_queued)) {
    std::vector<std::string> q(args.begin(), args.end());  // built whole before it joins the queue
    s.queued.push_back(std::move(q));
    out.simple("QUEUED");
    return;
  }
  command_ctx ctx{st, s, args, out, now};
  call_command(*cmd, ctx);
}

}  // namespace

void process_command(store& st, session& s, std::span<const std::string_view> args, reply_builder& out,
                     command_time now, const command_def* resolved) {
  const command_table& table = *st.commands();
  const command_def* cmd = resolved ? resolved : table.lookup(args);
  // CLIENT LIST idle= (seconds: a coarse clock is enough), for sessions CLIENT LIST can show (attached: id != 0).
  if (s.id != 0) s.last_interaction_ms = coarse_unix_time_ms();
  if (!cmd) [[unlikely]] {
    reject_unknown(st, s, table, args, out);
    return;
  }
  // The common case in one test; anything unusual takes process_checked (kept out of line: this function runs
  // for every command, and its code competes for the instruction cache with the front ends').
  const auto argc = static_cast<long>(args.size());
  const bool arity_ok = cmd->arity > 0 ? cmd->arity == argc : argc >= -cmd->arity;
  if (!arity_ok || s.in_multi || st.auth_required(s) || (s.resp == 2 && s.subscriptions() > 0)) [[unlikely]] {
    process_checked(st, s, cmd, args, out, now);
    return;
  }
  s.last_command = cmd->name;
  command_ctx ctx{st, s, args, out, now};
  call_command(*cmd, ctx);
}

kv_service::kv_service(std::shared_ptr<store> st, std::shared_ptr<const command_table> table)
    : store_(std::move(st)), table_(std::move(table)) {
  store_->set_commands(table_.get());
}

response kv_service::execute(request& req) {
  response resp;
  if (req.args.empty()) return resp;
  const reply_builder::checkpoint mark = req.out.mark();
  try {
    execute_unchecked(req, resp);
  } catch (...) {
    // Outside any handler (handlers are covered by call_command): the dispatcher's own bookkeeping, a reject
    // reply, the MULTI queue. Nothing in the keyspace changed; answer with an error instead of a partial reply.
    req.out.rollback(mark);
    std::lock_guard lock(store_->mutex());
    ++store_->stats().total_error_replies;
    static constexpr std::string_view oom = "OOM not enough memory to run the command; nothing was changed";
    resp = response{};
    resp.set_error(oom);
    req.out.error(oom);
  }
  return resp;
}

void kv_service::execute_unchecked(request& req, response& resp) {
  session& s = req.sess;
  const command_time now;  // read on first use: a GET of a key without TTL reads no clock
  // The front end's resolution, when it was made over these arguments against this core's table.
  const command_def* resolved = req.cmd && req.cmd->def && req.cmd->args.data() == req.args.data() &&
                                        req.cmd->args.size() == req.args.size() && table_->owns(req.cmd->def)
                                    ? req.cmd->def
                                    : nullptr;
  std::lock_guard lock(store_->mutex());
  struct status_slot {  // reply_error records this request's top-level error in `resp`
    store& st;
    ~status_slot() { st.set_reply_status(nullptr); }
  } slot{*store_};
  store_->set_reply_status(&resp);
  if (s.replies == reply_mode::on && !s.reply_skip_pending) [[likely]] {
    process_command(*store_, s, req.args, req.out, now, resolved);
  } else {
    // CLIENT REPLY OFF / SKIP: Redis drops the reply; CLIENT REPLY ON clears the flags before replying, and so does
    // RESET for OFF (not for a pending SKIP: that one is consumed by the RESET itself).
    const bool skipped = s.reply_skip_pending;
    s.reply_skip_pending = false;
    const bool reply_on = (req.args.size() == 3 && iequals(req.args[0], "client") && iequals(req.args[1], "reply") &&
                           iequals(req.args[2], "on")) ||
                          (!skipped && req.args.size() == 1 && iequals(req.args[0], "reset"));
    silenced_reply_builder silenced(req.out);
    process_command(*store_, s, req.args, reply_on ? req.out : static_cast<reply_builder&>(silenced), now,
                    resolved);
  }
  if (s.replies == reply_mode::skip) {
    // CLIENT REPLY SKIP: the mode returns to ON after the next command's reply is dropped.
    s.replies = reply_mode::on;
    s.reply_skip_pending = true;
  }
}

}  // namespace turret::kv
