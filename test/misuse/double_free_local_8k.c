/* SPDX-License-Identifier: MIT */
/* expect: SIGABRT */
/* stderr: ebb: error: double free of <ptr> */
/* double_free_local_8k.c - free(p); free(q); free(p) with 8 KiB blocks (the largest small class). */
#define BLOCK 8192
#include "double_free.h"

static void *misuse(void) { return free_p_q_p(); }
