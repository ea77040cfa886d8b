/* Self-monitoring: tricorder's own metrics, rendered at GET /metrics in the Prometheus text
 * format. Metrics are created once at start-up and never freed; updates are thread-safe. */
#ifndef TR_SELFMON_H
#define TR_SELFMON_H

#include <stdint.h>

#include "buf.h"

typedef struct tr_metric tr_metric;

/* Each creator returns a metric that lives until tr_selfmon_reset(). `labels` is the inside
 * of the braces (`transport="grpc",signal="metrics"`) or NULL. Several metrics may share a
 * name with different labels: they render as one family. */
tr_metric *tr_counter_new(const char *name, const char *help, const char *labels);
tr_metric *tr_gauge_new(const char *name, const char *help, const char *labels);
/* `bounds` (n ascending upper bounds, +Inf implied) is copied. */
tr_metric *tr_histogram_new(const char *name, const char *help, const char *labels, const double *bounds,
                            int n);

void tr_counter_add(tr_metric *m, uint64_t v);
void tr_gauge_set(tr_metric *m, double v);
void tr_gauge_add(tr_metric *m, double v);
void tr_histogram_observe(tr_metric *m, double v);
/* Current value of a counter or gauge (for tests and computed views). */
double tr_metric_value(tr_metric *m);

/* Counts one failure of a store's disk I/O in tricorder_storage_errors_total{store,kind}
 * (store: "metrics" or "traces"; kind: what failed, e.g. "wal_write", "wal_fsync",
 * "block_write", "quarantine"). Both strings must be static. The series is created on first
 * use; thread-safe. The caller logs the failure itself, with its errno. */
void tr_storage_error(const char *store, const char *kind);

/* A collector is called at each render to refresh gauges whose value is computed (RSS,
 * file sizes). It runs on the thread that renders. */
void tr_selfmon_add_collector(void (*fn)(void *ctx), void *ctx);

/* Appends every family, sorted by name, in the text exposition format 0.0.4. */
void tr_selfmon_render(tr_buf *out);

/* Forgets every metric and collector (tests only). */
void tr_selfmon_reset(void);

/* Default latency buckets in seconds, 0.0005 … 10. */
extern const double tr_latency_buckets[];
extern const int tr_latency_buckets_n;

#endif
