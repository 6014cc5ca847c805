/* SPDX-License-Identifier: MIT */
/* stats_fields.c - the statistics' fields as a table, made from ebb.h's
 * EBB_STATS_FIELDS list: a field appended there (the statistics by layer)
 * appears in every table, JSON and CSV the command writes, and is shown
 * only when the publisher's stats.size covers it. */
#include <stddef.h>

#include "cli.h"

const stat_field_t stat_fields[] = {
#define EBB_CLI_FIELD(name, help) {#name, help, offsetof(ebb_stats_t, name)},
  EBB_STATS_FIELDS(EBB_CLI_FIELD)
#undef EBB_CLI_FIELD
};
const size_t stat_field_count = sizeof(stat_fields) / sizeof(stat_fields[0]);

/* unmapped_total is the last field of version 2 (ebb.h). */
const size_t stat_fields_v2_count =
  (offsetof(ebb_stats_t, unmapped_total) - offsetof(ebb_stats_t, live)) / sizeof(uint64_t) + 1;

bool stat_field_present(const ebb_stats_t *st, size_t i) {
  return stat_fields[i].offset + sizeof(uint64_t) <= st->size;
}

uint64_t stat_field_value(const ebb_stats_t *st, size_t i) {
  uint64_t v;
  memcpy(&v, (const char *)st + stat_fields[i].offset, sizeof(v));
  return v;
}

void stats_print_json(FILE *f, const ebb_stats_t *st) {
  fprintf(f, "{\"version\": %u", st->version);
  for (size_t i = 0; i < stat_field_count; i++)
    if (stat_field_present(st, i))
      fprintf(f, ", \"%s\": %llu", stat_fields[i].name, (unsigned long long)stat_field_value(st, i));
  fputs("}", f);
}

bool stat_by_name(const ebb_stats_t *st, const char *name, uint64_t *out) {
  for (size_t i = 0; i < stat_field_count; i++)
    if (strcmp(stat_fields[i].name, name) == 0 && stat_field_present(st, i)) {
      *out = stat_field_value(st, i);
      return true;
    }
  return false;
}

/* The layers, bottom to top of the size range, and the caches: each row's
 * figures are the fields named <layer>_<column> (a cache's resident bytes
 * are the field named for it). */
const char *const layer_names[LAYER_ROWS] = {"small", "medium", "wide", "large", "segment_cache", "large_cache"};
const char *const layer_columns[LAYER_COLUMNS] = {"live", "free", "dirty", "purged_total", "count"};

bool layer_cell(const ebb_stats_t *st, size_t row, size_t col, uint64_t *out) {
  char name[64];
  const char *column = layer_columns[col];
  bool cache = strstr(layer_names[row], "cache") != NULL;
  if (cache && strcmp(column, "free") == 0) return stat_by_name(st, layer_names[row], out);
  if (strcmp(column, "count") == 0 && !cache && row < 3) column = "pages_count";
  snprintf(name, sizeof(name), "%s_%s", layer_names[row], column);
  return stat_by_name(st, name, out);
}

bool layers_present(const ebb_stats_t *st) {
  uint64_t v;
  return layer_cell(st, 0, 0, &v);
}

void print_layer_table(FILE *f, const ebb_stats_t *st) {
  char b[32];
  fprintf(f, "  %-14s %11s %11s %11s %13s %7s\n", "layer", "live", "free", "dirty", "given back", "count");
  for (size_t r = 0; r < LAYER_ROWS; r++) {
    fprintf(f, "  %-14s", layer_names[r]);
    for (size_t c = 0; c < LAYER_COLUMNS; c++) {
      uint64_t v;
      bool has = layer_cell(st, r, c, &v);
      if (!has) snprintf(b, sizeof(b), "-");
      else if (c == LAYER_COLUMNS - 1) snprintf(b, sizeof(b), "%llu", (unsigned long long)v);
      else fmt_bytes(b, sizeof(b), v);
      fprintf(f, c == 3 ? " %13s" : c == 4 ? " %7s" : " %11s", b);
    }
    fputc('\n', f);
  }
}
