/* SPDX-License-Identifier: MIT */
/* expect: SIGABRT */
/* stderr: ebb: error: realloc of a pointer not allocated by ebb: <ptr> */
/* realloc_foreign.c - realloc() of a stack address: ebb cannot know the old
 * size, so it must refuse rather than copy from it. One line, then abort. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  char buf[64] = "not from the heap";
  void *volatile p = buf; /* volatile: gcc must not see, and warn about, the misuse */
  free(malloc(16));
  printf("ptr=%p\n", p);
  fflush(stdout); /* before the abort: stdio buffers a pipe */
  void *q = realloc(p, 100);
  fprintf(stderr, "misuse went unnoticed (realloc returned %p)\n", q);
  return 3;
}
