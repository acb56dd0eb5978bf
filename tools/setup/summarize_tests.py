#!/usr/bin/env python3
"""Prints "N passed, M failed, K skipped" over the test cases of the last `bazel test` run.

Reads every test.xml under the bazel-testlogs folder. A test target whose report is missing
or records a crash counts as one failure, as does a build that failed before tests ran.
Exits non-zero if anything failed.
"""
import os
import sys
import xml.etree.ElementTree as ET


def main():
    logs, bazel_rc = sys.argv[1], int(sys.argv[2])
    passed = failed = skipped = 0
    failures = []
    for root, _, files in os.walk(logs):
        if "test.xml" not in files:
            continue
        target = os.path.relpath(root, logs)
        try:
            tree = ET.parse(os.path.join(root, "test.xml"))
        except ET.ParseError:
            failed += 1
            failures.append(target)
            continue
        cases = list(tree.iter("testcase"))
        if not cases:
            # A non-gtest test (sh_test): judged by the target's overall result.
            suite_failed = any(
                int(s.get("failures", 0)) + int(s.get("errors", 0)) > 0
                for s in tree.iter("testsuite"))
            if suite_failed:
                failed += 1
                failures.append(target)
            else:
                passed += 1
            continue
        for case in cases:
            name = f"{target}: {case.get('classname')}.{case.get('name')}"
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
                failures.append(name)
            elif case.get("result") == "skipped" or case.find("skipped") is not None:
                skipped += 1
            else:
                passed += 1
    # Bazel exit codes: 0 all passed, 3 some tests failed, 4 no tests; others: build failed.
    if bazel_rc not in (0, 3) and not failures:
        failed += 1
        failures.append(f"bazel exited with {bazel_rc} (build failure?)")
    for f in failures:
        print(f"FAILED: {f}")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or bazel_rc not in (0,) else 0


if __name__ == "__main__":
    sys.exit(main())
