/* SPDX-License-Identifier: MIT */
/* expect: SIGABRT */
/* stderr: ebb: error: double free of <ptr> */
/* double_free_full_page_remote.c - p is on a page that was full when two other threads freed it (the frees go to the owner heap's delayed list). */
#define BLOCK 32
#include "double_free.h"

static void *misuse(void) {
  enum { FILL = 4096 }; /* more than a page of 32-byte blocks holds */
  void **all = malloc(FILL * sizeof *all);
  for (int i = 0; i < FILL; i++) all[i] = block(4);
  void *p = all[10];
  free_elsewhere(p);
  announce(p);
  free_elsewhere(p);
  return p;
}
