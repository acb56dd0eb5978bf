#!/usr/bin/env bash
# Fuzzes every libFuzzer target in the repository for longer than the test suite's smoke runs
# (which give each target about 15 seconds), and reports what each reached.
#
# Usage: tools/fuzz.sh [-m MINUTES] [-j JOBS] [TARGET...]
#   -m MINUTES  how long to fuzz each target (default: $SKEIN_FUZZ_MINUTES, else 10; a fraction
#               such as 0.5 works for a quick check)
#   -j JOBS     how many targets to fuzz at once (default 1; each keeps one core busy)
#   TARGET      fuzz test labels, e.g. //services/worker/model:state_blob_fuzz_test (default:
#               every sh_test tagged "fuzz", found with bazel query)
#
# Every target keeps its corpus in .fuzz/corpus/<package>/<name>/ (git ignores .fuzz/), so a
# run starts from everything earlier runs found, seeds included. Crashing inputs (crash-*,
# leak-*, oom-*, timeout-*) go to .fuzz/artifacts/<package>/<name>/<time of the run>/, and
# libFuzzer's output to .fuzz/logs/. At the end it prints a table of targets with the
# executions each reached, its corpus size and its crashes, with the artifact paths, and exits
# 1 if any target crashed (libFuzzer stops a target at its first crash). The binaries it runs
# are copies under .fuzz/bin/, so builds may go on in the checkout meanwhile.
#
# Reproduce a crash with the fuzzer binary and the artifact:
#   bazel-bin/<package>/<name>_fuzzer .fuzz/artifacts/<package>/<name>/<time>/crash-...
# (or, exactly as fuzzed, .fuzz/bin/<package>/<name>/runner.runfiles/<workspace>/<package>/
# <name>_fuzzer).
#
# Needs clang++ as the smoke tests do (without it, targets are reported as skipped). Beside
# other work on the machine, run it at low priority and one target at a time:
#   nice -n 19 tools/fuzz.sh -m 10 -j 1
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
  exit 2
}

minutes="${SKEIN_FUZZ_MINUTES:-10}"
jobs=1
while getopts "m:j:h" opt; do
  case "$opt" in
    m) minutes="$OPTARG" ;;
    j) jobs="$OPTARG" ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[[ "$minutes" =~ ^[0-9]+([.][0-9]+)?$ ]] || { echo "fuzz.sh: -m wants minutes, got '$minutes'" >&2; exit 2; }
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: -j wants a positive count, got '$jobs'" >&2; exit 2; }
seconds=$(awk -v m="$minutes" 'BEGIN { s = int(m * 60); print (s < 1 ? 1 : s) }')

targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(bazel query 'attr(tags, "\bfuzz\b", kind(sh_test, //...))' 2>/dev/null)
fi
((${#targets[@]})) || { echo "fuzz.sh: no fuzz targets found" >&2; exit 1; }

# A target's directories under .fuzz/: //services/x:y_fuzz_test -> services/x/y_fuzz_test.
slug() {
  local label="${1#//}"
  echo "${label/://}"
}

stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p .fuzz/scripts .fuzz/logs
# Each fuzz test has a twin, <name>_runner (bazel/fuzz.bzl), that runs the same fuzzer with the
# same seeds outside the test runner. `bazel run --script_path` writes a script that runs it
# with the arguments its BUILD rule gives; fuzz_runner.sh takes the later --max-total-time,
# --corpus and --artifacts given here over those.
runners=()
for t in "${targets[@]}"; do runners+=("${t}_runner"); done
echo "fuzz.sh: building ${#targets[@]} fuzz targets"
bazel build "${runners[@]}"
# The runners are then copied out of bazel-bin (links resolved), and the scripts pointed at the
# copies: Bazel deletes an output before it rebuilds it, so a build running beside a long
# fuzzing session (other work in the same checkout) could otherwise take a binary away from
# under a target that has not started yet.
bindir=$(readlink -f bazel-bin)
for t in "${targets[@]}"; do
  s=$(slug "$t")
  label="${t#//}"
  runner="$bindir/${label%%:*}/${label##*:}_runner"
  copy="$root/.fuzz/bin/$s"
  mkdir -p ".fuzz/scripts/$(dirname "$s")"
  rm -rf "$copy" && mkdir -p "$copy"
  bazel run --script_path=".fuzz/scripts/$s.sh" "${t}_runner" 2>/dev/null &&
    cp -L "$runner" "$copy/runner" && cp -rL "$runner.runfiles" "$copy/runner.runfiles" ||
    { echo "fuzz.sh: cannot prepare ${t}_runner" >&2; exit 1; }
  sed -i -e "s|$runner.runfiles|$copy/runner.runfiles|g" -e "s|$runner |$copy/runner |g" \
    ".fuzz/scripts/$s.sh"
  grep -q "$bindir" ".fuzz/scripts/$s.sh" &&
    { echo "fuzz.sh: the run script of $t still points into bazel-bin" >&2; exit 1; }
done

fuzz_one() {
  local t="$1" s
  s=$(slug "$t")
  local corpus="$root/.fuzz/corpus/$s" artifacts="$root/.fuzz/artifacts/$s/$stamp"
  local log="$root/.fuzz/logs/$(echo "$s" | tr '/' '_').log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  echo "fuzz.sh: $t for $seconds s (log: ${log#"$root"/})"
  local rc=0
  bash ".fuzz/scripts/$s.sh" --max-total-time "$seconds" --corpus "$corpus" \
    --artifacts "$artifacts" >"$log" 2>&1 || rc=$?
  echo "$rc" >"$log.rc"
}

for t in "${targets[@]}"; do
  while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
  fuzz_one "$t" &
done
wait

failed=0
crashed=()
echo
echo "Fuzzed for $seconds s per target on $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)" \
  "($(nproc) CPUs), $(date -u '+%Y-%m-%d %H:%M UTC')"
printf '%-62s %14s %9s %8s\n' "target" "executions" "corpus" "crashes"
for t in "${targets[@]}"; do
  s=$(slug "$t")
  log="$root/.fuzz/logs/$(echo "$s" | tr '/' '_').log"
  artifacts="$root/.fuzz/artifacts/$s/$stamp"
  rc=$(cat "$log.rc" 2>/dev/null || echo 1)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  corpus=$(find "$root/.fuzz/corpus/$s" -type f | wc -l)
  found=()
  while IFS= read -r f; do found+=("$f"); done < <(find "$artifacts" -type f \
    \( -name 'crash-*' -o -name 'leak-*' -o -name 'oom-*' -o -name 'timeout-*' \) | sort)
  crashes=${#found[@]}
  if grep -q "no clang++ when this was built" "$log"; then
    execs="skipped"
  elif ((rc != 0)); then
    failed=1
    ((crashes > 0)) || crashes="rc $rc"
  fi
  printf '%-62s %14s %9s %8s\n' "$t" "${execs:-?}" "$corpus" "$crashes"
  for f in "${found[@]+"${found[@]}"}"; do crashed+=("  ${f#"$root"/}"); done
done
if ((${#crashed[@]})); then
  echo
  echo "Crashing inputs:"
  printf '%s\n' "${crashed[@]}"
fi
if ((failed)); then
  echo
  echo "fuzz.sh: a target crashed or failed; see .fuzz/logs/"
fi
exit "$failed"
