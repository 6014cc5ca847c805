/* SPDX-License-Identifier: MIT */
/* ebb_snapshot.h - reading a running ebb program's statistics from outside.
 *
 * With EBB_SNAPSHOT=1 in its environment (the `ebb` command sets it for the
 * programs it starts), a process using ebb publishes its statistics every
 * EBB_SNAPSHOT_MS milliseconds (default 50) into a shared-memory object
 * named "/ebb-<pid>" (the file /dev/shm/ebb-<pid>, mode 0600), and removes
 * it at exit. The purge thread publishes; the program's malloc and free do
 * nothing for it.
 *
 * A reader maps the object read-only and copies it with
 * ebb_snapshot_read(), which retries while the publisher is writing (a
 * sequence counter, odd while a copy is in progress). A program that
 * crashed leaves its object behind: ebb_snapshot_is_stale() tells it from a
 * live one (the pid is gone, or now names another process: its start time
 * in /proc/<pid>/stat differs), and such an object may be removed.
 *
 * Layout rule: the header's fields keep their offsets forever; `stats` is
 * an ebb_stats_t of the publisher's version, whose `size` says how much of
 * it the publisher filled (ebb.h: fields are only ever appended). A reader
 * built against an older ebb.h reads the fields it knows. */
#ifndef EBB_SNAPSHOT_H
#define EBB_SNAPSHOT_H

#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ebb.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EBB_SNAPSHOT_MAGIC 0x70616e732d626265ULL /* "ebb-snap" in memory, little-endian */
#define EBB_SNAPSHOT_VERSION 1
#define EBB_SNAPSHOT_BYTES 4096 /* the object's size: one page, room for appended fields */

typedef struct ebb_snapshot_s {
  uint64_t magic;             /* EBB_SNAPSHOT_MAGIC once the object is ready */
  uint32_t version;           /* EBB_SNAPSHOT_VERSION of the publisher */
  uint32_t header_size;       /* offsetof(ebb_snapshot_t, stats) of the publisher */
  uint64_t pid;               /* the publishing process */
  uint64_t start_ticks;       /* its start time: field 22 of /proc/<pid>/stat */
  _Atomic(uint64_t) sequence; /* odd while the publisher writes; bumped twice per publication */
  uint64_t published_ns;      /* CLOCK_MONOTONIC of the last publication */
  uint64_t publications;      /* how many so far */
  uint64_t interval_ms;       /* EBB_SNAPSHOT_MS in effect */
  uint64_t purge_delay_ms;    /* EBB_PURGE_DELAY_MS in effect */
  char version_text[16];      /* ebb_version() of the publisher */
  ebb_stats_t stats;          /* as ebb_stats_get(&stats, sizeof stats) filled it */
} ebb_snapshot_t;

/* Copies a consistent snapshot from the mapped object `shared` into *out.
 * False if the object is not (yet) an ebb snapshot, or the publisher kept
 * writing through every try. */
static inline bool ebb_snapshot_read(const volatile ebb_snapshot_t *shared, ebb_snapshot_t *out) {
  for (int tries = 0; tries < 1000; tries++) {
    uint64_t before = atomic_load_explicit((_Atomic(uint64_t) *)&shared->sequence, memory_order_acquire);
    if (before & 1) continue;
    memcpy(out, (const void *)shared, sizeof(*out));
    atomic_thread_fence(memory_order_acquire);
    uint64_t after = atomic_load_explicit((_Atomic(uint64_t) *)&shared->sequence, memory_order_relaxed);
    if (before == after) return out->magic == EBB_SNAPSHOT_MAGIC;
  }
  return false;
}

/* The start time of process `pid` (field 22 of /proc/<pid>/stat, clock
 * ticks since boot), or 0 if it does not exist or cannot be read. */
static inline uint64_t ebb_snapshot_start_ticks(uint64_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof(path), "/proc/%llu/stat", (unsigned long long)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  const char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
  if (p == NULL) return 0;
  for (int field = 2; field < 22 && p != NULL; field++) p = strchr(p + 1, ' ');
  return p != NULL ? strtoull(p + 1, NULL, 10) : 0;
}

/* True if the snapshot's publisher is gone: its pid names no process, or
 * another one (pid reuse) than the one that published. */
static inline bool ebb_snapshot_is_stale(const ebb_snapshot_t *snap) {
  uint64_t ticks = ebb_snapshot_start_ticks(snap->pid);
  return ticks == 0 || ticks != snap->start_ticks;
}

#ifdef __cplusplus
}
#endif
#endif /* EBB_SNAPSHOT_H */
