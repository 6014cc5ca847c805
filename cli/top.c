/* SPDX-License-Identifier: MIT */
/* top.c - `ebb top PID` (alias `ebb watch`): a running ebb program's
 * figures refreshed in place, and `ebb stats PID`: one snapshot. On a
 * terminal, top switches stdin to raw mode to see 'q' and restores it on
 * every way out (q, Ctrl-C, the program's exit). */
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <termios.h>

#include "runner.h"

static const char top_usage[] =
  "usage: ebb top [-i MS] [-n COUNT] PID   (also: ebb watch PID)\n"
  "Shows the statistics a running ebb program publishes (EBB_SNAPSHOT=1; ebb run\n"
  "sets it) beside its RSS, refreshed every MS milliseconds (default 500), in place\n"
  "on a terminal (q or Ctrl-C quits), one block per refresh otherwise. Stops after\n"
  "COUNT refreshes, or when the program exits.\n"
  "Exit status: 0; 1 no such process, no snapshot, stale snapshot (removed), or\n"
  "unreadable; 2 bad option.\n";

static const char stats_usage[] =
  "usage: ebb stats [--json] PID\n"
  "Prints one snapshot of a running ebb program's statistics: a table, or with\n"
  "--json one object with ebb_stats_json's field names.\n"
  "Exit status: 0; 1 no such process, no snapshot, stale snapshot (removed), or\n"
  "unreadable; 2 bad option.\n";

static volatile sig_atomic_t interrupted;
static void on_interrupt(int sig) {
  (void)sig;
  interrupted = 1;
}

/* all: every field (ebb stats); else the totals, then the layers (ebb top). */
static void print_block(FILE *f, pid_t pid, const ebb_snapshot_t *snap, bool all) {
  char b[32], comm[64];
  sample_t x = {0};
  comm_of(pid, comm, sizeof(comm));
  sample_kernel(pid, &x);
  fprintf(f, "ebb %s in %d (%s): publication %llu, every %llu ms; purge delay %llu ms\n", snap->version_text,
          (int)pid, comm, (unsigned long long)snap->publications, (unsigned long long)snap->interval_ms,
          (unsigned long long)snap->purge_delay_ms);
  fprintf(f, "  %-26s %12s\n", "RSS (kernel)", fmt_bytes(b, sizeof(b), x.rss));
  size_t shown = all ? stat_field_count : stat_fields_v2_count;
  for (size_t i = 0; i < shown; i++) {
    if (!stat_field_present(&snap->stats, i)) continue;
    uint64_t v = stat_field_value(&snap->stats, i);
    const char *name = stat_fields[i].name;
    size_t len = strlen(name);
    if (strstr(name, "_count") || strstr(name, "_calls")) snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
    else if (len > 3 && strcmp(name + len - 3, "_ms") == 0) snprintf(b, sizeof(b), "%llu ms", (unsigned long long)v);
    else fmt_bytes(b, sizeof(b), v);
    fprintf(f, "  %-26s %12s\n", name, b);
  }
  uint64_t huge;
  if (!all && stat_by_name(&snap->stats, "anon_huge_pages", &huge)) {
    /* ebb's own mappings beside the whole process's (smaps_rollup) */
    fprintf(f, "  %-26s %12s\n", "anon_huge_pages", fmt_bytes(b, sizeof(b), huge));
    fprintf(f, "  %-26s %12s\n", "AnonHugePages (kernel)", fmt_bytes(b, sizeof(b), x.anon_huge));
  }
  if (layers_present(&snap->stats)) {
    fputs("by layer:\n", f);
    print_layer_table(f, &snap->stats);
  }
}

int cmd_stats(int argc, char **argv) {
  bool json = false;
  static const struct option longs[] = {{"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'},
                                        {NULL, 0, NULL, 0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "+jh", longs, NULL)) != -1) {
    if (c == 'j') json = true;
    else if (c == 'h') return fputs(stats_usage, stdout), EXIT_OK;
    else return fputs(stats_usage, stderr), EXIT_USAGE;
  }
  if (optind + 1 != argc) {
    cli_error("stats: give one process id (ebb stats [--json] PID)");
    return EXIT_USAGE;
  }
  pid_t pid;
  ebb_snapshot_t snap;
  if (!parse_pid(argv[optind], &pid)) return EXIT_USAGE;
  if (!snapshot_for_pid(pid, &snap)) return EXIT_FAILURE_RUN;
  if (json) {
    stats_print_json(stdout, &snap.stats);
    fputc('\n', stdout);
  } else {
    print_block(stdout, pid, &snap, true);
  }
  return EXIT_OK;
}

/* Waits up to ms for a key: true if it was q. */
static bool quit_key(double ms) {
  struct pollfd p = {STDIN_FILENO, POLLIN, 0};
  if (poll(&p, 1, (int)ms) <= 0) return false;
  char key;
  return read(STDIN_FILENO, &key, 1) == 1 && (key == 'q' || key == 'Q');
}

static int watch(pid_t pid, long interval, long count, bool tty) {
  ebb_snapshot_t snap;
  for (long shown = 0; count == 0 || shown < count; shown++) {
    if (shown > 0 && snapshot_get(pid, &snap) != SNAP_OK) {
      char proc[64];
      snprintf(proc, sizeof(proc), "/proc/%d", (int)pid);
      if (access(proc, F_OK) != 0) return cli_note("process %d exited", (int)pid), EXIT_OK;
      return snapshot_for_pid(pid, &snap) ? EXIT_OK : EXIT_FAILURE_RUN;
    }
    if (shown == 0 && !snapshot_for_pid(pid, &snap)) return EXIT_FAILURE_RUN;
    if (tty) fputs("\033[H\033[J", stdout);
    print_block(stdout, pid, &snap, false);
    if (tty) fputs("(q quits)\n", stdout);
    else fputc('\n', stdout);
    fflush(stdout);
    if (count != 0 && shown + 1 == count) break;
    if (tty && isatty(STDIN_FILENO) ? quit_key((double)interval) : (sleep_ms((double)interval), false)) break;
    if (interrupted) break;
  }
  return EXIT_OK;
}

int cmd_top(int argc, char **argv) {
  long interval = 500, count = 0;
  static const struct option longs[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "+i:n:h", longs, NULL)) != -1) {
    if (c == 'h') return fputs(top_usage, stdout), EXIT_OK;
    if (c == 'i' && parse_count(optarg, 60000, &interval)) continue;
    if (c == 'n' && parse_count(optarg, 1000000000, &count)) continue;
    if (c == 'i' || c == 'n') cli_error("top: -%c takes a positive number, not '%s'", c, optarg);
    else fputs(top_usage, stderr);
    return EXIT_USAGE;
  }
  if (optind + 1 != argc) {
    cli_error("top: give one process id (ebb top [-i MS] [-n COUNT] PID)");
    return EXIT_USAGE;
  }
  pid_t pid;
  if (!parse_pid(argv[optind], &pid)) return EXIT_USAGE;
  bool tty = isatty(STDOUT_FILENO);
  struct termios saved;
  bool raw = tty && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
  if (raw) {
    struct termios t = saved;
    t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    tcsetattr(STDIN_FILENO, TCSANOW, &t);
  }
  struct sigaction sa = {.sa_handler = on_interrupt};
  sigaction(SIGINT, &sa, NULL);
  int status = watch(pid, interval, count, tty);
  if (raw) tcsetattr(STDIN_FILENO, TCSANOW, &saved);
  return status;
}
