/* Ways out of the metrics store in the Prometheus text exposition format:
 * /api/v1/export/prometheus (VictoriaMetrics' export: every sample in [start, end], one line
 * each, with its timestamp) and /federate (Prometheus' federation: the latest sample of each
 * matching series within the 5-minute lookback, grouped by metric name under a TYPE line). */
#include "api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics/metrics.h"
#include "util/clock.h"

#define LOOKBACK_MS (5 * 60 * 1000)

typedef struct matchsets {
    tsdb_matcher ***sets;
    size_t *lens;
    size_t n;
} matchsets;
int tr_prom_time_param(struct evhttp_request *req, struct evkeyvalq *q, const char *name,
                       int64_t def, int64_t *out);
int tr_prom_match_params(struct evhttp_request *req, struct evkeyvalq *q, matchsets *out);
void tr_prom_matchsets_free(matchsets *m);

static void put_escaped(tr_buf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '\\') tr_buf_puts(b, "\\\\");
        else if (*s == '"') tr_buf_puts(b, "\\\"");
        else if (*s == '\n') tr_buf_puts(b, "\\n");
        else tr_buf_putc(b, *s);
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

static const char *series_name(const tsdb_seriesset *ss, size_t i) {
    const tsdb_label *l;
    size_t n = tsdb_seriesset_labels(ss, i, &l);
    for (size_t k = 0; k < n; k++)
        if (strcmp(l[k].name, "__name__") == 0) return l[k].value;
    return "";
}

typedef struct ref {
    const tsdb_seriesset *ss;
    size_t i;
    const char *name;
    size_t ord;
} ref;

static int cmp_ref(const void *a, const void *b) {
    const ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    return x->ord < y->ord ? -1 : x->ord > y->ord;
}

static void run(struct evhttp_request *req, tsdb *db, int federate) {
    struct evkeyvalq q;
    matchsets ms = {0};
    enum evhttp_cmd_type c = evhttp_request_get_command(req);
    if (c != EVHTTP_REQ_GET && c != EVHTTP_REQ_HEAD && (federate || c != EVHTTP_REQ_POST)) {
        tr_http_reply_text(req, 405, "Method Not Allowed");
        return;
    }
    if (tr_http_params(req, &q) != 0) {
        tr_http_reply_text(req, 400, "error parsing form values");
        return;
    }
    int64_t start, end, now = tr_now_ms();
    if (federate) {
        start = now - LOOKBACK_MS;
        end = now;
    } else {
        if (tr_prom_time_param(req, &q, "start", INT64_MIN, &start) || tr_prom_time_param(req, &q, "end", now, &end))
            goto out;
    }
    if (!federate && !tr_http_param(&q, "match[]")) {
        tr_http_reply_text(req, 400, "missing `match[]` arg");
        goto out;
    }
    if (tr_prom_match_params(req, &q, &ms)) goto out;
    tsdb_querier *qr = tsdb_querier_open(db, start, end);
    tsdb_seriesset **sets = calloc(ms.n + 1, sizeof *sets);
    char err[512];
    size_t total = 0;
    int failed = !qr || !sets;
    for (size_t i = 0; !failed && i < ms.n; i++) {
        /* labels only: samples are loaded one series at a time below, so an export of a
         * large range holds one series' samples at once (the reply itself is still built
         * in memory) */
        sets[i] = tsdb_select(qr, ms.sets[i], ms.lens[i], 0, err, sizeof err);
        if (!sets[i]) failed = 1;
        else total += tsdb_seriesset_len(sets[i]);
    }
    ref *refs = failed ? NULL : calloc(total + 1, sizeof *refs);
    if (failed || !refs) {
        tr_http_reply_text(req, 500, failed && qr && sets ? err : "out of memory");
        goto done;
    }
    /* series from several match[] merged, each once (sets are sorted by labels) */
    size_t n = 0;
    for (size_t s = 0; s < ms.n; s++)
        for (size_t i = 0; i < tsdb_seriesset_len(sets[s]); i++) {
            refs[n].ss = sets[s];
            refs[n].i = i;
            refs[n].name = series_name(sets[s], i);
            refs[n].ord = n;
            n++;
        }
    qsort(refs, n, sizeof *refs, cmp_ref);
    tr_buf b;
    tr_buf_init(&b, 0);
    const char *family = NULL;
    const tsdb_label *prev = NULL;
    size_t prevn = 0;
    char num[64];
    for (size_t r = 0; r < n; r++) {
        const tsdb_label *l;
        size_t nl = tsdb_seriesset_labels(refs[r].ss, refs[r].i, &l);
        int dup = prev && prevn == nl;
        for (size_t k = 0; dup && k < nl; k++)
            if (strcmp(prev[k].name, l[k].name) || strcmp(prev[k].value, l[k].value)) dup = 0;
        if (dup) continue;
        prev = l;
        prevn = nl;
        const int64_t *ts;
        const double *vs;
        tsdb_seriesset *set = (tsdb_seriesset *)refs[r].ss;
        if (tsdb_seriesset_load(set, refs[r].i, err, sizeof err) != 0) {
            tr_buf_free(&b);
            tr_http_reply_text(req, 500, err);
            goto done;
        }
        size_t k = tsdb_seriesset_samples(refs[r].ss, refs[r].i, &ts, &vs);
        if (!k) continue;
        if (federate) {
            if (tsdb_is_stale_nan(vs[k - 1])) continue;
            if (!family || strcmp(family, refs[r].name) != 0) {
                family = refs[r].name;
                tr_buf_printf(&b, "# TYPE %s untyped\n", family);
            }
            put_series(&b, l, nl, 1);
            tr_format_double_g(num, sizeof num, vs[k - 1]);
            tr_buf_printf(&b, " %s %lld\n", num, (long long)ts[k - 1]);
        } else {
            for (size_t x = 0; x < k; x++) {
                if (tsdb_is_stale_nan(vs[x])) continue;
                put_series(&b, l, nl, 0);
                tr_format_double_g(num, sizeof num, vs[x]);
                tr_buf_printf(&b, " %s %lld\n", num, (long long)ts[x]);
            }
        }
        tsdb_seriesset_unload(set, refs[r].i);
    }
    if (b.failed) tr_http_reply_text(req, 500, "response too large or out of memory");
    else tr_http_reply_buf(req, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
    tr_buf_free(&b);
done:
    free(refs);
    for (size_t i = 0; sets && i < ms.n; i++) tsdb_seriesset_free(sets[i]);
    free(sets);
    tsdb_querier_close(qr);
out:
    tr_prom_matchsets_free(&ms);
    evhttp_clear_headers(&q);
}

void tr_api_export(struct evhttp_request *req, const char *path, void *ctx) { run(req, ctx, 0); }
void tr_api_federate(struct evhttp_request *req, const char *path, void *ctx) { run(req, ctx, 1); }
