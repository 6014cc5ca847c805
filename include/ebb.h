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

/* Statistics, merged over all threads at the time of the call. The struct is
 * versioned: callers set nothing; ebb fills version and size, and new fields
 * are only ever appended. All figures are bytes unless named _count. */
#define EBB_STATS_VERSION 1
typedef struct ebb_stats_s {
  uint32_t version;        /* EBB_STATS_VERSION of the library that filled it */
  uint32_t size;           /* sizeof(ebb_stats_t) of that library */
  uint64_t live;           /* bytes in live blocks, rounded to their size class */
  uint64_t free_in_pages;  /* committed bytes of pages in use that hold no live block */
  uint64_t large_live;     /* bytes of live large blocks (own mappings), included in live */
  uint64_t metadata;       /* segment headers, heaps and other bookkeeping */
  uint64_t mapped;         /* address space ebb holds from the OS (segments + large) */
  uint64_t segments_count; /* segments currently mapped */
  uint64_t abandoned_count;/* segments of exited threads not yet reclaimed */
  uint64_t heaps_count;    /* thread heaps in use */
  uint64_t large_count;    /* live large blocks */
  uint64_t mmap_calls;     /* mmap system calls made so far */
  uint64_t munmap_calls;   /* munmap system calls made so far */
} ebb_stats_t;

/* Fills *out; returns false (errno = EINVAL) when out is NULL. */
EBB_API bool ebb_stats_get(ebb_stats_t *out);
/* Prints the statistics as text to stderr. */
EBB_API void ebb_stats_print(void);

#ifdef __cplusplus
}
#endif
#endif /* EBB_H */
