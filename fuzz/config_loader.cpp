// Fuzz target: turretd's configuration loader (services/turretd/config.cpp over framework/src/config.cpp and
// yaml-cpp), with every front end's option parser (resp, http, and grpc's grpc_options.cpp: the gRPC front end
// itself is not built here, its option parser is all the loader runs of it).
//
// Input: YAML text, as `turretd --config` / `--check-config` reads it. The invariant is the loader's contract:
// either a turret::config_error that names the source, a line and a column (1-based) and a message, or a config
// that is valid: at least one listener, unique names, resolvable addresses, known protocols, options in range, a
// buildable pipeline and a store that can be constructed from it. Any other exception, a crash, a hang or a
// sanitizer report is a finding.
#include <services/grpc/grpc_options.hpp>
#include <services/kv/store.hpp>
#include <services/turretd/config.hpp>

#include <turret/middleware/builtin.hpp>

#include "check.hpp"

#include <cstdint>
#include <exception>
#include <set>
#include <string>
#include <string_view>

namespace {

using namespace turret;


constexpr std::string_view source_name = "fuzz.yaml";

/// turretd's registries, plus the "grpc" protocol's option parser (its listener is never created here).
const turretd::registries& registries() {
  static const auto regs = [] {
    auto r = std::make_shared<turretd::registries>();
    turretd::register_builtin_frontends(r->frontends);
    register_builtin_layers(r->layers);
    if (!r->frontends.find("grpc")) {
      kv::frontend f;
      f.keys = {"grpc"};
      f.parse = [](const config_node& entry) -> std::any {
        return grpc_frontend::parse_grpc_options(entry.child("grpc"));
      };
      f.create = [](kv::listener_env) -> std::unique_ptr<server::listener> { std::abort(); };
      r->frontends.add("grpc", std::move(f));
    }
    return r;
  }();
  return *regs;
}

void check_valid(const turretd::config& cfg) {
  CHECK(cfg.source == source_name, "config source", cfg.source);
  CHECK(cfg.server.threads <= 1024, "server.threads out of range");
  CHECK(cfg.server.shutdown_grace.count() >= 0, "negative shutdown_grace");
  CHECK(!cfg.listeners.empty(), "a config without listeners");
  std::set<std::string> names;
  for (const auto& l : cfg.listeners) {
    CHECK(!l.name.empty(), "empty listener name");
    CHECK(names.insert(l.name).second, "duplicate listener name", l.name);
    CHECK(registries().frontends.find(l.protocol) != nullptr, "unknown protocol accepted", l.protocol);
    CHECK(l.options.has_value(), "listener options missing", l.name);
  }
  const kv::store_options& so = cfg.store.options;
  CHECK(cfg.store.kind == "memory", "store kind", cfg.store.kind);
  CHECK(so.databases >= 1 && so.databases <= 1024, "store.databases out of range");
  CHECK(so.hz >= 1 && so.hz <= 500, "store.hz out of range");
  CHECK(so.proto_max_bulk_len > 0, "proto_max_bulk_len not positive");
  // What turretd does next with it: the store is built from these options.
  kv::store st(so);
  CHECK(st.databases() == so.databases, "store databases");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view yaml(reinterpret_cast<const char*>(data), size);
  std::shared_ptr<const turretd::config> cfg;
  try {
    cfg = turretd::parse_config_string(yaml, registries(), std::string(source_name));
  } catch (const config_error& e) {
    CHECK(e.file() == source_name, "config_error without the file name", e.what());
    CHECK(e.line() >= 1 && e.column() >= 1, "config_error without line and column", e.what());
    CHECK(!e.message().empty(), "config_error without a message", e.what());
    const std::string prefix = std::string(source_name) + ":" + std::to_string(e.line()) + ":" +
                               std::to_string(e.column()) + ": ";
    CHECK(std::string_view(e.what()).starts_with(prefix), "config_error text does not start with file:line:col",
          e.what());
    return 0;
  } catch (const std::exception& e) {
    fuzz::fail("", "an exception other than config_error", e.what());
  }
  CHECK(cfg != nullptr, "no config and no error");
  check_valid(*cfg);
  return 0;
}
