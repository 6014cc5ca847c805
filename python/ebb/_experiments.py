# SPDX-License-Identifier: MIT
"""The measurements behind `python3 -m ebb demo` and the package's tests.

Each experiment runs in a child process of its own (a fresh heap, nothing
left by the previous one): `python3 -m ebb._experiments KIND ALLOCATOR ARG`
prints one JSON line. ALLOCATOR is "default" (NumPy's and CPython's own) or
"ebb" (ebb.install() first, objects=True for the objects experiment).
"""

import ctypes
import json
import os
import subprocess
import sys
import time

MiB = 1 << 20
TARGET_BYTES = 256 * MiB
IDLE_SECONDS = 1.0


def rss_bytes(field="VmRSS"):
    """The process's resident set (VmRSS) or its peak (VmHWM), in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"ebb: error: no {field} in /proc/self/status")


def _install(allocator, **domains):
    if allocator == "ebb":
        import ebb
        ebb.install(**domains)
    elif allocator != "default":
        raise SystemExit(f"ebb: error: allocator {allocator!r}: expected default or ebb")


def arrays(allocator, size):
    """Arrays of `size` bytes (float64, written) to TARGET_BYTES, deleted, one idle second."""
    import numpy as np
    _install(allocator)
    count = max(1, TARGET_BYTES // size)
    np.ones(1)  # NumPy's first array allocates its own caches
    start = rss_bytes()
    kept = [np.ones(size // 8) for _ in range(count)]
    peak = rss_bytes()
    handler = _handler(kept[0])
    del kept
    time.sleep(IDLE_SECONDS)
    return {"size": size, "count": count, "start": start, "peak": peak, "end": rss_bytes(), "handler": handler}


def _handler(array):
    from numpy.core.multiarray import get_handler_name
    return get_handler_name(array)


def objects(allocator, count):
    """`count` bytes objects of 200 bytes, 1 % kept (every 100th), one idle second."""
    _install(allocator, numpy=False, objects=True)
    start = rss_bytes()
    made = [bytes([i & 0xff]) * 200 for i in range(count)]
    peak = rss_bytes()
    kept = made[::100]
    del made
    time.sleep(IDLE_SECONDS)
    live = sum(sys.getsizeof(b) for b in kept) + sys.getsizeof(kept)
    intact = all(b == bytes([(i * 100) & 0xff]) * 200 for i, b in enumerate(kept))
    end = rss_bytes()
    return {"count": count, "kept": len(kept), "live": live, "start": start, "peak": peak,
            "end": end, "intact": intact, "pymalloc": pymalloc_figures(), "ebb": _ebb_figures(allocator)}


def _ebb_figures(allocator):
    if allocator != "ebb":
        return None
    import ebb
    st = ebb.stats()
    return {k: st[k] for k in ("live", "free_in_pages", "dirty", "resident", "metadata", "segment_cache")}


def pymalloc_figures():
    """What pymalloc holds now, from sys._debugmallocstats (which writes on fd 2)."""
    import re
    import tempfile
    with tempfile.TemporaryFile(mode="w+") as out:
        saved = os.dup(2)
        sys.stderr.flush()
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read()
    figures = {}
    for key, label in (("arenas", "arenas allocated current"), ("in_blocks", "bytes in allocated blocks"),
                       ("in_arenas", "Total")):
        found = re.search(r"# " + label + r"\s*=\s*([\d,]+)", text) or re.search(label + r"\s*=\s*([\d,]+)", text)
        figures[key] = int(found.group(1).replace(",", "")) if found else None
    return figures


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def glibc_figures():
    """glibc's own view (mallinfo2, every arena): bytes of blocks in their own mappings (hblkhd) and
    bytes free inside its arenas (fordblks: freed, still resident unless glibc trimmed them).
    None when the process's malloc is not glibc's (a preloaded ebb answers for itself)."""
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallinfo2") or hasattr(libc, "ebb_malloc"):
        return None
    libc.mallinfo2.restype = _Mallinfo2
    info = libc.mallinfo2()
    return {"mapped": info.hblkhd, "arena_free": info.fordblks}


def sweep(allocator, sizes):
    """For each size in turn, in this one process (as a program meets them): arrays of that many
    bytes (float64, written) to TARGET_BYTES, deleted, one idle second. RSS figures are above the
    process's start, so what one row keeps is still counted in the next ones."""
    import numpy as np
    _install(allocator)
    np.ones(1)
    base, pymalloc_base = rss_bytes(), pymalloc_figures()["in_arenas"]
    rows = []
    for size in sizes:
        before = glibc_figures()
        kept = [np.ones(size // 8) for _ in range(max(1, TARGET_BYTES // size))]
        peak, during, handler = rss_bytes(), glibc_figures(), _handler(kept[0])
        del kept
        time.sleep(IDLE_SECONDS)
        rows.append({"size": size, "handler": handler, "peak": peak - base, "end": rss_bytes() - base,
                     "glibc_mapped": during and during["mapped"] - before["mapped"],
                     "glibc_free": (glibc_figures() or {}).get("arena_free"),
                     "pymalloc": pymalloc_figures()["in_arenas"] - pymalloc_base, "ebb": _ebb_row(allocator, size)})
    return rows


def _ebb_row(allocator, size):
    if allocator != "ebb":
        return None
    import ebb
    return {"tier": ebb.explain(size)["tier"], "resident": ebb.stats()["resident"]}


KINDS = {"arrays": arrays, "objects": objects, "sweep": sweep}


def run_child(kind, allocator, arg, env=None):
    """Runs one experiment in a fresh interpreter; returns its figures."""
    child_env = dict(os.environ if env is None else env)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, child_env.get("PYTHONPATH")]))
    arg = ",".join(map(str, arg)) if isinstance(arg, (list, tuple)) else str(arg)
    proc = subprocess.run([sys.executable, "-m", "ebb._experiments", kind, allocator, arg],
                          capture_output=True, text=True, env=child_env)
    if proc.returncode != 0:
        raise RuntimeError(f"ebb: error: experiment {kind} {allocator} {arg} failed "
                           f"(exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv):
    if len(argv) != 3 or argv[0] not in KINDS:
        raise SystemExit("usage: python3 -m ebb._experiments arrays|objects default|ebb SIZE_OR_COUNT")
    arg = [int(x) for x in argv[2].split(",")] if argv[0] == "sweep" else int(argv[2])
    print(json.dumps(KINDS[argv[0]](argv[1], arg)))


if __name__ == "__main__":
    main(sys.argv[1:])
