#!/usr/bin/env bash
# Installs the npm packages the tests use (the `openai` client in tests/openai), exactly as
# tests/openai/package-lock.json pins them. Idempotent: does nothing when they are there.
# Without npm or the registry it says why and exits 0: the tests that need them then skip
# with that reason (CI has both).
set -uo pipefail
cd "$(dirname "$0")/../.."
dir=tests/openai
if [[ -f $dir/node_modules/openai/package.json ]]; then exit 0; fi
if ! command -v npm >/dev/null; then
  echo "install_node_deps: npm not found; the OpenAI client test will skip" >&2
  exit 0
fi
npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >&2 ||
  echo "install_node_deps: npm ci failed; the OpenAI client test will skip" >&2
exit 0
