/* SPDX-License-Identifier: MIT */
/* ebb - a general-purpose malloc for 64-bit Linux that gives memory back.
 *
 * Public API. Every standard allocation function exists twice: under its
 * standard name (malloc, free, ... in the shared and static library, so that
 * linking or LD_PRELOAD replaces the C library's allocator) and with the
 * ebb_ prefix, for programs that want ebb next to another allocator.
 */
#ifndef EBB_H
#define EBB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EBB_VERSION_MAJOR 0
#define EBB_VERSION_MINOR 1
#define EBB_VERSION_PATCH 0

#if defined(__GNUC__)
#define EBB_API __attribute__((visibility("default")))
#define EBB_MALLOC_ATTR __attribute__((malloc, warn_unused_result))
#else
#define EBB_API
#define EBB_MALLOC_ATTR
#endif

/* ---- the standard surface, ebb_ prefixed ---------------------------- */
EBB_API void *ebb_malloc(size_t size) EBB_MALLOC_ATTR;
EBB_API void *ebb_calloc(size_t count, size_t size) EBB_MALLOC_ATTR;
EBB_API void *ebb_realloc(void *p, size_t size);
EBB_API void *ebb_reallocarray(void *p, size_t count, size_t size);
EBB_API void ebb_free(void *p);
EBB_API void ebb_free_sized(void *p, size_t size);
EBB_API void ebb_free_aligned_sized(void *p, size_t alignment, size_t size);
EBB_API int ebb_posix_memalign(void **out, size_t alignment, size_t size);
EBB_API void *ebb_aligned_alloc(size_t alignment, size_t size) EBB_MALLOC_ATTR;
EBB_API void *ebb_memalign(size_t alignment, size_t size) EBB_MALLOC_ATTR;
EBB_API void *ebb_valloc(size_t size) EBB_MALLOC_ATTR;
EBB_API void *ebb_pvalloc(size_t size) EBB_MALLOC_ATTR;
EBB_API size_t ebb_malloc_usable_size(const void *p);

/* glibc's control and reporting functions (malloc.h), ebb_ prefixed.
 * ebb_mallinfo2 fills the glibc struct mallinfo2 layout: ten size_t fields
 * in the order arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks,
 * uordblks, fordblks, keepcost. */
struct mallinfo2;
struct mallinfo;
EBB_API int ebb_malloc_trim(size_t pad);
EBB_API int ebb_mallopt(int param, int value);
EBB_API void ebb_malloc_stats(void);
EBB_API struct mallinfo2 ebb_mallinfo2(void);
EBB_API struct mallinfo ebb_mallinfo(void);

/* ---- ebb's own API --------------------------------------------------- */

/* "0.1.0" */
EBB_API const char *ebb_version(void);

/* True when p points to the start of a live block that ebb allocated. Safe to
 * call with any value, including NULL and pointers of other allocators. */
EBB_API bool ebb_owns(const void *p);

/* Returns memory to the OS now: this thread's empty pages, and every page,
 * cached segment and cached large block that has waited purge_delay (all
 * of them with force). Returns the bytes released. malloc_trim(0) is
 * ebb_collect(true). */
EBB_API size_t ebb_collect(bool force);

/* Statistics, computed at the time of the call from every thread's pages.
 * They add up: live + free_in_pages + segment_cache + large_cache +
 * metadata = resident (ebb's estimate of its resident memory), and
 * resident + purged_or_untouched = mapped. The struct is versioned: ebb
 * fills version and size, and new fields are only ever appended. Figures
 * are bytes unless named _count. One X-macro list makes the struct, the
 * text and the JSON. */
#define EBB_STATS_VERSION 1
#define EBB_STATS_FIELDS(X)                                                                   \
  X(live, "bytes in live blocks, rounded to their size class (large included); blocks freed by another thread, or into a parked page, count until their page collects them") \
  X(large_live, "of which live large blocks (their own mappings)")                           \
  X(free_in_pages, "resident bytes in pages that no live block uses")                        \
  X(segment_cache, "resident bytes of free segments kept for reuse")                         \
  X(large_cache, "bytes of freed large blocks kept for reuse")                               \
  X(metadata, "segment and large-block headers, thread heaps")                               \
  X(resident, "live + free_in_pages + segment_cache + large_cache + metadata")              \
  X(mapped, "address space held from the OS")                                                \
  X(purged_or_untouched, "mapped but not resident: purged, or never touched")                \
  X(dirty, "bytes waiting for their purge delay (free, resident)")                           \
  X(purged_total, "bytes given back to the OS since start")                                  \
  X(purged_lazy_total, "of which with MADV_FREE (RSS shows them until the kernel takes them)") \
  X(segments_count, "segments mapped")                                                        \
  X(abandoned_count, "segments of exited threads not yet reclaimed")                          \
  X(heaps_count, "thread heaps in use")                                                       \
  X(large_count, "live large blocks")                                                         \
  X(mmap_calls, "mmap system calls so far")                                                   \
  X(munmap_calls, "munmap system calls so far")                                               \
  X(madvise_calls, "madvise system calls so far")

typedef struct ebb_stats_s {
  uint32_t version; /* EBB_STATS_VERSION of the library that filled it */
  uint32_t size;    /* sizeof(ebb_stats_t) of that library */
#define EBB_STATS_MEMBER(name, help) uint64_t name;
  EBB_STATS_FIELDS(EBB_STATS_MEMBER)
#undef EBB_STATS_MEMBER
} ebb_stats_t;

/* Fills *out; returns false (errno = EINVAL) when out is NULL. */
EBB_API bool ebb_stats_get(ebb_stats_t *out);
/* Prints the statistics as text to stderr. */
EBB_API void ebb_stats_print(void);
/* Writes the statistics as one JSON object (with a trailing newline) into
 * buf, NUL-terminated. Returns the length it needs without the NUL (as
 * snprintf does): if that is >= size the text was cut. */
EBB_API size_t ebb_stats_json(char *buf, size_t size);

/* ---- options --------------------------------------------------------- */
/* Prints every option in effect to stderr, one line each:
 * "ebb:   EBB_<NAME> = <value> (<source>)", the value as it would be typed
 * (sizes with k/m/g/t) and the source one of default, environment or
 * mallopt. EBB_VERBOSE=1 prints the same at start. */
EBB_API void ebb_options_print(void);

#ifdef __cplusplus
}
#endif
#endif /* EBB_H */
