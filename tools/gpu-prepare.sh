#!/usr/bin/env bash
# Prepares, where Bazel and ../shared are, what tools/gpu-check.sh needs to check a real
# checkpoint on a GPU machine that has neither: the small golden RWKV-7 model packed in the GPU
# engine's layout in fp32, bf16 and fp16, its official run, and the bound each must meet.
#
#   tools/gpu-prepare.sh        (writes build/gpu-golden/, about 32 MB; carry it to the GPU)
#
# Bounds, in σ of each step's logits, against the official fp32 run (itself up to 1.9e-4σ off
# the float64 answer): fp32 5e-4. bf16 and fp16 runs round every product's input activations
# to the weights' type (rwkv7_ops.h), which moves the logits by up to 0.18σ (bf16) and 6.5e-3σ
# (fp16) on this model, measured on the host engine: the bounds are those with a margin.
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
# packed weights, golden run, bound (sigma of each step's logits)
small-fp32.pack small.golden 5e-4
small-bf16.pack small.golden 0.25
small-fp16.pack small.golden 1e-2
BOUNDS
echo "gpu-prepare: $out ready; carry it to the GPU machine (build/gpu-golden)"
