/* SPDX-License-Identifier: MIT */
/* snapshot.c - the statistics a running program publishes for other
 * processes (EBB_SNAPSHOT=1; the layout and the reader are in
 * include/ebb_snapshot.h).
 *
 * The object /dev/shm/ebb-<pid> is created at initialisation and filled in
 * by the purge thread every EBB_SNAPSHOT_MS; at exit it gets a last
 * publication and loses its name (a reader that has it mapped keeps the
 * last figures). malloc and free never look at it: the only costs are the
 * purge thread's statistics walk per interval and its wake-ups.
 *
 * Concurrency: one writer at a time - the purge thread, or the exiting
 * thread once (the destructor) - serialised by pub_lock; readers in other
 * processes follow the sequence counter (odd while a copy is written:
 * store odd, release fence, copy, store even with release). `snap` is
 * written at initialisation and in a fork child (one thread), then read. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "../include/ebb_snapshot.h"
#include "internal.h"
#include "prim.h"

_Static_assert(sizeof(ebb_snapshot_t) <= EBB_SNAPSHOT_BYTES, "the snapshot outgrew its page");

static ebb_snapshot_t *snap;   /* the mapped object; NULL when off or not created */
static char snap_name[32];     /* "ebb-<pid>" */
static uint64_t next_due_ns;   /* writer only (pub_lock) */
static pthread_mutex_t pub_lock = PTHREAD_MUTEX_INITIALIZER;

bool _ebb_snapshot_on(void) { return snap != NULL; }

/* Field 22 of /proc/self/stat: the start time the reader compares (a pid
 * reused by another process has another). */
static uint64_t own_start_ticks(void) {
  char buf[1024];
  if (_ebb_prim_read_file("/proc/self/stat", 0, buf, sizeof(buf)) == 0) return 0;
  const char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
  for (int field = 2; field < 22 && p != NULL; field++) p = strchr(p + 1, ' ');
  if (p == NULL) return 0;
  uint64_t ticks = 0;
  for (p++; *p >= '0' && *p <= '9'; p++) ticks = ticks * 10 + (uint64_t)(*p - '0');
  return ticks;
}

static uint64_t interval_ns(void) { return (uint64_t)_ebb_option(EBB_OPT_SNAPSHOT_MS) * 1000000u; }

static void create(void) {
  uint32_t pid = _ebb_prim_pid();
  _ebb_format(snap_name, sizeof(snap_name), "ebb-%u", (unsigned)pid);
  ebb_snapshot_t *s = _ebb_prim_shm_create(snap_name, EBB_SNAPSHOT_BYTES);
  if (s == NULL) {
    _ebb_message("ebb: warning: EBB_SNAPSHOT=1: cannot create /dev/shm/%s (errno %d); no snapshot is published\n",
                 snap_name, errno);
    return;
  }
  s->version = EBB_SNAPSHOT_VERSION;
  s->header_size = (uint32_t)offsetof(ebb_snapshot_t, stats);
  s->pid = pid;
  s->start_ticks = own_start_ticks();
  s->interval_ms = (uint64_t)_ebb_option(EBB_OPT_SNAPSHOT_MS);
  s->purge_delay_ms = (uint64_t)_ebb_option(EBB_OPT_PURGE_DELAY_MS);
  _ebb_format(s->version_text, sizeof(s->version_text), "%s", ebb_version());
  /* magic stays 0 until the first publication: a reader sees no figures
   * before there are any. */
  next_due_ns = 0;
  snap = s;
}

void _ebb_snapshot_init(void) {
  if (!_ebb_option(EBB_OPT_SNAPSHOT)) return;
  if (!_ebb_option(EBB_OPT_PURGE_THREAD)) {
    _ebb_message("ebb: warning: EBB_SNAPSHOT=1 needs the purge thread (EBB_PURGE_THREAD=1); no snapshot is published\n");
    return;
  }
  create();
}

/* pub_lock held. */
static void publish_locked(uint64_t now) {
  ebb_stats_t st;
  ebb_stats_get(&st, sizeof(st));
  uint64_t seq = atomic_load_explicit(&snap->sequence, memory_order_relaxed);
  atomic_store_explicit(&snap->sequence, seq + 1, memory_order_relaxed);
  atomic_thread_fence(memory_order_release); /* the odd count before any byte of the copy */
  snap->stats = st;
  snap->published_ns = now;
  snap->publications++;
  snap->magic = EBB_SNAPSHOT_MAGIC;
  atomic_store_explicit(&snap->sequence, seq + 2, memory_order_release);
}

uint64_t _ebb_snapshot_due_in(void) {
  if (snap == NULL) return UINT64_MAX;
  uint64_t now = _ebb_prim_clock_ns(), wait;
  pthread_mutex_lock(&pub_lock);
  if (now >= next_due_ns) {
    publish_locked(now);
    /* From now, not from the due time: a late pass does not make the next
     * publications bunch up. */
    next_due_ns = now + interval_ns();
  }
  wait = (next_due_ns - now) / 1000000u;
  pthread_mutex_unlock(&pub_lock);
  return wait;
}

void _ebb_snapshot_exit(void) {
  if (snap == NULL) return;
  pthread_mutex_lock(&pub_lock);
  publish_locked(_ebb_prim_clock_ns());
  pthread_mutex_unlock(&pub_lock);
  _ebb_prim_shm_remove(snap_name);
}

/* The inherited mapping is the parent's object: the child lets go of it
 * (without removing the parent's name) and publishes under its own pid at
 * once. Its purge thread, which refreshes the figures, starts at the
 * child's first offer of memory (a free that leaves memory for purging):
 * a thread is not made inside fork's handlers. */
void _ebb_snapshot_fork_child(void) {
  pthread_mutex_init(&pub_lock, NULL);
  if (snap == NULL) return;
  _ebb_prim_shm_unmap(snap, EBB_SNAPSHOT_BYTES);
  snap = NULL;
  create();
  if (snap == NULL) return;
  publish_locked(_ebb_prim_clock_ns());
  next_due_ns = 0;
}
