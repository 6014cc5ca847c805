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
#include <stdio.h>

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
 * call with any value, including NULL and pointers of other allocators. A
 * freed block reads as not owned, unless a purge returned its memory since
 * (by default 100 ms after the free; EBB_SECURE=1 knows it then too). */
EBB_API bool ebb_owns(const void *p);

/* Returns memory to the OS now: this thread's empty pages, and every page,
 * cached segment and cached large block that has waited purge_delay (all
 * of them with force). Returns the resident bytes the call gave back
 * (counted in purged_total as well). malloc_trim(0) is ebb_collect(true). */
EBB_API size_t ebb_collect(bool force);

/* Statistics, computed at the time of the call from every thread's pages.
 * They add up: live + free_in_pages + segment_cache + large_cache +
 * metadata = resident (ebb's estimate of its resident memory, which the
 * kernel's RSS of ebb's mappings confirms: live blocks count whole,
 * touched or not), free_in_live_pages + free_in_empty_pages =
 * free_in_pages, and resident + purged_or_untouched = mapped. Every byte
 * that stops being resident is counted once in purged_total: a purge
 * counts the bytes that were resident in the range it gives back, an unmap
 * the resident bytes of the mapping (with EBB_MADVISE=free, bytes the
 * kernel had not taken yet when their range is unmapped count again).
 * Figures are bytes unless named _count or _calls. One X-macro list makes
 * the struct, the text and the JSON.
 *
 * The struct is versioned and only ever grows at its end: a program built
 * against an older header reads the fields it knows at the offsets it
 * knows. Version 1 ended at madvise_calls (160 bytes); version 2 appended
 * free_in_live_pages, free_in_empty_pages and unmapped_total (184 bytes);
 * version 3 the layers, from small_live to oldest_dirty_ms (392 bytes);
 * version 4 anon_huge_pages (400 bytes), read from the kernel's page
 * tables of ebb's mappings at each call (one PAGEMAP_SCAN ioctl per
 * segment or large block, which walks only that range).
 *
 * Layers: the figures of each kind of memory, which add up to the totals.
 * small_, medium_ and wide_ pages have live, free (resident, in no live
 * block), dirty, purged_total, blocks_count (live blocks) and pages_count
 * (pages holding a size class). Large blocks are large_live, large_count
 * and large_purged_total; the caches segment_cache / large_cache (their
 * resident bytes), _dirty, _purged_total and _count (mappings). Then
 * small_live + medium_live + wide_live + large_live = live, small_free +
 * medium_free + wide_free = free_in_pages, the five _dirty = dirty, and
 * the six _purged_total = purged_total. The JSON is one flat object of
 * these same names. */
#define EBB_STATS_VERSION 4
#define EBB_STATS_FIELDS(X)                                                                   \
  X(live, "bytes in live blocks, rounded to their size class (large included); blocks freed by another thread, or into a parked page, count until their page collects them") \
  X(large_live, "of which live large blocks (their own mappings)")                           \
  X(free_in_pages, "resident bytes of pages not in live blocks: free_in_live_pages + free_in_empty_pages") \
  X(segment_cache, "resident bytes of free segments kept for reuse")                         \
  X(large_cache, "resident bytes of freed large blocks kept for reuse")                      \
  X(metadata, "segment and large-block headers, thread heaps")                               \
  X(resident, "live + free_in_pages + segment_cache + large_cache + metadata")              \
  X(mapped, "address space held from the OS")                                                \
  X(purged_or_untouched, "mapped but not resident: purged, or never touched")                \
  X(dirty, "bytes waiting for their purge delay (free, resident)")                           \
  X(purged_total, "resident bytes given back to the OS since start (purges and unmaps, each byte once)") \
  X(purged_lazy_total, "of which with MADV_FREE (RSS shows them until the kernel takes them)") \
  X(segments_count, "segments mapped")                                                        \
  X(abandoned_count, "segments of exited threads not yet reclaimed")                          \
  X(heaps_count, "thread heaps in use")                                                       \
  X(large_count, "live large blocks")                                                         \
  X(mmap_calls, "mmap system calls so far")                                                   \
  X(munmap_calls, "munmap system calls so far")                                               \
  X(madvise_calls, "madvise system calls so far")                                             \
  X(free_in_live_pages, "of free_in_pages, in pages that hold live blocks: their free blocks and not yet carved dirty tails") \
  X(free_in_empty_pages, "of free_in_pages, in pages with no live block (waiting for their purge delay)") \
  X(unmapped_total, "of purged_total, resident bytes given back by unmapping (cached segments, large blocks, shrunk large blocks)") \
  EBB_STATS_PAGE_LAYER(X, small, "small pages (64 KiB, blocks up to 8 KiB)")                  \
  EBB_STATS_PAGE_LAYER(X, medium, "medium pages (512 KiB, blocks up to 64 KiB)")              \
  EBB_STATS_PAGE_LAYER(X, wide, "wide pages (a whole segment, blocks up to 512 KiB)")         \
  X(large_purged_total, "of purged_total, from large blocks: freed past the large cache, or shrunk") \
  X(segment_cache_dirty, "of dirty, cached segments not yet purged")                          \
  X(segment_cache_purged_total, "of purged_total, from cached segments (purged or unmapped)")  \
  X(segment_cache_count, "segments in the segment cache")                                     \
  X(large_cache_dirty, "of dirty, cached large blocks (their whole mappings)")                \
  X(large_cache_purged_total, "of purged_total, from cached large blocks (unmapped)")         \
  X(large_cache_count, "mappings in the large cache")                                         \
  X(oldest_dirty_ms, "age of the oldest dirty memory, from when it began to wait for the purge delay; 0 if none") \
  X(anon_huge_pages, "of ebb's mappings, bytes the kernel backs with 2 MiB transparent huge pages (smaps' AnonHugePages; 0 before Linux 6.7)")

/* The six figures of one kind of page (small, medium, wide) in
 * EBB_STATS_FIELDS, named <kind>_live, _free, _dirty, _purged_total,
 * _blocks_count, _pages_count. */
#define EBB_STATS_PAGE_LAYER(X, kind, what)                                                   \
  X(kind##_live, "of live, in " what)                                                         \
  X(kind##_free, "of free_in_pages, in " what)                                                \
  X(kind##_dirty, "of dirty, in " what " (offered, or parked in place)")                      \
  X(kind##_purged_total, "of purged_total, from " what)                                       \
  X(kind##_blocks_count, "live blocks in " what)                                              \
  X(kind##_pages_count, what " holding a size class")

typedef struct ebb_stats_s {
  uint32_t version; /* EBB_STATS_VERSION of the library that filled it (1 from the one-argument entry) */
  uint32_t size;    /* bytes of the struct the library filled (at most the caller's size) */
#define EBB_STATS_MEMBER(name, help) uint64_t name;
  EBB_STATS_FIELDS(EBB_STATS_MEMBER)
#undef EBB_STATS_MEMBER
} ebb_stats_t;

/* Fills the first `size` bytes of *out (size: the caller's sizeof, so a
 * program built against an older header gets only the fields it knows),
 * whole fields only, and sets out->size to the bytes filled. Returns false
 * with errno = EINVAL when out is NULL or size cannot hold version and
 * size. Call it as ebb_stats_get(&st, sizeof st). */
EBB_API bool ebb_stats_get_sized(ebb_stats_t *out, size_t size);
/* The one-argument form of ebb 0.1 headers, kept for programs built
 * against them: it fills the version-1 fields only (160 bytes), forever.
 * New code calls the two-argument form, which the macro below maps to
 * ebb_stats_get_sized. */
EBB_API bool ebb_stats_get(ebb_stats_t *out);
#define ebb_stats_get(out, size) ebb_stats_get_sized((out), (size))
/* Prints the statistics as text to stderr. */
EBB_API void ebb_stats_print(void);
/* Writes the statistics as one JSON object (with a trailing newline) into
 * buf, NUL-terminated. Returns the length it needs without the NUL (as
 * snprintf does): if that is >= size the text was cut. */
EBB_API size_t ebb_stats_json(char *buf, size_t size);
/* glibc's malloc_info (also exported under that name): ebb's figures as
 * XML on fp, in glibc's shape (<malloc version="1">, one <heap> for the
 * process with the size classes in use, then the process totals). options
 * must be 0 (else -1, errno = EINVAL); -1 with errno also when fp is NULL
 * or writing fails. Allocates nothing from the heap it describes. */
EBB_API int ebb_malloc_info(int options, FILE *fp);

/* ---- options --------------------------------------------------------- */
/* Prints every option in effect to stderr, one line each:
 * "ebb:   EBB_<NAME> = <value> (<source>)", the value as it would be typed
 * (sizes with k/m/g/t) and the source one of default, environment or
 * mallopt. EBB_VERBOSE=1 prints the same at start. */
EBB_API void ebb_options_print(void);
/* The value in effect of option `name` ("PURGE_DELAY_MS" or
 * "EBB_PURGE_DELAY_MS"): sizes in bytes, switches 0/1, choices their index
 * (EBB_MADVISE: 0 dontneed, 1 free), a path 1 when set and 0 when not.
 * False with errno = EINVAL for a name that is not an option. */
EBB_API bool ebb_option_get(const char *name, long long *value);

/* ---- how a size is served -------------------------------------------- */
/* What ebb does with a request of `request` bytes, for this build and the
 * options in effect: ebb_size_info(size, &info, sizeof info) fills what
 * the caller's size holds (as ebb_stats_get) and sets info.size. */
typedef struct ebb_size_info_s {
  uint32_t size;            /* bytes filled */
  uint32_t reserved;
  uint64_t request;         /* the size asked about */
  uint64_t block;           /* bytes handed out: its size class; large: whole 4 KiB pages (reused from the cache: up to max(block/4, 4 MiB) more) */
  uint64_t page;            /* bytes of the page its blocks are carved from; large: its own mapping */
  uint64_t blocks_per_page; /* at most (a segment's first page gives up its header); 1 for large */
  uint64_t large_threshold; /* EBB_LARGE_THRESHOLD in effect: above it, a block gets its own mapping */
  uint64_t purge_delay_ms;  /* freed, its memory goes back to the OS this long after (EBB_PURGE_DELAY_MS) */
  const char *tier;         /* "small" (64 KiB pages), "medium" (512 KiB), "wide" (4 MiB), or "large" */
} ebb_size_info_t;
/* False with errno = EINVAL when out is NULL or size cannot hold `size`,
 * ENOMEM when the request is above PTRDIFF_MAX. */
EBB_API bool ebb_size_info(size_t request, ebb_size_info_t *out, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* EBB_H */
