/* SPDX-License-Identifier: MIT */
/* test/info/malloc_info.c - writes malloc_info(0, fp) to argv[1] and the
 * statistics read just before (name value, one a line) to argv[2], with a
 * heap that holds small, medium and large blocks, free blocks in pages and
 * a cached large block; test/info/check.py parses and compares them. The
 * stream's buffer is this program's (setvbuf), so that writing the XML
 * allocates nothing that the statistics would miss. Exit 1 if a call
 * fails, or if bad options are not refused with EINVAL. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ebb.h"

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  static char xml_buf[1 << 16];
  FILE *xml = fopen(argv[1], "w"), *out = fopen(argv[2], "w");
  if (xml == NULL || out == NULL || setvbuf(xml, xml_buf, _IOFBF, sizeof xml_buf) != 0) return 1;
  static void *p[20000];
  for (int i = 0; i < 20000; i++) {
    p[i] = malloc(16 + (size_t)(i % 50) * 24 + (i % 1000 == 0 ? 100000 : 0));
    memset(p[i], 1, 16);
  }
  for (int i = 0; i < 20000; i += 3) free(p[i]);
  void *big = malloc(4 << 20), *cached = malloc(2 << 20);
  memset(big, 1, 4 << 20);
  memset(cached, 1, 2 << 20);
  free(cached);
  errno = 0;
  if (malloc_info(1, xml) != -1 || errno != EINVAL) return 1;
  if (ebb_malloc_info(0, NULL) != -1 || errno != EINVAL) return 1;
  ebb_stats_t st;
  ebb_stats_get(&st, sizeof st);
  if (malloc_info(0, xml) != 0 || fclose(xml) != 0) return 1;
#define PRINT_FIELD(name, help) fprintf(out, "%s %llu\n", #name, (unsigned long long)st.name);
  EBB_STATS_FIELDS(PRINT_FIELD)
  fclose(out);
  free(big);
  return 0;
}
