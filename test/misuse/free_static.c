/* SPDX-License-Identifier: MIT */
/* expect: SIGABRT */
/* stderr: ebb: error: free of a pointer not allocated by ebb: <ptr> */
/* free_static.c - free() of a static array (in .bss, near the program's
 * image, where a brk heap would be): refused with one line, then abort. */
#include <stdio.h>
#include <stdlib.h>

static char table[256];

int main(void) {
  void *volatile p = table; /* volatile: gcc must not see, and warn about, the misuse */
  free(malloc(16));
  printf("ptr=%p\n", p);
  fflush(stdout); /* before the abort: stdio buffers a pipe */
  free(p);
  fputs("misuse went unnoticed\n", stderr);
  return 3;
}
