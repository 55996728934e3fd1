// MULTI, EXEC, DISCARD, WATCH, UNWATCH. EXEC runs the whole queue within the one store-lock hold of its own
// dispatch, so a transaction is atomic with respect to every other client.
#include <turret/kv/command_table.hpp>
#include <services/kv/dispatch.hpp>
#include <services/kv/store.hpp>

#include <vector>

namespace turret::kv {
namespace {

void discard_transaction(command_ctx& c) {
  c.sess.queued.clear();
  c.sess.in_multi = false;
  c.sess.multi_error = false;
  c.st.unwatch_all(c.sess);
}

void multi_cmd(command_ctx& c) {
  if (c.sess.in_multi) {
    reply_error(c.st, c.out, "ERR MULTI calls can not be nested");
    return;
  }
  c.sess.in_multi = true;
  c.sess.multi_error = false;
  c.sess.queued.clear();
  c.out.ok();
}

void discard_cmd(command_ctx& c) {
  if (!c.sess.in_multi) {
    reply_error(c.st, c.out, "ERR DISCARD without MULTI");
    return;
  }
  discard_transaction(c);
  c.out.ok();
}

void exec_cmd(command_ctx& c) {
  session& s = c.sess;
  if (!s.in_multi) {
    reply_error(c.st, c.out, "ERR EXEC without MULTI");
    return;
  }
  if (s.multi_error) {
    discard_transaction(c);
    reply_error(c.st, c.out, "EXECABORT Transaction discarded because of previous errors.");
    return;
  }
  if (s.watch_dirty) {
    discard_transaction(c);
    c.out.null_array();
    return;
  }
  // Unwatch first, as Redis does: the transaction's own writes must not flag it.
  c.st.unwatch_all(s);
  auto queue = std::move(s.queued);
  s.queued.clear();
  // However EXEC ends (an exception out of the reply builder included), the session leaves the transaction.
  struct leave_exec {
    session& s;
    store& st;
    response* status;  // the errors of queued commands are elements of EXEC's reply, not EXEC's own
    ~leave_exec() {
      st.set_reply_status(status);
      s.in_exec = false;
      s.in_multi = false;
      s.multi_error = false;
      s.last_command = "exec";
    }
  } leave{s, c.st, c.st.reply_status()};
  c.st.set_reply_status(nullptr);
  const command_table& table = *c.st.commands();
  c.out.array(queue.size());
  s.in_exec = true;
  std::vector<std::string_view> argv;
  c.now.get();  // one time for every queued command (copies below keep it)
  for (auto& q : queue) {
    argv.assign(q.begin(), q.end());
    const command_def* cmd = table.lookup(argv);
    if (!cmd) {  // cannot happen: it was looked up when queued
      reply_error(c.st, c.out, unknown_command_error(argv));
      continue;
    }
    s.last_command = cmd->name;
    command_ctx sub{c.st, s, argv, c.out, c.now};
    call_command(*cmd, sub);
  }
}

void watch_cmd(command_ctx& c) {
  if (c.sess.in_multi) {
    reply_error(c.st, c.out, "ERR WATCH inside MULTI is not allowed");
    return;
  }
  for (std::size_t i = 1; i < c.args.size(); ++i) c.st.watch(c.sess, c.sess.db, c.args[i]);
  c.out.ok();
}

void unwatch_cmd(command_ctx& c) {
  c.st.unwatch_all(c.sess);
  c.out.ok();
}

}  // namespace

void register_transaction_commands(command_table& t) {
  t.add("multi", multi_cmd);
  t.add("exec", exec_cmd);
  t.add("discard", discard_cmd);
  t.add("watch", watch_cmd);
  t.add("unwatch", unwatch_cmd);
}

}  // namespace turret::kv
