/* SPDX-License-Identifier: MIT */
/* expect: exit 0 */
/* stderr: ebb: error: free of a pointer not allocated by ebb: <ptr> */
/* env: EBB_ON_ERROR=warn */
/* warn_continues.c - with EBB_ON_ERROR=warn a free of a foreign pointer is
 * reported with the same line but does not abort, and the pointer is left
 * alone (the stack buffer keeps its content). The heap must work normally
 * afterwards: blocks of several tiers are allocated, checked and freed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Allocates blocks of many sizes, fills each, checks each, frees them;
 * returns the number of blocks found damaged. */
static int heap_workout(void) {
  enum { COUNT = 64 };
  unsigned char *blocks[COUNT];
  size_t sizes[COUNT];
  int damaged = 0;
  for (int i = 0; i < COUNT; i++) {
    sizes[i] = (size_t)1 << (i % 24); /* 1 B .. 8 MiB */
    blocks[i] = malloc(sizes[i]);
    if (blocks[i] == NULL)
      return COUNT;
    memset(blocks[i], i, sizes[i]);
  }
  for (int i = 0; i < COUNT; i++) {
    for (size_t k = 0; k < sizes[i]; k += 4093)
      damaged += blocks[i][k] != (unsigned char)i;
    free(blocks[i]);
  }
  return damaged;
}

int main(void) {
  char buf[64];
  strcpy(buf, "still here");
  void *volatile p = buf; /* volatile: gcc must not see, and warn about, the misuse */
  free(malloc(16));
  printf("ptr=%p\n", p);
  fflush(stdout);
  free(p);
  if (strcmp(buf, "still here") != 0) {
    fputs("the refused free changed the stack buffer\n", stderr);
    return 4;
  }
  int damaged = heap_workout();
  if (damaged != 0) {
    fprintf(stderr, "%d blocks damaged after the warning\n", damaged);
    return 5;
  }
  return 0;
}
