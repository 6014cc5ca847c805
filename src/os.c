/* SPDX-License-Identifier: MIT */
/* os.c - address space from the OS: aligned mappings for segments and large
 * blocks, the segment map that says which 4 MiB slots are ebb's, the
 * ranges the kernel would not unmap at its map-count limit, and whether
 * segments get transparent huge pages.
 *
 * Concurrency: the map is an array of relaxed atomic bytes. A slot is set
 * after its mapping exists and cleared before it is unmapped; a pointer the
 * program obtained from ebb was published to it (by the program's own
 * synchronisation) after the set, so a reader always sees it.
 * The map lives in .bss: 32 MiB of address space that costs no memory until
 * a slot's byte is written (4 KiB of map covers 16 GiB of heap). */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "prim.h"

_Atomic(uint8_t) _ebb_segment_map[EBB_MAP_SLOTS]; /* untouched pages cost no memory; store release, load relaxed (above) */
_Atomic(size_t) _ebb_os_mapped; /* bytes currently mapped by this module (any thread that maps or unmaps; relaxed) */
_Atomic(size_t) _ebb_os_mapped_peak; /* the highest _ebb_os_mapped so far (_ebb_os_mapped_add; relaxed) */

void _ebb_os_map_set(const void *slot_start, uint8_t kind) {
  uintptr_t slot = (uintptr_t)slot_start >> EBB_SEGMENT_SHIFT;
  ebb_assert(((uintptr_t)slot_start & EBB_SEGMENT_MASK) == 0);
  ebb_assert(slot < EBB_MAP_SLOTS);
  atomic_store_explicit(&_ebb_segment_map[slot], kind, memory_order_release);
}

/* ---- ranges the kernel would not unmap --------------------------------------
 * At vm.max_map_count, unmapping part of a mapping that the kernel merged
 * with its neighbours needs a split it refuses (ENOMEM). Such a range is
 * decommitted instead (MADV_DONTNEED never splits: its memory goes back at
 * once) and kept here until a purge pass can unmap it, once the program
 * holds fewer mappings. Only its address space stays: statistics count it
 * as mapped, never as resident. One spin lock of its own, held for a few
 * stores and no system call: callers may hold the global lock. */
#define EBB_OS_STRANDED_MAX 64
typedef struct os_range_s {
  uint8_t *start; /* OS-page aligned */
  size_t size;    /* bytes */
} os_range_t;
static os_range_t stranded[EBB_OS_STRANDED_MAX]; /* stranded_lock; unordered */
static size_t stranded_count;                    /* stranded_lock */
static _Atomic(size_t) stranded_bytes;           /* all stranded bytes, the table's and any it had no room for */
static atomic_flag stranded_lock = ATOMIC_FLAG_INIT;

static void stranded_lock_take(void) {
  while (atomic_flag_test_and_set_explicit(&stranded_lock, memory_order_acquire)) _ebb_prim_yield();
}
static void stranded_lock_drop(void) { atomic_flag_clear_explicit(&stranded_lock, memory_order_release); }

/* Keeps a range for a later unmap; false if the table is full (then the
 * range stays mapped, decommitted, for the life of the process). */
static bool stranded_push(uint8_t *start, size_t size) {
  bool kept = false;
  stranded_lock_take();
  if (stranded_count < EBB_OS_STRANDED_MAX) {
    stranded[stranded_count++] = (os_range_t){start, size};
    kept = true;
  }
  stranded_lock_drop();
  return kept;
}

static bool stranded_pop(os_range_t *out) {
  bool found = false;
  stranded_lock_take();
  if (stranded_count > 0) {
    *out = stranded[--stranded_count];
    found = true;
  }
  stranded_lock_drop();
  return found;
}

static void strand(uint8_t *start, size_t size) {
  _ebb_prim_decommit(start, size, false);
  atomic_fetch_add_explicit(&stranded_bytes, size, memory_order_relaxed);
  if (!stranded_push(start, size))
    _ebb_verbose("ebb: %zu KiB of address space stay mapped (vm.max_map_count reached)\n", size / 1024);
}

/* Unmaps [p, p+size), or at the map-count limit decommits and keeps it. */
void _ebb_os_release(void *p, size_t size) {
  if (_ebb_prim_unmap(p, size) != 0) strand(p, size);
}

/* Unmaps the ranges kept above, until the kernel refuses one. Returns the
 * bytes of address space given back. */
size_t _ebb_os_retry_stranded(void) {
  size_t released = 0;
  os_range_t r;
  while (stranded_pop(&r)) {
    if (_ebb_prim_unmap(r.start, r.size) != 0) {
      /* No room if another thread filled the slot meanwhile: the range
       * then stays counted, like one the table never had room for. */
      stranded_push(r.start, r.size);
      break;
    }
    atomic_fetch_sub_explicit(&stranded_bytes, r.size, memory_order_relaxed);
    released += r.size;
  }
  return released;
}

size_t _ebb_os_stranded_bytes(void) { return atomic_load_explicit(&stranded_bytes, memory_order_relaxed); }

/* A fork child has one thread: a lock another thread held is free. */
void _ebb_os_fork_child(void) { atomic_flag_clear(&stranded_lock); }

/* ---- aligned mappings --------------------------------------------------------- */
static uintptr_t align_up(uintptr_t x, size_t align) { return (x + align - 1) & ~(uintptr_t)(align - 1); }

/* Maps `size` bytes at p such that p + offset is a multiple of `align`
 * (a power of two >= EBB_OS_PAGE) and the whole range lies inside the
 * segment map. NULL + ENOMEM on failure.
 * Reserves size + align of inaccessible address space, trims it to the
 * aligned range and only then makes that read/write. So the kernel's
 * overcommit check sees `size`, never the slack (an over-map would make a
 * big request fail that fits), and neither trim can fail at
 * vm.max_map_count: a reservation merges with no neighbour, so each trim
 * cuts the end of a mapping of its own, which needs no new one. */
void *_ebb_os_map_aligned(size_t size, size_t align, size_t offset) {
  if (size > ((size_t)1 << EBB_ADDRESS_BITS) || align > ((size_t)1 << (EBB_ADDRESS_BITS - 2))) {
    errno = ENOMEM;
    return NULL;
  }
  size_t total = size + align;
  uint8_t *raw = _ebb_prim_reserve(total);
  if (raw == NULL) return NULL;
  uint8_t *p = (uint8_t *)(align_up((uintptr_t)raw + offset, align) - offset);
  uint8_t *end = raw + total;
  if (_ebb_prim_unmap(raw, (size_t)(p - raw)) != 0) {
    _ebb_os_release(raw, total);
    p = NULL;
  } else if (_ebb_prim_unmap(p + size, (size_t)(end - (p + size))) != 0) {
    _ebb_os_release(p, (size_t)(end - p));
    p = NULL;
  } else if ((((uintptr_t)p + size) >> EBB_ADDRESS_BITS) != 0 || _ebb_prim_commit(p, size) != 0) {
    _ebb_os_release(p, size); /* outside the map, or more than the OS will back */
    p = NULL;
  }
  if (p == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  _ebb_os_mapped_add(size);
  return p;
}

/* The peak is a racy max (relaxed): malloc_info's "max", an estimate. */
void _ebb_os_mapped_add(size_t bytes) {
  size_t now = atomic_fetch_add_explicit(&_ebb_os_mapped, bytes, memory_order_relaxed) + bytes;
  if (now > atomic_load_explicit(&_ebb_os_mapped_peak, memory_order_relaxed))
    atomic_store_explicit(&_ebb_os_mapped_peak, now, memory_order_relaxed);
}

/* The resident bytes are read before the unmap: after it there is
 * nothing to ask. The caller counts them (_ebb_budget_released). */
size_t _ebb_os_unmap(void *p, size_t size) {
  size_t resident = _ebb_prim_resident(p, size);
  _ebb_os_release(p, size);
  atomic_fetch_sub_explicit(&_ebb_os_mapped, size, memory_order_relaxed);
  return resident;
}

/* ---- transparent huge pages ------------------------------------------------------
 * A segment is 4 MiB aligned, so where the kernel gives anonymous memory
 * huge pages it backs each segment with two 2 MiB ones, each faulted in
 * whole at its first touch. EBB_THP=always asks for them with
 * MADV_HUGEPAGE (the system setting "madvise" then applies them to ebb's
 * segments only), never keeps them away (MADV_NOHUGEPAGE), auto leaves the
 * system's setting. Large blocks keep the system's setting (large.c). */
enum { THP_AUTO = 0, THP_NEVER = 1, THP_ALWAYS = 2 };
static_assert(EBB_SEGMENT_SIZE % EBB_HUGE_SIZE == 0, "a segment, 4 MiB aligned, is whole huge pages");
/* The system setting, read once: 0 not yet, 1 "always", 2 anything else.
 * Any thread may store it (relaxed): they all read the same file. */
static _Atomic(int) system_thp;

static bool system_thp_always(void) {
  int known = atomic_load_explicit(&system_thp, memory_order_relaxed);
  if (known == 0) {
    char buf[128];
    _ebb_prim_read_file("/sys/kernel/mm/transparent_hugepage/enabled", 0, buf, sizeof(buf));
    known = strncmp(buf, "[always]", 8) == 0 ? 1 : 2;
    atomic_store_explicit(&system_thp, known, memory_order_relaxed);
  }
  return known == 1;
}

bool _ebb_os_thp_on(void) {
  long long mode = _ebb_option(EBB_OPT_THP);
  if (mode == THP_AUTO) return system_thp_always();
  return mode == THP_ALWAYS;
}

/* One madvise per fresh mapping: a cached segment keeps its flag. */
void _ebb_os_thp_advise(void *segment) {
  long long mode = _ebb_option(EBB_OPT_THP);
  if (mode != THP_AUTO) _ebb_prim_advise_huge(segment, EBB_SEGMENT_SIZE, mode == THP_ALWAYS);
}
