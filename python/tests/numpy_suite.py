# SPDX-License-Identifier: MIT
"""NumPy's own test suite under NumPy's default allocator and under
ebb.install(), each in a child process; the pass/fail/skip/xfail counts must
match. `make check-python-numpy` runs it (PYTHONPATH=build/python).

    numpy_suite.py [PYTEST_TARGET]   default: numpy.core (NUMPY_SUITE=numpy: all of it)
"""

import os
import re
import subprocess
import sys
import time

RUNNER = r"""
import sys
if sys.argv[1] == "ebb":
    import ebb
    ebb.install()
    print("numpy_suite: ebb.install():", ebb.state(), flush=True)
import numpy, pytest
rc = pytest.main(["--pyargs", sys.argv[2], "-q", "-p", "no:cacheprovider", "-rN"])
if sys.argv[1] == "ebb":
    import ebb
    print("numpy_suite: under ebb:", ebb._ebb.numpy_live(), "array blocks and", ebb.stats()["live"], "bytes live at the end")
sys.exit(int(rc))
"""

COUNT = re.compile(r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?|warnings?|deselected)")


def run(allocator, target):
    t0 = time.monotonic()
    path = os.pathsep.join(os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)
    proc = subprocess.run([sys.executable, "-c", RUNNER, allocator, target], capture_output=True, text=True,
                          cwd="/tmp", env=dict(os.environ, PYTHONPATH=path))
    seconds = time.monotonic() - t0
    lines = [line for line in proc.stdout.splitlines() if COUNT.search(line)]
    summary = lines[-1] if lines else ""
    counts = {kind.rstrip("s") if kind.startswith(("error", "warning")) else kind: int(n)
              for n, kind in COUNT.findall(summary)}
    counts.pop("warning", None)
    if not counts:
        sys.stdout.write(proc.stdout[-3000:] + proc.stderr[-3000:])
    return counts, seconds, proc.returncode


def main():
    target = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("NUMPY_SUITE", "numpy.core")
    results = {}
    for allocator in ("default", "ebb"):
        counts, seconds, rc = run(allocator, target)
        results[allocator] = counts
        print(f"numpy_suite: {target} under {allocator:7}: {counts} in {seconds:.0f} s (pytest exit {rc})")
    if not results["default"].get("passed"):
        print("numpy_suite: error: no test passed under the default allocator (is python3-hypothesis installed?)")
        return 1
    if results["default"] != results["ebb"]:
        print("numpy_suite: error: the counts differ under ebb.install()")
        return 1
    print("numpy_suite: same results under ebb.install()")
    return 0


if __name__ == "__main__":
    sys.exit(main())
