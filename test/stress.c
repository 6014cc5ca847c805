/* SPDX-License-Identifier: MIT */
/* test/stress.c - multi-threaded stress test of malloc, calloc, realloc,
 * posix_memalign, aligned_alloc and free, with every object's content
 * checked. Linked with libebb, so these are ebb's; it uses no ebb symbol and
 * runs just as well against the C library's allocator.
 *
 * Modes (--mode):
 *   mixed  --threads workers each keep a table of slots. A step picks a slot
 *          at random: an empty slot gets a new object of a random size over
 *          all tiers (small, medium, large, huge) from a random allocation
 *          function; a full one is verified, then reallocated, freed locally,
 *          or handed to another thread through the shared exchange array,
 *          where whoever takes it verifies and frees it (a remote free).
 *   churn  --threads * --iters short-lived threads, at most --threads alive
 *          at once. Each runs a few hundred mixed steps, then leaves part of
 *          its objects on the collector list and exits; later threads free
 *          them, so frees land in segments of threads that no longer exist.
 *   quiet  --threads workers run mixed steps in bursts and block in the
 *          kernel for 0-2 ms between them, while one more thread calls
 *          malloc_trim(0) in a loop: the
 *          allocator's passes reach (ask for, or take over) the heaps of
 *          threads that block, between any two of their calls. Run it with
 *          a purge delay of a millisecond or two to make that constant.
 *   fork   --threads workers run mixed steps without pause while the main
 *          thread forks --iters times. Each child allocates and frees (large
 *          blocks too), starts two threads that do the same, frees objects it
 *          inherited (the main thread's own and those waiting in the exchange
 *          array), and exits 0 only if every check passed. A child that has
 *          not exited after CHILD_TIMEOUT_S seconds is a deadlock: failure.
 *
 * Content checks. Each object is filled with a pattern derived from its
 * address, size and a random per-object cookie: every byte of objects up to
 * FULL_CHECK_MAX, otherwise the first and last EDGE_BYTES and STRIDE_BYTES at
 * every STRIDE in between (STRIDE is below the page size, so every page of a
 * big block is touched). The pattern is verified before every free and every
 * realloc; a realloc must preserve the pattern of the common prefix, calloc
 * must return zeros, aligned functions an aligned address. A mismatch prints
 * the thread, the object, the offset, the expected and found byte, the mode
 * and the seed, then aborts.
 *
 * Reproducibility: each thread's PRNG is seeded from --seed and its index, so
 * its choices repeat; the interleaving of threads does not.
 *
 * Default amount of work: about 5-20 s per mode on 2 cores in a release build.
 * A build without NDEBUG (CMake's Debug, used for the EBB_DEBUG=3 library)
 * does DEBUG_WORK_SCALE of it, and the environment variable EBB_STRESS_SCALE
 * (a factor such as 0.1) scales the defaults further. An explicit --iters is
 * taken as given.
 *
 * Concurrency rule of the test's own structures: a worker's slot table, PRNG
 * and counters belong to that worker's thread alone; the main thread reads the
 * counters only after pthread_join. Every object has exactly one owner at a
 * time, and ownership moves only (a) through a slot of the exchange array, an
 * _Atomic pointer written and emptied only with acq_rel compare-and-swap or
 * atomic_exchange (so the pattern written before a hand-over is visible to
 * the taker), or (b) through the churn collector list, read and written only
 * under collector.lock. The configuration and the exchange array's address
 * are written before any thread starts and are read-only afterwards; fork
 * mode's two flags are atomics.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

#define SLOTS_PER_WORKER 512  /* mixed and fork workers' table size */
#define INBOX_SLOTS 256       /* exchange slots per worker */
#define FULL_CHECK_MAX (4 * KiB) /* objects up to this size carry the pattern in every byte */
#define EDGE_BYTES 64         /* checked at each end of a bigger object */
#define STRIDE 4000           /* then STRIDE_BYTES every STRIDE bytes (< page size) */
#define STRIDE_BYTES 8
#define MAX_BLOCK (8 * MiB)   /* largest request */
#define BURST_MAX 16          /* objects in one transient burst */

#define CHURN_SLOTS 128       /* a churn thread's table */
#define CHURN_STEPS 300       /* mixed steps each churn thread runs */
#define CHURN_LEAVE_PCT 35    /* % of its final objects a churn thread leaves behind */
#define CHURN_BACKLOG 1000    /* collector length from which a thread frees CHURN_TAKE, */
#define CHURN_TAKE 128        /* not CHURN_TAKE / 8, of the oldest objects on it */

#define FORK_MAIN_OBJS 64     /* main thread's own objects, inherited by children */
#define FORK_MAIN_STEPS 100   /* main's steps between forks, other threads busy */
#define CHILD_SLOTS 256
#define CHILD_STEPS 1000      /* mixed steps of a child's main thread */
#define CHILD_THREADS 2
#define CHILD_THREAD_STEPS 600
#define CHILD_BIG_BLOCKS 2    /* 1..8 MiB blocks a child allocates and frees */
#define CHILD_TIMEOUT_S 30    /* a child still running after this is deadlocked */
#define CHILD_ID_BASE 1000000u /* thread ids inside a child */

#define DEFAULT_SEED 42
#define DEFAULT_THREADS 8
#define DEFAULT_MIXED_ITERS 100000 /* steps per worker */
#define DEFAULT_CHURN_ITERS 500    /* threads per worker slot: 8 * 500 = 4000 */
#define DEFAULT_FORK_ITERS 50      /* forks */
#define DEFAULT_QUIET_ITERS 200    /* bursts per worker */
#define QUIET_BURST 64             /* mixed steps in a burst */
#define QUIET_PAUSE_US 2000        /* a pause between bursts is 0..this */

#ifdef NDEBUG
#define DEBUG_WORK_SCALE 1.0
#else
#define DEBUG_WORK_SCALE 0.5 /* EBB_DEBUG=3 validates structures: slower */
#endif

_Static_assert(FULL_CHECK_MAX >= 2 * EDGE_BYTES, "edges must not overlap");
_Static_assert(STRIDE > EDGE_BYTES && STRIDE < 4096, "every page of a big block is touched");

/* ---- configuration ------------------------------------------------------ */

typedef enum { MODE_MIXED, MODE_CHURN, MODE_FORK, MODE_QUIET } stress_mode_t;
static const char *const mode_names[] = { "mixed", "churn", "fork", "quiet" };

typedef struct config_s {
    stress_mode_t mode; /* --mode */
    unsigned threads;   /* --threads: workers (churn: alive at once) */
    uint64_t iters;     /* --iters: mixed steps per worker; churn threads per
                           worker slot; fork: number of forks */
    uint64_t seed;      /* --seed */
} config_t;

static config_t cfg = { MODE_MIXED, DEFAULT_THREADS, 0, DEFAULT_SEED };

/* ---- PRNG: splitmix64, one stream per thread ---------------------------- */

typedef struct rng_s {
    uint64_t state; /* advanced by the golden-ratio increment each draw */
} rng_t;

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static rng_t rng_make(uint64_t seed, uint64_t stream)
{
    rng_t r = { mix64(seed + 0x9e3779b97f4a7c15ULL * (stream + 1)) };
    return r;
}

static uint64_t rng_next(rng_t *r)
{
    r->state += 0x9e3779b97f4a7c15ULL;
    return mix64(r->state);
}

/* Uniform in [0, n). */
static uint64_t rng_below(rng_t *r, uint64_t n)
{
    return rng_next(r) % n;
}

/* Uniform in [lo, hi]. */
static size_t rng_range(rng_t *r, size_t lo, size_t hi)
{
    return lo + (size_t)rng_below(r, (uint64_t)(hi - lo) + 1);
}

/* ---- objects ------------------------------------------------------------ */

/* The call that produced an object's current block. */
typedef enum {
    HOW_MALLOC, HOW_CALLOC, HOW_REALLOC_NULL, HOW_REALLOC, HOW_MEMALIGN,
    HOW_ALIGNED_ALLOC, HOW_USABLE, HOW_COUNT
} how_t;

static const char *const how_names[HOW_COUNT] = {
    "malloc", "calloc", "realloc(NULL)", "realloc", "posix_memalign",
    "aligned_alloc", "malloc+malloc_usable_size"
};

/* Describes one live block. Itself malloc'ed (except in transient bursts),
 * and moves with the block between threads. */
typedef struct obj_s {
    struct obj_s *next; /* collector list link; only while on that list */
    uint8_t *p;         /* the block */
    size_t size;        /* bytes carrying the pattern: requested or usable size */
    size_t align;       /* alignment requested; 0 when none */
    uint64_t cookie;    /* random per object */
    uint64_t key;       /* key_of(p, size, cookie): seeds the pattern */
    uint32_t owner;     /* id of the thread that made the block */
    uint32_t how;       /* how_t */
    uint64_t seal;      /* obj_seal_of(this): a corrupted header is caught */
} obj_t;

static uint64_t key_of(const void *p, size_t size, uint64_t cookie)
{
    return mix64((uint64_t)(uintptr_t)p ^ ((uint64_t)size << 24) ^ cookie);
}

/* Word c (bytes 8c .. 8c+7) of the pattern with this key; neighbouring
 * words differ, so a block moved by a multiple of 8 is noticed too. */
static inline uint64_t pattern_word(uint64_t key, size_t c)
{
    return key ^ ((uint64_t)c * 0x9e3779b97f4a7c15ULL);
}

/* Byte i of the pattern: byte i % 8 of word i / 8, little-endian. */
static inline uint8_t pattern_byte(uint64_t key, size_t i)
{
    return (uint8_t)(pattern_word(key, i >> 3) >> ((i & 7) * 8));
}

/* v in little-endian byte order, so that a word store writes pattern_byte. */
static inline uint64_t to_le64(uint64_t v)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return __builtin_bswap64(v);
#else
    return v;
#endif
}

static uint64_t obj_seal_of(const obj_t *o)
{
    return mix64((uint64_t)(uintptr_t)o->p ^ o->size * 3 ^ o->align * 5 ^ o->cookie ^
                 o->key * 7 ^ (uint64_t)o->owner << 40 ^ (uint64_t)o->how << 56);
}

/* The byte ranges of an object of `size` that carry the pattern, in
 * increasing order: [0, size) when size <= FULL_CHECK_MAX, else the first
 * EDGE_BYTES, STRIDE_BYTES at every multiple of STRIDE that ends before the
 * last EDGE_BYTES, and the last EDGE_BYTES. */
typedef struct span_iter_s {
    size_t size; /* object size */
    size_t next; /* start of the next range; >= size when done */
} span_iter_t;

static bool span_next(span_iter_t *it, size_t *from, size_t *to)
{
    size_t n = it->size;
    if (it->next >= n)
        return false;
    if (n <= FULL_CHECK_MAX) {
        *from = 0;
        *to = n;
    } else if (it->next == 0) {
        *from = 0;
        *to = EDGE_BYTES;
        it->next = STRIDE;
        return true;
    } else if (it->next + STRIDE_BYTES <= n - EDGE_BYTES) {
        *from = it->next;
        *to = it->next + STRIDE_BYTES;
        it->next += STRIDE;
        return true;
    } else {
        *from = n - EDGE_BYTES;
        *to = n;
    }
    it->next = n;
    return true;
}

/* Writes the pattern over [from, to) of p (p is 8-byte aligned): whole
 * words where they fit, single bytes at an unaligned end. */
static void fill_range(uint8_t *p, size_t from, size_t to, uint64_t key)
{
    size_t i = from;
    for (; i < to && (i & 7) != 0; i++)
        p[i] = pattern_byte(key, i);
    for (; i + 8 <= to; i += 8) {
        uint64_t v = to_le64(pattern_word(key, i >> 3));
        __builtin_memcpy(p + i, &v, 8);
    }
    for (; i < to; i++)
        p[i] = pattern_byte(key, i);
}

static void pattern_fill(uint8_t *p, size_t size, uint64_t key)
{
    span_iter_t it = { size, 0 };
    size_t from, to;
    while (span_next(&it, &from, &to))
        fill_range(p, from, to, key);
}

/* Who is checking, for the report. */
typedef struct site_s {
    uint32_t thread;  /* id of the checking thread */
    const char *what; /* the operation about to happen */
} site_t;

/* Fails (aborts) with the object, the offset, the expected and found byte
 * and up to 8 bytes either side of p[off] (below limit). Unconditional: the
 * byte may have changed again since it was found wrong. */
static void report_mismatch(site_t s, const obj_t *o, const uint8_t *p, size_t limit,
                            size_t off, unsigned want) __attribute__((noreturn));

static void report_mismatch(site_t s, const obj_t *o, const uint8_t *p, size_t limit,
                            size_t off, unsigned want)
{
    size_t lo = off >= 8 ? off - 8 : 0, hi = off + 8 <= limit ? off + 8 : limit;
    char bytes[16 * 3 + 1] = "";
    for (size_t i = lo; i < hi; i++)
        snprintf(bytes + 3 * (i - lo), 4, " %02x", p[i]);
    check_fatal(__FILE__, __LINE__, "the object's bytes match its pattern",
                "thread %u, %s: object of %zu bytes at %p (%s, align %zu, made by thread %u) "
                "differs at offset %zu: expected 0x%02x, found 0x%02x; bytes %zu..%zu:%s",
                s.thread, s.what, o->size, (void *)p, how_names[o->how], o->align, o->owner, off,
                want, p[off], lo, hi - 1, bytes);
}

/* Offset of the first byte in [from, to) of p that differs from the
 * pattern of key (or from zero when `zero`); `to` when none does. */
static size_t first_bad_byte(const uint8_t *p, size_t from, size_t to, uint64_t key, bool zero)
{
    size_t i = from;
    while (i < to) {
        if ((i & 7) == 0 && i + 8 <= to) {
            uint64_t v, want = zero ? 0 : to_le64(pattern_word(key, i >> 3));
            __builtin_memcpy(&v, p + i, 8);
            if (v == want) {
                i += 8;
                continue;
            }
        }
        if (p[i] != (zero ? 0 : pattern_byte(key, i)))
            return i;
        i++;
    }
    return to;
}

/* Checks the pattern ranges of o (by o->size) that lie below `limit`, in the
 * block at p: all zero when `zero`, else the pattern of `key`. */
static void check_bytes(site_t s, const obj_t *o, const uint8_t *p, size_t limit, uint64_t key,
                        bool zero)
{
    span_iter_t it = { o->size, 0 };
    size_t from, to;
    while (span_next(&it, &from, &to) && from < limit) {
        size_t bad = first_bad_byte(p, from, to < limit ? to : limit, key, zero);
        if (bad < (to < limit ? to : limit))
            report_mismatch(s, o, p, limit, bad, zero ? 0 : pattern_byte(key, bad));
    }
}

static void obj_check_header(site_t s, const obj_t *o)
{
    REQUIRE_MSG(o->seal == obj_seal_of(o) && o->how < HOW_COUNT,
                "thread %u, %s: object header at %p is corrupted (block %p, size %zu)", s.thread,
                s.what, (const void *)o, (void *)o->p, o->size);
}

/* Checks o's header and full pattern. */
static void obj_verify(site_t s, const obj_t *o)
{
    obj_check_header(s, o);
    check_bytes(s, o, o->p, o->size, o->key, false);
}

/* Fills in o for the fresh block p, without touching the block. */
static void obj_describe(obj_t *o, rng_t *r, uint32_t owner, uint8_t *p, size_t size,
                         size_t align, how_t how)
{
    o->next = NULL;
    o->p = p;
    o->size = size;
    o->align = align;
    o->cookie = rng_next(r);
    o->key = key_of(p, size, o->cookie);
    o->owner = owner;
    o->how = how;
    o->seal = obj_seal_of(o);
}

/* Fills in o for the fresh block p and writes its pattern. */
static void obj_init(obj_t *o, rng_t *r, uint32_t owner, uint8_t *p, size_t size, size_t align,
                     how_t how)
{
    obj_describe(o, r, owner, p, size, align, how);
    pattern_fill(p, size, o->key);
}

/* ---- workers ------------------------------------------------------------ */

/* How often each size tier is drawn: a draw t in [0, 10000) is tiny when
 * t < tiny, else small when t < small, and so on; huge when t >= large. */
typedef struct size_mix_s {
    uint16_t tiny;   /* 1 .. 128 bytes */
    uint16_t small;  /* 129 .. 1 KiB */
    uint16_t medium; /* 1 KiB .. 64 KiB */
    uint16_t large;  /* 64 KiB .. 512 KiB; above: huge, 512 KiB .. 8 MiB */
} size_mix_t;

/* mixed and fork: small 88%, medium 9.5%, large 2.35%, huge 0.15% */
static const size_mix_t mix_all = { 4400, 8800, 9750, 9985 };
/* churn, about thread lifetimes more than big blocks: small 95%, medium
 * 4.5%, large 0.45%, huge 0.05% */
static const size_mix_t mix_churn = { 5000, 9500, 9950, 9995 };

/* One thread's private state (see the concurrency rule at the top). */
typedef struct worker_s {
    uint32_t id;          /* unique over the run; reported in failures */
    size_t inbox;         /* index of this worker's inbox in exchange */
    const size_mix_t *mix;/* sizes it asks for */
    rng_t rng;            /* this thread's PRNG stream */
    obj_t **slots;        /* table of live objects; NULL = empty slot */
    size_t nslots;        /* entries in slots */
    uint64_t ops;         /* allocation and free calls made */
    uint64_t remote_frees;/* frees of objects another thread made */
    uint64_t bytes;       /* bytes requested */
    pthread_t thread;     /* valid while the thread runs */
} worker_t;

/* The exchange array: one inbox of INBOX_SLOTS per worker slot plus one
 * for the main thread (inbox cfg.threads). A thread hands an object over by
 * compare-and-swap into an empty slot of another thread's inbox, or, when
 * the slots it tries are full, by atomic_exchange, taking over the object
 * that was there. The inbox's owner now and then empties it with
 * atomic_exchange(NULL), verifies and frees what it finds. All of these are
 * acq_rel, so the pattern written before a hand-over is visible to the
 * taker. At the end of a run (and in fork children) one thread empties every
 * inbox. Ownership moves between threads only here and on the churn
 * collector. */
static _Atomic(obj_t *) *exchange;
static size_t exchange_inboxes; /* cfg.threads + 1; set before threads start */

static void exchange_init(void)
{
    exchange_inboxes = (size_t)cfg.threads + 1;
    exchange = malloc(exchange_inboxes * INBOX_SLOTS * sizeof *exchange);
    REQUIRE_MSG(exchange != NULL, "out of memory for the exchange array");
    for (size_t i = 0; i < exchange_inboxes * INBOX_SLOTS; i++)
        atomic_init(&exchange[i], NULL);
}

static void worker_init(worker_t *w, uint32_t id, size_t inbox, size_t nslots, uint64_t stream)
{
    memset(w, 0, sizeof *w);
    w->id = id;
    w->inbox = inbox;
    w->mix = &mix_all;
    w->rng = rng_make(cfg.seed, stream);
    w->nslots = nslots;
    w->slots = calloc(nslots, sizeof *w->slots);
    REQUIRE_MSG(w->slots != NULL, "thread %u: out of memory for a table of %zu slots", id, nslots);
    w->ops++;
}

/* Request size: tier by tier, with per-10000 thresholds on one draw. */
static size_t pick_size(rng_t *r, const size_mix_t *mix)
{
    uint64_t t = rng_below(r, 10000);
    if (t < mix->tiny)
        return rng_range(r, 1, 128);
    if (t < mix->small)
        return rng_range(r, 129, KiB);
    if (t < mix->medium)
        return rng_range(r, KiB + 1, 64 * KiB);
    if (t < mix->large)
        return rng_range(r, 64 * KiB + 1, 512 * KiB);
    return rng_range(r, 512 * KiB + 1, MAX_BLOCK);
}

/* Power of two in 16 .. 64 KiB, small ones more often. */
static size_t pick_align(rng_t *r)
{
    unsigned shift = (unsigned)rng_below(r, 13);
    if (rng_below(r, 2) == 0 && shift > 4)
        shift -= 4;
    return (size_t)16 << shift;
}

static how_t pick_how(rng_t *r)
{
    uint64_t t = rng_below(r, 100);
    if (t < 58) return HOW_MALLOC;
    if (t < 70) return HOW_CALLOC;
    if (t < 75) return HOW_REALLOC_NULL;
    if (t < 85) return HOW_MEMALIGN;
    if (t < 92) return HOW_ALIGNED_ALLOC;
    return HOW_USABLE;
}

/* calloc with the size split into count * element in a random way. */
static void *calloc_split(rng_t *r, size_t size)
{
    size_t elem = (size_t)1 << rng_below(r, 6);
    if (size % elem != 0)
        elem = 1;
    return rng_below(r, 2) ? calloc(size / elem, elem) : calloc(elem, size / elem);
}

/* Fundamental alignment: 16 bytes for blocks of 16 bytes or more; a
 * smaller object cannot need more than its size rounded down to 8. */
static void check_min_align(worker_t *w, const char *what, const void *p, size_t size)
{
    size_t need = size >= 16 ? 16 : 8;
    REQUIRE_MSG((uintptr_t)p % need == 0,
                "thread %u: %s of %zu bytes returned %p, not %zu-byte aligned", w->id, what, size,
                p, need);
}

/* Calls the allocation function `how` for *size bytes; may raise *size (to a
 * multiple of the alignment for aligned_alloc, to the usable size) and sets
 * *align. Fails the test on NULL or a misaligned result. */
static uint8_t *block_alloc(worker_t *w, how_t how, size_t *size, size_t *align)
{
    void *p = NULL;
    *align = 0;
    switch (how) {
    case HOW_MALLOC: case HOW_USABLE: p = malloc(*size); break;
    case HOW_CALLOC: p = calloc_split(&w->rng, *size); break;
    case HOW_REALLOC_NULL: p = realloc(NULL, *size); break;
    case HOW_MEMALIGN:
        *align = pick_align(&w->rng);
        if (posix_memalign(&p, *align, *size) != 0)
            p = NULL;
        break;
    case HOW_ALIGNED_ALLOC:
        *align = pick_align(&w->rng);
        *size = (*size + *align - 1) & ~(*align - 1); /* C11: a multiple of align */
        p = aligned_alloc(*align, *size);
        break;
    default:
        check_fatal(__FILE__, __LINE__, "how < HOW_COUNT", "bad how %d", (int)how);
    }
    REQUIRE_MSG(p != NULL, "thread %u: %s of %zu bytes (align %zu) returned NULL", w->id,
                how_names[how], *size, *align);
    REQUIRE_MSG(*align == 0 || (uintptr_t)p % *align == 0,
                "thread %u: %s(align %zu, %zu bytes) returned misaligned %p", w->id, how_names[how],
                *align, *size, p);
    check_min_align(w, how_names[how], p, *size);
    return p;
}

/* Widens *size to the block's usable size, which must be at least *size. */
static void take_usable(worker_t *w, void *p, size_t *size)
{
    size_t usable = malloc_usable_size(p);
    REQUIRE_MSG(usable >= *size, "thread %u: malloc_usable_size(%p) = %zu < %zu requested", w->id,
                p, usable, *size);
    *size = usable;
}

/* Makes a new object of `size` bytes with a random allocation function,
 * checked (zeros, alignment) and filled with its pattern. */
static void obj_make(worker_t *w, obj_t *o, size_t size)
{
    how_t how = pick_how(&w->rng);
    size_t align;
    uint8_t *p = block_alloc(w, how, &size, &align);
    if (how == HOW_USABLE)
        take_usable(w, p, &size);
    w->ops++;
    w->bytes += size;
    obj_describe(o, &w->rng, w->id, p, size, align, how);
    if (how == HOW_CALLOC) {
        site_t s = { w->id, "check of calloc's zeros" };
        check_bytes(s, o, p, size, 0, true);
    }
    pattern_fill(p, size, o->key);
}

static obj_t *obj_new(worker_t *w)
{
    obj_t *o = malloc(sizeof *o);
    REQUIRE_MSG(o != NULL, "thread %u: malloc(%zu) for an object header returned NULL", w->id,
                sizeof *o);
    w->ops++;
    obj_make(w, o, pick_size(&w->rng, w->mix));
    return o;
}

/* Verifies o, then frees its block and its header. */
static void obj_free(worker_t *w, obj_t *o, const char *what)
{
    site_t s = { w->id, what };
    obj_verify(s, o);
    if (o->owner != w->id)
        w->remote_frees++;
    free(o->p);
    o->seal = 0;
    free(o);
    w->ops += 2;
}

/* A new size for realloc: near the old one (shrink or grow in place or
 * across a size class) or anywhere (across tiers). */
static size_t pick_resize(rng_t *r, const size_mix_t *mix, size_t old)
{
    size_t n;
    if (rng_below(r, 2) == 0)
        return pick_size(r, mix);
    n = old / 2 + (size_t)rng_below(r, old + old / 2 + 2);
    if (n == 0)
        n = 1;
    return n < MAX_BLOCK ? n : MAX_BLOCK;
}

/* Verifies o, reallocates it, checks that the common prefix survived, and
 * writes the new pattern. */
static void obj_realloc(worker_t *w, obj_t *o)
{
    site_t s = { w->id, "realloc" };
    size_t size = pick_resize(&w->rng, w->mix, o->size);
    uint8_t *q;
    obj_verify(s, o);
    q = realloc(o->p, size);
    REQUIRE_MSG(q != NULL, "thread %u: realloc(%p, %zu) returned NULL", w->id, (void *)o->p, size);
    check_min_align(w, "realloc", q, size);
    s.what = "after realloc (preserved prefix)";
    check_bytes(s, o, q, size < o->size ? size : o->size, o->key, false);
    w->ops++;
    w->bytes += size;
    obj_init(o, &w->rng, w->id, q, size, 0, HOW_REALLOC);
}

/* Puts o into an empty slot of another thread's inbox (a few tries at
 * random places). If they are all taken (their owner is not running), o
 * replaces the object in the last one tried, which is ours now: verified
 * and freed. */
static void hand_over(worker_t *w, obj_t *o)
{
    size_t slot = 0;
    for (int tries = 0; tries < 4; tries++) {
        size_t j = (size_t)rng_below(&w->rng, exchange_inboxes - 1);
        obj_t *empty = NULL;
        slot = (j < w->inbox ? j : j + 1) * INBOX_SLOTS + (size_t)rng_below(&w->rng, INBOX_SLOTS);
        if (atomic_compare_exchange_strong_explicit(&exchange[slot], &empty, o,
                                                    memory_order_acq_rel, memory_order_relaxed))
            return;
    }
    o = atomic_exchange_explicit(&exchange[slot], o, memory_order_acq_rel);
    if (o != NULL)
        obj_free(w, o, "free of an object taken from a full inbox");
}

/* Verifies and frees what other threads put into inbox i. */
static void inbox_drain(worker_t *w, size_t i, const char *what)
{
    for (size_t k = i * INBOX_SLOTS; k < (i + 1) * INBOX_SLOTS; k++) {
        obj_t *o = atomic_exchange_explicit(&exchange[k], NULL, memory_order_acq_rel);
        if (o != NULL)
            obj_free(w, o, what);
    }
}

/* A few small objects allocated and freed at once in random order: the
 * allocator's hot path, with headers on the stack. */
static void transient_burst(worker_t *w)
{
    obj_t objs[BURST_MAX];
    size_t n = rng_range(&w->rng, 1, BURST_MAX);
    uint64_t calls = 2 * n;
    site_t s = { w->id, "free in a transient burst" };
    for (size_t i = 0; i < n; i++) {
        size_t size = rng_range(&w->rng, 1, 256);
        uint8_t *p = malloc(size);
        REQUIRE_MSG(p != NULL, "thread %u: malloc(%zu) returned NULL", w->id, size);
        check_min_align(w, "malloc", p, size);
        obj_init(&objs[i], &w->rng, w->id, p, size, 0, HOW_MALLOC);
    }
    while (n > 0) {
        size_t i = (size_t)rng_below(&w->rng, n);
        obj_verify(s, &objs[i]);
        free(objs[i].p);
        objs[i] = objs[--n];
    }
    w->ops += calls;
}

/* One step of the mixed workload on a random slot of w's table. */
static void worker_step(worker_t *w)
{
    size_t i = (size_t)rng_below(&w->rng, w->nslots);
    obj_t *o = w->slots[i];
    uint64_t t = rng_below(&w->rng, 100);
    if (t < 3) {
        transient_burst(w);
    } else if (t < 5) {
        inbox_drain(w, w->inbox, "free of an object from the inbox");
    } else if (o == NULL) {
        w->slots[i] = obj_new(w);
    } else if (t < 20) {
        obj_realloc(w, o);
    } else if (t < 50) {
        site_t s = { w->id, "hand-over" };
        obj_verify(s, o);
        w->slots[i] = NULL;
        hand_over(w, o);
    } else {
        w->slots[i] = NULL;
        obj_free(w, o, "local free");
    }
}

static void worker_run(worker_t *w, uint64_t steps)
{
    for (uint64_t k = 0; k < steps; k++)
        worker_step(w);
}

/* Verifies and frees everything in w's table, then the table. */
static void worker_drain(worker_t *w)
{
    for (size_t i = 0; i < w->nslots; i++)
        if (w->slots[i] != NULL)
            obj_free(w, w->slots[i], "free at the end");
    free(w->slots);
    w->slots = NULL;
    w->nslots = 0;
}

/* Verifies and frees every object left in the exchange array. */
static void exchange_drain(worker_t *w)
{
    for (size_t i = 0; i < exchange_inboxes; i++)
        inbox_drain(w, i, "free at the end (exchange)");
}

/* ---- run totals and threads -------------------------------------------- */

typedef struct totals_s {
    uint64_t ops;          /* allocation and free calls */
    uint64_t remote_frees; /* frees by a thread other than the allocating one */
    uint64_t bytes;        /* bytes requested */
    uint64_t threads;      /* threads started */
} totals_t;

static void totals_add(totals_t *t, const worker_t *w)
{
    t->ops += w->ops;
    t->remote_frees += w->remote_frees;
    t->bytes += w->bytes;
}

static void start_thread(worker_t *w, void *(*fn)(void *))
{
    int err = pthread_create(&w->thread, NULL, fn, w);
    REQUIRE_MSG(err == 0, "pthread_create: %s", strerror(err));
}

static void join_thread(worker_t *w)
{
    int err = pthread_join(w->thread, NULL);
    REQUIRE_MSG(err == 0, "pthread_join: %s", strerror(err));
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_summary(const totals_t *t, double start, const char *extra)
{
    printf("test_stress %s: threads %u, iters %" PRIu64 ", seed %" PRIu64 ": %" PRIu64
           " threads run, %" PRIu64 " ops, %" PRIu64 " remote frees, %" PRIu64
           " MiB allocated%s, %.1f s: OK\n",
           mode_names[cfg.mode], cfg.threads, cfg.iters, cfg.seed, t->threads, t->ops,
           t->remote_frees, t->bytes / MiB, extra, now_s() - start);
}

/* ---- mode mixed --------------------------------------------------------- */

static void *mixed_thread(void *arg)
{
    worker_t *w = arg;
    worker_run(w, cfg.iters);
    worker_drain(w);
    return NULL;
}

static void run_mixed(void)
{
    double start = now_s();
    worker_t *ws = calloc(cfg.threads + 1, sizeof *ws);
    worker_t *main_w = &ws[cfg.threads];
    totals_t t = { 0, 0, 0, cfg.threads };
    REQUIRE_MSG(ws != NULL, "out of memory for %u workers", cfg.threads);
    for (unsigned i = 0; i < cfg.threads; i++) {
        worker_init(&ws[i], i, i, SLOTS_PER_WORKER, i);
        start_thread(&ws[i], mixed_thread);
    }
    worker_init(main_w, cfg.threads, cfg.threads, 1, cfg.threads);
    for (unsigned i = 0; i < cfg.threads; i++) {
        join_thread(&ws[i]);
        totals_add(&t, &ws[i]);
    }
    exchange_drain(main_w);
    worker_drain(main_w);
    totals_add(&t, main_w);
    free(ws);
    print_summary(&t, start, "");
}

/* ---- mode quiet --------------------------------------------------------- */

static atomic_bool quiet_done; /* the workers have finished: the trimmer stops */

static void pause_us(uint64_t us)
{
    struct timespec ts = { 0, (long)us * 1000 };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void *quiet_thread(void *arg)
{
    worker_t *w = arg;
    for (uint64_t b = 0; b < cfg.iters; b++) {
        worker_run(w, QUIET_BURST);
        pause_us(rng_below(&w->rng, QUIET_PAUSE_US));
    }
    worker_drain(w);
    return NULL;
}

/* Explicit collection from a thread that owns none of the pages. */
static void *trimmer_thread(void *arg)
{
    uint64_t *calls = arg;
    while (!atomic_load(&quiet_done)) {
        malloc_trim(0);
        (*calls)++;
        pause_us(500);
    }
    return NULL;
}

static void run_quiet(void)
{
    double start = now_s();
    worker_t *ws = calloc(cfg.threads + 1, sizeof *ws);
    worker_t *main_w = &ws[cfg.threads];
    totals_t t = { 0, 0, 0, cfg.threads + 1 };
    uint64_t trims = 0;
    pthread_t trimmer;
    char extra[64];
    REQUIRE_MSG(ws != NULL, "out of memory for %u workers", cfg.threads);
    for (unsigned i = 0; i < cfg.threads; i++) {
        worker_init(&ws[i], i, i, SLOTS_PER_WORKER, i);
        start_thread(&ws[i], quiet_thread);
    }
    REQUIRE_MSG(pthread_create(&trimmer, NULL, trimmer_thread, &trims) == 0,
                "pthread_create: trimmer");
    worker_init(main_w, cfg.threads, cfg.threads, 1, cfg.threads);
    for (unsigned i = 0; i < cfg.threads; i++) {
        join_thread(&ws[i]);
        totals_add(&t, &ws[i]);
    }
    atomic_store(&quiet_done, true);
    pthread_join(trimmer, NULL);
    exchange_drain(main_w);
    worker_drain(main_w);
    totals_add(&t, main_w);
    free(ws);
    snprintf(extra, sizeof extra, ", %" PRIu64 " malloc_trim calls", trims);
    print_summary(&t, start, extra);
}

/* ---- mode churn --------------------------------------------------------- */

/* Objects left behind by exited churn threads, oldest first (FIFO), for
 * later threads to free. Every field is read and written under lock. */
typedef struct collector_s {
    pthread_mutex_t lock;
    obj_t *head;  /* oldest; NULL when empty */
    obj_t *tail;  /* newest; NULL when empty */
    size_t count; /* objects on the list */
} collector_t;

static collector_t collector = { PTHREAD_MUTEX_INITIALIZER, NULL, NULL, 0 };

static void collector_push(obj_t *o)
{
    o->next = NULL;
    pthread_mutex_lock(&collector.lock);
    if (collector.tail != NULL)
        collector.tail->next = o;
    else
        collector.head = o;
    collector.tail = o;
    collector.count++;
    pthread_mutex_unlock(&collector.lock);
}

/* Detaches up to `max` of the oldest objects and returns them as a list. */
static obj_t *collector_take(size_t max)
{
    obj_t *first, *last = NULL;
    pthread_mutex_lock(&collector.lock);
    first = collector.head;
    for (size_t n = 0; n < max && collector.head != NULL; n++) {
        last = collector.head;
        collector.head = last->next;
        collector.count--;
    }
    if (last != NULL)
        last->next = NULL;
    else
        first = NULL;
    if (collector.head == NULL)
        collector.tail = NULL;
    pthread_mutex_unlock(&collector.lock);
    return first;
}

static size_t collector_count(void)
{
    size_t n;
    pthread_mutex_lock(&collector.lock);
    n = collector.count;
    pthread_mutex_unlock(&collector.lock);
    return n;
}

/* Verifies and frees the objects of a detached list. */
static void free_list(worker_t *w, obj_t *o, const char *what)
{
    while (o != NULL) {
        obj_t *next = o->next;
        obj_free(w, o, what);
        o = next;
    }
}

/* Leaves CHURN_LEAVE_PCT % of w's objects on the collector, frees the rest. */
static void churn_leave(worker_t *w)
{
    for (size_t i = 0; i < w->nslots; i++) {
        obj_t *o = w->slots[i];
        if (o == NULL)
            continue;
        w->slots[i] = NULL;
        if (rng_below(&w->rng, 100) < CHURN_LEAVE_PCT)
            collector_push(o);
        else
            obj_free(w, o, "local free before exit");
    }
}

static void *churn_thread(void *arg)
{
    worker_t *w = arg;
    size_t take = collector_count() >= CHURN_BACKLOG ? CHURN_TAKE : CHURN_TAKE / 8;
    worker_run(w, CHURN_STEPS / 2);
    free_list(w, collector_take(take), "free of an exited thread's object");
    worker_run(w, CHURN_STEPS - CHURN_STEPS / 2);
    churn_leave(w);
    worker_drain(w);
    return NULL;
}

/* Starts cfg.threads * cfg.iters churn threads, at most cfg.threads alive:
 * thread k reuses ring entry k % cfg.threads after joining its previous
 * occupant. */
static void run_churn(void)
{
    double start = now_s();
    uint64_t total = (uint64_t)cfg.threads * cfg.iters;
    worker_t *ring = calloc(cfg.threads, sizeof *ring);
    worker_t main_w;
    totals_t t = { 0, 0, 0, total };
    REQUIRE_MSG(ring != NULL, "out of memory for %u workers", cfg.threads);
    for (uint64_t k = 0; k < total; k++) {
        worker_t *w = &ring[k % cfg.threads];
        if (k >= cfg.threads) {
            join_thread(w);
            totals_add(&t, w);
        }
        worker_init(w, (uint32_t)k, k % cfg.threads, CHURN_SLOTS, k);
        w->mix = &mix_churn;
        start_thread(w, churn_thread);
    }
    for (uint64_t k = total > cfg.threads ? total - cfg.threads : 0; k < total; k++) {
        join_thread(&ring[k % cfg.threads]);
        totals_add(&t, &ring[k % cfg.threads]);
    }
    worker_init(&main_w, (uint32_t)total, cfg.threads, 1, total);
    free_list(&main_w, collector_take(SIZE_MAX), "free at the end (collector)");
    exchange_drain(&main_w);
    worker_drain(&main_w);
    totals_add(&t, &main_w);
    free(ring);
    print_summary(&t, start, "");
}

/* ---- mode fork ---------------------------------------------------------- */

static atomic_bool fork_stop;        /* set by main when the forking is done */
static atomic_bool fork_child_alive; /* set by main while it waits for a child */

/* Runs mixed steps until fork_stop; while a child runs, naps instead, so
 * the child gets the CPUs (the threads only need to be busy at the moment
 * of the fork, and main runs steps of its own before each fork). */
static void *fork_bg_thread(void *arg)
{
    worker_t *w = arg;
    struct timespec nap = { 0, 500000 };
    while (!atomic_load_explicit(&fork_stop, memory_order_relaxed)) {
        if (atomic_load_explicit(&fork_child_alive, memory_order_relaxed))
            nanosleep(&nap, NULL);
        else
            worker_run(w, 32);
    }
    worker_drain(w);
    return NULL;
}

static void *child_thread(void *arg)
{
    worker_t *w = arg;
    worker_run(w, CHILD_THREAD_STEPS);
    worker_drain(w);
    return NULL;
}

/* In a child: blocks of 1..8 MiB, allocated, filled, verified and freed. */
static void child_big_blocks(worker_t *w)
{
    obj_t o;
    site_t s = { w->id, "free of a big block in a fork child" };
    for (int i = 0; i < CHILD_BIG_BLOCKS; i++) {
        size_t size = rng_range(&w->rng, MiB, MAX_BLOCK);
        uint8_t *p = malloc(size);
        REQUIRE_MSG(p != NULL, "fork child: malloc(%zu) returned NULL", size);
        obj_init(&o, &w->rng, w->id, p, size, 0, HOW_MALLOC);
        obj_verify(s, &o);
        free(p);
    }
}

/* In a child: verifies every object inherited from the main thread, frees
 * about half of them, verifies the rest again. */
static void child_inherited(worker_t *w, obj_t **objs)
{
    site_t s = { w->id, "check of an object inherited from the parent" };
    for (int i = 0; i < FORK_MAIN_OBJS; i++)
        obj_verify(s, objs[i]);
    for (int i = 0; i < FORK_MAIN_OBJS; i++) {
        if (rng_below(&w->rng, 2) == 0) {
            obj_free(w, objs[i], "free of an object inherited from the parent");
            objs[i] = NULL;
        }
    }
    for (int i = 0; i < FORK_MAIN_OBJS; i++)
        if (objs[i] != NULL)
            obj_verify(s, objs[i]);
}

/* The child's main: exits 0 only if every check passed (a failed check
 * aborts). Frees objects the parent's other threads left in the exchange,
 * whose heaps have no thread in the child. */
static void child_main(uint64_t fork_no, obj_t **objs)
{
    worker_t w, th[CHILD_THREADS];
    uint32_t id = CHILD_ID_BASE + (uint32_t)fork_no * 8;
    worker_init(&w, id, cfg.threads, CHILD_SLOTS, id);
    child_inherited(&w, objs);
    for (int i = 0; i < CHILD_THREADS; i++) {
        worker_init(&th[i], id + 1 + (uint32_t)i, (size_t)i, CHILD_SLOTS, id + 1 + (uint64_t)i);
        start_thread(&th[i], child_thread);
    }
    worker_run(&w, CHILD_STEPS);
    child_big_blocks(&w);
    for (int i = 0; i < CHILD_THREADS; i++)
        join_thread(&th[i]);
    exchange_drain(&w);
    worker_drain(&w);
    _exit(0);
}

/* "killed by signal 6 (Aborted)" or "exited with status 1", in buf. */
static const char *child_status_text(int status, char *buf, size_t cap)
{
    if (WIFSIGNALED(status))
        snprintf(buf, cap, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, cap, "exited with status %d", WEXITSTATUS(status));
    return buf;
}

static void report_child_status(uint64_t fork_no, pid_t pid, int status)
{
    char text[96];
    if (!CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork %" PRIu64 ": child %d %s",
                   fork_no, (int)pid, child_status_text(status, text, sizeof text)))
        _exit(1);
}

/* Waits for the child, polling, at most CHILD_TIMEOUT_S seconds; a child
 * still running then is deadlocked: killed (unless EBB_STRESS_KEEP_CHILD is
 * set, to attach a debugger) and the test fails. */
static void wait_child(uint64_t fork_no, pid_t pid)
{
    double start = now_s();
    struct timespec ms = { 0, 1000000 };
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        REQUIRE_MSG(r >= 0 || errno == EINTR, "waitpid(%d): %s", (int)pid, strerror(errno));
        if (!CHECK_MSG(now_s() - start <= CHILD_TIMEOUT_S,
                       "child deadlocked after fork: fork %" PRIu64
                       ", child %d still running after %d s%s",
                       fork_no, (int)pid, CHILD_TIMEOUT_S,
                       getenv("EBB_STRESS_KEEP_CHILD") ? " (left running)" : "")) {
            if (getenv("EBB_STRESS_KEEP_CHILD") == NULL) {
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
            }
            _exit(1);
        }
        nanosleep(&ms, NULL);
    }
    report_child_status(fork_no, pid, status);
}

/* Replaces about a quarter of the main thread's own objects. */
static void refresh_main_objs(worker_t *w, obj_t **objs)
{
    for (int i = 0; i < FORK_MAIN_OBJS; i++) {
        if (objs[i] != NULL && rng_below(&w->rng, 4) != 0)
            continue;
        if (objs[i] != NULL)
            obj_free(w, objs[i], "free by the forking thread");
        objs[i] = obj_new(w);
    }
}

static void fork_once(worker_t *main_w, obj_t **objs, uint64_t fork_no)
{
    pid_t pid;
    refresh_main_objs(main_w, objs);
    worker_run(main_w, FORK_MAIN_STEPS);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    REQUIRE_MSG(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0)
        child_main(fork_no, objs);
    atomic_store(&fork_child_alive, true);
    wait_child(fork_no, pid);
    atomic_store(&fork_child_alive, false);
}

static void run_fork(void)
{
    double start = now_s();
    worker_t *ws = calloc(cfg.threads + 1, sizeof *ws);
    worker_t *main_w = &ws[cfg.threads];
    obj_t *objs[FORK_MAIN_OBJS] = { NULL };
    totals_t t = { 0, 0, 0, cfg.threads };
    char extra[64];
    REQUIRE_MSG(ws != NULL, "out of memory for %u workers", cfg.threads);
    for (unsigned i = 0; i < cfg.threads; i++) {
        worker_init(&ws[i], i, i, SLOTS_PER_WORKER, i);
        start_thread(&ws[i], fork_bg_thread);
    }
    worker_init(main_w, cfg.threads, cfg.threads, SLOTS_PER_WORKER, cfg.threads);
    for (uint64_t f = 0; f < cfg.iters; f++)
        fork_once(main_w, objs, f);
    atomic_store(&fork_stop, true);
    for (unsigned i = 0; i < cfg.threads; i++) {
        join_thread(&ws[i]);
        totals_add(&t, &ws[i]);
    }
    for (int i = 0; i < FORK_MAIN_OBJS; i++)
        obj_free(main_w, objs[i], "free at the end");
    exchange_drain(main_w);
    worker_drain(main_w);
    totals_add(&t, main_w);
    free(ws);
    snprintf(extra, sizeof extra, ", %" PRIu64 " children OK", cfg.iters);
    print_summary(&t, start, extra);
}

/* ---- command line ------------------------------------------------------- */

static const char usage_line[] =
    "usage: test_stress [--mode mixed|churn|fork|quiet] [--threads N] [--iters N] [--seed S] [--help]";

static void usage_error(const char *what, const char *arg) __attribute__((noreturn));

static void usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "test_stress: %s '%s'; %s\n", what, arg ? arg : "", usage_line);
    exit(2);
}

static void print_help(void)
{
    printf("%s\n"
           "  --mode mixed   threads allocate all size tiers, free locally and remotely (default)\n"
           "  --mode churn   thousands of short-lived threads; leftovers freed by later ones\n"
           "  --mode fork    threads allocate while the main thread forks; children checked\n"
           "  --mode quiet   threads allocate in bursts and block between them; another trims\n"
           "  --threads N    worker threads (churn: alive at once), default %d\n"
           "  --iters N      mixed: steps per thread (default %d); churn: threads per worker\n"
           "                 (default %d); fork: forks (default %d); quiet: bursts per thread\n"
           "                 (default %d); defaults x%.2f in this build\n"
           "  --seed S       PRNG seed, default %d\n"
           "EBB_STRESS_SCALE=F scales the default --iters by F (e.g. 0.1).\n"
           "EBB_STRESS_KEEP_CHILD=1 leaves a deadlocked fork child running for gdb -p.\n",
           usage_line, DEFAULT_THREADS, DEFAULT_MIXED_ITERS, DEFAULT_CHURN_ITERS,
           DEFAULT_FORK_ITERS, DEFAULT_QUIET_ITERS, DEBUG_WORK_SCALE, DEFAULT_SEED);
}

/* Parses a decimal unsigned number in [min, max]; false if it is not one. */
static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;
    if (s == NULL || *s < '0' || *s > '9')
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static stress_mode_t parse_mode(const char *s)
{
    for (int m = MODE_MIXED; m <= MODE_QUIET; m++)
        if (s != NULL && strcmp(s, mode_names[m]) == 0)
            return (stress_mode_t)m;
    usage_error("bad --mode", s);
}

/* The factor for default --iters: DEBUG_WORK_SCALE times EBB_STRESS_SCALE. */
static double work_scale(void)
{
    const char *env = getenv("EBB_STRESS_SCALE");
    char *end;
    double f;
    if (env == NULL || *env == '\0')
        return DEBUG_WORK_SCALE;
    f = strtod(env, &end);
    if (*end != '\0' || !(f > 0.0) || f > 1000.0)
        usage_error("bad EBB_STRESS_SCALE (a factor > 0, e.g. 0.1)", env);
    return DEBUG_WORK_SCALE * f;
}

static uint64_t default_iters(stress_mode_t mode)
{
    static const uint64_t base[] = { DEFAULT_MIXED_ITERS, DEFAULT_CHURN_ITERS, DEFAULT_FORK_ITERS,
                                     DEFAULT_QUIET_ITERS };
    uint64_t n = (uint64_t)((double)base[mode] * work_scale());
    return n > 0 ? n : 1;
}

static void parse_args(int argc, char **argv)
{
    uint64_t v;
    bool iters_set = false;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
            print_help();
            exit(0);
        } else if (strcmp(opt, "--mode") == 0) {
            cfg.mode = parse_mode(val);
        } else if (strcmp(opt, "--threads") == 0) {
            if (!parse_u64(val, 1, 1024, &v))
                usage_error("bad --threads (1..1024)", val);
            cfg.threads = (unsigned)v;
        } else if (strcmp(opt, "--iters") == 0) {
            if (!parse_u64(val, 1, UINT32_MAX, &cfg.iters))
                usage_error("bad --iters (1..4294967295)", val);
            iters_set = true;
        } else if (strcmp(opt, "--seed") == 0) {
            if (!parse_u64(val, 0, UINT64_MAX, &cfg.seed))
                usage_error("bad --seed", val);
        } else {
            usage_error("unknown argument", opt);
        }
        i++;
    }
    if (!iters_set)
        cfg.iters = default_iters(cfg.mode);
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    check_context("--mode %s --threads %u --iters %" PRIu64 " --seed %" PRIu64,
                  mode_names[cfg.mode], cfg.threads, cfg.iters, cfg.seed);
    setvbuf(stdout, NULL, _IOLBF, 0);
    exchange_init();
    switch (cfg.mode) {
    case MODE_MIXED: run_mixed(); break;
    case MODE_CHURN: run_churn(); break;
    case MODE_FORK: run_fork(); break;
    case MODE_QUIET: run_quiet(); break;
    }
    return 0;
}
