/* SPDX-License-Identifier: MIT */
/* bench/waves.c - a long-running mixed workload whose live set grows and
 * shrinks in waves; the figures that matter are peak RSS and RSS at the end.
 *
 * Workload. One thread, --waves waves. A wave grows the live set to its peak
 * (--peak-mb, times 1.0, 0.5, 0.8, 1.0, 0.5, ... by wave) with steps that
 * are 70% allocations and 30% frees of a random live object, then shrinks it
 * to --trough-pct percent of that peak with steps that are 70% frees, 30%
 * allocations. Sizes (by count): 80% 16..512 B, 19% 512 B..32 KiB, 1%
 * 64 KiB..1 MiB, log-uniform within each band. Every object is written in
 * full when allocated (so it is resident) and freed at a random position in
 * the live set, so the survivors of a shrink are scattered over the heap.
 *
 * The end. After the last wave the live set shrinks to --keep-pct percent of
 * the peak (the program's long-lived data), then the program sleeps
 * --idle-ms without calling the allocator and reads VmRSS: what the
 * allocator gives back to the OS when the program is idle. It prints that
 * (rss_end_kb), VmRSS just before the pause (rss_busy_kb), and the live
 * bytes (live_end_kb), then frees the rest and exits.
 *
 * Self-check: every object holds a tag (a hash of its index) in its first
 * and last 8 bytes; the sum of the tags read back at free must equal the sum
 * written. The checksum folds the tags in the order they are freed, which is
 * fixed by the seed.
 */
#include "common.h"

typedef struct object_s {
    unsigned char *p; /* the block, written in full */
    uint64_t size;    /* bytes requested, >= 16 */
    uint64_t tag;     /* hash of the allocation's index */
} object_t;

typedef struct state_s {
    uint64_t rng;
    object_t *live;     /* live[0..n): the live objects, in no order */
    uint64_t n, cap;    /* entries used and allocated */
    uint64_t bytes;     /* sum of live sizes */
    uint64_t allocs;    /* objects allocated so far */
    uint64_t tag_in, tag_out, checksum, bad;
} state_t;

static uint64_t object_size(uint64_t *rng)
{
    uint64_t band = bench_rand(rng) % 100;
    if (band < 80)
        return bench_log_range(rng, 16, 512);
    if (band < 99)
        return bench_log_range(rng, 513, 32768);
    return bench_log_range(rng, 65536, 1u << 20);
}

static void add_one(state_t *st)
{
    if (st->n == st->cap) {
        uint64_t cap = st->cap ? st->cap * 2 : 4096;
        object_t *grown = realloc(st->live, cap * sizeof *grown);
        if (grown == NULL)
            bench_oom("bench_waves", cap * sizeof *grown);
        st->live = grown;
        st->cap = cap;
    }
    object_t *o = &st->live[st->n++];
    o->size = object_size(&st->rng);
    o->tag = bench_mix(st->allocs++ ^ 0x7761766573u);
    o->p = malloc(o->size);
    if (o->p == NULL)
        bench_oom("bench_waves", o->size);
    memset(o->p, (unsigned char)o->tag, o->size);
    memcpy(o->p, &o->tag, 8);
    memcpy(o->p + o->size - 8, &o->tag, 8);
    st->bytes += o->size;
    st->tag_in += o->tag;
}

static void free_one(state_t *st)
{
    if (st->n == 0)
        return;
    uint64_t i = bench_rand(&st->rng) % st->n;
    object_t o = st->live[i];
    st->live[i] = st->live[--st->n];
    uint64_t head, tail;
    memcpy(&head, o.p, 8);
    memcpy(&tail, o.p + o.size - 8, 8);
    if (head != o.tag || tail != o.tag
        || (o.size >= 24 && o.p[o.size / 2] != (unsigned char)o.tag)) /* a fill byte */
        st->bad++;
    st->tag_out += head;
    st->checksum = bench_fold(st->checksum, head);
    st->bytes -= o.size;
    free(o.p);
}

/* Steps until the live bytes cross `target`: growing (alloc_pct > 50) or
 * shrinking. Returns the steps taken. */
static uint64_t move_to(state_t *st, uint64_t target, unsigned alloc_pct)
{
    uint64_t steps = 0;
    int growing = alloc_pct > 50;
    while (growing ? st->bytes < target : st->bytes > target) {
        if (bench_rand(&st->rng) % 100 < alloc_pct)
            add_one(st);
        else
            free_one(st);
        steps++;
    }
    return steps;
}

int main(int argc, char **argv)
{
    uint64_t waves = 6, peak_mb = 256, trough_pct = 10, keep_pct = 3, idle_ms = 1500;
    uint64_t seed = BENCH_DEFAULT_SEED;
    const bench_opt_t opts[] = {
        { "waves", &waves, "number of grow/shrink waves", 0 },
        { "peak-mb", &peak_mb, "live MiB at the highest peak", 0 },
        { "trough-pct", &trough_pct, "live set after a shrink, percent of that wave's peak", 0 },
        { "keep-pct", &keep_pct, "live set at the end, percent of the highest peak", 0 },
        { "seed", &seed, "PRNG seed", 0 },
        { "idle-ms", &idle_ms, "idle pause before reading VmRSS", 0 },
    };
    bench_parse("bench_waves", argc, argv, opts, BENCH_NOPTS(opts));
    if (peak_mb == 0 || trough_pct > 100 || keep_pct > 100) {
        fprintf(stderr, "bench_waves: need --peak-mb >= 1, percentages <= 100\n");
        return 2;
    }
    static const unsigned shape[] = { 100, 50, 80 }; /* peak of wave w, percent */
    uint64_t peak = peak_mb << 20;
    state_t st = { .rng = seed };

    double t0 = bench_now();
    uint64_t steps = 0;
    for (uint64_t w = 0; w < waves; w++) {
        uint64_t top = peak / 100 * shape[w % 3];
        steps += move_to(&st, top, 70);
        steps += move_to(&st, top / 100 * trough_pct, 30);
    }
    steps += move_to(&st, peak / 100 * keep_pct, 0);
    double work = bench_now() - t0;

    uint64_t live_kb = st.bytes >> 10, busy_kb = bench_status_kb("VmRSS");
    bench_sleep_ms(idle_ms);
    uint64_t end_kb = bench_status_kb("VmRSS");
    while (st.n > 0)
        free_one(&st);
    free(st.live);
    int ok = st.bad == 0 && st.tag_in == st.tag_out;
    return bench_report("waves", ok, steps, st.checksum, work, idle_ms, end_kb,
                        "waves=%" PRIu64 " objects=%" PRIu64 " live_end_kb=%" PRIu64
                        " rss_busy_kb=%" PRIu64, waves, st.allocs, live_kb, busy_kb);
}
