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


OS_PAGE = 4096


def page_floor(objs):
    """Bytes of the distinct 4 KiB OS pages that the objects occupy ([id, id + getsizeof): in CPython
    id() is the address): what an allocator that cannot move live blocks must keep resident."""
    pages = set()
    for obj in objs:
        start = id(obj)
        pages.update(range(start // OS_PAGE, (start + sys.getsizeof(obj) - 1) // OS_PAGE + 1))
    return len(pages) * OS_PAGE


EBB_SMALL_PAGE = 64 << 10


def page_tails(objs):
    """Bytes of the last OS page of each 64 KiB page of ebb's (small blocks) that holds one of the
    objects, where that OS page holds none: ebb's purge of a page in use stops at the last OS page
    wholly inside its blocks, so the one the blocks end in stays resident."""
    floor_pages, windows = set(), set()
    for obj in objs:
        start = id(obj)
        floor_pages.update(range(start // OS_PAGE, (start + sys.getsizeof(obj) - 1) // OS_PAGE + 1))
        windows.add(start // EBB_SMALL_PAGE)
    last = EBB_SMALL_PAGE // OS_PAGE - 1
    return sum(OS_PAGE for w in windows if w * (EBB_SMALL_PAGE // OS_PAGE) + last not in floor_pages)


def _made(count, layout):
    """(all, kept): `count` bytes objects of 200 B; 1 % kept: every 100th ("sparse"), or the
    last 1 % made, one after another ("together": a long-lived cache filled in one go)."""
    made = [bytes([i & 0xff]) * 200 for i in range(count)]
    return made, made[::100] if layout == "sparse" else made[count - count // 100:]


def objects(allocator, count, layout="sparse"):
    """`count` bytes objects of 200 bytes, 1 % kept (see _made), one idle second; then ebb.trim()."""
    _install(allocator, numpy=False, objects=True)
    start = rss_bytes()
    made, kept = _made(count, layout)
    first = count - len(kept) if layout == "together" else 0
    step = 100 if layout == "sparse" else 1
    peak = rss_bytes()
    del made
    time.sleep(IDLE_SECONDS)
    live = sum(sys.getsizeof(b) for b in kept) + sys.getsizeof(kept)
    intact = all(b == bytes([(first + i * step) & 0xff]) * 200 for i, b in enumerate(kept))
    end, floor, tails, idle = rss_bytes(), page_floor(kept), page_tails(kept), _ebb_figures(allocator)
    trimmed = _trim() if allocator == "ebb" else None
    after_trim, ebb_after_trim = rss_bytes(), _ebb_figures(allocator)
    return {"count": count, "layout": layout, "kept": len(kept), "live": live, "floor": floor, "tails": tails,
            "start": start, "peak": peak, "end": end, "intact": intact, "pymalloc": pymalloc_figures(),
            "ebb": idle, "trimmed": trimmed, "after_trim": after_trim, "ebb_after_trim": ebb_after_trim}


def objects_together(allocator, count):
    return objects(allocator, count, "together")


def _trim():
    import ebb
    return ebb.trim()


EBB_FIELDS = ("live", "free_in_pages", "free_in_live_pages", "free_in_empty_pages", "dirty", "segment_cache",
              "large_cache", "metadata", "resident", "segments_count")


def _ebb_figures(allocator):
    if allocator != "ebb":
        return None
    import ebb
    st = ebb.stats()
    return {k: st[k] for k in EBB_FIELDS}


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


KINDS = {"arrays": arrays, "objects": objects, "objects_together": objects_together, "sweep": sweep}


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
        raise SystemExit("usage: python3 -m ebb._experiments arrays|objects|objects_together|sweep default|ebb SIZE_OR_COUNT")
    arg = [int(x) for x in argv[2].split(",")] if argv[0] == "sweep" else int(argv[2])
    print(json.dumps(KINDS[argv[0]](argv[1], arg)))


if __name__ == "__main__":
    main(sys.argv[1:])
