# SPDX-License-Identifier: MIT
"""NumPy's own test suite under NumPy's default allocator and under
ebb.install() (`-p ebb.pytest_plugin`: installed before collection, checked
after every test), each in a child process; prints both summaries and their
comparison, and fails when the pass/fail/skip/xfail counts or any test's
outcome differ. `make check-python-numpy` runs it (PYTHONPATH=build/python).

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


def outcomes(junit_path):
    """{test id: outcome} from pytest's JUnit XML."""
    result = {}
    for case in ElementTree.parse(junit_path).iter("testcase"):
        test = f"{case.get('classname')}::{case.get('name')}"
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        skipped = case.find("skipped")
        if "error" in kinds:
            result[test] = "error"
        elif "failure" in kinds:
            result[test] = "failed"
        elif skipped is not None:
            result[test] = "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"
        else:
            result[test] = "passed"
    return result


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


def differences(default, under_ebb):
    """Lines naming every test whose outcome differs (or that ran in one run only)."""
    return [f"  {test}: {default.get(test, 'not run')} by default, {under_ebb.get(test, 'not run')} under ebb"
            for test in sorted(set(default) | set(under_ebb)) if default.get(test) != under_ebb.get(test)]


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
    (default, default_tests, _, _), (under_ebb, ebb_tests, ebb_rc, plugin) = results["default"], results["ebb"]
    print("numpy_suite: counts  " + "  ".join(f"{kind} {default.get(kind, 0)}/{under_ebb.get(kind, 0)}"
                                              for kind in KINDS) + "  (default/ebb)")
    diff = differences(default_tests, ebb_tests)
    failed = False
    if not default.get("passed"):
        print("numpy_suite: error: no test passed under the default allocator (is python3-hypothesis installed?)")
        failed = True
    if not any(line.startswith("ebb: installed through all") for line in plugin):
        print("numpy_suite: error: ebb did not stay installed through the run (ebb.pytest_plugin's lines above)")
        failed = True
    if default != under_ebb or diff:
        print("numpy_suite: error: the results differ under ebb.install():", *diff, sep="\n")
        failed = True
    if not failed:
        print(f"numpy_suite: same results under ebb.install(): {len(ebb_tests)} tests, each with the same outcome")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
