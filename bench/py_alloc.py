# SPDX-License-Identifier: MIT
"""bench/py_alloc.py - a real program for the benchmark suite: CPython doing
allocation-heavy work. bench/run.sh runs it as

    /usr/bin/python3 bench/py_alloc.py [--scale N] [--seed S]

under each allocator (LD_PRELOAD), with PYTHONHASHSEED=0. Standard library
only, no files, no network.

Each round builds and drops: a table of records (dicts holding strings, a
list and a blob of 0..2000 bytes - blobs over 512 bytes bypass CPython's
small-object allocator and go to malloc), an index from name to record, text
joined from many pieces and split again, bytes buffers of 1..64 KiB, and
lists grown one append at a time. A tenth of each round's records are kept
until the end, so the heap has long-lived objects scattered among short-lived
ones. Every result is checked against a value computed without the heap
(closed formulas); a mismatch exits 3.

Prints the suite's result line (bench/common.h): ops, checksum, check,
work_ms, idle_ms, rss_end_kb (VmRSS after dropping everything but the kept
records).
"""

import random
import sys
import time
import zlib

EXIT_WRONG = 3


def vmrss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def one_round(r, rng, n, kept):
    """One round of work over n records; returns (ops, digest, ok)."""
    ok = True
    records = []
    for i in range(n):
        k = r * n + i
        records.append({
            "id": k,
            "name": "user-%d-%d" % (r, i),
            "tags": [str(j) for j in range(k % 7)],
            "blob": "x" * (k % 2001),
            "score": (k * 7) % 101,
        })
    index = {rec["name"]: rec for rec in records}
    ids = sum(index["user-%d-%d" % (r, i)]["id"] for i in range(0, n, 3))
    ok &= ids == sum(r * n + i for i in range(0, n, 3))
    blob_bytes = sum(len(rec["blob"]) for rec in records)
    ok &= blob_bytes == sum((r * n + i) % 2001 for i in range(n))
    kept.extend(records[:: 10])

    text = ",".join(rec["name"] for rec in records)
    parts = text.split(",")
    ok &= len(parts) == n and parts[-1] == "user-%d-%d" % (r, n - 1)

    bufs = [bytes([i & 0xFF]) * rng.randint(1024, 65536) for i in range(n // 20 + 1)]
    total = sum(len(b) for b in bufs)
    ok &= all(b[-1] == (i & 0xFF) for i, b in enumerate(bufs))

    grown = []
    for i in range(n * 2):
        grown.append((i, str(i)))
    ok &= grown[-1][1] == str(n * 2 - 1)

    digest = zlib.crc32(("%d:%d:%d:%d" % (r, ids, blob_bytes, total)).encode())
    del records, index, text, parts, bufs, grown
    return 4 * n + n // 20 + 1, digest, ok


def main():
    scale, seed = 10, 0x65626220
    args = sys.argv[1:]
    while args:
        opt = args.pop(0)
        if opt in ("--scale", "--seed") and args:
            value = int(args.pop(0), 0)
            if opt == "--scale":
                scale = value
            else:
                seed = value
        else:
            print("usage: py_alloc.py [--scale N] [--seed S]", file=sys.stderr)
            return 2
    rng = random.Random(seed)
    n = 20000
    kept = []
    ops, checksum, ok = 0, 0, True
    t0 = time.monotonic()
    for r in range(scale):
        o, digest, round_ok = one_round(r, rng, n, kept)
        ops += o
        checksum = zlib.crc32(digest.to_bytes(4, "little"), checksum)
        ok &= round_ok
    ok &= len(kept) == scale * ((n + 9) // 10)
    work = time.monotonic() - t0
    rss = vmrss_kb()
    print("python: rounds=%d kept=%d ops=%d checksum=0x%016x check=%s work_ms=%.1f idle_ms=0"
          " rss_end_kb=%d" % (scale, len(kept), ops, checksum, "ok" if ok else "FAIL",
                              work * 1e3, rss))
    sys.stdout.flush()
    if not ok:
        print("python: self-check FAILED", file=sys.stderr)
        return EXIT_WRONG
    return 0


if __name__ == "__main__":
    sys.exit(main())
