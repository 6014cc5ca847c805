/* SPDX-License-Identifier: MIT */
/* runner.c - starting a program with an allocator preloaded and sampling
 * it every period until it exits. The child reports through a
 * close-on-exec pipe its own peak RSS before the exec (the kernel's peak
 * for the program includes it), then a failed exec's errno (nothing more
 * means the exec succeeded). While the
 * program runs, ebb ignores SIGINT and SIGQUIT as system(3) does: a Ctrl-C
 * reaches the program, and ebb reports how it ended. Single-threaded. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "runner.h"

/* In the child: the environment the options ask for. */
static void set_child_env(const run_opts_t *o) {
  if (o->preload != NULL) {
    const char *old = getenv("LD_PRELOAD");
    if (o->replace_preload || old == NULL || old[0] == 0) {
      setenv("LD_PRELOAD", o->preload, 1);
    } else {
      char joined[PATH_MAX * 2];
      snprintf(joined, sizeof(joined), "%s:%s", o->preload, old);
      setenv("LD_PRELOAD", joined, 1);
    }
  } else if (o->replace_preload) {
    unsetenv("LD_PRELOAD");
  }
  if (o->snapshot) {
    setenv("EBB_SNAPSHOT", "1", 1);
    char ms[32];
    snprintf(ms, sizeof(ms), "%.0f", o->interval_ms < 1 ? 1 : o->interval_ms);
    setenv("EBB_SNAPSHOT_MS", ms, 0);
  } else {
    unsetenv("EBB_SNAPSHOT");
  }
}

static void start_child(const run_opts_t *o, int report_fd) {
  signal(SIGINT, SIG_DFL);
  signal(SIGQUIT, SIG_DFL);
  set_child_env(o);
  uint64_t hwm = proc_status_bytes(0, "VmHWM"); /* what the kernel's peak for the program holds from before */
  if (write(report_fd, &hwm, sizeof(hwm)) != (ssize_t)sizeof(hwm)) _exit(EXIT_NOT_EXEC);
  execvp(o->argv[0], o->argv);
  int e = errno;
  if (write(report_fd, &e, sizeof(e)) != (ssize_t)sizeof(e)) _exit(EXIT_NOT_FOUND);
  _exit(e == ENOENT ? EXIT_NOT_FOUND : EXIT_NOT_EXEC);
}

/* Records a forked child the first time it is seen. */
static void note_children(run_result_t *r) {
  pid_t kids[RUN_MAX_CHILDREN];
  size_t n = children_of(r->pid, kids, RUN_MAX_CHILDREN);
  for (size_t i = 0; i < n; i++) {
    bool known = false;
    for (size_t j = 0; j < r->children_n && !known; j++) known = r->children[j] == kids[i];
    if (known || r->children_n == RUN_MAX_CHILDREN) continue;
    r->children[r->children_n++] = kids[i];
    char path[64];
    snapshot_path(kids[i], path, sizeof(path));
    if (access(path, F_OK) == 0) r->children_published++;
  }
}

/* Records the program the pid runs when it changes (an exec). */
static void note_image(run_result_t *r) {
  char path[64], exe[256];
  snprintf(path, sizeof(path), "/proc/%d/exe", (int)r->pid);
  ssize_t n = readlink(path, exe, sizeof(exe) - 1);
  if (n <= 0) return;
  exe[n] = 0;
  if (r->images_n > 0 && strcmp(r->images[r->images_n - 1], exe) == 0) return;
  if (r->images_n == 4) return;
  snprintf(r->images[r->images_n++], sizeof(r->images[0]), "%s", exe);
}

static void take_sample(run_result_t *r, double t0) {
  sample_t x = {0};
  x.t_ms = now_ms() - t0;
  if (!sample_kernel(r->pid, &x)) return;
  static char cgroup[PATH_MAX];
  if (r->series.n == 0) cgroup_file_of(r->pid, cgroup, sizeof(cgroup));
  if (cgroup[0]) x.cgroup = read_u64_file(cgroup);
  ebb_snapshot_t snap;
  if (snapshot_get(r->pid, &snap) == SNAP_OK) sample_take_snapshot(&x, &snap);
  series_push(&r->series, &x);
}

/* Reads n bytes, retrying on EINTR; false at end of file first. */
static bool read_all(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    got += (size_t)r;
  }
  return true;
}

/* Waits for the child's exec: its errno, or 0 once exec succeeded; the
 * child's peak RSS before it in *pre_exec_hwm. */
static int exec_result(int fd, uint64_t *pre_exec_hwm) {
  int e = 0;
  *pre_exec_hwm = UINT64_MAX; /* unknown: no figure at exit is the program's own */
  if (read_all(fd, pre_exec_hwm, sizeof(*pre_exec_hwm)) && !read_all(fd, &e, sizeof(e))) e = 0;
  close(fd);
  return e;
}

static void sample_until_exit(run_result_t *r, double t0, double interval_ms, uint64_t pre_exec_hwm) {
  for (double next = t0;;) {
    note_image(r);
    take_sample(r, t0);
    note_children(r);
    struct rusage ru;
    pid_t done = wait4(r->pid, &r->status, WNOHANG, &ru);
    if (done == r->pid) {
      uint64_t peak = (uint64_t)ru.ru_maxrss * 1024; /* KiB on Linux */
      if (peak > pre_exec_hwm) r->exit_hwm = peak;
      break;
    }
    next += interval_ms;
    double wait = next - now_ms();
    if (wait < 0) next = now_ms(); /* a slow reading: keep the period from now on */
    sleep_ms(wait);
  }
  r->wall_ms = now_ms() - t0;
}

/* A process killed by a signal cannot remove its snapshot: once it is
 * gone, its object is stale and removed here. */
static void remove_if_stale(run_result_t *r, pid_t pid) {
  char path[64];
  ebb_snapshot_t snap;
  snapshot_path(pid, path, sizeof(path));
  if (snapshot_get(pid, &snap) == SNAP_STALE && unlink(path) == 0) r->stale_removed++;
}

static void remove_stale_snapshots(run_result_t *r) {
  remove_if_stale(r, r->pid);
  for (size_t i = 0; i < r->children_n; i++) remove_if_stale(r, r->children[i]);
}

bool run_program(const run_opts_t *o, run_result_t *r) {
  *r = (run_result_t){0};
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    cli_error("pipe: %s", strerror(errno));
    return false;
  }
  struct sigaction ignore = {.sa_handler = SIG_IGN}, old_int, old_quit;
  sigaction(SIGINT, &ignore, &old_int);
  sigaction(SIGQUIT, &ignore, &old_quit);
  double t0 = now_ms();
  r->start_ms = t0;
  r->pid = fork();
  if (r->pid < 0) {
    cli_error("fork: %s", strerror(errno));
    return false;
  }
  if (r->pid == 0) start_child(o, fds[1]);
  close(fds[1]);
  uint64_t pre_exec_hwm;
  r->exec_errno = exec_result(fds[0], &pre_exec_hwm);
  if (r->exec_errno != 0) {
    waitpid(r->pid, &r->status, 0);
  } else {
    sample_until_exit(r, t0, o->interval_ms, pre_exec_hwm);
    remove_stale_snapshots(r);
  }
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGQUIT, &old_quit, NULL);
  return true;
}

void run_result_free(run_result_t *r) {
  series_free(&r->series);
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return EXIT_FAILURE_RUN;
}

void describe_exit(int status, char *buf, size_t cap) {
  if (WIFEXITED(status)) {
    snprintf(buf, cap, "exited with status %d", WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char *abbrev = sigabbrev_np(sig);
    snprintf(buf, cap, "killed by signal %d (SIG%s: %s)%s", sig, abbrev ? abbrev : "?", strsignal(sig),
             WCOREDUMP(status) ? ", core dumped" : "");
  } else {
    snprintf(buf, cap, "ended with wait status 0x%x", (unsigned)status);
  }
}
