# SPDX-License-Identifier: MIT
"""NumPy's own test suite under NumPy's default allocator and under
ebb.install() (`-p ebb.pytest_plugin`: installed before collection, checked
after every test), each in a child process; prints both summaries and their
comparison, and fails when the pass/fail/skip/xfail counts or any test's
outcome differ (tests NumPy skips for want of free memory in either run are
named and left out: that depends on the machine's load, not the allocator). `make check-python-numpy` runs it (PYTHONPATH=build/python).

    numpy_suite.py [PYTEST_TARGET]   default: numpy.core (NUMPY_SUITE=numpy: all of it)
"""

import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree

SUMMARY = re.compile(r"^=* ?(\d+ (passed|failed|skipped|xfailed|xpassed|errors?|warnings?|deselected).*?) ?=*$")
COUNT = re.compile(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?|deselected)")
KINDS = ("passed", "failed", "skipped", "xfailed", "xpassed", "error", "deselected")


# NumPy's requires_memory skips a test when MemAvailable is below what it needs: on a shared
# machine the same test runs in one pass and is skipped in the next, whatever the allocator.
MEMORY_SKIP = re.compile(r"memory required, but .* available")


def outcomes(junit_path):
    """{test id: (outcome, skip message)} from pytest's JUnit XML."""
    result = {}
    for case in ElementTree.parse(junit_path).iter("testcase"):
        test = f"{case.get('classname')}::{case.get('name')}"
        if test in result:   # JUnit's classname is empty for module-level tests: same names may repeat
            test += f" #{sum(t.startswith(test) for t in result) + 1}"
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        skipped = case.find("skipped")
        message = skipped.get("message", "") if skipped is not None else ""
        if "error" in kinds:
            result[test] = ("error", message)
        elif "failure" in kinds:
            result[test] = ("failed", message)
        elif skipped is not None:
            result[test] = ("xfailed" if skipped.get("type") == "pytest.xfail" else "skipped", message)
        else:
            result[test] = ("passed", message)
    return result


def memory_dependent(*runs):
    """Tests that NumPy skipped for want of free memory in any of the runs."""
    return {test for run in runs for test, (_, message) in run.items() if MEMORY_SKIP.search(message)}


def counts_of(tests, leave_out):
    counts = {}
    for test, (outcome, _) in tests.items():
        if test not in leave_out:
            counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def run(allocator, target, workdir):
    """pytest on `target` in a child; returns (counts, summary line, per-test outcomes, seconds, exit, plugin line)."""
    junit = os.path.join(workdir, f"{allocator}.xml")
    args = [sys.executable, "-m", "pytest", "--pyargs", target, "-q", "-p", "no:cacheprovider",
            f"--junitxml={junit}"]
    if allocator == "ebb":
        args[3:3] = ["-p", "ebb.pytest_plugin"]
    path = os.pathsep.join(os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)
    t0 = time.monotonic()
    proc = subprocess.run(args, capture_output=True, text=True, cwd=workdir, env=dict(os.environ, PYTHONPATH=path))
    seconds = time.monotonic() - t0
    lines = proc.stdout.splitlines()
    summary = next((m.group(1) for m in map(SUMMARY.match, reversed(lines)) if m), "")
    counts = {("error" if kind.startswith("error") else kind): int(n) for n, kind in COUNT.findall(summary)}
    plugin = [line for line in lines + proc.stderr.splitlines() if line.startswith("ebb: ")]
    if not counts:
        sys.stdout.write(proc.stdout[-3000:] + proc.stderr[-3000:])
    tests = outcomes(junit) if os.path.exists(junit) else {}
    return counts, summary, tests, seconds, proc.returncode, plugin


def differences(default, under_ebb, leave_out):
    """Lines naming every test whose outcome differs (or that ran in one run only)."""
    def outcome(run, test):
        return run[test][0] if test in run else "not run"
    return [f"  {test}: {outcome(default, test)} by default, {outcome(under_ebb, test)} under ebb"
            for test in sorted(set(default) | set(under_ebb) - leave_out)
            if test not in leave_out and outcome(default, test) != outcome(under_ebb, test)]


def main():
    target = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("NUMPY_SUITE", "numpy.core")
    results = {}
    with tempfile.TemporaryDirectory(prefix="ebb-numpy-suite-") as workdir:
        for allocator in ("default", "ebb"):
            counts, summary, tests, seconds, rc, plugin = run(allocator, target, workdir)
            results[allocator] = (counts, tests, rc, plugin)
            print(f"numpy_suite: {target} under {allocator:7}: {summary or 'no summary'} "
                  f"({seconds:.0f} s, pytest exit {rc})", flush=True)
            for line in plugin:
                print(f"numpy_suite:   {line}")
    (default, default_tests, _, _), (_, ebb_tests, _, plugin) = results["default"], results["ebb"]
    leave_out = memory_dependent(default_tests, ebb_tests)
    if leave_out:
        print(f"numpy_suite: left out of the comparison: {len(leave_out)} tests NumPy skips when MemAvailable "
              "is low (requires_memory), which varies on a shared machine:",
              *(f"  {test}: {default_tests.get(test, ('not run',))[0]} by default, "
                f"{ebb_tests.get(test, ('not run',))[0]} under ebb" for test in sorted(leave_out)), sep="\n")
    compared = {name: counts_of(tests, leave_out) for name, tests in (("default", default_tests), ("ebb", ebb_tests))}
    print("numpy_suite: counts compared  " + "  ".join(
        f"{kind} {compared['default'].get(kind, 0)}/{compared['ebb'].get(kind, 0)}" for kind in KINDS[:-1])
        + "  (default/ebb)")
    diff = differences(default_tests, ebb_tests, leave_out)
    failed = False
    if not default.get("passed"):
        print("numpy_suite: error: no test passed under the default allocator (is python3-hypothesis installed?)")
        failed = True
    if not any(line.startswith("ebb: installed through all") for line in plugin):
        print("numpy_suite: error: ebb did not stay installed through the run (ebb.pytest_plugin's lines above)")
        failed = True
    if compared["default"] != compared["ebb"] or diff or not ebb_tests:
        print("numpy_suite: error: the results differ under ebb.install():", *diff, sep="\n")
        failed = True
    if not failed:
        print(f"numpy_suite: same results under ebb.install(): {len(ebb_tests)} tests, each with the same outcome")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
