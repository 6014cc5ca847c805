# SPDX-License-Identifier: MIT
"""bench/py_churn.py - what ebb costs inside CPython and NumPy: array churn
(small: 1,000 doubles; large: 1,000,000 doubles) and Python object churn
(dicts, tuples and 200-byte bytes), timed under NumPy's and CPython's
defaults, under ebb.install(objects=True) and under LD_PRELOAD=libebb.so
(each run a fresh process; median of REPEATS).

    PYTHONPATH=build/python /usr/bin/python3 bench/py_churn.py [--repeats N]
"""

import os
import statistics
import subprocess
import sys
import time

WORKLOADS = {
    "arrays 8 KB": "for _ in range(200_000):\n    a = np.ones(1000); a += 1.0\n",
    "arrays 8 MB": "for _ in range(400):\n    a = np.ones(1_000_000); a += 1.0\n",
    "objects": "for i in range(30):\n    t = [{'k': (i, j), 'b': bytes(200)} for j in range(20_000)]\n    del t\n",
}


def child(setup, workload):
    code = f"import numpy as np, time\n{setup}\nt0 = time.perf_counter()\n{WORKLOADS[workload]}print(time.perf_counter() - t0)\n"
    return code


def timed(mode, workload, library):
    env = dict(os.environ)
    setup = ""
    if mode == "ebb.install()":
        setup = "import ebb; ebb.install(objects=True)"
    elif mode == "LD_PRELOAD":
        env["LD_PRELOAD"] = library
        env["PYTHONMALLOC"] = "malloc"
    out = subprocess.run([sys.executable, "-c", child(setup, workload)], env=env, capture_output=True,
                         text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main():
    repeats = int(sys.argv[sys.argv.index("--repeats") + 1]) if "--repeats" in sys.argv else 5
    library = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build", "libebb.so")
    if not os.path.exists(library):
        raise SystemExit(f"ebb: error: {library} not found: run make release first")
    modes = ("default", "ebb.install()", "LD_PRELOAD")
    print(f"| workload | {' | '.join(modes)} |  (median of {repeats}, seconds)")
    print("|---|---|---|---|")
    for workload in WORKLOADS:
        medians = [statistics.median(timed(m, workload, library) for _ in range(repeats)) for m in modes]
        print(f"| {workload} | " + " | ".join(f"{t:.3f}" for t in medians) + " |", flush=True)


if __name__ == "__main__":
    main()
