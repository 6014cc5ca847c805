/* SPDX-License-Identifier: MIT */
/* test/snapshot.c - the live snapshot (EBB_SNAPSHOT=1, include/ebb_snapshot.h)
 * read from another process, as the ebb command reads it.
 *
 * The test runs itself again as the publisher, with EBB_SNAPSHOT set in
 * the child's environment only, and checks from outside:
 *   - the object appears under the child's pid, with its start time, and
 *     is refreshed every EBB_SNAPSHOT_MS;
 *   - its figures are the child's: 48 MiB allocated show in `live`, and go
 *     when freed;
 *   - no copy is torn: with a 1 ms interval and the child allocating and
 *     freeing all the time, every copy read keeps the identities of ebb.h;
 *   - a fork child publishes under its own pid, and leaves the parent's;
 *   - at exit the name goes; after SIGKILL it stays, and reads as stale;
 *   - a pid reused by another process (another start time) reads as stale;
 *   - without EBB_SNAPSHOT nothing is published;
 *   - a main thread that calls pthread_exit still ends the process (the
 *     thread kept awake to publish must not keep it alive). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "ebb.h"
#include "ebb_snapshot.h"

#define MiB (1024ull * 1024)

static const char *self_path;

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void shm_path(char *buf, size_t cap, pid_t pid) { snprintf(buf, cap, "/dev/shm/ebb-%d", (int)pid); }

static bool shm_exists(pid_t pid) {
  char path[64];
  struct stat st;
  shm_path(path, sizeof(path), pid);
  return stat(path, &st) == 0;
}

/* Maps the pid's object read-only, waiting up to `ms` for it. NULL if none. */
static const ebb_snapshot_t *map_snapshot(pid_t pid, unsigned ms) {
  char path[64];
  shm_path(path, sizeof(path), pid);
  for (uint64_t until = now_ms() + ms;;) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      void *p = mmap(NULL, EBB_SNAPSHOT_BYTES, PROT_READ, MAP_SHARED, fd, 0);
      close(fd);
      return p == MAP_FAILED ? NULL : p;
    }
    if (now_ms() >= until) return NULL;
    sleep_ms(5);
  }
}

/* True if a process that is running now, `pid`, created /dev/shm/ebb-<pid>.
 * An object left by an earlier process under the same pid (killed, or
 * ended by _exit: pids are reused) names that process's start time. */
static bool published_by(pid_t pid) {
  const volatile ebb_snapshot_t *m = map_snapshot(pid, 0);
  if (m == NULL) return shm_exists(pid); /* there, and not readable: count it */
  bool mine = m->pid == (uint64_t)pid && m->start_ticks == ebb_snapshot_start_ticks((uint64_t)pid);
  munmap((void *)m, EBB_SNAPSHOT_BYTES);
  return mine;
}

/* Reads until a publication that satisfies `ok` arrives, up to `ms`. */
static bool read_until(const ebb_snapshot_t *m, ebb_snapshot_t *out, unsigned ms, bool (*ok)(const ebb_snapshot_t *)) {
  for (uint64_t until = now_ms() + ms;;) {
    if (ebb_snapshot_read(m, out) && ok(out)) return true;
    if (now_ms() >= until) return false;
    sleep_ms(5);
  }
}

/* The child's side: tells the parent where it is through the pipe, then
 * does what its mode says. */
static int child_main(const char *mode, int fd) {
  char ok = 'r';
  if (strcmp(mode, "hold") == 0) { /* 48 MiB live until told, then freed, then waits to be killed */
    char *blocks[48];
    for (int i = 0; i < 48; i++) {
      blocks[i] = malloc(MiB);
      memset(blocks[i], 1, MiB);
    }
    if (write(fd, &ok, 1) != 1) return 2;
    char cmd;
    if (read(0, &cmd, 1) != 1) return 2;
    for (int i = 0; i < 48; i++) free(blocks[i]);
    if (write(fd, &ok, 1) != 1) return 2;
    for (;;) pause();
  }
  if (strcmp(mode, "quiet") == 0) { /* free memory in the pages it allocates from, then sleeps */
    for (size_t size = 16; size <= 48 * 1024; size += size / 8 + 16) {
      enum { N = 4096 };
      static void *blocks[N];
      size_t n = (size <= 8192 ? 64 * 1024 : 512 * 1024) / size; /* about one page: the one allocated from */
      if (n > N) n = N;
      for (size_t i = 0; i < n; i++) {
        blocks[i] = malloc(size);
        memset(blocks[i], 1, size);
      }
      for (size_t i = 0; i + 1 < n; i++) free(blocks[i]); /* the last stays: its page is the one allocated from */
    }
    if (write(fd, &ok, 1) != 1) return 2;
    for (;;) pause();
  }
  if (strcmp(mode, "churn") == 0) { /* allocates and frees until stdin closes */
    if (write(fd, &ok, 1) != 1) return 2;
    int flags = fcntl(0, F_GETFL);
    fcntl(0, F_SETFL, flags | O_NONBLOCK);
    void *keep[512] = {0};
    for (unsigned i = 0;; i++) {
      unsigned k = (i * 2654435761u) % 512;
      free(keep[k]);
      keep[k] = malloc(16 + (i * 7919u) % (256 * 1024));
      if ((i & 1023) == 0) {
        char c;
        if (read(0, &c, 1) == 0) break;
      }
    }
    for (int k = 0; k < 512; k++) free(keep[k]);
    return 0;
  }
  if (strcmp(mode, "fork") == 0) { /* a fork child that allocates, reports its pid, and waits */
    pid_t pid = fork();
    if (pid == 0) {
      void *p = malloc(8 * MiB);
      memset(p, 1, 8 * MiB);
      pid_t me = getpid();
      if (write(fd, &me, sizeof(me)) != sizeof(me)) _exit(2);
      char cmd;
      if (read(0, &cmd, 1) < 0) _exit(2); /* end of file: the test is done with us */
      free(p);
      exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 3;
  }
  if (strcmp(mode, "pthread_exit") == 0) { /* the main thread leaves, without having allocated; nothing else runs */
    if (write(fd, &ok, 1) != 1) return 2;
    pthread_exit(NULL);
  }
  return 2;
}

typedef struct child_s {
  pid_t pid;
  int to_child;   /* its stdin */
  int from_child; /* its report pipe */
} child_t;

/* Starts `self --child MODE` with the given environment addition. */
static child_t start_child(const char *mode, const char *env1, const char *env2) {
  int in[2], rep[2];
  REQUIRE(pipe(in) == 0 && pipe(rep) == 0);
  child_t c = {fork(), in[1], rep[0]};
  REQUIRE(c.pid >= 0);
  if (c.pid == 0) {
    dup2(in[0], 0);
    close(in[1]);
    close(rep[0]);
    char fdtext[16];
    snprintf(fdtext, sizeof(fdtext), "%d", rep[1]);
    unsetenv("EBB_SNAPSHOT");
    unsetenv("EBB_SNAPSHOT_MS");
    if (env1 != NULL) putenv((char *)env1);
    if (env2 != NULL) putenv((char *)env2);
    execl(self_path, self_path, "--child", mode, fdtext, (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(rep[1]);
  return c;
}

static bool wait_report(const child_t *c) {
  char b;
  return read(c->from_child, &b, 1) == 1;
}

static int finish(child_t *c, int sig) {
  if (sig != 0) kill(c->pid, sig);
  close(c->to_child);
  int status = 0;
  waitpid(c->pid, &status, 0);
  close(c->from_child);
  return status;
}

static bool has_48_mib(const ebb_snapshot_t *s) { return s->stats.live >= 48 * MiB; }
static bool below_8_mib(const ebb_snapshot_t *s) { return s->stats.live < 8 * MiB; }
static bool any(const ebb_snapshot_t *s) { return s->publications > 0; }

static void test_publishes_the_childs_figures(void) {
  check_context("publish");
  child_t c = start_child("hold", "EBB_SNAPSHOT=1", "EBB_SNAPSHOT_MS=20");
  REQUIRE(wait_report(&c));
  const ebb_snapshot_t *m = map_snapshot(c.pid, 2000);
  if (!CHECK_MSG(m != NULL, "no /dev/shm/ebb-%d", (int)c.pid)) {
    finish(&c, SIGKILL);
    return;
  }
  ebb_snapshot_t s;
  CHECK_MSG(read_until(m, &s, 2000, has_48_mib), "live %llu after 48 MiB allocated", (unsigned long long)s.stats.live);
  CHECK_EQ(s.pid, (uint64_t)c.pid);
  CHECK(published_by(c.pid)); /* what the test without EBB_SNAPSHOT looks for */
  CHECK_EQ(s.version, (uint64_t)EBB_SNAPSHOT_VERSION);
  CHECK_EQ(s.header_size, (uint64_t)offsetof(ebb_snapshot_t, stats));
  CHECK_EQ(s.interval_ms, 20);
  CHECK_EQ(s.start_ticks, ebb_snapshot_start_ticks((uint64_t)c.pid));
  CHECK(!ebb_snapshot_is_stale(&s));
  CHECK_EQ(s.stats.version, (uint64_t)EBB_STATS_VERSION);
  CHECK_MSG(strcmp(s.version_text, ebb_version()) == 0, "version %s", s.version_text);
  CHECK_MSG(s.stats.resident >= s.stats.live, "resident %llu < live %llu", (unsigned long long)s.stats.resident,
            (unsigned long long)s.stats.live);
  /* Refreshed every 20 ms: in 500 ms, well over 5 publications (a loaded
   * machine delays the thread, never by seconds). */
  uint64_t before = s.publications;
  sleep_ms(500);
  CHECK(ebb_snapshot_read(m, &s));
  CHECK_MSG(s.publications >= before + 5, "%llu publications in 500 ms at 20 ms",
            (unsigned long long)(s.publications - before));
  /* Freed: the figures follow. */
  REQUIRE(write(c.to_child, "f", 1) == 1);
  REQUIRE(wait_report(&c));
  CHECK_MSG(read_until(m, &s, 2000, below_8_mib), "live %llu after the free", (unsigned long long)s.stats.live);
  /* Killed: the object stays, and reads as stale once the pid is gone. */
  int status = finish(&c, SIGKILL);
  CHECK(WIFSIGNALED(status));
  CHECK_MSG(shm_exists(c.pid), "a killed program's object is gone: nothing left to find stale");
  CHECK(ebb_snapshot_read(m, &s));
  CHECK(ebb_snapshot_is_stale(&s));
  munmap((void *)m, EBB_SNAPSHOT_BYTES);
  char path[64];
  shm_path(path, sizeof(path), c.pid);
  unlink(path);
}

/* Published or not, a thread that sleeps with free memory in the pages
 * it allocates from gets it purged (its heap is reached while it is
 * blocked): the published figures show it. */
static bool little_free(const ebb_snapshot_t *s) { return s->stats.free_in_pages < 1 * MiB; }

static void test_quiet_thread_reached(void) {
  check_context("quiet");
  child_t c = start_child("quiet", "EBB_SNAPSHOT=1", "EBB_SNAPSHOT_MS=20");
  REQUIRE(wait_report(&c));
  const ebb_snapshot_t *m = map_snapshot(c.pid, 2000);
  if (CHECK(m != NULL)) {
    ebb_snapshot_t s;
    CHECK_MSG(read_until(m, &s, 3000, little_free), "%llu KiB still free in the sleeping thread's pages after 3 s",
              (unsigned long long)s.stats.free_in_pages / 1024);
    munmap((void *)m, EBB_SNAPSHOT_BYTES);
  }
  finish(&c, SIGKILL);
  char path[64];
  shm_path(path, sizeof(path), c.pid);
  unlink(path);
}

static void test_exit_removes(void) {
  check_context("exit");
  child_t c = start_child("churn", "EBB_SNAPSHOT=1", NULL);
  REQUIRE(wait_report(&c));
  const ebb_snapshot_t *m = map_snapshot(c.pid, 2000);
  CHECK(m != NULL);
  int status = finish(&c, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK_MSG(!shm_exists(c.pid), "/dev/shm/ebb-%d left after a normal exit", (int)c.pid);
  /* A reader that kept it mapped still has the last figures. */
  ebb_snapshot_t s;
  if (m != NULL) {
    CHECK(ebb_snapshot_read(m, &s) && s.publications >= 1);
    munmap((void *)m, EBB_SNAPSHOT_BYTES);
  }
}

/* Every copy read while the publisher works flat out is whole. */
static void test_no_torn_copy(void) {
  check_context("torn");
  child_t c = start_child("churn", "EBB_SNAPSHOT=1", "EBB_SNAPSHOT_MS=1");
  REQUIRE(wait_report(&c));
  const ebb_snapshot_t *m = map_snapshot(c.pid, 2000);
  if (!CHECK(m != NULL)) {
    finish(&c, SIGKILL);
    return;
  }
  ebb_snapshot_t s;
  CHECK(read_until(m, &s, 2000, any));
  unsigned reads = 0, broken = 0;
  uint64_t last = 0, seen = 0;
  for (uint64_t until = now_ms() + 1500; now_ms() < until;) {
    if (!ebb_snapshot_read(m, &s)) continue;
    reads++;
    const ebb_stats_t *t = &s.stats;
    uint64_t parts = t->live + t->free_in_pages + t->segment_cache + t->large_cache + t->metadata;
    if (parts != t->resident || t->resident + t->purged_or_untouched != t->mapped || s.pid != (uint64_t)c.pid) broken++;
    if (s.publications != last) seen++;
    last = s.publications;
  }
  CHECK_MSG(broken == 0, "%u of %u copies break the identities", broken, reads);
  CHECK_MSG(seen >= 20, "only %llu distinct publications seen in 1.5 s at 1 ms", (unsigned long long)seen);
  finish(&c, 0);
  munmap((void *)m, EBB_SNAPSHOT_BYTES);
}

static void test_fork_child_publishes_its_own(void) {
  check_context("fork");
  child_t c = start_child("fork", "EBB_SNAPSHOT=1", "EBB_SNAPSHOT_MS=20");
  pid_t grandchild = 0;
  REQUIRE(read(c.from_child, &grandchild, sizeof(grandchild)) == sizeof(grandchild));
  CHECK_MSG(shm_exists(c.pid), "the parent's object is gone after its fork");
  /* The child's purge thread starts at its first offer of memory, or
   * publishes once asked by a slow path: wait for it. */
  const ebb_snapshot_t *m = map_snapshot(grandchild, 2000);
  if (CHECK_MSG(m != NULL, "no /dev/shm/ebb-%d for the fork child", (int)grandchild)) {
    ebb_snapshot_t s;
    CHECK_MSG(read_until(m, &s, 3000, any), "the fork child never published");
    CHECK_EQ(s.pid, (uint64_t)grandchild);
    munmap((void *)m, EBB_SNAPSHOT_BYTES);
  }
  int status = finish(&c, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(!shm_exists(grandchild));
  CHECK(!shm_exists(c.pid));
}

static void test_off_by_default(void) {
  check_context("off");
  child_t c = start_child("hold", NULL, NULL);
  REQUIRE(wait_report(&c));
  sleep_ms(100);
  CHECK_MSG(!published_by(c.pid), "published without EBB_SNAPSHOT");
  finish(&c, SIGKILL);
}

static void test_reused_pid_is_stale(void) {
  check_context("reuse");
  ebb_snapshot_t s = {0};
  s.magic = EBB_SNAPSHOT_MAGIC;
  s.pid = (uint64_t)getpid();
  s.start_ticks = ebb_snapshot_start_ticks(s.pid);
  CHECK(s.start_ticks != 0 && !ebb_snapshot_is_stale(&s));
  s.start_ticks++; /* the same pid, another process */
  CHECK(ebb_snapshot_is_stale(&s));
}

static void test_pthread_exit_ends(void) {
  check_context("pthread_exit");
  child_t c = start_child("pthread_exit", "EBB_SNAPSHOT=1", "EBB_SNAPSHOT_MS=10");
  REQUIRE(wait_report(&c));
  int status = 0;
  pid_t done = 0;
  for (uint64_t until = now_ms() + 5000; done == 0 && now_ms() < until; sleep_ms(10)) done = waitpid(c.pid, &status, WNOHANG);
  if (!CHECK_MSG(done == c.pid, "the process outlived its last thread by 5 s")) {
    kill(c.pid, SIGKILL);
    waitpid(c.pid, &status, 0);
  } else {
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(!shm_exists(c.pid));
  }
  close(c.to_child);
  close(c.from_child);
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--child") == 0) return child_main(argv[2], atoi(argv[3]));
  self_path = argv[0];
  signal(SIGPIPE, SIG_IGN);
  struct stat st;
  if (stat("/dev/shm", &st) != 0) {
    printf("snapshot: no /dev/shm here: skipped\n");
    return CHECK_SKIP;
  }
  test_publishes_the_childs_figures();
  test_quiet_thread_reached();
  test_exit_removes();
  test_no_torn_copy();
  test_fork_child_publishes_its_own();
  test_off_by_default();
  test_reused_pid_is_stale();
  test_pthread_exit_ends();
  return check_summary("test_snapshot");
}
