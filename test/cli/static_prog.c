/* SPDX-License-Identifier: MIT */
/* test/cli/static_prog.c - a statically linked program: LD_PRELOAD cannot
 * give it ebb, so it runs under the C library's own malloc and publishes
 * no snapshot. Allocates and frees 8 MiB, then exits. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
  char *p = malloc(8 << 20);
  if (p == NULL) return 1;
  memset(p, 1, 8 << 20);
  usleep(150 * 1000);
  free(p);
  usleep(150 * 1000);
  return 0;
}
