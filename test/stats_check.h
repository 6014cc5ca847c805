/* SPDX-License-Identifier: MIT */
/* test/stats_check.h - the identities ebb's statistics promise, checked
 * against each other and against the kernel. Shared by test/stats.c (which
 * links ebb) and the bench workloads (bench/common.h: they find ebb with
 * dlsym when it is preloaded, and check nothing under another allocator).
 *
 *   stats_check_identities(st, why, cap)   the sums of ebb.h hold exactly
 *   stats_check_breakdown(st, out, cap)    resident layer by layer, for a
 *                                          message when it and the kernel
 *                                          disagree
 *   stats_check_anon_bytes()               the process's anonymous resident
 *                                          memory, from smaps_rollup
 *   stats_check_collect(api, why, cap)     ebb_collect(true)'s return, the
 *                                          growth of purged_total and the
 *                                          kernel's drop agree
 *
 * smaps_rollup, not /proc/self/status: the kernel sums its page tables for
 * it, where status reads counters that lag by up to a batch of pages per
 * CPU. Nothing here allocates: /proc is read with open/read into a stack
 * buffer and messages are formatted with snprintf into the caller's buffer.
 * Header-only (static functions), like test/check.h. */
#ifndef EBB_TEST_STATS_CHECK_H
#define EBB_TEST_STATS_CHECK_H

#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ebb.h"

/* ebb's entry points, resolved by the caller (linked, or dlsym). */
typedef struct stats_check_api_s {
  bool (*stats_get)(ebb_stats_t *out, size_t size); /* ebb_stats_get_sized */
  size_t (*collect)(bool force);                    /* ebb_collect */
} stats_check_api_t;

/* Relative agreement: |a - b| <= 5% of the larger, plus `slack` bytes. */
static inline bool stats_check_close(uint64_t a, uint64_t b, uint64_t slack) {
  uint64_t hi = a > b ? a : b, lo = a > b ? b : a;
  return hi - lo <= hi / 20 + slack;
}

/* The layers (version 3) against the totals, and each page layer against
 * its own counts: a block size within its kind's classes, its bytes
 * within its pages. NULL if all hold, else the first broken one. Bounds
 * rather than sums for the counts, since ebb has no total of blocks or
 * pages; the byte sums are exact (the statistics add them up in the same
 * walk). */
static inline const char *stats_check_layers(const ebb_stats_t *st) {
  if (st->size < offsetof(ebb_stats_t, oldest_dirty_ms) + sizeof st->oldest_dirty_ms) return NULL; /* older ebb */
  const uint64_t KiB = 1024, MiB = 1024 * KiB;
  if (st->small_live + st->medium_live + st->wide_live + st->large_live != st->live)
    return "small_live + medium_live + wide_live + large_live != live";
  if (st->small_free + st->medium_free + st->wide_free != st->free_in_pages)
    return "small_free + medium_free + wide_free != free_in_pages";
  if (st->small_dirty + st->medium_dirty + st->wide_dirty + st->segment_cache_dirty + st->large_cache_dirty != st->dirty)
    return "small_dirty + medium_dirty + wide_dirty + segment_cache_dirty + large_cache_dirty != dirty";
  if (st->small_purged_total + st->medium_purged_total + st->wide_purged_total + st->large_purged_total +
          st->segment_cache_purged_total + st->large_cache_purged_total != st->purged_total)
    return "the six _purged_total != purged_total";
  if (st->small_live < st->small_blocks_count * 16 || st->small_live > st->small_blocks_count * 8 * KiB)
    return "small_live outside small_blocks_count blocks of 16 B .. 8 KiB";
  if (st->medium_live < st->medium_blocks_count * (8 * KiB + 1) || st->medium_live > st->medium_blocks_count * 64 * KiB)
    return "medium_live outside medium_blocks_count blocks of 8 .. 64 KiB";
  if (st->wide_live < st->wide_blocks_count * (64 * KiB + 1) || st->wide_live > st->wide_blocks_count * 512 * KiB)
    return "wide_live outside wide_blocks_count blocks of 64 .. 512 KiB";
  if (st->small_live > st->small_pages_count * 64 * KiB || st->medium_live > st->medium_pages_count * 512 * KiB ||
      st->wide_live > st->wide_pages_count * 4 * MiB)
    return "a page layer's live bytes exceed its pages";
  if (st->small_pages_count * 64 * KiB + st->medium_pages_count * 512 * KiB + st->wide_pages_count * 4 * MiB >
      (st->segments_count - st->segment_cache_count) * 4 * MiB)
    return "pages holding a size class exceed the segments in use";
  if (st->segment_cache_count > st->segments_count) return "segment_cache_count > segments_count";
  if (st->segment_cache > st->segment_cache_count * 4 * MiB) return "segment_cache exceeds segment_cache_count segments";
  if ((st->large_cache != 0 && st->large_cache_count == 0) || (st->large_cache_dirty != 0 && st->large_cache_count == 0))
    return "large cache bytes without large_cache_count";
  if (st->dirty == 0 && st->oldest_dirty_ms != 0) return "oldest_dirty_ms != 0 with nothing dirty";
  return NULL;
}

/* 0 if every identity holds, else 1 with the first broken one in why. */
static inline int stats_check_identities(const ebb_stats_t *st, char *why, size_t cap) {
  uint64_t parts = st->live + st->free_in_pages + st->segment_cache + st->large_cache + st->metadata;
  const char *broken = NULL;
  if (parts != st->resident) broken = "live + free_in_pages + segment_cache + large_cache + metadata != resident";
  else if (st->free_in_live_pages + st->free_in_empty_pages != st->free_in_pages)
    broken = "free_in_live_pages + free_in_empty_pages != free_in_pages";
  else if (st->resident + st->purged_or_untouched != st->mapped) broken = "resident + purged_or_untouched != mapped";
  else if (st->large_live > st->live) broken = "large_live > live";
  else if (st->unmapped_total > st->purged_total) broken = "unmapped_total > purged_total";
  else if (st->purged_lazy_total > st->purged_total) broken = "purged_lazy_total > purged_total";
  else broken = stats_check_layers(st);
  if (broken == NULL) return 0;
  snprintf(why, cap,
           "%s (live %llu free_in_pages %llu = %llu + %llu, segment_cache %llu large_cache %llu metadata %llu "
           "resident %llu purged_or_untouched %llu mapped %llu)",
           broken, (unsigned long long)st->live, (unsigned long long)st->free_in_pages,
           (unsigned long long)st->free_in_live_pages, (unsigned long long)st->free_in_empty_pages,
           (unsigned long long)st->segment_cache, (unsigned long long)st->large_cache,
           (unsigned long long)st->metadata, (unsigned long long)st->resident,
           (unsigned long long)st->purged_or_untouched, (unsigned long long)st->mapped);
  return 1;
}

/* Where resident sits, layer by layer, for a message when resident and the
 * kernel's count disagree: which layer holds the difference. */
static inline void stats_check_breakdown(const ebb_stats_t *st, char *out, size_t cap) {
#define STATS_KIB(x) (unsigned long long)((x) / 1024)
  snprintf(out, cap,
           "resident %llu KiB = live %llu (small %llu medium %llu wide %llu large %llu) + free_in_pages %llu "
           "(small %llu medium %llu wide %llu; in empty pages %llu) + segment_cache %llu (%llu segments) + "
           "large_cache %llu (%llu blocks) + metadata %llu; dirty %llu, segments %llu, abandoned %llu, heaps %llu",
           STATS_KIB(st->resident), STATS_KIB(st->live), STATS_KIB(st->small_live), STATS_KIB(st->medium_live),
           STATS_KIB(st->wide_live), STATS_KIB(st->large_live), STATS_KIB(st->free_in_pages),
           STATS_KIB(st->small_free), STATS_KIB(st->medium_free), STATS_KIB(st->wide_free),
           STATS_KIB(st->free_in_empty_pages), STATS_KIB(st->segment_cache),
           (unsigned long long)st->segment_cache_count, STATS_KIB(st->large_cache),
           (unsigned long long)st->large_cache_count, STATS_KIB(st->metadata), STATS_KIB(st->dirty),
           (unsigned long long)st->segments_count, (unsigned long long)st->abandoned_count,
           (unsigned long long)st->heaps_count);
#undef STATS_KIB
}

/* The "Anonymous:" line of /proc/self/smaps_rollup in bytes; 0 if it
 * cannot be read. */
static inline uint64_t stats_check_anon_bytes(void) {
  char buf[4096];
  int fd = open("/proc/self/smaps_rollup", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  const char *p = strstr(buf, "\nAnonymous:");
  return p == NULL ? 0 : strtoull(p + 11, NULL, 10) * 1024;
}

/* Forces a collect and checks it three ways: its return equals the growth
 * of purged_total (the same bytes, counted once), the kernel's anonymous
 * memory fell by that much (within 5%, plus 16 KiB for what the C library
 * or a purge thread's stack may touch meanwhile), and the identities hold
 * after it. Not `quiet` (a purge thread runs), another thread may release
 * memory between the reads: purged_total then grows by more than the
 * return, and it is purged_total's growth that the kernel's drop must
 * match - unless that release fell between a statistics read and the
 * kernel's, which counts it on one side only (seen once in three runs of
 * bench waves: 1028 KiB). Such a round is tried again, up to three times:
 * a second collect finds less to release, but the sums are checked the
 * same way. 0 if all hold, else 1 with why. */
static inline int stats_check_collect_once(const stats_check_api_t *api, bool quiet, bool *others, char *why,
                                           size_t cap) {
  ebb_stats_t before, after;
  api->stats_get(&before, sizeof before);
  uint64_t anon_before = stats_check_anon_bytes();
  size_t returned = api->collect(true);
  uint64_t anon_after = stats_check_anon_bytes();
  api->stats_get(&after, sizeof after);
  uint64_t counted = after.purged_total - before.purged_total;
  uint64_t dropped = anon_before > anon_after ? anon_before - anon_after : 0;
  *others = !quiet && counted > returned; /* another thread released meanwhile */
  if ((counted != returned && !*others) || !stats_check_close(*others ? counted : returned, dropped, 16 * 1024)) {
    snprintf(why, cap, "ebb_collect(true) returned %zu KiB, purged_total grew %llu KiB, anonymous RSS fell %llu KiB",
             returned / 1024, (unsigned long long)(counted / 1024), (unsigned long long)(dropped / 1024));
    return 1;
  }
  return stats_check_identities(&after, why, cap);
}

static inline int stats_check_collect(const stats_check_api_t *api, bool quiet, char *why, size_t cap) {
  bool others = false;
  int bad = 0;
  for (int round = 0; round < 3; round++) {
    bad = stats_check_collect_once(api, quiet, &others, why, cap);
    if (!bad || !others) return bad;
  }
  return bad;
}

#endif /* EBB_TEST_STATS_CHECK_H */
