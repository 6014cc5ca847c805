/* SPDX-License-Identifier: MIT */
/* test/stats.c - the statistics add up, after every kind of workload of
 * bench/ and of the demo, scaled down and run one after another in one
 * process: micro, churn, prodcons, server, waves, bigbuf, realloc, the
 * seed rows (demo/seed.c), pages carved at their start only, pages
 * purged while sparse and then emptied, and threads that each leave one
 * wide block.
 *
 * After each workload, with part of its data still live (every byte of it
 * written) and the rest freed but kept (free pages, cached segments, the
 * large cache):
 *  - the identities of ebb.h hold (test/stats_check.h);
 *  - resident is within 5% of the anonymous memory the kernel counts for
 *    ebb: smaps_rollup's Anonymous now, minus what was not ebb's at the
 *    start. That baseline is taken once, after a warm-up that starts and
 *    joins as many threads as the workloads use (glibc keeps their stacks
 *    and gives them to the next threads, so the workloads' stacks are in
 *    the baseline) and with this program's own arrays allocated through
 *    ebb (they are ebb's live bytes, not outside memory). Counting only
 *    ebb's own mappings in /proc/self/smaps would need their addresses,
 *    which the public API does not give;
 * then everything is freed and stats_check_collect checks ebb_collect(true)
 * against purged_total and the kernel's drop.
 * Run with EBB_PURGE_THREAD=0 and a long delay (test/CMakeLists.txt): no
 * pass runs between the reads but the ones the test asks for. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ebb.h"
#include "stats_check.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)
#define THREADS 4

static const stats_check_api_t api = {ebb_stats_get_sized, ebb_collect};
static uint64_t outside_ebb; /* anonymous bytes that are not ebb's (baseline) */

static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static void *alloc_touched(size_t size) {
  unsigned char *p = malloc(size);
  REQUIRE(p != NULL);
  memset(p, 0x5b, size);
  return p;
}

/* ---- the checks ------------------------------------------------------- */
/* slack: bytes of difference allowed beyond 5% (small totals, where the
 * kernel's count of memory outside ebb moves by more than 5% of ebb's). */
static void check_within(const char *workload, const char *when, uint64_t slack) {
  char why[512];
  ebb_stats_t st;
  check_context("%s, %s", workload, when);
  CHECK(ebb_stats_get(&st, sizeof st));
  CHECK_MSG(stats_check_identities(&st, why, sizeof why) == 0, "%s", why);
  uint64_t anon = stats_check_anon_bytes(), ebbs = anon > outside_ebb ? anon - outside_ebb : 0;
  char layers[768];
  stats_check_breakdown(&st, layers, sizeof layers);
  CHECK_MSG(stats_check_close(st.resident, ebbs, slack), "the kernel's anonymous memory of ebb %llu KiB against %s",
            (unsigned long long)(ebbs / 1024), layers);
}

static void check_now(const char *workload, const char *when) {
  check_within(workload, when, 0);
}

static void check_collect(const char *workload) {
  char why[512];
  check_context("%s, collect", workload);
  CHECK_MSG(stats_check_collect(&api, true, why, sizeof why) == 0, "%s", why);
}

/* Frees blocks [from, n) of an array. */
static void free_from(void **p, size_t from, size_t n) {
  for (size_t i = from; i < n; i++) {
    free(p[i]);
    p[i] = NULL;
  }
}

/* ---- the workloads ------------------------------------------------------ */
/* micro: batches of small blocks, most freed at once. */
static void micro(void) {
  enum { N = 60000 };
  void **p = alloc_touched(N * sizeof(void *));
  for (size_t i = 0; i < N; i++) p[i] = alloc_touched(16 + (i % 16) * 16);
  free_from(p, N / 8, N);
  check_now("micro", "an eighth live");
  free_from(p, 0, N);
  free(p);
  check_collect("micro");
}

/* churn: a list of small nodes, random ones replaced by other sizes. */
static void churn(void) {
  enum { N = 40000, ROUNDS = 200000 };
  void **p = alloc_touched(N * sizeof(void *));
  uint64_t s = 1;
  for (size_t i = 0; i < N; i++) p[i] = alloc_touched(24 + rng_next(&s) % 500);
  for (size_t r = 0; r < ROUNDS; r++) {
    size_t i = rng_next(&s) % N;
    free(p[i]);
    p[i] = alloc_touched(24 + rng_next(&s) % 500);
  }
  for (size_t i = 0; i < N; i += 2) {
    free(p[i]);
    p[i] = NULL;
  }
  check_now("churn", "half live");
  free_from(p, 0, N);
  free(p);
  check_collect("churn");
}

/* prodcons: one thread allocates, another frees, through a ring. */
enum { RING = 1024, ITEMS = 200000 };
static void *ring[RING];
static _Atomic size_t ring_head, ring_tail;

static void *producer(void *arg) {
  uint64_t s = 7;
  for (size_t i = 0; i < ITEMS; i++) {
    void *b = alloc_touched(16 + rng_next(&s) % 2000);
    while (atomic_load(&ring_head) - atomic_load(&ring_tail) == RING) sched_yield();
    ring[atomic_load(&ring_head) % RING] = b;
    atomic_fetch_add(&ring_head, 1);
  }
  return arg;
}

static void *consumer(void *arg) {
  void **keep = arg;
  for (size_t i = 0; i < ITEMS; i++) {
    while (atomic_load(&ring_tail) == atomic_load(&ring_head)) sched_yield();
    void *b = ring[atomic_load(&ring_tail) % RING];
    atomic_fetch_add(&ring_tail, 1);
    if (i % 16 == 0) keep[i / 16] = b; /* freed later, by the main thread */
    else free(b);
  }
  return NULL;
}

static void prodcons(void) {
  void **keep = alloc_touched(ITEMS / 16 * sizeof(void *));
  pthread_t a, b;
  REQUIRE(pthread_create(&a, NULL, producer, NULL) == 0);
  REQUIRE(pthread_create(&b, NULL, consumer, keep) == 0);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  check_now("prodcons", "a sixteenth live");
  free_from(keep, 0, ITEMS / 16);
  free(keep);
  check_collect("prodcons");
}

/* server: threads allocate 8 B..64 KiB and hand each block to the next
 * thread, which frees it. */
enum { SERVER_N = 6000 };
static void *inbox[THREADS][SERVER_N];

static void *server_thread(void *arg) {
  size_t t = (size_t)(uintptr_t)arg;
  uint64_t s = t + 11;
  for (size_t i = 0; i < SERVER_N; i++) inbox[(t + 1) % THREADS][i] = alloc_touched(8 + rng_next(&s) % (64 * KiB));
  return NULL;
}

static void *server_free(void *arg) {
  size_t t = (size_t)(uintptr_t)arg;
  for (size_t i = 0; i < SERVER_N; i++) {
    if (i % 8 != 0) {
      free(inbox[t][i]);
      inbox[t][i] = NULL;
    }
  }
  return NULL;
}

static void run_threads(void *(*fn)(void *)) {
  pthread_t th[THREADS];
  for (size_t t = 0; t < THREADS; t++) REQUIRE(pthread_create(&th[t], NULL, fn, (void *)(uintptr_t)t) == 0);
  for (size_t t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
}

static void server(void) {
  run_threads(server_thread);
  run_threads(server_free);
  check_now("server", "an eighth live, freed by other threads");
  for (size_t t = 0; t < THREADS; t++) free_from(inbox[t], 0, SERVER_N);
  check_collect("server");
}

/* waves: a live set that grows and shrinks, of small and wide blocks. */
static void waves(void) {
  enum { N = 3000 };
  void **p = alloc_touched(N * sizeof(void *));
  for (int wave = 0; wave < 4; wave++) {
    size_t size = wave % 2 ? 300 : 40 * KiB;
    for (size_t i = 0; i < N; i++) p[i] = alloc_touched(size + i % 64);
    free_from(p, wave == 3 ? N / 4 : 0, N);
  }
  check_now("waves", "a quarter of the last wave live");
  free_from(p, 0, N);
  free(p);
  check_collect("waves");
}

/* bigbuf: large blocks from 256 KiB to 16 MiB, touched, freed into the
 * large cache. */
static void bigbuf(void) {
  void *p[12];
  for (size_t i = 0; i < 12; i++) p[i] = alloc_touched((256 * KiB) << (i % 7));
  free_from(p, 3, 12);
  check_now("bigbuf", "three live, the rest cached");
  free_from(p, 0, 3);
  check_collect("bigbuf");
}

/* realloc: vectors grown by realloc to large sizes, then shrunk. */
static void grow_realloc(void) {
  enum { V = 32 };
  void *v[V];
  for (size_t i = 0; i < V; i++) {
    size_t size = 64;
    v[i] = alloc_touched(size);
    while (size < (i % 4 + 1) * 256 * KiB) {
      size = size * 3 / 2;
      v[i] = realloc(v[i], size);
      REQUIRE(v[i] != NULL);
      memset(v[i], 0x3c, size);
    }
    v[i] = realloc(v[i], size / 3); /* a shrink gives back a tail */
    REQUIRE(v[i] != NULL);
  }
  free_from(v, V / 2, V);
  check_now("realloc", "half live, shrunk");
  free_from(v, 0, V);
  check_collect("realloc");
}

/* The seed rows of demo/seed.c: for each size, blocks of that size (32 MiB
 * in all here) with a byte written in every 4 KiB, then freed; and the
 * sparse row, 1% of 100,000 blocks kept. Written in full here, so that
 * every carved byte is resident. */
static void seed(void) {
  static const size_t sizes[] = {64, 1 * KiB, 16 * KiB, 80 * KiB, 200 * KiB, 1 * MiB};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    size_t n = 32 * MiB / sizes[k];
    void **p = alloc_touched(n * sizeof(void *));
    for (size_t i = 0; i < n; i++) p[i] = alloc_touched(sizes[k]);
    free_from(p, n / 10, n);
    check_now("seed", "a tenth of a size row live");
    free_from(p, 0, n);
    free(p);
  }
  check_collect("seed rows");
  enum { SPARSE = 100000 };
  void **p = alloc_touched(SPARSE * sizeof(void *));
  uint64_t s = 3;
  for (size_t i = 0; i < SPARSE; i++) p[i] = alloc_touched(1 * KiB);
  for (size_t i = 0; i < SPARSE; i++) {
    if (rng_next(&s) % 100 != 0) {
      free(p[i]);
      p[i] = NULL;
    }
  }
  check_now("seed", "sparse, 1% live");
  check_collect("seed sparse, 1% live");
  free_from(p, 0, SPARSE);
  free(p);
  check_collect("seed sparse");
}

/* Pages carved only at their start: a thread takes one block of each
 * small class, in pages made fresh by the collect before, frees them and
 * exits, keeping one block live so that its segment stays (abandoned).
 * The exit releases each empty page, which holds the OS pages its
 * carving touched, not the whole page: counting whole pages put resident
 * 1.8 MiB above the kernel's count here. */
enum { CARVED_CLASSES = 48 };

static void *carve_starts(void *arg) {
  void *p[CARVED_CLASSES];
  void *keep = alloc_touched(16);
  for (size_t i = 0; i < CARVED_CLASSES; i++) p[i] = alloc_touched(32 + 16 * i);
  free_from(p, 0, CARVED_CLASSES);
  return keep ? keep : arg;
}

/* Runs fn in a thread that exits leaving one block live (fn's result),
 * checks within 512 KiB beyond 5%, then frees the block and collects. */
static void after_exited_thread(void *(*fn)(void *), const char *workload, const char *when) {
  pthread_t t;
  void *keep;
  REQUIRE(pthread_create(&t, NULL, fn, NULL) == 0);
  pthread_join(t, &keep);
  check_within(workload, when, 512 * KiB);
  free(keep);
  check_collect(workload);
}

static void partly_carved(void) {
  after_exited_thread(carve_starts, "partly carved", "empty pages of an exited thread, each carved at its start only");
}

/* Pages purged while sparse, then emptied: a thread keeps one block in
 * 64 of 1 KiB through ebb_collect(true), which purges the OS pages around
 * them, then frees those too (each page but the head of its queue goes
 * back to its segment) and exits, keeping one small block live so that
 * its segments stay. An empty page holds what its purge left, not the
 * whole page: counting whole pages read 3.6 MiB above the kernel here. */
enum { SPARSE_N = 8192 };

static void *purge_sparse_then_empty(void *arg) {
  static void *p[SPARSE_N];
  void *keep = alloc_touched(16);
  for (size_t i = 0; i < SPARSE_N; i++) p[i] = alloc_touched(1 * KiB);
  for (size_t i = 0; i < SPARSE_N; i++)
    if (i % 64 != 0) free(p[i]);
  ebb_collect(true);
  for (size_t i = 0; i < SPARSE_N; i += 64) free(p[i]);
  return keep ? keep : arg;
}

static void purged_then_empty(void) {
  after_exited_thread(purge_sparse_then_empty, "purged then empty",
                      "an exited thread's pages, purged while sparse, now empty");
}

/* Threads that each use part of one wide segment and exit: each segment
 * goes to the segment cache with what was touched resident (about 1.8
 * MiB), not its whole 4 MiB. */
static void *one_wide_block(void *arg) {
  void *p[6];
  for (int i = 0; i < 6; i++) p[i] = alloc_touched(300 * KiB);
  free_from(p, 0, 6);
  return arg;
}

static void thread_segments(void) {
  for (int round = 0; round < 4; round++) run_threads(one_wide_block);
  check_now("thread segments", "cached segments of exited threads");
  check_collect("thread segments");
}

/* A dirty cached segment taken again: one thread uses a few pages and
 * exits, its emptied segment goes to the segment cache unpurged; the next
 * thread takes it for one block and exits. The segment's free pages hold
 * what the kernel has resident of them, not their whole size: counting
 * whole pages read 3.7 MiB above the kernel's count here. */
static void *use_few_pages(void *arg) {
  void *p[64];
  for (size_t i = 0; i < 64; i++) p[i] = alloc_touched(1 * KiB);
  free_from(p, 0, 64);
  return arg;
}

static void *keep_one(void *arg) {
  void *keep = alloc_touched(16);
  return keep ? keep : arg;
}

static void cached_segment_reused(void) {
  pthread_t t;
  REQUIRE(pthread_create(&t, NULL, use_few_pages, NULL) == 0);
  pthread_join(t, NULL);
  after_exited_thread(keep_one, "cached segment reused", "a dirty cached segment's free pages");
}

/* ---- main -------------------------------------------------------------- */
static void *touch_stack(void *arg) {
  volatile char pad[64 * 1024];
  memset((char *)pad, 1, sizeof pad);
  return arg;
}

int main(void) {
  free(alloc_touched(64));
  run_threads(touch_stack); /* the stacks the workloads' threads reuse */
  ebb_collect(true);
  ebb_stats_t st;
  CHECK(ebb_stats_get(&st, sizeof st));
  outside_ebb = stats_check_anon_bytes() - st.resident;
  REQUIRE(outside_ebb > 0);
  micro();
  churn();
  prodcons();
  server();
  waves();
  bigbuf();
  grow_realloc();
  seed();
  partly_carved();
  purged_then_empty();
  thread_segments();
  cached_segment_reused();
  return check_summary("test_stats");
}
