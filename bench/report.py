#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""bench/report.py - turns the raw runs of bench/run.sh into the report.

    report.py WORKDIR [--out DIR]

WORKDIR is what run.sh leaves: meta.tsv (machine, mode), allocators.tsv
(name, version, library, status), workloads.tsv (name, program, arguments)
and runs/<workload>.<allocator>.<rep>.{out,err,time,rc}. With --out, writes
DIR/latest.md, DIR/latest.svg and DIR/latest-runs.tsv; without, prints the
markdown on stdout.

A run is ok when it exited 0, printed its result line with check=ok (for
bench_micro, its `pairs=` line: it has no checksum and no VmRSS), and its
checksum equals the one most runs of that workload printed (every allocator
must compute the same thing). Otherwise it is FAILED: crash (signal),
timeout, wrong (self-check or checksum), or error (other exit status). An
allocator with a failed run of a workload gets FAILED in that workload's
table and is left out of its ratios.

Figures are medians over the ok repetitions. Time is wall-clock minus the
workload's idle pause; ratios divide by the reference allocator (mimalloc,
or glibc when mimalloc was not measured); summaries are geometric means over
the workloads where both have results.

Exit status: 1 if a run failed - any run in --smoke mode, a run of glibc or
ebb otherwise (a third-party allocator's failure is reported, not fatal).

Standard library only: the chart is SVG written by hand.
"""

import math
import os
import re
import statistics
import sys
from collections import Counter

DESCRIPTIONS = {
    "micro": "fast path: batches of 8..256 B malloc/free pairs on one thread (bench_micro)",
    "churn": "small-object churn: linked lists and binary trees of 32..128 B nodes built and "
             "torn down, one thread",
    "server": "4 threads, 8 B..64 KiB (log-uniform), half the frees handed to another thread "
              "(remote frees), through mutex-protected inboxes",
    "prodcons": "one thread allocates 16..256 B, another frees, through a lock-free ring",
    "waves": "live set grows to a peak (--peak-mb) and shrinks to 10% in waves, mixed sizes; RSS at the end "
             "is read after an idle pause with 3% still live",
    "realloc": "vectors doubling by realloc and strings growing a few bytes per realloc, "
               "interleaved, then shrunk to a quarter",
    "bigbuf": "256 KiB..64 MiB blocks allocated, every page touched, freed (2 alive at once)",
    "threads": "rounds of 2..4 short-lived threads, 16 B..32 KiB, a few objects of each thread freed "
               "by the next round",
    "leak": "short-lived threads, 2 at a time, that leak one block in 10,000 (16..512 B); peak RSS "
            "against the leaked bytes",
    "larson": "2 threads replace random blocks of 10 B..1 KiB in arrays of 5,000 that pass from "
              "thread to thread every 10,000 steps: 43% of the frees are of another thread's blocks",
    "rbtree": "a red-black tree of 100,000 nodes of 48..64 B, each with a 16 B..4 KiB value "
              "(log-uniform), under churn: delete a random key, insert a new one",
    "bigchurn": "2 threads replace 64 KiB..2 MiB blocks (uniform sizes) at random in a live set of 12 "
                "each, every page written and read back",
    "thp": "an object cache of 64 B..32 KiB evicted 30% and refilled in rounds, with the "
           "allocator's transparent-huge-page switch on (tcmalloc has none)",
    "python": "/usr/bin/python3 bench/py_alloc.py: dicts, lists, strings and bytes built and "
              "dropped (objects <= 512 B go to pymalloc)",
    "python-malloc": "the same script with PYTHONMALLOC=malloc: every object from the allocator "
                     "under test",
}
PREFERRED_REFERENCE = "mimalloc"
MUST_NOT_FAIL = ("glibc", "ebb")


def read_tsv(path):
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def parse_result(text):
    """The k=v pairs of the workload's result line, or None."""
    lines = text.splitlines()
    for line in lines:
        if "check=" in line and "checksum=" in line:
            return dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
    # bench_micro predates the common line: `pairs=<n> ns_per_pair=<x>`, no
    # checksum (it has no state to check) and no VmRSS.
    for line in lines:
        if line.startswith("pairs="):
            res = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
            res.update(check="ok", idle_ms="0", rss_end_kb="nan")
            return res
    return None


def load_run(prefix):
    """One run's raw files -> dict(status, detail, wall, cpu, peak_kb, end_kb, checksum)."""
    def read(ext):
        try:
            with open(prefix + ext, errors="replace") as f:
                return f.read()
        except OSError:
            return ""
    rc = int(read(".rc").strip() or "-1")
    time_text = read(".time")
    res = parse_result(read(".out"))
    run = {"status": "ok", "detail": "", "rc": rc, "checksum": None}
    nums = None
    for line in time_text.splitlines():
        parts = line.split()
        if len(parts) == 4 and all(re.fullmatch(r"[0-9.]+", p) for p in parts):
            nums = [float(p) for p in parts]
    signal = re.search(r"terminated by signal (\d+)", time_text)
    if rc in (124, 137) and not signal:
        run.update(status="timeout", detail="timed out")
    elif signal or rc > 128:
        sig = int(signal.group(1)) if signal else rc - 128
        run.update(status="crash", detail="signal %d" % sig)
    elif rc == 3 or (res is not None and res.get("check") != "ok"):
        run.update(status="wrong", detail="self-check failed")
    elif rc != 0:
        run.update(status="error", detail="exit status %d" % rc)
    elif res is None or nums is None:
        run.update(status="error", detail="no result line")
    if res is not None:
        run["checksum"] = res.get("checksum")
    if run["status"] == "ok":
        idle = float(res.get("idle_ms", "0")) / 1000.0
        run["wall"] = max(nums[0] - idle, 0.001)
        run["cpu"] = nums[1] + nums[2]
        run["peak_kb"] = nums[3]
        run["end_kb"] = float(res.get("rss_end_kb", "nan"))
    return run


def geomean(values):
    values = [v for v in values if v is not None and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def fmt(v, digits=2):
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else "%.*f" % (digits, v)


def mib(kb):
    return None if kb is None else kb / 1024.0


class Report:
    def __init__(self, work):
        self.meta = dict((r[0], r[1] if len(r) > 1 else "") for r in read_tsv(os.path.join(work, "meta.tsv")))
        self.allocs = [dict(zip(("name", "version", "lib", "status"), r))
                       for r in read_tsv(os.path.join(work, "allocators.tsv"))]
        self.workloads = [dict(zip(("name", "prog", "args"), r + [""] * (3 - len(r))))
                          for r in read_tsv(os.path.join(work, "workloads.tsv"))]
        self.measured = [a["name"] for a in self.allocs if a["status"] == "ok"]
        self.reps = int(self.meta.get("reps", "1"))
        self.runs = {}   # (workload, alloc) -> [run]
        for w in self.workloads:
            for a in self.measured:
                self.runs[(w["name"], a)] = [
                    load_run(os.path.join(work, "runs", "%s.%s.%d" % (w["name"], a, rep)))
                    for rep in range(1, self.reps + 1)]
            self.cross_check(w["name"])
        self.ref = PREFERRED_REFERENCE if PREFERRED_REFERENCE in self.measured else (
            "glibc" if "glibc" in self.measured else self.measured[0])
        self.cells = {k: self.summarise(v) for k, v in self.runs.items()}

    def cross_check(self, wname):
        """Marks ok runs whose checksum is not the one most runs printed."""
        sums = Counter(r["checksum"] for a in self.measured for r in self.runs[(wname, a)]
                       if r["status"] == "ok")
        if not sums:
            return
        top = sums.most_common()
        expected = top[0][0]
        glibc_sums = [r["checksum"] for r in self.runs.get((wname, "glibc"), []) if r["status"] == "ok"]
        if len(top) > 1 and top[0][1] == top[1][1] and glibc_sums:
            expected = glibc_sums[0]  # a tie: trust the C library
        for a in self.measured:
            for r in self.runs[(wname, a)]:
                if r["status"] == "ok" and r["checksum"] != expected:
                    r.update(status="wrong", detail="checksum %s, expected %s" % (r["checksum"], expected))

    @staticmethod
    def summarise(runs):
        ok = [r for r in runs if r["status"] == "ok"]
        bad = [r for r in runs if r["status"] != "ok"]
        cell = {"n": len(runs), "ok": len(ok), "failed": bad}
        for key in ("wall", "cpu", "peak_kb", "end_kb"):
            cell[key] = statistics.median(r[key] for r in ok) if ok else None
        return cell

    def usable(self, wname, alloc):
        c = self.cells.get((wname, alloc))
        return c is not None and not c["failed"] and c["ok"] > 0

    def ratio(self, wname, alloc, key):
        if not (self.usable(wname, alloc) and self.usable(wname, self.ref)):
            return None
        ref = self.cells[(wname, self.ref)][key]
        return self.cells[(wname, alloc)][key] / ref if ref else None

    def geo(self, alloc, key):
        vals = [self.ratio(w["name"], alloc, key) for w in self.workloads]
        vals = [v for v in vals if v is not None]
        return geomean(vals), len(vals)

    @staticmethod
    def failure_text(cell):
        kinds = Counter("%s (%s)" % (r["status"], r["detail"]) for r in cell["failed"])
        return "FAILED %d/%d: %s" % (len(cell["failed"]), cell["n"],
                                     "; ".join("%s x%d" % (k, n) if n > 1 else k for k, n in kinds.items()))

    # ---- markdown ---------------------------------------------------
    def workload_table(self, add, cell_text):
        """A table of workloads (rows) by allocators (columns); a failed
        cell reads FAILED, any other cell_text(workload, allocator, cell)."""
        add("| workload | " + " | ".join(self.measured) + " |")
        add("|---|" + "---:|" * len(self.measured))
        for w in self.workloads:
            row = []
            for a in self.measured:
                c = self.cells[(w["name"], a)]
                row.append("FAILED" if c["failed"] else cell_text(w, a, c))
            add("| %s | %s |" % (w["name"], " | ".join(row)))

    def markdown(self, svg_name=None):
        m, out = self.meta, []
        add = out.append
        mode = m.get("mode", "?")
        add("# Benchmark results: ebb against glibc, jemalloc, mimalloc, tcmalloc")
        add("")
        add("Generated by `bench/run.sh%s` on %s: %s repetition(s), interleaved, in %s." % (
            "" if mode == "full" else " --" + mode, m.get("date", "?"), m.get("reps", "?"),
            m.get("duration", "?")))
        add("Machine: %s, %s cores, %s, %s, %s; %s; %s." % (
            m.get("cpu", "?"), m.get("cores", "?"), m.get("memory", "?"), m.get("os", "?"),
            m.get("kernel", "?"), m.get("compiler", "?"), m.get("python", "?")))
        add("Load average (1, 5, 15 min) at the start: %s; at the end: %s. Other work on the "
            "machine slows every allocator alike only on average: compare ratios, not seconds." % (
                m.get("load_start", "?"), m.get("load_end", "?")))
        add("")
        add("| allocator | version | library (LD_PRELOAD) | status |")
        add("|---|---|---|---|")
        for a in self.allocs:
            add("| %s | %s | %s | %s |" % (a["name"], a["version"], a["lib"] or "(none: the C library)",
                                         a["status"]))
        add("")
        add("Time is wall-clock, median of the repetitions, minus the workload's idle pause; "
            "peak RSS is `/usr/bin/time`'s maximum resident set; RSS at the end is VmRSS the "
            "workload read just before exiting. Ratios are to **%s**: below 1 is better." % self.ref)
        add("")
        add("## Summary")
        add("")
        if svg_name:
            add("![time and peak RSS relative to %s](%s)" % (self.ref, svg_name))
            add("")
        add("Geometric means over the workloads, ratio to %s:" % self.ref)
        add("")
        add("| allocator | time ratio | peak RSS ratio | RSS-at-end ratio | workloads | failed runs |")
        add("|---|---:|---:|---:|---:|---:|")
        for a in self.measured:
            t, n = self.geo(a, "wall")
            p, _ = self.geo(a, "peak_kb")
            e, _ = self.geo(a, "end_kb")
            nfail = sum(len(self.cells[(w["name"], a)]["failed"]) for w in self.workloads)
            add("| %s | %s | %s | %s | %d | %d |" % (a, fmt(t), fmt(p), fmt(e), n, nfail))
        for title, key in (("Time ratio", "wall"), ("Peak RSS ratio", "peak_kb")):
            add("")
            add("%s to %s per workload:" % (title, self.ref))
            add("")
            self.workload_table(add, lambda w, a, c, key=key: fmt(self.ratio(w["name"], a, key)))
            add("| **geometric mean** | %s |" % " | ".join("**%s**" % fmt(self.geo(a, key)[0])
                                                          for a in self.measured))
        add("")
        add("RSS at the end, MiB (median):")
        add("")
        self.workload_table(add, lambda w, a, c: fmt(mib(c["end_kb"]), 1))
        gaps = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "gaps.md")
        if os.path.exists(gaps):  # the hand-written analysis of where ebb trails the others
            add("")
            with open(gaps) as f:
                add(f.read().rstrip("\n"))
        add("")
        add("## Workloads")
        for w in self.workloads:
            add("")
            add("### %s" % w["name"])
            add("")
            cmd = ("python3 bench/py_alloc.py" if w["prog"] == "python" else w["prog"])
            add("%s. `%s %s`" % (DESCRIPTIONS.get(w["name"], w["name"]), cmd, w["args"]))
            add("")
            add("| allocator | time s | user+sys s | peak RSS MiB | RSS at end MiB | time ratio | "
                "peak RSS ratio | runs ok |")
            add("|---|---:|---:|---:|---:|---:|---:|---|")
            for a in self.measured:
                c = self.cells[(w["name"], a)]
                status = "%d/%d" % (c["ok"], c["n"]) if not c["failed"] else self.failure_text(c)
                add("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    a, fmt(c["wall"], 3), fmt(c["cpu"], 3), fmt(mib(c["peak_kb"]), 1),
                    fmt(mib(c["end_kb"]), 1), fmt(self.ratio(w["name"], a, "wall")),
                    fmt(self.ratio(w["name"], a, "peak_kb")), status))
        add("")
        return "\n".join(out)

    # ---- chart --------------------------------------------------------
    def svg(self):
        """Grouped bars: per allocator, geometric-mean time and peak-RSS ratios."""
        series = [("time", "wall", "#4e79a7"), ("peak RSS", "peak_kb", "#f28e2b")]
        data = [(a, [self.geo(a, key)[0] for _, key, _ in series]) for a in self.measured]
        top = max([v for _, vals in data for v in vals if v is not None] + [1.0])
        ymax = math.ceil(top * 1.15 * 4) / 4.0
        W, H, left, right, top_m, bottom = 760, 380, 60, 20, 50, 60
        pw, ph = W - left - right, H - top_m - bottom
        y = lambda v: top_m + ph - v / ymax * ph  # noqa: E731
        s = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
             'font-family="sans-serif" font-size="12">' % (W, H, W, H),
             '<rect width="100%" height="100%" fill="white"/>',
             '<text x="%d" y="22" font-size="15" font-weight="bold">Ratio to %s (geometric mean over '
             'workloads; lower is better)</text>' % (left, self.ref)]
        step = 0.25 if ymax <= 2 else 0.5 if ymax <= 5 else 1.0
        v = 0.0
        while v <= ymax + 1e-9:
            s.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>' % (left, W - right, y(v), y(v)))
            s.append('<text x="%d" y="%.1f" text-anchor="end">%.2f</text>' % (left - 6, y(v) + 4, v))
            v += step
        group = pw / max(len(data), 1)
        bar = group * 0.32
        for i, (a, vals) in enumerate(data):
            gx = left + i * group + group * 0.18
            for j, (label, _, color) in enumerate(series):
                val = vals[j]
                x = gx + j * bar
                if val is None:
                    s.append('<text x="%.1f" y="%.1f" text-anchor="middle" fill="#a00">n/a</text>' % (
                        x + bar / 2, y(0) - 4))
                    continue
                s.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %.2f'
                         '</title></rect>' % (x, y(val), bar - 2, y(0) - y(val), color, a, label, val))
                s.append('<text x="%.1f" y="%.1f" text-anchor="middle">%.2f</text>' % (
                    x + bar / 2 - 1, y(val) - 4, val))
            s.append('<text x="%.1f" y="%d" text-anchor="middle" font-weight="bold">%s</text>' % (
                gx + bar, top_m + ph + 20, a))
        s.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#333" stroke-dasharray="5,3"/>' % (
            left, W - right, y(1.0), y(1.0)))
        s.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#333"/>' % (left, W - right, y(0), y(0)))
        lx = left
        for label, _, color in series:
            s.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>' % (lx, H - 22, color))
            s.append('<text x="%d" y="%d">%s</text>' % (lx + 16, H - 12, label))
            lx += 110
        s.append('<text x="%d" y="%d" fill="#555">%s, %s run, %s rep(s)</text>' % (
            lx + 20, H - 12, self.meta.get("date", ""), self.meta.get("mode", ""), self.meta.get("reps", "")))
        s.append("</svg>")
        return "\n".join(s) + "\n"

    def runs_tsv(self):
        lines = ["workload\tallocator\trep\tstatus\tdetail\twall_s\tuser_sys_s\tpeak_kb\tend_kb\tchecksum"]
        for w in self.workloads:
            for a in self.measured:
                for i, r in enumerate(self.runs[(w["name"], a)], 1):
                    lines.append("\t".join(str(x) for x in (
                        w["name"], a, i, r["status"], r["detail"], fmt(r.get("wall"), 3),
                        fmt(r.get("cpu"), 3), fmt(r.get("peak_kb"), 0), fmt(r.get("end_kb"), 0),
                        r["checksum"] or "-")))
        return "\n".join(lines) + "\n"

    def exit_status(self):
        strict = self.meta.get("mode") == "smoke"
        for (wname, a), runs in self.runs.items():
            for r in runs:
                if r["status"] != "ok" and (strict or a in MUST_NOT_FAIL):
                    print("report.py: %s under %s failed: %s (%s)" % (wname, a, r["status"], r["detail"]),
                          file=sys.stderr)
                    return 1
        return 0


def main(argv):
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--out"):
        print("usage: report.py WORKDIR [--out DIR]", file=sys.stderr)
        return 2
    rep = Report(argv[1])
    if len(argv) == 4:
        out = argv[3]
        with open(os.path.join(out, "latest.svg"), "w") as f:
            f.write(rep.svg())
        with open(os.path.join(out, "latest.md"), "w") as f:
            f.write(rep.markdown("latest.svg"))
        with open(os.path.join(out, "latest-runs.tsv"), "w") as f:
            f.write(rep.runs_tsv())
    else:
        sys.stdout.write(rep.markdown())
    return rep.exit_status()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
