/* SPDX-License-Identifier: MIT */
/* secure.c - EBB_SECURE=1: every allocation and every free checked
 * against a bitmap of the blocks that are live.
 *
 * The default check (the freed mark, internal.h) catches a double free
 * while the block's mark survives; a purge that returned the block's
 * memory, or a write after free over the mark, lose it. Secure mode keeps
 * one bit per 16 bytes of each segment (32 KiB per segment, in a mapping
 * of its own), set while the block that starts there is handed out. An
 * allocation sets the bit (it must be clear: a list holding a live block
 * is a corrupted list); a free clears it (it must be set: otherwise a
 * double free, or a block that was never handed out). A free list link is
 * checked before it is followed: a write after free that changed it stops
 * the program instead of handing out memory that is not a block.
 *
 * To keep the default fast paths untouched, secure mode sends every malloc
 * and free to a slow path: the direct table always points to the empty
 * page and local tags stay 0 (page.c, internal.h).
 *
 * Concurrency: the bits of a page belong to whoever holds the page's
 * plain fields (its owner, the purge pass that claimed it, the pass that
 * seized its heap, a pass that popped its abandoned segment), the same rule as its lists; a 64-bit word covers 1 KiB
 * and pages start at multiples of 16 KiB, so no word is shared by two
 * pages. Remote frees do not touch the bits: the holder checks the blocks
 * when it collects them from thread_free or the delayed list. The words
 * are relaxed atomics because the owner reads (never writes) the bit of a
 * block it frees to a page it parked (_ebb_secure_is_live) while a pass
 * that holds the page may write the word. The bitmap
 * pointer is written once, by the segment's owner when it first sets up a
 * page, before the page can be offered or abandoned (both publish with
 * release stores or under the global lock). */
#include "internal.h"
#include "prim.h"

ebb_hidden bool _ebb_secure; /* set once at initialisation, before any other thread; then read-only */

#define BITS_GRAIN 16 /* bytes per bit: the smallest block */
#define BITS_BYTES (EBB_SEGMENT_SIZE / BITS_GRAIN / 8)

void _ebb_secure_init(void) { _ebb_secure = _ebb_option(EBB_OPT_SECURE) != 0; }

static size_t bit_index(const void *p) { return ((uintptr_t)p & EBB_SEGMENT_MASK) / BITS_GRAIN; }

/* A page of a size class is set up: its blocks are all free. */
void _ebb_secure_page_init(ebb_page_t *page, size_t psize) {
  ebb_segment_t *seg = _ebb_segment_of(page);
  if (seg->live_bits == NULL) {
    seg->live_bits = _ebb_prim_map(BITS_BYTES);
    if (seg->live_bits == NULL) _ebb_fatal("out of memory for EBB_SECURE's bitmap of live blocks");
  }
  size_t first = bit_index(page->start), count = psize / BITS_GRAIN;
  ebb_assert(first % 64 == 0 && count % 64 == 0);
  for (size_t w = first / 64; w < (first + count) / 64; w++) atomic_store_explicit(&seg->live_bits[w], 0, memory_order_relaxed);
}

/* The segment's memory is about to go back to the OS. */
void _ebb_secure_segment_unmapped(ebb_segment_t *seg) {
  if (seg->live_bits == NULL) return;
  _ebb_prim_unmap(seg->live_bits, BITS_BYTES);
  seg->live_bits = NULL;
}

static _Noreturn void corrupted(const ebb_page_t *page, const void *where, const char *what) {
  _ebb_message("ebb: error: heap corruption: %s %p, in a page of %u-byte blocks (a write after free?)\n", what,
               where, page->block_size);
  _ebb_prim_abort();
}

/* `b` is leaving page->free for the program. */
void _ebb_secure_on_alloc(ebb_page_t *page, const ebb_block_t *b) {
  ebb_segment_t *seg = _ebb_segment_of(page);
  size_t i = bit_index(b);
  uint64_t bit = (uint64_t)1 << (i % 64);
  uint64_t word = atomic_load_explicit(&seg->live_bits[i / 64], memory_order_relaxed);
  if (word & bit) corrupted(page, b, "the free list holds the live block");
  atomic_store_explicit(&seg->live_bits[i / 64], word | bit, memory_order_relaxed);
  const ebb_block_t *next = b->next;
  if (next != NULL && (_ebb_segment_of(next) != seg || !_ebb_is_block_start(page, next)))
    corrupted(page, b, "the free-list link was overwritten in the free block");
}

/* `b` comes back from the program (a free, or collected from a list of
 * remote frees). False, after reporting, if it was not live. */
bool _ebb_secure_on_free(ebb_page_t *page, const ebb_block_t *b) {
  ebb_segment_t *seg = _ebb_segment_of(page);
  size_t i = bit_index(b);
  uint64_t bit = (uint64_t)1 << (i % 64);
  uint64_t word = atomic_load_explicit(&seg->live_bits[i / 64], memory_order_relaxed);
  if (!(word & bit)) {
    _ebb_error_double_free(b);
    return false;
  }
  atomic_store_explicit(&seg->live_bits[i / 64], word & ~bit, memory_order_relaxed);
  return true;
}

/* The owner frees `b` to a page it has parked: the lists (and bits) are
 * the purge pass's that may hold the page, so the block goes to
 * thread_free and its bit is cleared when it is collected. Only the test
 * is made now, so that the double free is reported at the free: a bit
 * found clear means the block is free already (a pass that just cleared
 * it collected an earlier free of it). False, after reporting, then. */
bool _ebb_secure_bit(const ebb_page_t *page, const void *b) {
  const ebb_segment_t *seg = _ebb_segment_of(page);
  size_t i = bit_index(b);
  return (atomic_load_explicit(&seg->live_bits[i / 64], memory_order_relaxed) & ((uint64_t)1 << (i % 64))) != 0;
}

bool _ebb_secure_is_live(const ebb_page_t *page, const ebb_block_t *b) {
  if (_ebb_secure_bit(page, b)) return true;
  _ebb_error_double_free(b);
  return false;
}

/* A link of a list of remote frees, before it is followed. */
void _ebb_secure_check_link(const ebb_page_t *page, const ebb_block_t *from, const ebb_block_t *next) {
  if (next != NULL && (_ebb_segment_of(next) != _ebb_segment_of(page) || !_ebb_is_block_start(page, next)))
    corrupted(page, from, "the link of a freed block was overwritten in the block");
}

void _ebb_secure_check_any_link(const ebb_page_t *page, const ebb_block_t *from, const ebb_block_t *next) {
  if (next == NULL) return;
  uint8_t kind = _ebb_map_kind(next);
  if (!_ebb_map_is_segment(kind) || !_ebb_is_block_start(_ebb_page_at(_ebb_segment_of(next), next, kind), next))
    corrupted(page, from, "the link of a freed block was overwritten in the block");
}
