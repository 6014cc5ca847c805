/* SPDX-License-Identifier: MIT */
/* expect: SIGABRT */
/* stderr: ebb: error: free of a pointer not allocated by ebb: <ptr> */
/* free_interior_small.c - free() of a pointer 8 bytes into a live 64-byte
 * block: the address is inside ebb's memory but is not the start of a
 * block, so it is refused like a foreign pointer, then abort. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  char *p = malloc(64);
  if (p == NULL)
    return 2;
  char *volatile inside = p + 8; /* volatile: gcc must not see, and warn about, the misuse */
  printf("ptr=%p\n", (void *)inside);
  fflush(stdout); /* before the abort: stdio buffers a pipe */
  free(inside);
  fputs("misuse went unnoticed\n", stderr);
  return 3;
}
