/* SPDX-License-Identifier: MIT */
/* sample.c - reading a process from outside: its memory as the kernel
 * counts it (/proc/<pid>/smaps_rollup, stat, the memory cgroup's usage)
 * and ebb's snapshot (/dev/shm/ebb-<pid>, ebb_snapshot.h). The object is
 * opened afresh at every reading, so that a program that execs (same pid,
 * a new object) or restarts its publisher is followed. Single-threaded. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "cli.h"

uint64_t read_u64_file(const char *path) {
  FILE *f = fopen(path, "re");
  if (f == NULL) return 0;
  unsigned long long v = 0;
  if (fscanf(f, "%llu", &v) != 1) v = 0;
  fclose(f);
  return v;
}

/* Fills the four smaps_rollup figures; false if the file is unreadable. */
static bool read_rollup(pid_t pid, sample_t *x) {
  char path[64], line[256];
  snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
  FILE *f = fopen(path, "re");
  if (f == NULL) return false;
  static const struct {
    const char *key;
    size_t offset;
  } keys[] = {{"Rss:", offsetof(sample_t, rss)}, {"Anonymous:", offsetof(sample_t, anon)},
              {"LazyFree:", offsetof(sample_t, lazyfree)}, {"AnonHugePages:", offsetof(sample_t, anon_huge)}};
  bool any = false;
  while (fgets(line, sizeof(line), f)) {
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
      size_t len = strlen(keys[k].key);
      if (strncmp(line, keys[k].key, len) != 0) continue;
      uint64_t kib = strtoull(line + len, NULL, 10);
      memcpy((char *)x + keys[k].offset, &(uint64_t){kib * 1024}, sizeof(uint64_t));
      any = true;
    }
  }
  fclose(f);
  return any;
}

/* Calls fn on /proc/<pid>/task/<tid>/<name> of each of pid's threads;
 * stops when fn returns false. */
static void for_each_task_file(pid_t pid, const char *name, bool (*fn)(const char *path, void *ctx), void *ctx) {
  char dir[64];
  snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
  DIR *d = opendir(dir);
  if (d == NULL) return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s/%s", dir, e->d_name, name);
    if (!fn(path, ctx)) break;
  }
  closedir(d);
}

static bool add_cpu_ns(const char *path, void *total) {
  *(uint64_t *)total += read_u64_file(path);
  return true;
}

/* CPU time of all of pid's threads, in ns: the first field of each
 * thread's schedstat (finer than /proc/<pid>/stat's clock ticks). */
static uint64_t read_cpu_ns(pid_t pid) {
  uint64_t total = 0;
  for_each_task_file(pid, "schedstat", add_cpu_ns, &total);
  return total;
}

void cgroup_file_of(pid_t pid, char *buf, size_t cap) {
  char path[64], line[PATH_MAX];
  buf[0] = 0;
  snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
  FILE *f = fopen(path, "re");
  if (f == NULL) return;
  while (fgets(line, sizeof(line), f)) {
    line[strcspn(line, "\n")] = 0;
    const char *rel;
    if (strncmp(line, "0::", 3) == 0) { /* cgroup v2 */
      rel = line + 3;
      snprintf(buf, cap, "/sys/fs/cgroup%s/memory.current", strcmp(rel, "/") == 0 ? "" : rel);
    } else if ((rel = strstr(line, ":memory:")) != NULL) { /* v1 memory controller */
      rel += 8;
      snprintf(buf, cap, "/sys/fs/cgroup/memory%s/memory.usage_in_bytes", strcmp(rel, "/") == 0 ? "" : rel);
    } else {
      continue;
    }
    if (access(buf, R_OK) == 0) break;
    buf[0] = 0;
  }
  fclose(f);
}

uint64_t proc_status_bytes(pid_t pid, const char *key) {
  char path[64], line[256];
  if (pid == 0) snprintf(path, sizeof(path), "/proc/self/status");
  else snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "re");
  if (f == NULL) return 0;
  uint64_t kib = 0;
  size_t len = strlen(key);
  while (fgets(line, sizeof(line), f))
    if (strncmp(line, key, len) == 0 && line[len] == ':') kib = strtoull(line + len + 1, NULL, 10);
  fclose(f);
  return kib * 1024;
}

bool sample_kernel(pid_t pid, sample_t *x) {
  if (!read_rollup(pid, x)) return false;
  x->hwm = proc_status_bytes(pid, "VmHWM");
  x->cpu_ns = read_cpu_ns(pid);
  return true;
}

void snapshot_path(pid_t pid, char *buf, size_t cap) {
  snprintf(buf, cap, "/dev/shm/ebb-%d", (int)pid);
}

snap_state_t snapshot_get(pid_t pid, ebb_snapshot_t *out) {
  char path[64];
  snapshot_path(pid, path, sizeof(path));
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? SNAP_NONE : SNAP_UNREADABLE;
  struct stat sb;
  if (fstat(fd, &sb) != 0 || (size_t)sb.st_size < sizeof(ebb_snapshot_t)) {
    close(fd);
    return SNAP_NOT_READY; /* created, not yet sized by the publisher */
  }
  void *map = mmap(NULL, sizeof(ebb_snapshot_t), PROT_READ, MAP_SHARED, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return SNAP_UNREADABLE;
  const volatile ebb_snapshot_t *shared = map;
  bool ok = ebb_snapshot_read(shared, out);
  /* Not yet published: the header the publisher wrote at creation still
   * names it. A process killed (or ended with _exit) before its first
   * publication leaves such an object, stale once that process is gone. A
   * header not yet written reads as pid 0. */
  bool orphan = !ok && shared->pid == (uint64_t)pid && shared->start_ticks != 0 &&
                ebb_snapshot_is_stale(&(ebb_snapshot_t){.pid = shared->pid, .start_ticks = shared->start_ticks});
  munmap(map, sizeof(ebb_snapshot_t));
  if (orphan) return SNAP_STALE;
  if (!ok) return SNAP_NOT_READY;
  return ebb_snapshot_is_stale(out) ? SNAP_STALE : SNAP_OK;
}

void sample_take_snapshot(sample_t *x, const ebb_snapshot_t *snap) {
  size_t size = snap->stats.size < sizeof(ebb_stats_t) ? snap->stats.size : sizeof(ebb_stats_t);
  memset(&x->st, 0, sizeof(x->st));
  memcpy(&x->st, &snap->stats, size);
  x->st.size = (uint32_t)size;
  x->purge_delay_ms = snap->purge_delay_ms;
  x->has_snapshot = true;
}

typedef struct {
  pid_t *out;
  size_t n, cap; /* n <= cap */
} pid_list_t;

static bool add_children(const char *path, void *ctx) {
  pid_list_t *l = ctx;
  FILE *f = fopen(path, "re");
  if (f == NULL) return true;
  int child;
  while (l->n < l->cap && fscanf(f, "%d", &child) == 1) l->out[l->n++] = child;
  fclose(f);
  return l->n < l->cap;
}

size_t children_of(pid_t pid, pid_t *out, size_t cap) {
  pid_list_t l = {out, 0, cap};
  for_each_task_file(pid, "children", add_children, &l);
  return l.n;
}

void comm_of(pid_t pid, char *buf, size_t cap) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
  FILE *f = fopen(path, "re");
  if (f == NULL || fgets(buf, (int)cap, f) == NULL) snprintf(buf, cap, "?");
  if (f) fclose(f);
  buf[strcspn(buf, "\n")] = 0;
}

bool snapshot_for_pid(pid_t pid, ebb_snapshot_t *out) {
  char path[64], comm[64];
  snapshot_path(pid, path, sizeof(path));
  switch (snapshot_get(pid, out)) {
  case SNAP_OK: return true;
  case SNAP_STALE:
    if (unlink(path) == 0)
      cli_error("the snapshot of %d is stale: process %d exited without removing it (it crashed or was killed); removed %s",
                (int)pid, (int)pid, path);
    else
      cli_error("the snapshot of %d is stale (process %d crashed or was killed), and %s cannot be removed: %s",
                (int)pid, (int)pid, path, strerror(errno));
    return false;
  case SNAP_UNREADABLE: cli_error("cannot read %s: %s", path, strerror(errno)); return false;
  case SNAP_NOT_READY: cli_error("%s is not (yet) an ebb snapshot", path); return false;
  case SNAP_NONE: break;
  }
  char proc[64];
  snprintf(proc, sizeof(proc), "/proc/%d", (int)pid);
  if (access(proc, F_OK) != 0) {
    cli_error("no process %d", (int)pid);
    return false;
  }
  comm_of(pid, comm, sizeof(comm));
  cli_error("process %d (%s) publishes no ebb snapshot: it does not use ebb, or was not started with "
            "EBB_SNAPSHOT=1 (ebb run sets it)", (int)pid, comm);
  return false;
}
