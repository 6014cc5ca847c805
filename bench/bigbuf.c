/* SPDX-License-Identifier: MIT */
/* bench/bigbuf.c - big buffers in a loop: allocate a block of 256 KiB to
 * 64 MiB, touch every page, free it.
 *
 * Workload. --iters blocks of log-uniform sizes in [--min, --max] bytes. A
 * ring of --live blocks is alive at once: each new block replaces (and
 * frees) the oldest. Every block gets one byte written in each 4 KiB page,
 * and its last byte; they are read back before it is freed.
 *
 * What it measures: the large-object path. An allocator that maps and unmaps
 * every block pays a page fault per page each time (and the kernel zeroing
 * it); one that caches freed blocks pays none, but holds their memory. Peak
 * RSS shows what that cache costs, rss_end_kb what it keeps when idle.
 *
 * Self-check: the sum of the bytes read back must equal the sum written
 * (each is a function of the block's number and the page's index). The
 * checksum folds every block's number and size in the order freed.
 */
#include "common.h"

#define PAGE 4096u

typedef struct block_s {
    unsigned char *p; /* NULL: ring slot empty */
    uint64_t size;
    uint64_t id;      /* the block's number */
} block_t;

static inline unsigned char mark(uint64_t id, uint64_t page)
{
    return (unsigned char)(id * 31u + page * 17u + 1u);
}

/* Touches every page of b; returns the sum of the bytes written. */
static uint64_t touch(const block_t *b)
{
    uint64_t sum = 0, pg = 0;
    for (uint64_t off = 0; off < b->size; off += PAGE, pg++) {
        b->p[off] = mark(b->id, pg);
        sum += b->p[off];
    }
    b->p[b->size - 1] = 0x5a; /* last byte: the end of the block is ours */
    return sum + 0x5a;
}

/* Reads the marks back; returns their sum. */
static uint64_t read_back(const block_t *b)
{
    uint64_t sum = 0;
    for (uint64_t off = 0; off < b->size; off += PAGE)
        sum += b->p[off];
    /* The last byte overwrote a mark if it shares that offset. */
    if ((b->size - 1) % PAGE == 0)
        return sum;
    return sum + b->p[b->size - 1];
}

int main(int argc, char **argv)
{
    uint64_t iters = 50, min = 256u << 10, max = 64u << 20, live = 2;
    uint64_t seed = BENCH_DEFAULT_SEED, idle_ms = 0;
    const bench_opt_t opts[] = {
        { "iters", &iters, "blocks allocated", 0 },
        { "min", &min, "smallest block, bytes", 0 },
        { "max", &max, "largest block, bytes", 0 },
        { "live", &live, "blocks alive at once", 0 },
        { "seed", &seed, "PRNG seed", 0 },
        { "idle-ms", &idle_ms, "idle pause before reading VmRSS", 0 },
    };
    bench_parse("bench_bigbuf", argc, argv, opts, BENCH_NOPTS(opts));
    if (min < 1 || max < min || live == 0) {
        fprintf(stderr, "bench_bigbuf: need 1 <= --min <= --max, --live >= 1\n");
        return 2;
    }
    block_t *ring = calloc(live, sizeof *ring);
    if (ring == NULL)
        bench_oom("bench_bigbuf", live * sizeof *ring);
    uint64_t rng = seed, written = 0, read = 0, checksum = 0, bytes = 0;

    double t0 = bench_now();
    for (uint64_t i = 0; i < iters + live; i++) {
        block_t *b = &ring[i % live];
        if (b->p != NULL) {
            read += read_back(b);
            checksum = bench_fold(checksum, (b->id << 32) ^ b->size);
            free(b->p);
            b->p = NULL;
        }
        if (i >= iters)
            continue; /* the last rounds only empty the ring */
        b->size = bench_log_range(&rng, min, max);
        b->id = i;
        b->p = malloc(b->size);
        if (b->p == NULL)
            bench_oom("bench_bigbuf", b->size);
        written += touch(b);
        bytes += b->size;
    }
    double work = bench_now() - t0;

    free(ring);
    bench_sleep_ms(idle_ms);
    return bench_report("bigbuf", written == read, iters, checksum, work, idle_ms,
                        bench_status_kb("VmRSS"), "mib_touched=%" PRIu64, bytes >> 20);
}
