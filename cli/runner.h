/* SPDX-License-Identifier: MIT */
/* runner.h - starting a program and sampling it until it exits (runner.c),
 * what its series says (summary.c), and the reports drawn from it
 * (report.c). Shared by ebb run and ebb compare. */
#ifndef EBB_CLI_RUNNER_H
#define EBB_CLI_RUNNER_H

#include "cli.h"

#define RUN_MAX_CHILDREN 64

typedef struct {
  char **argv;          /* the program and its arguments */
  const char *preload;  /* library for LD_PRELOAD, or NULL for none */
  bool replace_preload; /* true: LD_PRELOAD is exactly preload (compare); false: prepended (run) */
  bool snapshot;        /* set EBB_SNAPSHOT=1 (and EBB_SNAPSHOT_MS to the interval, unless set) */
  double interval_ms;   /* sampling period */
} run_opts_t;

typedef struct {
  series_t series;          /* one sample per period while the program ran */
  pid_t pid;                /* the program's (the same across exec) */
  int status;               /* waitpid's status */
  double wall_ms;           /* fork to exit */
  double start_ms;          /* CLOCK_MONOTONIC at fork: samples' t_ms count from it */
  int exec_errno;           /* nonzero: the program could not be started */
  pid_t children[RUN_MAX_CHILDREN]; /* forked children seen, not followed */
  size_t children_n;
  size_t children_published; /* of which published a snapshot of their own */
  size_t stale_removed;     /* snapshots the program or its children left behind (killed), removed */
  char images[4][256];      /* the programs the pid ran, in order (exec) */
  size_t images_n;
  uint64_t exit_hwm; /* the kernel's peak RSS of the program at exit (wait4's ru_maxrss) when it
                        exceeds the child's own peak before the exec, which the count includes;
                        else 0 (unknown) */
} run_result_t;

/* Runs the program and samples it; false only if fork failed (message
 * printed). An exec failure is reported in exec_errno. */
bool run_program(const run_opts_t *o, run_result_t *r);
void run_result_free(run_result_t *r);
/* The exit status ebb run gives for a wait status: the program's, or 128+N for signal N. */
int exit_code_of(int status);
/* One line about the exit: "exited with status 3", "killed by signal 9 (SIGKILL)". */
void describe_exit(int status, char *buf, size_t cap);

/* ---- summary.c ---- */
typedef struct {
  uint64_t peak_rss, final_rss, peak_live; /* of the samples; final_rss 0: no sample */
  uint64_t hwm_rss;              /* the kernel's high-water mark (VmHWM, wait4); 0: unknown */
  double t_peak_rss, t_peak_live;
  bool has_snapshot;             /* at least one sample had ebb's statistics */
  uint64_t free_resident_peak;   /* peak of resident - live - metadata (free pages and caches) */
  double free_resident_longest_ms; /* longest stretch in which it stayed above the tolerance */
  uint64_t free_resident_held;   /* at the end of that stretch */
  uint64_t dirty_peak;
  uint64_t purged_total, unmapped_total, purged_lazy_total;
  uint64_t mmap_calls, munmap_calls, madvise_calls;
  uint64_t lazyfree_peak, anon_huge_peak, cgroup_peak;
  size_t drops;                  /* falls of live by more than the tolerance */
  size_t drops_unsettled;        /* after which RSS never came within the tolerance */
  double worst_lag_ms;           /* the slowest RSS took to follow a drop */
  double worst_drop_t_ms;        /* when that drop was seen */
  uint64_t worst_unsettled_gap;  /* RSS above target at the end, for unsettled drops */
  uint64_t purge_delay_ms;
} summary_t;

/* The tolerance "within 1 MiB or 5%" of a target. */
uint64_t follow_tolerance(uint64_t target);
void summarize(const run_result_t *r, summary_t *out);
/* The one-line verdict. */
void verdict_line(const summary_t *m, double interval_ms, char *buf, size_t cap);
/* The summary as lines of "label: value" (text), for the terminal and HTML. */
typedef struct {
  char label[48], value[600];
} summary_row_t;
size_t summary_rows(const summary_t *m, const run_result_t *r, summary_row_t *rows, size_t cap);

/* ---- report.c ---- */
typedef struct {
  const char *name;       /* legend text */
  const series_t *series; /* samples */
  size_t field;           /* which figure: see series_value() */
} curve_t;
enum { CURVE_RSS, CURVE_LIVE, CURVE_LIVE_META, CURVE_FREE, CURVE_DIRTY, CURVE_LAZYFREE, CURVE_ANON_HUGE, CURVE_CGROUP };
uint64_t series_value(const sample_t *x, size_t field);
/* Terminal chart: rows of block characters, one band per curve. */
void chart_terminal(FILE *f, const curve_t *curves, size_t n, int width, int rows);
/* Overlaid chart: one character per curve in one grid (ebb compare). */
void chart_terminal_overlay(FILE *f, const curve_t *curves, size_t n, int width, int rows);
void chart_svg(FILE *f, const curve_t *curves, size_t n, const char *title);
void write_json(FILE *f, const run_result_t *r, const summary_t *m, double interval_ms);
void write_csv(FILE *f, const series_t *s);
void write_html_run(FILE *f, const run_result_t *r, const summary_t *m, const curve_t *c, size_t n, double interval_ms);
void html_escape(FILE *f, const char *text);
void html_head(FILE *f, const char *title);
/* The curves ebb run draws (the ones with data). */
size_t run_curves(const run_result_t *r, curve_t *out, size_t cap);
/* Opens path for writing, or prints the error line. */
FILE *open_output(const char *path);
bool close_output(FILE *f, const char *path);

#endif /* EBB_CLI_RUNNER_H */
