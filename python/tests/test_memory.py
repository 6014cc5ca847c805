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


def _objects_line(name, default, under_ebb):
    st, trimmed = under_ebb["ebb"], under_ebb["ebb_after_trim"]
    fields = ", ".join(f"{k} {st[k] / KiB:.0f}" for k in ("live", "free_in_live_pages", "free_in_empty_pages",
                                                          "metadata", "resident"))
    after = ", ".join(f"{k} {trimmed[k] / KiB:.0f}" for k in ("free_in_live_pages", "resident"))
    return (f"{name}: 100,000 x 200 B, 1 % kept ({under_ebb['live'] / KiB:.0f} KiB live): kept after 1 s: "
            f"pymalloc {kept(default) / MiB:.2f} MiB, ebb {kept(under_ebb) / MiB:.2f} MiB; page floor "
            f"{under_ebb['floor'] / MiB:.2f} MiB, ebb's page tails {under_ebb['tails'] / MiB:.2f} MiB, "
            f"2 x live + 4 MiB {(2 * under_ebb['live'] + 4 * MiB) / MiB:.2f} MiB\n  ebb.stats() KiB: {fields}; "
            f"after ebb.trim() ({under_ebb['trimmed'] / KiB:.0f} KiB given back): {after}")


def test_sparse_objects_keep_no_more_than_their_pages():
    """1 % of 100,000 objects of 200 B kept, every 100th (objects=True), one idle second.

    A C allocator cannot move a live block, so every 4 KiB OS page that holds a kept object stays
    resident: the page floor, counted from the kept objects' addresses (id(), [id, id + getsizeof)).
    Here each kept object sits in a page of its own: the floor is about 4.1 MiB, far above
    2 x live + 4 MiB's share for them. The honest bound for a non-moving allocator is floor +
    2 x live + 1 MiB; ebb also keeps the last OS page of each 64 KiB page with a kept block (its
    purge stops at the last OS page wholly inside the blocks: about 1.2 MiB here), which the bound
    allows for by name (`tails`). pymalloc keeps every 1 MiB arena with a kept object (about 24 MiB).
    """
    default = _experiments.run_child("objects", "default", 100_000)
    under_ebb = _experiments.run_child("objects", "ebb", 100_000)
    print(_objects_line("sparse", default, under_ebb))
    assert default["intact"] and under_ebb["intact"]
    assert under_ebb["peak"] - under_ebb["start"] >= 16 * MiB
    assert under_ebb["floor"] >= 3 * MiB                 # the kept objects are spread, one per OS page
    assert kept(under_ebb) <= under_ebb["floor"] + under_ebb["tails"] + 2 * under_ebb["live"] + 1 * MiB
    assert kept(default) >= 16 * MiB   # pymalloc keeps every arena that holds one kept object


def test_objects_kept_together_go_back_to_two_times_live():
    """1 % of 100,000 objects of 200 B kept, the last 1,000 made one after another (a long-lived cache
    filled in one go), objects=True, one idle second: ebb keeps at most 2 x live + 4 MiB."""
    default = _experiments.run_child("objects_together", "default", 100_000)
    under_ebb = _experiments.run_child("objects_together", "ebb", 100_000)
    print(_objects_line("together", default, under_ebb))
    assert default["intact"] and under_ebb["intact"]
    assert under_ebb["peak"] - under_ebb["start"] >= 16 * MiB
    assert under_ebb["floor"] <= 2 * under_ebb["live"]  # they share pages
    assert kept(under_ebb) <= 2 * under_ebb["live"] + 4 * MiB


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
