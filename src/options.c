/* options.c - the option table: every tunable, its EBB_<NAME> environment
 * variable, default, range and one line of help; plus mallopt.
 *
 * Options are read once, at process initialisation, before any other
 * thread can exist; afterwards they change only through mallopt (relaxed
 * atomic stores: a racing reader sees the old or the new value). */
#include <limits.h>
#include <stdint.h>
#include <malloc.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "prim.h"

/* OPT_PATH: any non-empty text; the value is the address of the
 * environment's string (_ebb_option_path). */
typedef enum { OPT_BOOL, OPT_SIZE, OPT_COUNT, OPT_CHOICE, OPT_PATH } opt_kind_t;

typedef struct option_desc_s {
  const char *name;       /* EBB_<name> */
  opt_kind_t kind;
  long long def, min, max;
  const char *choices[3]; /* OPT_CHOICE: value i is choices[i] */
  const char *help;
} option_desc_t;

static const option_desc_t options[EBB_OPT_COUNT] = {
  [EBB_OPT_VERBOSE] = {"VERBOSE", OPT_BOOL, 0, 0, 1, {0}, "explain decisions on stderr"},
  [EBB_OPT_STATS] = {"STATS", OPT_BOOL, 0, 0, 1, {0}, "print statistics to stderr at exit"},
  [EBB_OPT_STATS_FILE] = {"STATS_FILE", OPT_PATH, 0, 0, LLONG_MAX, {0},
                          "append the statistics at exit to this file instead (%p: the process id)"},
  [EBB_OPT_ON_ERROR] = {"ON_ERROR", OPT_CHOICE, 0, 0, 1, {"abort", "warn"},
                        "on heap misuse: abort, or warn and go on without freeing"},
  /* 512 KiB by benchmark. 128 KiB lowered bench realloc's peak RSS (1.4x
   * mimalloc's to 0.9x), but every block from 128 to 512 KiB then came
   * from a fresh mapping and faulted in: at full size waves took 2.16 s
   * against 1.25 s, realloc 1.34 s against 0.59 s, Python 2.03 s against
   * 1.27 s. */
  [EBB_OPT_LARGE_THRESHOLD] = {"LARGE_THRESHOLD", OPT_SIZE, 512 * 1024, 4096, 512 * 1024, {0},
                               "blocks above this size get their own mapping"},
  /* 64 KiB (where the wide pages begin) by benchmark: in make bench,
   * realloc's peak RSS went from 1.18x mimalloc's to 0.69x (glibc: 0.61x)
   * and its time from 1.17x to 1.93x (glibc: 2.18x): a buffer grown by
   * mremap gets fresh pages, where a copy into a free block of the next
   * size class reuses resident ones. Alone, bench realloc at 64 KiB: 19.9
   * MB and 41k minor faults; 48 KiB: 18.7 MB, 45k; 32 KiB: 17.5 MB, 52k
   * (glibc: 17.6 MB, 53k; off: 34 MB, 10k). Python unchanged. */
  [EBB_OPT_REALLOC_MAP] = {"REALLOC_MAP", OPT_SIZE, 64 * 1024, 0, 1LL << 40, {0},
                           "realloc growing a block to this size moves it to its own mapping (0: never)"},
  /* 16 by benchmark: with 4, Python's phases unmapped free segments and
   * mapped fresh ones (faulted in again) several times a second. Cached
   * segments are purged after the delay like any free memory. */
  [EBB_OPT_SEGMENT_CACHE] = {"SEGMENT_CACHE", OPT_COUNT, 16, 0, 64, {0},
                             "free 4 MiB segments kept for reuse (purged after the delay)"},
  /* 100 by benchmark: Python (bench py_alloc.py --scale 10) frees and
   * rebuilds its objects in phases of about that length; at 50 ms it
   * faulted 97k pages back in, at 100 ms 71k (glibc: 50k), and 200 ms
   * gained nothing more. The idle deadline stays well inside a second. */
  [EBB_OPT_PURGE_DELAY_MS] = {"PURGE_DELAY_MS", OPT_COUNT, 100, 0, 60000, {0},
                              "free memory stays resident this long before it goes back to the OS"},
  [EBB_OPT_PURGE_THREAD] = {"PURGE_THREAD", OPT_BOOL, 1, 0, 1, {0},
                            "purge from a background thread (0: on allocator entry only)"},
  /* 1 GiB and 256 MiB (the large cache) by benchmark: with 64 MiB each,
   * bench waves at a 256 MiB peak purged at once what it freed and
   * faulted it back (283k page faults against mimalloc's 84k; now 91k).
   * The purge delay still returns all of it within the delay. */
  [EBB_OPT_DIRTY_MAX] = {"DIRTY_MAX", OPT_SIZE, 1LL << 30, 0, 1LL << 40, {0},
                         "free-but-resident bytes past which purging is immediate"},
  /* 100 by benchmark: at 25 a program whose live set shrinks and grows
   * again (bench waves) purged at once and faulted it all back (1.6x
   * mimalloc's time, 31k page faults against 20k). */
  [EBB_OPT_DIRTY_FRACTION] = {"DIRTY_FRACTION", OPT_COUNT, 100, 0, 100, {0},
                              "the same bound as a percentage of memory in use (at least 4 MiB)"},
  [EBB_OPT_LARGE_CACHE] = {"LARGE_CACHE", OPT_SIZE, 256LL << 20, 0, 1LL << 40, {0},
                           "bytes of freed large blocks kept for reuse (purged after the delay)"},
  [EBB_OPT_MADVISE] = {"MADVISE", OPT_CHOICE, 0, 0, 1, {"dontneed", "free"},
                       "how pages are purged: dontneed (RSS drops now) or free (lazy)"},
  /* 25 by test/cgroup.sh: in a 64 MiB memory cgroup, waves of 38 MiB of
   * one block size at a time peaked at the limit and were OOM-killed in
   * every run when ebb ignored it; purging at once above 75% of the limit,
   * ebb peaked at 47-49 MiB against glibc's 47-48 (whose 16-byte headers
   * cost it a quarter more for small blocks). The margin also absorbs what
   * the program allocates while a pass purges. */
  [EBB_OPT_LIMIT_MARGIN] = {"LIMIT_MARGIN", OPT_COUNT, 25, 0, 100, {0},
                            "percent of a memory limit (cgroup, RLIMIT_AS/DATA) not filled with free memory"},
  /* Off by default: every malloc and free then takes a slow path (about
   * 3.7 times the instructions; make bench-instr measures both). */
  [EBB_OPT_SECURE] = {"SECURE", OPT_BOOL, 0, 0, 1, {0},
                      "check every free and allocation against a bitmap of live blocks (slower)"},
};

_Atomic(long long) _ebb_option_values[EBB_OPT_COUNT]; /* initialisation and mallopt store, any thread reads (relaxed) */

static void apply(ebb_option_t opt, long long v) {
  atomic_store_explicit(&_ebb_option_values[opt], v, memory_order_relaxed);
  if (opt == EBB_OPT_LARGE_THRESHOLD) EBB_STORE(_ebb_large_threshold, (size_t)v);
  if (opt == EBB_OPT_REALLOC_MAP) EBB_STORE(_ebb_realloc_map, v == 0 ? SIZE_MAX : (size_t)v);
}

bool _ebb_option_set(ebb_option_t opt, long long value) {
  if (value < options[opt].min || value > options[opt].max) return false;
  apply(opt, value);
  return true;
}

/* ---- parsing ---------------------------------------------------------------- */
static int parse_uint(const char *s, long long *out, const char **end) {
  long long v = 0;
  if (*s < '0' || *s > '9') return -1;
  for (; *s >= '0' && *s <= '9'; s++) {
    if (v > (1LL << 50)) return -1;
    v = v * 10 + (*s - '0');
  }
  *out = v;
  *end = s;
  return 0;
}

/* "4096", "64k", "8M", "1g" (powers of 1024; an optional trailing b/B). */
int _ebb_options_parse_size(const char *text, long long *out) {
  long long v;
  const char *s;
  if (text == NULL || parse_uint(text, &v, &s) != 0) return -1;
  int shift = 0;
  switch (*s) {
  case 'k': case 'K': shift = 10; s++; break;
  case 'm': case 'M': shift = 20; s++; break;
  case 'g': case 'G': shift = 30; s++; break;
  default: break;
  }
  if (*s == 'b' || *s == 'B') s++;
  if (*s != 0 || v > (LLONG_MAX >> shift)) return -1;
  *out = v << shift;
  return 0;
}

static int parse_bool(const char *s, long long *out) {
  static const char *yes[] = {"1", "true", "yes", "on"}, *no[] = {"0", "false", "no", "off"};
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(s, yes[i]) == 0) return (*out = 1), 0;
    if (strcasecmp(s, no[i]) == 0) return (*out = 0), 0;
  }
  return -1;
}

static int parse_value(const option_desc_t *d, const char *text, long long *out) {
  const char *end;
  switch (d->kind) {
  case OPT_BOOL: return parse_bool(text, out);
  case OPT_SIZE: return _ebb_options_parse_size(text, out);
  case OPT_COUNT: return (parse_uint(text, out, &end) == 0 && *end == 0) ? 0 : -1;
  case OPT_PATH: return (*out = (long long)(intptr_t)text), 0;
  case OPT_CHOICE:
    for (int i = 0; i < 3 && d->choices[i]; i++) {
      if (strcasecmp(text, d->choices[i]) == 0) return (*out = i), 0;
    }
    return -1;
  }
  return -1;
}

static void warn_invalid(const option_desc_t *d, const char *text) {
  switch (d->kind) {
  case OPT_BOOL:
    _ebb_message("ebb: warning: EBB_%s=%s is invalid: expected 0 or 1; using %d\n", d->name, text, (int)d->def);
    break;
  case OPT_CHOICE:
    _ebb_message("ebb: warning: EBB_%s=%s is invalid: expected %s or %s; using %s\n", d->name, text, d->choices[0],
                 d->choices[1], d->choices[d->def]);
    break;
  default:
    _ebb_message("ebb: warning: EBB_%s=%s is invalid: expected %s from %zu to %zu; using %zu\n", d->name, text,
                 d->kind == OPT_SIZE ? "a size (k/m/g suffixes)" : "a number", (size_t)d->min, (size_t)d->max,
                 (size_t)d->def);
  }
}

/* Reads every EBB_<NAME> variable; a bad value gets one warning line and
 * the default. */
void _ebb_options_init(void) {
  for (int i = 0; i < EBB_OPT_COUNT; i++) {
    const option_desc_t *d = &options[i];
    char var[64];
    size_t n = strlen(d->name);
    memcpy(var, "EBB_", 4);
    memcpy(var + 4, d->name, n + 1);
    long long v = d->def;
    const char *text = _ebb_prim_getenv(var);
    if (text != NULL && *text != 0) {
      if (parse_value(d, text, &v) != 0 || v < d->min || v > d->max) {
        warn_invalid(d, text);
        v = d->def;
      }
    }
    apply((ebb_option_t)i, v);
  }
}

/* ---- mallopt ------------------------------------------------------------------- */
/* M_MMAP_THRESHOLD sets the large threshold (clamped to its range: blocks
 * above the largest size class always have their own mapping);
 * M_TRIM_THRESHOLD sets the dirty budget (EBB_DIRTY_MAX). The other glibc
 * parameters describe glibc's arenas; they are accepted and ignored.
 * Unknown parameters return 0. */
ebb_export int ebb_mallopt(int param, int value) {
  _ebb_init_process();
  switch (param) {
  case M_MMAP_THRESHOLD: {
    const option_desc_t *d = &options[EBB_OPT_LARGE_THRESHOLD];
    if (value < 0) return 0;
    long long v = value < d->min ? d->min : value > d->max ? d->max : value;
    apply(EBB_OPT_LARGE_THRESHOLD, v);
    _ebb_verbose("ebb: mallopt: large threshold = %zu\n", (size_t)v);
    return 1;
  }
  case M_TRIM_THRESHOLD:
    if (value < 0) return 0;
    apply(EBB_OPT_DIRTY_MAX, value);
    _ebb_verbose("ebb: mallopt: dirty budget = %zu\n", (size_t)value);
    return 1;
  case M_TOP_PAD: case M_MMAP_MAX: case M_MXFAST: case M_CHECK_ACTION:
  case M_PERTURB: case M_ARENA_TEST: case M_ARENA_MAX:
    return 1;
  default:
    return 0;
  }
}
EBB_STD(mallopt, ebb_mallopt);
