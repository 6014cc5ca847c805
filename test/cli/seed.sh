#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test/cli/seed.sh - `ebb run` on the seed experiment (seed.py, NumPy under
# /usr/bin/python3): the RSS series agrees within 5% with the VmRSS the
# program reads itself at four points, taken at the sample nearest in time
# (each point comes 400 ms into a pause of 550 ms, so the samples around it
# see the same memory). Skipped (77) without NumPy.
#
# Usage: seed.sh <ebb>
set -uo pipefail
ebb=$1
py=/usr/bin/python3
here=$(cd "$(dirname "$0")" && pwd)
$py -c 'import numpy' 2>/dev/null || { echo "seed.sh: skipped: python3-numpy is not installed"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
PYTHONMALLOC=malloc "$ebb" run -i 20 -o "$work/seed.json" -- $py "$here/seed.py" >"$work/out" 2>&1 ||
  { cat "$work/out"; echo "seed.sh: ebb run failed"; exit 1; }
$py - "$work/seed.json" "$work/out" <<'PY'
import json, sys
run = json.load(open(sys.argv[1]))
samples = run["samples"]
points = [l.split() for l in open(sys.argv[2]) if l.startswith("point ")]
assert len(points) == 4, points
bad = 0
for _, name, mono, rss in points:
    t = float(mono) - run["start_monotonic_ms"]
    near = min(samples, key=lambda s: abs(s["t_ms"] - t))
    diff = abs(near["rss"] - int(rss)) / int(rss)
    print(f"seed.sh: {name:9s} at {t:7.1f} ms: VmRSS {int(rss) >> 10} KiB, ebb run {near['rss'] >> 10} KiB "
          f"(sample at {near['t_ms']:.1f} ms): {diff * 100:.2f}%")
    if abs(near["t_ms"] - t) > 60 or diff > 0.05:
        bad += 1
peak = max(s["rss"] for s in samples)
assert peak > 64 << 20, f"the series never saw the 64 MB of arrays (peak {peak >> 20} MiB)"
sys.exit(1 if bad else 0)
PY
