/* OTLP metrics → Prometheus samples, by the rules the OpenTelemetry Collector's
 * `prometheusremotewrite` exporter applies (otlptranslator, UnderscoreEscapingWithSuffixes),
 * so that data sent straight to tricorder gets the names and labels it would get through the
 * Collector. Unlike the Collector, delta temporality is converted to cumulative (a bounded
 * per-series running state lives in the translator) and exponential histograms become classic
 * `_bucket{le}` series. The translation itself is pure: it reads a decoded request and hands
 * each sample to a callback; it stores nothing. */
#ifndef TR_OTLP_TRANSLATE_H
#define TR_OTLP_TRANSLATE_H

#include <stddef.h>
#include <stdint.h>

#include "otlp.h"

/* Same layout as tsdb_label, so a sink can pass arrays straight through. */
typedef struct otlp_label {
    const char *name, *value;
} otlp_label;

typedef struct otlp_exemplar {
    const otlp_label *labels; /* trace_id, span_id (hex) and the filtered attributes */
    size_t n_labels;
    int64_t t_ms;
    double value;
} otlp_exemplar;

#define OTLP_NO_POINT UINT64_MAX

typedef struct otlp_sample {
    const otlp_label *labels; /* sorted by name, distinct, no empty values; has __name__ */
    size_t n_labels;
    int64_t t_ms;
    double value; /* stale markers are the StaleNaN bit pattern */
    const otlp_exemplar *exemplars;
    size_t n_exemplars;
    uint64_t point; /* the data point it came from, in request order; OTLP_NO_POINT
                       for target_info */
} otlp_sample;

typedef struct otlp_metadata {
    const char *family; /* the metric's base name (no _bucket/_sum/_count) */
    const char *type;   /* counter, gauge, histogram or summary */
    const char *help;   /* the OTLP description */
    const char *unit;   /* Prometheus unit word ("seconds", "bytes_per_second", "" for "1") */
} otlp_metadata;

/* Where translated data goes. Every pointer handed to the callbacks is valid only during the
 * call. sample() returns 0 when it took the sample, or non-zero to refuse it; a refused sample
 * makes its data point count as rejected, and `why` (if set by the callee, static or
 * callee-owned text) becomes the reported reason. */
typedef struct otlp_emit {
    void *ctx;
    int (*sample)(void *ctx, const otlp_sample *s, const char **why);
    void (*metadata)(void *ctx, const otlp_metadata *m); /* may be NULL */
} otlp_emit;

typedef struct otlp_translate_stats {
    uint64_t points;          /* data points in the request */
    uint64_t rejected;        /* points dropped by translation or with a refused sample */
    uint64_t samples;         /* samples handed to emit->sample */
    uint64_t samples_refused; /* of which refused */
    char message[256];        /* the first reason, "" when nothing was rejected */
} otlp_translate_stats;

typedef struct otlp_translate_opts {
    /* Resource attributes copied onto every series as labels (as the Collector's
     * resource_to_telemetry_conversion does): "all", "" or "none", or a comma list of
     * attribute keys. NULL means "all". */
    const char *promote_resource_attributes;
    size_t max_delta_series; /* running states kept for delta series; 0 = 100000 */
    int64_t delta_idle_ms;   /* a state not updated for this long (in data time) is
                                forgotten; 0 = 1 hour */
} otlp_translate_opts;

typedef struct otlp_translator otlp_translator;

/* Returns a translator, or NULL with a message in err (bad promote list, out of memory).
 * Free with otlp_translator_free(). Thread-safe: translations are serialised internally. */
otlp_translator *otlp_translator_new(const otlp_translate_opts *o, char *err, size_t errlen);
void otlp_translator_free(otlp_translator *t);

/* Translates one decoded export request, calling emit for every sample (and metadata once per
 * metric). Fills *st. Returns 0, or -1 when out of memory (st->message says so; samples
 * emitted before that stay emitted). */
int otlp_translate(otlp_translator *t, const otlp_metrics_req *req, const otlp_emit *emit,
                   otlp_translate_stats *st);

/* Delta series with running state (for /metrics and tests). */
size_t otlp_translator_delta_series(otlp_translator *t);

/* ---- the naming rules, exposed for tests and the other ways in ---- */

typedef enum {
    OTLP_KIND_GAUGE = 0,
    OTLP_KIND_COUNTER, /* monotonic sum */
    OTLP_KIND_UPDOWN,  /* non-monotonic sum */
    OTLP_KIND_HISTOGRAM,
    OTLP_KIND_EXP_HISTOGRAM,
    OTLP_KIND_SUMMARY,
} otlp_metric_kind;

/* The Prometheus metric name for an OTLP metric (otlptranslator normalizeName). Writes a
 * NUL-terminated name into out and returns its length; returns -1 when the name is empty or
 * only underscores (the metric is dropped), or does not fit in cap. */
int otlp_prom_metric_name(const char *name, const char *unit, otlp_metric_kind kind, char *out, size_t cap);
/* The label name for an attribute key: characters outside [a-zA-Z0-9_] become `_`, runs of
 * `_` collapse, a leading digit gets `key_`, `__reserved__` names are kept. Returns the length,
 * or -1 when the result would be empty or only underscores, or does not fit. */
int otlp_prom_label_name(const char *key, char *out, size_t cap);
/* The unit word used in metadata (UnitNamer): "s" → "seconds", "By/s" → "bytes_per_second",
 * "1" → "". Returns the length, or -1 when it does not fit. */
int otlp_prom_unit(const char *unit, char *out, size_t cap);

/* ---- the metrics sink (metrics_sink.c): translation into the TSDB ---- */

struct tsdb;
typedef struct otlp_metrics_sink otlp_metrics_sink;

/* A sink that translates each export and appends it to `db` as one batch: acknowledged once
 * the batch is in the WAL; samples the store refuses (out of order, too old, limits) make
 * their points count in partial_success with the store's reason. Returns NULL with err set.
 * `db` must outlive the sink; free the sink after the receiver. */
otlp_metrics_sink *otlp_metrics_sink_new(struct tsdb *db, const otlp_translate_opts *o, char *err,
                                         size_t errlen);
/* The otlp_sink to put in otlp_config.metrics. */
otlp_sink otlp_metrics_sink_get(otlp_metrics_sink *s);
void otlp_metrics_sink_free(otlp_metrics_sink *s);

#endif
