// server: hot reload (SIGHUP, POST /admin/reload). The rules of what a reload changes: reload.hpp; the threads:
// server.hpp.
#include <services/kv/store.hpp>
#include <services/turretd/server.hpp>
#include <turret/metrics.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace turret::turretd {

namespace asio = boost::asio;

namespace {

/// How often draining listeners are checked for their last connection.
constexpr auto drain_poll_interval = std::chrono::milliseconds(50);

/// An error reply's text on one line (a RESP error reply cannot hold CR or LF).
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\r' || c == '\n') c = ' ';
  return s;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

const listener_config& listener_named(const config& c, const std::string& name) {
  for (const auto& l : c.listeners)
    if (l.name == name) return l;
  throw std::out_of_range("no listener '" + name + "'");
}

}  // namespace

void server::arm_reload_signal() {
  reload_signal_->async_wait([this](boost::system::error_code ec, int) {
    if (ec) return;
    spdlog::info("SIGHUP: reloading the configuration");
    request_reload();
    arm_reload_signal();
  });
}

void server::request_reload() {
  if (!rt_) return;
  asio::co_spawn(rt_->context(0), reload_on_context0(), asio::detached);
}

awaitable<reload_result> server::reload() {
  co_return co_await asio::co_spawn(rt_->context(0), reload_on_context0(), asio::use_awaitable);
}

void server::count_reload(bool ok) {
  (ok ? reloads_ok_ : reloads_failed_)->inc();
  if (ok) last_reload_success_->set(unix_time_now());
}

awaitable<reload_result> server::reload_on_context0() {
  // One at a time: a reload that finds another one running (restarting listeners) waits for it.
  while (reloading_) {
    asio::steady_timer wait(rt_->context(0), std::chrono::milliseconds(10));
    co_await wait.async_wait(asio::use_awaitable);
  }
  reloading_ = true;
  reload_result r;
  std::shared_ptr<const config> next;
  if (config_file_.empty()) {
    r.error = "no configuration file to reload (turretd runs its embedded default configuration)";
  } else if (state() != server_state::ready) {
    r.error = "the server is shutting down";
  } else {
    try {
      next = load_config(config_file_, *regs_);  // loads the plugins it adds, validates as at start-up
    } catch (const config_error& e) {
      r.st = reload_result::status::invalid;
      r.error = e.what();
    } catch (const std::exception& e) {
      r.st = reload_result::status::invalid;
      r.error = config_file_ + ": " + e.what();
    }
  }
  if (next) {
    try {
      const config_diff d = diff_configs(*cfg_, *next);
      r = apply(next, d);
      if (r.ok()) co_await restart_listeners(d.listeners_restarted, r);
    } catch (const std::exception& e) {
      r.st = reload_result::status::failed;
      r.error = std::string("reload failed: ") + e.what();
    }
  }
  reloading_ = false;
  count_reload(r.ok());
  if (r.st == reload_result::status::invalid)
    spdlog::error("reload: invalid configuration, still serving the previous one: {}", r.error);
  else if (!r.ok())
    spdlog::error("reload: {}", r.error);
  co_return r;
}

reload_result server::apply(std::shared_ptr<const config> next, const config_diff& d) {
  reload_result r;

  // 1. Build every pipeline of the new file into a new state generation (nothing is served yet: a factory's
  //    failure changes nothing).
  auto states = std::make_shared<layer_state_store>(layer_ctx_.states);
  layer_context ctx = layer_ctx_;
  ctx.states = states;
  std::map<std::string, kv_pipeline_handle::snapshot, std::less<>> built;
  try {
    for (const auto& [name, pc] : next->pipelines)
      built.emplace(name, std::make_shared<kv_pipeline>(kv_layer_registry::wrap_all(build_layers(pc, *regs_, ctx), core_)));
  } catch (const config_error& e) {
    r.st = reload_result::status::invalid;
    r.error = e.what();
    return r;
  }

  // 2. Start the listeners the file adds, on their pipelines (new ones get their handle now): a listener that cannot
  //    be bound changes nothing.
  std::map<std::string, kv_pipeline_handle, std::less<>> added_pipelines;
  for (const auto& name : d.pipelines_added) added_pipelines.emplace(name, kv_pipeline_handle(built.at(name)));
  std::vector<std::unique_ptr<listener>> added;
  try {
    for (const auto& name : d.listeners_added) {
      const listener_config& lc = listener_named(*next, name);
      auto it = added_pipelines.find(lc.pipeline);
      added.push_back(start_listener(lc, it != added_pipelines.end() ? it->second : pipelines_.at(lc.pipeline)));
    }
  } catch (const std::exception& e) {
    for (auto& l : added) drain(std::move(l));
    r.st = reload_result::status::failed;
    r.error = std::string(e.what()) + ": nothing was changed";
    return r;
  }

  // 3. Publish: every served pipeline is swapped (requests in flight finish on the one they started on), then the
  //    previous state generation is dropped (what no new entry claimed lives on only with the old pipelines).
  for (auto& [name, snap] : built) {
    if (auto it = pipelines_.find(name); it != pipelines_.end()) it->second.swap(std::move(snap));
  }
  for (auto& [name, h] : added_pipelines) pipelines_.emplace(name, std::move(h));
  for (const auto& name : d.pipelines_removed) pipelines_.erase(name);  // listeners still on it hold its handle
  states->drop_previous();
  layer_ctx_.states = std::move(states);

  // 4. Listeners: added ones serve, removed ones drain (restarted ones: restart_listeners, next).
  {
    std::lock_guard lk(listeners_mu_);
    for (auto& l : added) listeners_.push_back(std::move(l));
  }
  for (const auto& name : d.listeners_removed) drain(take_listener(name));

  // 5. Server-wide settings.
  if (d.log_level_changed) {
    spdlog::default_logger_raw()->set_level(next->logging.level);
    spdlog::info("reload: logging.level is now {}", spdlog::level::to_string_view(next->logging.level));
  }
  for (const auto& m : d.not_applied) spdlog::warn("reload: {}", m);
  for (const auto& p : d.plugins_added) spdlog::info("reload: plugin {} loaded", p);
  for (const auto& p : d.plugins_removed) spdlog::warn("reload: plugin {} is no longer listed; it stays loaded", p);

  cfg_ = next;
  r.st = reload_result::status::ok;
  r.summary = reload_summary_json(d, *next);
  spdlog::info(
      "configuration reloaded from {}: pipelines changed=[{}] added=[{}] removed=[{}]; listeners added=[{}] "
      "removed=[{}] restarted=[{}]",
      config_file_, join(d.pipelines_changed), join(d.pipelines_added), join(d.pipelines_removed),
      join(d.listeners_added), join(d.listeners_removed), join(d.listeners_restarted));
  return r;
}

awaitable<void> server::restart_listeners(const std::vector<std::string>& names, reload_result& out) {
  if (names.empty()) co_return;
  // Drain the old ones first: their address is free once their acceptor closed, which they post to context 0
  // (this thread): let those handlers run before binding again.
  for (const auto& name : names) drain(take_listener(name));
  co_await asio::post(rt_->context(0), asio::use_awaitable);

  std::vector<std::string> failed;
  for (const auto& name : names) {
    const listener_config& lc = listener_named(*cfg_, name);
    try {
      auto l = start_listener(lc, pipelines_.at(lc.pipeline));
      std::lock_guard lk(listeners_mu_);
      listeners_.push_back(std::move(l));
    } catch (const std::exception& e) {
      failed.push_back(name);
      out.error += (out.error.empty() ? "" : "; ") + std::string(e.what());
    }
  }
  {
    // Listener order as in the file (endpoints()).
    std::lock_guard lk(listeners_mu_);
    auto index = [&](const std::unique_ptr<listener>& l) {
      for (std::size_t i = 0; i < cfg_->listeners.size(); ++i)
        if (cfg_->listeners[i].name == l->name()) return i;
      return cfg_->listeners.size();
    };
    std::stable_sort(listeners_.begin(), listeners_.end(),
                     [&](const auto& a, const auto& b) { return index(a) < index(b); });
  }
  if (!failed.empty()) {
    // The rest of the file is applied; the listeners that could not be restarted are not served, and the next
    // reload sees them as added (it tries again).
    auto served = std::make_shared<config>(*cfg_);
    std::erase_if(served->listeners, [&](const listener_config& l) {
      return std::find(failed.begin(), failed.end(), l.name) != failed.end();
    });
    cfg_ = std::move(served);
    out.st = reload_result::status::failed;
    out.error = "listener(s) " + join(failed) + " could not be restarted (" + out.error +
                "); the rest of the new configuration is applied";
  }
}

std::unique_ptr<listener> server::take_listener(const std::string& name) {
  std::lock_guard lk(listeners_mu_);
  auto it = std::find_if(listeners_.begin(), listeners_.end(), [&](const auto& l) { return l->name() == name; });
  if (it == listeners_.end()) return nullptr;
  std::unique_ptr<listener> l = std::move(*it);
  listeners_.erase(it);
  return l;
}

void server::drain(std::unique_ptr<listener> l) {
  if (!l) return;
  spdlog::info("draining listener {} ({} connection(s))", l->name(), l->connections());
  l->stop_accepting();
  draining_.push_back({std::move(l), std::chrono::steady_clock::now() + shutdown_.grace(), false});
  if (draining_.size() == 1) poll_draining();
}

void server::poll_draining() {
  drain_timer_->expires_after(drain_poll_interval);
  drain_timer_->async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    const auto now = std::chrono::steady_clock::now();
    std::erase_if(draining_, [&](draining_listener& d) {
      if (d.l->connections() == 0) {
        spdlog::info("listener {} drained", d.l->name());
        return true;
      }
      if (!d.forced && now >= d.deadline) {
        spdlog::warn("drain of listener {}: grace elapsed, closing {} remaining connection(s)", d.l->name(),
                     d.l->connections());
        d.l->force_close();
        d.forced = true;
      }
      return false;
    });
    if (!draining_.empty()) poll_draining();
  });
}

awaitable<result<kv::response>> server::admin_request(kv::request& req) {
  const reload_result r = co_await reload();
  kv::response resp;
  if (r.ok()) {
    req.out.bulk(r.summary);
  } else {
    std::string text(r.st == reload_result::status::invalid ? kv::invalid_config_code : kv::reload_failed_code);
    text += ' ';
    text += one_line(r.error);
    req.out.error(text);
    resp.set_error(text);
  }
  co_return resp;
}

}  // namespace turret::turretd
