/* Ways out of the metrics store in the Prometheus text exposition format:
 * /api/v1/export/prometheus (VictoriaMetrics' export: every sample in [start, end], one line
 * each, with its timestamp) and /federate (Prometheus' federation: the latest sample of each
 * matching series within the 5-minute lookback, under a TYPE line per metric name). Both run
 * on the work queue and stream their reply: one series' samples are in memory at a time, and
 * the producer waits for a slow client. */
#include "api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics/metrics.h"
#include "prom_api.h"
#include "util/clock.h"

#define CHUNK (64u << 10)

#define LOOKBACK_MS (5 * 60 * 1000)

static void put_escaped(tr_buf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '\\')
            tr_buf_puts(b, "\\\\");
        else if (*s == '"')
            tr_buf_puts(b, "\\\"");
        else if (*s == '\n')
            tr_buf_puts(b, "\\n");
        else
            tr_buf_putc(b, *s);
    }
}

/* name{l="v",…} without __name__; `add_instance` appends instance="" when absent. */
static void put_series(tr_buf *b, const tsdb_label *l, size_t n, int add_instance) {
    const char *name = "";
    for (size_t i = 0; i < n; i++)
        if (strcmp(l[i].name, "__name__") == 0) name = l[i].value;
    tr_buf_puts(b, name);
    int first = 1, has_instance = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(l[i].name, "__name__") == 0) continue;
        if (strcmp(l[i].name, "instance") == 0) has_instance = 1;
        tr_buf_putc(b, first ? '{' : ',');
        first = 0;
        tr_buf_puts(b, l[i].name);
        tr_buf_puts(b, "=\"");
        put_escaped(b, l[i].value);
        tr_buf_putc(b, '"');
    }
    if (add_instance && !has_instance) {
        tr_buf_puts(b, first ? "{" : ",");
        tr_buf_puts(b, "instance=\"\"");
        first = 0;
    }
    if (!first) tr_buf_putc(b, '}');
}

/* A value as Prometheus' text writer formats it: Go's shortest %g, except that -0 (equal to 0
 * in Go's `f == 0` special case) prints 0. */
static void put_value(char *out, size_t cap, double v) {
    if (v == 0)
        snprintf(out, cap, "0");
    else
        tr_format_double_g(out, cap, v);
}

typedef struct xjob {
    struct evhttp_request *req;
    const tr_api_env *env;
    int federate;
    int64_t start, end;
    tr_prom_matchsets ms;
    tr_http_stream *st;
    int failed;
    char err[512];
} xjob;

static void xjob_free(xjob *j) {
    tr_prom_matchsets_free(&j->ms);
    free(j);
}

/* Worker thread. */
static void export_run(void *ctx, const volatile int *cancel) {
    xjob *j = ctx;
    tr_http_stream_bind(j->st, cancel);
    tsdb_querier *qr = tsdb_querier_open(j->env->db, j->start, j->end);
    tsdb_seriesset **sets = calloc(j->ms.n + 1, sizeof *sets);
    tr_prom_merge m = {0};
    tr_buf b;
    tr_buf_init(&b, 0);
    if (!qr || !sets || tr_prom_merge_init(&m, sets, j->ms.n)) {
        j->failed = 1;
        snprintf(j->err, sizeof j->err, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < j->ms.n; i++)
        /* labels only: samples are loaded one series at a time below */
        if (!(sets[i] = tsdb_select(qr, j->ms.sets[i], j->ms.lens[i], 0, j->err, sizeof j->err))) {
            j->failed = 1;
            goto out;
        }
    char num[64], family[1024] = "";
    int have_family = 0;
    tsdb_seriesset *set;
    size_t idx, nl;
    const tsdb_label *l;
    while (tr_prom_merge_next(&m, &set, &idx, &l, &nl)) {
        if (*cancel) break;
        const int64_t *ts;
        const double *vs;
        if (tsdb_seriesset_load(set, idx, j->err, sizeof j->err) != 0) {
            j->failed = 1;
            break;
        }
        size_t k = tsdb_seriesset_samples(set, idx, &ts, &vs);
        if (k && j->federate) {
            if (!tsdb_is_stale_nan(vs[k - 1])) {
                const char *name = "";
                for (size_t i = 0; i < nl; i++)
                    if (strcmp(l[i].name, "__name__") == 0) name = l[i].value;
                if (!have_family || strcmp(family, name) != 0) {
                    snprintf(family, sizeof family, "%s", name);
                    have_family = 1;
                    tr_buf_printf(&b, "# TYPE %s untyped\n", name);
                }
                put_series(&b, l, nl, 1);
                put_value(num, sizeof num, vs[k - 1]);
                tr_buf_printf(&b, " %s %lld\n", num, (long long)ts[k - 1]);
            }
        } else {
            for (size_t x = 0; x < k; x++) {
                if (tsdb_is_stale_nan(vs[x])) continue;
                put_series(&b, l, nl, 0);
                put_value(num, sizeof num, vs[x]);
                tr_buf_printf(&b, " %s %lld\n", num, (long long)ts[x]);
            }
        }
        tsdb_seriesset_unload(set, idx);
        if (tr_http_stream_flush(j->st, &b, CHUNK) != 0) break;
    }
    if (!j->failed && b.failed) {
        j->failed = 1;
        snprintf(j->err, sizeof j->err, "out of memory");
    }
    /* a streamed reply has sent its headers already: a damaged block left out is said in
     * comment lines at the end, which every reader of the text format skips */
    const char *const *warns;
    size_t nw = tsdb_querier_warnings(qr, &warns);
    for (size_t w = 0; w < nw && w < 8 && !j->failed; w++)
        tr_buf_printf(&b, "# warning: %s\n", warns[w]);
    if (!j->failed) tr_http_stream_flush(j->st, &b, 0);
out:
    tr_buf_free(&b);
    tr_prom_merge_free(&m);
    for (size_t i = 0; sets && i < j->ms.n; i++)
        tsdb_seriesset_free(sets[i]);
    free(sets);
    tsdb_querier_close(qr);
}

/* Loop thread. */
static void export_done(void *ctx, int cancelled) {
    xjob *j = ctx;
    if (cancelled && !j->failed) {
        j->failed = 1;
        snprintf(j->err, sizeof j->err, "request canceled");
    }
    if (tr_http_stream_end(j->st, !j->failed) != 0) tr_http_reply_text(j->req, 500, j->err);
    xjob_free(j);
}

static void run(struct evhttp_request *req, const tr_api_env *env, int federate) {
    tr_form f;
    char err[1200];
    int rc = tr_http_form(req, &f, err, sizeof err);
    xjob *j = NULL;
    if (rc) {
        char msg[1300];
        snprintf(msg, sizeof msg, "error parsing form values: %s", err);
        tr_http_reply_text(req, 400, msg);
        goto out;
    }
    if (!(j = calloc(1, sizeof *j))) {
        tr_http_reply_text(req, 500, "out of memory");
        goto out;
    }
    j->req = req;
    j->env = env;
    j->federate = federate;
    int64_t now = tr_now_ms();
    if (federate) {
        j->start = now - LOOKBACK_MS;
        j->end = now;
    } else if (tr_prom_time_param(&f, "start", INT64_MIN, &j->start, err, sizeof err) ||
               tr_prom_time_param(&f, "end", now, &j->end, err, sizeof err)) {
        tr_prom_reply_error(req, TR_PROM_BAD_DATA, err);
        goto out;
    }
    if (!federate && !tr_form_get(&f, "match[]")) {
        tr_http_reply_text(req, 400, "missing `match[]` arg");
        goto out;
    }
    if ((rc = tr_prom_match_params_ex(&f, &j->ms, federate, err, sizeof err)) != 0) {
        static const char prefix[] = "invalid parameter \"match[]\": ";
        if (federate) /* Prometheus' federation answers the parser's error alone, in text */
            tr_http_reply_text(req, rc == -1 ? 400 : 500,
                               strncmp(err, prefix, sizeof prefix - 1) ? err : err + sizeof prefix - 1);
        else
            tr_prom_reply_error(req, rc == -1 ? TR_PROM_BAD_DATA : TR_PROM_INTERNAL, err);
        goto out;
    }
    if (federate) {
        /* `{}` (no matcher at all) selects nothing in Prometheus' federation */
        size_t w = 0;
        for (size_t i = 0; i < j->ms.n; i++) {
            if (j->ms.lens[i] == 0) {
                tsdb_matchers_free(j->ms.sets[i], 0);
                continue;
            }
            j->ms.sets[w] = j->ms.sets[i];
            j->ms.lens[w++] = j->ms.lens[i];
        }
        j->ms.n = w;
    }
    if (!(j->st = tr_http_stream_new(req, env->wq))) {
        tr_http_reply_text(req, 500, "out of memory");
        goto out;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    if (!tr_api_submit(env, req, export_run, export_done, j)) {
        tr_http_stream_end(j->st, 0);
        tr_http_reply_text(req, 503, TR_API_BUSY);
        goto out;
    }
    j = NULL; /* the job owns it now */
out:
    if (j) xjob_free(j);
    tr_form_free(&f);
}

static void api_export(struct evhttp_request *req, const tr_http_match *m, void *ctx) { run(req, ctx, 0); }
static void api_federate(struct evhttp_request *req, const tr_http_match *m, void *ctx) { run(req, ctx, 1); }

void tr_api_prom_export_routes(tr_http *h, const tr_api_env *env) {
    tr_http_route(h, TR_GET | TR_POST, "/api/v1/export/prometheus", 0, api_export, (void *)env);
    tr_http_route(h, TR_GET, "/federate", 0, api_federate, (void *)env);
}
