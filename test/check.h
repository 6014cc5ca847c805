/* SPDX-License-Identifier: MIT */
/* test/check.h - the checks of every C test: each CHECK is counted, each
 * failure is one line on stderr, and check_summary() prints the one
 * summary line on stdout and gives the exit status.
 *
 *   if (!CHECK(p != NULL)) return;             evaluates to the outcome
 *   CHECK_MSG(n >= 4, "got %zu blocks", n);    printf-style; the arguments
 *                                              are evaluated only on failure
 *   CHECK_EQ(rc, 0);                           integers; prints both values
 *   REQUIRE(ok); REQUIRE_MSG(ok, "id %u", id); a failure aborts the process
 *   check_context("case %c", 'a');             "[case a]" in each failure
 *   check_failures()                           failed CHECKs so far
 *   return check_summary("test_api");          0 if nothing failed, else 1
 *   return check_summary_as(name, rc);         ... else rc (CHECK_SKIP: 77)
 *
 * A failure line: "file.c:123: [context] CHECK failed: <expr> -- <message>".
 * After CHECK_MAX_PRINTED failures the rest are counted, not printed.
 * REQUIRE is for a failure the test cannot go on after (in a thread, in
 * the middle of a content check): a REQUIRE that holds is not counted, so
 * it costs nothing in a hot loop; check_fatal() is its failure, to call
 * directly when what failed is not one expression.
 *
 * Concurrency: the counters are atomics and each line is written with one
 * write(2), so threads may check at once; the context is set while only
 * one thread runs and is read-only afterwards. No allocator call: lines
 * are formatted on the stack (some tests check at moments the allocator
 * must not be called). Header-only, static: each test is one file. */
#ifndef EBB_TEST_CHECK_H
#define EBB_TEST_CHECK_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define CHECK_MAX_PRINTED 60 /* failure lines printed at the most */
#define CHECK_SKIP 77        /* exit status of a skipped test (CTest's SKIP_RETURN_CODE) */

static atomic_int check_count;    /* CHECKs evaluated */
static atomic_int check_failed;   /* ... of which failed */
static char check_context_text[160]; /* printed as "[text] " when not empty */

/* Sets the context of the failure lines that follow (printf-style); NULL
 * clears it. */
__attribute__((format(printf, 1, 2))) static inline void check_context(const char *fmt, ...) {
  check_context_text[0] = 0;
  if (fmt == NULL) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(check_context_text, sizeof check_context_text, fmt, ap);
  va_end(ap);
}

static inline int check_failures(void) { return atomic_load(&check_failed); }

/* Writes "file:line: [context] <kind> failed: <expr>[ -- <message>]\n";
 * an empty message adds nothing. */
static inline void check_report(const char *kind, const char *file, int line, const char *expr, const char *fmt,
                                va_list ap) {
  char buf[1024], msg[768];
  const char *ctx = check_context_text;
  vsnprintf(msg, sizeof msg, fmt, ap);
  int n = snprintf(buf, sizeof buf - 1, "%s:%d: %s%s%s%s failed: %s%s%s", file, line, ctx[0] ? "[" : "", ctx,
                   ctx[0] ? "] " : "", kind, expr, msg[0] ? " -- " : "", msg);
  size_t len = n < 0 ? 0 : (size_t)n < sizeof buf - 2 ? (size_t)n : sizeof buf - 2; /* truncated: room for \n */
  buf[len++] = '\n';
  if (write(STDERR_FILENO, buf, len) < 0) {
    /* nowhere left to say it; the counters and the exit status still do */
  }
}

static inline bool check_pass(void) {
  atomic_fetch_add_explicit(&check_count, 1, memory_order_relaxed);
  return true;
}

/* Counts a failed CHECK and prints its line; false. */
static inline bool check_vfail(const char *file, int line, const char *expr, const char *fmt, va_list ap) {
  atomic_fetch_add_explicit(&check_count, 1, memory_order_relaxed);
  int nth = atomic_fetch_add(&check_failed, 1) + 1;
  if (nth <= CHECK_MAX_PRINTED) check_report("CHECK", file, line, expr, fmt, ap);
  if (nth == CHECK_MAX_PRINTED + 1) {
    static const char more[] = "(further failures counted, not printed)\n";
    if (write(STDERR_FILENO, more, sizeof more - 1) < 0) {
    }
  }
  return false;
}

__attribute__((format(printf, 4, 5))) static inline bool check_fail(const char *file, int line, const char *expr,
                                                                    const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  check_vfail(file, line, expr, fmt, ap);
  va_end(ap);
  return false;
}

/* A failed REQUIRE: its line, then abort (a core, and the signal, for
 * whoever runs the test). Called directly for a failure found by other
 * means than one expression (`what` names what did not hold). */
__attribute__((format(printf, 4, 5))) _Noreturn static inline void check_fatal(const char *file, int line,
                                                                               const char *what, const char *fmt,
                                                                               ...) {
  va_list ap;
  va_start(ap, fmt);
  check_report("REQUIRE", file, line, what, fmt, ap);
  va_end(ap);
  abort();
}

/* CHECK_EQ: a == b as numbers (a negative signed value equals no unsigned
 * one); a failure prints both, each as its type's signedness says. */
static inline bool check_eq(const char *file, int line, const char *expr, bool a_signed, uintmax_t a, bool b_signed,
                            uintmax_t b) {
  bool a_negative = a_signed && (intmax_t)a < 0, b_negative = b_signed && (intmax_t)b < 0;
  if (a == b && a_negative == b_negative) return check_pass();
  char av[24], bv[24];
  snprintf(av, sizeof av, a_signed ? "%jd" : "%ju", a);
  snprintf(bv, sizeof bv, b_signed ? "%jd" : "%ju", b);
  return check_fail(file, line, expr, "%s != %s", av, bv);
}

/* Both evaluate to the outcome, so a test can stop early. */
#define CHECK(cond) ((cond) ? check_pass() : check_fail(__FILE__, __LINE__, #cond, "%s", ""))
#define CHECK_MSG(cond, ...) ((cond) ? check_pass() : check_fail(__FILE__, __LINE__, #cond, __VA_ARGS__))

/* 1 for a signed integer type (after promotion), else 0; x is not evaluated. */
#define CHECK_SIGNED_(x) _Generic((x) + 0, int: 1, long: 1, long long: 1, default: 0)

/* a == b for integers of any types, each evaluated once; a failure prints both. */
#define CHECK_EQ(a, b) \
  check_eq(__FILE__, __LINE__, #a " == " #b, CHECK_SIGNED_(a), (uintmax_t)(a), CHECK_SIGNED_(b), (uintmax_t)(b))

#define REQUIRE(cond) ((cond) ? (void)0 : check_fatal(__FILE__, __LINE__, #cond, "%s", ""))
#define REQUIRE_MSG(cond, ...) ((cond) ? (void)0 : check_fatal(__FILE__, __LINE__, #cond, __VA_ARGS__))

/* Prints "<name>: N checks, M failed: PASS" (FAIL if M > 0; SKIP if not and
 * `status` is CHECK_SKIP) and returns the exit status: 1 if M > 0, else
 * `status`. */
static inline int check_summary_as(const char *name, int status) {
  int n = atomic_load(&check_count), failed = atomic_load(&check_failed);
  const char *verdict = failed > 0 ? "FAIL" : status == CHECK_SKIP ? "SKIP" : "PASS";
  printf("%s: %d checks, %d failed: %s\n", name, n, failed, verdict);
  fflush(stdout);
  return failed > 0 ? 1 : status;
}

static inline int check_summary(const char *name) { return check_summary_as(name, 0); }

#endif /* EBB_TEST_CHECK_H */
