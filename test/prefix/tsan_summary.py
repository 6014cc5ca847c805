#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Folds ThreadSanitizer's output into one line per distinct report.

usage: tsan_summary.py LOG [SRCROOT]

Two reports are the same when their kind and the top frame (function, file,
line) of each side are the same, whichever side came first. Each line gives
the count, the kind, and each side's access (`earlier`: the one TSan found
first), top frame and source line (read
from SRCROOT, the repository, so the field shows); `via` names the first
frame outside the source file of the top frame, to tell callers apart. Exit
status: 0 if the log holds no report, 1 otherwise.
"""
import os
import re
import sys

FRAME = re.compile(r"^\s+#(\d+) (\S+) (\S+?)(?::(\d+))?(?::\d+)? \(")
ACCESS = re.compile(r"^\s+(Previous )?((?:[Aa]tomic )?(?:[Rr]ead|[Ww]rite)) of size (\d+)")


def source_line(root, path, line):
    if not line:
        return ""
    rel = path
    if root and path.startswith(root):
        rel = os.path.relpath(path, root)
    try:
        with open(path if os.path.isabs(path) else os.path.join(root, path)) as f:
            for i, text in enumerate(f, 1):
                if i == int(line):
                    return text.strip()
    except OSError:
        pass
    return ""


def parse(lines):
    """Yields (kind, location, [(access, frames)]) for each report."""
    report = None
    side = None
    for raw in lines:
        line = raw.rstrip("\n")
        if line.startswith("WARNING: ThreadSanitizer:"):
            kind = line.split(":", 2)[2].strip()
            kind = re.sub(r" \(pid=\d+\)", "", kind)
            report = {"kind": kind, "location": "", "sides": []}
            side = None
            continue
        if report is None:
            continue
        if line.startswith("SUMMARY: ThreadSanitizer"):
            yield report
            report = None
            continue
        m = ACCESS.match(line)
        if m:
            side = {"access": ("earlier " if m.group(1) else "") + m.group(2).lower(), "frames": []}
            report["sides"].append(side)
            continue
        if line.strip().startswith("Location is"):
            report["location"] = line.strip()
            side = None
            continue
        if re.match(r"^\s+(Mutex|Thread|As if|Previous|Write|Read)", line) and not ACCESS.match(line):
            if not report["sides"] and "Mutex" not in line and "Thread" not in line:
                side = {"access": line.strip().rstrip(":"), "frames": []}
                report["sides"].append(side)
            else:
                side = None
            continue
        m = FRAME.match(line)
        if m and side is not None:
            side["frames"].append((m.group(2), m.group(3), m.group(4) or ""))
        elif m and not report["sides"]:
            side = {"access": "stack", "frames": [(m.group(2), m.group(3), m.group(4) or "")]}
            report["sides"].append(side)


def describe(root, side):
    frames = side["frames"]
    if not frames:
        return side["access"] + " (no frames)", ""
    func, path, line = frames[0]
    via = next((f for f, p, _ in frames[1:] if p != path), "")
    rel = os.path.relpath(path, root) if root and path.startswith(root) else path
    text = source_line(root, path, line)
    where = "%s %s (%s:%s)%s" % (side["access"], func, rel, line, " via " + via if via else "")
    return where, text


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    root = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else os.getcwd()
    with open(sys.argv[1], errors="replace") as f:
        reports = list(parse(f))
    groups = {}
    for r in reports:
        sides = [describe(root, s) for s in r["sides"][:2]]
        key = (r["kind"], tuple(sorted(w.split(" via ")[0] for w, _ in sides)))
        g = groups.setdefault(key, {"count": 0, "sides": sides, "location": r["location"]})
        g["count"] += 1
    for i, (key, g) in enumerate(sorted(groups.items(), key=lambda kv: -kv[1]["count"]), 1):
        print("R%d  %dx  %s%s" % (i, g["count"], key[0], ("  [" + g["location"] + "]") if g["location"] else ""))
        for where, text in g["sides"]:
            print("      %s" % where)
            if text:
                print("          %s" % text)
    print("tsan: %d reports, %d distinct" % (len(reports), len(groups)))
    return 1 if reports else 0


if __name__ == "__main__":
    sys.exit(main())
