/* SPDX-License-Identifier: MIT */
/* bench/micro.c - the fast-path micro benchmark: malloc/free pairs of small
 * sizes, in batches, on one thread.
 *
 * Workload. One round allocates B objects (--batch, default 100), writes one
 * byte into each, then frees them in the order they were allocated (FIFO:
 * the first object allocated is the first freed). FIFO is the fixed choice:
 * an allocator whose free list is LIFO hands the next round its blocks in the
 * reverse order of the previous one, which is closer to real programs than
 * the best case of strict LIFO reuse, and the order is the same every run.
 *
 * Sizes. A table of SIZE_TABLE sizes, uniform in [--min, --max] (default
 * 8..256), is filled from a seeded PRNG (--seed) before anything is timed; the
 * k-th malloc of the run asks for table[k mod SIZE_TABLE]. Per operation the
 * harness costs one load and one AND, never a PRNG step.
 *
 * Output: `pairs=<n> ns_per_pair=<x>` on stdout, where pairs = iters * batch
 * malloc+free pairs in the measured loop (one extra untimed warm-up round runs
 * before it). The wall-clock figure is for information; bench/instr.sh counts
 * instructions under callgrind instead, and takes the difference of two runs
 * so that start-up and the warm-up round cancel.
 *
 * Options beyond the workload:
 *   --which     print the file of the object that `malloc` resolves to (the
 *               allocator that LD_PRELOAD really installed) and exit; exits 1
 *               if `free` resolves to a different object.
 *   --baseline  run the same loop against two do-nothing stubs instead of
 *               malloc/free: the harness's own cost (loop, size load, byte
 *               write, call and return), which bench/instr.sh subtracts.
 *
 * The benchmark does not link ebb: the allocator under test is chosen with
 * LD_PRELOAD. It is built with -fno-builtin-malloc -fno-builtin-free, so the
 * compiler knows nothing of malloc's semantics and cannot pair up or drop the
 * calls; the bytes written are also read back into a volatile sink.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dladdr, RTLD_DEFAULT */
#endif
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SIZE_TABLE 1024u /* entries in the size table; a power of two */
#define DEFAULT_ITERS 700000u /* rounds; about 1 s natively with glibc */
#define DEFAULT_BATCH 100u
#define DEFAULT_MIN 8u
#define DEFAULT_MAX 256u
#define DEFAULT_SEED 0x65626220u /* "ebb " */

_Static_assert((SIZE_TABLE & (SIZE_TABLE - 1)) == 0, "SIZE_TABLE must be a power of two");

typedef struct config_s {
    uint64_t iters;  /* measured rounds */
    uint64_t batch;  /* objects allocated, then freed, per round */
    uint64_t min;    /* smallest request, bytes */
    uint64_t max;    /* largest request, bytes; min <= max */
    uint64_t seed;   /* PRNG seed for the size table */
    int which;       /* --which: report where malloc resolves, then exit */
    int baseline;    /* --baseline: stubs instead of malloc/free */
} config_t;

static volatile uint64_t sink; /* the bytes read back go here */

static void usage(FILE *out)
{
    fprintf(out,
        "usage: bench_micro [--iters N] [--batch B] [--min S] [--max S] [--seed X]\n"
        "                   [--which] [--baseline]\n"
        "  --iters N   measured rounds (default %u)\n"
        "  --batch B   objects per round: B mallocs, then B frees in the same order (default %u)\n"
        "  --min S     smallest size in bytes (default %u)\n"
        "  --max S     largest size in bytes (default %u)\n"
        "  --seed X    seed of the size table (default %u)\n"
        "  --which     print the file that provides malloc, and exit\n"
        "  --baseline  time the harness alone (stub malloc/free)\n",
        DEFAULT_ITERS, DEFAULT_BATCH, DEFAULT_MIN, DEFAULT_MAX, DEFAULT_SEED);
}

static uint64_t parse_u64(const char *opt, const char *s)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (s[0] == '\0' || s[0] == '-' || *end != '\0' || errno != 0) {
        fprintf(stderr, "bench_micro: %s wants a non-negative integer, got '%s'\n", opt, s);
        exit(2);
    }
    return (uint64_t)v;
}

static void parse_args(int argc, char **argv, config_t *cfg)
{
    *cfg = (config_t){ DEFAULT_ITERS, DEFAULT_BATCH, DEFAULT_MIN, DEFAULT_MAX, DEFAULT_SEED, 0, 0 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        uint64_t *field = NULL;
        if (strcmp(a, "--which") == 0) { cfg->which = 1; continue; }
        if (strcmp(a, "--baseline") == 0) { cfg->baseline = 1; continue; }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { usage(stdout); exit(0); }
        if (strcmp(a, "--iters") == 0) field = &cfg->iters;
        else if (strcmp(a, "--batch") == 0) field = &cfg->batch;
        else if (strcmp(a, "--min") == 0) field = &cfg->min;
        else if (strcmp(a, "--max") == 0) field = &cfg->max;
        else if (strcmp(a, "--seed") == 0) field = &cfg->seed;
        if (field == NULL || i + 1 >= argc) {
            fprintf(stderr, "bench_micro: %s '%s'\n",
                    field == NULL ? "unknown option" : "missing value for", a);
            usage(stderr);
            exit(2);
        }
        *field = parse_u64(a, argv[++i]);
    }
    /* Every object gets one byte written, so it must have one. */
    if (cfg->batch == 0 || cfg->min == 0 || cfg->min > cfg->max) {
        fprintf(stderr, "bench_micro: need --batch >= 1 and 1 <= --min <= --max\n");
        exit(2);
    }
}

/* splitmix64: one step of a small, well-mixed PRNG (only used to fill the table). */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void fill_sizes(size_t *sizes, const config_t *cfg)
{
    uint64_t state = cfg->seed;
    uint64_t span = cfg->max - cfg->min + 1; /* >= 1: min >= 1 keeps it from wrapping */
    for (unsigned i = 0; i < SIZE_TABLE; i++)
        sizes[i] = (size_t)(cfg->min + next_random(&state) % span);
}

/* --which: name the objects that provide malloc and free in the global scope,
 * which is where this program's calls to them are bound. */
static int print_which(void)
{
    Dl_info mi, fi;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    void *f = dlsym(RTLD_DEFAULT, "free");
    if (m == NULL || f == NULL || dladdr(m, &mi) == 0 || dladdr(f, &fi) == 0
        || mi.dli_fname == NULL || fi.dli_fname == NULL) {
        fprintf(stderr, "bench_micro: cannot resolve malloc/free: %s\n", dlerror());
        return 1;
    }
    printf("%s\n", mi.dli_fname);
    if (strcmp(mi.dli_fname, fi.dli_fname) != 0) {
        fprintf(stderr, "bench_micro: malloc is from %s but free is from %s\n",
                mi.dli_fname, fi.dli_fname);
        return 1;
    }
    return 0;
}

static void out_of_memory(size_t size)
{
    fprintf(stderr, "bench_micro: malloc(%zu) failed\n", size);
    exit(1);
}

/* The stubs of --baseline: a call and a return, like the cheapest possible
 * allocator, so that the harness's cost can be measured on its own. noipa
 * stops GCC from looking inside them at the call sites. */
static char stub_block[64];

__attribute__((noipa)) static void *stub_malloc(size_t size)
{
    (void)size;
    return stub_block;
}

__attribute__((noipa)) static void stub_free(void *p)
{
    (void)p;
}

/* One measured loop per pair of functions, identical but for the calls.
 * Returns the sum of the bytes read back. The sizes index k wraps with a
 * mask and carries over from round to round. */
#define DEFINE_ROUNDS(name, MALLOC, FREE)                                        \
    __attribute__((noinline)) static uint64_t name(uint64_t rounds, size_t batch, \
                                                   void **ptrs, const size_t *sizes) \
    {                                                                            \
        uint64_t sum = 0;                                                        \
        unsigned k = 0;                                                          \
        for (uint64_t r = 0; r < rounds; r++) {                                  \
            for (size_t j = 0; j < batch; j++) {                                 \
                size_t size = sizes[k];                                          \
                k = (k + 1) & (SIZE_TABLE - 1);                                  \
                char *p = MALLOC(size);                                          \
                if (__builtin_expect(p == NULL, 0))                              \
                    out_of_memory(size);                                         \
                p[0] = (char)j;                                                  \
                ptrs[j] = p;                                                     \
            }                                                                    \
            for (size_t j = 0; j < batch; j++) {                                 \
                char *p = ptrs[j];                                               \
                sum += (unsigned char)p[0];                                      \
                FREE(p);                                                         \
            }                                                                    \
        }                                                                        \
        return sum;                                                              \
    }

DEFINE_ROUNDS(rounds_malloc, malloc, free)
DEFINE_ROUNDS(rounds_stub, stub_malloc, stub_free)

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    config_t cfg;
    parse_args(argc, argv, &cfg);
    if (cfg.which)
        return print_which();

    /* Everything the loop needs exists before the clock starts. */
    static size_t sizes[SIZE_TABLE];
    fill_sizes(sizes, &cfg);
    void **ptrs = calloc(cfg.batch, sizeof *ptrs);
    if (ptrs == NULL)
        out_of_memory(cfg.batch * sizeof *ptrs);
    uint64_t (*run)(uint64_t, size_t, void **, const size_t *) =
        cfg.baseline ? rounds_stub : rounds_malloc;

    sink = run(1, cfg.batch, ptrs, sizes); /* warm-up: first pages, first touch */
    double t0 = now_ns();
    sink = run(cfg.iters, cfg.batch, ptrs, sizes);
    double t1 = now_ns();

    uint64_t pairs = cfg.iters * cfg.batch;
    printf("pairs=%" PRIu64 " ns_per_pair=%.2f\n", pairs,
           pairs ? (t1 - t0) / (double)pairs : 0.0);
    free(ptrs);
    return 0;
}
