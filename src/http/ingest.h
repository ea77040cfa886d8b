/* The other ways metrics come in besides OTLP: Prometheus remote write 1.0 (POST /api/v1/write)
 * and VictoriaMetrics' text import (POST /api/v1/import/prometheus). Private to the HTTP module
 * and its tests. The decoders are pure functions over (buf, len), fuzzed; the handlers (in
 * api.h) append what they decode to the TSDB. */
#ifndef TR_HTTP_INGEST_H
#define TR_HTTP_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/metrics.h"
#include "prometheus_remote.pb-c.h"
#include "util/arena.h"
#include "util/selfmon.h"

struct tr_ingest {
    tsdb *db;
    size_t max_body;         /* compressed (as sent) */
    size_t max_uncompressed; /* after snappy or gzip */
    tr_metric *requests[2], *errors[2], *stored[2], *refused[2];
};

enum { TR_INGEST_RW = 0, TR_INGEST_TEXT = 1 };

/* ---- remote write ---- */

/* Decodes a remote write 1.0 body (snappy block format, then a WriteRequest) into `a`.
 * The uncompressed length is read from the snappy header and checked against
 * max_uncompressed before anything is allocated. Returns 0 and *out, or an HTTP status
 * (400 malformed, 413 too large) with a one-line reason in err. */
int tr_remote_write_decode(const uint8_t *body, size_t len, size_t max_uncompressed, tr_arena *a,
                           Prometheus__WriteRequest **out, char *err, size_t errlen);

/* ---- Prometheus text exposition format ---- */

typedef struct tr_text_sample {
    tsdb_label *labels; /* __name__ first, then the labels as written */
    size_t n_labels;
    double value;
    int64_t t_ms;       /* valid when has_t */
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
    size_t bad_lines;   /* lines that are neither samples, comments nor blank */
    char err[256];      /* what was wrong with the first of them */
} tr_text_result;

/* Parses the text exposition format (0.0.4, plus what OpenMetrics adds that a sample line may
 * carry: an exemplar after " # " is skipped, "# EOF" is a comment) into `a`: sample lines
 * `name{l="v",…} value [timestamp_ms]`, # HELP and # TYPE. Bad lines are counted and skipped.
 * Returns 0, or -1 when out of memory. Everything points into `a` (nothing into buf). */
int tr_prom_text_parse(const char *buf, size_t len, tr_arena *a, tr_text_result *out);

#endif
