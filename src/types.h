/* types.h - ebb's data structures and layout constants.
 *
 * Memory comes from the OS in segments: 4 MiB regions aligned to 4 MiB. A
 * segment's header (ebb_segment_t, at its start) holds the descriptors of its
 * pages; a page holds blocks of one size class. free(p) finds the segment by
 * masking p and the page by shifting the offset: O(1), no lock.
 *
 *   small  pages: 64 KiB,  blocks up to 8 KiB
 *   medium pages: 512 KiB, blocks up to 64 KiB
 *   wide   pages: the whole segment, blocks up to 512 KiB
 *   large  blocks: their own mapping (above the large threshold, an option)
 *
 * Ownership: a segment belongs to one thread's heap (segment->thread_id) or
 * to nobody (0: abandoned by an exited thread, on the global abandoned list).
 * A page's plain fields belong to the owner while the page is OWNED, to a
 * purge pass while it holds the page's claim, and to a pass that holds the
 * owner's heap SEIZED (seize.c); other threads only push onto
 * page->thread_free (atomic) and heap->delayed_free (atomic).
 */
#ifndef EBB_TYPES_H
#define EBB_TYPES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EBB_KiB ((size_t)1024)
#define EBB_MiB (EBB_KiB * EBB_KiB)

#define EBB_SEGMENT_SHIFT 22
#define EBB_SEGMENT_SIZE ((size_t)1 << EBB_SEGMENT_SHIFT)
#define EBB_SEGMENT_MASK (EBB_SEGMENT_SIZE - 1)
#define EBB_SMALL_PAGE_SHIFT 16
#define EBB_MEDIUM_PAGE_SHIFT 19
#define EBB_SMALL_OBJ_MAX (8 * EBB_KiB)
#define EBB_MEDIUM_OBJ_MAX (64 * EBB_KiB)
#define EBB_WIDE_OBJ_MAX (512 * EBB_KiB) /* largest size class */
#define EBB_MAX_PAGES (EBB_SEGMENT_SIZE >> EBB_SMALL_PAGE_SHIFT) /* 64 */
#define EBB_OS_PAGE 4096
/* Segment header: rounded so that page 0's blocks start OS-page aligned. */
#define EBB_SEGMENT_HEADER_SIZE (16 * EBB_KiB)
/* A large block's header sits on the OS page just below the block. */
#define EBB_LARGE_HEADER_SIZE EBB_OS_PAGE

/* Address space covered by the segment map: 47 bits (x86-64 and arm64
 * user space without explicit opt-in to 5-level paging). */
#define EBB_ADDRESS_BITS 47
#define EBB_MAP_SLOTS ((size_t)1 << (EBB_ADDRESS_BITS - EBB_SEGMENT_SHIFT))

/* Size classes (internal.h): multiples of 16 up to 128 B, then 8 per
 * doubling. Bins 1..EBB_BIN_MAX; bin 0 is unused. */
#define EBB_BIN_MAX 104
#define EBB_BIN_FULL (EBB_BIN_MAX + 1) /* the queue of full pages */
#define EBB_DIRECT_MAX 1024            /* sizes served through heap->direct */
#define EBB_DIRECT_COUNT (EBB_DIRECT_MAX + 1) /* indexed by the request size itself: no rounding on the fast path */

typedef struct ebb_block_s {
  struct ebb_block_s *next; /* free-list link, in the freed block itself */
} ebb_block_t;

/* page->thread_free packs a block pointer and a 2-bit delayed-free state. */
typedef enum ebb_delayed_e {
  EBB_NO_DELAYED = 0,       /* remote frees push onto thread_free */
  EBB_USE_DELAYED = 1,      /* page is full: remote frees go to heap->delayed_free */
  EBB_DELAYED_FREEING = 2,  /* a remote thread is pushing onto heap->delayed_free */
  EBB_NEVER_DELAYED = 3     /* page has no heap (abandoned or being freed) */
} ebb_delayed_t;
#define EBB_TF_STATE_MASK ((uintptr_t)3)

typedef enum ebb_page_kind_e {
  EBB_PAGE_SMALL,
  EBB_PAGE_MEDIUM,
  EBB_PAGE_WIDE,
  EBB_PAGE_LARGE
} ebb_page_kind_t;

struct ebb_heap_s;

/* page->flags: any bit set sends the owner's free to its slow path. */
#define EBB_PAGE_IN_FULL 1 /* on the heap's full queue */
#define EBB_PAGE_PARKED 2  /* offered for purging; owner frees go to thread_free */
#define EBB_PAGE_IN_PLACE 4 /* with PARKED: empty, parked where it is in its queue */

/* page->claim: who may touch a page's lists and memory. The owner uses an
 * OWNED page freely. A page the owner stops using (parked, or free in its
 * segment) is offered: IDLE. Any thread running a purge pass may move IDLE
 * to PURGING (CAS), purge, and store PURGED. The owner takes a page back
 * with a CAS from IDLE or PURGED to OWNED, waiting out PURGING. */
typedef enum ebb_claim_e {
  EBB_CLAIM_OWNED = 0,
  EBB_CLAIM_IDLE = 1,
  EBB_CLAIM_PURGING = 2,
  EBB_CLAIM_PURGED = 3,
  EBB_CLAIM_PURGING_AGAIN = 4 /* PURGING, and blocks were freed meanwhile: re-offer after */
} ebb_claim_t;

/* A page: blocks of one size, owned by one heap. Fields used by the malloc
 * and free fast paths come first (one cache line).
 * Invariant: used (= margin + park_at) + |free| + |local_free| + purged_blocks == capacity <=
 * reserved, where used counts blocks that are live or waiting on the
 * thread_free/delayed lists, and purged_blocks are free blocks whose first
 * OS page was purged (they are on no list; see segment->purged_os). */
typedef struct ebb_page_s {
  ebb_block_t *free;          /* blocks ready to allocate (owner only) */
  /* used - park_at, where used counts the blocks not on free, local_free
   * or purged (_ebb_page_used), and a local free that leaves used <=
   * park_at takes the slow path: kept as the difference so that the free
   * fast path's test is one decrement and a sign check. */
  int32_t margin;
  uint32_t park_at;           /* owner only: change with _ebb_page_set_park_at */
  ebb_block_t *local_free;    /* blocks freed by the owner since last collect */
  uint8_t *start;             /* first block */
  size_t span;                /* capacity * block_size: 0 while the page is unused. The holder writes it
                                 (EBB_STORE); ebb_malloc_usable_size and ebb_owns read it from any thread */
  uint64_t div_magic;         /* ceil(2^44 / block_size) << 20: block-start test */
  /* The owner's thread id while its frees may simply push onto local_free
   * (flags 0, segment owned), else 0: the free fast path's one test for
   * "local and plain". Owner writes (relaxed); anyone reads. */
  _Atomic(uintptr_t) local_tag;
  uint8_t flags;              /* EBB_PAGE_IN_FULL | EBB_PAGE_PARKED | EBB_PAGE_IN_PLACE (owner only; set with
                                 _ebb_page_set_flags, which keeps local_tag in step) */
  uint8_t free_is_zero;       /* blocks on `free` are zero but for their link */
  uint8_t in_use;             /* page holds a size class (not free in its segment) */
  uint8_t is_fresh;           /* memory past `capacity` is zero and not resident */
  uint8_t bin;                /* size class index */
  uint8_t pad1[3];
  /* ---- slow-path fields ---- */
  uint32_t block_size;        /* bytes per block (size class) */
  uint32_t capacity;          /* blocks carved so far */
  uint16_t reserved;          /* blocks that fit the page (at most 4096: 64 KiB of 16 B) */
  uint16_t purged_blocks;     /* free blocks taken off the lists by a purge */
  _Atomic(uint32_t) claim;    /* ebb_claim_t */
  _Atomic(uint32_t) idle_since; /* purge clock (ms) when first seen IDLE, 0 = not yet */
  uint32_t offered;           /* bytes counted as dirty while IDLE; 0 when parked in place (purge.c) */
  _Atomic(uintptr_t) thread_free; /* remote frees (LIFO) | ebb_delayed_t */
  _Atomic(struct ebb_heap_s *) heap; /* owner heap; stable while DELAYED_FREEING */
  struct ebb_page_s *next;    /* in the heap's queue for `bin`, full queue, or parked list */
  struct ebb_page_s *prev;
  ebb_block_t *stash;         /* parked in place: what `free` held (free is NULL) */
} ebb_page_t;

/* Pages of one size class that may have free blocks, first = most recently
 * used; allocation takes from the first. (The block size is the bin's.) */
typedef struct ebb_page_queue_s {
  ebb_page_t *first;
  ebb_page_t *last;
} ebb_page_queue_t;

/* A segment: header + pages. Pages never straddle segments. */
#define EBB_SEGMENT_OS_PAGES (EBB_SEGMENT_SIZE / EBB_OS_PAGE)
typedef struct ebb_segment_s {
  _Atomic(uintptr_t) thread_id; /* owner thread, 0 when abandoned or cached */
  ebb_page_kind_t kind;
  uint32_t page_shift;        /* log2 page size (wide/large: segment size) */
  uint32_t page_count;        /* pages in this segment */
  uint32_t used_pages;        /* pages in_use */
  size_t size;                /* bytes mapped (large: header page + block) */
  struct ebb_heap_s *heap;    /* owner heap (owner writes; NULL when abandoned) */
  struct ebb_segment_s *next; /* owner's segments, the abandoned list, or a cache */
  struct ebb_segment_s *prev;
  struct ebb_segment_s *free_next; /* owner's segments of this kind with a free page */
  struct ebb_segment_s *free_prev;
  struct ebb_segment_s *all_next; /* registry of every mapped segment (global lock) */
  struct ebb_segment_s *all_prev;
  bool in_free_queue;         /* on the owner's with_free list */
  bool cache_purged;          /* cached, and its memory already purged */
  _Atomic(uint32_t) idle_pages; /* counted IDLE pages (offered != 0): the purge pass skips 0 */
  _Atomic(uint8_t) inplace_hint; /* a page here may be parked in place: the pass looks */
  uint64_t cached_since;      /* purge clock (ms) when it entered a cache */
  _Atomic(uint64_t) purged_os[EBB_SEGMENT_OS_PAGES / 64]; /* OS pages whose block starts are purged */
  _Atomic(uint64_t) *live_bits; /* EBB_SECURE=1: a bit per 16 bytes, set while its block is live (secure.c) */
  ebb_page_t pages[];         /* page_count descriptors */
} ebb_segment_t;

/* A thread's heap. Only its thread touches it, except delayed_free. */
typedef struct ebb_heap_s {
  /* request size -> page to allocate from: the owner reads and writes it; a
   * pass that asks the heap to clean itself overwrites every entry with
   * the empty page while the owner may be updating some (seize.c). Both
   * sides use relaxed accesses (EBB_LOAD/EBB_STORE): whichever store lands
   * last, the owner's next slow path answers the request. */
  ebb_page_t *direct[EBB_DIRECT_COUNT];
  ebb_page_queue_t queues[EBB_BIN_FULL + 1]; /* per bin; [EBB_BIN_FULL] = full pages */
  _Atomic(ebb_block_t *) delayed_free; /* remote frees to full pages (LIFO) */
  uintptr_t thread_id;        /* owning thread */
  ebb_segment_t *segments;    /* every segment this heap owns */
  ebb_segment_t *with_free[2]; /* small/medium segments with a free page */
  ebb_page_t *parked[EBB_BIN_MAX + 1]; /* parked pages per bin (owner only), newest first */
  uint32_t reap_countdown;    /* generic allocations until the next reap of purged pages */
  struct ebb_heap_s *pool_next; /* unused heaps (global lock) */
  struct ebb_heap_s *all_next;  /* every heap ever made (global lock) */
  bool live;                  /* owned by a running thread */
  /* ---- reaching a quiet owner's pages (seize.c) ---- */
  uint32_t kernel_tid;        /* the owner's kernel thread id, for /proc/self/task (owner writes at start) */
  uint64_t sigblk;            /* the owner's blocked signals when it started (owner writes at start) */
  _Atomic(uint32_t) seize;    /* ebb_seize_t: NONE/REQUESTED/SEIZED/OWNER (CAS; seize.c has the protocol) */
  _Atomic(uint32_t) in_slow;  /* slow paths the owner is inside: owner writes (relaxed); a seizer reads it
                                 only while the owner is blocked in the kernel */
  _Atomic(uint8_t) activity;  /* the owner entered a slow path: owner sets, a pass exchanges it to 0 */
  _Atomic(uint8_t) unclean;   /* activity seen, not yet cleaned: a pass sets; a pass or the owner clears */
  _Atomic(uint64_t) active_at; /* purge clock of the last pass that saw activity, or asked a running
                                  owner (passes write, under the pass lock; the purge thread reads) */
  _Atomic(uint8_t) asked_running; /* asked while its owner ran; the next try is a second later (passes) */
} ebb_heap_t;

/* heap->seize (seize.c). */
typedef enum ebb_seize_e {
  EBB_SEIZE_NONE = 0,      /* fast paths as usual */
  EBB_SEIZE_REQUESTED = 1, /* fast paths redirected to slow paths; the owner cleans at its next one */
  EBB_SEIZE_SEIZED = 2,    /* a pass does the owner's work while it is blocked; the owner waits */
  EBB_SEIZE_OWNER = 3,     /* the owner is answering a request */
  EBB_SEIZE_REDIRECTING = 4 /* a pass is redirecting the fast paths (then REQUESTED); the owner waits */
} ebb_seize_t;

#endif /* EBB_TYPES_H */
