/* Prometheus metadata and status APIs over the metrics store: /api/v1/series, /labels,
 * /label/{name}/values, /metadata, /status/buildinfo, /status/tsdb, and the admin calls that
 * cut the head into a block (/api/v1/admin/tsdb/snapshot, /internal/force_flush). Shapes,
 * parameter parsing and error texts follow Prometheus 2.42. Parameters are read on the loop
 * thread; every store read runs as a job on the work queue, and /series is streamed. */
#include "api.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"
#include "prom_api.h"
#include "util/log.h"
#include "util/text.h"

#ifndef TRICORDER_VERSION
#define TRICORDER_VERSION "dev"
#endif

#define CHUNK (64u << 10) /* a streamed reply is handed over in pieces of this size */

typedef enum { K_SERIES, K_LABELS, K_VALUES, K_METADATA, K_TSDB, K_FLUSH, K_SNAPSHOT } kind;

typedef struct mjob {
    kind k;
    struct evhttp_request *req;
    const tr_api_env *env;
    int64_t start, end;
    long limit, per_metric;
    char *name; /* label name (K_VALUES), metric (K_METADATA) */
    tr_prom_matchsets ms;
    tr_http_stream *st; /* K_SERIES */
    const volatile int *cancel;
    tr_buf out;
    int failed;
    tr_prom_errtype et;
    char err[512];
    char snap[128];
} mjob;

/* Undoes Prometheus' U__ escaping (`U__http_2e_status` → `http.status`). 0 or -1. */
static int unescape_name(const char *in, char *out, size_t cap) {
    if (strncmp(in, "U__", 3) != 0) {
        if (strlen(in) >= cap) return -1;
        strcpy(out, in);
        return 0;
    }
    size_t o = 0;
    for (const char *p = in + 3; *p; p++) {
        if (o + 5 >= cap) return -1;
        if (*p != '_') {
            out[o++] = *p;
            continue;
        }
        if (p[1] == '_') {
            out[o++] = '_';
            p++;
            continue;
        }
        uint32_t cp = 0;
        const char *e = p + 1;
        while (tr_hex_val((unsigned char)*e) >= 0 && e - p < 8)
            cp = cp * 16 + (uint32_t)tr_hex_val((unsigned char)*e++);
        if (*e != '_' || e == p + 1) return -1;
        if (cp < 0x80)
            out[o++] = (char)cp;
        else if (cp < 0x800)
            out[o++] = (char)(0xc0 | cp >> 6), out[o++] = (char)(0x80 | (cp & 63));
        else if (cp < 0x10000)
            out[o++] = (char)(0xe0 | cp >> 12), out[o++] = (char)(0x80 | ((cp >> 6) & 63)),
            out[o++] = (char)(0x80 | (cp & 63));
        else
            out[o++] = (char)(0xf0 | cp >> 18), out[o++] = (char)(0x80 | ((cp >> 12) & 63)),
            out[o++] = (char)(0x80 | ((cp >> 6) & 63)), out[o++] = (char)(0x80 | (cp & 63));
        p = e;
    }
    out[o] = 0;
    return 0;
}

static int valid_label_name(const char *s) {
    if (!*s) return 0;
    for (const char *p = s; *p; p++)
        if (!(isalpha((unsigned char)*p) || *p == '_' || (p > s && isdigit((unsigned char)*p)))) return 0;
    return 1;
}

typedef struct metactx {
    tr_json *j;
    const char *metric;
    long limit, per_metric;
    long count, in_family;
    int open;     /* a family's array is open */
    char *family; /* its name (malloc'd) */
} metactx;

/* Prometheus' /api/v1/metadata: an object of families, each an array of its distinct
 * (type, help, unit); `limit` caps the families (0: none at all, negative: no cap),
 * `limit_per_metric` the entries of each (0 or negative: no cap). */
static int meta_fn(void *ctx, const tsdb_metadata *m) {
    metactx *c = ctx;
    if (c->metric && strcmp(c->metric, m->family) != 0) return 0;
    int same = c->open && c->family && strcmp(c->family, m->family) == 0;
    if (!same) {
        if (c->open) tr_json_arr_close(c->j);
        c->open = 0;
        if (c->limit >= 0 && c->count >= c->limit) return 1;
        c->count++;
        free(c->family);
        c->family = strdup(m->family);
        tr_json_key(c->j, m->family);
        tr_json_arr_open(c->j);
        c->open = 1;
        c->in_family = 0;
    }
    if (c->per_metric > 0 && c->in_family >= c->per_metric) return 0;
    c->in_family++;
    tr_json_obj_open(c->j);
    tr_json_key(c->j, "type");
    tr_json_str(c->j, m->type);
    tr_json_key(c->j, "help");
    tr_json_str(c->j, m->help);
    tr_json_key(c->j, "unit");
    tr_json_str(c->j, m->unit);
    tr_json_obj_close(c->j);
    return 0;
}

static void card_list(tr_json *j, const char *key, const tsdb_card_entry *e, size_t n) {
    tr_json_key(j, key);
    tr_json_arr_open(j);
    for (size_t i = 0; i < n; i++) {
        tr_json_obj_open(j);
        tr_json_key(j, "name");
        tr_json_str(j, e[i].name);
        tr_json_key(j, "value");
        tr_json_uint(j, e[i].value);
        tr_json_obj_close(j);
    }
    tr_json_arr_close(j);
}

static int admin_running; /* a flush or snapshot is queued or running */

static void job_free(mjob *j) {
    if (j->k == K_FLUSH || j->k == K_SNAPSHOT) admin_running = 0;
    tr_prom_matchsets_free(&j->ms);
    free(j->name);
    tr_buf_free(&j->out);
    free(j);
}

static void fail(mjob *j, tr_prom_errtype t, const char *msg) {
    j->failed = 1;
    j->et = t;
    snprintf(j->err, sizeof j->err, "%s", msg);
}

static void run_series(mjob *j, tsdb_querier *qr) {
    tsdb_seriesset **sets = calloc(j->ms.n ? j->ms.n : 1, sizeof *sets);
    char err[512];
    tr_prom_merge m = {0};
    if (!sets) {
        fail(j, TR_PROM_INTERNAL, "out of memory");
        return;
    }
    for (size_t i = 0; i < j->ms.n; i++)
        if (!(sets[i] = tsdb_select(qr, j->ms.sets[i], j->ms.lens[i], 0, err, sizeof err))) {
            fail(j, TR_PROM_INTERNAL, err);
            goto out;
        }
    if (tr_prom_merge_init(&m, sets, j->ms.n)) {
        fail(j, TR_PROM_INTERNAL, "out of memory");
        goto out;
    }
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_json js;
    tr_json_init(&js, &b);
    tr_prom_open_success(&js);
    tr_json_arr_open(&js);
    tr_prom_notes notes = {0};
    tsdb_seriesset *set;
    size_t idx, nl, count = 0;
    const tsdb_label *l;
    while (tr_prom_merge_next(&m, &set, &idx, &l, &nl)) {
        if (j->limit > 0 && count >= (size_t)j->limit) {
            tr_prom_warn(&notes, "results truncated due to limit");
            break;
        }
        count++;
        tr_prom_json_labels(&js, l, nl);
        if (tr_http_stream_flush(j->st, &b, CHUNK) != 0) break; /* client gone */
    }
    tr_json_arr_close(&js);
    tr_prom_close_success(&js, &notes);
    tr_prom_notes_free(&notes);
    if (b.failed)
        fail(j, TR_PROM_INTERNAL, "out of memory");
    else
        tr_http_stream_flush(j->st, &b, 0);
    tr_buf_free(&b);
out:
    tr_prom_merge_free(&m);
    for (size_t i = 0; i < j->ms.n; i++)
        tsdb_seriesset_free(sets[i]);
    free(sets);
}

static void run_strings(mjob *j, tsdb_querier *qr) {
    char **v = NULL, err[512];
    size_t n = 0;
    int rc = j->k == K_VALUES
                 ? tsdb_label_values(qr, j->name, j->ms.sets, j->ms.lens, j->ms.n, &v, &n, err, sizeof err)
                 : tsdb_label_names(qr, j->ms.sets, j->ms.lens, j->ms.n, &v, &n, err, sizeof err);
    if (rc != 0) {
        fail(j, TR_PROM_INTERNAL, err);
        return;
    }
    tr_json js;
    tr_json_init(&js, &j->out);
    tr_prom_open_success(&js);
    tr_json_arr_open(&js);
    tr_prom_notes notes = {0};
    if (j->limit > 0 && n > (size_t)j->limit) tr_prom_warn(&notes, "results truncated due to limit");
    size_t shown = j->limit > 0 && n > (size_t)j->limit ? (size_t)j->limit : n;
    for (size_t i = 0; i < shown; i++)
        tr_json_str(&js, v[i]);
    tr_json_arr_close(&js);
    tr_prom_close_success(&js, &notes);
    tr_prom_notes_free(&notes);
    tsdb_strings_free(v, n);
}

static void run_metadata(mjob *j) {
    tr_json js;
    tr_json_init(&js, &j->out);
    metactx c = {.j = &js, .metric = j->name, .limit = j->limit, .per_metric = j->per_metric};
    tr_prom_open_success(&js);
    tr_json_obj_open(&js);
    tsdb_metadata_foreach(j->env->db, meta_fn, &c);
    if (c.open) tr_json_arr_close(&js);
    free(c.family);
    tr_json_obj_close(&js);
    tr_prom_close_success(&js, NULL);
}

static void run_status_tsdb(mjob *j) {
    tsdb_stats st;
    tsdb_get_stats(j->env->db, &st);
    tsdb_card c;
    tsdb_head_cardinality(j->env->db, (size_t)j->limit, &c);
    tr_json js;
    tr_json_init(&js, &j->out);
    tr_prom_open_success(&js);
    tr_json_obj_open(&js);
    tr_json_key(&js, "headStats");
    tr_json_obj_open(&js);
    tr_json_key(&js, "numSeries");
    tr_json_uint(&js, st.head_series);
    tr_json_key(&js, "numLabelPairs");
    tr_json_uint(&js, c.num_label_pairs);
    tr_json_key(&js, "chunkCount");
    tr_json_uint(&js, st.head_chunks + c.open_chunks);
    tr_json_key(&js, "minTime");
    tr_json_int(&js, st.head_mint);
    tr_json_key(&js, "maxTime");
    tr_json_int(&js, st.head_maxt);
    tr_json_obj_close(&js);
    card_list(&js, "seriesCountByMetricName", c.by_metric, c.n_by_metric);
    card_list(&js, "labelValueCountByLabelName", c.label_value_count, c.n_label_value_count);
    card_list(&js, "memoryInBytesByLabelName", c.memory_by_label, c.n_memory_by_label);
    card_list(&js, "seriesCountByLabelValuePair", c.by_pair, c.n_by_pair);
    tr_json_obj_close(&js);
    tr_prom_close_success(&js, NULL);
    tsdb_card_free(&c);
}

/* Worker thread. */
static void job_run(void *ctx, const volatile int *cancel) {
    mjob *j = ctx;
    char err[512];
    j->cancel = cancel;
    if (j->st) tr_http_stream_bind(j->st, cancel);
    switch (j->k) {
    case K_SERIES:
    case K_LABELS:
    case K_VALUES: {
        tsdb_querier *qr = tsdb_querier_open(j->env->db, j->start, j->end);
        if (!qr) {
            fail(j, TR_PROM_INTERNAL, "out of memory");
            return;
        }
        if (j->k == K_SERIES)
            run_series(j, qr);
        else
            run_strings(j, qr);
        tsdb_querier_close(qr);
        return;
    }
    case K_METADATA:
        run_metadata(j);
        return;
    case K_TSDB:
        run_status_tsdb(j);
        return;
    case K_FLUSH:
        if (tsdb_flush(j->env->db, err, sizeof err) != 0) fail(j, TR_PROM_INTERNAL, err);
        return;
    case K_SNAPSHOT:
        if (tsdb_snapshot(j->env->db, j->snap, sizeof j->snap, err, sizeof err) != 0)
            fail(j, TR_PROM_INTERNAL, err);
        return;
    }
}

/* Loop thread. */
static void job_done(void *ctx, int cancelled) {
    mjob *j = ctx;
    if (cancelled && !j->failed) fail(j, TR_PROM_CANCELED, "request canceled");
    if (j->k == K_SERIES) {
        if (tr_http_stream_end(j->st, !j->failed) != 0) tr_prom_reply_error(j->req, j->et, j->err);
    } else if (j->failed) {
        if (j->k == K_FLUSH)
            tr_http_reply_text(j->req, 500, j->err);
        else
            tr_prom_reply_error(j->req, j->et, j->err);
    } else if (j->k == K_FLUSH) {
        tr_http_reply(j->req, 200, NULL, NULL, 0);
    } else if (j->k == K_SNAPSHOT) {
        tr_json js;
        tr_json_init(&js, &j->out);
        tr_prom_open_success(&js);
        tr_json_obj_open(&js);
        tr_json_key(&js, "name");
        tr_json_str(&js, j->snap);
        tr_json_obj_close(&js);
        tr_prom_close_success(&js, NULL);
        tr_prom_reply_json(j->req, &j->out);
    } else {
        tr_prom_reply_json(j->req, &j->out);
    }
    job_free(j);
}

static mjob *job_new(struct evhttp_request *req, const tr_api_env *env, kind k) {
    mjob *j = calloc(1, sizeof *j);
    if (!j) {
        tr_prom_reply_error(req, TR_PROM_INTERNAL, "out of memory");
        return NULL;
    }
    j->k = k;
    j->req = req;
    j->env = env;
    tr_buf_init(&j->out, 0);
    return j;
}

static void submit(mjob *j) {
    if (j->k == K_SERIES) {
        if (!(j->st = tr_http_stream_new(j->req, j->env->wq))) {
            tr_prom_reply_error(j->req, TR_PROM_INTERNAL, "out of memory");
            job_free(j);
            return;
        }
        evhttp_add_header(evhttp_request_get_output_headers(j->req), "Content-Type", "application/json");
    }
    if (!tr_api_submit(j->env, j->req, job_run, job_done, j)) {
        if (j->st) tr_http_stream_end(j->st, 0); /* nothing sent: only frees it */
        tr_prom_reply_error(j->req, TR_PROM_UNAVAILABLE, TR_API_BUSY);
        job_free(j);
    }
}

/* start, end, limit and match[] of a series or label request; replies itself on error. */
static int common_params(mjob *j, const tr_form *f) {
    char err[1200];
    int rc;
    if (tr_prom_time_param(f, "start", TR_PROM_MIN_TIME, &j->start, err, sizeof err) ||
        tr_prom_time_param(f, "end", TR_PROM_MAX_TIME, &j->end, err, sizeof err) ||
        tr_prom_limit_param(f, "limit", &j->limit, err, sizeof err) ||
        (rc = tr_prom_match_params(f, &j->ms, err, sizeof err)) == -1) {
        tr_prom_reply_error(j->req, TR_PROM_BAD_DATA, err);
        return -1;
    }
    if (rc) {
        tr_prom_reply_error(j->req, TR_PROM_INTERNAL, err);
        return -1;
    }
    return 0;
}

/* ---- handlers ---- */

static void api_series(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    tr_form f;
    if (tr_prom_form(req, &f)) return;
    mjob *j = NULL;
    if (!tr_form_get(&f, "match[]")) {
        tr_prom_reply_error(req, TR_PROM_BAD_DATA, "no match[] parameter provided");
    } else if ((j = job_new(req, ctx, K_SERIES))) {
        if (common_params(j, &f) == 0)
            submit(j);
        else
            job_free(j);
    }
    tr_form_free(&f);
}

static void label_api(struct evhttp_request *req, const tr_api_env *env, const char *name) {
    tr_form f;
    if (tr_prom_form(req, &f)) return;
    mjob *j = job_new(req, env, name ? K_VALUES : K_LABELS);
    if (j && name && !(j->name = strdup(name))) {
        tr_prom_reply_error(req, TR_PROM_INTERNAL, "out of memory");
        job_free(j);
    } else if (j) {
        if (common_params(j, &f) == 0)
            submit(j);
        else
            job_free(j);
    }
    tr_form_free(&f);
}

static void api_labels(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    label_api(req, ctx, NULL);
}

static void api_label_values(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    const char *raw = tr_http_var(m, "name");
    char name[1024], msg[1200];
    if (unescape_name(raw, name, sizeof name) != 0 ||
        (!valid_label_name(name) && strncmp(raw, "U__", 3) != 0)) {
        snprintf(msg, sizeof msg, "invalid label name: \"%.1000s\"", raw);
        tr_prom_reply_error(req, TR_PROM_BAD_DATA, msg);
        return;
    }
    label_api(req, ctx, name);
}

static void api_metadata(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    tr_form f;
    char err[300];
    if (tr_prom_form(req, &f)) return;
    mjob *j = job_new(req, ctx, K_METADATA);
    if (!j) goto out;
    /* limit=0 lists nothing, as Prometheus' `len(res) >= limit` stops at once */
    const char *ls = tr_form_get(&f, "limit");
    char *end;
    j->limit = -1;
    if (ls && *ls) {
        errno = 0;
        long l = strtol(ls, &end, 10);
        if (errno || *end || isspace((unsigned char)*ls)) {
            tr_prom_reply_error(req, TR_PROM_BAD_DATA, "limit must be a number");
            job_free(j);
            goto out;
        }
        j->limit = l < 0 ? -1 : l;
    }
    if (tr_prom_limit_param(&f, "limit_per_metric", &j->per_metric, err, sizeof err)) {
        tr_prom_reply_error(req, TR_PROM_BAD_DATA, err);
        job_free(j);
        goto out;
    }
    const char *metric = tr_form_get_nonempty(&f, "metric");
    if (metric && !(j->name = strdup(metric))) {
        tr_prom_reply_error(req, TR_PROM_INTERNAL, "out of memory");
        job_free(j);
        goto out;
    }
    submit(j);
out:
    tr_form_free(&f);
}

static void api_buildinfo(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_json j;
    tr_json_init(&j, &b);
    tr_prom_open_success(&j);
    tr_json_obj_open(&j);
    /* the version is the Prometheus API level we answer as, so that clients that pick features
     * by version (Grafana) use the right ones; the revision names tricorder */
    tr_json_key(&j, "version");
    tr_json_str(&j, "2.42.0");
    tr_json_key(&j, "revision");
    tr_json_str(&j, "tricorder-" TRICORDER_VERSION);
    tr_json_key(&j, "branch");
    tr_json_str(&j, "tricorder");
    tr_json_key(&j, "buildUser");
    tr_json_str(&j, "tricorder");
    tr_json_key(&j, "buildDate");
    tr_json_str(&j, __DATE__);
    tr_json_key(&j, "goVersion");
    tr_json_str(&j, "none (C11)");
    tr_json_obj_close(&j);
    tr_prom_close_success(&j, NULL);
    tr_prom_reply_json(req, &b);
    tr_buf_free(&b);
}

static void api_status_tsdb(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    tr_form f;
    if (tr_prom_form(req, &f)) return;
    long limit = 10;
    const char *ls = tr_form_get_nonempty(&f, "limit");
    if (ls) {
        char *e;
        limit = strtol(ls, &e, 10);
        if (*e || limit <= 0 || limit > 10000) {
            tr_prom_reply_error(req, TR_PROM_BAD_DATA, "limit must be a positive number");
            tr_form_free(&f);
            return;
        }
    }
    tr_form_free(&f);
    mjob *j = job_new(req, ctx, K_TSDB);
    if (!j) return;
    j->limit = limit;
    submit(j);
}

/* Flush and snapshot each write a block: one at a time, a second meanwhile gets 503. */

static void api_admin(struct evhttp_request *req, void *ctx, kind k) {
    if (admin_running) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
        if (k == K_FLUSH)
            tr_http_reply_text(req, 503, "another flush or snapshot is running, retry later");
        else
            tr_prom_reply_error(req, TR_PROM_UNAVAILABLE,
                                "another flush or snapshot is running, retry later");
        return;
    }
    mjob *j = job_new(req, ctx, k);
    if (!j) return;
    admin_running = 1;
    submit(j); /* job_free clears admin_running, also when the submit is refused */
}

static void api_force_flush(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    api_admin(req, ctx, K_FLUSH);
}

static void api_snapshot(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    api_admin(req, ctx, K_SNAPSHOT);
}

void tr_api_prom_meta_routes(tr_http *h, const tr_api_env *env) {
    void *e = (void *)env;
    tr_http_route(h, TR_GET | TR_POST, "/api/v1/series", 0, api_series, e);
    tr_http_route(h, TR_GET | TR_POST, "/api/v1/labels", 0, api_labels, e);
    tr_http_route(h, TR_GET, "/api/v1/label/{name}/values", 0, api_label_values, e);
    tr_http_route(h, TR_GET, "/api/v1/metadata", 0, api_metadata, e);
    tr_http_route(h, TR_GET, "/api/v1/status/buildinfo", 0, api_buildinfo, e);
    tr_http_route(h, TR_GET, "/api/v1/status/tsdb", 0, api_status_tsdb, e);
    tr_http_route(h, TR_POST | TR_PUT, "/api/v1/admin/tsdb/snapshot", TR_HTTP_ADMIN, api_snapshot, e);
    tr_http_route(h, TR_POST, "/internal/force_flush", TR_HTTP_ADMIN, api_force_flush, e);
}
