/* SPDX-License-Identifier: MIT */
/* test/stats_layers.c - the statistics by layer (ebb.h, version 3): each
 * kind of memory is counted in its own layer and in no other one.
 *
 *  - blocks of each kind (small, medium, wide, large) raise their layer's
 *    live bytes and block count by exactly their size class, and leave the
 *    other layers' live bytes alone;
 *  - a forced collect after freeing small blocks counts its purge in
 *    small_purged_total (and the segment it empties in the segment cache),
 *    never in medium, wide or large; a freed large block is dirty in the
 *    large cache, ages there, and its unmap counts in
 *    large_cache_purged_total; a shrunk large block in large_purged_total;
 *  - an empty page waits as small_dirty, and oldest_dirty_ms grows with
 *    the time it waits;
 *  - every snapshot satisfies test/stats_check.h's identities, the layer
 *    sums included;
 *  - the struct is 400 bytes, version 4; a version-3 caller gets 392, a
 *    version-2 one 184;
 *  - the text has the layer table, and the JSON the layer fields.
 * Run with EBB_PURGE_THREAD=0 and a long delay (test/CMakeLists.txt): no
 * pass runs but the ones the test asks for. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "ebb.h"
#include "stats_check.h"

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

static ebb_stats_t snapshot(void) {
  ebb_stats_t st;
  char why[512];
  REQUIRE(ebb_stats_get(&st, sizeof st));
  CHECK_MSG(stats_check_identities(&st, why, sizeof why) == 0, "%s", why);
  return st;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* The live figures of one layer, by name. */
typedef struct layer_live_s {
  uint64_t small, medium, wide, large;
} layer_live_t;

static layer_live_t lives(const ebb_stats_t *st) {
  layer_live_t l = {st->small_live, st->medium_live, st->wide_live, st->large_live};
  return l;
}

/* N blocks of `size` raise exactly the layer `which` points into (of the
 * snapshot after), by N blocks of their size class. */
static void check_kind(const char *name, size_t size, size_t n, size_t layer_offset, size_t blocks_offset) {
  check_context("%s blocks of %zu B", name, size);
  ebb_stats_t before = snapshot();
  void **p = malloc(n * sizeof(void *));
  REQUIRE(p != NULL);
  ebb_stats_t mid = snapshot(); /* the array itself is in some layer */
  for (size_t i = 0; i < n; i++) {
    p[i] = malloc(size);
    REQUIRE(p[i] != NULL);
    memset(p[i], 0x6b, size);
  }
  size_t klass = ebb_malloc_usable_size(p[0]);
  ebb_stats_t after = snapshot();
  uint64_t live_before, live_after, blocks_before, blocks_after;
  memcpy(&live_before, (const char *)&mid + layer_offset, sizeof live_before);
  memcpy(&live_after, (const char *)&after + layer_offset, sizeof live_after);
  memcpy(&blocks_before, (const char *)&mid + blocks_offset, sizeof blocks_before);
  memcpy(&blocks_after, (const char *)&after + blocks_offset, sizeof blocks_after);
  CHECK_EQ(live_after - live_before, (uint64_t)(n * klass));
  CHECK_EQ(blocks_after - blocks_before, (uint64_t)n);
  /* The other layers did not move. */
  layer_live_t a = lives(&mid), b = lives(&after);
  uint64_t moved = (b.small - a.small) + (b.medium - a.medium) + (b.wide - a.wide) + (b.large - a.large);
  CHECK_EQ(moved, (uint64_t)(n * klass));
  for (size_t i = 0; i < n; i++) free(p[i]);
  free(p);
  (void)before;
  ebb_collect(true);
}

static void live_by_layer(void) {
  check_kind("small", 100, 5000, offsetof(ebb_stats_t, small_live), offsetof(ebb_stats_t, small_blocks_count));
  check_kind("medium", 20 * KiB, 200, offsetof(ebb_stats_t, medium_live), offsetof(ebb_stats_t, medium_blocks_count));
  check_kind("wide", 200 * KiB, 40, offsetof(ebb_stats_t, wide_live), offsetof(ebb_stats_t, wide_blocks_count));
  check_kind("large", 2 * MiB, 4, offsetof(ebb_stats_t, large_live), offsetof(ebb_stats_t, large_count));
}

/* Small blocks freed and purged: the bytes go back from the small layer
 * (and the segment cache, which the emptied segment enters), not from
 * medium, wide or large. */
static void purged_small(void) {
  check_context("purging small pages");
  enum { N = 20000 };
  void **p = malloc(N * sizeof(void *));
  REQUIRE(p != NULL);
  for (size_t i = 0; i < N; i++) {
    p[i] = malloc(200);
    REQUIRE(p[i] != NULL);
    memset(p[i], 0x2d, 200);
  }
  ebb_stats_t before = snapshot();
  for (size_t i = 0; i < N; i++) free(p[i]);
  ebb_stats_t freed = snapshot();
  CHECK_MSG(freed.small_free >= before.small_free + (uint64_t)N * 200, "small_free %llu KiB -> %llu KiB",
            (unsigned long long)(before.small_free / KiB), (unsigned long long)(freed.small_free / KiB));
  CHECK(freed.small_dirty > before.small_dirty);
  ebb_collect(true);
  ebb_stats_t after = snapshot();
  CHECK_MSG(after.small_purged_total + after.segment_cache_purged_total >=
                before.small_purged_total + before.segment_cache_purged_total + (uint64_t)N * 200,
            "small %llu KiB, segment cache %llu KiB purged", (unsigned long long)(after.small_purged_total / KiB),
            (unsigned long long)(after.segment_cache_purged_total / KiB));
  CHECK(after.small_purged_total > before.small_purged_total);
  CHECK_EQ(after.medium_purged_total, before.medium_purged_total);
  CHECK_EQ(after.wide_purged_total, before.wide_purged_total);
  CHECK_EQ(after.large_purged_total, before.large_purged_total);
  CHECK_EQ(after.large_cache_purged_total, before.large_cache_purged_total);
  CHECK_EQ(after.small_dirty, (uint64_t)0);
  free(p);
}

/* A freed large block waits in the large cache as dirty memory, ages,
 * and is unmapped by a forced collect: the large cache's purge. */
static void large_cache_layer(void) {
  check_context("the large cache");
  ebb_collect(true);
  size_t size = 3 * MiB;
  void *p = malloc(size);
  REQUIRE(p != NULL);
  memset(p, 0x11, size);
  ebb_stats_t before = snapshot();
  CHECK_EQ(before.oldest_dirty_ms, (uint64_t)0);
  free(p);
  sleep_ms(60);
  ebb_stats_t cached = snapshot();
  CHECK_EQ(cached.large_cache_count, before.large_cache_count + 1);
  CHECK(cached.large_cache_dirty >= before.large_cache_dirty + size);
  CHECK(cached.large_cache >= before.large_cache + size);
  CHECK_MSG(cached.oldest_dirty_ms >= 60 && cached.oldest_dirty_ms < 60000, "oldest_dirty_ms %llu after 60 ms",
            (unsigned long long)cached.oldest_dirty_ms);
  ebb_collect(true);
  ebb_stats_t after = snapshot();
  CHECK_EQ(after.large_cache_count, (uint64_t)0);
  CHECK_EQ(after.large_cache_dirty, (uint64_t)0);
  CHECK(after.large_cache_purged_total >= cached.large_cache_purged_total + size);
  CHECK_EQ(after.large_purged_total, cached.large_purged_total);
  CHECK_EQ(after.oldest_dirty_ms, (uint64_t)0);
}

/* A large block shrunk in place gives back its tail from the large layer. */
static void large_shrunk(void) {
  check_context("a shrunk large block");
  void *p = malloc(8 * MiB);
  REQUIRE(p != NULL);
  memset(p, 0x22, 8 * MiB);
  ebb_stats_t before = snapshot();
  p = realloc(p, 2 * MiB);
  REQUIRE(p != NULL);
  ebb_stats_t after = snapshot();
  CHECK_MSG(after.large_purged_total >= before.large_purged_total + 5 * MiB, "large_purged_total grew %llu KiB",
            (unsigned long long)((after.large_purged_total - before.large_purged_total) / KiB));
  CHECK_EQ(after.large_cache_purged_total, before.large_cache_purged_total);
  free(p);
  ebb_collect(true);
}

/* An empty small page is offered; a pass stamps it (ebb_collect(false)
 * purges nothing under the long delay), and its age then grows. */
static void dirty_age(void) {
  check_context("the age of dirty pages");
  ebb_collect(true);
  enum { N = 2000 };
  void *p[N];
  for (size_t i = 0; i < N; i++) {
    p[i] = malloc(64);
    REQUIRE(p[i] != NULL);
    memset(p[i], 0x33, 64);
  }
  for (size_t i = 0; i < N; i++) free(p[i]);
  ebb_collect(false);
  ebb_stats_t st = snapshot();
  CHECK(st.small_dirty > 0);
  sleep_ms(80);
  ebb_stats_t later = snapshot();
  CHECK(later.small_dirty > 0);
  CHECK_MSG(later.oldest_dirty_ms >= 80 && later.oldest_dirty_ms < 60000, "oldest_dirty_ms %llu after 80 ms",
            (unsigned long long)later.oldest_dirty_ms);
  ebb_collect(true);
  CHECK_EQ(snapshot().oldest_dirty_ms, (uint64_t)0);
}

/* Version 4: 400 bytes; callers that know version 3 or 2 get their 392
 * or 184. */
static void versions(void) {
  check_context("versions");
  CHECK_EQ(sizeof(ebb_stats_t), (size_t)400);
  CHECK_EQ(offsetof(ebb_stats_t, small_live), (size_t)184);
  CHECK_EQ(offsetof(ebb_stats_t, anon_huge_pages), (size_t)392);
  ebb_stats_t st;
  memset(&st, 0xee, sizeof st);
  REQUIRE(ebb_stats_get(&st, sizeof st));
  CHECK_EQ(st.version, (uint32_t)EBB_STATS_VERSION);
  CHECK_EQ(st.version, (uint32_t)4);
  CHECK_EQ(st.size, (uint32_t)400);
  memset(&st, 0xee, sizeof st);
  REQUIRE(ebb_stats_get(&st, 392));
  CHECK_EQ(st.size, (uint32_t)392);
  CHECK_EQ(st.anon_huge_pages, (uint64_t)0xeeeeeeeeeeeeeeeeULL);
  memset(&st, 0xee, sizeof st);
  REQUIRE(ebb_stats_get(&st, 184));
  CHECK_EQ(st.size, (uint32_t)184);
  CHECK_EQ(st.small_live, (uint64_t)0xeeeeeeeeeeeeeeeeULL); /* not the caller's: left alone */
}

/* ebb_stats_print's layer table (into a file in place of stderr) and the
 * JSON's layer names. */
static void text_and_json(void) {
  check_context("text and JSON");
  char path[] = "/tmp/ebb-stats-layers-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  int saved = dup(2);
  REQUIRE(saved >= 0 && dup2(fd, 2) == 2);
  ebb_stats_print();
  REQUIRE(dup2(saved, 2) == 2);
  close(saved);
  char text[16384];
  ssize_t n = pread(fd, text, sizeof text - 1, 0);
  close(fd);
  unlink(path);
  REQUIRE(n > 0);
  text[n] = 0;
  CHECK(strstr(text, "ebb:   by layer") != NULL);
  CHECK(strstr(text, "live KiB") != NULL && strstr(text, "purged KiB") != NULL);
  static const char *const rows[] = {"ebb:   small pages ", "ebb:   medium pages ", "ebb:   wide pages ",
                                     "ebb:   large blocks ", "ebb:   segment cache ", "ebb:   large cache "};
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) CHECK_MSG(strstr(text, rows[i]) != NULL, "%s", rows[i]);
  CHECK(strstr(text, "ebb:   oldest_dirty_ms ") != NULL);
  CHECK(strstr(text, "ebb:   anon_huge_pages ") != NULL);
  CHECK(strstr(text, "ebb:   small_live") == NULL); /* in the table, not a line of its own */
  CHECK(strstr(text, "ebb:   large_live ") != NULL); /* older totals keep their lines */
  char json[8192];
  size_t len = ebb_stats_json(json, sizeof json);
  CHECK(len < sizeof json);
  static const char *const keys[] = {"\"version\": 4", "\"small_live\": ", "\"wide_pages_count\": ",
                                     "\"large_purged_total\": ", "\"segment_cache_dirty\": ",
                                     "\"large_cache_count\": ", "\"oldest_dirty_ms\": ",
                                     "\"anon_huge_pages\": "};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) CHECK_MSG(strstr(json, keys[i]) != NULL, "%s", keys[i]);
}

int main(void) {
  free(malloc(1));
  versions();
  live_by_layer();
  purged_small();
  large_cache_layer();
  large_shrunk();
  dirty_age();
  text_and_json();
  return check_summary("test_stats_layers");
}
