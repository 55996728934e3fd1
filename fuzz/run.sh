#!/usr/bin/env bash
# Build the libFuzzer targets (clang-14, ASan+UBSan) into ./build-fuzz and run them over their seed corpora.
#
#   fuzz/run.sh [-t SECONDS] [TARGET...] [-- LIBFUZZER-FLAGS...]   every target (or those named), SECONDS each (30)
#   fuzz/run.sh --build                                            only build
#
# A target starts from its committed seeds fuzz/corpus/<target>/ (never written to) plus its working corpus
# build-fuzz/corpus/<target>/ (new inputs go there and stay for the next run), with fuzz/<target>.dict when present.
# A finding (crash, sanitizer report, failed invariant, leak, timeout, out-of-memory) stops that target, its input is
# saved as build-fuzz/findings/<target>/<kind>-<sha1>, and the script exits non-zero after the remaining targets.
# Reproduce one with `build-fuzz/fuzz/<target> build-fuzz/findings/<target>/<file>`.
# Per target it prints the executions and executions per second libFuzzer reports.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dir=${TURRET_FUZZ_BUILD_DIR:-build-fuzz}
all_targets=()
for f in fuzz/*.cpp; do all_targets+=("$(basename "$f" .cpp)"); done

seconds=30
build_only=0
targets=()
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    -t) seconds=$2; shift 2 ;;
    --build) build_only=1; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")

t0=$SECONDS
# TURRET_FUZZ sets the compile flags (-O1 -gline-tables-only, assertions on: see the top-level CMakeLists.txt).
TURRET_BUILD_DIR="$dir" \
TURRET_CMAKE_ARGS="-DCMAKE_CXX_COMPILER=clang++-14 -DTURRET_FUZZ=ON ${TURRET_CMAKE_ARGS:-}" \
  scripts/build.sh fuzz_targets
echo "fuzz: build took $((SECONDS - t0)) s" >&2
[ "$build_only" = 1 ] && exit 0

# Keep libFuzzer's own verdicts: abort on the first report, no recovery.
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:check_initialization_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

status=0
summary=()
for t in "${targets[@]}"; do
  bin="$dir/fuzz/$t"
  [ -x "$bin" ] || { echo "fuzz: no target $t ($bin)" >&2; exit 2; }
  work="$dir/corpus/$t"
  findings="$dir/findings/$t"
  mkdir -p "$work" "$findings"
  flags=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=3072 -malloc_limit_mb=2048 -print_final_stats=1
         -artifact_prefix="$findings/")
  [ -f "fuzz/$t.dict" ] && flags+=(-dict="fuzz/$t.dict")
  log="$dir/fuzz-$t.log"
  echo "fuzz: $t for ${seconds}s (log: $log)"
  rc=0
  "$bin" "${flags[@]}" "${extra[@]}" "$work" "fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if [ "$rc" -ne 0 ]; then
    status=1
    summary+=("$t: FINDING (exit $rc) after ${execs:-?} executions; see $log and $findings/")
    grep -m1 -E "ERROR: |runtime error:|invariant violated|Test unit written" "$log" >&2 || true
    tail -n 60 "$log" >&2
  else
    summary+=("$t: ${execs:-?} executions, ${rate:-?} exec/s, no finding")
  fi
done
printf 'fuzz: %s\n' "${summary[@]}"
exit "$status"
