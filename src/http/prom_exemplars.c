/* GET|POST /api/v1/query_exemplars: the exemplars of the series a query selects, in
 * Prometheus' response shape. As Prometheus does, the query is any PromQL expression: the
 * exemplars of every vector selector in it are answered (`rate(x[5m]) / rate(y[5m])` gives
 * those of x and y). The store is read on the work queue. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"
#include "prom_api.h"
#include "promql/promql.h"

typedef struct ejob {
    struct evhttp_request *req;
    const tr_api_env *env;
    tsdb_matcher ***sets; /* one matcher set per vector selector of the query */
    size_t *lens, nsets;
    int64_t start, end;
    tr_buf out;
    int failed;
    char err[512];
} ejob;

static void ejob_free(ejob *j) {
    promql_selectors_free(j->sets, j->lens, j->nsets);
    tr_buf_free(&j->out);
    free(j);
}

/* Worker thread. */
static void exemplars_run(void *ctx, const volatile int *cancel) {
    ejob *j = ctx;
    tsdb_exemplars *res = NULL;
    /* an expression without selectors (`1 + 1`) has no exemplars */
    if (j->nsets && tsdb_query_exemplars(j->env->db, (tsdb_matcher * *const *)j->sets, j->lens, j->nsets,
                                         j->start, j->end, &res, j->err, sizeof j->err) != 0) {
        j->failed = 1;
        return;
    }
    tr_json js;
    tr_json_init(&js, &j->out);
    tr_prom_open_success(&js);
    tr_json_arr_open(&js);
    for (size_t i = 0; res && i < tsdb_exemplars_len(res) && !*cancel; i++) {
        const tsdb_label *sl;
        size_t sn = tsdb_exemplars_series(res, i, &sl);
        const tsdb_exemplar *ex;
        size_t en = tsdb_exemplars_of(res, i, &ex);
        tr_json_obj_open(&js);
        tr_json_key(&js, "seriesLabels");
        tr_prom_json_labels(&js, sl, sn);
        tr_json_key(&js, "exemplars");
        tr_json_arr_open(&js);
        for (size_t k = 0; k < en; k++) {
            tr_json_obj_open(&js);
            tr_json_key(&js, "labels");
            tr_prom_json_labels(&js, ex[k].labels, ex[k].n_labels);
            tr_json_key(&js, "value");
            tr_prom_json_float(&js, ex[k].value);
            tr_json_key(&js, "timestamp");
            tr_prom_json_ts(&js, ex[k].t_ms);
            tr_json_obj_close(&js);
        }
        tr_json_arr_close(&js);
        tr_json_obj_close(&js);
    }
    tr_json_arr_close(&js);
    tr_prom_close_success(&js, NULL);
    if (res) tsdb_exemplars_free(res);
}

/* Loop thread. */
static void exemplars_done(void *ctx, int cancelled) {
    ejob *j = ctx;
    if (j->failed)
        tr_prom_reply_error(j->req, TR_PROM_INTERNAL, j->err);
    else if (cancelled)
        tr_prom_reply_error(j->req, TR_PROM_CANCELED, "request canceled");
    else
        tr_prom_reply_json(j->req, &j->out);
    ejob_free(j);
}

static void api_query_exemplars(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    tr_form f;
    if (tr_prom_form(req, &f)) return;
    char err[512];
    ejob *j = calloc(1, sizeof *j);
    if (!j) {
        tr_prom_reply_error(req, TR_PROM_INTERNAL, "out of memory");
        goto out;
    }
    j->req = req;
    j->env = ctx;
    tr_buf_init(&j->out, 0);
    if (tr_prom_time_param(&f, "start", TR_PROM_MIN_TIME, &j->start, err, sizeof err) ||
        tr_prom_time_param(&f, "end", TR_PROM_MAX_TIME, &j->end, err, sizeof err)) {
        tr_prom_reply_error(req, TR_PROM_BAD_DATA, err);
        goto out;
    }
    if (j->end < j->start) {
        tr_prom_reply_error(req, TR_PROM_BAD_DATA, "end timestamp must not be before start timestamp");
        goto out;
    }
    const char *query = tr_form_get_nonempty(&f, "query");
    if (!query) {
        tr_prom_reply_error(req, TR_PROM_BAD_DATA, "1:1: parse error: no expression found in input");
        goto out;
    }
    int nsel = promql_expr_selectors(query, strlen(query), &j->sets, &j->lens, err, sizeof err);
    if (nsel < 0) {
        tr_prom_reply_error(req, TR_PROM_BAD_DATA, err);
        goto out;
    }
    j->nsets = (size_t)nsel;
    if (!tr_api_submit(ctx, req, exemplars_run, exemplars_done, j)) {
        tr_prom_reply_error(req, TR_PROM_UNAVAILABLE, TR_API_BUSY);
        goto out;
    }
    j = NULL;
out:
    if (j) ejob_free(j);
    tr_form_free(&f);
}

void tr_api_prom_exemplars_routes(tr_http *h, const tr_api_env *env) {
    tr_http_route(h, TR_GET | TR_POST, "/api/v1/query_exemplars", 0, api_query_exemplars, (void *)env);
}
