#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes test/fuzz/corpus/: the seed inputs of fuzz_api, one per tier and
operation, in the encoding fuzz_api.c reads (an op byte, a slot byte, then
the op's arguments). Run it again after changing that encoding:
    /usr/bin/python3 test/fuzz/make_corpus.py
"""
import os

MALLOC, CALLOC, ALIGNED_ALLOC, POSIX_MEMALIGN, MEMALIGN, VALLOC, PVALLOC = range(7)
REALLOC, REALLOC2, REALLOC_ZERO, REALLOCARRAY = 7, 8, 9, 10
FREE, FREE_SIZED, HAND, HAND2, CHECK, CHECK2, CONTROL, MUST_FAIL, OWNS = range(11, 20)
SMALL, MEDIUM, WIDE, LARGE = range(4)


def size(tier, v, extra=0):
    """read_size(): the tier byte, a 16-bit value, and for LARGE one more byte."""
    out = bytes([tier, v & 0xFF, (v >> 8) & 0xFF])
    return out + bytes([extra]) if tier == LARGE else out


def alloc(op, slot, tier, v, align=0, extra=0):
    return bytes([op, slot]) + size(tier, v, extra) + bytes([align])


def realloc(slot, tier, v, op=REALLOC, extra=0):
    return bytes([op, slot]) + size(tier, v, extra)


def simple(op, slot, arg=None):
    return bytes([op, slot] + ([] if arg is None else [arg]))


def control(how, sub=0):
    return simple(CONTROL, 0, how | (sub << 3))


SEEDS = {
    "small_malloc_free": b"".join([alloc(MALLOC, i, SMALL, 1 + i * 37) for i in range(16)]
                                  + [simple(CHECK, i) for i in range(16)]
                                  + [simple(FREE if i % 2 else FREE_SIZED, i) for i in range(16)]
                                  + [alloc(MALLOC, 0, SMALL, 0), alloc(MALLOC, 1, SMALL, 8)]),
    "medium_realloc": b"".join([alloc(MALLOC, i, MEDIUM, 1000 * i) for i in range(8)]
                               + [realloc(i, MEDIUM, 3000 * i + 7) for i in range(8)]
                               + [realloc(i, SMALL, 100 + i, REALLOC2) for i in range(8)]),
    "wide_tier": b"".join([alloc(MALLOC, i, WIDE, 5000 * i + 11) for i in range(6)]
                          + [realloc(i, WIDE, 60000 - 3000 * i) for i in range(6)]
                          + [simple(FREE, i) for i in range(0, 6, 2)]),
    "large_grow_shrink": b"".join([alloc(MALLOC, 0, LARGE, 100), realloc(0, LARGE, 40000, extra=3),
                                   realloc(0, LARGE, 1000), realloc(0, WIDE, 100), realloc(0, LARGE, 60000),
                                   realloc(0, MEDIUM, 50), simple(FREE, 0),
                                   alloc(MALLOC, 1, LARGE, 65535, extra=255), simple(FREE_SIZED, 1)]),
    "calloc_tiers": b"".join([alloc(CALLOC, i, i % 4, 999 * i + 1, align=i) for i in range(12)]
                             + [simple(FREE, i) for i in range(12)]
                             + [alloc(CALLOC, i, i % 4, 777 * i + 5, align=3) for i in range(12)]),
    "aligned": b"".join([alloc(op, (op * 8 + k) % 32, k % 3, 300 * k + 1, align=k * 2 + (0x80 if k % 3 == 0 else 0))
                         for op in (ALIGNED_ALLOC, POSIX_MEMALIGN, MEMALIGN) for k in range(12)]
                        + [alloc(MEMALIGN, 30, SMALL, 100, align=22), alloc(ALIGNED_ALLOC, 31, LARGE, 5, align=21)]),
    "valloc_pvalloc": b"".join([alloc(VALLOC if i % 2 else PVALLOC, i, i % 3, 4095 * i) for i in range(10)]
                               + [realloc(i, MEDIUM, 2 * i) for i in range(10)]),
    "realloc_zero_array": b"".join([alloc(MALLOC, i, i % 4, 1234 * i) for i in range(8)]
                                   + [simple(REALLOC_ZERO, i) for i in range(0, 8, 2)]
                                   + [realloc(i, i % 3, 999 * i + 2, REALLOCARRAY) for i in range(1, 8, 2)]
                                   + [realloc(1, SMALL, 0)]),
    "cross_thread_free": b"".join([alloc(MALLOC, i, i % 4, 2000 * i + 3) for i in range(32)]
                                  + [simple(HAND if i % 2 else HAND2, i) for i in range(32)]
                                  + [alloc(CALLOC, i, SMALL, 64, align=1) for i in range(32)]
                                  + [simple(HAND, i) for i in range(32)]),
    "options_collect": b"".join([control(3, 0), alloc(MALLOC, 0, MEDIUM, 8000), alloc(MALLOC, 1, WIDE, 100),
                                 control(4, 0), simple(FREE, 0), control(0), control(1), control(2),
                                 control(3, 3), realloc(1, LARGE, 10), control(4, 3), control(5), control(6),
                                 control(7), simple(FREE, 1)]),
    "must_fail": b"".join([simple(MUST_FAIL, 0, k) for k in range(3)]
                          + [alloc(MALLOC, 2, MEDIUM, 77), simple(MUST_FAIL, 2, 3), simple(CHECK, 2)]),
    "owns_stats": b"".join([alloc(MALLOC, i, i % 4, 4321 * i + 20) for i in range(8)]
                           + [simple(OWNS, i) for i in range(8)] + [control(5), control(6)]
                           + [simple(CHECK2, i) for i in range(8)]),
}


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(SEEDS), out))


if __name__ == "__main__":
    main()
