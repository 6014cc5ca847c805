/* SPDX-License-Identifier: MIT */
/* bench/rbtree.c - a red-black tree under churn: an in-memory index (a
 * cache, a symbol table, an ordered map of sessions) whose working set stays
 * the same size while its entries are replaced one by one. The figure that
 * matters is peak RSS: the live set is constant, so whatever the allocator
 * holds above it is its own fragmentation.
 *
 * Workload. One thread. A red-black tree (insert and delete with
 * rebalancing, parent links) of --nodes nodes is built from random keys;
 * then --steps times a random live key is deleted and a new random key
 * inserted. A node is 48..64 B (a tail of 0..16 bytes after its fields,
 * chosen from its key) and points to a value allocated separately, of
 * 16 B..--value-max (log-uniform: small values dominate by count, big ones
 * by bytes), so blocks of two dozen size classes are freed at random places
 * and their gaps must serve other sizes.
 *
 * Self-check. Every value is filled with a byte pattern from its key, with
 * the key's hash in its first and last 8 bytes; a deleted value is checked
 * before it is freed. At the end the tree's invariants are checked (order,
 * parent links, no red node with a red child, one black height), then an
 * in-order walk reads every node's tail and value back and folds them into
 * the checksum. The sum of the live keys' hashes, kept without touching the
 * heap, must equal the sum read back. Then the tree is freed, and VmRSS is
 * read after --idle-ms (rss_end_kb).
 */
#include "common.h"

typedef struct node_s {
    uint64_t key;
    struct node_s *left, *right, *parent;
    unsigned char *value;  /* malloc'ed, value_size bytes, pattern of key */
    uint32_t value_size;
    uint8_t red;
    uint8_t tail_len;      /* bytes after the fields, 0..16, pattern of key */
    unsigned char tail[];  /* node size 48..64 B */
} node_t;

/* The leaves: one black sentinel, so that deletion's fixup needs no NULL
 * cases (its parent is written during a deletion, as in CLRS). */
static node_t nil_node = { .left = &nil_node, .right = &nil_node, .parent = &nil_node };
#define NIL (&nil_node)

typedef struct tree_s {
    node_t *root;
    uint64_t count;
} tree_t;

typedef struct state_s {
    uint64_t rng;
    uint64_t value_max;
    uint64_t uniform;      /* value sizes uniform in 16..value_max, not log-uniform */
    tree_t tree;
    uint64_t *keys;        /* the live keys, in no order (for picking one at random) */
    uint64_t n;
    uint64_t hash_in;      /* sum of key_hash over live keys, kept off the heap */
    uint64_t bad;          /* values or nodes that read back wrong */
} state_t;

static uint64_t key_hash(uint64_t key) { return bench_mix(key ^ 0x7262747265650000u); }

/* ---- the tree ---------------------------------------------------------- */

static void rotate_left(tree_t *t, node_t *x)
{
    node_t *y = x->right;
    x->right = y->left;
    if (y->left != NIL)
        y->left->parent = x;
    y->parent = x->parent;
    if (x->parent == NIL)
        t->root = y;
    else if (x == x->parent->left)
        x->parent->left = y;
    else
        x->parent->right = y;
    y->left = x;
    x->parent = y;
}

static void rotate_right(tree_t *t, node_t *x)
{
    node_t *y = x->left;
    x->left = y->right;
    if (y->right != NIL)
        y->right->parent = x;
    y->parent = x->parent;
    if (x->parent == NIL)
        t->root = y;
    else if (x == x->parent->right)
        x->parent->right = y;
    else
        x->parent->left = y;
    y->right = x;
    x->parent = y;
}

/* After inserting red z: restore "no red node has a red child". */
static void insert_fixup(tree_t *t, node_t *z)
{
    while (z->parent->red) {
        node_t *g = z->parent->parent;
        int left = z->parent == g->left;
        node_t *uncle = left ? g->right : g->left;
        if (uncle->red) {
            z->parent->red = 0;
            uncle->red = 0;
            g->red = 1;
            z = g;
            continue;
        }
        if (z == (left ? z->parent->right : z->parent->left)) {
            z = z->parent;
            left ? rotate_left(t, z) : rotate_right(t, z);
        }
        z->parent->red = 0;
        g->red = 1;
        left ? rotate_right(t, g) : rotate_left(t, g);
    }
    t->root->red = 0;
}

/* Links z in by its key; 0 (and nothing done) if the key is present. */
static int tree_insert(tree_t *t, node_t *z)
{
    node_t *parent = NIL, **link = &t->root;
    while (*link != NIL) {
        parent = *link;
        if (z->key == parent->key)
            return 0;
        link = z->key < parent->key ? &parent->left : &parent->right;
    }
    z->parent = parent;
    z->left = z->right = NIL;
    z->red = 1;
    *link = z;
    insert_fixup(t, z);
    t->count++;
    return 1;
}

static node_t *tree_find(const tree_t *t, uint64_t key)
{
    node_t *x = t->root;
    while (x != NIL && x->key != key)
        x = key < x->key ? x->left : x->right;
    return x;
}

static node_t *tree_min(node_t *x)
{
    while (x->left != NIL)
        x = x->left;
    return x;
}

/* Puts v where u was (u's subtree links are the caller's). */
static void transplant(tree_t *t, node_t *u, node_t *v)
{
    if (u->parent == NIL)
        t->root = v;
    else if (u == u->parent->left)
        u->parent->left = v;
    else
        u->parent->right = v;
    v->parent = u->parent;
}

/* After removing a black node: x carries an extra black; push it up or
 * absorb it by recolouring and rotations. */
static void delete_fixup(tree_t *t, node_t *x)
{
    while (x != t->root && !x->red) {
        int left = x == x->parent->left;
        node_t *w = left ? x->parent->right : x->parent->left;
        if (w->red) {
            w->red = 0;
            x->parent->red = 1;
            left ? rotate_left(t, x->parent) : rotate_right(t, x->parent);
            w = left ? x->parent->right : x->parent->left;
        }
        if (!w->left->red && !w->right->red) {
            w->red = 1;
            x = x->parent;
            continue;
        }
        if (!(left ? w->right : w->left)->red) {
            (left ? w->left : w->right)->red = 0;
            w->red = 1;
            left ? rotate_right(t, w) : rotate_left(t, w);
            w = left ? x->parent->right : x->parent->left;
        }
        w->red = x->parent->red;
        x->parent->red = 0;
        (left ? w->right : w->left)->red = 0;
        left ? rotate_left(t, x->parent) : rotate_right(t, x->parent);
        x = t->root;
    }
    x->red = 0;
}

static void tree_delete(tree_t *t, node_t *z)
{
    node_t *y = z, *x;
    int removed_red = y->red;
    if (z->left == NIL) {
        x = z->right;
        transplant(t, z, z->right);
    } else if (z->right == NIL) {
        x = z->left;
        transplant(t, z, z->left);
    } else {
        y = tree_min(z->right);
        removed_red = y->red;
        x = y->right;
        if (y->parent == z) {
            x->parent = y;
        } else {
            transplant(t, y, y->right);
            y->right = z->right;
            y->right->parent = y;
        }
        transplant(t, z, y);
        y->left = z->left;
        y->left->parent = y;
        y->red = z->red;
    }
    if (!removed_red)
        delete_fixup(t, x);
    t->count--;
}

/* Black height of the subtree at x, or -1 if an invariant is broken
 * anywhere in it: keys in (lo, hi), parent links, red-red, black heights. */
static int tree_check(const node_t *x, const node_t *parent, uint64_t lo, uint64_t hi,
                      int lo_open, int hi_open, uint64_t *count)
{
    if (x == NIL)
        return 1;
    if (x->parent != parent || (!lo_open && x->key <= lo) || (!hi_open && x->key >= hi)
        || (x->red && (x->left->red || x->right->red)))
        return -1;
    ++*count;
    int l = tree_check(x->left, x, lo, x->key, lo_open, 0, count);
    int r = tree_check(x->right, x, x->key, hi, 0, hi_open, count);
    if (l < 0 || r != l)
        return -1;
    return l + !x->red;
}

/* ---- nodes and their values -------------------------------------------- */

static unsigned char fill_byte(uint64_t key) { return (unsigned char)(key_hash(key) >> 56); }

static node_t *node_new(state_t *st, uint64_t key)
{
    uint64_t h = key_hash(key);
    unsigned tail_len = (unsigned)(h % 17);
    node_t *z = malloc(sizeof *z + tail_len);
    uint32_t size = (uint32_t)(st->uniform ? bench_range(&st->rng, 16, st->value_max)
                                           : bench_log_range(&st->rng, 16, st->value_max));
    unsigned char *v = malloc(size);
    if (z == NULL || v == NULL)
        bench_oom("bench_rbtree", size);
    z->key = key;
    z->tail_len = (uint8_t)tail_len;
    memset(z->tail, fill_byte(key), tail_len);
    memset(v, fill_byte(key), size);
    memcpy(v, &h, 8);
    memcpy(v + size - 8, &h, 8);
    z->value = v;
    z->value_size = size;
    return z;
}

/* 1 if z's tail and value hold what node_new wrote. */
static int node_intact(const node_t *z)
{
    uint64_t h = key_hash(z->key), head, tail;
    unsigned char b = fill_byte(z->key);
    memcpy(&head, z->value, 8);
    memcpy(&tail, z->value + z->value_size - 8, 8);
    if (head != h || tail != h || (z->value_size >= 24 && z->value[z->value_size / 2] != b))
        return 0;
    for (unsigned i = 0; i < z->tail_len; i++)
        if (z->tail[i] != b)
            return 0;
    return 1;
}

static void node_free(node_t *z)
{
    free(z->value);
    free(z);
}

/* ---- the churn --------------------------------------------------------- */

/* Inserts one node with a new random key (a key already present is drawn
 * again). */
static void add_random(state_t *st)
{
    for (;;) {
        uint64_t key = bench_rand(&st->rng);
        node_t *z = node_new(st, key);
        if (tree_insert(&st->tree, z)) {
            st->keys[st->n++] = key;
            st->hash_in += key_hash(key);
            return;
        }
        node_free(z);
    }
}

static void delete_random(state_t *st)
{
    uint64_t i = bench_rand(&st->rng) % st->n;
    uint64_t key = st->keys[i];
    st->keys[i] = st->keys[--st->n];
    node_t *z = tree_find(&st->tree, key);
    if (z == NIL) {
        st->bad++;
        return;
    }
    tree_delete(&st->tree, z);
    st->bad += !node_intact(z);
    st->hash_in -= key_hash(key);
    node_free(z);
}

/* In order: every node checked, its key and value folded in. */
static void walk(const node_t *x, uint64_t *checksum, uint64_t *hash_out, uint64_t *bad)
{
    while (x != NIL) {
        walk(x->left, checksum, hash_out, bad);
        uint64_t head;
        memcpy(&head, x->value, 8);
        *bad += !node_intact(x);
        *hash_out += head;
        *checksum = bench_fold(bench_fold(*checksum, x->key), head ^ x->value_size);
        x = x->right;
    }
}

static void free_subtree(node_t *x)
{
    while (x != NIL) {
        free_subtree(x->left);
        node_t *right = x->right;
        node_free(x);
        x = right;
    }
}

int main(int argc, char **argv)
{
    uint64_t nodes = 100000, steps = 300000, value_max = 4096, idle_ms = 0, uniform = 0;
    uint64_t seed = BENCH_DEFAULT_SEED;
    const bench_opt_t opts[] = {
        { "nodes", &nodes, "nodes in the tree (the working set)", 0 },
        { "steps", &steps, "delete-one, insert-one steps after the build", 0 },
        { "value-max", &value_max, "largest value, bytes (>= 16; values are 16 B..this)", 0 },
        { "uniform", &uniform, "value sizes uniform in 16 B..--value-max (default: log-uniform)", 1 },
        { "seed", &seed, "PRNG seed", 0 },
        { "idle-ms", &idle_ms, "idle pause after freeing the tree, before reading VmRSS", 0 },
    };
    bench_parse("bench_rbtree", argc, argv, opts, BENCH_NOPTS(opts));
    if (nodes == 0 || value_max < 16 || value_max > (1u << 30)) {
        fprintf(stderr, "bench_rbtree: need --nodes >= 1 and 16 <= --value-max <= 2^30\n");
        return 2;
    }
    state_t st = { .rng = seed, .value_max = value_max, .uniform = uniform, .tree = { .root = NIL } };
    st.keys = malloc(nodes * sizeof *st.keys);
    if (st.keys == NULL)
        bench_oom("bench_rbtree", nodes * sizeof *st.keys);

    double t0 = bench_now();
    while (st.n < nodes)
        add_random(&st);
    for (uint64_t s = 0; s < steps; s++) {
        delete_random(&st);
        add_random(&st);
    }
    uint64_t count = 0, checksum = 0, hash_out = 0;
    int height = tree_check(st.tree.root, NIL, 0, 0, 1, 1, &count);
    walk(st.tree.root, &checksum, &hash_out, &st.bad);
    double work = bench_now() - t0;

    free_subtree(st.tree.root);
    free(st.keys);
    bench_sleep_ms(idle_ms);
    uint64_t end_kb = bench_status_kb("VmRSS");
    int ok = height > 0 && count == nodes && st.tree.count == nodes && st.bad == 0
             && hash_out == st.hash_in && !nil_node.red;
    return bench_report("rbtree", ok, nodes + 2 * steps, checksum, work, idle_ms, end_kb,
                        "nodes=%" PRIu64 " steps=%" PRIu64 " black_height=%d", nodes, steps,
                        height);
}
