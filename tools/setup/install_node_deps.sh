#!/usr/bin/env bash
# Installs the npm packages the tests use (the `openai` client and @grpc/grpc-js in
# tests/node), exactly as
# tests/node/package-lock.json pins them. Idempotent: does nothing when they are there.
# Without npm or the registry it says why and exits 0: the tests that need them then skip
# with that reason (CI has both).
set -uo pipefail
cd "$(dirname "$0")/../.."
dir=tests/node
missing=0
for pkg in openai @grpc/grpc-js @grpc/proto-loader kubernetes-models @kubernetes-models/prometheus-operator js-yaml; do
  [[ -f $dir/node_modules/$pkg/package.json ]] || missing=1
done
if [[ $missing == 0 ]]; then exit 0; fi
if ! command -v npm >/dev/null; then
  echo "install_node_deps: npm not found; the Node.js client tests will skip" >&2
  exit 0
fi
npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >&2 ||
  echo "install_node_deps: npm ci failed; the Node.js client tests will skip" >&2
exit 0
