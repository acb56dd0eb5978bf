#!/usr/bin/env bash
# Configures and builds kernels/cuda with CMake alone (the build the GPU machines use, see
# tools/gpu-check.sh) into a temporary directory, then runs its tests: the CPU reference test
# must pass and the GPU test must pass or SKIP (no GPU here).
set -euo pipefail

src="${TEST_SRCDIR}/${TEST_WORKSPACE}"
build="${TEST_TMPDIR}/cmake-build"
for tool in cmake ninja; do
  if ! command -v "$tool" >/dev/null; then
    echo "FAIL: $tool not found (tools/setup/install_deps.sh installs it)"
    exit 1
  fi
done
# One GPU architecture: this checks the CMake build itself; the Bazel build compiles the same
# sources for every architecture, and tools/gpu-check.sh builds them all on the GPU machine.
cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSKEIN_CPU_KERNELS=OFF \
  -DCMAKE_CUDA_ARCHITECTURES=90-real >"${TEST_TMPDIR}/configure.log" 2>&1 || { cat "${TEST_TMPDIR}/configure.log"; exit 1; }
grep -q "skein: no CUDA compiler" "${TEST_TMPDIR}/configure.log" && {
  echo "FAIL: CMake found no CUDA compiler"
  exit 1
}
# Two jobs: these machines have two cores and other builds running.
ninja -C "$build" -j2 cuda_reference_test rwkv7_host_engine_test cuda_kernels_test cuda_benchmark
"$build/kernels/cuda/cuda_reference_test" | tail -1
"$build/kernels/cuda/rwkv7_host_engine_test" | tail -1
# Its own report would replace this test's: the CMake build is what is tested here.
out="$(env -u XML_OUTPUT_FILE "$build/kernels/cuda/cuda_kernels_test")"
echo "$out" | tail -3
echo "$out" | grep -Eq "^SKIP|^[0-9]+ passed, 0 failed" || { echo "FAIL: cuda_kernels_test"; exit 1; }
"$build/kernels/cuda/cuda_benchmark" --shape tiny --batches 1,4 --prefill 16 --steps 2 | tail -2
echo "PASS cmake_build_test"
