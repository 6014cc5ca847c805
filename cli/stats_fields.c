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
