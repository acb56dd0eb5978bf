#!/usr/bin/env python3
"""Runs summarize_tests.py on made-up test logs and build event files."""
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import unittest

SCRIPT = pathlib.Path(__file__).resolve().parent / "summarize_tests.py"


def write_report(path, cases):
    """A gtest-style test.xml; cases maps a name to "pass", "fail", "skip" or ("skip", why)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = []
    for name, outcome in cases.items():
        if isinstance(outcome, tuple):
            # As gtest 1.12 writes GTEST_SKIP() << why: the location, a newline, the message.
            inner = f"<skipped message='x_test.cc:12&#x0A;{outcome[1]}'/>"
        else:
            inner = {"pass": "", "fail": "<failure message='x'/>", "skip": "<skipped/>"}[outcome]
        body.append(f"<testcase classname='T' name='{name}'>{inner}</testcase>")
    path.write_text("<testsuites><testsuite name='T'>" + "".join(body) +
                    "</testsuite></testsuites>")


def test_result_event(label, xml, attempt=1, run=1, status="PASSED"):
    outputs = [] if xml is None else [{"name": "test.xml", "uri": xml.as_uri()}]
    return {"id": {"testResult": {"label": label, "run": run, "shard": 1, "attempt": attempt}},
            "testResult": {"testActionOutput": outputs, "status": status}}


def summarize(logs, rc, events=None):
    args = [sys.executable, str(SCRIPT), str(logs), str(rc)]
    if events is not None:
        args.append(str(events))
    done = subprocess.run(args, capture_output=True, text=True)
    return done.returncode, done.stdout.strip().splitlines()


class SummarizeTestsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.logs = pathlib.Path(self.dir.name) / "testlogs"
        self.events = pathlib.Path(self.dir.name) / "events.json"

    def tearDown(self):
        self.dir.cleanup()

    def write_events(self, events):
        self.events.write_text("".join(json.dumps(e) + "\n" for e in events))

    def test_counts_only_the_reports_the_run_names(self):
        write_report(self.logs / "a/test.xml", {"x": "pass", "y": "skip"})
        # Left by earlier runs: another target and a --runs_per_test folder.
        write_report(self.logs / "old/test.xml", {"z": "fail"})
        write_report(self.logs / "a/run_2_of_2/test.xml", {"x": "fail"})
        self.write_events([{"id": {"started": {}}},
                           test_result_event("//a", self.logs / "a/test.xml")])
        rc, lines = summarize(self.logs, 0, self.events)
        self.assertEqual(lines[-1], "1 passed, 0 failed, 1 skipped")
        self.assertEqual(rc, 0)
        # Without the event file every report counts.
        rc, lines = summarize(self.logs, 0)
        self.assertEqual(lines[-1], "1 passed, 2 failed, 1 skipped")
        self.assertNotEqual(rc, 0)

    def test_last_attempt_of_a_flaky_test_counts(self):
        write_report(self.logs / "f/attempt_1.xml", {"x": "fail"})
        write_report(self.logs / "f/test.xml", {"x": "pass"})
        self.write_events([
            test_result_event("//f", self.logs / "f/attempt_1.xml", attempt=1, status="FAILED"),
            test_result_event("//f", self.logs / "f/test.xml", attempt=2, status="FLAKY"),
        ])
        self.assertEqual(summarize(self.logs, 0, self.events)[1][-1],
                         "1 passed, 0 failed, 0 skipped")

    def test_failures_and_missing_reports_are_named(self):
        write_report(self.logs / "b/test.xml", {"x": "fail", "y": "pass"})
        self.write_events([
            test_result_event("//b", self.logs / "b/test.xml", status="FAILED"),
            test_result_event("//c", None, status="FAILED"),
            test_result_event("//d", self.logs / "d/run_1/test.xml", run=1),
            test_result_event("//d", self.logs / "d/run_2/test.xml", run=2),
        ])
        write_report(self.logs / "d/run_1/test.xml", {"x": "pass"})
        write_report(self.logs / "d/run_2/test.xml", {"x": "pass"})
        rc, lines = summarize(self.logs, 3, self.events)
        self.assertEqual(lines[-1], "3 passed, 2 failed, 0 skipped")
        self.assertIn("FAILED: //b: T.x", lines)
        self.assertIn("FAILED: //c", lines)
        self.assertNotEqual(rc, 0)

    def test_skipped_cases_are_listed_with_their_reason_above_the_summary(self):
        write_report(self.logs / "s/test.xml", {
            "a": ("skip", "the CPU lacks AVX512_BF16"), "b": "skip", "c": "pass"})
        self.write_events([test_result_event("//s", self.logs / "s/test.xml")])
        rc, lines = summarize(self.logs, 0, self.events)
        self.assertEqual(rc, 0)
        self.assertEqual(lines[-1], "1 passed, 0 failed, 2 skipped")
        self.assertIn("SKIPPED: //s: T.a: the CPU lacks AVX512_BF16", lines)
        self.assertIn("SKIPPED: //s: T.b: no reason given", lines)

    def test_a_failed_build_is_a_failure(self):
        self.write_events([])
        rc, lines = summarize(self.logs, 1, self.events)
        self.assertEqual(lines[-1], "0 passed, 1 failed, 0 skipped")
        self.assertNotEqual(rc, 0)


if __name__ == "__main__":
    unittest.main()
