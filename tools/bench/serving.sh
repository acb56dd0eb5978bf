#!/usr/bin/env bash
# The serving benchmarks of docs/benchmarks.md, in one run on this machine (loopback only):
# the engine alone (`skein bench`), then local clusters of S stages x R replicas loaded by
# `skein bench-serve`, then a tiny model to measure the router itself.
#
#   tools/bench/serving.sh MODEL VOCAB [SECONDS]
# MODEL: a 0.1B-shape checkpoint (e.g. the one ./run.sh uses); VOCAB: the World vocabulary.
# Prints one JSON line per measurement. ONLY=name,name runs only those clusters.
set -euo pipefail
cd "$(dirname "$0")/../.."
model=${1:?usage: serving.sh MODEL VOCAB [SECONDS]}
vocab=${2:?usage: serving.sh MODEL VOCAB [SECONDS]}
seconds=${3:-30}
bazel build //tools:skein //services/... >/dev/null 2>&1
skein=bazel-bin/tools/skein
work=$(mktemp -d -t skein-bench.XXXXXX)
trap 'for d in "$work"/c*; do [[ -f $d/cluster.json ]] && $skein cluster down --dir "$d" >/dev/null 2>&1; done; rm -rf "$work"' EXIT

echo "# engine alone"
[[ -n "${ONLY:-}" && ",$ONLY," != *",engine,"* ]] || $skein bench --model "$model" --dtype bf16 --threads "$(nproc)" --batch 1,64 --prompt 16

metric() {  # metric DIR PROCESS NAME: the sum of a metric's series
  local port
  port=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['metrics_port'])" "$1/$2.ready")
  curl -s "127.0.0.1:$port/metrics" | awk -v n="$3" '$1 ~ "^"n"({|$)" {s += $2} END {print s+0}'
}

run() {  # run NAME MODEL STAGES REPLICAS STREAMS MAX_TOKENS
  [[ -z "${ONLY:-}" || ",$ONLY," == *",$1,"* ]] || return 0
  local dir=$work/c$1 router
  router=$($skein cluster up --model "$2" --vocab "$vocab" --stages "$3" --replicas "$4" \
    --dir "$dir" --store memory --dtype bf16 2>/dev/null | tail -n 1)
  echo "# $1: $3 stage(s) x $4 replica(s), $5 streams"
  $skein bench-serve --router "$router" --streams "$5" --seconds "$seconds" --prompt-tokens 16 \
    --max-tokens "$6"
  local steps rtt compute
  steps=$(metric "$dir" router skein_router_step_seconds_count)
  rtt=$(metric "$dir" router skein_router_step_seconds_sum)
  compute=0
  for w in "$dir"/worker-r0-s*.ready; do
    compute=$(python3 -c "print($compute + $(metric "$dir" "$(basename "$w" .ready)" skein_worker_step_seconds_sum))")
  done
  python3 -c "import sys; s=$steps; print('{\"steps\": %d, \"round_trip_ms\": %.3f, \"replica0_compute_ms\": %.3f}' % (s, 1e3*$rtt/max(s,1), 1e3*$compute/max(s,1)))"
  $skein cluster down --dir "$dir" >/dev/null
}

run 1x1-single "$model" 1 1 1 128
run 2x1-single "$model" 2 1 1 128
run 1x1 "$model" 1 1 64 1000
run 2x1 "$model" 2 1 64 1000
run 1x2 "$model" 1 2 64 1000

tiny=$work/tiny.pth
# So small that the worker's step is cheap and the router's own cost shows.
$skein make-model --layers 1 --embd 64 --vocab 1024 --seed 1 --out "$tiny" >/dev/null
run tiny-1x1 "$tiny" 1 1 256 200
