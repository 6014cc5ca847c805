/* SPDX-License-Identifier: MIT */
/* expect: SIGABRT */
/* stderr: ebb: error: double free of <ptr> */
/* double_free_local_medium.c - free(p); free(q); free(p) on a page of 1000-byte blocks that keeps other live blocks. */
#define BLOCK 1000
#include "double_free.h"

static void *misuse(void) { return free_p_q_p(); }
