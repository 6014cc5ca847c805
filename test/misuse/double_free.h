/* SPDX-License-Identifier: MIT */
/* double_free.h - what the double-free programs share: a page that keeps
 * other live blocks, frees from other threads, and the check that after
 * the misuse (if the program is still running: EBB_ON_ERROR=warn) no block
 * is handed out twice. Each program defines misuse(), which frees one
 * block twice in its own way, calling announce() just before the second
 * free (expect.sh reads the pointer from stdout). */
#ifndef EBB_TEST_DOUBLE_FREE_H
#define EBB_TEST_DOUBLE_FREE_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef BLOCK
#define BLOCK 32 /* bytes per block; a program may set another */
#endif
#define NEIGHBOURS 8 /* live blocks of the same size kept around the misused one */
/* Blocks allocated after the misuse, checked for duplicates: enough to
 * empty a page's lists of small blocks, a few of the big ones. */
#define AFTER (BLOCK <= 8192 ? 512 : 16)

static void *misuse(void);

/* (Not every program frees on other threads.) */
static inline void *thread_frees(void *p) {
  free(p);
  return NULL;
}

/* free(p) on another thread, which has exited when this returns. */
static inline void free_elsewhere(void *p) {
  pthread_t t;
  if (pthread_create(&t, NULL, thread_frees, p) != 0 || pthread_join(t, NULL) != 0) {
    fputs("cannot run a thread\n", stderr);
    exit(2);
  }
}

/* The line expect.sh matches <ptr> against; flushed, since the free that
 * follows aborts. */
static inline void announce(const void *p) {
  printf("ptr=%p\n", p);
  fflush(stdout);
}

/* malloc(BLOCK), filled with a byte of its own. */
static void *block(int fill) {
  void *p = malloc(BLOCK);
  if (p == NULL) exit(2);
  memset(p, fill, BLOCK);
  return p;
}

/* free(p); free(q); free(p): p is no longer the head of the list it is on
 * when it is freed again. */
static inline void *free_p_q_p(void) {
  void *p = block(1), *q = block(2);
  free(p);
  free(q);
  announce(p);
  free(p);
  return p;
}

static int fails(const char *what, const void *p) {
  fprintf(stderr, "%s: %p\n", what, p);
  return 3;
}

int main(void) {
  void *neighbours[NEIGHBOURS];
  for (int i = 0; i < NEIGHBOURS; i++) neighbours[i] = block(0x40 + i);
  void *volatile twice = misuse(); /* volatile: gcc must not see the misuse */
  (void)twice;
  /* Only with EBB_ON_ERROR=warn does the program get here: the second free
   * was refused, so the heap must hand out every block at most once. */
  void **after = malloc(AFTER * sizeof *after);
  if (after == NULL) return 2;
  for (int i = 0; i < AFTER; i++) {
    after[i] = block(i & 0xff);
    for (int k = 0; k < NEIGHBOURS; k++)
      if (after[i] == neighbours[k]) return fails("a live block was handed out again", after[i]);
    for (int k = 0; k < i; k++)
      if (after[k] == after[i]) return fails("a block was handed out twice", after[i]);
  }
  for (int i = 0; i < AFTER; i++) {
    for (int k = 0; k < BLOCK; k++)
      if (((unsigned char *)after[i])[k] != (i & 0xff)) return fails("a block was overwritten", after[i]);
    free(after[i]);
  }
  for (int i = 0; i < NEIGHBOURS; i++) {
    for (int k = 0; k < BLOCK; k++)
      if (((unsigned char *)neighbours[i])[k] != 0x40 + i) return fails("a live block was overwritten", neighbours[i]);
    free(neighbours[i]);
  }
  free(after);
  return 0;
}

#endif /* EBB_TEST_DOUBLE_FREE_H */
