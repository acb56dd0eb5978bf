#!/usr/bin/env bash
# Prints the report of clang's thread-safety analysis (bazel/thread_safety.bzl) and fails on
# any diagnostic. Without clang++ the test is recorded as skipped, unless prerequisites are
# required (CI=true/1 or SKEIN_REQUIRE_DATA set), where it fails.
set -euo pipefail
report="%REPORT%"
if [[ ! -f "$report" ]]; then
  echo "no report at $report"
  exit 1
fi
cat "$report"
status="$(head -n 1 "$report")"
case "$status" in
  "status: clean")
    exit 0
    ;;
  "status: no-clang")
    case "${CI:-}" in true | 1)
      echo "failing: CI is set, so clang++ is required"
      exit 1
      ;;
    esac
    case "${SKEIN_REQUIRE_DATA:-0}" in "" | 0) ;; *)
      echo "failing: SKEIN_REQUIRE_DATA is set, so clang++ is required"
      exit 1
      ;;
    esac
    if [[ -n "${XML_OUTPUT_FILE:-}" ]]; then
      {
        echo '<?xml version="1.0" encoding="UTF-8"?>'
        echo '<testsuites><testsuite name="thread_safety" tests="1" skipped="1">'
        echo '<testcase classname="thread_safety" name="clang">'
        echo '<skipped message="no clang++: the thread-safety analysis did not run"/>'
        echo '</testcase></testsuite></testsuites>'
      } >"$XML_OUTPUT_FILE"
    fi
    exit 0
    ;;
  *)
    echo "FAILED: clang reported the diagnostics above (ABSL_GUARDED_BY and the other"
    echo "annotations are in absl/base/thread_annotations.h; see docs/architecture.md, Build)"
    exit 1
    ;;
esac
