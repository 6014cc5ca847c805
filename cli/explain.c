/* SPDX-License-Identifier: MIT */
/* explain.c - `ebb explain SIZE...`: for each size, the class, page kind
 * and tier ebb serves it from, and when its memory goes back, beside what
 * glibc does. The answers come from this build's library with the user's
 * EBB_ options: libebb-prefix.so is loaded (ebb_ names only, next to the
 * C library's malloc) and asked - ebb_size_info gives the decisions malloc
 * makes for a size, from malloc's own functions; ebb_option_get the
 * options in effect. A block of each size is also allocated, and its
 * usable size must be the class ebb_size_info names. */
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
  bool (*size_info)(size_t, ebb_size_info_t *, size_t);
  bool (*option_get)(const char *, long long *);
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
  *(void **)&l->size_info = dlsym(h, "ebb_size_info");
  *(void **)&l->option_get = dlsym(h, "ebb_option_get");
  if (!l->malloc || !l->free || !l->usable || !l->size_info || !l->option_get) {
    cli_error("explain: %s lacks one of ebb_malloc, ebb_free, ebb_malloc_usable_size, ebb_size_info, "
              "ebb_option_get (an older ebb?)", path);
    return false;
  }
  return true;
}

/* ebb's answer for one size. */
static void explain_ebb(const ebb_lib_t *l, uint64_t size) {
  char a[32], b[32];
  ebb_size_info_t info;
  long long large_cache = 0, madvise_free = 0;
  if (!l->size_info((size_t)size, &info, sizeof(info))) {
    printf("  ebb:   cannot serve it (%s)\n", strerror(errno));
    return;
  }
  l->option_get("LARGE_CACHE", &large_cache);
  l->option_get("MADVISE", &madvise_free);
  void *p = l->malloc((size_t)size);
  if (p != NULL) {
    size_t usable = l->usable(p);
    l->free(p);
    /* A large block reused from the cache is handed out whole, up to
     * max(block / 4, 4 MiB) bigger than asked (src/large.c). */
    uint64_t spare = info.block / 4 > ((uint64_t)4 << 20) ? info.block / 4 : (uint64_t)4 << 20;
    bool large = strcmp(info.tier, "large") == 0;
    if (large ? usable < info.block || usable > info.block + spare : usable != info.block)
      cli_error("explain: the library hands out %zu bytes for %llu, where it says %llu: please report this", usable,
                (unsigned long long)size, (unsigned long long)info.block);
  }
  const char *how = madvise_free ? "madvise(MADV_FREE)" : "madvise(MADV_DONTNEED)";
  if (strcmp(info.tier, "large") == 0) {
    printf("  ebb:   large block of %s (its own mapping; above EBB_LARGE_THRESHOLD = %s)\n",
           fmt_bytes(a, sizeof(a), info.block), fmt_bytes(b, sizeof(b), info.large_threshold));
    printf("         freed: kept in the large cache (EBB_LARGE_CACHE = %s) for reuse, and unmapped (its memory "
           "given back) once unused for EBB_PURGE_DELAY_MS = %llu ms; one reused from the cache may be up to "
           "a quarter or 4 MiB bigger, kept whole so that its pages need not fault in again\n",
           fmt_bytes(a, sizeof(a), (uint64_t)large_cache), (unsigned long long)info.purge_delay_ms);
    return;
  }
  printf("  ebb:   size class %s (%llu bytes, %.1f%% rounding), %s tier: pages of %s, up to %llu blocks each\n",
         fmt_bytes(a, sizeof(a), info.block), (unsigned long long)info.block,
         size ? 100.0 * (double)(info.block - size) / (double)info.block : 0.0, info.tier,
         fmt_bytes(b, sizeof(b), info.page), (unsigned long long)info.blocks_per_page);
  printf("         freed: its page gives its free memory back with %s EBB_PURGE_DELAY_MS = %llu ms after it "
         "holds no live block (or few, and is not being allocated from)\n", how,
         (unsigned long long)info.purge_delay_ms);
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
  if (!load_ebb(&lib)) return EXIT_FAILURE_RUN;
  for (int i = 0; i < n; i++) {
    char a[32];
    printf("%s%s (%llu bytes)\n", i ? "\n" : "", fmt_bytes(a, sizeof(a), sizes[i]), (unsigned long long)sizes[i]);
    explain_ebb(&lib, sizes[i]);
    explain_glibc(sizes[i]);
  }
  return EXIT_OK;
}
