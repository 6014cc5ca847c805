/* SPDX-License-Identifier: MIT */
/* page.c - pages of one size class and the heap's page queues.
 *
 * A page has three free lists:
 *   free        blocks to allocate from (the page's holder: types.h)
 *   local_free  blocks the owner freed (the holder); moved to `free` when
 *               `free` runs dry, so allocation and free never touch the
 *               same list head
 *   thread_free blocks other threads freed, pushed with one CAS; the owner
 *               takes the whole list with one CAS, its length with it
 *               (types.h), without walking it
 * The low two bits of thread_free hold the delayed-free state (types.h): a
 * full page is not on any queue the allocator looks at, so while it is
 * full, remote frees go to the heap's delayed_free list instead, which the
 * owner drains on its slow path - that is how a full page comes back, once
 * a thirty-second of its blocks are free (full_page_stays).
 *
 * Queues: heap->queues[bin] holds the pages of a size class that may have
 * free blocks, most recently useful first; heap->queues[EBB_BIN_FULL] holds
 * full pages. heap->direct[s] points to the first page of the queue that
 * serves requests of s bytes (or to the empty page), for s <= EBB_DIRECT_MAX.
 *
 * Parking: a page the owner stops allocating from - empty, or sparse (at
 * most a quarter of its blocks live) and not at the head of its queue -
 * leaves the queue for heap->parked[bin] and is offered for purging
 * (claim IDLE, see types.h). While parked, the owner's own frees to it are
 * pushed onto thread_free like remote frees, so a purging thread that
 * claimed it owns its lists. The owner takes it back (claim OWNED) when the
 * bin runs out of pages with free blocks: fuller pages are used first, so
 * sparse ones drain. */
#include <string.h>

#include "internal.h"
#include "prim.h"

/* ---- delayed-free state ------------------------------------------------- */
static ebb_delayed_t tf_state(uintptr_t tf) { return (ebb_delayed_t)(tf & EBB_TF_STATE_MASK); }
static ebb_block_t *tf_block(uintptr_t tf) { return (ebb_block_t *)(tf & EBB_TF_BLOCK_MASK); }
static uint32_t tf_count(uintptr_t tf) { return (uint32_t)(tf >> EBB_TF_COUNT_SHIFT); }

/* Sets the page's delayed state. Waits while a remote thread is in the
 * middle of a delayed free (it reads page->heap). NEVER is sticky unless
 * override_never. */
void _ebb_page_set_delayed(ebb_page_t *page, ebb_delayed_t state, bool override_never) {
  uintptr_t tf = atomic_load_explicit(&page->thread_free, memory_order_acquire);
  for (;;) {
    ebb_delayed_t old = tf_state(tf);
    if (old == EBB_DELAYED_FREEING) {
      _ebb_prim_yield();
      tf = atomic_load_explicit(&page->thread_free, memory_order_acquire);
      continue;
    }
    if (old == state || (old == EBB_NEVER_DELAYED && !override_never)) return;
    uintptr_t desired = (tf & ~EBB_TF_STATE_MASK) | (uintptr_t)state;
    if (atomic_compare_exchange_weak_explicit(&page->thread_free, &tf, desired, memory_order_acq_rel,
                                              memory_order_acquire))
      return;
  }
}

/* ---- collecting freed blocks ---------------------------------------------- */
static ebb_noinline _Noreturn void list_loops(const ebb_page_t *page, const ebb_block_t *head) {
  _ebb_message("ebb: error: heap corruption: the list of blocks freed by other threads from %p loops, in a page "
               "of %u-byte blocks (a write after free?)\n",
               (const void *)head, page->block_size);
  _ebb_prim_abort();
}

/* Secure mode: checks each block of a list of remote frees against the
 * bitmap and each link before it is followed. A block that was not live
 * (a double free, reported) ends the list there: what follows it is
 * dropped, so that nothing reaches `free` twice. Returns how many blocks
 * are left from *head to *tail. */
static ebb_noinline uint32_t secure_walk(ebb_page_t *page, ebb_block_t **head, ebb_block_t **tail) {
  uint32_t n = 0;
  ebb_block_t *last = NULL;
  for (ebb_block_t *b = *head; b != NULL; b = b->next) {
    if (!_ebb_secure_on_free(page, b)) break;
    _ebb_secure_check_link(page, b, b->next);
    last = b;
    n++;
  }
  if (last == NULL) return 0;
  last->next = NULL;
  *tail = last;
  return n;
}

/* Blocks on a list of remote frees from `head`; aborts if it loops. */
static uint32_t list_length(const ebb_page_t *page, const ebb_block_t *head, const ebb_block_t **tail) {
  uint32_t n = 1;
  while (head->next != NULL) {
    head = head->next;
    /* A free block is on one list once (the freed mark sees to it): a
     * longer list loops, and only a write into freed memory makes one. */
    if (ebb_unlikely(++n > page->capacity)) list_loops(page, head);
  }
  *tail = head;
  return n;
}

/* Takes the blocks other threads freed onto `free`. Returns how many. The
 * count comes with the list (types.h): onto an empty `free` the list goes
 * as it is, unwalked; the blocks are touched when they are handed out. */
static uint32_t collect_thread_free(ebb_page_t *page) {
  uintptr_t tf = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
  do {
    if (tf_block(tf) == NULL) return 0;
  } while (!atomic_compare_exchange_weak_explicit(&page->thread_free, &tf, tf & EBB_TF_STATE_MASK,
                                                  memory_order_acquire, memory_order_relaxed));
  ebb_block_t *head = tf_block(tf), *tail = NULL;
  uint32_t n = tf_count(tf);
  if (ebb_unlikely(_ebb_secure)) {
    n = secure_walk(page, &head, &tail);
    if (n == 0) return 0;
  } else if (page->free != NULL || EBB_DEBUG >= 3) {
    const ebb_block_t *last;
    uint32_t walked = list_length(page, head, &last);
    ebb_assert(walked == n);
    tail = (ebb_block_t *)last;
  }
  if (page->free != NULL) tail->next = page->free;
  page->free = head;
  ebb_assert(_ebb_page_used(page) >= n);
  page->margin -= (int32_t)n;
  page->free_is_zero = 0;
  return n;
}

/* Moves local and remote frees (and a parked page's stash) onto `free`:
 * the owner's own frees in front (they are the likeliest to be in its
 * cache), the remote ones taken first so that they need no walk. */
void _ebb_page_collect(ebb_page_t *page) {
  if (page->stash != NULL) {
    ebb_assert(page->free == NULL);
    page->free = page->stash;
    page->stash = NULL;
  }
  collect_thread_free(page);
  if (page->local_free != NULL) {
    if (page->free != NULL) {
      ebb_block_t *tail = page->local_free;
      while (tail->next != NULL) tail = tail->next;
      tail->next = page->free;
    }
    page->free = page->local_free;
    page->local_free = NULL;
    page->free_is_zero = 0;
  }
}

/* ---- carving --------------------------------------------------------------- */
/* Carve at most this many bytes of new blocks at a time, so that a page's
 * memory is touched only as it is needed. */
#define EBB_EXTEND_BYTES (4 * EBB_KiB)

/* True if n blocks from `first` read as zero but for their links
 * (EBB_DEBUG 3: blocks carved from a "fresh" page must). */
static inline bool blocks_are_zero(const uint8_t *first, uint32_t n, size_t bsize) {
  for (uint32_t k = 0; k < n; k++) {
    const uint8_t *b = first + (size_t)k * bsize;
    for (size_t i = sizeof(ebb_block_t); i < bsize; i++) {
      if (b[i] != 0) return false;
    }
  }
  return true;
}

/* Carves more blocks onto an empty `free` list. False if the page is full. */
bool _ebb_page_extend(ebb_page_t *page) {
  ebb_assert(page->free == NULL);
  if (page->capacity >= page->reserved) return false;
  uint32_t n = (uint32_t)(EBB_EXTEND_BYTES / page->block_size);
  if (n == 0) n = 1;
  if (n > page->reserved - page->capacity) n = page->reserved - page->capacity;
  size_t bsize = page->block_size;
  uint8_t *first = page->start + (size_t)page->capacity * bsize;
  ebb_block_t *b = (ebb_block_t *)first;
  for (uint32_t i = 1; i < n; i++) {
    ebb_block_t *next = (ebb_block_t *)((uint8_t *)b + bsize);
    b->next = next;
    b = next;
  }
  b->next = NULL;
  /* New blocks are live-or-free, never "purged": forget any mark. */
  if (page->purged_blocks > 0) _ebb_segment_clear_purged(_ebb_segment_of(page), first, (size_t)n * bsize);
  page->free = (ebb_block_t *)first;
  EBB_STORE(page->capacity, page->capacity + n); /* a pass estimating in-place bytes reads it */
  EBB_STORE(page->span, (size_t)page->capacity * bsize);
  size_t touched = (page->span + EBB_OS_PAGE - 1) / EBB_OS_PAGE;
  if (touched > page->touched_os) EBB_STORE(page->touched_os, (uint16_t)touched);
  page->free_is_zero = page->is_fresh;
  ebb_assert_expensive(!page->free_is_zero || blocks_are_zero(first, n, bsize));
  return true;
}

/* A block back in use: the OS pages wholly inside it (none unless it is
 * bigger than an OS page) hold no other block's start, and a purge marked
 * them too; unmarked, the next purge sees them dirty again. Any mark on
 * the OS page where it starts, or where the next block starts, is that
 * OS page's own business. */
static void forget_inner_marks(ebb_segment_t *seg, const uint8_t *block, size_t bsize) {
  size_t off = (size_t)(block - (uint8_t *)seg);
  size_t first = (off + EBB_OS_PAGE - 1) / EBB_OS_PAGE, end = (off + bsize) / EBB_OS_PAGE;
  if (first < end) _ebb_segment_clear_purged(seg, (uint8_t *)seg + first * EBB_OS_PAGE, (end - first) * EBB_OS_PAGE);
}

/* Puts back on `free` the blocks that start in the first purged OS page
 * of this page that has any (a purge took them off the lists: their
 * links were in purged memory). False if there are none. */
bool _ebb_page_recarve(ebb_page_t *page) {
  ebb_segment_t *seg = _ebb_segment_of(page);
  size_t bsize = page->block_size;
  size_t first_os = (size_t)(page->start - (uint8_t *)seg) / EBB_OS_PAGE;
  size_t end_os = (size_t)(page->start + page->span - (uint8_t *)seg + EBB_OS_PAGE - 1) / EBB_OS_PAGE;
  for (size_t os = first_os; os < end_os && page->purged_blocks > 0; os++) {
    uint64_t bit = (uint64_t)1 << (os % 64);
    if (!(atomic_load_explicit(&seg->purged_os[os / 64], memory_order_relaxed) & bit)) continue;
    atomic_fetch_and_explicit(&seg->purged_os[os / 64], ~bit, memory_order_relaxed);
    size_t lo = os * EBB_OS_PAGE - (size_t)(page->start - (uint8_t *)seg); /* page starts are OS-aligned */
    size_t hi = (os + 1) * EBB_OS_PAGE - (size_t)(page->start - (uint8_t *)seg);
    size_t i = (lo + bsize - 1) / bsize, end = (hi + bsize - 1) / bsize;
    if (end > page->capacity) end = page->capacity;
    for (; i < end; i++) {
      ebb_block_t *b = (ebb_block_t *)(page->start + i * bsize);
      b->next = page->free;
      page->free = b;
      page->purged_blocks--;
      forget_inner_marks(seg, (uint8_t *)b, bsize);
    }
    if (page->free != NULL) return true;
  }
  return page->free != NULL;
}

/* Sets up an empty page for size class `bin`. */
void _ebb_page_init(ebb_page_t *page, ebb_heap_t *heap, unsigned bin) {
  page->stash = NULL;
  ebb_segment_t *seg = _ebb_segment_of(page);
  size_t bsize = _ebb_bin_size(bin);
  uint8_t *start;
  size_t psize = _ebb_segment_page_size(seg, page, &start);
  page->start = start;
  EBB_STORE(page->block_size, (uint32_t)bsize);
  page->div_magic = _ebb_div_magic(bsize);
  ebb_assert(psize / bsize <= UINT16_MAX);
  page->reserved = (uint16_t)(psize / bsize);
  EBB_STORE(page->capacity, 0);
  EBB_STORE(page->span, 0);
  page->margin = 0;
  page->park_at = 0;
  page->purged_blocks = 0;
  page->bin = (uint8_t)bin;
  page->free = page->local_free = NULL;
  _ebb_page_set_flags(page, 0);
  page->free_is_zero = 0;
  _ebb_segment_clear_purged(seg, start, psize);
  if (ebb_unlikely(_ebb_secure)) _ebb_secure_page_init(page, psize);
  atomic_store_explicit(&page->heap, heap, memory_order_release);
  atomic_store_explicit(&page->thread_free, (uintptr_t)EBB_NO_DELAYED, memory_order_release);
  _ebb_page_extend(page);
}

/* Resets a page whose blocks are all free and whose memory was purged, so
 * that it carves again from zeroed memory. Called by whoever holds it. */
void _ebb_page_reset_purged(ebb_page_t *page) {
  ebb_segment_t *seg = _ebb_segment_of(page);
  /* Parked in place, `free` is NULL already and the owner's malloc fast
   * path may be reading it: no store. */
  if (page->free != NULL) page->free = NULL;
  page->local_free = page->stash = NULL;
  EBB_STORE(page->capacity, 0);
  EBB_STORE(page->span, 0);
  page->purged_blocks = 0;
  _ebb_page_set_fresh(page, _ebb_purge_zeroes());
  page->free_is_zero = 0;
  _ebb_segment_clear_purged(seg, page->start, (size_t)page->reserved * page->block_size);
}

/* ---- queues ------------------------------------------------------------------- */
/* Points heap->direct at the first page of queue `qi` for every request
 * size the bin serves. */
/* First and last request size each direct bin serves (bins up to 1 KiB). */
static uint16_t direct_lo[EBB_BIN_MAX + 1], direct_hi[EBB_BIN_MAX + 1]; /* set at initialisation, then read-only */

void _ebb_page_init_tables(void) {
  for (unsigned bin = 1; bin <= EBB_BIN_MAX && _ebb_bin_size(bin) <= EBB_DIRECT_MAX; bin++) {
    direct_lo[bin] = (uint16_t)(bin == 1 ? 0 : _ebb_bin_size(bin - 1) + 1);
    direct_hi[bin] = (uint16_t)_ebb_bin_size(bin);
  }
}

static void direct_update(ebb_heap_t *heap, unsigned qi) {
  if (qi > EBB_BIN_MAX || direct_hi[qi] == 0) return;
  /* Secure mode: every allocation through the slow path (secure.c). */
  ebb_page_t *page = heap->queues[qi].first && !_ebb_seizing && !_ebb_secure ? heap->queues[qi].first : &_ebb_page_empty;
  for (size_t s = direct_lo[qi]; s <= direct_hi[qi]; s++) EBB_STORE(heap->direct[s], page);
}

/* A page at the head of its queue is being allocated from: only an empty
 * page leaves it. Any other page leaves when it becomes sparse. (The purge
 * passes reach the free memory of both once the thread is quiet.) */
static uint32_t sparse_at(const ebb_page_t *page) {
  /* A quarter of the blocks carved, not of those that fit: a page that
   * left the head before it was carved to its end (another page came back
   * to the front) is not sparse while its few blocks are in use (bench
   * larson parked pages of 28 of 30 blocks in use, for 768 B to offer, and
   * took them back soon after). Never 0, so only a head page has park_at
   * 0; a page's capacity changes only while it is at the head, or while
   * a purge holds the head parked in place and resets it to 0 (so the
   * owner reads it relaxed when a push moves that head back: the
   * threshold it computes then is replaced when the page is next the
   * head). */
  uint32_t capacity = EBB_LOAD(page->capacity);
  return capacity >= 8 ? capacity / 4 : 1;
}

/* A page in use also leaves the free fast path after every EBB_TELL_BYTES
 * of net frees (at least one block): the slow path it takes tells the
 * purge passes that its thread was active (seize.c), so that the thread's
 * pages are reached once it goes quiet even if nothing else in its work
 * needed a slow path. Returns the park_at that does this on top of `at`,
 * the park threshold proper. */
#define EBB_TELL_BYTES (64 * EBB_KiB)
static uint32_t park_at_for(const ebb_page_t *page, uint32_t at) {
  uint32_t used = _ebb_page_used(page);
  uint32_t step = page->block_size >= EBB_TELL_BYTES ? 1 : (uint32_t)(EBB_TELL_BYTES / page->block_size);
  return used > at + step ? used - step : at;
}

static void set_head(ebb_heap_t *heap, unsigned qi) {
  ebb_page_t *first = heap->queues[qi].first;
  if (first != NULL) {
    first->back_from_full = 0;
    _ebb_page_set_park_at(first, park_at_for(first, 0));
  }
  direct_update(heap, qi);
}

void _ebb_queue_push_front(ebb_heap_t *heap, unsigned qi, ebb_page_t *page) {
  ebb_page_queue_t *q = &heap->queues[qi];
  page->prev = NULL;
  page->next = q->first;
  if (q->first) {
    q->first->prev = page;
    _ebb_page_set_park_at(q->first, park_at_for(q->first, sparse_at(q->first)));
  } else {
    q->last = page;
  }
  q->first = page;
  set_head(heap, qi);
}

void _ebb_queue_push_back(ebb_heap_t *heap, unsigned qi, ebb_page_t *page) {
  ebb_page_queue_t *q = &heap->queues[qi];
  page->next = NULL;
  page->prev = q->last;
  _ebb_page_set_park_at(page, park_at_for(page, sparse_at(page)));
  if (q->last) q->last->next = page;
  else q->first = page;
  q->last = page;
  if (q->first == page) set_head(heap, qi);
}

void _ebb_queue_remove(ebb_heap_t *heap, unsigned qi, ebb_page_t *page) {
  ebb_page_queue_t *q = &heap->queues[qi];
  bool was_first = (q->first == page);
  if (page->prev) page->prev->next = page->next;
  else q->first = page->next;
  if (page->next) page->next->prev = page->prev;
  else q->last = page->prev;
  page->next = page->prev = NULL;
  if (was_first) set_head(heap, qi);
}

/* After a pass asked for the heap (seize.c): the direct table and the
 * local tags as the queues say. */
void _ebb_page_fast_paths_restore(ebb_heap_t *heap) {
  for (unsigned bin = 1; bin <= EBB_BIN_MAX; bin++) {
    direct_update(heap, bin);
    for (ebb_page_t *page = heap->queues[bin].first; page != NULL; page = page->next)
      _ebb_page_set_flags(page, page->flags);
  }
}

/* ---- full pages ------------------------------------------------------------------ */
/* Moves a page with nothing free to the full queue. From now on remote
 * frees to it go to heap->delayed_free. */
/* Returns false, leaving the page at the front of its queue, if a remote
 * free slipped onto thread_free before the state changed. */
bool _ebb_page_to_full(ebb_heap_t *heap, ebb_page_t *page) {
  ebb_assert(page->flags == 0);
  _ebb_queue_remove(heap, page->bin, page);
  _ebb_queue_push_back(heap, EBB_BIN_FULL, page);
  _ebb_page_set_flags(page, EBB_PAGE_IN_FULL);
  _ebb_page_set_delayed(page, EBB_USE_DELAYED, false);
  if (tf_block(atomic_load_explicit(&page->thread_free, memory_order_acquire)) == NULL) return true;
  _ebb_page_unfull(heap, page);
  return false;
}

/* Brings a full page back to its size class queue: at the front (it is
 * allocated from next) or at the back. */
static void unfull_to(ebb_heap_t *heap, ebb_page_t *page, bool front) {
  ebb_assert(page->flags == EBB_PAGE_IN_FULL);
  /* Blocks that raced onto thread_free before USE_DELAYED was set are
   * collected when the page is next used; no remote free is lost. */
  _ebb_page_set_delayed(page, EBB_NO_DELAYED, false);
  _ebb_queue_remove(heap, EBB_BIN_FULL, page);
  _ebb_page_set_flags(page, 0);
  if (front) {
    _ebb_queue_push_front(heap, page->bin, page);
  } else {
    _ebb_queue_push_back(heap, page->bin, page);
    page->back_from_full = heap->queues[page->bin].first != page;
  }
}

/* A full page took blocks back (remote or delayed frees, collected). */
void _ebb_page_unfull(ebb_heap_t *heap, ebb_page_t *page) { unfull_to(heap, page, true); }

/* ---- finding a page with a free block ------------------------------------------------ */
/* Makes `page` able to allocate from blocks it has: collects its frees. */
static bool page_make_ready_freed(ebb_page_t *page) {
  if (page->free != NULL) return true;
  _ebb_page_collect(page);
  return page->free != NULL;
}

/* True if the page could carve blocks: purged ones, or memory never used. */
static bool page_can_carve(const ebb_page_t *page) {
  return page->purged_blocks > 0 || page->capacity < page->reserved;
}

/* Makes `page` able to allocate: collects its frees, or carves more. */
static bool page_make_ready(ebb_page_t *page) {
  if (page_make_ready_freed(page)) return true;
  if (page->purged_blocks > 0 && _ebb_page_recarve(page)) return true;
  return _ebb_page_extend(page);
}

/* Puts `page` at the head of its queue if it is not there. */
static void queue_to_front(ebb_heap_t *heap, unsigned bin, ebb_page_t *page) {
  if (page == heap->queues[bin].first) return;
  _ebb_queue_remove(heap, bin, page);
  _ebb_queue_push_front(heap, bin, page);
}

static ebb_page_t *page_fresh(ebb_heap_t *heap, unsigned bin) {
  size_t bsize = _ebb_bin_size(bin);
  ebb_page_kind_t kind = bsize <= EBB_SMALL_OBJ_MAX    ? EBB_PAGE_SMALL
                         : bsize <= EBB_MEDIUM_OBJ_MAX ? EBB_PAGE_MEDIUM
                                                       : EBB_PAGE_WIDE;
  ebb_page_t *page = _ebb_segment_page_alloc(heap, kind, bin);
  if (page == NULL) return NULL;
  _ebb_page_init(page, heap, bin);
  _ebb_queue_push_front(heap, bin, page);
  return page;
}

/* The page to allocate a block of class `bin` from, first in its queue;
 * NULL if out of memory. Blocks freed in the queue's pages come before
 * carving (memory a page never used, or purged, costs RSS: bench waves'
 * peak was 2% higher when the head carved while pages queued behind it,
 * back from the full queue, held free blocks). Pages found full on the
 * way move to the full queue, so each is skipped once. */
#define EBB_FIND_PAST_CARVE 8 /* a page that can carve waits for at most this many more pages' frees */
ebb_page_t *_ebb_page_find_free(ebb_heap_t *heap, unsigned bin) {
  ebb_page_queue_t *q = &heap->queues[bin];
  ebb_page_t *page = q->first, *can_carve = NULL;
  unsigned looked_past = 0; /* pages looked at since can_carve was found */
  while (page != NULL && looked_past < EBB_FIND_PAST_CARVE) {
    ebb_page_t *next = page->next;
    if (page->flags & EBB_PAGE_PARKED) _ebb_page_take_back(page);
    ebb_assert_expensive(_ebb_page_is_valid(page));
    if (page_make_ready_freed(page)) {
      queue_to_front(heap, bin, page);
      return page;
    }
    if (can_carve != NULL) looked_past++;
    if (page_can_carve(page)) {
      if (can_carve == NULL) can_carve = page;
    } else if (!_ebb_page_to_full(heap, page) && page_make_ready(page)) {
      return page;
    }
    page = next;
  }
  if (can_carve != NULL && page_make_ready(can_carve)) {
    queue_to_front(heap, bin, can_carve);
    return can_carve;
  }
  /* Parked pages of the class before a fresh one. */
  while (heap->parked[bin] != NULL) {
    page = heap->parked[bin];
    _ebb_page_unpark(heap, page);
    if (page_make_ready(page)) return page;
  }
  return page_fresh(heap, bin);
}

/* ---- parking --------------------------------------------------------------------------- */
static void parked_remove(ebb_heap_t *heap, ebb_page_t *page) {
  if (page->prev) page->prev->next = page->next;
  else heap->parked[page->bin] = page->next;
  if (page->next) page->next->prev = page->prev;
  page->next = page->prev = NULL;
}

/* Offers a page the owner no longer uses to the purge pass. `bytes` is the
 * resident memory it holds that nothing uses (counted as dirty). */
void _ebb_page_offer(ebb_page_t *page, size_t bytes) {
  ebb_segment_t *seg = _ebb_segment_of(page);
  __atomic_store_n(&page->offered, (uint32_t)bytes, __ATOMIC_RELAXED);
  atomic_store_explicit(&page->idle_since, 0, memory_order_relaxed);
  atomic_fetch_add_explicit(&seg->idle_pages, 1, memory_order_relaxed);
  _ebb_purge_dirty_add(bytes);
  atomic_store_explicit(&page->claim, EBB_CLAIM_IDLE, memory_order_release);
}

/* Takes an offered page back; waits while a purge is working on it.
 * Returns the state it was in (OWNED if it was not offered). */
ebb_claim_t _ebb_page_claim(ebb_page_t *page) {
  uint32_t c = atomic_load_explicit(&page->claim, memory_order_acquire);
  for (;;) {
    if (c == EBB_CLAIM_OWNED) return EBB_CLAIM_OWNED;
    if (c == EBB_CLAIM_PURGING || c == EBB_CLAIM_PURGING_AGAIN) {
      _ebb_prim_yield();
      c = atomic_load_explicit(&page->claim, memory_order_acquire);
      continue;
    }
    if (atomic_compare_exchange_weak_explicit(&page->claim, &c, EBB_CLAIM_OWNED, memory_order_acq_rel,
                                              memory_order_acquire))
      break;
  }
  if (c == EBB_CLAIM_IDLE && page->offered != 0) {
    atomic_fetch_sub_explicit(&_ebb_segment_of(page)->idle_pages, 1, memory_order_relaxed);
    _ebb_purge_dirty_sub(page->offered);
  }
  /* An owned page counts nothing, so park_in_place need not clear it.
   * Atomic: a pass re-offering the page may be reading it (reoffer_quiet). */
  __atomic_store_n(&page->offered, 0, __ATOMIC_RELAXED);
  return (ebb_claim_t)c;
}

/* A block was freed to a page a purge already handled (parked, PURGED):
 * offer it again, or the memory of that block would never go back. Any
 * thread may do this; the CAS makes one of them win. */
bool _ebb_page_reoffer_quiet(ebb_page_t *page) {
  uint32_t c = atomic_load_explicit(&page->claim, memory_order_relaxed);
  for (;;) {
    if (c == EBB_CLAIM_PURGING) {
      /* The purge in progress will offer it again when it is done. */
      if (atomic_compare_exchange_weak_explicit(&page->claim, &c, EBB_CLAIM_PURGING_AGAIN, memory_order_relaxed,
                                                memory_order_relaxed))
        return false;
      continue;
    }
    if (c != EBB_CLAIM_PURGED) return false;
    ebb_segment_t *seg = _ebb_segment_of(page);
    /* Read once, atomically: the owner may take the page back (storing 0)
     * and re-park it meanwhile. 0 (parked in place, empty) only
     * after a remote double free; it is then left to its owner. */
    size_t offered = __atomic_load_n(&page->offered, __ATOMIC_RELAXED);
    atomic_store_explicit(&page->idle_since, 0, memory_order_relaxed);
    if (offered != 0) {
      atomic_fetch_add_explicit(&seg->idle_pages, 1, memory_order_relaxed);
      _ebb_purge_dirty_add(offered);
    }
    if (atomic_compare_exchange_strong_explicit(&page->claim, &c, EBB_CLAIM_IDLE, memory_order_release,
                                                memory_order_relaxed))
      return true;
    if (offered != 0) {
      atomic_fetch_sub_explicit(&seg->idle_pages, 1, memory_order_relaxed);
      _ebb_purge_dirty_sub(offered);
    }
  }
}

void _ebb_page_reoffer(ebb_page_t *page) {
  if (_ebb_page_reoffer_quiet(page)) _ebb_purge_notify();
}

/* A purge is done with a page: PURGED, or IDLE again if blocks were freed
 * to it meanwhile (their memory has not been purged). */
void _ebb_page_purge_done(ebb_page_t *page) {
  uint32_t c = EBB_CLAIM_PURGING;
  if (atomic_compare_exchange_strong_explicit(&page->claim, &c, EBB_CLAIM_PURGED, memory_order_release,
                                              memory_order_relaxed))
    return;
  ebb_assert(c == EBB_CLAIM_PURGING_AGAIN);
  ebb_assert(page->offered != 0); /* an empty page parked in place takes no frees */
  ebb_segment_t *seg = _ebb_segment_of(page);
  atomic_store_explicit(&page->idle_since, 0, memory_order_relaxed);
  atomic_fetch_add_explicit(&seg->idle_pages, 1, memory_order_relaxed);
  _ebb_purge_dirty_add(page->offered);
  atomic_store_explicit(&page->claim, EBB_CLAIM_IDLE, memory_order_release);
}

/* EBB_VERBOSE=1: why a page was parked, and what it gives back when. */
static ebb_noinline void say_parked(const ebb_page_t *page, size_t offered) {
  char bs[EBB_SIZE_TEXT], psize[EBB_SIZE_TEXT], freeb[EBB_SIZE_TEXT];
  uint32_t used = _ebb_page_used(page);
  _ebb_size_human(bs, page->block_size);
  _ebb_size_human(psize, _ebb_segment_page_size(_ebb_segment_of(page), page, NULL));
  _ebb_size_human(freeb, offered);
  if (used == 0)
    _ebb_verbose_rated(EBB_V_PARK, "ebb: park: an empty %s page of %s blocks is offered for purging (in %zu ms)\n", psize,
                       bs, (size_t)_ebb_option(EBB_OPT_PURGE_DELAY_MS));
  else
    _ebb_verbose_rated(EBB_V_PARK,
                       "ebb: park: a %s page of %s blocks is sparse (%u of %u in use): its %s free are offered for "
                       "purging (in %zu ms)\n",
                       psize, bs, (unsigned)used, (unsigned)page->capacity, freeb,
                       (size_t)_ebb_option(EBB_OPT_PURGE_DELAY_MS));
}

/* The owner stops allocating from `page` (empty, or sparse and not at the
 * head of its queue). */
void _ebb_page_park(ebb_heap_t *heap, ebb_page_t *page) {
  ebb_assert(page->flags == 0);
  _ebb_queue_remove(heap, page->bin, page);
  _ebb_page_set_flags(page, EBB_PAGE_PARKED);
  page->prev = NULL;
  page->next = heap->parked[page->bin];
  if (page->next) page->next->prev = page;
  heap->parked[page->bin] = page;
  size_t offered = (size_t)(page->capacity - _ebb_page_used(page)) * page->block_size;
  _ebb_page_offer(page, offered > page->block_size ? offered : page->block_size);
  if (_ebb_verbose_on()) say_parked(page, offered);
}

/* An empty head page stays where it is in its queue (so that allocating
 * again costs no queue or direct-table update), with `free` moved to
 * `stash`: the malloc fast path misses it and the generic path takes it
 * back. A purge may claim it meanwhile; it must then leave `free` alone
 * (NULL), because the direct table still leads the fast path to it.
 *
 * This is the hot park: a program whose pages empty every few operations
 * does it constantly. So it counts nothing (offered = 0: not in
 * idle_pages or the dirty bytes) and only leaves hints where the purge pass
 * will look (purge.c, "parked in place"). */
static ebb_forceinline void park_in_place(ebb_page_t *page) {
  ebb_assert(page->flags == 0 && _ebb_page_used(page) == 0);
  _ebb_page_set_flags(page, EBB_PAGE_PARKED | EBB_PAGE_IN_PLACE);
  ebb_assert(page->offered == 0); /* zero while owned (_ebb_page_claim) */
  page->stash = page->free;
  page->free = NULL;
  atomic_store_explicit(&page->idle_since, 0, memory_order_relaxed);
  atomic_store_explicit(&page->claim, EBB_CLAIM_IDLE, memory_order_release);
  _ebb_purge_parked_in_place(_ebb_segment_of(page));
}

/* The owner takes a parked page back into its queue. */
void _ebb_page_unpark(ebb_heap_t *heap, ebb_page_t *page) {
  ebb_assert(page->flags == EBB_PAGE_PARKED);
  _ebb_page_claim(page);
  parked_remove(heap, page);
  _ebb_page_set_flags(page, 0);
  _ebb_queue_push_front(heap, page->bin, page);
  ebb_assert_expensive(_ebb_page_is_valid(page));
}

/* Gives back to their segments the parked pages that a purge emptied (the
 * owner's bookkeeping, which the purge thread may not do). */
void _ebb_page_reap(ebb_heap_t *heap) {
  /* Queued pages (not the heads) whose blocks came back through
   * thread_free: nobody looks at them until their turn comes; park the
   * sparse ones and return the empty ones now. */
  for (unsigned bin = 1; bin <= EBB_BIN_MAX; bin++) {
    ebb_page_t *first = heap->queues[bin].first;
    for (ebb_page_t *page = first ? first->next : NULL, *next; page != NULL; page = next) {
      next = page->next;
      if (page->flags != 0) continue;
      if (tf_block(atomic_load_explicit(&page->thread_free, memory_order_relaxed)) == NULL) continue;
      _ebb_page_collect(page);
      if (page->margin <= 0) _ebb_page_after_free(heap, page);
    }
  }
  for (unsigned bin = 1; bin <= EBB_BIN_MAX; bin++) {
    for (ebb_page_t *page = heap->parked[bin], *next; page != NULL; page = next) {
      next = page->next;
      if (atomic_load_explicit(&page->claim, memory_order_relaxed) != EBB_CLAIM_PURGED || _ebb_page_used(page) != 0)
        continue;
      _ebb_page_claim(page);
      parked_remove(heap, page);
      _ebb_page_set_flags(page, 0);
      _ebb_page_set_delayed(page, EBB_NEVER_DELAYED, false);
      _ebb_segment_page_free(heap, page);
    }
  }
}

/* A page that just stopped being the head of its queue. */
static void settle_displaced(ebb_heap_t *heap, ebb_page_t *page) {
  if (page->flags == (EBB_PAGE_PARKED | EBB_PAGE_IN_PLACE)) {
    _ebb_page_take_back(page);
    if (_ebb_page_used(page) == 0) {
      _ebb_page_free(heap, page);
      return;
    }
  }
  if (page->flags == 0 && page->margin <= 0) _ebb_page_after_free(heap, page);
}

/* ---- local frees that need more than a push -------------------------------------------- */
/* A full page goes back to its queue once a thirty-second of its blocks
 * are free (pages of fewer than 32 blocks at the first), not at the first:
 * where threads free blocks all over each other's pages, a page that
 * returned for one block was full again at the next allocation, and each
 * round trip rewrote up to 128 entries of the direct table twice (bench
 * larson, 2 M steps: 266,765 round trips, 23% of all instructions in
 * set_head). A larger share held more memory where frees land at random
 * in full pages and the live set stays level (bench rbtree peak RSS, with
 * glibc's at 124.0 MB: an eighth 132.0 MB, a sixteenth 127.7 MB, a
 * thirty-second 127.0 MB; callgrind counts within 2% of each other). The
 * blocks that wait on a full page's local_free or free list are scattered,
 * rarely a whole OS page; the purge passes leave full pages alone. */
static uint32_t unfull_at(const ebb_page_t *page) { return page->reserved - page->reserved / 32; }

/* A free just went to the full `page` (margin counted). True if it stays
 * on the full queue. While it does, remote frees must keep coming through
 * the heap's delayed list, where the owner counts them: the first delayed
 * free set the state back to NO_DELAYED (free.c), so it is set again, and
 * what reached thread_free meanwhile is collected onto `free`. */
static bool full_page_stays(ebb_page_t *page) {
  if (_ebb_page_used(page) <= unfull_at(page)) return false;
  _ebb_page_set_delayed(page, EBB_USE_DELAYED, false);
  if (tf_block(atomic_load_explicit(&page->thread_free, memory_order_acquire)) != NULL) collect_thread_free(page);
  return _ebb_page_used(page) > unfull_at(page);
}

/* The page's flags are set: full, or parked. */
void _ebb_page_free_flagged(ebb_heap_t *heap, ebb_page_t *page, ebb_block_t *block) {
  if ((page->flags & EBB_PAGE_PARKED) && _ebb_page_used(page) == 0) {
    /* Parked with no live block (used only drops when a purge collects
     * blocks freed before, never below the live ones): nothing to free. */
    _ebb_error_double_free(block);
    return;
  }
  if (page->flags & EBB_PAGE_PARKED) {
    /* Parked: a purge may own the lists. Push like a remote free. */
    if (ebb_unlikely(_ebb_secure) && !_ebb_secure_is_live(page, block)) return;
    uintptr_t tf = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&page->thread_free, &tf, _ebb_tf_pushed(tf, block), memory_order_release,
                                                  memory_order_relaxed))
      ;
    _ebb_page_reoffer(page);
    return;
  }
  if (ebb_unlikely(_ebb_secure) && !_ebb_secure_on_free(page, block)) return;
  block->next = page->local_free;
  page->local_free = block;
  page->margin--;
  if (full_page_stays(page)) return;
  /* To the back of its queue: the head keeps serving the class. At the
   * front, a page back from full would displace the head, serve a few
   * mallocs, go full again and hand the head back - two direct-table
   * rewrites and a slow malloc each time, when frees land at random in
   * full pages (bench rbtree: 11% of its instructions were the head
   * changes). At the back it gathers more frees before its turn comes. */
  unfull_to(heap, page, false);
  if (page->margin <= 0) _ebb_page_after_free(heap, page);
}

/* A local free left used <= park_at: park the page if it is empty, or
 * sparse and not the page being allocated from; else it was the tell
 * (park_at_for): count down again. */
static ebb_noinline void after_free_other(ebb_heap_t *heap, ebb_page_t *page, bool head) {
  uint32_t used = _ebb_page_used(page), at = head ? 0 : sparse_at(page);
  if (used == 0 && !head) {
    /* Not the page being allocated from: back to its segment, which is
     * released with its last page (offered as a free page meanwhile). */
    _ebb_page_free(heap, page);
  } else if (used > at || head) {
    _ebb_page_set_park_at(page, park_at_for(page, at));
    return;
  } else if (page->back_from_full) {
    /* Came back from the full queue and was freed down to sparse: the
     * program is freeing what it holds, not churning it. Parked now, the
     * rest of its frees would go through thread_free and count as live
     * until a collect; as the head it empties and parks in place, as it
     * did when a page left the full queue at the front. */
    ebb_page_t *old_head = heap->queues[page->bin].first;
    _ebb_queue_remove(heap, page->bin, page);
    _ebb_queue_push_front(heap, page->bin, page);
    settle_displaced(heap, old_head);
  } else {
    _ebb_page_park(heap, page);
  }
  _ebb_purge_notify();
}

/* Out of line, so that the common exit above (park in place) needs no
 * stack frame. */
static ebb_noinline void free_left_few_other(ebb_page_t *page) {
  ebb_heap_t *heap = _ebb_tls_heap;
  /* Answering a pass settled every page (collect frees the empty ones, so
   * `page` may be gone): the next free that leaves it sparse decides. */
  if (!_ebb_seize_enter(heap) && page->flags == 0 && page->margin <= 0) _ebb_page_after_free(heap, page);
  _ebb_seize_leave(heap);
}

/* The free fast path's exit: a local free left used <= park_at. Only the
 * head of a queue has park_at 0 (any other page parks at a quarter of at
 * least 7 blocks, or tells above that), so park_at 0 here means the head
 * page just emptied. */
void _ebb_page_free_left_few(ebb_page_t *page) {
  if (ebb_likely(page->park_at == 0)) {
    ebb_assert_internal(_ebb_page_used(page) == 0 && _ebb_tls_heap->queues[page->bin].first == page);
    park_in_place(page);
    return;
  }
  free_left_few_other(page);
}

void _ebb_page_after_free(ebb_heap_t *heap, ebb_page_t *page) {
  bool head = heap->queues[page->bin].first == page;
  if (ebb_likely(_ebb_page_used(page) == 0 && head)) {
    park_in_place(page);
    return;
  }
  after_free_other(heap, page, head);
}

/* ---- leaving the heap ------------------------------------------------------------------- */
/* Gives an empty page back to its segment (queued or parked). */
void _ebb_page_free(ebb_heap_t *heap, ebb_page_t *page) {
  ebb_assert(_ebb_page_used(page) == 0);
  if (page->flags == (EBB_PAGE_PARKED | EBB_PAGE_IN_PLACE)) {
    _ebb_page_take_back(page);
    _ebb_queue_remove(heap, page->bin, page);
  } else if (page->flags & EBB_PAGE_PARKED) {
    _ebb_page_claim(page);
    parked_remove(heap, page);
  } else {
    _ebb_queue_remove(heap, (page->flags & EBB_PAGE_IN_FULL) ? EBB_BIN_FULL : page->bin, page);
  }
  _ebb_page_set_flags(page, 0);
  /* No remote thread may still be reading page->heap. */
  _ebb_page_set_delayed(page, EBB_NEVER_DELAYED, false);
  _ebb_segment_page_free(heap, page);
}

/* ---- validation (EBB_DEBUG >= 3) --------------------------------------------------------- */
static bool list_is_valid(const ebb_page_t *page, const ebb_block_t *b, uint32_t *count) {
  const uint8_t *end = page->start + (size_t)page->capacity * page->block_size;
  for (; b != NULL; b = b->next) {
    const uint8_t *p = (const uint8_t *)b;
    if (p < page->start || p >= end || !_ebb_is_block_start(page, p)) return false;
    if (++*count > page->capacity) return false;
  }
  return true;
}

/* The local tag the free fast path trusts: the segment owner's id exactly
 * when the owner's frees may push onto local_free - flags 0, no seizer
 * writing (_ebb_page_set_flags), not secure mode - else 0. A pass that
 * asks for the heap (seize.c) clears the tags of pages whose flags are 0
 * while the owner runs, after it moved heap->seize off NONE: a tag of 0
 * with flags 0 is right once that is seen (read after the tag). */
static bool local_tag_is_valid(const ebb_page_t *page, const ebb_heap_t *heap) {
  uintptr_t tag = atomic_load_explicit(&page->local_tag, memory_order_relaxed);
  uintptr_t owner = atomic_load_explicit(&_ebb_segment_of(page)->thread_id, memory_order_relaxed);
  bool plain = page->flags == 0 && !_ebb_seizing && !_ebb_secure;
  if (tag == (plain ? owner : 0)) return true;
  atomic_thread_fence(memory_order_seq_cst);
  return plain && tag == 0 && atomic_load_explicit(&heap->seize, memory_order_seq_cst) != EBB_SEIZE_NONE;
}

/* park_at as the queue operations leave it on a page with flags 0: at
 * least the park threshold (0 for the head of its queue, sparse_at for
 * any other; park_at_for adds the tell on top), so that park_at 0 means
 * the head; and never above the blocks that fit. */
static bool park_at_is_valid(const ebb_page_t *page, const ebb_heap_t *heap) {
  if (page->flags != 0) return true;
  uint32_t at = heap->queues[page->bin].first == page ? 0 : sparse_at(page);
  return page->park_at >= at && page->park_at <= page->reserved;
}

/* Blocks on thread_free, from a snapshot of its head: remote threads only
 * push in front of it, and only the caller (holding the page) takes the
 * list. */
static bool thread_free_count(const ebb_page_t *page, uint32_t *count) {
  uintptr_t tf = atomic_load_explicit(&page->thread_free, memory_order_acquire);
  return list_is_valid(page, tf_block(tf), count);
}

/* The caller holds the page (its owner, or a pass that holds it) and its
 * heap. Checks used + |free| + |local_free| + |stash| + purged_blocks ==
 * capacity, where used = margin + park_at counts the live blocks and those
 * on thread_free or the delayed list (so at least |thread_free|); the
 * stash only on a page parked in place (whose `free` is NULL); the local
 * tag and park_at the fast paths trust. */
bool _ebb_page_is_valid(const ebb_page_t *page) {
  uint32_t nfree = 0, nlocal = 0, nstash = 0, nremote = 0;
  const ebb_heap_t *heap = atomic_load_explicit(&page->heap, memory_order_relaxed);
  if (!page->in_use || page->capacity > page->reserved || heap == NULL) return false;
  /* A link out of the page's blocks is a write after free, or a bug. In
   * secure mode the program's write is reported, in its own words, when
   * the link is followed: this check leaves it to that. */
  if (!list_is_valid(page, page->free, &nfree) || !list_is_valid(page, page->local_free, &nlocal) ||
      !list_is_valid(page, page->stash, &nstash) || !thread_free_count(page, &nremote))
    return _ebb_secure;
  if (page->stash != NULL && (page->flags != (EBB_PAGE_PARKED | EBB_PAGE_IN_PLACE) || page->free != NULL)) return false;
  if (nremote > _ebb_page_used(page)) return false;
  if (!local_tag_is_valid(page, heap) || !park_at_is_valid(page, heap)) return false;
  return _ebb_page_used(page) + nfree + nlocal + nstash + page->purged_blocks == page->capacity;
}
