/* SPDX-License-Identifier: MIT */
/* expect: SIGABRT */
/* stderr: ebb: error: double free of <ptr> */
/* double_free_remote_then_owner.c - another thread frees p, then the owner frees it again. */
#define BLOCK 32
#include "double_free.h"

static void *misuse(void) {
  void *p = block(1);
  free_elsewhere(p);
  announce(p);
  free(p);
  return p;
}
