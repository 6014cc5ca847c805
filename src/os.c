/* os.c - address space from the OS: aligned mappings for segments and large
 * blocks, and the segment map that says which 4 MiB slots are ebb's.
 *
 * Concurrency: the map is an array of relaxed atomic bytes. A slot is set
 * after its mapping exists and cleared before it is unmapped; a pointer the
 * program obtained from ebb was published to it (by the program's own
 * synchronisation) after the set, so a reader always sees it.
 * The map lives in .bss: 32 MiB of address space that costs no memory until
 * a slot's byte is written (4 KiB of map covers 16 GiB of heap). */
#include <errno.h>
#include <stdint.h>

#include "internal.h"
#include "prim.h"

_Atomic(uint8_t) _ebb_segment_map[EBB_MAP_SLOTS]; /* untouched pages cost no memory */
_Atomic(size_t) _ebb_os_mapped; /* bytes currently mapped by this module */

void _ebb_os_map_set(const void *slot_start, uint8_t kind) {
  uintptr_t slot = (uintptr_t)slot_start >> EBB_SEGMENT_SHIFT;
  ebb_assert(((uintptr_t)slot_start & EBB_SEGMENT_MASK) == 0);
  ebb_assert(slot < EBB_MAP_SLOTS);
  atomic_store_explicit(&_ebb_segment_map[slot], kind, memory_order_release);
}

static uintptr_t align_up(uintptr_t x, size_t align) { return (x + align - 1) & ~(uintptr_t)(align - 1); }

/* Maps `size` bytes at p such that p + offset is a multiple of `align`
 * (a power of two >= EBB_OS_PAGE) and the whole range lies inside the
 * segment map. NULL + ENOMEM on failure. Over-maps by `align` and trims. */
void *_ebb_os_map_aligned(size_t size, size_t align, size_t offset) {
  if (size > ((size_t)1 << EBB_ADDRESS_BITS) || align > ((size_t)1 << (EBB_ADDRESS_BITS - 2))) {
    errno = ENOMEM;
    return NULL;
  }
  size_t total = size + align;
  uint8_t *raw = _ebb_prim_map(total);
  if (raw == NULL) return NULL;
  uintptr_t target = align_up((uintptr_t)raw + offset, align) - offset;
  uint8_t *p = (uint8_t *)target;
  _ebb_prim_unmap(raw, (size_t)(p - raw));
  _ebb_prim_unmap(p + size, (size_t)(raw + total - (p + size)));
  if (((uintptr_t)p + size) >> EBB_ADDRESS_BITS) { /* outside the map: refuse */
    _ebb_prim_unmap(p, size);
    errno = ENOMEM;
    return NULL;
  }
  atomic_fetch_add_explicit(&_ebb_os_mapped, size, memory_order_relaxed);
  return p;
}

void _ebb_os_unmap(void *p, size_t size) {
  _ebb_prim_unmap(p, size);
  atomic_fetch_sub_explicit(&_ebb_os_mapped, size, memory_order_relaxed);
}
