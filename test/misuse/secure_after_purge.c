/* SPDX-License-Identifier: MIT */
/* expect: SIGABRT */
/* stderr: ebb: error: double free of <ptr> */
/* env: EBB_SECURE=1 */
/* secure_after_purge.c - a block freed, its memory returned to the OS
 * (malloc_trim), then freed again. The purge took the block's freed mark
 * with its memory, so only EBB_SECURE=1's bitmap of live blocks sees the
 * second free. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  void *keep = malloc(4096); /* 4 KiB blocks: each fills one OS page */
  void *volatile p = malloc(4096);
  void *after = malloc(4096); /* keeps p from being the page's last carved block */
  printf("ptr=%p\n", p); /* now: stdout's buffer, once allocated, could take p's place */
  fflush(stdout);
  free(p);
  malloc_trim(0);
  if (((void *volatile *)p)[1] != NULL) { /* the mark is still there: the purge did not happen */
    fputs("malloc_trim did not return the freed block's memory\n", stderr);
    return 4;
  }
  free(p);
  fputs("misuse went unnoticed\n", stderr);
  free(keep);
  free(after);
  return 3;
}
