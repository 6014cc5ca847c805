/* SPDX-License-Identifier: MIT */
/* segment.c - segments: 4 MiB aligned regions cut into pages of one kind.
 *
 * Lists, and who may touch them:
 *  - heap->segments: every segment a heap owns (owner thread only).
 *  - heap->with_free[kind]: owned small/medium segments with a free page,
 *    in no particular order (owner thread only).
 *  - abandoned: segments of exited threads that still hold live blocks,
 *    LIFO (global lock). A thread that needs a page adopts one; a purge
 *    pass pops them one at a time, collects them, purges them once the purge
 *    delay has passed since their owner left, and pushes back the ones still
 *    in use when it has seen them all (meanwhile the others stay adoptable).
 *  - cache: whole free segments kept for reuse, at most EBB_SEGMENT_CACHE,
 *    purged after purge_delay and unmapped after 10 x purge_delay (global
 *    lock).
 *  - registry: every mapped segment, for statistics and purge passes
 *    (global lock; a segment is unmapped only after leaving it).
 * A segment's map byte is set while it is owned or abandoned, clear while
 * cached or unmapped.
 * A free page (in_use == 0) whose memory is dirty is offered (claim IDLE)
 * like a parked page: the owner claims it back before using it. */
#include <string.h>

#include "internal.h"
#include "prim.h"

ebb_segment_t *_ebb_segment_abandoned; /* global lock */
size_t _ebb_segment_abandoned_count;  /* global lock; read without it (relaxed) as a hint to skip */
static ebb_segment_t *cache[64];       /* global lock, oldest first */
static size_t cache_count;             /* global lock; the purge thread reads it without (relaxed): a hint */
ebb_segment_t *_ebb_segment_registry;  /* global lock */

/* ---- registry ---------------------------------------------------------- */
void _ebb_segment_registry_add(ebb_segment_t *seg) {
  _ebb_lock();
  seg->all_prev = NULL;
  seg->all_next = _ebb_segment_registry;
  if (_ebb_segment_registry) _ebb_segment_registry->all_prev = seg;
  _ebb_segment_registry = seg;
  _ebb_unlock();
}

static void registry_remove_locked(ebb_segment_t *seg) {
  if (seg->all_prev) seg->all_prev->all_next = seg->all_next;
  else _ebb_segment_registry = seg->all_next;
  if (seg->all_next) seg->all_next->all_prev = seg->all_prev;
}

void _ebb_segment_registry_remove(ebb_segment_t *seg) {
  _ebb_lock();
  registry_remove_locked(seg);
  _ebb_unlock();
}

/* ---- layout ------------------------------------------------------------ */
static uint32_t kind_shift(ebb_page_kind_t kind) {
  if (kind == EBB_PAGE_SMALL) return EBB_SMALL_PAGE_SHIFT;
  if (kind == EBB_PAGE_MEDIUM) return EBB_MEDIUM_PAGE_SHIFT;
  return EBB_SEGMENT_SHIFT;
}

/* Usable bytes of a page and where its blocks start: page 0 gives up the
 * segment header. */
size_t _ebb_segment_page_size(const ebb_segment_t *seg, const ebb_page_t *page, uint8_t **start) {
  /* Relaxed: statistics call this under the global lock while a segment
   * taken from the cache is set up again without it (segment_init). */
  size_t psize = (size_t)1 << EBB_LOAD(seg->page_shift);
  size_t index = _ebb_page_index(seg, page);
  uint8_t *p = (uint8_t *)seg + index * psize;
  if (index == 0) {
    p += EBB_SEGMENT_HEADER_SIZE;
    psize -= EBB_SEGMENT_HEADER_SIZE;
  }
  if (start) *start = p;
  return psize;
}

/* Forgets that blocks starting in [start, start+len) were purged. */
void _ebb_segment_clear_purged(ebb_segment_t *seg, const uint8_t *start, size_t len) {
  size_t first = (size_t)(start - (uint8_t *)seg) / EBB_OS_PAGE;
  size_t end = (size_t)(start + len - (uint8_t *)seg + EBB_OS_PAGE - 1) / EBB_OS_PAGE;
  for (size_t os = first; os < end && os < EBB_SEGMENT_OS_PAGES; os++) {
    uint64_t bit = (uint64_t)1 << (os % 64);
    if (atomic_load_explicit(&seg->purged_os[os / 64], memory_order_relaxed) & bit)
      atomic_fetch_and_explicit(&seg->purged_os[os / 64], ~bit, memory_order_relaxed);
  }
}

size_t _ebb_page_dirty_bytes(const ebb_segment_t *seg, const ebb_page_t *page, size_t from) {
  if (__atomic_load_n(&page->is_fresh, __ATOMIC_RELAXED)) return 0;
  uint8_t *start;
  size_t psize = _ebb_segment_page_size(seg, page, &start);
  size_t end = (size_t)__atomic_load_n(&page->touched_os, __ATOMIC_RELAXED) * EBB_OS_PAGE;
  if (end == 0) end = EBB_OS_PAGE;
  if (end > psize) end = psize;
  if (from >= end) return 0;
  size_t bytes = end - from, base = (size_t)(start - (const uint8_t *)seg) / EBB_OS_PAGE;
  /* OS pages wholly in [from, end): a purged one holds nothing. */
  for (size_t k = (from + EBB_OS_PAGE - 1) / EBB_OS_PAGE; (k + 1) * EBB_OS_PAGE <= end; k++) {
    size_t os = base + k;
    if ((atomic_load_explicit(&seg->purged_os[os / 64], memory_order_relaxed) >> (os % 64)) & 1) bytes -= EBB_OS_PAGE;
  }
  return bytes;
}

/* Offers a free page that is not fresh for purging: its dirty bytes, one
 * OS page at least (offered 0 means parked in place). */
static void offer_dirty(const ebb_segment_t *seg, ebb_page_t *page) {
  size_t bytes = _ebb_page_dirty_bytes(seg, page, 0);
  _ebb_page_offer(page, bytes > EBB_OS_PAGE ? bytes : EBB_OS_PAGE);
}

/* OS pages of a page up to its last resident one, by the segment's
 * mincore map (NULL: unknown, the whole page). */
static uint16_t touched_of(const ebb_segment_t *seg, const ebb_page_t *page, const unsigned char *resident) {
  uint8_t *start;
  size_t n = _ebb_segment_page_size(seg, page, &start) / EBB_OS_PAGE;
  if (resident == NULL) return (uint16_t)n;
  size_t first = (size_t)(start - (const uint8_t *)seg) / EBB_OS_PAGE;
  while (n > 0 && !(resident[first + n - 1] & 1)) n--;
  return (uint16_t)n;
}

/* Sets up a segment for pages of `kind`. True if its memory is dirty (a
 * cached segment that was not purged yet). */
static bool segment_init(ebb_segment_t *seg, ebb_page_kind_t kind, bool fresh) {
  uint32_t shift = kind_shift(kind);
  uint32_t count = (uint32_t)(EBB_SEGMENT_SIZE >> shift);
  /* Not a memset of the whole header: a cached segment stays on the
   * registry, whose links other threads may rewrite under the lock. */
  if (!fresh) {
    memset(seg->pages, 0, count * sizeof(ebb_page_t));
    memset((void *)seg->purged_os, 0, sizeof(seg->purged_os));
    EBB_STORE(seg->used_pages, 0);
    EBB_STORE(seg->heap, NULL);
    seg->next = seg->prev = seg->free_next = seg->free_prev = NULL;
    seg->in_free_queue = false;
    atomic_store_explicit(&seg->idle_pages, 0, memory_order_relaxed);
    atomic_store_explicit(&seg->inplace_hint, 0, memory_order_relaxed);
  }
  bool zero = fresh || seg->cache_purged;
  /* Statistics and the passes read these under the lock while a cached
   * segment is set up again without it (EBB_LOAD there). */
  EBB_STORE(seg->kind, kind);
  EBB_STORE(seg->page_shift, shift);
  EBB_STORE(seg->page_count, count);
  EBB_STORE(seg->size, EBB_SEGMENT_SIZE);
  EBB_STORE(seg->cache_purged, false);
  /* The last use's layout may have been another: what of each new page is
   * dirty is what the kernel holds resident of it (one mincore). */
  unsigned char resident[EBB_SEGMENT_OS_PAGES];
  bool known = !zero && _ebb_prim_resident_map(seg, EBB_SEGMENT_OS_PAGES, resident);
  for (uint32_t i = 0; i < count; i++) {
    ebb_page_t *page = &seg->pages[i];
    _ebb_page_set_fresh(page, zero);
    if (!zero) EBB_STORE(page->touched_os, touched_of(seg, page, known ? resident : NULL));
  }
  return !zero;
}

/* ---- the owner's lists --------------------------------------------------- */
static void free_queue_add(ebb_heap_t *heap, ebb_segment_t *seg) {
  if (seg->in_free_queue || seg->kind > EBB_PAGE_MEDIUM) return;
  ebb_segment_t **head = &heap->with_free[seg->kind];
  seg->free_prev = NULL;
  seg->free_next = *head;
  if (*head) (*head)->free_prev = seg;
  *head = seg;
  seg->in_free_queue = true;
}

static void free_queue_remove(ebb_heap_t *heap, ebb_segment_t *seg) {
  if (!seg->in_free_queue) return;
  if (seg->free_prev) seg->free_prev->free_next = seg->free_next;
  else heap->with_free[seg->kind] = seg->free_next;
  if (seg->free_next) seg->free_next->free_prev = seg->free_prev;
  seg->in_free_queue = false;
}

static void owned_add(ebb_heap_t *heap, ebb_segment_t *seg) {
  EBB_STORE(seg->heap, heap);
  seg->prev = NULL;
  seg->next = heap->segments;
  if (heap->segments) heap->segments->prev = seg;
  heap->segments = seg;
  atomic_store_explicit(&seg->thread_id, heap->thread_id, memory_order_release);
  if (seg->used_pages < seg->page_count) free_queue_add(heap, seg);
}

static void owned_remove(ebb_heap_t *heap, ebb_segment_t *seg) {
  free_queue_remove(heap, seg);
  if (seg->prev) seg->prev->next = seg->next;
  else heap->segments = seg->next;
  if (seg->next) seg->next->prev = seg->prev;
  seg->next = seg->prev = NULL;
}

/* ---- the segment cache ------------------------------------------------------ */
/* Dirty bytes of cached segments are counted under the lock, together
 * with the cache itself, so the count never runs ahead of what a pass can
 * see (or behind it). A cached segment's dirty bytes are what its purge
 * would give back: its resident bytes past the first OS page (which keeps
 * the registry links until the unmap). */
static size_t cache_dirty(const ebb_segment_t *seg) {
  if (seg->cache_purged || _ebb_cache_resident(seg) <= EBB_OS_PAGE) return 0;
  return _ebb_cache_resident(seg) - EBB_OS_PAGE;
}

static ebb_segment_t *cache_pop(void) {
  ebb_segment_t *seg = NULL;
  _ebb_lock();
  if (cache_count > 0) {
    EBB_STORE(cache_count, cache_count - 1);
    seg = cache[cache_count];
    _ebb_purge_dirty_sub(cache_dirty(seg));
  }
  _ebb_unlock();
  return seg;
}

static bool cache_push(ebb_segment_t *seg) {
  bool kept = false;
  /* A segment whose pages were all purged (or never touched) is clean. */
  bool clean = _ebb_purge_zeroes();
  for (uint32_t i = 0; i < seg->page_count && clean; i++) clean = seg->pages[i].is_fresh;
  EBB_STORE(seg->cached_since, _ebb_purge_clock_ms());
  EBB_STORE(seg->cache_purged, clean);
  size_t limit = (size_t)_ebb_option(EBB_OPT_SEGMENT_CACHE);
  if (limit > 0) _ebb_cache_resident_set(seg, _ebb_prim_resident(seg, EBB_SEGMENT_SIZE));
  _ebb_lock();
  if (cache_count < limit && cache_count < sizeof(cache) / sizeof(cache[0])) {
    cache[cache_count] = seg;
    EBB_STORE(cache_count, cache_count + 1); /* read without the lock (_ebb_segment_cache_count) */
    _ebb_purge_dirty_add(cache_dirty(seg));
    kept = true;
  }
  _ebb_unlock();
  return kept;
}

static void cache_remove_locked(size_t i) {
  memmove(&cache[i], &cache[i + 1], (cache_count - i - 1) * sizeof(cache[0]));
  EBB_STORE(cache_count, cache_count - 1);
}

/* Unmaps a whole segment; returns (and counts in `layer`: the segment
 * cache, or the kind of its pages) the resident bytes it held. */
static size_t unmap_counted(ebb_segment_t *seg, unsigned layer) {
  size_t resident = _ebb_os_unmap(seg, EBB_SEGMENT_SIZE);
  _ebb_budget_released(resident, EBB_RELEASE_UNMAP, layer);
  return resident;
}

/* Purges cached segments after purge_delay (at once when over the dirty
 * budget), unmaps them after ten delays (at once with force). The first OS
 * page (registry links) stays until the unmap. */
static ebb_noinline void say_cache_pass(size_t unmapped, size_t purged, bool force, bool urgent) {
  char text[EBB_SIZE_TEXT];
  if (unmapped != 0)
    _ebb_verbose_rated(EBB_V_SEGMENT, "ebb: segment cache: unmapped %zu free segments (%s): %s\n", unmapped,
                       _ebb_size_human(text, unmapped * EBB_SEGMENT_SIZE),
                       force ? "asked for (ebb_collect(true), malloc_trim, or near RLIMIT_AS/RLIMIT_DATA)"
                             : "free for ten purge delays (at least 200 ms)");
  if (purged != 0)
    _ebb_verbose_rated(EBB_V_SEGMENT, "ebb: segment cache: purged %zu cached segments (%s): %s\n", purged,
                       _ebb_size_human(text, purged * EBB_SEGMENT_SIZE),
                       urgent ? "purging at once (over the dirty budget, or asked for)" : "cached for the purge delay");
}

size_t _ebb_segment_purge_cache(uint64_t now, uint64_t delay, bool force, bool urgent) {
  size_t released = 0, unmapped = 0, purged = 0;
  uint64_t unmap_after = delay * 10 < 200 ? 200 : delay * 10;
  _ebb_lock();
  for (size_t i = 0; i < cache_count;) {
    ebb_segment_t *seg = cache[i];
    uint64_t age = now - seg->cached_since;
    if (force || age >= unmap_after) {
      cache_remove_locked(i);
      registry_remove_locked(seg);
      _ebb_purge_dirty_sub(cache_dirty(seg));
      _ebb_secure_segment_unmapped(seg);
      released += unmap_counted(seg, EBB_LAYER_SEGMENT_CACHE);
      unmapped++;
      continue;
    }
    if (!seg->cache_purged && (urgent || age >= delay)) {
      size_t gone = cache_dirty(seg);
      _ebb_purge_dirty_sub(gone);
      if (_ebb_prim_decommit((uint8_t *)seg + EBB_OS_PAGE, EBB_SEGMENT_SIZE - EBB_OS_PAGE, false) != 0)
        gone = 0; /* refused: zeroed by hand, still resident */
      EBB_STORE(seg->cache_purged, true);
      _ebb_cache_resident_set(seg, _ebb_cache_resident(seg) - gone);
      _ebb_budget_released(gone, EBB_RELEASE_PURGE, EBB_LAYER_SEGMENT_CACHE);
      released += gone;
      purged++;
    }
    i++;
  }
  _ebb_unlock();
  if ((unmapped | purged) != 0 && _ebb_verbose_on()) say_cache_pass(unmapped, purged, force, urgent);
  return released;
}

/* Cached segments keep the purge thread waking until they are unmapped. */
size_t _ebb_segment_cache_count(void) { return __atomic_load_n(&cache_count, __ATOMIC_RELAXED); }

/* ---- getting and releasing whole segments --------------------------------- */
static ebb_noinline void say_mapped(ebb_page_kind_t kind) {
  char page[EBB_SIZE_TEXT];
  _ebb_verbose_rated(EBB_V_SEGMENT, "ebb: segment: mapped a fresh 4 MiB segment for %s pages (the segment cache is empty)\n",
                     _ebb_size_human(page, (size_t)1 << kind_shift(kind)));
}

static ebb_noinline void say_cache_full(void) {
  _ebb_verbose_rated(EBB_V_SEGMENT,
                     "ebb: segment: unmapped a free 4 MiB segment at once: the segment cache is full "
                     "(EBB_SEGMENT_CACHE=%zu)\n",
                     (size_t)_ebb_option(EBB_OPT_SEGMENT_CACHE));
}

static ebb_segment_t *segment_alloc(ebb_heap_t *heap, ebb_page_kind_t kind) {
  ebb_segment_t *seg = cache_pop();
  bool fresh = (seg == NULL);
  if (fresh) {
    seg = _ebb_purge_map_aligned(EBB_SEGMENT_SIZE, EBB_SEGMENT_SIZE, 0);
    if (seg == NULL) return NULL;
    _ebb_os_thp_advise(seg);
    if (_ebb_verbose_on()) say_mapped(kind);
  }
  bool dirty = segment_init(seg, kind, fresh);
  if (fresh) _ebb_segment_registry_add(seg);
  _ebb_os_map_set(seg, (uint8_t)seg->page_shift);
  owned_add(heap, seg);
  if (dirty) {
    /* Its free pages hold the memory of the segment's last use: offer
     * them like any free page (take_page claims back the one it uses), or
     * they would stay resident until the whole segment is free again. */
    for (uint32_t i = 0; i < seg->page_count; i++) offer_dirty(seg, &seg->pages[i]);
    _ebb_purge_notify();
  }
  return seg;
}

/* A segment none of whose pages is in use: claim every page back from
 * the purge passes, then cache or unmap it. heap is NULL for an abandoned
 * segment. */
static void segment_release(ebb_heap_t *heap, ebb_segment_t *seg) {
  ebb_assert(seg->used_pages == 0);
  for (uint32_t i = 0; i < seg->page_count; i++) _ebb_page_claim(&seg->pages[i]);
  if (heap != NULL) owned_remove(heap, seg);
  EBB_STORE(seg->heap, NULL);
  atomic_store_explicit(&seg->thread_id, 0, memory_order_relaxed);
  _ebb_os_map_set(seg, EBB_MAP_NONE);
  if (cache_push(seg)) {
    _ebb_purge_notify();
    return;
  }
  _ebb_segment_registry_remove(seg);
  _ebb_secure_segment_unmapped(seg);
  unmap_counted(seg, seg->kind); /* its free pages' bytes */
  if (_ebb_verbose_on()) say_cache_full();
}

/* ---- pages ------------------------------------------------------------------ */
/* The free page of `seg` to use for size class `bin`: one that last held
 * the same class (what its carving touched fits the class), else the
 * first free one. Only the holder writes page->bin; is_fresh is not read
 * here, as a purge pass may be writing it. */
static uint32_t pick_page(const ebb_segment_t *seg, unsigned bin) {
  uint32_t first = seg->page_count;
  for (uint32_t i = 0; i < seg->page_count; i++) {
    const ebb_page_t *page = &seg->pages[i];
    if (page->in_use) continue;
    if (page->bin == bin) return i;
    if (first == seg->page_count) first = i;
  }
  return first;
}

static ebb_page_t *take_page(ebb_heap_t *heap, ebb_segment_t *seg, unsigned bin) {
  uint32_t i = pick_page(seg, bin);
  if (i < seg->page_count) {
    ebb_page_t *page = &seg->pages[i];
    _ebb_page_claim(page); /* a purge may have it; it sets is_fresh */
    page->in_use = 1;
    _ebb_inuse_add((size_t)1 << seg->page_shift);
    EBB_STORE(seg->used_pages, seg->used_pages + 1); /* statistics read it */
    if (seg->used_pages == seg->page_count) free_queue_remove(heap, seg);
    return page;
  }
  _ebb_fatal("segment on the free queue has no free page");
}

/* Returns an empty page to its segment (heap NULL: an abandoned segment
 * held by a purge pass). Dirty memory is offered for purging; the segment
 * goes when its last page does. */
static void page_release_keeping(ebb_heap_t *heap, ebb_segment_t *seg, ebb_page_t *page, bool keep_segment);

static void page_release(ebb_heap_t *heap, ebb_segment_t *seg, ebb_page_t *page) {
  page_release_keeping(heap, seg, page, false);
}

/* keep_segment: an empty segment stays with `heap` (adoption decides). */
static void page_release_keeping(ebb_heap_t *heap, ebb_segment_t *seg, ebb_page_t *page, bool keep_segment) {
  ebb_assert(page->in_use && _ebb_page_used(page) == 0);
  if (page->capacity > 0) page->is_fresh = 0; /* carved memory is dirty (unless a purge reset it) */
  page->in_use = 0;
  EBB_STORE(page->capacity, 0);
  EBB_STORE(page->span, 0); /* _ebb_usable_size may read it from any thread */
  page->purged_blocks = 0;
  _ebb_page_set_flags(page, 0);
  atomic_store_explicit(&page->local_tag, 0, memory_order_relaxed); /* not in use */
  page->free = page->local_free = NULL;
  atomic_store_explicit(&page->heap, NULL, memory_order_relaxed);
  _ebb_inuse_sub((size_t)1 << seg->page_shift);
  EBB_STORE(seg->used_pages, seg->used_pages - 1);
  if (seg->used_pages == 0 && !keep_segment) {
    segment_release(heap, seg);
    return;
  }
  if (heap != NULL) free_queue_add(heap, seg);
  if (!page->is_fresh) offer_dirty(seg, page);
}

void _ebb_segment_page_free(ebb_heap_t *heap, ebb_page_t *page) {
  page_release(heap, _ebb_segment_of(page), page);
}

/* ---- abandon and adopt ------------------------------------------------------ */
/* The segment is losing its owner: no page stays "local and plain" for it. */
static void clear_local_tags(ebb_segment_t *seg) {
  for (uint32_t i = 0, n = EBB_LOAD(seg->page_count); i < n; i++)
    atomic_store_explicit(&seg->pages[i].local_tag, 0, memory_order_relaxed);
}

/* Called by an exiting thread after its pages were collected, unparked and
 * their delayed state set to NEVER: hands every segment that still holds
 * live blocks to the abandoned list, frees the rest. */
void _ebb_segment_abandon_all(ebb_heap_t *heap) {
  while (heap->segments != NULL) {
    ebb_segment_t *seg = heap->segments;
    if (seg->used_pages == 0) {
      segment_release(heap, seg);
      continue;
    }
    owned_remove(heap, seg);
    EBB_STORE(seg->heap, NULL);
    clear_local_tags(seg);
    atomic_store_explicit(&seg->thread_id, 0, memory_order_release);
    seg->cached_since = _ebb_purge_clock_ms(); /* its free memory waits the purge delay from here */
    _ebb_lock();
    seg->left_by = heap;
    seg->next = _ebb_segment_abandoned;
    _ebb_segment_abandoned = seg;
    EBB_STORE(_ebb_segment_abandoned_count, _ebb_segment_abandoned_count + 1); /* abandoned_pop peeks */
    _ebb_unlock();
  }
  atomic_store_explicit(&_ebb_abandoned_hint, 1, memory_order_relaxed);
}

/* Takes the segment at `at` (a link of the abandoned list) off the list.
 * Global lock held. */
static ebb_segment_t *abandoned_unlink_locked(ebb_segment_t **at) {
  ebb_segment_t *seg = *at;
  if (seg != NULL) {
    *at = seg->next;
    EBB_STORE(_ebb_segment_abandoned_count, _ebb_segment_abandoned_count - 1); /* abandoned_pop peeks */
  }
  return seg;
}

ebb_segment_t *_ebb_segment_abandoned_pop(void) {
  if (__atomic_load_n(&_ebb_segment_abandoned_count, __ATOMIC_RELAXED) == 0) return NULL;
  _ebb_lock();
  ebb_segment_t *seg = abandoned_unlink_locked(&_ebb_segment_abandoned);
  _ebb_unlock();
  return seg;
}

void _ebb_segment_abandoned_push(ebb_segment_t *seg) {
  _ebb_lock();
  seg->next = _ebb_segment_abandoned;
  _ebb_segment_abandoned = seg;
  EBB_STORE(_ebb_segment_abandoned_count, _ebb_segment_abandoned_count + 1);
  _ebb_unlock();
}

/* The abandoned segment that serves `heap` best for a page of `kind`: one
 * the heap's last thread left (its pages were carved for the same
 * program's pattern, and are resident), else one of that kind, else the
 * newest. The list is searched this far; NULL if it is empty. */
#define EBB_ADOPT_SEARCH 32
static ebb_segment_t *abandoned_pop_for(ebb_heap_t *heap, ebb_page_kind_t kind) {
  if (__atomic_load_n(&_ebb_segment_abandoned_count, __ATOMIC_RELAXED) == 0) return NULL;
  _ebb_lock();
  ebb_segment_t **pick = NULL, **at = &_ebb_segment_abandoned;
  for (unsigned looked = 0; *at != NULL && looked < EBB_ADOPT_SEARCH; at = &(*at)->next, looked++) {
    if ((*at)->kind != kind) continue;
    if ((*at)->left_by == heap) {
      pick = at;
      break;
    }
    if (pick == NULL) pick = at;
  }
  ebb_segment_t *seg = abandoned_unlink_locked(pick != NULL ? pick : &_ebb_segment_abandoned);
  _ebb_unlock();
  return seg;
}

/* Takes over one abandoned page: its blocks freed by other threads since
 * the owner left are collected; an empty page goes back to the segment. */
static void adopt_page(ebb_heap_t *heap, ebb_segment_t *seg, ebb_page_t *page) {
  _ebb_page_claim(page); /* abandoned pages are OWNED; be sure */
  atomic_store_explicit(&page->heap, heap, memory_order_release);
  _ebb_page_set_delayed(page, EBB_NO_DELAYED, true);
  _ebb_page_collect(page);
  _ebb_page_set_flags(page, 0);
  if (_ebb_page_used(page) == 0) {
    page_release_keeping(heap, seg, page, true);
    return;
  }
  _ebb_queue_push_back(heap, page->bin, page);
}

/* Adopts one abandoned segment. True if one was found. */
static bool adopt_one(ebb_heap_t *heap, ebb_page_kind_t kind) {
  ebb_segment_t *seg = abandoned_pop_for(heap, kind);
  if (seg == NULL) return false;
  seg->next = seg->prev = NULL;
  seg->in_free_queue = false;
  owned_add(heap, seg);
  /* A spare: the heap has no other segment of this kind with a free page. */
  bool spare = seg->kind <= EBB_PAGE_MEDIUM && heap->with_free[seg->kind] == NULL;
  uint32_t count = seg->page_count, remaining = seg->used_pages;
  for (uint32_t i = 0; i < count && remaining > 0; i++) {
    if (!seg->pages[i].in_use) continue;
    remaining--;
    adopt_page(heap, seg, &seg->pages[i]);
  }
  /* Its free pages (dirty ones stay offered, on their delay) serve the
   * heap's next pages before a fresh or cached segment: what the exited
   * owner freed is reused, not left to be purged while other memory is
   * faulted in. An empty one is kept as the heap's spare rather than
   * cached and taken straight back (a mincore and two lock rounds). */
  if (seg->used_pages == 0 && !spare) segment_release(heap, seg);
  else if (seg->used_pages < seg->page_count) free_queue_add(heap, seg);
  return true;
}

/* A page of `kind` for `heap`: from a segment the heap owns, from an
 * abandoned segment, or from a new segment. NULL + ENOMEM if the OS refuses. */
ebb_page_t *_ebb_segment_page_alloc(ebb_heap_t *heap, ebb_page_kind_t kind, unsigned bin) {
  ebb_assert(kind <= EBB_PAGE_WIDE);
  for (int tries = 0; tries < 4; tries++) {
    if (kind <= EBB_PAGE_MEDIUM && heap->with_free[kind] != NULL) {
      return take_page(heap, heap->with_free[kind], bin);
    }
    if (!adopt_one(heap, kind)) break;
  }
  ebb_segment_t *seg = segment_alloc(heap, kind);
  if (seg == NULL) return NULL;
  return take_page(heap, seg, bin);
}

/* ---- fork ---------------------------------------------------------------------- */
/* In a fork child (global lock held, so the registry is consistent) the
 * other threads are gone, but a thread the child creates may get the same
 * TLS base - the same thread id - as one of them. Their segments are given
 * an id no thread has, so they are never mistaken for local: frees to them
 * become remote frees that nobody collects (the child keeps that memory). */
void _ebb_segment_orphan_others(uintptr_t self) {
  for (ebb_segment_t *seg = _ebb_segment_registry; seg != NULL; seg = seg->all_next) {
    if (seg->kind == EBB_PAGE_LARGE) continue;
    uintptr_t tid = atomic_load_explicit(&seg->thread_id, memory_order_relaxed);
    if (tid == 0 || tid == self) continue;
    clear_local_tags(seg);
    atomic_store_explicit(&seg->thread_id, EBB_THREAD_ORPHAN, memory_order_relaxed);
  }
}

/* A pass asked a heap to clean itself: no page of its owner stays "local
 * and plain", so its frees take the slow path that answers (seize.c). */
void _ebb_segment_clear_tags_locked(uintptr_t thread_id) {
  for (ebb_segment_t *seg = _ebb_segment_registry; seg != NULL; seg = seg->all_next) {
    /* Acquire: pairs with owned_add's release, after the segment was set up. */
    if (atomic_load_explicit(&seg->thread_id, memory_order_acquire) != thread_id || EBB_LOAD(seg->kind) == EBB_PAGE_LARGE)
      continue;
    clear_local_tags(seg);
  }
}

#if EBB_DEBUG >= 3
/* What the dirty count holds for segments (global lock held): the offered
 * bytes of IDLE pages (parked in place offer 0), and the cached segments
 * not yet purged. */
size_t _ebb_segment_dirty_locked(void) {
  size_t dirty = 0;
  for (size_t i = 0; i < cache_count; i++) dirty += cache_dirty(cache[i]);
  for (ebb_segment_t *seg = _ebb_segment_registry; seg != NULL; seg = seg->all_next) {
    if (seg->kind == EBB_PAGE_LARGE) continue;
    for (uint32_t i = 0; i < seg->page_count; i++) {
      const ebb_page_t *page = &seg->pages[i];
      if (atomic_load_explicit(&page->claim, memory_order_acquire) == EBB_CLAIM_IDLE) dirty += page->offered;
    }
  }
  return dirty;
}
#endif

/* ---- statistics (global lock held) --------------------------------------------- */
/* Another thread may own the page: its counters are read racily, which is
 * good enough for a snapshot and cannot fault (the segment is mapped while
 * it is in the registry and we hold the lock). */
/* Free bytes go to free_in_live_pages or free_in_empty_pages by whether
 * the page holds a live block; ebb_stats_get adds them up. */
/* The layer's figures are added beside the totals, not derived from
 * them: the checker's sums (test/stats_check.h) then catch a byte counted
 * in the wrong layer or in none. */
static void page_free_bytes(ebb_stats_t *st, ebb_layer_walk_t *layer, bool live_page, uint64_t bytes) {
  *(live_page ? &st->free_in_live_pages : &st->free_in_empty_pages) += bytes;
  layer->free += bytes;
}

/* An offered page (IDLE) is dirty: its offered bytes, which the budget's
 * count holds, or, parked in place (offered 0), its carved blocks, which
 * it does not hold. Its age runs from the first pass that saw it, the
 * stamp its deadline is measured from (0: no pass has yet). */
static void page_dirty_stats(const ebb_page_t *page, uint64_t in_place_bytes, ebb_stats_t *st,
                             ebb_layer_walk_t *layer, ebb_stats_walk_t *walk) {
  if (atomic_load_explicit(&page->claim, memory_order_relaxed) != EBB_CLAIM_IDLE) return;
  uint64_t offered = __atomic_load_n(&page->offered, __ATOMIC_RELAXED);
  uint64_t bytes = offered != 0 ? offered : in_place_bytes;
  st->dirty += bytes;
  layer->dirty += bytes;
  uint32_t since = atomic_load_explicit(&page->idle_since, memory_order_relaxed);
  int32_t age = since != 0 ? (int32_t)((uint32_t)walk->now_ms - since) : 0; /* < 0: stamped after now_ms */
  if (bytes != 0 && age > 0 && (uint64_t)age > walk->oldest_dirty_ms) walk->oldest_dirty_ms = (uint64_t)age;
}

static void page_stats(const ebb_segment_t *seg, const ebb_page_t *page, ebb_stats_t *st, ebb_layer_walk_t *layer,
                       ebb_stats_walk_t *walk) {
  if (!__atomic_load_n(&page->in_use, __ATOMIC_RELAXED)) {
    size_t dirty = _ebb_page_dirty_bytes(seg, page, 0); /* what its classes' carving left resident */
    if (dirty != 0) page_free_bytes(st, layer, false, dirty);
    page_dirty_stats(page, 0, st, layer, walk);
    return;
  }
  uint64_t used = _ebb_page_used(page);
  uint64_t cap = __atomic_load_n(&page->capacity, __ATOMIC_RELAXED);
  uint64_t purged = __atomic_load_n(&page->purged_blocks, __ATOMIC_RELAXED);
  uint64_t bsize = __atomic_load_n(&page->block_size, __ATOMIC_RELAXED);
  if (used > cap) used = cap;
  if (purged > cap - used) purged = cap - used;
  st->live += used * bsize;
  layer->live += used * bsize;
  layer->blocks += used;
  layer->pages++;
  page_free_bytes(st, layer, used != 0, (cap - used - purged) * bsize);
  page_dirty_stats(page, cap * bsize, st, layer, walk);
  size_t tail = _ebb_page_dirty_bytes(seg, page, cap * bsize); /* dirty, not yet carved again */
  if (tail != 0) page_free_bytes(st, layer, used != 0, tail);
}

/* A cached segment: its resident bytes as the kernel counted them, the
 * header's touched part (up to 3 OS pages) as metadata. */
static void cached_segment_stats(const ebb_segment_t *seg, ebb_stats_t *st) {
  size_t resident = _ebb_cache_resident(seg), header = EBB_OS_PAGE * 3;
  if (header > resident) header = resident;
  st->metadata += header;
  st->segment_cache += resident - header;
}

void _ebb_segment_bin_stats(ebb_bin_stats_t bins[EBB_BIN_MAX + 1]) {
  for (const ebb_segment_t *seg = _ebb_segment_registry; seg != NULL; seg = seg->all_next) {
    if (EBB_LOAD(seg->kind) == EBB_PAGE_LARGE || EBB_LOAD(seg->used_pages) == 0) continue;
    for (uint32_t i = 0, n = EBB_LOAD(seg->page_count); i < n; i++) {
      const ebb_page_t *page = &seg->pages[i];
      unsigned bin = __atomic_load_n(&page->bin, __ATOMIC_RELAXED);
      if (!__atomic_load_n(&page->in_use, __ATOMIC_RELAXED) || bin == 0 || bin > EBB_BIN_MAX) continue;
      uint64_t used = _ebb_page_used(page), cap = __atomic_load_n(&page->capacity, __ATOMIC_RELAXED);
      uint64_t purged = __atomic_load_n(&page->purged_blocks, __ATOMIC_RELAXED);
      if (used > cap) used = cap;
      if (purged > cap - used) purged = cap - used;
      bins[bin].live_blocks += used;
      bins[bin].free_blocks += cap - used - purged;
    }
  }
}

/* The cache's segments and their dirty bytes as the budget counts them
 * (cache_dirty), read from the cache itself: a segment on its way in or
 * out is in the registry but not here, and neither in the count. */
static void segment_cache_stats_locked(ebb_stats_t *st, ebb_stats_walk_t *walk) {
  for (size_t i = 0; i < cache_count; i++) {
    const ebb_segment_t *seg = cache[i];
    size_t dirty = cache_dirty(seg);
    walk->segment_cache_count++;
    walk->segment_cache_dirty += dirty;
    st->dirty += dirty;
    uint64_t age = walk->now_ms > seg->cached_since ? walk->now_ms - seg->cached_since : 0;
    if (dirty != 0 && age > walk->oldest_dirty_ms) walk->oldest_dirty_ms = age;
  }
}

void _ebb_segment_stats(ebb_stats_t *st, ebb_stats_walk_t *walk) {
  segment_cache_stats_locked(st, walk);
  for (ebb_segment_t *seg = _ebb_segment_registry; seg != NULL; seg = seg->all_next) {
    size_t size = EBB_LOAD(seg->size);
    ebb_page_kind_t kind = EBB_LOAD(seg->kind);
    st->mapped += size;
    if (kind == EBB_PAGE_LARGE) {
      size_t bytes = size - EBB_LARGE_HEADER_SIZE;
      st->metadata += EBB_LARGE_HEADER_SIZE;
      if (EBB_LOAD(seg->cached_since) != 0) {
        /* Counted here, not when the block was cached: a mincore per free
         * cost bench bigchurn 7% of its time. A cached block cannot be
         * unmapped or moved while the global lock is held (both leave the
         * registry first); one cut in place meanwhile counts as resident. */
        size_t resident = _ebb_prim_resident(seg, size); /* the header page is resident: metadata */
        st->large_cache += resident > EBB_LARGE_HEADER_SIZE ? resident - EBB_LARGE_HEADER_SIZE : 0;
      } else {
        st->live += bytes;
        st->large_live += bytes;
        st->large_count++;
      }
      continue;
    }
    st->segments_count++;
    bool cached = atomic_load_explicit(&seg->thread_id, memory_order_relaxed) == 0 && EBB_LOAD(seg->heap) == NULL &&
                  EBB_LOAD(seg->used_pages) == 0;
    if (cached) {
      cached_segment_stats(seg, st);
      continue;
    }
    st->metadata += EBB_OS_PAGE * 3; /* the header's touched part */
    ebb_layer_walk_t *layer = &walk->kinds[kind];
    for (uint32_t i = 0, n = EBB_LOAD(seg->page_count); i < n; i++) page_stats(seg, &seg->pages[i], st, layer, walk);
  }
  st->abandoned_count = _ebb_segment_abandoned_count;
}

/* Bytes of every registered mapping (segments, cached ones included, and
 * large blocks) that huge pages back, as smaps' AnonHugePages counts them:
 * one PAGEMAP_SCAN per mapping, which walks its page tables only (a 4 MiB
 * segment is two PMD entries). 0 if the kernel cannot say. */
uint64_t _ebb_segment_huge_bytes_locked(int pagemap) {
  uint64_t bytes = 0;
  for (const ebb_segment_t *seg = _ebb_segment_registry; seg != NULL; seg = seg->all_next) {
    uint64_t huge = _ebb_prim_huge_resident(pagemap, seg, EBB_LOAD(seg->size));
    if (huge == UINT64_MAX) return 0;
    bytes += huge;
  }
  return bytes;
}
