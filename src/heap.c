/* SPDX-License-Identifier: MIT */
/* heap.c - thread-local heaps: creation on a thread's first allocation,
 * the delayed-free list, and what happens when the thread exits.
 *
 * Concurrency: a heap is touched by its thread, and by a purge pass that
 * holds it SEIZED or asks for it (seize.c, types.h), except delayed_free,
 * which other threads push onto with a CAS (a LIFO of blocks, linked
 * through the blocks). Heaps are never unmapped: a finished heap goes to a
 * pool (global lock) and is reused by the next new thread, so a remote
 * thread that read page->heap can always dereference it. */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "prim.h"

__thread ebb_heap_t *_ebb_tls_heap = &_ebb_heap_empty;

ebb_page_t _ebb_page_empty; /* free == NULL: the fast path always misses */

/* Statically initialised so the fast path works before initialisation. */
ebb_heap_t _ebb_heap_empty = {.direct = {[0 ... EBB_DIRECT_COUNT - 1] = &_ebb_page_empty}};

static ebb_heap_t *heap_pool;   /* unused heaps (global lock) */
static ebb_heap_t *heap_all;    /* every heap: written under the global lock (release); read without it (acquire) */
static size_t heaps_live;       /* global lock */
static pthread_key_t heap_key;  /* destructor: _ebb_heap_thread_done (made at initialisation) */
static bool heap_key_ready;     /* set at initialisation, before any other thread allocates */

static void heap_reset(ebb_heap_t *heap) {
  memset(heap->queues, 0, sizeof(heap->queues));
  for (size_t w = 0; w < EBB_DIRECT_COUNT; w++) EBB_STORE(heap->direct[w], &_ebb_page_empty);
  atomic_store_explicit(&heap->delayed_free, NULL, memory_order_relaxed);
  heap->segments = NULL;
  heap->with_free[0] = heap->with_free[1] = NULL;
  memset(heap->parked, 0, sizeof(heap->parked));
  heap->reap_countdown = 1024;
  atomic_store_explicit(&heap->in_slow, 0, memory_order_relaxed);
  atomic_store_explicit(&heap->activity, 0, memory_order_relaxed);
  atomic_store_explicit(&heap->unclean, 0, memory_order_relaxed);
}

/* Called once at process init (before any thread can allocate). */
void _ebb_heap_init_empty(void) {
  heap_reset(&_ebb_heap_empty);
  _ebb_heap_empty.thread_id = 0;
  if (pthread_key_create(&heap_key, _ebb_heap_thread_done) == 0) heap_key_ready = true;
}

/* Heaps come from the OS in chunks, never from malloc. A chunk is handed
 * out one heap at a time, so that its memory is touched only as threads
 * start (a 256 KiB chunk made resident at once was most of a small
 * program's overhead). */
enum { HEAP_CHUNK = 256 * 1024 };
static ebb_heap_t *carve_next, *carve_end; /* the chunk being handed out (global lock) */

static ebb_heap_t *heap_take(void) {
  for (;;) {
    _ebb_lock();
    ebb_heap_t *heap = heap_pool;
    if (heap != NULL) {
      heap_pool = heap->pool_next;
    } else if (carve_next != NULL && carve_next + 1 <= carve_end) {
      heap = carve_next++;
      heap->all_next = heap_all;
      __atomic_store_n(&heap_all, heap, __ATOMIC_RELEASE); /* read without the lock: _ebb_heap_first */
    }
    _ebb_unlock();
    if (heap != NULL) return heap;
    /* Map outside the lock; another thread may have mapped meanwhile. */
    ebb_heap_t *chunk = _ebb_prim_map(HEAP_CHUNK);
    if (chunk == NULL && _ebb_purge_release_for_mapping()) chunk = _ebb_prim_map(HEAP_CHUNK);
    if (chunk == NULL) return NULL;
    _ebb_lock();
    bool used = carve_next == NULL || carve_next + 1 > carve_end;
    if (used) {
      carve_next = chunk;
      carve_end = (ebb_heap_t *)((uint8_t *)chunk + HEAP_CHUNK);
    }
    _ebb_unlock();
    if (!used) _ebb_os_release(chunk, HEAP_CHUNK);
  }
}

/* This thread's heap, made on first use. NULL (errno ENOMEM) if the OS
 * has no memory for one. */
ebb_heap_t *_ebb_heap_get(void) {
  ebb_heap_t *heap = _ebb_tls_heap;
  if (ebb_likely(heap != &_ebb_heap_empty)) return heap;
  _ebb_init_process();
  heap = heap_take();
  if (heap == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  heap_reset(heap);
  heap->thread_id = _ebb_thread_id();
  heap->kernel_tid = _ebb_prim_thread_tid();
  heap->sigblk = _ebb_prim_thread_sigblk();
  _ebb_lock(); /* passes look at live heaps under the lock (seize.c) */
  atomic_store_explicit(&heap->seize, EBB_SEIZE_NONE, memory_order_relaxed);
  EBB_STORE(heap->live, true); /* the seize pass reads it without the lock */
  heaps_live++;
  _ebb_unlock();
  _ebb_tls_heap = heap;
  /* Set after the TLS pointer: pthread_setspecific may allocate. */
  if (heap_key_ready) pthread_setspecific(heap_key, heap);
  return heap;
}

/* ---- delayed frees ------------------------------------------------------- */
void _ebb_heap_drain_delayed(ebb_heap_t *heap) {
  if (atomic_load_explicit(&heap->delayed_free, memory_order_relaxed) == NULL) return;
  ebb_block_t *b = atomic_exchange_explicit(&heap->delayed_free, NULL, memory_order_acquire);
  while (b != NULL) {
    ebb_block_t *next = b->next;
    ebb_segment_t *seg = _ebb_segment_of(b);
    ebb_page_t *page = _ebb_page_of(seg, b);
    if (ebb_unlikely(_ebb_secure)) _ebb_secure_check_any_link(page, b, next);
    _ebb_free_block_local(heap, page, b);
    b = next;
  }
}

/* ---- collection ------------------------------------------------------------ */
/* Collects every page's frees: empty and sparse pages are parked (offered
 * for purging). */
void _ebb_heap_collect(ebb_heap_t *heap) {
  _ebb_heap_drain_delayed(heap);
  for (unsigned qi = 1; qi <= EBB_BIN_FULL; qi++) {
    ebb_page_t *page = heap->queues[qi].first;
    while (page != NULL) {
      ebb_page_t *next = page->next;
      if (page->flags & EBB_PAGE_PARKED) { /* empty, parked in place: already offered */
        page = next;
        continue;
      }
      _ebb_page_collect(page);
      if ((page->flags & EBB_PAGE_IN_FULL) && page->free != NULL) _ebb_page_unfull(heap, page);
      if (_ebb_page_used(page) == 0) _ebb_page_after_free(heap, page);
      page = next;
    }
  }
}

/* Takes every parked page back into the queues (before the thread exits). */
static void heap_unpark_all(ebb_heap_t *heap) {
  for (unsigned bin = 1; bin <= EBB_BIN_MAX; bin++) {
    while (heap->parked[bin] != NULL) _ebb_page_unpark(heap, heap->parked[bin]);
  }
}

/* ---- thread exit -------------------------------------------------------------- */
static void heap_never_delayed(ebb_heap_t *heap) {
  for (unsigned qi = 1; qi <= EBB_BIN_FULL; qi++) {
    for (ebb_page_t *page = heap->queues[qi].first; page != NULL; page = page->next)
      _ebb_page_set_delayed(page, EBB_NEVER_DELAYED, false);
  }
}

/* The pthread key destructor: the thread is exiting. Its pages stop taking
 * delayed frees (so nobody will touch the heap again), its frees are
 * collected, empty pages are returned, and the segments that still hold
 * live blocks are abandoned for other threads to adopt. */
void _ebb_heap_thread_done(void *arg) {
  ebb_heap_t *heap = arg;
  if (heap == NULL || heap == &_ebb_heap_empty || !heap->live) return;
  _ebb_seize_enter(heap); /* no pass holds the heap from here on: it only asks */
  /* Draining delayed frees may park pages: drain first, then take every
   * parked page back, so that no page is abandoned while offered. */
  heap_never_delayed(heap);
  _ebb_heap_drain_delayed(heap);
  heap_unpark_all(heap);
  heap_never_delayed(heap);
  for (unsigned qi = 1; qi <= EBB_BIN_FULL; qi++) {
    for (ebb_page_t *page = heap->queues[qi].first, *next; page != NULL; page = next) {
      next = page->next;
      if (page->flags & EBB_PAGE_PARKED) _ebb_page_take_back(page);
      _ebb_page_collect(page);
      if (_ebb_page_used(page) == 0) _ebb_page_free(heap, page);
    }
  }
  _ebb_segment_abandon_all(heap);
  if (_ebb_tls_heap == heap) _ebb_tls_heap = &_ebb_heap_empty;
  /* in_slow stays raised to the end, so no pass seizes a heap whose pages
   * are gone; the next thread to take the heap resets it. */
  _ebb_lock();
  EBB_STORE(heap->live, false);
  heaps_live--;
  heap->pool_next = heap_pool;
  heap_pool = heap;
  _ebb_unlock();
  /* It may be the program's last thread but the purge thread, which must
   * then leave too, or the process would never end. */
  _ebb_purge_thread_exiting();
}

/* ---- statistics (global lock held) ------------------------------------------------- */
void _ebb_heap_stats(ebb_stats_t *st) {
  st->heaps_count = heaps_live;
  for (ebb_heap_t *h = heap_all; h != NULL; h = h->all_next) st->metadata += sizeof(ebb_heap_t);
}

/* ---- passes (seize.c) ------------------------------------------------------------- */
/* The newest heap; follow all_next. Without the lock: heaps are never
 * freed, and a heap's all_next is set before it is published. */
ebb_heap_t *_ebb_heap_first(void) { return __atomic_load_n(&heap_all, __ATOMIC_ACQUIRE); }

/* In a fork child: a remote free that was between its two CASes of a
 * delayed free at the fork never finishes; clear its state, or the owner
 * would wait for it forever. (The block it carried stays lost.) */
static void heap_clear_delayed_freeing(ebb_heap_t *heap) {
  for (unsigned qi = 1; qi <= EBB_BIN_FULL; qi++) {
    for (ebb_page_t *page = heap->queues[qi].first; page != NULL; page = page->next) {
      uintptr_t tf = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
      if ((tf & EBB_TF_STATE_MASK) == EBB_DELAYED_FREEING)
        atomic_store_explicit(&page->thread_free, (tf & ~EBB_TF_STATE_MASK) | EBB_USE_DELAYED, memory_order_relaxed);
    }
  }
}

/* After fork() the child has one thread: the other heaps are dead. They
 * are not reused (their lists may have been mid-update at the fork). */
void _ebb_heap_orphan_others(ebb_heap_t *self) {
  if (self != &_ebb_heap_empty) heap_clear_delayed_freeing(self);
  heaps_live = 0;
  for (ebb_heap_t *h = heap_all; h != NULL; h = h->all_next) {
    if (h != self) h->live = false;
    else if (h->live) heaps_live = 1;
  }
}
