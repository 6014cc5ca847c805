/* SPDX-License-Identifier: MIT */
/* explain.c - `ebb explain SIZE...`: for each size, the class, page kind
 * and tier ebb serves it from, and when its memory goes back, beside what
 * glibc does. The answers come from this build's library with the user's
 * EBB_ options: libebb-prefix.so is loaded (ebb_ names only, next to the
 * C library's malloc), a block of each size is allocated to learn its
 * class (ebb_malloc_usable_size) and whether it is large (the statistics'
 * large_live grows), and ebb_options_print gives the options in effect.
 * The page kind of a small or medium class follows the boundaries ebb(7)
 * documents (8 KiB, 64 KiB, 512 KiB), which the library does not publish. */
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>

#include "cli.h"

static const char explain_usage[] =
  "usage: ebb explain SIZE...\n"
  "For each SIZE (bytes, or with k, m, g: 80k = 81920, 800000, 1m), says ebb's\n"
  "size class, page kind and tier, and when a freed block's memory goes back to\n"
  "the OS, beside what glibc's malloc does with that size. Asks this build's\n"
  "libebb-prefix.so, with the EBB_ options of the environment.\n"
  "Exit status: 0; 1 libebb-prefix.so not found or not loadable; 2 bad size.\n";

typedef struct {
  void *(*malloc)(size_t);
  void (*free)(void *);
  size_t (*usable)(const void *);
  bool (*stats)(ebb_stats_t *, size_t);
  void (*options_print)(void);
} ebb_lib_t;

static bool load_ebb(ebb_lib_t *l) {
  char path[PATH_MAX];
  if (!find_library("libebb-prefix.so", path, sizeof(path))) {
    cli_error("explain: libebb-prefix.so not found next to this command or in its ../lib");
    return false;
  }
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    cli_error("explain: cannot load %s: %s", path, dlerror());
    return false;
  }
  *(void **)&l->malloc = dlsym(h, "ebb_malloc");
  *(void **)&l->free = dlsym(h, "ebb_free");
  *(void **)&l->usable = dlsym(h, "ebb_malloc_usable_size");
  *(void **)&l->stats = dlsym(h, "ebb_stats_get_sized");
  *(void **)&l->options_print = dlsym(h, "ebb_options_print");
  if (!l->malloc || !l->free || !l->usable || !l->stats || !l->options_print) {
    cli_error("explain: %s lacks one of ebb_malloc, ebb_free, ebb_malloc_usable_size, ebb_stats_get_sized, "
              "ebb_options_print", path);
    return false;
  }
  return true;
}

typedef struct {
  long long purge_delay_ms, large_threshold, large_cache, madvise_free;
} ebb_opts_t;

/* The value text of option `name` in ebb_options_print's lines. */
static bool option_text(const char *lines, const char *name, char *out, size_t cap) {
  char key[64];
  snprintf(key, sizeof(key), "EBB_%s = ", name);
  const char *p = strstr(lines, key);
  if (p == NULL) return false;
  p += strlen(key);
  size_t n = strcspn(p, " \n");
  snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
  return true;
}

/* Captures ebb_options_print's stderr through a pipe and parses it. */
static bool read_options(const ebb_lib_t *l, ebb_opts_t *o) {
  int fds[2];
  char lines[8192] = {0}, v[64];
  if (pipe(fds) != 0) return false;
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  dup2(fds[1], STDERR_FILENO);
  l->options_print();
  dup2(saved, STDERR_FILENO);
  close(saved);
  close(fds[1]);
  ssize_t n = read(fds[0], lines, sizeof(lines) - 1);
  close(fds[0]);
  if (n <= 0) return false;
  uint64_t size;
  if (option_text(lines, "PURGE_DELAY_MS", v, sizeof(v))) o->purge_delay_ms = atoll(v);
  if (option_text(lines, "LARGE_THRESHOLD", v, sizeof(v)) && parse_size(v, &size)) o->large_threshold = (long long)size;
  if (option_text(lines, "LARGE_CACHE", v, sizeof(v)) && parse_size(v, &size)) o->large_cache = (long long)size;
  if (option_text(lines, "MADVISE", v, sizeof(v))) o->madvise_free = strcmp(v, "free") == 0;
  return o->purge_delay_ms >= 0 && o->large_threshold > 0;
}

/* ebb's answer for one size. */
static void explain_ebb(const ebb_lib_t *l, const ebb_opts_t *o, uint64_t size) {
  char a[32], b[32];
  ebb_stats_t before, after;
  l->stats(&before, sizeof(before));
  void *p = l->malloc((size_t)size);
  if (p == NULL) {
    printf("  ebb:   cannot allocate it (%s)\n", strerror(errno));
    return;
  }
  size_t usable = l->usable(p);
  l->stats(&after, sizeof(after));
  l->free(p);
  bool large = after.large_live > before.large_live;
  const char *how = o->madvise_free ? "madvise(MADV_FREE)" : "madvise(MADV_DONTNEED)";
  if (large) {
    printf("  ebb:   large block of %s (its own mapping; above EBB_LARGE_THRESHOLD = %s)\n",
           fmt_bytes(a, sizeof(a), usable), fmt_bytes(b, sizeof(b), (uint64_t)o->large_threshold));
    printf("         freed: kept in the large cache (EBB_LARGE_CACHE = %s) for reuse, its memory given back with "
           "%s after EBB_PURGE_DELAY_MS = %lld ms; the mapping is unmapped later\n",
           fmt_bytes(a, sizeof(a), (uint64_t)o->large_cache), how, o->purge_delay_ms);
    return;
  }
  const char *kind = usable <= 8 * 1024 ? "small pages of 64 KiB"
                     : usable <= 64 * 1024 ? "medium pages of 512 KiB" : "whole-segment pages of 4 MiB";
  printf("  ebb:   size class %s (%zu bytes, %.1f%% rounding), from %s\n", fmt_bytes(a, sizeof(a), usable), usable,
         size ? 100.0 * (double)(usable - size) / (double)usable : 0.0, kind);
  printf("         freed: its page gives its free memory back with %s EBB_PURGE_DELAY_MS = %lld ms after it "
         "holds no live block (or few, and is not being allocated from)\n", how, o->purge_delay_ms);
}

/* glibc's answer: the mmap threshold and its dynamic rise (64-bit). */
static void explain_glibc(uint64_t size) {
  const uint64_t threshold = 128 * 1024, threshold_max = 32ull * 1024 * 1024;
  uint64_t chunk = (size + 8 + 15) & ~(uint64_t)15; /* the request with its size word, 16-aligned */
  if (chunk < threshold) {
    printf("  glibc: from the heap (below the 128 KiB mmap threshold); freed, it stays in the arena's free "
           "lists: RSS keeps it unless it is at the top of the heap (trimmed past M_TRIM_THRESHOLD, 128 KiB) or "
           "the program calls malloc_trim\n");
  } else if (chunk <= threshold_max) {
    printf("  glibc: mmap (at or above the 128 KiB threshold); freed, it is unmapped at once - but that free "
           "raises the threshold to this size, so the next blocks of this size come from the heap and stay "
           "resident after free\n");
  } else {
    printf("  glibc: mmap (above 32 MiB, the highest the threshold rises to); freed, unmapped at once\n");
  }
}

int cmd_explain(int argc, char **argv) {
  static const struct option longs[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "+h", longs, NULL)) != -1) {
    if (c == 'h') return fputs(explain_usage, stdout), EXIT_OK;
    return fputs(explain_usage, stderr), EXIT_USAGE;
  }
  if (optind >= argc) {
    cli_error("explain: give at least one size (ebb explain 80k 800000 1m)");
    return EXIT_USAGE;
  }
  uint64_t sizes[64];
  int n = 0;
  for (int i = optind; i < argc && n < 64; i++)
    if (!parse_size(argv[i], &sizes[n++])) {
      cli_error("explain: '%s' is not a size (bytes, or a number with k, m or g: 80k, 800000, 1m)", argv[i]);
      return EXIT_USAGE;
    }
  ebb_lib_t lib;
  ebb_opts_t opts = {-1, 0, 0, 0};
  if (!load_ebb(&lib)) return EXIT_FAILURE_RUN;
  if (!read_options(&lib, &opts)) {
    cli_error("explain: could not read the options from ebb_options_print");
    return EXIT_FAILURE_RUN;
  }
  for (int i = 0; i < n; i++) {
    char a[32];
    printf("%s%s (%llu bytes)\n", i ? "\n" : "", fmt_bytes(a, sizeof(a), sizes[i]), (unsigned long long)sizes[i]);
    explain_ebb(&lib, &opts, sizes[i]);
    explain_glibc(sizes[i]);
  }
  return EXIT_OK;
}
