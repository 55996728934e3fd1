#include <turret/kv/dispatch.hpp>
#include <turret/metrics.hpp>

#include <utility>

namespace turret::kv {

namespace {

struct command_families {
  metrics::family<metrics::counter>& commands;
  metrics::family<metrics::histogram>& duration;
  metrics::family<metrics::counter>& started;
  static command_families& get() {
    static command_families* f = [] {
      auto& r = metrics::default_registry();
      return new command_families{
          r.counter("turret_commands_total",
                    "Key-value commands, by front end, command and outcome (ok, error reply, failed in the pipeline).",
                    {"frontend", "command", "outcome"}),
          r.histogram("turret_command_duration_seconds", "Key-value command latency in seconds, by front end and command.",
                      {"frontend", "command"}),
          r.counter("turret_commands_started_total",
                    "Key-value commands a front end started through the pipeline's callback start, several in flight "
                    "at once (a subset of turret_commands_total).",
                    {"frontend"}),
      };
    }();
    return *f;
  }
};

}  // namespace

command_meter::series& command_meter::series_for(const command_def* def) {
  if (auto it = cache_.find(def); it != cache_.end()) return it->second;
  auto& f = command_families::get();
  const std::string_view name = def ? def->name : std::string_view("unknown");
  series s{&f.commands.with({frontend_, name, "ok"}), &f.commands.with({frontend_, name, "error"}),
           &f.commands.with({frontend_, name, "failed"}), &f.duration.with({frontend_, name})};
  return cache_.emplace(def, s).first->second;
}

void command_meter::count_started(std::size_t n) {
  if (!started_) started_ = &command_families::get().started.with({frontend_});
  started_->inc(n);
}

void command_meter::record(const command_def* def, const result<response>& r, clock::time_point start,
                           clock::time_point end) {
  series& s = series_for(def);
  (!r ? s.failed : r->is_error() ? s.error : s.ok)->inc();
  s.duration->observe(std::chrono::duration<double>(end - start).count());
}

}  // namespace turret::kv
