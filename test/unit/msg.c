/* SPDX-License-Identifier: MIT */
/* test/unit/msg.c - messages: sizes in the units users type and read, the
 * verbose rate limit, and the verbose line of a decision no other test can
 * cause here (a memory limit near: test/cgroup.sh needs a cgroup).
 *
 * White-box: linked with the library's objects. Exits 1 if any CHECK
 * failed. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "internal.h"

static void test_size_option(void) {
  static const struct {
    unsigned long long bytes;
    const char *text;
  } cases[] = {
    {0, "0"},          {1, "1"},          {1000, "1000"},         {4096, "4k"},   {512 * 1024, "512k"},
    {100000, "100000"}, {1 << 20, "1m"},  {3 << 20, "3m"},        {1ULL << 30, "1g"}, {1ULL << 40, "1t"},
    {2048ULL << 40, "2048t"}, {(1ULL << 30) + 1024, "1048577k"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char buf[EBB_SIZE_TEXT];
    CHECK_MSG(strcmp(_ebb_size_option(buf, cases[i].bytes), cases[i].text) == 0, "%llu: %s", cases[i].bytes, buf);
    long long back = -1; /* what is printed reads back as the same value */
    CHECK_MSG(_ebb_options_parse_size(buf, &back) == 0 && (unsigned long long)back == cases[i].bytes, "%s", buf);
  }
}

static void test_size_human(void) {
  static const struct {
    unsigned long long bytes;
    const char *text;
  } cases[] = {
    {0, "0 B"},           {1023, "1023 B"},          {1024, "1 KiB"},      {1536, "1.5 KiB"},
    {65280, "63.7 KiB"},  {4 << 20, "4 MiB"},        {(25 << 20) / 2, "12.5 MiB"}, {1ULL << 30, "1 GiB"},
    {1ULL << 40, "1 TiB"}, {3000ULL << 40, "3000 TiB"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char buf[EBB_SIZE_TEXT];
    CHECK_MSG(strcmp(_ebb_size_human(buf, cases[i].bytes), cases[i].text) == 0, "%llu: %s", cases[i].bytes, buf);
  }
}

/* Runs fn with stderr captured into buf. */
static void captured(void (*fn)(void), char *buf, size_t cap) {
  fflush(stderr);
  FILE *tmp = tmpfile();
  int saved = dup(2);
  dup2(fileno(tmp), 2);
  fn();
  dup2(saved, 2);
  close(saved);
  rewind(tmp);
  size_t n = fread(buf, 1, cap - 1, tmp);
  buf[n] = 0;
  fclose(tmp);
}

static size_t count_lines(const char *s, const char *prefix) {
  size_t n = 0, len = strlen(prefix);
  for (const char *line = s; *line; line = strchr(line, '\n') + 1) {
    n += strncmp(line, prefix, len) == 0;
    if (strchr(line, '\n') == NULL) break;
  }
  return n;
}

static void flood(void) {
  for (int i = 0; i < 5000; i++) _ebb_verbose_rated(EBB_V_LARGE, "ebb: large: line %d\n", i);
  _ebb_verbose_rated(EBB_V_SEGMENT, "ebb: segment: another kind\n");
  _ebb_verbose_flush();
}

/* A flood of one kind prints at most 10 lines a second (two seconds of
 * the clock if the loop straddles one), and says how many it left out;
 * other kinds are not held back by it. */
static void test_rate_limit(void) {
  static char err[8192];
  CHECK(_ebb_option_set(EBB_OPT_VERBOSE, 1));
  captured(flood, err, sizeof(err));
  size_t printed = count_lines(err, "ebb: large: line ");
  CHECK_MSG(printed >= 10 && printed <= 20, "%zu lines printed: %s", printed, err);
  CHECK_MSG(count_lines(err, "ebb: segment: another kind") == 1, "%s", err);
  unsigned long long left = 0;
  for (const char *p = err; (p = strstr(p, "ebb: verbose: ")) != NULL; p++) {
    unsigned long long n = 0;
    if (sscanf(p, "ebb: verbose: %llu more large lines left out (at most 10 a second)", &n) == 1) left += n;
  }
  CHECK_MSG(left + printed == 5000, "printed %zu, left out %llu: %s", printed, left, err);
  /* Off: nothing at all, and nothing counted. */
  CHECK(_ebb_option_set(EBB_OPT_VERBOSE, 0));
  captured(flood, err, sizeof(err));
  CHECK_MSG(err[0] == 0, "%s", err);
}

/* In use and dirty past the limit's ceiling: one line saying so. */
static void limit_near(void) {
  atomic_store(&_ebb_limit_ceiling, (size_t)48 << 20);
  atomic_fetch_add(&_ebb_dirty_bytes, (size_t)10 << 20);
  _ebb_inuse_add((size_t)40 << 20);
  _ebb_inuse_sub((size_t)40 << 20);
  atomic_fetch_sub(&_ebb_dirty_bytes, (size_t)10 << 20);
  atomic_store(&_ebb_limit_ceiling, SIZE_MAX);
}

static void test_limit_near(void) {
  char err[1024];
  _ebb_init_process(); /* the options are read */
  CHECK(_ebb_option_set(EBB_OPT_VERBOSE, 1));
  captured(limit_near, err, sizeof(err));
  /* 40 MiB and what the process held before (the test's stdio; under a
   * sanitizer, its runtime's blocks): 40 to 49 MiB. */
  const char *line = strstr(err, "ebb: limit: 4");
  CHECK_MSG(line != NULL && strstr(line, " MiB in use and 10 MiB free is past 48 MiB, the memory limit less "
                                         "EBB_LIMIT_MARGIN (25%): free memory is purged at once\n") != NULL,
            "%s", err);
  /* (Whether the pass is made urgent is not read back here: the purge
   * thread, started by the first offer, may already have taken the flag.) */
  CHECK(_ebb_option_set(EBB_OPT_VERBOSE, 0));
}

int main(void) {
  test_size_option();
  test_size_human();
  test_rate_limit();
  test_limit_near();
  return check_summary("unit_msg");
}
