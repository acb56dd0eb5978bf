#!/usr/bin/env python3
"""Prints "N passed, M failed, K skipped" over the test cases of the last `bazel test` run.

    summarize_tests.py TESTLOGS_DIR BAZEL_EXIT_CODE [BUILD_EVENT_JSON_FILE]

With the build event file that `bazel test --build_event_json_file=F` wrote, it reads the
test.xml of each test that run reported (the last attempt of each run and shard), so reports
left in the testlogs folder by earlier runs (other targets, `--runs_per_test` folders) do not
count. Without it, it reads every test.xml under the testlogs folder. A test whose report is
missing or records a crash counts as one failure, as does a build that failed before tests
ran. Exits non-zero if anything failed.
"""
import json
import os
import sys
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET


def reports_from_build_events(path):
    """(name, test.xml path or None) for the last attempt of each test run in the file."""
    latest = {}
    with open(path) as f:
        for line in f:
            event = json.loads(line)
            test = event.get("id", {}).get("testResult")
            if test is None:
                continue
            key = (test["label"], test.get("run", 1), test.get("shard", 1))
            xml = None
            for output in event.get("testResult", {}).get("testActionOutput", []):
                if output.get("name") == "test.xml":
                    uri = urllib.parse.urlparse(output["uri"])
                    xml = urllib.request.url2pathname(uri.path)
            if key not in latest or test.get("attempt", 1) > latest[key][0]:
                latest[key] = (test.get("attempt", 1), xml)
    runs = {}
    for label, run, _ in latest:
        runs[label] = max(runs.get(label, 1), run)
    reports = []
    for (label, run, shard), (_, xml) in sorted(latest.items()):
        name = label if runs[label] == 1 else f"{label} (run {run})"
        reports.append((name if shard == 1 else f"{name} (shard {shard})", xml))
    return reports


def skip_reason(case):
    """The reason a skipped gtest case gave (GTEST_SKIP() << ...), on one line."""
    node = case.find("skipped")
    text = ""
    if node is not None:
        text = node.get("message") or node.text or ""
    # gtest writes "file.cc:LINE" and then the message on the next line.
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and ".cc:" in lines[0]:
        lines = lines[1:]
    return " ".join(lines) or "no reason given"


def reports_from_folder(logs):
    return [(os.path.relpath(root, logs), os.path.join(root, "test.xml"))
            for root, _, files in os.walk(logs) if "test.xml" in files]


def main():
    logs, bazel_rc = sys.argv[1], int(sys.argv[2])
    events = sys.argv[3] if len(sys.argv) > 3 else ""
    if events and os.path.exists(events):
        reports = reports_from_build_events(events)
    else:
        reports = reports_from_folder(logs)
    passed = failed = skipped = 0
    failures = []
    skips = []
    for target, xml in reports:
        try:
            if xml is None:
                raise OSError("the run reported no test.xml")
            tree = ET.parse(xml)
        except (ET.ParseError, OSError):
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
                skips.append(f"{name}: {skip_reason(case)}")
            else:
                passed += 1
    # Bazel exit codes: 0 all passed, 3 some tests failed, 4 no tests; others: build failed.
    if bazel_rc not in (0, 3) and not failures:
        failed += 1
        failures.append(f"bazel exited with {bazel_rc} (build failure?)")
    # Skips and failures go above the summary, which stays the last line (CI reads it).
    for s in skips:
        print(f"SKIPPED: {s}")
    for f in failures:
        print(f"FAILED: {f}")
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or bazel_rc not in (0,) else 0


if __name__ == "__main__":
    sys.exit(main())
