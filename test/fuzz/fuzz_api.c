/* SPDX-License-Identifier: MIT */
/* test/fuzz/fuzz_api.c - libFuzzer target over libebb-prefix (`make fuzz`;
 * test/fuzz/README.md). Built with clang -fsanitize=fuzzer,address,undefined.
 *
 * The input is a program: a sequence of operations, each one byte (op % OPS)
 * followed by the bytes of its arguments; a missing byte reads as 0. The
 * operations act on SLOTS slots of blocks: malloc, calloc, aligned_alloc /
 * posix_memalign / memalign (valid and invalid alignments, 1 B .. 4 MiB),
 * valloc / pvalloc, realloc (grow, shrink, to zero) and reallocarray, free
 * and free_sized, handing a block to a worker thread that checks and frees
 * it (a cross-thread free), usable_size and ebb_owns checks, ebb_collect /
 * ebb_malloc_trim, mallopt (large threshold, dirty budget), statistics,
 * and requests that must fail (above PTRDIFF_MAX, calloc overflow). Sizes
 * come in four tiers: small (0..1 KiB), medium (..64 KiB), wide (..512
 * KiB) and large (..LARGE_MAX); live blocks are bounded by LIVE_MAX bytes.
 *
 * Content checks: every live block holds a pattern seeded by its id
 * (test/prefix/pattern.h), verified before every realloc and free; realloc
 * must keep the common prefix, calloc give zeros, the aligned functions an
 * aligned address, usable_size cover the request. Any failure prints what
 * and where and aborts, which libFuzzer reports as a crash with the input.
 * At the end of each input every block is freed, the worker has emptied its
 * queue and the options are back at their defaults: inputs do not depend on
 * each other.
 *
 * Concurrency: the slots belong to the fuzzing thread; a block handed over
 * goes through `handoff`, a ring under handoff_lock; `pending` counts what
 * the worker has not freed yet (under the same lock). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebb.h"
#include "../prefix/pattern.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)
#define SLOTS 32
#define LARGE_MAX (4 * MiB)
#define LIVE_MAX (48 * MiB)
#define HANDOFF_CAP 64
#define OPS 20

typedef struct slot_s {
  void *p;
  size_t size;  /* as requested */
  uint64_t id;  /* pattern seed */
} slot_t;

static void fail(const char *what, const slot_t *s, size_t detail) {
  fprintf(stderr, "fuzz_api: %s: block %p size %zu id %llu (%zu)\n", what, s->p, s->size,
          (unsigned long long)s->id, detail);
  abort();
}

static void check_block(const slot_t *s, size_t limit, const char *when) {
  size_t off = pat_check(s->p, s->size, limit, s->id);
  if (off != SIZE_MAX) fail(when, s, off);
  if (ebb_malloc_usable_size(s->p) < s->size) fail("usable size below the request", s, ebb_malloc_usable_size(s->p));
}

/* ---- the worker: frees what it is handed ------------------------------- */
static pthread_mutex_t handoff_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t handoff_more = PTHREAD_COND_INITIALIZER, handoff_done = PTHREAD_COND_INITIALIZER;
static slot_t handoff[HANDOFF_CAP];
static size_t handoff_len, pending; /* under handoff_lock */

static void *worker(void *arg) {
  (void)arg;
  for (;;) {
    pthread_mutex_lock(&handoff_lock);
    while (handoff_len == 0) pthread_cond_wait(&handoff_more, &handoff_lock);
    slot_t s = handoff[--handoff_len];
    pthread_mutex_unlock(&handoff_lock);
    check_block(&s, s.size, "pattern changed before a cross-thread free");
    ebb_free(s.p);
    pthread_mutex_lock(&handoff_lock);
    if (--pending == 0) pthread_cond_signal(&handoff_done);
    pthread_mutex_unlock(&handoff_lock);
  }
  return NULL;
}

static bool hand_over(const slot_t *s) {
  pthread_mutex_lock(&handoff_lock);
  bool ok = handoff_len < HANDOFF_CAP;
  if (ok) {
    handoff[handoff_len++] = *s;
    pending++;
    pthread_cond_signal(&handoff_more);
  }
  pthread_mutex_unlock(&handoff_lock);
  return ok;
}

static void wait_worker(void) {
  pthread_mutex_lock(&handoff_lock);
  while (pending > 0) pthread_cond_wait(&handoff_done, &handoff_lock);
  pthread_mutex_unlock(&handoff_lock);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  setenv("EBB_PURGE_DELAY_MS", "1", 0); /* the purge thread works during every input */
  pthread_t t;
  if (pthread_create(&t, NULL, worker, NULL) != 0) abort();
  pthread_detach(t);
  return 0;
}

/* ---- reading the input ------------------------------------------------- */
typedef struct input_s {
  const uint8_t *data;
  size_t size, pos;
} input_t;

static unsigned byte(input_t *in) { return in->pos < in->size ? in->data[in->pos++] : 0; }

static size_t u16(input_t *in) {
  size_t lo = byte(in);
  return lo | (size_t)byte(in) << 8;
}

/* A size: one byte picks the tier (its low two bits) and two more the size within it. */
static size_t read_size(input_t *in) {
  unsigned tier = byte(in) & 3;
  size_t v = u16(in);
  switch (tier) {
  case 0: return v % (KiB + 1);
  case 1: return KiB + v % (63 * KiB);
  case 2: return 64 * KiB + (v * 8) % (448 * KiB);
  default: return 512 * KiB + (v * 64 + byte(in)) % (LARGE_MAX - 512 * KiB);
  }
}

/* ---- the operations ------------------------------------------------------ */
static slot_t slots[SLOTS];
static size_t live_bytes;
static uint64_t next_id;

static void put(slot_t *s, void *p, size_t size, size_t align, bool zero) {
  slot_t n = {p, size, ++next_id};
  if (p == NULL) {
    if (size <= LARGE_MAX) fail("allocation failed", &n, align);
    return;
  }
  if (((uintptr_t)p & (align - 1)) != 0) fail("misaligned block", &n, align);
  if (zero && pat_check_zero(p, size) != SIZE_MAX) fail("calloc memory not zero", &n, pat_check_zero(p, size));
  pat_fill(p, size, n.id);
  *s = n;
  live_bytes += size;
}

static void drop(slot_t *s) {
  live_bytes -= s->size;
  s->p = NULL;
}

static void release(slot_t *s, bool sized) {
  check_block(s, s->size, "pattern changed before free");
  if (sized) ebb_free_sized(s->p, s->size);
  else ebb_free(s->p);
  drop(s);
}

static size_t min_align(size_t size) { return size <= 8 ? 8 : 16; }

static bool is_pow2(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

static void op_alloc(slot_t *s, unsigned op, input_t *in) {
  size_t size = read_size(in);
  if (live_bytes + size > LIVE_MAX) return;
  unsigned a = byte(in);
  size_t align = (size_t)1 << (a % 23); /* 1 B .. 4 MiB */
  size_t ask = (a & 0x80) != 0 ? align + 8 : align;
  bool bad = !is_pow2(ask); /* must fail (memalign: rounds up) */
  void *p = NULL;
  errno = 0;
  switch (op) {
  case 0: put(s, ebb_malloc(size), size, min_align(size), false); return;
  case 1: {
    size_t n = 1 + a % 16, each = size / n;
    put(s, ebb_calloc(n, each), n * each, min_align(n * each), true);
    return;
  }
  case 2:
    p = ebb_aligned_alloc(ask, size);
    if (bad && (p != NULL || errno != EINVAL)) fail("aligned_alloc took a bad alignment", s, ask);
    break;
  case 3: {
    int rc = ebb_posix_memalign(&p, ask, size);
    bad = bad || ask < sizeof(void *);
    if (bad != (rc == EINVAL)) fail("posix_memalign: wrong answer to the alignment", s, ask);
    if (rc != 0) p = NULL;
    break;
  }
  case 4:
    p = ebb_memalign(ask, size);
    if (bad) { /* rounded up to the next power of two */
      align *= 2;
      bad = false;
    }
    break;
  case 5: p = ebb_valloc(size); align = 4096; break;
  default: p = ebb_pvalloc(size); align = 4096; size = size == 0 ? 4096 : (size + 4095) / 4096 * 4096; break;
  }
  if (bad) return;
  put(s, p, size, align, false);
}

static void op_realloc(slot_t *s, unsigned how, input_t *in) {
  check_block(s, s->size, "pattern changed before realloc");
  if (how == 2) { /* to zero: frees, gives NULL */
    if (ebb_realloc(s->p, 0) != NULL) fail("realloc to zero gave a block", s, 0);
    drop(s);
    return;
  }
  size_t nsize = read_size(in);
  if (live_bytes - s->size + nsize > LIVE_MAX) return;
  size_t count = how == 3 ? 1 + nsize % 7 : 1, each = nsize / count;
  nsize = count * each;
  void *q = how == 3 ? ebb_reallocarray(s->p, count, each) : ebb_realloc(s->p, nsize);
  if (nsize == 0) { /* to zero after all */
    if (q != NULL) fail("realloc to zero gave a block", s, 0);
    drop(s);
    return;
  }
  if (q == NULL) fail("realloc failed", s, nsize);
  slot_t moved = *s;
  moved.p = q;
  size_t off = pat_check(q, s->size, nsize, s->id);
  if (off != SIZE_MAX) fail("realloc lost the prefix", &moved, off);
  if (((uintptr_t)q & (min_align(nsize) - 1)) != 0) fail("realloc gave a misaligned block", &moved, nsize);
  live_bytes = live_bytes - s->size + nsize;
  s->p = q;
  s->size = nsize;
  pat_fill(q, nsize, s->id);
}

static void op_must_fail(unsigned how, slot_t *s) {
  errno = 0;
  void *p;
  switch (how % 4) {
  case 0: p = ebb_malloc((size_t)PTRDIFF_MAX + 1); break;
  case 1: p = ebb_calloc(SIZE_MAX / 2, 3); break;
  case 2: p = ebb_aligned_alloc(64, SIZE_MAX - 32); break;
  default:
    if (s->p == NULL) return;
    p = ebb_realloc(s->p, (size_t)PTRDIFF_MAX + 1);
    if (p == NULL) check_block(s, s->size, "a failed realloc changed the block");
    break;
  }
  if (p != NULL || errno != ENOMEM) fail("an impossible request did not fail with ENOMEM", s, how);
}

static void op_control(unsigned how) {
  static const int thresholds[] = {4096, 65536, 131072, 524288};
  static const int budgets[] = {0, 1 << 20, 64 << 20, 1 << 30};
  switch (how % 8) {
  case 0: ebb_collect(false); break;
  case 1: ebb_collect(true); break;
  case 2: ebb_malloc_trim(0); break;
  case 3: ebb_mallopt(M_MMAP_THRESHOLD, thresholds[(how >> 3) % 4]); break;
  case 4: ebb_mallopt(M_TRIM_THRESHOLD, budgets[(how >> 3) % 4]); break;
  case 5: {
    ebb_stats_t st;
    if (!ebb_stats_get(&st, sizeof st) || st.live < live_bytes) {
      slot_t none = {NULL, live_bytes, 0};
      fail("statistics count fewer live bytes than are live", &none, st.live);
    }
    break;
  }
  case 6: {
    char buf[2048];
    size_t n = ebb_stats_json(buf, sizeof(buf));
    if (n == 0 || buf[0] != '{') abort();
    break;
  }
  default: (void)ebb_mallinfo2(); break;
  }
}

static void run_op(input_t *in) {
  unsigned op = byte(in) % OPS;
  slot_t *s = &slots[byte(in) % SLOTS];
  if (op <= 6) { /* allocation ops: on an empty slot */
    if (s->p != NULL) release(s, false);
    op_alloc(s, op, in);
    return;
  }
  if (op == 17) { op_control(byte(in)); return; }
  if (op == 18) { op_must_fail(byte(in), s); return; }
  if (op == 19) { /* ebb_owns: true for a live block, false inside it */
    if (s->p == NULL) return;
    if (!ebb_owns(s->p)) fail("ebb_owns denies a live block", s, 0);
    if (s->size > 16 && ebb_owns((char *)s->p + 8)) fail("ebb_owns takes an interior pointer", s, 8);
    return;
  }
  if (s->p == NULL) return;
  switch (op) {
  case 7: case 8: case 9: case 10: op_realloc(s, op - 7, in); break;
  case 11: release(s, false); break;
  case 12: release(s, true); break;
  case 13: case 14: /* cross-thread free */
    check_block(s, s->size, "pattern changed before a hand-over");
    if (hand_over(s)) drop(s);
    break;
  default: check_block(s, s->size, "pattern changed"); break; /* 15, 16 */
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  input_t in = {data, size, 0};
  while (in.pos < in.size) run_op(&in);
  for (size_t i = 0; i < SLOTS; i++)
    if (slots[i].p != NULL) release(&slots[i], false);
  wait_worker();
  ebb_mallopt(M_MMAP_THRESHOLD, 512 * 1024);
  ebb_mallopt(M_TRIM_THRESHOLD, 1 << 30);
  return 0;
}
