/* SPDX-License-Identifier: MIT */
/* msg.c - messages on stderr: the formatter that never allocates (on the
 * caller's stack), sizes in the units users type and read, verbose output
 * (rate-limited per kind of decision), fatal errors, the assertion handler
 * and the heap misuse reports.
 *
 * Any thread may call these at any time, with any lock held: nothing here
 * allocates or takes a lock; fatal paths only write and abort. The only
 * state is the verbose rate limit's counters, relaxed atomics any thread
 * moves (a line more or less in a second is of no consequence). */
#include "internal.h"
#include "prim.h"

/* ---- formatting ---------------------------------------------------------- */
typedef struct out_s {
  char *buf;
  size_t cap, len;
} out_t;

static void put_char(out_t *o, char c) {
  if (o->len + 1 < o->cap) o->buf[o->len] = c;
  o->len++;
}

static void put_str(out_t *o, const char *s) {
  for (; *s; s++) put_char(o, *s);
}

static void put_uint(out_t *o, unsigned long long v, unsigned base) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v != 0);
  while (n > 0) put_char(o, tmp[--n]);
}

/* Reads one conversion after '%'; returns the advanced format pointer. */
static const char *put_conv(out_t *o, const char *f, va_list *ap) {
  bool z = (*f == 'z');
  if (z) f++;
  switch (*f) {
  case 's': put_str(o, va_arg(*ap, const char *)); break;
  case 'c': put_char(o, (char)va_arg(*ap, int)); break;
  case 'd': {
    long long v = z ? (long long)va_arg(*ap, ptrdiff_t) : va_arg(*ap, int);
    if (v < 0) put_char(o, '-');
    put_uint(o, v < 0 ? (unsigned long long)-v : (unsigned long long)v, 10);
    break;
  }
  case 'u': put_uint(o, z ? va_arg(*ap, size_t) : va_arg(*ap, unsigned), 10); break;
  case 'x': put_uint(o, z ? va_arg(*ap, size_t) : va_arg(*ap, unsigned), 16); break;
  case 'p': put_str(o, "0x"); put_uint(o, (uintptr_t)va_arg(*ap, void *), 16); break;
  case '%': put_char(o, '%'); break;
  default: put_char(o, '?'); break;
  }
  return f + 1;
}

size_t _ebb_vformat(char *buf, size_t cap, const char *fmt, va_list ap) {
  out_t o = {buf, cap, 0};
  va_list aq;
  va_copy(aq, ap);
  while (*fmt) {
    if (*fmt != '%') put_char(&o, *fmt++);
    else fmt = put_conv(&o, fmt + 1, &aq);
  }
  va_end(aq);
  if (cap > 0) buf[o.len < cap ? o.len : cap - 1] = 0;
  return o.len;
}

size_t _ebb_format(char *buf, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t n = _ebb_vformat(buf, cap, fmt, ap);
  va_end(ap);
  return n;
}

static void vmessage(const char *fmt, va_list ap) {
  char buf[512];
  size_t n = _ebb_vformat(buf, sizeof(buf), fmt, ap);
  _ebb_prim_write_stderr(buf, n < sizeof(buf) ? n : sizeof(buf) - 1);
}

void _ebb_message(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vmessage(fmt, ap);
  va_end(ap);
}

/* ---- sizes for people ------------------------------------------------------- */
/* As an option value: the largest of t/g/m/k that divides it exactly
 * ("512k", "1t"), else plain bytes ("100000"). What a user would type. */
const char *_ebb_size_option(char buf[EBB_SIZE_TEXT], unsigned long long bytes) {
  static const char suffix[] = "kmgt";
  int unit = 0;
  while (bytes != 0 && unit < 4 && (bytes & 1023) == 0) {
    bytes >>= 10;
    unit++;
  }
  if (unit == 0) _ebb_format(buf, EBB_SIZE_TEXT, "%zu", (size_t)bytes);
  else _ebb_format(buf, EBB_SIZE_TEXT, "%zu%c", (size_t)bytes, suffix[unit - 1]);
  return buf;
}

/* As an amount: "300 B", "64 KiB", "12.5 MiB" (one decimal, rounded down). */
const char *_ebb_size_human(char buf[EBB_SIZE_TEXT], unsigned long long bytes) {
  static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) {
    _ebb_format(buf, EBB_SIZE_TEXT, "%zu B", (size_t)bytes);
    return buf;
  }
  int u = 0;
  unsigned long long unit = 1024;
  while (u < 3 && bytes >= unit * 1024) {
    unit *= 1024;
    u++;
  }
  size_t whole = (size_t)(bytes / unit), tenth = (size_t)((bytes % unit) * 10 / unit);
  if (tenth == 0) _ebb_format(buf, EBB_SIZE_TEXT, "%zu %s", whole, units[u]);
  else _ebb_format(buf, EBB_SIZE_TEXT, "%zu.%zu %s", whole, tenth, units[u]);
  return buf;
}

/* ---- verbose output ------------------------------------------------------------ */
/* Lines that happen once or rarely (initialisation, the limit found, the
 * purge thread starting): printed as they come. */
void _ebb_verbose(const char *fmt, ...) {
  if (!_ebb_option(EBB_OPT_VERBOSE)) return;
  va_list ap;
  va_start(ap, fmt);
  vmessage(fmt, ap);
  va_end(ap);
}

/* Decisions that can repeat (parks, passes, evictions...): at most
 * VERBOSE_PER_SECOND lines of each kind in a second of the clock; the
 * others are counted, and the count is printed as one line before the
 * next line of that kind that is printed, or at exit. A program that parks
 * a page on every few frees then prints a dozen lines a second, not a
 * million. */
#define VERBOSE_PER_SECOND 10
typedef struct vrate_s {
  _Atomic(uint64_t) second;   /* clock second of the current window; the thread that moves it (CAS) reports */
  _Atomic(uint32_t) printed;  /* lines admitted in that second */
  _Atomic(uint64_t) left_out; /* lines dropped since the last report */
} vrate_t;
static vrate_t vrates[EBB_V_KINDS];
static const char *const vkind_names[EBB_V_KINDS] = {
  [EBB_V_PARK] = "park", [EBB_V_PURGE] = "purge", [EBB_V_BUDGET] = "budget", [EBB_V_LIMIT] = "limit",
  [EBB_V_SEGMENT] = "segment", [EBB_V_LARGE] = "large", [EBB_V_QUIET] = "quiet thread",
};

static void report_left_out(ebb_vkind_t kind) {
  uint64_t n = atomic_exchange_explicit(&vrates[kind].left_out, 0, memory_order_relaxed);
  if (n != 0)
    _ebb_message("ebb: verbose: %zu more %s lines left out (at most %d a second)\n", (size_t)n, vkind_names[kind],
                 VERBOSE_PER_SECOND);
}

static bool vrate_admit(ebb_vkind_t kind) {
  vrate_t *r = &vrates[kind];
  uint64_t now = _ebb_prim_clock_ns() / 1000000000u + 1; /* never 0: the counters start at 0 */
  uint64_t second = atomic_load_explicit(&r->second, memory_order_relaxed);
  if (second != now && atomic_compare_exchange_strong_explicit(&r->second, &second, now, memory_order_relaxed,
                                                               memory_order_relaxed)) {
    atomic_store_explicit(&r->printed, 0, memory_order_relaxed);
    report_left_out(kind);
  }
  if (atomic_fetch_add_explicit(&r->printed, 1, memory_order_relaxed) < VERBOSE_PER_SECOND) return true;
  atomic_fetch_add_explicit(&r->left_out, 1, memory_order_relaxed);
  return false;
}

void _ebb_verbose_rated(ebb_vkind_t kind, const char *fmt, ...) {
  if (!_ebb_verbose_on() || !vrate_admit(kind)) return;
  va_list ap;
  va_start(ap, fmt);
  vmessage(fmt, ap);
  va_end(ap);
}

void _ebb_verbose_flush(void) {
  for (int k = 0; k < EBB_V_KINDS; k++) report_left_out((ebb_vkind_t)k);
}

_Noreturn void _ebb_fatal(const char *what) {
  _ebb_message("ebb: fatal: %s\n", what);
  _ebb_prim_abort();
}

_Noreturn void _ebb_assert_fail(const char *expr, const char *file, int line) {
  _ebb_message("ebb: assertion failed: %s (%s:%d)\n", expr, file, line);
  _ebb_prim_abort();
}

void _ebb_error_double_free(const void *p) {
  _ebb_message("ebb: error: double free of %p\n", p);
  if (_ebb_option(EBB_OPT_ON_ERROR) == 0) _ebb_prim_abort();
}

void _ebb_error_foreign(const char *what, const void *p) {
  _ebb_message("ebb: error: %s of a pointer not allocated by ebb: %p\n", what, p);
  if (_ebb_option(EBB_OPT_ON_ERROR) == 0) _ebb_prim_abort();
}
