/* segment.c - segments: 4 MiB aligned regions cut into pages of one kind.
 *
 * Lists, and who may touch them:
 *  - heap->segments: every segment a heap owns (owner thread only).
 *  - heap->with_free[kind]: owned small/medium segments with a free page,
 *    in no particular order (owner thread only).
 *  - abandoned: segments of exited threads that still hold live blocks,
 *    LIFO (global lock). A thread that needs a page adopts one.
 *  - cache: whole free segments kept for reuse, at most EBB_SEGMENT_CACHE
 *    (global lock).
 *  - registry: every mapped segment, for statistics (global lock).
 * A segment's map byte is set while it is owned or abandoned, clear while
 * cached or unmapped. */
#include <string.h>

#include "internal.h"
#include "prim.h"

static ebb_segment_t *abandoned;       /* global lock */
static size_t abandoned_count;         /* global lock */
static ebb_segment_t *cache[64];       /* global lock */
static size_t cache_count;             /* global lock */
static ebb_segment_t *registry;        /* global lock */

/* ---- registry ---------------------------------------------------------- */
void _ebb_segment_registry_add(ebb_segment_t *seg) {
  _ebb_lock();
  seg->all_prev = NULL;
  seg->all_next = registry;
  if (registry) registry->all_prev = seg;
  registry = seg;
  _ebb_unlock();
}

void _ebb_segment_registry_remove(ebb_segment_t *seg) {
  _ebb_lock();
  if (seg->all_prev) seg->all_prev->all_next = seg->all_next;
  else registry = seg->all_next;
  if (seg->all_next) seg->all_next->all_prev = seg->all_prev;
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
  size_t psize = (size_t)1 << seg->page_shift;
  uint8_t *p = (uint8_t *)seg + (size_t)page->index * psize;
  if (page->index == 0) {
    p += EBB_SEGMENT_HEADER_SIZE;
    psize -= EBB_SEGMENT_HEADER_SIZE;
  }
  if (start) *start = p;
  return psize;
}

static void segment_init(ebb_segment_t *seg, ebb_page_kind_t kind, bool fresh) {
  uint32_t shift = kind_shift(kind);
  uint32_t count = (uint32_t)(EBB_SEGMENT_SIZE >> shift);
  /* Not a memset of the whole header: a cached segment stays on the
   * registry, whose links other threads may rewrite under the lock. */
  if (!fresh) {
    memset(seg->pages, 0, count * sizeof(ebb_page_t));
    seg->used_pages = 0;
    seg->heap = NULL;
    seg->next = seg->prev = seg->free_next = seg->free_prev = NULL;
    seg->in_free_queue = false;
  }
  seg->kind = kind;
  seg->page_shift = shift;
  seg->page_count = count;
  seg->size = EBB_SEGMENT_SIZE;
  seg->is_fresh = fresh;
  for (uint32_t i = 0; i < count; i++) {
    seg->pages[i].index = (uint16_t)i;
    seg->pages[i].is_fresh = fresh;
  }
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
  seg->heap = heap;
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

/* ---- getting and releasing whole segments --------------------------------- */
static ebb_segment_t *cache_pop(void) {
  ebb_segment_t *seg = NULL;
  _ebb_lock();
  if (cache_count > 0) seg = cache[--cache_count];
  _ebb_unlock();
  return seg;
}

static bool cache_push(ebb_segment_t *seg) {
  bool kept = false;
  _ebb_lock();
  size_t limit = (size_t)_ebb_option(EBB_OPT_SEGMENT_CACHE);
  if (cache_count < limit && cache_count < sizeof(cache) / sizeof(cache[0])) {
    cache[cache_count++] = seg;
    kept = true;
  }
  _ebb_unlock();
  return kept;
}

static ebb_segment_t *segment_alloc(ebb_heap_t *heap, ebb_page_kind_t kind) {
  ebb_segment_t *seg = cache_pop();
  bool fresh = (seg == NULL);
  if (fresh) {
    seg = _ebb_os_map_aligned(EBB_SEGMENT_SIZE, EBB_SEGMENT_SIZE, 0);
    if (seg == NULL) return NULL;
  }
  segment_init(seg, kind, fresh);
  if (fresh) _ebb_segment_registry_add(seg);
  _ebb_os_map_set(seg, EBB_MAP_SEGMENT);
  owned_add(heap, seg);
  return seg;
}

static void segment_free(ebb_heap_t *heap, ebb_segment_t *seg) {
  ebb_assert(seg->used_pages == 0);
  owned_remove(heap, seg);
  atomic_store_explicit(&seg->thread_id, 0, memory_order_relaxed);
  _ebb_os_map_set(seg, EBB_MAP_NONE);
  if (cache_push(seg)) return;
  _ebb_segment_registry_remove(seg);
  _ebb_os_unmap(seg, EBB_SEGMENT_SIZE);
}

/* Empties the segment cache; returns the bytes given back. */
size_t _ebb_segment_trim_cache(void) {
  size_t freed = 0;
  for (ebb_segment_t *seg; (seg = cache_pop()) != NULL;) {
    _ebb_segment_registry_remove(seg);
    _ebb_os_unmap(seg, EBB_SEGMENT_SIZE);
    freed += EBB_SEGMENT_SIZE;
  }
  return freed;
}

/* ---- abandon and adopt ------------------------------------------------------ */
/* Called by an exiting thread after its pages were collected and their
 * delayed state set to NEVER: hands every segment that still holds live
 * blocks to the abandoned list, frees the rest. */
void _ebb_segment_abandon_all(ebb_heap_t *heap) {
  while (heap->segments != NULL) {
    ebb_segment_t *seg = heap->segments;
    if (seg->used_pages == 0) {
      segment_free(heap, seg);
      continue;
    }
    owned_remove(heap, seg);
    seg->heap = NULL;
    atomic_store_explicit(&seg->thread_id, 0, memory_order_release);
    _ebb_lock();
    seg->next = abandoned;
    abandoned = seg;
    abandoned_count++;
    _ebb_unlock();
  }
}

static ebb_segment_t *abandoned_pop(void) {
  if (__atomic_load_n(&abandoned_count, __ATOMIC_RELAXED) == 0) return NULL;
  _ebb_lock();
  ebb_segment_t *seg = abandoned;
  if (seg) {
    abandoned = seg->next;
    abandoned_count--;
  }
  _ebb_unlock();
  return seg;
}

/* Takes over one abandoned page: its blocks freed by other threads since
 * the owner left are collected; an empty page goes back to the segment. */
static void adopt_page(ebb_heap_t *heap, ebb_page_t *page) {
  atomic_store_explicit(&page->heap, heap, memory_order_release);
  _ebb_page_set_delayed(page, EBB_NO_DELAYED, true);
  _ebb_page_collect(page);
  page->in_full = 0;
  if (page->used == 0) {
    _ebb_segment_page_free(heap, page);
    return;
  }
  _ebb_queue_push_back(heap, page->bin, page);
}

/* Adopts one abandoned segment. True if one was found. */
static bool adopt_one(ebb_heap_t *heap) {
  ebb_segment_t *seg = abandoned_pop();
  if (seg == NULL) return false;
  seg->next = seg->prev = NULL;
  seg->in_free_queue = false;
  owned_add(heap, seg);
  uint32_t count = seg->page_count, remaining = seg->used_pages;
  for (uint32_t i = 0; i < count && remaining > 0; i++) {
    if (!seg->pages[i].in_use) continue;
    remaining--;
    /* The last adopt_page may free the segment: touch nothing after it. */
    adopt_page(heap, &seg->pages[i]);
  }
  return true;
}

/* ---- pages ------------------------------------------------------------------ */
static ebb_page_t *take_page(ebb_heap_t *heap, ebb_segment_t *seg) {
  for (uint32_t i = 0; i < seg->page_count; i++) {
    ebb_page_t *page = &seg->pages[i];
    if (page->in_use) continue;
    page->in_use = 1;
    if (++seg->used_pages == seg->page_count) free_queue_remove(heap, seg);
    return page;
  }
  _ebb_fatal("segment on the free queue has no free page");
}

/* A page of `kind` for `heap`: from a segment the heap owns, from an
 * abandoned segment, or from a new segment. NULL + ENOMEM if the OS refuses. */
ebb_page_t *_ebb_segment_page_alloc(ebb_heap_t *heap, ebb_page_kind_t kind) {
  ebb_assert(kind <= EBB_PAGE_WIDE);
  for (int tries = 0; tries < 4; tries++) {
    if (kind <= EBB_PAGE_MEDIUM && heap->with_free[kind] != NULL) {
      return take_page(heap, heap->with_free[kind]);
    }
    if (!adopt_one(heap)) break;
  }
  ebb_segment_t *seg = segment_alloc(heap, kind);
  if (seg == NULL) return NULL;
  return take_page(heap, seg);
}

/* Returns an empty page to its segment; frees the segment when it was the
 * last page in use. */
void _ebb_segment_page_free(ebb_heap_t *heap, ebb_page_t *page) {
  ebb_segment_t *seg = _ebb_segment_of(page);
  ebb_assert(page->in_use && page->used == 0);
  page->in_use = 0;
  page->is_fresh = 0;
  page->capacity = 0;
  page->span = 0;
  page->free = page->local_free = NULL;
  atomic_store_explicit(&page->heap, NULL, memory_order_relaxed);
  seg->used_pages--;
  if (seg->used_pages == 0) {
    segment_free(heap, seg);
    return;
  }
  free_queue_add(heap, seg);
}

/* ---- fork ---------------------------------------------------------------------- */
/* In a fork child (global lock held, so the registry is consistent) the
 * other threads are gone, but a thread the child creates may get the same
 * TLS base - the same thread id - as one of them. Their segments are given
 * an id no thread has, so they are never mistaken for local: frees to them
 * become remote frees that nobody collects (the child keeps that memory). */
void _ebb_segment_orphan_others(uintptr_t self) {
  for (ebb_segment_t *seg = registry; seg != NULL; seg = seg->all_next) {
    if (seg->kind == EBB_PAGE_LARGE) continue;
    uintptr_t tid = atomic_load_explicit(&seg->thread_id, memory_order_relaxed);
    if (tid != 0 && tid != self) atomic_store_explicit(&seg->thread_id, EBB_THREAD_ORPHAN, memory_order_relaxed);
  }
}

/* ---- statistics (global lock held) --------------------------------------------- */
static void page_stats(const ebb_segment_t *seg, const ebb_page_t *page, ebb_stats_t *st) {
  if (!page->in_use) return;
  /* Another thread may own the page: its counters are read racily, which
   * is good enough for a snapshot and cannot fault (the segment is mapped
   * while it is in the registry and we hold the lock). */
  uint32_t used = __atomic_load_n(&page->used, __ATOMIC_RELAXED);
  uint32_t cap = __atomic_load_n(&page->capacity, __ATOMIC_RELAXED);
  size_t bsize = __atomic_load_n(&page->block_size, __ATOMIC_RELAXED);
  if (used > cap) used = cap;
  st->live += (uint64_t)used * bsize;
  st->free_in_pages += (uint64_t)(cap - used) * bsize;
  (void)seg;
}

void _ebb_segment_stats(ebb_stats_t *st) {
  for (ebb_segment_t *seg = registry; seg != NULL; seg = seg->all_next) {
    st->segments_count++;
    st->mapped += seg->size;
    if (seg->kind == EBB_PAGE_LARGE) {
      st->large_count++;
      st->large_live += seg->size - EBB_LARGE_HEADER_SIZE;
      st->live += seg->size - EBB_LARGE_HEADER_SIZE;
      st->metadata += EBB_LARGE_HEADER_SIZE;
      continue;
    }
    st->metadata += EBB_OS_PAGE * 2; /* the header's touched part */
    for (uint32_t i = 0; i < seg->page_count; i++) page_stats(seg, &seg->pages[i], st);
  }
  st->abandoned_count = abandoned_count;
}
