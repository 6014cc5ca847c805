/* SPDX-License-Identifier: MIT */
/* expect: SIGABRT */
/* stderr: ebb: error: double free of <ptr> */
/* double_free_on_free_list.c - p is on the list that allocation takes from (freed, then moved there when another block was allocated) when it is freed again. */
#define BLOCK 32
#include "double_free.h"

static void *misuse(void) {
  void *p = block(1), *q = block(2);
  free(p);
  free(q);
  void *x = block(3); /* q, the newest: p waits on the list malloc takes from */
  (void)x;
  announce(p);
  free(p);
  return p;
}
