/* SPDX-License-Identifier: MIT */
/* stats.c - statistics: ebb_stats_get/print/json, and glibc's mallinfo
 * views.
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

/* ---- ebb_stats ------------------------------------------------------------- */
extern _Atomic(uint64_t) _ebb_prim_madvise_calls;

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
  out->mapped += _ebb_os_stranded_bytes(); /* decommitted: mapped, never resident */
  out->resident = out->live + out->free_in_pages + out->segment_cache + out->large_cache + out->metadata;
  out->purged_or_untouched = out->mapped > out->resident ? out->mapped - out->resident : 0;
  out->dirty += atomic_load_explicit(&_ebb_dirty_bytes, memory_order_relaxed); /* + pages parked in place */
  out->purged_total = atomic_load_explicit(&_ebb_purged_total, memory_order_relaxed);
  out->purged_lazy_total = atomic_load_explicit(&_ebb_lazy_total, memory_order_relaxed);
  out->mmap_calls = atomic_load_explicit(&_ebb_prim_mmap_calls, memory_order_relaxed);
  out->munmap_calls = atomic_load_explicit(&_ebb_prim_munmap_calls, memory_order_relaxed);
  out->madvise_calls = atomic_load_explicit(&_ebb_prim_madvise_calls, memory_order_relaxed);
  return true;
}

static bool is_count(const char *name) {
  size_t n = strlen(name);
  return (n > 6 && strcmp(name + (n - 6), "_count") == 0) || (n > 6 && strcmp(name + (n - 6), "_calls") == 0);
}

static void print_field(const char *name, uint64_t v, const char *help) {
  if (is_count(name)) _ebb_message("ebb:   %s %zu  (%s)\n", name, (size_t)v, help);
  else _ebb_message("ebb:   %s %zu KiB  (%s)\n", name, (size_t)(v / 1024), help);
}

ebb_export void ebb_stats_print(void) {
  ebb_stats_t st;
  ebb_stats_get(&st);
  _ebb_message("ebb: statistics (ebb %s)\n", ebb_version());
#define EBB_PRINT_FIELD(name, help) print_field(#name, st.name, help);
  EBB_STATS_FIELDS(EBB_PRINT_FIELD)
#undef EBB_PRINT_FIELD
}

/* Appends to a caller's buffer, counting what does not fit. */
typedef struct sink_s {
  char *buf;
  size_t size, len;
} sink_t;

static void sink_put(sink_t *k, const char *text) {
  size_t n = strlen(text);
  if (k->len < k->size) memcpy(k->buf + k->len, text, k->len + n <= k->size ? n : k->size - k->len);
  k->len += n;
}

static void json_field(sink_t *k, const char *name, uint64_t v) {
  char tmp[96];
  _ebb_format(tmp, sizeof(tmp), "%s\"%s\": %zu", k->len > 1 ? ", " : "", name, (size_t)v);
  sink_put(k, tmp);
}

ebb_export size_t ebb_stats_json(char *buf, size_t size) {
  ebb_stats_t st;
  ebb_stats_get(&st);
  sink_t k = {buf, size, 0};
  sink_put(&k, "{");
  json_field(&k, "version", st.version);
#define EBB_JSON_FIELD(name, help) json_field(&k, #name, st.name);
  EBB_STATS_FIELDS(EBB_JSON_FIELD)
#undef EBB_JSON_FIELD
  sink_put(&k, "}\n");
  if (size > 0) buf[k.len < size ? k.len : size - 1] = 0;
  return k.len;
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
