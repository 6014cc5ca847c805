/* SPDX-License-Identifier: MIT */
/* summary.c - what a run's series says, in the figures a person reads in
 * ten seconds, and the verdict: after each drop of live memory, how long
 * the kernel's RSS took to come within the tolerance (1 MiB or 5%,
 * whichever is larger) of what ebb still needs - live + metadata - plus
 * the part of RSS outside ebb's heap (code, stacks, other mappings), taken
 * as it was just before the drop. Free memory that ebb keeps resident far
 * longer than its purge delay makes the verdict say so instead. */
#include "runner.h"

#define MiB (1024ull * 1024)

uint64_t follow_tolerance(uint64_t target) {
  uint64_t pct = target / 20;
  return pct > MiB ? pct : MiB;
}

static uint64_t needed(const sample_t *x) {
  return x->st.live + x->st.metadata;
}

static uint64_t free_resident(const sample_t *x) {
  return x->st.resident > needed(x) ? x->st.resident - needed(x) : 0;
}

/* The kernel figures' peaks, and the final reading. */
static void summarize_kernel(const series_t *s, summary_t *m) {
  for (size_t i = 0; i < s->n; i++) {
    const sample_t *x = &s->v[i];
    if (x->rss > m->peak_rss) {
      m->peak_rss = x->rss;
      m->t_peak_rss = x->t_ms;
    }
    if (x->lazyfree > m->lazyfree_peak) m->lazyfree_peak = x->lazyfree;
    if (x->anon_huge > m->anon_huge_peak) m->anon_huge_peak = x->anon_huge;
    if (x->cgroup > m->cgroup_peak) m->cgroup_peak = x->cgroup;
  }
  if (s->n > 0) m->final_rss = s->v[s->n - 1].rss;
}

/* The kernel's own peak: the last VmHWM read, or the one wait4 gave at
 * exit, which also covers the time after the last sample. */
static void summarize_hwm(const run_result_t *r, summary_t *m) {
  if (r->series.n > 0) m->hwm_rss = r->series.v[r->series.n - 1].hwm;
  if (r->exit_hwm > m->hwm_rss) m->hwm_rss = r->exit_hwm;
}

/* ebb's figures: peaks, the last counters, free-but-resident stretches. */
static void summarize_ebb(const series_t *s, summary_t *m) {
  double above_since = -1;
  for (size_t i = 0; i < s->n; i++) {
    const sample_t *x = &s->v[i];
    if (!x->has_snapshot) continue;
    m->has_snapshot = true;
    if (x->st.live > m->peak_live) {
      m->peak_live = x->st.live;
      m->t_peak_live = x->t_ms;
    }
    uint64_t fr = free_resident(x);
    if (fr > m->free_resident_peak) m->free_resident_peak = fr;
    if (x->st.dirty > m->dirty_peak) m->dirty_peak = x->st.dirty;
    bool above = fr > follow_tolerance(needed(x));
    if (above && above_since < 0) above_since = x->t_ms;
    if (!above) above_since = -1;
    if (above_since >= 0 && x->t_ms - above_since >= m->free_resident_longest_ms) {
      m->free_resident_longest_ms = x->t_ms - above_since;
      m->free_resident_held = fr;
    }
    m->purged_total = x->st.purged_total;
    m->unmapped_total = x->st.unmapped_total;
    m->purged_lazy_total = x->st.purged_lazy_total;
    m->mmap_calls = x->st.mmap_calls;
    m->munmap_calls = x->st.munmap_calls;
    m->madvise_calls = x->st.madvise_calls;
    m->purge_delay_ms = x->purge_delay_ms;
  }
}

/* RSS outside ebb's heap before the drop seen at sample i: the largest
 * rss - resident of the OUTSIDE_SAMPLES before it. The snapshot lags the
 * kernel by up to one publication (a munmap already in RSS, not yet in the
 * statistics), which only makes the difference smaller. */
#define OUTSIDE_SAMPLES 5
static uint64_t outside_heap(const series_t *s, size_t i) {
  uint64_t outside = 0;
  for (size_t k = i; k-- > 0 && k + OUTSIDE_SAMPLES >= i && s->v[k].has_snapshot;) {
    const sample_t *x = &s->v[k];
    if (x->rss > x->st.resident && x->rss - x->st.resident > outside) outside = x->rss - x->st.resident;
  }
  return outside;
}

/* After the drop seen at sample i: the first later sample where RSS is
 * within the tolerance of the target; -1 if none. */
static long settle_index(const series_t *s, size_t i, uint64_t *gap_at_end) {
  uint64_t outside = outside_heap(s, i);
  size_t j = i;
  for (; j < s->n && s->v[j].has_snapshot; j++) {
    uint64_t target = needed(&s->v[j]) + outside;
    if (s->v[j].rss <= target + follow_tolerance(target)) return (long)j;
    *gap_at_end = s->v[j].rss - target;
  }
  return -1;
}

static void summarize_drops(const series_t *s, summary_t *m) {
  for (size_t i = 1; i < s->n; i++) {
    const sample_t *a = &s->v[i - 1], *b = &s->v[i];
    if (!a->has_snapshot || !b->has_snapshot) continue;
    if (a->st.live <= b->st.live || a->st.live - b->st.live <= follow_tolerance(a->st.live)) continue;
    m->drops++;
    uint64_t gap = 0;
    long j = settle_index(s, i, &gap);
    if (j < 0) {
      m->drops_unsettled++;
      if (gap > m->worst_unsettled_gap) m->worst_unsettled_gap = gap;
      continue;
    }
    double lag = s->v[j].t_ms - a->t_ms; /* from the last sample before the drop: an upper bound */
    if (lag >= m->worst_lag_ms) {
      m->worst_lag_ms = lag;
      m->worst_drop_t_ms = a->t_ms;
    }
  }
}

void summarize(const run_result_t *r, summary_t *out) {
  const series_t *s = &r->series;
  *out = (summary_t){0};
  summarize_kernel(s, out);
  summarize_hwm(r, out);
  summarize_ebb(s, out);
  summarize_drops(s, out);
}

/* Longer than this, free memory held resident is not the purge delay at
 * work: five delays (a page may wait up to two, the sampling adds one), and
 * at least 500 ms. */
static double held_too_long_ms(const summary_t *m) {
  double five = 5.0 * (double)m->purge_delay_ms;
  return five > 500 ? five : 500;
}

void verdict_line(const summary_t *m, double interval_ms, char *buf, size_t cap) {
  char b[32];
  if (!m->has_snapshot) {
    snprintf(buf, cap, "no ebb snapshot: the program does not use ebb (another allocator, a static "
                       "malloc), so only the kernel's figures are shown");
  } else if (m->free_resident_longest_ms > held_too_long_ms(m)) {
    snprintf(buf, cap, "RSS kept free memory: ebb held more than 1 MiB or 5%% of live free but resident for %.0f ms "
                       "(the purge delay is %llu ms), still %s at its end", m->free_resident_longest_ms,
             (unsigned long long)m->purge_delay_ms, fmt_bytes(b, sizeof(b), m->free_resident_held));
  } else if (m->drops == 0) {
    snprintf(buf, cap, "live memory never fell by more than 1 MiB or 5%%: nothing to give back");
  } else if (m->drops_unsettled > 0) {
    snprintf(buf, cap, "RSS did not follow live: after %zu of %zu drops it was still %s above live + "
                       "metadata when the program ended", m->drops_unsettled, m->drops,
             fmt_bytes(b, sizeof(b), m->worst_unsettled_gap));
  } else {
    snprintf(buf, cap, "RSS followed live within %.0f ms (the slowest of %zu drop%s, at %.2f s; sampled every "
                       "%.0f ms)", m->worst_lag_ms, m->drops, m->drops == 1 ? "" : "s", m->worst_drop_t_ms / 1e3, interval_ms);
  }
}

static void add_row(summary_row_t *rows, size_t *n, size_t cap, const char *label, const char *value) {
  if (*n == cap) return;
  snprintf(rows[*n].label, sizeof(rows[0].label), "%s", label);
  snprintf(rows[*n].value, sizeof(rows[0].value), "%s", value);
  (*n)++;
}

/* The rows from ebb's snapshot. */
static void ebb_rows(const summary_t *m, summary_row_t *rows, size_t *n, size_t cap) {
  char v[600], a[32], b[32], c[32];
  snprintf(v, sizeof(v), "%s at %.2f s", fmt_bytes(a, sizeof(a), m->peak_live), m->t_peak_live / 1e3);
  add_row(rows, n, cap, "peak live", v);
  snprintf(v, sizeof(v), "peak %s (free pages and caches); above 1 MiB or 5%% of live for %.0f ms at most "
                         "(purge delay %llu ms); dirty peak %s",
           fmt_bytes(a, sizeof(a), m->free_resident_peak), m->free_resident_longest_ms,
           (unsigned long long)m->purge_delay_ms, fmt_bytes(b, sizeof(b), m->dirty_peak));
  add_row(rows, n, cap, "free but resident", v);
  snprintf(v, sizeof(v), "%s (%s by unmapping, %s with MADV_FREE)", fmt_bytes(a, sizeof(a), m->purged_total),
           fmt_bytes(b, sizeof(b), m->unmapped_total), fmt_bytes(c, sizeof(c), m->purged_lazy_total));
  add_row(rows, n, cap, "returned to the OS", v);
  snprintf(v, sizeof(v), "%llu mmap, %llu munmap, %llu madvise", (unsigned long long)m->mmap_calls,
           (unsigned long long)m->munmap_calls, (unsigned long long)m->madvise_calls);
  add_row(rows, n, cap, "system calls", v);
}

size_t summary_rows(const summary_t *m, const run_result_t *r, summary_row_t *rows, size_t cap) {
  size_t n = 0;
  char v[600], a[32], b[32];
  describe_exit(r->status, v, sizeof(v));
  snprintf(v + strlen(v), sizeof(v) - strlen(v), " after %.2f s", r->wall_ms / 1e3);
  add_row(rows, &n, cap, "program", v);
  if (r->series.n == 0) snprintf(v, sizeof(v), "no sample: the program ended within the first period");
  else snprintf(v, sizeof(v), "highest sample %s at %.2f s; final %s", fmt_bytes(a, sizeof(a), m->peak_rss),
                m->t_peak_rss / 1e3, fmt_bytes(b, sizeof(b), m->final_rss));
  if (m->hwm_rss > 0)
    snprintf(v + strlen(v), sizeof(v) - strlen(v), "; peak %s (the kernel's high-water mark)",
             fmt_bytes(a, sizeof(a), m->hwm_rss));
  add_row(rows, &n, cap, "RSS", v);
  if (m->lazyfree_peak || m->anon_huge_peak) {
    snprintf(v, sizeof(v), "LazyFree peak %s, AnonHugePages peak %s", fmt_bytes(a, sizeof(a), m->lazyfree_peak),
             fmt_bytes(b, sizeof(b), m->anon_huge_peak));
    add_row(rows, &n, cap, "kernel", v);
  }
  if (m->cgroup_peak) {
    snprintf(v, sizeof(v), "%s (the whole cgroup: every process in it)", fmt_bytes(a, sizeof(a), m->cgroup_peak));
    add_row(rows, &n, cap, "cgroup peak", v);
  }
  if (m->has_snapshot) ebb_rows(m, rows, &n, cap);
  if (r->images_n > 1) {
    snprintf(v, sizeof(v), "%s, then %s (exec: the same pid, followed)", r->images[0], r->images[r->images_n - 1]);
    add_row(rows, &n, cap, "programs", v);
  }
  if (r->children_n > 0) {
    snprintf(v, sizeof(v), "%zu forked (first pid %d) not followed: their memory is not in these figures%s",
             r->children_n, (int)r->children[0],
             r->children_published ? "; they publish snapshots of their own (ebb top PID)" : "");
    add_row(rows, &n, cap, "children", v);
  }
  if (r->stale_removed > 0) {
    snprintf(v, sizeof(v), "%zu left behind by a process that could not remove it (killed, or ended by _exit), removed",
             r->stale_removed);
    add_row(rows, &n, cap, "stale snapshots", v);
  }
  return n;
}
