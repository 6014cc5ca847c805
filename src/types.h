/* SPDX-License-Identifier: MIT */
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
 * "The holder" of a page, below, is whoever may write its plain fields:
 * the segment's owner while the page is OWNED (claim), a purge pass while
 * it holds the claim (PURGING), a pass that holds the owner's heap SEIZED
 * (seize.c), or a pass that popped the page's abandoned segment. Secure
 * mode's bits follow the same rule (secure.c). Other threads push onto
 * page->thread_free and heap->delayed_free (CAS), and read what each field
 * below says.
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

/* page->thread_free packs, from the low bits up, a 2-bit delayed-free
 * state, the first block of the list (user addresses have 47 bits: below
 * bit 48) and, in bits 48..63, how many blocks the list holds, so that the
 * holder takes the list without walking it (every block on it was just
 * written by another core: one cache miss each). At most 4096 blocks fit a
 * page, so the count cannot overflow. */
typedef enum ebb_delayed_e {
  EBB_NO_DELAYED = 0,       /* remote frees push onto thread_free */
  EBB_USE_DELAYED = 1,      /* page is full: remote frees go to heap->delayed_free */
  EBB_DELAYED_FREEING = 2,  /* a remote thread is pushing onto heap->delayed_free */
  EBB_NEVER_DELAYED = 3     /* page has no heap (abandoned or being freed) */
} ebb_delayed_t;
#define EBB_TF_STATE_MASK ((uintptr_t)3)
#define EBB_TF_COUNT_SHIFT 48
#define EBB_TF_COUNT_ONE ((uintptr_t)1 << EBB_TF_COUNT_SHIFT)
#define EBB_TF_BLOCK_MASK ((EBB_TF_COUNT_ONE - 1) & ~EBB_TF_STATE_MASK)

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
 * Invariant: used (= margin + park_at) + |free| + |local_free| + |stash| + purged_blocks ==
 * capacity <= reserved, where used counts blocks that are live or waiting on the
 * thread_free/delayed lists, and purged_blocks are free blocks whose first
 * OS page was purged (they are on no list; see segment->purged_os). */
typedef struct ebb_page_s {
  /* Blocks ready to allocate: the holder (the malloc fast path is the
   * owner's). NULL while parked in place, and a pass holding such a page
   * leaves it NULL: the owner's direct table still leads to it. */
  ebb_block_t *free;
  /* used - park_at, where used counts the blocks not on free, local_free,
   * stash or purged (_ebb_page_used), and a local free that leaves used <=
   * park_at takes the slow path: kept as the difference so that the free
   * fast path's test is one decrement and a sign check. The holder writes
   * it (plain; a pass collecting thread_free subtracts); statistics and the
   * owner of a parked page that a pass may hold read it (relaxed loads). */
  int32_t margin;
  /* The owner, or a seizer: the queue operations set it (with
   * _ebb_page_set_park_at), never a purge pass; read as margin is. */
  uint32_t park_at;
  ebb_block_t *local_free;    /* blocks the owner freed since the last collect (the holder) */
  /* start, span, div_magic: the holder sets them (_ebb_page_init, extend,
   * a purge's reset); any thread's free reads them without a lock to find
   * the block (plain: a live block's offset is below every span the page
   * has had since the block was handed out). */
  uint8_t *start;             /* first block */
  size_t span;                /* capacity * block_size: 0 while the page is unused. The holder writes it
                                 (EBB_STORE); ebb_malloc_usable_size and ebb_owns read it from any thread */
  uint64_t div_magic;         /* ceil(2^44 / block_size) << 20: block-start test */
  /* The segment owner's thread id while its frees may simply push onto
   * local_free (flags 0, no seizer writing, not secure mode), else 0: the
   * free fast path's one test for "local and plain". Written (relaxed) by
   * the holder (_ebb_page_set_flags, _ebb_page_clear_flags_owner), by a
   * pass that asks for the heap (to 0, global lock held, while the owner
   * runs: seize.c), by the exiting owner and the fork child (to 0); read
   * (relaxed) by every thread's free. _ebb_page_is_valid checks the rule. */
  _Atomic(uintptr_t) local_tag;
  uint8_t flags;              /* EBB_PAGE_IN_FULL | EBB_PAGE_PARKED | EBB_PAGE_IN_PLACE (the owner or a seizer,
                                 with _ebb_page_set_flags, which keeps local_tag in step; a pass holding
                                 the page reads it) */
  uint8_t free_is_zero;       /* blocks on `free` are zero but for their link (the holder) */
  /* Page holds a size class (not free in its segment): the holder (take a
   * page, release it); statistics read it (relaxed). */
  uint8_t in_use;
  /* Memory past `capacity` is zero and not resident: the holder (a pass
   * sets it for a free page it claimed); statistics read it (relaxed). */
  uint8_t is_fresh;
  uint8_t bin;                /* size class index (set by _ebb_page_init) */
  /* Queued at the back when it left the full queue (a local free), and not
   * at the head since: it goes to the head, not to the parked list, when it
   * turns sparse (page.c, after_free_other). The holder. */
  uint8_t back_from_full;
  /* OS pages from `start` that carving may have made resident since the
   * page was last fresh: when it is not fresh, its dirty memory lies in
   * them (a class that never carved to the page's end leaves the rest
   * untouched). The holder (extend, a purge, a segment's setup) stores it,
   * statistics read it (relaxed); _ebb_page_set_fresh keeps it in step. */
  uint16_t touched_os;
  /* ---- slow-path fields ---- */
  uint32_t block_size;        /* bytes per block (set by _ebb_page_init; statistics read it) */
  uint32_t capacity;          /* blocks carved so far (the holder; statistics read it, relaxed) */
  uint16_t reserved;          /* blocks that fit the page (at most 4096: 64 KiB of 16 B) */
  uint16_t purged_blocks;     /* free blocks taken off the lists by a purge (the holder) */
  _Atomic(uint32_t) claim;    /* ebb_claim_t: CAS, acquire on taking, release on letting go */
  /* Purge clock (ms) when a pass first saw the page IDLE, 0 = not yet:
   * whoever offers stores 0, a pass stamps it (relaxed). */
  _Atomic(uint32_t) idle_since;
  /* Bytes counted as dirty while IDLE; 0 when parked in place (purge.c):
   * the holder stores it on an offer and a claim, a pass reads it when it
   * takes the page or re-offers it (relaxed atomic accesses). */
  uint32_t offered;
  /* Remote frees (LIFO) | their count | ebb_delayed_t (the packing is
   * at EBB_TF_COUNT_SHIFT): other threads push (CAS, release; the count
   * changes with the head, in the same CAS); the holder takes the list (CAS,
   * acquire); the state changes by CAS (acq_rel, _ebb_page_set_delayed). */
  _Atomic(uintptr_t) thread_free;
  /* Owner heap: the owner stores it (release) before the page takes
   * frees; a remote free reads it (acquire) only while DELAYED_FREEING,
   * which keeps it stable. */
  _Atomic(struct ebb_heap_s *) heap;
  struct ebb_page_s *next;    /* in the heap's queue for `bin`, full queue, or parked list (the owner or a seizer) */
  struct ebb_page_s *prev;
  ebb_block_t *stash;         /* parked in place: what `free` held (free is NULL; the holder) */
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
  /* Owner thread, 0 when abandoned or cached: the taking thread stores it
   * (release) when the segment joins its heap; the releasing or exiting
   * owner stores 0; the fork child stores EBB_THREAD_ORPHAN. Read
   * (relaxed) by every free that misses the local tag, by
   * _ebb_page_set_flags, and by passes and statistics (global lock). */
  _Atomic(uintptr_t) thread_id;
  /* kind, page_shift, page_count: set by the taking thread before the
   * segment map marks the segment (release); then read by any thread. */
  ebb_page_kind_t kind;
  uint32_t page_shift;        /* log2 page size (wide/large: segment size) */
  uint32_t page_count;        /* pages in this segment */
  /* Pages in_use: the owner, or a pass holding the abandoned segment;
   * statistics and the re-offer pass read it under the global lock, racily
   * (a snapshot, a skip). */
  uint32_t used_pages;
  /* Bytes mapped (large: header page + block; the thread that frees or
   * resizes the block; statistics read it under the global lock). */
  size_t size;
  struct ebb_heap_s *heap;    /* owner heap (the owner writes; NULL when abandoned or cached; statistics read it) */
  struct ebb_segment_s *next; /* owner's segments (the owner), the abandoned list or a cache (global lock) */
  union {
    struct ebb_segment_s *prev; /* owner's segments (the owner) */
    /* On the abandoned list (singly linked through next), the heap of the
     * thread that left it: the exiting owner stores it before the push,
     * adopt_one reads it (both under the global lock), to hand the segment
     * back to the next thread that takes that heap. In prev's place, so
     * that the page descriptors keep their offset (see below). */
    struct ebb_heap_s *left_by;
  };
  struct ebb_segment_s *free_next; /* owner's segments of this kind with a free page (the owner) */
  struct ebb_segment_s *free_prev;
  struct ebb_segment_s *all_next; /* registry of every mapped segment (global lock) */
  struct ebb_segment_s *all_prev;
  bool in_free_queue;         /* on the owner's with_free list (the owner) */
  /* Cached, and its memory already purged: the releasing thread sets it
   * before the cache takes the segment; then the global lock. */
  bool cache_purged;
  /* Counted IDLE pages (offered != 0), the pass skips 0: whoever offers,
   * claims or takes a page moves it (relaxed). */
  _Atomic(uint32_t) idle_pages;
  /* A page here may be parked in place, the pass looks: the owner stores 1
   * (release, after claim IDLE), a pass exchanges it (acq_rel); the fences
   * of the hint protocol are purge.c's. */
  _Atomic(uint8_t) inplace_hint;
  /* While a segment is cached: its resident OS pages, header
   * included, read from the kernel as it entered the cache (nothing
   * touches a cached mapping); a segment's cache purge leaves its first
   * one. The releasing thread sets it before the cache takes the mapping;
   * then the global lock (statistics read it there; they ask the kernel
   * for a cached large block's at that time). 32 bits of OS pages
   * (16 TiB), in the padding before cached_since: the page descriptors
   * keep their offset, which the free fast path folds into one lea. */
  uint32_t cache_resident_pages;
  /* Purge clock (ms) when it entered a cache: the releasing thread sets it
   * before the cache takes it; then the global lock (0: a large block in use).
   * A small/medium/wide segment on the abandoned list keeps here when its
   * owner left it: the exiting owner stores it before the push (global
   * lock); a pass that popped the segment reads it (purge.c). */
  uint64_t cached_since;
  /* OS pages whose block starts are purged: a word covers pages of more
   * than one page descriptor, so each holder changes its bits with atomic
   * or/and (relaxed) and reads them the same way. */
  _Atomic(uint64_t) purged_os[EBB_SEGMENT_OS_PAGES / 64];
  /* EBB_SECURE=1: a bit per 16 bytes, set while its block is live. The
   * pointer is written once by the owner at its first page; the bits
   * follow the holder rule (secure.c). */
  _Atomic(uint64_t) *live_bits;
  ebb_page_t pages[];         /* page_count descriptors */
} ebb_segment_t;

/* A thread's heap. Its thread touches it, and a pass that holds it SEIZED
 * (seize.c) while the thread is blocked in the kernel; a pass that asks
 * rewrites the direct table and the local tags while it runs. Other
 * threads push onto delayed_free. */
typedef struct ebb_heap_s {
  /* Request size -> page to allocate from: the owner or a seizer reads and
   * writes it; a pass that asks stores the empty page into every entry
   * (global lock held) while the owner may be reading it on its fast path
   * or updating some entries on a slow path. All accesses are relaxed
   * (EBB_LOAD/EBB_STORE): whichever store lands last, the owner's next
   * slow path answers the request (seize.c). */
  ebb_page_t *direct[EBB_DIRECT_COUNT];
  ebb_page_queue_t queues[EBB_BIN_FULL + 1]; /* per bin; [EBB_BIN_FULL] = full pages (the owner or a seizer) */
  /* Remote frees to full pages (LIFO): other threads push (CAS, release),
   * the owner or a seizer takes the list (exchange, acquire). */
  _Atomic(ebb_block_t *) delayed_free;
  uintptr_t thread_id;        /* owning thread (set at the start, before `live`; passes read it under the global lock) */
  ebb_segment_t *segments;    /* every segment this heap owns (the owner or a seizer) */
  ebb_segment_t *with_free[2]; /* small/medium segments with a free page (the owner or a seizer) */
  ebb_page_t *parked[EBB_BIN_MAX + 1]; /* parked pages per bin, newest first (the owner or a seizer) */
  uint32_t reap_countdown;    /* generic allocations until the next reap of purged pages (the owner) */
  struct ebb_heap_s *pool_next; /* unused heaps (global lock) */
  /* Every heap ever made: set under the global lock before the heap is
   * published (release); passes follow it without the lock. */
  struct ebb_heap_s *all_next;
  /* Owned by a running thread: written under the global lock; passes read
   * it under the lock, and without it (relaxed) as a hint to skip. */
  bool live;
  /* ---- reaching a quiet owner's pages (seize.c) ---- */
  uint32_t kernel_tid;        /* the owner's kernel thread id, for /proc/self/task (the owner at its start and
                                 in a fork child; passes read it under the global lock) */
  uint64_t sigblk;            /* the owner's blocked signals when it started (the owner, before `live`) */
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
