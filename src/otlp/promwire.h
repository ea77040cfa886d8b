/* The Prometheus wire formats on the ingest side, beside the OTLP decoders: remote write 1.0
 * (a snappy-compressed WriteRequest) and the text exposition format that VictoriaMetrics'
 * import takes. The decoders are pure functions over (buf, len), fuzzed; the HTTP handlers
 * (src/http/remote_write.c, prom_import.c) call them and append to the TSDB. */
#ifndef TR_OTLP_PROMWIRE_H
#define TR_OTLP_PROMWIRE_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/metrics.h"
#include "util/arena.h"

/* ---- remote write ---- */

/* Uncompresses a remote write 1.0 body (snappy block format) into *buf, which is replaced by
 * a larger malloc'd buffer when *cap is too small (the caller frees *buf). The uncompressed
 * length is read from the snappy header and checked against max_uncompressed before anything
 * is allocated. Returns 0 and *out_len, or an HTTP status (400 not snappy or corrupt, 413
 * over the limit, 503 out of memory) with a one-line reason in err. */
int tr_remote_write_uncompress(const uint8_t *body, size_t len, size_t max_uncompressed, uint8_t **buf,
                               size_t *cap, size_t *out_len, char *err, size_t errlen);

/* Labels per TimeSeries the decoder keeps; a series with more is handed over with a problem. */
#define TR_RW_MAX_LABELS 4096

/* What the streaming decoder finds in a WriteRequest, handed over as it walks the bytes.
 * Any callback may be NULL. Strings are NUL-terminated copies: those of a series' labels
 * (and its key) stay valid until tr_remote_write_parse returns, the labels array and the
 * other strings until the next call of the same kind. `problem` is NULL, or why those labels
 * (or strings) cannot be used: a NUL byte inside a name or value, or more than
 * TR_RW_MAX_LABELS labels. */
typedef struct tr_rw_series {
    const tsdb_label *labels; /* in wire order */
    size_t n;
    /* When the labels came sorted by name (byte order), distinct and without empty values,
     * as Prometheus sends them: the same labels as the store's canonical key (see
     * tsdb_appender_add_key), keylen bytes; else NULL. */
    const char *key;
    size_t keylen;
    const char *problem;
} tr_rw_series;

typedef struct tr_rw_sink {
    /* A TimeSeries begins: all its labels (wherever they stand in the message), before any of
     * its samples, exemplars and histograms. */
    void (*series)(void *ctx, const tr_rw_series *s);
    /* One sample, exemplar, native histogram of the current series, in wire order. */
    void (*sample)(void *ctx, int64_t t_ms, double v);
    void (*exemplar)(void *ctx, const tsdb_label *labels, size_t n, const char *problem, int64_t t_ms,
                     double v);
    void (*histogram)(void *ctx);
    /* One MetricMetadata (type: the wire enum, 0 unknown, 1 counter, 2 gauge, 3 histogram,
     * 4 gaugehistogram, 5 summary, 6 info, 7 stateset; absent strings are ""). Called only
     * after the whole request was found well-formed. */
    void (*metadata)(void *ctx, int type, const char *family, const char *help, const char *unit,
                     const char *problem);
    /* The whole request was walked and is well-formed (before its metadata, if any); the
     * series' strings are still valid. */
    void (*end)(void *ctx);
} tr_rw_sink;

/* Decodes an uncompressed WriteRequest (pb, len), calling `sink` as it goes: a pure function
 * of its input (no protobuf-c unpack; memory used is bounded by len). Unknown fields are
 * skipped. Returns 0; 400 when the bytes are not a well-formed WriteRequest (err says where
 * and what: callbacks may already have run for what came before, so a caller that stores
 * as it goes rolls back); 503 when out of memory. */
int tr_remote_write_parse(const uint8_t *pb, size_t len, const tr_rw_sink *sink, void *ctx, char *err,
                          size_t errlen);

typedef struct tr_rw_result {
    uint64_t samples, refused; /* refused: by the store, or with unusable labels */
    uint64_t histograms;       /* native histogram samples (not stored) */
    char first[400];           /* the first refused sample: why, its series and timestamp */
} tr_rw_result;

/* Decodes an uncompressed WriteRequest and adds its samples and exemplars to `app`, its
 * metadata to `db` (only when the whole request is well-formed). Returns 0 (res says what
 * was refused), or as tr_remote_write_parse (then the caller rolls `app` back). */
int tr_remote_write_apply(tsdb *db, tsdb_appender *app, const uint8_t *pb, size_t len, tr_rw_result *res,
                          char *err, size_t errlen);

/* ---- Prometheus text exposition format ---- */

typedef struct tr_text_sample {
    tsdb_label *labels; /* __name__ first, then the labels as written */
    size_t n_labels;
    double value;
    int64_t t_ms; /* valid when has_t */
    int has_t;
} tr_text_sample;

typedef struct tr_text_meta {
    const char *family, *type, *help; /* type: counter, gauge, histogram, summary, unknown, …; may be NULL */
} tr_text_meta;

typedef struct tr_text_result {
    tr_text_sample *samples;
    size_t n_samples;
    tr_text_meta *meta;
    size_t n_meta;
    size_t bad_lines; /* lines that are neither samples, comments nor blank */
    char err[256];    /* what was wrong with the first of them */
} tr_text_result;

/* Parses the text exposition format (0.0.4, plus what OpenMetrics adds that a sample line may
 * carry: an exemplar after " # " is skipped, "# EOF" is a comment) into `a`: sample lines
 * `name{l="v",…} value [timestamp_ms]`, # HELP and # TYPE. Bad lines are counted and skipped.
 * Returns 0, or -1 when out of memory. Everything points into `a` (nothing into buf). */
int tr_prom_text_parse(const char *buf, size_t len, tr_arena *a, tr_text_result *out);

#endif
