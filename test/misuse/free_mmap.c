/* SPDX-License-Identifier: MIT */
/* expect: SIGABRT */
/* stderr: ebb: error: free of a pointer not allocated by ebb: <ptr> */
/* free_mmap.c - free() of memory the program mapped itself: it lies in the
 * same part of the address space as ebb's own mappings, but ebb's segment
 * map knows it is not ebb's. Refused with one line, then abort. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

int main(void) {
  size_t len = 4 << 20;
  void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    perror("mmap");
    return 2;
  }
  void *mid = (char *)m + len / 2; /* mid-mapping: a 2 MiB boundary, like a segment start */
  free(malloc(16));
  printf("ptr=%p\n", mid);
  fflush(stdout); /* before the abort: stdio buffers a pipe */
  free(mid);
  fputs("misuse went unnoticed\n", stderr);
  return 3;
}
