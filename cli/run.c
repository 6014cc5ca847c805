/* SPDX-License-Identifier: MIT */
/* run.c - `ebb run`: a program with ebb preloaded, sampled until it exits,
 * then its summary, the terminal chart and the -o file. */
#include <getopt.h>
#include <errno.h>
#include <limits.h>

#include "runner.h"

static const char run_usage[] =
  "usage: ebb run [-i MS] [-o FILE] -- PROG [ARGS...]\n"
  "Runs PROG with ebb preloaded (libebb.so next to this command, or in ../lib)\n"
  "and EBB_SNAPSHOT=1, samples it every MS milliseconds (default 50): the\n"
  "kernel's Rss, Anonymous, LazyFree, AnonHugePages (/proc/PID/smaps_rollup),\n"
  "the memory cgroup's usage, and ebb's published statistics. At exit prints\n"
  "a summary and a verdict: the slowest time RSS took, after a drop of live\n"
  "memory, to come within 1 MiB or 5% of live + metadata (plus what RSS held\n"
  "outside ebb's heap just before the drop), or that ebb kept free memory\n"
  "resident for more than five purge delays. A chart is drawn when stdout is\n"
  "a terminal. The same pid after exec is followed; forked children are not\n"
  "(the summary says how many there were).\n"
  "  -i MS     sampling period in milliseconds (1 to 60000)\n"
  "  -o FILE   also write FILE: .svg (chart), .html (chart, summary, layers),\n"
  "            .json or .csv (the samples)\n"
  "Exit status: PROG's; 128+N if a signal N killed it; 127 PROG not found;\n"
  "126 PROG not executable; 2 bad option; 1 libebb.so not found or FILE not written.\n";

/* Writes the -o file in the format its extension names. */
static bool write_output(const char *path, const run_result_t *r, const summary_t *m, double interval_ms) {
  char ext[16];
  file_extension(path, ext, sizeof(ext));
  curve_t curves[8];
  size_t n = run_curves(r, curves, 8);
  FILE *f = open_output(path);
  if (f == NULL) return false;
  if (strcmp(ext, "svg") == 0) chart_svg(f, curves, n, "ebb run: RSS and ebb's figures over time");
  else if (strcmp(ext, "html") == 0 || strcmp(ext, "htm") == 0) write_html_run(f, r, m, curves, n, interval_ms);
  else if (strcmp(ext, "json") == 0) write_json(f, r, m, interval_ms);
  else write_csv(f, &r->series);
  return close_output(f, path);
}

static bool known_extension(const char *path) {
  char ext[16];
  file_extension(path, ext, sizeof(ext));
  static const char *const known[] = {"svg", "html", "htm", "json", "csv"};
  for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
    if (strcmp(ext, known[i]) == 0) return true;
  return false;
}

static void print_summary(FILE *f, const run_result_t *r, const summary_t *m, double interval_ms) {
  summary_row_t rows[16];
  size_t n = summary_rows(m, r, rows, 16);
  fputs("\nebb run summary\n", f);
  for (size_t i = 0; i < n; i++) fprintf(f, "  %-19s %s\n", rows[i].label, rows[i].value);
  char verdict[256];
  verdict_line(m, interval_ms, verdict, sizeof(verdict));
  fprintf(f, "  verdict             %s\n", verdict);
}

static void print_chart(const run_result_t *r) {
  curve_t curves[8];
  size_t n = run_curves(r, curves, 8);
  if (n > 2) n = 2; /* RSS and live: the bands a person compares */
  fputc('\n', stdout);
  chart_terminal(stdout, curves, n, 64, 4);
}

int cmd_run(int argc, char **argv) {
  long interval = 50;
  const char *out = NULL;
  int c;
  static const struct option longs[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  optind = 1;
  while ((c = getopt_long(argc, argv, "+i:o:h", longs, NULL)) != -1) {
    switch (c) {
    case 'i':
      if (!parse_count(optarg, 60000, &interval)) {
        cli_error("run: -i takes milliseconds from 1 to 60000, not '%s'", optarg);
        return EXIT_USAGE;
      }
      break;
    case 'o': out = optarg; break;
    case 'h': fputs(run_usage, stdout); return EXIT_OK;
    default: fputs(run_usage, stderr); return EXIT_USAGE;
    }
  }
  if (optind >= argc) {
    cli_error("run: no program given (ebb run [-i MS] [-o FILE] -- PROG ARGS...)");
    return EXIT_USAGE;
  }
  if (out && !known_extension(out)) {
    cli_error("run: -o %s: unknown format (the name must end in .svg, .html, .json or .csv)", out);
    return EXIT_USAGE;
  }
  char lib[PATH_MAX];
  if (!find_library("libebb.so", lib, sizeof(lib))) {
    cli_error("run: libebb.so not found next to this command or in its ../lib");
    return EXIT_FAILURE_RUN;
  }
  run_opts_t o = {argv + optind, lib, false, true, (double)interval};
  run_result_t r;
  if (!run_program(&o, &r)) return EXIT_FAILURE_RUN;
  if (r.exec_errno != 0) {
    cli_error("run: %s: %s", argv[optind], r.exec_errno == ENOENT ? "program not found" : strerror(r.exec_errno));
    return r.exec_errno == ENOENT ? EXIT_NOT_FOUND : EXIT_NOT_EXEC;
  }
  summary_t m;
  summarize(&r, &m);
  fflush(stdout);
  if (isatty(STDOUT_FILENO)) print_chart(&r);
  print_summary(stdout, &r, &m, (double)interval);
  int status = exit_code_of(r.status);
  if (out && !write_output(out, &r, &m, (double)interval) && status == 0) status = EXIT_FAILURE_RUN;
  run_result_free(&r);
  return status;
}
