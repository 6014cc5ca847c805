/* SPDX-License-Identifier: MIT */
/* bench/threads.c - short-lived threads: rounds of a few threads that each
 * allocate and free for a while and exit, handing a few objects to the
 * next round.
 *
 * The pattern it models: a program that starts a thread per request or per
 * task (a thread pool that is not pooled, `std::async`, a script driving a
 * parallel loop in bursts), where each thread lives for a few thousand
 * allocations, and some of what it made (a result, a cached entry) outlives
 * it and is freed later by another thread.
 *
 * Workload. --rounds rounds; round r starts 2..4 threads (a hash of r and
 * --seed picks how many; --max-threads caps it) and waits for them. A
 * thread first frees its share of the objects the previous round handed
 * over (entry k goes to thread k mod n), then does --ops steps on --slots
 * slots of its own: a step picks a slot at random; an object there is
 * checked and freed; a new one takes its place, of a log-uniform size in
 * 16..1024 B, or one time in eight 1..32 KiB (small and medium pages). Its
 * first 8 bytes hold a tag, bytes 8..63 (at most) a fill byte, its last 8
 * bytes the tag again. At the end a thread hands its first --keep occupied
 * slots to the next round and frees the rest. After the last round the
 * main thread frees what that round handed over.
 *
 * What it measures: the cost of a thread's start and exit in the allocator
 * (making or reusing a heap, giving its memory up), how the memory of an
 * exited thread is reused by the next one (abandoned segments and their few
 * live blocks), and remote frees into the segments of a thread that is gone.
 *
 * Self-check: a tag is a hash of (round, thread, step); the sum of the tags
 * read back at free must equal the sum written, and the fill and the last
 * 8 bytes must be intact. The set of objects depends only on the
 * parameters: the checksum (the tag sum) is the same on every run.
 */
#include "common.h"
#include <pthread.h>

#define HEAD_BYTES 64u         /* bytes written at the start of an object */
#define SMALL_MIN 16u
#define SMALL_MAX 1024u
#define MEDIUM_MIN 1025u
#define MEDIUM_MAX (32u * 1024u)
#define MEDIUM_ONE_IN 8u       /* one object in 8 is medium */
#define MIN_THREADS 2u

typedef struct object_s {
    unsigned char *p; /* NULL when the slot is empty */
    uint64_t size;
    uint64_t tag;
} object_t;

/* One thread of a round. The handed-over objects of round r live in
 * handoff[r & 1]: round r's threads write their part of it before they
 * exit; round r + 1's threads (started after the join) read and free it. */
typedef struct worker_s {
    pthread_t thread;
    uint64_t round, index, count; /* count: threads in this round */
    uint64_t tag_in, tag_out, bad, ops;
    char pad[64];
} worker_t;

static uint64_t rounds, steps, nslots, keep, max_threads, seed; /* read-only once threads run */
static object_t *handoff[2];      /* max_threads * keep entries each */
static uint64_t handoff_count[2]; /* entries used (written by main between rounds) */

static uint64_t threads_in_round(uint64_t round)
{
    uint64_t span = max_threads - MIN_THREADS + 1;
    return MIN_THREADS + bench_mix(seed ^ (round * 0x9e37u)) % span;
}

/* The fill byte runs from 8 up to 64 bytes, short of the last 8 (the tag
 * again). */
static uint64_t fill_end(uint64_t size)
{
    return size - 8 < HEAD_BYTES ? size - 8 : HEAD_BYTES;
}

static void fill(object_t *o)
{
    memcpy(o->p, &o->tag, 8);
    uint64_t head = fill_end(o->size);
    memset(o->p + 8, (unsigned char)o->tag, head - 8);
    memcpy(o->p + o->size - 8, &o->tag, 8);
}

/* Reads the object back and frees it; its tag goes into *sum. */
static void check_and_free(object_t *o, uint64_t *sum, uint64_t *bad)
{
    uint64_t front, back;
    memcpy(&front, o->p, 8);
    memcpy(&back, o->p + o->size - 8, 8);
    uint64_t head = fill_end(o->size);
    for (uint64_t i = 8; i < head; i++)
        if (o->p[i] != (unsigned char)front) {
            (*bad)++;
            break;
        }
    if (front != back || front != o->tag)
        (*bad)++;
    *sum += front;
    free(o->p);
    o->p = NULL;
}

static void new_object(object_t *o, uint64_t *rng, uint64_t tag)
{
    o->size = bench_rand(rng) % MEDIUM_ONE_IN == 0 ? bench_log_range(rng, MEDIUM_MIN, MEDIUM_MAX)
                                                    : bench_log_range(rng, SMALL_MIN, SMALL_MAX);
    o->p = malloc(o->size);
    if (o->p == NULL)
        bench_oom("bench_threads", o->size);
    o->tag = tag;
    fill(o);
}

/* Frees this thread's share of what the previous round handed over. */
static void free_inherited(worker_t *w)
{
    if (w->round == 0)
        return;
    uint64_t from = (w->round - 1) & 1;
    for (uint64_t k = w->index; k < handoff_count[from]; k += w->count)
        check_and_free(&handoff[from][k], &w->tag_out, &w->bad);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    free_inherited(w);
    object_t *slots = calloc(nslots, sizeof *slots);
    if (slots == NULL)
        bench_oom("bench_threads", nslots * sizeof *slots);
    uint64_t rng = bench_mix(seed ^ (w->round << 8) ^ w->index);
    for (uint64_t s = 0; s < steps; s++) {
        object_t *o = &slots[bench_rand(&rng) % nslots];
        if (o->p != NULL)
            check_and_free(o, &w->tag_out, &w->bad);
        uint64_t tag = bench_mix((w->round << 40) ^ (w->index << 32) ^ s ^ seed) | 1;
        new_object(o, &rng, tag);
        w->tag_in += tag;
        w->ops++;
    }
    object_t *out = handoff[w->round & 1] + w->index * keep;
    uint64_t kept = 0;
    for (uint64_t i = 0; i < nslots; i++) {
        if (slots[i].p == NULL)
            continue;
        if (kept < keep)
            out[kept++] = slots[i];
        else
            check_and_free(&slots[i], &w->tag_out, &w->bad);
    }
    for (; kept < keep; kept++)
        out[kept].p = NULL;
    free(slots);
    return NULL;
}

/* Entries of round r's hand-off with a NULL pointer (a thread with fewer
 * occupied slots than --keep) are packed away, so that the next round's
 * threads only see objects. */
static void pack_handoff(uint64_t r, uint64_t n)
{
    object_t *h = handoff[r & 1];
    uint64_t used = 0;
    for (uint64_t k = 0; k < n * keep; k++)
        if (h[k].p != NULL)
            h[used++] = h[k];
    handoff_count[r & 1] = used;
}

int main(int argc, char **argv)
{
    uint64_t idle_ms = 0;
    rounds = 2000; steps = 3000; nslots = 256; keep = 16; max_threads = 4;
    seed = BENCH_DEFAULT_SEED;
    const bench_opt_t opts[] = {
        { "rounds", &rounds, "rounds of short-lived threads", 0 },
        { "ops", &steps, "allocations per thread", 0 },
        { "slots", &nslots, "objects a thread keeps at once", 0 },
        { "keep", &keep, "objects a thread hands to the next round", 0 },
        { "max-threads", &max_threads, "most threads in a round (2..64)", 0 },
        { "seed", &seed, "PRNG seed", 0 },
        { "idle-ms", &idle_ms, "idle pause before reading VmRSS", 0 },
    };
    bench_parse("bench_threads", argc, argv, opts, BENCH_NOPTS(opts));
    if (rounds == 0 || nslots == 0 || keep > nslots || max_threads < MIN_THREADS || max_threads > 64) {
        fprintf(stderr, "bench_threads: need --rounds >= 1, --slots >= 1, --keep <= --slots,"
                        " 2 <= --max-threads <= 64\n");
        return 2;
    }
    worker_t *ws = calloc(max_threads, sizeof *ws);
    handoff[0] = calloc(max_threads * keep + 1, sizeof(object_t));
    handoff[1] = calloc(max_threads * keep + 1, sizeof(object_t));
    if (ws == NULL || handoff[0] == NULL || handoff[1] == NULL)
        bench_oom("bench_threads", max_threads * keep * sizeof(object_t));

    uint64_t tag_in = 0, tag_out = 0, bad = 0, ops = 0, started = 0;
    double t0 = bench_now();
    for (uint64_t r = 0; r < rounds; r++) {
        uint64_t n = threads_in_round(r);
        for (uint64_t i = 0; i < n; i++) {
            ws[i] = (worker_t){ .round = r, .index = i, .count = n };
            if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0) {
                fprintf(stderr, "bench_threads: pthread_create failed\n");
                return 1;
            }
        }
        for (uint64_t i = 0; i < n; i++) {
            pthread_join(ws[i].thread, NULL);
            tag_in += ws[i].tag_in;
            tag_out += ws[i].tag_out;
            bad += ws[i].bad;
            ops += ws[i].ops;
        }
        started += n;
        pack_handoff(r, n);
    }
    object_t *last = handoff[(rounds - 1) & 1];
    for (uint64_t k = 0; k < handoff_count[(rounds - 1) & 1]; k++)
        check_and_free(&last[k], &tag_out, &bad);
    double work = bench_now() - t0;

    free(handoff[0]);
    free(handoff[1]);
    free(ws);
    bench_sleep_ms(idle_ms);
    return bench_report("threads", bad == 0 && tag_in == tag_out, ops, tag_out, work, idle_ms,
                        bench_status_kb("VmRSS"), "rounds=%" PRIu64 " threads=%" PRIu64
                        " us_per_thread=%.1f", rounds, started, work * 1e6 / (double)started);
}
