/* SPDX-License-Identifier: MIT */
/* purge.c - the purge policy: when free memory goes back to the OS.
 *
 * Rules (why each exists):
 *  - A page the owner stops using is offered (claim IDLE) and stays
 *    resident for purge_delay: a program that frees and allocates again
 *    soon should not pay a page fault per OS page. The delay is measured
 *    from the first purge pass that sees the page IDLE, so purging happens
 *    between purge_delay and 1.5 x purge_delay after the offer.
 *  - Past the dirty budget (EBB_DIRTY_MAX bytes, or EBB_DIRTY_FRACTION % of
 *    the memory in use at its peak over the last second, whichever is
 *    smaller, but never under 4 MiB so that
 *    small programs do not purge on every free) purging is immediate.
 *  - The deadline holds while the program is idle: a background thread,
 *    started the first time something is offered (never during
 *    initialisation), runs the passes. While nothing is dirty it sleeps
 *    until woken, and leaves after IDLE_EXIT_MS of that (its lifetime is
 *    with the thread, below). With EBB_PURGE_THREAD=0 the passes run on allocator
 *    entry instead (an idle program then keeps its memory).
 *  - Segments of exited threads are collected and purged by the passes too:
 *    nobody else would notice that other threads freed their blocks.
 *
 *  - Pages parked in place (an empty page still at the head of its queue:
 *    the one a loop that allocates and frees keeps emptying) are the hot
 *    case, so parking one costs no atomic read-modify-write: the owner
 *    stores claim IDLE, a hint in the segment and a global hint, and one
 *    fence. They are not in _ebb_dirty_bytes; a pass adds up the ones it
 *    sees for the budget, and statistics count them.
 *    Hint protocol (no page is missed, the thread never sleeps on one;
 *    "idle" is EBB_PT_IDLE in _ebb_purge_thread):
 *      owner: claim = IDLE; seg hint = 1; FENCE; if (!global) {global = 1;
 *             FENCE}; then reads _ebb_purge_thread (notifies unless it is
 *             RUNNING alone; a notify wakes a thread that is idle).
 *      pass:  global = 0 (exchange); FENCE; per segment: seg hint = 0
 *             (exchange); FENCE; scan claims; set both hints again if an
 *             IDLE page is left, then wake the thread if it went to sleep
 *             meanwhile (a pass run by ebb_collect on another thread).
 *      thread before sleeping: sets idle (atomic or, seq_cst); reads
 *             global (seq_cst) before each wait (nothing_to_do).
 *    Each pair is a store-fence-load handshake, so one side always sees
 *    the other.
 *
 * Concurrency: a pass claims each page it purges (IDLE -> PURGING -> PURGED,
 * CAS), so it never races the owner, which claims pages back the same way.
 * One pass at a time (pass_lock, also taken around fork). The thread's own
 * state: _ebb_purge_thread, one atomic word of EBB_PT_* bits; wake_lock + wake_cond
 * park the thread. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "prim.h"

/* Hints, each set by the thread that saw the event and taken (exchange) by
 * a pass; seq_cst where the purge thread must not sleep past it. */
_Atomic(int) _ebb_abandoned_hint;   /* a remote free hit an abandoned segment, or a thread exited */
static _Atomic(int) remote_hint;    /* a remote free hit a page a purge had handled */
_Atomic(int) _ebb_inplace_hint;     /* some segment's inplace_hint may be set (protocol above) */

void _ebb_purge_hint_abandoned(void) {
  if (!atomic_load_explicit(&_ebb_abandoned_hint, memory_order_relaxed))
    atomic_store_explicit(&_ebb_abandoned_hint, 1, memory_order_seq_cst);
  _ebb_purge_notify();
}

void _ebb_purge_hint_remote(void) {
  if (!atomic_load_explicit(&remote_hint, memory_order_relaxed))
    atomic_store_explicit(&remote_hint, 1, memory_order_seq_cst);
  _ebb_purge_notify();
}

static pthread_mutex_t pass_lock = PTHREAD_MUTEX_INITIALIZER; /* one pass at a time; taken before the global lock */
static __thread bool in_pass; /* this thread holds pass_lock */

static void pass_begin(void) {
  pthread_mutex_lock(&pass_lock);
  in_pass = true;
}
static bool pass_try_begin(void) {
  if (pthread_mutex_trylock(&pass_lock) != 0) return false;
  in_pass = true;
  return true;
}
static void pass_end(void) {
  in_pass = false;
  pthread_mutex_unlock(&pass_lock);
}
static pthread_mutex_t wake_lock = PTHREAD_MUTEX_INITIALIZER; /* the purge thread waits holding it; wakers signal under it */
static pthread_cond_t wake_cond;
/* EBB_PT_* bits (internal.h): any thread sets and clears them (atomic or /
 * and / CAS, seq_cst where a sleeper and a waker must see each other);
 * the free path reads it relaxed. */
_Atomic int _ebb_purge_thread;

static bool thread_has(int bit, memory_order order) {
  return (atomic_load_explicit(&_ebb_purge_thread, order) & bit) != 0;
}
/* Why the next pass is urgent, for its verbose line: the last setter's
 * reason (any thread stores, the pass reads; relaxed). */
static _Atomic(int) urgent_why;

bool _ebb_purge_urgent_set(ebb_urgent_t why) {
  if (thread_has(EBB_PT_URGENT, memory_order_relaxed)) return false;
  atomic_store_explicit(&urgent_why, (int)why, memory_order_relaxed);
  return (atomic_fetch_or_explicit(&_ebb_purge_thread, EBB_PT_URGENT, memory_order_relaxed) & EBB_PT_URGENT) == 0;
}
static bool urgent_take(void) {
  if (!thread_has(EBB_PT_URGENT, memory_order_relaxed)) return false;
  return (atomic_fetch_and_explicit(&_ebb_purge_thread, ~EBB_PT_URGENT, memory_order_relaxed) & EBB_PT_URGENT) != 0;
}
static _Atomic(uint64_t) next_entry_pass; /* EBB_PURGE_THREAD=0: clock of the next pass (relaxed; a racy gate, the pass lock decides) */

static uint64_t delay_ms(void) { return (uint64_t)_ebb_option(EBB_OPT_PURGE_DELAY_MS); }

/* Why a pass runs: its verbose line says so. */
typedef enum {
  PASS_DEADLINE,    /* the purge thread or an allocator entry: offered memory whose delay passed */
  PASS_URGENT,      /* the same, urgent: over the dirty budget or near the limit (urgent_why) */
  PASS_COLLECT,     /* ebb_collect(false) */
  PASS_COLLECT_ALL  /* ebb_collect(true), malloc_trim(0) */
} pass_why_t;

static void wake_thread(void);

static ebb_noinline void say_limit_near(void) {
  char inuse[EBB_SIZE_TEXT], dirty[EBB_SIZE_TEXT], ceiling[EBB_SIZE_TEXT];
  _ebb_size_human(inuse, atomic_load_explicit(&_ebb_inuse_bytes, memory_order_relaxed));
  _ebb_size_human(dirty, atomic_load_explicit(&_ebb_dirty_bytes, memory_order_relaxed));
  _ebb_size_human(ceiling, atomic_load_explicit(&_ebb_limit_ceiling, memory_order_relaxed));
  _ebb_verbose_rated(EBB_V_LIMIT,
                     "ebb: limit: %s in use and %s free is past %s, the memory limit less EBB_LIMIT_MARGIN (%zu%%): "
                     "free memory is purged at once\n",
                     inuse, dirty, ceiling, (size_t)_ebb_option(EBB_OPT_LIMIT_MARGIN));
}

/* In-use memory grew into the limit's room while memory is dirty: the
 * pass purges everything now, not at the next budget check (a program
 * refilling a freed 150 MiB with another size class faults in 100 MiB
 * between two passes 50 ms apart). */
ebb_noinline void _ebb_purge_limit_near(void) {
  if (atomic_load_explicit(&_ebb_dirty_bytes, memory_order_relaxed) == 0 ||
      thread_has(EBB_PT_URGENT, memory_order_relaxed))
    return;
  if (_ebb_purge_urgent_set(EBB_URGENT_LIMIT) && _ebb_verbose_on()) say_limit_near();
  if ((atomic_load_explicit(&_ebb_purge_thread, memory_order_seq_cst) & (EBB_PT_RUNNING | EBB_PT_FAILED)) ==
      EBB_PT_RUNNING)
    wake_thread(); /* never starts one: a caller may hold a lock */
}

/* ---- purging one page (the caller holds it: PURGING, or exclusively) ------ */
static size_t os_round_up(size_t x) { return (x + EBB_OS_PAGE - 1) & ~(size_t)(EBB_OS_PAGE - 1); }


/* With EBB_MADVISE=free, purged memory may keep its old contents. */
bool _ebb_purge_zeroes(void) { return _ebb_option(EBB_OPT_MADVISE) == 0; }

/* madvise is slow per call on some kernels and VMs (measured here: 0.7 ms
 * for 64 KiB, 9 ms for 256 MiB), so a pass merges adjacent ranges and
 * purges each run with one call. The caller flushes before it lets go of
 * the pages in the batch. */
/* What counts as released is what was resident in the run (a page that
 * was never touched, or a block's OS page already purged, gives nothing
 * back), read from the kernel just before: the holder keeps every block of
 * the run from use until the flush. */
static void batch_flush_now(ebb_purge_batch_t *b) {
  if (b->len == 0) return;
  bool lazy = !_ebb_purge_zeroes();
  size_t resident = _ebb_prim_resident(b->start, b->len);
  if (_ebb_prim_decommit(b->start, b->len, lazy) == 0) {
    b->released += resident;
    /* A run never leaves its segment: the header, never purged, keeps two
     * segments' pages apart. */
    _ebb_budget_released(resident, lazy ? EBB_RELEASE_LAZY : EBB_RELEASE_PURGE, _ebb_segment_of(b->start)->kind);
  }
  b->len = 0;
}

void _ebb_purge_batch_flush(ebb_purge_batch_t *b) { batch_flush_now(b); }

static void decommit(ebb_purge_batch_t *b, void *p, size_t size) {
  if (size == 0) return;
  if (b->len > 0 && b->start + b->len == (uint8_t *)p) {
    b->len += size;
    return;
  }
  batch_flush_now(b);
  b->start = p;
  b->len = size;
}

/* Bitmaps on the purging thread's stack: blocks of a page (at most a
 * 64 KiB page of 8-byte blocks) and OS pages of a page (at most 4 MiB). */
#define EBB_PAGE_MAX_BLOCKS (64 * 1024 / 8)
#define EBB_PAGE_MAX_OS (EBB_SEGMENT_SIZE / EBB_OS_PAGE)
typedef struct sparse_s {
  uint64_t free[EBB_PAGE_MAX_BLOCKS / 64]; /* block i is free */
  uint64_t os[EBB_PAGE_MAX_OS / 64];       /* OS page k holds only free memory */
} sparse_t;

static bool bit(const uint64_t *m, size_t i) { return (m[i / 64] >> (i % 64)) & 1; }
static void set_bit(uint64_t *m, size_t i) { m[i / 64] |= (uint64_t)1 << (i % 64); }

static size_t os_base(const ebb_segment_t *seg, const ebb_page_t *page) {
  return (size_t)(page->start - (const uint8_t *)seg) / EBB_OS_PAGE;
}

static bool seg_purged(const ebb_segment_t *seg, size_t os) {
  return (atomic_load_explicit(&seg->purged_os[os / 64], memory_order_relaxed) >> (os % 64)) & 1;
}

/* Marks the free blocks: those on `free`, and those a purge already took
 * off the lists (they start in a purged OS page). */
static void mark_free_blocks(const ebb_segment_t *seg, const ebb_page_t *page, sparse_t *sp) {
  size_t bs = page->block_size, base = os_base(seg, page);
  for (const ebb_block_t *b = page->free; b != NULL; b = b->next)
    set_bit(sp->free, (size_t)((const uint8_t *)b - page->start) / bs);
  if (page->purged_blocks == 0) return;
  for (size_t i = 0; i < page->capacity; i++) {
    if (seg_purged(seg, base + i * bs / EBB_OS_PAGE)) set_bit(sp->free, i);
  }
}

/* OS page k (relative to the page start) holds no live byte. */
static bool os_page_free(const ebb_page_t *page, const sparse_t *sp, size_t k) {
  size_t bs = page->block_size;
  size_t first = k * EBB_OS_PAGE / bs, last = ((k + 1) * EBB_OS_PAGE - 1) / bs;
  for (size_t i = first; i <= last && i < page->capacity; i++) {
    if (!bit(sp->free, i)) return false;
  }
  return true;
}

/* Purges the OS pages of a page in use that hold only free blocks, and
 * takes off `free` the blocks that start in them (their links are gone). */
static void purge_sparse(ebb_segment_t *seg, ebb_page_t *page, ebb_purge_batch_t *batch) {
  sparse_t sp;
  memset(&sp, 0, sizeof(sp));
  ebb_assert(page->reserved <= EBB_PAGE_MAX_BLOCKS);
  mark_free_blocks(seg, page, &sp);
  /* Only OS pages wholly inside the carved blocks: the one the carved part
   * ends in also holds uncarved memory that extend will hand out later
   * (and a purged mark there would make those blocks look free). */
  size_t n_os = (size_t)page->capacity * page->block_size / EBB_OS_PAGE, base = os_base(seg, page);
  for (size_t k = 0; k < n_os; k++) {
    if (os_page_free(page, &sp, k)) set_bit(sp.os, k);
  }
  /* The lists first: once a range is in the batch it may be purged at
   * any moment (a flush), and the links in it read as zero. */
  ebb_block_t *keep = NULL;
  for (ebb_block_t *b = page->free, *next; b != NULL; b = next) {
    next = b->next;
    size_t k = (size_t)((uint8_t *)b - page->start) / EBB_OS_PAGE;
    if (bit(sp.os, k)) {
      page->purged_blocks++;
    } else {
      b->next = keep;
      keep = b;
    }
  }
  page->free = keep;
  page->free_is_zero = 0;
  for (size_t k = 0; k < n_os; k++) {
    if (!bit(sp.os, k) || seg_purged(seg, base + k)) continue;
    /* Marked if a block starts here (it left the list above; the mark is
     * how recarve finds it), or if the block running into it left the list
     * too. Not if that block stays on `free`: the fast path reuses it and
     * cannot clear the mark, which would keep the OS page from being
     * purged again. */
    size_t bs = page->block_size, lo = k * EBB_OS_PAGE, first_start = (lo + bs - 1) / bs * bs;
    size_t ks = lo / bs * bs / EBB_OS_PAGE;
    bool starts_here = first_start < lo + EBB_OS_PAGE;
    if (starts_here || bit(sp.os, ks) || seg_purged(seg, base + ks))
      atomic_fetch_or_explicit(&seg->purged_os[(base + k) / 64], (uint64_t)1 << ((base + k) % 64), memory_order_relaxed);
    decommit(batch, page->start + k * EBB_OS_PAGE, EBB_OS_PAGE);
  }
}

/* A page that serves a size class but was used by another one before (not
 * fresh) holds that class's memory past its carved blocks: the bytes up to
 * the next OS page are zeroed (extend hands them out as zero), the rest is
 * purged, and the page is fresh again. */
static void purge_tail(ebb_segment_t *seg, ebb_page_t *page, ebb_purge_batch_t *batch) {
  if (page->is_fresh || !_ebb_purge_zeroes()) return;
  size_t psize = _ebb_segment_page_size(seg, page, NULL);
  size_t carved = (size_t)page->capacity * page->block_size, edge = os_round_up(carved);
  if (edge > psize) edge = psize;
  memset(page->start + carved, 0, edge - carved);
  decommit(batch, page->start + edge, psize - edge);
  page->is_fresh = 1;
  EBB_STORE(page->touched_os, (uint16_t)(edge / EBB_OS_PAGE)); /* the carved blocks stay */
}

/* The pages a heap allocates from, held by the caller with the heap (its
 * owner, or a pass that seized it): the free OS pages of each go back. */
size_t _ebb_purge_owned_pages(ebb_heap_t *heap) {
  ebb_purge_batch_t batch = {0};
  for (unsigned bin = 1; bin <= EBB_BIN_MAX; bin++) {
    for (ebb_page_t *page = heap->queues[bin].first; page != NULL; page = page->next) {
      if (page->flags != 0) continue; /* parked: offered, the passes have it */
      ebb_segment_t *seg = _ebb_segment_of(page);
      _ebb_page_collect(page);
      purge_sparse(seg, page, &batch);
      purge_tail(seg, page, &batch);
      ebb_assert_expensive(_ebb_page_is_valid(page));
    }
  }
  _ebb_purge_batch_flush(&batch);
  return batch.released;
}

/* Adds to the batch what a page holds that nothing uses. The caller holds
 * the page (claim PURGING, or an abandoned segment it popped) until it has
 * flushed the batch. */
void _ebb_purge_page(ebb_segment_t *seg, ebb_page_t *page, ebb_purge_batch_t *batch) {
  if (!page->in_use) {
    if (page->is_fresh) return;
    uint8_t *start;
    size_t size = _ebb_segment_page_size(seg, page, &start);
    _ebb_page_set_fresh(page, _ebb_purge_zeroes());
    decommit(batch, start, size);
    return;
  }
  bool in_place = (page->flags & EBB_PAGE_IN_PLACE) != 0;
  if (in_place) {
    /* Empty, and still reachable from the owner's direct table: `free`
     * must stay NULL (the malloc fast path reads it), so no collect. Its
     * margin and park_at are not ours to read: the owner may push another
     * page in front of it meanwhile, which rewrites both. */
    ebb_assert(page->free == NULL);
  } else {
    _ebb_page_collect(page);
  }
  if (!in_place && _ebb_page_used(page) != 0) {
    purge_sparse(seg, page, batch);
    purge_tail(seg, page, batch);
    return;
  }
  /* Not fresh: anything up to the page's end may be dirty, past the last
   * block of this class too (a class used the page before, with another
   * block size), and the reset below marks all of it fresh. */
  /* With huge pages the part never carved is resident too (the kernel
   * faulted the whole huge page in): all of it goes, or the huge page
   * would not go whole. */
  bool carved_only = page->is_fresh && !_ebb_os_thp_on();
  size_t size = carved_only ? os_round_up((size_t)page->capacity * page->block_size)
                            : _ebb_segment_page_size(seg, page, NULL);
  decommit(batch, page->start, size);
  _ebb_page_reset_purged(page);
}

/* ---- purge passes --------------------------------------------------------------- */
/* What a pass found in a segment's offered pages. */
typedef struct idle_scan_s {
  size_t released;       /* bytes purged */
  size_t inplace_bytes;  /* pages parked in place, IDLE, not yet expired */
  bool idle_left;        /* some page is still IDLE */
} idle_scan_t;

/* One offered page: stamp it the first time, claim it once its delay has
 * passed. True if the caller now holds it (PURGING). */
static bool claim_expired(ebb_segment_t *seg, ebb_page_t *page, uint64_t now, uint64_t delay, bool force,
                          idle_scan_t *scan) {
  if (atomic_load_explicit(&page->claim, memory_order_acquire) != EBB_CLAIM_IDLE) return false;
  uint32_t since = atomic_load_explicit(&page->idle_since, memory_order_relaxed);
  if (!force && (since == 0 || (uint32_t)((uint32_t)now - since) < delay)) {
    if (since == 0) atomic_store_explicit(&page->idle_since, (uint32_t)now, memory_order_relaxed);
    scan->idle_left = true;
    /* Racy reads (the owner may take the page back meanwhile): an estimate
     * for the budget, no more. */
    if (__atomic_load_n(&page->offered, __ATOMIC_RELAXED) == 0)
      scan->inplace_bytes += (size_t)__atomic_load_n(&page->capacity, __ATOMIC_RELAXED) *
                             __atomic_load_n(&page->block_size, __ATOMIC_RELAXED);
    return false;
  }
  uint32_t c = EBB_CLAIM_IDLE;
  if (!atomic_compare_exchange_strong_explicit(&page->claim, &c, EBB_CLAIM_PURGING, memory_order_acquire,
                                               memory_order_relaxed))
    return false;
  if (page->offered != 0) { /* parked in place counts nothing (page.c) */
    atomic_fetch_sub_explicit(&seg->idle_pages, 1, memory_order_relaxed);
    _ebb_purge_dirty_sub(page->offered);
  }
  return true;
}

/* ---- huge pages ----------------------------------------------------------------
 * Where segments get transparent huge pages (os.c), a segment is two 2 MiB
 * huge pages. madvise on part of one splits it into 4 KiB pages: the TLB
 * then needs 512 entries for it, the split memory is freed only when the
 * kernel's deferred-split shrinker runs (its memory cgroup keeps the
 * charge until then, though RSS drops at once), and khugepaged
 * (max_ptes_none 511 by default) may collapse the range into a huge page
 * again, faulting the purged holes back in as zeroes. So, past neither the
 * dirty budget nor an ebb_collect, which purge everything as always:
 *  - a huge page with no live data goes back whole: its offered pages wait
 *    until the last one offered has waited the purge delay (but never
 *    past the partial delay below), and one pass purges them together
 *    (the batch merges them into one call);
 *  - free memory in a huge page that still holds live data (or a page its
 *    owner allocates from) waits EBB_THP_PARTIAL_DELAY_MS: a page emptied
 *    and filled again within it never splits the huge page. A quiet
 *    thread's own pages, which hold its live blocks, are reached after
 *    that delay too (seize.c).
 * The first huge page of a segment holds the header, which stays: purging
 * its pages splits it all the same. Read racily (the owners run): a wrong
 * guess only moves a purge by one delay. */
typedef struct huge_plan_s {
  unsigned live;    /* bit h: huge page h holds live data, or a page in use by its owner */
  unsigned waiting; /* bit h: an offered page in huge page h has not waited the purge delay yet */
} huge_plan_t;

/* The huge pages a page lies in: one, or both for a wide page. */
static unsigned huge_bits(const ebb_segment_t *seg, uint32_t index) {
  uint32_t shift = EBB_LOAD(seg->page_shift);
  if (shift > EBB_HUGE_SHIFT) return (1u << (EBB_SEGMENT_SIZE >> EBB_HUGE_SHIFT)) - 1;
  return 1u << (((size_t)index << shift) >> EBB_HUGE_SHIFT);
}

static bool page_holds_live(const ebb_page_t *page) {
  if (!__atomic_load_n(&page->in_use, __ATOMIC_RELAXED)) return false;
  uint32_t claim = atomic_load_explicit(&page->claim, memory_order_acquire);
  if (claim == EBB_CLAIM_OWNED) return true;
  if (__atomic_load_n(&page->flags, __ATOMIC_RELAXED) & EBB_PAGE_IN_PLACE) return false; /* empty */
  return _ebb_page_used(page) != 0;
}

static bool not_waited(const ebb_page_t *page, uint64_t now, uint64_t delay) {
  if (atomic_load_explicit(&page->claim, memory_order_relaxed) != EBB_CLAIM_IDLE) return false;
  uint32_t since = atomic_load_explicit(&page->idle_since, memory_order_relaxed);
  return since == 0 || (uint32_t)((uint32_t)now - since) < delay;
}

static huge_plan_t huge_plan(const ebb_segment_t *seg, uint64_t now, uint64_t delay) {
  huge_plan_t plan = {0, 0};
  for (uint32_t i = 0, count = EBB_LOAD(seg->page_count); i < count; i++) {
    const ebb_page_t *page = &seg->pages[i];
    if (page_holds_live(page)) plan.live |= huge_bits(seg, i);
    if (not_waited(page, now, delay)) plan.waiting |= huge_bits(seg, i);
  }
  return plan;
}

/* The delay page `index` waits under the plan. A page held back for the
 * huge page's other offered pages waits at most the partial delay too: a
 * page its owner empties again and again (parked in place, its stamp
 * renewed each time) must not keep its neighbours resident for ever. */
static uint64_t huge_delay(const ebb_segment_t *seg, uint32_t index, const huge_plan_t *plan, uint64_t delay) {
  if (((plan->live | plan->waiting) & huge_bits(seg, index)) == 0) return delay;
  uint64_t partial = (uint64_t)_ebb_option(EBB_OPT_THP_PARTIAL_DELAY_MS);
  return partial > delay ? partial : delay;
}

/* Purges a segment's expired offered pages, adjacent ones in one call. */
static void purge_segment_idle(ebb_segment_t *seg, uint64_t now, uint64_t delay, bool force, idle_scan_t *scan) {
  ebb_page_t *held[EBB_MAX_PAGES];
  uint32_t n = 0;
  ebb_purge_batch_t batch = {0};
  bool huge = !force && _ebb_os_thp_on();
  huge_plan_t plan = huge ? huge_plan(seg, now, delay) : (huge_plan_t){0, 0};
  for (uint32_t i = 0, count = EBB_LOAD(seg->page_count); i < count; i++) {
    ebb_page_t *page = &seg->pages[i];
    uint64_t wait = huge ? huge_delay(seg, i, &plan, delay) : delay;
    if (!claim_expired(seg, page, now, wait, force, scan)) continue;
    _ebb_purge_page(seg, page, &batch);
    held[n++] = page;
  }
  _ebb_purge_batch_flush(&batch);
  for (uint32_t i = 0; i < n; i++) _ebb_page_purge_done(held[i]);
  scan->released += batch.released;
}

/* Purges the offered pages of every owned segment whose delay has passed.
 * Segments are looked at when they count IDLE pages or carry the hint of a
 * page parked in place (the hint protocol is at the top of this file). */
size_t _ebb_segment_purge_idle(uint64_t now, uint64_t delay, bool force) {
  idle_scan_t scan = {0};
  bool any_left = false;
  now = (uint32_t)now; /* stamps are 32-bit milliseconds */
  atomic_exchange_explicit(&_ebb_inplace_hint, 0, memory_order_seq_cst);
  atomic_thread_fence(memory_order_seq_cst);
  _ebb_lock();
  for (ebb_segment_t *seg = _ebb_segment_registry; seg != NULL; seg = seg->all_next) {
    if (EBB_LOAD(seg->kind) == EBB_PAGE_LARGE) continue;
    bool hinted = atomic_load_explicit(&seg->inplace_hint, memory_order_relaxed) != 0;
    if (!hinted && atomic_load_explicit(&seg->idle_pages, memory_order_relaxed) == 0) continue;
    if (hinted) {
      atomic_exchange_explicit(&seg->inplace_hint, 0, memory_order_acq_rel);
      atomic_thread_fence(memory_order_seq_cst);
    }
    scan.idle_left = false;
    purge_segment_idle(seg, now, delay, force, &scan);
    if (scan.idle_left && hinted) atomic_store_explicit(&seg->inplace_hint, 1, memory_order_relaxed);
    any_left |= scan.idle_left;
  }
  _ebb_unlock();
  if (any_left) {
    atomic_store_explicit(&_ebb_inplace_hint, 1, memory_order_seq_cst);
    /* The purge thread may have gone to sleep after its own pass while this
     * one (ebb_collect, or a pass on entry) had the hint at 0. */
    if (atomic_load_explicit(&_ebb_purge_thread, memory_order_seq_cst) & EBB_PT_IDLE) _ebb_purge_notify();
  }
  _ebb_purge_saw_in_place(scan.inplace_bytes);
  return scan.released;
}

/* Remote frees landed on pages a purge had finished with (PURGED): offer
 * those pages again. The freeing thread cannot do it itself: once its
 * block is published the page may be released at any moment. */
void _ebb_segment_reoffer_remote(void) {
  bool any = false;
  _ebb_lock();
  for (ebb_segment_t *seg = _ebb_segment_registry; seg != NULL; seg = seg->all_next) {
    /* The owner writes these without the lock (segment_init, take_page). */
    if (EBB_LOAD(seg->kind) == EBB_PAGE_LARGE || EBB_LOAD(seg->used_pages) == 0) continue;
    for (uint32_t i = 0, n = EBB_LOAD(seg->page_count); i < n; i++) {
      ebb_page_t *page = &seg->pages[i];
      if (atomic_load_explicit(&page->claim, memory_order_acquire) != EBB_CLAIM_PURGED) continue;
      if ((atomic_load_explicit(&page->thread_free, memory_order_acquire) & ~EBB_TF_STATE_MASK) == 0) continue;
      any |= _ebb_page_reoffer_quiet(page);
    }
  }
  _ebb_unlock();
  if (any) _ebb_purge_notify(); /* no lock held: notify takes wake_lock */
}

/* A pass holds this segment alone (popped from the abandoned list):
 * collects the frees other threads made and returns empty pages (their
 * dirty memory is offered, and waits its delay like any free page). Once
 * the purge delay has passed since the owner left (`expired`), it also
 * purges the free parts of the pages still in use; before that the next
 * thread that needs a page may adopt the segment and use them as they are
 * (a program that starts a thread per task would otherwise fault in again
 * what every exited thread left). Free pages are the idle pass's: an
 * unexpired pass leaves them offered. Returns bytes released; *gone if the
 * segment was released. */
static size_t purge_abandoned_segment(ebb_segment_t *seg, bool expired, bool *gone) {
  ebb_purge_batch_t batch = {0};
  for (uint32_t i = 0; i < seg->page_count; i++) {
    ebb_page_t *page = &seg->pages[i];
    if (!expired && !page->in_use) continue;
    _ebb_page_claim(page);
    if (page->in_use) _ebb_page_collect(page);
    if (expired) _ebb_purge_page(seg, page, &batch);
  }
  _ebb_purge_batch_flush(&batch);
  /* Empty pages go back to the segment (purged: is_fresh, not offered;
   * else offered); the last one releases the segment itself. */
  for (uint32_t i = 0; i < seg->page_count; i++) {
    ebb_page_t *page = &seg->pages[i];
    if (!page->in_use || _ebb_page_used(page) != 0) continue;
    bool last = (seg->used_pages == 1);
    _ebb_segment_page_free(NULL, page);
    if (last) {
      *gone = true;
      break;
    }
  }
  return batch.released;
}

/* Collects every abandoned segment and purges those whose delay has
 * passed (all of them with force). Segments are popped one at a time and
 * pushed back together at the end, so that a thread looking for a page
 * meanwhile still finds the ones not yet seen. While some segment waits
 * for its delay, the hint stays set: a later pass comes back to it. */
size_t _ebb_segment_purge_abandoned(uint64_t now, uint64_t delay, bool force) {
  size_t released = 0;
  bool waiting = false;
  ebb_segment_t *seen = NULL; /* popped and kept, linked through next */
  ebb_segment_t *seg;
  while ((seg = _ebb_segment_abandoned_pop()) != NULL) {
    bool expired = force || (now > seg->cached_since && now - seg->cached_since >= delay), gone = false;
    released += purge_abandoned_segment(seg, expired, &gone);
    if (gone) continue;
    waiting |= !expired;
    seg->next = seen;
    seen = seg;
  }
  while (seen != NULL) {
    seg = seen;
    seen = seg->next;
    _ebb_segment_abandoned_push(seg);
  }
  if (waiting) atomic_store_explicit(&_ebb_abandoned_hint, 1, memory_order_relaxed);
  return released;
}

/* ---- one pass -------------------------------------------------------------- */
/* What one pass released, by where it came from (for EBB_VERBOSE=1). */
typedef struct pass_parts_s {
  size_t quiet, pages, segment_cache, large_cache, exited;
} pass_parts_t;

/* Why a pass ran now, in the user's terms. */
static const char *pass_reason(pass_why_t why, uint64_t delay, char *buf, size_t cap) {
  switch (why) {
  case PASS_COLLECT_ALL: return "ebb_collect(true) or malloc_trim(0) asked for everything";
  case PASS_COLLECT: return "ebb_collect(false) asked for what has waited the purge delay";
  case PASS_URGENT:
    return atomic_load_explicit(&urgent_why, memory_order_relaxed) == EBB_URGENT_LIMIT
               ? "memory in use came near the limit (EBB_LIMIT_MARGIN)"
               : "free memory exceeded the dirty budget (EBB_DIRTY_MAX, EBB_DIRTY_FRACTION)";
  case PASS_DEADLINE: break;
  }
  if (delay == 0) return "EBB_PURGE_DELAY_MS=0: free memory goes back at once";
  _ebb_format(buf, cap, "the purge delay (EBB_PURGE_DELAY_MS=%zu) passed", (size_t)delay);
  return buf;
}

/* "offered pages 8 MiB, segment cache 4 MiB" for the parts that are not 0. */
static void parts_text(const pass_parts_t *p, char *buf, size_t cap) {
  const struct { const char *what; size_t bytes; } part[] = {
    {"offered pages", p->pages},       {"quiet threads", p->quiet},  {"segment cache", p->segment_cache},
    {"large cache", p->large_cache},   {"exited threads", p->exited},
  };
  size_t len = 0;
  buf[0] = 0;
  for (size_t i = 0; i < sizeof(part) / sizeof(part[0]); i++) {
    if (part[i].bytes == 0) continue;
    char size[EBB_SIZE_TEXT];
    len += _ebb_format(buf + (len < cap ? len : cap - 1), len < cap ? cap - len : 1, "%s%s %s", len ? ", " : "",
                       part[i].what, _ebb_size_human(size, part[i].bytes));
  }
}

static ebb_noinline void say_pass(const pass_parts_t *p, size_t released, pass_why_t why, uint64_t delay) {
  char total[EBB_SIZE_TEXT], parts[192], reason[64];
  parts_text(p, parts, sizeof(parts));
  _ebb_verbose_rated(EBB_V_PURGE, "ebb: purge: released %s (%s): %s\n", _ebb_size_human(total, released), parts,
                     pass_reason(why, delay, reason, sizeof(reason)));
}

/* Purges every offered page whose delay has passed (all of them if force),
 * the caches, and segments of exited threads. Returns bytes released. */
static size_t purge_run(bool force, pass_why_t why) {
  uint64_t now = _ebb_purge_clock_ms(), delay = delay_ms();
  bool explicit_call = (why == PASS_COLLECT_ALL);
  pass_parts_t p = {0};
  _ebb_budget_inuse_peak_age(now);
  atomic_store_explicit(&_ebb_budget_cached, _ebb_budget(), memory_order_relaxed);
  if (delay == 0) force = true;
  if (atomic_exchange_explicit(&remote_hint, 0, memory_order_seq_cst)) _ebb_segment_reoffer_remote();
  /* Quiet threads first: the pages their cleaning parks are offered now. */
  p.quiet = _ebb_seize_pass(now, delay, force);
  p.pages = _ebb_segment_purge_idle(now, delay, force);
  /* Over budget, everything dirty goes at once; cached segments are only
   * unmapped (not just purged) early when the program asked. */
  bool unmap = explicit_call || _ebb_limit_address_tight(); /* near RLIMIT_AS: purging keeps the mappings */
  p.segment_cache = _ebb_segment_purge_cache(now, delay, unmap, force);
  p.large_cache = _ebb_large_purge_cache(now, delay, force || unmap);
  if (atomic_exchange_explicit(&_ebb_abandoned_hint, 0, memory_order_relaxed) || force)
    p.exited = _ebb_segment_purge_abandoned(now, delay, force);
  _ebb_os_retry_stranded(); /* address space only: nothing resident to count */
  size_t released = p.quiet + p.pages + p.segment_cache + p.large_cache + p.exited;
  if (released > 0 && _ebb_verbose_on()) say_pass(&p, released, why, delay);
  return released;
}

size_t _ebb_purge_run(bool force) { return purge_run(force, force ? PASS_URGENT : PASS_DEADLINE); }

/* ---- the background thread --------------------------------------------------- */
/* Its lifetime. A library's helper thread must not change how long the
 * program lives: glibc ends the process (exit(0) from the thread that
 * leaves last) only when no pthread is left, and it counts this one. A
 * program whose main calls pthread_exit, or a fork child made from a worker
 * thread whose function returns, would otherwise stay alive forever: a
 * zombie leader, and SIGTERM pending on a thread that blocks it. So:
 *  - after a thread with a heap exits (_ebb_purge_thread_exiting), the
 *    thread reads how many threads are alive, every WATCH_POLL_MS for up to
 *    WATCH_FOR_MS while the exiting one may be the last other; alone, it
 *    returns with the program's signal mask, and glibc ends the process as
 *    it would have (status 0, atexit handlers run);
 *  - idle (nothing dirty) for IDLE_EXIT_MS, it leaves, and the next offer
 *    starts it again: an idle program has no helper thread, and a last
 *    thread that never allocated (no heap, no hint) still ends the process.
 *    A start costs 0.1-0.2 ms of CPU (measured here: 2000 starts of a
 *    detached thread with this stack and mask, three runs): a program that
 *    goes idle that long again and again pays it at most once a second,
 *    under 0.02% of one core. */
#define IDLE_EXIT_MS 1000
#define WATCH_POLL_MS 10
#define WATCH_FOR_MS 2000
static _Atomic(int) exit_hint;  /* a thread with a heap is exiting: it sets, the purge thread takes (seq_cst) */
static uint64_t watch_until;    /* purge thread only: poll the thread count until then (ms) */
/* The signal mask of the thread that started ours: the starter writes it
 * before pthread_create, which orders it for the new thread. */
static sigset_t program_mask;
/* wake_cond is initialised: set once by the first start (the winner of
 * the CAS to RUNNING, before any thread can wait or signal); the fork
 * child reads it. */
static bool cond_ready;

static bool nothing_to_do(void) {
  return atomic_load_explicit(&_ebb_dirty_bytes, memory_order_seq_cst) == 0 &&
         !atomic_load_explicit(&_ebb_inplace_hint, memory_order_seq_cst) && _ebb_segment_cache_count() == 0 &&
         !atomic_load_explicit(&remote_hint, memory_order_relaxed) &&
         !thread_has(EBB_PT_URGENT, memory_order_relaxed) &&
         !atomic_load_explicit(&_ebb_abandoned_hint, memory_order_relaxed) && !_ebb_seize_waiting() &&
         !atomic_load_explicit(&exit_hint, memory_order_seq_cst);
}

static void wake_thread(void) {
  pthread_mutex_lock(&wake_lock);
  pthread_cond_signal(&wake_cond);
  pthread_mutex_unlock(&wake_lock);
}

void _ebb_purge_thread_exiting(void) {
  if (!thread_has(EBB_PT_RUNNING, memory_order_seq_cst)) return;
  atomic_store_explicit(&exit_hint, 1, memory_order_seq_cst);
  if (thread_has(EBB_PT_IDLE, memory_order_seq_cst)) wake_thread();
}

/* Live threads of the process other than the caller, from /proc/self/stat:
 * num_threads (field 20) counts a leader that has exited (state Z, field
 * 3) until the whole process ends. -1 if it cannot be read. */
static int other_live_threads(void) {
  char buf[512];
  if (_ebb_prim_read_file("/proc/self/stat", 0, buf, sizeof(buf)) == 0) return -1;
  const char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
  if (p == NULL || p[1] != ' ') return -1;
  char state = p[2];
  for (int field = 3; field <= 20 && p != NULL; field++) p = strchr(p + 1, ' '); /* the space before field 20 */
  if (p == NULL) return -1;
  long n = 0;
  for (p++; *p >= '0' && *p <= '9'; p++) n = n * 10 + (*p - '0');
  if (state == 'Z') n--;
  return (int)n - 1;
}

/* True if this thread is the last one alive. Only read while watching,
 * after a thread exit. */
static bool alone_now(void) {
  uint64_t now = _ebb_purge_clock_ms();
  if (atomic_exchange_explicit(&exit_hint, 0, memory_order_seq_cst)) watch_until = now + WATCH_FOR_MS;
  if (now >= watch_until) return false;
  int others = other_live_threads();
  /* The exiting thread still counts until it is gone: more than one other
   * means some thread stays, and its own exit will hint again. */
  if (others != 1) watch_until = 0;
  return others == 0;
}

static struct timespec deadline_in(uint64_t ms) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  ts.tv_sec += (time_t)(ms / 1000);
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

/* Gives up RUNNING after an idle timeout. An offer made meanwhile either
 * saw RUNNING cleared (and starts a new thread) or was made before the
 * clear, and the check after it sees its work: then this thread takes
 * RUNNING back and stays, unless a new one already has it. Both sides
 * store, fence, then load. True if the thread leaves. */
static bool leave_idle(void) {
  atomic_fetch_and_explicit(&_ebb_purge_thread, ~(EBB_PT_RUNNING | EBB_PT_IDLE), memory_order_seq_cst);
  if (nothing_to_do()) return true;
  int st = atomic_load_explicit(&_ebb_purge_thread, memory_order_seq_cst);
  do {
    if (st & EBB_PT_RUNNING) return true;
  } while (!atomic_compare_exchange_weak(&_ebb_purge_thread, &st, st | EBB_PT_RUNNING));
  return false;
}

/* Waits for work (wake_lock held). True if the thread should leave. */
static bool wait_idle(void) {
  atomic_fetch_or_explicit(&_ebb_purge_thread, EBB_PT_IDLE, memory_order_seq_cst);
  struct timespec until = deadline_in(IDLE_EXIT_MS);
  int rc = 0;
  while (nothing_to_do() && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&wake_cond, &wake_lock, &until);
  if (rc == ETIMEDOUT && nothing_to_do()) return leave_idle();
  atomic_fetch_and_explicit(&_ebb_purge_thread, ~EBB_PT_IDLE, memory_order_relaxed);
  return false;
}

static uint64_t min_ms(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* True if the thread should leave (idle for IDLE_EXIT_MS). A published
 * snapshot (snapshot_ms: the next publication is due in that many ms;
 * UINT64_MAX when off) keeps the thread: it never leaves idle, and wakes
 * for each publication. */
static bool wait_for_work(uint64_t snapshot_ms) {
  bool leave = false;
  pthread_mutex_lock(&wake_lock);
  if (watch_until != 0) {
    struct timespec ts = deadline_in(min_ms(WATCH_POLL_MS, snapshot_ms));
    if (!thread_has(EBB_PT_URGENT, memory_order_relaxed)) pthread_cond_timedwait(&wake_cond, &wake_lock, &ts);
  } else if (nothing_to_do() && snapshot_ms == UINT64_MAX) {
    leave = wait_idle();
  } else if (!thread_has(EBB_PT_URGENT, memory_order_relaxed)) {
    struct timespec ts = deadline_in(min_ms(nothing_to_do() ? UINT64_MAX : delay_ms() / 2 + 1, snapshot_ms));
    pthread_cond_timedwait(&wake_cond, &wake_lock, &ts);
  }
  pthread_mutex_unlock(&wake_lock);
  return leave;
}

/* The thread that stays for the snapshot must still not outlive the
 * program's threads (see "Its lifetime" above): while it publishes, it
 * looks at every wake-up whether it is alone. */
static bool alone_with_snapshot(void) { return _ebb_snapshot_on() && other_live_threads() == 0; }

static void *purge_thread(void *arg) {
  (void)arg;
  for (;;) {
    _ebb_budget_limit_refresh(); /* outside the pass lock: it reads files */
    pass_begin();
    bool force = urgent_take();
    _ebb_purge_run(force);
    pass_end();
    uint64_t snapshot_ms = _ebb_snapshot_due_in();
    if (alone_now() || alone_with_snapshot()) {
      /* RUNNING stays set: frees from atexit handlers run on this thread
       * must not start another one. */
      _ebb_verbose("ebb: purge thread: the program's last thread exited; so does this one\n");
      pthread_sigmask(SIG_SETMASK, &program_mask, NULL);
      return NULL; /* glibc: the last thread leaving calls exit(0) */
    }
    if (wait_for_work(snapshot_ms)) return NULL;
  }
}

static void cond_init(void) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&wake_cond, &ca);
  pthread_condattr_destroy(&ca);
  cond_ready = true;
}

/* A start that failed - pthread_create found no room for the stack, often
 * for a moment only: under RLIMIT_AS the first offer comes while the
 * program is at its peak, and it is about to free - is tried again, at most
 * every EBB_START_RETRY_MS; passes run on allocator entry meanwhile. A
 * start given up for good would leave an idle program its caches. */
#define EBB_START_RETRY_MS 10
static _Atomic(uint64_t) start_failed_at; /* purge clock (ms) of the last failed start; 0: retry now (CAS decides who retries) */

static bool start_retry_due(void) {
  uint64_t failed = atomic_load_explicit(&start_failed_at, memory_order_relaxed);
  uint64_t now = _ebb_purge_clock_ms();
  if (now - failed < EBB_START_RETRY_MS) return false;
  if (!atomic_compare_exchange_strong(&start_failed_at, &failed, now)) return false; /* another thread retries */
  atomic_fetch_and(&_ebb_purge_thread, ~EBB_PT_FAILED);
  return true;
}

/* Starts the thread with every signal blocked (the program's handlers must
 * not run on it) and a small stack. It never allocates. */
static void start_thread(void) {
  int expected = atomic_load(&_ebb_purge_thread);
  do {
    if (expected & (EBB_PT_RUNNING | EBB_PT_FAILED)) return;
  } while (!atomic_compare_exchange_weak(&_ebb_purge_thread, &expected, expected | EBB_PT_RUNNING));
  if (!cond_ready) cond_init(); /* the first start: no thread can wait or signal yet */
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &program_mask);
  pthread_t t;
  int rc = pthread_create(&t, &attr, purge_thread, NULL);
  pthread_sigmask(SIG_SETMASK, &program_mask, NULL);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    atomic_store_explicit(&start_failed_at, _ebb_purge_clock_ms(), memory_order_relaxed);
    atomic_fetch_xor(&_ebb_purge_thread, EBB_PT_RUNNING | EBB_PT_FAILED); /* RUNNING -> FAILED */
    _ebb_verbose("ebb: purge thread could not start (error %d); purging on allocator entry\n", rc);
    return;
  }
  _ebb_verbose("ebb: purge thread started (delay %zu ms)\n", (size_t)delay_ms());
}

/* EBB_PURGE_THREAD=0 (or the thread failed to start): a pass from the
 * allocating thread, at most every purge_delay / 2. */
void _ebb_purge_on_entry(void) {
  if (atomic_load_explicit(&_ebb_dirty_bytes, memory_order_relaxed) == 0 &&
      !atomic_load_explicit(&_ebb_inplace_hint, memory_order_relaxed) &&
      !atomic_load_explicit(&_ebb_abandoned_hint, memory_order_relaxed))
    return;
  uint64_t now = _ebb_purge_clock_ms();
  bool due = thread_has(EBB_PT_URGENT, memory_order_relaxed) ||
             now >= atomic_load_explicit(&next_entry_pass, memory_order_relaxed);
  if (!due || !pass_try_begin()) return;
  atomic_store_explicit(&next_entry_pass, now + delay_ms() / 2 + 1, memory_order_relaxed);
  _ebb_budget_limit_refresh();
  bool force = urgent_take();
  _ebb_purge_run(force);
  pass_end();
}

/* Something was offered or cached. Called with no lock held (starting the
 * thread may allocate). */
void _ebb_purge_notify(void) {
  /* Common case first: the thread runs (or waits with a timeout) and there
   * is no hurry. */
  int st = atomic_load_explicit(&_ebb_purge_thread, memory_order_seq_cst);
  if (ebb_likely(st == EBB_PT_RUNNING)) return;
  if (!_ebb_option(EBB_OPT_PURGE_THREAD)) {
    _ebb_purge_on_entry();
    return;
  }
  if (!(st & (EBB_PT_RUNNING | EBB_PT_FAILED))) {
    start_thread();
    return;
  }
  if (st & EBB_PT_FAILED) {
    if (start_retry_due()) start_thread();
    else _ebb_purge_on_entry();
    return;
  }
  if (st & (EBB_PT_IDLE | EBB_PT_URGENT)) wake_thread();
}


/* ---- fork --------------------------------------------------------------------------- */
/* No pass runs across fork; the child has no purge thread and starts one
 * lazily, like the parent did. */
void _ebb_purge_fork_prepare(void) { pthread_mutex_lock(&pass_lock); }
void _ebb_purge_fork_parent(void) { pthread_mutex_unlock(&pass_lock); }
void _ebb_purge_fork_child(void) {
  pthread_mutex_init(&pass_lock, NULL);
  pthread_mutex_init(&wake_lock, NULL);
  if (cond_ready) cond_init(); /* no waiter in the child */
  atomic_store(&exit_hint, 0);
  watch_until = 0;
  /* The thread is gone: the child starts its own. FAILED stays. */
  atomic_fetch_and(&_ebb_purge_thread, ~(EBB_PT_IDLE | EBB_PT_RUNNING));
}

/* ---- explicit control -------------------------------------------------------------- */
#if EBB_DEBUG >= 3
/* The dirty count equals what is offered: IDLE pages, cached segments,
 * the large cache. Offers and claims move the count outside the global
 * lock, so it balances only while nothing else can: the caller holds the
 * pass lock (no pass re-offers or purges), and no heap but the caller's
 * is live (only an owner, or a pass, offers a page). True otherwise. */
static bool dirty_balances(void) {
  bool alone = true, ok;
  _ebb_lock();
  for (ebb_heap_t *h = _ebb_heap_first(); h != NULL; h = h->all_next) alone &= !h->live || h == _ebb_tls_heap;
  ok = !alone || atomic_load_explicit(&_ebb_dirty_bytes, memory_order_relaxed) ==
                     _ebb_segment_dirty_locked() + _ebb_large_dirty_locked();
  _ebb_unlock();
  return ok;
}
#endif

/* Purges everything purgeable now (all offered pages with force, else the
 * expired ones) after giving back this thread's own empty pages. Returns
 * the resident bytes given back: what this thread released during the
 * call (_ebb_budget_released counts each byte once, as it stops being
 * resident), the segments its reap unmapped at once included. */
ebb_export size_t ebb_collect(bool force) {
  _ebb_init_process();
  ebb_heap_t *heap = _ebb_tls_heap;
  size_t before = _ebb_budget_released_here();
  if (heap != &_ebb_heap_empty) _ebb_seize_clean_own(heap);
  pass_begin();
  purge_run(force, force ? PASS_COLLECT_ALL : PASS_COLLECT);
  pass_end();
  if (heap != &_ebb_heap_empty && force) {
    /* Pages the pass emptied go back to their segments, and segments left
     * with nothing in use to the cache, which a second pass releases.
     * An owner slow path, like any that changes the heap (seize.c). */
    _ebb_seize_enter(heap);
    _ebb_page_reap(heap);
    _ebb_seize_leave(heap);
    pass_begin();
    purge_run(true, PASS_COLLECT_ALL);
#if EBB_DEBUG >= 3
    ebb_assert_expensive(dirty_balances());
#endif
    pass_end();
  }
  return _ebb_budget_released_here() - before;
}

/* ---- when the OS refuses a mapping ---------------------------------------------------
 * Under an address-space limit (RLIMIT_AS) or at vm.max_map_count, the
 * address space ebb keeps for speed - cached segments, the large cache,
 * empty segments of exited threads - is what the program is refused. So a
 * refused mapping gives all of it back and is tried once more.
 * It may run on any allocating path: those hold no global lock (mappings
 * are never made under it; passes hold it only across madvise and munmap) and no page that a pass waits for (a pass only
 * takes IDLE pages). A pass on this thread may allocate (starting the purge
 * thread), so a refusal there skips the release instead of waiting for
 * itself. */
static size_t release_address_space(void) {
  uint64_t now = _ebb_purge_clock_ms();
  /* Exited threads' empty segments go to the segment cache first. */
  size_t released = _ebb_segment_purge_abandoned(now, delay_ms(), true);
  released += _ebb_segment_purge_cache(now, delay_ms(), true, true);
  released += _ebb_large_purge_cache(now, delay_ms(), true);
  released += _ebb_os_retry_stranded();
  return released;
}

/* True if anything was given back: worth trying the mapping again. */
bool _ebb_purge_release_for_mapping(void) {
  ebb_assert_internal(!_ebb_lock_held());
  if (in_pass) return false;
  pass_begin();
  size_t released = release_address_space();
  pass_end();
  if (released == 0) return false;
  if (_ebb_verbose_on()) {
    char text[EBB_SIZE_TEXT];
    _ebb_verbose_rated(EBB_V_PURGE, "ebb: purge: released %s of kept address space: the OS refused a mapping\n",
                       _ebb_size_human(text, released));
  }
  /* The purge thread may have failed to start for want of the address
   * space just given back: the next offer tries again. */
  atomic_store_explicit(&start_failed_at, 0, memory_order_relaxed);
  return true;
}

void *_ebb_purge_map_aligned(size_t size, size_t align, size_t offset) {
  void *p = _ebb_os_map_aligned(size, align, offset);
  if (p == NULL && _ebb_purge_release_for_mapping()) p = _ebb_os_map_aligned(size, align, offset);
  return p;
}
