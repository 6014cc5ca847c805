/* SPDX-License-Identifier: MIT */
/* bench/larson.c - a server whose threads free each other's blocks: the
 * "larson" pattern of the allocator literature (Larson and Krishnan's
 * benchmark of a multi-threaded server, as used by the Hoard, mimalloc and
 * snmalloc papers).
 *
 * Workload. --threads workers and as many slot arrays, each of --slots
 * blocks of sizes uniform in [--min, --max]. The work goes in rounds
 * separated by a barrier: in round r worker w works on array
 * (w + r) mod threads, so every array passes to the next worker each round
 * and the blocks a worker allocated are freed by the others. A round is
 * --handover steps per worker; a step picks a slot of the array with the
 * array's own PRNG, checks and frees its block, allocates a new one of a
 * random size and writes its pattern. With --handover twice --slots (the
 * default: 10,000 and 5,000, the block count of the classic runs), 43% of
 * the frees are of a block another worker allocated (a slot's first
 * replacement in a round: slots * (1 - e^-2) / handover).
 *
 * What it measures: a long-running server whose requests are served by any
 * thread (a connection's buffers allocated by the thread that read it and
 * freed by the one that answered): remote frees at the rate of local ones,
 * pages whose blocks come back from another thread while their owner keeps
 * allocating from them, and the locality of the blocks handed out. The
 * result line gives the throughput (mops_per_s).
 *
 * Self-check: a block carries a tag, a hash of (seed, array, slot,
 * generation), in its first and (from 16 bytes on) last 8 bytes, and a
 * byte of it in the bytes between (the first 64 at most); freeing checks them against the tag expected
 * for the slot's generation. Each array's sequence of slots and sizes
 * depends only on the seed (its PRNG travels with it, and the barrier keeps
 * two workers off one array), so the checksum - the tags read back folded
 * per array in order, the arrays' hashes summed - is the same on every run.
 */
#include "common.h"
#include <pthread.h>

#define MIN_BLOCK 8u   /* room for the tag */
#define FILL_BYTES 64u /* bytes written at the start of a block (at most) */

/* Bytes between the head tag and the tail (the tail tag from 16 bytes on)
 * that carry a byte of the tag. */
static size_t fill_of(size_t size)
{
    size_t end = size >= 16 ? size - 8 : size;
    return (end < FILL_BYTES ? end : FILL_BYTES) - 8;
}

typedef struct slot_s {
    unsigned char *p;    /* the block */
    uint32_t size;       /* bytes requested */
    uint32_t generation; /* blocks this slot has held before this one */
} slot_t;

/* An array of slots and what travels with it from worker to worker. Only
 * the worker that holds it in a round touches it; the barrier between
 * rounds orders one holder's writes before the next one's reads. */
typedef struct array_s {
    slot_t *slots;
    uint64_t rng;      /* picks slots and sizes */
    uint64_t hash;     /* the tags read back, folded in order */
    uint64_t bad;      /* damaged blocks seen */
    char pad[64];      /* keep arrays' counters off each other's lines */
} array_t;

typedef struct worker_s {
    pthread_t thread;
    unsigned index;
} worker_t;

/* Read-only once the workers run. */
static uint64_t threads, slots, rounds, handover, min_size, max_size, seed;
static array_t *arrays;
static pthread_barrier_t barrier;

static uint64_t tag_of(uint64_t array, uint64_t slot, uint64_t generation)
{
    return bench_mix(seed ^ bench_mix((array << 40) ^ (slot << 20) ^ generation));
}

static void put_block(array_t *a, uint64_t ai, uint64_t si)
{
    slot_t *s = &a->slots[si];
    size_t size = (size_t)bench_range(&a->rng, min_size, max_size);
    unsigned char *p = malloc(size);
    if (p == NULL)
        bench_oom("bench_larson", size);
    uint64_t tag = tag_of(ai, si, s->generation);
    memcpy(p, &tag, sizeof tag);
    memset(p + 8, (unsigned char)tag, fill_of(size));
    if (size >= 16)
        memcpy(p + size - 8, &tag, sizeof tag);
    s->p = p;
    s->size = (uint32_t)size;
}

static void take_block(array_t *a, uint64_t ai, uint64_t si)
{
    slot_t *s = &a->slots[si];
    const unsigned char *p = s->p;
    uint64_t want = tag_of(ai, si, s->generation), head, tail = want;
    memcpy(&head, p, sizeof head);
    if (s->size >= 16)
        memcpy(&tail, p + s->size - 8, sizeof tail);
    size_t fill = fill_of(s->size);
    if (head != want || tail != want || (fill > 0 && (p[8] != (unsigned char)want
                                                      || p[8 + fill - 1] != (unsigned char)want)))
        a->bad++;
    a->hash = bench_fold(a->hash, head);
    free(s->p);
    s->p = NULL;
    s->generation++;
}

static void fill_array(uint64_t ai)
{
    for (uint64_t si = 0; si < slots; si++)
        put_block(&arrays[ai], ai, si);
}

static void empty_array(uint64_t ai)
{
    for (uint64_t si = 0; si < slots; si++)
        take_block(&arrays[ai], ai, si);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    fill_array(w->index);
    pthread_barrier_wait(&barrier);
    for (uint64_t r = 0; r < rounds; r++) {
        uint64_t ai = (w->index + r) % threads;
        array_t *a = &arrays[ai];
        for (uint64_t k = 0; k < handover; k++) {
            uint64_t si = bench_rand(&a->rng) % slots;
            take_block(a, ai, si);
            put_block(a, ai, si);
        }
        pthread_barrier_wait(&barrier);
    }
    /* The last holder of an array frees it: its blocks, too, are mostly
     * another worker's. */
    empty_array((w->index + rounds - 1) % threads);
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t ops = 40000000, idle_ms = 0;
    threads = 2; slots = 5000; handover = 10000; min_size = 10; max_size = 1024;
    seed = BENCH_DEFAULT_SEED;
    const bench_opt_t opts[] = {
        { "ops", &ops, "free+malloc steps in all, rounded down to whole rounds", 0 },
        { "threads", &threads, "workers, and slot arrays", 0 },
        { "slots", &slots, "blocks per array", 0 },
        { "handover", &handover, "steps a worker does on an array before passing it on", 0 },
        { "min", &min_size, "smallest block, bytes (>= 8)", 0 },
        { "max", &max_size, "largest block, bytes", 0 },
        { "seed", &seed, "PRNG seed", 0 },
        { "idle-ms", &idle_ms, "idle pause before reading VmRSS", 0 },
    };
    bench_parse("bench_larson", argc, argv, opts, BENCH_NOPTS(opts));
    if (threads == 0 || threads > 256 || slots == 0 || slots > (1u << 20) || handover == 0
        || min_size < MIN_BLOCK || max_size < min_size || max_size > UINT32_MAX
        || ops < threads * handover) {
        fprintf(stderr, "bench_larson: need 1 <= --threads <= 256, 1 <= --slots <= 2^20,"
                        " --handover >= 1, 8 <= --min <= --max < 2^32,"
                        " --ops >= threads * handover\n");
        return 2;
    }
    rounds = ops / (threads * handover);

    arrays = calloc(threads, sizeof *arrays);
    worker_t *ws = calloc(threads, sizeof *ws);
    if (arrays == NULL || ws == NULL)
        bench_oom("bench_larson", threads * sizeof *arrays);
    for (unsigned i = 0; i < threads; i++) {
        arrays[i].rng = bench_mix(seed + i);
        arrays[i].slots = calloc(slots, sizeof(slot_t));
        if (arrays[i].slots == NULL)
            bench_oom("bench_larson", slots * sizeof(slot_t));
        ws[i].index = i;
    }
    if (pthread_barrier_init(&barrier, NULL, (unsigned)threads) != 0) {
        fprintf(stderr, "bench_larson: pthread_barrier_init failed\n");
        return 1;
    }

    double t0 = bench_now();
    for (unsigned i = 0; i < threads; i++)
        if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0) {
            fprintf(stderr, "bench_larson: pthread_create failed\n");
            return 1;
        }
    for (unsigned i = 0; i < threads; i++)
        pthread_join(ws[i].thread, NULL);
    double work = bench_now() - t0;

    uint64_t checksum = 0, bad = 0;
    for (unsigned i = 0; i < threads; i++) {
        checksum += arrays[i].hash;
        bad += arrays[i].bad;
        free(arrays[i].slots);
    }
    free(arrays);
    free(ws);
    pthread_barrier_destroy(&barrier);
    uint64_t done = threads * rounds * handover;
    bench_sleep_ms(idle_ms);
    return bench_report("larson", bad == 0, done, checksum, work, idle_ms, bench_status_kb("VmRSS"),
                        "threads=%" PRIu64 " slots=%" PRIu64 " handover=%" PRIu64 " mops_per_s=%.2f", threads, slots, handover,
                        (double)done / work * 1e-6);
}
