/* A small evaluator of Go's text/template as Prometheus uses it in alert labels and
 * annotations: text and {{ }} actions (with {{- -}} trimming and comments), pipelines,
 * variables ($labels, $value, $externalLabels, $externalURL, $x := …), if / else if / else,
 * with, range, and the functions Prometheus documents (humanize, humanize1024,
 * humanizeDuration, humanizePercentage, humanizeTimestamp, printf, query, first, label,
 * value, toUpper, toLower, title, match, stripPort, stripDomain, parseDuration, graphLink,
 * tableLink, sortByLabel, eq/ne/lt/le/gt/ge, and/or/not, len,
 * index, print). Missing map keys give "" (missingkey=zero). */
#ifndef TR_RULES_TMPL_H
#define TR_RULES_TMPL_H

#include <stddef.h>
#include <stdint.h>

#include "promql/promql.h"

typedef struct tr_tmpl_kv {
    const char *name, *value;
} tr_tmpl_kv;

/* query(expr): evaluates an instant PromQL query at the rule's evaluation time; returns 0
 * and *out (freed by the caller with promql_result_free), or -1 with err. */
typedef int (*tr_tmpl_query_fn)(void *ctx, const char *q, promql_result *out, char *err, size_t errlen);

typedef struct tr_tmpl_data {
    const tr_tmpl_kv *labels;
    size_t nlabels;
    const tr_tmpl_kv *ext_labels;
    size_t next_labels;
    const char *external_url;
    double value;
    tr_tmpl_query_fn query; /* NULL: query() fails */
    void *query_ctx;
} tr_tmpl_data;

/* Checks the syntax of `text` (a template named `name`, as Prometheus names them:
 * "__alert_<alertname>"). Returns 0, or -1 with Go's message in err
 * ("template: __alert_A:1: unclosed action"). */
int tr_tmpl_check(const char *name, const char *text, char *err, size_t errlen);
/* Expands `text`; returns a malloc'd string, or NULL with the error in err. */
char *tr_tmpl_expand(const char *name, const char *text, const tr_tmpl_data *d, char *err, size_t errlen);

/* Prometheus's template functions on a number, into out (for tests and reuse). */
void tr_humanize(double v, char *out, size_t cap);
void tr_humanize1024(double v, char *out, size_t cap);
void tr_humanize_duration(double v, char *out, size_t cap);
/* Go's %v of a float64. */
void tr_go_float(double v, char *out, size_t cap);

#endif
