# SPDX-License-Identifier: MIT
"""Memory going back: the seed experiment and a sparse heap of Python objects,
each in a child process of its own (ebb._experiments), under NumPy's and
CPython's own allocators and under ebb.install()."""

import os
import re
import subprocess
import sys

import pytest

from ebb import _experiments

MiB = 1 << 20
KiB = 1 << 10

pytest.importorskip("numpy")


def kept(figures):
    return figures["end"] - figures["start"]


@pytest.mark.parametrize("size", [80_000, 127 * KiB, 256 * KiB, 800_000, 8 * MiB])
def test_arrays_go_back_after_one_idle_second(size):
    default = _experiments.run_child("arrays", "default", size)
    under_ebb = _experiments.run_child("arrays", "ebb", size)
    print(f"{size} B x {default['count']}: kept after 1 s: default {kept(default) / MiB:.1f} MiB, "
          f"ebb {kept(under_ebb) / MiB:.2f} MiB (peaks {default['peak'] / MiB:.0f} / {under_ebb['peak'] / MiB:.0f} MiB)")
    assert under_ebb["handler"] == "ebb" and default["handler"] == "default_allocator"
    assert under_ebb["peak"] - under_ebb["start"] >= 200 * MiB   # the arrays were made and written
    assert kept(under_ebb) <= 1 * MiB
    if size < 128 * KiB:   # below glibc's mmap threshold: its arenas keep them
        assert kept(default) >= 32 * MiB


# ebb's promise for sparse heaps (demo/seed.c). Measured here: 5.2 MiB stay in
# free_in_live_pages after the idle second and after ebb.trim(), whatever the
# object size (200, 400, 1000 B); strict, so that the fix makes it fail until
# this mark goes.
@pytest.mark.xfail(strict=True, reason="ebb keeps about 5 MiB free in live pages of a sparse Python heap")
def test_sparse_objects_go_back_with_objects_true():
    default = _experiments.run_child("objects", "default", 100_000)
    under_ebb = _experiments.run_child("objects", "ebb", 100_000)
    bound = 2 * under_ebb["live"] + 4 * MiB
    print(f"100,000 x 200 B, 1 % kept ({under_ebb['live'] / KiB:.0f} KiB live): kept after 1 s: "
          f"pymalloc {kept(default) / MiB:.1f} MiB, ebb {kept(under_ebb) / MiB:.2f} MiB (bound {bound / MiB:.2f})")
    assert default["intact"] and under_ebb["intact"]
    assert under_ebb["peak"] - under_ebb["start"] >= 16 * MiB
    assert kept(under_ebb) <= bound
    assert kept(default) >= 16 * MiB   # pymalloc keeps every arena that holds one kept object


ROW = re.compile(r"^ *(\S+ \S+) \| +([\d.-]+) +([\d.-]+) +(mmap|arena|-) +([\d.-]+) +([\d.-]+) \| "
                 r"+([\d.-]+) +([\d.-]+) +(small|medium|wide|large) +([\d.-]+) +([\d.-]+)$", re.M)


def test_demo_quick_shows_ebb_giving_back_what_glibc_keeps():
    proc = subprocess.run([sys.executable, "-m", "ebb", "demo", "--quick"], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    print(proc.stdout)
    rows = {m[0]: [m[3], m[8]] + [float(x) for x in m[1:3] + m[4:6] + m[6:8] + m[9:11]]
            for m in ROW.findall(proc.stdout)}
    assert set(rows) == {"800 KB", "80 KB"}, proc.stdout
    for line in ("  with     MiB of RSS above the process's start while the row's arrays are alive",
                 "  after    MiB of RSS above the process's start one idle second after `del`",
                 "Who kept what.", "mmap threshold (128 KiB at start", "up to\n32 MiB",
                 "NumPy's own cache keeps at most 7", "pymalloc's arenas hold the array objects",
                 "one purge delay (100 ms) after the free"):
        assert line in proc.stdout, line
    for size, (glibc_from, tier, d_with, d_after, glibc_free, _, e_with, e_after, e_resident, _) in rows.items():
        assert d_with >= 200 and e_with >= 200, size        # the arrays were made and written
        assert e_after <= 2 and e_resident <= 1, size       # ebb: 1 MiB, and pages the interpreter touched
    assert rows["800 KB"][:2] == ["mmap", "large"] and rows["800 KB"][3] <= 2   # both give these back
    assert rows["80 KB"][:2] == ["arena", "wide"]
    assert rows["80 KB"][3] >= 32 and rows["80 KB"][4] >= 32                    # glibc's arenas keep them
