/* SPDX-License-Identifier: MIT */
/* report.c - a run's series drawn and written: the terminal chart (block
 * characters), SVG, a self-contained HTML page, JSON and CSV. */
#include <errno.h>

#include "runner.h"

static const char *const colors[] = {"#d62728", "#1f77b4", "#17becf", "#2ca02c", "#ff7f0e",
                                     "#9467bd", "#8c564b", "#7f7f7f", "#e377c2", "#bcbd22"};
#define COLOR(i) colors[(i) % (sizeof(colors) / sizeof(colors[0]))]

uint64_t series_value(const sample_t *x, size_t field) {
  switch (field) {
  case CURVE_RSS: return x->rss;
  case CURVE_LIVE: return x->st.live;
  case CURVE_LIVE_META: return x->st.live + x->st.metadata;
  case CURVE_FREE: return x->st.free_in_pages + x->st.segment_cache + x->st.large_cache;
  case CURVE_DIRTY: return x->st.dirty;
  case CURVE_LAZYFREE: return x->lazyfree;
  case CURVE_ANON_HUGE: return x->anon_huge;
  case CURVE_CGROUP: return x->cgroup;
  default: return 0;
  }
}

static bool curve_has_data(const series_t *s, size_t field) {
  for (size_t i = 0; i < s->n; i++)
    if (series_value(&s->v[i], field) != 0) return true;
  return false;
}

size_t run_curves(const run_result_t *r, curve_t *out, size_t cap) {
  static const struct {
    const char *name;
    size_t field;
    bool always;
  } all[] = {{"RSS", CURVE_RSS, true},          {"live", CURVE_LIVE, false},
             {"live + metadata", CURVE_LIVE_META, false}, {"free in pages + caches", CURVE_FREE, false},
             {"dirty", CURVE_DIRTY, false},     {"LazyFree", CURVE_LAZYFREE, false},
             {"AnonHugePages", CURVE_ANON_HUGE, false}};
  /* The cgroup's usage is left out: it counts every process of the cgroup,
   * often far above this one (the JSON and CSV have it). */
  size_t n = 0;
  for (size_t i = 0; i < sizeof(all) / sizeof(all[0]) && n < cap; i++)
    if (all[i].always || curve_has_data(&r->series, all[i].field))
      out[n++] = (curve_t){all[i].name, &r->series, all[i].field};
  return n;
}

static void curves_range(const curve_t *c, size_t n, double *t_max, uint64_t *v_max) {
  *t_max = 1;
  *v_max = 1;
  for (size_t k = 0; k < n; k++)
    for (size_t i = 0; i < c[k].series->n; i++) {
      const sample_t *x = &c[k].series->v[i];
      if (x->t_ms > *t_max) *t_max = x->t_ms;
      uint64_t v = series_value(x, c[k].field);
      if (v > *v_max) *v_max = v;
    }
}

/* The largest value of a curve in the time column [t0, t1), or the last before it. */
static uint64_t column_value(const curve_t *c, double t0, double t1) {
  uint64_t best = 0, last = 0;
  bool any = false;
  for (size_t i = 0; i < c->series->n; i++) {
    const sample_t *x = &c->series->v[i];
    if (x->t_ms < t0) last = series_value(x, c->field);
    else if (x->t_ms < t1) {
      uint64_t v = series_value(x, c->field);
      if (!any || v > best) best = v;
      any = true;
    }
  }
  return any ? best : last;
}

void chart_terminal(FILE *f, const curve_t *curves, size_t n, int width, int rows) {
  static const char *const eighths[] = {" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  double t_max;
  uint64_t v_max;
  char b[32];
  curves_range(curves, n, &t_max, &v_max);
  for (size_t k = 0; k < n; k++) {
    fprintf(f, "%s (top of the band: %s)\n", curves[k].name, fmt_bytes(b, sizeof(b), v_max));
    for (int row = rows - 1; row >= 0; row--) {
      fprintf(f, "  \033[3%dm", (int)(k % 6) + 1);
      for (int col = 0; col < width; col++) {
        uint64_t v = column_value(&curves[k], t_max * col / width, t_max * (col + 1) / width);
        int level = (int)((double)v / (double)v_max * rows * 8 + 0.5) - row * 8;
        fputs(eighths[level < 0 ? 0 : level > 8 ? 8 : level], f);
      }
      fputs("\033[0m\n", f);
    }
  }
  fprintf(f, "  0 s%*s%.2f s\n", width - 8, "", t_max / 1e3);
}

void chart_terminal_overlay(FILE *f, const curve_t *curves, size_t n, int width, int rows) {
  double t_max;
  uint64_t v_max;
  char b[32];
  curves_range(curves, n, &t_max, &v_max);
  char grid[32][160];
  if (rows > 32) rows = 32;
  if (width > 150) width = 150;
  for (int r = 0; r < rows; r++) memset(grid[r], ' ', (size_t)width), grid[r][width] = 0;
  for (size_t k = 0; k < n; k++)
    for (int col = 0; col < width; col++) {
      uint64_t v = column_value(&curves[k], t_max * col / width, t_max * (col + 1) / width);
      int r = (int)((double)v / (double)v_max * (rows - 1) + 0.5);
      char *cell = &grid[rows - 1 - r][col];
      *cell = *cell == ' ' || *cell == curves[k].name[0] ? curves[k].name[0] : '*'; /* '*': curves meet */
    }
  fprintf(f, "RSS over time (top row: %s)\n", fmt_bytes(b, sizeof(b), v_max));
  for (int r = 0; r < rows; r++) fprintf(f, "  |%s\n", grid[r]);
  fprintf(f, "  +%.*s\n  0 s%*s%.2f s\n  ", width, "----------------------------------------------------------"
          "----------------------------------------------------------------------------------------------------",
          width - 8, "", t_max / 1e3);
  for (size_t k = 0; k < n; k++) fprintf(f, "%c = %s, ", curves[k].name[0], curves[k].name);
  fputs("* = several\n", f);
}

static void svg_escape(FILE *f, const char *text) {
  html_escape(f, text);
}

/* Grid lines with their labels (MiB and seconds). */
static void svg_axes(FILE *f, double t_max, uint64_t v_max, int x0, int y0, int w, int h) {
  char b[32];
  for (int i = 0; i <= 4; i++) {
    int y = y0 + h - h * i / 4;
    fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#ddd\"/>\n", x0, y, x0 + w, y);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"end\">%s</text>\n", x0 - 4, y + 4,
            fmt_bytes(b, sizeof(b), (uint64_t)((double)v_max * i / 4)));
    int x = x0 + w * i / 4;
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%.2f s</text>\n", x, y0 + h + 14,
            t_max * i / 4 / 1e3);
  }
  fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#888\"/>\n", x0, y0, w, h);
}

void chart_svg(FILE *f, const curve_t *curves, size_t n, const char *title) {
  const int W = 820, x0 = 80, y0 = 30, w = 720, h = 260, legend_y = y0 + h + 36;
  int H = legend_y + 18 * (int)((n + 2) / 3) + 8;
  double t_max;
  uint64_t v_max;
  curves_range(curves, n, &t_max, &v_max);
  fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
             "font-family=\"sans-serif\">\n<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>\n", W, H, W, H, W, H);
  fprintf(f, "<text x=\"%d\" y=\"18\" font-size=\"14\">", x0);
  svg_escape(f, title);
  fputs("</text>\n", f);
  svg_axes(f, t_max, v_max, x0, y0, w, h);
  for (size_t k = n; k-- > 0;) { /* the first curves (RSS, live) drawn last, on top */
    fprintf(f, "<polyline class=\"series\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", COLOR(k));
    for (size_t i = 0; i < curves[k].series->n; i++) {
      const sample_t *x = &curves[k].series->v[i];
      fprintf(f, "%.1f,%.1f ", x0 + x->t_ms / t_max * w,
              y0 + h - (double)series_value(x, curves[k].field) / (double)v_max * h);
    }
    fputs("\"/>\n", f);
    int lx = x0 + 240 * (int)(k % 3), ly = legend_y + 18 * (int)(k / 3);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"4\" fill=\"%s\"/>\n", lx, ly - 5, COLOR(k));
    fprintf(f, "<text class=\"legend\" x=\"%d\" y=\"%d\" font-size=\"12\">", lx + 20, ly);
    svg_escape(f, curves[k].name);
    fputs("</text>\n", f);
  }
  fputs("</svg>\n", f);
}

static void json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
    else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
    else fputc(*s, f);
  }
  fputc('"', f);
}

static void json_sample(FILE *f, const sample_t *x) {
  fprintf(f, "{\"t_ms\": %.1f, \"rss\": %llu, \"vm_hwm\": %llu, \"anonymous\": %llu, \"lazyfree\": %llu, \"anon_huge_pages\": %llu, "
             "\"cgroup\": %llu, \"cpu_ns\": %llu, \"ebb\": ", x->t_ms, (unsigned long long)x->rss,
          (unsigned long long)x->hwm,
          (unsigned long long)x->anon, (unsigned long long)x->lazyfree, (unsigned long long)x->anon_huge,
          (unsigned long long)x->cgroup, (unsigned long long)x->cpu_ns);
  if (x->has_snapshot) stats_print_json(f, &x->st);
  else fputs("null", f);
  fputc('}', f);
}

void write_json(FILE *f, const run_result_t *r, const summary_t *m, double interval_ms) {
  char verdict[256];
  verdict_line(m, interval_ms, verdict, sizeof(verdict));
  fprintf(f, "{\"pid\": %d, \"interval_ms\": %.0f, \"start_monotonic_ms\": %.3f, \"wall_ms\": %.1f, "
             "\"exit_code\": %d, \"verdict\": ", (int)r->pid, interval_ms, r->start_ms, r->wall_ms, exit_code_of(r->status));
  json_string(f, verdict);
  fprintf(f, ",\n \"summary\": {\"peak_rss\": %llu, \"peak_rss_hwm\": %llu, \"final_rss\": %llu, \"peak_live\": %llu, "
             "\"free_resident_peak\": %llu, \"free_resident_longest_ms\": %.0f, \"purged_total\": %llu, "
             "\"drops\": %zu, \"drops_unsettled\": %zu, \"worst_lag_ms\": %.0f, \"children_not_followed\": %zu},\n "
             "\"samples\": [\n",
          (unsigned long long)m->peak_rss, (unsigned long long)m->hwm_rss, (unsigned long long)m->final_rss,
          (unsigned long long)m->peak_live,
          (unsigned long long)m->free_resident_peak, m->free_resident_longest_ms,
          (unsigned long long)m->purged_total, m->drops, m->drops_unsettled, m->worst_lag_ms, r->children_n);
  for (size_t i = 0; i < r->series.n; i++) {
    fputs("  ", f);
    json_sample(f, &r->series.v[i]);
    fputs(i + 1 < r->series.n ? ",\n" : "\n", f);
  }
  fputs(" ]}\n", f);
}

void write_csv(FILE *f, const series_t *s) {
  fputs("t_ms,rss,anonymous,lazyfree,anon_huge_pages,cgroup,cpu_ns,has_snapshot", f);
  for (size_t k = 0; k < stat_field_count; k++) fprintf(f, ",%s", stat_fields[k].name);
  fputc('\n', f);
  for (size_t i = 0; i < s->n; i++) {
    const sample_t *x = &s->v[i];
    fprintf(f, "%.1f,%llu,%llu,%llu,%llu,%llu,%llu,%d", x->t_ms, (unsigned long long)x->rss,
            (unsigned long long)x->anon, (unsigned long long)x->lazyfree, (unsigned long long)x->anon_huge,
            (unsigned long long)x->cgroup, (unsigned long long)x->cpu_ns, x->has_snapshot);
    for (size_t k = 0; k < stat_field_count; k++) {
      if (x->has_snapshot && stat_field_present(&x->st, k))
        fprintf(f, ",%llu", (unsigned long long)stat_field_value(&x->st, k));
      else fputs(",", f);
    }
    fputc('\n', f);
  }
}

void html_escape(FILE *f, const char *text) {
  for (; *text; text++) {
    switch (*text) {
    case '<': fputs("&lt;", f); break;
    case '>': fputs("&gt;", f); break;
    case '&': fputs("&amp;", f); break;
    case '"': fputs("&quot;", f); break;
    default: fputc(*text, f);
    }
  }
}

void html_head(FILE *f, const char *title) {
  fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>", f);
  html_escape(f, title);
  fputs("</title>\n<style>body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f4f4f4}"
        "td.n{text-align:right}</style></head><body>\n<h1>", f);
  html_escape(f, title);
  fputs("</h1>\n", f);
}

/* The last snapshot's statistics by layer, as a table (ebb.h version 3). */
static void html_layer_table(FILE *f, const series_t *s) {
  const sample_t *last = NULL;
  for (size_t i = s->n; i-- > 0 && last == NULL;)
    if (s->v[i].has_snapshot) last = &s->v[i];
  fputs("<h2>By layer (the last snapshot)</h2>\n", f);
  if (last == NULL || !layers_present(&last->st)) {
    fputs(last ? "<p id=\"layers\">This ebb publishes no statistics by layer (its statistics are older than version 3).</p>\n"
               : "<p id=\"layers\">No ebb snapshot: no statistics by layer.</p>\n", f);
    return;
  }
  fputs("<table id=\"layers\"><tr><th>layer</th>", f);
  for (size_t c = 0; c < LAYER_COLUMNS; c++) fprintf(f, "<th>%s</th>", layer_columns[c]);
  fputs("</tr>\n", f);
  for (size_t r = 0; r < LAYER_ROWS; r++) {
    fprintf(f, "<tr><td>%s</td>", layer_names[r]);
    for (size_t c = 0; c < LAYER_COLUMNS; c++) {
      uint64_t v;
      char b[32];
      if (!layer_cell(&last->st, r, c, &v)) snprintf(b, sizeof(b), "-");
      else if (c == LAYER_COLUMNS - 1) snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
      else fmt_bytes(b, sizeof(b), v);
      fprintf(f, "<td class=\"n\">%s</td>", b);
    }
    fputs("</tr>\n", f);
  }
  fputs("</table>\n<p>free: of a cache, the resident bytes it holds; count: pages holding a size class, live "
        "large blocks, or cached mappings.</p>\n", f);
}

void write_html_run(FILE *f, const run_result_t *r, const summary_t *m, const curve_t *c, size_t n,
                    double interval_ms) {
  char verdict[256];
  summary_row_t rows[16];
  verdict_line(m, interval_ms, verdict, sizeof(verdict));
  html_head(f, "ebb run: memory over time");
  fputs("<p id=\"verdict\"><b>", f);
  html_escape(f, verdict);
  fputs("</b></p>\n", f);
  chart_svg(f, c, n, "RSS and ebb's figures over time");
  fputs("<h2>Summary</h2>\n<table id=\"summary\">\n", f);
  size_t k = summary_rows(m, r, rows, 16);
  for (size_t i = 0; i < k; i++) {
    fputs("<tr><th>", f);
    html_escape(f, rows[i].label);
    fputs("</th><td>", f);
    html_escape(f, rows[i].value);
    fputs("</td></tr>\n", f);
  }
  fputs("</table>\n", f);
  html_layer_table(f, &r->series);
  fputs("</body></html>\n", f);
}

FILE *open_output(const char *path) {
  FILE *f = fopen(path, "we");
  if (f == NULL) cli_error("cannot write %s: %s", path, strerror(errno));
  return f;
}

bool close_output(FILE *f, const char *path) {
  bool ok = !ferror(f);
  if (fclose(f) != 0) ok = false;
  if (!ok) cli_error("writing %s failed: %s", path, strerror(errno));
  return ok;
}
