#!/usr/bin/env bash
# Checks helm/skein: `helm lint`; `helm template` for the value sets in helm/skein/ci (CPU on
# one node; GPU with 2 stages x 2 replicas; a Redis-backed store) and with the Prometheus
# Operator's API present; every rendered manifest validated against the Kubernetes API
# schemas by kubernetes-models (tests/node/validate_manifests.mjs); what the renders must
# contain; and bad values refused (schema and template checks).
# Run by `bazel test //deploy:helm_chart_test`. Needs .tools/helm/helm
# (tools/setup/install_helm.sh) and tests/node/node_modules (tools/setup/install_node_deps.sh).
set -euo pipefail
root=$(dirname "$(readlink -f "${BASH_SOURCE[0]%/*}/../WORKSPACE" 2>/dev/null || readlink -f WORKSPACE)")
helm=$root/.tools/helm/helm
chart=$root/helm/skein
[[ -x $helm ]] || { echo "helm not installed: run tools/setup/install_helm.sh" >&2; exit 1; }
[[ -d $root/tests/node/node_modules/kubernetes-models ]] ||
  { echo "kubernetes-models not installed: run tools/setup/install_node_deps.sh" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

for values in cpu-one-node gpu-2x2 redis; do
  "$helm" lint --strict "$chart" -f "$chart/ci/$values.yaml" >"$work/lint-$values.txt" ||
    { cat "$work/lint-$values.txt" >&2; fail "helm lint with ci/$values.yaml"; }
  "$helm" template skein-ci "$chart" -n serving -f "$chart/ci/$values.yaml" >"$work/$values.yaml"
done
"$helm" template skein-ci "$chart" -n serving -f "$chart/ci/gpu-2x2.yaml" \
  --api-versions monitoring.coreos.com/v1/ServiceMonitor >"$work/with-operator.yaml"
node "$root/tests/node/validate_manifests.mjs" "$work"/cpu-one-node.yaml "$work"/gpu-2x2.yaml \
  "$work"/redis.yaml "$work"/with-operator.yaml

count() { grep -c -- "$1" "$2" || true; }
# One StatefulSet per stage with `replicas` pods, wired to the next stage by ordinal.
[[ $(count '^kind: StatefulSet' "$work/gpu-2x2.yaml") == 3 ]] || fail "2 stages + store: 3 StatefulSets"
[[ $(count 'replicas: 2' "$work/gpu-2x2.yaml") -ge 2 ]] || fail "stages have 2 replicas"
grep -q -- '--pipeline=skein-ci-worker-s0-0.skein-ci-worker-s0.serving.svc:7730,skein-ci-worker-s0-1' \
  "$work/gpu-2x2.yaml" || fail "the router lists stage 0 of both replicas"
grep -q -- '--next="skein-ci-worker-s1-${ordinal}' "$work/gpu-2x2.yaml" || fail "stage 0 relays to stage 1"
grep -q -- '--layers=12:24 --stage=1' "$work/gpu-2x2.yaml" || fail "the layer split reaches the workers"
[[ $(count 'nvidia.com/gpu: 1' "$work/gpu-2x2.yaml") == 2 ]] || fail "GPU workers request a GPU"
[[ $(count '--device=cuda' "$work/gpu-2x2.yaml") == 2 ]] || fail "GPU workers run the GPU engine"
[[ $(count '--device=' "$work/cpu-one-node.yaml") == 0 ]] || fail "CPU workers keep the CPU engine"
[[ $(count '^kind: HorizontalPodAutoscaler' "$work/gpu-2x2.yaml") == 2 ]] || fail "router and tokenizer autoscale"
[[ $(count '^kind: ServiceMonitor' "$work/with-operator.yaml") == 1 ]] || fail "ServiceMonitor with the operator"
[[ $(count '^kind: ServiceMonitor' "$work/gpu-2x2.yaml") == 0 ]] || fail "no ServiceMonitor without the operator"
grep -q 'volumeClaimTemplates' "$work/cpu-one-node.yaml" || fail "RocksDB store keeps its data on a PVC"
grep -q -- '--redis=redis-cluster.redis.svc:6379' "$work/redis.yaml" || fail "the Redis store is wired"
grep -q 'helm.sh/hook: test' "$work/cpu-one-node.yaml" || fail "a helm test hook"
# Several models: one pipeline group each, the second with its own 2 stages.
grep -q -- '--pipeline=rwkv7-g1a-0.1b=skein-ci-worker-s0-0.skein-ci-worker-s0.serving.svc:7730' \
  "$work/cpu-one-node.yaml" || fail "the router names the main model's pipeline"
grep -q -- '--pipeline=rwkv6-world-0.4b=skein-ci-worker-m1-s0-0.skein-ci-worker-m1-s0.serving.svc:7730' \
  "$work/cpu-one-node.yaml" || fail "the router names the extra model's pipeline"
grep -q -- '--layers=12:24 --stage=1 --stages=2' "$work/cpu-one-node.yaml" ||
  fail "the extra model is split over its own stages"
grep -q -- '--dtype=int8' "$work/cpu-one-node.yaml" || fail "the extra model keeps its dtype"
[[ $(count '^kind: StatefulSet' "$work/cpu-one-node.yaml") == 4 ]] ||
  fail "1 stage + 2 extra-model stages + store: 4 StatefulSets"
grep -q -- '--pipeline=skein-ci-worker-s0-0' "$work/gpu-2x2.yaml" ||
  fail "one model keeps the plain --pipeline"
grep -q -- '--initial-state="chinese-chat=/models/chinese-chat-state.pth"' "$work/cpu-one-node.yaml" ||
  fail "initial states reach the workers"
grep -q -- 'fetch "https://example.com/states/chinese-chat-state.pth"' "$work/cpu-one-node.yaml" ||
  fail "initial states are fetched beside the model"
# Every pod non-root with a read-only root filesystem and no capabilities.
for f in "$work"/*.yaml; do
  pods=$(count '^      containers:\|^  containers:' "$f")
  [[ $(count 'runAsNonRoot: true' "$f") -ge $pods ]] || fail "$f: a pod may run as root"
  [[ $(count 'readOnlyRootFilesystem: true' "$f") -ge $pods ]] || fail "$f: a writable root filesystem"
done

# Bad values are refused.
refuse() {  # refuse WHAT EXPECTED-TEXT HELM-ARGS...
  local what=$1 expected=$2
  shift 2
  if "$helm" template skein-ci "$chart" -f "$chart/ci/cpu-one-node.yaml" "$@" >"$work/out" 2>"$work/err"; then
    fail "$what was accepted"
  fi
  grep -q -- "$expected" "$work/err" || { cat "$work/err" >&2; fail "$what: no mention of $expected"; }
}
refuse "stages < 1" "pipeline.stages" --set pipeline.stages=0
refuse "an unknown store type" "store.type" --set store.type=etcd
refuse "a layer split that stops short" "ends at layer 10" --set pipeline.stages=2 \
  --set 'pipeline.layerSplit={0:5,5:10}'
refuse "a layer split with a gap" "without gaps" --set pipeline.stages=2 \
  --set 'pipeline.layerSplit={0:5,6:12}'
refuse "a split for another stage count" "ranges for 3 stages" --set pipeline.stages=3 \
  --set 'pipeline.layerSplit={0:6,6:12}'
refuse "more stages than layers" "more than the model's layers" --set pipeline.stages=13
refuse "a Redis store without an address" "store.redis.address" --set store.type=redis
refuse "a model URL without a checksum" "sha256" --set model.sha256=
refuse "an initial state with a bad name" "initialStates" --set 'model.initialStates[0].name=a b' \
  --set 'model.initialStates[0].file=s.pth'
echo "helm chart checks passed"
