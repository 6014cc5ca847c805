/* SPDX-License-Identifier: MIT */
/* bench/prodcons.c - producer/consumer: one thread allocates, another frees,
 * at a high rate, through a bounded lock-free ring of pointers.
 *
 * Workload. --pairs pairs of threads. In each pair the producer mallocs
 * --count objects of sizes uniform in [--min, --max], writes a tag into the
 * first 8 bytes and fills up to 32 bytes, and pushes the pointer into a
 * single-producer single-consumer ring of --ring entries; the consumer pops,
 * checks and frees it. Every free is therefore remote: the block goes back
 * to an allocator structure owned by the other thread. A full (or empty)
 * ring makes its thread spin, then yield. Each side reads the other's index
 * only when its last reading says the ring is full (empty), so the cache
 * lines of the ring move between the cores in batches, not per object.
 *
 * What it measures: the remote-free path at its highest rate, and whether
 * memory freed by a thread that never allocates finds its way back to the
 * thread that does (an allocator that fails at it grows without bound).
 *
 * Self-check: the sum of the tags read back by the consumers must equal the
 * sum the producers wrote; the tags are a hash of (pair, index), so the
 * checksum (their sum) is the same on every run.
 */
#include "common.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#define FILL_BYTES 32u /* bytes written per object (at most) */
#define SPINS 256      /* tries before a waiting thread yields */

/* A single-producer single-consumer ring. head is written by the consumer
 * only, tail by the producer only; entries [head, tail) are full.
 * The release store of tail publishes the entry (and the object's bytes);
 * the release store of head gives the slot back. */
typedef struct ring_s {
    _Atomic uint64_t head;   /* next entry to pop */
    char pad_head[64];       /* head and tail on different cache lines */
    _Atomic uint64_t tail;   /* next entry to push */
    char pad_tail[64];
    void **items;            /* mask + 1 entries */
    uint64_t mask;           /* capacity - 1; capacity a power of two */
} ring_t;

typedef struct pair_s {
    ring_t ring;
    pthread_t producer, consumer;
    unsigned index;
    uint64_t rng;       /* the producer's PRNG */
    uint64_t tag_in;    /* written by the producer */
    uint64_t tag_out;   /* written by the consumer */
    uint64_t bad;       /* consumer: damaged objects */
} pair_t;

static uint64_t count, min_size, max_size, seed; /* read-only once threads run */

static void wait_a_little(unsigned *spins)
{
    if (++*spins >= SPINS) {
        sched_yield();
        *spins = 0;
    } else {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
}

static void *producer_main(void *arg)
{
    pair_t *pr = arg;
    ring_t *r = &pr->ring;
    uint64_t head_seen = 0; /* last head read: the ring has at least this much room */
    for (uint64_t i = 0; i < count; i++) {
        size_t size = (size_t)bench_range(&pr->rng, min_size, max_size);
        unsigned char *p = malloc(size);
        if (p == NULL)
            bench_oom("bench_prodcons", size);
        uint64_t tag = bench_mix(((uint64_t)pr->index << 48) ^ i ^ seed);
        memcpy(p, &tag, sizeof tag);
        memset(p + 8, (unsigned char)tag, (size < FILL_BYTES ? size : FILL_BYTES) - 8);
        pr->tag_in += tag;
        uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
        unsigned spins = 0;
        while (t - head_seen > r->mask) { /* looks full: look at the real head */
            head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
            if (t - head_seen > r->mask)
                wait_a_little(&spins);
        }
        r->items[t & r->mask] = p;
        atomic_store_explicit(&r->tail, t + 1, memory_order_release);
    }
    return NULL;
}

static void *consumer_main(void *arg)
{
    pair_t *pr = arg;
    ring_t *r = &pr->ring;
    uint64_t tail_seen = 0; /* last tail read: entries up to it are full */
    for (uint64_t i = 0; i < count; i++) {
        uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
        unsigned spins = 0;
        while (tail_seen == h) { /* looks empty: look at the real tail */
            tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
            if (tail_seen == h)
                wait_a_little(&spins);
        }
        unsigned char *p = r->items[h & r->mask];
        atomic_store_explicit(&r->head, h + 1, memory_order_release);
        uint64_t tag;
        memcpy(&tag, p, sizeof tag);
        if (min_size > 8 && p[8] != (unsigned char)tag)
            pr->bad++;
        pr->tag_out += tag;
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t pairs = 1, ring = 1024, idle_ms = 0;
    count = 16000000; min_size = 16; max_size = 256; seed = BENCH_DEFAULT_SEED;
    const bench_opt_t opts[] = {
        { "count", &count, "objects per producer", 0 },
        { "pairs", &pairs, "producer/consumer pairs", 0 },
        { "ring", &ring, "ring capacity, a power of two", 0 },
        { "min", &min_size, "smallest object, bytes (>= 8)", 0 },
        { "max", &max_size, "largest object, bytes", 0 },
        { "seed", &seed, "PRNG seed", 0 },
        { "idle-ms", &idle_ms, "idle pause before reading VmRSS", 0 },
    };
    bench_parse("bench_prodcons", argc, argv, opts, BENCH_NOPTS(opts));
    if (pairs == 0 || pairs > 512 || ring < 2 || (ring & (ring - 1)) != 0 || min_size < 8
        || max_size < min_size) {
        fprintf(stderr, "bench_prodcons: need 1 <= --pairs <= 512, --ring a power of two >= 2,"
                        " 8 <= --min <= --max\n");
        return 2;
    }

    /* Plain calloc: no aligned_alloc in the benchmarks (see bench/README.md). */
    pair_t *ps = calloc(pairs, sizeof *ps);
    if (ps == NULL)
        bench_oom("bench_prodcons", pairs * sizeof *ps);
    for (unsigned i = 0; i < pairs; i++) {
        ps[i].index = i;
        ps[i].rng = bench_mix(seed + i);
        ps[i].ring.mask = ring - 1;
        ps[i].ring.items = calloc(ring, sizeof(void *));
        if (ps[i].ring.items == NULL)
            bench_oom("bench_prodcons", ring * sizeof(void *));
    }

    double t0 = bench_now();
    for (unsigned i = 0; i < pairs; i++)
        if (pthread_create(&ps[i].consumer, NULL, consumer_main, &ps[i]) != 0
            || pthread_create(&ps[i].producer, NULL, producer_main, &ps[i]) != 0) {
            fprintf(stderr, "bench_prodcons: pthread_create failed\n");
            return 1;
        }
    uint64_t in = 0, out = 0, bad = 0;
    for (unsigned i = 0; i < pairs; i++) {
        pthread_join(ps[i].producer, NULL);
        pthread_join(ps[i].consumer, NULL);
        in += ps[i].tag_in;
        out += ps[i].tag_out;
        bad += ps[i].bad;
    }
    double work = bench_now() - t0;

    for (unsigned i = 0; i < pairs; i++)
        free(ps[i].ring.items);
    free(ps);
    bench_sleep_ms(idle_ms);
    return bench_report("prodcons", bad == 0 && in == out, pairs * count, out, work, idle_ms,
                        bench_status_kb("VmRSS"), "pairs=%" PRIu64 " ns_per_object=%.2f", pairs,
                        work * 1e9 / (double)(pairs * count));
}
