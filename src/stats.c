/* SPDX-License-Identifier: MIT */
/* stats.c - statistics: ebb_stats_get/print/json, and glibc's mallinfo
 * views.
 *
 * Statistics are not counted on the fast paths: they are computed on read
 * by walking every segment under the global lock (page counters of other
 * threads are read racily: a snapshot, exact when the program is quiet). */
#include <errno.h>
#include <stddef.h>
#include <malloc.h>
#include <string.h>

#include "internal.h"
#include "prim.h"

extern _Atomic(uint64_t) _ebb_prim_mmap_calls;
extern _Atomic(uint64_t) _ebb_prim_munmap_calls;

/* ---- ebb_stats ------------------------------------------------------------- */
extern _Atomic(uint64_t) _ebb_prim_madvise_calls;

/* The version-1 struct ended at madvise_calls: programs built against
 * that header pass a struct of this size to the one-argument entry. */
#define EBB_STATS_V1_SIZE offsetof(ebb_stats_t, free_in_live_pages)
static_assert(EBB_STATS_V1_SIZE == 160, "version-1 fields keep their offsets");
/* Version 2 ended at unmapped_total; version 3 appended the layers. */
#define EBB_STATS_V2_SIZE offsetof(ebb_stats_t, small_live)
static_assert(EBB_STATS_V2_SIZE == 184, "version-2 fields keep their offsets");
/* Version 3 ended at oldest_dirty_ms; version 4 appended anon_huge_pages. */
#define EBB_STATS_V3_SIZE offsetof(ebb_stats_t, anon_huge_pages)
static_assert(EBB_STATS_V3_SIZE == 392, "version-3 fields keep their offsets");
static_assert(sizeof(ebb_stats_t) == 400, "version 4 is 400 bytes: a new field is appended and bumps the version");

/* The walk's figures of one kind of page, into its six named fields. */
#define EBB_LAYER_COPY(out, kind, walk, purged)     \
  do {                                               \
    (out)->kind##_live = (walk).live;                \
    (out)->kind##_free = (walk).free;                \
    (out)->kind##_dirty = (walk).dirty;              \
    (out)->kind##_purged_total = (purged);           \
    (out)->kind##_blocks_count = (walk).blocks;      \
    (out)->kind##_pages_count = (walk).pages;        \
  } while (0)

/* `purged`: each layer's counter, read once (budget.c). */
static void layers_fill(ebb_stats_t *out, const ebb_stats_walk_t *walk, const uint64_t purged[EBB_LAYERS]) {
  EBB_LAYER_COPY(out, small, walk->kinds[EBB_PAGE_SMALL], purged[EBB_PAGE_SMALL]);
  EBB_LAYER_COPY(out, medium, walk->kinds[EBB_PAGE_MEDIUM], purged[EBB_PAGE_MEDIUM]);
  EBB_LAYER_COPY(out, wide, walk->kinds[EBB_PAGE_WIDE], purged[EBB_PAGE_WIDE]);
  out->large_purged_total = purged[EBB_LAYER_LARGE];
  out->segment_cache_dirty = walk->segment_cache_dirty;
  out->segment_cache_purged_total = purged[EBB_LAYER_SEGMENT_CACHE];
  out->segment_cache_count = walk->segment_cache_count;
  out->large_cache_dirty = walk->large_cache_dirty;
  out->large_cache_purged_total = purged[EBB_LAYER_LARGE_CACHE];
  out->large_cache_count = walk->large_cache_count;
  out->oldest_dirty_ms = walk->oldest_dirty_ms;
  for (unsigned layer = 0; layer < EBB_LAYERS; layer++) out->purged_total += purged[layer];
}

/* dirty is the walk's, added up beside the layers' (under the lock for
 * the caches, racily for other threads' pages), rather than the budget's
 * count, which moves without the lock: the layers of a snapshot taken
 * while the program runs add up to it all the same. Quiet, the two agree
 * (EBB_DEBUG=3 checks it at ebb_collect(true)). purged_total adds up the
 * layers' counters for the same reason. */
static void stats_fill(ebb_stats_t *out) {
  memset(out, 0, sizeof(*out));
  out->version = EBB_STATS_VERSION;
  out->size = sizeof(*out);
  ebb_stats_walk_t walk;
  memset(&walk, 0, sizeof(walk));
  walk.now_ms = _ebb_purge_clock_ms();
  int pagemap = _ebb_prim_pagemap_open(); /* opened outside the lock */
  _ebb_lock();
  _ebb_segment_stats(out, &walk);
  _ebb_large_cache_stats_locked(out, &walk);
  _ebb_heap_stats(out);
  if (pagemap >= 0) out->anon_huge_pages = _ebb_segment_huge_bytes_locked(pagemap);
  _ebb_unlock();
  if (pagemap >= 0) _ebb_prim_close(pagemap);
  /* Its parts first: a release counts its layer before them (budget.c). */
  out->purged_lazy_total = atomic_load_explicit(&_ebb_lazy_total, memory_order_relaxed);
  out->unmapped_total = atomic_load_explicit(&_ebb_unmapped_total, memory_order_relaxed);
  uint64_t purged[EBB_LAYERS];
  for (unsigned layer = 0; layer < EBB_LAYERS; layer++)
    purged[layer] = atomic_load_explicit(&_ebb_purged_by_layer[layer], memory_order_relaxed);
  layers_fill(out, &walk, purged);
  out->mapped += _ebb_os_stranded_bytes(); /* decommitted: mapped, never resident */
  out->free_in_pages = out->free_in_live_pages + out->free_in_empty_pages;
  out->resident = out->live + out->free_in_pages + out->segment_cache + out->large_cache + out->metadata;
  out->purged_or_untouched = out->mapped > out->resident ? out->mapped - out->resident : 0;
  out->mmap_calls = atomic_load_explicit(&_ebb_prim_mmap_calls, memory_order_relaxed);
  out->munmap_calls = atomic_load_explicit(&_ebb_prim_munmap_calls, memory_order_relaxed);
  out->madvise_calls = atomic_load_explicit(&_ebb_prim_madvise_calls, memory_order_relaxed);
}

/* Copies the whole fields that fit in `size` bytes of the caller's struct:
 * a program built against an older header knows a prefix of the fields
 * and gave room for that prefix only. */
static bool stats_copy(ebb_stats_t *out, size_t size, uint32_t version) {
  if (out == NULL || size < offsetof(ebb_stats_t, live)) {
    errno = EINVAL;
    return false;
  }
  ebb_stats_t full;
  stats_fill(&full);
  size_t filled = size >= sizeof(full) ? sizeof(full)
                                       : offsetof(ebb_stats_t, live) +
                                             (size - offsetof(ebb_stats_t, live)) / sizeof(uint64_t) * sizeof(uint64_t);
  full.version = version;
  full.size = (uint32_t)filled;
  memcpy(out, &full, filled);
  return true;
}

ebb_export bool ebb_stats_get_sized(ebb_stats_t *out, size_t size) {
  return stats_copy(out, size, EBB_STATS_VERSION);
}

/* The entry that binaries built against the one-argument header call. It
 * cannot know the caller's size, so it fills the version-1 struct, and
 * says so (version 1), for ever. A new symbol for the sized call, rather
 * than ELF symbol versioning: the library is built without a version
 * script, also as a static library and by plain CMake, and the name keeps
 * the two forms apart for dlsym users too. Parenthesised: the header's
 * macro maps the two-argument calls to ebb_stats_get_sized. */
ebb_export bool(ebb_stats_get)(ebb_stats_t *out) { return stats_copy(out, EBB_STATS_V1_SIZE, 1); }

static bool ends_with(const char *name, const char *suffix) {
  size_t n = strlen(name), k = strlen(suffix);
  return n > k && strcmp(name + (n - k), suffix) == 0;
}

static bool is_count(const char *name) { return ends_with(name, "_count") || ends_with(name, "_calls"); }

/* Text lines go out with one write each, formatted on the stack: the
 * exit-time print runs while the program's heap is being torn down. */
static void print_line(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void print_line(int fd, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  size_t n = _ebb_vformat(line, sizeof(line), fmt, ap);
  va_end(ap);
  _ebb_prim_write_fd(fd, line, n < sizeof(line) ? n : sizeof(line) - 1);
}

static void print_field(int fd, const char *name, uint64_t v, const char *help) {
  if (is_count(name)) print_line(fd, "ebb:   %s %zu  (%s)\n", name, (size_t)v, help);
  else if (ends_with(name, "_ms")) print_line(fd, "ebb:   %s %zu ms  (%s)\n", name, (size_t)v, help);
  else print_line(fd, "ebb:   %s %zu KiB  (%s)\n", name, (size_t)(v / 1024), help);
}

/* ---- the layer table ------------------------------------------------------------ */
/* Rows are the layers, columns their figures; a cell is a field's offset
 * in ebb_stats_t, or NO_CELL where the figure does not exist for the
 * layer (large blocks are live whole; caches hold no live block). Large
 * blocks and the caches show fields older than the layers (large_live,
 * large_count, segment_cache, large_cache): they keep their own lines. */
enum { COL_LIVE, COL_FREE, COL_DIRTY, COL_PURGED, COL_BLOCKS, COL_PAGES, COLUMNS };
#define NO_CELL SIZE_MAX
#define CELL(field) offsetof(ebb_stats_t, field)
typedef struct layer_row_s {
  const char *name;
  size_t cell[COLUMNS];
} layer_row_t;

#define PAGE_ROW(kind, title)                                                                          \
  {title,                                                                                              \
   {CELL(kind##_live), CELL(kind##_free), CELL(kind##_dirty), CELL(kind##_purged_total),              \
    CELL(kind##_blocks_count), CELL(kind##_pages_count)}}
static const layer_row_t layer_rows[] = {
    PAGE_ROW(small, "small pages"),
    PAGE_ROW(medium, "medium pages"),
    PAGE_ROW(wide, "wide pages"),
    {"large blocks", {CELL(large_live), NO_CELL, NO_CELL, CELL(large_purged_total), CELL(large_count), NO_CELL}},
    {"segment cache",
     {NO_CELL, CELL(segment_cache), CELL(segment_cache_dirty), CELL(segment_cache_purged_total),
      CELL(segment_cache_count), NO_CELL}},
    {"large cache",
     {NO_CELL, CELL(large_cache), CELL(large_cache_dirty), CELL(large_cache_purged_total), CELL(large_cache_count),
      NO_CELL}},
};
static const char *const column_titles[COLUMNS] = {"live KiB", "free KiB", "dirty KiB", "purged KiB", "blocks", "pages"};
#define LAYER_NAME_WIDTH 15
#define LAYER_CELL_WIDTH 12

/* A field the table shows and no older version had: it has no line. */
static bool in_table_only(size_t offset) {
  if (offset < EBB_STATS_V2_SIZE) return false;
  for (size_t r = 0; r < sizeof(layer_rows) / sizeof(layer_rows[0]); r++) {
    for (unsigned c = 0; c < COLUMNS; c++) {
      if (layer_rows[r].cell[c] == offset) return true;
    }
  }
  return false;
}

/* Appends text to line (of cap bytes, n used) right-aligned in width, or
 * left-aligned if left. */
static void put_cell(char *line, size_t cap, size_t *n, const char *text, size_t width, bool left) {
  size_t len = strlen(text), pad = len < width ? width - len : 0;
  for (size_t i = 0; i < pad && !left && *n + 1 < cap; i++) line[(*n)++] = ' ';
  for (size_t i = 0; i < len && *n + 1 < cap; i++) line[(*n)++] = text[i];
  for (size_t i = 0; i < pad && left && *n + 1 < cap; i++) line[(*n)++] = ' ';
}

static void print_table_line(int fd, const char *name, const char *const cells[COLUMNS]) {
  char line[256];
  size_t n = 0;
  put_cell(line, sizeof(line), &n, "ebb:   ", 0, true);
  put_cell(line, sizeof(line), &n, name, LAYER_NAME_WIDTH, true);
  for (unsigned c = 0; c < COLUMNS; c++) put_cell(line, sizeof(line), &n, cells[c], LAYER_CELL_WIDTH, false);
  line[n++] = '\n';
  _ebb_prim_write_fd(fd, line, n);
}

static void print_layers(int fd, const ebb_stats_t *st) {
  print_table_line(fd, "by layer", column_titles);
  for (size_t r = 0; r < sizeof(layer_rows) / sizeof(layer_rows[0]); r++) {
    char text[COLUMNS][24];
    const char *cells[COLUMNS];
    for (unsigned c = 0; c < COLUMNS; c++) {
      size_t at = layer_rows[r].cell[c];
      uint64_t v = 0;
      if (at != NO_CELL) memcpy(&v, (const char *)st + at, sizeof(v));
      bool bytes = c < COL_BLOCKS;
      if (at == NO_CELL) _ebb_format(text[c], sizeof(text[c]), "-");
      else _ebb_format(text[c], sizeof(text[c]), "%zu", (size_t)(bytes ? v / 1024 : v));
      cells[c] = text[c];
    }
    print_table_line(fd, layer_rows[r].name, cells);
  }
  print_line(fd, "ebb:   (blocks: live blocks; of large blocks and the caches, their mappings. pages: pages holding a "
                 "size class)\n");
}

static void print_stats(int fd) {
  ebb_stats_t st;
  ebb_stats_get(&st, sizeof st);
  print_line(fd, "ebb: statistics (ebb %s, pid %u)\n", ebb_version(), (unsigned)_ebb_prim_pid());
#define EBB_PRINT_FIELD(name, help) \
  if (!in_table_only(offsetof(ebb_stats_t, name))) print_field(fd, #name, st.name, help);
  EBB_STATS_FIELDS(EBB_PRINT_FIELD)
#undef EBB_PRINT_FIELD
  print_layers(fd, &st);
}

ebb_export void ebb_stats_print(void) { print_stats(2); }

/* "%p" becomes the process id, "%%" a "%"; false if the result does not
 * fit. */
static bool expand_path(const char *path, char *out, size_t cap) {
  size_t n = 0;
  for (const char *s = path; *s != 0; s++) {
    char num[16];
    const char *piece = num;
    if (s[0] == '%' && s[1] == 'p') {
      _ebb_format(num, sizeof(num), "%u", (unsigned)_ebb_prim_pid());
      s++;
    } else {
      num[0] = *s;
      num[1] = 0;
      if (s[0] == '%' && s[1] == '%') s++;
    }
    size_t len = strlen(piece);
    if (n + len >= cap) return false;
    memcpy(out + n, piece, len);
    n += len;
  }
  out[n] = 0;
  return true;
}

void _ebb_stats_print_to_file(const char *path) {
  char name[4096];
  if (!expand_path(path, name, sizeof(name))) {
    _ebb_message("ebb: error: EBB_STATS_FILE is too long (at most %zu bytes)\n", sizeof(name) - 1);
    return;
  }
  int fd = _ebb_prim_open_append(name);
  if (fd < 0) {
    _ebb_message("ebb: error: EBB_STATS_FILE: cannot open %s (errno %d)\n", name, errno);
    return;
  }
  print_stats(fd);
  _ebb_prim_close(fd);
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
  ebb_stats_get(&st, sizeof st);
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
  ebb_stats_get(&st, sizeof st);
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

/* ---- malloc_info ---------------------------------------------------------------- */
/* glibc's XML shape with ebb's figures. One <heap nr="0"> for the process:
 * ebb's pages move between thread heaps (a thread's exit abandons them,
 * another adopts them) and only a heap's owner may walk its queues, so the
 * size classes are read from the segments, as the statistics are. In each
 * <size>, count and total are the free blocks of the class (glibc's free
 * chunks), in pages in use. Figures are gathered under the global lock,
 * into the stack; the lines are written after it is released (fwrite may
 * allocate the stream's buffer, from any thread), one formatted line at a
 * time. */
typedef struct info_out_s {
  FILE *fp;
  bool failed;
} info_out_t;

static void info_line(info_out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void info_line(info_out_t *o, const char *fmt, ...) {
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  size_t n = _ebb_vformat(line, sizeof(line), fmt, ap);
  va_end(ap);
  if (n >= sizeof(line)) n = sizeof(line) - 1;
  if (!o->failed && fwrite(line, 1, n, o->fp) != n) o->failed = true;
}

/* The free blocks of every class in use, as <size> lines; returns their count. */
static uint64_t info_sizes(info_out_t *o, const ebb_bin_stats_t *bins) {
  uint64_t count = 0;
  info_line(o, "<sizes>\n");
  for (unsigned bin = 1; bin <= EBB_BIN_MAX; bin++) {
    if (bins[bin].free_blocks + bins[bin].live_blocks == 0) continue;
    size_t from = bin == 1 ? 1 : _ebb_bin_size(bin - 1) + 1, to = _ebb_bin_size(bin);
    info_line(o, "  <size from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n", from, to,
              (size_t)(bins[bin].free_blocks * to), (size_t)bins[bin].free_blocks);
    count += bins[bin].free_blocks;
  }
  info_line(o, "</sizes>\n");
  return count;
}

/* The totals glibc prints for a heap and again for the process. */
static void info_totals(info_out_t *o, const ebb_stats_t *st, uint64_t free_count, bool process) {
  info_line(o, "<total type=\"fast\" count=\"0\" size=\"0\"/>\n");
  info_line(o, "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n", (size_t)free_count,
            (size_t)(st->free_in_pages + st->segment_cache + st->large_cache));
  if (process) info_line(o, "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n", (size_t)st->large_count,
                         (size_t)st->large_live);
  info_line(o, "<system type=\"current\" size=\"%zu\"/>\n", (size_t)st->mapped);
  info_line(o, "<system type=\"max\" size=\"%zu\"/>\n",
            (size_t)atomic_load_explicit(&_ebb_os_mapped_peak, memory_order_relaxed));
  info_line(o, "<aspace type=\"total\" size=\"%zu\"/>\n", (size_t)st->mapped);
  info_line(o, "<aspace type=\"mprotect\" size=\"%zu\"/>\n", (size_t)st->mapped);
}

/* "rest" counts the free blocks of the classes, the cached segments and
 * the cached large blocks; its size is every free resident byte
 * (free_in_pages + segment_cache + large_cache). */
ebb_export int ebb_malloc_info(int options, FILE *fp) {
  if (options != 0 || fp == NULL) {
    errno = EINVAL;
    return -1;
  }
  _ebb_init_process();
  ebb_bin_stats_t bins[EBB_BIN_MAX + 1];
  memset(bins, 0, sizeof(bins));
  _ebb_lock();
  _ebb_segment_bin_stats(bins);
  _ebb_unlock();
  ebb_stats_t st;
  ebb_stats_get(&st, sizeof st);
  info_out_t o = {fp, false};
  info_line(&o, "<malloc version=\"1\">\n<heap nr=\"0\">\n");
  uint64_t free_count = info_sizes(&o, bins) + _ebb_segment_cache_count() + _ebb_large_cache_count();
  info_totals(&o, &st, free_count, false);
  info_line(&o, "</heap>\n");
  info_totals(&o, &st, free_count, true);
  info_line(&o, "</malloc>\n");
  if (o.failed) {
    if (errno == 0) errno = EIO;
    return -1;
  }
  return 0;
}
EBB_STD(malloc_info, ebb_malloc_info);

/* ---- how a size is served (ebb_size_info) ----------------------------------- */
static const char *tier_of_block(size_t block) {
  return block <= EBB_SMALL_OBJ_MAX ? "small" : block <= EBB_MEDIUM_OBJ_MAX ? "medium" : "wide";
}

static size_t page_of_tier(const char *tier) {
  return tier[0] == 's' ? (size_t)1 << EBB_SMALL_PAGE_SHIFT
         : tier[0] == 'm' ? (size_t)1 << EBB_MEDIUM_PAGE_SHIFT
                          : EBB_SEGMENT_SIZE;
}

/* The same decisions malloc makes (alloc.c: above the large threshold, a
 * mapping of its own; else the size class of _ebb_bin), from the same
 * functions and the same option, so the answer cannot drift from them. */
ebb_export bool ebb_size_info(size_t request, ebb_size_info_t *out, size_t size) {
  _ebb_init_process();
  if (out == NULL || size < sizeof(uint32_t) * 2) {
    errno = EINVAL;
    return false;
  }
  if (request > PTRDIFF_MAX) {
    errno = ENOMEM;
    return false;
  }
  ebb_size_info_t info = {0};
  info.request = request;
  info.large_threshold = EBB_LOAD(_ebb_large_threshold);
  info.purge_delay_ms = (uint64_t)_ebb_option(EBB_OPT_PURGE_DELAY_MS);
  if (request > info.large_threshold) {
    info.tier = "large";
    info.block = (request + EBB_OS_PAGE - 1) & ~(uint64_t)(EBB_OS_PAGE - 1);
    info.page = info.block + EBB_LARGE_HEADER_SIZE;
    info.blocks_per_page = 1;
  } else {
    info.block = _ebb_bin_size(_ebb_bin(request));
    info.tier = tier_of_block(info.block);
    info.page = page_of_tier(info.tier);
    info.blocks_per_page = info.page / info.block;
  }
  size = size >= sizeof(info) ? sizeof(info) : size & ~(sizeof(uint64_t) - 1); /* whole fields */
  info.size = (uint32_t)size;
  memcpy(out, &info, size);
  return true;
}
