/* SPDX-License-Identifier: MIT */
/* expect: SIGABRT */
/* stderr: ebb: error: double free of <ptr> */
/* double_free_owner_then_remote.c - the owner frees p, then another thread frees it again. */
#define BLOCK 32
#include "double_free.h"

static void *misuse(void) {
  void *p = block(1);
  free(p);
  announce(p);
  free_elsewhere(p);
  return p;
}
