/* SPDX-License-Identifier: MIT */
/* large.c - large blocks: each in its own mapping, [header page][block],
 * with the block start B aligned to the segment size, so free(B) finds the
 * header at B - EBB_LARGE_HEADER_SIZE (the segment map marks B's slot
 * EBB_MAP_LARGE); and the large cache of freed ones.
 *
 * Any thread may allocate, free or resize a large block; the registry and
 * the large cache (global lock) are their only shared lists. */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "prim.h"

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
static ebb_segment_t *large_cache;  /* global lock; read without it (relaxed) as a hint that it is empty */
static size_t large_cache_bytes;    /* global lock */

static size_t large_block_bytes(const ebb_segment_t *seg) { return seg->size - EBB_LARGE_HEADER_SIZE; }

static ebb_segment_t *large_resize(ebb_segment_t *seg, size_t total);
static bool large_cache_put(ebb_segment_t *seg);
static size_t large_unmap(ebb_segment_t *seg, ebb_layer_t layer);

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
    EBB_STORE(*best_link, best->next); /* large_cache is peeked without the lock */
    large_cache_bytes -= best->size;
    EBB_STORE(best->cached_since, 0);
    _ebb_purge_dirty_sub(best->size);
  }
  _ebb_unlock();
  if (best == NULL) return NULL;
  size_t bytes = large_block_bytes(best), total = size + EBB_LARGE_HEADER_SIZE;
  if (bytes < size) {
    ebb_segment_t *grown = large_resize(best, total);
    if (grown == NULL) { /* the caller tries a new mapping */
      if (large_cache_put(best)) _ebb_purge_notify(); /* dirty again: the thread may sleep */
      else large_unmap(best, EBB_LAYER_LARGE_CACHE); /* it was cached */
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
  _ebb_cache_resident_set(seg, _ebb_prim_resident(seg, size)); /* for statistics; nothing touches it while cached */
  EBB_STORE(seg->cached_since, _ebb_purge_clock_ms());
  _ebb_lock(); /* the dirty count moves with the cache, under the lock */
  if (large_cache_bytes + size <= limit) {
    seg->next = large_cache;
    EBB_STORE(large_cache, seg);
    large_cache_bytes += size;
    _ebb_purge_dirty_add(size);
    kept = true;
  }
  _ebb_unlock();
  return kept;
}

size_t _ebb_large_cache_count(void) {
  size_t n = 0;
  _ebb_lock();
  for (const ebb_segment_t *seg = large_cache; seg != NULL; seg = seg->next) n++;
  _ebb_unlock();
  return n;
}

/* The cache's blocks, their dirty bytes as the budget counts them (whole
 * mappings) and the oldest one's age. */
void _ebb_large_cache_stats_locked(ebb_stats_t *st, ebb_stats_walk_t *walk) {
  for (const ebb_segment_t *seg = large_cache; seg != NULL; seg = seg->next) {
    walk->large_cache_count++;
    walk->large_cache_dirty += seg->size;
    st->dirty += seg->size;
    uint64_t age = walk->now_ms > seg->cached_since ? walk->now_ms - seg->cached_since : 0;
    if (age > walk->oldest_dirty_ms) walk->oldest_dirty_ms = age;
  }
}

bool _ebb_large_is_cached(const void *p) {
  bool found = false;
  _ebb_lock();
  for (const ebb_segment_t *seg = large_cache; seg != NULL && !found; seg = seg->next) found = seg->pages[0].start == p;
  _ebb_unlock();
  return found;
}

/* Returns (and counts in `layer`: the large cache, or large blocks) the
 * resident bytes the mapping held. */
static size_t large_unmap(ebb_segment_t *seg, ebb_layer_t layer) {
  _ebb_segment_registry_remove(seg);
  size_t resident = _ebb_os_unmap(seg, seg->size);
  _ebb_budget_released(resident, EBB_RELEASE_UNMAP, layer);
  return resident;
}

/* EBB_VERBOSE=1 tells of mappings of large blocks from this size on (each
 * is one mmap or munmap), and of every cache eviction. */
#define VERBOSE_LARGE_MIN (16 * EBB_MiB)

static ebb_noinline void say_large(const char *what, size_t bytes, const char *why) {
  char text[EBB_SIZE_TEXT];
  _ebb_verbose_rated(EBB_V_LARGE, "ebb: large: %s a %s block%s\n", what, _ebb_size_human(text, bytes), why);
}

static ebb_noinline void say_cache_unmapped(size_t count, size_t bytes, size_t resident, bool force) {
  char text[EBB_SIZE_TEXT], res[EBB_SIZE_TEXT];
  _ebb_verbose_rated(EBB_V_LARGE, "ebb: large cache: unmapped %zu freed blocks (%s, of which %s resident): %s\n", count,
                     _ebb_size_human(text, bytes), _ebb_size_human(res, resident),
                     force ? "purging at once (over the dirty budget, or asked for)" : "cached for the purge delay");
}

/* Unmaps cached blocks older than the delay (all with force). */
size_t _ebb_large_purge_cache(uint64_t now, uint64_t delay, bool force) {
  ebb_segment_t *gone = NULL;
  _ebb_lock();
  for (ebb_segment_t **link = &large_cache; *link != NULL;) {
    ebb_segment_t *seg = *link;
    if (force || now - seg->cached_since >= delay) {
      EBB_STORE(*link, seg->next);
      large_cache_bytes -= seg->size;
      _ebb_purge_dirty_sub(seg->size);
      seg->next = gone;
      gone = seg;
    } else {
      link = &seg->next;
    }
  }
  _ebb_unlock();
  size_t released = 0, count = 0, bytes = 0;
  while (gone != NULL) {
    ebb_segment_t *seg = gone;
    gone = seg->next;
    bytes += seg->size;
    released += large_unmap(seg, EBB_LAYER_LARGE_CACHE);
    count++;
  }
  if (count != 0 && _ebb_verbose_on()) say_cache_unmapped(count, bytes, released, force);
  return released;
}

#if EBB_DEBUG >= 3
/* What the dirty count holds for the large cache (global lock held): its
 * blocks' mappings, which large_cache_bytes adds up. */
size_t _ebb_large_dirty_locked(void) {
  size_t dirty = 0;
  for (const ebb_segment_t *seg = large_cache; seg != NULL; seg = seg->next) dirty += seg->size;
  ebb_assert(dirty == large_cache_bytes);
  return dirty;
}
#endif

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
  EBB_STORE(seg->size, total);
  EBB_STORE(seg->cached_since, 0);
  seg->pages[0].start = m + EBB_LARGE_HEADER_SIZE;
  seg->pages[0].in_use = 1;
  seg->pages[0].margin = 1; /* used 1 (park_at 0) */
  _ebb_segment_registry_add(seg);
  _ebb_inuse_add(total);
  _ebb_os_map_set(m + EBB_LARGE_HEADER_SIZE, EBB_MAP_LARGE);
  if (block >= VERBOSE_LARGE_MIN && _ebb_verbose_on()) say_large("mapped", block, " (the large cache had none to reuse)");
  return m + EBB_LARGE_HEADER_SIZE;
}

void _ebb_large_free(ebb_segment_t *seg) {
  _ebb_os_map_set(seg->pages[0].start, EBB_MAP_NONE);
  _ebb_inuse_sub(seg->size);
  if (large_cache_put(seg)) {
    _ebb_purge_notify();
    return;
  }
  size_t bytes = large_block_bytes(seg);
  large_unmap(seg, EBB_LAYER_LARGE);
  if (_ebb_verbose_on()) say_large("unmapped", bytes, " at once: it does not fit in the large cache (EBB_LARGE_CACHE)");
}

/* Resizes a large block's mapping to `total` bytes (header included): in
 * place when the address space allows, else moved to a new aligned place
 * without copying (mremap moves the page tables). Returns the segment,
 * perhaps moved, or NULL with the block unchanged. Counts mapped bytes;
 * bytes in use are the caller's. */
static ebb_segment_t *large_resize(ebb_segment_t *seg, size_t total) {
  size_t old_total = seg->size;
  int saved_errno = errno; /* a failed in-place try must not show after a move that works */
  /* A shrink gives back the tail's resident bytes, counted once it is done. */
  size_t tail = total < old_total ? _ebb_prim_resident((uint8_t *)seg + total, old_total - total) : 0;
  if (_ebb_prim_remap(seg, old_total, total, NULL, false) != NULL) {
    _ebb_budget_released(tail, EBB_RELEASE_UNMAP, EBB_LAYER_LARGE);
    if (total > old_total) _ebb_os_mapped_add(total - old_total);
    else atomic_fetch_sub_explicit(&_ebb_os_mapped, old_total - total, memory_order_relaxed);
    EBB_STORE(seg->size, total);
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
    _ebb_budget_released(_ebb_os_unmap(dst, total), EBB_RELEASE_UNMAP, EBB_LAYER_LARGE); /* untouched: nothing, as a rule */
    return NULL;
  }
  /* The old range is gone (mremap unmapped it); dst's placeholder pages
   * were replaced. */
  atomic_fetch_sub_explicit(&_ebb_os_mapped, old_total, memory_order_relaxed);
  _ebb_budget_released(tail, EBB_RELEASE_UNMAP, EBB_LAYER_LARGE);
  EBB_STORE(moved->size, total);
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
void *_ebb_large_realloc(ebb_segment_t *seg, size_t size) {
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
