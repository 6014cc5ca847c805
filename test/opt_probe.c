/* SPDX-License-Identifier: MIT */
/* test/opt_probe.c - the smallest program that initialises ebb, for
 * test/options.sh. Whatever ebb says about its options goes to stderr.
 *
 *   opt_probe            holds a 100 KiB block (a large block only when
 *                        EBB_LARGE_THRESHOLD is below that) and an 80 KiB one
 *                        grown by realloc from 8 KiB (large unless
 *                        EBB_REALLOC_MAP is 0 or above 80 KiB), prints the
 *                        statistics as JSON on stdout, frees, exits 0
 *   opt_probe print      ebb_options_print()
 *   opt_probe mallopt    mallopt(M_TRIM_THRESHOLD, 8 MiB) and
 *                        mallopt(M_MMAP_THRESHOLD, 64 KiB), then as above
 *   opt_probe workload   one of each decision EBB_VERBOSE=1 explains
 *                        (below), then a flood of parks */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ebb.h"

static int hold_and_print(void) {
  char *small = malloc(100);
  char *mid = malloc(100 * 1024);
  char *grown = malloc(8 * 1024);
  if (small == NULL || mid == NULL || grown == NULL) return 1;
  memset(small, 1, 100);
  memset(mid, 2, 100 * 1024);
  memset(grown, 3, 8 * 1024);
  char *bigger = realloc(grown, 80 * 1024);
  if (bigger == NULL || bigger[8 * 1024 - 1] != 3) return 1;
  grown = bigger;
  char json[4096];
  ebb_stats_json(json, sizeof(json));
  fputs(json, stdout);
  free(grown);
  free(mid);
  free(small);
  return 0;
}

#define BLOCK 256
#define PER_PAGE (64 * 1024 / BLOCK) /* blocks of a 64 KiB small page */
#define MiB (1024 * 1024)

/* Fills `pages` pages of 256-byte blocks, then frees all but the first
 * block of each: every page but the one allocated from is left sparse and
 * parked. Returns the blocks kept (the caller frees them). */
static void **park_sparse(size_t pages) {
  size_t n = pages * PER_PAGE;
  void **b = malloc(n * sizeof(void *)), **kept = calloc(pages + 1, sizeof(void *));
  if (b == NULL || kept == NULL) exit(1);
  for (size_t i = 0; i < n; i++) {
    b[i] = malloc(BLOCK);
    if (b[i] == NULL) exit(1);
    memset(b[i], 1, BLOCK);
  }
  for (size_t i = 0; i < n; i++) {
    if (i % PER_PAGE == 0) kept[i / PER_PAGE] = b[i];
    else free(b[i]);
  }
  free(b);
  return kept;
}

static void free_all(void **kept) {
  for (size_t i = 0; kept[i] != NULL; i++) free(kept[i]);
  free(kept);
}

/* Allocates and frees `bytes` of 1 KiB blocks: whole segments go free. */
static void churn(size_t bytes) {
  size_t n = bytes / 1024;
  void **b = malloc(n * sizeof(void *));
  if (b == NULL) exit(1);
  for (size_t i = 0; i < n; i++) {
    b[i] = malloc(1024);
    if (b[i] == NULL) exit(1);
    memset(b[i], 2, 1024);
  }
  for (size_t i = 0; i < n; i++) free(b[i]);
  free(b);
}

/* A thread that leaves sparse pages and then blocks in the kernel. */
static void *quiet_thread(void *arg) {
  (void)arg;
  void **kept = park_sparse(1); /* its one page stays the one allocated from */
  void *more[PER_PAGE];
  for (int i = 0; i < PER_PAGE; i++) more[i] = malloc(BLOCK);
  for (int i = 1; i < PER_PAGE; i++) free(more[i]);
  sleep(2);
  free(more[0]);
  free_all(kept);
  return NULL;
}

static int workload(void) {
  /* A fresh segment; sparse pages parked; the purge delay passes. */
  free_all(park_sparse(8));
  usleep(400 * 1000);
  /* Large blocks: 20 MiB mapped, then unmapped from the cache after the
   * delay; 300 MiB does not fit in the large cache. */
  char *big = malloc(20 * MiB), *huge = malloc(300 * MiB);
  if (big == NULL || huge == NULL) return 1;
  big[0] = huge[0] = 1;
  free(big);
  free(huge);
  usleep(400 * 1000);
  /* A quiet thread's pages. */
  pthread_t t;
  if (pthread_create(&t, NULL, quiet_thread, NULL) != 0) return 1;
  pthread_join(t, NULL);
  /* Free segments cached, then unmapped by malloc_trim. */
  churn(32 * MiB);
  malloc_trim(0);
  /* Over the dirty budget. */
  mallopt(M_TRIM_THRESHOLD, 1 * MiB);
  churn(16 * MiB);
  usleep(200 * 1000);
  /* A flood: parks without end, for a second. */
  for (int round = 0; round < 400; round++) free_all(park_sparse(4));
  return 0;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "print") == 0) {
    ebb_options_print();
    return 0;
  }
  if (strcmp(mode, "mallopt") == 0) {
    if (mallopt(M_TRIM_THRESHOLD, 8 * MiB) != 1 || mallopt(M_MMAP_THRESHOLD, 64 * 1024) != 1) return 1;
    ebb_options_print();
    return 0;
  }
  if (strcmp(mode, "workload") == 0) return workload();
  if (mode[0] != 0) {
    fprintf(stderr, "usage: opt_probe [print | mallopt | workload]\n");
    return 2;
  }
  return hold_and_print();
}
