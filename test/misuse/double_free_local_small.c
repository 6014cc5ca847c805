/* SPDX-License-Identifier: MIT */
/* expect: SIGABRT */
/* stderr: ebb: error: double free of <ptr> */
/* double_free_local_small.c - free(p); free(q); free(p) on a page of 32-byte blocks that keeps other live blocks: p is no longer the head of the list it is on. */
#define BLOCK 32
#include "double_free.h"

static void *misuse(void) { return free_p_q_p(); }
