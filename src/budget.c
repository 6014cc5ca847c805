/* SPDX-License-Identifier: MIT */
/* budget.c - the dirty budget: bytes in use and dirty (offered or cached,
 * not yet purged), the bound past which purging is immediate, and the
 * purge clock every deadline is measured with.
 *
 * Concurrency: the counters are relaxed atomics that any thread moves
 * (cached segments and large blocks under the global lock, with their
 * caches); the peak and the cached budget are racy estimates, recomputed
 * by every pass. Over the budget, or near a limit, it marks the next pass
 * urgent (purge.c). */
#include "internal.h"
#include "prim.h"

/* Offered or cached memory not yet purged: whoever offers, claims, caches
 * or purges moves it (fetch_add seq_cst, so that the purge thread's check
 * before it sleeps sees an offer; fetch_sub relaxed); EBB_DEBUG=3 checks it
 * against what is offered at ebb_collect(true) (purge.c). */
_Atomic(size_t) _ebb_dirty_bytes;
/* Resident bytes given back since start, each once, by the layer they
 * were in: their sum is purged_total, so that a snapshot's layers add up
 * (_ebb_budget_released adds, any thread, relaxed; statistics read them). */
_Atomic(size_t) _ebb_purged_by_layer[EBB_LAYERS];
_Atomic(size_t) _ebb_lazy_total;     /* of which with MADV_FREE (RSS shows them until the kernel takes them) */
_Atomic(size_t) _ebb_unmapped_total; /* of which by unmapping */
/* What this thread gave back: ebb_collect returns how much it grew during
 * the call, which counts every release the call caused on this thread
 * (its passes, the segments its reap unmapped) and no other thread's. */
static __thread size_t released_here;
_Atomic(size_t) _ebb_inuse_bytes;   /* pages and large blocks in use: the budget's base (any thread, relaxed) */

uint64_t _ebb_purge_clock_ms(void) { return _ebb_prim_clock_ns() / 1000000u + 1; }

void _ebb_budget_released(size_t bytes, ebb_release_t how, unsigned layer) {
  if (bytes == 0) return;
  ebb_assert(layer < EBB_LAYERS);
  released_here += bytes;
  atomic_fetch_add_explicit(&_ebb_purged_by_layer[layer], bytes, memory_order_relaxed);
  if (how == EBB_RELEASE_LAZY) atomic_fetch_add_explicit(&_ebb_lazy_total, bytes, memory_order_relaxed);
  if (how == EBB_RELEASE_UNMAP) atomic_fetch_add_explicit(&_ebb_unmapped_total, bytes, memory_order_relaxed);
}

size_t _ebb_budget_released_here(void) { return released_here; }

/* ---- the dirty budget ---------------------------------------------------- */
/* Recomputed by every pass (and at the first offer): the offer path only
 * compares against it. */
_Atomic(size_t) _ebb_budget_cached = 4 * EBB_MiB; /* passes and over-budget offers store it (relaxed) */

/* The budget's base is the memory in use at its peak over the last second,
 * not at this instant: a program whose live set shrinks and grows again
 * (bench waves) would otherwise purge at once most of what it freed, only
 * to fault it back in - the purge delay is what returns that memory. */
#define EBB_INUSE_PEAK_MS 1000
static _Atomic(size_t) inuse_peak;        /* highest _ebb_inuse_bytes since inuse_peak_since (racy max, relaxed) */
static _Atomic(uint64_t) inuse_peak_since; /* purge clock (ms); passes write (pass lock), relaxed */

/* Called when a page or a large block goes into use (not the malloc fast
 * path). */
void _ebb_inuse_add(size_t bytes) {
  size_t now = atomic_fetch_add_explicit(&_ebb_inuse_bytes, bytes, memory_order_relaxed) + bytes;
  if (now > atomic_load_explicit(&inuse_peak, memory_order_relaxed))
    atomic_store_explicit(&inuse_peak, now, memory_order_relaxed); /* racy max: an estimate */
  if (ebb_unlikely(now + atomic_load_explicit(&_ebb_dirty_bytes, memory_order_relaxed) >
                   atomic_load_explicit(&_ebb_limit_ceiling, memory_order_relaxed)))
    _ebb_purge_limit_near();
}

void _ebb_inuse_sub(size_t bytes) { atomic_fetch_sub_explicit(&_ebb_inuse_bytes, bytes, memory_order_relaxed); }

/* A pass restarts the peak once it is a second old. */
void _ebb_budget_inuse_peak_age(uint64_t now) {
  if (now - atomic_load_explicit(&inuse_peak_since, memory_order_relaxed) < EBB_INUSE_PEAK_MS) return;
  atomic_store_explicit(&inuse_peak, atomic_load_explicit(&_ebb_inuse_bytes, memory_order_relaxed),
                        memory_order_relaxed);
  atomic_store_explicit(&inuse_peak_since, now, memory_order_relaxed);
}

/* Under a limit (limit.c), the room left below it caps the budget, the
 * 4 MiB floor included: there, dirty memory is what the OOM killer would
 * take the program for. */
static size_t limit_room(size_t inuse) {
  size_t ceiling = atomic_load_explicit(&_ebb_limit_ceiling, memory_order_relaxed);
  return ceiling > inuse ? ceiling - inuse : 0;
}

/* The budget and which of its bounds set it (for EBB_VERBOSE=1). */
typedef enum { BOUND_FRACTION, BOUND_FLOOR, BOUND_MAX, BOUND_LIMIT } budget_bound_t;

static size_t budget_with_bound(budget_bound_t *bound) {
  size_t inuse = atomic_load_explicit(&_ebb_inuse_bytes, memory_order_relaxed);
  size_t peak = atomic_load_explicit(&inuse_peak, memory_order_relaxed);
  size_t room = limit_room(inuse);
  if (peak > inuse) inuse = peak;
  size_t frac = inuse / 100 * (size_t)_ebb_option(EBB_OPT_DIRTY_FRACTION);
  size_t floor = 4 * EBB_MiB, max = (size_t)_ebb_option(EBB_OPT_DIRTY_MAX);
  *bound = BOUND_FRACTION;
  if (frac < floor) {
    frac = floor;
    *bound = BOUND_FLOOR;
  }
  if (frac > max) {
    frac = max;
    *bound = BOUND_MAX;
  }
  if (room < frac) {
    frac = room;
    *bound = BOUND_LIMIT;
  }
  return frac;
}

size_t _ebb_budget(void) {
  budget_bound_t bound;
  return budget_with_bound(&bound);
}

static ebb_noinline void say_over_budget(size_t dirty) {
  budget_bound_t bound;
  size_t budget = budget_with_bound(&bound);
  char d[EBB_SIZE_TEXT], b[EBB_SIZE_TEXT], opt[EBB_SIZE_TEXT], why[96];
  switch (bound) {
  case BOUND_MAX: _ebb_format(why, sizeof(why), "EBB_DIRTY_MAX=%s", _ebb_size_option(opt, budget)); break;
  case BOUND_LIMIT: _ebb_format(why, sizeof(why), "the room left below the memory limit"); break;
  case BOUND_FLOOR: _ebb_format(why, sizeof(why), "the 4 MiB floor"); break;
  case BOUND_FRACTION:
    _ebb_format(why, sizeof(why), "EBB_DIRTY_FRACTION=%zu%% of the memory in use at its peak",
                (size_t)_ebb_option(EBB_OPT_DIRTY_FRACTION));
    break;
  }
  _ebb_verbose_rated(EBB_V_BUDGET, "ebb: budget: %s of free memory is over the dirty budget of %s (%s): purging at once\n",
                     _ebb_size_human(d, dirty), _ebb_size_human(b, budget), why);
}

/* Free memory is over the budget: the next pass purges at once. */
static void over_budget(size_t dirty) {
  if (_ebb_purge_urgent_set(EBB_URGENT_BUDGET) && _ebb_verbose_on()) say_over_budget(dirty);
}

/* Reads the limits at the thread's start and about once a second while it
 * works (the cgroup's usage moves with other processes and the page
 * cache; ebb's own growth between samples is followed by the ceiling). */
#define EBB_LIMIT_SAMPLE_MS 1000
static _Atomic(uint64_t) limit_sampled_at; /* purge clock (ms); 0: never (the purge thread, or a pass on entry; relaxed) */

void _ebb_budget_limit_refresh(void) {
  uint64_t now = _ebb_purge_clock_ms(), last = atomic_load_explicit(&limit_sampled_at, memory_order_relaxed);
  if (last != 0 && now - last < EBB_LIMIT_SAMPLE_MS) return;
  atomic_store_explicit(&limit_sampled_at, now, memory_order_relaxed);
  size_t dirty = atomic_load_explicit(&_ebb_dirty_bytes, memory_order_relaxed);
  _ebb_limit_sample(atomic_load_explicit(&_ebb_inuse_bytes, memory_order_relaxed) + dirty);
  if (dirty > _ebb_budget()) over_budget(dirty);
}

void _ebb_purge_dirty_add(size_t bytes) {
  size_t d = atomic_fetch_add_explicit(&_ebb_dirty_bytes, bytes, memory_order_seq_cst) + bytes;
  if (ebb_unlikely(d > atomic_load_explicit(&_ebb_budget_cached, memory_order_relaxed))) {
    atomic_store_explicit(&_ebb_budget_cached, _ebb_budget(), memory_order_relaxed);
    if (d > atomic_load_explicit(&_ebb_budget_cached, memory_order_relaxed)) over_budget(d);
  }
}

void _ebb_purge_dirty_sub(size_t bytes) {
  atomic_fetch_sub_explicit(&_ebb_dirty_bytes, bytes, memory_order_relaxed);
}

/* A pass saw `bytes` parked in place and not yet expired: over the budget
 * with the rest of the dirty memory, the next pass is urgent. */
void _ebb_purge_saw_in_place(size_t bytes) {
  size_t dirty = bytes + atomic_load_explicit(&_ebb_dirty_bytes, memory_order_relaxed);
  if (bytes != 0 && dirty > atomic_load_explicit(&_ebb_budget_cached, memory_order_relaxed)) over_budget(dirty);
}
