/* SPDX-License-Identifier: MIT */
/* bench/realloc.c - realloc growth and shrink: vectors that double their
 * capacity and strings that grow a few bytes at a time, many at once.
 *
 * Workload. --slots buffers are in progress at any time; a step picks one at
 * random (fixed seed) and appends to it, so the reallocs of different buffers
 * interleave and a block can rarely just grow into the space behind it.
 * There are two kinds, chosen at random when a slot starts a new buffer:
 *   - vector: 32-bit elements appended 1..64 at a time; when the length
 *     reaches the capacity, the capacity doubles (realloc). Final size
 *     log-uniform in 64 B .. --vec-max bytes.
 *   - string: the builder reallocs to exactly the new length on every append
 *     of 1..64 bytes (the naive strcat pattern). Final size log-uniform in
 *     16 B .. --str-max bytes.
 * When a buffer reaches its final size it is checked, shrunk by realloc to a
 * quarter (checked again: realloc must keep the prefix), and freed; the slot
 * starts a new one. --buffers buffers are completed in all.
 *
 * What it measures: in-place growth, the copy cost of moving blocks (and
 * mremap for big ones), shrinking in place, and the memory that vectors with
 * 50% slack and a trail of outgrown blocks cost.
 *
 * Self-check: every element or byte is a function of the buffer's number and
 * its position, verified in full before the shrink and on the kept quarter
 * after it. The checksum folds each buffer's number, kind and final length.
 */
#include "common.h"

enum { KIND_VECTOR, KIND_STRING };

typedef struct buffer_s {
    unsigned char *p; /* NULL: the slot is idle */
    uint64_t len;     /* bytes in use */
    uint64_t cap;     /* bytes allocated (vector) or len (string) */
    uint64_t target;  /* final length, bytes */
    uint64_t id;      /* the buffer's number: the content depends on it */
    int kind;
} buffer_t;

typedef struct state_s {
    uint64_t rng, vec_max, str_max;
    uint64_t started, finished, reallocs, bad, checksum;
} state_t;

/* Byte i of buffer id (for vectors, element i / 4 holds these bytes too:
 * a vector of uint32 is written as bytes with the same function). */
static inline unsigned char content(uint64_t id, uint64_t i)
{
    return (unsigned char)(id * 131u + i * 7u + (i >> 8));
}

static void *xrealloc(state_t *st, void *p, size_t size)
{
    void *q = realloc(p, size);
    if (q == NULL)
        bench_oom("bench_realloc", size);
    st->reallocs++;
    return q;
}

static void start(state_t *st, buffer_t *b)
{
    b->kind = (int)(bench_rand(&st->rng) & 1);
    b->target = b->kind == KIND_VECTOR ? bench_log_range(&st->rng, 64, st->vec_max) & ~3ull
                                       : bench_log_range(&st->rng, 16, st->str_max);
    b->id = st->started++;
    b->len = 0;
    b->cap = b->kind == KIND_VECTOR ? 16 : 1;
    b->p = xrealloc(st, NULL, b->cap); /* realloc(NULL, n) is malloc */
}

static uint64_t verify(const buffer_t *b, uint64_t len)
{
    uint64_t bad = 0;
    for (uint64_t i = 0; i < len; i++)
        bad += b->p[i] != content(b->id, i);
    return bad;
}

static void finish(state_t *st, buffer_t *b)
{
    st->bad += verify(b, b->len) != 0;
    uint64_t quarter = b->len / 4 ? b->len / 4 : 1;
    b->p = xrealloc(st, b->p, quarter);
    st->bad += verify(b, quarter < b->len ? quarter : b->len) != 0;
    free(b->p);
    b->p = NULL;
    st->checksum = bench_fold(st->checksum, (b->id << 32) ^ ((uint64_t)b->kind << 31) ^ b->len);
    st->finished++;
}

static void append(state_t *st, buffer_t *b)
{
    uint64_t add = bench_range(&st->rng, 1, 64);
    if (b->kind == KIND_VECTOR)
        add *= 4; /* whole 32-bit elements */
    if (b->len + add > b->target)
        add = b->target - b->len;
    uint64_t need = b->len + add;
    if (b->kind == KIND_STRING) {
        b->p = xrealloc(st, b->p, need);
        b->cap = need;
    } else if (need > b->cap) {
        while (b->cap < need)
            b->cap *= 2;
        b->p = xrealloc(st, b->p, b->cap);
    }
    for (uint64_t i = b->len; i < need; i++)
        b->p[i] = content(b->id, i);
    b->len = need;
}

int main(int argc, char **argv)
{
    uint64_t slots = 32, buffers = 3000, vec_max = 1u << 20, str_max = 64u << 10;
    uint64_t seed = BENCH_DEFAULT_SEED, idle_ms = 0;
    const bench_opt_t opts[] = {
        { "buffers", &buffers, "buffers grown, shrunk and freed", 0 },
        { "slots", &slots, "buffers in progress at once", 0 },
        { "vec-max", &vec_max, "largest vector, bytes", 0 },
        { "str-max", &str_max, "largest string, bytes", 0 },
        { "seed", &seed, "PRNG seed", 0 },
        { "idle-ms", &idle_ms, "idle pause before reading VmRSS", 0 },
    };
    bench_parse("bench_realloc", argc, argv, opts, BENCH_NOPTS(opts));
    if (slots == 0 || vec_max < 64 || str_max < 16) {
        fprintf(stderr, "bench_realloc: need --slots >= 1, --vec-max >= 64, --str-max >= 16\n");
        return 2;
    }
    buffer_t *table = calloc(slots, sizeof *table);
    if (table == NULL)
        bench_oom("bench_realloc", slots * sizeof *table);
    state_t st = { .rng = seed, .vec_max = vec_max, .str_max = str_max };

    double t0 = bench_now();
    while (st.finished < buffers) {
        buffer_t *b = &table[bench_rand(&st.rng) % slots];
        if (b->p == NULL)
            start(&st, b);
        else if (b->len == b->target)
            finish(&st, b);
        else
            append(&st, b);
    }
    for (uint64_t i = 0; i < slots; i++)
        if (table[i].p != NULL)
            free(table[i].p); /* unfinished: not in the checksum */
    double work = bench_now() - t0;

    free(table);
    bench_sleep_ms(idle_ms);
    return bench_report("realloc", st.bad == 0, st.reallocs, st.checksum, work, idle_ms,
                        bench_status_kb("VmRSS"), "buffers=%" PRIu64, st.finished);
}
