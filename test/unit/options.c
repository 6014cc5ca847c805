/* SPDX-License-Identifier: MIT */
/* test/unit/options.c - the option table: size parsing, range checks,
 * reading EBB_ variables (with the warning a bad value gets), mallopt.
 *
 * White-box: linked with the library's objects. Options changed here are
 * put back before the next test. Exits 1 if any CHECK failed. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "internal.h"

extern size_t _ebb_large_threshold, _ebb_realloc_map;

/* ---- _ebb_options_parse_size ------------------------------------------- */
static void test_parse_size_valid(void) {
  static const struct {
    const char *text;
    long long value;
  } ok[] = {
    {"0", 0},          {"4096", 4096},          {"64k", 64 << 10},        {"64K", 64 << 10},
    {"8m", 8 << 20},   {"8M", 8 << 20},         {"1g", 1LL << 30},        {"1G", 1LL << 30},
    {"16kb", 16 << 10}, {"16KB", 16 << 10},     {"2mB", 2 << 20},         {"12b", 12},
    {"1024g", 1LL << 40}, {"007", 7},       {"1t", 1LL << 40},        {"1T", 1LL << 40},
    {"2tb", 2LL << 40},
  };
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    long long v = -12345;
    CHECK_MSG(_ebb_options_parse_size(ok[i].text, &v) == 0, "%s", ok[i].text);
    CHECK_MSG(v == ok[i].value, "%s", ok[i].text);
  }
}

static void test_parse_size_invalid(void) {
  static const char *bad[] = {
    "", "k", "12q", "-1", "1.5m", "99999999999999999999", " 64k", "64k ", "64 k", "1kk", "1p", "0x10", "+5", "b",
    "64kbb",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    long long v = -12345;
    CHECK_MSG(_ebb_options_parse_size(bad[i], &v) == -1, "%s", bad[i]);
    CHECK_MSG(v == -12345, "%s", bad[i]); /* untouched on failure */
  }
  long long v = -12345;
  CHECK(_ebb_options_parse_size(NULL, &v) == -1);
}

/* A number that fits but overflows once the suffix multiplies it must be
 * refused, not wrapped: 17179869184g is 2^64 bytes, which wraps to 0 (so
 * EBB_DIRTY_MAX=17179869184g would silently mean "purge at once"), and
 * 8589934592g is 2^63, which wraps negative. */
static void test_parse_size_overflow(void) {
  static const char *bad[] = {"17179869184g", "8589934592g", "17592186044416m", "9007199254740992k"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    long long v = -12345;
    int rc = _ebb_options_parse_size(bad[i], &v);
    char what[96];
    snprintf(what, sizeof(what), "%s parsed as %lld (rc %d)", bad[i], v, rc);
    CHECK_MSG(rc == -1, "%s", what);
  }
  long long v = 0;
  CHECK(_ebb_options_parse_size("1048576g", &v) == 0 && v == 1LL << 50); /* large but exact */
}

/* ---- _ebb_option_set ----------------------------------------------------- */
static void test_option_ranges(void) {
  static const struct {
    ebb_option_t opt;
    long long min, max;
  } ranges[] = {
    {EBB_OPT_VERBOSE, 0, 1},
    {EBB_OPT_STATS, 0, 1},
    {EBB_OPT_ON_ERROR, 0, 1},
    {EBB_OPT_LARGE_THRESHOLD, 4096, 512 * 1024},
    {EBB_OPT_REALLOC_MAP, 0, 1LL << 40},
    {EBB_OPT_SEGMENT_CACHE, 0, 64},
    {EBB_OPT_PURGE_DELAY_MS, 0, 60000},
    {EBB_OPT_PURGE_THREAD, 0, 1},
    {EBB_OPT_DIRTY_MAX, 0, 1LL << 40},
    {EBB_OPT_DIRTY_FRACTION, 0, 100},
    {EBB_OPT_LARGE_CACHE, 0, 1LL << 40},
    {EBB_OPT_MADVISE, 0, 1},
    {EBB_OPT_LIMIT_MARGIN, 0, 100},
    {EBB_OPT_SECURE, 0, 1},
  };
  for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
    ebb_option_t opt = ranges[i].opt;
    long long saved = _ebb_option(opt), lo = ranges[i].min, hi = ranges[i].max;
    char what[64];
    snprintf(what, sizeof(what), "option %d", (int)opt);
    CHECK_MSG(!_ebb_option_set(opt, lo - 1), "%s", what);
    CHECK_MSG(_ebb_option(opt) == saved, "%s", what); /* a refused value changes nothing */
    CHECK_MSG(!_ebb_option_set(opt, hi + 1), "%s", what);
    CHECK_MSG(!_ebb_option_set(opt, -1000000), "%s", what);
    CHECK_MSG(_ebb_option(opt) == saved, "%s", what);
    /* The extremes are accepted; the verbose ones are put back at once. */
    CHECK_MSG(_ebb_option_set(opt, hi) && _ebb_option(opt) == hi, "%s", what);
    CHECK_MSG(_ebb_option_set(opt, lo) && _ebb_option(opt) == lo, "%s", what);
    CHECK_MSG(_ebb_option_set(opt, saved) && _ebb_option(opt) == saved, "%s", what);
  }
  /* The large threshold is mirrored where the allocator reads it. */
  long long saved = _ebb_option(EBB_OPT_LARGE_THRESHOLD);
  CHECK(_ebb_option_set(EBB_OPT_LARGE_THRESHOLD, 64 * 1024) && _ebb_large_threshold == 64 * 1024);
  CHECK(!_ebb_option_set(EBB_OPT_LARGE_THRESHOLD, 1) && _ebb_large_threshold == 64 * 1024);
  CHECK(_ebb_option_set(EBB_OPT_LARGE_THRESHOLD, saved) && _ebb_large_threshold == (size_t)saved);
  /* So is the realloc threshold, 0 (never) as the largest size. */
  saved = _ebb_option(EBB_OPT_REALLOC_MAP);
  CHECK(_ebb_option_set(EBB_OPT_REALLOC_MAP, 128 * 1024) && _ebb_realloc_map == 128 * 1024);
  CHECK(_ebb_option_set(EBB_OPT_REALLOC_MAP, 0) && _ebb_realloc_map == SIZE_MAX);
  CHECK(_ebb_option_set(EBB_OPT_REALLOC_MAP, saved) && _ebb_realloc_map == (saved == 0 ? SIZE_MAX : (size_t)saved));
}

/* ---- reading the environment ------------------------------------------------ */
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

static void test_options_init(void) {
  char err[1024];
  setenv("EBB_SEGMENT_CACHE", "7", 1);
  setenv("EBB_DIRTY_MAX", "3m", 1);
  setenv("EBB_MADVISE", "FREE", 1);
  captured(_ebb_options_init, err, sizeof(err));
  CHECK_MSG(err[0] == 0, "%s", err);
  CHECK(_ebb_option(EBB_OPT_SEGMENT_CACHE) == 7);
  CHECK(_ebb_option(EBB_OPT_DIRTY_MAX) == 3 << 20);
  CHECK(_ebb_option(EBB_OPT_MADVISE) == 1);
  unsetenv("EBB_DIRTY_MAX");
  unsetenv("EBB_MADVISE");

  /* A bad value: one line, naming the variable, the range and the default. */
  setenv("EBB_SEGMENT_CACHE", "999", 1);
  captured(_ebb_options_init, err, sizeof(err));
  CHECK_MSG(strcmp(err, "ebb: warning: EBB_SEGMENT_CACHE=999 is invalid: expected a number from 0 to 64; using 16\n") ==
                0,
            "%s", err);
  CHECK(_ebb_option(EBB_OPT_SEGMENT_CACHE) == 16);
  setenv("EBB_SEGMENT_CACHE", "", 1); /* empty: invalid like any other bad value */
  captured(_ebb_options_init, err, sizeof(err));
  CHECK_MSG(strcmp(err, "ebb: warning: EBB_SEGMENT_CACHE= is invalid: expected a number from 0 to 64; using 16\n") == 0,
            "%s", err);
  CHECK(_ebb_option(EBB_OPT_SEGMENT_CACHE) == 16);
  unsetenv("EBB_SEGMENT_CACHE");

  setenv("EBB_LIMIT_MARGIN", "101", 1);
  captured(_ebb_options_init, err, sizeof(err));
  CHECK_MSG(strcmp(err, "ebb: warning: EBB_LIMIT_MARGIN=101 is invalid: expected a number from 0 to 100; using 25\n") ==
                0,
            "%s", err);
  CHECK(_ebb_option(EBB_OPT_LIMIT_MARGIN) == 25);
  setenv("EBB_LIMIT_MARGIN", "10", 1);
  captured(_ebb_options_init, err, sizeof(err));
  CHECK_MSG(err[0] == 0, "%s", err);
  CHECK(_ebb_option(EBB_OPT_LIMIT_MARGIN) == 10);
  unsetenv("EBB_LIMIT_MARGIN");

  setenv("EBB_PURGE_THREAD", "maybe", 1);
  captured(_ebb_options_init, err, sizeof(err));
  CHECK_MSG(strcmp(err, "ebb: warning: EBB_PURGE_THREAD=maybe is invalid: expected 1, 0, yes, no, on, off, true or "
                      "false; using 1\n") == 0, "%s", err);
  unsetenv("EBB_PURGE_THREAD");
  setenv("EBB_MADVISE", "sometimes", 1);
  captured(_ebb_options_init, err, sizeof(err));
  CHECK_MSG(
      strcmp(err, "ebb: warning: EBB_MADVISE=sometimes is invalid: expected dontneed or free; using dontneed\n") == 0,
      "%s", err);
  CHECK(_ebb_option(EBB_OPT_MADVISE) == 0);
  unsetenv("EBB_MADVISE");
  setenv("EBB_LARGE_THRESHOLD", "1", 1);
  captured(_ebb_options_init, err, sizeof(err));
  CHECK_MSG(strstr(err, "ebb: warning: EBB_LARGE_THRESHOLD=1 is invalid: expected a size") == err, "%s", err);
  CHECK(_ebb_large_threshold == 512 * 1024);
  unsetenv("EBB_LARGE_THRESHOLD");
  captured(_ebb_options_init, err, sizeof(err)); /* back to the defaults */
}

/* An EBB_ variable that is no option: one line naming the closest one;
 * none for the variables of ebb's tools. */
static void test_unknown_variables(void) {
  char err[1024];
  setenv("EBB_PURGE_DELAY", "5", 1);
  setenv("EBB_LARGE_TRESHOLD", "1m", 1);
  setenv("EBB_STRESS_SCALE", "0.5", 1);
  captured(_ebb_options_init, err, sizeof(err));
  CHECK_MSG(strstr(err, "ebb: warning: EBB_PURGE_DELAY is not an ebb option (did you mean EBB_PURGE_DELAY_MS?)\n"),
            "%s", err);
  CHECK_MSG(strstr(err, "ebb: warning: EBB_LARGE_TRESHOLD is not an ebb option (did you mean EBB_LARGE_THRESHOLD?)\n"),
            "%s", err);
  CHECK_MSG(strstr(err, "STRESS") == NULL, "%s", err);
  unsetenv("EBB_PURGE_DELAY");
  unsetenv("EBB_LARGE_TRESHOLD");
  unsetenv("EBB_STRESS_SCALE");
  /* Out of range: the range in the units the option is typed in. */
  setenv("EBB_DIRTY_MAX", "2t", 1);
  captured(_ebb_options_init, err, sizeof(err));
  CHECK_MSG(strcmp(err, "ebb: warning: EBB_DIRTY_MAX=2t is invalid: expected a size from 0 to 1t (k, m, g, t "
                        "suffixes); using 1g\n") == 0,
            "%s", err);
  unsetenv("EBB_DIRTY_MAX");
  captured(_ebb_options_init, err, sizeof(err));
  CHECK_MSG(err[0] == 0, "%s", err);
}

static void test_options_print(void) {
  static char err[4096];
  setenv("EBB_LARGE_CACHE", "1024m", 1);
  captured(_ebb_options_init, err, sizeof(err));
  captured(_ebb_options_print, err, sizeof(err));
  CHECK_MSG(strstr(err, "ebb:   EBB_LARGE_CACHE = 1g (environment)\n") != NULL, "%s", err);
  CHECK_MSG(strstr(err, "ebb:   EBB_DIRTY_MAX = 1g (default)\n") != NULL, "%s", err);
  CHECK(ebb_mallopt(M_TRIM_THRESHOLD, 3 << 20) == 1);
  captured(_ebb_options_print, err, sizeof(err));
  CHECK_MSG(strstr(err, "ebb:   EBB_DIRTY_MAX = 3m (mallopt)\n") != NULL, "%s", err);
  CHECK(ebb_mallopt(M_TRIM_THRESHOLD, -1) == 0); /* refused: the source stays */
  captured(_ebb_options_print, err, sizeof(err));
  CHECK_MSG(strstr(err, "ebb:   EBB_DIRTY_MAX = 3m (mallopt)\n") != NULL, "%s", err);
  unsetenv("EBB_LARGE_CACHE");
  captured(_ebb_options_init, err, sizeof(err)); /* back to the defaults, and their source */
  captured(_ebb_options_print, err, sizeof(err));
  CHECK_MSG(strstr(err, "ebb:   EBB_DIRTY_MAX = 1g (default)\n") != NULL, "%s", err);
  CHECK_MSG(strstr(err, "(environment)") == NULL && strstr(err, "(mallopt)") == NULL, "%s", err);
}

/* ---- mallopt --------------------------------------------------------------------- */
static void test_mallopt(void) {
  long long dirty_max = _ebb_option(EBB_OPT_DIRTY_MAX), threshold = _ebb_option(EBB_OPT_LARGE_THRESHOLD);
  CHECK(ebb_mallopt(M_TRIM_THRESHOLD, 12345) == 1 && _ebb_option(EBB_OPT_DIRTY_MAX) == 12345);
  CHECK(ebb_mallopt(M_TRIM_THRESHOLD, 0) == 1 && _ebb_option(EBB_OPT_DIRTY_MAX) == 0);
  CHECK(ebb_mallopt(M_TRIM_THRESHOLD, -1) == 0 && _ebb_option(EBB_OPT_DIRTY_MAX) == 0);
  CHECK(ebb_mallopt(M_MMAP_THRESHOLD, 100000) == 1 && _ebb_large_threshold == 100000);
  CHECK(ebb_mallopt(M_MMAP_THRESHOLD, 1) == 1 && _ebb_large_threshold == 4096); /* clamped */
  CHECK(ebb_mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1 && _ebb_large_threshold == 512 * 1024);
  CHECK(ebb_mallopt(M_MMAP_THRESHOLD, -5) == 0 && _ebb_large_threshold == 512 * 1024);
  CHECK(ebb_mallopt(M_ARENA_MAX, 2) == 1); /* glibc's, accepted and ignored */
  CHECK(ebb_mallopt(12345, 1) == 0);       /* unknown */
  CHECK(_ebb_option_set(EBB_OPT_DIRTY_MAX, dirty_max));
  CHECK(_ebb_option_set(EBB_OPT_LARGE_THRESHOLD, threshold));
}

int main(void) {
  test_parse_size_valid();
  test_parse_size_invalid();
  test_parse_size_overflow();
  test_option_ranges();
  test_options_init();
  test_mallopt();
  test_unknown_variables();
  test_options_print();
  return check_summary("unit_options");
}
