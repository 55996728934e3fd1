// The store's pub/sub: channel and pattern subscriptions, PUBLISH, keyspace notifications.
#include <services/kv/store.hpp>
#include <services/kv/session_list.hpp>

#include <turret/kv/glob.hpp>

#include <charconv>
#include <string>
#include <vector>

namespace turret::kv {
// --- notify-keyspace-events ----------------------------------------------------------------------------------------

long long keyspace_events_from_string(std::string_view classes) noexcept {
  long long flags = 0;
  for (char c : classes) {
    switch (c) {
      case 'A': flags |= notify_all; break;
      case 'g': flags |= notify_generic; break;
      case '$': flags |= notify_string; break;
      case 'l': flags |= notify_list; break;
      case 's': flags |= notify_set; break;
      case 'h': flags |= notify_hash; break;
      case 'z': flags |= notify_zset; break;
      case 'x': flags |= notify_expired; break;
      case 'e': flags |= notify_evicted; break;
      case 'K': flags |= notify_keyspace; break;
      case 'E': flags |= notify_keyevent; break;
      case 't': flags |= notify_stream; break;
      case 'm': flags |= notify_key_miss; break;
      case 'd': flags |= notify_module; break;
      case 'n': flags |= notify_new; break;
      default: return -1;
    }
  }
  return flags;
}

std::string keyspace_events_to_string(std::uint32_t flags) {
  std::string res;
  if ((flags & notify_all) == notify_all) {
    res += 'A';
  } else {
    if (flags & notify_generic) res += 'g';
    if (flags & notify_string) res += '$';
    if (flags & notify_list) res += 'l';
    if (flags & notify_set) res += 's';
    if (flags & notify_hash) res += 'h';
    if (flags & notify_zset) res += 'z';
    if (flags & notify_expired) res += 'x';
    if (flags & notify_evicted) res += 'e';
    if (flags & notify_stream) res += 't';
    if (flags & notify_module) res += 'd';
    if (flags & notify_new) res += 'n';
  }
  if (flags & notify_keyspace) res += 'K';
  if (flags & notify_keyevent) res += 'E';
  if (flags & notify_key_miss) res += 'm';
  return res;
}

// --- pub/sub ---------------------------------------------------------------------------------------------------------

bool store::subscribe(session& s, std::string_view channel) {
  if (s.channels.find(channel) != s.channels.end()) return false;
  s.channels.emplace(channel);
  auto it = channels_.find(channel);
  if (it == channels_.end()) it = channels_.emplace(std::string(channel), std::vector<session*>{}).first;
  it->second.push_back(&s);
  return true;
}

bool store::unsubscribe(session& s, std::string_view channel) {
  auto sit = s.channels.find(channel);
  if (sit == s.channels.end()) return false;
  auto it = channels_.find(channel);
  if (it != channels_.end()) {
    erase_one(it->second, &s);
    if (it->second.empty()) channels_.erase(it);
  }
  s.channels.erase(sit);
  return true;
}

bool store::psubscribe(session& s, std::string_view pattern) {
  if (s.patterns.find(pattern) != s.patterns.end()) return false;
  s.patterns.emplace(pattern);
  auto it = std::find_if(patterns_.begin(), patterns_.end(), [&](auto& p) { return p.first == pattern; });
  if (it == patterns_.end()) {
    patterns_.emplace_back(std::string(pattern), std::vector<session*>{});
    it = patterns_.end() - 1;
  }
  it->second.push_back(&s);
  return true;
}

bool store::punsubscribe(session& s, std::string_view pattern) {
  auto sit = s.patterns.find(pattern);
  if (sit == s.patterns.end()) return false;
  auto it = std::find_if(patterns_.begin(), patterns_.end(), [&](auto& p) { return p.first == pattern; });
  if (it != patterns_.end()) {
    erase_one(it->second, &s);
    if (it->second.empty()) patterns_.erase(it);
  }
  s.patterns.erase(sit);
  return true;
}

std::size_t store::deliver(session* s, std::string_view pattern, std::string_view channel, std::string_view message) {
  ++stats_.pubsub_messages;
  if (s->host) {
    if (!s->host->deliver(pubsub_message{pattern, channel, message})) s->host->kill();
  }
  return 1;
}

std::size_t store::publish(std::string_view channel, std::string_view message) {
  std::size_t receivers = 0;
  if (auto it = channels_.find(channel); it != channels_.end()) {
    // copy: a host may not call back, but be defensive against vector changes
    for (session* s : it->second) receivers += deliver(s, {}, it->first, message);
  }
  for (auto& [pattern, sessions] : patterns_) {
    if (!glob_match(pattern, channel)) continue;
    for (session* s : sessions) receivers += deliver(s, pattern, channel, message);
  }
  return receivers;
}

std::vector<std::string_view> store::channels(std::string_view pattern, bool all) const {
  std::vector<std::string_view> out;
  for (auto& [name, subs] : channels_)
    if (all || glob_match(pattern, name)) out.push_back(name);
  return out;
}

std::size_t store::numsub(std::string_view channel) const {
  auto it = channels_.find(channel);
  return it == channels_.end() ? 0 : it->second.size();
}

void store::publish_notification(std::uint32_t cls, std::string_view event, std::string_view key, int db) {
  char dbbuf[16];
  auto r = std::to_chars(dbbuf, dbbuf + sizeof dbbuf, db);
  std::string_view dbs(dbbuf, static_cast<std::size_t>(r.ptr - dbbuf));
  std::string chan;
  if (notify_flags_ & notify_keyspace) {
    chan.reserve(16 + dbs.size() + key.size());
    chan.append("__keyspace@").append(dbs).append("__:").append(key);
    publish(chan, event);
  }
  if (notify_flags_ & notify_keyevent) {
    chan.clear();
    chan.append("__keyevent@").append(dbs).append("__:").append(event);
    publish(chan, key);
  }
}

}  // namespace turret::kv
