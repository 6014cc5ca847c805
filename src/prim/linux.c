/* SPDX-License-Identifier: MIT */
/* prim/linux.c - the Linux implementation of prim.h: mmap, mprotect,
 * munmap, mremap, madvise, the clock, stderr, small /proc and /sys files,
 * the kernel's page map (huge pages) and rlimits. Stateless except for syscall counters (relaxed atomics,
 * read by the statistics). */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "prim.h"

_Atomic(uint64_t) _ebb_prim_mmap_calls;
_Atomic(uint64_t) _ebb_prim_munmap_calls;

static void count(_Atomic(uint64_t) *counter) {
  atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

/* No MAP_NORESERVE on memory that holds blocks: with it the kernel skips
 * its overcommit check, so malloc(1 TiB) would succeed and the program
 * would die later in the OOM killer instead of getting NULL. */
static void *map(size_t size, int prot, int extra_flags) {
  count(&_ebb_prim_mmap_calls);
  void *p = mmap(NULL, size, prot, MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
  if (p == MAP_FAILED) {
    if (errno != ENOMEM && errno != EAGAIN) _ebb_fatal("mmap failed unexpectedly");
    errno = ENOMEM;
    return NULL;
  }
  return p;
}

void *_ebb_prim_map(size_t size) { return map(size, PROT_READ | PROT_WRITE, 0); }

/* Not MAP_NORESERVE either: mprotect charges a range when it becomes
 * writable only if the mapping was not marked so. */
void *_ebb_prim_reserve(size_t size) { return map(size, PROT_NONE, 0); }

int _ebb_prim_commit(void *p, size_t size) {
  if (mprotect(p, size, PROT_READ | PROT_WRITE) == 0) return 0;
  if (errno != ENOMEM) _ebb_fatal("mprotect failed unexpectedly");
  return ENOMEM;
}

int _ebb_prim_unmap(void *p, size_t size) {
  if (size == 0) return 0;
  count(&_ebb_prim_munmap_calls);
  if (munmap(p, size) == 0) return 0;
  if (errno != ENOMEM) _ebb_fatal("munmap failed");
  return ENOMEM;
}

void *_ebb_prim_remap(void *p, size_t old_size, size_t new_size, void *fixed_to, bool may_move) {
  int flags = may_move ? MREMAP_MAYMOVE : 0;
  if (fixed_to != NULL) flags |= MREMAP_MAYMOVE | MREMAP_FIXED;
  void *q = fixed_to ? mremap(p, old_size, new_size, flags, fixed_to) : mremap(p, old_size, new_size, flags);
  if (q == MAP_FAILED) {
    errno = ENOMEM;
    return NULL;
  }
  return q;
}

_Atomic(uint64_t) _ebb_prim_madvise_calls;

int _ebb_prim_decommit(void *p, size_t size, bool lazy) {
  count(&_ebb_prim_madvise_calls);
  if (madvise(p, size, lazy ? MADV_FREE : MADV_DONTNEED) != 0) {
    int e = errno;
    /* Locked (mlock) or otherwise refused: callers mark the range as zero
     * (is_fresh, cache_purged), so make it so; nothing is released. */
    if (!lazy) memset(p, 0, size);
    errno = e;
    return e;
  }
  return 0;
}

int _ebb_prim_advise_huge(void *p, size_t size, bool huge) {
  count(&_ebb_prim_madvise_calls);
  return madvise(p, size, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) == 0 ? 0 : errno;
}

/* PAGEMAP_SCAN (linux/fs.h of Linux 6.7; Debian 12's headers predate it):
 * the ioctl fills page_region entries with the runs of pages that match
 * the categories asked for, and walk_end says where it stopped. */
#define EBB_PAGEMAP_SCAN _IOWR('f', 16, struct ebb_pm_scan_arg)
#define EBB_PAGE_IS_PFNZERO (1ULL << 5)
#define EBB_PAGE_IS_HUGE (1ULL << 6)
struct ebb_page_region {
  uint64_t start, end, categories;
};
struct ebb_pm_scan_arg {
  uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
  uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};

int _ebb_prim_pagemap_open(void) {
  int saved = errno, fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  errno = saved;
  return fd;
}

/* Huge pages, but not the shared huge zero page (smaps counts only pages
 * of the process's own in AnonHugePages). */
uint64_t _ebb_prim_huge_resident(int fd, const void *p, size_t size) {
  struct ebb_page_region vec[8];
  uint64_t bytes = 0, at = (uintptr_t)p, end = (uintptr_t)p + size;
  int saved = errno;
  while (at < end) {
    struct ebb_pm_scan_arg arg = {.size = sizeof(arg), .start = at, .end = end, .vec = (uintptr_t)vec,
                                  .vec_len = sizeof(vec) / sizeof(vec[0]),
                                  .category_inverted = EBB_PAGE_IS_PFNZERO,
                                  .category_mask = EBB_PAGE_IS_HUGE | EBB_PAGE_IS_PFNZERO,
                                  .return_mask = EBB_PAGE_IS_HUGE};
    long n = ioctl(fd, EBB_PAGEMAP_SCAN, &arg);
    if (n < 0) {
      bytes = UINT64_MAX; /* before Linux 6.7, or not a page map */
      break;
    }
    for (long i = 0; i < n; i++) bytes += vec[i].end - vec[i].start;
    if (arg.walk_end <= at) break;
    at = arg.walk_end;
  }
  errno = saved;
  return bytes;
}

bool _ebb_prim_resident_map(const void *p, size_t pages, unsigned char *vec) {
  int saved = errno;
  bool ok = pages <= 1024 && mincore((void *)p, pages * EBB_OS_PAGE, vec) == 0;
  errno = saved;
  return ok;
}

size_t _ebb_prim_resident(const void *p, size_t size) {
  unsigned char vec[1024]; /* one byte per OS page: 4 MiB per call */
  size_t pages = (size + EBB_OS_PAGE - 1) / EBB_OS_PAGE, resident = 0;
  const uint8_t *at = p;
  while (pages > 0) {
    size_t n = pages < sizeof(vec) ? pages : sizeof(vec);
    if (!_ebb_prim_resident_map(at, n, vec)) {
      resident += n * EBB_OS_PAGE;
    } else {
      for (size_t i = 0; i < n; i++) resident += (vec[i] & 1) ? EBB_OS_PAGE : 0;
    }
    at += n * EBB_OS_PAGE;
    pages -= n;
  }
  return resident;
}

int _ebb_prim_open_append(const char *path) {
  int fd;
  do fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  while (fd < 0 && errno == EINTR);
  return fd;
}

/* /dev/shm is where glibc's shm_open puts its objects; opening the path
 * ourselves needs no librt and no allocation. O_NOFOLLOW: a link planted
 * under the name is refused, not followed. */
static void shm_path(char *path, size_t cap, const char *name) {
  static const char dir[] = "/dev/shm/";
  size_t n = strlen(name);
  if (sizeof(dir) + n > cap) n = cap - sizeof(dir);
  memcpy(path, dir, sizeof(dir) - 1);
  memcpy(path + sizeof(dir) - 1, name, n);
  path[sizeof(dir) - 1 + n] = 0;
}

void *_ebb_prim_shm_create(const char *name, size_t size) {
  char path[128];
  shm_path(path, sizeof(path), name);
  int fd;
  do fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return NULL;
  void *p = MAP_FAILED;
  if (ftruncate(fd, (off_t)size) == 0) p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int e = errno;
  close(fd);
  if (p == MAP_FAILED) {
    unlink(path);
    errno = e;
    return NULL;
  }
  return p;
}

void _ebb_prim_shm_remove(const char *name) {
  char path[128];
  shm_path(path, sizeof(path), name);
  int saved = errno;
  unlink(path);
  errno = saved;
}

void _ebb_prim_shm_unmap(void *p, size_t size) { munmap(p, size); }

int _ebb_prim_write_fd(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : EIO;
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

void _ebb_prim_close(int fd) { close(fd); }

uint32_t _ebb_prim_pid(void) { return (uint32_t)getpid(); }

uint64_t _ebb_prim_clock_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void _ebb_prim_write_stderr(const char *buf, size_t len) {
  int saved = errno;
  _ebb_prim_write_fd(STDERR_FILENO, buf, len);
  errno = saved;
}

/* getenv does not allocate; it only reads environ, which the loader has set
 * before any constructor (and so before any allocation) runs. */
const char *_ebb_prim_getenv(const char *name) { return getenv(name); }

/* The same array getenv reads; NULL if the program cleared it. */
char **_ebb_prim_environ(void) { return environ; }

_Noreturn void _ebb_prim_abort(void) {
  abort();
}

void _ebb_prim_yield(void) { sched_yield(); }

uint32_t _ebb_prim_thread_tid(void) { return (uint32_t)syscall(SYS_gettid); }

/* /proc/self/task/TID/<file> into buf (NUL-terminated), on the caller's
 * stack. False if it cannot be read. */
static bool read_task_file(uint32_t tid, const char *file, char *buf, size_t cap) {
  char path[64];
  _ebb_format(path, sizeof(path), "/proc/self/task/%u/%s", (unsigned)tid, file);
  return _ebb_prim_read_file(path, 0, buf, cap) > 0;
}

/* "running", "-1 sp pc" (not in a system call) or "nr args... sp pc". */
long _ebb_prim_thread_syscall(uint32_t tid) {
  char buf[256];
  int saved = errno;
  bool ok = read_task_file(tid, "syscall", buf, sizeof(buf));
  errno = saved;
  if (!ok || buf[0] < '0' || buf[0] > '9') return -1;
  return strtol(buf, NULL, 10);
}

static uint64_t field_after(const char *buf, const char *key) {
  const char *p = strstr(buf, key);
  return p == NULL ? UINT64_MAX : strtoull(p + strlen(key), NULL, 10);
}

bool _ebb_prim_thread_switches(uint32_t tid, uint64_t *switches, uint64_t *sigblk) {
  char buf[4096];
  int saved = errno;
  bool ok = read_task_file(tid, "status", buf, sizeof(buf));
  errno = saved;
  if (!ok) return false;
  uint64_t v = field_after(buf, "\nvoluntary_ctxt_switches:"), nv = field_after(buf, "\nnonvoluntary_ctxt_switches:");
  const char *blk = strstr(buf, "\nSigBlk:");
  if (v == UINT64_MAX || nv == UINT64_MAX || blk == NULL) return false;
  *switches = v + nv;
  *sigblk = strtoull(blk + strlen("\nSigBlk:"), NULL, 16);
  return true;
}

uint64_t _ebb_prim_thread_sigblk(void) {
  sigset_t set;
  uint64_t mask = 0;
  if (pthread_sigmask(SIG_BLOCK, NULL, &set) != 0) return 0;
  for (int sig = 1; sig <= 64; sig++) {
    if (sigismember(&set, sig) == 1) mask |= (uint64_t)1 << (sig - 1);
  }
  return mask;
}

size_t _ebb_prim_read_file(const char *path, size_t offset, char *buf, size_t cap) {
  size_t len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    while (len + 1 < cap) {
      ssize_t n = pread(fd, buf + len, cap - 1 - len, (off_t)(offset + len));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      len += (size_t)n;
    }
    close(fd);
  }
  if (cap > 0) buf[len] = 0;
  return len;
}

uint64_t _ebb_prim_rlimit(bool address_space) {
  struct rlimit rl;
  if (getrlimit(address_space ? RLIMIT_AS : RLIMIT_DATA, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return UINT64_MAX;
  return (uint64_t)rl.rlim_cur;
}
