/* SPDX-License-Identifier: MIT */
/* expect: SIGABRT */
/* stderr: ebb: error: free of a pointer not allocated by ebb: 0xdeadbeefdeadbeef */
/* free_garbage.c - free() of a garbage pointer past the user address space
 * (not even canonical): the segment map says it is not ebb's, and ebb
 * refuses it with one line, then aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  void *volatile p = (void *)(uintptr_t)0xdeadbeefdeadbeefu;
  free(malloc(16));
  free(p);
  fputs("misuse went unnoticed\n", stderr);
  return 3;
}
