#!/usr/bin/env bash
# Sets up everything Skein needs on Debian 12 (idempotent), builds it, and starts the
# services on loopback. Ctrl-C stops them.
set -euo pipefail
cd "$(dirname "$0")"
./tools/setup/install_deps.sh
bazel build //services/router:skein-router //services/tokenizer:skein-tokenizer \
  //services/state_store:skein-state-store //services/worker:skein-worker //tools:skein
SKEIN_VOCAB=$(tools/setup/find_vocab.sh)
export SKEIN_VOCAB
exec deploy/local/launch.sh "$(bazel info bazel-bin 2>/dev/null)" "${SKEIN_RUN_DIR:-}"
