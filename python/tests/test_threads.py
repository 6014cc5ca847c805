# SPDX-License-Identifier: MIT
"""ebb's NumPy handler from many threads at once (without the GIL for large
zeroed arrays) and across fork."""

import multiprocessing
import threading
import time

import pytest

import ebb

np = pytest.importorskip("numpy")

SECONDS = 3.0
SIZES = (1, 3, 1000, 10_000, 100_000, 300_000, 1_000_000)


def churn(tag, seconds, errors, names):
    """Makes, checks and drops arrays of every size until the time is up."""
    rng = np.random.default_rng(tag)
    held = []
    deadline = time.monotonic() + seconds
    rounds = 0
    while time.monotonic() < deadline:
        n = int(rng.choice(SIZES))
        a = np.zeros(n) if rounds % 2 else np.empty(n)
        if rounds % 2 and a.any():
            errors.append(f"thread {tag}: np.zeros({n}) not zero")
        a.fill(tag + rounds % 7)
        held.append((a, tag + rounds % 7))
        names.add((ebb.handler_name(a), ebb._ebb.owns(a.ctypes.data)))
        if len(held) > 8:
            b, value = held.pop(int(rng.integers(len(held))))
            if not (b == value).all():
                errors.append(f"thread {tag}: an array of {b.size} changed")
        rounds += 1
    for b, value in held:
        if not (b == value).all():
            errors.append(f"thread {tag}: an array of {b.size} changed")
    return rounds


def test_four_threads_make_and_drop_arrays():
    errors, names, rounds = [], set(), []
    with ebb.installed():
        threads = [threading.Thread(target=lambda t=t: rounds.append(churn(t, SECONDS, errors, names)))
                   for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == [] and len(rounds) == 4 and min(rounds) > 50
    # New threads start with NumPy's default handler: ebb's functions stand in it, under NumPy's name.
    assert names == {("default_allocator", True)}


def _child_work(queue, parent_array):
    """In the forked child: the parent's ebb array is intact, new ones are ebb's, both are freed."""
    try:
        ok = bool((parent_array == 5.0).all())
        fresh = [np.full(n, 2.0) for n in SIZES]
        ok &= all(ebb._ebb.owns(a.ctypes.data) and (a == 2.0).all() for a in fresh)
        ok &= churn(9, 0.5, [], set()) > 0
        del fresh, parent_array
        queue.put(ok)
    except Exception as error:  # reported to the parent, which fails the test
        queue.put(repr(error))


def test_fork_keeps_ebb_working_in_the_child():
    with ebb.installed():
        parent_array = np.full(200_000, 5.0)
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        children = [context.Process(target=_child_work, args=(queue, parent_array)) for _ in range(2)]
        for c in children:
            c.start()
        results = [queue.get(timeout=60) for _ in children]
        for c in children:
            c.join(60)
        assert results == [True, True] and [c.exitcode for c in children] == [0, 0]
        assert (parent_array == 5.0).all()
        del parent_array
