/* SPDX-License-Identifier: MIT */
/* test/prefix/stress.c - multi-threaded stress of libebb-prefix: only ebb_
 * names, so it runs under ASan and TSan, whose own malloc stays the C
 * library's (`make check-asan`, `make tsan`).
 *
 * --threads workers (4) run at once. Each keeps a table of SLOTS blocks and
 * runs STEPS random steps: allocate (malloc, calloc, aligned_alloc,
 * posix_memalign, memalign, realloc(NULL)), over the small, medium, wide and
 * large tiers (up to LARGE_MAX), free (free or free_sized), realloc (grow,
 * shrink, to zero), check usable_size and ebb_owns, hand a block to the
 * shared queue, or take one from it and free it: a cross-thread free. Then
 * it leaves half of what it holds in the queue and exits, and the main
 * thread starts a new worker in its place, until --seconds have passed: so
 * blocks are also freed into segments of threads that have exited. One more
 * thread calls ebb_collect, ebb_malloc_trim, ebb_mallopt (the large
 * threshold and the dirty budget), ebb_stats_get, ebb_stats_json and
 * ebb_mallinfo2 all the time, while the purge thread runs with a 2 ms delay
 * (EBB_PURGE_DELAY_MS, unless the environment sets it).
 *
 * Content checks: every block carries a pattern seeded by its address and
 * size (pattern.h), written when it is allocated and verified before every
 * realloc and free, on whichever thread does it; realloc keeps the common
 * prefix, calloc gives zeros, the aligned functions an aligned address. A
 * failure prints what and where, then aborts.
 *
 * Concurrency rule of the test's own structures: a worker's table and PRNG
 * are its own; the queue is a ring under queue_lock (so a block's pattern,
 * written before it is pushed, is visible to the thread that pops it);
 * `stop` is an atomic the main thread sets once. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ebb.h"
#include "pattern.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)
#define SLOTS 192         /* a worker's table */
#define STEPS 1500        /* a worker's steps before it exits */
#define QUEUE_CAP 1024    /* blocks in the shared queue */
#define LARGE_MAX (4 * MiB)
#define MAX_WORKERS 64

typedef struct block_s {
  void *p;
  size_t size; /* as requested */
} block_t;

static void fail(const char *what, const block_t *b, size_t off) {
  fprintf(stderr, "stress_prefix: %s: block %p size %zu offset %zu\n", what, b->p, b->size, off);
  abort();
}

static uint64_t seed_of(const block_t *b) { return (uint64_t)(uintptr_t)b->p * 31 + b->size; }

/* ---- the queue: blocks handed from one thread to another ---------------- */
static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static block_t queue[QUEUE_CAP];
static size_t queue_head, queue_len; /* under queue_lock */

static bool queue_push(block_t b) {
  pthread_mutex_lock(&queue_lock);
  bool ok = queue_len < QUEUE_CAP;
  if (ok) queue[(queue_head + queue_len++) % QUEUE_CAP] = b;
  pthread_mutex_unlock(&queue_lock);
  return ok;
}

static bool queue_pop(block_t *b) {
  pthread_mutex_lock(&queue_lock);
  bool ok = queue_len > 0;
  if (ok) {
    *b = queue[queue_head];
    queue_head = (queue_head + 1) % QUEUE_CAP;
    queue_len--;
  }
  pthread_mutex_unlock(&queue_lock);
  return ok;
}

/* ---- one block ------------------------------------------------------------ */
static uint64_t next_rand(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static size_t pick_size(uint64_t *rng) {
  unsigned tier = next_rand(rng) % 100;
  if (tier < 60) return 1 + next_rand(rng) % 1024;              /* small */
  if (tier < 85) return 1024 + next_rand(rng) % (63 * KiB);     /* medium */
  if (tier < 97) return 64 * KiB + next_rand(rng) % (448 * KiB); /* wide */
  return 512 * KiB + next_rand(rng) % (LARGE_MAX - 512 * KiB);  /* large */
}

static void block_check(const block_t *b, size_t limit, const char *when) {
  size_t off = pat_check(b->p, b->size, limit, seed_of(b));
  if (off != SIZE_MAX) fail(when, b, off);
  if (ebb_malloc_usable_size(b->p) < b->size) fail("usable size below the request", b, 0);
}

static void block_free(block_t *b, uint64_t *rng) {
  block_check(b, b->size, "pattern changed before free");
  if (next_rand(rng) % 4 == 0) ebb_free_sized(b->p, b->size);
  else ebb_free(b->p);
  b->p = NULL;
}

static void block_new(block_t *b, uint64_t *rng) {
  size_t size = pick_size(rng), align = (size_t)16 << (next_rand(rng) % 13); /* 16 B .. 64 KiB */
  bool zero = false;
  void *p = NULL;
  unsigned how = next_rand(rng) % 7;
  switch (how) {
  case 0: p = ebb_calloc(1, size); zero = true; break;
  case 1: p = ebb_aligned_alloc(align, (size + align - 1) / align * align); break;
  case 2: if (ebb_posix_memalign(&p, align, size) != 0) p = NULL; break;
  case 3: p = ebb_memalign(align, size); break;
  case 4: p = ebb_realloc(NULL, size); break;
  default: p = ebb_malloc(size); break;
  }
  if (how == 0 || how >= 4) align = size <= 8 ? 8 : 16; /* the plain functions (8 B: ebb's smallest class) */
  b->p = p;
  b->size = size;
  if (p == NULL) fail("allocation failed", b, 0);
  if (((uintptr_t)p & (align - 1)) != 0) fail("misaligned block", b, align);
  if (zero && pat_check_zero(p, size) != SIZE_MAX) fail("calloc memory not zero", b, pat_check_zero(p, size));
  pat_fill(p, size, seed_of(b));
}

static void block_realloc(block_t *b, uint64_t *rng) {
  block_check(b, b->size, "pattern changed before realloc");
  unsigned how = next_rand(rng) % 8;
  if (how == 0) { /* to zero: frees the block and gives NULL, as glibc's */
    if (ebb_realloc(b->p, 0) != NULL) fail("realloc to zero gave a block", b, 0);
    b->p = NULL;
    return;
  }
  /* grow by up to half (so sizes do not drift up to LARGE_MAX), or shrink */
  size_t nsize = how < 4 || b->size < 2 ? b->size + 1 + next_rand(rng) % (b->size / 2 + 64)
                                        : 1 + next_rand(rng) % b->size;
  if (nsize > LARGE_MAX) nsize = LARGE_MAX;
  block_t old = *b;
  void *q = ebb_realloc(b->p, nsize);
  if (q == NULL) fail("realloc failed", b, nsize);
  b->p = q;
  b->size = nsize;
  block_t moved = {q, old.size}; /* old pattern, new place */
  size_t off = pat_walk(q, old.size, nsize, seed_of(&old), pat_is);
  if (off != SIZE_MAX) fail("realloc lost the prefix", &moved, off);
  pat_fill(q, nsize, seed_of(b));
}

/* ---- workers ------------------------------------------------------------ */
static atomic_bool stop;
static atomic_ulong total_steps, remote_frees;

static void *worker(void *arg) {
  uint64_t rng = (uint64_t)(uintptr_t)arg * 0x2545f4914f6cdd1dull + 1;
  block_t *slots = calloc(SLOTS, sizeof(block_t)); /* the C library's: the test's bookkeeping */
  if (slots == NULL) abort();
  unsigned long remote = 0;
  for (unsigned step = 0; step < STEPS; step++) {
    block_t *b = &slots[next_rand(&rng) % SLOTS];
    unsigned r = next_rand(&rng) % 100;
    if (b->p == NULL) {
      if (r < 70) block_new(b, &rng);
      else if (queue_pop(b)) block_free(b, &rng), remote++;
    } else if (r < 35) {
      block_free(b, &rng);
    } else if (r < 55) {
      block_realloc(b, &rng);
    } else if (r < 75) {
      if (queue_push(*b)) b->p = NULL;
    } else if (r < 85) {
      if (!ebb_owns(b->p)) fail("ebb_owns denies a live block", b, 0);
      block_check(b, b->size, "pattern changed");
    } else {
      block_t t;
      if (queue_pop(&t)) block_free(&t, &rng), remote++;
    }
  }
  /* leave: half to the queue (freed by others once this thread is gone) */
  for (unsigned i = 0; i < SLOTS; i++) {
    if (slots[i].p == NULL) continue;
    if (i % 2 == 0 && queue_push(slots[i])) continue;
    block_free(&slots[i], &rng);
  }
  free(slots);
  atomic_fetch_add(&total_steps, STEPS);
  atomic_fetch_add(&remote_frees, remote);
  return NULL;
}

/* ---- the thread that changes the allocator's state under the workers ---- */
static void *meddler(void *arg) {
  uint64_t rng = (uint64_t)(uintptr_t)arg | 1;
  static const int thresholds[] = {4096, 32768, 131072, 524288};
  static const int budgets[] = {0, 1 << 20, 64 << 20, 1 << 30};
  char json[4096];
  unsigned long calls = 0;
  while (!atomic_load(&stop)) {
    switch (next_rand(&rng) % 8) {
    case 0: ebb_collect(false); break;
    case 1: ebb_collect(true); break;
    case 2: ebb_malloc_trim(0); break;
    case 3: ebb_mallopt(M_MMAP_THRESHOLD, thresholds[next_rand(&rng) % 4]); break;
    case 4: ebb_mallopt(M_TRIM_THRESHOLD, budgets[next_rand(&rng) % 4]); break;
    case 5: {
      ebb_stats_t st;
      if (!ebb_stats_get(&st, sizeof st) || st.version != EBB_STATS_VERSION) {
        fprintf(stderr, "stress_prefix: ebb_stats_get failed\n");
        abort();
      }
      break;
    }
    case 6: ebb_stats_json(json, sizeof(json)); break;
    default: (void)ebb_mallinfo2(); break;
    }
    calls++;
    struct timespec ts = {0, (long)(next_rand(&rng) % 2000000)};
    nanosleep(&ts, NULL);
  }
  return (void *)calls;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(void) {
  fprintf(stderr, "usage: stress_prefix [--threads N (4)] [--seconds S (10)]\n");
  exit(2);
}

int main(int argc, char **argv) {
  unsigned threads = 4;
  double seconds = 10;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = (unsigned)atoi(argv[++i]);
    else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) seconds = atof(argv[++i]);
    else usage();
  }
  if (threads < 1 || threads > MAX_WORKERS || !(seconds > 0)) usage();
  setenv("EBB_PURGE_DELAY_MS", "2", 0); /* read at ebb's first call, below */

  pthread_t med, w[MAX_WORKERS];
  uintptr_t started = 0;
  if (pthread_create(&med, NULL, meddler, (void *)(uintptr_t)0x9e37) != 0) abort();
  for (unsigned i = 0; i < threads; i++)
    if (pthread_create(&w[i], NULL, worker, (void *)++started) != 0) abort();
  /* replace each worker as it exits, oldest first, until the time is up */
  double end = now_s() + seconds;
  for (unsigned i = 0; now_s() < end; i = (i + 1) % threads) {
    pthread_join(w[i], NULL);
    if (pthread_create(&w[i], NULL, worker, (void *)++started) != 0) abort();
  }
  for (unsigned i = 0; i < threads; i++) pthread_join(w[i], NULL);
  atomic_store(&stop, true);
  void *calls;
  pthread_join(med, &calls);

  uint64_t rng = 7;
  block_t b;
  while (queue_pop(&b)) block_free(&b, &rng);
  ebb_mallopt(M_MMAP_THRESHOLD, 512 * 1024);
  ebb_collect(true);
  ebb_stats_t st;
  ebb_stats_get(&st, sizeof st);
  printf("stress_prefix: %lu workers, %lu steps, %lu cross-thread frees, %lu meddler calls; "
         "live at the end %llu B, resident %llu B\n",
         (unsigned long)started, atomic_load(&total_steps), atomic_load(&remote_frees),
         (unsigned long)(uintptr_t)calls, (unsigned long long)st.live, (unsigned long long)st.resident);
  return 0;
}
