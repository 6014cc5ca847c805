# SPDX-License-Identifier: MIT
"""python3 -m ebb run [--no-preload] SCRIPT ARGS...   run a script with ebb, then say what happened to its memory
python3 -m ebb demo                                   NumPy arrays under NumPy's default allocator and under ebb"""

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


DEMO_SIZES = [10 ** 4 * 8, 10 ** 5 * 8] + [1 << k for k in range(10, 27, 2)]

EXPLANATION = """\
Rows: arrays of SIZE bytes (float64, written) made until about 256 MiB, deleted, then one idle
second; each column's process runs the rows in turn, as a program would. Cells: MiB of RSS
above the row's start, at the peak and one second after the delete.
Who kept what under NumPy's default allocator: arrays below glibc's mmap threshold (128 KiB at
start; glibc raises it to the size of each mmapped block it frees, up to 32 MiB) come from its
arenas, which keep freed memory unless it sits at the top of the heap; above the threshold each
array is its own mapping and goes back at once. NumPy itself caches only tiny data blocks (under
1 KiB), and array objects live in pymalloc's arenas, which stay while one object in them lives.
Under ebb.install() every array's data comes from ebb, which gives free pages back one purge
delay after the free, whatever the size; what remains is ebb's metadata and pymalloc's arenas."""


def demo():
    print("ebb demo: NumPy arrays, NumPy's default allocator vs ebb.install() (two processes) ...", flush=True)
    columns = {a: _experiments.run_child("sweep", a, DEMO_SIZES) for a in ("default", "ebb")}
    print(f"{'size':>10} | {'default peak':>12} {'after 1 s':>10} | {'ebb peak':>9} {'after 1 s':>10}")
    for default, ebb_row in zip(columns["default"], columns["ebb"]):
        cells = [(r["peak"] - r["start"]) / MiB for r in (default, ebb_row)]
        after = [(r["end"] - r["start"]) / MiB for r in (default, ebb_row)]
        print(f"{_size_text(default['size']):>10} | {cells[0]:12.1f} {after[0]:10.1f} | {cells[1]:9.1f} {after[1]:10.1f}")
    print(EXPLANATION)
    return 0


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
    if argv == ["demo"]:
        return demo()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
