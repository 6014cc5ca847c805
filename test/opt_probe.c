/* SPDX-License-Identifier: MIT */
/* test/opt_probe.c - the smallest program that initialises ebb, for
 * test/options.sh: it holds a 100 KiB block (a large block only when
 * EBB_LARGE_THRESHOLD is below that) and an 80 KiB one grown by realloc
 * from 8 KiB (large unless EBB_REALLOC_MAP is 0 or above 80 KiB), prints
 * the statistics as JSON on
 * stdout, frees, and exits 0. Whatever ebb says about its options goes to
 * stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebb.h"

int main(void) {
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
