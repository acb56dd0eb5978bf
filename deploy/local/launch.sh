#!/usr/bin/env bash
# Starts the Skein services on loopback from built binaries, waits until each reports SERVING
# over gRPC health, prints their addresses, and stops them all (SIGTERM, graceful drain) on
# Ctrl-C or SIGTERM. Used by ./run.sh.
#
#   deploy/local/launch.sh BIN_DIR [RUN_DIR]
# BIN_DIR holds services/*/skein-* and tools/skein (e.g. bazel-bin). Ports come from the
# environment: SKEIN_ROUTER_PORT (7700), SKEIN_TOKENIZER_PORT (7710),
# SKEIN_STATE_STORE_PORT (7720), SKEIN_WORKER_PORT (7730); metrics ports are those plus 2000.
# SKEIN_VOCAB is the World vocabulary file for the tokenizer (tools/setup/find_vocab.sh
# finds one).
set -euo pipefail

bin=${1:?usage: launch.sh BIN_DIR [RUN_DIR]}
run=${2:-$(mktemp -d -t skein-run.XXXXXX)}
mkdir -p "$run"

declare -A port=(
  [router]=${SKEIN_ROUTER_PORT:-7700}
  [tokenizer]=${SKEIN_TOKENIZER_PORT:-7710}
  [state_store]=${SKEIN_STATE_STORE_PORT:-7720}
  [worker]=${SKEIN_WORKER_PORT:-7730}
)
declare -A args=(
  [router]=""
  [tokenizer]="--vocab ${SKEIN_VOCAB:?set SKEIN_VOCAB to the vocabulary file}"
  [state_store]=""
  [worker]=""
)
order=(state_store tokenizer worker router)
pids=()

stop_all() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop_all EXIT
trap 'exit 0' INT TERM

for svc in "${order[@]}"; do
  name=skein-${svc//_/-}
  p=${port[$svc]}
  rm -f "$run/$svc.ready"
  # shellcheck disable=SC2086  # args holds separate words on purpose
  "$bin/services/$svc/$name" --listen "127.0.0.1:$p" --metrics-port $((p + 2000)) \
    --ready-file "$run/$svc.ready" ${args[$svc]} 2>>"$run/$svc.log" &
  pids+=($!)
done

for svc in "${order[@]}"; do
  p=${port[$svc]}
  if ! "$bin/tools/skein" health --target "127.0.0.1:$p" --timeout 30 >/dev/null; then
    echo "launch: $svc did not become healthy; its log ($run/$svc.log) ends with:" >&2
    tail -n 5 "$run/$svc.log" >&2 || true
    exit 1
  fi
done

echo "Skein is serving (logs in $run):"
for svc in router tokenizer state_store worker; do
  p=${port[$svc]}
  printf '  %-12s grpc 127.0.0.1:%-5s  metrics http://127.0.0.1:%s/metrics\n' \
    "$svc" "$p" $((p + 2000))
done
echo "Press Ctrl-C to stop."
wait -n "${pids[@]}" || true
echo "launch: a service exited; stopping the rest" >&2
exit 1
