/* SPDX-License-Identifier: MIT */
/* expect: SIGABRT */
/* stderr: ebb: error: double free of <ptr> */
/* double_free.c - free() of the same small block twice in a row: the second
 * free must be caught (src/internal.h, "the freed mark") rather than putting the
 * block on its free list twice, which would hand it out again and again. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  void *volatile p = malloc(64); /* volatile: gcc must not see the misuse */
  printf("ptr=%p\n", p);
  fflush(stdout); /* before the abort: stdio buffers a pipe */
  free(p);
  free(p);
  fputs("misuse went unnoticed\n", stderr);
  return 3;
}
