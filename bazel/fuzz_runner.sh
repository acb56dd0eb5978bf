#!/usr/bin/env bash
# Runs a libFuzzer smoke test; see bazel/fuzz.bzl. Arguments (lists run to the next --flag):
#   --fuzzer BINARY --max-total-time SECONDS --max-len BYTES [--seeds FILE...]
#   [--seed-generator BINARY] [--corpus DIR] [--artifacts DIR]
# A later flag overrides an earlier one, so tools/fuzz.sh can append its own time, corpus and
# artifact directories to the arguments the BUILD file gives. Without --corpus the corpus is a
# fresh one under TEST_TMPDIR; with it, it persists and grows from run to run.
set -euo pipefail

fuzzer=""
max_total_time=15
max_len=65536
seeds=()
generator=""
corpus=""
artifacts="${TEST_UNDECLARED_OUTPUTS_DIR:-}"
in_seeds=0
while (($#)); do
  case "$1" in
    --fuzzer) fuzzer="$2"; shift 2; in_seeds=0 ;;
    --max-total-time) max_total_time="$2"; shift 2; in_seeds=0 ;;
    --max-len) max_len="$2"; shift 2; in_seeds=0 ;;
    --seed-generator) generator="$2"; shift 2; in_seeds=0 ;;
    --corpus) corpus="$2"; shift 2; in_seeds=0 ;;
    --artifacts) artifacts="$2"; shift 2; in_seeds=0 ;;
    --seeds) in_seeds=1; shift ;;
    *)
      if ((in_seeds)); then seeds+=("$1"); shift; continue; fi
      echo "fuzz_runner: unexpected argument '$1'" >&2
      exit 2
      ;;
  esac
done
[[ -n "$fuzzer" ]] || { echo "fuzz_runner: --fuzzer is required" >&2; exit 2; }

if [[ -z "$corpus" || -z "$artifacts" ]]; then
  work="${TEST_TMPDIR:-$(mktemp -d)}"
  corpus="${corpus:-$work/corpus}"
  artifacts="${artifacts:-$work}"
fi
mkdir -p "$corpus" "$artifacts"
# Seeds go in every time (they may have changed with the code that generates them).
for s in "${seeds[@]+"${seeds[@]}"}"; do cp -f "$s" "$corpus/"; done
if [[ -n "$generator" ]]; then "$generator" "$corpus"; fi
echo "fuzz_runner: $(ls "$corpus" | wc -l) inputs in the corpus"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
exec "$fuzzer" -max_total_time="$max_total_time" -max_len="$max_len" -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus"
