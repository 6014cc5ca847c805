/* stats.c - statistics and messages: the formatter that never allocates,
 * error reports, ebb_stats_get/print, and glibc's mallinfo views.
 *
 * Statistics are not counted on the fast paths: they are computed on read
 * by walking every segment under the global lock (page counters of other
 * threads are read racily: a snapshot, exact when the program is quiet). */
#include <errno.h>
#include <malloc.h>
#include <string.h>

#include "internal.h"
#include "prim.h"

extern _Atomic(uint64_t) _ebb_prim_mmap_calls;
extern _Atomic(uint64_t) _ebb_prim_munmap_calls;

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

void _ebb_error_foreign(const char *what, const void *p) {
  _ebb_message("ebb: error: %s of a pointer not allocated by ebb: %p\n", what, p);
  if (_ebb_option(EBB_OPT_ON_ERROR) == 0) _ebb_prim_abort();
}

/* ---- ebb_stats ------------------------------------------------------------- */
ebb_export bool ebb_stats_get(ebb_stats_t *out) {
  if (out == NULL) {
    errno = EINVAL;
    return false;
  }
  memset(out, 0, sizeof(*out));
  out->version = EBB_STATS_VERSION;
  out->size = sizeof(*out);
  _ebb_lock();
  _ebb_segment_stats(out);
  _ebb_heap_stats(out);
  _ebb_unlock();
  out->mmap_calls = atomic_load_explicit(&_ebb_prim_mmap_calls, memory_order_relaxed);
  out->munmap_calls = atomic_load_explicit(&_ebb_prim_munmap_calls, memory_order_relaxed);
  return true;
}

static void print_bytes(const char *label, uint64_t bytes) {
  _ebb_message("ebb:   %s %zu KiB\n", label, (size_t)(bytes / 1024));
}

ebb_export void ebb_stats_print(void) {
  ebb_stats_t st;
  ebb_stats_get(&st);
  _ebb_message("ebb: statistics (ebb %s)\n", ebb_version());
  print_bytes("live            ", st.live);
  print_bytes("  of which large", st.large_live);
  print_bytes("free in pages   ", st.free_in_pages);
  print_bytes("metadata        ", st.metadata);
  print_bytes("mapped          ", st.mapped);
  _ebb_message("ebb:   segments %zu (abandoned %zu), large blocks %zu, heaps %zu\n", (size_t)st.segments_count,
               (size_t)st.abandoned_count, (size_t)st.large_count, (size_t)st.heaps_count);
  _ebb_message("ebb:   mmap calls %zu, munmap calls %zu\n", (size_t)st.mmap_calls, (size_t)st.munmap_calls);
}

/* ---- glibc views --------------------------------------------------------------- */
ebb_export struct mallinfo2 ebb_mallinfo2(void) {
  ebb_stats_t st;
  ebb_stats_get(&st);
  struct mallinfo2 mi;
  memset(&mi, 0, sizeof(mi));
  mi.arena = st.mapped - st.large_live;     /* non-mmapped space: segments */
  mi.ordblks = st.segments_count - st.large_count;
  mi.hblks = st.large_count;                /* mmapped blocks */
  mi.hblkhd = st.large_live;
  mi.uordblks = st.live - st.large_live;    /* in use, segments */
  mi.fordblks = st.free_in_pages;           /* free, segments */
  return mi;
}
EBB_STD(mallinfo2, ebb_mallinfo2);

static int clamp_int(size_t v) { return v > (size_t)INT32_MAX ? INT32_MAX : (int)v; }

ebb_export struct mallinfo ebb_mallinfo(void) {
  struct mallinfo2 m2 = ebb_mallinfo2();
  struct mallinfo mi;
  mi.arena = clamp_int(m2.arena);
  mi.ordblks = clamp_int(m2.ordblks);
  mi.smblks = clamp_int(m2.smblks);
  mi.hblks = clamp_int(m2.hblks);
  mi.hblkhd = clamp_int(m2.hblkhd);
  mi.usmblks = clamp_int(m2.usmblks);
  mi.fsmblks = clamp_int(m2.fsmblks);
  mi.uordblks = clamp_int(m2.uordblks);
  mi.fordblks = clamp_int(m2.fordblks);
  mi.keepcost = clamp_int(m2.keepcost);
  return mi;
}
EBB_STD(mallinfo, ebb_mallinfo);

ebb_export void ebb_malloc_stats(void) { ebb_stats_print(); }
EBB_STD(malloc_stats, ebb_malloc_stats);
