/* SPDX-License-Identifier: MIT */
/* bench/churn.c - small-object churn on one thread: linked lists and binary
 * search trees of small nodes, built and torn down.
 *
 * Workload. --slots structures are alive at any time. Iteration i tears down
 * the structure in slot i mod --slots and builds a new one there, so nodes of
 * every age are freed between allocations of new ones, as in a program that
 * keeps a few caches or parse trees and replaces them. A new structure has
 * between --nodes/2 and --nodes nodes and is, at random (fixed seed):
 *   - a list: nodes pushed at the head; then every third node is unlinked,
 *     freed and replaced by a new node (a free and a malloc in between
 *     others, as an edit would do);
 *   - a tree: random keys inserted into an unbalanced binary search tree,
 *     then a quarter of them looked up again (all must be found).
 * Tear-down: lists front to back, trees in post-order. Node sizes are
 * uniform in [--min, --max] bytes (the header is 32 bytes); each node's
 * payload is filled with a byte of its key and checked when it is freed.
 *
 * Output: the common result line (bench/common.h) with pairs=<n>, the number
 * of malloc+free pairs (every node allocated is freed before exit), as
 * bench/instr.sh expects of bench_churn. --baseline runs the same work
 * against a stub allocator - a LIFO stack of fixed blocks from a pool made
 * before the clock starts, a handful of instructions per call - so that
 * instr.sh can subtract the cost of the data-structure work itself.
 *
 * Self-check: the sum of the keys read back at tear-down must equal the sum
 * of the keys generated, every payload must hold its key's byte, every lookup
 * must succeed. The checksum folds the keys in tear-down order.
 */
#include "common.h"

#define NODE_HEADER 32u /* sizeof(node_t): the payload follows */

typedef struct node_s {
    struct node_s *a;        /* list: next; tree: left (smaller keys) */
    struct node_s *b;        /* list: unused; tree: right (keys >= this one) */
    uint64_t key;            /* random; the payload repeats its low byte */
    uint64_t size;           /* bytes requested for this node, >= NODE_HEADER */
    unsigned char payload[]; /* size - NODE_HEADER bytes of (uint8_t)key */
} node_t;

_Static_assert(sizeof(node_t) == NODE_HEADER, "node header layout");

enum { KIND_LIST = 0, KIND_TREE = 1 };

typedef struct slot_s {
    node_t *root; /* list head or tree root; NULL when empty */
    int kind;     /* KIND_LIST or KIND_TREE */
} slot_t;

typedef struct state_s {
    uint64_t rng;        /* the one PRNG: keys, sizes, shapes */
    uint64_t min, max;   /* node sizes */
    uint64_t pairs;      /* nodes allocated (each is freed by the end) */
    uint64_t key_sum_in; /* sum of the keys generated */
    uint64_t key_sum_out;/* sum of the keys read back at free */
    uint64_t checksum;   /* fold of keys in tear-down order */
    uint64_t bad;        /* payload mismatches and failed lookups */
} state_t;

/* ---- the allocator under test, or the stub of --baseline ------------- */
static void *(*alloc_fn)(size_t);
static void (*free_fn)(void *);

static void **stub_top;      /* stub free stack: each free block holds the next */
static char *stub_pool;      /* blocks of stub_block bytes, carved once */
static size_t stub_block;

__attribute__((noipa)) static void *stub_malloc(size_t size)
{
    (void)size;
    void **p = stub_top;
    if (p == NULL)
        bench_oom("bench_churn (stub)", size);
    stub_top = *p;
    return p;
}

__attribute__((noipa)) static void stub_free(void *p)
{
    *(void **)p = stub_top;
    stub_top = p;
}

static void stub_init(size_t block, size_t count)
{
    stub_block = block;
    stub_pool = malloc(block * count);
    if (stub_pool == NULL)
        bench_oom("bench_churn", block * count);
    for (size_t i = count; i-- > 0;)
        stub_free(stub_pool + i * block);
}

/* ---- nodes ----------------------------------------------------------- */
static node_t *node_new(state_t *st)
{
    size_t size = (size_t)bench_range(&st->rng, st->min, st->max);
    node_t *n = alloc_fn(size);
    if (n == NULL)
        bench_oom("bench_churn", size);
    n->a = n->b = NULL;
    n->key = bench_rand(&st->rng);
    n->size = size;
    memset(n->payload, (unsigned char)n->key, size - NODE_HEADER);
    st->pairs++;
    st->key_sum_in += n->key;
    return n;
}

static void node_free(state_t *st, node_t *n)
{
    size_t len = n->size - NODE_HEADER;
    unsigned char want = (unsigned char)n->key;
    if (len > 0 && (n->payload[0] != want || n->payload[len - 1] != want))
        st->bad++;
    st->key_sum_out += n->key;
    st->checksum = bench_fold(st->checksum, n->key);
    free_fn(n);
}

/* ---- lists ----------------------------------------------------------- */
static node_t *list_build(state_t *st, uint64_t count)
{
    node_t *head = NULL;
    for (uint64_t i = 0; i < count; i++) {
        node_t *n = node_new(st);
        n->a = head;
        head = n;
    }
    /* Replace every third node: unlink and free it, link a new one there. */
    node_t **link = &head;
    for (uint64_t i = 0; *link != NULL; i++) {
        if (i % 3 == 2) {
            node_t *old = *link, *fresh;
            *link = old->a;
            node_free(st, old);
            fresh = node_new(st);
            fresh->a = *link;
            *link = fresh;
        }
        link = &(*link)->a;
    }
    return head;
}

static void list_free(state_t *st, node_t *head)
{
    while (head != NULL) {
        node_t *next = head->a;
        node_free(st, head);
        head = next;
    }
}

/* ---- trees ----------------------------------------------------------- */
static void tree_insert(node_t **root, node_t *n)
{
    while (*root != NULL)
        root = n->key < (*root)->key ? &(*root)->a : &(*root)->b;
    *root = n;
}

static int tree_contains(const node_t *t, uint64_t key)
{
    while (t != NULL && t->key != key)
        t = key < t->key ? t->a : t->b;
    return t != NULL;
}

static node_t *tree_build(state_t *st, uint64_t count)
{
    node_t *root = NULL;
    uint64_t replay = st->rng; /* to regenerate the keys for the lookups */
    for (uint64_t i = 0; i < count; i++)
        tree_insert(&root, node_new(st));
    /* node_new draws a size, then a key: replay the same sequence. */
    for (uint64_t i = 0; i < count; i++) {
        (void)bench_rand(&replay);
        uint64_t key = bench_rand(&replay);
        if (i % 4 == 0 && !tree_contains(root, key))
            st->bad++;
    }
    return root;
}

/* Post-order with the tree itself as the stack: rotate left children up
 * until there is none, then free the node and go right. Depth-safe. */
static void tree_free(state_t *st, node_t *t)
{
    while (t != NULL) {
        if (t->a != NULL) {
            node_t *l = t->a;
            t->a = l->b;
            l->b = t;
            t = l;
        } else {
            node_t *r = t->b;
            node_free(st, t);
            t = r;
        }
    }
}

static void slot_clear(state_t *st, slot_t *s)
{
    if (s->kind == KIND_LIST)
        list_free(st, s->root);
    else
        tree_free(st, s->root);
    s->root = NULL;
}

int main(int argc, char **argv)
{
    uint64_t iters = 200000, slots = 8, nodes = 200, min = 32, max = 128;
    uint64_t seed = BENCH_DEFAULT_SEED, baseline = 0, idle_ms = 0;
    const bench_opt_t opts[] = {
        { "iters", &iters, "structures built (and torn down)", 0 },
        { "slots", &slots, "structures alive at once", 0 },
        { "nodes", &nodes, "largest structure, in nodes (smallest: half)", 0 },
        { "min", &min, "smallest node, bytes (>= 32)", 0 },
        { "max", &max, "largest node, bytes", 0 },
        { "seed", &seed, "PRNG seed", 0 },
        { "idle-ms", &idle_ms, "idle pause before reading VmRSS", 0 },
        { "baseline", &baseline, "stub allocator instead of malloc/free", 1 },
    };
    bench_parse("bench_churn", argc, argv, opts, BENCH_NOPTS(opts));
    if (slots == 0 || nodes < 2 || min < NODE_HEADER || max < min || max > (1u << 20)) {
        fprintf(stderr, "bench_churn: need --slots >= 1, --nodes >= 2, 32 <= --min <= --max\n");
        return 2;
    }

    alloc_fn = malloc;
    free_fn = free;
    if (baseline) {
        stub_init((size_t)max, (size_t)(slots * nodes + 2));
        alloc_fn = stub_malloc;
        free_fn = stub_free;
    }
    slot_t *table = calloc(slots, sizeof *table);
    if (table == NULL)
        bench_oom("bench_churn", slots * sizeof *table);
    state_t st = { .rng = seed, .min = min, .max = max };

    double t0 = bench_now();
    for (uint64_t i = 0; i < iters; i++) {
        slot_t *s = &table[i % slots];
        slot_clear(&st, s);
        uint64_t count = bench_range(&st.rng, nodes / 2, nodes);
        s->kind = (int)(bench_rand(&st.rng) & 1);
        s->root = s->kind == KIND_LIST ? list_build(&st, count) : tree_build(&st, count);
    }
    for (uint64_t i = 0; i < slots; i++)
        slot_clear(&st, &table[i]);
    double work = bench_now() - t0;

    free(table);
    if (baseline)
        free(stub_pool);
    bench_sleep_ms(idle_ms);
    int ok = st.bad == 0 && st.key_sum_in == st.key_sum_out;
    return bench_report("churn", ok, st.pairs, st.checksum, work, idle_ms, bench_status_kb("VmRSS"),
                        "pairs=%" PRIu64 " ns_per_pair=%.2f%s", st.pairs,
                        st.pairs ? work * 1e9 / (double)st.pairs : 0.0,
                        baseline ? " baseline=1" : "");
}
