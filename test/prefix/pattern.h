/* SPDX-License-Identifier: MIT */
/* test/prefix/pattern.h - the content check of the prefix drivers
 * (test/prefix/stress.c, test/fuzz/fuzz_api.c): a block of `size` bytes
 * carries bytes derived from a 64-bit seed and their offset. Blocks up to
 * PAT_FULL_MAX carry it in every byte; bigger ones in the first and last
 * PAT_EDGE bytes and PAT_STRIDE_BYTES every PAT_STRIDE bytes between (less
 * than an OS page apart, so every page of a big block is written and read).
 * Header-only, static: each driver is one file. */
#ifndef EBB_TEST_PATTERN_H
#define EBB_TEST_PATTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PAT_FULL_MAX 4096
#define PAT_EDGE 64
#define PAT_STRIDE 4000
#define PAT_STRIDE_BYTES 8

/* ASan does not know ebb's blocks (they come from mmap, not from its
 * malloc), so its checks on them can find nothing: leave them out here,
 * where the drivers spend most of their time. */
#if defined(__has_attribute)
#if __has_attribute(no_sanitize)
#define PAT_NO_ASAN __attribute__((no_sanitize("address")))
#endif
#endif
#ifndef PAT_NO_ASAN
#define PAT_NO_ASAN
#endif

_Static_assert(PAT_FULL_MAX >= 2 * PAT_EDGE, "edges must not overlap");
_Static_assert(PAT_STRIDE > PAT_EDGE && PAT_STRIDE < 4096, "every OS page of a big block is touched");

static inline uint8_t pat_byte(uint64_t seed, size_t i) {
  uint64_t x = (seed ^ (uint64_t)i) * 0x9e3779b97f4a7c15ull;
  return (uint8_t)(x >> 56);
}

/* Calls visit on every offset below `limit` that the pattern of a block of
 * `size` bytes covers, in increasing order, until visit returns false.
 * Returns the offset it stopped at, or SIZE_MAX if it went through. */
typedef bool (*pat_visit_fn)(uint8_t *p, size_t i, uint64_t seed);

PAT_NO_ASAN static inline size_t pat_walk(uint8_t *p, size_t size, size_t limit, uint64_t seed, pat_visit_fn visit) {
  if (limit > size) limit = size;
  if (size <= PAT_FULL_MAX) {
    for (size_t i = 0; i < limit; i++)
      if (!visit(p, i, seed)) return i;
    return SIZE_MAX;
  }
  size_t i = 0;
  while (i < limit) {
    if (!visit(p, i, seed)) return i;
    /* next covered offset: inside the head edge, a stride run, or the tail edge */
    size_t next = i + 1;
    if (next >= PAT_EDGE && next < size - PAT_EDGE && next % PAT_STRIDE >= PAT_STRIDE_BYTES) {
      next = (next / PAT_STRIDE + 1) * PAT_STRIDE;
      if (next > size - PAT_EDGE) next = size - PAT_EDGE;
    }
    i = next;
  }
  return SIZE_MAX;
}

PAT_NO_ASAN static inline bool pat_put(uint8_t *p, size_t i, uint64_t seed) {
  p[i] = pat_byte(seed, i);
  return true;
}

PAT_NO_ASAN static inline bool pat_is(uint8_t *p, size_t i, uint64_t seed) { return p[i] == pat_byte(seed, i); }

PAT_NO_ASAN static inline bool pat_is_zero(uint8_t *p, size_t i, uint64_t seed) {
  (void)seed;
  return p[i] == 0;
}

static inline void pat_fill(void *p, size_t size, uint64_t seed) { pat_walk(p, size, size, seed, pat_put); }

/* SIZE_MAX if the first `limit` bytes of a block of `size` hold its pattern,
 * else the first offset that does not. */
static inline size_t pat_check(void *p, size_t size, size_t limit, uint64_t seed) {
  return pat_walk(p, size, limit, seed, pat_is);
}

/* The same for zeros (calloc). */
static inline size_t pat_check_zero(void *p, size_t size) { return pat_walk(p, size, size, 0, pat_is_zero); }

#endif
