#!/usr/bin/env bash
# Runs clang's thread-safety analysis over C++ sources and writes a report (see
# bazel/thread_safety.bzl). Never fails itself: the test reads the report and decides, so a
# missing clang is a skip (or a failure in CI) rather than a broken build.
# Usage: thread_safety_check.sh REPORT JOBS FLAG... -- SOURCE...
# A SOURCE is a path, or `path::flag,flag` for a file with extra flags of its own.
# Runs from the execution root, where sources sit at their repository paths.
set -uo pipefail
report="$1"
jobs="$2"
shift 2
flags=()
while [[ $# -gt 0 && "$1" != "--" ]]; do
  flags+=("$1")
  shift
done
shift  # the "--"

cxx=""
for c in clang++ clang++-14; do
  if command -v "$c" >/dev/null 2>&1; then
    cxx="$(command -v "$c")"
    break
  fi
done
if [[ -z "$cxx" ]]; then
  {
    echo "status: no-clang"
    echo "no clang++ on PATH when this was built: the thread-safety analysis did not run"
    echo "(install clang, then rebuild after touching a checked source or this script)"
  } >"$report"
  exit 0
fi

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
i=0
for arg in "$@"; do
  src="${arg%%::*}"
  extra=()
  if [[ "$arg" == *::* ]]; then IFS=, read -r -a extra <<<"${arg#*::}"; fi
  # Each file's output and exit status go to their own files; the report lists them in order.
  ("$cxx" "${flags[@]}" "${extra[@]}" "$src" >"$logs/$i.log" 2>&1; echo $? >"$logs/$i.rc") &
  i=$((i + 1))
  while (($(jobs -rp | wc -l) >= jobs)); do wait -n; done
done
wait

status="clean"
body="$(mktemp)"
i=0
for arg in "$@"; do
  src="${arg%%::*}"
  rc="$(cat "$logs/$i.rc" 2>/dev/null || echo 1)"
  # Any output at all counts: with -Werror a diagnostic is an error, and a note or a warning
  # that slipped past -Werror still deserves a look.
  if [[ "$rc" != 0 || -s "$logs/$i.log" ]]; then
    status="diagnostics"
    {
      echo "--- $src (clang++ exit status $rc)"
      cat "$logs/$i.log"
    } >>"$body"
  fi
  i=$((i + 1))
done
{
  echo "status: $status"
  echo "checked $# files with $("$cxx" --version | head -n 1)"
  echo "flags: ${flags[*]}"
  for arg in "$@"; do
    if [[ "$arg" == *::* ]]; then echo "  and for ${arg%%::*}: ${arg#*::}" | tr , ' '; fi
  done
  cat "$body"
} >"$report"
rm -f "$body"
exit 0
