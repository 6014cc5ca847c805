/* SPDX-License-Identifier: MIT */
/* bench/thp.c - a long-lived cache under transparent huge pages.
 *
 * Workload. A server's object cache (sessions, parsed requests: 64 B to
 * 32 KiB, log-uniform) grows to --live-mb, then runs --rounds rounds: each
 * evicts a random --evict % of the objects, serves a burst of short-lived
 * temporaries (allocated, written, freed), and refills the cache. Then it
 * drops all but 2% of the objects and sleeps --idle-ms.
 *
 * Huge pages on: the program runs itself again (once) with the allocator's
 * own switch for transparent huge pages, found from the library that
 * provides malloc: EBB_THP=always, glibc's GLIBC_TUNABLES=glibc.malloc.hugetlb=1,
 * jemalloc's MALLOC_CONF=thp:always, mimalloc's MIMALLOC_LARGE_OS_PAGES=1
 * (tcmalloc has none). --plain 1 skips that. The result line gives the
 * AnonHugePages of the process at the peak (smaps_rollup), so that a reader
 * sees whether huge pages were had at all.
 *
 * What it measures: with huge pages, an allocator that purges the free
 * part of a huge page that still holds live objects splits it (and pays
 * 4 KiB faults when it fills that part again); one that never purges keeps
 * it all. Time, peak RSS and rss_end_kb show the trade.
 *
 * Self-check: every object carries its number in its first and last 8
 * bytes, checked when it is freed; the sum of the numbers checked must be
 * the sum of the numbers made (predicted without the heap). The checksum
 * folds every object's number and size in the order made.
 */
#include <unistd.h>

#include "common.h"

typedef struct obj_s {
    uint64_t *p;   /* NULL: slot empty */
    uint64_t size; /* bytes, at least 16 */
    uint64_t id;
} obj_t;

static uint64_t next_id, ids_made, ids_checked;

static void make(obj_t *o, uint64_t *rng, uint64_t *checksum)
{
    o->size = bench_log_range(rng, 64, 32768) & ~(uint64_t)7;
    o->id = ++next_id;
    o->p = malloc(o->size);
    if (o->p == NULL)
        bench_oom("bench_thp", o->size);
    memset(o->p, (int)(o->id & 0x7f), o->size);
    o->p[0] = o->id;
    o->p[o->size / 8 - 1] = o->id;
    ids_made += o->id;
    *checksum = bench_fold(*checksum, (o->id << 20) ^ o->size);
}

static void drop(obj_t *o)
{
    if (o->p[0] == o->id && o->p[o->size / 8 - 1] == o->id)
        ids_checked += o->id;
    free(o->p);
    o->p = NULL;
}

/* The allocator's own switch for huge pages, by the library of malloc. */
static void set_thp_switch(void)
{
    Dl_info mi;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    const char *lib = (m != NULL && dladdr(m, &mi) != 0 && mi.dli_fname != NULL) ? mi.dli_fname : "";
    if (strstr(lib, "ebb") != NULL)
        setenv("EBB_THP", "always", 1);
    else if (strstr(lib, "jemalloc") != NULL)
        setenv("MALLOC_CONF", "thp:always", 1);
    else if (strstr(lib, "mimalloc") != NULL)
        setenv("MIMALLOC_LARGE_OS_PAGES", "1", 1);
    else if (strstr(lib, "libc.so") != NULL)
        setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1", 1);
}

static uint64_t rollup_kb(const char *field)
{
    char buf[4096];
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strstr(buf, field);
    return p != NULL ? strtoull(p + strlen(field), NULL, 10) : 0;
}

int main(int argc, char **argv)
{
    uint64_t live_mb = 96, rounds = 40, evict = 30, burst = 20000, idle_ms = 1500, plain = 0;
    uint64_t seed = BENCH_DEFAULT_SEED;
    const bench_opt_t opts[] = {
        {"live-mb", &live_mb, "cache size in MiB", 0},
        {"rounds", &rounds, "evict / burst / refill rounds", 0},
        {"evict", &evict, "percent of the cache evicted per round", 0},
        {"burst", &burst, "short-lived temporaries per round", 0},
        {"idle-ms", &idle_ms, "idle pause before rss_end_kb", 0},
        {"plain", &plain, "1: leave the allocator's huge-page switch alone", 0},
        {"seed", &seed, "PRNG seed", 0},
    };
    bench_parse("bench_thp", argc, argv, opts, BENCH_NOPTS(opts));
    if (live_mb < 1 || evict > 100) {
        fprintf(stderr, "bench_thp: need --live-mb >= 1 and --evict <= 100\n");
        return 2;
    }
    if (!plain && getenv("BENCH_THP_ON") == NULL) {
        set_thp_switch();
        setenv("BENCH_THP_ON", "1", 1);
        char self[4096]; /* the program's own path: exec'd as /proc/self/exe it would be named "exe" */
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n > 0) {
            self[n] = 0;
            execv(self, argv);
        }
        perror("bench_thp: exec");
        return 1;
    }
    /* Objects average ~5 KiB (log-uniform 64 B..32 KiB). */
    uint64_t count = live_mb * 1024 / 5;
    obj_t *cache = calloc(count, sizeof *cache);
    if (cache == NULL)
        bench_oom("bench_thp", count * sizeof *cache);
    uint64_t rng = seed, checksum = 0, ops = 0, huge_peak_kb = 0;
    double t0 = bench_now();
    for (uint64_t i = 0; i < count; i++, ops++)
        make(&cache[i], &rng, &checksum);
    for (uint64_t r = 0; r < rounds; r++) {
        for (uint64_t i = 0; i < count; i++)
            if (bench_range(&rng, 0, 99) < evict) {
                drop(&cache[i]);
                ops++;
            }
        for (uint64_t b = 0; b < burst; b++, ops++) {
            obj_t tmp;
            make(&tmp, &rng, &checksum);
            drop(&tmp);
        }
        for (uint64_t i = 0; i < count; i++)
            if (cache[i].p == NULL) {
                make(&cache[i], &rng, &checksum);
                ops++;
            }
        if (r == rounds / 2)
            huge_peak_kb = rollup_kb("AnonHugePages:");
    }
    for (uint64_t i = 0; i < count; i++)
        if (i % 50 != 0)
            drop(&cache[i]);
    double work = bench_now() - t0;
    bench_sleep_ms(idle_ms);
    uint64_t rss_end = bench_status_kb("VmRSS");
    for (uint64_t i = 0; i < count; i += 50)
        drop(&cache[i]);
    free(cache);
    return bench_report("thp", ids_made == ids_checked, ops, checksum, work, idle_ms, rss_end,
                        "objects=%" PRIu64 " anon_huge_kb_mid=%" PRIu64, count, huge_peak_kb);
}
