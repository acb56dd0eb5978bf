#!/usr/bin/env bash
# Installs the Debian packages Skein builds, tests and runs with. Idempotent: packages already
# present are skipped, and apt is not touched at all when nothing is missing.
set -euo pipefail

PACKAGES=(
  bazel-bootstrap bazel-rules-java
  g++ pkg-config git curl ca-certificates
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev prometheus-cpp-dev prometheus
  libgtest-dev libgmock-dev libbenchmark-dev
  librocksdb-dev redis-server redis-tools libhiredis-dev libzstd-dev libxxhash-dev
  nlohmann-json3-dev libcli11-dev libcpp-httplib-dev libssl-dev zlib1g-dev
  clang libclang-rt-14-dev
  # The CMake build of kernels/ (kernels/cuda:cmake_build_test, tools/gpu-check.sh).
  cmake ninja-build
  python3
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "installing: ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
