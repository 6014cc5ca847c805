/* SPDX-License-Identifier: MIT */
/* expect: SIGABRT */
/* stderr: ebb: error: double free of <ptr> */
/* double_free_after_reuse.c - free(p); x = malloc(); y = malloc(); free(y); free(x); free(y): x takes p back legitimately, y is freed twice. */
#define BLOCK 32
#include "double_free.h"

static void *misuse(void) {
  void *p = block(1);
  free(p);
  void *x = block(2), *y = block(3);
  free(y);
  free(x);
  announce(y);
  free(y);
  return y;
}
