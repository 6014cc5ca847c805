/* SPDX-License-Identifier: MIT */
/* bench/server.c - a server-like load: several threads allocate objects of
 * random sizes, 8 B .. 64 KiB, keep them for a while, and free many of them
 * on another thread (remote frees), for a fixed amount of work.
 *
 * Workload. --threads workers each own --slots slots and do --ops steps. A
 * step picks a slot at random (the worker's own PRNG, seeded from --seed and
 * its index). If the slot holds an object it is checked and then either freed
 * here or, with probability --remote percent, handed to worker
 * (self + 1 + r) mod threads, which frees it (a remote free). A new object of
 * a log-uniform size in [--min, --max] then fills the slot; its first bytes
 * (up to 64) and its last 8 bytes are written. Every --drain steps a worker
 * frees what others handed to it. Hand-over goes through a per-worker inbox,
 * a mutex-protected array of --inbox entries (the owner swaps it for an
 * empty one under the lock and frees the objects after unlocking); when the target's inbox is full
 * the object is freed locally. After all workers have done their steps (a
 * barrier), each frees its inbox and its slots.
 *
 * What it measures: the cross-thread free path (how an allocator returns a
 * block to the thread or page that owns it), contention, and the memory a
 * multi-threaded program with a mixed size distribution keeps.
 *
 * Self-check: each object carries a tag, a hash of (worker, step); the sum of
 * the tags of the objects freed, read from their memory, must equal the sum of
 * the tags written, and the edge bytes must be intact. Which thread frees an
 * object depends on timing, the set of objects does not: the checksum (the
 * tag sum) is the same on every run.
 */
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>

#define MIN_OBJECT 8u   /* the tag fills the first 8 bytes */
#define HEAD_BYTES 64u  /* bytes written at the start of an object */

typedef struct object_s {
    unsigned char *p; /* the block; its first 8 bytes hold tag */
    uint64_t size;    /* bytes requested */
    uint64_t tag;     /* hash of (worker, step), never 0 */
} object_t;

typedef struct inbox_s {
    pthread_mutex_t lock; /* guards n and items */
    uint64_t n;           /* entries used: items[0..n) */
    object_t *items;      /* --inbox entries, filled by other workers */
    object_t *spare;      /* --inbox entries, the owner's alone: drain swaps
                             it with items under the lock and frees outside */
    char pad[64];         /* keep inboxes off each other's cache lines */
} inbox_t;

typedef struct worker_s {
    pthread_t thread;
    unsigned index;
    uint64_t rng;       /* this worker's PRNG */
    object_t *slots;    /* --slots; p == NULL when empty */
    uint64_t tag_in;    /* sum of the tags this worker wrote */
    uint64_t tag_out;   /* sum of the tags this worker read back at free */
    uint64_t bad;       /* damaged objects seen */
    uint64_t remote;    /* objects handed to another worker */
    char pad[64];       /* keep workers' counters off each other's lines */
} worker_t;

/* Read-only after main() starts the workers. */
static struct {
    uint64_t threads, slots, ops, min, max, remote, inbox, drain, seed;
} cfg;
static worker_t *workers;
static inbox_t *inboxes;
static pthread_barrier_t barrier;

static void fill(unsigned char *p, uint64_t size, uint64_t tag)
{
    memcpy(p, &tag, sizeof tag);
    uint64_t head = size < HEAD_BYTES ? size : HEAD_BYTES;
    memset(p + 8, (unsigned char)tag, head - 8);
    if (size >= 16)
        memcpy(p + size - 8, &tag, sizeof tag);
}

/* Checks an object and frees it; the tag goes into w's read-back sum. */
static void release(worker_t *w, const object_t *o)
{
    uint64_t tag, tail = 0;
    memcpy(&tag, o->p, sizeof tag);
    if (o->size >= 16)
        memcpy(&tail, o->p + o->size - 8, sizeof tail);
    /* p[8] is the fill byte, or the tail's first byte: (uint8_t)tag either way. */
    if (tag != o->tag || (o->size >= 16 && tail != tag)
        || (o->size > 8 && o->p[8] != (unsigned char)tag))
        w->bad++;
    w->tag_out += tag;
    free(o->p);
}

static void drain(worker_t *w)
{
    inbox_t *in = &inboxes[w->index];
    pthread_mutex_lock(&in->lock);
    object_t *full = in->items;
    uint64_t n = in->n;
    in->items = in->spare;
    in->n = 0;
    pthread_mutex_unlock(&in->lock);
    for (uint64_t i = 0; i < n; i++) /* the lock is not held while freeing */
        release(w, &full[i]);
    in->spare = full;
}

/* Hands o to worker `to`; 0 if its inbox is full. */
static int hand_over(unsigned to, const object_t *o)
{
    inbox_t *in = &inboxes[to];
    int done = 0;
    pthread_mutex_lock(&in->lock);
    if (in->n < cfg.inbox) {
        in->items[in->n++] = *o;
        done = 1;
    }
    pthread_mutex_unlock(&in->lock);
    return done;
}

static void step(worker_t *w, uint64_t i)
{
    object_t *s = &w->slots[bench_rand(&w->rng) % cfg.slots];
    if (s->p != NULL) {
        uint64_t r = bench_rand(&w->rng);
        unsigned to = (unsigned)((w->index + 1 + (r >> 32) % (cfg.threads - 1 ? cfg.threads - 1 : 1))
                                 % cfg.threads);
        int remote = cfg.threads > 1 && r % 100 < cfg.remote;
        if (remote && hand_over(to, s))
            w->remote++;
        else
            release(w, s);
    }
    s->size = bench_log_range(&w->rng, cfg.min, cfg.max);
    s->tag = bench_mix(((uint64_t)w->index << 40) ^ i ^ cfg.seed) | 1;
    s->p = malloc(s->size);
    if (s->p == NULL)
        bench_oom("bench_server", s->size);
    fill(s->p, s->size, s->tag);
    w->tag_in += s->tag;
    if (i % cfg.drain == 0)
        drain(w);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    w->slots = calloc(cfg.slots, sizeof *w->slots);
    if (w->slots == NULL)
        bench_oom("bench_server", cfg.slots * sizeof *w->slots);
    for (uint64_t i = 1; i <= cfg.ops; i++)
        step(w, i);
    pthread_barrier_wait(&barrier); /* nobody hands over after this */
    drain(w);
    for (uint64_t i = 0; i < cfg.slots; i++)
        if (w->slots[i].p != NULL)
            release(w, &w->slots[i]);
    free(w->slots);
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t idle_ms = 0;
    cfg.threads = 4; cfg.slots = 2000; cfg.ops = 800000; cfg.min = 8; cfg.max = 65536;
    cfg.remote = 50; cfg.inbox = 4096; cfg.drain = 64; cfg.seed = BENCH_DEFAULT_SEED;
    const bench_opt_t opts[] = {
        { "threads", &cfg.threads, "worker threads", 0 },
        { "ops", &cfg.ops, "steps per worker", 0 },
        { "slots", &cfg.slots, "objects each worker keeps", 0 },
        { "min", &cfg.min, "smallest object, bytes (>= 8)", 0 },
        { "max", &cfg.max, "largest object, bytes", 0 },
        { "remote", &cfg.remote, "percent of frees handed to another thread", 0 },
        { "inbox", &cfg.inbox, "capacity of a worker's inbox", 0 },
        { "drain", &cfg.drain, "steps between inbox drains", 0 },
        { "seed", &cfg.seed, "PRNG seed", 0 },
        { "idle-ms", &idle_ms, "idle pause before reading VmRSS", 0 },
    };
    bench_parse("bench_server", argc, argv, opts, BENCH_NOPTS(opts));
    if (cfg.threads == 0 || cfg.threads > 1024 || cfg.slots == 0 || cfg.min < MIN_OBJECT
        || cfg.max < cfg.min || cfg.remote > 100 || cfg.inbox == 0 || cfg.drain == 0) {
        fprintf(stderr, "bench_server: need 1 <= --threads <= 1024, --slots, --inbox, --drain >= 1,"
                        " 8 <= --min <= --max, --remote <= 100\n");
        return 2;
    }

    workers = calloc(cfg.threads, sizeof *workers);
    inboxes = calloc(cfg.threads, sizeof *inboxes);
    if (workers == NULL || inboxes == NULL)
        bench_oom("bench_server", cfg.threads * sizeof *workers);
    for (unsigned i = 0; i < cfg.threads; i++) {
        pthread_mutex_init(&inboxes[i].lock, NULL);
        inboxes[i].items = calloc(cfg.inbox, sizeof(object_t));
        inboxes[i].spare = calloc(cfg.inbox, sizeof(object_t));
        if (inboxes[i].items == NULL || inboxes[i].spare == NULL)
            bench_oom("bench_server", cfg.inbox * sizeof(object_t));
        workers[i].index = i;
        workers[i].rng = bench_mix(cfg.seed + i);
    }
    pthread_barrier_init(&barrier, NULL, (unsigned)cfg.threads);

    double t0 = bench_now();
    for (unsigned i = 0; i < cfg.threads; i++)
        if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
            fprintf(stderr, "bench_server: pthread_create failed\n");
            return 1;
        }
    uint64_t in = 0, out = 0, bad = 0, remote = 0;
    for (unsigned i = 0; i < cfg.threads; i++) {
        pthread_join(workers[i].thread, NULL);
        in += workers[i].tag_in;
        out += workers[i].tag_out;
        bad += workers[i].bad;
        remote += workers[i].remote;
    }
    double work = bench_now() - t0;

    for (unsigned i = 0; i < cfg.threads; i++) {
        free(inboxes[i].items);
        free(inboxes[i].spare);
    }
    free(inboxes);
    free(workers);
    bench_sleep_ms(idle_ms);
    return bench_report("server", bad == 0 && in == out, cfg.threads * cfg.ops, out, work, idle_ms,
                        bench_status_kb("VmRSS"), "threads=%" PRIu64 " remote_frees=%" PRIu64,
                        cfg.threads, remote);
}
