/* The Prometheus API layer every Prometheus-shaped handler uses (prom_meta.c, prom_export.c,
 * prom_exemplars.c, and the PromQL query handlers to come): parameters parsed as Prometheus
 * parses them, the JSON envelope with warnings and infos, error types and their HTTP
 * statuses, and the merge of several match[] series sets. */
#ifndef TR_HTTP_PROM_API_H
#define TR_HTTP_PROM_API_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "metrics/metrics.h"
#include "util/buf.h"

/* Prometheus' MinTime and MaxTime in milliseconds (the defaults of start and end). */
#define TR_PROM_MIN_TIME (-9223309901257974000LL)
#define TR_PROM_MAX_TIME (9223309901257974999LL)

/* ---- errors ---- */

typedef enum tr_prom_errtype {
    TR_PROM_BAD_DATA,    /* 400 */
    TR_PROM_EXECUTION,   /* 422 */
    TR_PROM_TIMEOUT,     /* 503 */
    TR_PROM_CANCELED,    /* 499 (the client is gone; nobody reads it) */
    TR_PROM_INTERNAL,    /* 500 */
    TR_PROM_UNAVAILABLE, /* 503: the work queue is full, shutting down */
    TR_PROM_NOT_FOUND,   /* 404 */
} tr_prom_errtype;

/* The errorType string and HTTP status of each type. */
const char *tr_prom_errtype_name(tr_prom_errtype t);
int tr_prom_errtype_status(tr_prom_errtype t);
/* {"status":"error","errorType":…,"error":msg} with the type's status. */
void tr_prom_reply_error(struct evhttp_request *req, tr_prom_errtype t, const char *msg);

/* ---- parameters ---- */

/* Go's strconv.ParseFloat(s, 64) syntax (decimal and hex forms, "Inf", "+Inf", "NaN", any
 * case, no spaces, underscores only after a base prefix). Returns 0 and *out, or -1 (also
 * when out of range, as Go reports ErrRange). */
int tr_prom_parse_float(const char *s, double *out);
/* Prometheus' parseTime: a float of seconds (fraction rounded to ms; NaN and ±Inf give what
 * Go's conversions give), else strict RFC 3339 with optional fraction (no leap second 60, no
 * 2023-02-30), else the formatted MinTime/MaxTime. Returns 0 and ms, or -1. */
int tr_prom_parse_time(const char *s, int64_t *ms);
/* Prometheus' parseDuration: float seconds, else `1h30m`-style (units y w d h m s ms, in that
 * order). Returns 0 and nanoseconds, or -1 with Prometheus' text in err. */
int tr_prom_parse_duration(const char *s, int64_t *ns, char *err, size_t errlen);

/* A time parameter (absent or empty: def). Returns 0, or -1 with the bad_data message. */
int tr_prom_time_param(const tr_form *f, const char *name, int64_t def, int64_t *out, char *err,
                       size_t errlen);
/* A duration parameter (absent or empty: def). Same returns. */
int tr_prom_duration_param(const tr_form *f, const char *name, int64_t def_ns, int64_t *ns, char *err,
                           size_t errlen);
/* limit=<n>: absent, empty, 0 or negative = none (0). Same returns. */
int tr_prom_limit_param(const tr_form *f, const char *name, long *out, char *err, size_t errlen);

/* The match[] parameters parsed into store matchers. */
#define TR_PROM_MAX_MATCH 1024
typedef struct tr_prom_matchsets {
    tsdb_matcher ***sets;
    size_t *lens;
    size_t n;
} tr_prom_matchsets;
/* Parses every match[] of f. Returns 0, -1 with a bad_data message, or -2 (internal: out of
 * memory). `out` is empty on error. */
int tr_prom_match_params(const tr_form *f, tr_prom_matchsets *out, char *err, size_t errlen);
/* As tr_prom_match_params; with allow_empty, a selector whose matchers all match the empty
 * string ({} or {job=""}) is kept, as Prometheus' /federate takes it. */
int tr_prom_match_params_ex(const tr_form *f, tr_prom_matchsets *out, int allow_empty, char *err,
                            size_t errlen);
void tr_prom_matchsets_free(tr_prom_matchsets *m);

/* Reads the request's form; on error replies 400 bad_data ("error parsing form values: …")
 * and returns -1 (f is then freed). */
int tr_prom_form(struct evhttp_request *req, tr_form *f);

/* ---- the envelope ---- */

/* Annotations (warnings, infos) collected while answering; at most 10 of each are sent, then
 * "N more warning annotations omitted", as Prometheus does. */
typedef struct tr_prom_notes {
    char *warnings[11], *infos[11];
    size_t nwarn, ninfo;
} tr_prom_notes;
void tr_prom_warn(tr_prom_notes *n, const char *msg);
void tr_prom_info(tr_prom_notes *n, const char *msg);
void tr_prom_notes_free(tr_prom_notes *n);

/* {"status":"success","data": — the caller writes data next. */
void tr_prom_open_success(tr_json *j);
/* Closes the envelope, adding "warnings" and "infos" when there are any. */
void tr_prom_close_success(tr_json *j, const tr_prom_notes *n);
/* Replies 200 application/json with b, or 500 internal when b overflowed. */
void tr_prom_reply_json(struct evhttp_request *req, const tr_buf *b);

/* Prometheus' jsonutil.MarshalFloat (a JSON string: 'f' form unless |v| < 1e-6 or >= 1e21,
 * "+Inf", "-Inf", "NaN") and MarshalTimestamp (seconds, and ".mmm" when ms % 1000 != 0). */
void tr_prom_json_float(tr_json *j, double v);
void tr_prom_json_ts(tr_json *j, int64_t ms);
/* {"name":"value",…} */
void tr_prom_json_labels(tr_json *j, const tsdb_label *l, size_t n);

/* 1 when an Accept header makes Prometheus' federation (expfmt.Negotiate over goautoneg) answer
 * the delimited protobuf exposition, 0 for the text format (also for NULL). Only that protobuf
 * encoding is served: `encoding=text`/`compact-text` fall through to the next choice. */
int tr_prom_wants_protobuf(const char *accept);

/* ---- merging several match[] results ---- */

/* Walks k series sets (each sorted by labels) in label order, yielding each label set once. */
typedef struct tr_prom_merge {
    tsdb_seriesset **sets;
    size_t n;
    size_t *pos;
    const tsdb_label *prev;
    size_t prevn;
} tr_prom_merge;
/* Returns 0 or -1 (out of memory). */
int tr_prom_merge_init(tr_prom_merge *m, tsdb_seriesset **sets, size_t n);
/* The next distinct series: its set and index, and its labels. Returns 1, or 0 at the end. */
int tr_prom_merge_next(tr_prom_merge *m, tsdb_seriesset **set, size_t *idx, const tsdb_label **l, size_t *nl);
void tr_prom_merge_free(tr_prom_merge *m);

#endif
