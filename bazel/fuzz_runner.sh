#!/usr/bin/env bash
# Runs a libFuzzer smoke test; see bazel/fuzz.bzl. Arguments (lists run to the next --flag):
#   --fuzzer BINARY --max-total-time SECONDS --max-len BYTES [--seeds FILE...]
#   [--seed-generator BINARY]
set -euo pipefail

fuzzer=""
max_total_time=15
max_len=65536
seeds=()
generator=""
in_seeds=0
while (($#)); do
  case "$1" in
    --fuzzer) fuzzer="$2"; shift 2; in_seeds=0 ;;
    --max-total-time) max_total_time="$2"; shift 2; in_seeds=0 ;;
    --max-len) max_len="$2"; shift 2; in_seeds=0 ;;
    --seed-generator) generator="$2"; shift 2; in_seeds=0 ;;
    --seeds) in_seeds=1; shift ;;
    *)
      if ((in_seeds)); then seeds+=("$1"); shift; continue; fi
      echo "fuzz_runner: unexpected argument '$1'" >&2
      exit 2
      ;;
  esac
done
[[ -n "$fuzzer" ]] || { echo "fuzz_runner: --fuzzer is required" >&2; exit 2; }

work="${TEST_TMPDIR:-$(mktemp -d)}"
artifacts="${TEST_UNDECLARED_OUTPUTS_DIR:-$work}"
mkdir -p "$work/corpus"
for s in "${seeds[@]+"${seeds[@]}"}"; do cp "$s" "$work/corpus/"; done
if [[ -n "$generator" ]]; then "$generator" "$work/corpus"; fi
echo "fuzz_runner: $(ls "$work/corpus" | wc -l) seed inputs"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
exec "$fuzzer" -max_total_time="$max_total_time" -max_len="$max_len" -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts/" "$work/corpus"
