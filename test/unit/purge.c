/* SPDX-License-Identifier: MIT */
/* test/unit/purge.c - the purge policy against a fake clock: the purge
 * passes are called directly with made-up times.
 *
 * The real clock must not interfere: main turns the purge thread off before
 * anything is offered, sets a 60 s purge delay (the on-entry passes the
 * allocator makes with the real clock then find nothing expired) and a huge
 * dirty budget (no pass is ever urgent), keeps a large untouched block
 * live (the budget's fraction grows with memory in use), and warms up so
 * that the first on-entry pass, which may stamp pages with real time, has
 * run and was followed by a forced purge.
 *
 * Stamps are 32-bit milliseconds (page->idle_since, 0 = not stamped yet):
 * a pass stamps an IDLE page the first time it sees it and purges it once
 * now - stamp >= delay. The ebb_ names are used throughout: gcc may drop a
 * malloc/free pair of the standard names that nothing reads.
 * Exits 1 if any CHECK failed. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <errno.h>

#include "check.h"
#include "internal.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define BASE 1000000u /* fake clock, ms */
#define DELAY 100u

enum { NBLOCKS = 8192, BSIZE = 256 }; /* 2 MiB of small blocks: 32+ pages */
static void *blocks[NBLOCKS];

/* Allocates and frees 2 MiB of small blocks: their pages are parked and
 * offered (IDLE, not stamped). */
static void park_pages(void) {
  for (int i = 0; i < NBLOCKS; i++) {
    blocks[i] = ebb_malloc(BSIZE);
    memset(blocks[i], 0x33, BSIZE);
  }
  for (int i = 0; i < NBLOCKS; i++) ebb_free(blocks[i]);
}

/* The statistics' figure: _ebb_dirty_bytes plus the pages parked in place
 * (which the hot park does not count; purge.c). */
static size_t dirty(void) {
  ebb_stats_t st;
  ebb_stats_get(&st, sizeof st);
  return (size_t)st.dirty;
}

/* ---- offered pages -------------------------------------------------------- */
static void test_delay(void) {
  park_pages();
  size_t d0 = dirty();
  CHECK_MSG(d0 >= 2 * MiB - 64 * KiB, "dirty %zu KiB after freeing 2 MiB", (size_t)(d0 / KiB));
  size_t r = _ebb_segment_purge_idle(BASE, DELAY, false);
  CHECK_MSG(r == 0, "first pass released %zu KiB: it should only stamp", (size_t)(r / KiB));
  r = _ebb_segment_purge_idle(BASE + DELAY - 1, DELAY, false);
  CHECK_MSG(r == 0, "released %zu KiB at delay - 1 ms", (size_t)(r / KiB));
  CHECK(dirty() == d0);
  r = _ebb_segment_purge_idle(BASE + DELAY, DELAY, false);
  CHECK_MSG(r >= 2 * MiB - 64 * KiB && r <= 3 * MiB, "released %zu KiB at the delay (2 MiB offered)",
            (size_t)(r / KiB));
  CHECK_MSG(dirty() <= d0 - (2 * MiB - 64 * KiB), "dirty %zu KiB after the purge (was %zu KiB)",
            (size_t)(dirty() / KiB), (size_t)(d0 / KiB));
  r = _ebb_segment_purge_idle(BASE + 3 * DELAY, DELAY, false);
  CHECK_MSG(r == 0, "a second purge of the same pages released %zu KiB", (size_t)(r / KiB));
}

/* Pages offered after a pass stamped others wait their own delay. */
static void test_stamped_late(void) {
  park_pages();
  CHECK(_ebb_segment_purge_idle(BASE, DELAY, false) == 0);
  /* Take the pages back and offer them again: the stamp is forgotten. */
  park_pages();
  size_t r = _ebb_segment_purge_idle(BASE + DELAY, DELAY, false);
  CHECK_MSG(r == 0, "re-offered pages purged on their old stamp: %zu KiB", (size_t)(r / KiB));
  r = _ebb_segment_purge_idle(BASE + 2 * DELAY, DELAY, false);
  CHECK_MSG(r >= 2 * MiB - 64 * KiB, "released %zu KiB a delay after the new stamp", (size_t)(r / KiB));
}

static void test_force(void) {
  park_pages();
  size_t r = _ebb_segment_purge_idle(BASE, DELAY, true);
  CHECK_MSG(r >= 2 * MiB - 64 * KiB && r <= 3 * MiB, "force released %zu KiB (2 MiB offered)", (size_t)(r / KiB));
  CHECK(_ebb_segment_purge_idle(BASE, DELAY, true) == 0);
}

/* The purged pages work again: the blocks come back zeroed or rewritten
 * and nothing is handed out twice. */
static void test_reuse_after_purge(void) {
  for (int i = 0; i < NBLOCKS; i++) {
    blocks[i] = ebb_malloc(BSIZE);
    memset(blocks[i], i & 0xff, BSIZE);
  }
  int bad = 0;
  for (int i = 0; i < NBLOCKS; i++) bad += ((unsigned char *)blocks[i])[BSIZE - 1] != (i & 0xff);
  CHECK_MSG(bad == 0, "%zu blocks overlap after reuse", (size_t)bad);
  for (int i = 0; i < NBLOCKS; i++) ebb_free(blocks[i]);
  _ebb_segment_purge_idle(BASE, DELAY, true);
}

/* The clock is 32-bit milliseconds since boot + 1 (it wraps after 49.7
 * days). A page stamped just before the wrap must still wait its delay:
 * stamped at 0xFFFFFFF0, it is 32 ms old at 0x1_0000_0010. */
static void test_wrap(void) {
  park_pages();
  uint64_t stamp = 0xFFFFFFF0u;
  CHECK(_ebb_segment_purge_idle(stamp, DELAY, false) == 0);
  size_t r = _ebb_segment_purge_idle(stamp + 32, DELAY, false);
  CHECK_MSG(r == 0, "pages stamped 32 ms before, across the 32-bit wrap, purged early: %zu KiB", (size_t)(r / KiB));
  r = _ebb_segment_purge_idle(stamp + DELAY, DELAY, false);
  CHECK_MSG(r >= 2 * MiB - 64 * KiB || r == 0, "%zu KiB", (size_t)(r / KiB));
  _ebb_segment_purge_idle(BASE, DELAY, true); /* whatever is left */
}

/* ---- the segment cache ---------------------------------------------------------- */
/* A thread whose wide page is free when it exits releases that segment
 * whole: it goes to the segment cache with the 100 KiB it wrote dirty (and
 * the rest of its 4 MiB never touched). */
static void *wide_thread(void *arg) {
  (void)arg;
  void *p = ebb_malloc(100 * KiB); /* a wide page: above 64 KiB, below the 128 KiB threshold */
  memset(p, 0x44, 100 * KiB);
  ebb_free(p);
  return NULL;
}

static void test_segment_cache(void) {
  ebb_collect(true); /* empties the cache (its final reap may refill it) */
  ebb_collect(true);
  uint64_t t0 = _ebb_purge_clock_ms();
  size_t before = _ebb_segment_cache_count();
  pthread_t t;
  pthread_create(&t, NULL, wide_thread, NULL);
  pthread_join(t, NULL);
  uint64_t t1 = _ebb_purge_clock_ms();
  size_t count = _ebb_segment_cache_count();
  CHECK_MSG(count > before, "segment cache %zu -> %zu after the thread exited", (size_t)before, (size_t)count);
  /* The statistics report the cached, unpurged segment's resident bytes
   * as segment_cache: what was written, not the whole segment. */
  ebb_stats_t st;
  ebb_stats_get(&st, sizeof st);
  /* (up to 3 OS pages of it count as metadata, the header) */
  CHECK_MSG(st.segment_cache >= 100 * KiB - 12 * KiB && st.segment_cache <= 100 * KiB + 64 * KiB,
            "segment_cache %zu KiB with %zu segments cached", (size_t)(st.segment_cache / KiB), (size_t)count);

  uint64_t d = 10000; /* a long fake delay: t1 - t0 is far below it */
  size_t r = _ebb_segment_purge_cache(t1, d, false, false);
  CHECK_MSG(r == 0, "cache purged %zu KiB before the delay", (size_t)(r / KiB));
  r = _ebb_segment_purge_cache(t0 + d + (t1 - t0), d, false, false);
  CHECK_MSG(r >= 100 * KiB - 12 * KiB && r <= st.segment_cache + 12 * KiB, "cache purged %zu KiB at the delay",
            (size_t)(r / KiB));
  /* ... and the resident estimate drops by as much, counted in purged_total. */
  ebb_stats_t after;
  ebb_stats_get(&after, sizeof after);
  CHECK_MSG(after.resident + r == st.resident, "resident estimate %zu KiB -> %zu KiB after purging %zu KiB",
            (size_t)(st.resident / KiB), (size_t)(after.resident / KiB), (size_t)(r / KiB));
  CHECK_MSG(after.purged_total == st.purged_total + r, "purged_total grew %zu KiB, the purge %zu KiB",
            (size_t)((after.purged_total - st.purged_total) / KiB), (size_t)(r / KiB));
  CHECK_MSG(_ebb_segment_cache_count() == count, "purged, not unmapped: %zu cached (was %zu)",
            (size_t)_ebb_segment_cache_count(), (size_t)count);
  r = _ebb_segment_purge_cache(t1 + 10 * d - 1 - (t1 - t0), d, false, false);
  CHECK_MSG(r == 0, "cache released %zu KiB again before 10 x delay", (size_t)(r / KiB));
  r = _ebb_segment_purge_cache(t1 + 10 * d, d, false, false);
  /* What is left resident: the first OS page (the registry links). */
  CHECK_MSG(r == 4 * KiB, "unmapping released %zu KiB at 10 x delay", (size_t)(r / KiB));
  CHECK_MSG(_ebb_segment_cache_count() == 0, "%zu segments still cached", (size_t)_ebb_segment_cache_count());
}

/* ---- the large cache --------------------------------------------------------------- */
static void test_large_cache(void) {
  uint64_t t0 = _ebb_purge_clock_ms();
  void *p = ebb_malloc(8 * MiB);
  memset(p, 1, 8 * MiB);
  ebb_free(p);
  uint64_t t1 = _ebb_purge_clock_ms();
  ebb_stats_t st;
  ebb_stats_get(&st, sizeof st);
  CHECK_MSG(st.large_cache >= 8 * MiB, "large_cache %zu KiB after freeing 8 MiB", (size_t)(st.large_cache / KiB));
  uint64_t d = 10000;
  size_t r = _ebb_large_purge_cache(t1, d, false);
  CHECK_MSG(r == 0, "large cache released %zu KiB before the delay", (size_t)(r / KiB));
  r = _ebb_large_purge_cache(t0 + d + (t1 - t0), d, false);
  CHECK_MSG(r >= 8 * MiB, "large cache released %zu KiB at the delay", (size_t)(r / KiB));
  ebb_stats_get(&st, sizeof st);
  CHECK_MSG(st.large_cache == 0, "large_cache %zu KiB after the delay", (size_t)(st.large_cache / KiB));
}

/* The large cache serves any size: a cached block too small is grown with
 * mremap (not left in the cache while a new mapping is made), one much too
 * big is cut down, and one a little too big is kept whole - realloc then
 * grows into it without moving. */
static void test_large_cache_any_size(void) {
  ebb_stats_t st;
  uint8_t *p = ebb_malloc(8 * MiB);
  memset(p, 1, 8 * MiB);
  ebb_free(p);
  ebb_stats_get(&st, sizeof st);
  CHECK_MSG(st.large_cache >= 8 * MiB, "large_cache %zu KiB after freeing 8 MiB", (size_t)(st.large_cache / KiB));
  uint8_t *q = ebb_calloc(1, 12 * MiB); /* the 8 MiB block, grown: zeroed all the same */
  size_t nonzero = 0;
  for (size_t i = 0; i < 12 * MiB; i += 512) nonzero += q[i] != 0;
  CHECK_MSG(nonzero == 0, "calloc(12 MiB) from the cache: %zu nonzero samples", (size_t)nonzero);
  ebb_stats_get(&st, sizeof st);
  CHECK_MSG(st.large_cache == 0, "large_cache %zu KiB: the 8 MiB block was not reused for 12 MiB",
            (size_t)(st.large_cache / KiB));
  ebb_free(q);
  uint8_t *r = ebb_malloc(2 * MiB); /* the 12 MiB block, cut down */
  ebb_stats_get(&st, sizeof st);
  CHECK_MSG(st.large_cache == 0 && ebb_malloc_usable_size(r) < 3 * MiB, "large_cache %zu KiB, usable %zu KiB",
            (size_t)(st.large_cache / KiB), (size_t)(ebb_malloc_usable_size(r) / KiB));
  ebb_free(r);
  r = ebb_malloc(MiB + 512 * KiB); /* the 2 MiB block, whole */
  memset(r, 7, MiB + 512 * KiB);
  CHECK_MSG(ebb_malloc_usable_size(r) == 2 * MiB, "usable %zu KiB", (size_t)(ebb_malloc_usable_size(r) / KiB));
  CHECK(ebb_realloc(r, 2 * MiB) == r); /* fits the mapping */
  CHECK(ebb_realloc(r, MiB + 4 * KiB) == r); /* not twice too big */
  uint8_t *s = ebb_realloc(r, 6 * MiB);  /* grows the mapping, moved or not */
  size_t bad = 0;
  for (size_t i = 0; i < MiB + 4 * KiB; i++) bad += s[i] != 7;
  CHECK_MSG(s != NULL && bad == 0, "realloc to 6 MiB: %zu bytes changed", (size_t)bad);
  ebb_free(s);
  _ebb_large_purge_cache(_ebb_purge_clock_ms(), 0, true);
}

/* Growing a cached block whose address space is taken right after it: the
 * in-place mremap fails, the block moves, and the realloc that asked for it
 * succeeds with errno as it was. */
static void test_large_grow_keeps_errno(void) {
  uint8_t *p = ebb_malloc(600 * KiB);
  uint8_t *end = p + ebb_malloc_usable_size(p);
  void *guard = mmap(end, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  CHECK(guard == end);
  ebb_free(p); /* into the large cache, unable to grow in place */
  uint8_t *s = ebb_malloc(1000);
  memset(s, 5, 1000);
  errno = 0;
  uint8_t *q = ebb_realloc(s, 700 * KiB); /* its own mapping: the cached block, grown and moved */
  CHECK_MSG(q != NULL && errno == 0, "realloc to 700 KiB: %p, errno %d", (void *)q, errno);
  size_t bad = 0;
  for (size_t i = 0; q != NULL && i < 1000; i++) bad += q[i] != 5;
  CHECK_MSG(bad == 0 && ebb_malloc_usable_size(q) >= 700 * KiB, "%zu bytes changed, usable %zu", (size_t)bad,
            (size_t)(ebb_malloc_usable_size(q)));
  ebb_free(q);
  if (guard != MAP_FAILED) munmap(guard, 4096);
  _ebb_large_purge_cache(_ebb_purge_clock_ms(), 0, true);
}

int main(void) {
  /* First thing: no purge thread, no expiry on the real clock, no urgency. */
  _ebb_option_set(EBB_OPT_PURGE_THREAD, 0);
  _ebb_option_set(EBB_OPT_PURGE_DELAY_MS, 60000);
  _ebb_option_set(EBB_OPT_DIRTY_MAX, 1LL << 40);
  _ebb_option_set(EBB_OPT_DIRTY_FRACTION, 100);
  void *ballast = ebb_malloc(256 * MiB); /* untouched: raises memory in use, not RSS */
  /* Warm up: the first offer runs an on-entry pass (real-time stamps), the
   * forced collection purges whatever it stamped. */
  ebb_free(ebb_malloc(BSIZE));
  ebb_collect(true);
  ebb_collect(true);

  test_delay();
  test_stamped_late();
  test_force();
  test_reuse_after_purge();
  test_wrap();
  test_segment_cache();
  test_large_cache();
  test_large_cache_any_size();
  test_large_grow_keeps_errno();
  ebb_free(ballast);
  CHECK_MSG(_ebb_option(EBB_OPT_PURGE_THREAD) == 0, "purge thread option %zu",
            (size_t)(_ebb_option(EBB_OPT_PURGE_THREAD)));
  return check_summary("unit_purge");
}
