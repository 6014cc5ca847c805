/* SPDX-License-Identifier: MIT */
/* expect: SIGABRT */
/* stderr: ebb: error: heap corruption: the free-list link was overwritten in the free block <ptr>, in a page of 64-byte blocks (a write after free?) */
/* env: EBB_SECURE=1 */
/* secure_write_after_free.c - the program writes a pointer-sized value
 * into a block after freeing it, over the link that ebb keeps there. With
 * EBB_SECURE=1 the link is checked before it is followed: the allocation
 * that would hand out memory that is not a block stops the program. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  void *volatile p = malloc(64);
  void *q = malloc(64);
  free(q);
  free(p);
  printf("ptr=%p\n", p);
  fflush(stdout);
  *(void *volatile *)p = (void *)(uintptr_t)0x123456780; /* a write after free */
  for (int i = 0; i < 100000; i++)
    if (malloc(64) == NULL) return 2;
  fputs("misuse went unnoticed\n", stderr);
  return 3;
}
