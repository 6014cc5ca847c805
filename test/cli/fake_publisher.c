/* SPDX-License-Identifier: MIT */
/* test/cli/fake_publisher.c - writes /dev/shm/ebb-<pid> exactly as
 * include/ebb_snapshot.h lays it out, so that the ebb command's readers
 * are tested against the header itself, whatever the library publishes.
 *   fake_publisher workload   malloc 32 MiB, touched (live), 400 ms, free
 *                             (live 0, purged 32 MiB), 400 ms, exit;
 *                             publishes only if no library does already
 *                             (under ebb run, libebb publishes)
 *   fake_publisher sparse     25 MiB of 128-byte blocks, all freed but one
 *                             in 32 (one per 4 KiB), 1 s idle: memory
 *                             no allocator can give back, free but resident
 *   fake_publisher serve MS   publishes fixed figures for MS ms, then exits
 *   fake_publisher stale      leaves an object for a pid that has exited,
 *                             prints that pid
 * One thread: it is the only writer of its object (sequence odd while it
 * writes, release stores around the copy). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ebb_snapshot.h"

#define MiB (1024ull * 1024)

static ebb_snapshot_t *create(pid_t pid) {
  char name[64];
  snprintf(name, sizeof(name), "/ebb-%d", (int)pid);
  int fd = shm_open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || ftruncate(fd, EBB_SNAPSHOT_BYTES) != 0) {
    perror("fake_publisher: shm_open");
    exit(1);
  }
  ebb_snapshot_t *s = mmap(NULL, EBB_SNAPSHOT_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (s == MAP_FAILED) exit(1);
  s->version = EBB_SNAPSHOT_VERSION;
  s->header_size = (uint32_t)offsetof(ebb_snapshot_t, stats);
  s->pid = (uint64_t)pid;
  s->start_ticks = ebb_snapshot_start_ticks((uint64_t)pid);
  s->interval_ms = 50;
  s->purge_delay_ms = 100;
  snprintf(s->version_text, sizeof(s->version_text), "fake");
  return s;
}

static void publish(ebb_snapshot_t *s, uint64_t live, uint64_t purged) {
  uint64_t seq = atomic_load_explicit(&s->sequence, memory_order_relaxed);
  atomic_store_explicit(&s->sequence, seq + 1, memory_order_relaxed);
  atomic_thread_fence(memory_order_release);
  ebb_stats_t *st = &s->stats;
  memset(st, 0, sizeof(*st));
  st->version = EBB_STATS_VERSION;
  st->size = sizeof(*st);
  st->live = live;
  st->metadata = 64 * 1024;
  st->resident = live + st->metadata;
  st->mapped = st->resident;
  st->purged_total = purged;
  st->mmap_calls = 3;
  st->munmap_calls = purged ? 1 : 0;
  st->madvise_calls = 7;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  s->published_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
  s->publications++;
  s->magic = EBB_SNAPSHOT_MAGIC;
  atomic_store_explicit(&s->sequence, seq + 2, memory_order_release);
}

static void remove_object(void) {
  char name[64];
  snprintf(name, sizeof(name), "/ebb-%d", (int)getpid());
  shm_unlink(name);
}

static int workload(void) {
  usleep(150 * 1000);
  char path[64];
  snprintf(path, sizeof(path), "/dev/shm/ebb-%d", (int)getpid());
  ebb_snapshot_t *s = access(path, F_OK) == 0 ? NULL : create(getpid()); /* a library publishes: leave it */
  size_t bytes = 32 * MiB;
  char *p = malloc(bytes);
  if (p == NULL) return 1;
  memset(p, 1, bytes);
  __asm__ volatile("" : : "r"(p) : "memory"); /* the compiler may not drop the writes with the block */
  if (s) publish(s, bytes, 0);
  usleep(400 * 1000);
  free(p);
  if (s) publish(s, 0, bytes);
  usleep(400 * 1000);
  if (s) remove_object();
  return 0;
}

static int sparse(void) {
  enum { COUNT = 200000, KEEP_EVERY = 32 };
  char **blocks = malloc(COUNT * sizeof(*blocks));
  if (blocks == NULL) return 1;
  for (int i = 0; i < COUNT; i++)
    if ((blocks[i] = malloc(128)) == NULL) return 1;
    else memset(blocks[i], 1, 128);
  for (int i = 0; i < COUNT; i++)
    if (i % KEEP_EVERY != 0) free(blocks[i]);
  usleep(1000 * 1000);
  for (int i = 0; i < COUNT; i += KEEP_EVERY) free(blocks[i]);
  free(blocks);
  return 0;
}

static int stale(void) {
  pid_t child = fork();
  if (child == 0) {
    create(getpid());
    publish(create(getpid()), 5 * MiB, 0);
    _exit(0); /* leaves its object behind, as a crash would */
  }
  waitpid(child, NULL, 0);
  printf("%d\n", (int)child);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "workload") == 0) return workload();
  if (argc >= 2 && strcmp(argv[1], "stale") == 0) return stale();
  if (argc >= 2 && strcmp(argv[1], "sparse") == 0) return sparse();
  if (argc >= 3 && strcmp(argv[1], "serve") == 0) {
    ebb_snapshot_t *s = create(getpid());
    int ms = atoi(argv[2]);
    for (int t = 0; t < ms; t += 20) {
      publish(s, 3 * MiB + (uint64_t)t, 1 * MiB);
      usleep(20 * 1000);
    }
    remove_object();
    return 0;
  }
  fprintf(stderr, "usage: fake_publisher workload | sparse | serve MS | stale\n");
  return 2;
}
