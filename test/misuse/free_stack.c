/* SPDX-License-Identifier: MIT */
/* expect: SIGABRT */
/* stderr: ebb: error: free of a pointer not allocated by ebb: <ptr> */
/* free_stack.c - free() of a stack address: ebb refuses it with one line
 * naming the pointer, then aborts. A malloc/free pair first makes sure ebb
 * is initialised, so the outcome does not depend on initialisation order. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  char buf[64];
  void *volatile p = buf; /* volatile: gcc must not see, and warn about, the misuse */
  free(malloc(16));
  printf("ptr=%p\n", p);
  fflush(stdout); /* before the abort: stdio buffers a pipe */
  free(p);
  fputs("misuse went unnoticed\n", stderr);
  return 3;
}
