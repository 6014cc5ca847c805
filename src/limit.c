/* SPDX-License-Identifier: MIT */
/* limit.c - the memory limit the process lives under, and how close it is.
 *
 * Free memory ebb keeps resident counts against the same limits as live
 * memory: a memory cgroup (v2 memory.max and memory.high, v1
 * memory.limit_in_bytes; every level up to the root, since a parent's limit
 * binds its children too) and RLIMIT_AS / RLIMIT_DATA. Keeping it must
 * never push a program into the OOM killer (or a failed mmap) that glibc
 * would have kept alive, so the purge policy asks here how much ebb may
 * hold before it purges at once.
 *
 * A sample reads the limits and the usage from /proc and /sys with
 * open/read into stack buffers (never malloc). The purge policy takes one
 * when its thread starts and about once a second while it works - never on
 * an allocation path, never with a lock the allocating threads need.
 * Concurrency: one sample at a time (the purge thread, or a pass on
 * allocator entry under the pass lock); the results are relaxed atomics,
 * read anywhere. */
#include <stdatomic.h>
#include <string.h>

#include "internal.h"
#include "prim.h"

/* What ebb's own memory (in use + dirty) may reach before usage comes
 * within the margin of a limit: SIZE_MAX when no limit binds. */
_Atomic(size_t) _ebb_limit_ceiling = SIZE_MAX; /* the sampler stores, any thread reads (relaxed) */
static _Atomic(int) address_tight; /* mapped memory is near RLIMIT_AS / RLIMIT_DATA (the sampler; passes read, relaxed) */
/* The rest: the sampler only (one sample at a time, above). */

enum { CG_NONE, CG_V1, CG_V2 };
static int cg_version;            /* of cg_dir, found at the first sample */
static char cg_dir[512];          /* the process's memory cgroup directory */
static size_t cg_mount_len;       /* the hierarchy's mount point is cg_dir[0..cg_mount_len) */
static bool cg_looked;            /* the first sample looked for the cgroup */
static bool said;                 /* EBB_VERBOSE: the limit was reported */

/* ---- reading numbers ---------------------------------------------------------- */
static uint64_t parse_u64(const char *s, bool *ok) {
  uint64_t v = 0;
  *ok = *s >= '0' && *s <= '9';
  for (; *s >= '0' && *s <= '9'; s++) v = v * 10 + (uint64_t)(*s - '0');
  return v;
}

/* A file holding one number, or "max". UINT64_MAX if unlimited, absent
 * or unreadable. */
static uint64_t read_limit_file(const char *dir, const char *name) {
  char path[600], buf[64];
  _ebb_format(path, sizeof(path), "%s/%s", dir, name);
  if (_ebb_prim_read_file(path, 0, buf, sizeof(buf)) == 0) return UINT64_MAX;
  bool ok;
  uint64_t v = parse_u64(buf, &ok);
  /* v1 writes "no limit" as a page-rounded LLONG_MAX. */
  return ok && v < ((uint64_t)1 << 62) ? v : UINT64_MAX;
}

/* The value of `key` (a line "key value") in a file such as memory.stat; 0
 * if it is not there. */
static uint64_t read_keyed(const char *dir, const char *name, const char *key) {
  char path[600], buf[4096];
  _ebb_format(path, sizeof(path), "%s/%s", dir, name);
  _ebb_prim_read_file(path, 0, buf, sizeof(buf));
  size_t n = strlen(key);
  for (const char *p = buf; *p != 0;) {
    bool ok;
    if (strncmp(p, key, n) == 0 && p[n] == ' ') return parse_u64(p + n + 1, &ok);
    const char *end = strchr(p, '\n');
    if (end == NULL) break;
    p = end + 1;
  }
  return 0;
}

/* `word` is one of the comma-separated names in list[0..len). */
static bool has_word(const char *list, size_t len, const char *word) {
  size_t n = strlen(word);
  for (const char *p = list; p + n <= list + len;) {
    if (strncmp(p, word, n) == 0 && (p + n == list + len || p[n] == ',' || p[n] == ' ')) return true;
    const char *comma = memchr(p, ',', (size_t)(list + len - p));
    if (comma == NULL) break;
    p = comma + 1;
  }
  return false;
}

/* ---- finding the cgroup -------------------------------------------------------- */
/* The memory line of /proc/self/cgroup: "N:memory:/path" (v1) or, without
 * one, "0::/path" (v2). Copies the path; returns the version. */
static int cgroup_path(char *path, size_t cap) {
  char buf[2048];
  _ebb_prim_read_file("/proc/self/cgroup", 0, buf, sizeof(buf));
  int version = CG_NONE;
  for (char *line = buf, *end; line != NULL && *line != 0; line = end ? end + 1 : NULL) {
    end = strchr(line, '\n');
    if (end != NULL) *end = 0;
    char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (c2 == NULL) continue;
    bool v1 = has_word(c1 + 1, (size_t)(c2 - c1 - 1), "memory");
    if (v1 || (c2 == c1 + 1 && version == CG_NONE)) {
      _ebb_format(path, cap, "%s", c2 + 1);
      version = v1 ? CG_V1 : CG_V2;
      if (v1) break; /* a hybrid system: the memory controller is v1's */
    }
  }
  return version;
}

/* Splits a mountinfo line into its space-separated fields (in place). */
static int split_fields(char *line, char **fields, int max) {
  int n = 0;
  for (char *p = line; *p != 0 && n < max;) {
    fields[n++] = p;
    p = strchr(p, ' ');
    if (p == NULL) break;
    *p++ = 0;
  }
  return n;
}

/* A mountinfo line of the hierarchy: fstype cgroup2 (v2), or cgroup with
 * the memory controller in its super options (v1). Sets root and mount. */
static bool mount_line(char *line, int version, const char **root, const char **mount) {
  char *f[40];
  int n = split_fields(line, f, 40), dash = 6;
  while (dash < n && strcmp(f[dash], "-") != 0) dash++;
  if (dash + 1 >= n) return false;
  bool match = version == CG_V2 ? strcmp(f[dash + 1], "cgroup2") == 0
                                : strcmp(f[dash + 1], "cgroup") == 0 && dash + 3 < n &&
                                      has_word(f[dash + 3], strlen(f[dash + 3]), "memory");
  *root = f[3];
  *mount = f[4];
  return match;
}

/* Reads /proc/self/mountinfo a buffer at a time (it can be long) and sets
 * cg_dir to the mount point joined with the part of `path` below the
 * mount's root. */
static bool find_mount(const char *path, int version) {
  char buf[4096];
  size_t off = 0;
  while (_ebb_prim_read_file("/proc/self/mountinfo", off, buf, sizeof(buf)) > 0) {
    char *line = buf, *end;
    while ((end = strchr(line, '\n')) != NULL) {
      *end = 0;
      const char *root, *mount;
      if (mount_line(line, version, &root, &mount)) {
        size_t rl = strcmp(root, "/") == 0 ? 0 : strlen(root);
        const char *rest = strncmp(path, root, rl) == 0 ? path + rl : path;
        cg_mount_len = strlen(mount);
        _ebb_format(cg_dir, sizeof(cg_dir), "%s%s", mount, strcmp(rest, "/") == 0 ? "" : rest);
        return true;
      }
      line = end + 1;
    }
    if (line == buf) return false; /* a line longer than the buffer */
    off += (size_t)(line - buf);
  }
  return false;
}

static void find_cgroup(void) {
  char path[512];
  int version = cgroup_path(path, sizeof(path));
  if (version != CG_NONE && find_mount(path, version)) cg_version = version;
}

/* ---- one level of the hierarchy ------------------------------------------------- */
typedef struct level_s {
  uint64_t limit; /* the lowest limit at this level, UINT64_MAX if none */
  uint64_t used;  /* its usage, less the file cache the kernel can drop first */
} level_t;

static level_t read_level(const char *dir) {
  level_t lv;
  uint64_t current, cache;
  if (cg_version == CG_V2) {
    uint64_t max = read_limit_file(dir, "memory.max"), high = read_limit_file(dir, "memory.high");
    lv.limit = max < high ? max : high;
    current = read_limit_file(dir, "memory.current");
    cache = read_keyed(dir, "memory.stat", "inactive_file");
  } else {
    lv.limit = read_limit_file(dir, "memory.limit_in_bytes");
    current = read_limit_file(dir, "memory.usage_in_bytes");
    cache = read_keyed(dir, "memory.stat", "total_inactive_file");
  }
  if (current == UINT64_MAX) current = 0;
  lv.used = current > cache ? current - cache : 0;
  return lv;
}

/* ---- the sample ---------------------------------------------------------------- */
static uint64_t margin_of(uint64_t limit) { return limit / 100 * (uint64_t)_ebb_option(EBB_OPT_LIMIT_MARGIN); }

/* The room left below (limit - margin) at the tightest level of the
 * cgroup hierarchy; UINT64_MAX if no level has a limit. `binding` gets that
 * level's limit. */
static uint64_t cgroup_room(uint64_t *binding) {
  char dir[sizeof(cg_dir)];
  memcpy(dir, cg_dir, sizeof(dir));
  uint64_t room = UINT64_MAX;
  *binding = UINT64_MAX;
  for (;;) {
    level_t lv = read_level(dir);
    uint64_t keep = lv.limit - margin_of(lv.limit);
    if (lv.limit != UINT64_MAX && (keep > lv.used ? keep - lv.used : 0) < room) {
      room = keep > lv.used ? keep - lv.used : 0;
      *binding = lv.limit;
    }
    char *slash = strrchr(dir, '/'); /* up one level, down to the mount point */
    if (slash == NULL || (size_t)(slash - dir) < cg_mount_len) return room;
    *slash = 0;
  }
}

/* /proc/self/statm: total and data+stack pages, as bytes. */
static void mapped_now(uint64_t *total, uint64_t *data) {
  char buf[128];
  _ebb_prim_read_file("/proc/self/statm", 0, buf, sizeof(buf));
  const char *p = buf;
  bool ok;
  *total = parse_u64(p, &ok) * EBB_OS_PAGE;
  for (int i = 0; i < 5 && p != NULL; i++) p = strchr(p + 1, ' ');
  *data = p != NULL ? parse_u64(p + 1, &ok) * EBB_OS_PAGE : 0;
}

/* True if mapped memory is within the margin of RLIMIT_AS or RLIMIT_DATA:
 * purging does not unmap, so the caches of free mappings must go. */
static bool address_space_tight(uint64_t *as, uint64_t *data) {
  *as = _ebb_prim_rlimit(true);
  *data = _ebb_prim_rlimit(false);
  if (*as == UINT64_MAX && *data == UINT64_MAX) return false;
  uint64_t total, data_now;
  mapped_now(&total, &data_now);
  return total + margin_of(*as) > *as || data_now + margin_of(*data) > *data;
}

static void say_once(uint64_t binding, uint64_t as, uint64_t data) {
  if (said || !_ebb_option(EBB_OPT_VERBOSE)) return;
  said = true;
  if (binding == UINT64_MAX && as == UINT64_MAX && data == UINT64_MAX) {
    _ebb_verbose("ebb: limit: none (no memory cgroup limit, RLIMIT_AS and RLIMIT_DATA unlimited)\n");
    return;
  }
  if (binding != UINT64_MAX)
    _ebb_verbose("ebb: limit: memory cgroup %s (v%d): %zu KiB; free memory is purged at once above %zu KiB\n",
                 cg_dir, cg_version == CG_V2 ? 2 : 1, (size_t)(binding / 1024),
                 (size_t)((binding - margin_of(binding)) / 1024));
  if (as != UINT64_MAX) _ebb_verbose("ebb: limit: RLIMIT_AS %zu KiB\n", (size_t)(as / 1024));
  if (data != UINT64_MAX) _ebb_verbose("ebb: limit: RLIMIT_DATA %zu KiB\n", (size_t)(data / 1024));
}

/* Reads the limits and usage now. `ebb_bytes` is ebb's in-use + dirty
 * memory at this moment: the ceiling is that plus the room left, so it
 * follows ebb's own growth between samples. */
void _ebb_limit_sample(size_t ebb_bytes) {
  if (!cg_looked) {
    cg_looked = true;
    find_cgroup();
  }
  uint64_t binding = UINT64_MAX, room = cg_version != CG_NONE ? cgroup_room(&binding) : UINT64_MAX, as, data;
  size_t ceiling = room == UINT64_MAX ? SIZE_MAX : ebb_bytes + (size_t)room;
  atomic_store_explicit(&_ebb_limit_ceiling, ceiling, memory_order_relaxed);
  atomic_store_explicit(&address_tight, address_space_tight(&as, &data), memory_order_relaxed);
  say_once(binding, as, data);
}

bool _ebb_limit_address_tight(void) { return atomic_load_explicit(&address_tight, memory_order_relaxed) != 0; }
