/* SPDX-License-Identifier: MIT */
/* prim.h - the platform contract: every system call ebb makes goes through
 * these functions (implemented in prim/linux.c). None of them allocates.
 * Errors: functions returning a pointer return NULL and leave errno set;
 * those returning int return 0 on success or an errno value. Any failure
 * other than ENOMEM on unmap/advise means a broken invariant and is fatal. */
#ifndef EBB_PRIM_H
#define EBB_PRIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reserve and commit `size` bytes of zeroed read/write memory anywhere
 * (size: multiple of the OS page). The kernel's overcommit policy applies
 * (vm.overcommit_memory): a request it would not back fails here rather
 * than in the OOM killer later. NULL + ENOMEM on failure. */
void *_ebb_prim_map(size_t size);
/* Reserve `size` bytes of address space, inaccessible: the kernel does not
 * charge it against the overcommit limit (until it is committed) nor merge
 * it with read/write mappings. NULL + ENOMEM on failure. */
void *_ebb_prim_reserve(size_t size);
/* Make reserved [p, p+size) zeroed read/write memory (the overcommit policy
 * applies). The range must be a whole reservation, so that no mapping is
 * split. 0 or ENOMEM. */
int _ebb_prim_commit(void *p, size_t size);
/* Release [p, p+size) (both OS-page aligned). 0, or ENOMEM when the kernel
 * would have to split a mapping past vm.max_map_count (the range stays
 * mapped). Fatal on any other failure. */
int _ebb_prim_unmap(void *p, size_t size);
/* Grow or move a mapping; `fixed_to` (if not NULL) is where it must land.
 * NULL + errno if it cannot. */
void *_ebb_prim_remap(void *p, size_t old_size, size_t new_size, void *fixed_to, bool may_move);
/* Give the memory back to the OS. MADV_DONTNEED (lazy false): resident
 * memory drops at once and the range reads as zero. MADV_FREE (lazy true):
 * the kernel takes the pages only under memory pressure, and RSS does not
 * show the difference until then; the range may or may not read as zero.
 * 0 or errno. */
int _ebb_prim_decommit(void *p, size_t size, bool lazy);
/* Transparent huge pages for [p, p+size): huge true asks for them
 * (MADV_HUGEPAGE: the kernel backs each aligned 2 MiB with one huge page
 * where it can, even when the system setting is "madvise"), false keeps
 * them away (MADV_NOHUGEPAGE). Counted as a madvise call. 0 or errno
 * (EINVAL on a kernel built without them: nothing changes). */
int _ebb_prim_advise_huge(void *p, size_t size, bool huge);
/* The process's page map (/proc/self/pagemap), read-only: a descriptor
 * for _ebb_prim_huge_resident, or -1 (close it with _ebb_prim_close).
 * Open it per use: a fork child's /proc/self is not its parent's. */
int _ebb_prim_pagemap_open(void);
/* Bytes of [p, p+size) mapped by huge pages (PMD-mapped transparent huge
 * pages: what smaps counts as AnonHugePages), from the PAGEMAP_SCAN ioctl,
 * which walks the range's page tables only. UINT64_MAX when the kernel
 * cannot say (before Linux 6.7). */
uint64_t _ebb_prim_huge_resident(int fd, const void *p, size_t size);
/* Bytes of [p, p+size) the kernel holds resident (mincore; p OS-page
 * aligned, size rounded up to OS pages): what a purge or unmap of the
 * range gives back. size if the kernel cannot say (never expected: the
 * range is ebb's own mapping). */
size_t _ebb_prim_resident(const void *p, size_t size);
/* The same, page by page: vec[i] & 1 for OS page i of the `pages` (at
 * most 1024) from p. False if the kernel cannot say. */
bool _ebb_prim_resident_map(const void *p, size_t pages, unsigned char *vec);
/* Opens `path` to append to it, created (0644) if missing: a file
 * descriptor, or -1 with errno. */
int _ebb_prim_open_append(const char *path);
/* Writes all of buf to fd (retrying short writes); 0 or an errno value. */
int _ebb_prim_write_fd(int fd, const char *buf, size_t len);
void _ebb_prim_close(int fd);
/* Creates (or truncates) the shared-memory object /dev/shm/<name>, mode
 * 0600, of `size` bytes, and maps it shared and writable: its address, or
 * NULL with errno. Removes it by name; unmaps it. */
void *_ebb_prim_shm_create(const char *name, size_t size);
void _ebb_prim_shm_remove(const char *name);
void _ebb_prim_shm_unmap(void *p, size_t size);
/* The process id. */
uint32_t _ebb_prim_pid(void);
/* Monotonic clock in nanoseconds. */
uint64_t _ebb_prim_clock_ns(void);
/* Write all of buf to stderr, ignoring errors (used on fatal paths). */
void _ebb_prim_write_stderr(const char *buf, size_t len);
/* An environment variable, or NULL. Never allocates. */
const char *_ebb_prim_getenv(const char *name);
/* The environment ("NAME=value" strings, NULL-terminated), or NULL. Never
 * allocates; valid until the program changes its environment. */
char **_ebb_prim_environ(void);
/* Terminate the process with SIGABRT. */
_Noreturn void _ebb_prim_abort(void);
/* Give the CPU to another thread (spin-wait back-off). */
void _ebb_prim_yield(void);
/* The calling thread's kernel thread id. */
uint32_t _ebb_prim_thread_tid(void);
/* Another thread of this process, read from /proc/self/task/TID: the
 * system call it is blocked in, or -1 if it is running, runnable, stopped
 * outside a system call, gone, or the file cannot be read. */
long _ebb_prim_thread_syscall(uint32_t tid);
/* Its voluntary + involuntary context switches so far (they change only
 * when it has run), and the first 64 signals of its blocked mask (SigBlk);
 * false if they cannot be read. */
bool _ebb_prim_thread_switches(uint32_t tid, uint64_t *switches, uint64_t *sigblk);
/* The calling thread's blocked mask, first 64 signals. */
uint64_t _ebb_prim_thread_sigblk(void);
/* Reads a small file (/proc, /sys) from byte `offset` into buf, at most
 * cap - 1 bytes, and NUL-terminates it. Returns the bytes read: 0 if the
 * file cannot be opened or has nothing there. Never allocates. */
size_t _ebb_prim_read_file(const char *path, size_t offset, char *buf, size_t cap);
/* A soft resource limit in bytes: RLIMIT_AS (address_space) or
 * RLIMIT_DATA; UINT64_MAX if unlimited. */
uint64_t _ebb_prim_rlimit(bool address_space);

#endif /* EBB_PRIM_H */
