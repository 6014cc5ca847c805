/* SPDX-License-Identifier: MIT */
/* util.c - the ebb command's messages, number formats, argument parsing
 * and where its libraries are. Single-threaded. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <time.h>

#include "cli.h"

void series_push(series_t *s, const sample_t *x) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 256;
    sample_t *v = realloc(s->v, cap * sizeof(*v));
    if (v == NULL) {
      cli_error("out of memory for %zu samples", cap);
      exit(EXIT_FAILURE_RUN);
    }
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n++] = *x;
}

void series_free(series_t *s) {
  free(s->v);
  *s = (series_t){0};
}

void cli_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("ebb: error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

void cli_note(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("ebb: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

const char *fmt_bytes(char *buf, size_t cap, uint64_t bytes) {
  static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)bytes;
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    u++;
  }
  if (u == 0) snprintf(buf, cap, "%llu B", (unsigned long long)bytes);
  else snprintf(buf, cap, v < 10 ? "%.2f %s" : v < 100 ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void sleep_ms(double ms) {
  if (ms <= 0) return;
  struct timespec ts = {(time_t)(ms / 1e3), (long)((ms - (double)(time_t)(ms / 1e3) * 1e3) * 1e6)};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

bool parse_size(const char *text, uint64_t *out) {
  char *end;
  if (!isdigit((unsigned char)text[0])) return false;
  errno = 0;
  unsigned long long v = strtoull(text, &end, 10);
  if (errno != 0) return false;
  int shift = 0;
  switch (tolower((unsigned char)*end)) {
  case 0: break;
  case 'k': shift = 10; break;
  case 'm': shift = 20; break;
  case 'g': shift = 30; break;
  default: return false;
  }
  if (*end != 0 && end[1] != 0 && !(tolower((unsigned char)end[1]) == 'b' && end[2] == 0)) return false;
  if (shift && v > (ULLONG_MAX >> shift)) return false;
  *out = (uint64_t)v << shift;
  return true;
}

bool parse_count(const char *text, long max, long *out) {
  char *end;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != 0 || v <= 0 || v > max) return false;
  *out = v;
  return true;
}

bool parse_pid(const char *text, pid_t *out) {
  long v;
  if (!parse_count(text, INT_MAX, &v)) {
    cli_error("'%s' is not a process id (a positive number)", text);
    return false;
  }
  *out = (pid_t)v;
  return true;
}

bool self_dir(char *buf, size_t cap) {
  ssize_t n = readlink("/proc/self/exe", buf, cap - 1);
  if (n <= 0) return false;
  buf[n] = 0;
  char *slash = strrchr(buf, '/');
  if (slash == NULL) return false;
  *slash = 0;
  return true;
}

bool find_library(const char *name, char *buf, size_t cap) {
  static const char *const places[] = {"", "/../lib", "/../lib64", "/../lib/x86_64-linux-gnu",
                                       "/../lib/aarch64-linux-gnu"};
  char dir[PATH_MAX];
  if (!self_dir(dir, sizeof(dir))) return false;
  for (size_t i = 0; i < sizeof(places) / sizeof(places[0]); i++) {
    snprintf(buf, cap, "%s%s/%s", dir, places[i], name);
    if (access(buf, R_OK) == 0) return true;
  }
  return false;
}

const char *file_extension(const char *path, char *buf, size_t cap) {
  const char *slash = strrchr(path, '/');
  const char *dot = strrchr(slash ? slash : path, '.');
  size_t i = 0;
  for (const char *p = dot ? dot + 1 : ""; *p && i + 1 < cap; p++) buf[i++] = (char)tolower((unsigned char)*p);
  buf[i] = 0;
  return buf;
}
