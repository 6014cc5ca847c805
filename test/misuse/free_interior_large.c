/* SPDX-License-Identifier: MIT */
/* expect: SIGABRT */
/* stderr: ebb: error: free of a pointer not allocated by ebb: <ptr> */
/* free_interior_large.c - free() of a page-aligned pointer 4096 bytes into a
 * live 8 MiB block (large tier, its own mapping): it looks like a block
 * start by alignment alone, but is not one. Refused, then abort. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
  size_t len = 8 << 20;
  char *p = malloc(len);
  if (p == NULL)
    return 2;
  memset(p, 1, len);
  char *volatile inside = p + 4096; /* volatile: gcc must not see the misuse */
  printf("ptr=%p\n", (void *)inside);
  fflush(stdout); /* before the abort: stdio buffers a pipe */
  free(inside);
  fputs("misuse went unnoticed\n", stderr);
  return 3;
}
