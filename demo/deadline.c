/* SPDX-License-Identifier: MIT */
/* demo/deadline.c - how long freed memory stays resident: the figure behind
 * "on a deadline" in the README.
 *
 * Each trial allocates 8 MiB in 64 KiB blocks, writes every OS page, frees
 * them all, and then polls the process's resident size (/proc/self/statm)
 * every millisecond until it is back within 1 MiB of what it was before the
 * allocation. It prints, per trial, what was still resident right after the
 * last free and how many milliseconds later the memory was back, then the
 * medians. Under ebb the answer is EBB_PURGE_DELAY_MS (100) plus the purge
 * thread's wake-up step (delay / 2); under glibc, which trims the top of its
 * heap inside free, it is 0 ms with nothing resident after the free.
 *
 *   LD_PRELOAD=build/libebb.so build/demo/deadline [--trials N]
 *
 * The program only calls malloc and free; the allocator is chosen with
 * LD_PRELOAD. While polling it makes no allocator call (reads go into a
 * stack buffer, the pause is nanosleep), so the memory comes back without
 * the program's help, as in an idle program.
 *
 * Exit status: 0 when every trial's memory came back, 1 if one did not
 * within GIVE_UP_MS (the line says so), 2 on a bad argument.
 *
 * Build without ebb: gcc -O2 -fno-builtin-malloc -fno-builtin-free deadline.c
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KIB 1024l
#define BLOCK_BYTES (64 * KIB)
#define TOTAL_BYTES (8 * KIB * KIB)
#define N_BLOCKS (TOTAL_BYTES / BLOCK_BYTES)
#define BACK_WITHIN_KIB 1024l /* "back": RSS at most this far above the start */
#define GIVE_UP_MS 5000l
#define DEFAULT_TRIALS 21
#define MAX_TRIALS 1000

typedef struct {
    long resident_after_free_kib; /* RSS above the start right after the last free */
    long back_after_ms;           /* from the last free until RSS was back */
} trial_t;

static void die(const char *what, const char *why)
{
    fprintf(stderr, "deadline: %s%s\n", what, why);
    exit(1);
}

/* Resident KiB from /proc/self/statm (second field, in pages), without malloc. */
static long rss_kib(void)
{
    static long page_kib;
    char buf[128];
    if (page_kib == 0)
        page_kib = sysconf(_SC_PAGESIZE) / KIB;
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("cannot open /proc/self/statm: ", strerror(errno));
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        die("cannot read /proc/self/statm", "");
    buf[n] = '\0';
    char *rest = NULL;
    (void)strtol(buf, &rest, 10); /* the first field is the mapped size */
    return strtol(rest, NULL, 10) * page_kib;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_one_ms(void)
{
    struct timespec ts = { 0, 1000000l };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void allocate_touched(char **blocks)
{
    for (long i = 0; i < N_BLOCKS; i++) {
        blocks[i] = malloc(BLOCK_BYTES);
        if (blocks[i] == NULL)
            die("malloc failed: ", strerror(errno));
        volatile char *v = blocks[i];
        for (long off = 0; off < BLOCK_BYTES; off += 4 * KIB)
            v[off] = 1;
    }
}

/* One trial; returns 0, or -1 if the memory was not back within GIVE_UP_MS. */
static int run_trial(trial_t *t)
{
    char *blocks[N_BLOCKS];
    long start_kib = rss_kib();
    allocate_touched(blocks);
    for (long i = 0; i < N_BLOCKS; i++)
        free(blocks[i]);
    long freed_at = now_ms();
    t->resident_after_free_kib = rss_kib() - start_kib;
    for (long rss = start_kib + t->resident_after_free_kib; rss > start_kib + BACK_WITHIN_KIB;
         rss = rss_kib()) {
        if (now_ms() - freed_at > GIVE_UP_MS)
            return -1;
        sleep_one_ms();
    }
    t->back_after_ms = now_ms() - freed_at;
    return 0;
}

static int by_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

static long median(long *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_long);
    return v[n / 2];
}

static int parse_trials(int argc, char **argv)
{
    if (argc == 1)
        return DEFAULT_TRIALS;
    char *end = NULL;
    long n = argc == 3 && strcmp(argv[1], "--trials") == 0 ? strtol(argv[2], &end, 10) : 0;
    if (end == NULL || *end != '\0' || n < 1 || n > MAX_TRIALS) {
        fprintf(stderr, "deadline: usage: deadline [--trials N]   (N from 1 to %d, default %d)\n",
                MAX_TRIALS, DEFAULT_TRIALS);
        exit(2);
    }
    return (int)n;
}

int main(int argc, char **argv)
{
    int trials = parse_trials(argc, argv);
    static long resident[MAX_TRIALS], back[MAX_TRIALS];
    const char *delay = getenv("EBB_PURGE_DELAY_MS");
    printf("Each trial: malloc 8 MiB in 64 KiB blocks, touch them, free them all, then watch RSS\n"
           "(polled every 1 ms) until it is back within 1 MiB of where it started.\n");
    for (int i = 0; i < trials; i++) {
        trial_t t;
        if (run_trial(&t) != 0) {
            printf("trial %d: memory not back %ld ms after the free (%.1f MiB were resident"
                   " right after it)\n",
                   i + 1, GIVE_UP_MS, (double)t.resident_after_free_kib / KIB);
            return 1;
        }
        printf("trial %d: %.1f MiB resident right after the free, back after %ld ms\n", i + 1,
               (double)t.resident_after_free_kib / KIB, t.back_after_ms);
        resident[i] = t.resident_after_free_kib;
        back[i] = t.back_after_ms;
    }
    printf("median of %d trials: %.1f MiB resident right after the free, back after %ld ms"
           " (EBB_PURGE_DELAY_MS=%s)\n",
           trials, (double)median(resident, trials) / KIB, median(back, trials),
           delay != NULL ? delay : "unset: 100 under ebb");
    return 0;
}
