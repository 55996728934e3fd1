#!/usr/bin/env bash
# Build turret with sanitizers and run the whole test suite under them (scripts/test.sh runs the address one).
#
#   scripts/sanitize.sh [address|thread] [ctest arguments...]
#
#   address: ASan + UBSan (+ LeakSanitizer) into ./build-asan     thread: TSan into ./build-tsan
#
# Every test binary, turretd and turret-cli started by the Python integration tests are instrumented (ctest sets
# $TURRETD etc. to this build). A report fails the test: GoogleTest binaries abort or exit non-zero, and
# tests/integration/harness.py fails a test whose turretd log holds a sanitizer report or which crashed.
# Suppressions (known false positives in uninstrumented system libraries only) live in tests/sanitizers/.
# Generated turretd configs use server.threads=$TURRET_TEST_THREADS (default here 4) so that cross-thread paths
# (pub/sub delivery, CLIENT KILL, concurrency_limit waiters, gRPC completions) really cross threads.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-address}
[ $# -gt 0 ] && shift
case "$kind" in
  address) dir=build-asan ;;
  thread) dir=build-tsan ;;
  *) echo "usage: $0 [address|thread] [ctest args...]" >&2; exit 2 ;;
esac
root=$(pwd)
supp="$root/tests/sanitizers"

t0=$SECONDS
# -g1: line tables for readable stack traces at little compile-time cost.
TURRET_BUILD_DIR=${TURRET_BUILD_DIR:-$dir} \
TURRET_CMAKE_ARGS="-DTURRET_SANITIZE=$kind -DTURRET_BUILD_BENCH=OFF -DCMAKE_CXX_FLAGS=-g1 ${TURRET_CMAKE_ARGS:-}" \
  scripts/build.sh
dir=${TURRET_BUILD_DIR:-$dir}
echo "sanitize: $kind build took $((SECONDS - t0)) s" >&2

export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:check_initialization_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
[ -f "$supp/lsan.supp" ] && export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
# TSan: keep going after a report (all races of a run in one log), exit 66 at the end when there was one.
export TSAN_OPTIONS="halt_on_error=0:exitcode=66:second_deadlock_stack=1:history_size=4${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
[ -f "$supp/tsan.supp" ] && export TSAN_OPTIONS="$TSAN_OPTIONS:suppressions=$supp/tsan.supp:print_suppressions=0"
export TURRET_TEST_THREADS=${TURRET_TEST_THREADS:-4}
export TURRET_SANITIZER=$kind  # tests that measure memory know their figures are the sanitizer's
# Waits in the integration tests (server start, replies, stop) stretch by this factor (tests/integration/harness.py).
export TURRET_TEST_TIMEOUT_SCALE=${TURRET_TEST_TIMEOUT_SCALE:-$([ "$kind" = thread ] && echo 5 || echo 3)}

ulimit -n 65536 2>/dev/null || true
cd "$dir"
# Sanitized code runs 2-15x slower: generous per-test timeout. The package test (tests/package: install, then build
# a consumer project against it) checks packaging, not memory safety, and would only recompile the consumer with the
# sanitizer's flags: it runs in the Release stage.
exec ctest --output-on-failure --timeout 1800 -j "$(nproc)" -E '^package\.' "$@"
