#!/usr/bin/env bash
# Compiles a libFuzzer target with clang++ (see bazel/fuzz.bzl).
# Usage: fuzz_build.sh OUTPUT "PKG-CONFIG PACKAGES" "LINKOPTS" SOURCE...
# Runs from the execution root, where sources sit at their repository paths. A SOURCE may be
#   path.cc                  compiled with the common flags;
#   path.cc::-mavx2,-mfma    compiled with extra flags (comma-separated), for the kernel
#                            files that Bazel builds with per-ISA -m flags;
#   path.proto               generated with protoc (imports from proto/) and compiled;
#   path.h                   ignored (headers come in through srcs only to be declared).
set -euo pipefail
out="$1"
pkgs="$2"
linkopts="$3"
shift 3

cxx=""
for c in clang++ clang++-14; do
  if command -v "$c" >/dev/null 2>&1; then cxx="$c"; break; fi
done
if [[ -z "$cxx" ]]; then
  # The stand-in reports a skipped test (in Bazel's test.xml), not a pass; where
  # prerequisites are required (CI=true or SKEIN_REQUIRE_DATA set) it fails.
  cat >"$out" <<'STUB'
#!/bin/sh
why="no clang++ when this was built; not fuzzing (install clang and libclang-rt-14-dev)"
echo "$why"
case "${CI:-}" in true|1) echo "failing: CI is set, so clang++ is required"; exit 1 ;; esac
case "${SKEIN_REQUIRE_DATA:-0}" in ""|0) ;; *) echo "failing: SKEIN_REQUIRE_DATA is set"; exit 1 ;; esac
if [ -n "${XML_OUTPUT_FILE:-}" ]; then
  printf '<?xml version="1.0" encoding="UTF-8"?>\n<testsuites><testsuite name="fuzz" tests="1" skipped="1"><testcase classname="fuzz" name="smoke"><skipped message="%s"/></testcase></testsuite></testsuites>\n' "$why" >"$XML_OUTPUT_FILE"
fi
STUB
  chmod +x "$out"
  exit 0
fi

objdir="$(mktemp -d)"
trap 'rm -rf "$objdir"' EXIT
flags=(-std=c++20 -O1 -gline-tables-only -fno-omit-frame-pointer
       -fsanitize=address,undefined -fno-sanitize-recover=all -I. -I"$objdir/gen")

# Split the arguments into (source, extra flags) pairs; generate the message code of any
# .proto first, since the other sources include it. Generated code is compiled like the rest
# (instrumented), which is what lets the fuzzer see into message parsing.
sources=()
extras=()
protos=()
for arg in "$@"; do
  src="${arg%%::*}"
  extra=""
  [[ "$arg" == *::* ]] && extra="${arg#*::}"
  case "$src" in
    *.h | *.hpp) ;;
    *.proto) protos+=("$src") ;;
    *) sources+=("$src"); extras+=("${extra//,/ }") ;;
  esac
done
if ((${#protos[@]})); then
  mkdir -p "$objdir/gen"
  protoc -Iproto --cpp_out="$objdir/gen" "${protos[@]}"
  for p in "${protos[@]}"; do
    sources+=("$objdir/gen/${p#proto/}")
    sources[-1]="${sources[-1]%.proto}.pb.cc"
    extras+=("-w")
  done
fi

# Compile in parallel; the fuzzer instrumentation is added per object, libFuzzer's main at link.
pids=()
objs=()
jobs=$(nproc 2>/dev/null || echo 2)
for i in "${!sources[@]}"; do
  src="${sources[$i]}"
  obj="$objdir/$(echo "$src" | tr '/' '_').o"
  objs+=("$obj")
  read -r -a extra <<<"${extras[$i]}"
  "$cxx" "${flags[@]}" "${extra[@]+"${extra[@]}"}" -fsanitize=fuzzer-no-link -c "$src" -o "$obj" &
  pids+=($!)
  while (($(jobs -rp | wc -l) >= jobs)); do wait -n; done
done
for p in "${pids[@]}"; do wait "$p"; done
pkg_flags=()
if [[ -n "$pkgs" ]]; then read -r -a pkg_flags <<<"$(pkg-config --libs $pkgs)"; fi
read -r -a extra <<<"$linkopts"
"$cxx" "${flags[@]}" -fsanitize=fuzzer "${objs[@]}" -o "$out" "${pkg_flags[@]+"${pkg_flags[@]}"}" \
  "${extra[@]+"${extra[@]}"}"
