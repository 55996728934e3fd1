// turretd: a Redis-compatible key-value server built on the turret framework.
//
//   turretd                       run on the embedded default config (RESP on 127.0.0.1:6379)
//   turretd --config FILE         run on FILE
//   turretd --check-config FILE   validate FILE: exit 0 and "configuration OK", or exit 1 and "file:line:col: key: msg"
//   turretd --print-default-config  print the embedded default configuration (a starting point for a file)
//   turretd --version
#include <services/turretd/config.hpp>
#include <services/turretd/server.hpp>
#include <turret/logging.hpp>

#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>

#ifndef TURRET_VERSION
#define TURRET_VERSION "0.1.0"
#endif

namespace {

void usage(std::FILE* out) {
  std::fputs(
      "usage: turretd [--config FILE]\n"
      "       turretd --check-config FILE\n"
      "       turretd --print-default-config\n"
      "       turretd --version\n"
      "Without --config, turretd runs its embedded default configuration (RESP on 127.0.0.1:6379).\n",
      out);
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_file;
  std::string check_file;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&](std::string& dst) -> bool {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "turretd: %s needs a file name\n", argv[i]);
        return false;
      }
      dst = argv[++i];
      return true;
    };
    if (a == "--version" || a == "-v") {
      std::printf("turretd %s\n", TURRET_VERSION);
      return 0;
    } else if (a == "--print-default-config") {
      const std::string_view text = turret::turretd::default_config_yaml();
      std::fwrite(text.data(), 1, text.size(), stdout);
      return 0;
    } else if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    } else if (a == "--config" || a == "-c") {
      if (!value(config_file)) return 2;
    } else if (a.starts_with("--config=")) {
      config_file = std::string(a.substr(9));
    } else if (a == "--check-config") {
      if (!value(check_file)) return 2;
    } else if (a.starts_with("--check-config=")) {
      check_file = std::string(a.substr(15));
    } else {
      std::fprintf(stderr, "turretd: unknown argument '%s'\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }

  auto regs = turret::turretd::make_builtin_registries();

  if (!check_file.empty()) {
    try {
      turret::turretd::load_config(check_file, *regs);
      std::printf("configuration OK\n");
      return 0;
    } catch (const turret::config_error& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s: %s\n", check_file.c_str(), e.what());
      return 1;
    }
  }

  std::shared_ptr<const turret::turretd::config> cfg;
  try {
    cfg = config_file.empty() ? turret::turretd::parse_config_string(turret::turretd::default_config_yaml(), *regs)
                              : turret::turretd::load_config(config_file, *regs);
  } catch (const turret::config_error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", config_file.c_str(), e.what());
    return 1;
  }

  try {
    turret::init_logging(cfg->logging);
    turret::turretd::server srv(cfg, regs, config_file);
    srv.start();
    return srv.run();
  } catch (const std::exception& e) {
    spdlog::critical("turretd: {}", e.what());
    return 1;
  }
}
