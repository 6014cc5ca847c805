/* SPDX-License-Identifier: MIT */
/* test/purge.c - memory goes back to the OS: resident memory (RSS) measured
 * from /proc, never assumed.
 *
 * Each case runs in its own process (this program exec'd again with
 * `--case X`), so that options set from EBB_ variables at initialisation
 * and the purge thread's state are the case's own. EBB_ variables of the
 * caller's environment are dropped; a case adds the ones it needs.
 *
 *   a  idle main thread: 128 MiB of 1 KiB, 64 KiB, 256 KiB blocks freed, then
 *      no allocator call: RSS back near the start (the purge thread)
 *   b  idle other thread: same, the thread blocked on a condition variable
 *   c  exited thread: its blocks freed remotely after it exited
 *   d  sparse pages: 1 block in 100 kept, the free OS pages around it purged
 *   e  statistics add up: ebb's resident estimate against RSS
 *   f  ebb_collect(true) and malloc_trim(0) purge at once
 *   g  a hot malloc/free/realloc loop does not purge per iteration
 *   h  mallopt(M_TRIM_THRESHOLD, 0): zero dirty budget, purge at once
 *   i  EBB_PURGE_THREAD=0: no idle purge, no thread; the next call purges
 *   j  fork while the purge thread runs: the child gets one lazily
 *   k  EBB_MADVISE=free: counted as purged_lazy_total
 *   l  the large cache: a loop does not map per iteration; unmapped later;
 *      a much bigger cached block is cut down to serve a smaller request
 *   m  a page parked in place while ebb_collect runs on another thread: the
 *      purge thread must not sleep through it (the pass had the hint at 0)
 *   n  a page parked in place while the queue in front of it changes (a full
 *      page comes back): blocks keep their contents, delay 0
 *   o  a cached segment reused before its purge: its other (dirty) pages are
 *      offered and go back too
 *   p  main calls pthread_exit with the purge thread running and no other
 *      thread: the process exits with status 0 within a second, atexit
 *      handlers run (as under glibc)
 *   q  the same in a fork child made from a worker thread, whose function
 *      returns
 *   r  the purge thread leaves once the program is idle, and comes back at
 *      the next free
 *   s  one block of every size class kept, 2 MiB of each freed forward, in
 *      reverse and at random: the pages being allocated from give their
 *      free memory back too, after one idle second and at malloc_trim(0)
 *   t  the same in a thread that stays alive and idle
 *   u  a thread that keeps running without allocator calls holds its free
 *      blocks; its next call (asked after a quiet second) returns them
 *   v  a thread blocked inside a signal handler (it may have interrupted a
 *      malloc) is not taken over; its next call returns its pages' memory
 *   w  threads one after another, each freeing the blocks the one before
 *      left: the next thread adopts their segments and reuses the free
 *      memory there before the purge delay (no purge, few segments)
 *   x  an exited thread's empty pages: the next thread's first block of a
 *      class comes from the page that held that class
 *   y  a thread that needs a medium page adopts an abandoned medium
 *      segment, not the small one above it on the abandoned list
 *
 * Waits poll RSS (open/read, no allocation) up to a generous deadline, so a
 * loaded machine only makes a case slower, not fail. Usage:
 *   test_purge            every case
 *   test_purge a c        some cases
 *   test_purge --case a   one case in this process (what the runner execs)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cases.h"
#include "ebb.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define SLACK (2 * MiB)          /* RSS "back near the start" */
#define THREAD_SLACK (3 * MiB)   /* ... with a thread's stack and heap in it */
#define WAIT_MS 3000             /* deadline of a wait for the purge (1 s asked, slack for CI) */

/* ---- measuring, without allocating -------------------------------------- */
static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Reads a small /proc file into buf (NUL-terminated) with plain system
 * calls: stdio would allocate, and some cases must not call the allocator. */
static size_t read_proc(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  size_t len = 0;
  if (fd >= 0) {
    ssize_t n;
    while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) > 0) len += (size_t)n;
    close(fd);
  }
  buf[len] = 0;
  return len;
}

/* The number after `key` in a /proc file, or 0. */
static size_t proc_field(const char *path, const char *key) {
  char buf[4096];
  read_proc(path, buf, sizeof(buf));
  const char *p = strstr(buf, key);
  return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

/* Resident bytes, from statm (the second field, in pages). */
static size_t rss(void) {
  char buf[128];
  read_proc("/proc/self/statm", buf, sizeof(buf));
  char *p = strchr(buf, ' ');
  return p ? strtoull(p + 1, NULL, 10) * (size_t)sysconf(_SC_PAGESIZE) : 0;
}

/* Resident bytes, from smaps_rollup (kB, exact per mapping). */
static size_t rss_rollup(void) { return proc_field("/proc/self/smaps_rollup", "\nRss:") * KiB; }

static size_t threads_now(void) { return proc_field("/proc/self/status", "\nThreads:"); }

static long mib(size_t bytes) { return (long)(bytes / MiB); }
static long mib_above(size_t bytes, size_t base) { return bytes > base ? (long)((bytes - base) / MiB) : 0; }

/* Polls RSS until it is at most `limit`; returns the milliseconds it took,
 * or -1 if it was still above after `timeout_ms`. No allocator calls. */
static long wait_rss_at_most(size_t limit, unsigned timeout_ms) {
  uint64_t t0 = now_ms();
  for (;;) {
    if (rss() <= limit) return (long)(now_ms() - t0);
    if (now_ms() - t0 >= timeout_ms) return -1;
    sleep_ms(5);
  }
}

static ebb_stats_t stats(void) {
  ebb_stats_t st;
  ebb_stats_get(&st, sizeof st);
  return st;
}


/* Allocates n blocks of `size` and writes every byte. False if one failed. */
static bool alloc_touch(void **ptrs, size_t n, size_t size) {
  for (size_t i = 0; i < n; i++) {
    ptrs[i] = malloc(size);
    if (!CHECK_MSG(ptrs[i] != NULL, "malloc(%zu) #%zu", size, i)) return false;
    memset(ptrs[i], (int)(i | 1), size);
  }
  return true;
}

static void free_all(void **ptrs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(ptrs[i]);
    ptrs[i] = NULL;
  }
}

/* Frees all but one block in `keep_every` (every MiB, say): the segments
 * stay, so the freed memory waits in offered pages for the purge policy
 * instead of going back with a released segment (ebb may unmap a free
 * segment at once when its segment cache is full). Returns the bytes kept. */
static size_t free_all_but(void **ptrs, size_t n, size_t size, size_t keep_every) {
  size_t kept = 0;
  for (size_t i = 0; i < n; i++) {
    if (i % keep_every == 0) {
      kept += size;
      continue;
    }
    free(ptrs[i]);
    ptrs[i] = NULL;
  }
  return kept;
}

/* An untouched large block that raises the memory in use, and with it the
 * dirty budget (EBB_DIRTY_FRACTION), without raising RSS. */
static void *ballast(void) {
  void *b = malloc(256 * MiB);
  CHECK(b != NULL);
  return b;
}

/* ---- a. the idle main thread ------------------------------------------- */
static void idle_round(size_t size, size_t total) {
  size_t n = total / size, start = rss();
  void **ptrs = ptr_array(n);
  if (!alloc_touch(ptrs, n, size)) return;
  size_t peak = rss();
  CHECK_MSG(peak >= start + total * 3 / 4, "size %zu: peak RSS only %ld MiB above start", size, mib_above(peak, start));
  free_all(ptrs, n);
  ptr_array_free(ptrs, n);
  long ms = wait_rss_at_most(start + SLACK, WAIT_MS);
  CHECK_MSG(ms >= 0, "size %zu: idle for %d ms, RSS still %ld MiB above start (peak +%ld MiB)", size, WAIT_MS,
            mib_above(rss(), start), mib_above(peak, start));
  if (ms >= 0) printf("  a: %zu B blocks, 128 MiB: back near start after %ld ms\n", size, ms);
}

static void case_idle_main(void) {
  idle_round(1 * KiB, 128 * MiB);
  idle_round(64 * KiB, 128 * MiB);
  idle_round(256 * KiB, 128 * MiB);
}

/* ---- b. an idle other thread ------------------------------------------- */
static pthread_mutex_t sync_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sync_cond = PTHREAD_COND_INITIALIZER;
static int sync_step; /* 1: the thread freed its memory; 2: main says go on */

static void step_set(int step) {
  pthread_mutex_lock(&sync_lock);
  sync_step = step;
  pthread_cond_broadcast(&sync_cond);
  pthread_mutex_unlock(&sync_lock);
}

static void step_wait(int step) {
  pthread_mutex_lock(&sync_lock);
  while (sync_step < step) pthread_cond_wait(&sync_cond, &sync_lock);
  pthread_mutex_unlock(&sync_lock);
}

static void *idle_thread(void *arg) {
  (void)arg;
  size_t n = 128 * MiB / (4 * KiB);
  void **ptrs = ptr_array(n);
  if (alloc_touch(ptrs, n, 4 * KiB)) free_all(ptrs, n);
  ptr_array_free(ptrs, n);
  step_set(1);
  step_wait(2); /* alive and idle: no allocator call until main says so */
  return NULL;
}

static void case_idle_thread(void) {
  size_t start = rss();
  pthread_t t;
  if (!CHECK(pthread_create(&t, NULL, idle_thread, NULL) == 0)) return;
  step_wait(1);
  long ms = wait_rss_at_most(start + THREAD_SLACK, WAIT_MS);
  CHECK_MSG(ms >= 0, "thread idle for %d ms, RSS still %ld MiB above start", WAIT_MS, mib_above(rss(), start));
  if (ms >= 0) printf("  b: other thread's 128 MiB back after %ld ms\n", ms);
  step_set(2);
  pthread_join(t, NULL);
}

/* ---- c. an exited thread ------------------------------------------------ */
typedef struct {
  void **ptrs;
  size_t n, size;
} exit_job_t;

static void *exiting_thread(void *arg) {
  exit_job_t *job = arg;
  alloc_touch(job->ptrs, job->n, job->size);
  return NULL; /* exits without freeing */
}

/* One round: the thread allocates 128 MiB and exits; main frees it all. */
static void exited_round(const char *when) {
  size_t start = rss();
  exit_job_t job = {NULL, 128 * MiB / 512, 512};
  job.ptrs = ptr_array(job.n);
  pthread_t t;
  if (!CHECK(pthread_create(&t, NULL, exiting_thread, &job) == 0)) return;
  pthread_join(t, NULL);
  size_t peak = rss();
  CHECK_MSG(peak >= start + 96 * MiB, "peak RSS only %ld MiB above start", mib_above(peak, start));
  free_all(job.ptrs, job.n); /* remote frees to abandoned segments */
  ptr_array_free(job.ptrs, job.n);
  long ms = wait_rss_at_most(start + THREAD_SLACK, WAIT_MS);
  CHECK_MSG(ms >= 0, "%s: exited thread's blocks freed, idle %d ms: RSS still %ld MiB above start (abandoned %zu)",
            when, WAIT_MS, mib_above(rss(), start), (size_t)stats().abandoned_count);
  if (ms >= 0) printf("  c: %s: exited thread's 128 MiB back after %ld ms\n", when, ms);
}

static void case_exited_thread(void) {
  /* Nothing was ever offered: the purge thread has not started. */
  exited_round("purge thread not started yet");
  /* Again with the purge thread running and idle (a free parks a page). */
  free(malloc(100));
  sleep_ms(300);
  CHECK_MSG(threads_now() >= 2, "%zu threads: the purge thread should be running", threads_now());
  exited_round("purge thread running");
}

/* ---- d. sparse pages ---------------------------------------------------- */
static void case_sparse(void) {
  enum { COUNT = 100000, KEEP_EVERY = 100 };
  size_t size = 4 * KiB, start = rss();
  void **ptrs = ptr_array(COUNT);
  if (!alloc_touch(ptrs, COUNT, size)) return;
  size_t live = 0;
  for (size_t i = 0; i < COUNT; i++) {
    if (i % KEEP_EVERY == 0) {
      live += size;
      continue;
    }
    free(ptrs[i]);
    ptrs[i] = NULL;
  }
  size_t limit = start + 2 * live + 4 * MiB;
  long ms = wait_rss_at_most(limit, WAIT_MS);
  CHECK_MSG(ms >= 0, "%zu KiB live in sparse pages: RSS %ld MiB above start after %d ms (limit +%ld MiB)", live / KiB,
            mib_above(rss(), start), WAIT_MS, mib_above(limit, start));
  printf("  d: sparse pages down to +%ld MiB (live %zu KiB) after %ld ms\n", mib_above(rss(), start), live / KiB, ms);
  for (size_t i = 0; i < COUNT; i += KEEP_EVERY) {
    if (!CHECK(((unsigned char *)ptrs[i])[size - 1] == (unsigned char)(i | 1))) break; /* content intact */
  }
  free_all(ptrs, COUNT);
  ptr_array_free(ptrs, COUNT);
}

/* ---- e. statistics add up ----------------------------------------------- */
static bool close_enough(size_t a, size_t b) {
  size_t diff = a > b ? a - b : b - a, big = a > b ? a : b;
  return diff <= big / 20 + MiB;
}

static long delta(size_t now, size_t base) { return (long)now - (long)base; }

static void case_stats(void) {
  static const size_t sizes[] = {24, 200, 1000, 3000, 7000, 20000, 60000, 150000, 400000, 1 * MiB, 3 * MiB};
  enum { NSIZES = sizeof(sizes) / sizeof(sizes[0]), MAXN = 100000 };
  void **ptrs = ptr_array(MAXN);
  memset(ptrs, 0, MAXN * sizeof(void *)); /* resident before the baseline */
  ebb_stats_t s0 = stats();
  size_t r0 = rss_rollup(), total = 0, n = 0;
  while (total < 200 * MiB && n < MAXN) {
    size_t size = sizes[n % NSIZES];
    void *p = malloc(size);
    if (!CHECK(p != NULL)) break;
    size_t usable = malloc_usable_size(p);
    memset(p, 0x5a, usable); /* the whole block: stats count size classes */
    ptrs[n++] = p;
    total += usable;
  }
  ebb_stats_t s1 = stats();
  size_t r1 = rss_rollup();
  long d_est = delta(s1.resident, s0.resident), d_rss = delta(r1, r0);
  CHECK_MSG(d_rss > 0 && d_est > 0 && close_enough((size_t)d_est, (size_t)d_rss),
            "resident estimate grew %ld KiB, RSS %ld KiB", d_est / 1024, d_rss / 1024);
  CHECK_MSG(s1.live >= s0.live + total && s1.live <= s0.live + total + total / 20, "live %zu KiB, allocated %zu KiB",
            (size_t)(s1.live - s0.live) / KiB, total / KiB);
  CHECK(s1.mapped >= s1.resident);
  CHECK(s1.resident == s1.live + s1.free_in_pages + s1.segment_cache + s1.large_cache + s1.metadata);
  CHECK(s1.resident + s1.purged_or_untouched == s1.mapped);
  printf("  e: +%zu MiB live: resident estimate +%ld KiB, RSS +%ld KiB\n", total / MiB, d_est / 1024,
         d_rss / 1024);

  free_all(ptrs, n);
  size_t released = ebb_collect(true);
  ebb_stats_t s2 = stats();
  size_t r2 = rss_rollup();
  CHECK_MSG(s2.live <= s0.live + 64 * KiB, "live %zu KiB after freeing everything (start %zu KiB)",
            (size_t)s2.live / KiB, (size_t)s0.live / KiB);
  /* Segments the collection emptied may enter the segment cache (counted
   * dirty until the next pass): at most EBB_SEGMENT_CACHE (4 in this
   * case's environment) of them. */
  CHECK_MSG(s2.dirty <= 4 * 4 * MiB + MiB, "dirty %zu KiB right after ebb_collect(true) (segment_cache %zu KiB)",
            (size_t)s2.dirty / KiB, (size_t)s2.segment_cache / KiB);
  CHECK(s2.mapped >= s2.resident);
  d_est = delta(s2.resident, s0.resident);
  d_rss = delta(r2, r0);
  CHECK_MSG(labs(d_est - d_rss) <= 2 * (long)MiB,
            "after ebb_collect(true): resident estimate %+ld KiB from start, RSS %+ld KiB", d_est / 1024, d_rss / 1024);
  printf("  e: after ebb_collect(true): released %zu KiB, dirty %zu KiB, segment_cache %zu KiB, RSS %+ld KiB\n",
         released / KiB, (size_t)s2.dirty / KiB, (size_t)s2.segment_cache / KiB, d_rss / 1024);
  ptr_array_free(ptrs, MAXN);
}

/* ---- f. ebb_collect and malloc_trim purge at once ------------------------ */
/* Env: a long delay and a large dirty budget, so nothing but the call purges. */
static void case_collect(void) {
  void *keep = ballast();
  size_t n = 64 * MiB / (4 * KiB), start = rss();
  void **ptrs = ptr_array(n);
  if (!alloc_touch(ptrs, n, 4 * KiB)) return;
  size_t kept = free_all_but(ptrs, n, 4 * KiB, 256);
  size_t before = rss();
  CHECK_MSG(before >= start + 48 * MiB, "freed memory already gone before ebb_collect: +%ld MiB",
            mib_above(before, start));
  size_t released = ebb_collect(true);
  size_t after = rss();
  CHECK_MSG(released >= 48 * MiB, "ebb_collect(true) released %zu KiB", released / KiB);
  CHECK_MSG(after <= start + kept + SLACK, "RSS %ld MiB above start right after ebb_collect(true)",
            mib_above(after, start));
  free_all(ptrs, n);

  if (!alloc_touch(ptrs, n, 4 * KiB)) return;
  kept = free_all_but(ptrs, n, 4 * KiB, 256);
  before = rss();
  CHECK_MSG(before >= start + 48 * MiB, "freed memory already gone before malloc_trim: +%ld MiB",
            mib_above(before, start));
  int trimmed = malloc_trim(0);
  after = rss();
  CHECK_MSG(trimmed == 1, "malloc_trim(0) = %d with 64 MiB to release", trimmed);
  CHECK_MSG(after <= start + kept + SLACK, "RSS %ld MiB above start right after malloc_trim(0)",
            mib_above(after, start));
  free_all(ptrs, n);
  malloc_trim(0);
  CHECK_MSG(trimmed == 0 || trimmed == 1, "malloc_trim(0) = %d with nothing left", trimmed);
  /* Segments a call empties may wait in the cache for the next one; a few
   * calls in a row leave nothing to release. */
  int calls = 1;
  while (trimmed != 0 && calls < 5) {
    trimmed = malloc_trim(0);
    calls++;
  }
  CHECK_MSG(trimmed == 0, "malloc_trim(0) still returns %d after %d calls in a row", trimmed, calls);
  ptr_array_free(ptrs, n);
  free(keep);
}

/* ---- g. a hot loop does not purge ------------------------------------------ */
static void case_hot_loop(void) {
  static const size_t sizes[] = {16, 100, 1000, 5000, 40000, 200000};
  enum { NSIZES = sizeof(sizes) / sizeof(sizes[0]) };
  /* Warm up: every page the loop uses exists, anything earlier is purged. */
  for (int i = 0; i < NSIZES; i++) free(malloc(sizes[i]));
  sleep_ms(200);
  ebb_stats_t s0 = stats();
  uint64_t t0 = now_ms();
  char *small = malloc(2000), *wide = malloc(100000);
  unsigned long iters = 0;
  while (iters < 200000 || now_ms() - t0 < 300) {
    for (int i = 0; i < NSIZES; i++) {
      char *p = malloc(sizes[i]);
      p[0] = (char)iters;
      free(p);
    }
    small = realloc(small, iters % 2 ? 2000 : 6000); /* small tier, up and down */
    wide = realloc(wide, iters % 2 ? 100000 : 300000); /* wide tier */
    if (!CHECK(small != NULL && wide != NULL)) return;
    small[0] = wide[0] = 1;
    iters++;
    if (iters > 5000000) break;
  }
  free(small);
  free(wide);
  ebb_stats_t s1 = stats();
  uint64_t calls = s1.madvise_calls - s0.madvise_calls;
  CHECK_MSG(calls < 50, "%lu iterations in %lu ms made %lu madvise calls", iters, (unsigned long)(now_ms() - t0),
            (unsigned long)calls);
  CHECK_MSG(s1.mmap_calls - s0.mmap_calls < 50, "%lu mmap calls", (unsigned long)(s1.mmap_calls - s0.mmap_calls));
  printf("  g: %lu iterations in %lu ms: %lu madvise, %lu mmap calls\n", iters, (unsigned long)(now_ms() - t0),
         (unsigned long)calls, (unsigned long)(s1.mmap_calls - s0.mmap_calls));
}

/* ---- h. a zero dirty budget purges at once ---------------------------------- */
/* Env: EBB_PURGE_DELAY_MS=10000, so only the budget can explain a purge. */
static void case_zero_budget(void) {
  CHECK(mallopt(M_TRIM_THRESHOLD, 0) == 1);
  size_t n = 64 * MiB / (4 * KiB), start = rss();
  void **ptrs = ptr_array(n);
  if (!alloc_touch(ptrs, n, 4 * KiB)) return;
  free_all(ptrs, n);
  /* "At once" means without the 10 s delay; 1 s leaves room for a busy CI. */
  long ms = wait_rss_at_most(start + SLACK, 1000);
  CHECK_MSG(ms >= 0, "zero dirty budget: RSS still %ld MiB above start 1 s after the frees (delay is 10 s)",
            mib_above(rss(), start));
  if (ms >= 0) printf("  h: zero dirty budget: RSS back %ld ms after the frees\n", ms);
  ptr_array_free(ptrs, n);
}

/* ---- i. no purge thread -------------------------------------------------- */
/* Env: EBB_PURGE_THREAD=0 and a large dirty budget (purging over budget is
 * immediate even without the thread). */
static void case_no_thread(void) {
  void *keep = ballast();
  size_t n = 64 * MiB / (4 * KiB), start = rss();
  void **ptrs = ptr_array(n);
  if (!alloc_touch(ptrs, n, 4 * KiB)) return;
  size_t kept = free_all_but(ptrs, n, 4 * KiB, 256);
  sleep_ms(1000); /* no allocator call: nothing purges (documented) */
  size_t idle = rss();
  CHECK_MSG(idle >= start + 48 * MiB, "EBB_PURGE_THREAD=0, idle 1 s: RSS only %ld MiB above start",
            mib_above(idle, start));
  CHECK_MSG(threads_now() == 1, "%zu threads with EBB_PURGE_THREAD=0", threads_now());
  int calls = 0;
  bool dropped = false;
  for (; calls < 100 && !dropped; calls++) {
    void *p = malloc(100);
    CHECK(p != NULL);
    free(p);
    dropped = rss() <= start + kept + SLACK;
    if (!dropped) sleep_ms(20);
  }
  CHECK_MSG(dropped, "after %d malloc/free calls 20 ms apart, RSS still %ld MiB above start", calls,
            mib_above(rss(), start));
  CHECK_MSG(threads_now() == 1, "%zu threads with EBB_PURGE_THREAD=0", threads_now());
  printf("  i: no purge thread: idle RSS +%ld MiB, back after %d allocator calls\n", mib_above(idle, start), calls);
  free_all(ptrs, n);
  ptr_array_free(ptrs, n);
  free(keep);
}

/* ---- j. fork with the purge thread running ------------------------------------ */
static int fork_child(size_t parent_start) {
  case_begin('J'); /* failures below are the child's */
  size_t n = 64 * MiB / (4 * KiB);
  void **ptrs = ptr_array(n);
  if (alloc_touch(ptrs, n, 4 * KiB)) free_all(ptrs, n);
  ptr_array_free(ptrs, n);
  /* The parent's freed pages came along dirty; the child purges them too. */
  long ms = wait_rss_at_most(parent_start + SLACK, WAIT_MS);
  CHECK_MSG(ms >= 0, "fork child: RSS %ld MiB above the parent's start after %d ms", mib_above(rss(), parent_start),
            WAIT_MS);
  CHECK_MSG(threads_now() == 2, "fork child has %zu threads (expected itself and a new purge thread)", threads_now());
  fflush(stdout);
  return check_failures() == 0 ? 0 : 1;
}

static void case_fork(void) {
  size_t n = 64 * MiB / (4 * KiB), start = rss();
  void **ptrs = ptr_array(n);
  if (!alloc_touch(ptrs, n, 4 * KiB)) return;
  free_all(ptrs, n);
  ptr_array_free(ptrs, n);
  CHECK_MSG(threads_now() == 2, "%zu threads: the purge thread should be running", threads_now());
  fflush(stdout);
  pid_t pid = fork();
  if (!CHECK(pid >= 0)) return;
  if (pid == 0) _exit(fork_child(start));
  long ms = wait_rss_at_most(start + SLACK, WAIT_MS);
  CHECK_MSG(ms >= 0, "fork parent: RSS %ld MiB above start after %d ms", mib_above(rss(), start), WAIT_MS);
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork child status 0x%x", status);
  printf("  j: fork: parent back after %ld ms, child exit %d\n", ms, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

/* ---- k. MADV_FREE is counted as lazy ------------------------------------------ */
/* Env: EBB_MADVISE=free. RSS may not drop (the kernel takes MADV_FREE pages
 * only under pressure), so only the counters are checked. */
static void case_madv_free(void) {
  size_t n = 64 * MiB / (4 * KiB);
  void **ptrs = ptr_array(n);
  if (!alloc_touch(ptrs, n, 4 * KiB)) return;
  free_all_but(ptrs, n, 4 * KiB, 256);
  uint64_t t0 = now_ms();
  ebb_stats_t st = stats();
  while (st.purged_lazy_total < 48 * MiB && now_ms() - t0 < WAIT_MS) {
    sleep_ms(10);
    st = stats();
  }
  CHECK_MSG(st.purged_lazy_total >= 48 * MiB, "purged_lazy_total %zu KiB after %d ms",
            (size_t)st.purged_lazy_total / KiB, WAIT_MS);
  CHECK(st.purged_total >= st.purged_lazy_total);
  printf("  k: MADV_FREE: purged_lazy_total %ld MiB of purged_total %ld MiB\n", mib(st.purged_lazy_total),
         mib(st.purged_total));
  /* Memory purged lazily must still work: reuse it and check it. */
  unsigned char *p = malloc(4 * KiB);
  CHECK(p != NULL);
  memset(p, 7, 4 * KiB);
  CHECK(p[4095] == 7);
  free(p);
  free_all(ptrs, n);
  ptr_array_free(ptrs, n);
}

/* ---- l. the large cache ------------------------------------------------------ */
/* True if p[0..n) holds what fill_ramp wrote with `seed`. */
static bool ramp_intact(const unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i += 512)
    if (p[i] != (unsigned char)(i / 512 + seed)) return false;
  return true;
}

static void fill_ramp(unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i += 512) p[i] = (unsigned char)(i / 512 + seed);
}

/* A cached block of n bytes, resident; its address. */
static uintptr_t cache_one(size_t n) {
  unsigned char *c = malloc(n);
  if (!CHECK(c != NULL)) return 0;
  memset(c, 9, n);
  free(c);
  return (uintptr_t)c;
}

/* realloc moves a large block into a cached one that holds the new size
 * with at most as much again to spare, rather than grow its mapping into
 * fresh pages or cut a tail that is resident: no system call, the content
 * kept, the old block cached in turn. */
static void large_realloc_moves(void) {
  ebb_collect(true); /* the cache empty: the blocks below are the ones it holds */
  unsigned char *v = malloc(3 * MiB);
  if (!CHECK(v != NULL)) return;
  fill_ramp(v, 3 * MiB, 1);
  uintptr_t three = (uintptr_t)v, five = cache_one(5 * MiB);
  ebb_stats_t s0 = stats();
  unsigned char *w = realloc(v, 4 * MiB);
  ebb_stats_t s1 = stats();
  if (!CHECK(w != NULL)) return;
  CHECK_MSG((uintptr_t)w == five, "realloc 3 -> 4 MiB did not move into the cached 5 MiB block");
  CHECK_MSG(ramp_intact(w, 3 * MiB, 1), "realloc 3 -> 4 MiB into a cached block lost content");
  CHECK_MSG(s1.mmap_calls == s0.mmap_calls && s1.munmap_calls == s0.munmap_calls && s1.mapped == s0.mapped,
            "realloc into a cached block made system calls: mmap %lu, munmap %lu, mapped %zu -> %zu KiB",
            (unsigned long)(s1.mmap_calls - s0.mmap_calls), (unsigned long)(s1.munmap_calls - s0.munmap_calls),
            (size_t)s0.mapped / KiB, (size_t)s1.mapped / KiB);
  CHECK_MSG(s1.large_cache_count == s0.large_cache_count, "the 3 MiB block was not cached in turn: %lu -> %lu",
            (unsigned long)s0.large_cache_count, (unsigned long)s1.large_cache_count);
  unsigned char *y = realloc(w, 2 * MiB); /* below half: into the cached 3 MiB block; the 5 MiB one cached whole */
  ebb_stats_t s2 = stats();
  if (!CHECK(y != NULL)) return;
  CHECK_MSG((uintptr_t)y == three, "realloc 4 -> 2 MiB did not move into the cached 3 MiB block");
  CHECK_MSG(ramp_intact(y, 2 * MiB, 1), "realloc 4 -> 2 MiB into a cached block lost content");
  CHECK_MSG(s2.large_cache >= 5 * MiB, "the 5 MiB block was not cached whole: large_cache %zu KiB",
            (size_t)s2.large_cache / KiB);
  CHECK(s2.munmap_calls == s1.munmap_calls && s2.mapped == s1.mapped);
  /* With no cached block of the size, the mapping itself shrinks. */
  unsigned char *z = realloc(y, 256 * KiB + 4096);
  if (!CHECK(z != NULL)) return;
  CHECK_MSG(z == y && ramp_intact(z, 256 * KiB, 1), "realloc 1 MiB -> 260 KiB with no cached fit moved or lost content");
  free(z);
  printf("  l: realloc moved into cached blocks, growing and shrinking, with no system call\n");
}

/* A program this small has a 4 MiB dirty budget, which a cached 8 MiB
 * block exceeds (it would be purged at once): the ballast raises it. */
static void case_large_cache(void) {
  void *keep = ballast();
  size_t size = 8 * MiB, start = rss();
  ebb_stats_t s0 = stats();
  for (int i = 0; i < 1000; i++) {
    unsigned char *p = malloc(size);
    if (!CHECK(p != NULL)) return;
    if (i == 0 || i == 999) memset(p, 1, size); /* resident, while cached */
    p[0] = p[size - 1] = (unsigned char)i;
    free(p);
  }
  ebb_stats_t s1 = stats();
  size_t cached_rss = rss();
  uint64_t maps = s1.mmap_calls - s0.mmap_calls;
  CHECK_MSG(maps < 20, "1000 x malloc/free of 8 MiB made %lu mmap calls", (unsigned long)maps);
  CHECK_MSG(cached_rss >= start + 6 * MiB && s1.large_cache >= size,
            "freed 8 MiB block not kept: RSS +%ld MiB, large_cache %zu KiB", mib_above(cached_rss, start),
            (size_t)s1.large_cache / KiB);
  long ms = wait_rss_at_most(start + SLACK, WAIT_MS);
  ebb_stats_t s2 = stats();
  CHECK_MSG(ms >= 0, "cached 8 MiB block still resident after %d ms: RSS +%ld MiB", WAIT_MS, mib_above(rss(), start));
  CHECK_MSG(s2.large_cache == 0, "large_cache %zu KiB after the delay", (size_t)s2.large_cache / KiB);
  CHECK(s2.munmap_calls > s1.munmap_calls);
  printf("  l: large cache: %lu mmap calls for 1000 blocks, unmapped after %ld ms\n", (unsigned long)maps, ms);

  /* A cached block more than 4 times the request is cut down and reused:
   * no new mapping, and the tail goes back at once. */
  unsigned char *big = malloc(32 * MiB);
  if (!CHECK(big != NULL)) return;
  memset(big, 2, 32 * MiB);
  free(big);
  ebb_stats_t s3 = stats();
  size_t r3 = rss();
  unsigned char *part = malloc(6 * MiB);
  if (!CHECK(part != NULL)) return;
  ebb_stats_t s4 = stats();
  size_t r4 = rss();
  CHECK_MSG(s4.mmap_calls == s3.mmap_calls, "6 MiB with a cached 32 MiB block: %lu new mmap calls",
            (unsigned long)(s4.mmap_calls - s3.mmap_calls));
  CHECK_MSG(s4.mapped + 20 * MiB <= s3.mapped, "cached 32 MiB block not cut: mapped %zu -> %zu KiB",
            (size_t)s3.mapped / KiB, (size_t)s4.mapped / KiB);
  CHECK_MSG(r4 + 20 * MiB <= r3, "the cut tail stayed resident: RSS %zu -> %zu KiB", r3 / KiB, r4 / KiB);
  CHECK_MSG(part[0] == 2 && part[6 * MiB - 1] == 2, "the 6 MiB block is not the cached one's head");
  printf("  l: a cached 32 MiB block served 6 MiB: mapped -%zu MiB, RSS -%zu MiB\n",
         (size_t)(s3.mapped - s4.mapped) / MiB, (r3 - r4) / MiB);
  free(part);

  /* One at most 4 times the request is handed out whole, resident: no
   * system call and no page fault (large.c, large_cache_take). */
  ebb_stats_t s5 = stats();
  unsigned char *again = malloc(2 * MiB);
  if (!CHECK(again != NULL)) return;
  ebb_stats_t s6 = stats();
  CHECK_MSG(s6.mmap_calls == s5.mmap_calls && s6.munmap_calls == s5.munmap_calls && s6.mapped == s5.mapped,
            "2 MiB with a cached 6 MiB block: mmap %lu, munmap %lu, mapped %zu -> %zu KiB",
            (unsigned long)(s6.mmap_calls - s5.mmap_calls), (unsigned long)(s6.munmap_calls - s5.munmap_calls),
            (size_t)s5.mapped / KiB, (size_t)s6.mapped / KiB);
  CHECK_MSG(again[0] == 2 && again[2 * MiB - 1] == 2, "the 2 MiB block is not the cached 6 MiB one");
  CHECK(malloc_usable_size(again) >= 6 * MiB);
  free(again);
  large_realloc_moves();
  free(keep);
}

/* ---- m. the purge thread does not sleep through an in-place park ------------ */
static volatile int collector_stop;
static void *collector(void *arg) {
  (void)arg;
  while (!collector_stop) ebb_collect(false);
  return NULL;
}

static void case_sleep_race(void) {
  free(malloc(100)); /* starts the purge thread */
  int stuck = 0;
  for (int round = 0; round < 8; round++) {
    sleep_ms(150); /* the thread goes to sleep: nothing is dirty */
    collector_stop = 0;
    pthread_t t;
    if (!CHECK(pthread_create(&t, NULL, collector, NULL) == 0)) return;
    sleep_ms(2);
    enum { K = 64 };
    void *p[K];
    for (int i = 0; i < K; i++) p[i] = malloc(200);
    for (int i = 0; i < K; i++) free(p[i]); /* the head page empties: parked in place */
    sleep_ms(5);
    collector_stop = 1;
    pthread_join(t, NULL);
    uint64_t t0 = now_ms();
    while (stats().dirty != 0 && now_ms() - t0 < WAIT_MS) sleep_ms(5);
    stuck += stats().dirty != 0;
  }
  CHECK_MSG(stuck == 0, "%d of 8 rounds: a page parked in place still dirty after %d ms", stuck, WAIT_MS);
  printf("  m: 8 rounds, no page left behind\n");
}

/* ---- n. parked in place while a full page comes back in front of it ---------- */
static void case_torn_park(void) {
  enum { N = 8192 };
  static unsigned char *a[N];
  int n = 0;
  a[n++] = malloc(16);
  uintptr_t page_a = (uintptr_t)a[0] >> 16;
  unsigned char *x;
  for (;;) { /* fill page A; x is the first block of the next page */
    unsigned char *p = malloc(16);
    if (((uintptr_t)p >> 16) != page_a) {
      x = p;
      break;
    }
    a[n++] = p;
    if (!CHECK(n < N)) return;
  }
  for (int i = 0; i < n; i++) memset(a[i], i & 0xff, 16);
  unsigned seed = 1, bad = 0;
  long iters = 0;
  uint64_t t0 = now_ms();
  while (now_ms() - t0 < 1000) {
    for (int r = 0; r < 64; r++, iters++) {
      free(x); /* x's page empties: parked in place (and purged at once) */
      seed = seed * 1103515245u + 12345u;
      for (volatile unsigned s = (seed >> 16) % 20000; s; s--) {
      }
      int k = (int)((seed >> 8) % (unsigned)n);
      for (int j = 0; j < 16; j++) bad += a[k][j] != (unsigned char)(k & 0xff);
      free(a[k]); /* A was full: it comes back in front of x's page */
      a[k] = malloc(16);
      memset(a[k], k & 0xff, 16);
      x = malloc(16); /* A is full again: x's page is the head */
    }
  }
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < 16; j++) bad += a[i][j] != (unsigned char)(i & 0xff);
    free(a[i]);
  }
  free(x);
  CHECK_MSG(bad == 0, "%u bytes changed under the program", bad);
  printf("  n: %ld iterations of park-in-place against unfull, contents intact\n", iters);
}

/* ---- o. a dirty cached segment, reused: its free pages still go back ------- */
static void *fill_and_exit(void *arg) {
  (void)arg;
  size_t n = 12 * MiB / (4 * KiB);
  void **ptrs = ptr_array(n);
  if (alloc_touch(ptrs, n, 4 * KiB)) free_all(ptrs, n); /* the exit releases the segments: cached, dirty */
  ptr_array_free(ptrs, n);
  return NULL;
}

static void case_cached_reuse(void) {
  void *keep = ballast();
  size_t start = rss();
  pthread_t t;
  if (!CHECK(pthread_create(&t, NULL, fill_and_exit, NULL) == 0)) return;
  pthread_join(t, NULL);
  /* A new page kind at once: the next segment comes from the cache, dirty.
   * One page is used; the rest held 4 MiB of the thread's memory. */
  void *mid = malloc(10 * KiB);
  if (!CHECK(mid != NULL)) return;
  memset(mid, 5, 10 * KiB);
  long ms = wait_rss_at_most(start + SLACK, WAIT_MS);
  CHECK_MSG(ms >= 0, "a reused cached segment kept its dirty pages: RSS +%ld MiB after %d ms", mib_above(rss(), start),
            WAIT_MS);
  printf("  o: reused dirty segment: RSS back after %ld ms\n", ms);
  free(mid);
  free(keep);
}

/* ---- s, t, u. every page obeys the deadline, the head of its queue too ---- */
/* One block of every size class from 16 B to 512 KiB stays live (the
 * shape of a running program: one long-lived object per class), then a
 * 2 MiB batch of each class is allocated and freed - forward, in reverse,
 * and in random order. The page a class allocates from keeps its live
 * block; its free memory must go back like any other page's: within one
 * idle second, and at once with malloc_trim(0). */
enum { MAX_CLASSES = 128 };
typedef enum { ORDER_FORWARD, ORDER_REVERSE, ORDER_RANDOM } free_order_t;
static const char *const order_names[] = {"forward", "reverse", "random"};

/* The size classes, found through the public API: each request one byte
 * past the previous block's usable size lands in the next class. */
static size_t class_sizes(size_t *sizes) {
  size_t n = 0;
  for (size_t s = 16; s <= 512 * KiB && n < MAX_CLASSES; n++) {
    void *p = malloc(s);
    sizes[n] = malloc_usable_size(p);
    free(p);
    s = sizes[n] + 1;
  }
  return n;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rng_next(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static void free_in_order(void **ptrs, size_t n, free_order_t order) {
  if (order == ORDER_RANDOM) {
    for (size_t i = n - 1; i > 0; i--) {
      size_t j = (size_t)(rng_next() % (i + 1));
      void *t = ptrs[i];
      ptrs[i] = ptrs[j];
      ptrs[j] = t;
    }
  }
  for (size_t i = 0; i < n; i++) free(ptrs[order == ORDER_REVERSE ? n - 1 - i : i]);
}

/* A 2 MiB batch of every class, allocated, written and freed. */
static void class_batches(const size_t *sizes, size_t nclasses, free_order_t order) {
  enum { BATCH_MAX = 2 * 1024 * 1024 / 16 };
  void **ptrs = ptr_array(BATCH_MAX);
  for (size_t c = 0; c < nclasses; c++) {
    size_t n = 2 * MiB / sizes[c];
    if (n < 4) n = 4;
    if (!alloc_touch(ptrs, n, sizes[c])) break;
    free_in_order(ptrs, n, order);
  }
  ptr_array_free(ptrs, BATCH_MAX);
}

/* What the idle check and malloc_trim(0) measure, for one order. */
typedef struct {
  size_t base, live;
} every_class_t;

static void every_class_check(const every_class_t *ec, free_order_t order, const char *who) {
  size_t limit_idle = ec->base + ec->live + 2 * MiB, limit_trim = ec->base + ec->live + 1 * MiB;
  sleep_ms(1000); /* one idle second: no allocator call */
  size_t idle = rss();
  CHECK_MSG(idle <= limit_idle, "%s, %s order: after one idle second RSS is %zu KiB above live (at most 2048)", who,
            order_names[order], (idle - ec->base - ec->live) / KiB);
  malloc_trim(0);
  size_t trimmed = rss();
  CHECK_MSG(trimmed <= limit_trim, "%s, %s order: after malloc_trim(0) RSS is %zu KiB above live (at most 1024)", who,
            order_names[order], (trimmed - ec->base - ec->live) / KiB);
  printf("  %c: %s, %s order: %zu KiB above live after one idle second, %zu KiB after malloc_trim(0)\n", case_name,
         who, order_names[order], idle > ec->base + ec->live ? (idle - ec->base - ec->live) / KiB : 0,
         trimmed > ec->base + ec->live ? (trimmed - ec->base - ec->live) / KiB : 0);
}

/* Allocates the kept blocks; returns the number of classes. */
static size_t every_class_setup(size_t *sizes, void **kept, every_class_t *ec) {
  size_t n = class_sizes(sizes);
  malloc_trim(0);
  ec->base = rss();
  ec->live = 0;
  for (size_t c = 0; c < n; c++) {
    kept[c] = malloc(sizes[c]);
    memset(kept[c], 0x5a, sizes[c]);
    ec->live += sizes[c];
  }
  return n;
}

static void every_class_teardown(void **kept, const size_t *sizes, size_t n) {
  for (size_t c = 0; c < n; c++) {
    const unsigned char *p = kept[c];
    CHECK_MSG(p[0] == 0x5a && p[sizes[c] - 1] == 0x5a, "kept block of %zu B lost its contents", sizes[c]);
    free(kept[c]);
  }
}

static void case_every_class_main(void) {
  size_t sizes[MAX_CLASSES];
  void *kept[MAX_CLASSES];
  every_class_t ec;
  size_t n = every_class_setup(sizes, kept, &ec);
  CHECK_MSG(n >= 90, "only %zu size classes from 16 B to 512 KiB", n);
  for (int order = ORDER_FORWARD; order <= ORDER_RANDOM; order++) {
    class_batches(sizes, n, (free_order_t)order);
    every_class_check(&ec, (free_order_t)order, "main thread");
  }
  every_class_teardown(kept, sizes, n);
}

/* The same work in a thread that then stays alive and idle while main
 * measures (and calls malloc_trim, which must reach the idle thread's
 * pages). */
static size_t ec_sizes[MAX_CLASSES], ec_count;
static void *ec_kept[MAX_CLASSES];
static every_class_t ec_thread;
static void *every_class_thread(void *arg) {
  (void)arg;
  ec_count = every_class_setup(ec_sizes, ec_kept, &ec_thread);
  for (int order = ORDER_FORWARD; order <= ORDER_RANDOM; order++) {
    step_wait(2 * order);
    class_batches(ec_sizes, ec_count, (free_order_t)order);
    step_set(2 * order + 1); /* then idle until main has measured */
  }
  step_wait(6);
  every_class_teardown(ec_kept, ec_sizes, ec_count);
  return NULL;
}

static void case_every_class_thread(void) {
  pthread_t t;
  if (!CHECK(pthread_create(&t, NULL, every_class_thread, NULL) == 0)) return;
  for (int order = ORDER_FORWARD; order <= ORDER_RANDOM; order++) {
    step_wait(2 * order + 1);
    every_class_check(&ec_thread, (free_order_t)order, "idle thread");
    step_set(2 * order + 2);
  }
  pthread_join(t, NULL);
}

/* A thread that keeps running (a compute loop that never blocks and never
 * calls the allocator) cannot be cleaned from outside; after a quiet
 * second it is asked, and its next allocator call - here one malloc -
 * returns what its pages hold. */
static atomic_int spin_stage; /* 1: freed, spinning; 2: main says call malloc; 3: done */
static void *spinning_thread(void *arg) {
  size_t *sizes = arg;
  void *kept = malloc(sizes[0]);
  memset(kept, 1, sizes[0]);
  void **ptrs = ptr_array(64);
  if (alloc_touch(ptrs, 64, sizes[0])) free_in_order(ptrs, 64, ORDER_REVERSE);
  ptr_array_free(ptrs, 64);
  atomic_store(&spin_stage, 1);
  volatile uint64_t spins = 0;
  while (atomic_load(&spin_stage) == 1) spins++;
  free(malloc(16)); /* the one call */
  atomic_store(&spin_stage, 3);
  while (atomic_load(&spin_stage) == 3) spins++;
  free(kept);
  return NULL;
}

static void case_running_thread(void) {
  size_t sizes[1] = {256 * KiB};
  size_t start = rss();
  pthread_t t;
  if (!CHECK(pthread_create(&t, NULL, spinning_thread, sizes) == 0)) return;
  while (atomic_load(&spin_stage) != 1) sleep_ms(1);
  sleep_ms(1500); /* quiet, but running: asked after a second */
  size_t before = rss();
  CHECK_MSG(before >= start + 2 * MiB, "the running thread's free blocks went back without its call: +%ld MiB",
            mib_above(before, start));
  atomic_store(&spin_stage, 2);
  while (atomic_load(&spin_stage) != 3) sleep_ms(1);
  long ms = wait_rss_at_most(start + sizes[0] + THREAD_SLACK, WAIT_MS);
  CHECK_MSG(ms >= 0, "after its call RSS is still %ld MiB above start", mib_above(rss(), start));
  printf("  u: a running thread kept +%ld MiB until its next call; back %ld ms after it\n", mib_above(before, start), ms);
  atomic_store(&spin_stage, 4);
  pthread_join(t, NULL);
}

/* A thread blocked inside a signal handler may have been interrupted in
 * the middle of a malloc or free: its pages are never taken over then
 * (its blocked signals differ from the ones it started with). It is only
 * asked, and answers at its next call once the handler returns. */
static int handler_pipe[2];
static void blocking_handler(int sig) {
  (void)sig;
  char c;
  while (read(handler_pipe[0], &c, 1) < 0 && errno == EINTR) {
  }
}

static void *signalled_thread(void *arg) {
  size_t size = *(size_t *)arg;
  void *kept = malloc(size);
  memset(kept, 1, size);
  void **ptrs = ptr_array(64);
  if (alloc_touch(ptrs, 64, size)) free_in_order(ptrs, 64, ORDER_REVERSE);
  ptr_array_free(ptrs, 64);
  atomic_store(&spin_stage, 1);
  raise(SIGUSR1); /* blocks in the handler until main writes */
  free(malloc(16)); /* the next call */
  atomic_store(&spin_stage, 3);
  while (atomic_load(&spin_stage) == 3) sleep_ms(1);
  free(kept);
  return NULL;
}

static void case_in_handler(void) {
  size_t size = 256 * KiB, start = rss();
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = blocking_handler;
  if (!CHECK(pipe(handler_pipe) == 0 && sigaction(SIGUSR1, &sa, NULL) == 0)) return;
  pthread_t t;
  if (!CHECK(pthread_create(&t, NULL, signalled_thread, &size) == 0)) return;
  while (atomic_load(&spin_stage) != 1) sleep_ms(1);
  sleep_ms(1500); /* blocked, but in a handler: asked, never seized */
  size_t held = rss();
  CHECK_MSG(held >= start + 2 * MiB, "a thread blocked in a signal handler had its pages taken: +%ld MiB",
            mib_above(held, start));
  if (!CHECK(write(handler_pipe[1], "x", 1) == 1)) return;
  while (atomic_load(&spin_stage) != 3) sleep_ms(1);
  long ms = wait_rss_at_most(start + size + THREAD_SLACK, WAIT_MS);
  CHECK_MSG(ms >= 0, "after the handler and its next call RSS is still %ld MiB above start", mib_above(rss(), start));
  printf("  v: a thread in a signal handler kept +%ld MiB; back %ld ms after its next call\n", mib_above(held, start),
         ms);
  atomic_store(&spin_stage, 4);
  pthread_join(t, NULL);
}

/* ---- p, q. the purge thread never keeps a process alive --------------------- */
static int exit_pipe[2]; /* the process under test writes "go" then, from atexit, "x" */

static void say(const char *text) {
  if (write(exit_pipe[1], text, strlen(text)) < 0) _exit(3);
}
static void said_bye(void) { say("x"); }

/* Frees 64 MiB: the purge thread starts and has work when the test goes on. */
static void give_purge_work(void) {
  size_t n = 64 * MiB / (16 * KiB);
  void **ptrs = ptr_array(n);
  if (alloc_touch(ptrs, n, 16 * KiB)) free_all(ptrs, n);
  ptr_array_free(ptrs, n);
}

/* Reads from the pipe until `want` has been seen or `ms` passed. */
static bool pipe_saw(const char *want, unsigned ms) {
  char buf[64];
  size_t len = 0;
  uint64_t t0 = now_ms();
  while (len + 1 < sizeof(buf) && now_ms() - t0 < ms) {
    ssize_t n = read(exit_pipe[0], buf + len, sizeof(buf) - 1 - len);
    if (n > 0) len += (size_t)n;
    else sleep_ms(2);
    buf[len] = 0;
    if (strstr(buf, want) != NULL) return true;
  }
  return false;
}

/* After "go", the process must exit with status 0 within a second, having
 * run its atexit handler. A process that hangs is killed after 5 s. */
static void expect_exit_soon(pid_t pid, const char *what) {
  if (!CHECK_MSG(pipe_saw("go", 20000), "%s: the process never got to its exit", what)) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return;
  }
  uint64_t t0 = now_ms();
  int status = 0;
  pid_t got = 0;
  while ((got = waitpid(pid, &status, WNOHANG)) == 0 && now_ms() - t0 < 5000) sleep_ms(2);
  long ms = (long)(now_ms() - t0);
  if (got == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  CHECK_MSG(got == pid && ms <= 1000, "%s: still running %ld ms after its last thread exited", what, ms);
  CHECK_MSG(got == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: status 0x%x, want exit 0", what, status);
  CHECK_MSG(pipe_saw("x", 100), "%s: the atexit handler did not run", what);
  printf("  %c: %s: exited %ld ms after its last thread, status 0x%x\n", case_name, what, ms, status);
}

static void case_main_pthread_exit(void) {
  if (!CHECK(pipe(exit_pipe) == 0)) return;
  fcntl(exit_pipe[0], F_SETFL, O_NONBLOCK);
  fflush(stdout);
  pid_t pid = fork();
  if (!CHECK(pid >= 0)) return;
  if (pid == 0) {
    atexit(said_bye);
    give_purge_work();
    if (threads_now() != 2) _exit(4); /* the purge thread must be running */
    say("go");
    pthread_exit(NULL);
  }
  expect_exit_soon(pid, "main called pthread_exit");
}

static void *fork_and_return(void *arg) {
  pid_t pid = fork();
  if (pid == 0) { /* the child's only thread */
    atexit(said_bye);
    give_purge_work();
    if (threads_now() != 2) _exit(4);
    say("go");
  }
  *(pid_t *)arg = pid;
  return NULL; /* in the child: its last thread returns */
}

static void case_fork_from_thread(void) {
  if (!CHECK(pipe(exit_pipe) == 0)) return;
  fcntl(exit_pipe[0], F_SETFL, O_NONBLOCK);
  give_purge_work(); /* the parent's purge thread runs across the fork */
  fflush(stdout);
  pid_t pid = -1;
  pthread_t t;
  if (!CHECK(pthread_create(&t, NULL, fork_and_return, &pid) == 0)) return;
  pthread_join(t, NULL);
  if (!CHECK(pid > 0)) return;
  expect_exit_soon(pid, "fork child of a worker thread returned");
}

/* ---- r. the purge thread leaves when idle, and comes back ------------------ */
static void case_idle_leave(void) {
  give_purge_work();
  CHECK_MSG(threads_now() == 2, "%zu threads: the purge thread should be running", threads_now());
  uint64_t t0 = now_ms();
  while (threads_now() > 1 && now_ms() - t0 < 4000) sleep_ms(10);
  long ms = (long)(now_ms() - t0);
  CHECK_MSG(threads_now() == 1, "the purge thread is still there %ld ms after the frees", ms);
  size_t start = rss();
  give_purge_work(); /* starts it again, and it purges as before */
  CHECK_MSG(threads_now() == 2, "%zu threads after new frees: the purge thread should be back", threads_now());
  long back = wait_rss_at_most(start + SLACK, WAIT_MS);
  CHECK_MSG(back >= 0, "restarted purge thread: RSS still %ld MiB above start", mib_above(rss(), start));
  if (check_failures() == 0)
    printf("  r: purge thread gone %ld ms after the frees; back, RSS down after %ld ms\n", ms, back);
}

/* ---- the runner ---------------------------------------------------------------- */
typedef struct {
  char name;
  const char *title;
  void (*run)(void);
  const char *env[4]; /* EBB_ variables for the case's process */
} test_case_t;

/* ---- w. an exited thread's segments adopted ------------------------------ */
/* Threads run one after another. Each allocates ADOPT_EACH blocks of every
 * size of adopt_sizes (its first page adopts a segment the previous thread
 * left, if ebb hands them over), then checks and frees the blocks the
 * previous thread left behind - blocks in the segments it adopted - and
 * frees its own but ADOPT_LEFT of each size, which survive it. A pattern
 * of (thread, block, offset) fills every block and is checked at its free.
 * Between two threads main waits 20 ms, so that the purge thread's passes
 * (every 10 ms after a thread exits) see the abandoned segments, well
 * within the purge delay (100 ms): what an exited thread freed is reused by
 * the next thread, not purged and faulted in again, and the segments stay
 * few:
 * a thread adopts the segments of the one before instead of mapping fresh
 * ones. */
enum { ADOPT_THREADS = 100, ADOPT_EACH = 128, ADOPT_LEFT = 3, ADOPT_SEGMENTS_MAX = 12 };
/* Purged over the run: 6-12 MiB measured (pages the next thread did not
 * need wait out their delay); 113-131 MiB when every pass purged the free
 * parts of abandoned segments at once. */
#define ADOPT_PURGED_MAX (48 * MiB)
static const size_t adopt_sizes[] = {48, 256, 3000, 12000}; /* about 1.9 MiB a thread: under the 4 MiB dirty budget */
enum { ADOPT_NSIZES = sizeof(adopt_sizes) / sizeof(adopt_sizes[0]), ADOPT_KEPT = ADOPT_NSIZES * ADOPT_LEFT };

typedef struct {
  unsigned char *p[ADOPT_KEPT]; /* blocks that outlive their thread */
  size_t size[ADOPT_KEPT];
  unsigned owner;               /* the thread that filled them */
  size_t bad;                   /* bytes found wrong (every thread's checks) */
} adopt_left_t;

static unsigned char adopt_byte(unsigned owner, size_t block, size_t offset) {
  return (unsigned char)(owner * 131u + block * 17u + offset * 7u + 1u);
}

static void adopt_fill(unsigned char *p, size_t size, unsigned owner, size_t block) {
  for (size_t i = 0; i < size; i++) p[i] = adopt_byte(owner, block, i);
}

static size_t adopt_check_free(unsigned char *p, size_t size, unsigned owner, size_t block) {
  size_t bad = 0;
  for (size_t i = 0; i < size; i++) bad += p[i] != adopt_byte(owner, block, i);
  free(p);
  return bad;
}

/* Main hands each thread the previous one's blocks (pthread_create and
 * pthread_join order the accesses). */
static void *adopting_thread(void *arg) {
  adopt_left_t *left = arg;
  unsigned me = left->owner + 1;
  unsigned char *mine[ADOPT_NSIZES * ADOPT_EACH];
  size_t n = 0;
  for (size_t k = 0; k < ADOPT_NSIZES; k++) {
    for (size_t j = 0; j < ADOPT_EACH; j++, n++) {
      mine[n] = malloc(adopt_sizes[k]);
      if (mine[n] == NULL) _exit(3);
      adopt_fill(mine[n], adopt_sizes[k], me, n);
    }
  }
  for (size_t i = 0; i < ADOPT_KEPT && me > 1; i++)
    left->bad += adopt_check_free(left->p[i], left->size[i], left->owner, i);
  size_t kept = 0;
  for (size_t i = 0; i < n; i++) {
    size_t size = adopt_sizes[i / ADOPT_EACH];
    if (i % ADOPT_EACH < ADOPT_LEFT) {
      /* Refilled under the index it will be checked by. */
      adopt_fill(mine[i], size, me, kept);
      left->p[kept] = mine[i];
      left->size[kept++] = size;
    } else {
      left->bad += adopt_check_free(mine[i], size, me, i);
    }
  }
  left->owner = me;
  return NULL;
}

static void case_adopt(void) {
  adopt_left_t left = {.owner = 0};
  /* The purge thread runs, and looks at exited threads' segments every
   * few milliseconds while threads exit. */
  free(malloc(100));
  sleep_ms(300);
  ebb_stats_t s0 = stats();
  size_t most_segments = 0, most_abandoned = 0;
  for (unsigned t = 0; t < ADOPT_THREADS; t++) {
    pthread_t th;
    if (!CHECK(pthread_create(&th, NULL, adopting_thread, &left) == 0)) return;
    pthread_join(th, NULL);
    sleep_ms(20); /* a pass sees the exited thread's segments before the next thread adopts them */
    ebb_stats_t st = stats();
    if (st.segments_count > most_segments) most_segments = st.segments_count;
    if (st.abandoned_count > most_abandoned) most_abandoned = st.abandoned_count;
  }
  for (size_t i = 0; i < ADOPT_KEPT; i++) left.bad += adopt_check_free(left.p[i], left.size[i], left.owner, i);
  ebb_stats_t s1 = stats();
  CHECK_MSG(left.bad == 0, "%zu bytes of blocks that outlived their thread were wrong at their free", left.bad);
  CHECK_MSG(most_segments <= ADOPT_SEGMENTS_MAX,
            "%zu segments mapped at most (%zu abandoned) for threads that each leave %d blocks: exited threads' "
            "segments were not adopted", most_segments, most_abandoned, ADOPT_KEPT);
  size_t purged = (size_t)(s1.purged_total - s0.purged_total);
  CHECK_MSG(purged < ADOPT_PURGED_MAX, "%zu KiB purged: exited threads' free memory was purged instead of reused by "
            "the next thread", purged / KiB);
  printf("  w: %d threads: at most %zu segments, %zu abandoned; %zu KiB purged\n", ADOPT_THREADS, most_segments,
         most_abandoned, purged / KiB);
}

/* Cases x and y: where an exited thread's memory is taken again. */
typedef struct reuse_job_s {
  size_t keep_size;   /* a block of this size stays live: its segment is abandoned */
  void *kept;         /* that block */
  uintptr_t page_48;  /* the 64 KiB pages that held a 48 B and a 1000 B block, freed before the exit */
  uintptr_t page_1000;
  size_t ask;         /* the second thread's one allocation */
  void *got;
  size_t abandoned_after; /* abandoned segments right after that allocation (the thread alive) */
} reuse_job_t;

#define SMALL_PAGE_OF(p) ((uintptr_t)(p) & ~(uintptr_t)(64 * KiB - 1))
#define SEGMENT_OF(p) ((uintptr_t)(p) & ~(uintptr_t)(4 * MiB - 1))

static void *leave_pages(void *arg) {
  reuse_job_t *job = arg;
  void *a = malloc(48), *b = malloc(16), *c = malloc(1000);
  job->kept = malloc(job->keep_size);
  job->page_48 = SMALL_PAGE_OF(a);
  job->page_1000 = SMALL_PAGE_OF(c);
  free(a);
  free(b);
  free(c);
  return NULL;
}

static void *take_one(void *arg) {
  reuse_job_t *job = arg;
  job->got = malloc(job->ask);
  job->abandoned_after = (size_t)stats().abandoned_count;
  return NULL;
}

static bool run_thread(void *(*fn)(void *), reuse_job_t *job) {
  pthread_t t;
  if (!CHECK(pthread_create(&t, NULL, fn, job) == 0)) return false;
  pthread_join(t, NULL);
  return true;
}

static void case_page_reuse(void) {
  /* A thread left a small segment holding one live block, with the pages
   * of its 48 B and 1000 B blocks empty: the next thread adopts it, and
   * its first 1000 B block comes from the page that held that class (the
   * first free page held 48 B blocks). */
  reuse_job_t small = {.keep_size = 64, .ask = 1000};
  if (!run_thread(leave_pages, &small)) return;
  CHECK_EQ(stats().abandoned_count, 1);
  if (!run_thread(take_one, &small)) return;
  CHECK(small.page_48 != small.page_1000);
  CHECK_MSG(SMALL_PAGE_OF(small.got) == small.page_1000,
            "a 1000 B block after the exit came from page %#lx, not %#lx where that class was (48 B: %#lx)",
            (unsigned long)SMALL_PAGE_OF(small.got), (unsigned long)small.page_1000, (unsigned long)small.page_48);
  free(small.kept);
  free(small.got);
}

static void case_kind_adopt(void) {
  /* Two segments abandoned, a medium one below a small one (a thread that
   * adopted one small segment, then mapped a medium one, exits; the list
   * takes its segments newest first): a thread that needs a medium page
   * adopts the medium one and leaves the small one. */
  reuse_job_t first = {.keep_size = 64}, medium = {.keep_size = 20000}, later = {.ask = 20000};
  if (!run_thread(leave_pages, &first) || !run_thread(leave_pages, &medium)) return;
  CHECK_EQ(stats().abandoned_count, 2);
  if (!run_thread(take_one, &later)) return;
  CHECK_MSG(SEGMENT_OF(later.got) == SEGMENT_OF(medium.kept), "a 20000 B block did not come from the abandoned medium segment");
  CHECK_MSG(later.abandoned_after == 1, "%zu segments still abandoned after the medium one was adopted (1: the small one)",
            later.abandoned_after);
  free(first.kept);
  free(medium.kept);
  free(later.got);
}

static const test_case_t cases[] = {
  {'a', "idle main thread", case_idle_main, {NULL}},
  {'b', "idle other thread", case_idle_thread, {NULL}},
  {'c', "exited thread, remote frees", case_exited_thread, {NULL}},
  {'d', "sparse pages", case_sparse, {NULL}},
  {'e', "statistics add up", case_stats, {"EBB_SEGMENT_CACHE=4", NULL}},
  {'f', "ebb_collect / malloc_trim", case_collect,
   {"EBB_PURGE_DELAY_MS=10000", "EBB_DIRTY_MAX=1g", "EBB_DIRTY_FRACTION=100", NULL}},
  {'g', "hot loop", case_hot_loop, {NULL}},
  {'h', "mallopt(M_TRIM_THRESHOLD, 0)", case_zero_budget, {"EBB_PURGE_DELAY_MS=10000", NULL}},
  {'i', "EBB_PURGE_THREAD=0", case_no_thread,
   {"EBB_PURGE_THREAD=0", "EBB_DIRTY_MAX=1g", "EBB_DIRTY_FRACTION=100", NULL}},
  {'j', "fork", case_fork, {NULL}},
  {'k', "EBB_MADVISE=free", case_madv_free, {"EBB_MADVISE=free", NULL}},
  {'l', "large cache", case_large_cache, {NULL}},
  {'m', "in-place park during ebb_collect", case_sleep_race, {NULL}},
  {'n', "in-place park against unfull", case_torn_park, {"EBB_PURGE_DELAY_MS=0", NULL}},
  {'o', "dirty cached segment reused", case_cached_reuse, {NULL}},
  {'p', "main calls pthread_exit", case_main_pthread_exit, {NULL}},
  {'q', "fork child of a worker thread returns", case_fork_from_thread, {NULL}},
  {'r', "purge thread leaves when idle", case_idle_leave, {NULL}},
  {'s', "every size class, head pages, main thread", case_every_class_main, {NULL}},
  {'t', "every size class, head pages, idle thread", case_every_class_thread, {NULL}},
  {'u', "a running thread is asked, answers at its next call", case_running_thread, {NULL}},
  {'v', "a thread blocked in a signal handler is not taken over", case_in_handler, {NULL}},
  {'w', "an exited thread's segments adopted", case_adopt, {NULL}},
  {'x', "an exited thread's page reused by its class", case_page_reuse,
   {"EBB_PURGE_THREAD=0", "EBB_PURGE_DELAY_MS=60000", NULL}},
  {'y', "an abandoned segment adopted by its kind", case_kind_adopt,
   {"EBB_PURGE_THREAD=0", "EBB_PURGE_DELAY_MS=60000", NULL}},
};
enum { NCASES = sizeof(cases) / sizeof(cases[0]) };

static const test_case_t *find_case(char name) {
  for (int i = 0; i < NCASES; i++) {
    if (cases[i].name == name) return &cases[i];
  }
  return NULL;
}

/* In this process: the case's own checks; exit status 0 if all passed. */
static int run_here(const test_case_t *c) {
  case_begin(c->name);
  alarm(120); /* a hang ends as a failure, well before ctest's timeout */
  c->run();
  char name[96];
  snprintf(name, sizeof(name), "case %c (%s)", c->name, c->title);
  return check_summary(name);
}

/* Runs a case in a fresh process: this program exec'd with --case, the
 * environment without EBB_ variables, plus the case's. True if it passed. */
static bool run_child(const test_case_t *c) {
  char **env = case_environ(c->env);
  char name[2] = {c->name, 0};
  char *args[] = {"test_purge", "--case", name, NULL};
  uint64_t t0 = now_ms();
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    execve("/proc/self/exe", args, env);
    perror("execve");
    _exit(127);
  }
  free(env);
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) {
    printf("FAIL %c %s: could not run (%s)\n", c->name, c->title, strerror(errno));
    return false;
  }
  bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (ok) printf("ok   %c %s (%.1f s)\n", c->name, c->title, (double)(now_ms() - t0) / 1000);
  else if (WIFSIGNALED(status)) printf("FAIL %c %s: killed by signal %d\n", c->name, c->title, WTERMSIG(status));
  else printf("FAIL %c %s: exit %d\n", c->name, c->title, WEXITSTATUS(status));
  return ok;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 3 && strcmp(argv[1], "--case") == 0) {
    const test_case_t *c = find_case(argv[2][0]);
    if (c == NULL) {
      fprintf(stderr, "test_purge: no case %s\n", argv[2]);
      return 2;
    }
    return run_here(c);
  }
  int failed = 0, ran = 0;
  for (int i = 0; i < NCASES; i++) {
    bool wanted = (argc == 1);
    for (int a = 1; a < argc; a++) wanted |= (argv[a][0] == cases[i].name);
    if (!wanted) continue;
    ran++;
    if (!run_child(&cases[i])) failed++;
  }
  printf("test_purge: %d cases, %d failed: %s\n", ran, failed, failed == 0 ? "PASS" : "FAIL");
  return failed == 0 && ran > 0 ? 0 : 1;
}
