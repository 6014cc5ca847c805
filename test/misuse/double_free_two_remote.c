/* SPDX-License-Identifier: MIT */
/* expect: SIGABRT */
/* stderr: ebb: error: double free of <ptr> */
/* double_free_two_remote.c - two other threads free p one after the other (the list of remote frees must not become a cycle). */
#define BLOCK 32
#include "double_free.h"

static void *misuse(void) {
  void *p = block(1);
  free_elsewhere(p);
  announce(p);
  free_elsewhere(p);
  return p;
}
