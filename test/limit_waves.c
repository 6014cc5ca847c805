/* SPDX-License-Identifier: MIT */
/* test/limit_waves.c - the workload of test/cgroup.sh: waves of blocks of one
 * size, all freed before the next size. Ten sizes from 64 B to 600 KB
 * (about x2.77 apart), three rounds; each wave holds --live-mb MiB (150 by
 * default) of blocks, every byte written, linked through their first word
 * (no array beside them: the live set is the blocks). Not linked with ebb:
 * test/cgroup.sh runs it with and without LD_PRELOAD. Prints one line and
 * exits 0; a failed malloc exits 1. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const size_t sizes[] = {64, 177, 491, 1360, 3767, 10436, 28910, 80090, 221880, 600000};

/* One wave: blocks of `size` until `live` bytes, then all freed. */
static int wave(size_t size, size_t live) {
  void *head = NULL;
  for (size_t held = 0; held + size <= live; held += size) {
    void **b = malloc(size);
    if (b == NULL) return 1;
    memset(b, (int)(held >> 12) | 1, size);
    *b = head;
    head = b;
  }
  while (head != NULL) {
    void *next = *(void **)head;
    free(head);
    head = next;
  }
  return 0;
}

int main(int argc, char **argv) {
  size_t live_mb = argc > 1 ? strtoul(argv[1], NULL, 10) : 150, rounds = argc > 2 ? strtoul(argv[2], NULL, 10) : 3;
  for (size_t r = 0; r < rounds; r++) {
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
      if (wave(sizes[i], live_mb << 20) != 0) {
        fprintf(stderr, "limit_waves: malloc(%zu) failed\n", sizes[i]);
        return 1;
      }
    }
  }
  printf("limit_waves: %zu rounds of 10 sizes, %zu MiB live\n", rounds, live_mb);
  return 0;
}
