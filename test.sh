#!/usr/bin/env bash
# Installs what is missing (idempotent), builds everything and runs every test. Prints a
# final line "N passed, M failed" (test cases, from the test reports) and exits non-zero on
# any failure. Skipped tests (with the reason each gave) and failed ones are listed by name
# just above that line.
set -uo pipefail
cd "$(dirname "$0")"
./tools/setup/install_deps.sh || { echo "0 passed, 1 failed"; exit 1; }
./tools/setup/install_node_deps.sh
./tools/setup/install_helm.sh

# Reference data beside the checkout (CI has ../shared); tests skip with a reason without it.
if [[ -z "${SKEIN_SHARED_DIR:-}" && -d ../shared ]]; then
  export SKEIN_SHARED_DIR=$(cd ../shared && pwd)
fi

# The build event file names this run's test reports, so that reports earlier runs left in
# bazel-testlogs are not counted.
events=$(mktemp)
trap 'rm -f "$events"' EXIT
bazel test //... --build_event_json_file="$events" "$@"
bazel_rc=$?

python3 tools/setup/summarize_tests.py "$(bazel info bazel-testlogs 2>/dev/null)" $bazel_rc "$events"
