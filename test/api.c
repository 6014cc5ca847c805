/* SPDX-License-Identifier: MIT */
/* test/api.c - every public and standard allocation function, and its edge
 * cases.
 *
 * The standard-surface tests run twice through a table of function pointers:
 * once with the standard names (malloc, free, ...; they are ebb's, because
 * this program links libebb.so ahead of the C library) and once with the
 * ebb_ prefixed names. Calling through pointers also keeps gcc from warning
 * about, or folding away, the deliberately absurd requests. ebb's own API
 * (ebb_owns, ebb_stats_get, ...) is tested once, at the end.
 *
 * Single-threaded, fixed seeds. Prints one line per failed CHECK and a
 * summary line; exits 1 if anything failed.
 */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "ebb.h"

/* C23 functions that glibc 2.36 does not declare yet. */
void free_sized(void *p, size_t size);
void free_aligned_sized(void *p, size_t alignment, size_t size);

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* ---- the two tables under test ------------------------------------------ */

typedef struct api_s {
  const char *name;
  void *(*malloc)(size_t);
  void *(*calloc)(size_t, size_t);
  void *(*realloc)(void *, size_t);
  void *(*reallocarray)(void *, size_t, size_t);
  void (*free)(void *);
  void (*free_sized)(void *, size_t);
  void (*free_aligned_sized)(void *, size_t, size_t);
  int (*posix_memalign)(void **, size_t, size_t);
  void *(*aligned_alloc)(size_t, size_t);
  void *(*memalign)(size_t, size_t);
  void *(*valloc)(size_t);
  void *(*pvalloc)(size_t);
  size_t (*usable)(const void *);
  int (*trim)(size_t);
  int (*mallopt)(int, int);
  void (*stats)(void);
  struct mallinfo2 (*mallinfo2)(void);
  struct mallinfo (*mallinfo)(void);
} api_t;

/* glibc declares malloc_usable_size(void *); ebb's takes const void *. */
static size_t std_usable(const void *p) { return malloc_usable_size((void *)p); }

/* mallinfo is deprecated in glibc's header, but it is still part of the
 * surface ebb replaces, so it is tested. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
static struct mallinfo std_mallinfo(void) { return mallinfo(); }
#pragma GCC diagnostic pop

static const api_t std_api = {
  "std", malloc, calloc, realloc, reallocarray, free, free_sized, free_aligned_sized,
  posix_memalign, aligned_alloc, memalign, valloc, pvalloc, std_usable,
  malloc_trim, mallopt, malloc_stats, mallinfo2, std_mallinfo,
};

static const api_t ebb_api = {
  "ebb", ebb_malloc, ebb_calloc, ebb_realloc, ebb_reallocarray, ebb_free,
  ebb_free_sized, ebb_free_aligned_sized, ebb_posix_memalign, ebb_aligned_alloc,
  ebb_memalign, ebb_valloc, ebb_pvalloc, ebb_malloc_usable_size,
  ebb_malloc_trim, ebb_mallopt, ebb_malloc_stats, ebb_mallinfo2, ebb_mallinfo,
};

/* ---- helpers ------------------------------------------------------------- */

/* Hides a constant from the optimiser, so absurd sizes reach the allocator
 * and raise no -Walloc-size-larger-than. */
static size_t opaque(size_t v) {
  volatile size_t x = v;
  return x;
}

static bool is_aligned(const void *p, size_t alignment) {
  return ((uintptr_t)p & (alignment - 1)) == 0;
}

static size_t round_up(size_t n, size_t alignment) {
  return (n + alignment - 1) & ~(alignment - 1);
}

static size_t page_size(void) { return (size_t)sysconf(_SC_PAGESIZE); }

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* The alignment malloc(n) owes: that of any fundamental type of size <= n
 * (C17 7.22.3). On x86-64 long double and __int128 are 16 bytes and
 * 16-aligned, so any n >= 16 needs 16; smaller n, the largest power of two
 * not above n. */
static size_t fundamental_alignment(size_t n) {
  size_t a = 1;
  while (a * 2 <= n && a < 16)
    a *= 2;
  return a;
}

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint64_t rng_next(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static void shuffle(size_t *a, size_t n) {
  for (size_t i = n; i > 1; i--) {
    size_t j = (size_t)(rng_next() % i);
    size_t t = a[i - 1];
    a[i - 1] = a[j];
    a[j] = t;
  }
}

/* Content patterns. Byte i of a block filled with seed s is
 * ref[(i + s) % P]: random-looking, different per seed, and checkable with
 * memcmp (fast even in the unoptimised debug build). P is prime so that a
 * block copied to a page- or line-shifted place does not match. */
#define PATTERN_PERIOD 4093
static uint8_t pattern_ref[2 * PATTERN_PERIOD]; /* second half == first half */

static void pattern_init(void) {
  for (size_t i = 0; i < PATTERN_PERIOD; i++)
    pattern_ref[i] = (uint8_t)(rng_next() >> 32);
  memcpy(pattern_ref + PATTERN_PERIOD, pattern_ref, PATTERN_PERIOD);
}

static void pattern_fill(void *p, size_t from, size_t to, size_t seed) {
  uint8_t *b = p;
  for (size_t i = from; i < to;) {
    size_t len = min_size(to - i, PATTERN_PERIOD);
    memcpy(b + i, pattern_ref + (i + seed) % PATTERN_PERIOD, len);
    i += len;
  }
}

/* Offset of the first chunk of p[0..n) that breaks the pattern, or SIZE_MAX. */
static size_t pattern_mismatch(const void *p, size_t n, size_t seed) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n;) {
    size_t len = min_size(n - i, PATTERN_PERIOD);
    if (memcmp(b + i, pattern_ref + (i + seed) % PATTERN_PERIOD, len) != 0)
      return i;
    i += len;
  }
  return SIZE_MAX;
}

/* Offset of the first chunk of p[0..n) that is not all `byte`, or SIZE_MAX. */
static size_t bytes_mismatch(const void *p, size_t n, uint8_t byte) {
  static uint8_t ref[64 * 1024];
  static int ref_byte = -1;
  const uint8_t *b = p;
  if (ref_byte != byte) {
    memset(ref, byte, sizeof ref);
    ref_byte = byte;
  }
  for (size_t i = 0; i < n; i += sizeof ref)
    if (memcmp(b + i, ref, min_size(n - i, sizeof ref)) != 0)
      return i;
  return SIZE_MAX;
}

static bool all_distinct(void *const *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++)
      if (p[i] == p[j])
        return false;
  return true;
}

/* Sizes that cross every tier: geometric (x1.5, odd so that few are round)
 * from 8 B up to `max`, plus each tier edge and its neighbours, ascending.
 * Where ebb's tier boundaries are options, the defaults lie near these. */
static const size_t tier_edges[] = {8 * KiB, 64 * KiB, 512 * KiB, 1 * MiB, 4 * MiB, 32 * MiB};
#define SIZES_CAP 128

static int compare_sizes(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return (x > y) - (x < y);
}

static size_t build_sizes(size_t *out, size_t max) {
  size_t count = 0;
  for (size_t n = 8; n < max; n = n + n / 2 + 1)
    out[count++] = n;
  for (size_t i = 0; i < sizeof tier_edges / sizeof tier_edges[0]; i++)
    for (size_t d = 0; d < 3 && tier_edges[i] + 1 < max; d++)
      out[count++] = tier_edges[i] - 1 + d;
  out[count++] = max;
  qsort(out, count, sizeof out[0], compare_sizes);
  return count;
}

/* Runs fn with stderr sent to a temporary file; returns the bytes it wrote. */
static long stderr_bytes_of(void (*fn)(void)) {
  FILE *tmp = tmpfile();
  if (!CHECK(tmp != NULL))
    return -1;
  fflush(stderr);
  int saved = dup(2);
  dup2(fileno(tmp), 2);
  fn();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  long n = (long)lseek(fileno(tmp), 0, SEEK_END);
  fclose(tmp);
  return n;
}

/* ---- zero sizes ---------------------------------------------------------- */

/* malloc(0) returns a unique, freeable pointer each time (glibc does). */
static void test_malloc_zero(const api_t *A) {
  enum { N = 64 };
  void *p[N];
  for (int i = 0; i < N; i++)
    CHECK((p[i] = A->malloc(0)) != NULL);
  CHECK(all_distinct(p, N));
  for (int i = 0; i < N; i++)
    A->free(p[i]);
}

static void test_other_zero_sizes(const api_t *A) {
  void *pm = (void *)&pm;
  void *p[8] = {
    A->calloc(0, 0), A->calloc(0, 16), A->calloc(16, 0), A->realloc(NULL, 0),
    A->reallocarray(NULL, 0, 8), A->aligned_alloc(64, 0), A->memalign(64, 0), NULL,
  };
  CHECK(A->posix_memalign(&pm, 64, 0) == 0);
  p[7] = pm; /* POSIX allows NULL here; free takes either */
  for (int i = 0; i < 7; i++)
    CHECK_MSG(p[i] != NULL, "zero-size variant #%d returned NULL", i);
  CHECK(is_aligned(p[5], 64) && is_aligned(p[6], 64) && is_aligned(p[7], 64));
  for (int i = 0; i < 8; i++)
    A->free(p[i]);
}

/* ---- small sizes, one by one -------------------------------------------- */

enum { SMALL_MAX = 1024, PER_SIZE = 3, SMALL_BLOCKS = SMALL_MAX * PER_SIZE };

static size_t small_block_size(size_t i) { return 1 + i / PER_SIZE; }

static void verify_small_blocks(void **blocks, const size_t *order, size_t from, size_t to) {
  for (size_t k = from; k < to; k++) {
    size_t i = order[k];
    CHECK_MSG(pattern_mismatch(blocks[i], small_block_size(i), i) == SIZE_MAX,
              "block %zu of size %zu was overwritten", i, small_block_size(i));
  }
}

/* Every size 1..1024, several blocks each, all live at once with distinct
 * content, then freed in random order; the survivors are checked after half
 * of them went, so a free that scribbles over a neighbour is seen. */
static void test_every_small_size(const api_t *A) {
  static void *blocks[SMALL_BLOCKS];
  static size_t order[SMALL_BLOCKS];
  for (size_t i = 0; i < SMALL_BLOCKS; i++) {
    size_t n = small_block_size(i);
    order[i] = i;
    if (!CHECK((blocks[i] = A->malloc(n)) != NULL))
      return;
    CHECK_MSG(A->usable(blocks[i]) >= n, "size %zu", n);
    CHECK_MSG(is_aligned(blocks[i], fundamental_alignment(n)), "malloc(%zu) = %p", n, blocks[i]);
    pattern_fill(blocks[i], 0, n, i);
  }
  verify_small_blocks(blocks, order, 0, SMALL_BLOCKS);
  shuffle(order, SMALL_BLOCKS);
  for (size_t k = 0; k < SMALL_BLOCKS / 2; k++)
    A->free(blocks[order[k]]);
  verify_small_blocks(blocks, order, SMALL_BLOCKS / 2, SMALL_BLOCKS);
  for (size_t k = SMALL_BLOCKS / 2; k < SMALL_BLOCKS; k++)
    A->free(blocks[order[k]]);
}

/* ---- usable size --------------------------------------------------------- */

static void check_usable(const api_t *A, size_t n) {
  uint8_t *p = A->malloc(n);
  if (!CHECK_MSG(p != NULL, "malloc(%zu)", n))
    return;
  size_t u = A->usable(p);
  CHECK_MSG(u >= n, "usable(malloc(%zu)) = %zu", n, u);
  CHECK_MSG(is_aligned(p, fundamental_alignment(n)), "malloc(%zu) = %p", n, (void *)p);
  memset(p, 0x5A, u); /* all usable bytes belong to the caller */
  A->free(p);
}

static void test_usable_size(const api_t *A) {
  size_t sizes[SIZES_CAP];
  size_t count = build_sizes(sizes, 64 * MiB);
  for (size_t n = 1; n <= 4096; n++)
    check_usable(A, n);
  for (size_t i = 0; i < count; i++)
    check_usable(A, sizes[i]);
  CHECK(A->usable(NULL) == 0);
}

/* ---- alignment ----------------------------------------------------------- */

typedef void *(*aligned_fn_t)(const api_t *A, size_t alignment, size_t size);

static void *via_posix_memalign(const api_t *A, size_t alignment, size_t size) {
  void *p = NULL;
  return A->posix_memalign(&p, alignment, size) == 0 ? p : NULL;
}

static void *via_aligned_alloc(const api_t *A, size_t alignment, size_t size) {
  return A->aligned_alloc(alignment, size);
}

static void *via_memalign(const api_t *A, size_t alignment, size_t size) {
  return A->memalign(alignment, size);
}

static const struct {
  const char *name;
  aligned_fn_t fn;
} aligned_fns[] = {
  {"posix_memalign", via_posix_memalign},
  {"aligned_alloc", via_aligned_alloc},
  {"memalign", via_memalign},
};
#define ALIGNED_FNS (sizeof aligned_fns / sizeof aligned_fns[0])
#define ALIGNED_SIZES 6

/* aligned_alloc memory may go back through free_aligned_sized (C23); the
 * others only through free. Half of the aligned_alloc blocks use each. */
static void free_aligned_block(const api_t *A, size_t fn, void *p, size_t alignment,
                               size_t size, size_t k) {
  if (aligned_fns[fn].fn == via_aligned_alloc && k % 2 == 0)
    A->free_aligned_sized(p, alignment, size);
  else
    A->free(p);
}

/* Several blocks of one alignment live at once: aligned, usable >= asked,
 * writable over the whole request, and not overlapping. */
static void check_alignment(const api_t *A, size_t fn, size_t alignment) {
  const size_t sizes[ALIGNED_SIZES] = {1, 8, alignment / 2 + 1, alignment, alignment + 1,
                                       3 * alignment + 5};
  void *p[ALIGNED_SIZES];
  const char *name = aligned_fns[fn].name;
  for (size_t k = 0; k < ALIGNED_SIZES; k++) {
    p[k] = aligned_fns[fn].fn(A, alignment, sizes[k]);
    CHECK_MSG(p[k] != NULL && is_aligned(p[k], alignment), "%s(%zu, %zu) = %p", name, alignment,
              sizes[k], p[k]);
    if (p[k] == NULL)
      continue;
    CHECK_MSG(A->usable(p[k]) >= sizes[k], "%s(%zu, %zu)", name, alignment, sizes[k]);
    memset(p[k], (int)k + 1, sizes[k]);
  }
  for (size_t k = 0; k < ALIGNED_SIZES; k++)
    if (p[k] != NULL)
      CHECK_MSG(bytes_mismatch(p[k], sizes[k], (uint8_t)(k + 1)) == SIZE_MAX,
                "%s(%zu, %zu) overlaps another block", name, alignment, sizes[k]);
  for (size_t k = 0; k < ALIGNED_SIZES; k++)
    free_aligned_block(A, fn, p[k], alignment, sizes[k], k);
}

static void test_alignments(const api_t *A) {
  for (size_t fn = 0; fn < ALIGNED_FNS; fn++) {
    for (size_t a = 8; a <= 1 * MiB; a *= 2)
      check_alignment(A, fn, a);
    check_alignment(A, fn, 2 * MiB);
    check_alignment(A, fn, 8 * MiB);
  }
}

/* posix_memalign wants a power of two that is a multiple of sizeof(void *);
 * on failure it returns EINVAL and leaves *out alone. */
static void test_posix_memalign_bad(const api_t *A) {
  static const size_t bad[] = {0, 1, 2, 3, 4, 12, 24, 48, 1000, 4097, 1 * MiB + 8};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    void *sentinel = (void *)&sentinel, *p = sentinel;
    int rc = A->posix_memalign(&p, bad[i], 64);
    CHECK_MSG(rc == EINVAL, "posix_memalign(alignment %zu) returned %d", bad[i], rc);
    CHECK_MSG(p == sentinel, "posix_memalign(alignment %zu) wrote *out", bad[i]);
    if (rc == 0)
      A->free(p);
  }
}

/* aligned_alloc: any power of two is fine (even below sizeof(void *));
 * anything else is NULL with EINVAL. */
static void test_aligned_alloc_bad(const api_t *A) {
  static const size_t bad[] = {0, 3, 24, 48, 1000, 4097, 3 * MiB};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    errno = 0;
    void *p = A->aligned_alloc(bad[i], 64);
    CHECK_MSG(p == NULL && errno == EINVAL, "aligned_alloc(%zu, 64) = %p, errno %d", bad[i], p,
              errno);
    A->free(p);
  }
  for (size_t a = 1; a <= 4; a *= 2) {
    void *p = A->aligned_alloc(a, 24);
    CHECK_MSG(p != NULL && A->usable(p) >= 24, "aligned_alloc(%zu, 24)", a);
    A->free(p);
  }
}

/* memalign rounds a non-power-of-two alignment up to the next power of two,
 * and treats alignments below the minimum as malloc (glibc behaviour). */
static void test_memalign_rounding(const api_t *A) {
  static const struct { size_t asked, expect; } cases[] = {
    {24, 32}, {48, 64}, {100, 128}, {3000, 4096}, {5000, 8192},
    {1 * MiB + 1, 2 * MiB}, {3 * MiB, 4 * MiB}, {0, 8}, {1, 8}, {2, 8}, {4, 8},
  };
  static const size_t sizes[] = {1, 100, 5000};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
      void *p = A->memalign(cases[i].asked, sizes[s]);
      CHECK_MSG(p != NULL && is_aligned(p, cases[i].expect), "memalign(%zu, %zu) = %p",
                cases[i].asked, sizes[s], p);
      CHECK_MSG(p == NULL || A->usable(p) >= sizes[s], "memalign(%zu, %zu)", cases[i].asked,
                sizes[s]);
      A->free(p);
    }
  }
}

static const size_t page_sizes_to_try[] = {0, 1, 100, 4095, 4096, 4097, 100000, 3 * MiB + 7};
#define PAGE_SIZES_TO_TRY (sizeof page_sizes_to_try / sizeof page_sizes_to_try[0])

static void test_valloc(const api_t *A) {
  size_t ps = page_size();
  for (size_t i = 0; i < PAGE_SIZES_TO_TRY; i++) {
    size_t n = page_sizes_to_try[i];
    void *p = A->valloc(n);
    if (!CHECK_MSG(p != NULL && is_aligned(p, ps), "valloc(%zu) = %p", n, p))
      continue;
    CHECK_MSG(A->usable(p) >= n, "valloc(%zu)", n);
    memset(p, 0x11, n);
    A->free(p);
  }
}

/* pvalloc rounds the size up to whole pages, and all of them are usable. */
static void test_pvalloc(const api_t *A) {
  size_t ps = page_size();
  for (size_t i = 0; i < PAGE_SIZES_TO_TRY; i++) {
    size_t n = page_sizes_to_try[i], whole = round_up(n, ps);
    void *p = A->pvalloc(n);
    if (!CHECK_MSG(p != NULL && is_aligned(p, ps), "pvalloc(%zu) = %p", n, p))
      continue;
    CHECK_MSG(A->usable(p) >= whole, "pvalloc(%zu): usable %zu", n, A->usable(p));
    memset(p, 0x22, whole);
    A->free(p);
  }
}

/* ---- calloc over dirty memory -------------------------------------------- */

/* Leaves `count` blocks of size n dirty (0xAA) and freed, in an order that
 * makes the next allocations of that size likely to land on them. */
static void dirty_and_free(const api_t *A, size_t n, size_t count) {
  void *p[32];
  for (size_t i = 0; i < count; i++)
    if ((p[i] = A->malloc(n)) != NULL)
      memset(p[i], 0xAA, n);
  for (size_t i = count; i-- > 0;)
    A->free(p[i]);
}

static void calloc_expect_zero(const api_t *A, size_t n, size_t count) {
  void *p[32];
  for (size_t i = 0; i < count; i++) {
    /* alternate the two ways of saying n bytes */
    p[i] = (i % 2 == 0 || n % 8 != 0) ? A->calloc(1, n) : A->calloc(n / 8, 8);
    CHECK_MSG(p[i] != NULL, "calloc of %zu bytes", n);
  }
  for (size_t i = 0; i < count; i++) {
    if (p[i] == NULL)
      continue;
    size_t bad = bytes_mismatch(p[i], n, 0);
    CHECK_MSG(bad == SIZE_MAX, "calloc(%zu) block %zu not zero near offset %zu", n, i, bad);
    memset(p[i], 0xAA, n); /* dirty again for the next size */
  }
  for (size_t i = 0; i < count; i++)
    A->free(p[i]);
}

static void test_calloc_dirty(const api_t *A) {
  size_t sizes[SIZES_CAP];
  size_t count = build_sizes(sizes, 64 * MiB);
  for (size_t i = 0; i < count; i++) {
    size_t n = sizes[i];
    size_t blocks = n <= 128 * KiB ? 32 : n <= 4 * MiB ? 4 : 1;
    dirty_and_free(A, n, blocks);
    calloc_expect_zero(A, n, blocks);
  }
}

/* ---- realloc ------------------------------------------------------------- */

/* Reallocates one block through `sizes`, checking at every step that the
 * preserved prefix is intact and refilling any new tail. */
static void realloc_walk(const api_t *A, const char *what, const size_t *sizes, size_t count) {
  size_t old = sizes[0], seed = old + count;
  uint8_t *p = A->malloc(old);
  if (!CHECK(p != NULL))
    return;
  pattern_fill(p, 0, old, seed);
  for (size_t i = 1; i < count; i++) {
    size_t n = sizes[i];
    uint8_t *q = A->realloc(p, n);
    if (!CHECK_MSG(q != NULL, "%s: realloc(%zu -> %zu)", what, old, n))
      break;
    p = q;
    size_t bad = pattern_mismatch(p, min_size(old, n), seed);
    CHECK_MSG(bad == SIZE_MAX, "%s: realloc(%zu -> %zu) lost content near %zu", what, old, n, bad);
    CHECK_MSG(A->usable(p) >= n, "%s: realloc to %zu", what, n);
    if (n > old)
      pattern_fill(p, old, n, seed);
    old = n;
  }
  A->free(p);
}

static void reverse_sizes(size_t *s, size_t n) {
  for (size_t i = 0; i < n / 2; i++) {
    size_t t = s[i];
    s[i] = s[n - 1 - i];
    s[n - 1 - i] = t;
  }
}

static void test_realloc_tiers(const api_t *A) {
  static const size_t jumps[] = {8,      32 * MiB, 16,        1 * MiB,  100,  600 * KiB,
                                 9000,   70000,    5,         64 * MiB, 1,    300 * KiB,
                                 4 * MiB, 4 * MiB, 4 * MiB + 1, 200,    8 * KiB, 8 * KiB - 1};
  size_t sizes[SIZES_CAP];
  size_t count = build_sizes(sizes, 64 * MiB);
  realloc_walk(A, "growing", sizes, count);
  reverse_sizes(sizes, count);
  realloc_walk(A, "shrinking", sizes, count);
  realloc_walk(A, "jumping", jumps, sizeof jumps / sizeof jumps[0]);
  for (size_t i = 0; i < sizeof tier_edges / sizeof tier_edges[0]; i++) {
    size_t e = tier_edges[i];
    const size_t edge[] = {e - 1, e, e + 1, e - 1, e + 1, e, e / 2, 2 * e};
    realloc_walk(A, "edge", edge, sizeof edge / sizeof edge[0]);
  }
}

static void test_realloc_null_and_zero(const api_t *A) {
  void *p = A->realloc(NULL, 100); /* same as malloc(100) */
  if (!CHECK(p != NULL))
    return;
  CHECK(A->usable(p) >= 100);
  pattern_fill(p, 0, 100, 7);
  void *q = A->realloc(p, 100);
  CHECK(q != NULL && pattern_mismatch(q, 100, 7) == SIZE_MAX);
  /* realloc(p, 0) frees p and returns NULL, as glibc does; that it really
   * freed is checked through ebb's statistics in test_realloc_zero_frees. */
  CHECK(A->realloc(q != NULL ? q : p, 0) == NULL);
}

static void test_reallocarray(const api_t *A) {
  uint8_t *p = A->reallocarray(NULL, 4, 25);
  if (!CHECK(p != NULL && A->usable(p) >= 100))
    return;
  pattern_fill(p, 0, 100, 3);
  uint8_t *q = A->reallocarray(p, 1000, 100);
  if (!CHECK(q != NULL && A->usable(q) >= 100000)) {
    A->free(p);
    return;
  }
  CHECK(pattern_mismatch(q, 100, 3) == SIZE_MAX);
  A->free(q);
}

/* ---- errors -------------------------------------------------------------- */

static void check_enomem(const char *what, void *p, int err) {
  CHECK_MSG(p == NULL && err == ENOMEM, "%s = %p, errno %d", what, p, err);
}

#define EXPECT_ENOMEM(A, call) \
  do { \
    errno = 0; \
    void *p_ = (call); \
    int e_ = errno; \
    check_enomem(#call, p_, e_); \
    (A)->free(p_); \
  } while (0)

static void test_absurd_sizes(const api_t *A) {
  const size_t half = opaque(SIZE_MAX / 2), big = opaque((size_t)1 << 32);
  EXPECT_ENOMEM(A, A->malloc(opaque(SIZE_MAX)));
  EXPECT_ENOMEM(A, A->malloc(opaque(SIZE_MAX - 15)));
  EXPECT_ENOMEM(A, A->malloc(opaque(SIZE_MAX - 4 * MiB)));
  EXPECT_ENOMEM(A, A->malloc(opaque((size_t)PTRDIFF_MAX + 1)));
  EXPECT_ENOMEM(A, A->malloc(opaque((size_t)PTRDIFF_MAX)));
  EXPECT_ENOMEM(A, A->malloc(opaque((size_t)1 << 50)));
  EXPECT_ENOMEM(A, A->calloc(half, 3));
  EXPECT_ENOMEM(A, A->calloc(3, half));
  EXPECT_ENOMEM(A, A->calloc(big, big)); /* product wraps to 0 */
  EXPECT_ENOMEM(A, A->reallocarray(NULL, half, 3));
  EXPECT_ENOMEM(A, A->reallocarray(NULL, big, big));
  EXPECT_ENOMEM(A, A->aligned_alloc(64, opaque(SIZE_MAX)));
  EXPECT_ENOMEM(A, A->memalign(64, opaque(SIZE_MAX)));
  EXPECT_ENOMEM(A, A->valloc(opaque(SIZE_MAX)));
  EXPECT_ENOMEM(A, A->pvalloc(opaque(SIZE_MAX)));
  EXPECT_ENOMEM(A, A->pvalloc(opaque(SIZE_MAX - 100)));
}

static void test_posix_memalign_enomem(const api_t *A) {
  void *sentinel = (void *)&sentinel, *p = sentinel;
  CHECK(A->posix_memalign(&p, 64, opaque(SIZE_MAX)) == ENOMEM);
  CHECK(p == sentinel || p == NULL); /* POSIX allows either */
  p = sentinel;
  CHECK(A->posix_memalign(&p, 4096, opaque(SIZE_MAX - 100)) == ENOMEM);
  CHECK(p == sentinel || p == NULL);
}

/* An alignment bigger than any address space: NULL, with ENOMEM (EINVAL is
 * also a fair answer). */
static void test_absurd_alignments(const api_t *A) {
  static const size_t aligns[] = {(size_t)1 << 62, (size_t)1 << 63, (size_t)1 << 48};
  for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
    size_t a = aligns[i];
    errno = 0;
    void *p = A->aligned_alloc(a, 64);
    CHECK_MSG(p == NULL && (errno == ENOMEM || errno == EINVAL), "aligned_alloc(%#zx) = %p", a, p);
    A->free(p);
    errno = 0;
    p = A->memalign(a, 64);
    CHECK_MSG(p == NULL && (errno == ENOMEM || errno == EINVAL), "memalign(%#zx) = %p", a, p);
    A->free(p);
    p = NULL;
    int rc = A->posix_memalign(&p, a, 64);
    CHECK_MSG(rc == ENOMEM || rc == EINVAL, "posix_memalign(%#zx) returned %d", a, rc);
    if (rc == 0)
      A->free(p);
  }
}

/* A failed realloc leaves the block alone: still valid, content intact. */
static void check_realloc_fails_keeps(const api_t *A, size_t n) {
  uint8_t *p = A->malloc(n);
  if (!CHECK(p != NULL))
    return;
  pattern_fill(p, 0, n, n);
  errno = 0;
  void *q = A->realloc(p, opaque(SIZE_MAX));
  check_enomem("realloc(p, SIZE_MAX)", q, errno);
  errno = 0;
  q = A->reallocarray(p, opaque((size_t)1 << 32), opaque((size_t)1 << 32));
  check_enomem("reallocarray(p, 2^32, 2^32)", q, errno);
  errno = 0;
  q = A->realloc(p, opaque((size_t)PTRDIFF_MAX + 1));
  check_enomem("realloc(p, PTRDIFF_MAX + 1)", q, errno);
  CHECK_MSG(pattern_mismatch(p, n, n) == SIZE_MAX, "block of %zu changed by failed realloc", n);
  uint8_t *r = A->realloc(p, n + 1); /* and it still works as a block */
  CHECK(r != NULL && pattern_mismatch(r, n, n) == SIZE_MAX);
  A->free(r != NULL ? r : p);
}

static void test_realloc_failure_keeps_block(const api_t *A) {
  static const size_t sizes[] = {16, 1000, 20000, 300 * KiB, 3 * MiB, 40 * MiB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
    check_realloc_fails_keeps(A, sizes[i]);
}

static void test_free_null(const api_t *A) {
  A->free(NULL);
  A->free_sized(NULL, 0);
  A->free_sized(NULL, 100);
  A->free_aligned_sized(NULL, 64, 0);
  void *p = A->malloc(10); /* and the heap is fine afterwards */
  CHECK(p != NULL);
  A->free(p);
}

/* ---- sized free ---------------------------------------------------------- */

static void test_free_sized(const api_t *A) {
  size_t sizes[SIZES_CAP];
  size_t count = build_sizes(sizes, 16 * MiB);
  for (size_t i = 0; i < count; i++) {
    size_t n = sizes[i], c = n / 8 + 1;
    void *p = A->malloc(n), *q = A->calloc(c, 8), *r = A->realloc(A->malloc(n), n + 3);
    CHECK_MSG(p != NULL && q != NULL && r != NULL, "size %zu", n);
    A->free_sized(p, n);
    A->free_sized(q, c * 8);
    A->free_sized(r, n + 3);
  }
}

static void test_free_aligned_sized(const api_t *A) {
  static const size_t aligns[] = {16, 64, 4096, 64 * KiB, 2 * MiB};
  static const size_t sizes[] = {1, 100, 5000, 70000, 3 * MiB};
  for (size_t a = 0; a < sizeof aligns / sizeof aligns[0]; a++)
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
      void *p = A->aligned_alloc(aligns[a], sizes[s]);
      CHECK_MSG(p != NULL && is_aligned(p, aligns[a]), "aligned_alloc(%zu, %zu)", aligns[a],
                sizes[s]);
      A->free_aligned_sized(p, aligns[a], sizes[s]);
    }
}

/* ---- reporting and control ------------------------------------------------ */

enum { HELD_SMALL = 8 * 1024, HELD_LARGE = 16 * MiB }; /* 8 MiB of 1 KiB, one 16 MiB */

/* Holds 24 MiB and checks that mallinfo2/mallinfo count it. Where the large
 * block is counted is the allocator's choice (glibc puts mmapped blocks in
 * hblkhd), so only the small blocks must be in uordblks. */
static void check_mallinfo_counts(const api_t *A) {
  struct mallinfo2 mi2 = A->mallinfo2();
  struct mallinfo mi = A->mallinfo();
  size_t small = (size_t)HELD_SMALL * KiB * 9 / 10, all = small + HELD_LARGE;
  CHECK_MSG(mi2.uordblks >= small, "mallinfo2 uordblks %zu", mi2.uordblks);
  CHECK_MSG(mi2.uordblks + mi2.hblkhd >= all, "uordblks %zu + hblkhd %zu", mi2.uordblks,
            mi2.hblkhd);
  CHECK_MSG(mi.uordblks >= 0 && (size_t)mi.uordblks >= small, "mallinfo uordblks %d", mi.uordblks);
  CHECK_MSG((size_t)mi.uordblks + (size_t)mi.hblkhd >= all, "mallinfo %d + %d", mi.uordblks,
            mi.hblkhd);
}

static void test_mallinfo(const api_t *A) {
  static void *held[HELD_SMALL];
  for (size_t i = 0; i < HELD_SMALL; i++)
    if ((held[i] = A->malloc(KiB)) != NULL)
      memset(held[i], 1, KiB);
  void *large = A->malloc(HELD_LARGE);
  CHECK(large != NULL);
  if (large != NULL)
    memset(large, 1, HELD_LARGE);
  check_mallinfo_counts(A);
  A->free(large);
  for (size_t i = 0; i < HELD_SMALL; i++)
    A->free(held[i]);
}

static void test_trim_and_print(const api_t *A) {
  void *p = A->malloc(10 * MiB);
  A->free(p);
  int r = A->trim(0);
  CHECK_MSG(r == 0 || r == 1, "malloc_trim(0) = %d", r);
  r = A->trim(64 * KiB);
  CHECK_MSG(r == 0 || r == 1, "malloc_trim(64 KiB) = %d", r);
  CHECK(stderr_bytes_of(A->stats) > 0);
  p = A->malloc(100); /* still allocates after a trim */
  CHECK(p != NULL);
  A->free(p);
}

/* Run last: M_MMAP_THRESHOLD may move ebb's tier boundary for the rest of
 * the process. Blocks around the new threshold must still work. */
static void test_mallopt(const api_t *A) {
  static const int ignored[] = {M_ARENA_MAX, M_ARENA_TEST, M_TOP_PAD, M_MMAP_MAX,
                                M_TRIM_THRESHOLD};
  CHECK(A->mallopt(M_MMAP_THRESHOLD, 256 * 1024) == 1);
  for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
    CHECK_MSG(A->mallopt(ignored[i], 4) == 1, "mallopt(%d, 4)", ignored[i]);
  CHECK(A->mallopt(12345, 1) == 0);
  const size_t sizes[] = {256 * KiB - 1, 256 * KiB, 256 * KiB + 1, 100, 3 * MiB};
  realloc_walk(A, "after mallopt", sizes, sizeof sizes / sizeof sizes[0]);
}

/* ---- ebb's own API ------------------------------------------------------- */

static void test_version(void) {
  char expect[32];
  snprintf(expect, sizeof expect, "%d.%d.%d", EBB_VERSION_MAJOR, EBB_VERSION_MINOR,
           EBB_VERSION_PATCH);
  CHECK(ebb_version() != NULL && strcmp(ebb_version(), expect) == 0);
  CHECK(strcmp(ebb_version(), "0.1.0") == 0);
}

/* Live blocks of every tier and every allocation function are ebb's. */
static void test_owns_live_blocks(void) {
  static const size_t sizes[] = {0,      1,        64,      1000,    9000,    70000,
                                 600 * KiB, 3 * MiB, 8 * MiB, 64 * MiB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *p = malloc(sizes[i]), *q = ebb_calloc(1, sizes[i]);
    CHECK_MSG(ebb_owns(p) && ebb_owns(q), "blocks of %zu", sizes[i]);
    free(p);
    ebb_free(q);
  }
  for (size_t a = 16; a <= 2 * MiB; a *= 8) {
    void *p = aligned_alloc(a, 100), *q = ebb_memalign(a, a * 3);
    CHECK_MSG(ebb_owns(p) && ebb_owns(q), "alignment %zu", a);
    free(p);
    free(q);
  }
  void *v = valloc(5000), *pv = pvalloc(5000), *r = realloc(malloc(10), 100000);
  CHECK(ebb_owns(v) && ebb_owns(pv) && ebb_owns(r));
  free(v);
  free(pv);
  free(r);
}

/* A freed block is no longer owned (each freed while a neighbour keeps
 * its page in use; large ones wait in the large cache). */
static void test_owns_not_freed(void) {
  static const size_t sizes[] = {0, 1, 64, 1000, 9000, 70000, 600 * KiB, 3 * MiB};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    void *keep = ebb_malloc(sizes[i]), *p = ebb_malloc(sizes[i]);
    ebb_free(p);
    CHECK_MSG(!ebb_owns(p), "a freed block of %zu still owned", sizes[i]);
    CHECK(ebb_owns(keep));
    ebb_free(keep);
  }
}

static char static_array[256];

static void test_owns_foreign(void) {
  char stack_array[64];
  size_t len = 2 * MiB;
  void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  uint8_t *small = malloc(64), *large = malloc(8 * MiB);
  CHECK(!ebb_owns(NULL));
  CHECK(!ebb_owns(stack_array));
  CHECK(!ebb_owns(static_array));
  CHECK(!ebb_owns((void *)test_owns_foreign)); /* code */
  CHECK(m != MAP_FAILED && !ebb_owns(m));
  CHECK(!ebb_owns((uint8_t *)m + len / 2));
  CHECK(small != NULL && !ebb_owns(small + 8));
  CHECK(large != NULL && !ebb_owns(large + 4096) && !ebb_owns(large + 1));
  CHECK(!ebb_owns((void *)(uintptr_t)1));
  CHECK(!ebb_owns((void *)(uintptr_t)0xffff800000000000ull)); /* kernel half */
  CHECK(!ebb_owns((void *)(UINTPTR_MAX & ~(uintptr_t)15)));
  /* Non-canonical: a live block's address with bit 48 set (bit 47 clear). */
  CHECK(!ebb_owns((void *)((uintptr_t)small | ((uintptr_t)1 << 48))));
  CHECK(!ebb_owns((void *)((uintptr_t)large | ((uintptr_t)1 << 56))));
  CHECK(ebb_owns(small) && ebb_owns(large)); /* the probing changed nothing */
  free(small);
  free(large);
  munmap(m, len);
}

static ebb_stats_t stats_now(void) {
  ebb_stats_t s;
  memset(&s, 0xFF, sizeof s); /* so that unfilled fields show */
  CHECK(ebb_stats_get(&s, sizeof s));
  return s;
}

static void test_stats_header(void) {
  ebb_stats_t s = stats_now();
  CHECK(s.version == EBB_STATS_VERSION);
  CHECK(s.size == sizeof(ebb_stats_t));
  CHECK_MSG(s.mapped >= s.live, "mapped %llu, live %llu", (unsigned long long)s.mapped,
            (unsigned long long)s.live);
  CHECK(s.large_live <= s.live);
  CHECK(s.heaps_count >= 1 && s.segments_count >= 1);
  errno = 0;
  CHECK(!ebb_stats_get(NULL, sizeof(ebb_stats_t)));
  CHECK(errno == EINVAL);
  ebb_stats_t tiny;
  errno = 0;
  CHECK(!ebb_stats_get(&tiny, 7)); /* not even version and size */
  CHECK(errno == EINVAL);
}

/* A struct of `n` stats fields between two canaries on the stack, as a
 * program built against an older, smaller header has it. */
#define STATS_CANARY 0xA5A5A5A5A5A5A5A5ull
typedef struct stats_frame_s {
  volatile uint64_t before[4];
  struct {
    uint32_t version, size;
    uint64_t field[19]; /* room for the version-1 fields; fewer of them used */
  } st;
  volatile uint64_t after[4];
} stats_frame_t;

static void frame_arm(stats_frame_t *f) {
  memset(f, 0x5A, sizeof *f);
  for (int i = 0; i < 4; i++) f->before[i] = f->after[i] = STATS_CANARY;
}

/* The canaries hold, and nothing of the struct past `filled` was written. */
static bool frame_intact(const stats_frame_t *f, size_t filled) {
  bool ok = true;
  for (int i = 0; i < 4; i++) ok &= f->before[i] == STATS_CANARY && f->after[i] == STATS_CANARY;
  const unsigned char *rest = (const unsigned char *)&f->st;
  for (size_t i = filled; i < sizeof f->st; i++) ok &= rest[i] == 0x5A;
  return ok;
}

/* The caller's size bounds what is written, whole fields only; the
 * one-argument entry (binaries built against the version-1 header) fills
 * exactly the version-1 struct. */
static void test_stats_sizes(void) {
  stats_frame_t f;
  size_t ten = 8 + 10 * sizeof(uint64_t);
  frame_arm(&f);
  CHECK(ebb_stats_get((ebb_stats_t *)&f.st, ten));
  CHECK_EQ(f.st.size, ten);
  CHECK_EQ(f.st.version, EBB_STATS_VERSION);
  CHECK(frame_intact(&f, ten));
  frame_arm(&f);
  CHECK(ebb_stats_get((ebb_stats_t *)&f.st, ten + 5)); /* a partial field is not written */
  CHECK_EQ(f.st.size, ten);
  CHECK(frame_intact(&f, ten));
  frame_arm(&f);
  CHECK((ebb_stats_get)((ebb_stats_t *)&f.st));
  CHECK_EQ(f.st.size, sizeof f.st);
  CHECK_EQ(f.st.version, 1);
  CHECK(frame_intact(&f, sizeof f.st));
  static_assert(offsetof(ebb_stats_t, free_in_live_pages) == sizeof f.st, "old offsets unchanged");
  ebb_stats_t big[2];
  memset(big, 0x5A, sizeof big);
  CHECK(ebb_stats_get(&big[0], sizeof big)); /* a newer, bigger struct: ours is filled */
  CHECK_EQ(big[0].size, sizeof(ebb_stats_t));
  CHECK(((unsigned char *)&big[1])[0] == 0x5A);
}

#define MB_OF(x) ((double)(x) / (double)MiB)

/* 50 MiB in 1 KiB blocks shows up in `live`, and leaves it when freed. */
static void test_stats_live(void) {
  enum { COUNT = 50 * 1024 };
  static void *blocks[COUNT];
  ebb_stats_t before = stats_now();
  for (size_t i = 0; i < COUNT; i++)
    if (CHECK((blocks[i] = malloc(KiB)) != NULL))
      memset(blocks[i], 3, KiB);
  ebb_stats_t held = stats_now();
  /* `live` counts blocks freed into a parked page (or by another thread)
   * until a purge pass collects them, so `before` may hold a few KiB that a
   * pass has collected since: allow 1 MiB. */
  CHECK_MSG(held.live + 1 * MiB >= before.live + 50 * MiB, "live %.1f -> %.1f MiB",
            MB_OF(before.live), MB_OF(held.live));
  CHECK(held.mapped >= held.live);
  struct mallinfo2 mi = mallinfo2();
  CHECK_MSG(mi.uordblks >= 50 * MiB, "uordblks %.1f MiB", MB_OF(mi.uordblks));
  for (size_t i = 0; i < COUNT; i++)
    free(blocks[i]);
  ebb_stats_t after = stats_now();
  CHECK_MSG(after.live <= before.live + 1 * MiB, "live %.1f -> %.1f -> %.1f MiB",
            MB_OF(before.live), MB_OF(held.live), MB_OF(after.live));
  CHECK(after.mapped >= after.live);
}

/* A 64 MiB block is large: counted in large_count and large_live. */
static void test_stats_large(void) {
  ebb_stats_t before = stats_now();
  void *p = malloc(64 * MiB);
  ebb_stats_t held = stats_now();
  CHECK(p != NULL);
  CHECK(held.large_count == before.large_count + 1);
  CHECK(held.large_live >= before.large_live + 64 * MiB);
  CHECK(held.live >= before.live + 64 * MiB);
  CHECK(held.mapped >= before.mapped + 64 * MiB || held.mapped >= held.live);
  CHECK(held.mmap_calls >= before.mmap_calls);
  free(p);
  ebb_stats_t after = stats_now();
  CHECK(after.large_count == before.large_count);
  CHECK(after.large_live <= before.large_live);
  CHECK(after.mmap_calls >= held.mmap_calls && after.munmap_calls >= held.munmap_calls);
}

/* realloc(p, 0) really frees p: the bytes leave `live`. */
static void check_realloc_zero_frees(const api_t *A) {
  enum { COUNT = 256 };
  void *p[COUNT];
  ebb_stats_t before = stats_now();
  for (size_t i = 0; i < COUNT; i++)
    p[i] = A->malloc(4 * KiB);
  void *large = A->malloc(8 * MiB);
  CHECK(stats_now().live >= before.live + 9 * MiB);
  for (size_t i = 0; i < COUNT; i++)
    CHECK(A->realloc(p[i], 0) == NULL);
  CHECK(A->realloc(large, 0) == NULL);
  ebb_stats_t after = stats_now();
  CHECK_MSG(after.live <= before.live + 64 * KiB, "%s: live %.2f -> %.2f MiB", A->name,
            MB_OF(before.live), MB_OF(after.live));
}

/* EBB_REALLOC_MAP (64 KiB by default): a block that realloc grows to that
 * size or more moves to its own mapping (large_count counts it), keeps its
 * content, grows there (large_count unchanged), shrinks in place to half,
 * and goes back to a size class below the threshold. malloc of the same
 * size stays in a size class. */
static void check_realloc_growth_mapped(const api_t *A) {
  ebb_stats_t before = stats_now();
  uint8_t *q = A->malloc(100 * KiB);
  if (!CHECK(q != NULL)) return;
  CHECK_MSG(stats_now().large_count == before.large_count, "%s: malloc(100 KiB) is large", A->name);
  A->free(q);

  uint8_t *p = A->malloc(40 * KiB);
  if (!CHECK(p != NULL)) return;
  pattern_fill(p, 0, 40 * KiB, 11);
  q = A->realloc(p, 65 * KiB); /* grown to the threshold: its own mapping */
  if (!CHECK(q != NULL)) return;
  p = q;
  CHECK_MSG(stats_now().large_count == before.large_count + 1,
            "%s: realloc(40 -> 65 KiB) stayed in a class", A->name);
  CHECK(pattern_mismatch(p, 40 * KiB, 11) == SIZE_MAX);
  pattern_fill(p, 40 * KiB, 65 * KiB, 11);
  static const size_t steps[] = {200 * KiB, 3 * MiB, 3 * MiB + 1, 2 * MiB, 300 * KiB};
  size_t old = 65 * KiB;
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    size_t n = steps[i];
    q = A->realloc(p, n);
    if (!CHECK_MSG(q != NULL, "%s: realloc(%zu -> %zu)", A->name, old, n))
      break;
    p = q;
    CHECK_MSG(pattern_mismatch(p, min_size(old, n), 11) == SIZE_MAX,
              "%s: realloc(%zu -> %zu) lost content", A->name, old, n);
    CHECK_MSG(A->usable(p) >= n, "%s: usable %zu < %zu", A->name, A->usable(p), n);
    CHECK_MSG(stats_now().large_count == before.large_count + 1,
              "%s: realloc(%zu -> %zu) left the mapping", A->name, old, n);
    if (n > old) pattern_fill(p, old, n, 11);
    old = n;
  }
  size_t usable = A->usable(p);
  CHECK(A->realloc(p, usable / 2 + 1) == p); /* not twice too big: stays */
  q = A->realloc(p, 10 * KiB); /* below the threshold: back to a size class */
  if (CHECK(q != NULL)) {
    p = q;
    CHECK(pattern_mismatch(p, 10 * KiB, 11) == SIZE_MAX);
    CHECK_MSG(stats_now().large_count == before.large_count,
              "%s: realloc to 10 KiB kept the mapping", A->name);
  }
  A->free(p);
}

static void test_stats_print(void) { CHECK(stderr_bytes_of(ebb_stats_print) > 0); }

/* The two surfaces are one allocator: blocks cross freely. */
static void test_cross_surface(void) {
  void *a = ebb_malloc(100), *b = malloc(100), *c = ebb_aligned_alloc(4096, 5000);
  CHECK(a != NULL && b != NULL && c != NULL);
  CHECK(malloc_usable_size(a) >= 100 && ebb_malloc_usable_size(b) >= 100);
  a = realloc(a, 200000);
  b = ebb_realloc(b, 300);
  CHECK(a != NULL && b != NULL);
  free(a);
  ebb_free(b);
  free(c);
}

/* ---- main ---------------------------------------------------------------- */

typedef void (*api_test_fn)(const api_t *A);

static void run_api_test(const api_t *A, const char *name, api_test_fn fn) {
  char label[96];
  snprintf(label, sizeof label, "%s.%s", A->name, name);
  check_context("%s", label);
  printf("run  %s\n", label);
  fflush(stdout);
  fn(A);
}

static void run_ebb_test(const char *name, void (*fn)(void)) {
  check_context("%s", name);
  printf("run  ebb.%s\n", name);
  fflush(stdout);
  fn();
}

#define RUN_API(A, fn) run_api_test((A), #fn, fn)
#define RUN_EBB(fn) run_ebb_test(#fn, fn)

static void run_api_suite(const api_t *A) {
  RUN_API(A, test_malloc_zero);
  RUN_API(A, test_other_zero_sizes);
  RUN_API(A, test_every_small_size);
  RUN_API(A, test_usable_size);
  RUN_API(A, test_alignments);
  RUN_API(A, test_posix_memalign_bad);
  RUN_API(A, test_aligned_alloc_bad);
  RUN_API(A, test_memalign_rounding);
  RUN_API(A, test_valloc);
  RUN_API(A, test_pvalloc);
  RUN_API(A, test_calloc_dirty);
  RUN_API(A, test_realloc_tiers);
  RUN_API(A, test_realloc_null_and_zero);
  RUN_API(A, test_reallocarray);
  RUN_API(A, test_absurd_sizes);
  RUN_API(A, test_posix_memalign_enomem);
  RUN_API(A, test_absurd_alignments);
  RUN_API(A, test_realloc_failure_keeps_block);
  RUN_API(A, test_free_null);
  RUN_API(A, test_free_sized);
  RUN_API(A, test_free_aligned_sized);
  RUN_API(A, test_mallinfo);
  RUN_API(A, test_trim_and_print);
  RUN_API(A, check_realloc_zero_frees);
  RUN_API(A, check_realloc_growth_mapped);
}

/* ebb_size_info answers what malloc does: the block it hands out is the
 * block the info names, for every size around each boundary. */
static void check_size_info(size_t request) {
  ebb_size_info_t info;
  if (!CHECK_MSG(ebb_size_info(request, &info, sizeof info), "size %zu", request)) return;
  CHECK_EQ(info.size, sizeof info);
  CHECK_EQ(info.request, request);
  void *p = ebb_malloc(request);
  if (!CHECK(p != NULL)) return;
  CHECK_MSG(ebb_malloc_usable_size(p) == info.block, "size %zu: usable %zu, info says %llu (%s)", request,
            ebb_malloc_usable_size(p), (unsigned long long)info.block, info.tier);
  ebb_free(p);
  const char *want = request > info.large_threshold ? "large"
                     : info.block <= 8192          ? "small"
                     : info.block <= 65536         ? "medium"
                                                   : "wide";
  CHECK_MSG(strcmp(info.tier, want) == 0, "size %zu: tier %s, expected %s", request, info.tier, want);
  CHECK_MSG(info.blocks_per_page >= 1 && info.page >= info.block, "size %zu: page %llu, %llu blocks", request,
            (unsigned long long)info.page, (unsigned long long)info.blocks_per_page);
}

static void test_size_info(void) {
  static const size_t edges[] = {16, 128, 1024, 8192, 65536, 512 * 1024, 4u << 20};
  check_size_info(0);
  for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
    for (size_t d = 0; d < 3; d++) check_size_info(edges[i] - 1 + d);
  }
  for (size_t n = 1; n < 1000000; n = n * 3 + 1) check_size_info(n);
  ebb_size_info_t info;
  long long delay = -1;
  CHECK(ebb_option_get("PURGE_DELAY_MS", &delay));
  CHECK(ebb_size_info(80000, &info, sizeof info));
  CHECK_EQ(info.purge_delay_ms, (uint64_t)delay);
  /* The caller's size bounds what is written, whole fields only. */
  unsigned char small[20];
  memset(small, 0x5A, sizeof small);
  CHECK(ebb_size_info(100, (ebb_size_info_t *)(void *)small, 20));
  uint32_t filled;
  memcpy(&filled, small, sizeof filled);
  CHECK_EQ(filled, 16);
  CHECK_EQ(small[16], 0x5A);
  errno = 0;
  CHECK(!ebb_size_info(100, NULL, sizeof info) && errno == EINVAL);
  errno = 0;
  CHECK(!ebb_size_info(100, &info, 4) && errno == EINVAL);
  errno = 0;
  CHECK(!ebb_size_info((size_t)PTRDIFF_MAX + 1, &info, sizeof info) && errno == ENOMEM);
}

/* ebb_option_get names options with or without EBB_, and refuses others;
 * a mallopt change shows. */
static void test_option_get(void) {
  long long v = -1, w = -1;
  CHECK(ebb_option_get("LARGE_THRESHOLD", &v) && v > 0);
  CHECK(ebb_option_get("EBB_LARGE_THRESHOLD", &w) && w == v);
  CHECK(ebb_mallopt(M_MMAP_THRESHOLD, 64 * 1024) == 1);
  CHECK(ebb_option_get("LARGE_THRESHOLD", &w) && w == 64 * 1024);
  ebb_size_info_t info;
  CHECK(ebb_size_info(100000, &info, sizeof info) && strcmp(info.tier, "large") == 0 && info.large_threshold == 65536);
  CHECK(ebb_mallopt(M_MMAP_THRESHOLD, (int)v) == 1);
  CHECK(ebb_option_get("MADVISE", &w) && (w == 0 || w == 1));
  CHECK(ebb_option_get("STATS_FILE", &w) && (w == 0 || w == 1));
  errno = 0;
  CHECK(!ebb_option_get("PURGE_DELAY", &w) && errno == EINVAL);
  errno = 0;
  CHECK(!ebb_option_get(NULL, &w) && errno == EINVAL);
  errno = 0;
  CHECK(!ebb_option_get("SECURE", NULL) && errno == EINVAL);
}

static void run_ebb_suite(void) {
  RUN_EBB(test_size_info);
  RUN_EBB(test_option_get);
  RUN_EBB(test_version);
  RUN_EBB(test_owns_live_blocks);
  RUN_EBB(test_owns_foreign);
  RUN_EBB(test_owns_not_freed);
  RUN_EBB(test_stats_header);
  RUN_EBB(test_stats_sizes);
  RUN_EBB(test_stats_live);
  RUN_EBB(test_stats_large);
  RUN_EBB(test_stats_print);
  RUN_EBB(test_cross_surface);
}

int main(void) {
  pattern_init();
  run_api_suite(&std_api);
  run_api_suite(&ebb_api);
  run_ebb_suite();
  RUN_API(&std_api, test_mallopt);
  RUN_API(&ebb_api, test_mallopt);
  return check_summary("test_api");
}
