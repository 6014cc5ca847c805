/* SPDX-License-Identifier: MIT */
/* test/install/app.c - a program linked with libebb (or libebb.a), as a
 * user would build it: it checks that its malloc is ebb's and that the
 * library is the version its header says, and names the file the library
 * was loaded from (the program itself when linked statically).
 * Exit 0 and one line "app: ebb <version> serves malloc, from <file>". */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ebb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR2(x) #x
#define STR(x) STR2(x)
#define HEADER_VERSION STR(EBB_VERSION_MAJOR) "." STR(EBB_VERSION_MINOR) "." STR(EBB_VERSION_PATCH)

int main(void) {
  void *p = malloc(10);
  if (!ebb_owns(p)) {
    fprintf(stderr, "app: malloc(10) = %p is not ebb's block: malloc is not ebb's\n", p);
    return 1;
  }
  free(p);
  if (strcmp(ebb_version(), HEADER_VERSION) != 0) {
    fprintf(stderr, "app: library is ebb %s, header says %s\n", ebb_version(), HEADER_VERSION);
    return 1;
  }
  Dl_info info;
  const char *file = dladdr((void *)ebb_version, &info) != 0 ? info.dli_fname : "?";
  printf("app: ebb %s serves malloc, from %s\n", ebb_version(), file);
  return 0;
}
