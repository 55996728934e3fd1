// SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PUBLISH, PUBSUB CHANNELS/NUMSUB/NUMPAT/HELP.
// Confirmations are push replies (RESP3 '>', RESP2 arrays), as Redis's addReplyPubsub*.
#include <turret/kv/command_table.hpp>
#include <services/kv/dispatch.hpp>
#include <services/kv/store.hpp>

#include <string>
#include <vector>

namespace turret::kv {
namespace {

void confirm(command_ctx& c, std::string_view kind, const std::string_view* name) {
  c.out.push(3);
  c.out.bulk(kind);
  if (name) c.out.bulk(*name);
  else c.out.null_bulk();
  c.out.integer(static_cast<long long>(c.sess.subscriptions()));
}

void subscribe_cmd(command_ctx& c) {
  for (std::size_t i = 1; i < c.args.size(); ++i) {
    c.st.subscribe(c.sess, c.args[i]);
    confirm(c, "subscribe", &c.args[i]);
  }
}

void psubscribe_cmd(command_ctx& c) {
  for (std::size_t i = 1; i < c.args.size(); ++i) {
    c.st.psubscribe(c.sess, c.args[i]);
    confirm(c, "psubscribe", &c.args[i]);
  }
}

void unsubscribe_cmd(command_ctx& c) {
  if (c.args.size() == 1) {
    std::vector<std::string> all(c.sess.channels.begin(), c.sess.channels.end());
    for (auto& ch : all) {
      c.st.unsubscribe(c.sess, ch);
      std::string_view v = ch;
      confirm(c, "unsubscribe", &v);
    }
    if (all.empty()) confirm(c, "unsubscribe", nullptr);
    return;
  }
  for (std::size_t i = 1; i < c.args.size(); ++i) {
    c.st.unsubscribe(c.sess, c.args[i]);
    confirm(c, "unsubscribe", &c.args[i]);
  }
}

void punsubscribe_cmd(command_ctx& c) {
  if (c.args.size() == 1) {
    std::vector<std::string> all(c.sess.patterns.begin(), c.sess.patterns.end());
    for (auto& p : all) {
      c.st.punsubscribe(c.sess, p);
      std::string_view v = p;
      confirm(c, "punsubscribe", &v);
    }
    if (all.empty()) confirm(c, "punsubscribe", nullptr);
    return;
  }
  for (std::size_t i = 1; i < c.args.size(); ++i) {
    c.st.punsubscribe(c.sess, c.args[i]);
    confirm(c, "punsubscribe", &c.args[i]);
  }
}

void publish_cmd(command_ctx& c) {
  c.out.integer(static_cast<long long>(c.st.publish(c.args[1], c.args[2])));
}

void pubsub_channels(command_ctx& c) {
  if (c.args.size() > 3) {  // PUBSUB CHANNELS [pattern]: Redis reports the extra arguments this way
    std::string msg = "ERR unknown subcommand or wrong number of arguments for '";
    msg.append(c.args[1]);
    msg += "'. Try PUBSUB HELP.";
    return reply_error(c.st, c.out, msg);
  }
  auto chans = c.args.size() == 2 ? c.st.channels({}, true) : c.st.channels(c.args[2], false);
  c.out.array(chans.size());
  for (auto ch : chans) c.out.bulk(ch);
}

void pubsub_numsub(command_ctx& c) {
  c.out.array((c.args.size() - 2) * 2);
  for (std::size_t i = 2; i < c.args.size(); ++i) {
    c.out.bulk(c.args[i]);
    c.out.integer(static_cast<long long>(c.st.numsub(c.args[i])));
  }
}

void pubsub_numpat(command_ctx& c) { c.out.integer(static_cast<long long>(c.st.numpat())); }

void pubsub_help(command_ctx& c) {
  const command_def* d = c.st.commands()->find("pubsub");
  c.out.raw(d->help(c.out.protocol()));
}

}  // namespace

void register_pubsub_commands(command_table& t) {
  t.add("subscribe", subscribe_cmd);
  t.add("unsubscribe", unsubscribe_cmd);
  t.add("psubscribe", psubscribe_cmd);
  t.add("punsubscribe", punsubscribe_cmd);
  t.add("publish", publish_cmd);
  t.add("pubsub|channels", pubsub_channels);
  t.add("pubsub|numsub", pubsub_numsub);
  t.add("pubsub|numpat", pubsub_numpat);
  t.add("pubsub|help", pubsub_help);
}

}  // namespace turret::kv
