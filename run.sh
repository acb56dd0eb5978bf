#!/usr/bin/env bash
# Sets up everything Skein needs on Debian 12 (idempotent), builds it, starts a local cluster
# (state store, tokenizer, workers, router) on loopback, streams a sample completion, and
# keeps serving until Ctrl-C (which drains and stops every process).
#
#   ./run.sh [--model PATH] [--stages S] [--replicas R]
# The model: --model, $SKEIN_MODEL, the official RWKV-7 G1 0.1B (downloaded once into
# ~/.cache/skein/), or a generated model of that shape (see tools/setup/find_model.sh).
set -euo pipefail
cd "$(dirname "$0")"

model=${SKEIN_MODEL:-}
stages=${SKEIN_STAGES:-1}
replicas=${SKEIN_REPLICAS:-1}
while (($#)); do
  case $1 in
    --model) model=$2; shift 2 ;;
    --stages) stages=$2; shift 2 ;;
    --replicas) replicas=$2; shift 2 ;;
    *) echo "run.sh: unknown argument $1 (try --model PATH, --stages S, --replicas R)" >&2; exit 2 ;;
  esac
done

./tools/setup/install_deps.sh
bazel build //services/router:skein-router //services/tokenizer:skein-tokenizer \
  //services/state_store:skein-state-store //services/worker:skein-worker //tools:skein
bin=$(bazel info bazel-bin 2>/dev/null)
skein=$bin/tools/skein
vocab=$(tools/setup/find_vocab.sh)
model=$(tools/setup/find_model.sh "$skein" "$model")

run=${SKEIN_RUN_DIR:-$(mktemp -d -t skein-run.XXXXXX)}
echo "Starting a local cluster: $stages stage(s) x $replicas replica(s) of $model (logs in $run)"
router=$("$skein" cluster up --model "$model" --vocab "$vocab" --stages "$stages" \
  --replicas "$replicas" --dir "$run" --bin-dir "$bin" | tail -n 1)
trap '"$skein" cluster down --dir "$run" >/dev/null 2>&1 || true' EXIT
trap 'exit 0' INT TERM

prompt=$'User: Write one sentence about geese flying in formation.\n\nAssistant:'
echo
echo "$prompt"
"$skein" client generate --router "$router" --prompt "$prompt" --max-tokens 64 \
  --stop $'\n\nUser:' --timeout 120 || echo "(the sample generation failed; see $run/*.log)"

cat <<MSG

Skein is serving. The router (skein.v1.RouterService) is at $router
  bazel-bin/tools/skein client generate --router $router --prompt 'Hello' --max-tokens 32
  grpcurl -plaintext -d '{"prompt":{"text":"'\$(printf 'Hello' | base64)'"},"stop":{"max_tokens":32}}' \\
      $router skein.v1.RouterService/Generate
Every process, its address and pid: $run/cluster.json. Press Ctrl-C to stop.
MSG
# `wait` (unlike a foreground sleep) returns as soon as a signal arrives, so the trap runs.
while :; do
  sleep 3600 &
  wait $!
done
