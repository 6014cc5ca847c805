/* SPDX-License-Identifier: MIT */
/* main.c - the ebb command: one verb per file, dispatched here. */
#include "cli.h"

static const char usage[] =
  "usage: ebb VERB [OPTIONS] [ARGS]\n"
  "See what a program's memory does under ebb, the malloc that gives memory back.\n"
  "  ebb run [-i MS] [-o FILE] -- PROG ARGS...   run PROG with ebb, summary and chart\n"
  "  ebb compare [-r N] [--with LIST] [-o FILE] -- PROG ARGS...\n"
  "                                              PROG under each allocator, side by side\n"
  "  ebb top [-i MS] [-n COUNT] PID              a running ebb program's figures, live\n"
  "  ebb watch PID                               the same as ebb top\n"
  "  ebb stats [--json] PID                      one snapshot of a running ebb program\n"
  "  ebb explain SIZE...                         how ebb and glibc serve and return a size\n"
  "  ebb VERB --help                             a verb's options\n"
  "Exit status: 0 success; 1 failure (no snapshot, stale snapshot, unreadable\n"
  "process, library not found); 2 bad option or argument; ebb run: the\n"
  "program's status, 128+N for signal N, 127 not found, 126 not executable.\n";

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs(usage, stderr);
    return EXIT_USAGE;
  }
  const char *verb = argv[1];
  static const struct {
    const char *name;
    int (*fn)(int, char **);
  } verbs[] = {{"run", cmd_run}, {"compare", cmd_compare}, {"top", cmd_top}, {"watch", cmd_top},
               {"stats", cmd_stats}, {"explain", cmd_explain}};
  if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0 || strcmp(verb, "help") == 0) {
    fputs(usage, stdout);
    return EXIT_OK;
  }
  for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
    if (strcmp(verb, verbs[i].name) == 0) return verbs[i].fn(argc - 1, argv + 1);
  cli_error("unknown verb '%s' (run, compare, top, watch, stats, explain; ebb --help)", verb);
  return EXIT_USAGE;
}
