#!/usr/bin/env bash
# Installs the Debian 12 packages turret needs to build, test and benchmark. Idempotent: when every package is
# already installed it does nothing and returns within a second. Run as root (or with sudo available).
set -euo pipefail

PKGS=(
  # build
  build-essential cmake ninja-build ccache pkg-config
  # fuzzing (fuzz/run.sh): clang 14 and its libFuzzer and sanitizer runtimes
  clang-14 libclang-rt-14-dev
  # libraries (Boost 1.81: always the versioned names; the unversioned 1.74 ones conflict)
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libspdlog-dev libfmt-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # peers and clients used by tests and benchmarks
  redis-server redis-tools python3-redis python3-grpcio python3-grpc-tools python3-protobuf
  curl nginx-light wrk nghttp2-client nutcracker
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
