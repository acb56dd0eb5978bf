#!/usr/bin/env bash
# Prepares, where Bazel and ../shared are, what tools/gpu-check.sh needs to check a real
# checkpoint on a GPU machine that has neither: the small golden RWKV-7 model packed in the GPU
# engine's layout in fp32, bf16 and fp16, its official run, and the bound each must meet.
#
#   tools/gpu-prepare.sh        (writes build/gpu-golden/, about 60 MB; carry it to the GPU)
#
# It also links the CPU kernels' tests statically into build/gpu-golden/cpu/ (the GPU machine
# has no Abseil or GoogleTest), so that gpu-check.sh runs them on the GPU machine's host CPU
# too: often an Intel Xeon with AMX, which the machines with Bazel have lacked. There
# tile_products_test checks the AMX tile products against exact sums and path_choice_test
# prints their timings against the vector kernels; skein-cpu (bench, inspect) measures the
# engine there.
#
# Bounds, in σ of each step's logits, against the official fp32 run (itself up to 1.9e-4σ off
# the float64 answer). With exact activations (the engines' default: product inputs stay
# fp32, rwkv7_step.h) every dtype computes the official run of this bf16 checkpoint, measured
# on the host engine at 2.2e-4σ (fp32, bf16) and 2.0e-4σ (fp16): fp32 5e-4, bf16 and fp16
# 1e-3. With rounded activations (round_activations, the fourth column) every product's input
# is rounded to the weights' type, which moves the logits by up to 0.18σ (bf16) and 6.5e-3σ
# (fp16) on this model: bounds 0.25 and 1e-2.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
shared="${SHARED_DIR:-$root/../shared}"
out="$root/build/gpu-golden"
model="$shared/golden/rwkv7/small-l4-c256-v1024.pth"
json="$shared/golden/rwkv7/small-l4-c256-v1024.golden.json"
for f in "$model" "$json"; do
  [[ -f $f ]] || { echo "gpu-prepare: $f not found (set SHARED_DIR)" >&2; exit 1; }
done
bazel build //tools:skein >/dev/null
mkdir -p "$out"
for dtype in fp32 bf16 fp16; do
  bazel-bin/tools/skein device-pack --model "$model" --dtype "$dtype" \
    --out "$out/small-$dtype.pack" --golden "$json" --golden-out "$out/small.golden"
done
cat >"$out/bounds.txt" <<'BOUNDS'
# packed weights, golden run, bound (sigma of each step's logits), activations (exact|rounded)
small-fp32.pack small.golden 5e-4 exact
small-bf16.pack small.golden 1e-3 exact
small-fp16.pack small.golden 1e-3 exact
small-bf16.pack small.golden 0.25 rounded
small-fp16.pack small.golden 1e-2 rounded
BOUNDS
# The CPU kernel tests, compiled by the CMake build (kernels/cpu/CMakeLists.txt) and linked
# here by hand against the static Abseil and GoogleTest archives (CMake's Abseil package names
# the shared ones).
cpu_build="$root/build/gpu-prepare-cpu"
cmake -S "$root" -B "$cpu_build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSKEIN_CUDA=OFF >/dev/null
cpu_tests=(tile_products_test path_choice_test kernels_test cpu_features_test)
objects=()
for t in "${cpu_tests[@]}"; do objects+=("kernels/cpu/CMakeFiles/$t.dir/$t.cc.o"); done
ninja -C "$cpu_build" -j2 "${objects[@]}" kernels/cpu/libskein_cpu_kernels.a libskein_base_dtype.a \
  >/dev/null
lib=/usr/lib/x86_64-linux-gnu
mkdir -p "$out/cpu"
for t in "${cpu_tests[@]}"; do
  # glibc's static-linking notes (getaddrinfo and friends, from GoogleTest's streaming
  # listener, which these tests never use) are not errors.
  g++ -static -O2 "$cpu_build/kernels/cpu/CMakeFiles/$t.dir/$t.cc.o" \
    "$cpu_build/kernels/cpu/libskein_cpu_kernels.a" "$cpu_build/libskein_base_dtype.a" \
    -Wl,--start-group "$lib"/libabsl_*.a -Wl,--end-group "$lib/libgtest_main.a" "$lib/libgtest.a" \
    -lpthread -latomic -o "$out/cpu/$t" 2>&1 | grep -v -e 'statically linked applications' \
    -e 'in function' >&2 || true
  [[ -x "$out/cpu/$t" ]] || { echo "gpu-prepare: linking $t failed" >&2; exit 1; }
done
# The engine's CPU commands (bench, inspect --cpu), optimised and statically linked, so that
# gpu-check.sh measures the host CPU as `skein bench` would (AMX against the vector kernels).
bazel build -c opt //tools:skein-cpu-static >/dev/null 2>&1 ||
  { echo "gpu-prepare: building //tools:skein-cpu-static failed" >&2; exit 1; }
cp -f "$(bazel info -c opt bazel-bin 2>/dev/null)/tools/skein-cpu-static" "$out/cpu/skein-cpu"
chmod u+w "$out/cpu/skein-cpu"
echo "gpu-prepare: $out ready; carry it to the GPU machine (build/gpu-golden)"
