/* SPDX-License-Identifier: MIT */
/* seize.c - reaching the pages of a thread that has gone quiet.
 *
 * Only the owner touches its heap and the lists of the pages it allocates
 * from (the pages it keeps OWNED): its malloc and free fast paths take no
 * lock and make no atomic read-modify-write. So a purge pass cannot take a page the owner still
 * uses - the head of a size class's queue that keeps a live block, or any
 * page neither empty nor sparse - and those pages' free blocks would stay
 * resident for as long as the thread calls nothing, which for a thread
 * blocked on a condition variable is forever. The deadline must hold for
 * them too, so a pass reaches such a heap in one of two ways:
 *
 *  - Asked: the pass redirects the owner's fast paths to their slow paths
 *    (direct table -> the empty page; local tags -> 0, so frees are not
 *    "local and plain") and marks the heap REQUESTED. Every owner slow path
 *    starts with _ebb_seize_enter, which then cleans the heap - collects
 *    it, purges the free OS pages of the pages it keeps, restores the fast
 *    paths - before it goes on.
 *  - Seized: if the owner is blocked in a system call, and stays blocked
 *    from before the redirect until after it, it cannot be inside a fast
 *    path (they make no system calls) or a slow path (in_slow would say
 *    so), and the first thing it does when it wakes goes through a slow
 *    path, which waits while the heap is SEIZED. The pass then cleans the
 *    heap itself and lets go. "Blocked throughout" comes from
 *    /proc/self/task/TID: `syscall` names the call it is blocked in, and
 *    its context-switch count (`status`) is the same before and after:
 *    a thread that woke and ran in between would have been switched out
 *    again, or be running.
 *
 * What this cannot see: a handler installed with SA_NODEFER and an empty
 * sa_mask leaves the mask unchanged, so if it interrupts a fast path and
 * then blocks, the owner looks quiet. (Making the fast paths restartable
 * sequences, rseq, would close that.) A thread that changed its mask since
 * its first allocation is only ever asked.
 *
 * Which heaps: a pass takes each live heap's activity flag (the owner sets
 * it on entering a slow path). A heap that had activity is unclean; once
 * it has had none for purge_delay (or at once, for ebb_collect(true)) it is
 * asked or seized. A busy thread is left alone: it keeps reusing what it
 * frees. A thread running without ever calling ebb again keeps what it
 * holds; asked, it answers at its first call.
 *
 * The rule this rests on, for every owner path: code that changes the heap
 * or its pages and may block in the kernel (a lock, mmap, madvise, a
 * yield) runs between _ebb_seize_enter and _ebb_seize_leave. The fast
 * paths make no system call, and the in-place park (free's one unbracketed
 * exit) makes one only after the heap is consistent again.
 *
 * Concurrency: heap->seize goes NONE -> REDIRECTING -> REQUESTED (a pass:
 * CAS, rewrite the tables, store), then
 * REQUESTED -> SEIZED (a pass, CAS, owner blocked throughout) or
 * REQUESTED -> OWNER (the owner, CAS), then back to NONE (release) by
 * whoever cleaned. One pass at a time (the pass lock). heap->in_slow is the
 * owner's own relaxed counter; a seizer reads it only after seeing the
 * owner blocked in the kernel, whose context switch orders it. The owner's
 * read of `seize` after waking is ordered after the pass's fence by the
 * same switch. */
#include <string.h>

#include "internal.h"
#include "prim.h"

/* Some heap's activity flag may be set: an owner sets it after its flag
 * (fence), a pass exchanges it to 0 (seq_cst); the purge thread reads it. */
_Atomic(int) _ebb_seize_hint;

/* Under valgrind or rr, threads take turns: one waits in a system call at
 * any point of its code, a fast path included. Only asking is safe there.
 * ThreadSanitizer cannot see a seize as synchronisation (the owner being
 * blocked in the kernel orders nothing it knows of), so its builds only
 * ask: the answer is a CAS it sees. */
#ifdef EBB_TSAN
static bool seizing_allowed = false;
#else
static bool seizing_allowed = true; /* set once at initialisation, before any other thread */
#endif

void _ebb_seize_init(void) {
  const char *preload = _ebb_prim_getenv("LD_PRELOAD");
  if (preload != NULL && (strstr(preload, "vgpreload") != NULL || strstr(preload, "librrpreload") != NULL))
    seizing_allowed = false;
}

/* ---- the owner's side ------------------------------------------------------ */
void _ebb_seize_note_activity(ebb_heap_t *heap) {
  /* Flag, FENCE, hint: a pass that takes the hint (exchange) and then the
   * flags sees this flag, or this thread sees the hint at 0 and sets it
   * again. Hint, FENCE, then the purge thread's state: the thread checks
   * the hint after announcing that it sleeps. */
  atomic_store_explicit(&heap->activity, 1, memory_order_relaxed);
  atomic_thread_fence(memory_order_seq_cst);
  if (!atomic_load_explicit(&_ebb_seize_hint, memory_order_relaxed)) {
    atomic_store_explicit(&_ebb_seize_hint, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
  }
  _ebb_purge_notify();
}

__thread bool _ebb_seizing; /* this thread's own: set around clean() by the pass that seized */

/* Collects the heap and purges the free OS pages of the pages it keeps;
 * the caller holds the heap (its owner, or a seizer). The fast paths come
 * back last, after every write to the lists (release). */
static size_t clean(ebb_heap_t *heap) {
  _ebb_heap_collect(heap);
  size_t released = _ebb_purge_owned_pages(heap);
  bool was = _ebb_seizing;
  _ebb_seizing = false;
  atomic_thread_fence(memory_order_release);
  _ebb_page_fast_paths_restore(heap);
  _ebb_seizing = was;
  atomic_store_explicit(&heap->unclean, 0, memory_order_relaxed);
  return released;
}

/* An owner slow path found the heap asked for or seized. */
void _ebb_seize_owner_arrived(ebb_heap_t *heap) {
  for (;;) {
    uint32_t s = atomic_load_explicit(&heap->seize, memory_order_acquire);
    if (s == EBB_SEIZE_NONE) return;
    if (s == EBB_SEIZE_REQUESTED) {
      if (!atomic_compare_exchange_strong_explicit(&heap->seize, &s, EBB_SEIZE_OWNER, memory_order_acquire,
                                                   memory_order_relaxed))
        continue;
      clean(heap);
      atomic_store_explicit(&heap->seize, EBB_SEIZE_NONE, memory_order_release);
      return;
    }
    _ebb_prim_yield(); /* SEIZED: a pass is doing this work for us; or it is REDIRECTING */
  }
}

size_t _ebb_seize_clean_own(ebb_heap_t *heap) {
  _ebb_seize_enter(heap);
  size_t released = clean(heap);
  _ebb_seize_leave(heap);
  return released;
}

/* ---- the pass's side ---------------------------------------------------------- */
/* The owner's kernel thread id, 0 if the heap is not live. */
static uint32_t owner_tid(ebb_heap_t *heap) {
  _ebb_lock();
  uint32_t tid = heap->live ? heap->kernel_tid : 0;
  _ebb_unlock();
  return tid;
}

/* Asks: sends the owner's fast paths to their slow paths and marks the
 * heap REQUESTED. REDIRECTING while the tables are rewritten, so that an
 * owner answering an earlier request cannot restore them in between. The
 * global lock keeps the owner from finishing its exit meanwhile (heap.c
 * sets `live` under it), so its ids are its own. False if the heap has
 * another owner now, or its owner is answering. */
static bool ask(ebb_heap_t *heap, uint32_t tid) {
  bool asked = false;
  _ebb_lock();
  uint32_t s = atomic_load_explicit(&heap->seize, memory_order_relaxed);
  if (heap->live && heap->kernel_tid == tid && (s == EBB_SEIZE_NONE || s == EBB_SEIZE_REQUESTED) &&
      atomic_compare_exchange_strong_explicit(&heap->seize, &s, EBB_SEIZE_REDIRECTING, memory_order_acq_rel,
                                              memory_order_relaxed)) {
    for (size_t w = 0; w < EBB_DIRECT_COUNT; w++)
      __atomic_store_n(&heap->direct[w], &_ebb_page_empty, __ATOMIC_RELAXED);
    _ebb_segment_clear_tags_locked(heap->thread_id);
    atomic_store_explicit(&heap->seize, EBB_SEIZE_REQUESTED, memory_order_seq_cst);
    asked = true;
  }
  _ebb_unlock();
  return asked;
}

/* The owner as /proc shows it: blocked in a system call (call >= 0), its
 * context switches, its blocked signals. */
typedef struct owner_view_s {
  long call;
  uint64_t switches, sigblk;
} owner_view_t;

static bool view(uint32_t tid, owner_view_t *v) {
  if (!_ebb_prim_thread_switches(tid, &v->switches, &v->sigblk)) return false;
  v->call = _ebb_prim_thread_syscall(tid);
  return true;
}

/* Blocked in the kernel in both views, and not run in between. Its signal
 * mask is the one it started with: a signal handler (which runs with its
 * signal blocked) may have interrupted a fast path and then blocked. */
static bool blocked_throughout(const ebb_heap_t *heap, const owner_view_t *before, uint32_t tid) {
  owner_view_t after;
  if (before->call < 0 || before->sigblk != heap->sigblk) return false;
  after.call = _ebb_prim_thread_syscall(tid);
  if (after.call != before->call || !_ebb_prim_thread_switches(tid, &after.switches, &after.sigblk)) return false;
  return after.switches == before->switches && after.sigblk == before->sigblk;
}

static uint64_t delay_ms(void) { return (uint64_t)_ebb_option(EBB_OPT_PURGE_DELAY_MS); }

/* A heap whose owner runs is only asked (a redirect that the owner answers
 * at its next call) after this long without a slow path: a thread that
 * allocates on its fast paths alone is reusing what it frees, and each
 * answer costs it a collection. */
static uint64_t ask_running_after(uint64_t delay) { return delay * 10 < 1000 ? 1000 : delay * 10; }

/* Seizes and cleans the heap if its owner is blocked throughout, or asks
 * it to clean itself. Returns the bytes released. */
static size_t reach(ebb_heap_t *heap, uint64_t now, uint64_t delay, bool force) {
  uint32_t tid = owner_tid(heap);
  if (tid == 0) return 0;
  owner_view_t before;
  bool seen = seizing_allowed && view(tid, &before);
  bool blocked = seen && before.call >= 0;
  if (!blocked && !force && now - atomic_load_explicit(&heap->active_at, memory_order_relaxed) < ask_running_after(delay))
    return 0;
  if (!ask(heap, tid)) return 0;
  /* Asked, at least: the owner cleans at its next slow path. Until it
   * does, or blocks, look again only now and then. */
  if (!blocked || !blocked_throughout(heap, &before, tid)) {
    atomic_store_explicit(&heap->active_at, now, memory_order_relaxed);
    atomic_store_explicit(&heap->asked_running, 1, memory_order_relaxed);
    _ebb_verbose_rated(EBB_V_QUIET, "ebb: quiet thread: thread %u is asked to clean its pages at its next allocator call\n",
                       (unsigned)tid);
    return 0;
  }
  if (atomic_load_explicit(&heap->in_slow, memory_order_relaxed) != 0) return 0; /* blocked inside ebb */
  uint32_t s = EBB_SEIZE_REQUESTED;
  if (!atomic_compare_exchange_strong_explicit(&heap->seize, &s, EBB_SEIZE_SEIZED, memory_order_acquire,
                                               memory_order_relaxed))
    return 0;
  _ebb_seizing = true;
  size_t released = clean(heap);
  _ebb_seizing = false;
  atomic_store_explicit(&heap->seize, EBB_SEIZE_NONE, memory_order_release);
  if (released != 0 && _ebb_verbose_on()) {
    char text[EBB_SIZE_TEXT];
    _ebb_verbose_rated(EBB_V_QUIET, "ebb: quiet thread: thread %u is blocked in the kernel: its pages were cleaned (%s)\n",
                       (unsigned)tid, _ebb_size_human(text, released));
  }
  return released;
}

/* One pass's look at every live heap but the caller's. Caller holds the
 * pass lock, no other lock. */
size_t _ebb_seize_pass(uint64_t now, uint64_t delay, bool force) {
  ebb_heap_t *self = _ebb_tls_heap;
  size_t released = 0;
  bool hinted = atomic_exchange_explicit(&_ebb_seize_hint, 0, memory_order_seq_cst) != 0;
  /* The pages a heap allocates from hold live blocks: with huge pages
   * their free parts wait the partial delay (purge.c, "huge pages"). */
  uint64_t quiet = delay;
  if (!force && _ebb_os_thp_on()) {
    uint64_t partial = (uint64_t)_ebb_option(EBB_OPT_THP_PARTIAL_DELAY_MS);
    if (partial > quiet) quiet = partial;
  }
  /* The heap list needs no lock (_ebb_heap_first); reach() checks under
   * the lock that the heap is still live and has the same owner. */
  for (ebb_heap_t *heap = _ebb_heap_first(); heap != NULL; heap = heap->all_next) {
    if (!__atomic_load_n(&heap->live, __ATOMIC_RELAXED)) continue;
    if (hinted && atomic_exchange_explicit(&heap->activity, 0, memory_order_relaxed)) {
      atomic_store_explicit(&heap->active_at, now, memory_order_relaxed);
      atomic_store_explicit(&heap->asked_running, 0, memory_order_relaxed);
      atomic_store_explicit(&heap->unclean, 1, memory_order_relaxed);
    }
    if (heap == self) continue; /* ebb_collect cleaned it */
    /* Forced (ebb_collect(true)): every heap, even one that has only
     * run its fast paths since it was last cleaned. */
    if (!force && (!atomic_load_explicit(&heap->unclean, memory_order_relaxed) ||
                   now - atomic_load_explicit(&heap->active_at, memory_order_relaxed) < quiet))
      continue;
    /* Cleaning clears `unclean`; an owner that was asked and has not
     * answered yet, or could not be reached, is tried again later. */
    released += reach(heap, now, delay, force);
  }
  return released;
}

/* True while some heap waits for its quiet period to end (the purge
 * thread keeps a timeout rather than sleeping). A heap asked while its
 * owner ran counts again a second after the asking: until then the thread
 * may sleep, or leave, rather than wake every half delay for it. Lock-free
 * (the purge thread calls it holding its wake lock): heaps are never
 * freed, and the list of them only grows at its head. */
bool _ebb_seize_waiting(void) {
  if (atomic_load_explicit(&_ebb_seize_hint, memory_order_seq_cst)) return true;
  uint64_t now = _ebb_purge_clock_ms(), later = ask_running_after(delay_ms());
  for (ebb_heap_t *h = _ebb_heap_first(); h != NULL; h = h->all_next) {
    if (!__atomic_load_n(&h->live, __ATOMIC_RELAXED)) continue;
    if (atomic_load_explicit(&h->activity, memory_order_relaxed)) return true;
    if (!atomic_load_explicit(&h->unclean, memory_order_relaxed)) continue;
    if (!atomic_load_explicit(&h->asked_running, memory_order_relaxed) ||
        now - atomic_load_explicit(&h->active_at, memory_order_relaxed) >= later)
      return true;
  }
  return false;
}
