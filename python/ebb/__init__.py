# SPDX-License-Identifier: MIT
"""ebb inside CPython and NumPy: memory that Python frees goes back to the OS.

    import ebb
    ebb.install()          # NumPy's arrays, CPython's RAW and MEM domains
    ...
    ebb.uninstall()

    with ebb.installed(objects=True):   # small Python objects too
        ...

Installing at run time wraps the allocators in place: memory they already
hold stays theirs and is freed by them; new blocks come from ebb. After
uninstall() new blocks come from the previous allocators again and blocks
ebb made are still freed by ebb (the wrappers stay, inactive). See
python/README.md for what each domain means and what ebb cannot take over.
"""

import contextlib
import sys
import threading

from . import _ebb

__all__ = ["install", "uninstall", "installed", "stats", "stats_help", "trim", "explain", "option",
           "handler_name", "version", "mode", "state"]

#: ebb's version ("0.1.0"), from the library in use.
version = _ebb.version
#: "embedded" (the extension's own copy, ebb_ names only: the process's malloc is
#: untouched) or "preloaded (<path>)" when an ebb is already in the process
#: (LD_PRELOAD=libebb.so): then that one serves everything, one ebb per process.
mode = _ebb.mode

_lock = threading.Lock()
_installed = {}          # domain name -> True while ebb serves it
_said = set()            # one-time notes already printed


def _note(key, text):
    """Prints `text` once per process on stderr."""
    if key not in _said:
        _said.add(key)
        print(f"ebb: {text}", file=sys.stderr)


def _numpy_available():
    if not _ebb.with_numpy:
        _note("numpy-build", "built without NumPy's headers: NumPy's arrays are not ebb's")
        return False
    try:
        import numpy  # noqa: F401
    except ImportError:
        _note("numpy-missing", "NumPy is not installed: the NumPy part is skipped")
        return False
    return True


def install(numpy=True, raw=True, mem=True, objects=False):
    """Makes ebb the allocator of the chosen domains from now on.

    numpy    NumPy's array data (a NEP 49 handler named "ebb")
    raw      CPython's PYMEM_DOMAIN_RAW (PyMem_RawMalloc: buffers, called without the GIL)
    mem      PYMEM_DOMAIN_MEM (PyMem_Malloc: lists' and dicts' storage, ...)
    objects  PYMEM_DOMAIN_OBJ (PyObject_Malloc: every object, pymalloc's small ones included)

    Domains not named keep what they have. Calling it again adds domains.
    Returns the state (see state()).
    """
    for name, value in (("numpy", numpy), ("raw", raw), ("mem", mem), ("objects", objects)):
        if not isinstance(value, bool):
            raise TypeError(f"ebb: error: install({name}=...) takes True or False, not {value!r}")
    with _lock:
        for domain, wanted in (("raw", raw), ("mem", mem), ("obj", objects)):
            if wanted:
                _ebb.set_domain(domain, True)
                _installed[domain] = True
        if numpy and _numpy_available():
            _ebb.numpy_install()
            _installed["numpy"] = True
    return state()


def uninstall():
    """New blocks come from the previous allocators again; returns state().

    Blocks ebb made are still freed by ebb. NumPy's default handler gets its own
    functions back at once unless arrays that ebb made through it are alive (they
    were made in other threads); then it keeps ebb's forwarding handler, inactive,
    until an uninstall() finds none.
    """
    with _lock:
        for domain in ("raw", "mem", "obj"):
            if _installed.pop(domain, False):
                _ebb.set_domain(domain, False)
        if _installed.pop("numpy", False) or _ebb.with_numpy and _numpy_pending():
            if not _ebb.numpy_uninstall():
                _note("numpy-pending", "NumPy's default handler keeps ebb's forwarding functions "
                      "(inactive) while arrays ebb made in other threads live")
    return state()


def _numpy_pending():
    return "numpy" in sys.modules and _ebb.numpy_live() > 0


@contextlib.contextmanager
def installed(numpy=True, raw=True, mem=True, objects=False):
    """`with ebb.installed(...):` ebb serves the domains inside the block only."""
    before = dict(_installed)
    install(numpy=numpy, raw=raw, mem=mem, objects=objects)
    try:
        yield state()
    finally:
        with _lock:
            for domain in ("raw", "mem", "obj"):
                if _installed.get(domain) and not before.get(domain):
                    _ebb.set_domain(domain, False)
                    del _installed[domain]
            if _installed.get("numpy") and not before.get("numpy"):
                del _installed["numpy"]
                _ebb.numpy_uninstall()


def state():
    """{'numpy': bool, 'raw': bool, 'mem': bool, 'objects': bool, 'mode': str}: what ebb serves now."""
    return {"numpy": bool(_installed.get("numpy")), "raw": bool(_installed.get("raw")),
            "mem": bool(_installed.get("mem")), "objects": bool(_installed.get("obj")), "mode": mode}


def stats():
    """ebb's statistics (include/ebb.h, EBB_STATS_FIELDS), bytes unless named _count or _calls."""
    return _ebb.stats()


def stats_help():
    """What each field of stats() measures."""
    return _ebb.stats_help()


def trim():
    """Gives every free page and cached block back to the OS now (ebb_collect(true)); returns the bytes."""
    return _ebb.trim()


def option(name):
    """The value in effect of ebb's option `name` ("PURGE_DELAY_MS" or "EBB_PURGE_DELAY_MS"), an int:
    sizes in bytes, switches 0/1, choices their index, a path 1 when set (ebb_option_get)."""
    if not isinstance(name, str):
        raise TypeError(f"ebb: error: option() takes an option's name (a str), not {name!r}")
    return _ebb.option(name)


_WHERE = {
    "small": "a block in a 64 KiB page of blocks of its class",
    "medium": "a block in a 512 KiB page of blocks of its class",
    "wide": "a block in a 4 MiB page of blocks of its class",
    "large": "a mapping of its own (above EBB_LARGE_THRESHOLD)",
}


def explain(size):
    """What ebb does with a request of `size` bytes, from malloc's own functions and the options
    in effect (ebb_size_info): a dict with size, usable (the bytes handed out: its size class, or
    whole 4 KiB pages when large), tier ("small", "medium", "wide" or "large"), page and
    blocks_per_page (where it is carved from), large_threshold, purge_delay_ms, where and returns
    (when its memory goes back to the OS). A large request that a freed block in the large cache
    serves gets that block as it is: bigger than `usable` by up to max(size / 4, 1 MiB)."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"ebb: error: explain() takes a size in bytes (an int), not {size!r}")
    info = _ebb.size_info(size)
    delay = f"{info['purge_delay_ms']} ms (EBB_PURGE_DELAY_MS)"
    if info["tier"] == "large":
        back = (f"on free it waits in the large cache; {delay} later its pages go back to the OS "
                "(ebb.trim(): now)")
    else:
        back = (f"when every block of its page is free, the page goes back to the OS {delay} later; "
                "free blocks in a page with live ones give back the whole 4 KiB OS pages they cover "
                "on the same deadline (ebb.trim(): now)")
    return {"size": size, "usable": info["block"], "tier": info["tier"], "page": info["page"],
            "blocks_per_page": info["blocks_per_page"], "large_threshold": info["large_threshold"],
            "purge_delay_ms": info["purge_delay_ms"], "where": _WHERE[info["tier"]], "returns": back}


def handler_name(array):
    """The name of the NEP 49 handler that made `array`'s data ("ebb", "default_allocator", ...)."""
    from numpy.core.multiarray import get_handler_name
    return get_handler_name(array)
