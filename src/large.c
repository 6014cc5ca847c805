/* SPDX-License-Identifier: MIT */
/* large.c - large blocks: each in its own mapping, [header page][block],
 * with the block start B aligned to the segment size, so free(B) finds the
 * header at B - EBB_LARGE_HEADER_SIZE (the segment map marks B's slot
 * EBB_MAP_LARGE); and the large cache of freed ones.
 *
 * Any thread may allocate, free or resize a large block; the registry
 * (global lock) and the large cache (its own lock, below) are their only
 * shared lists. */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "internal.h"
#include "prim.h"

/* ---- large blocks ------------------------------------------------------- */
ebb_segment_t *_ebb_large_segment_of(const void *p) {
  return (ebb_segment_t *)((uint8_t *)p - EBB_LARGE_HEADER_SIZE);
}

static size_t round_up(size_t x, size_t to) { return (x + to - 1) & ~(to - 1); }

/* ---- the large cache ------------------------------------------------------
 * Freed large blocks wait here, resident, so that a program that allocates
 * and frees big buffers in a loop reuses pages it has touched already
 * rather than mapping, faulting in and unmapping new ones. Bounded by
 * EBB_LARGE_CACHE bytes; a purge pass unmaps the ones older than
 * purge_delay, so the promise holds for them as for pages.
 *
 * Buckets by mapping size, CACHE_SUB_BUCKETS per power of two of OS pages;
 * each bucket is a list, newest first, and `cache_nonempty` has a bit per
 * bucket that holds a block, so that a take finds the nearest bucket with
 * a few bit scans instead of walking every cached block.
 *
 * Concurrency: cache_lock guards the buckets, the bitmap and
 * cache_bytes, and a cached block's `next` and `cached_since` (the freeing
 * thread stamps cached_since before it takes the lock; statistics read it
 * under the global lock, racily: a block on its way in or out is counted
 * on one side or the other). Lock order: the global lock, then cache_lock
 * (statistics hold the first and take the second); nothing is mapped,
 * unmapped or remapped under cache_lock: a take unlinks its block and
 * resizes it after letting go, and a purge pass unlinks the expired blocks
 * and unmaps them after letting go, so a thread that frees or allocates a
 * large block never waits for a system call another thread makes.
 * `cache_count` is written under cache_lock and read without it (relaxed)
 * as a hint that the cache is empty. */
#define CACHE_SUB_BITS 2
#define CACHE_SUB_BUCKETS (1u << CACHE_SUB_BITS)
#define CACHE_BUCKETS 128u /* 4 per power of two of OS pages: up to 2^44 bytes */
static_assert(CACHE_BUCKETS % 64 == 0, "whole bitmap words");

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static ebb_segment_t *cache_bucket[CACHE_BUCKETS]; /* cache_lock; each newest first */
static uint64_t cache_nonempty[CACHE_BUCKETS / 64]; /* cache_lock; bit b: cache_bucket[b] != NULL */
static size_t cache_bytes;                          /* cache_lock; the cached mappings' bytes */
static size_t cache_count;                          /* cache_lock; read without it (relaxed): a hint */

/* The bucket of a mapping of `bytes` (a multiple of the OS page): the
 * power of two of its OS pages and the next CACHE_SUB_BITS bits. Sizes in
 * a bucket differ by at most a quarter of the smallest. */
static unsigned cache_bucket_of(size_t bytes) {
  size_t pages = bytes / EBB_OS_PAGE;
  if (pages < CACHE_SUB_BUCKETS) return (unsigned)pages;
  unsigned top = 63u - (unsigned)__builtin_clzll(pages);
  unsigned b = (top - CACHE_SUB_BITS + 1) * CACHE_SUB_BUCKETS + (unsigned)((pages >> (top - CACHE_SUB_BITS)) & (CACHE_SUB_BUCKETS - 1));
  return b < CACHE_BUCKETS ? b : CACHE_BUCKETS - 1;
}

/* A block taken from the cache in its whole is at most this many times
 * the size asked for, and at most CACHE_WHOLE_SPARE bigger
 * (large_cache_take, rule 3): without that cap, bench bigbuf (256 KiB..64
 * MiB, 2 alive) held blocks up to 4 times their size, and its peak RSS
 * went from 87 to 127 MiB. */
#define CACHE_WHOLE_RATIO 4
#define CACHE_WHOLE_SPARE EBB_SEGMENT_SIZE

static void bucket_mark(unsigned b, bool nonempty) {
  uint64_t bit = (uint64_t)1 << (b % 64);
  if (nonempty) cache_nonempty[b / 64] |= bit;
  else cache_nonempty[b / 64] &= ~bit;
}

/* The first non-empty bucket at or above b; CACHE_BUCKETS if none. */
static unsigned bucket_at_or_above(unsigned b) {
  for (unsigned w = b / 64; w < CACHE_BUCKETS / 64; w++) {
    uint64_t bits = cache_nonempty[w];
    if (w == b / 64) bits &= ~(uint64_t)0 << (b % 64);
    if (bits != 0) return w * 64 + (unsigned)__builtin_ctzll(bits);
  }
  return CACHE_BUCKETS;
}

/* The last non-empty bucket below b; CACHE_BUCKETS if none. */
static unsigned bucket_below(unsigned b) {
  for (unsigned w = b / 64 + 1; w-- > 0;) {
    uint64_t bits = cache_nonempty[w];
    if (w == b / 64) bits &= b % 64 == 0 ? 0 : ~(uint64_t)0 >> (64 - b % 64);
    if (bits != 0) return w * 64 + 63u - (unsigned)__builtin_clzll(bits);
  }
  return CACHE_BUCKETS;
}

static size_t large_block_bytes(const ebb_segment_t *seg) { return seg->size - EBB_LARGE_HEADER_SIZE; }

static bool aligned_to(const ebb_segment_t *seg, size_t align) {
  return ((uintptr_t)seg->pages[0].start & (align - 1)) == 0;
}

/* In bucket b, the link to the block that best suits `size` bytes: the
 * smallest that holds it (want_above), else the largest; NULL if none has
 * the alignment or lies on the wanted side. */
static ebb_segment_t **bucket_best(unsigned b, size_t size, size_t align, bool want_above) {
  ebb_segment_t **best = NULL;
  for (ebb_segment_t **link = &cache_bucket[b]; *link != NULL; link = &(*link)->next) {
    size_t bytes = large_block_bytes(*link);
    if (!aligned_to(*link, align) || (bytes >= size) != want_above) continue;
    if (best == NULL || (want_above ? bytes < large_block_bytes(*best) : bytes > large_block_bytes(*best))) best = link;
  }
  return best;
}

static void cache_unlink(unsigned b, ebb_segment_t **link) {
  ebb_segment_t *seg = *link;
  *link = seg->next;
  if (cache_bucket[b] == NULL) bucket_mark(b, false);
  cache_bytes -= seg->size;
  EBB_STORE(cache_count, cache_count - 1);
  _ebb_purge_dirty_sub(seg->size);
}

static void cache_link(ebb_segment_t *seg) {
  unsigned b = cache_bucket_of(seg->size);
  seg->next = cache_bucket[b];
  cache_bucket[b] = seg;
  bucket_mark(b, true);
  cache_bytes += seg->size;
  EBB_STORE(cache_count, cache_count + 1);
  _ebb_purge_dirty_add(seg->size);
}

/* A cached block a take may use: its bucket and the link to it. */
typedef struct cache_pick_s {
  unsigned bucket;
  ebb_segment_t **link; /* NULL: none */
} cache_pick_t;

static size_t pick_bytes(cache_pick_t pick) { return large_block_bytes(*pick.link); }

static ebb_segment_t *pick_take(cache_pick_t pick) {
  ebb_segment_t *seg = *pick.link;
  cache_unlink(pick.bucket, pick.link);
  return seg;
}

/* The smallest cached block of at least `size` bytes, aligned (cache_lock
 * held). */
static cache_pick_t cache_find_above(size_t size, size_t align) {
  cache_pick_t pick = {CACHE_BUCKETS, NULL};
  for (unsigned b = bucket_at_or_above(cache_bucket_of(size + EBB_LARGE_HEADER_SIZE)); b < CACHE_BUCKETS && pick.link == NULL;
       b = bucket_at_or_above(b + 1))
    pick = (cache_pick_t){b, bucket_best(b, size, align, true)};
  return pick;
}

/* The largest cached block below `size` bytes, aligned (cache_lock held). */
static cache_pick_t cache_find_below(size_t size, size_t align) {
  cache_pick_t pick = {CACHE_BUCKETS, NULL};
  unsigned top = cache_bucket_of(size + EBB_LARGE_HEADER_SIZE);
  pick = (cache_pick_t){top, bucket_best(top, size, align, false)};
  for (unsigned b = bucket_below(top); b < CACHE_BUCKETS && pick.link == NULL; b = bucket_below(b))
    pick = (cache_pick_t){b, bucket_best(b, size, align, false)};
  return pick;
}

static ebb_segment_t *large_resize(ebb_segment_t *seg, size_t total);
static bool large_cache_put(ebb_segment_t *seg);
static size_t large_unmap(ebb_segment_t *seg, ebb_layer_t layer);

/* Fits a block taken from the cache to `size` bytes (see
 * large_cache_take): grows it, or cuts it down if it is far too big. NULL
 * if a grow fails (the block goes back to the cache). */
static ebb_segment_t *large_cache_fit(ebb_segment_t *seg, size_t size) {
  size_t bytes = large_block_bytes(seg), total = size + EBB_LARGE_HEADER_SIZE;
  if (bytes < size) {
    ebb_segment_t *grown = large_resize(seg, total);
    if (grown == NULL) { /* the caller tries a new mapping */
      if (large_cache_put(seg)) _ebb_purge_notify(); /* dirty again: the thread may sleep */
      else large_unmap(seg, EBB_LAYER_LARGE_CACHE); /* it was cached */
    }
    return grown;
  }
  if (bytes / CACHE_WHOLE_RATIO > size || bytes - size > CACHE_WHOLE_SPARE) {
    ebb_segment_t *cut = large_resize(seg, total); /* shrinks in place */
    if (cut != NULL) seg = cut;
  }
  return seg;
}

/* A cached block for `size` bytes (a multiple of the OS page), aligned,
 * chosen so that the pages it faults in are few and the ones it keeps
 * resident without use are bounded:
 *  1. the smallest that holds it with at most max(size / 4, 1 MiB) to
 *     spare, handed out whole: no system call, no page fault;
 *  2. else the biggest that does not hold it, grown with mremap: its pages
 *     are resident already, and only the tail it gains is new;
 *  3. else the smallest that holds it, whole if it is at most
 *     CACHE_WHOLE_RATIO times the size and CACHE_WHOLE_SPARE bigger, else
 *     cut down (mremap shrinks in
 *     place, the tail goes back to the OS at once).
 * A block handed out whole keeps its spare bytes as part of the block
 * (malloc_usable_size, and the statistics' live bytes, count them): a later
 * realloc grows into them. Cutting a block that a later bigger request
 * would have reused costs that request its faults again: with rule 3 cutting
 * at once, bench bigchurn (64 KiB..2 MiB) faulted 7 OS pages per block
 * replaced, with rule 3 as it is 0.3. NULL if the cache has nothing
 * suitable. */
static size_t cache_slack(size_t size) { return size / 4 > EBB_MiB ? size / 4 : EBB_MiB; }

/* Rule 1 alone: a cached block that holds `size` bytes with at most
 * `spare` to spare, taken whole, or NULL. */
static ebb_segment_t *large_cache_take_whole(size_t size, size_t spare) {
  if (EBB_LOAD(cache_count) == 0) return NULL;
  ebb_segment_t *seg = NULL;
  pthread_mutex_lock(&cache_lock);
  cache_pick_t above = cache_find_above(size, EBB_SEGMENT_SIZE);
  if (above.link != NULL && pick_bytes(above) - size <= spare) seg = pick_take(above);
  if (seg != NULL) EBB_STORE(seg->cached_since, 0);
  pthread_mutex_unlock(&cache_lock);
  return seg;
}

static ebb_segment_t *large_cache_take(size_t size, size_t align) {
  if (EBB_LOAD(cache_count) == 0) return NULL;
  size_t slack = cache_slack(size);
  ebb_segment_t *seg = NULL;
  pthread_mutex_lock(&cache_lock);
  cache_pick_t above = cache_find_above(size, align);
  if (above.link != NULL && pick_bytes(above) - size <= slack) {
    seg = pick_take(above);
  } else if (align <= EBB_SEGMENT_SIZE) {
    cache_pick_t below = cache_find_below(size, align);
    if (below.link != NULL) seg = pick_take(below);
  }
  if (seg == NULL && above.link != NULL) seg = pick_take(above);
  if (seg != NULL) EBB_STORE(seg->cached_since, 0);
  pthread_mutex_unlock(&cache_lock);
  if (seg == NULL) return NULL;
  return large_cache_fit(seg, size);
}

/* Keeps a freed block if the cache has room. */
static bool large_cache_put(ebb_segment_t *seg) {
  size_t limit = (size_t)_ebb_option(EBB_OPT_LARGE_CACHE);
  size_t size = seg->size; /* once the lock is released the block may be gone */
  bool kept = false;
  if (size > limit) return false;
  EBB_STORE(seg->cached_since, _ebb_purge_clock_ms());
  pthread_mutex_lock(&cache_lock); /* the dirty count moves with the cache, under its lock */
  if (cache_bytes + size <= limit) {
    cache_link(seg);
    kept = true;
  }
  pthread_mutex_unlock(&cache_lock);
  return kept;
}

size_t _ebb_large_cache_count(void) { return EBB_LOAD(cache_count); }

/* The cache's blocks, their dirty bytes as the budget counts them (whole
 * mappings) and the oldest one's age. */
void _ebb_large_cache_stats_locked(ebb_stats_t *st, ebb_stats_walk_t *walk) {
  pthread_mutex_lock(&cache_lock);
  for (unsigned b = bucket_at_or_above(0); b < CACHE_BUCKETS; b = bucket_at_or_above(b + 1)) {
    for (const ebb_segment_t *seg = cache_bucket[b]; seg != NULL; seg = seg->next) {
      walk->large_cache_count++;
      walk->large_cache_dirty += seg->size;
      st->dirty += seg->size;
      uint64_t age = walk->now_ms > seg->cached_since ? walk->now_ms - seg->cached_since : 0;
      if (age > walk->oldest_dirty_ms) walk->oldest_dirty_ms = age;
    }
  }
  pthread_mutex_unlock(&cache_lock);
}

bool _ebb_large_is_cached(const void *p) {
  bool found = false;
  pthread_mutex_lock(&cache_lock);
  for (unsigned b = bucket_at_or_above(0); b < CACHE_BUCKETS && !found; b = bucket_at_or_above(b + 1))
    for (const ebb_segment_t *seg = cache_bucket[b]; seg != NULL && !found; seg = seg->next) found = seg->pages[0].start == p;
  pthread_mutex_unlock(&cache_lock);
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

/* Unlinks the cached blocks older than the delay (all with force) onto
 * *gone (cache_lock held). */
static void cache_unlink_expired(uint64_t now, uint64_t delay, bool force, ebb_segment_t **gone) {
  for (unsigned b = bucket_at_or_above(0); b < CACHE_BUCKETS; b = bucket_at_or_above(b + 1)) {
    for (ebb_segment_t **link = &cache_bucket[b]; *link != NULL;) {
      ebb_segment_t *seg = *link;
      if (!force && now - seg->cached_since < delay) {
        link = &seg->next;
        continue;
      }
      cache_unlink(b, link);
      seg->next = *gone;
      *gone = seg;
    }
  }
}

/* Unmaps cached blocks older than the delay (all with force): unlinked
 * under cache_lock, unmapped after it (no thread waits for the munmap). */
size_t _ebb_large_purge_cache(uint64_t now, uint64_t delay, bool force) {
  if (EBB_LOAD(cache_count) == 0) return 0;
  ebb_segment_t *gone = NULL;
  pthread_mutex_lock(&cache_lock);
  cache_unlink_expired(now, delay, force, &gone);
  pthread_mutex_unlock(&cache_lock);
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

/* fork: the child must not inherit cache_lock held by a thread it does
 * not have. Taken after the global lock (the lock order above). */
void _ebb_large_fork_prepare(void) { pthread_mutex_lock(&cache_lock); }
void _ebb_large_fork_parent(void) { pthread_mutex_unlock(&cache_lock); }
void _ebb_large_fork_child(void) { pthread_mutex_init(&cache_lock, NULL); }

#if EBB_DEBUG >= 3
/* What the dirty count holds for the large cache: its blocks' mappings,
 * which cache_bytes adds up. */
size_t _ebb_large_dirty_locked(void) {
  size_t dirty = 0;
  pthread_mutex_lock(&cache_lock);
  for (unsigned b = 0; b < CACHE_BUCKETS; b++) {
    ebb_assert(((cache_nonempty[b / 64] >> (b % 64)) & 1) == (cache_bucket[b] != NULL));
    for (const ebb_segment_t *seg = cache_bucket[b]; seg != NULL; seg = seg->next) {
      ebb_assert(cache_bucket_of(seg->size) == b);
      dirty += seg->size;
    }
  }
  ebb_assert(dirty == cache_bytes);
  pthread_mutex_unlock(&cache_lock);
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

/* A resized block moved into a cached one, whose pages are resident:
 * `keep` bytes copied, the old block freed (to the cache, on the purge
 * delay, if it has room). Copying costs less than the page faults a
 * mremap grow takes in fresh pages (and reads from memory the cache
 * holds warm), and a shrink that cut the tail would unmap resident pages
 * that the next growing block faults in again: bench realloc. NULL if the
 * cache has no block of the size. */
static void *large_move_to_cached(ebb_segment_t *seg, size_t block, size_t keep) {
  ebb_segment_t *to = large_cache_take_whole(block, block); /* at most twice: what realloc keeps in place */
  if (to == NULL) return NULL;
  memcpy(to->pages[0].start, seg->pages[0].start, keep);
  _ebb_inuse_add(to->size);
  _ebb_os_map_set(to->pages[0].start, EBB_MAP_LARGE);
  _ebb_large_free(seg);
  return to->pages[0].start;
}

/* realloc of a large block to a size that stays large: nothing to do if
 * the mapping holds it and is not twice too big (a block taken from the
 * large cache may be bigger than asked); else move it into a cached
 * block that fits, or resize the mapping. NULL only when a grow fails. */
void *_ebb_large_realloc(ebb_segment_t *seg, size_t size) {
  size_t block = round_up(size, EBB_OS_PAGE), total = block + EBB_LARGE_HEADER_SIZE, old_total = seg->size;
  if (total <= old_total && total >= old_total / 2) return seg->pages[0].start;
  size_t old_block = large_block_bytes(seg);
  void *moved = large_move_to_cached(seg, block, size < old_block ? size : old_block);
  if (moved != NULL) return moved;
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
