#pragma once
// Invariant checks of the fuzz targets: a failed check prints what was violated and aborts, which libFuzzer reports
// as a finding (and saves the input).
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace turret::fuzz {

/// Prints the failed condition, what it means and a detail (e.g. the offending text), then aborts.
[[noreturn]] inline void fail(const char* condition, const char* what = "", std::string_view detail = {}) {
  std::fprintf(stderr, "fuzz invariant violated: %s (%s)\n", what, condition);
  if (!detail.empty())
    std::fprintf(stderr, "  %.*s\n", static_cast<int>(detail.size() < 4000 ? detail.size() : 4000), detail.data());
  std::abort();
}

}  // namespace turret::fuzz

/// CHECK(condition[, message[, detail]])
#define CHECK(cond, ...)                                               \
  do {                                                                 \
    if (!(cond)) ::turret::fuzz::fail(#cond __VA_OPT__(, ) __VA_ARGS__); \
  } while (0)
