/* alloc.c - allocation: the malloc fast path, the generic path, calloc,
 * aligned allocation, realloc, and large blocks (their own mappings).
 *
 * Fast path: a size <= EBB_DIRECT_MAX indexes heap->direct, whose page's
 * `free` list gives the block - thread-local data only, no atomics.
 *
 * Large blocks: a mapping [header page][block], with the block start B
 * aligned to the segment size, so free(B) finds the header at
 * B - EBB_LARGE_HEADER_SIZE (the segment map marks B's slot EBB_MAP_LARGE).
 * Any thread may free a large block; the registry (global lock) is their
 * only shared list. */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "prim.h"

size_t _ebb_large_threshold = EBB_WIDE_OBJ_MAX; /* set from options at init (EBB_LARGE_THRESHOLD) */
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
    ebb_page_t *page = heap->direct[size];
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
  if (size > _ebb_large_threshold) {
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
    ebb_page_t *page = heap->direct[size];
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
    ebb_page_t *page = heap->direct[total];
    ebb_block_t *b = page->free;
    if (ebb_likely(b != NULL)) return zero_block(page, page_pop(page, b), total);
    return calloc_miss(total, heap, page);
  }
  return malloc_slow(total, heap, true);
}
EBB_STD(calloc, ebb_calloc);
EBB_STD(__libc_calloc, ebb_calloc);

/* ---- large blocks ------------------------------------------------------- */
ebb_segment_t *_ebb_large_segment_of(const void *p) {
  return (ebb_segment_t *)((uint8_t *)p - EBB_LARGE_HEADER_SIZE);
}

static size_t round_up(size_t x, size_t to) { return (x + to - 1) & ~(to - 1); }

/* ---- the large cache ------------------------------------------------------
 * Freed large blocks wait here (global lock, newest first) so that a
 * program that allocates and frees big buffers in a loop does not map and
 * unmap every time. Bounded by EBB_LARGE_CACHE bytes; a purge pass unmaps
 * the ones older than purge_delay. */
static ebb_segment_t *large_cache;  /* global lock */
static size_t large_cache_bytes;    /* global lock */

static size_t large_block_bytes(const ebb_segment_t *seg) { return seg->size - EBB_LARGE_HEADER_SIZE; }

static ebb_segment_t *large_resize(ebb_segment_t *seg, size_t total);
static bool large_cache_put(ebb_segment_t *seg);
static void large_unmap(ebb_segment_t *seg);

/* A cached block for `size` bytes, aligned: the smallest one that holds
 * it, or failing that (alignment up to the segment size) the biggest one
 * that does not, grown with mremap - its pages are resident already, and
 * only the tail it gains is new. One much bigger than `size` is cut down
 * (mremap shrinks in place): its head is resident already, and the tail
 * goes back to the OS at once rather than sitting in the cache. So any
 * cached block serves any size (bench waves: its big objects vary from
 * 512 KiB to 1 MiB), and the cache does not fill with blocks nobody
 * reuses. NULL if the cache has nothing suitable. */
static ebb_segment_t *large_cache_take(size_t size, size_t align) {
  if (__atomic_load_n(&large_cache, __ATOMIC_RELAXED) == NULL) return NULL;
  size_t slack = size / 4 > EBB_MiB ? size / 4 : EBB_MiB;
  ebb_segment_t *best = NULL, **best_link = NULL, *below = NULL, **below_link = NULL;
  _ebb_lock();
  for (ebb_segment_t **link = &large_cache; *link != NULL; link = &(*link)->next) {
    ebb_segment_t *seg = *link;
    size_t bytes = large_block_bytes(seg);
    if (((uintptr_t)seg->pages[0].start & (align - 1)) != 0) continue;
    if (bytes < size) {
      if (below == NULL || bytes > large_block_bytes(below)) {
        below = seg;
        below_link = link;
      }
    } else if (best == NULL || bytes < large_block_bytes(best)) {
      best = seg;
      best_link = link;
    }
  }
  if (best == NULL && align <= EBB_SEGMENT_SIZE) {
    best = below;
    best_link = below_link;
  }
  if (best != NULL) {
    *best_link = best->next;
    large_cache_bytes -= best->size;
    best->cached_since = 0;
    _ebb_purge_dirty_sub(best->size);
  }
  _ebb_unlock();
  if (best == NULL) return NULL;
  size_t bytes = large_block_bytes(best), total = size + EBB_LARGE_HEADER_SIZE;
  if (bytes < size) {
    ebb_segment_t *grown = large_resize(best, total);
    if (grown == NULL) { /* the caller tries a new mapping */
      if (large_cache_put(best)) _ebb_purge_notify(); /* dirty again: the thread may sleep */
      else large_unmap(best);
    }
    return grown;
  }
  if (bytes > size + slack) {
    ebb_segment_t *cut = large_resize(best, total); /* shrinks in place */
    if (cut != NULL) best = cut;
  }
  return best;
}

/* Keeps a freed block if the cache has room. */
static bool large_cache_put(ebb_segment_t *seg) {
  size_t limit = (size_t)_ebb_option(EBB_OPT_LARGE_CACHE);
  size_t size = seg->size; /* once the lock is released the block may be gone */
  bool kept = false;
  if (size > limit) return false;
  seg->cached_since = _ebb_purge_clock_ms();
  _ebb_lock(); /* the dirty count moves with the cache, under the lock */
  if (large_cache_bytes + size <= limit) {
    seg->next = large_cache;
    large_cache = seg;
    large_cache_bytes += size;
    _ebb_purge_dirty_add(size);
    kept = true;
  }
  _ebb_unlock();
  return kept;
}

static void large_unmap(ebb_segment_t *seg) {
  _ebb_segment_registry_remove(seg);
  _ebb_os_unmap(seg, seg->size);
}

/* Unmaps cached blocks older than the delay (all with force). */
size_t _ebb_large_purge_cache(uint64_t now, uint64_t delay, bool force) {
  ebb_segment_t *gone = NULL;
  _ebb_lock();
  for (ebb_segment_t **link = &large_cache; *link != NULL;) {
    ebb_segment_t *seg = *link;
    if (force || now - seg->cached_since >= delay) {
      *link = seg->next;
      large_cache_bytes -= seg->size;
      _ebb_purge_dirty_sub(seg->size);
      seg->next = gone;
      gone = seg;
    } else {
      link = &seg->next;
    }
  }
  _ebb_unlock();
  size_t released = 0;
  while (gone != NULL) {
    ebb_segment_t *seg = gone;
    gone = seg->next;
    released += seg->size;
    large_unmap(seg);
  }
  atomic_fetch_add_explicit(&_ebb_purged_total, released, memory_order_relaxed);
  return released;
}

/* Maps a large block of at least `size` bytes aligned to max(align,
 * segment size), or reuses a cached one. */
void *_ebb_large_alloc(size_t size, size_t align, bool zero) {
  if (size > (size_t)PTRDIFF_MAX - 2 * EBB_SEGMENT_SIZE) {
    errno = ENOMEM;
    return NULL;
  }
  _ebb_init_process();
  size_t block = round_up(size == 0 ? 1 : size, EBB_OS_PAGE);
  size_t a = align > EBB_SEGMENT_SIZE ? align : EBB_SEGMENT_SIZE;
  ebb_segment_t *seg = large_cache_take(block, a);
  if (seg != NULL) {
    if (zero) memset(seg->pages[0].start, 0, size);
    _ebb_inuse_add(seg->size);
    _ebb_os_map_set(seg->pages[0].start, EBB_MAP_LARGE);
    return seg->pages[0].start;
  }
  size_t total = block + EBB_LARGE_HEADER_SIZE;
  uint8_t *m = _ebb_purge_map_aligned(total, a, EBB_LARGE_HEADER_SIZE);
  if (m == NULL) return NULL;
  seg = (ebb_segment_t *)m;
  seg->kind = EBB_PAGE_LARGE;
  seg->page_shift = EBB_SEGMENT_SHIFT;
  seg->page_count = 1;
  seg->used_pages = 1;
  seg->size = total;
  seg->cached_since = 0;
  seg->pages[0].start = m + EBB_LARGE_HEADER_SIZE;
  seg->pages[0].in_use = 1;
  seg->pages[0].margin = 1; /* used 1 (park_at 0) */
  _ebb_segment_registry_add(seg);
  _ebb_inuse_add(total);
  _ebb_os_map_set(m + EBB_LARGE_HEADER_SIZE, EBB_MAP_LARGE);
  return m + EBB_LARGE_HEADER_SIZE;
}

void _ebb_large_free(ebb_segment_t *seg) {
  _ebb_os_map_set(seg->pages[0].start, EBB_MAP_NONE);
  _ebb_inuse_sub(seg->size);
  if (large_cache_put(seg)) {
    _ebb_purge_notify();
    return;
  }
  large_unmap(seg);
}

/* Resizes a large block's mapping to `total` bytes (header included): in
 * place when the address space allows, else moved to a new aligned place
 * without copying (mremap moves the page tables). Returns the segment,
 * perhaps moved, or NULL with the block unchanged. Counts mapped bytes;
 * bytes in use are the caller's. */
static ebb_segment_t *large_resize(ebb_segment_t *seg, size_t total) {
  size_t old_total = seg->size;
  int saved_errno = errno; /* a failed in-place try must not show after a move that works */
  if (_ebb_prim_remap(seg, old_total, total, NULL, false) != NULL) {
    if (total > old_total) atomic_fetch_add_explicit(&_ebb_os_mapped, total - old_total, memory_order_relaxed);
    else atomic_fetch_sub_explicit(&_ebb_os_mapped, old_total - total, memory_order_relaxed);
    seg->size = total;
    return seg;
  }
  uint8_t *dst = _ebb_purge_map_aligned(total, EBB_SEGMENT_SIZE, EBB_LARGE_HEADER_SIZE);
  if (dst == NULL) return NULL;
  void *old_block = seg->pages[0].start;
  bool live = _ebb_map_kind(old_block) == EBB_MAP_LARGE; /* else taken from the cache, unmarked */
  /* Unmark before the old range can be reused by another thread's mmap. */
  if (live) _ebb_os_map_set(old_block, EBB_MAP_NONE);
  _ebb_segment_registry_remove(seg);
  ebb_segment_t *moved = _ebb_prim_remap(seg, old_total, total, dst, true);
  if (moved == NULL) {
    _ebb_segment_registry_add(seg);
    if (live) _ebb_os_map_set(old_block, EBB_MAP_LARGE);
    _ebb_os_unmap(dst, total);
    return NULL;
  }
  /* The old range is gone (mremap unmapped it); dst's placeholder pages
   * were replaced. */
  atomic_fetch_sub_explicit(&_ebb_os_mapped, old_total, memory_order_relaxed);
  moved->size = total;
  moved->pages[0].start = (uint8_t *)moved + EBB_LARGE_HEADER_SIZE;
  _ebb_segment_registry_add(moved);
  if (live) _ebb_os_map_set(moved->pages[0].start, EBB_MAP_LARGE);
  errno = saved_errno;
  return moved;
}

/* realloc of a large block to a size that stays large: nothing to do if
 * the mapping holds it and is not twice too big (a block taken from the
 * large cache may be bigger than asked); else resize the mapping. NULL
 * only when a grow fails. */
static void *large_realloc(ebb_segment_t *seg, size_t size) {
  size_t total = round_up(size, EBB_OS_PAGE) + EBB_LARGE_HEADER_SIZE, old_total = seg->size;
  if (total <= old_total && total >= old_total / 2) return seg->pages[0].start;
  int saved_errno = errno;
  ebb_segment_t *resized = large_resize(seg, total);
  if (resized == NULL && total < old_total) {
    /* A shrink the kernel refused (at vm.max_map_count, cutting a mapping
     * merged with its neighbours needs a split): the block still holds
     * `size` bytes. */
    errno = saved_errno;
    return seg->pages[0].start;
  }
  if (resized == NULL) return NULL;
  if (total > old_total) _ebb_inuse_add(total - old_total);
  else _ebb_inuse_sub(old_total - total);
  return resized->pages[0].start;
}

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
    if (size > _ebb_large_threshold || size >= _ebb_realloc_map) {
      void *q = large_realloc(_ebb_large_segment_of(p), size);
      return q != NULL ? q : realloc_copy(p, usable, size);
    }
  } else if (size > usable && size >= _ebb_realloc_map) {
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
    if (s <= _ebb_large_threshold) {
      unsigned bin = _ebb_bin(s);
      while (_ebb_bin_size(bin) % align != 0) bin++;
      size_t bsize = _ebb_bin_size(bin);
      if (bsize <= _ebb_large_threshold) return zero ? ebb_calloc(1, bsize) : ebb_malloc(bsize);
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
