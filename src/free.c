/* SPDX-License-Identifier: MIT */
/* free.c - freeing: the local fast path, remote frees, and misuse checks.
 *
 * Local free (the page's segment belongs to this thread): push onto
 * page->local_free, no atomics. Remote free: push onto page->thread_free
 * with one CAS; if the page is full (USE_DELAYED) the block goes to the
 * owner heap's delayed_free list instead, bracketed by the DELAYED_FREEING
 * state, which keeps the owner from freeing the page (and its heap pointer)
 * until the push is done. */
#include <errno.h>

#include "internal.h"
#include "prim.h"

static ebb_noinline void free_remote(ebb_page_t *page, ebb_block_t *block, uintptr_t owner) {
  /* Read before the block is published: afterwards the page may be
   * released (and unmapped) at any moment. */
  uint32_t claim = atomic_load_explicit(&page->claim, memory_order_seq_cst);
  uintptr_t tf = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
  uintptr_t desired;
  bool use_delayed;
  do {
    use_delayed = (tf & EBB_TF_STATE_MASK) == EBB_USE_DELAYED;
    if (use_delayed) {
      desired = (tf & ~EBB_TF_STATE_MASK) | EBB_DELAYED_FREEING;
    } else {
      desired = _ebb_tf_pushed(tf, block);
    }
  } while (!atomic_compare_exchange_weak_explicit(&page->thread_free, &tf, desired, memory_order_release,
                                                  memory_order_relaxed));
  if (!use_delayed) {
    if (owner == 0) _ebb_purge_hint_abandoned(); /* nobody else would collect it */
    else if (claim == EBB_CLAIM_PURGED || claim == EBB_CLAIM_PURGING) _ebb_purge_hint_remote();
    return;
  }

  /* DELAYED_FREEING: the owner waits for us before it retires the page. */
  ebb_heap_t *heap = atomic_load_explicit(&page->heap, memory_order_acquire);
  ebb_assert(heap != NULL);
  ebb_block_t *head = atomic_load_explicit(&heap->delayed_free, memory_order_relaxed);
  do {
    block->next = head;
  } while (!atomic_compare_exchange_weak_explicit(&heap->delayed_free, &head, block, memory_order_release,
                                                  memory_order_relaxed));
  tf = atomic_load_explicit(&page->thread_free, memory_order_relaxed);
  do {
    desired = (tf & ~EBB_TF_STATE_MASK) | EBB_NO_DELAYED;
  } while (!atomic_compare_exchange_weak_explicit(&page->thread_free, &tf, desired, memory_order_release,
                                                  memory_order_relaxed));
}

/* The owner frees a block: used only by the slow paths (delayed frees;
 * heap is the page's, whoever holds it). The block is marked freed
 * already (_ebb_block_mark). */
void _ebb_free_block_local(ebb_heap_t *heap, ebb_page_t *page, ebb_block_t *block) {
  ebb_assert_internal(atomic_load_explicit(&page->heap, memory_order_relaxed) == heap);
  if (page->flags != 0) {
    _ebb_page_free_flagged(heap, page, block);
    return;
  }
  if (ebb_unlikely(_ebb_secure) && !_ebb_secure_on_free(page, block)) return;
  block->next = page->local_free;
  page->local_free = block;
  if (--page->margin <= 0) _ebb_page_after_free(heap, page);
}

/* --*margin <= 0, as one subtract-from-memory and a branch on its flags
 * (gcc otherwise loads, subtracts, stores and tests: three more
 * instructions on every free). */
static inline bool margin_drop(int32_t *margin) {
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
  bool le;
  __asm__("subl $1, %0" : "+m"(*margin), "=@ccle"(le));
  return le;
#else
  return --*margin <= 0;
#endif
}

/* A block of an ebb page that is not local and plain (page->local_tag is
 * not this thread): another thread's page, or one of ours that is full or
 * parked. */
static ebb_noinline void free_not_plain(ebb_segment_t *seg, ebb_page_t *page, ebb_block_t *block) {
  /* Marked before the block is published to anyone (free_remote). */
  if (ebb_unlikely(_ebb_block_mark(block) == page)) {
    _ebb_error_double_free(block);
    return;
  }
  _ebb_block_set_mark(block, page);
  uintptr_t owner = atomic_load_explicit(&seg->thread_id, memory_order_relaxed);
  if (owner != _ebb_thread_id()) {
    free_remote(page, block, owner);
    return;
  }
  ebb_heap_t *heap = _ebb_tls_heap;
  /* The block holds the page (it is live until this free), so answering a
   * pass cannot have given the page back. Nothing here may rely on the
   * page's local tag: a pass may ask again at any moment, clearing it. */
  _ebb_seize_enter(heap);
  _ebb_free_block_local(heap, page, block);
  _ebb_seize_leave(heap);
}

/* The fast path is kept free of calls that return to it, so that it needs
 * no stack frame: every exit is a return or a tail call. */
ebb_export void ebb_free(void *p) {
  uint8_t kind = _ebb_map_kind(p);
  if (ebb_unlikely(!_ebb_map_is_segment(kind))) {
    _ebb_free_slow(p);
    return;
  }
  ebb_segment_t *seg = _ebb_segment_of(p);
  ebb_page_t *page = _ebb_page_at(seg, p, kind);
  /* One register for the page: otherwise gcc keeps a second copy of its
   * address for the tail calls (one more instruction on every free). */
  __asm__("" : "+r"(page));
  if (ebb_unlikely(!_ebb_is_block_start(page, p))) {
    _ebb_free_slow(p);
    return;
  }
  ebb_block_t *block = p;
  if (ebb_unlikely(atomic_load_explicit(&page->local_tag, memory_order_relaxed) != _ebb_thread_id())) {
    free_not_plain(seg, page, block);
    return;
  }
  if (ebb_unlikely(_ebb_block_mark(block) == page)) {
    _ebb_error_double_free(p);
    return;
  }
  _ebb_block_set_mark(block, page);
  block->next = page->local_free;
  page->local_free = block;
  if (ebb_unlikely(margin_drop(&page->margin))) _ebb_page_free_left_few(page);
}

EBB_STD(free, ebb_free);
EBB_STD(cfree, ebb_free);
EBB_STD(__libc_free, ebb_free);

/* NULL, large blocks, and pointers that are not ebb's. */
ebb_noinline void _ebb_free_slow(void *p) {
  if (p == NULL) return;
  if (((uintptr_t)p & EBB_SEGMENT_MASK) == 0) {
    if (_ebb_map_kind(p) == EBB_MAP_LARGE) {
      _ebb_large_free(_ebb_large_segment_of(p));
      return;
    }
    /* A large block freed before waits in the large cache, unmarked. */
    if (_ebb_large_is_cached(p)) {
      _ebb_error_double_free(p);
      return;
    }
  }
  _ebb_error_foreign("free", p);
}

ebb_export void ebb_free_sized(void *p, size_t size) {
  ebb_assert(p == NULL || size <= _ebb_usable_size(p, "free_sized"));
  (void)size;
  ebb_free(p);
}
EBB_STD(free_sized, ebb_free_sized);

ebb_export void ebb_free_aligned_sized(void *p, size_t align, size_t size) {
  ebb_assert(p == NULL || ((uintptr_t)p & (align - 1)) == 0);
  (void)align;
  ebb_free_sized(p, size);
}
EBB_STD(free_aligned_sized, ebb_free_aligned_sized);

/* Usable size of an ebb block; 0 (after reporting misuse as `caller`) for
 * anything else. */
size_t _ebb_usable_size(const void *p, const char *caller) {
  uint8_t kind = _ebb_map_kind(p);
  if (_ebb_map_is_segment(kind)) {
    ebb_segment_t *seg = _ebb_segment_of(p);
    ebb_page_t *page = _ebb_page_at(seg, p, kind);
    if (_ebb_is_block_start(page, p)) return page->block_size;
  } else if (kind == EBB_MAP_LARGE && ((uintptr_t)p & EBB_SEGMENT_MASK) == 0) {
    return _ebb_large_segment_of(p)->size - EBB_LARGE_HEADER_SIZE;
  }
  if (caller != NULL) _ebb_error_foreign(caller, p);
  return 0;
}

ebb_export size_t ebb_malloc_usable_size(const void *p) {
  if (p == NULL) return 0;
  return _ebb_usable_size(p, "malloc_usable_size");
}
EBB_STD(malloc_usable_size, ebb_malloc_usable_size);

/* A block start that is not free: the freed mark (or, in secure mode, the
 * live bitmap) tells. A block whose memory a purge returned has lost its
 * mark and reads as live, like the default double-free check; secure mode
 * knows. */
ebb_export bool ebb_owns(const void *p) {
  if (p == NULL) return false;
  uint8_t kind = _ebb_map_kind(p);
  if (_ebb_map_is_segment(kind)) {
    ebb_page_t *page = _ebb_page_at(_ebb_segment_of(p), p, kind);
    if (!_ebb_is_block_start(page, p)) return false;
    if (ebb_unlikely(_ebb_secure)) return _ebb_secure_bit(page, p);
    return _ebb_block_mark(p) != page;
  }
  if (kind == EBB_MAP_LARGE && ((uintptr_t)p & EBB_SEGMENT_MASK) == 0) return !_ebb_large_is_cached(p);
  return false;
}
