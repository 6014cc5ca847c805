# SPDX-License-Identifier: MIT
"""ebb.install() and uninstall(): NumPy's handler, CPython's domains, the blocks made before and after."""

import re
import subprocess
import os

import pytest

import ebb

np = pytest.importorskip("numpy")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def data(array):
    return array.__array_interface__["data"][0]


def test_new_arrays_are_ebbs_and_old_ones_are_freed_by_their_allocator(child):
    out = child("""
        import numpy as np, ebb
        before = [np.full(n, 7.0) for n in (1, 100, 10_000, 1_000_000)]
        assert all(ebb.handler_name(a) == "default_allocator" for a in before)
        assert not any(ebb._ebb.owns(a.ctypes.data) for a in before)
        ebb.install()
        made = [np.full(n, 3.0) for n in (0, 1, 100, 10_000, 1_000_000)]
        assert [ebb.handler_name(a) for a in made] == ["ebb"] * 5, [ebb.handler_name(a) for a in made]
        assert all(ebb._ebb.owns(a.ctypes.data) for a in made)
        zeros = np.zeros(3_000_000)
        assert ebb._ebb.owns(zeros.ctypes.data) and not zeros.any()
        grown = np.resize(np.arange(10.0), 100_000)   # realloc path
        assert grown[99_999] == 9.0
        assert all((a == 7.0).all() for a in before)
        del before[:2]                                # freed by NumPy's default, through ebb's wrapper
        ebb.uninstall()
        assert ebb.handler_name(np.ones(10)) == "default_allocator"
        assert not ebb._ebb.owns(np.ones(10_000).ctypes.data)
        assert all((a == 3.0).all() for a in made)
        live = ebb.stats()["live"]
        del made, before, zeros, grown                # ebb's blocks after uninstall: to ebb
        assert ebb._ebb.numpy_live() == 0
        assert live - ebb.stats()["live"] >= 8 * (1_000_000 + 3_000_000 + 10_100 + 100_000)
        print("ok")
    """)
    assert out.strip() == "ok"


def test_zero_byte_blocks_are_distinct(child):
    out = child("""
        import ebb
        ebb.install(objects=True)
        for domain in ("raw", "mem", "obj"):
            blocks = [ebb._ebb._pymem_alloc(domain, 0) for _ in range(3)]
            assert len(set(blocks)) == 3 and all(ebb._ebb.owns(p) for p in blocks), domain
            for p in blocks:
                assert ebb._ebb._pymem_free(domain, p, 0)
        print("ok")
    """)
    assert out.strip() == "ok"


def test_blocks_a_c_extension_made_before_install_and_during_it(child):
    out = child("""
        import ebb
        sizes = (0, 1, 100, 600, 70_000, 2_000_000)
        before = {d: [(ebb._ebb._pymem_alloc(d, n), n) for n in sizes] for d in ("raw", "mem", "obj")}
        assert not any(ebb._ebb.owns(p) for blocks in before.values() for p, n in blocks)
        ebb.install(objects=True)
        during = {d: [(ebb._ebb._pymem_alloc(d, n), n) for n in sizes] for d in ("raw", "mem", "obj")}
        assert all(ebb._ebb.owns(p) for blocks in during.values() for p, n in blocks)
        assert all(ebb._ebb._pymem_free(d, p, n) for d, blocks in before.items() for p, n in blocks)
        ebb.uninstall()
        after = ebb._ebb._pymem_alloc("mem", 100)
        assert not ebb._ebb.owns(after) and ebb._ebb._pymem_free("mem", after, 100)
        live = ebb.stats()["live"]
        assert all(ebb._ebb._pymem_free(d, p, n) for d, blocks in during.items() for p, n in blocks)
        assert live - ebb.stats()["live"] >= 3 * sum(sizes)   # they went back to ebb
        print("ok")
    """)
    assert out.strip() == "ok"


def test_installed_scopes_and_state():
    assert ebb.state()["numpy"] is False
    with ebb.installed(raw=False) as inside:
        assert inside == dict(ebb.state()) and inside["numpy"] and inside["mem"] and not inside["raw"]
        assert ebb.handler_name(np.ones(8)) == "ebb"
        assert ebb._ebb.domain_state("mem") == {"hooked": True, "active": True}
        assert ebb._ebb.domain_state("raw")["active"] is False
    after = ebb.state()
    assert not any(after[k] for k in ("numpy", "raw", "mem", "objects"))
    assert ebb.handler_name(np.ones(8)) == "default_allocator"
    assert ebb._ebb.domain_state("mem") == {"hooked": True, "active": False}


def test_bad_arguments_are_refused():
    with pytest.raises(TypeError, match="ebb: error: install\\(objects=...\\) takes True or False"):
        ebb.install(objects="yes")
    with pytest.raises(ValueError, match="ebb: error: no allocator domain 'heap'"):
        ebb._ebb.set_domain("heap", True)
    with pytest.raises(TypeError, match="ebb: error: explain\\(\\) takes a size"):
        ebb.explain("80k")
    with pytest.raises(ValueError, match="ebb: error: size -1 is negative"):
        ebb.explain(-1)
    with pytest.raises(ValueError, match="ebb: error: size -1267650600228229401496703205376 is negative"):
        ebb.explain(-(1 << 100))
    for too_big in (1 << 63, 1 << 100):
        with pytest.raises(MemoryError, match=f"ebb: error: {too_big} bytes is more than malloc can serve"):
            ebb.explain(too_big)
    with pytest.raises(ValueError, match="ebb: error: 0 is not a block of ebb's"):
        ebb._ebb.usable_size(0)


def test_stats_has_every_field_of_the_header():
    # The field list as the C compiler sees it (the X-macro nests helper
    # macros, e.g. one per page layer), expanded by the preprocessor.
    snippet = '#include "ebb.h"\n#define EBB_FIELD_NAME(name, help) EBB_FIELD name\nEBB_STATS_FIELDS(EBB_FIELD_NAME)\n'
    expanded = subprocess.run(["cc", "-E", "-P", "-I", os.path.join(ROOT, "include"), "-"], input=snippet,
                              capture_output=True, text=True, check=True).stdout
    names = re.findall(r"EBB_FIELD (\w+)", expanded)
    st = ebb.stats()
    assert list(st) == names and set(ebb.stats_help()) == set(names)
    assert st["resident"] == (st["live"] + st["free_in_pages"] + st["segment_cache"] + st["large_cache"]
                              + st["metadata"])


def test_trim_gives_back_what_was_freed():
    with ebb.installed():
        arrays = [np.ones(20_000) for _ in range(200)]
        del arrays
        released = ebb.trim()
    assert released >= 16 << 20 and ebb.trim() < released


KiB = 1 << 10
# Around the edges of the small, medium and wide pages and of the large threshold.
AROUND = [n + d for n in (8 * KiB, 64 * KiB, 512 * KiB) for d in (-1, 0, 1)] + [0, 1, 100]

EXPLAIN_CHECK = """
    import json, numpy as np, ebb
    sizes = %r
    ebb.install()
    rows = []
    for n in sizes:
        info = ebb.explain(n)
        ebb.trim()     # an empty large cache: a cached bigger block would serve a large request as it is
        array = np.empty(max(n, 1), np.uint8)          # a real block of n bytes, from NumPy through ebb
        raw = ebb._ebb._pymem_alloc("raw", n)          # and one from PyMem_RawMalloc
        large_before = ebb.stats()["large_live"]
        again = np.empty(max(n, 1), np.uint8)
        grew = ebb.stats()["large_live"] - large_before
        rows.append([n, info["usable"], ebb._ebb.usable_size(array.ctypes.data), ebb._ebb.usable_size(raw),
                     info["tier"], grew >= info["usable"], info["large_threshold"], info["purge_delay_ms"]])
        ebb._ebb._pymem_free("raw", raw, n)
        del array, again
    print(json.dumps({"rows": rows, "threshold": ebb.option("LARGE_THRESHOLD"), "delay": ebb.option("EBB_PURGE_DELAY_MS")}))
"""


def explained(child, sizes, env=None):
    import json
    return json.loads(child(EXPLAIN_CHECK % (sizes,), env=env))


def check_explained(figures):
    """explain()'s usable size is a real block's; "large" exactly when the block got a mapping of its own."""
    for n, usable, from_numpy, from_raw, tier, own_mapping, threshold, delay in figures["rows"]:
        assert usable == from_numpy == from_raw and usable >= n, (n, usable, from_numpy, from_raw)
        assert (tier == "large") == own_mapping == (n > threshold), (n, tier, own_mapping, threshold)
        assert threshold == figures["threshold"] and delay == figures["delay"]


def test_explain_agrees_with_real_blocks(child):
    figures = explained(child, AROUND)
    check_explained(figures)
    tiers = {n: tier for n, _, _, _, tier, *_ in figures["rows"]}
    assert figures["threshold"] == 512 * KiB and figures["delay"] == 100
    assert tiers[100] == "small" and tiers[512 * KiB] != "large" and tiers[512 * KiB + 1] == "large"
    assert {"small", "medium", "wide", "large"} <= set(tiers.values()), tiers


def test_explain_follows_the_options_in_the_environment(child):
    figures = explained(child, AROUND, env={"EBB_LARGE_THRESHOLD": "65536", "EBB_PURGE_DELAY_MS": "250"})
    check_explained(figures)
    tiers = {n: tier for n, _, _, _, tier, *_ in figures["rows"]}
    assert figures["threshold"] == 64 * KiB and figures["delay"] == 250
    assert tiers[64 * KiB] != "large" and tiers[64 * KiB + 1] == "large" and tiers[512 * KiB] == "large"
    text = child("import ebb; print(ebb.explain(100_000)['returns'])", env={"EBB_PURGE_DELAY_MS": "250"})
    assert "250 ms (EBB_PURGE_DELAY_MS)" in text


def test_explain_fields():
    info = ebb.explain(100)
    assert info["tier"] == "small" and info["page"] == 64 * KiB and 100 <= info["usable"] < 128
    assert info["blocks_per_page"] == info["page"] // info["usable"]
    large = ebb.explain(8 << 20)
    assert large["tier"] == "large" and large["usable"] == 8 << 20 and large["blocks_per_page"] == 1
    assert "large cache" in large["returns"] and "own" in large["where"]
    assert ebb.explain(1 << 62)["usable"] == 1 << 62      # told, never allocated


def test_option_values_and_names():
    assert ebb.option("PURGE_DELAY_MS") == ebb.option("EBB_PURGE_DELAY_MS") == ebb.explain(1)["purge_delay_ms"]
    assert ebb.option("MADVISE") in (0, 1) and ebb.option("STATS_FILE") in (0, 1)
    with pytest.raises(ValueError, match="ebb: error: 'PURGE_DELAY' is not an ebb option"):
        ebb.option("PURGE_DELAY")
    with pytest.raises(TypeError, match="ebb: error: option\\(\\) takes an option's name"):
        ebb.option(7)


def test_version_and_mode():
    assert ebb.version == "%d.%d.%d" % tuple(int(x) for x in ebb.version.split("."))
    assert ebb.mode == "embedded" or ebb.mode.startswith("preloaded (")


def test_preloaded_ebb_is_the_one_used(child):
    lib = os.path.join(ROOT, "build", "libebb.so")
    out = child("""
        import ctypes, numpy as np, ebb
        assert ebb.mode.startswith("preloaded (") and "libebb.so" in ebb.mode, ebb.mode
        before = np.ones(10_000)
        assert ebb._ebb.owns(before.ctypes.data)     # malloc is the preloaded ebb
        ebb.install()
        after = np.ones(10_000)
        assert ebb.handler_name(after) == "ebb" and ebb._ebb.owns(after.ctypes.data)
        process = ctypes.CDLL(None)
        process.ebb_owns.restype = ctypes.c_bool
        assert process.ebb_owns(ctypes.c_void_p(after.ctypes.data))
        print("ok")
    """, env={"LD_PRELOAD": lib})
    assert out.strip() == "ok"


def test_explain_and_option_ask_the_preloaded_ebb(child):
    lib = os.path.join(ROOT, "build", "libebb.so")
    figures = explained(child, AROUND, env={"LD_PRELOAD": lib, "EBB_LARGE_THRESHOLD": "65536"})
    check_explained(figures)
    assert figures["threshold"] == 64 * KiB
    out = child("""
        import ctypes, ebb
        assert ebb.mode.startswith("preloaded (")
        assert ebb.option("LARGE_THRESHOLD") == 65536
        ctypes.CDLL(None).mallopt(-3, 8192)                # M_MMAP_THRESHOLD, in the preloaded ebb only
        assert ebb.option("LARGE_THRESHOLD") == 8192 and ebb.explain(8193)["tier"] == "large"
        print("ok")
    """, env={"LD_PRELOAD": lib, "EBB_LARGE_THRESHOLD": "65536"})
    assert out.strip() == "ok"


def test_the_process_malloc_is_not_replaced(child):
    out = child("""
        import ctypes, ebb
        ebb.install(objects=True)
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        p = libc.malloc(100)
        assert ebb.mode == "embedded" and not ebb._ebb.owns(p)
        assert ctypes.CDLL(None)._name is None
        try:
            ctypes.CDLL(None).ebb_malloc
        except AttributeError:
            print("hidden")
        libc.free(ctypes.c_void_p(p))
    """)
    assert out.strip() == "hidden"


def test_pytest_plugin_keeps_ebb_installed_and_names_a_test_that_removed_it(tmp_path):
    import subprocess
    import sys
    (tmp_path / "test_sample.py").write_text(
        "import numpy as np, ebb\n"
        "def test_under_ebb():\n    assert ebb.handler_name(np.ones(10)) == 'ebb'\n"
        "def test_removes_it():\n    ebb.uninstall()\n"
        "def test_after():\n    assert ebb.state()['numpy']\n")
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "ebb.pytest_plugin"]
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(ebb.__file__))))
    proc = subprocess.run(args + [str(tmp_path / "test_sample.py")], capture_output=True, text=True, cwd=tmp_path,
                          env=env)
    assert proc.returncode == 1 and "3 passed" in proc.stdout, proc.stdout + proc.stderr
    assert "ebb: error: after test_sample.py::test_removes_it: numpy, raw, mem" in proc.stderr, proc.stderr
    assert "ebb: error: 1 tests left another allocator in place: test_sample.py::test_removes_it" in proc.stdout
    proc = subprocess.run(args + ["-k", "not removes", str(tmp_path / "test_sample.py")], capture_output=True,
                          text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0 and "ebb: installed through all 2 tests (embedded" in proc.stdout, proc.stdout
