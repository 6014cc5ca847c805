/* test/opt_probe.c - the smallest program that initialises ebb, for
 * test/options.sh: it holds a 100 KiB block (a large block only when
 * EBB_LARGE_THRESHOLD is below that), prints the statistics as JSON on
 * stdout, frees, and exits 0. Whatever ebb says about its options goes to
 * stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebb.h"

int main(void) {
  char *small = malloc(100);
  char *mid = malloc(100 * 1024);
  if (small == NULL || mid == NULL) return 1;
  memset(small, 1, 100);
  memset(mid, 2, 100 * 1024);
  char json[4096];
  ebb_stats_json(json, sizeof(json));
  fputs(json, stdout);
  free(mid);
  free(small);
  return 0;
}
