/* SPDX-License-Identifier: MIT */
/* bench/common.h - what every workload of the benchmark suite shares:
 * command-line options, a seeded PRNG, the clock, VmRSS, the idle pause and
 * the one result line. Header-only (static functions), so that each workload
 * stays one program built from one .c file.
 *
 * The result line. Every workload ends by printing exactly one line on stdout:
 *
 *   <name>: <k=v of its own> ops=<n> checksum=0x<16 hex> check=ok
 *           work_ms=<x> idle_ms=<n> rss_end_kb=<n>      (one line)
 *
 *   ops        the operations the workload did (its unit of work)
 *   checksum   a hash of what was read back from the allocated memory; it
 *              depends only on the parameters and the seed, never on
 *              addresses or thread timing, so every allocator must print the
 *              same value (bench/report.py compares them)
 *   check      ok, or FAIL when the workload's own verification failed (a
 *              read-back sum differs from the sum predicted without touching
 *              the heap); the exit status is then BENCH_EXIT_WRONG
 *   work_ms    the workload's own timing of its work, idle pause excluded
 *   idle_ms    how long it slept, idle, before reading rss_end_kb (the driver
 *              subtracts it from the wall time)
 *   rss_end_kb VmRSS from /proc/self/status after the idle pause: what the
 *              allocator still holds when the program has freed (nearly)
 *              everything and stopped calling it
 *
 * Every workload also takes --which (print the file that provides malloc, as
 * bench_micro does; bench/instr.sh checks LD_PRELOAD with it) and --help.
 *
 * Workloads are single-file C programs that call plain malloc/free/realloc;
 * the allocator is chosen by LD_PRELOAD. They are built with
 * -fno-builtin-malloc -fno-builtin-free (bench/CMakeLists.txt).
 *
 * Concurrency: the helpers here keep no state; the PRNG state belongs to the
 * caller (one per thread).
 */
#ifndef EBB_BENCH_COMMON_H
#define EBB_BENCH_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../test/stats_check.h"

#define BENCH_EXIT_WRONG 3  /* exit status of a failed self-check */
#define BENCH_DEFAULT_SEED 0x65626220u /* "ebb ", as bench_micro */

/* One command-line option: `--name N` stores N in *value; a flag (is_flag)
 * takes no value and stores 1. */
typedef struct bench_opt_s {
    const char *name;   /* without the leading "--" */
    uint64_t *value;    /* where the parsed value goes; holds the default */
    const char *help;   /* one line */
    int is_flag;        /* 1: no value, presence sets *value = 1 */
} bench_opt_t;

static void bench_usage(FILE *out, const char *prog, const bench_opt_t *opts, size_t n)
{
    fprintf(out, "usage: %s [options]\n  --%-12s print the file that provides malloc, and exit\n",
            prog, "which");
    for (size_t i = 0; i < n; i++) {
        if (opts[i].is_flag)
            fprintf(out, "  --%-12s %s\n", opts[i].name, opts[i].help);
        else
            fprintf(out, "  --%-12s %s (default %" PRIu64 ")\n", opts[i].name, opts[i].help,
                    *opts[i].value);
    }
}

/* --which: print the file of the object that provides malloc in the global
 * scope (where this program's calls are bound: the allocator LD_PRELOAD
 * really installed), as bench_micro does; 1 if free comes from another. */
static int bench_which(const char *prog)
{
    Dl_info mi, fi;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    void *f = dlsym(RTLD_DEFAULT, "free");
    if (m == NULL || f == NULL || dladdr(m, &mi) == 0 || dladdr(f, &fi) == 0
        || mi.dli_fname == NULL || fi.dli_fname == NULL) {
        fprintf(stderr, "%s: cannot resolve malloc/free\n", prog);
        return 1;
    }
    printf("%s\n", mi.dli_fname);
    if (strcmp(mi.dli_fname, fi.dli_fname) != 0) {
        fprintf(stderr, "%s: malloc is from %s but free is from %s\n", prog, mi.dli_fname,
                fi.dli_fname);
        return 1;
    }
    return 0;
}

/* Parses argv against the table; a bad option or value exits 2. --which and
 * --help are every workload's, and exit at once. */
static void bench_parse(const char *prog, int argc, char **argv, const bench_opt_t *opts, size_t n)
{
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            bench_usage(stdout, prog, opts, n);
            exit(0);
        }
        if (strcmp(arg, "--which") == 0)
            exit(bench_which(prog));
        const bench_opt_t *o = NULL;
        for (size_t i = 0; i < n && o == NULL; i++)
            if (strncmp(arg, "--", 2) == 0 && strcmp(arg + 2, opts[i].name) == 0)
                o = &opts[i];
        if (o == NULL) {
            fprintf(stderr, "%s: unknown option '%s'\n", prog, arg);
            bench_usage(stderr, prog, opts, n);
            exit(2);
        }
        if (o->is_flag) {
            *o->value = 1;
            continue;
        }
        if (a + 1 >= argc) {
            fprintf(stderr, "%s: missing value for '%s'\n", prog, arg);
            exit(2);
        }
        const char *s = argv[++a];
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 0);
        if (s[0] == '\0' || s[0] == '-' || *end != '\0' || errno != 0) {
            fprintf(stderr, "%s: %s wants a non-negative integer, got '%s'\n", prog, arg, s);
            exit(2);
        }
        *o->value = (uint64_t)v;
    }
}

#define BENCH_NOPTS(table) (sizeof(table) / sizeof((table)[0]))

/* splitmix64: small, well mixed, and a good hash of a counter as well. */
static inline uint64_t bench_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static inline uint64_t bench_rand(uint64_t *state)
{
    return bench_mix(*state += 0x9e3779b97f4a7c15u);
}

/* Uniform in [lo, hi]; lo <= hi. The modulo bias is irrelevant here. */
static inline uint64_t bench_range(uint64_t *state, uint64_t lo, uint64_t hi)
{
    return lo + bench_rand(state) % (hi - lo + 1);
}

/* Log-uniform in [lo, hi] (1 <= lo <= hi): each power of two between them is
 * equally likely, sizes inside it uniform. Small sizes dominate by count, big
 * ones by bytes, as in most programs. */
static inline uint64_t bench_log_range(uint64_t *state, uint64_t lo, uint64_t hi)
{
    int lo_bit = 63 - __builtin_clzll(lo), hi_bit = 63 - __builtin_clzll(hi);
    int bit = (int)bench_range(state, (uint64_t)lo_bit, (uint64_t)hi_bit);
    uint64_t base = 1ull << bit;
    uint64_t v = base + bench_rand(state) % base;
    return v < lo ? lo : v > hi ? hi : v;
}

/* Order-dependent accumulation of read-back values into a checksum. */
static inline uint64_t bench_fold(uint64_t h, uint64_t v)
{
    return bench_mix(h ^ v) + 0x632be59bd9b4e019u;
}

static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void bench_sleep_ms(uint64_t ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A field of /proc/self/status in kB ("VmRSS", "VmHWM"); 0 if unreadable.
 * Reading it uses stdio, which may allocate once; that is negligible. */
static uint64_t bench_status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return 0;
    char line[256];
    size_t n = strlen(field);
    uint64_t kb = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            kb = strtoull(line + n + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

static void bench_oom(const char *prog, size_t size)
{
    fprintf(stderr, "%s: allocation of %zu bytes failed\n", prog, size);
    exit(1);
}

/* Under ebb (found with dlsym: the workloads do not link it), the
 * statistics must add up at the end of every workload, and a forced
 * collect must return what the kernel's count of anonymous memory lost
 * (test/stats_check.h). Under another allocator there is nothing to check,
 * and under valgrind (bench/instr.sh: its preload is vgpreload_*) neither:
 * the process's memory is valgrind's, not what the kernel counts for the
 * program, and the instruction counts are the workload's alone. Returns 1
 * if the checks hold or do not apply. */
static int bench_check_ebb(const char *name)
{
    const char *preload = getenv("LD_PRELOAD");
    if (preload != NULL && strstr(preload, "vgpreload") != NULL)
        return 1;
    stats_check_api_t api;
    *(void **)&api.stats_get = dlsym(RTLD_DEFAULT, "ebb_stats_get_sized");
    *(void **)&api.collect = dlsym(RTLD_DEFAULT, "ebb_collect");
    if (api.stats_get == NULL || api.collect == NULL)
        return 1;
    char why[512];
    ebb_stats_t st;
    int broken = !api.stats_get(&st, sizeof st) || stats_check_identities(&st, why, sizeof why)
                 || stats_check_collect(&api, false, why, sizeof why);
    if (broken)
        fprintf(stderr, "%s: ebb's statistics do not add up: %s\n", name, why);
    return !broken;
}

/* Prints the result line (see the top of this file) and returns the exit
 * status. `fields` is a printf format for the workload's own k=v pairs.
 * Statistics that do not add up under ebb fail the run like a wrong
 * checksum (check=FAIL). */
__attribute__((format(printf, 8, 9)))
static int bench_report(const char *name, int ok, uint64_t ops, uint64_t checksum,
                        double work_s, uint64_t idle_ms, uint64_t rss_end_kb,
                        const char *fields, ...)
{
    int stats_ok = bench_check_ebb(name);
    printf("%s: ", name);
    va_list ap;
    va_start(ap, fields);
    vprintf(fields, ap);
    va_end(ap);
    printf(" ops=%" PRIu64 " checksum=0x%016" PRIx64 " check=%s work_ms=%.1f idle_ms=%" PRIu64
           " rss_end_kb=%" PRIu64 "\n",
           ops, checksum, ok && stats_ok ? "ok" : "FAIL", work_s * 1e3, idle_ms, rss_end_kb);
    fflush(stdout);
    if (!ok)
        fprintf(stderr, "%s: self-check FAILED: the memory read back is not what was written\n",
                name);
    return ok && stats_ok ? 0 : BENCH_EXIT_WRONG;
}

#endif /* EBB_BENCH_COMMON_H */
