/* SPDX-License-Identifier: MIT */
/* bench/bigchurn.c - big blocks churned by two threads: 64 KiB..2 MiB
 * buffers replaced at random in a small live set.
 *
 * The pattern it models: a program that keeps a few big working buffers
 * per thread - decompression and image buffers, request and response
 * bodies, per-batch scratch arrays - and replaces them all the time, each
 * new one of another size. Every size in the range is about as likely as
 * any other (uniform, not log-uniform): most blocks are above the sizes
 * that allocators carve from their own pages, so the big-block path -
 * whatever it keeps of freed blocks, and how it reuses them for the next
 * size - decides the time.
 *
 * Workload. --threads threads (2) each own --slots slots (12). Each step
 * a thread picks a slot at random, checks and frees the block in it, and
 * puts in a new one of a random size in [--min, --max]. A new block gets
 * its number at its start, one 8-byte mark in every 4 KiB page and one at
 * its last 8 bytes: the pages it writes are what a program that fills its
 * buffer would make resident. --steps steps per thread; then every slot is
 * checked and freed.
 *
 * What it measures: an allocator that returns a freed block to the OS and
 * maps the next one pays a page fault (and the kernel zeroing a page) per
 * page written; one that reuses freed memory of a fitting size pays none.
 * Peak RSS shows what keeping freed blocks costs.
 *
 * Self-check: each thread sums the marks it reads back before a free and
 * compares them with the sum it predicts from the block's number and size
 * alone. The checksum folds, per thread in thread order, the number and
 * size of every block in the order freed: it depends only on the
 * parameters and the seed.
 */
#include <pthread.h>

#include "common.h"

#define PAGE 4096u

typedef struct block_s {
    uint64_t *p;   /* NULL: slot empty */
    uint64_t size; /* bytes, a multiple of 8 */
    uint64_t id;   /* the block's number, unique across threads */
} block_t;

typedef struct worker_s {
    pthread_t thread;
    unsigned index;
    uint64_t steps, slots, min, max, seed;
    uint64_t expected, read, checksum, bytes; /* results */
    int failed;                              /* an allocation failed */
} worker_t;

static inline uint64_t mark(uint64_t id, uint64_t word)
{
    return bench_mix(id * 0x10001u + word);
}

/* The words a block holds marks in: 0 (its number), the first of each
 * page after the first, and its last. */
static uint64_t mark_sum(const block_t *b)
{
    uint64_t words = b->size / 8, sum = b->id, step = PAGE / 8;
    for (uint64_t w = step; w < words - 1; w += step)
        sum += mark(b->id, w);
    return sum + mark(b->id, words - 1);
}

static void write_marks(const block_t *b)
{
    uint64_t words = b->size / 8, step = PAGE / 8;
    b->p[0] = b->id;
    for (uint64_t w = step; w < words - 1; w += step)
        b->p[w] = mark(b->id, w);
    b->p[words - 1] = mark(b->id, words - 1);
}

static uint64_t read_marks(const block_t *b)
{
    uint64_t words = b->size / 8, sum = b->p[0], step = PAGE / 8;
    for (uint64_t w = step; w < words - 1; w += step)
        sum += b->p[w];
    return sum + b->p[words - 1];
}

static void retire(worker_t *wk, block_t *b)
{
    wk->read += read_marks(b);
    wk->expected += mark_sum(b);
    wk->checksum = bench_fold(wk->checksum, (b->id << 24) ^ b->size);
    free(b->p);
    b->p = NULL;
}

static int fill(worker_t *wk, block_t *b, uint64_t *rng, uint64_t id)
{
    b->size = bench_range(rng, wk->min, wk->max) & ~(uint64_t)7;
    b->id = id;
    b->p = malloc(b->size);
    if (b->p == NULL)
        return 0;
    write_marks(b);
    wk->bytes += b->size;
    return 1;
}

static void *work(void *arg)
{
    worker_t *wk = arg;
    block_t *slot = calloc(wk->slots, sizeof *slot);
    if (slot == NULL) {
        wk->failed = 1;
        return NULL;
    }
    uint64_t rng = wk->seed + wk->index * 0x9e3779b97f4a7c15u;
    uint64_t id = (uint64_t)wk->index << 40;
    for (uint64_t s = 0; s < wk->steps && !wk->failed; s++) {
        block_t *b = &slot[bench_range(&rng, 0, wk->slots - 1)];
        if (b->p != NULL)
            retire(wk, b);
        if (!fill(wk, b, &rng, id++))
            wk->failed = 1;
    }
    for (uint64_t i = 0; i < wk->slots; i++)
        if (slot[i].p != NULL)
            retire(wk, &slot[i]);
    free(slot);
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t threads = 2, steps = 20000, slots = 12, min = 64u << 10, max = 2u << 20;
    uint64_t seed = BENCH_DEFAULT_SEED, idle_ms = 0;
    const bench_opt_t opts[] = {
        { "threads", &threads, "threads, each with its own slots", 0 },
        { "steps", &steps, "blocks replaced per thread", 0 },
        { "slots", &slots, "blocks alive per thread", 0 },
        { "min", &min, "smallest block, bytes", 0 },
        { "max", &max, "largest block, bytes", 0 },
        { "seed", &seed, "PRNG seed", 0 },
        { "idle-ms", &idle_ms, "idle pause before reading VmRSS", 0 },
    };
    bench_parse("bench_bigchurn", argc, argv, opts, BENCH_NOPTS(opts));
    if (threads < 1 || threads > 64 || slots < 1 || min < 16 || max < min) {
        fprintf(stderr, "bench_bigchurn: need 1 <= --threads <= 64, --slots >= 1, "
                        "16 <= --min <= --max\n");
        return 2;
    }
    worker_t wk[64];
    memset(wk, 0, sizeof wk);
    double t0 = bench_now();
    for (unsigned i = 0; i < threads; i++) {
        wk[i] = (worker_t){ .index = i, .steps = steps, .slots = slots, .min = min,
                            .max = max, .seed = seed };
        if (pthread_create(&wk[i].thread, NULL, work, &wk[i]) != 0) {
            fprintf(stderr, "bench_bigchurn: cannot start a thread\n");
            return 1;
        }
    }
    uint64_t expected = 0, read = 0, checksum = 0, bytes = 0;
    for (unsigned i = 0; i < threads; i++) {
        pthread_join(wk[i].thread, NULL);
        if (wk[i].failed)
            bench_oom("bench_bigchurn", (size_t)max);
        expected += wk[i].expected;
        read += wk[i].read;
        checksum = bench_fold(checksum, wk[i].checksum);
        bytes += wk[i].bytes;
    }
    double work_s = bench_now() - t0;
    bench_sleep_ms(idle_ms);
    return bench_report("bigchurn", expected == read, threads * steps, checksum, work_s, idle_ms,
                        bench_status_kb("VmRSS"), "threads=%" PRIu64 " slots=%" PRIu64
                        " mib_touched=%" PRIu64, threads, slots, bytes >> 20);
}
