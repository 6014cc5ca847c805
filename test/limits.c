/* SPDX-License-Identifier: MIT */
/* test/limits.c - ebb at the OS's limits: every request gets a block or
 * NULL with errno ENOMEM, never an abort or a later death in the OOM
 * killer, and memory ebb keeps does not stand between the program and an
 * address-space limit.
 *
 * Each case runs in its own process (this program exec'd again with
 * `--case X`), with EBB_ variables of the caller's environment dropped and
 * the case's own added; one CTest test per case, so that a case whose
 * limit this machine does not have is reported as skipped (exit 77).
 *
 *   a  absurd requests (1 TiB .. 64 TiB by malloc, calloc, the aligned
 *      functions, realloc growing to 1 TiB) fail at once; skipped where
 *      vm.overcommit_memory is 1 (the kernel accepts any request). A
 *      1 TiB alignment of one byte is served: it needs no memory
 *   b  a big request that the kernel would back is not refused for the
 *      slack of an aligned over-map (heuristic overcommit only)
 *   c  vm.max_map_count: 200,000 live 8 KiB large blocks
 *      (EBB_LARGE_THRESHOLD=4k), contents checked, all freed
 *   d  the same with 516 KiB blocks and the default threshold
 *   e  realloc growing and shrinking large blocks at the map-count limit
 *   f  RLIMIT_AS 512 MiB: 1 MiB blocks after the heap was filled with
 *      small blocks and emptied, one thread, against a fresh process
 *   g  the same after four threads filled it, emptied it and exited
 *   h  the same four threads, then idle: ebb's clock unmaps what they left
 *
 * Cases f and g run this program again under the limit (`--count X`), each
 * count in a fresh process; with --glibc PATH they run the same counts in
 * PATH (this file built without ebb) and print them for comparison. Usage:
 *   test_limits [--glibc PATH] [a b ...]   the cases (all by default)
 *   test_limits --case a                   one case in this process
 *   test_limits --count fresh|one|four|idle   one count under RLIMIT_AS
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define GiB ((size_t)1 << 30)
#define TiB ((size_t)1 << 40)

#include "cases.h"
#ifndef LIMITS_GLIBC
#include "ebb.h"
#endif

/* ---- the machine's limits ------------------------------------------------ */
static int overcommit_mode(void) {
  FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
  int mode = -1;
  if (f != NULL) {
    if (fscanf(f, "%d", &mode) != 1) mode = -1;
    fclose(f);
  }
  return mode;
}

/* RAM + swap: what heuristic overcommit (mode 0) lets one mapping have. */
static size_t backing_bytes(void) {
  struct sysinfo si;
  if (sysinfo(&si) != 0) return 0;
  return ((size_t)si.totalram + (size_t)si.totalswap) * si.mem_unit;
}

/* ---- a. absurd requests --------------------------------------------------- */
/* `what` returned p: it must be NULL with ENOMEM. */
static void expect_enomem(void *p, int err, const char *what, size_t size) {
  CHECK_MSG(p == NULL && err == ENOMEM, "%s(%zu GiB) gave %p, errno %d", what, size / GiB, p, err);
  free(p);
}

static void absurd_sizes(size_t backing) {
  for (unsigned shift = 40; shift <= 46; shift++) {
    size_t size = (size_t)1 << shift;
    if (size <= backing) continue; /* this machine could back it */
    errno = 0;
    void *p = malloc(size);
    expect_enomem(p, errno, "malloc", size);
    errno = 0;
    p = calloc(size / 4096, 4096);
    expect_enomem(p, errno, "calloc", size);
  }
}

/* A huge alignment of a small block costs address space, not memory: it
 * is served (aligned). A huge size with any alignment is refused. */
static void absurd_alignments(void) {
  void *p = memalign(TiB, 1);
  CHECK_MSG(p != NULL && ((uintptr_t)p & (TiB - 1)) == 0, "memalign(1 TiB, 1) gave %p, errno %d", p, errno);
  if (p != NULL) memset(p, 1, 1);
  free(p);
  errno = 0;
  p = memalign(4096, TiB);
  expect_enomem(p, errno, "memalign(4096, .)", TiB);
  errno = 0;
  p = aligned_alloc(64 * MiB, TiB);
  expect_enomem(p, errno, "aligned_alloc(64 MiB, .)", TiB);
  p = NULL;
  int rc = posix_memalign(&p, 4096, TiB);
  CHECK_MSG(rc == ENOMEM && p == NULL, "posix_memalign(4096, 1 TiB): %d, %p", rc, p);
}

/* realloc growing a block of `size` to 1 TiB fails and leaves it intact. */
static void absurd_realloc(size_t size) {
  unsigned char *p = malloc(size);
  if (!CHECK(p != NULL)) return;
  memset(p, 0x5a, size);
  errno = 0;
  void *q = realloc(p, TiB);
  int err = errno;
  CHECK_MSG(q == NULL && err == ENOMEM, "realloc(%zu B block, 1 TiB) gave %p, errno %d", size, q, err);
  if (q != NULL) {
    free(q);
    return;
  }
  size_t bad = 0;
  for (size_t i = 0; i < size; i++) bad += p[i] != 0x5a;
  CHECK_MSG(bad == 0, "realloc that failed changed %zu bytes of a %zu B block", bad, size);
  free(p);
}

static int case_absurd(void) {
  int mode = overcommit_mode();
  if (mode == 1) {
    printf("  a: vm.overcommit_memory is 1: the kernel backs any request, nothing to refuse\n");
    return CHECK_SKIP;
  }
  size_t backing = backing_bytes();
  if (backing >= TiB) {
    printf("  a: this machine backs 1 TiB (RAM + swap %zu GiB)\n", backing / GiB);
    return CHECK_SKIP;
  }
  absurd_sizes(backing);
  absurd_alignments();
  absurd_realloc(100);
  absurd_realloc(100 * KiB);
  absurd_realloc(8 * MiB);
  if (check_failures() == 0)
    printf("  a: overcommit mode %d, RAM + swap %zu GiB: every request of 1 TiB and more refused\n", mode,
           backing / GiB);
  return 0;
}

/* ---- b. a big request that fits ------------------------------------------ */
/* Heuristic overcommit refuses one mapping bigger than RAM + swap. A
 * request 16 MiB under that, aligned to 64 MiB, fits - unless the
 * allocator asks the kernel for the alignment's slack as well. */
static int case_big_fits(void) {
  if (overcommit_mode() != 0) {
    printf("  b: vm.overcommit_memory is not 0 (heuristic): no per-request bound to test\n");
    return CHECK_SKIP;
  }
  size_t size = (backing_bytes() - 16 * MiB) & ~(64 * MiB - 1);
  void *p = memalign(64 * MiB, size);
  CHECK_MSG(p != NULL, "memalign(64 MiB, %zu MiB) refused, errno %d", size / MiB, errno);
  if (p != NULL) {
    memset(p, 1, 4096);
    memset((char *)p + size - 4096, 2, 4096);
  }
  free(p);
  p = malloc(size);
  CHECK_MSG(p != NULL, "malloc(%zu MiB) refused, errno %d", size / MiB, errno);
  free(p);
  if (check_failures() == 0) printf("  b: memalign(64 MiB, %zu MiB) and malloc of it served\n", size / MiB);
  return 0;
}

/* ---- c, d. the map-count limit ---------------------------------------------- */
#define MANY 200000

/* What block i holds: its index, then a pattern from it. */
static void stamp(unsigned char *p, size_t i) {
  memcpy(p, &i, sizeof(i));
  for (size_t k = sizeof(i); k < 64; k++) p[k] = (unsigned char)(i * 7 + k);
}
static bool stamp_ok(const unsigned char *p, size_t i) {
  size_t got;
  memcpy(&got, p, sizeof(got));
  if (got != i) return false;
  for (size_t k = sizeof(i); k < 64; k++) {
    if (p[k] != (unsigned char)(i * 7 + k)) return false;
  }
  return true;
}

/* Requests MANY blocks of `size`, all kept: each is a block or NULL with
 * ENOMEM. Returns the array (NULL where refused); *served counts blocks. */
static void **fill_blocks(size_t size, size_t *served) {
  void **ptrs = ptr_array(MANY);
  size_t refused = 0, bad_errno = 0;
  *served = 0;
  for (size_t i = 0; i < MANY; i++) {
    errno = 0;
    ptrs[i] = malloc(size);
    if (ptrs[i] == NULL) {
      refused++;
      bad_errno += errno != ENOMEM;
      continue;
    }
    stamp(ptrs[i], i);
    (*served)++;
  }
  CHECK_MSG(bad_errno == 0, "%zu of %zu refusals without ENOMEM", bad_errno, refused);
  return ptrs;
}

static void check_and_free(void **ptrs) {
  size_t bad = 0;
  for (size_t i = 0; i < MANY; i++) {
    if (ptrs[i] != NULL && !stamp_ok(ptrs[i], i)) bad++;
  }
  CHECK_MSG(bad == 0, "%zu blocks lost their contents", bad);
  for (size_t i = 0; i < MANY; i++) free(ptrs[i]);
  ptr_array_free(ptrs, MANY);
}

/* Lines of /proc/self/maps, read with plain system calls: at the limit
 * stdio's malloc may be refused. */
static size_t map_count(void) {
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  char buf[65536];
  size_t n = 0;
  ssize_t len;
  if (fd < 0) return 0;
  while ((len = read(fd, buf, sizeof(buf))) > 0) {
    for (ssize_t i = 0; i < len; i++) n += buf[i] == '\n';
  }
  close(fd);
  return n;
}

static int many_blocks(size_t size, char tag) {
  size_t served;
  void **ptrs = fill_blocks(size, &served);
  size_t maps = map_count();
  check_and_free(ptrs);
  printf("  %c: %zu of %d blocks of %zu KiB served; %zu mappings then, %zu once all were freed\n", tag, served,
         MANY, size / KiB, maps, map_count());
  /* A request after all that still works. */
  void *p = malloc(size);
  CHECK(p != NULL);
  free(p);
  return 0;
}

static int case_many_small(void) { return many_blocks(8 * KiB, 'c'); }
static int case_many_large(void) { return many_blocks(516 * KiB, 'd'); }

/* ---- e. realloc at the map-count limit -------------------------------------- */
/* Every block i of a sample is resized to `size` (keeping its first 64
 * bytes); each realloc gives a block or NULL with ENOMEM and the old block
 * intact. */
static void resize_sample(void **ptrs, size_t first, size_t count, size_t size, const char *what) {
  size_t moved = 0, refused = 0, bad = 0;
  for (size_t i = first; i < first + count && i < MANY; i++) {
    if (ptrs[i] == NULL) continue;
    errno = 0;
    void *q = realloc(ptrs[i], size);
    if (q == NULL) {
      refused++;
      bad += errno != ENOMEM || !stamp_ok(ptrs[i], i);
      continue;
    }
    moved += q != ptrs[i];
    bad += !stamp_ok(q, i);
    ptrs[i] = q;
  }
  CHECK_MSG(bad == 0, "%s: %zu reallocs lost contents or errno", what, bad);
  printf("  e: %s to %zu KiB: %zu refused, %zu moved\n", what, size / KiB, refused, moved);
}

static int case_realloc(void) {
  size_t served;
  void **ptrs = fill_blocks(8 * KiB, &served);
  /* The first blocks are large (own mappings); the last came from
   * segments once the mappings ran out. */
  resize_sample(ptrs, 0, 2000, 64 * KiB, "grow in place");
  resize_sample(ptrs, 0, 2000, 8 * MiB, "grow past the next block");
  resize_sample(ptrs, 0, 2000, 12 * KiB, "shrink");
  resize_sample(ptrs, MANY - 2000, 2000, 64 * KiB, "grow segment blocks");
  check_and_free(ptrs);
  return 0;
}

/* ---- f, g. RLIMIT_AS --------------------------------------------------------- */
#define AS_LIMIT (512 * MiB)
#define SMALL 1024
#define SMALL_MAX (AS_LIMIT / SMALL)
static void *small_blocks[SMALL_MAX]; /* .bss: the same in every count */

/* Fills with small blocks until malloc refuses or `max` is reached, then
 * frees them all. */
static void fill_and_empty(void **slots, size_t max) {
  size_t n = 0;
  while (n < max && (slots[n] = malloc(SMALL)) != NULL) {
    memset(slots[n], 1, 16);
    n++;
  }
  for (size_t i = 0; i < n; i++) free(slots[i]);
}

static void *filler_thread(void *arg) {
  fill_and_empty(arg, SMALL_MAX / 4);
  return NULL;
}

/* 1 MiB blocks until malloc refuses (all kept). */
static size_t count_mib_blocks(void) {
  static void *big[AS_LIMIT / MiB + 64];
  size_t n = 0;
  while (n < sizeof(big) / sizeof(big[0]) && (big[n] = malloc(MiB)) != NULL) n++;
  return n;
}

#ifndef LIMITS_GLIBC
/* MiB ebb still maps once it has been idle long enough for its clock
 * (segments of exited threads and cached ones unmapped), polled for 3 s. */
static size_t idle_mapped_mib(void) {
  ebb_stats_t st;
  for (int i = 0; i < 30; i++) {
    ebb_stats_get(&st, sizeof st);
    if (st.mapped <= 16 * MiB) break;
    usleep(100 * 1000);
  }
  return st.mapped / MiB;
}
#endif

static void four_fillers(void) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * KiB); /* the count measures the allocator, not stacks */
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], &attr, filler_thread, &small_blocks[i * (SMALL_MAX / 4)]);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
}

/* The result, without stdio: at the limit its buffer may not be had. */
static int print_count(size_t n) {
  char buf[32];
  int len = snprintf(buf, sizeof(buf), "%zu\n", n);
  return write(STDOUT_FILENO, buf, (size_t)len) == len ? 0 : 1;
}

/* One count, in this process: setrlimit was done before exec. */
static int count_main(const char *what) {
#ifndef LIMITS_GLIBC
  if (strcmp(what, "idle") == 0) {
    four_fillers();
    return print_count(idle_mapped_mib());
  }
#endif
  if (strcmp(what, "one") == 0) {
    fill_and_empty(small_blocks, SMALL_MAX);
  } else if (strcmp(what, "four") == 0) {
    four_fillers();
  } else if (strcmp(what, "fresh") != 0) {
    return 2;
  }
  return print_count(count_mib_blocks());
}

/* Runs `prog --count what` under RLIMIT_AS in a fresh process and returns
 * its count, or -1. */
static long count_under_limit(const char *prog, const char *what) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    struct rlimit rl = {AS_LIMIT, AS_LIMIT};
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(3);
    char *args[] = {(char *)prog, "--count", (char *)what, NULL};
    execve(prog, args, environ);
    _exit(127);
  }
  close(fds[1]);
  char buf[64] = {0};
  ssize_t len = pid > 0 ? read(fds[0], buf, sizeof(buf) - 1) : -1;
  close(fds[0]);
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || len <= 0)
    return -1;
  return strtol(buf, NULL, 10);
}

static const char *glibc_prog; /* this file built without ebb, or NULL */

static int as_case(const char *what, char tag) {
  long fresh = count_under_limit("/proc/self/exe", "fresh");
  long after = count_under_limit("/proc/self/exe", what);
  if (!CHECK_MSG(fresh > 0 && after >= 0, "counts: fresh %ld, %s %ld", fresh, what, after)) return 0;
  CHECK_MSG(after * 100 >= fresh * 95, "%ld MiB blocks after the heap was emptied (%s) against %ld fresh: under 95%%",
            after, what, fresh);
  printf("  %c: RLIMIT_AS 512 MiB, 1 MiB blocks: ebb %ld fresh, %ld after (%s)", tag, fresh, after, what);
  if (glibc_prog != NULL)
    printf("; glibc %ld fresh, %ld after", count_under_limit(glibc_prog, "fresh"), count_under_limit(glibc_prog, what));
  printf("\n");
  return 0;
}

static int case_as_one(void) { return as_case("one", 'f'); }
static int case_as_four(void) { return as_case("four", 'g'); }

/* The purge thread's first start comes while the limit is reached (the
 * first free): it must start later all the same, or an idle program keeps
 * its caches and exited threads' segments. */
static int case_as_idle(void) {
  long mapped = count_under_limit("/proc/self/exe", "idle");
  CHECK_MSG(mapped >= 0 && mapped <= 16, "idle for 3 s after four threads emptied the heap: ebb maps %ld MiB", mapped);
  printf("  h: RLIMIT_AS 512 MiB, four threads emptied the heap and exited: %ld MiB mapped once idle\n", mapped);
  return 0;
}

/* ---- the runner ------------------------------------------------------------------ */
typedef struct {
  char name;
  const char *title;
  int (*run)(void); /* 0, or CHECK_SKIP */
  const char *env[3];
} limit_case_t;

static const limit_case_t cases[] = {
  {'a', "absurd requests fail at once", case_absurd, {NULL}},
  {'b', "a big request that fits is served", case_big_fits, {NULL}},
  {'c', "map-count limit, 8 KiB large blocks", case_many_small, {"EBB_LARGE_THRESHOLD=4k", NULL}},
  {'d', "map-count limit, 516 KiB large blocks", case_many_large, {NULL}},
  {'e', "realloc at the map-count limit", case_realloc, {"EBB_LARGE_THRESHOLD=4k", NULL}},
  {'f', "RLIMIT_AS, one thread", case_as_one, {NULL}},
  {'g', "RLIMIT_AS, four exited threads", case_as_four, {NULL}},
  {'h', "RLIMIT_AS, idle after four exited threads", case_as_idle, {NULL}},
};
enum { NCASES = sizeof(cases) / sizeof(cases[0]) };

static int run_here(char name) {
  for (int i = 0; i < NCASES; i++) {
    if (cases[i].name != name) continue;
    case_begin(name);
    alarm(240); /* a hang ends as a failure, before ctest's timeout */
    int rc = cases[i].run();
    char title[96];
    snprintf(title, sizeof(title), "case %c (%s)", name, cases[i].title);
    return check_summary_as(title, rc);
  }
  fprintf(stderr, "test_limits: no case %c\n", name);
  return 2;
}

/* The case in a fresh process with its own EBB_ variables: 0 passed, CHECK_SKIP,
 * or 1 failed. */
static int run_child(const limit_case_t *c) {
  char **env = case_environ(c->env);
  char name[2] = {c->name, 0};
  char *args[] = {"test_limits", "--case", name, (char *)glibc_prog, NULL};
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    execve("/proc/self/exe", args, env);
    _exit(127);
  }
  free(env);
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return 1;
  if (WIFSIGNALED(status)) {
    printf("FAIL %c %s: killed by signal %d\n", c->name, c->title, WTERMSIG(status));
    return 1;
  }
  int rc = WEXITSTATUS(status);
  printf("%s %c %s\n", rc == 0 ? "ok  " : rc == CHECK_SKIP ? "skip" : "FAIL", c->name, c->title);
  return rc == 0 || rc == CHECK_SKIP ? rc : 1;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 3 && strcmp(argv[1], "--count") == 0) return count_main(argv[2]);
#ifndef LIMITS_GLIBC
  if (argc >= 3 && strcmp(argv[1], "--case") == 0) {
    glibc_prog = argc > 3 ? argv[3] : NULL;
    return run_here(argv[2][0]);
  }
  int a = 1;
  if (argc > 2 && strcmp(argv[1], "--glibc") == 0) {
    glibc_prog = argv[2];
    a = 3;
  }
  int failed = 0, skipped = 0, ran = 0;
  for (int i = 0; i < NCASES; i++) {
    bool wanted = (a == argc);
    for (int j = a; j < argc; j++) wanted |= (argv[j][0] == cases[i].name);
    if (!wanted) continue;
    ran++;
    int rc = run_child(&cases[i]);
    failed += rc == 1;
    skipped += rc == CHECK_SKIP;
  }
  printf("test_limits: %d cases, %d failed, %d skipped\n", ran, failed, skipped);
  if (failed != 0 || ran == 0) return 1;
  return skipped == ran ? CHECK_SKIP : 0;
#else
  return 2;
#endif
}
