/* SPDX-License-Identifier: MIT */
/* test/thp.c - transparent huge pages (EBB_THP, purge.c "huge pages"),
 * read back from the kernel.
 *
 * `test_thp always` (EBB_THP=always, a purge delay of 100 ms, a partial
 * delay of 800 ms: test/CMakeLists.txt):
 *  - 30 MiB of 48 KiB blocks (medium pages, four to a 2 MiB huge page) are
 *    written: the kernel backs ebb's segments with huge pages (smaps'
 *    AnonHugePages of ebb's mappings, the VMAs flagged hg: MADV_HUGEPAGE,
 *    which nothing else in this process asks for);
 *  - every other huge page keeps one live block, the rest are freed
 *    whole; 3.5 purge delays later the freed ones are gone (at most the
 *    segment header's 4 OS pages resident; all but the one holding the
 *    page the heap allocates from, which counts as in use) and the kept
 *    ones are still whole (all 512 OS pages resident, their huge pages
 *    still counted);
 *  - ebb_stats' anon_huge_pages equals the AnonHugePages of ebb's mappings
 *    (smaps), at each step;
 *  - once the partial delay has passed, the kept ones give back their
 *    free part too, and every freed one is gone.
 * `test_thp never` (EBB_THP=never): the same blocks get no huge page, and
 * the statistics say 0.
 * Skipped (77) with the reason where THP cannot be had: no
 * /sys/kernel/mm/transparent_hugepage, its setting "never", the process
 * barred from it (PR_SET_THP_DISABLE that cannot be undone), or a kernel
 * that backed none of the blocks with huge pages (no free 2 MiB ranges). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "ebb.h"

#define KiB ((size_t)1024)
#define MiB (KiB * KiB)
#define HUGE (2 * MiB)
#define BLOCK (48 * KiB)
/* Eight medium segments exactly (80 blocks each: ten to a 512 KiB page,
 * the first page's header leaving room for ten too): no page of theirs
 * stays uncarved, which a huge page would hold resident (README). */
#define BLOCKS (8 * 80)
#define OS_PAGE 4096

static char *blocks[BLOCKS];

static void pause_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* ---- the kernel's view --------------------------------------------------- */
static char smaps[8 << 20]; /* static: reading must not allocate */

static size_t read_smaps(void) {
  int fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  size_t len = 0;
  ssize_t n;
  while (len + 1 < sizeof smaps && (n = read(fd, smaps + len, sizeof smaps - 1 - len)) > 0) len += (size_t)n;
  close(fd);
  smaps[len] = 0;
  return len;
}

/* AnonHugePages of the VMAs whose VmFlags carry `flag` (" hg", " nh"). */
static uint64_t smaps_huge_flagged(const char *flag) {
  read_smaps();
  uint64_t total = 0, vma_huge = 0;
  for (char *line = smaps; *line != 0;) {
    char *end = strchr(line, '\n');
    if (end == NULL) break;
    *end = 0;
    if (strncmp(line, "AnonHugePages:", 14) == 0) vma_huge = strtoull(line + 14, NULL, 10) * KiB;
    if (strncmp(line, "VmFlags:", 8) == 0 && strstr(line, flag) != NULL) total += vma_huge;
    line = end + 1;
  }
  return total;
}

/* Resident OS pages of the huge page `base` (mincore). */
static size_t resident_pages(uintptr_t base) {
  unsigned char vec[HUGE / OS_PAGE];
  REQUIRE(mincore((void *)base, HUGE, vec) == 0);
  size_t n = 0;
  for (size_t i = 0; i < sizeof vec; i++) n += vec[i] & 1;
  return n;
}

static uint64_t stats_huge(void) {
  ebb_stats_t st;
  REQUIRE(ebb_stats_get(&st, sizeof st));
  REQUIRE(st.size >= offsetof(ebb_stats_t, anon_huge_pages) + sizeof(uint64_t));
  return st.anon_huge_pages;
}

/* The statistics agree with smaps: the purge thread may move a huge page
 * between the two reads, so a few tries. */
static void check_stats_agree(const char *flag) {
  uint64_t mine = 0, kernel = 1;
  for (int tries = 0; tries < 5 && mine != kernel; tries++) {
    if (tries) pause_ms(30);
    mine = stats_huge();
    kernel = smaps_huge_flagged(flag);
  }
  CHECK_MSG(mine == kernel, "anon_huge_pages %llu KiB, smaps AnonHugePages of ebb's mappings %llu KiB",
            (unsigned long long)(mine / KiB), (unsigned long long)(kernel / KiB));
}

/* ---- skipping where THP cannot be had -------------------------------------- */
static const char *thp_unavailable(void) {
  char buf[128] = {0};
  int fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY);
  if (fd < 0) return "no /sys/kernel/mm/transparent_hugepage (a kernel without THP)";
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return "/sys/kernel/mm/transparent_hugepage/enabled unreadable";
  if (strstr(buf, "[never]") != NULL) return "the system's THP setting is never";
  if (prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1 && prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0) != 0)
    return "THP is disabled for this process (PR_SET_THP_DISABLE)";
  return NULL;
}

/* ---- the pattern ----------------------------------------------------------- */
static void fill(void) {
  for (size_t i = 0; i < BLOCKS; i++) {
    blocks[i] = malloc(BLOCK);
    REQUIRE(blocks[i] != NULL);
    memset(blocks[i], (int)(i % 251) + 1, BLOCK);
  }
}

/* The huge pages our blocks lie in, each once, in address order. */
static size_t huge_pages_of_blocks(uintptr_t *out, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < BLOCKS; i++) {
    uintptr_t base = (uintptr_t)blocks[i] & ~(uintptr_t)(HUGE - 1);
    bool seen = false;
    for (size_t k = 0; k < n && !seen; k++) seen = out[k] == base;
    if (!seen && n < cap) out[n++] = base;
  }
  return n;
}

/* Frees every block but the first of each kept huge page (every other
 * one): kept[k] is 1 for a kept huge page, 0 for a freed one. */
static void free_all_but_keepers(const uintptr_t *bases, size_t n, int *kept) {
  bool keeper_found[BLOCKS] = {false};
  for (size_t k = 0; k < n; k++) kept[k] = (k % 2) == 0;
  for (size_t i = 0; i < BLOCKS; i++) {
    uintptr_t base = (uintptr_t)blocks[i] & ~(uintptr_t)(HUGE - 1);
    size_t k = 0;
    while (bases[k] != base) k++;
    if (kept[k] && !keeper_found[k]) {
      keeper_found[k] = true;
      continue;
    }
    free(blocks[i]);
    blocks[i] = NULL;
  }
}

static int run_always(void) {
  const char *why = thp_unavailable();
  if (why != NULL) {
    printf("thp: skipped: %s\n", why);
    return CHECK_SKIP;
  }
  /* In use, never touched (a large block: its own mapping, no huge
   * page): it keeps the dirty budget (a fraction of the memory in use) far
   * above what the frees leave dirty, so no pass is urgent. Under load the
   * in-use peak can age out before any pass saw it (budget.c), and an
   * urgent pass purges everything, huge pages or not. */
  void *ballast = malloc(256 * MiB);
  REQUIRE(ballast != NULL);
  fill();
  uint64_t filled_huge = smaps_huge_flagged(" hg");
  if (filled_huge < 16 * MiB) {
    printf("thp: skipped: the kernel backed %llu KiB of 30 MiB with huge pages (EBB_THP=always unset, or no free 2 MiB ranges)\n",
           (unsigned long long)(filled_huge / KiB));
    return CHECK_SKIP;
  }
  check_context("filled");
  check_stats_agree(" hg");
  static uintptr_t bases[BLOCKS];
  static int kept[BLOCKS];
  size_t n = huge_pages_of_blocks(bases, BLOCKS);
  free_all_but_keepers(bases, n, kept);
  pause_ms(350); /* 3.5 purge delays, under the partial delay (800) */
  check_context("3.5 purge delays after the frees");
  size_t whole = 0, gone = 0, kept_count = 0;
  for (size_t k = 0; k < n; k++) {
    size_t resident = resident_pages(bases[k]);
    if (kept[k]) {
      kept_count++;
      whole += resident == HUGE / OS_PAGE;
      CHECK_MSG(resident == HUGE / OS_PAGE, "kept huge page %#lx: %zu of 512 OS pages resident (split)",
                (unsigned long)bases[k], resident);
    } else {
      gone += resident <= 4;
    }
  }
  /* The heap keeps the page it allocates from: its huge page counts as in
   * use and may wait the partial delay. */
  CHECK_MSG(gone + 1 >= n - kept_count, "%zu of %zu freed huge pages gone", gone, n - kept_count);
  CHECK_MSG(smaps_huge_flagged(" hg") >= kept_count * HUGE, "AnonHugePages %llu KiB for %zu kept huge pages",
            (unsigned long long)(smaps_huge_flagged(" hg") / KiB), kept_count);
  check_stats_agree(" hg");
  printf("thp: %zu huge pages; %zu kept whole of %zu, %zu freed gone of %zu\n", n, whole, kept_count, gone,
         n - kept_count);
  /* The partial delay, then up to 3 s more: the page the sleeping thread
   * allocates from is reached when a pass seizes its heap (seize.c), which
   * may wait for a second try. */
  pause_ms(800);
  size_t left = 0;
  for (int waited = 0; waited <= 3000; waited += 100) {
    left = 0;
    for (size_t k = 0; k < n; k++) left += resident_pages(bases[k]) > (kept[k] ? 64u : 4u);
    if (left == 0) break;
    pause_ms(100);
  }
  check_context("after the partial delay");
  for (size_t k = 0; k < n; k++) {
    size_t resident = resident_pages(bases[k]);
    if (kept[k])
      CHECK_MSG(resident <= 64, "kept huge page %#lx: %zu OS pages resident for one 48 KiB block",
                (unsigned long)bases[k], resident);
    else
      CHECK_MSG(resident <= 4, "freed huge page %#lx: %zu OS pages still resident", (unsigned long)bases[k],
                resident);
  }
  check_stats_agree(" hg");
  free(ballast);
  return check_summary("test_thp");
}

static int run_never(void) {
  fill();
  check_context("EBB_THP=never");
  CHECK_EQ(smaps_huge_flagged(" nh"), (uint64_t)0);
  CHECK_EQ(stats_huge(), (uint64_t)0);
  for (size_t i = 0; i < BLOCKS; i++) free(blocks[i]);
  return check_summary("test_thp");
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "always") == 0) return run_always();
  if (argc == 2 && strcmp(argv[1], "never") == 0) return run_never();
  fprintf(stderr, "usage: test_thp always|never (with EBB_THP set to the same)\n");
  return 2;
}
