/* SPDX-License-Identifier: MIT */
/* demo/seed.c - the seed experiment: how much memory a process still holds
 * one idle second after it freed its blocks, for every allocation size.
 *
 * The program only calls malloc and free; the allocator under test is chosen
 * with LD_PRELOAD by demo/run.sh (or by the demo_promise test).
 *
 * Each row runs in a fresh process of its own: seed starts itself again as
 * `seed --row NAME` (same LD_PRELOAD) for every selected row, so that no row
 * inherits what an earlier row left in the allocator, and relays the row's
 * line. That process warms up, prepares the row, records its start RSS,
 * runs the row and prints one line.
 *
 * Measure. RSS is VmRSS from /proc/self/status. "Retained" is the RSS after
 * the idle period minus the start RSS; it can be negative (the allocator
 * returned memory it held from before the start: its warm-up blocks). While
 * measuring, the process does not allocate: the pointer array and the
 * sparse bitmap are mapped and touched before the start RSS is taken, /proc
 * is read with open/read into a stack buffer, output is formatted by hand
 * into a stack buffer and written with write(2), and the idle period is a
 * plain nanosleep - no malloc_trim, no allocator call.
 *
 * Rows (names for --only and --row in brackets):
 *   round1 [round1/<size>]  allocate ~256 MiB in blocks of that size (at
 *                           least one block), write a byte in every 4 KiB of
 *                           every block, free them all, idle, measure.
 *   round2 [round2/<size>]  the same, prepared first: one block of each size
 *                           up to 8 MiB malloc'ed and freed (untouched) before
 *                           the start RSS. glibc then has raised its mmap
 *                           threshold to 8 MiB, as in a program that once
 *                           freed such a buffer, and serves the same sizes
 *                           from its heap instead of mmap.
 *   trap   [trap/1MiB]      malloc+touch+free one 1 MiB block (glibc moves its
 *                           threshold to 1 MiB), then 256 x 1 MiB the same way.
 *   pinned [pinned/<size>]  as round 2, but one small block allocated after
 *                           the batch stays live while the program idles.
 *   sparse [sparse/1KiB, sparse/4KiB]  100,000 blocks, touched; all but a
 *                           random 1% (fixed seed) freed; idle; measure retained
 *                           and the live bytes still held; then free the rest.
 *
 * Output, tab separated, one line per fact, written as soon as it is known:
 *   which <path>            the object that `malloc` resolves to
 *   idle_ms <n>
 *   row <group> <size> <retained_kib> <live_kib> <peak_kib> <promise_kib>
 *                           peak = RSS above start with every block touched;
 *                           promise = the most ebb promises to keep (below)
 *   done                    every selected row ran
 *   check ok | check fail <n>   (--check only)
 *
 * ebb's promise, which --check enforces and run.sh marks:
 *   size, trap and pinned rows: retained <= 1 MiB
 *   sparse rows:                retained <= 2 x live + 4 MiB
 * --check exits 1, with one line on stderr per row that keeps more. If
 * LD_PRELOAD is set, it first verifies that malloc really comes from the
 * preloaded library, so a failed preload cannot pass as a result.
 *
 * Build without ebb: gcc -O2 -fno-builtin-malloc -fno-builtin-free seed.c -ldl
 * (-fno-builtin: the compiler must not pair a malloc with its free and drop
 * both; the writes also go through a volatile pointer).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dladdr, RTLD_DEFAULT */
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KIB 1024ul
#define MIB (1024ul * 1024ul)
#define TARGET_BYTES (256ul * MIB)   /* bytes per size row */
#define TOUCH_STRIDE 4096ul          /* one write per OS page */
#define MAX_BLOCKS (TARGET_BYTES / KIB) /* the most pointers a row holds: 1 KiB rows */
#define TRAP_BLOCKS 256ul
#define SPARSE_BLOCKS 100000ul
#define SPARSE_KEEP (SPARSE_BLOCKS / 100) /* 1% stays live */
#define SPARSE_SEED 0x65626273u      /* "ebbs" */
#define DEFAULT_IDLE_MS 1000ul
#define PROMISE_KIB 1024l           /* ebb's promise for size, trap and pinned rows */
#define PROMISE_SPARSE_FIXED_KIB 4096l /* sparse rows: 2 x live + this */
#define PREPARE_MAX_SIZE (8 * MIB)   /* round 2 and pinned: sizes malloc'ed and freed first */
#define MAX_ONLY 8                   /* --only may be given this many times */

_Static_assert(MAX_BLOCKS >= SPARSE_BLOCKS && MAX_BLOCKS >= TRAP_BLOCKS, "pointer array too small");

typedef enum { KIND_SIZE, KIND_TRAP, KIND_SPARSE, KIND_PINNED } kind_t;

typedef struct {
    const char *group; /* round1, round2, trap, sparse */
    const char *label; /* the size as shown: 1KiB, 80KB, ... */
    size_t size;       /* block size in bytes */
    kind_t kind;
    int prepared;      /* 1: one block of each size up to 8 MiB freed before the start */
} row_t;

typedef struct {
    long retained_kib; /* RSS after idle - start RSS */
    long live_kib;     /* bytes the program still holds (requested sizes) */
    long peak_kib;     /* RSS above start with every block touched */
    int ran;
} result_t;

typedef struct {
    unsigned long idle_ms;
    const char *only[MAX_ONLY]; /* row or group names; none = every row */
    const char *row;            /* --row: run this one row in this process */
    int n_only;
    int check;
    int which; /* --which: print the malloc object and exit */
} config_t;

#define SIZE_ROWS(G, P)                                                                       \
    { G, "1KiB", 1 * KIB, KIND_SIZE, P }, { G, "8KiB", 8 * KIB, KIND_SIZE, P },              \
    { G, "64KiB", 64 * KIB, KIND_SIZE, P }, { G, "80KB", 80000, KIND_SIZE, P },              \
    { G, "127KiB", 127 * KIB, KIND_SIZE, P }, { G, "129KiB", 129 * KIB, KIND_SIZE, P },      \
    { G, "256KiB", 256 * KIB, KIND_SIZE, P }, { G, "800KB", 800000, KIND_SIZE, P },          \
    { G, "8MiB", 8 * MIB, KIND_SIZE, P }, { G, "64MiB", 64 * MIB, KIND_SIZE, P },            \
    { G, "512MiB", 512 * MIB, KIND_SIZE, P }

/* Every row, in the order they are shown; each runs in a process of its own. */
static const row_t rows[] = {
    SIZE_ROWS("round1", 0),
    SIZE_ROWS("round2", 1),
    { "trap", "1MiB", 1 * MIB, KIND_TRAP, 0 },
    /* As round 2, but one block allocated after the batch stays live: what
     * a running program looks like, and what keeps glibc from trimming the
     * top of its heap. */
    { "pinned", "8KiB", 8 * KIB, KIND_PINNED, 1 }, { "pinned", "64KiB", 64 * KIB, KIND_PINNED, 1 },
    { "pinned", "80KB", 80000, KIND_PINNED, 1 }, { "pinned", "127KiB", 127 * KIB, KIND_PINNED, 1 },
    { "pinned", "256KiB", 256 * KIB, KIND_PINNED, 1 },
    { "pinned", "800KB", 800000, KIND_PINNED, 1 },
    { "sparse", "1KiB", 1 * KIB, KIND_SPARSE, 0 },
    { "sparse", "4KiB", 4 * KIB, KIND_SPARSE, 0 },
};
#define N_ROWS (sizeof rows / sizeof rows[0])

static result_t results[N_ROWS];
static void **ptrs;                                  /* MAX_BLOCKS slots, mapped at start */
static uint64_t keep_bits[(SPARSE_BLOCKS + 63) / 64]; /* sparse: which blocks stay live */
static long start_kib;

/* ---- output without malloc: a line is built in a stack buffer ---------- */

typedef struct {
    char buf[1024];
    size_t len;
} line_t;

static void put_str(line_t *l, const char *s)
{
    size_t n = strlen(s);
    if (n > sizeof l->buf - l->len)
        n = sizeof l->buf - l->len;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void put_long(line_t *l, long v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    unsigned long u = v < 0 ? 0ul - (unsigned long)v : (unsigned long)v;
    tmp[--i] = '\0';
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        tmp[--i] = '-';
    put_str(l, tmp + i);
}

/* KiB as MiB with one decimal, rounded half away from zero. */
static void put_mib(line_t *l, long kib)
{
    long tenths = (labs(kib) * 10 + 512) / 1024;
    if (kib < 0 && tenths != 0)
        put_str(l, "-");
    put_long(l, tenths / 10);
    put_str(l, ".");
    put_long(l, tenths % 10);
}

static void emit(int fd, line_t *l)
{
    put_str(l, "\n");
    for (size_t off = 0; off < l->len;) {
        ssize_t n = write(fd, l->buf + off, l->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        off += (size_t)n;
    }
    l->len = 0;
}

/* One line "seed: <a><b><c>" on stderr. */
static void say(const char *a, const char *b, const char *c)
{
    line_t l = { .len = 0 };
    put_str(&l, "seed: ");
    put_str(&l, a);
    put_str(&l, b);
    put_str(&l, c);
    emit(2, &l);
}

static void die(const char *a, const char *b)
{
    say(a, b, "");
    exit(1);
}

static void usage_error(const char *what, const char *arg)
{
    say(what, arg, "; usage: seed [--idle-ms N] [--only NAME]... [--check] [--which] [--help]");
    exit(2);
}

/* ---- measuring ----------------------------------------------------------- */

/* VmRSS in KiB, read without allocating. */
static long rss_kib(void)
{
    char buf[4096];
    size_t len = 0;
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("cannot open /proc/self/status: ", strerror(errno));
    for (ssize_t n; len < sizeof buf - 1 && (n = read(fd, buf + len, sizeof buf - 1 - len)) != 0;) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("cannot read /proc/self/status: ", strerror(errno));
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    const char *p = strstr(buf, "\nVmRSS:");
    if (p == NULL)
        die("no VmRSS line in /proc/self/status", "");
    return strtol(p + 7, NULL, 10); /* strtol skips the blanks; the unit is kB */
}

/* Sleep for ms milliseconds, resuming after signals. No allocator call. */
static void idle(unsigned long ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000l };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Write one byte in every 4 KiB of the block, and its last byte. */
static void touch(char *p, size_t size)
{
    volatile char *v = p;
    for (size_t off = 0; off < size; off += TOUCH_STRIDE)
        v[off] = 1;
    v[size - 1] = 1;
}

static char *alloc_touched(size_t size)
{
    char *p = malloc(size);
    if (p == NULL)
        die("malloc failed: ", strerror(errno));
    touch(p, size);
    return p;
}

/* ---- the rows -------------------------------------------------------------- */

static void free_all(size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ptrs[i]);
}

/* Allocate and touch n blocks of size; returns the peak above start. */
static long fill(size_t n, size_t size)
{
    for (size_t i = 0; i < n; i++)
        ptrs[i] = alloc_touched(size);
    return rss_kib() - start_kib;
}

static void run_size(const row_t *row, const config_t *cfg, result_t *res)
{
    size_t n = TARGET_BYTES / row->size;
    if (n == 0)
        n = 1;
    res->peak_kib = fill(n, row->size);
    free_all(n);
    idle(cfg->idle_ms);
    res->retained_kib = rss_kib() - start_kib;
}

static void run_trap(const row_t *row, const config_t *cfg, result_t *res)
{
    free(alloc_touched(row->size)); /* glibc: the threshold moves up to this size */
    res->peak_kib = fill(TRAP_BLOCKS, row->size);
    free_all(TRAP_BLOCKS);
    idle(cfg->idle_ms);
    res->retained_kib = rss_kib() - start_kib;
}

/* The pin has a size no other block of the process had, so that no free
 * list can serve it: it comes from the top of the heap, above the batch. */
static void run_pinned(const row_t *row, const config_t *cfg, result_t *res)
{
    size_t n = TARGET_BYTES / row->size;
    if (n == 0)
        n = 1;
    res->peak_kib = fill(n, row->size);
    void *pin = alloc_touched(3000 + 16 * (row - rows));
    free_all(n);
    idle(cfg->idle_ms);
    res->retained_kib = rss_kib() - start_kib;
    free(pin);
}

/* splitmix64: a small, well-mixed PRNG with a fixed seed. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static int kept(size_t i)
{
    return (int)((keep_bits[i / 64] >> (i % 64)) & 1u);
}

/* Mark exactly SPARSE_KEEP distinct blocks, chosen at random, as kept. */
static void choose_kept(void)
{
    uint64_t state = SPARSE_SEED;
    memset(keep_bits, 0, sizeof keep_bits);
    for (size_t marked = 0; marked < SPARSE_KEEP;) {
        size_t i = (size_t)(next_random(&state) % SPARSE_BLOCKS);
        if (!kept(i)) {
            keep_bits[i / 64] |= (uint64_t)1 << (i % 64);
            marked++;
        }
    }
}

/* Free the blocks whose kept bit equals want, in allocation order. */
static void free_where(int want)
{
    for (size_t i = 0; i < SPARSE_BLOCKS; i++)
        if (kept(i) == want)
            free(ptrs[i]);
}

static void run_sparse(const row_t *row, const config_t *cfg, result_t *res)
{
    res->peak_kib = fill(SPARSE_BLOCKS, row->size);
    choose_kept();
    free_where(0);
    idle(cfg->idle_ms);
    res->retained_kib = rss_kib() - start_kib;
    res->live_kib = (long)(SPARSE_KEEP * row->size / KIB);
    free_where(1);
}

/* The most ebb promises to keep after a row: 1 MiB, or, in a sparse row,
 * twice the live bytes plus 4 MiB (an OS page that holds a live block
 * cannot go back, and 1% of the blocks live touch many pages). */
static long promise_kib(const row_t *row, long live_kib)
{
    return row->kind == KIND_SPARSE ? 2 * live_kib + PROMISE_SPARSE_FIXED_KIB : PROMISE_KIB;
}

static void report_row(const row_t *row, const result_t *res)
{
    line_t l = { .len = 0 };
    put_str(&l, "row\t");
    put_str(&l, row->group);
    put_str(&l, "\t");
    put_str(&l, row->label);
    put_str(&l, "\t");
    put_long(&l, res->retained_kib);
    put_str(&l, "\t");
    put_long(&l, res->live_kib);
    put_str(&l, "\t");
    put_long(&l, res->peak_kib);
    put_str(&l, "\t");
    put_long(&l, promise_kib(row, res->live_kib));
    emit(1, &l);
}

/* Round 2 and pinned rows begin where a program that once freed an 8 MiB
 * buffer is: one block of each size up to 8 MiB malloc'ed and freed. The
 * blocks stay untouched, so that nothing they leave resident (or give back
 * later) shows in the row; glibc's mmap threshold moves all the same. */
static void prepare(const row_t *row)
{
    if (!row->prepared)
        return;
    for (size_t r = 0; r < N_ROWS && rows[r].kind == KIND_SIZE; r++) {
        if (rows[r].size > PREPARE_MAX_SIZE)
            continue;
        void *p = malloc(rows[r].size);
        if (p == NULL)
            die("malloc failed: ", strerror(errno));
        free(p);
    }
}

/* Everything that could allocate or fault in memory of its own happens here,
 * before the start RSS: the allocator's initialisation, the pointer array,
 * the bitmap, the stack pages used by /proc reads and output, the vDSO. */
static void warm_up(void)
{
    ptrs = mmap(NULL, MAX_BLOCKS * sizeof *ptrs, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (ptrs == MAP_FAILED)
        die("cannot map the pointer array: ", strerror(errno));
    memset(ptrs, 0, MAX_BLOCKS * sizeof *ptrs);
    memset(keep_bits, 0, sizeof keep_bits);
    for (size_t size = 16; size <= 64 * KIB; size *= 4)
        free(alloc_touched(size));
    (void)rss_kib();
    idle(1);
}

/* `seed --row NAME`: the process of one row. */
static void run_row_here(const row_t *row, const config_t *cfg)
{
    result_t res = { .ran = 0 };
    warm_up();
    prepare(row);
    start_kib = rss_kib();
    if (row->kind == KIND_SIZE)
        run_size(row, cfg, &res);
    else if (row->kind == KIND_TRAP)
        run_trap(row, cfg, &res);
    else if (row->kind == KIND_PINNED)
        run_pinned(row, cfg, &res);
    else
        run_sparse(row, cfg, &res);
    report_row(row, &res);
}

/* ---- one process per row ---------------------------------------------------- */

/* The line's text as a C string (cut at the buffer's end). */
static const char *line_cstr(line_t *l)
{
    if (l->len >= sizeof l->buf)
        l->len = sizeof l->buf - 1;
    l->buf[l->len] = '\0';
    return l->buf;
}

/* Reads all of fd into buf (NUL-terminated, cut at its size). */
static void read_all(int fd, char *buf, size_t size)
{
    size_t len = 0;
    for (ssize_t n; len < size - 1 && (n = read(fd, buf + len, size - 1 - len)) != 0;) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("cannot read a row's output: ", strerror(errno));
        len += (size_t)n;
    }
    buf[len] = '\0';
}

/* Fills res from a row line (fields 4-5: retained, live); 0, or -1 if the
 * text is not one. */
static int parse_row_line(const char *text, result_t *res)
{
    if (strncmp(text, "row\t", 4) != 0)
        return -1;
    const char *p = text;
    for (int tabs = 0; tabs < 3; tabs++)
        if ((p = strchr(p, '\t')) == NULL)
            return -1;
        else
            p++;
    char *end = NULL;
    res->retained_kib = strtol(p, &end, 10);
    if (*end != '\t')
        return -1;
    res->live_kib = strtol(end + 1, &end, 10);
    return *end == '\t' ? 0 : -1;
}

/* How the row's process ended, as "exit status N" or "killed by signal N". */
static void put_status(line_t *l, int status)
{
    put_str(l, WIFSIGNALED(status) ? "killed by signal " : "exit status ");
    put_long(l, WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

extern char **environ;

/* Starts `seed --row NAME --idle-ms N` with stdout into fd; returns its pid. */
static pid_t spawn_row(const char *name, const config_t *cfg, int fd)
{
    line_t idle_text = { .len = 0 };
    put_long(&idle_text, (long)cfg->idle_ms);
    char *argv[] = { "seed", "--row", (char *)name, "--idle-ms", (char *)line_cstr(&idle_text), NULL };
    posix_spawn_file_actions_t actions;
    pid_t pid;
    if (posix_spawn_file_actions_init(&actions) != 0 || posix_spawn_file_actions_adddup2(&actions, fd, 1) != 0)
        die("cannot prepare a row's process", "");
    int rc = posix_spawn(&pid, "/proc/self/exe", &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0)
        die("cannot start a row's process: ", strerror(rc));
    return pid;
}

/* Runs the row in a fresh process and relays its line; fills *res. Returns
 * 0, or -1 (with a line on stderr) if that process failed. */
static int run_row_apart(const row_t *row, const config_t *cfg, result_t *res)
{
    line_t name = { .len = 0 }, out = { .len = 0 };
    put_str(&name, row->group);
    put_str(&name, "/");
    put_str(&name, row->label);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        die("cannot make a pipe: ", strerror(errno));
    pid_t pid = spawn_row(line_cstr(&name), cfg, fds[1]);
    close(fds[1]);
    read_all(fds[0], out.buf, sizeof out.buf);
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    out.len = strcspn(out.buf, "\n");
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && parse_row_line(line_cstr(&out), res) == 0) {
        res->ran = 1;
        emit(1, &out);
        return 0;
    }
    line_t why = { .len = 0 };
    put_str(&why, "seed: row ");
    put_str(&why, name.buf);
    put_str(&why, ": ");
    put_status(&why, status);
    put_str(&why, WIFEXITED(status) && WEXITSTATUS(status) == 0 ? ", no row line" : "");
    emit(2, &why);
    return -1;
}

/* ---- selection and options ------------------------------------------------ */

/* Does NAME (a group, or group/label) name this row? */
static int row_matches(const row_t *row, const char *name)
{
    size_t g = strlen(row->group);
    if (strncmp(name, row->group, g) != 0)
        return 0;
    return name[g] == '\0' || (name[g] == '/' && strcmp(name + g + 1, row->label) == 0);
}

static int row_selected(const row_t *row, const config_t *cfg)
{
    if (cfg->n_only == 0)
        return 1;
    for (int i = 0; i < cfg->n_only; i++)
        if (row_matches(row, cfg->only[i]))
            return 1;
    return 0;
}

static int name_known(const char *name)
{
    for (size_t r = 0; r < N_ROWS; r++)
        if (row_matches(&rows[r], name))
            return 1;
    return 0;
}

/* The row NAME (group/label) names exactly; exits with usage if none. */
static const row_t *row_named(const char *name)
{
    for (size_t r = 0; r < N_ROWS; r++)
        if (strchr(name, '/') != NULL && row_matches(&rows[r], name))
            return &rows[r];
    usage_error("--row: no row named ", name);
    return NULL;
}

static long parse_num(const char *opt, const char *s, long max)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v > max)
        usage_error(opt, " wants a non-negative integer in range");
    return v;
}

static void help(void)
{
    static const char text[] =
        "usage: seed [--idle-ms N] [--only NAME]... [--check] [--which] [--row NAME]\n"
        "  How much memory stays resident 1 s after a program frees its blocks; each\n"
        "  row runs in a fresh process of its own.\n"
        "  --idle-ms N     idle time before each measurement (default 1000)\n"
        "  --only NAME     run only this row or group (round1, round2/80KB, trap,\n"
        "                  sparse/4KiB, ...); may be repeated\n"
        "  --check         exit 1 if a row keeps more than ebb promises (1 MiB;\n"
        "                  sparse rows: 2 x live + 4 MiB)\n"
        "  --which         print the file that provides malloc, and exit\n"
        "  --row NAME      run the one row NAME (group/size) in this process\n"
        "Output: tab-separated lines; see the comment at the top of demo/seed.c.\n";
    if (write(1, text, sizeof text - 1) < 0)
        exit(1);
}

static void parse_args(int argc, char **argv, config_t *cfg)
{
    *cfg = (config_t){ .idle_ms = DEFAULT_IDLE_MS };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = strcmp(a, "--idle-ms") == 0 || strcmp(a, "--only") == 0
                        || strcmp(a, "--row") == 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help();
            exit(0);
        } else if (strcmp(a, "--check") == 0) {
            cfg->check = 1;
        } else if (strcmp(a, "--which") == 0) {
            cfg->which = 1;
        } else if (!has_value) {
            usage_error("unknown option ", a);
        } else if (i + 1 >= argc) {
            usage_error("missing value for ", a);
        } else if (strcmp(a, "--idle-ms") == 0) {
            cfg->idle_ms = (unsigned long)parse_num(a, argv[++i], 3600000l);
        } else if (strcmp(a, "--row") == 0) {
            cfg->row = argv[++i];
        } else if (cfg->n_only == MAX_ONLY) {
            usage_error("too many --only options", "");
        } else if (!name_known(argv[++i])) {
            usage_error("--only: no row or group named ", argv[i]);
        } else {
            cfg->only[cfg->n_only++] = argv[i];
        }
    }
}

/* ---- which allocator ------------------------------------------------------- */

/* The file of the object that provides malloc in the global scope; free must
 * come from the same one. Called before the start RSS: dlsym may allocate. */
static const char *malloc_object(void)
{
    Dl_info mi, fi;
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    void *f = dlsym(RTLD_DEFAULT, "free");
    if (m == NULL || f == NULL || dladdr(m, &mi) == 0 || dladdr(f, &fi) == 0
        || mi.dli_fname == NULL || fi.dli_fname == NULL)
        die("cannot resolve malloc/free", "");
    if (strcmp(mi.dli_fname, fi.dli_fname) != 0)
        die("malloc and free come from different objects: ", mi.dli_fname);
    return mi.dli_fname;
}

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev
           && sa.st_ino == sb.st_ino;
}

/* With LD_PRELOAD set, is `object` one of its entries (space or colon separated)? */
static int preload_took_effect(const char *object)
{
    const char *list = getenv("LD_PRELOAD");
    char entry[4096];
    if (list == NULL || list[0] == '\0')
        return 1;
    while (*list != '\0') {
        size_t n = strcspn(list, ": ");
        if (n > 0 && n < sizeof entry) {
            memcpy(entry, list, n);
            entry[n] = '\0';
            if (same_file(entry, object))
                return 1;
        }
        list += n + (list[n] != '\0');
    }
    return 0;
}

/* ---- ebb's promise (--check) -------------------------------------------------- */

/* Returns 1 and writes one line to stderr if the row kept more than ebb
 * promises. */
static int breaks_promise(const row_t *row, const result_t *res, const config_t *cfg)
{
    long promise = promise_kib(row, res->live_kib);
    if (!res->ran || res->retained_kib <= promise)
        return 0;
    line_t l = { .len = 0 };
    put_str(&l, "seed: FAIL ");
    put_str(&l, row->group);
    put_str(&l, "/");
    put_str(&l, row->label);
    put_str(&l, ": ");
    put_mib(&l, res->retained_kib);
    put_str(&l, " MiB retained after ");
    put_long(&l, (long)cfg->idle_ms);
    put_str(&l, " ms idle; ebb promises at most ");
    put_mib(&l, promise);
    put_str(&l, row->kind == KIND_SPARSE ? " MiB (2 x live + 4 MiB, live " : " MiB");
    if (row->kind == KIND_SPARSE) {
        put_mib(&l, res->live_kib);
        put_str(&l, " MiB)");
    }
    emit(2, &l);
    return 1;
}

static int check_all(const config_t *cfg)
{
    int failed = 0;
    for (size_t r = 0; r < N_ROWS; r++)
        failed += breaks_promise(&rows[r], &results[r], cfg);
    line_t l = { .len = 0 };
    put_str(&l, failed ? "check\tfail\t" : "check\tok");
    if (failed)
        put_long(&l, failed);
    emit(1, &l);
    return failed ? 1 : 0;
}

/* ---- main -------------------------------------------------------------------- */

static void print_kv(const char *key, const char *text, long num)
{
    line_t l = { .len = 0 };
    put_str(&l, key);
    put_str(&l, "\t");
    if (text != NULL)
        put_str(&l, text);
    else
        put_long(&l, num);
    emit(1, &l);
}

int main(int argc, char **argv)
{
    config_t cfg;
    parse_args(argc, argv, &cfg);
    if (cfg.row != NULL) {
        run_row_here(row_named(cfg.row), &cfg);
        return 0;
    }
    const char *object = malloc_object();
    print_kv("which", object, 0);
    if (cfg.which)
        return 0;
    if (cfg.check && !preload_took_effect(object))
        die("LD_PRELOAD did not take effect; malloc comes from ", object);
    print_kv("idle_ms", NULL, (long)cfg.idle_ms);
    for (size_t r = 0; r < N_ROWS; r++)
        if (row_selected(&rows[r], &cfg) && run_row_apart(&rows[r], &cfg, &results[r]) != 0)
            return 1;
    line_t done = { .len = 0 };
    put_str(&done, "done");
    emit(1, &done);
    return cfg.check ? check_all(&cfg) : 0;
}
