#!/usr/bin/env bash
# Install what is missing, build, and run every test (what CI runs through .ci/run):
#   release  Release build (./build), then the whole suite: unit, integration, differential against redis-server,
#            package consumer
#   asan     the whole suite again under ASan+UBSan (scripts/sanitize.sh address, ./build-asan)
#   fuzz     every fuzz target for TURRET_FUZZ_SECONDS (default 30) over its seed corpus (fuzz/run.sh, ./build-fuzz)
# TURRET_TEST_STAGES=release,asan,fuzz picks stages (default: all three, in that order). Extra arguments go to both
# ctest runs (e.g. -R differential). A stage that fails stops the run. Stage timings are printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
stages=",${TURRET_TEST_STAGES:-release,asan,fuzz},"
timings=()
start_all=$SECONDS

stage() {  # stage NAME COMMAND...: runs COMMAND when NAME is selected, timing it
  local name=$1
  shift
  [[ $stages == *",$name,"* ]] || return 0
  echo "=== test.sh: $name" >&2
  local t0=$SECONDS
  if ! "$@"; then
    echo "=== test.sh: stage $name FAILED after $((SECONDS - t0)) s" >&2
    exit 1
  fi
  timings+=("$name: $((SECONDS - t0)) s")
}

release_suite() {
  local t0=$SECONDS
  scripts/build.sh
  timings+=("  release build: $((SECONDS - t0)) s")
  ulimit -n 65536 2>/dev/null || true
  (cd "${TURRET_BUILD_DIR:-build}" && ctest --output-on-failure --timeout 900 -j "$(nproc)" "$@")
}

stage release release_suite "$@"
# Its own build dir: TURRET_BUILD_DIR (the release one, if set) must not leak into it.
stage asan env -u TURRET_BUILD_DIR scripts/sanitize.sh address "$@"
stage fuzz fuzz/run.sh -t "${TURRET_FUZZ_SECONDS:-30}"

printf '=== test.sh: %s\n' "${timings[@]}" "total: $((SECONDS - start_all)) s" >&2
