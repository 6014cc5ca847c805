/* SPDX-License-Identifier: MIT */
/* expect: SIGABRT */
/* stderr: ebb: error: double free of <ptr> */
/* double_free_large.c - a large block (its own mapping) freed twice: the
 * first free keeps it in the large cache for reuse, where the second free
 * finds it. */
#define BLOCK (2 * 1024 * 1024)
#include "double_free.h"

static void *misuse(void) {
  void *p = block(1);
  free(p);
  announce(p);
  free(p);
  return p;
}
