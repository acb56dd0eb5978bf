#!/usr/bin/env bash
# The session benchmarks of docs/benchmarks.md, in one run on this machine (loopback only):
# prefix-state cache hits against cold prompts and the cost of a turn's snapshot on a 1x1
# cluster, then the stream stall when a last-stage worker of a 2x2 cluster is killed.
#
#   tools/bench/sessions.sh MODEL VOCAB
# MODEL: a 0.1B-shape checkpoint (e.g. the one ./run.sh uses); VOCAB: the World vocabulary.
# Prints one JSON line per measurement. ONLY=prefix,turns,failover runs only those.
set -euo pipefail
cd "$(dirname "$0")/../.."
model=${1:?usage: sessions.sh MODEL VOCAB}
vocab=${2:?usage: sessions.sh MODEL VOCAB}
bazel build //tools:skein //services/... >/dev/null 2>&1
skein=bazel-bin/tools/skein
work=$(mktemp -d -t skein-bench.XXXXXX)
trap 'for d in "$work"/c*; do [[ -f $d/cluster.json ]] && $skein cluster down --dir "$d" >/dev/null 2>&1; done; rm -rf "$work"' EXIT
want() { [[ -z "${ONLY:-}" || ",$ONLY," == *",$1,"* ]]; }

if want prefix || want turns; then
  router=$($skein cluster up --model "$model" --vocab "$vocab" --stages 1 --replicas 1 \
    --dir "$work/c1" --store memory --dtype bf16 2>/dev/null | tail -n 1)
  want prefix && $skein bench-sessions --router "$router" --scenario prefix --prefix-tokens 2000
  want turns && $skein bench-sessions --router "$router" --scenario turns --turn-tokens 64
  $skein cluster down --dir "$work/c1" >/dev/null
fi
if want failover; then
  router=$($skein cluster up --model "$model" --vocab "$vocab" --stages 2 --replicas 2 \
    --dir "$work/c2" --store memory --dtype bf16 2>/dev/null | tail -n 1)
  victim=$(python3 -c "import json,sys; print([p['pid'] for p in json.load(open(sys.argv[1]))['processes'] if p['name'] == 'worker-r0-s1'][0])" "$work/c2/cluster.json")
  $skein bench-sessions --router "$router" --scenario failover --streams 8 --max-tokens 150 \
    --kill-pid "$victim" --kill-after 4
  $skein cluster down --dir "$work/c2" >/dev/null
fi
