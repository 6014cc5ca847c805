/* SPDX-License-Identifier: MIT */
/* expect: SIGABRT */
/* stderr: ebb: error: double free of <ptr> */
/* double_free_local_wide.c - free(p); free(q); free(p) with 200 KB blocks (wide pages: one per segment). */
#define BLOCK 200000
#include "double_free.h"

static void *misuse(void) { return free_p_q_p(); }
