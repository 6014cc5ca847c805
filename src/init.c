/* SPDX-License-Identifier: MIT */
/* init.c - process initialisation, the global lock, fork, and exit.
 *
 * Initialisation is lazy: the first allocation (which may come from the
 * dynamic loader, dlsym, or another library's constructor that runs before
 * ours) calls _ebb_init_process. It only reads options and creates the
 * pthread key; nothing in it allocates, so it cannot recurse. Concurrent
 * first calls: one thread initialises, the others wait on init_state.
 *
 * fork: the global lock is taken before fork and released after it in
 * both processes, so the child never inherits it locked by a thread that
 * does not exist there. */
#include <pthread.h>
#include <stdatomic.h>

#include "internal.h"
#include "prim.h"

pthread_mutex_t _ebb_global_lock = PTHREAD_MUTEX_INITIALIZER;

#if EBB_DEBUG >= 2
/* Checked builds know whether this thread holds the lock: paths that may
 * wait for it (a refused mapping's release) assert that they do not. */
static __thread bool lock_held;
void _ebb_lock(void) {
  pthread_mutex_lock(&_ebb_global_lock);
  lock_held = true;
}
void _ebb_unlock(void) {
  lock_held = false;
  pthread_mutex_unlock(&_ebb_global_lock);
}
bool _ebb_lock_held(void) { return lock_held; }
#else
void _ebb_lock(void) { pthread_mutex_lock(&_ebb_global_lock); }
void _ebb_unlock(void) { pthread_mutex_unlock(&_ebb_global_lock); }
bool _ebb_lock_held(void) { return false; }
#endif

enum { INIT_NONE, INIT_RUNNING, INIT_DONE };
static _Atomic int init_state = INIT_NONE; /* CAS to RUNNING by the initialising thread, DONE with release; read acquire */

bool _ebb_is_initialized(void) { return atomic_load_explicit(&init_state, memory_order_acquire) == INIT_DONE; }

/* Order: the purge pass lock first (a pass takes the global lock), the
 * large cache's lock last (statistics take it under the global lock). */
void _ebb_fork_prepare(void) {
  _ebb_purge_fork_prepare();
  _ebb_lock();
  _ebb_large_fork_prepare();
}
void _ebb_fork_parent(void) {
  _ebb_large_fork_parent();
  _ebb_unlock();
  _ebb_purge_fork_parent();
}
void _ebb_fork_child(void) {
  ebb_heap_t *self = _ebb_tls_heap;
  if (self != &_ebb_heap_empty) self->kernel_tid = _ebb_prim_thread_tid(); /* the child's own id */
  _ebb_segment_orphan_others(_ebb_thread_id());
  _ebb_heap_orphan_others(self);
  pthread_mutex_init(&_ebb_global_lock, NULL);
  _ebb_large_fork_child();
  _ebb_os_fork_child();
  _ebb_purge_fork_child();
  _ebb_snapshot_fork_child();
}

void _ebb_init_process(void) {
  if (ebb_likely(_ebb_is_initialized())) return;
  int expected = INIT_NONE;
  if (!atomic_compare_exchange_strong(&init_state, &expected, INIT_RUNNING)) {
    while (!_ebb_is_initialized()) _ebb_prim_yield();
    return;
  }
  _ebb_options_init();
  _ebb_secure_init();
  _ebb_page_init_tables();
  _ebb_heap_init_empty();
  _ebb_seize_init();
  _ebb_snapshot_init();
  pthread_atfork(_ebb_fork_prepare, _ebb_fork_parent, _ebb_fork_child);
  atomic_store_explicit(&init_state, INIT_DONE, memory_order_release);
  _ebb_verbose("ebb: initialised (ebb %s)\n", ebb_version());
  if (_ebb_verbose_on()) _ebb_options_print();
}

/* The purge thread publishes the snapshot: started here, once the C
 * library can make threads, rather than by the first offer of memory.
 * This thread's heap is made first: pthread_create allocates while the
 * start blocks every signal, and a heap made then would record that mask
 * as its owner's, so that its owner would never look blocked to a pass
 * (seize.c) and its pages could only be asked for. */
__attribute__((constructor)) static void ebb_constructor(void) {
  _ebb_init_process();
  if (!_ebb_snapshot_on()) return;
  (void)_ebb_heap_get();
  _ebb_purge_notify();
}

__attribute__((destructor)) static void ebb_destructor(void) {
  if (!_ebb_is_initialized()) return;
  if (_ebb_option_path(EBB_OPT_STATS_FILE) != NULL) _ebb_stats_print_to_file(_ebb_option_path(EBB_OPT_STATS_FILE));
  else if (_ebb_option(EBB_OPT_STATS)) ebb_stats_print();
  if (_ebb_verbose_on()) _ebb_verbose_flush();
  _ebb_snapshot_exit();
}

ebb_export const char *ebb_version(void) { return "0.1.0"; }

/* glibc's contract: returns 1 if memory was released. `pad` (bytes to
 * leave at the top of glibc's heap) has no meaning here. */
ebb_export int ebb_malloc_trim(size_t pad) {
  (void)pad;
  return ebb_collect(true) > 0 ? 1 : 0;
}
EBB_STD(malloc_trim, ebb_malloc_trim);
