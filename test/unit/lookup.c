/* SPDX-License-Identifier: MIT */
/* test/unit/lookup.c - from a pointer to its metadata: the segment map and
 * the block-start test that free relies on to turn a foreign or interior
 * pointer into a clear error.
 *
 *  - _ebb_is_block_start, for every size class and every page size that
 *    holds it, against the plain definition (off % size == 0 and inside the
 *    carved span), at every offset of the page and at offsets below its
 *    start and past its end;
 *  - _ebb_map_kind: the page shift of a live segment of each kind, LARGE
 *    for a large block's start, NONE for memory ebb does not own, for
 *    pointers with bit 47 set (kernel half, garbage), and after a free.
 * Exits 1 if any CHECK failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ebb.h"
#include "internal.h"

/* One size class on a page of psize bytes whose blocks start at `start`
 * (page 0 of a segment starts after the header: not aligned to the size).
 * capacity blocks carved. Every offset from -guard to psize + guard. */
static void block_start_case(size_t bsize, size_t psize, size_t header, size_t capacity) {
  ebb_page_t page;
  memset(&page, 0, sizeof page);
  /* Only addresses are formed, never dereferenced; room below for negative offsets. */
  page.start = (uint8_t *)(((uintptr_t)1 << 40) + header);
  page.span = capacity * bsize;
  page.div_magic = _ebb_div_magic(bsize);
  const size_t guard = 3 * bsize + 64;
  size_t wrong = 0, first_wrong = 0;
  for (size_t i = 0; i < psize + 2 * guard; i++) {
    ptrdiff_t off = (ptrdiff_t)i - (ptrdiff_t)guard;
    const uint8_t *p = page.start + off;
    bool want = off >= 0 && (size_t)off < page.span && (size_t)off % bsize == 0;
    if (_ebb_is_block_start(&page, p) != want && wrong++ == 0) first_wrong = i;
  }
  CHECK_MSG(wrong == 0, "size %zu, page %zu, capacity %zu: %zu wrong answers, first at offset %td", bsize, psize,
            capacity, wrong, (ptrdiff_t)first_wrong - (ptrdiff_t)guard);
}

static void test_block_start(void) {
  for (unsigned bin = 1; bin <= EBB_BIN_MAX; bin++) {
    size_t bsize = _ebb_bin_size(bin);
    size_t psize = bsize <= EBB_SMALL_OBJ_MAX    ? (size_t)1 << EBB_SMALL_PAGE_SHIFT
                   : bsize <= EBB_MEDIUM_OBJ_MAX ? (size_t)1 << EBB_MEDIUM_PAGE_SHIFT
                                                 : EBB_SEGMENT_SIZE;
    size_t reserved = (psize - EBB_SEGMENT_HEADER_SIZE) / bsize;
    block_start_case(bsize, psize - EBB_SEGMENT_HEADER_SIZE, EBB_SEGMENT_HEADER_SIZE, reserved); /* page 0 */
    if (bsize <= EBB_MEDIUM_OBJ_MAX) block_start_case(bsize, psize, 0, psize / bsize / 2); /* half carved */
  }
  /* An unused page (span 0) owns no block, whatever its magic. */
  block_start_case(64, 4096, 0, 0);
}

static void test_map(void) {
  void *small = ebb_malloc(100), *medium = ebb_malloc(20000), *wide = ebb_malloc(200000);
  void *large = ebb_malloc(4u << 20);
  CHECK_MSG(small && medium && wide && large, "allocation failed");
  CHECK_MSG(_ebb_map_kind(small) == EBB_SMALL_PAGE_SHIFT, "small: %d", _ebb_map_kind(small));
  CHECK_MSG(_ebb_map_kind(medium) == EBB_MEDIUM_PAGE_SHIFT, "medium: %d", _ebb_map_kind(medium));
  CHECK_MSG(_ebb_map_kind(wide) == EBB_SEGMENT_SHIFT, "wide: %d", _ebb_map_kind(wide));
  CHECK_MSG(_ebb_map_kind(large) == EBB_MAP_LARGE, "large: %d", _ebb_map_kind(large));
  ebb_segment_t *seg = _ebb_segment_of(small);
  CHECK_MSG(_ebb_page_at(seg, small, _ebb_map_kind(small)) == _ebb_page_of(seg, small), "page lookups differ");
  int on_stack = 0;
  static int in_data; /* the program's own .bss */
  CHECK_MSG(_ebb_map_kind(&on_stack) == EBB_MAP_NONE, "stack: %d", _ebb_map_kind(&on_stack));
  CHECK_MSG(_ebb_map_kind(&in_data) == EBB_MAP_NONE, "data: %d", _ebb_map_kind(&in_data));
  /* Past the 47-bit user address space: nothing, even when the low bits are a live block's. */
  const uintptr_t high[] = {(uintptr_t)1 << 47, ~(uintptr_t)0, (uintptr_t)0xdeadbeefdeadbeefu,
                            (uintptr_t)small | ((uintptr_t)1 << 47), (uintptr_t)0xffff800000000000u,
                            (uintptr_t)small | ((uintptr_t)1 << 48), (uintptr_t)wide | ((uintptr_t)1 << 63)};
  for (size_t i = 0; i < sizeof high / sizeof high[0]; i++)
    CHECK_MSG(_ebb_map_kind((const void *)high[i]) == EBB_MAP_NONE, "%#zx: %d", (size_t)high[i],
              _ebb_map_kind((const void *)high[i]));
  CHECK_MSG(!ebb_owns((const void *)((uintptr_t)small | ((uintptr_t)1 << 47))), "a high alias is owned");
  CHECK_MSG(!ebb_owns((const void *)((uintptr_t)small | ((uintptr_t)1 << 48))), "a non-canonical alias is owned");
  ebb_free(large);
  CHECK_MSG(_ebb_map_kind(large) == EBB_MAP_NONE, "freed large block still mapped: %d", _ebb_map_kind(large));
  ebb_free(small);
  ebb_free(medium);
  ebb_free(wide);
}

int main(void) {
  test_block_start();
  test_map();
  return check_summary("unit_lookup");
}
