#!/usr/bin/env bash
# Configure (once) and build turret into ./build (Release). Extra arguments are ninja targets.
set -euo pipefail
cd "$(dirname "$0")/.."
"$(pwd)/scripts/deps.sh"
BUILD_DIR=${TURRET_BUILD_DIR:-build}
# ccache: hash paths relative to the checkout so that another clone (CI) reuses the same cache entries.
export CCACHE_BASEDIR="$(pwd)"
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${TURRET_CMAKE_ARGS:-} >/dev/null
fi
cmake --build "$BUILD_DIR" --parallel "$(nproc)" ${1:+--target "$@"}
