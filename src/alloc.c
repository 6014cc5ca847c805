/* SPDX-License-Identifier: MIT */
/* alloc.c - allocation: the malloc fast path, the generic path, calloc,
 * aligned allocation and realloc (large blocks are large.c's).
 *
 * Fast path: a size <= EBB_DIRECT_MAX indexes heap->direct, whose page's
 * `free` list gives the block - thread-local data only, no atomics. */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "prim.h"

/* Set from the options at initialisation and by mallopt (options.c), on
 * any thread: relaxed stores (EBB_STORE) and relaxed loads (EBB_LOAD); a
 * mallopt racing an allocation on another thread may be seen late. */
size_t _ebb_large_threshold = EBB_WIDE_OBJ_MAX; /* EBB_LARGE_THRESHOLD */
size_t _ebb_realloc_map = 64 * EBB_KiB;          /* EBB_REALLOC_MAP; SIZE_MAX when 0 (never) */

static inline void *page_pop(ebb_page_t *page, ebb_block_t *b) {
  page->free = b->next;
  page->margin++;
  _ebb_block_clear_mark(b);
  return b;
}

ebb_export void *ebb_malloc(size_t size) {
  ebb_heap_t *heap = _ebb_tls_heap;
  if (ebb_likely(size <= EBB_DIRECT_MAX)) {
    ebb_page_t *page = EBB_LOAD(heap->direct[size]);
    ebb_block_t *b = page->free;
    if (ebb_likely(b != NULL)) return page_pop(page, b);
    return _ebb_malloc_miss(size, heap, page);
  }
  return _ebb_malloc_generic(size, heap, false);
}
EBB_STD(malloc, ebb_malloc);
EBB_STD(__libc_malloc, ebb_malloc);

static void *zero_block(ebb_page_t *page, ebb_block_t *b, size_t size) {
  if (page->free_is_zero) {
    b->next = NULL; /* only the link was written */
    return b;
  }
  return memset(b, 0, size);
}

/* Everything the fast path does not do: delayed frees, a page running
 * dry, large sizes. */
static void *malloc_slow_held(ebb_heap_t *heap, size_t size, bool zero) {
  _ebb_heap_drain_delayed(heap);
  if (ebb_unlikely(--heap->reap_countdown == 0)) {
    heap->reap_countdown = 1024;
    _ebb_page_reap(heap);
    if (!_ebb_option(EBB_OPT_PURGE_THREAD)) _ebb_purge_on_entry();
  }
  if (size > EBB_LOAD(_ebb_large_threshold)) {
    void *p = _ebb_large_alloc(size, 0, zero);
    /* A size the wide pages can hold still gets memory when the OS refuses
     * a mapping (vm.max_map_count: one mapping per large block). */
    if (p != NULL || size > EBB_WIDE_OBJ_MAX) return p;
  }
  unsigned bin = _ebb_bin(size);
  ebb_page_t *page = _ebb_page_find_free(heap, bin);
  if (ebb_unlikely(page == NULL)) {
    errno = ENOMEM;
    return NULL;
  }
  ebb_assert_internal(page->free != NULL && page->bin == bin);
  if (ebb_unlikely(_ebb_secure)) _ebb_secure_on_alloc(page, page->free);
  void *p = page_pop(page, page->free);
  return zero ? zero_block(page, p, size) : p;
}

/* The same, after a thread's first use makes its heap; bracketed as an
 * owner slow path (seize.c). */
static ebb_noinline void *malloc_slow(size_t size, ebb_heap_t *heap, bool zero) {
  if (ebb_unlikely(heap == &_ebb_heap_empty)) {
    heap = _ebb_heap_get();
    if (heap == NULL) return NULL;
  }
  _ebb_seize_enter(heap);
  void *p = malloc_slow_held(heap, size, zero);
  _ebb_seize_leave(heap);
  return p;
}

/* A purge holds (or held) the page the direct table points to: wait for
 * it, then allocate as usual. Out of line, so that the common take-back
 * needs no stack frame. */
static ebb_noinline void *take_back_and_retry(size_t size, ebb_heap_t *heap, ebb_page_t *page, bool zero) {
  _ebb_seize_enter(heap);
  /* Answering a pass may have taken the page back already. */
  if (page->flags == (EBB_PAGE_PARKED | EBB_PAGE_IN_PLACE)) {
    _ebb_page_claim(page);
    _ebb_page_take_back_claimed(page);
  }
  _ebb_seize_leave(heap);
  return _ebb_malloc_generic(size, heap, zero);
}

/* The fast path missed on `page`, the page the direct table gives for
 * `size` (<= EBB_DIRECT_MAX). The common misses, handled here without a
 * stack frame:
 *  - the page was parked in place when it emptied, with its free blocks
 *    stashed: take it back (one CAS) and allocate;
 *  - `free` ran dry and the owner's own frees wait on local_free. Remote
 *    and delayed frees are left to malloc_slow, which runs whenever
 *    local_free is empty too.
 * (The empty heap's table points to _ebb_page_empty, whose flags are 0.)
 * Inline, with `zero` a constant at each caller. */
static inline void *malloc_miss(size_t size, ebb_heap_t *heap, ebb_page_t *page, bool zero) {
  if (page->flags == (EBB_PAGE_PARKED | EBB_PAGE_IN_PLACE)) {
    if (ebb_unlikely(!_ebb_page_take_back_quick(page))) return take_back_and_retry(size, heap, page, zero);
    _ebb_page_take_back_claimed(page);
    ebb_block_t *b = page->free;
    if (ebb_likely(b != NULL)) {
      page_pop(page, b);
      return zero ? zero_block(page, b, size) : b;
    }
  }
  if (page->flags == 0 && page->local_free != NULL &&
      atomic_load_explicit(&heap->delayed_free, memory_order_relaxed) == NULL) {
    ebb_block_t *b = page->local_free;
    page->local_free = NULL;
    page->free_is_zero = 0;
    page_pop(page, b);
    return zero ? zero_block(page, b, size) : b;
  }
  return malloc_slow(size, heap, zero);
}

ebb_noinline void *_ebb_malloc_miss(size_t size, ebb_heap_t *heap, ebb_page_t *page) {
  return malloc_miss(size, heap, page, false);
}

static ebb_noinline void *calloc_miss(size_t size, ebb_heap_t *heap, ebb_page_t *page) {
  return malloc_miss(size, heap, page, true);
}

/* Any request the fast path did not serve, when the caller has no page
 * in hand (aligned allocation, take-back retries, large sizes). */
void *_ebb_malloc_generic(size_t size, ebb_heap_t *heap, bool zero) {
  if (ebb_likely(size <= EBB_DIRECT_MAX)) {
    ebb_page_t *page = EBB_LOAD(heap->direct[size]);
    return zero ? calloc_miss(size, heap, page) : _ebb_malloc_miss(size, heap, page);
  }
  return malloc_slow(size, heap, zero);
}

ebb_export void *ebb_calloc(size_t count, size_t size) {
  size_t total;
  if (ebb_unlikely(__builtin_mul_overflow(count, size, &total))) {
    errno = ENOMEM;
    return NULL;
  }
  ebb_heap_t *heap = _ebb_tls_heap;
  if (ebb_likely(total <= EBB_DIRECT_MAX)) {
    ebb_page_t *page = EBB_LOAD(heap->direct[total]);
    ebb_block_t *b = page->free;
    if (ebb_likely(b != NULL)) return zero_block(page, page_pop(page, b), total);
    return calloc_miss(total, heap, page);
  }
  return malloc_slow(total, heap, true);
}
EBB_STD(calloc, ebb_calloc);
EBB_STD(__libc_calloc, ebb_calloc);

static size_t round_up(size_t x, size_t to) { return (x + to - 1) & ~(to - 1); }

/* ---- realloc ------------------------------------------------------------- */
/* The end of every realloc that moves: the first n bytes to q, p freed. */
static void *move_block(void *q, void *p, size_t n) {
  memcpy(q, p, n);
  ebb_free(p);
  return q;
}

static void *realloc_copy(void *p, size_t old_usable, size_t size) {
  void *q = ebb_malloc(size);
  if (q == NULL) return NULL;
  return move_block(q, p, old_usable < size ? old_usable : size);
}

/* A block that realloc grows past EBB_REALLOC_MAP is being grown (a string
 * or a vector): it moves to its own mapping, as a large block, so that
 * from then on it grows with mremap - no copy, and only the pages the
 * program writes are resident - and shrinks in place, its tail going back
 * to the OS at once. Without this, each step to a bigger size class copies
 * the block and leaves the old one resident in its page until that class
 * needs it again (bench realloc: 1.9x glibc's peak RSS). NULL (errno
 * untouched) if no mapping is to be had: the caller copies as usual. */
static void *realloc_to_mapping(void *p, size_t usable, size_t size) {
  int saved = errno;
  void *q = _ebb_large_alloc(size, 0, false);
  if (q == NULL) {
    errno = saved;
    return NULL;
  }
  return move_block(q, p, usable);
}

ebb_export void *ebb_realloc(void *p, size_t size) {
  if (p == NULL) return ebb_malloc(size);
  if (size == 0) { /* glibc: free and return NULL */
    ebb_free(p);
    return NULL;
  }
  size_t usable = _ebb_usable_size(p, "realloc");
  if (usable == 0) { /* foreign pointer, reported (EBB_ON_ERROR=warn) */
    errno = EINVAL;
    return NULL;
  }
  if (size > (size_t)PTRDIFF_MAX) {
    errno = ENOMEM;
    return NULL;
  }
  if (_ebb_map_kind(p) == EBB_MAP_LARGE) {
    if (size > EBB_LOAD(_ebb_large_threshold) || size >= EBB_LOAD(_ebb_realloc_map)) {
      void *q = _ebb_large_realloc(_ebb_large_segment_of(p), size);
      return q != NULL ? q : realloc_copy(p, usable, size);
    }
  } else if (size > usable && size >= EBB_LOAD(_ebb_realloc_map)) {
    void *q = realloc_to_mapping(p, usable, size);
    if (q != NULL) return q;
  }
  /* Stay in place while the block is big enough and not twice too big. */
  if (size <= usable && size >= usable / 2) return p;
  return realloc_copy(p, usable, size);
}
EBB_STD(realloc, ebb_realloc);
EBB_STD(__libc_realloc, ebb_realloc);

ebb_export void *ebb_reallocarray(void *p, size_t count, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(count, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return ebb_realloc(p, total);
}
EBB_STD(reallocarray, ebb_reallocarray);

/* ---- aligned allocation --------------------------------------------------- */
/* `align` is a power of two. Size classes whose size is a multiple of align
 * give aligned blocks (page starts are aligned to the segment header size),
 * so small alignments cost at most the next class; larger ones are large
 * blocks, which are segment-aligned. */
static void *alloc_aligned(size_t align, size_t size, bool zero) {
  if (align <= 8) return zero ? ebb_calloc(1, size) : ebb_malloc(size);
  if (size > (size_t)PTRDIFF_MAX) {
    errno = ENOMEM;
    return NULL;
  }
  if (align <= EBB_SEGMENT_HEADER_SIZE) {
    size_t s = round_up(size == 0 ? 1 : size, align);
    if (s <= EBB_LOAD(_ebb_large_threshold)) {
      unsigned bin = _ebb_bin(s);
      while (_ebb_bin_size(bin) % align != 0) bin++;
      size_t bsize = _ebb_bin_size(bin);
      if (bsize <= EBB_LOAD(_ebb_large_threshold)) return zero ? ebb_calloc(1, bsize) : ebb_malloc(bsize);
    }
  }
  return _ebb_large_alloc(size, align, zero);
}

static bool is_pow2(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

ebb_export int ebb_posix_memalign(void **out, size_t align, size_t size) {
  if (out == NULL || align < sizeof(void *) || !is_pow2(align)) return EINVAL;
  void *p = alloc_aligned(align, size, false);
  if (p == NULL) return ENOMEM;
  *out = p;
  return 0;
}
EBB_STD(posix_memalign, ebb_posix_memalign);
EBB_STD(__posix_memalign, ebb_posix_memalign);

ebb_export void *ebb_aligned_alloc(size_t align, size_t size) {
  if (!is_pow2(align)) {
    errno = EINVAL;
    return NULL;
  }
  return alloc_aligned(align, size, false);
}
EBB_STD(aligned_alloc, ebb_aligned_alloc);

/* glibc rounds a non-power-of-two alignment up to the next power of two. */
ebb_export void *ebb_memalign(size_t align, size_t size) {
  if (align > ((size_t)1 << 62)) {
    errno = EINVAL;
    return NULL;
  }
  if (!is_pow2(align)) align = align == 0 ? 1 : (size_t)1 << (64 - __builtin_clzll(align));
  return alloc_aligned(align, size, false);
}
EBB_STD(memalign, ebb_memalign);
EBB_STD(__libc_memalign, ebb_memalign);

ebb_export void *ebb_valloc(size_t size) { return alloc_aligned(EBB_OS_PAGE, size, false); }
EBB_STD(valloc, ebb_valloc);
EBB_STD(__libc_valloc, ebb_valloc);

ebb_export void *ebb_pvalloc(size_t size) {
  if (size > (size_t)PTRDIFF_MAX) {
    errno = ENOMEM;
    return NULL;
  }
  return alloc_aligned(EBB_OS_PAGE, round_up(size == 0 ? 1 : size, EBB_OS_PAGE), false);
}
EBB_STD(pvalloc, ebb_pvalloc);
EBB_STD(__libc_pvalloc, ebb_pvalloc);
