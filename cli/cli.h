/* SPDX-License-Identifier: MIT */
/* cli.h - the ebb command's shared pieces: what one sample of a process
 * holds, the series of them, messages and number formats.
 *
 * The command reads no ebb internals: the kernel's view comes from /proc
 * and the cgroup files, ebb's own from the snapshot a program publishes
 * (ebb_snapshot.h). Single-threaded: nothing here is shared between
 * threads. */
#ifndef EBB_CLI_H
#define EBB_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "ebb_snapshot.h"

/* Exit statuses of the command itself (ebb run exits with its program's). */
#define EXIT_OK 0
#define EXIT_FAILURE_RUN 1 /* no snapshot, stale snapshot, unreadable process, a file not written */
#define EXIT_USAGE 2       /* bad option or argument */
#define EXIT_NOT_EXEC 126  /* the program exists but cannot be executed */
#define EXIT_NOT_FOUND 127 /* the program does not exist */

/* One reading of a process: the kernel's figures, and ebb's snapshot if
 * the process published one at that time. */
typedef struct {
  double t_ms;        /* since the program started */
  uint64_t rss;       /* smaps_rollup Rss, bytes */
  uint64_t hwm;       /* VmHWM (/proc/PID/status): the highest RSS so far, between samples too */
  uint64_t anon;      /* Anonymous */
  uint64_t lazyfree;  /* LazyFree: MADV_FREE pages the kernel has not taken yet */
  uint64_t anon_huge; /* AnonHugePages */
  uint64_t cgroup;    /* memory.current (v2) or memory.usage_in_bytes (v1); 0: no cgroup file */
  uint64_t cpu_ns;    /* CPU time of all its threads (/proc/PID/task/TID/schedstat), ns */
  bool has_snapshot;  /* st below holds the program's statistics */
  uint64_t purge_delay_ms; /* from the snapshot header */
  ebb_stats_t st;     /* the published statistics; fields past st.size are zero */
} sample_t;

typedef struct {
  sample_t *v;   /* in time order */
  size_t n, cap; /* n <= cap */
} series_t;

void series_push(series_t *s, const sample_t *x);
void series_free(series_t *s);

/* ---- messages and formats (util.c) ---- */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *fmt_bytes(char *buf, size_t cap, uint64_t bytes); /* "12.3 MiB" */
double now_ms(void);                                          /* CLOCK_MONOTONIC */
void sleep_ms(double ms);
/* Parses "80k", "800000", "1m", "2g" (k = 1024): false if not a size. */
bool parse_size(const char *text, uint64_t *out);
/* Parses a positive decimal count up to max: false otherwise. */
bool parse_count(const char *text, long max, long *out);
/* Parses a process id: false (and a message) if it is not one. */
bool parse_pid(const char *text, pid_t *out);
/* The directory holding the running ebb command (for libebb next to it). */
bool self_dir(char *buf, size_t cap);
/* libebb.so or libebb-prefix.so next to the command (build/) or in
 * ../lib or ../lib/<multiarch> of an installed bin/: false if none. */
bool find_library(const char *name, char *buf, size_t cap);
/* The extension of path, lower case, without the dot ("" if none). */
const char *file_extension(const char *path, char *buf, size_t cap);

/* ---- reading a process (sample.c) ---- */
/* Fills the kernel figures of pid into *x: false if /proc/pid is gone or unreadable. */
bool sample_kernel(pid_t pid, sample_t *x);
/* The cgroup memory file of pid ("" if none), found once per process. */
void cgroup_file_of(pid_t pid, char *buf, size_t cap);
uint64_t read_u64_file(const char *path);
/* A figure of /proc/PID/status (pid 0: this process), "VmHWM" say, in bytes; 0 if unreadable. */
uint64_t proc_status_bytes(pid_t pid, const char *key);
/* Snapshot states of a pid. */
typedef enum { SNAP_OK, SNAP_NONE, SNAP_STALE, SNAP_UNREADABLE, SNAP_NOT_READY } snap_state_t;
/* Opens /dev/shm/ebb-<pid>, copies it consistently into *out. */
snap_state_t snapshot_get(pid_t pid, ebb_snapshot_t *out);
/* The path of pid's object. */
void snapshot_path(pid_t pid, char *buf, size_t cap);
/* Copies the published stats into x (fields past stats.size stay zero). */
void sample_take_snapshot(sample_t *x, const ebb_snapshot_t *snap);
/* The pids of pid's children (from /proc/pid/task/<tid>/children); returns how many, up to cap. */
size_t children_of(pid_t pid, pid_t *out, size_t cap);
/* Reads the command name of pid into buf ("?" if unknown). */
void comm_of(pid_t pid, char *buf, size_t cap);
/* Opens the snapshot of pid for ebb top / ebb stats, printing the error
 * line for every state but SNAP_OK; removes a stale object. */
bool snapshot_for_pid(pid_t pid, ebb_snapshot_t *out);

/* ---- the statistics' fields, from ebb.h's list (stats_fields.c) ---- */
typedef struct {
  const char *name, *help;
  size_t offset; /* in ebb_stats_t */
} stat_field_t;
extern const stat_field_t stat_fields[];
extern const size_t stat_field_count;
/* Index of the first field past version 2 (the statistics by layer and later). */
extern const size_t stat_fields_v2_count;
bool stat_field_present(const ebb_stats_t *st, size_t i);
uint64_t stat_field_value(const ebb_stats_t *st, size_t i);
/* The field called name, if the publisher filled it. */
bool stat_by_name(const ebb_stats_t *st, const char *name, uint64_t *out);
/* The statistics by layer (ebb.h version 3): rows small, medium, wide,
 * large, segment_cache, large_cache; columns live, free (a cache: its
 * resident bytes), dirty, purged_total, count (pages, blocks or mappings). */
#define LAYER_ROWS 6
#define LAYER_COLUMNS 5
extern const char *const layer_names[LAYER_ROWS];
extern const char *const layer_columns[LAYER_COLUMNS];
bool layer_cell(const ebb_stats_t *st, size_t row, size_t col, uint64_t *out);
bool layers_present(const ebb_stats_t *st);
void print_layer_table(FILE *f, const ebb_stats_t *st);
/* Prints st as one JSON object with ebb_stats_json's names. */
void stats_print_json(FILE *f, const ebb_stats_t *st);

/* ---- verbs ---- */
int cmd_run(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_explain(int argc, char **argv);

#endif /* EBB_CLI_H */
