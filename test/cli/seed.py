# SPDX-License-Identifier: MIT
# test/cli/seed.py - the seed experiment, run under `ebb run`: NumPy arrays
# of 80 KB and of 800 KB, deleted, then one idle second. At four points it
# waits 400 ms (past ebb's purge delay: RSS then holds still), prints its
# own VmRSS (/proc/self/status) with the CLOCK_MONOTONIC time, for seed.sh
# to compare with ebb run's series, and waits 150 ms more.
import time
import numpy as np


def vmrss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def point(name):
    time.sleep(0.4)  # past ebb's purge delay (100 ms) and its purge: RSS holds still
    print(f"point {name} {time.monotonic() * 1e3:.1f} {vmrss()}", flush=True)
    time.sleep(0.15)


point("start")
small = [np.ones(10_000) for _ in range(400)]   # 80 KB each, 32 MB
large = [np.ones(100_000) for _ in range(40)]   # 800 KB each, 32 MB
point("allocated")
del small, large
point("deleted")
time.sleep(1.0)
point("idle")
