/* SPDX-License-Identifier: MIT */
/* internal.h - what ebb's modules share: assertions, the fast inline helpers
 * (size class, pointer -> segment -> page, thread id, the segment map) and
 * the cross-module functions, grouped by the module that defines them.
 * Names: _ebb_<module>_<what>; public names ebb_* live in include/ebb.h. */
#ifndef EBB_INTERNAL_H
#define EBB_INTERNAL_H

#include <assert.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ebb.h"
#include "types.h"

/* This thread is cleaning a heap it seized (seize.c): queue changes keep
 * that heap's fast paths redirected (direct table -> the empty page, local
 * tags 0) until the cleaning is done, so that its owner, should it wake,
 * takes a slow path and waits. */
extern __thread bool _ebb_seizing;

#ifndef EBB_DEBUG
#define EBB_DEBUG 0
#endif

#define ebb_export __attribute__((visibility("default")))
#define ebb_hidden __attribute__((visibility("hidden")))
/* A plain field that another thread reads (or writes) without the lock
 * that orders its other accesses: relaxed atomic accesses, the same
 * instructions as plain ones on x86-64 and arm64. The declaration says
 * who writes and who reads it. */
#define EBB_LOAD(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)
/* Built with ThreadSanitizer (gcc or clang). */
#if defined(__SANITIZE_THREAD__)
#define EBB_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define EBB_TSAN 1
#endif
#endif
#define EBB_STORE(field, value) __atomic_store_n(&(field), (value), __ATOMIC_RELAXED)
#define ebb_likely(x) __builtin_expect(!!(x), 1)
#define ebb_unlikely(x) __builtin_expect(!!(x), 0)
#define ebb_noinline __attribute__((noinline))
#define ebb_forceinline inline __attribute__((always_inline))

/* The standard names. Each public ebb_ function that has a standard
 * counterpart is followed by EBB_STD(name, ebb_name): an alias in the same
 * translation unit (aliases cannot cross files), so malloc costs no extra
 * jump. Built with EBB_OVERRIDE=0 (libebb-prefix), only the ebb_ names
 * exist and the C library's allocator stays in place. */
#ifndef EBB_OVERRIDE
#define EBB_OVERRIDE 1
#endif
#if EBB_OVERRIDE
#define EBB_STD(name, target) \
  extern __typeof__(target) name __attribute__((alias(#target), copy(target), visibility("default")))
#else
#define EBB_STD(name, target) extern __typeof__(target) ebb_unused_##name
#endif

/* ---- checks at three depths (EBB_DEBUG 1..3); the handler never allocates */
_Noreturn void _ebb_assert_fail(const char *expr, const char *file, int line);
#define EBB_ASSERT_AT(level, cond) \
  ((EBB_DEBUG >= (level) && !(cond)) ? _ebb_assert_fail(#cond, __FILE__, __LINE__) : (void)0)
#define ebb_assert(cond) EBB_ASSERT_AT(1, cond)
#define ebb_assert_internal(cond) EBB_ASSERT_AT(2, cond)
#define ebb_assert_expensive(cond) EBB_ASSERT_AT(3, cond)

/* NOLINTNEXTLINE(misc-redundant-expression): true as types.h defines them; here so that it stays so */
static_assert(EBB_SEGMENT_SIZE == ((size_t)1 << EBB_SEGMENT_SHIFT), "segment size");
static_assert(EBB_MAX_PAGES <= 64, "one descriptor per small page");
static_assert(EBB_WIDE_OBJ_MAX * 4 <= EBB_SEGMENT_SIZE, "wide pages hold several blocks");
static_assert(sizeof(ebb_segment_t) + EBB_MAX_PAGES * sizeof(ebb_page_t) <= EBB_SEGMENT_HEADER_SIZE,
              "segment header fits");
static_assert(sizeof(ebb_page_t) == 128, "page descriptors index with a shift");

/* ---- size classes --------------------------------------------------- */
/* Multiples of 16 up to 128 B (every block is 16-byte aligned, as glibc
 * promises: alignof(max_align_t)), then 8 classes per doubling, so rounding
 * wastes at most 12.5% from 128 B up. The smallest block is 16 B, not 8: a
 * free block holds its free-list link and, in its second word, the mark
 * that tells a double free (_ebb_block_mark). */
static inline size_t _ebb_wsize(size_t size) { return (size + 7) >> 3; }

/* Bin of a request size (size <= EBB_WIDE_OBJ_MAX). */
static inline unsigned _ebb_bin(size_t size) {
  if (size <= 16) return 1;
  if (size <= 128) return (unsigned)((size + 15) >> 4);
  size_t w = _ebb_wsize(size) - 1;
  unsigned b = 63u - (unsigned)__builtin_clzll(w);
  return ((b << 3) | (unsigned)((w >> (b - 3)) & 7)) - 23;
}

/* Block size of a bin. */
static inline size_t _ebb_bin_size(unsigned bin) {
  if (bin <= 8) return (size_t)(bin == 0 ? 1 : bin) * 16;
  unsigned b = (bin + 23) >> 3, x = (bin + 23) & 7;
  return ((size_t)(9 + x) << (b - 3)) * 8;
}

/* ---- pointer -> metadata ------------------------------------------- */
/* A slot of the segment map holds EBB_MAP_NONE, EBB_MAP_LARGE (the start
 * of a large block), or for a segment its page shift (>= EBB_MAP_SEGMENT):
 * free reads the shift with the test it needs anyway. A pointer outside
 * the 47-bit user address space (kernel half, non-canonical, garbage) is
 * NONE: compared, not masked, so that no garbage pointer can alias a
 * segment and be read as one. */
enum { EBB_MAP_NONE = 0, EBB_MAP_LARGE = 1, EBB_MAP_SEGMENT = 2 };
static_assert(EBB_SMALL_PAGE_SHIFT >= EBB_MAP_SEGMENT, "page shifts are segment kinds in the map");
extern _Atomic(uint8_t) _ebb_segment_map[EBB_MAP_SLOTS];

static inline uint8_t _ebb_map_kind(const void *p) {
  uintptr_t slot = (uintptr_t)p >> EBB_SEGMENT_SHIFT;
  if (ebb_unlikely(slot >= EBB_MAP_SLOTS)) return EBB_MAP_NONE;
  return atomic_load_explicit(&_ebb_segment_map[slot], memory_order_relaxed);
}

static inline bool _ebb_map_is_segment(uint8_t kind) { return kind >= EBB_MAP_SEGMENT; }

static inline ebb_segment_t *_ebb_segment_of(const void *p) {
  return (ebb_segment_t *)((uintptr_t)p & ~(uintptr_t)EBB_SEGMENT_MASK);
}

static inline ebb_page_t *_ebb_page_of(ebb_segment_t *seg, const void *p) {
  size_t idx = ((uintptr_t)p - (uintptr_t)seg) >> seg->page_shift;
  return &seg->pages[idx];
}

/* The same, with the page shift read from the segment map. */
static inline ebb_page_t *_ebb_page_at(ebb_segment_t *seg, const void *p, uint8_t map_kind) {
  ebb_assert_internal(map_kind == seg->page_shift);
  size_t idx = ((uintptr_t)p & EBB_SEGMENT_MASK) >> map_kind;
  return &seg->pages[idx];
}

/* Blocks of the page not on its free, local_free or purged lists. The
 * loads are relaxed atomics: statistics and a parked page's owner read
 * this while a purge that holds the page may change it. */
static inline uint32_t _ebb_page_used(const ebb_page_t *page) {
  return (uint32_t)(__atomic_load_n(&page->margin, __ATOMIC_RELAXED) +
                    (int32_t)__atomic_load_n(&page->park_at, __ATOMIC_RELAXED));
}

static inline void _ebb_page_set_park_at(ebb_page_t *page, uint32_t park_at) {
  page->margin += (int32_t)page->park_at - (int32_t)park_at;
  page->park_at = park_at;
}

/* A cached mapping's resident bytes (segment->cache_resident_pages). */
static inline size_t _ebb_cache_resident(const ebb_segment_t *seg) {
  return (size_t)EBB_LOAD(seg->cache_resident_pages) * EBB_OS_PAGE;
}
static inline void _ebb_cache_resident_set(ebb_segment_t *seg, size_t bytes) {
  EBB_STORE(seg->cache_resident_pages, (uint32_t)(bytes / EBB_OS_PAGE));
}

/* Position of a page descriptor in its segment. */
static inline size_t _ebb_page_index(const ebb_segment_t *seg, const ebb_page_t *page) {
  return (size_t)(page - seg->pages);
}

/* ---- EBB_SECURE=1 (secure.c) ------------------------------------------ */
/* Set once at initialisation; then every malloc and free takes a slow
 * path that checks a bitmap of live blocks. */
extern ebb_hidden bool _ebb_secure;
void _ebb_secure_init(void);
void _ebb_secure_page_init(ebb_page_t *page, size_t psize);
void _ebb_secure_segment_unmapped(ebb_segment_t *seg);
void _ebb_secure_on_alloc(ebb_page_t *page, const ebb_block_t *b);
bool _ebb_secure_on_free(ebb_page_t *page, const ebb_block_t *b); /* false: not live (reported) */
bool _ebb_secure_is_live(const ebb_page_t *page, const ebb_block_t *b); /* the same test, bit untouched */
bool _ebb_secure_bit(const ebb_page_t *page, const void *b); /* the block's live bit, nothing reported (ebb_owns) */
void _ebb_secure_check_link(const ebb_page_t *page, const ebb_block_t *from, const ebb_block_t *next);
/* The same for a list whose blocks may be in any page (heap->delayed_free). */
void _ebb_secure_check_any_link(const ebb_page_t *page, const ebb_block_t *from, const ebb_block_t *next);

/* Sets the page's flags and, with them, page->local_tag: the segment
 * owner's id (0, or EBB_THREAD_ORPHAN, when the segment has no live owner)
 * when flags are 0, this thread is not a seizer cleaning the heap
 * (_ebb_seizing: the owner must find its fast paths redirected should it
 * wake) and secure mode is off; else 0. Called by the owner, or by a
 * seizer. */
static inline void _ebb_page_set_flags(ebb_page_t *page, uint8_t flags) {
  page->flags = flags;
  uintptr_t tag = 0;
  if (flags == 0 && !_ebb_seizing && !_ebb_secure)
    tag = atomic_load_explicit(&_ebb_segment_of(page)->thread_id, memory_order_relaxed);
  atomic_store_explicit(&page->local_tag, tag, memory_order_relaxed);
}

/* off < page->span, where another thread may be writing span (EBB_STORE):
 * a relaxed load. gcc does not fold an atomic load into the compare, which
 * costs every free one instruction, so on x86-64 the compare reads span
 * itself, in one instruction (an aligned 8-byte load is atomic there).
 * ThreadSanitizer builds use the C11 load, which it checks. */
static inline bool _ebb_span_covers(const ebb_page_t *page, size_t off) {
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__) && !defined(EBB_TSAN)
  bool below;
  __asm__("cmpq %2, %1" : "=@ccb"(below) : "r"(off), "m"(page->span));
  return below;
#else
  return off < EBB_LOAD(page->span);
#endif
}

/* True if p is the start of a block that the page has carved. With
 * m = ceil(2^44 / size) and off < 2^22: off * m mod 2^44 is (off/size) * e
 * (e = m*size - 2^44 < size) for an exact multiple, which is < 2^22, and
 * >= m >= 2^25 (size <= 2^19) for any other offset. page->div_magic holds
 * m << 20, so the "mod 2^44" is the 64-bit wrap-around of one multiply,
 * and the product is < 2^42 for a block start and >= 2^45 otherwise:
 * testing its bits from 44 up needs no second load. */
static_assert(EBB_WIDE_OBJ_MAX <= ((size_t)1 << 19) && EBB_SEGMENT_SHIFT <= 22, "block-start test bounds");
static inline uint64_t _ebb_div_magic(size_t block_size) {
  return ((((uint64_t)1 << 44) + block_size - 1) / block_size) << 20;
}
static inline bool _ebb_is_block_start(const ebb_page_t *page, const void *p) {
  size_t off = (size_t)((const uint8_t *)p - page->start);
  if (!_ebb_span_covers(page, off)) return false; /* below start, past capacity, or unused page */
  return ((off * page->div_magic) >> 44) == 0;
}

/* ---- the freed mark ---------------------------------------------------- */
/* Every free stores the address of the block's page descriptor in the
 * block's second word, and every allocation clears it. A free that finds
 * the mark already there frees a block that is free: a double free,
 * caught before the block reaches a list twice (where it would be handed
 * out twice, or make a list a cycle). The mark is an address inside ebb's
 * segment header, which no program stores into its own blocks, so a live
 * block never carries it by chance. A purge that returns a free block's
 * memory returns its mark too: a second free after that is caught only by
 * EBB_SECURE=1 (secure.c). */
static inline const void *_ebb_block_mark(const ebb_block_t *b) { return ((const void *const *)b)[1]; }
static inline void _ebb_block_set_mark(ebb_block_t *b, const ebb_page_t *page) {
  ((const void **)b)[1] = page;
}
static inline void _ebb_block_clear_mark(ebb_block_t *b) { ((const void **)b)[1] = NULL; }

/* ---- threads --------------------------------------------------------- */
/* A unique non-zero id per live thread: its TLS base. no_sanitize: gcc's UBSan
 * takes %fs:0 for a null pointer (its report then calls malloc, which
 * comes back here). */
__attribute__((no_sanitize("undefined"))) static inline uintptr_t _ebb_thread_id(void) {
#if defined(__x86_64__) && defined(__SEG_FS)
  /* The TCB's self pointer, as a memory operand the compiler can fold into
   * a compare (cmp %fs:0, reg). */
  return *(const uintptr_t __seg_fs *)0;
#elif defined(__x86_64__)
  uintptr_t tid;
  __asm__("movq %%fs:0, %0" : "=r"(tid));
  return tid;
#else
  return (uintptr_t)__builtin_thread_pointer();
#endif
}

/* Clears a page's flags with the tag set to this thread's id: right for
 * the owner, whose malloc path uses it. A seizer reaches it too (a delayed
 * free that unfulls a page and settles the parked-in-place head it
 * displaces): the seizer's id then stands in the tag until clean() restores
 * every queued page's tag (_ebb_page_fast_paths_restore), and nothing in
 * between frees a block on the seizer's thread. */
static inline void _ebb_page_clear_flags_owner(ebb_page_t *page) {
  page->flags = 0;
  atomic_store_explicit(&page->local_tag, _ebb_thread_id(), memory_order_relaxed);
}

extern __thread ebb_heap_t *_ebb_tls_heap;

extern ebb_heap_t _ebb_heap_empty; /* every thread's heap until its first malloc */
extern ebb_page_t _ebb_page_empty; /* a page with nothing free */

/* The thread_free word with `block` pushed in front (types.h): its link is
 * the old head, the count one more, the state kept. */
static inline uintptr_t _ebb_tf_pushed(uintptr_t tf, ebb_block_t *block) {
  block->next = (ebb_block_t *)(tf & EBB_TF_BLOCK_MASK);
  return (uintptr_t)block | ((tf & ~EBB_TF_BLOCK_MASK) + EBB_TF_COUNT_ONE);
}

/* ---- global state (init.c) -------------------------------------------- */
/* One lock for the slow global state: segment registry, segment cache,
 * abandoned list, heap pool, live heaps (the large cache has its own lock,
 * large.c, taken after this one). No mapping is made
 * under it (mmap, mremap: so a refused mapping may release memory, which
 * takes it). The purge passes hold it across madvise and munmap: the pass
 * over offered pages walks the registry under it and purges each
 * segment's batch before moving on (a segment leaves the registry, under
 * the lock, before it is unmapped), and the segment cache's pass purges
 * and unmaps cached segments under it. Allocating threads take it only
 * for whole segments and heaps (never for a page), so a pass's system
 * call delays only those. Taken around fork(). */
extern pthread_mutex_t _ebb_global_lock;
void _ebb_lock(void);
void _ebb_unlock(void);
bool _ebb_lock_held(void); /* by this thread; always false unless EBB_DEBUG >= 2 */
void _ebb_init_process(void);
bool _ebb_is_initialized(void);

/* ---- messages (msg.c) ------------------------------------------------- */
/* Tiny formatter: %s %c %d %u %zu %zx %x %p %%. Never allocates. */
size_t _ebb_vformat(char *buf, size_t cap, const char *fmt, va_list ap);
size_t _ebb_format(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void _ebb_message(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void _ebb_verbose(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void _ebb_fatal(const char *what);
/* Heap misuse: prints "ebb: error: <what> of a pointer not allocated by ebb:
 * 0x..." and aborts, unless EBB_ON_ERROR=warn. */
void _ebb_error_foreign(const char *what, const void *p);
/* "ebb: error: double free of 0x...", then as above. */
void _ebb_error_double_free(const void *p);

/* ---- options (options.c) ---------------------------------------------- */
typedef enum ebb_option_e {
  EBB_OPT_VERBOSE,
  EBB_OPT_STATS,
  EBB_OPT_STATS_FILE,    /* OPT_PATH: read it with _ebb_option_path */
  EBB_OPT_ON_ERROR,      /* 0 = abort, 1 = warn */
  EBB_OPT_LARGE_THRESHOLD,
  EBB_OPT_REALLOC_MAP,   /* 0 = never */
  EBB_OPT_SEGMENT_CACHE,
  EBB_OPT_PURGE_DELAY_MS,
  EBB_OPT_PURGE_THREAD,
  EBB_OPT_DIRTY_MAX,
  EBB_OPT_DIRTY_FRACTION,
  EBB_OPT_LARGE_CACHE,
  EBB_OPT_MADVISE,       /* 0 = dontneed, 1 = free */
  EBB_OPT_THP,           /* 0 = auto, 1 = never, 2 = always (os.c) */
  EBB_OPT_THP_PARTIAL_DELAY_MS, /* the purge delay of a huge page's free part while it holds live data (purge.c) */
  EBB_OPT_LIMIT_MARGIN,  /* percent of a memory limit kept free of ebb's dirty memory */
  EBB_OPT_SECURE,        /* every free and allocation checked against a bitmap (secure.c) */
  EBB_OPT_SNAPSHOT,      /* publish the statistics in /dev/shm/ebb-<pid> (snapshot.c) */
  EBB_OPT_SNAPSHOT_MS,   /* how often */
  EBB_OPT_COUNT
} ebb_option_t;
void _ebb_options_init(void);
extern _Atomic(long long) _ebb_option_values[EBB_OPT_COUNT];
static inline long long _ebb_option(ebb_option_t opt) {
  return atomic_load_explicit(&_ebb_option_values[opt], memory_order_relaxed);
}
bool _ebb_option_set(ebb_option_t opt, long long value); /* false if out of range */
void _ebb_options_print(void); /* every option, its value and where it came from (ebb_options_print) */
/* A path option's text, or NULL when unset. The environment's strings of
 * the process's start live as long as the process. */
static inline const char *_ebb_option_path(ebb_option_t opt) { return (const char *)(intptr_t)_ebb_option(opt); }
/* Parsing, exposed for unit tests: 0 on success, else -1. */
int _ebb_options_parse_size(const char *text, long long *out);

/* ---- verbose output (msg.c) ---------------------------------------------- */
/* EBB_VERBOSE=1: the cheap check a slow path makes before it builds a line. */
static inline bool _ebb_verbose_on(void) { return ebb_unlikely(_ebb_option(EBB_OPT_VERBOSE) != 0); }
/* Kinds of decision, each rate-limited on its own (msg.c). */
typedef enum ebb_vkind_e {
  EBB_V_PARK,    /* a page parked: offered for purging */
  EBB_V_PURGE,   /* a purge pass released memory */
  EBB_V_BUDGET,  /* the dirty budget was exceeded */
  EBB_V_LIMIT,   /* memory in use came near a limit */
  EBB_V_SEGMENT, /* a segment mapped, or the segment cache evicted */
  EBB_V_LARGE,   /* a big large block mapped or unmapped; the large cache evicted */
  EBB_V_QUIET,   /* a quiet thread's pages reached */
  EBB_V_KINDS
} ebb_vkind_t;
/* One line of that kind, unless VERBOSE_PER_SECOND of them were printed
 * this second (then counted, and the count printed later). */
void _ebb_verbose_rated(ebb_vkind_t kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void _ebb_verbose_flush(void); /* at exit: how many lines of each kind were left out */
/* Sizes as text (buffers of EBB_SIZE_TEXT): as an option value ("512k",
 * "1t", "100000") and as an amount ("12.5 MiB"). Return buf. */
#define EBB_SIZE_TEXT 24
const char *_ebb_size_option(char buf[EBB_SIZE_TEXT], unsigned long long bytes);
const char *_ebb_size_human(char buf[EBB_SIZE_TEXT], unsigned long long bytes);

/* ---- os.c: aligned segments and large mappings ------------------------- */
void *_ebb_os_map_aligned(size_t size, size_t align, size_t offset);
size_t _ebb_os_unmap(void *p, size_t size);   /* a mapping from _ebb_os_map_aligned; returns the resident bytes it held */
void _ebb_os_release(void *p, size_t size);   /* any mapping; never fails (may strand it) */
size_t _ebb_os_retry_stranded(void);          /* purge passes: unmap what could not be */
size_t _ebb_os_stranded_bytes(void);          /* mapped, decommitted, waiting for an unmap */
void _ebb_os_fork_child(void);
void _ebb_os_map_set(const void *slot_start, uint8_t kind);
bool _ebb_os_thp_on(void);                     /* segments are backed by 2 MiB huge pages (EBB_THP, the system's setting) */
void _ebb_os_thp_advise(void *segment);        /* a fresh segment: MADV_HUGEPAGE / MADV_NOHUGEPAGE as EBB_THP says */
#define EBB_HUGE_SHIFT 21                      /* transparent huge pages: 2 MiB, two per segment */
#define EBB_HUGE_SIZE ((size_t)1 << EBB_HUGE_SHIFT)
extern _Atomic(size_t) _ebb_os_mapped;
extern _Atomic(size_t) _ebb_os_mapped_peak;
void _ebb_os_mapped_add(size_t bytes); /* counts a mapping's growth, and the peak */

/* ---- segment.c -------------------------------------------------------- */
ebb_page_t *_ebb_segment_page_alloc(ebb_heap_t *heap, ebb_page_kind_t kind, unsigned bin);
void _ebb_segment_page_free(ebb_heap_t *heap, ebb_page_t *page);
void _ebb_segment_abandon_all(ebb_heap_t *heap);
size_t _ebb_segment_page_size(const ebb_segment_t *seg, const ebb_page_t *page, uint8_t **start);
/* The bytes of a page from offset `from` on that may be resident from its
 * classes' carving: 0 if fresh, else its touched OS pages (at least one,
 * at most the page) but those a purge took while blocks of the page were
 * in use (marked in purged_os). Racy reads of another holder's page are
 * fine for statistics. */
size_t _ebb_page_dirty_bytes(const ebb_segment_t *seg, const ebb_page_t *page, size_t from);
/* A purge (or a segment's setup) made the page fresh, or found it may be
 * dirty: a fresh page has touched nothing yet. */
static inline void _ebb_page_set_fresh(ebb_page_t *page, bool fresh) {
  page->is_fresh = fresh;
  if (fresh) EBB_STORE(page->touched_os, 0);
}
void _ebb_segment_clear_purged(ebb_segment_t *seg, const uint8_t *start, size_t len);
void _ebb_segment_registry_add(ebb_segment_t *seg);
void _ebb_segment_registry_remove(ebb_segment_t *seg);
extern ebb_segment_t *_ebb_segment_registry;  /* every mapped segment, via all_next (global lock) */
extern ebb_segment_t *_ebb_segment_abandoned; /* exited threads' segments, via next (global lock) */
extern size_t _ebb_segment_abandoned_count;   /* global lock */
void _ebb_segment_abandoned_push(ebb_segment_t *seg);
ebb_segment_t *_ebb_segment_abandoned_pop(void); /* NULL if none */
/* Statistics by layer (ebb.h), gathered by the walk under the global
 * lock; stats.c copies them into the named fields. */
typedef struct ebb_layer_walk_s {
  uint64_t live, free, dirty, blocks, pages;
} ebb_layer_walk_t;
typedef struct ebb_stats_walk_s {
  ebb_layer_walk_t kinds[EBB_PAGE_WIDE + 1]; /* by page kind */
  uint64_t segment_cache_dirty, segment_cache_count;
  uint64_t large_cache_dirty, large_cache_count;
  uint64_t now_ms;            /* purge clock when the walk started */
  uint64_t oldest_dirty_ms;   /* the largest age seen of dirty memory */
} ebb_stats_walk_t;
void _ebb_segment_stats(ebb_stats_t *st, ebb_stats_walk_t *walk); /* caller holds the global lock */
uint64_t _ebb_segment_huge_bytes_locked(int pagemap); /* huge-page bytes of every registered mapping (global lock) */
void _ebb_large_cache_stats_locked(ebb_stats_t *st, ebb_stats_walk_t *walk); /* caller holds the global lock; takes the cache's */
/* Blocks of one size class, over every page in use (malloc_info). */
typedef struct ebb_bin_stats_s {
  uint64_t free_blocks; /* on free lists or carved and free, not purged */
  uint64_t live_blocks;
} ebb_bin_stats_t;
void _ebb_segment_bin_stats(ebb_bin_stats_t bins[EBB_BIN_MAX + 1]); /* caller holds the global lock */
size_t _ebb_segment_purge_cache(uint64_t now, uint64_t delay, bool force, bool urgent);
size_t _ebb_segment_cache_count(void);
void _ebb_segment_orphan_others(uintptr_t self); /* fork child, global lock held */
void _ebb_segment_clear_tags_locked(uintptr_t thread_id); /* global lock held */
#define EBB_THREAD_ORPHAN ((uintptr_t)1) /* no thread has this id */
#if EBB_DEBUG >= 3
size_t _ebb_segment_dirty_locked(void); /* offered IDLE pages + unpurged cached segments (global lock held) */
size_t _ebb_large_dirty_locked(void);   /* the large cache's bytes (global lock held; takes the cache's) */
#endif

/* ---- page.c ----------------------------------------------------------- */
void _ebb_page_init(ebb_page_t *page, ebb_heap_t *heap, unsigned bin);
void _ebb_page_reset_purged(ebb_page_t *page);
void _ebb_page_collect(ebb_page_t *page);
bool _ebb_page_extend(ebb_page_t *page);
bool _ebb_page_recarve(ebb_page_t *page);
void _ebb_page_set_delayed(ebb_page_t *page, ebb_delayed_t state, bool override_never);
bool _ebb_page_is_valid(const ebb_page_t *page);
void _ebb_queue_push_front(ebb_heap_t *heap, unsigned qi, ebb_page_t *page);
void _ebb_queue_push_back(ebb_heap_t *heap, unsigned qi, ebb_page_t *page);
void _ebb_queue_remove(ebb_heap_t *heap, unsigned qi, ebb_page_t *page);
ebb_page_t *_ebb_page_find_free(ebb_heap_t *heap, unsigned bin);
bool _ebb_page_to_full(ebb_heap_t *heap, ebb_page_t *page);
void _ebb_page_unfull(ebb_heap_t *heap, ebb_page_t *page);
void _ebb_page_offer(ebb_page_t *page, size_t bytes);
void _ebb_page_reoffer(ebb_page_t *page);
bool _ebb_page_reoffer_quiet(ebb_page_t *page); /* no notify: the caller may hold the global lock */
void _ebb_page_purge_done(ebb_page_t *page);
ebb_claim_t _ebb_page_claim(ebb_page_t *page);
void _ebb_page_park(ebb_heap_t *heap, ebb_page_t *page);
void _ebb_page_unpark(ebb_heap_t *heap, ebb_page_t *page);
void _ebb_page_init_tables(void);
void _ebb_page_reap(ebb_heap_t *heap);
void _ebb_page_free_flagged(ebb_heap_t *heap, ebb_page_t *page, ebb_block_t *block);
void _ebb_page_after_free(ebb_heap_t *heap, ebb_page_t *page);
void _ebb_page_free_left_few(ebb_page_t *page); /* the free fast path's margin ran out */
void _ebb_page_free(ebb_heap_t *heap, ebb_page_t *page);
void _ebb_page_fast_paths_restore(ebb_heap_t *heap); /* direct table and local tags from the queues */

/* The owner takes back a page parked in place (page.c, park_in_place): one
 * CAS unless a purge has it. Inline: the malloc slow path's common case. */
static inline bool _ebb_page_take_back_quick(ebb_page_t *page) {
  ebb_assert(page->flags == (EBB_PAGE_PARKED | EBB_PAGE_IN_PLACE));
  uint32_t c = EBB_CLAIM_IDLE;
  return atomic_compare_exchange_strong_explicit(&page->claim, &c, EBB_CLAIM_OWNED, memory_order_acquire,
                                                 memory_order_relaxed);
}

/* The claim is the owner's again: the page is back in use. */
static inline void _ebb_page_take_back_claimed(ebb_page_t *page) {
  _ebb_page_clear_flags_owner(page);
  if (page->stash != NULL) {
    page->free = page->stash;
    page->stash = NULL;
  }
}

static inline void _ebb_page_take_back(ebb_page_t *page) {
  if (ebb_unlikely(!_ebb_page_take_back_quick(page))) _ebb_page_claim(page); /* purging or purged */
  _ebb_page_take_back_claimed(page);
  /* (The malloc fast path's take-back never runs in secure mode: its
   * direct table leads only to the empty page.) */
  if (ebb_unlikely(_ebb_secure)) atomic_store_explicit(&page->local_tag, 0, memory_order_relaxed);
}

/* ---- budget.c: the dirty budget and the purge clock ---------------------- */
extern _Atomic(size_t) _ebb_dirty_bytes;
extern _Atomic(size_t) _ebb_lazy_total;
extern _Atomic(size_t) _ebb_unmapped_total;
/* How resident bytes went back to the OS. */
typedef enum ebb_release_e { EBB_RELEASE_PURGE, EBB_RELEASE_LAZY, EBB_RELEASE_UNMAP } ebb_release_t;
/* Where released bytes were: a page kind (the pages of a segment, also
 * when the segment is unmapped without being cached), or one of these. */
typedef enum ebb_layer_e {
  EBB_LAYER_LARGE = EBB_PAGE_LARGE, /* large blocks in use: freed past the cache, or shrunk */
  EBB_LAYER_SEGMENT_CACHE,
  EBB_LAYER_LARGE_CACHE,
  EBB_LAYERS
} ebb_layer_t;
extern _Atomic(size_t) _ebb_purged_by_layer[EBB_LAYERS]; /* indexed by ebb_page_kind_t or ebb_layer_t */
/* Counts them once in the totals and in their layer (a page kind or an
 * ebb_layer_t). */
void _ebb_budget_released(size_t bytes, ebb_release_t how, unsigned layer);
size_t _ebb_budget_released_here(void);                     /* this thread's releases so far */
extern _Atomic(size_t) _ebb_inuse_bytes;
extern _Atomic(size_t) _ebb_budget_cached; /* _ebb_budget() as of the last pass or offer past it */
uint64_t _ebb_purge_clock_ms(void);
void _ebb_purge_dirty_add(size_t bytes); /* may wake the purge thread (budget) */
void _ebb_purge_dirty_sub(size_t bytes);
void _ebb_inuse_add(size_t bytes); /* also raises the budget's recent peak */
void _ebb_inuse_sub(size_t bytes);
void _ebb_purge_saw_in_place(size_t bytes); /* a pass's total of in-place IDLE pages */
size_t _ebb_budget(void);
void _ebb_budget_inuse_peak_age(uint64_t now); /* a pass restarts the peak once it is a second old */
void _ebb_budget_limit_refresh(void);          /* samples the limits about once a second (limit.c) */

/* ---- purge.c: the purge policy ------------------------------------------ */
/* The next pass purges without waiting; true if it was not urgent yet. */
typedef enum { EBB_URGENT_BUDGET, EBB_URGENT_LIMIT } ebb_urgent_t;
bool _ebb_purge_urgent_set(ebb_urgent_t why);
void _ebb_purge_limit_near(void);  /* in-use memory grew into a limit's room */
void _ebb_purge_notify(void);            /* something was offered: start/wake */
void _ebb_purge_thread_exiting(void);    /* a thread with a heap is exiting (heap.c) */
/* Read on the free path: hidden, so that each is one rip-relative load. */
extern ebb_hidden _Atomic(int) _ebb_inplace_hint;
/* The purge thread's state, one word so that the park path tests it with
 * one compare: EBB_PT_RUNNING and nothing else set means the thread runs,
 * will look again within the delay, and need not be woken. Written with
 * atomic or/and (purge.c). */
enum {
  EBB_PT_RUNNING = 1, /* started */
  EBB_PT_FAILED = 2,  /* could not start: passes run on allocator entry; retried (purge.c) */
  EBB_PT_IDLE = 4,    /* waiting with no timeout: wake it */
  EBB_PT_URGENT = 8   /* over budget: the next pass purges without waiting */
};
extern ebb_hidden _Atomic int _ebb_purge_thread;

/* The owner parked a page of `seg` in place (claim IDLE already stored):
 * the cheap offer, inline in the free path. The hint protocol is at the
 * top of purge.c. */
static inline void _ebb_purge_parked_in_place(ebb_segment_t *seg) {
  atomic_store_explicit(&seg->inplace_hint, 1, memory_order_release); /* after claim = IDLE */
  atomic_thread_fence(memory_order_seq_cst);
  if (ebb_unlikely(!atomic_load_explicit(&_ebb_inplace_hint, memory_order_relaxed))) {
    atomic_store_explicit(&_ebb_inplace_hint, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
  }
  if (ebb_likely(atomic_load_explicit(&_ebb_purge_thread, memory_order_relaxed) == EBB_PT_RUNNING)) return;
  _ebb_purge_notify();
}
void _ebb_purge_hint_abandoned(void);    /* a remote free hit an abandoned segment */
void _ebb_purge_hint_remote(void);       /* a remote free hit a purged page */
void _ebb_purge_on_entry(void);          /* purge thread off: purge from here */
size_t _ebb_purge_run(bool force);       /* one pass; returns bytes released */
/* The passes over segments (purge.c; named for what they walk). */
size_t _ebb_segment_purge_idle(uint64_t now, uint64_t delay, bool force);
size_t _ebb_segment_purge_abandoned(uint64_t now, uint64_t delay, bool force);
void _ebb_segment_reoffer_remote(void);
/* A mapping was refused: give back the address space ebb keeps (caches,
 * exited threads' empty segments). True if there was any: try again. */
bool _ebb_purge_release_for_mapping(void);
/* _ebb_os_map_aligned, retried once after _ebb_purge_release_for_mapping. */
void *_ebb_purge_map_aligned(size_t size, size_t align, size_t offset);
typedef struct ebb_purge_batch_s {
  uint8_t *start; /* a run of memory to purge with one call */
  size_t len;
  size_t released; /* resident bytes the flushes so far gave back */
} ebb_purge_batch_t;
void _ebb_purge_page(ebb_segment_t *seg, ebb_page_t *page, ebb_purge_batch_t *batch);
void _ebb_purge_batch_flush(ebb_purge_batch_t *batch);
size_t _ebb_purge_owned_pages(ebb_heap_t *heap); /* the caller holds the heap */
bool _ebb_purge_zeroes(void);           /* purged memory reads as zero */
void _ebb_purge_fork_prepare(void);
void _ebb_purge_fork_parent(void);
void _ebb_purge_fork_child(void);
extern _Atomic(int) _ebb_abandoned_hint;

/* ---- seize.c: reaching a quiet owner's pages ------------------------------ */
void _ebb_seize_init(void);
void _ebb_seize_note_activity(ebb_heap_t *heap);
void _ebb_seize_owner_arrived(ebb_heap_t *heap);
size_t _ebb_seize_pass(uint64_t now, uint64_t delay, bool force); /* pass lock held */
size_t _ebb_seize_clean_own(ebb_heap_t *heap); /* the caller's own heap, now */
bool _ebb_seize_waiting(void);
extern _Atomic(int) _ebb_seize_hint;

/* Every owner slow path starts here (and ends with _ebb_seize_leave): it
 * notes the activity for the purge passes, and answers a pass that asked
 * for (or seized) the heap before it touches anything. The empty heap
 * (a thread before its first allocation) has nothing to answer.
 * Returns true if the heap was cleaned meanwhile (by this thread or by a
 * pass that seized it): a page the caller holds a pointer to may have gone
 * back to its segment, and its segment to the cache or the kernel. */
static inline bool _ebb_seize_enter(ebb_heap_t *heap) {
  atomic_store_explicit(&heap->in_slow, atomic_load_explicit(&heap->in_slow, memory_order_relaxed) + 1,
                        memory_order_relaxed);
  if (ebb_unlikely(!atomic_load_explicit(&heap->activity, memory_order_relaxed))) _ebb_seize_note_activity(heap);
  if (ebb_likely(atomic_load_explicit(&heap->seize, memory_order_relaxed) == EBB_SEIZE_NONE)) return false;
  _ebb_seize_owner_arrived(heap);
  return true;
}

static inline void _ebb_seize_leave(ebb_heap_t *heap) {
  atomic_store_explicit(&heap->in_slow, atomic_load_explicit(&heap->in_slow, memory_order_relaxed) - 1,
                        memory_order_relaxed);
}
/* ---- snapshot.c: the statistics published for other processes ------------ */
/* EBB_SNAPSHOT=1 (include/ebb_snapshot.h). The purge thread publishes;
 * nothing on an allocation path looks at it. */
bool _ebb_snapshot_on(void);
void _ebb_snapshot_init(void);       /* at initialisation: creates the object */
uint64_t _ebb_snapshot_due_in(void); /* purge thread: ms until the next publication (publishes when due) */
void _ebb_snapshot_exit(void);       /* at exit: the last publication, then the object's name goes */
void _ebb_snapshot_fork_child(void); /* the child publishes under its own pid */

/* ---- limit.c: the memory limit the process lives under -------------------- */
/* What ebb's in-use + dirty memory may reach before a limit is near
 * (SIZE_MAX: no limit). Hidden: read when a page is taken into use. */
extern ebb_hidden _Atomic(size_t) _ebb_limit_ceiling;
void _ebb_limit_sample(size_t ebb_bytes); /* reads /proc, /sys, rlimits: not on an allocation path */
bool _ebb_limit_address_tight(void);      /* mapped memory is near RLIMIT_AS / RLIMIT_DATA */

/* ---- heap.c ----------------------------------------------------------- */
ebb_heap_t *_ebb_heap_get(void); /* this thread's heap, made on first use */
void _ebb_heap_init_empty(void);
void _ebb_heap_thread_done(void *arg);
void _ebb_heap_drain_delayed(ebb_heap_t *heap);
void _ebb_heap_collect(ebb_heap_t *heap);
void _ebb_heap_stats(ebb_stats_t *st); /* caller holds the global lock */
void _ebb_heap_orphan_others(ebb_heap_t *self); /* fork child, global lock held */
ebb_heap_t *_ebb_heap_first(void); /* every heap ever made, newest first, via all_next (no lock) */

/* ---- alloc.c / free.c ------------------------------------------------- */
/* Copies of EBB_LARGE_THRESHOLD and EBB_REALLOC_MAP (SIZE_MAX when 0:
 * never) in the form the allocation paths compare against; written by
 * options.c whenever the option is set (hidden: no GOT load). */
extern ebb_hidden size_t _ebb_large_threshold;
extern ebb_hidden size_t _ebb_realloc_map;
/* Size first: the fast path leaves it where the call wants it. */
void *_ebb_malloc_generic(size_t size, ebb_heap_t *heap, bool zero);
void *_ebb_malloc_miss(size_t size, ebb_heap_t *heap, ebb_page_t *page); /* the malloc fast path missed on page */
size_t _ebb_usable_size(const void *p, const char *caller);
void _ebb_free_block_local(ebb_heap_t *heap, ebb_page_t *page, ebb_block_t *block);
void _ebb_free_slow(void *p);

/* ---- large.c: large blocks and the large cache ------------------------- */
void *_ebb_large_alloc(size_t size, size_t align, bool zero);
void _ebb_large_free(ebb_segment_t *seg);
bool _ebb_large_is_cached(const void *p); /* p is a freed large block waiting in the cache */
size_t _ebb_large_cache_count(void);      /* blocks in the large cache (a relaxed read: a snapshot) */
void *_ebb_large_realloc(ebb_segment_t *seg, size_t size); /* stays large; NULL only when a grow fails */
size_t _ebb_large_purge_cache(uint64_t now, uint64_t delay, bool force);
void _ebb_large_fork_prepare(void); /* the cache's own lock, taken after the global lock */
void _ebb_large_fork_parent(void);
void _ebb_large_fork_child(void);
ebb_segment_t *_ebb_large_segment_of(const void *p);

/* ---- stats.c ---------------------------------------------------------- */
/* EBB_STATS_FILE at exit: appends the text of ebb_stats_print to `path`
 * (%p: the process id), or says on stderr why it cannot. Never allocates. */
void _ebb_stats_print_to_file(const char *path);

/* ---- init.c ----------------------------------------------------------- */
void _ebb_fork_prepare(void);
void _ebb_fork_parent(void);
void _ebb_fork_child(void);

#endif /* EBB_INTERNAL_H */
