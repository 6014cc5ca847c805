/* SPDX-License-Identifier: MIT */
/* test/install/app_prefix.c - a program linked with libebb-prefix: ebb_
 * names are ebb's, malloc stays the C library's. Exit 0 and one line
 * "app_prefix: ebb <version> beside the C library's malloc, from <file>". */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ebb.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  void *mine = ebb_malloc(10);
  void *libc = malloc(10);
  if (!ebb_owns(mine) || ebb_owns(libc)) {
    fprintf(stderr, "app_prefix: ebb_owns(ebb_malloc(10)) = %d, ebb_owns(malloc(10)) = %d: want 1, 0\n",
            ebb_owns(mine), ebb_owns(libc));
    return 1;
  }
  ebb_free(mine);
  free(libc);
  Dl_info info;
  const char *file = dladdr((void *)ebb_version, &info) != 0 ? info.dli_fname : "?";
  printf("app_prefix: ebb %s beside the C library's malloc, from %s\n", ebb_version(), file);
  return 0;
}
