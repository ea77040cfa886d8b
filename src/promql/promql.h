/* PromQL: the parser and the evaluator, with Prometheus 3.x float semantics.
 * The engine reads the metrics store through its querier (metrics/metrics.h) and nothing else;
 * the HTTP layer (http/prom_query.c) calls promql_query_instant/_range from a work-queue
 * thread and formats the result. */
#ifndef TR_PROMQL_H
#define TR_PROMQL_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/metrics.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    PROMQL_SCALAR,
    PROMQL_VECTOR, /* instant vector: one sample per series (t[0], v[0]) */
    PROMQL_MATRIX, /* range vector or range query: n samples per series */
    PROMQL_STRING,
} promql_type;

typedef struct {
    char *name, *value;
} promql_label;

typedef struct {
    promql_label *labels; /* sorted by name; __name__ included when kept */
    size_t nlabels;
    int64_t *t; /* milliseconds */
    double *v;
    size_t n;
} promql_series;

typedef struct {
    promql_type type;
    int64_t t;     /* instant queries: evaluation time (ms) */
    double scalar; /* PROMQL_SCALAR */
    char *str;     /* PROMQL_STRING */
    promql_series *series;
    size_t nseries;
    char **warnings; /* e.g. "block 01H… quarantined: checksum mismatch" */
    size_t nwarnings;
    char **infos; /* Prometheus's info annotations */
    size_t ninfos;
    /* Annotations are worded as Prometheus's API returns them, position included:
     * "PromQL info: metric might not be a counter, name does not end in
     * _total/_sum/_count/_bucket: \"foo\" (1:6)", "PromQL warning: quantile value should be
     * between 0 and 1, got 2 (1:10)". Range query results are sorted by label set; instant
     * vectors come in evaluation order (sort(), topk() order them). */
} promql_result;

typedef enum {
    PROMQL_OK = 0,
    PROMQL_ERR_BAD_DATA,         /* parse errors, bad arguments: HTTP 400 "bad_data" */
    PROMQL_ERR_EXECUTION,        /* evaluation errors (duplicate series, many-to-many): 422 "execution" */
    PROMQL_ERR_TIMEOUT,          /* 503 "timeout" */
    PROMQL_ERR_CANCELED,         /* the client went away: 499 / "canceled" */
    PROMQL_ERR_TOO_MANY_SAMPLES, /* 422 "execution": "query processing would load too many samples into memory
                                    in query execution" */
    PROMQL_ERR_INTERNAL,         /* 500 "internal" (out of memory, storage errors) */
} promql_err;

typedef struct {
    int64_t lookback_ms;      /* 0 = 5m */
    int64_t max_samples;      /* 0 = 50,000,000 */
    int64_t timeout_ms;       /* 0 = none */
    int64_t subquery_step_ms; /* default subquery resolution; 0 = 60s */
    /* Polled during evaluation; a nonzero value stops it with PROMQL_ERR_CANCELED. */
    const volatile int *cancel;
} promql_opts;

/* Evaluates `q` (qlen bytes; may hold newlines and # comments) at time t_ms. On error returns
 * the code and writes the message (as Prometheus words it) into err. */
promql_err promql_query_instant(tsdb *db, const char *q, size_t qlen, int64_t t_ms, const promql_opts *o,
                                promql_result *out, char *err, size_t errlen);
promql_err promql_query_range(tsdb *db, const char *q, size_t qlen, int64_t start_ms, int64_t end_ms,
                              int64_t step_ms, const promql_opts *o, promql_result *out, char *err,
                              size_t errlen);
void promql_result_free(promql_result *r);

/* /api/v1/format_query: the expression pretty-printed as Prometheus's Prettify does (its
 * String() form, split over lines indented two spaces per level wherever a sub-expression's
 * one-line form exceeds 100 characters), as a malloc'd string; NULL with err on a parse
 * error. */
char *promql_format(const char *q, size_t qlen, char *err, size_t errlen);

/* A series selector (`up{job="x"}`, `{__name__=~"a.*"}`) as match[] parameters carry them,
 * parsed into the store's matchers. Returns the number of matchers (*out malloc'd, free each
 * with tsdb_matcher_free and the array with free) or -1 with err. */
int promql_parse_selector(const char *s, size_t len, tsdb_matcher ***out, char *err, size_t errlen);

/* Every vector selector of an expression (inside range selectors, subqueries, calls,
 * aggregations, binary operators), as /api/v1/query_exemplars reads them: one matcher set per
 * selector, in order of appearance. Returns the number of sets, with *sets[i] (counts[i]
 * matchers) malloc'd; free with promql_selectors_free. On a parse error returns -1 with err
 * worded as Prometheus's parser words it. */
int promql_expr_selectors(const char *q, size_t qlen, tsdb_matcher ****sets, size_t **counts, char *err,
                          size_t errlen);
void promql_selectors_free(tsdb_matcher ***sets, size_t *counts, size_t n);

#ifdef __cplusplus
}
#endif
#endif
