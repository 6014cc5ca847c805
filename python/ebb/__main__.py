# SPDX-License-Identifier: MIT
"""python3 -m ebb run [--no-preload] SCRIPT ARGS...   run a script with ebb, then say what happened to its memory
python3 -m ebb demo [--quick]                         NumPy arrays under NumPy's default allocator and under ebb"""

import ctypes.util
import json
import os
import runpy
import subprocess
import sys

from . import _experiments

MiB = 1 << 20
REPORT_FD = "PYEBB_REPORT_FD"  # not EBB_: ebb warns about EBB_ variables it does not know


def find_libebb():
    """libebb.so for LD_PRELOAD: $EBB_LIBRARY, the build tree next to the package's sources, the loader's path."""
    above_package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    candidates = [os.environ.get("EBB_LIBRARY"),
                  os.path.join(above_package, "libebb.so"),             # make python: build/python/ebb
                  os.path.join(above_package, "build", "libebb.so")]    # the source tree: python/ebb
    found = ctypes.util.find_library("ebb")
    candidates.append(found and f"/usr/lib/{found}")
    return next((c for c in candidates if c and os.path.exists(c)), None)


def child(script, args):
    """Inside the child: ebb.install() first, the script as __main__, the figures to the parent at exit."""
    import atexit
    import ebb
    ebb.install(objects=True)

    def report():
        st = ebb.stats()
        figures = {"end": _experiments.rss_bytes(), "mode": ebb.mode, "purged_total": st["purged_total"],
                   "live": st["live"], "resident": st["resident"]}
        with os.fdopen(int(os.environ[REPORT_FD]), "w") as out:
            json.dump(figures, out)
    atexit.register(report)
    sys.argv = [script] + args
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")


def run(argv):
    preload = True
    if argv and argv[0] == "--no-preload":
        preload, argv = False, argv[1:]
    if not argv:
        raise SystemExit("usage: python3 -m ebb run [--no-preload] SCRIPT ARGS...")
    if not os.path.exists(argv[0]):
        raise SystemExit(f"ebb: error: {argv[0]}: no such script")
    env = dict(os.environ)
    library = find_libebb() if preload else None
    if library:
        env["LD_PRELOAD"] = " ".join(filter(None, [library, env.get("LD_PRELOAD")]))
    elif preload:
        print("ebb: libebb.so not found (EBB_LIBRARY): ebb installed from the script's first line instead",
              file=sys.stderr)
    read_end, write_end = os.pipe()
    env[REPORT_FD] = str(write_end)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.dirname(os.path.dirname(__file__)), env.get("PYTHONPATH")]))
    proc = subprocess.Popen([sys.executable, "-m", "ebb", "_child"] + argv, env=env, pass_fds=[write_end])
    os.close(write_end)
    with os.fdopen(read_end) as reader:
        text = reader.read()
    _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    figures = json.loads(text) if text else None
    print(f"ebb: {argv[0]} exited with {code}; peak RSS {usage.ru_maxrss / 1024:.1f} MiB", file=sys.stderr)
    if figures:
        print(f"ebb: at exit: RSS {figures['end'] / MiB:.1f} MiB, ebb live {figures['live'] / MiB:.1f} MiB, "
              f"ebb resident {figures['resident'] / MiB:.1f} MiB; ebb gave back {figures['purged_total'] / MiB:.1f} MiB "
              f"to the OS while it ran ({figures['mode']})", file=sys.stderr)
    else:
        print("ebb: the script ended without Python's exit handlers (os._exit or a signal): no figures", file=sys.stderr)
    return code


KiB = 1 << 10
# In this order so that glibc's moving mmap threshold shows: 800 KB arrays get mappings of their
# own and go back at free, which raises the threshold to 800 KB; then 256 KiB arrays, mapped on
# their own at start, come from its arenas, which keep them; every later size reuses that memory.
DEMO_SIZES = [800_000, 256 * KiB, 80_000, 8 * MiB, 64 * MiB]
QUICK_SIZES = [800_000, 80_000]

LEGEND = """\
Each row: NumPy arrays of SIZE bytes (float64, written) made until about 256 MiB, deleted, then one
idle second. Each allocator runs every row in turn in one process of its own, as a program would.
  with     MiB of RSS above the process's start while the row's arrays are alive
  after    MiB of RSS above the process's start one idle second after `del`: what it still holds
  from     where glibc put the row's data: "mmap" (a mapping of its own, unmapped at free) or
           "arena" (its heap: below its mmap threshold, or free memory its arenas already held)
  glibc    MiB free inside glibc's arenas after the second (mallinfo2 fordblks): kept, not given back
  pymalloc MiB of pymalloc's arenas above the process's start (1 MiB each, whatever of it is
           resident): the array objects, about 100 B each
  tier     ebb.explain(SIZE)["tier"]: a block in ebb's small/medium/wide pages, or large (a mapping
           of its own)
  ebb      MiB resident in ebb after the second (ebb.stats()["resident"]: live, free and metadata)"""

EXPLANATION = """\
Who kept what. Under NumPy's default allocator an array's data comes from glibc's malloc: below
its mmap threshold (128 KiB at start; freeing a mapped block raises it to that block's size, up to
32 MiB) from its arenas, which keep what is freed (the glibc column) unless it sits at the top of
the heap, and serve every later size from it; above the threshold an array gets a mapping of its
own that goes back at free. NumPy's own cache keeps at most 7 freed data blocks of each size under
1 KiB (under 4 MiB in all), and pymalloc's arenas hold the array objects, each arena until its last
object goes. Under ebb.install() every array's data comes from ebb, which gives free pages back
one purge delay ({delay} ms) after the free, whatever the size: a second later the process holds
only ebb's metadata (the ebb column) and what pymalloc kept."""


def _mib(value):
    return "-" if value is None else f"{value / MiB:.1f}"


def _demo_line(size, default, under_ebb):
    glibc_from = "-" if default["glibc_mapped"] is None else \
        "mmap" if default["glibc_mapped"] >= TARGET_HALF else "arena"
    return (f"{_size_text(size):>8} | {_mib(default['peak']):>6} {_mib(default['end']):>6} {glibc_from:>5} "
            f"{_mib(default['glibc_free']):>6} {_mib(default['pymalloc']):>8} | {_mib(under_ebb['peak']):>6} "
            f"{_mib(under_ebb['end']):>6} {under_ebb['ebb']['tier']:>6} {_mib(under_ebb['ebb']['resident']):>6} "
            f"{_mib(under_ebb['pymalloc']):>8}")


TARGET_HALF = _experiments.TARGET_BYTES // 2


def demo(argv):
    if argv not in ([], ["--quick"]):
        raise SystemExit("usage: python3 -m ebb demo [--quick]   (--quick: the 80 KB and 800 KB rows only)")
    sizes = QUICK_SIZES if argv else DEMO_SIZES
    print("ebb demo: NumPy's arrays under NumPy's default allocator, then under ebb.install() "
          "(a process each) ...", flush=True)
    columns = {a: _experiments.run_child("sweep", a, sizes) for a in ("default", "ebb")}
    print(LEGEND)
    print()
    print(f"{'':>8} | {'NumPy default allocator (glibc)':^36} | {'ebb.install()':^37}")
    print(f"{'size':>8} | {'with':>6} {'after':>6} {'from':>5} {'glibc':>6} {'pymalloc':>8} | "
          f"{'with':>6} {'after':>6} {'tier':>6} {'ebb':>6} {'pymalloc':>8}")
    for size, default, under_ebb in zip(sizes, columns["default"], columns["ebb"]):
        print(_demo_line(size, default, under_ebb))
    print()
    print(EXPLANATION.format(delay=_ebb_option("PURGE_DELAY_MS")))
    return 0


def _ebb_option(name):
    import ebb
    return ebb.option(name)


def _size_text(size):
    for unit, scale in (("MiB", MiB), ("KiB", 1024)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size / 1000:g} KB"


def main(argv):
    if argv[:1] == ["run"]:
        return run(argv[1:])
    if argv[:1] == ["_child"]:
        return child(argv[1], argv[2:])
    if argv[:1] == ["demo"]:
        return demo(argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
