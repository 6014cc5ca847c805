/* SPDX-License-Identifier: MIT */
/* options.c - the option table: every tunable, its EBB_<NAME> environment
 * variable, default, range and one line of help; plus mallopt.
 *
 * Options are read once, at process initialisation, before any other
 * thread can exist; afterwards they change only through mallopt (relaxed
 * atomic stores: a racing reader sees the old or the new value). */
#include <errno.h>
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
  [EBB_OPT_VERBOSE] = {"VERBOSE", OPT_BOOL, 0, 0, 1, {0}, "print the options at start, then one line per decision on stderr (at most 10 a second of each kind)"},
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
                               "blocks above this size get their own mapping (mallopt M_MMAP_THRESHOLD)"},
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
                         "free-but-resident bytes past which purging is immediate (mallopt M_TRIM_THRESHOLD)"},
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
  /* auto by default: on a system whose setting is "always" the kernel
   * backs ebb's 4 MiB segments with two huge pages each, and ebb's purges
   * then keep them whole where they can (purge.c); on "madvise" (Debian's
   * default) nothing changes unless a program asks for always. */
  [EBB_OPT_THP] = {"THP", OPT_CHOICE, 0, 0, 2, {"auto", "never", "always"},
                   "transparent huge pages for segments: auto (the system's setting), never, or always (MADV_HUGEPAGE)"},
  /* 1000 (ten purge delays) by bench thp: see purge.c, "huge pages". */
  [EBB_OPT_THP_PARTIAL_DELAY_MS] = {"THP_PARTIAL_DELAY_MS", OPT_COUNT, 1000, 0, 60000, {0},
                                    "with huge pages: free memory in a 2 MiB huge page that still holds live data waits this long"},
  [EBB_OPT_LIMIT_MARGIN] = {"LIMIT_MARGIN", OPT_COUNT, 25, 0, 100, {0},
                            "percent of a memory limit (cgroup, RLIMIT_AS/DATA) not filled with free memory"},
  /* Off by default: every malloc and free then takes a slow path (about
   * 3.7 times the instructions; make bench-instr measures both). */
  [EBB_OPT_SECURE] = {"SECURE", OPT_BOOL, 0, 0, 1, {0},
                      "check every free and allocation against a bitmap of live blocks (slower)"},
  /* Off unless a tool asks (the ebb command sets it for the programs it
   * runs): publishing costs the purge thread a statistics walk per
   * interval and keeps it awake. 50 ms: ebb run's default sampling. */
  [EBB_OPT_SNAPSHOT] = {"SNAPSHOT", OPT_BOOL, 0, 0, 1, {0},
                        "publish the statistics in /dev/shm/ebb-<pid> for the ebb command (ebb top, ebb run)"},
  [EBB_OPT_SNAPSHOT_MS] = {"SNAPSHOT_MS", OPT_COUNT, 50, 1, 60000, {0},
                           "how often the published statistics are refreshed, in ms"},
};

_Atomic(long long) _ebb_option_values[EBB_OPT_COUNT]; /* initialisation and mallopt store, any thread reads (relaxed) */

/* Where each value came from, for ebb_options_print: the same writers and
 * readers as the values (relaxed). */
typedef enum { SRC_DEFAULT, SRC_ENVIRONMENT, SRC_MALLOPT } option_source_t;
static const char *const source_names[] = {"default", "environment", "mallopt"};
static _Atomic(unsigned char) option_source[EBB_OPT_COUNT];

static void apply(ebb_option_t opt, long long v, option_source_t src) {
  atomic_store_explicit(&_ebb_option_values[opt], v, memory_order_relaxed);
  atomic_store_explicit(&option_source[opt], (unsigned char)src, memory_order_relaxed);
  if (opt == EBB_OPT_LARGE_THRESHOLD) EBB_STORE(_ebb_large_threshold, (size_t)v);
  if (opt == EBB_OPT_REALLOC_MAP) EBB_STORE(_ebb_realloc_map, v == 0 ? SIZE_MAX : (size_t)v);
}

/* Tests and tools: a value in range, keeping the option's source. */
bool _ebb_option_set(ebb_option_t opt, long long value) {
  if (value < options[opt].min || value > options[opt].max) return false;
  apply(opt, value, (option_source_t)atomic_load_explicit(&option_source[opt], memory_order_relaxed));
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

/* "4096", "64k", "8M", "1g", "1t" (powers of 1024; an optional trailing b/B). */
int _ebb_options_parse_size(const char *text, long long *out) {
  long long v;
  const char *s;
  if (text == NULL || parse_uint(text, &v, &s) != 0) return -1;
  int shift = 0;
  switch (*s) {
  case 'k': case 'K': shift = 10; s++; break;
  case 'm': case 'M': shift = 20; s++; break;
  case 'g': case 'G': shift = 30; s++; break;
  case 't': case 'T': shift = 40; s++; break;
  default: break;
  }
  if (*s == 'b' || *s == 'B') s++;
  if (*s != 0 || v > (LLONG_MAX >> shift)) return -1;
  *out = v << shift;
  return 0;
}

/* What a boolean accepts, true and false in pairs; the warning lists them. */
static const char *const bool_words[][2] = {{"1", "0"}, {"yes", "no"}, {"on", "off"}, {"true", "false"}};
#define BOOL_PAIRS (sizeof(bool_words) / sizeof(bool_words[0]))

static int parse_bool(const char *s, long long *out) {
  for (size_t i = 0; i < BOOL_PAIRS; i++) {
    for (int no = 0; no < 2; no++) {
      if (strcasecmp(s, bool_words[i][no]) == 0) return (*out = !no), 0;
    }
  }
  return -1;
}

static int choice_count(const option_desc_t *d) {
  int n = 0;
  while (n < 3 && d->choices[n] != NULL) n++;
  return n;
}

static int parse_value(const option_desc_t *d, const char *text, long long *out) {
  const char *end;
  switch (d->kind) {
  case OPT_BOOL: return parse_bool(text, out);
  case OPT_SIZE: return _ebb_options_parse_size(text, out);
  case OPT_COUNT: return (parse_uint(text, out, &end) == 0 && *end == 0) ? 0 : -1;
  case OPT_PATH: return text[0] != 0 ? ((*out = (long long)(intptr_t)text), 0) : -1;
  case OPT_CHOICE:
    for (int i = 0; i < choice_count(d); i++) {
      if (strcasecmp(text, d->choices[i]) == 0) return (*out = i), 0;
    }
    return -1;
  }
  return -1;
}

/* ---- values as users write them ------------------------------------------------- */
/* An option's value as it would be typed: "1g", "dontneed", "100". */
static const char *value_text(const option_desc_t *d, long long v, char buf[EBB_SIZE_TEXT]) {
  switch (d->kind) {
  case OPT_SIZE: return _ebb_size_option(buf, (unsigned long long)v);
  case OPT_CHOICE: return v >= 0 && v < choice_count(d) ? d->choices[v] : "?";
  case OPT_PATH: return v != 0 ? (const char *)(intptr_t)v : "(none)";
  default: _ebb_format(buf, EBB_SIZE_TEXT, "%zd", (ptrdiff_t)v); return buf;
  }
}

/* "a, b, c or d" into buf. */
static void join_words(char *buf, size_t cap, const char *const *words, size_t n) {
  size_t len = 0;
  buf[0] = 0;
  for (size_t i = 0; i < n; i++) {
    const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
    len += _ebb_format(buf + (len < cap ? len : cap - 1), len < cap ? cap - len : 1, "%s%s", sep, words[i]);
  }
}

/* What an option accepts, in the units its values are typed in. */
static void accepted_text(const option_desc_t *d, char *buf, size_t cap) {
  const char *words[2 * BOOL_PAIRS];
  char lo[EBB_SIZE_TEXT], hi[EBB_SIZE_TEXT];
  switch (d->kind) {
  case OPT_BOOL:
    for (size_t i = 0; i < 2 * BOOL_PAIRS; i++) words[i] = bool_words[i / 2][i % 2];
    join_words(buf, cap, words, 2 * BOOL_PAIRS);
    break;
  case OPT_CHOICE: join_words(buf, cap, d->choices, (size_t)choice_count(d)); break;
  case OPT_SIZE:
    _ebb_format(buf, cap, "a size from %s to %s (k, m, g, t suffixes)", value_text(d, d->min, lo),
                value_text(d, d->max, hi));
    break;
  case OPT_COUNT: _ebb_format(buf, cap, "a number from %zd to %zd", (ptrdiff_t)d->min, (ptrdiff_t)d->max); break;
  case OPT_PATH: _ebb_format(buf, cap, "a file path (%%p: the process id)"); break;
  }
}

/* The value exactly as typed, and what is accepted instead. */
static void warn_invalid(const option_desc_t *d, const char *text) {
  char accepted[160], def[EBB_SIZE_TEXT];
  accepted_text(d, accepted, sizeof(accepted));
  _ebb_message("ebb: warning: EBB_%s=%s is invalid: expected %s; using %s\n", d->name, text, accepted,
               value_text(d, d->def, def));
}

/* ---- EBB_ variables that are not options ------------------------------------------ */
/* Prefixes of variables that ebb's own tools read (bench/run.sh,
 * bench/instr.sh, demo/run.sh, test/stress.c), which reach the library
 * in the environment of the programs those tools run. */
static const char *const tool_prefixes[] = {"BENCH_", "INSTR_", "DEMO_", "STRESS_"};
/* Settings of the build (CMake -D), which the library cannot read at run time. */
static const char *const build_settings[] = {"DEBUG", "SANITIZE", "WERROR"};

static bool name_is(const char *name, size_t n, const char *word) { return strlen(word) == n && strncmp(name, word, n) == 0; }

static bool name_in(const char *name, size_t n, const char *const *words, size_t count, bool prefix) {
  for (size_t i = 0; i < count; i++) {
    size_t w = strlen(words[i]);
    if (prefix ? (n >= w && strncmp(name, words[i], w) == 0) : name_is(name, n, words[i])) return true;
  }
  return false;
}

/* Edit distance (insertions, deletions, substitutions), on the stack;
 * names longer than 40 characters count as far from everything. */
static size_t edit_distance(const char *a, size_t na, const char *b) {
  size_t nb = strlen(b), row[41];
  if (na > 40 || nb > 40) return SIZE_MAX;
  for (size_t j = 0; j <= nb; j++) row[j] = j;
  for (size_t i = 1; i <= na; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= nb; j++) {
      size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      diag = up;
      row[j] = best;
    }
  }
  return row[nb];
}

/* The option `name` most likely means: one it is a prefix of, or that is
 * a prefix of it (EBB_PURGE_DELAY, EBB_DIRTY_MAX_BYTES), else the nearest
 * by edit distance if at most a third of the name is wrong. NULL if none. */
static const char *closest_option(const char *name, size_t n) {
  const char *best = NULL;
  size_t best_d = n / 3 + 1;
  for (int i = 0; i < EBB_OPT_COUNT; i++) {
    const char *opt = options[i].name;
    size_t m = strlen(opt);
    if (n >= 3 && strncmp(name, opt, n < m ? n : m) == 0) return opt;
    size_t d = edit_distance(name, n, opt);
    if (d < best_d) {
      best_d = d;
      best = opt;
    }
  }
  return best;
}

static bool is_option(const char *name, size_t n) {
  for (int i = 0; i < EBB_OPT_COUNT; i++) {
    if (name_is(name, n, options[i].name)) return true;
  }
  return false;
}

/* True if env[i] names the same variable as an earlier entry. */
static bool seen_before(char **env, size_t i, const char *name, size_t n) {
  for (size_t k = 0; k < i; k++) {
    if (strncmp(env[k], "EBB_", 4) == 0 && strncmp(env[k] + 4, name, n) == 0 && env[k][4 + n] == '=') return true;
  }
  return false;
}

/* `name` is what follows EBB_, NUL-terminated. */
static void warn_unknown(const char *name) {
  size_t n = strlen(name);
  const char *hint = closest_option(name, n);
  if (name_in(name, n, build_settings, sizeof(build_settings) / sizeof(build_settings[0]), false))
    _ebb_message("ebb: warning: EBB_%s is a build setting (cmake -DEBB_%s=...), not a run-time option\n", name, name);
  else if (hint != NULL)
    _ebb_message("ebb: warning: EBB_%s is not an ebb option (did you mean EBB_%s?)\n", name, hint);
  else
    _ebb_message("ebb: warning: EBB_%s is not an ebb option (EBB_VERBOSE=1 lists them)\n", name);
}

/* One warning for each EBB_ variable that is neither an option nor one of
 * ebb's tools'. Reads environ in place: nothing is allocated (a name is
 * copied to the stack, cut at 63 characters). */
static void warn_unknown_variables(void) {
  char **env = _ebb_prim_environ();
  for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
    if (strncmp(env[i], "EBB_", 4) != 0) continue;
    const char *name = env[i] + 4, *eq = strchr(name, '=');
    size_t n = eq != NULL ? (size_t)(eq - name) : strlen(name);
    if (is_option(name, n) || name_in(name, n, tool_prefixes, sizeof(tool_prefixes) / sizeof(tool_prefixes[0]), true))
      continue;
    if (seen_before(env, i, name, n)) continue;
    char copy[64];
    size_t len = n < sizeof(copy) - 1 ? n : sizeof(copy) - 1;
    memcpy(copy, name, len);
    copy[len] = 0;
    warn_unknown(copy);
  }
}

/* ---- reading the environment ------------------------------------------------------- */
/* Reads every EBB_<NAME> variable; a bad value (an empty one too) gets one
 * warning line and the default. Then warns about EBB_ variables that are
 * not options. */
void _ebb_options_init(void) {
  for (int i = 0; i < EBB_OPT_COUNT; i++) {
    const option_desc_t *d = &options[i];
    char var[64];
    size_t n = strlen(d->name);
    memcpy(var, "EBB_", 4);
    memcpy(var + 4, d->name, n + 1);
    long long v = d->def;
    option_source_t src = SRC_DEFAULT;
    const char *text = _ebb_prim_getenv(var);
    if (text != NULL) {
      if (parse_value(d, text, &v) == 0 && v >= d->min && v <= d->max) {
        src = SRC_ENVIRONMENT;
      } else {
        warn_invalid(d, text);
        v = d->def;
      }
    }
    apply((ebb_option_t)i, v, src);
  }
  warn_unknown_variables();
}

/* ---- printing ---------------------------------------------------------------------- */
void _ebb_options_print(void) {
  _ebb_message("ebb: options (ebb %s)\n", ebb_version());
  for (int i = 0; i < EBB_OPT_COUNT; i++) {
    char buf[EBB_SIZE_TEXT];
    unsigned src = atomic_load_explicit(&option_source[i], memory_order_relaxed);
    _ebb_message("ebb:   EBB_%s = %s (%s)\n", options[i].name, value_text(&options[i], _ebb_option((ebb_option_t)i), buf),
                 source_names[src]);
  }
}

ebb_export void ebb_options_print(void) {
  _ebb_init_process();
  _ebb_options_print();
}

ebb_export bool ebb_option_get(const char *name, long long *value) {
  _ebb_init_process();
  if (name != NULL && strncmp(name, "EBB_", 4) == 0) name += 4;
  for (int i = 0; name != NULL && value != NULL && i < EBB_OPT_COUNT; i++) {
    if (strcmp(name, options[i].name) != 0) continue;
    long long v = _ebb_option((ebb_option_t)i);
    *value = options[i].kind == OPT_PATH ? v != 0 : v;
    return true;
  }
  errno = EINVAL;
  return false;
}

/* ---- mallopt ------------------------------------------------------------------- */
/* M_MMAP_THRESHOLD sets the large threshold (clamped to its range: blocks
 * above the largest size class always have their own mapping);
 * M_TRIM_THRESHOLD sets the dirty budget (EBB_DIRTY_MAX). The other glibc
 * parameters describe glibc's arenas; they are accepted and ignored.
 * Unknown parameters return 0. EBB_VERBOSE=1 says what each call did. */
static int mallopt_size(ebb_option_t opt, const char *param, int value) {
  const option_desc_t *d = &options[opt];
  char lo[EBB_SIZE_TEXT], hi[EBB_SIZE_TEXT], set[EBB_SIZE_TEXT];
  if (value < 0) {
    _ebb_verbose("ebb: mallopt(%s, %d) refused: expected a size from %s to %s; EBB_%s stays %s\n", param, value,
                 value_text(d, d->min, lo), value_text(d, d->max, hi), d->name, value_text(d, _ebb_option(opt), set));
    return 0;
  }
  long long v = value < d->min ? d->min : value > d->max ? d->max : value;
  apply(opt, v, SRC_MALLOPT);
  if (v != value)
    _ebb_verbose("ebb: mallopt(%s, %d): EBB_%s = %s (clamped to %s..%s)\n", param, value, d->name, value_text(d, v, set),
                 value_text(d, d->min, lo), value_text(d, d->max, hi));
  else
    _ebb_verbose("ebb: mallopt(%s, %d): EBB_%s = %s\n", param, value, d->name, value_text(d, v, set));
  return 1;
}

ebb_export int ebb_mallopt(int param, int value) {
  _ebb_init_process();
  switch (param) {
  case M_MMAP_THRESHOLD: return mallopt_size(EBB_OPT_LARGE_THRESHOLD, "M_MMAP_THRESHOLD", value);
  case M_TRIM_THRESHOLD: return mallopt_size(EBB_OPT_DIRTY_MAX, "M_TRIM_THRESHOLD", value);
  case M_TOP_PAD: case M_MMAP_MAX: case M_MXFAST: case M_CHECK_ACTION:
  case M_PERTURB: case M_ARENA_TEST: case M_ARENA_MAX:
    _ebb_verbose("ebb: mallopt(%d, %d): a glibc arena parameter, accepted and ignored\n", param, value);
    return 1;
  default:
    _ebb_verbose("ebb: mallopt(%d, %d) refused: not a parameter ebb knows (M_MMAP_THRESHOLD %d, M_TRIM_THRESHOLD %d)\n",
                 param, value, M_MMAP_THRESHOLD, M_TRIM_THRESHOLD);
    return 0;
  }
}
EBB_STD(mallopt, ebb_mallopt);
