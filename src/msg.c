/* SPDX-License-Identifier: MIT */
/* msg.c - messages on stderr: the formatter that never allocates (on the
 * caller's stack), verbose output, fatal errors, the assertion handler and
 * the heap misuse reports.
 *
 * Stateless: any thread may call these at any time, with any lock held:
 * nothing here allocates or takes a lock; fatal paths only write and
 * abort. */
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

void _ebb_verbose(const char *fmt, ...) {
  if (!_ebb_option(EBB_OPT_VERBOSE)) return;
  va_list ap;
  va_start(ap, fmt);
  vmessage(fmt, ap);
  va_end(ap);
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
