/* SPDX-License-Identifier: MIT */
/* compare.c - `ebb compare`: the program under each allocator found, N
 * interleaved repetitions, medians side by side, and the RSS curves
 * overlaid. "RSS after idle" is the same measure for every allocator: the
 * RSS at the end of the last stretch of 500 ms or more in which the
 * program used under 10% of one CPU, i.e. slept
 * rather than allocated (CPU time from /proc/PID/task/TID/schedstat);
 * "-" when the program never idled so long. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>

#include "runner.h"

static const char compare_usage[] =
  "usage: ebb compare [-r N] [--with LIST] [-o FILE] -- PROG [ARGS...]\n"
  "Runs PROG under each allocator of LIST (default glibc,ebb,jemalloc,mimalloc,\n"
  "tcmalloc) that is installed, N interleaved times each (default 3), and prints\n"
  "the medians: wall time, peak RSS (the kernel's high-water mark), final RSS\n"
  "(the last sample before exit) and RSS after idle (at the end of the last\n"
  "stretch of >= 500 ms in which the program used under 10% of a CPU). Draws\n"
  "the RSS curves overlaid (terminal) and writes them to FILE (.svg or .html).\n"
  "Progress goes to stderr.\n"
  "Exit status: 0; 1 no allocator found or FILE not written; 2 bad option;\n"
  "126 PROG not executable; 127 PROG not found.\n";

#define MAX_ALLOCS 5
#define MAX_REPS 50
#define IDLE_MS 500.0

static const struct {
  const char *name, *file;
} known[MAX_ALLOCS] = {{"glibc", NULL}, {"ebb", "libebb.so"}, {"jemalloc", "libjemalloc.so.2"},
                       {"mimalloc", "libmimalloc.so.2"}, {"tcmalloc", "libtcmalloc_minimal.so.4"}};

typedef struct {
  const char *name;
  char lib[PATH_MAX]; /* "" for glibc */
  double wall[MAX_REPS], peak[MAX_REPS], final[MAX_REPS], idle[MAX_REPS];
  int reps, peak_reps, final_reps, idle_reps; /* runs that gave each figure */
  bool peak_partial; /* a run's peak lacks the time after its last sample (no exit figure) */
  run_result_t first; /* the first repetition's series, for the chart */
} alloc_t;

/* Where Debian's packages put a library, or next to this command for ebb. */
static bool locate(const char *file, char *out, size_t cap) {
  static const char *const dirs[] = {"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64",
                                     "/usr/lib", "/usr/local/lib"};
  if (strcmp(file, "libebb.so") == 0) return find_library(file, out, cap);
  for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
    snprintf(out, cap, "%s/%s", dirs[i], file);
    if (access(out, R_OK) == 0) return true;
  }
  return false;
}

static double median(double *v, int n) {
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
      double t = v[j];
      v[j] = v[j - 1];
      v[j - 1] = t;
    }
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* RSS at the end of the last idle stretch: a run of consecutive sample
 * periods, IDLE_MS long at least, each with under 10% of one CPU used by
 * the program's threads; -1 if there is none. */
static double idle_rss(const series_t *s) {
  double last = -1;
  size_t start = 0; /* the first sample of the current quiet run */
  for (size_t b = 1; b < s->n; b++) {
    double period_ms = s->v[b].t_ms - s->v[b - 1].t_ms;
    double cpu_ms = (double)(s->v[b].cpu_ns - s->v[b - 1].cpu_ns) / 1e6;
    if (cpu_ms >= 0.1 * period_ms) {
      start = b;
      continue;
    }
    if (s->v[b].t_ms - s->v[start].t_ms >= IDLE_MS) last = (double)s->v[b].rss;
  }
  return last;
}

/* Parses --with: names of known allocators, comma-separated. */
static int parse_with(const char *list, alloc_t *out) {
  int n = 0;
  char copy[256];
  snprintf(copy, sizeof(copy), "%s", list);
  for (char *save, *name = strtok_r(copy, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
    int k = 0;
    while (k < MAX_ALLOCS && strcmp(known[k].name, name) != 0) k++;
    if (k == MAX_ALLOCS || n == MAX_ALLOCS) {
      cli_error("compare: --with: '%s' is not one of glibc, ebb, jemalloc, mimalloc, tcmalloc", name);
      return -1;
    }
    out[n++].name = known[k].name;
  }
  return n;
}

/* Keeps the allocators whose library exists; says which are missing. */
static int keep_found(alloc_t *a, int n) {
  int kept = 0;
  for (int i = 0; i < n; i++) {
    int k = 0;
    while (strcmp(known[k].name, a[i].name) != 0) k++;
    if (known[k].file != NULL && !locate(known[k].file, a[i].lib, sizeof(a[i].lib))) {
      cli_note("compare: %s not found (%s), left out", a[i].name, known[k].file);
      continue;
    }
    if (known[k].file == NULL) a[i].lib[0] = 0;
    a[kept++] = a[i];
  }
  return kept;
}

/* One run; EXIT_OK, or the exit status ebb compare ends with. */
static int run_once(alloc_t *a, char **argv, int rep, int reps) {
  run_opts_t o = {argv, a->lib[0] ? a->lib : NULL, true, strcmp(a->name, "ebb") == 0, 20};
  run_result_t r;
  fprintf(stderr, "ebb: compare: %s, run %d of %d\n", a->name, rep + 1, reps);
  if (!run_program(&o, &r)) return EXIT_FAILURE_RUN;
  if (r.exec_errno != 0) {
    cli_error("compare: %s: %s", argv[0], r.exec_errno == ENOENT ? "program not found" : strerror(r.exec_errno));
    return r.exec_errno == ENOENT ? EXIT_NOT_FOUND : EXIT_NOT_EXEC;
  }
  summary_t m;
  summarize(&r, &m);
  if (exit_code_of(r.status) != 0) {
    char how[96];
    describe_exit(r.status, how, sizeof(how));
    cli_note("compare: under %s the program %s", a->name, how);
  }
  a->wall[a->reps] = r.wall_ms;
  uint64_t peak = m.hwm_rss > m.peak_rss ? m.hwm_rss : m.peak_rss;
  if (peak > 0) a->peak[a->peak_reps++] = (double)peak;
  if (r.exit_hwm == 0) a->peak_partial = true;
  if (r.series.n > 0) a->final[a->final_reps++] = (double)m.final_rss;
  double idle = idle_rss(&r.series);
  if (idle >= 0) a->idle[a->idle_reps++] = idle;
  if (a->reps++ == 0) a->first = r;
  else run_result_free(&r);
  return EXIT_OK;
}

/* The median of the n figures, formatted; "-" when no run gave one. */
static const char *median_bytes(double *v, int n, char *buf, size_t cap) {
  if (n == 0) return snprintf(buf, cap, "-"), buf;
  return fmt_bytes(buf, cap, (uint64_t)median(v, n));
}

static void print_table(alloc_t *a, int n) {
  char p[32], f[32], i[32];
  bool partial = false;
  printf("\n%-10s %10s %12s %12s %16s\n", "allocator", "time", "peak RSS", "final RSS", "RSS after idle");
  for (int k = 0; k < n; k++) {
    median_bytes(a[k].peak, a[k].peak_reps, p, sizeof(p));
    if (a[k].peak_partial && a[k].peak_reps > 0) strcat(p, "*");
    partial |= a[k].peak_partial;
    median_bytes(a[k].final, a[k].final_reps, f, sizeof(f));
    median_bytes(a[k].idle, a[k].idle_reps, i, sizeof(i));
    printf("%-10s %8.3f s %12s %12s %16s\n", a[k].name, median(a[k].wall, a[k].reps) / 1e3, p, f, i);
  }
  printf("medians of %d runs each, interleaved. peak RSS: the kernel's high-water mark (VmHWM, and wait4 at exit).\n"
         "final RSS: the last sample (every 20 ms) before exit. RSS after idle: at the end of the last stretch\n"
         "of >= 500 ms with under 10%% of a CPU used. \"-\": no figure (the program ended before the first sample,\n"
         "or never idled).\n", a[0].reps);
  if (partial)
    printf("*: at least this: the program stayed smaller than the forked copy of ebb it was started from, whose\n"
           "pages the kernel's figure at exit includes, so the time after the last sample is not covered.\n");
}

static bool write_chart(const char *path, const curve_t *c, int n) {
  char ext[16];
  file_extension(path, ext, sizeof(ext));
  FILE *f = open_output(path);
  if (f == NULL) return false;
  if (strcmp(ext, "svg") == 0) {
    chart_svg(f, c, (size_t)n, "ebb compare: RSS over time, first run of each allocator");
  } else {
    html_head(f, "ebb compare: RSS over time");
    chart_svg(f, c, (size_t)n, "RSS over time, first run of each allocator");
    fputs("</body></html>\n", f);
  }
  return close_output(f, path);
}

int cmd_compare(int argc, char **argv) {
  long reps = 3;
  const char *with = "glibc,ebb,jemalloc,mimalloc,tcmalloc", *out = NULL;
  static const struct option longs[] = {{"with", required_argument, NULL, 'w'}, {"help", no_argument, NULL, 'h'},
                                        {NULL, 0, NULL, 0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "+r:o:h", longs, NULL)) != -1) {
    if (c == 'h') return fputs(compare_usage, stdout), EXIT_OK;
    if (c == 'w') with = optarg;
    else if (c == 'o') out = optarg;
    else if (c == 'r' && parse_count(optarg, MAX_REPS, &reps)) continue;
    else if (c == 'r') return cli_error("compare: -r takes a count from 1 to %d, not '%s'", MAX_REPS, optarg), EXIT_USAGE;
    else return fputs(compare_usage, stderr), EXIT_USAGE;
  }
  if (optind >= argc) return cli_error("compare: no program given (ebb compare -- PROG ARGS...)"), EXIT_USAGE;
  char ext[16];
  if (out && strcmp(file_extension(out, ext, sizeof(ext)), "svg") != 0 && strcmp(ext, "html") != 0)
    return cli_error("compare: -o %s: unknown format (the name must end in .svg or .html)", out), EXIT_USAGE;
  static alloc_t allocs[MAX_ALLOCS];
  int n = parse_with(with, allocs);
  if (n < 0) return EXIT_USAGE;
  if ((n = keep_found(allocs, n)) == 0) return cli_error("compare: none of the allocators asked for is installed"), EXIT_FAILURE_RUN;
  int status;
  for (int rep = 0; rep < reps; rep++)
    for (int k = 0; k < n; k++)
      if ((status = run_once(&allocs[k], argv + optind, rep, (int)reps)) != EXIT_OK) return status;
  print_table(allocs, n);
  curve_t curves[MAX_ALLOCS];
  for (int k = 0; k < n; k++) curves[k] = (curve_t){allocs[k].name, &allocs[k].first.series, CURVE_RSS};
  if (isatty(STDOUT_FILENO)) chart_terminal_overlay(stdout, curves, (size_t)n, 72, 12);
  return out && !write_chart(out, curves, n) ? EXIT_FAILURE_RUN : EXIT_OK;
}
