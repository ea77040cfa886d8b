/* GET|POST /api/v1/query_exemplars: the exemplars of the series a query selects, in
 * Prometheus' response shape. Until the PromQL engine lands the query must be a plain series
 * selector (what Grafana's exemplar toggle sends for a bare metric); anything else is
 * refused with 400 bad_data rather than guessed at. */
#include "api.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"
#include "promql/promql.h"

/* Prometheus' MinTime/MaxTime in milliseconds (the defaults of start and end). */
#define PROM_MIN_TIME (-9223309901257974LL)
#define PROM_MAX_TIME (9223309901257974LL)

int tr_prom_time_param(struct evhttp_request *req, struct evkeyvalq *q, const char *name, int64_t def,
                       int64_t *out);

/* Go's strconv.FormatFloat(v, 'e', -1, 64): the shortest mantissa that round-trips. */
static void format_e(char *out, size_t cap, double v) {
    for (int prec = 0; prec < 17; prec++) {
        snprintf(out, cap, "%.*e", prec, v);
        if (strtod(out, NULL) == v) return;
    }
    snprintf(out, cap, "%.16e", v);
}

/* Prometheus' jsonutil.MarshalFloat: a JSON string, 'f' layout unless |v| < 1e-6 or
 * |v| >= 1e21 (then 'e'), "+Inf", "-Inf", "NaN". */
static void json_prom_float(tr_json *j, double v) {
    char s[TR_DOUBLE_MAX_TEXT];
    double a = fabs(v);
    if (isfinite(v) && a != 0 && (a < 1e-6 || a >= 1e21)) format_e(s, sizeof s, v);
    else tr_format_double(s, sizeof s, v);
    tr_json_str(j, s);
}

/* Prometheus' jsonutil.MarshalTimestamp: seconds, and when the milliseconds are not zero a
 * dot and exactly three digits. */
static void json_prom_ts(tr_json *j, int64_t ms) {
    char s[48];
    uint64_t a = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
    int n = snprintf(s, sizeof s, "%s%" PRIu64, ms < 0 ? "-" : "", a / 1000);
    if (a % 1000) snprintf(s + n, sizeof s - (size_t)n, ".%03u", (unsigned)(a % 1000));
    tr_json_raw(j, s, strlen(s));
}

static void json_labels(tr_json *j, const tsdb_label *l, size_t n) {
    tr_json_obj_open(j);
    for (size_t i = 0; i < n; i++) {
        tr_json_key(j, l[i].name);
        tr_json_str(j, l[i].value);
    }
    tr_json_obj_close(j);
}

static void api_query_exemplars(struct evhttp_request *req, const char *path, void *ctx) {
    tsdb *db = ctx;
    (void)path;
    enum evhttp_cmd_type c = evhttp_request_get_command(req);
    if (c == EVHTTP_REQ_OPTIONS) {
        tr_http_reply(req, 204, NULL, NULL, 0);
        return;
    }
    if (c != EVHTTP_REQ_GET && c != EVHTTP_REQ_HEAD && c != EVHTTP_REQ_POST) {
        tr_http_reply_text(req, 405, "Method Not Allowed");
        return;
    }
    struct evkeyvalq q;
    if (tr_http_params(req, &q) != 0) {
        tr_http_reply_prom_error(req, 400, "bad_data", "error parsing form values");
        return;
    }
    tsdb_matcher **m = NULL;
    size_t nm = 0;
    tsdb_exemplars *res = NULL;
    int64_t start, end;
    if (tr_prom_time_param(req, &q, "start", PROM_MIN_TIME, &start) ||
        tr_prom_time_param(req, &q, "end", PROM_MAX_TIME, &end))
        goto out;
    if (end < start) {
        tr_http_reply_prom_error(req, 400, "bad_data", "end timestamp must not be before start timestamp");
        goto out;
    }
    const char *query = tr_http_param(&q, "query");
    if (!query || !*query) {
        tr_http_reply_prom_error(req, 400, "bad_data", "1:1: parse error: no expression found in input");
        goto out;
    }
    char err[512], msg[1024];
    int nsel = promql_parse_selector(query, strlen(query), &m, err, sizeof err);
    if (nsel < 0) {
        snprintf(msg, sizeof msg, "%s (only a series selector such as name{label=\"value\"} is supported here until the PromQL engine lands)", err);
        tr_http_reply_prom_error(req, 400, "bad_data", msg);
        goto out;
    }
    nm = (size_t)nsel;
    tsdb_matcher **const sets[1] = {m};
    if (tsdb_query_exemplars(db, sets, &nm, 1, start, end, &res, err, sizeof err) != 0) {
        tr_http_reply_prom_error(req, 500, "internal", err);
        goto out;
    }
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_json j;
    tr_json_init(&j, &b);
    tr_json_obj_open(&j);
    tr_json_key(&j, "status");
    tr_json_str(&j, "success");
    tr_json_key(&j, "data");
    tr_json_arr_open(&j);
    for (size_t i = 0; i < tsdb_exemplars_len(res); i++) {
        const tsdb_label *sl;
        size_t sn = tsdb_exemplars_series(res, i, &sl);
        const tsdb_exemplar *ex;
        size_t en = tsdb_exemplars_of(res, i, &ex);
        tr_json_obj_open(&j);
        tr_json_key(&j, "seriesLabels");
        json_labels(&j, sl, sn);
        tr_json_key(&j, "exemplars");
        tr_json_arr_open(&j);
        for (size_t k = 0; k < en; k++) {
            tr_json_obj_open(&j);
            tr_json_key(&j, "labels");
            json_labels(&j, ex[k].labels, ex[k].n_labels);
            tr_json_key(&j, "value");
            json_prom_float(&j, ex[k].value);
            tr_json_key(&j, "timestamp");
            json_prom_ts(&j, ex[k].t_ms);
            tr_json_obj_close(&j);
        }
        tr_json_arr_close(&j);
        tr_json_obj_close(&j);
    }
    tr_json_arr_close(&j);
    tr_json_obj_close(&j);
    if (b.failed) tr_http_reply_prom_error(req, 500, "internal", "response too large or out of memory");
    else tr_http_reply_buf(req, 200, "application/json", &b);
    tr_buf_free(&b);
out:
    tsdb_exemplars_free(res);
    if (m) tsdb_matchers_free(m, nm);
    evhttp_clear_headers(&q);
}

void tr_api_prom_exemplars_route(tr_http *h, tsdb *db) {
    tr_http_route(h, "/api/v1/query_exemplars", 0, api_query_exemplars, db);
}
