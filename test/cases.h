/* SPDX-License-Identifier: MIT */
/* test/cases.h - what the tests that run each case in a process of its own
 * share (test/purge.c, test/limits.c), on top of check.h: the case's name
 * in its failure lines, the environment a case's process gets, pointer
 * arrays outside the allocator.
 * Header-only, static: each test is one file. */
#ifndef EBB_TEST_CASES_H
#define EBB_TEST_CASES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "check.h"

extern char **environ;

static char case_name = '?'; /* the case running in this process */

/* Names the case running in this process: its failure lines say "[case a]". */
static inline void case_begin(char name) {
  case_name = name;
  check_context("case %c", name);
}

/* This process's environment without its EBB_ variables, plus `extra`
 * (NULL-terminated): a case's options are its own. Free the array (not
 * the strings) after the exec. */
static inline char **case_environ(const char *const *extra) {
  size_t n = 0, k = 0, m = 0;
  while (environ[n] != NULL) n++;
  while (extra[m] != NULL) m++;
  char **env = calloc(n + m + 1, sizeof(char *));
  if (env == NULL) return NULL;
  for (size_t i = 0; i < n; i++) {
    if (strncmp(environ[i], "EBB_", 4) != 0) env[k++] = environ[i];
  }
  for (size_t i = 0; i < m; i++) env[k++] = (char *)extra[i];
  env[k] = NULL;
  return env;
}

/* Pointer arrays come from mmap: the test's bookkeeping stays out of the
 * allocator (and out of its limits). */
static inline void **ptr_array(size_t n) {
  void *a = mmap(NULL, n * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (a == MAP_FAILED) {
    perror("mmap");
    exit(2);
  }
  return a;
}
static inline void ptr_array_free(void **a, size_t n) { munmap(a, n * sizeof(void *)); }

#endif /* EBB_TEST_CASES_H */
