/* SPDX-License-Identifier: MIT */
/* bench/leak.c - a program that leaks: short-lived threads allocate and
 * free in a loop and leave a small fraction of their blocks allocated for
 * good.
 *
 * The pattern it models: a long-running service whose request threads
 * leak a little (a cache entry never evicted, an error path that forgets a
 * free, a library's per-thread buffer): a few bytes per thread, left in
 * the memory the allocator gave that thread. An allocator that keeps each
 * exited thread's memory apart, instead of handing it to the next thread,
 * grows by a segment or a page per thread, for a few hundred bytes of
 * live data each.
 *
 * Workload. --threads threads in all, --concurrent at a time (a new one
 * starts when one of the batch ends: batches are joined together). A
 * thread does --ops allocations of log-uniform sizes in [--min, --max]; it
 * keeps the last --window of them (a ring) and frees the oldest when a new
 * one comes, but one allocation in --leak-every (every --leak-every-th,
 * from an offset that depends on the thread) is never freed: its pointer
 * goes to the thread's leak list and the block stays allocated to the end
 * of the program. Every block gets a tag in its first 8 bytes and its last
 * 8 bytes, and a fill byte up to 64 bytes. The leaked blocks are checked
 * by the main thread at the end and are not freed.
 *
 * What it measures: peak RSS (the driver's) and the RSS at the end against
 * the leaked bytes (leaked_kb in the result line): whether the memory of
 * exited threads is reused by the threads that follow them, and what the
 * blocks left behind by a thread keep resident (their pages, and the
 * allocator's metadata for them).
 *
 * Self-check: tags are a hash of (thread, step); the sum of the tags read
 * back from every freed block and every leaked block at the end must equal
 * the sum written, and the fill and the last 8 bytes must be intact. The
 * checksum (the tag sum) depends only on the parameters.
 */
#include "common.h"
#include <pthread.h>

#define HEAD_BYTES 64u /* bytes written at the start of a block */

typedef struct block_s {
    unsigned char *p;
    uint64_t size;
    uint64_t tag;
} block_t;

typedef struct worker_s {
    pthread_t thread;
    uint64_t index;
    block_t *leaked;  /* its leaked blocks, ops / leak_every + 1 entries (made by main) */
    uint64_t leaked_n, leaked_bytes;
    uint64_t tag_in, tag_out, bad, ops;
} worker_t;

static uint64_t nthreads, concurrent, steps, window, leak_every, min_size, max_size, seed; /* read-only in threads */

/* The fill byte runs from 8 up to 64 bytes, short of the last 8 (the tag
 * again). */
static uint64_t fill_end(uint64_t size)
{
    return size - 8 < HEAD_BYTES ? size - 8 : HEAD_BYTES;
}

static void fill(block_t *b)
{
    memcpy(b->p, &b->tag, 8);
    uint64_t head = fill_end(b->size);
    memset(b->p + 8, (unsigned char)b->tag, head - 8);
    memcpy(b->p + b->size - 8, &b->tag, 8);
}

/* Reads the block back: its tag goes into *sum, damage into *bad. */
static void check(const block_t *b, uint64_t *sum, uint64_t *bad)
{
    uint64_t front, back;
    memcpy(&front, b->p, 8);
    memcpy(&back, b->p + b->size - 8, 8);
    uint64_t head = fill_end(b->size);
    for (uint64_t i = 8; i < head; i++)
        if (b->p[i] != (unsigned char)front) {
            (*bad)++;
            break;
        }
    if (front != back || front != b->tag)
        (*bad)++;
    *sum += front;
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    block_t *ring = calloc(window, sizeof *ring);
    if (ring == NULL)
        bench_oom("bench_leak", window * sizeof *ring);
    uint64_t rng = bench_mix(seed ^ (w->index * 0x51ed27u));
    for (uint64_t s = 0; s < steps; s++) {
        block_t b;
        b.size = bench_log_range(&rng, min_size, max_size);
        b.p = malloc(b.size);
        if (b.p == NULL)
            bench_oom("bench_leak", b.size);
        b.tag = bench_mix((w->index << 32) ^ s ^ seed) | 1;
        fill(&b);
        w->tag_in += b.tag;
        w->ops++;
        if (s % leak_every == w->index % leak_every) {
            w->leaked[w->leaked_n++] = b; /* never freed */
            w->leaked_bytes += b.size;
            continue;
        }
        block_t *slot = &ring[s % window];
        if (slot->p != NULL) {
            check(slot, &w->tag_out, &w->bad);
            free(slot->p);
        }
        *slot = b;
    }
    for (uint64_t i = 0; i < window; i++)
        if (ring[i].p != NULL) {
            check(&ring[i], &w->tag_out, &w->bad);
            free(ring[i].p);
        }
    free(ring);
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t idle_ms = 0;
    nthreads = 600; concurrent = 2; steps = 20000; window = 64; leak_every = 10000;
    min_size = 16; max_size = 512; seed = BENCH_DEFAULT_SEED;
    const bench_opt_t opts[] = {
        { "threads", &nthreads, "threads in all", 0 },
        { "concurrent", &concurrent, "threads running at a time", 0 },
        { "ops", &steps, "allocations per thread", 0 },
        { "window", &window, "blocks a thread keeps before freeing the oldest", 0 },
        { "leak-every", &leak_every, "one allocation in this many is leaked (>= 1)", 0 },
        { "min", &min_size, "smallest block, bytes (>= 16)", 0 },
        { "max", &max_size, "largest block, bytes", 0 },
        { "seed", &seed, "PRNG seed", 0 },
        { "idle-ms", &idle_ms, "idle pause before reading VmRSS", 0 },
    };
    bench_parse("bench_leak", argc, argv, opts, BENCH_NOPTS(opts));
    if (nthreads == 0 || concurrent == 0 || concurrent > 64 || window == 0 || leak_every == 0
        || min_size < 16 || max_size < min_size) {
        fprintf(stderr, "bench_leak: need --threads >= 1, 1 <= --concurrent <= 64, --window >= 1,"
                        " --leak-every >= 1, 16 <= --min <= --max\n");
        return 2;
    }
    worker_t *ws = calloc(nthreads, sizeof *ws);
    if (ws == NULL)
        bench_oom("bench_leak", nthreads * sizeof *ws);
    for (uint64_t i = 0; i < nthreads; i++) {
        ws[i].index = i;
        ws[i].leaked = calloc(steps / leak_every + 1, sizeof(block_t));
        if (ws[i].leaked == NULL)
            bench_oom("bench_leak", steps * sizeof(block_t));
    }

    double t0 = bench_now();
    for (uint64_t first = 0; first < nthreads; first += concurrent) {
        uint64_t end = first + concurrent < nthreads ? first + concurrent : nthreads;
        for (uint64_t i = first; i < end; i++)
            if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0) {
                fprintf(stderr, "bench_leak: pthread_create failed\n");
                return 1;
            }
        for (uint64_t i = first; i < end; i++)
            pthread_join(ws[i].thread, NULL);
    }
    double work = bench_now() - t0;

    uint64_t tag_in = 0, tag_out = 0, bad = 0, ops = 0, leaked_n = 0, leaked_bytes = 0;
    for (uint64_t i = 0; i < nthreads; i++) {
        for (uint64_t k = 0; k < ws[i].leaked_n; k++)
            check(&ws[i].leaked[k], &ws[i].tag_out, &ws[i].bad);
        tag_in += ws[i].tag_in;
        tag_out += ws[i].tag_out;
        bad += ws[i].bad;
        ops += ws[i].ops;
        leaked_n += ws[i].leaked_n;
        leaked_bytes += ws[i].leaked_bytes;
    }
    bench_sleep_ms(idle_ms);
    return bench_report("leak", bad == 0 && tag_in == tag_out, ops, tag_out, work, idle_ms,
                        bench_status_kb("VmRSS"), "threads=%" PRIu64 " leaked=%" PRIu64
                        " leaked_kb=%" PRIu64 " peak_kb=%" PRIu64, nthreads, leaked_n,
                        leaked_bytes / 1024, bench_status_kb("VmHWM"));
}
