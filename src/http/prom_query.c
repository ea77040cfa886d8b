/* Prometheus' query API over the PromQL engine: /api/v1/query, /api/v1/query_range,
 * /api/v1/format_query, and
 * /api/v1/status/runtimeinfo. Parameters and error texts follow Prometheus (the order in
 * which it checks them included, so the first error reported is the same). Parameters are
 * read on the loop thread; parsing and evaluation run as a job on the work queue, bounded by
 * --query-timeout, --query-max-samples and --query-max-concurrency, and stopped when the
 * client goes away. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "prom_api.h"
#include "promql/promql.h"
#include "util/clock.h"
#include "util/gzip.h"
#include "util/log.h"

/* Prometheus' limit on the points of one series in a range query. */
#define MAX_POINTS 11000

typedef enum { Q_INSTANT, Q_RANGE } qkind;

typedef struct qjob {
    qkind k;
    struct evhttp_request *req;
    const tr_api_env *env;
    char *query;
    size_t qlen;
    int64_t t, start, end, step; /* ms */
    int64_t timeout_ms;
    long limit;
    promql_result res;
    promql_err rc;
    char err[1024];
    double seconds;
    int gzip;    /* the client takes gzip (read on the loop thread) */
    tr_buf body; /* the success reply, built on the worker */
    int body_gz; /* body is gzip-compressed */
} qjob;

static unsigned running; /* queries submitted and not done (loop thread only) */
static time_t started_at;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void job_free(qjob *j) {
    free(j->query);
    promql_result_free(&j->res);
    tr_buf_free(&j->body);
    free(j);
}

static void json_series_labels(tr_json *js, const promql_series *s) {
    tr_json_obj_open(js);
    for (size_t i = 0; i < s->nlabels; i++) {
        tr_json_key(js, s->labels[i].name);
        tr_json_str(js, s->labels[i].value);
    }
    tr_json_obj_close(js);
}

static void json_point(tr_json *js, int64_t t, double v) {
    tr_json_arr_open(js);
    tr_prom_json_ts(js, t);
    tr_prom_json_float(js, v);
    tr_json_arr_close(js);
}

/* The "data" object of a success reply; at most `limit` series when limit > 0. */
static void json_data(tr_json *js, const promql_result *r, long limit) {
    static const char *const types[] = {"scalar", "vector", "matrix", "string"};
    tr_json_obj_open(js);
    tr_json_key(js, "resultType");
    tr_json_str(js, types[r->type]);
    tr_json_key(js, "result");
    if (r->type == PROMQL_SCALAR || r->type == PROMQL_STRING) {
        /* Prometheus writes these through encoding/json, not its point encoder: the time as
         * the float seconds (4.5, not 4.500) and a scalar in 'f' form (1e21 in full) */
        char s[TR_DOUBLE_MAX_TEXT];
        tr_format_double(s, sizeof s, (double)r->t / 1000.0);
        tr_json_arr_open(js);
        tr_json_raw(js, s, strlen(s));
        if (r->type == PROMQL_SCALAR) {
            tr_format_double(s, sizeof s, r->scalar);
            tr_json_str(js, s);
        } else {
            tr_json_str(js, r->str ? r->str : "");
        }
        tr_json_arr_close(js);
    } else {
        size_t n = r->nseries;
        if (limit > 0 && (size_t)limit < n) n = (size_t)limit;
        tr_json_arr_open(js);
        for (size_t i = 0; i < n; i++) {
            const promql_series *s = &r->series[i];
            tr_json_obj_open(js);
            tr_json_key(js, "metric");
            json_series_labels(js, s);
            if (r->type == PROMQL_VECTOR) {
                tr_json_key(js, "value");
                json_point(js, s->t[0], s->v[0]);
            } else {
                tr_json_key(js, "values");
                tr_json_arr_open(js);
                for (size_t k = 0; k < s->n; k++)
                    json_point(js, s->t[k], s->v[k]);
                tr_json_arr_close(js);
            }
            tr_json_obj_close(js);
        }
        tr_json_arr_close(js);
    }
    tr_json_obj_close(js);
}

static tr_prom_errtype errtype_of(promql_err rc) {
    switch (rc) {
    case PROMQL_ERR_BAD_DATA:
        return TR_PROM_BAD_DATA;
    case PROMQL_ERR_EXECUTION:
    case PROMQL_ERR_TOO_MANY_SAMPLES:
        return TR_PROM_EXECUTION;
    case PROMQL_ERR_TIMEOUT:
        return TR_PROM_TIMEOUT;
    case PROMQL_ERR_CANCELED:
        return TR_PROM_CANCELED;
    default:
        return TR_PROM_INTERNAL;
    }
}

/* The success reply: JSON, then gzip when the client takes it. Built on the worker so that
 * the loop thread only hands the bytes to libevent. */
static void build_body(qjob *j) {
    tr_prom_notes notes = {0};
    for (size_t i = 0; i < j->res.nwarnings; i++)
        tr_prom_warn(&notes, j->res.warnings[i]);
    for (size_t i = 0; i < j->res.ninfos; i++)
        tr_prom_info(&notes, j->res.infos[i]);
    if (j->limit > 0 && (j->res.type == PROMQL_VECTOR || j->res.type == PROMQL_MATRIX) &&
        j->res.nseries > (size_t)j->limit)
        tr_prom_warn(&notes, "results truncated due to limit");
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_json js;
    tr_json_init(&js, &b);
    tr_prom_open_success(&js);
    json_data(&js, &j->res, j->limit);
    tr_prom_close_success(&js, &notes);
    tr_prom_notes_free(&notes);
    /* the result is no longer needed: free it before compressing, to lower the peak */
    promql_result_free(&j->res);
    memset(&j->res, 0, sizeof j->res);
    if (j->gzip && !b.failed && b.len >= 1024) {
        tr_buf z;
        tr_buf_init(&z, 0);
        if (tr_gzip((const uint8_t *)b.data, b.len, &z) == 0 && !z.failed) {
            tr_buf_free(&b);
            j->body = z;
            j->body_gz = 1;
            return;
        }
        tr_buf_free(&z);
    }
    j->body = b;
}

/* Worker thread. */
static void job_run(void *ctx, const volatile int *cancel) {
    qjob *j = ctx;
    promql_opts o = {
        .lookback_ms = j->env->query_lookback_ms,
        .max_samples = j->env->query_max_samples,
        .timeout_ms = j->timeout_ms,
        .cancel = cancel,
    };
    double t0 = now_s();
    if (j->k == Q_INSTANT)
        j->rc = promql_query_instant(j->env->db, j->query, j->qlen, j->t, &o, &j->res, j->err, sizeof j->err);
    else
        j->rc = promql_query_range(j->env->db, j->query, j->qlen, j->start, j->end, j->step, &o, &j->res,
                                   j->err, sizeof j->err);
    j->seconds = now_s() - t0;
    if (j->rc == PROMQL_OK && *cancel) {
        j->rc = PROMQL_ERR_CANCELED;
        snprintf(j->err, sizeof j->err, "query was canceled");
    }
    if (j->rc == PROMQL_OK) build_body(j);
}

/* Loop thread. */
static void job_done(void *ctx, int cancelled) {
    qjob *j = ctx;
    running--;
    if (j->env->query_log_threshold_ms > 0 && j->seconds * 1000 >= (double)j->env->query_log_threshold_ms)
        TR_WARN("slow query", "seconds=%.3f kind=%s query=%.*s", j->seconds,
                j->k == Q_INSTANT ? "instant" : "range", (int)(j->qlen > 500 ? 500 : j->qlen), j->query);
    if (cancelled && j->rc == PROMQL_OK) {
        j->rc = PROMQL_ERR_CANCELED;
        snprintf(j->err, sizeof j->err, "query was canceled");
    }
    if (j->rc != PROMQL_OK) {
        char msg[1100];
        /* parse errors name the parameter, as Prometheus' invalidParamError does */
        if (j->rc == PROMQL_ERR_BAD_DATA)
            snprintf(msg, sizeof msg, "invalid parameter \"query\": %s", j->err);
        else
            snprintf(msg, sizeof msg, "%s", j->err);
        tr_prom_reply_error(j->req, errtype_of(j->rc), msg);
        job_free(j);
        return;
    }
    if (j->body_gz)
        tr_http_reply_gzipped(j->req, 200, "application/json", &j->body);
    else
        tr_prom_reply_json(j->req, &j->body);
    job_free(j);
}

/* timeout=<duration> (at most --query-timeout) and limit=<n>; replies itself on error. */
static int common_params(qjob *j, const tr_form *f) {
    char err[1200], msg[1300];
    j->timeout_ms = j->env->query_timeout_ms;
    const char *to = tr_form_get_nonempty(f, "timeout");
    if (to) {
        int64_t ns;
        if (tr_prom_parse_duration(to, &ns, err, sizeof err) != 0) {
            snprintf(msg, sizeof msg, "invalid parameter \"timeout\": %s", err);
            tr_prom_reply_error(j->req, TR_PROM_BAD_DATA, msg);
            return -1;
        }
        int64_t ms = ns / 1000000;
        if (ms <= 0) ms = 1; /* a timeout shorter than 1 ms still times out at once */
        if (ms < j->timeout_ms) j->timeout_ms = ms;
    }
    if (tr_prom_limit_param(f, "limit", &j->limit, err, sizeof err) != 0) {
        tr_prom_reply_error(j->req, TR_PROM_BAD_DATA, err);
        return -1;
    }
    return 0;
}

static void submit(qjob *j) {
    if (running >= j->env->query_max_concurrency) {
        tr_prom_reply_error(j->req, TR_PROM_UNAVAILABLE,
                            "too many concurrent queries (--query-max-concurrency), retry later");
        job_free(j);
        return;
    }
    if (!tr_api_submit(j->env, j->req, job_run, job_done, j)) {
        tr_prom_reply_error(j->req, TR_PROM_UNAVAILABLE, TR_API_BUSY);
        job_free(j);
        return;
    }
    running++;
}

static qjob *job_new(struct evhttp_request *req, const tr_api_env *env, qkind k, const tr_form *f) {
    qjob *j = calloc(1, sizeof *j);
    const char *q = tr_form_get(f, "query");
    size_t qlen = 0;
    if (q)
        for (size_t i = 0; i < f->n; i++)
            if (f->kv[i].value == q) qlen = f->kv[i].vlen;
    if (j) j->query = malloc(qlen + 1);
    if (!j || !j->query) {
        if (j) free(j);
        tr_prom_reply_error(req, TR_PROM_INTERNAL, "out of memory");
        return NULL;
    }
    if (qlen) memcpy(j->query, q, qlen);
    j->query[qlen] = 0;
    j->qlen = qlen;
    j->k = k;
    j->req = req;
    j->env = env;
    j->gzip = tr_http_accepts_gzip(req);
    return j;
}

/* A time parameter as query_range reads start and end (Prometheus' parseTime, no default). */
static int range_time(qjob *j, const tr_form *f, const char *name, int64_t *out) {
    const char *s = tr_form_get(f, name);
    if (tr_prom_parse_time(s ? s : "", out) == 0) return 0;
    char msg[700];
    snprintf(msg, sizeof msg, "invalid parameter \"%s\": cannot parse \"%.500s\" to a valid timestamp", name,
             s ? s : "");
    tr_prom_reply_error(j->req, TR_PROM_BAD_DATA, msg);
    return -1;
}

static void api_query(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    const tr_api_env *env = ctx;
    tr_form f;
    if (tr_prom_form(req, &f)) return;
    char err[1200];
    qjob *j = job_new(req, env, Q_INSTANT, &f);
    if (!j) goto out;
    if (tr_prom_time_param(&f, "time", tr_now_ms(), &j->t, err, sizeof err) != 0) {
        tr_prom_reply_error(req, TR_PROM_BAD_DATA, err);
        job_free(j);
        goto out;
    }
    if (common_params(j, &f) != 0) {
        job_free(j);
        goto out;
    }
    submit(j);
out:
    tr_form_free(&f);
}

static void api_query_range(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    const tr_api_env *env = ctx;
    tr_form f;
    if (tr_prom_form(req, &f)) return;
    char err[1200], msg[1300];
    qjob *j = job_new(req, env, Q_RANGE, &f);
    if (!j) goto out;
    if (range_time(j, &f, "start", &j->start) || range_time(j, &f, "end", &j->end)) goto fail;
    if (j->end < j->start) {
        tr_prom_reply_error(req, TR_PROM_BAD_DATA,
                            "invalid parameter \"end\": end timestamp must not be before start time");
        goto fail;
    }
    const char *st = tr_form_get(&f, "step");
    int64_t step_ns;
    if (tr_prom_parse_duration(st ? st : "", &step_ns, err, sizeof err) != 0) {
        snprintf(msg, sizeof msg, "invalid parameter \"step\": %s", err);
        tr_prom_reply_error(req, TR_PROM_BAD_DATA, msg);
        goto fail;
    }
    if (step_ns <= 0) {
        tr_prom_reply_error(
            req, TR_PROM_BAD_DATA,
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. "
            "Try a positive integer");
        goto fail;
    }
    /* as Go computes end.Sub(start)/step: in nanoseconds, saturating */
    double span_ns = ((double)j->end - (double)j->start) * 1e6;
    if (span_ns / (double)step_ns > MAX_POINTS) {
        tr_prom_reply_error(
            req, TR_PROM_BAD_DATA,
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query "
            "resolution (?step=XX)");
        goto fail;
    }
    j->step = step_ns / 1000000;
    if (j->step <= 0) j->step = 1; /* sub-millisecond steps: the store's resolution is 1 ms */
    if (common_params(j, &f) != 0) goto fail;
    submit(j);
    goto out;
fail:
    job_free(j);
out:
    tr_form_free(&f);
}

static void api_format_query(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    tr_form f;
    if (tr_prom_form(req, &f)) return;
    const char *q = tr_form_get(&f, "query");
    size_t qlen = 0;
    if (q)
        for (size_t i = 0; i < f.n; i++)
            if (f.kv[i].value == q) qlen = f.kv[i].vlen;
    char err[1024], msg[1100];
    char *out = promql_format(q ? q : "", qlen, err, sizeof err);
    if (!out) {
        snprintf(msg, sizeof msg, "invalid parameter \"query\": %s", err);
        tr_prom_reply_error(req, TR_PROM_BAD_DATA, msg);
    } else {
        tr_buf b;
        tr_buf_init(&b, 0);
        tr_json js;
        tr_json_init(&js, &b);
        tr_prom_open_success(&js);
        tr_json_str(&js, out);
        tr_prom_close_success(&js, NULL);
        tr_prom_reply_json(req, &b);
        tr_buf_free(&b);
        free(out);
    }
    tr_form_free(&f);
}

/* Prometheus' RuntimeInfo shape, with tricorder's values where Go's do not apply. */
static void api_runtimeinfo(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    const tr_api_env *env = ctx;
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_json js;
    tr_json_init(&js, &b);
    char ts[64], cwd[1024];
    struct tm tm;
    gmtime_r(&started_at, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, "?");
    char ret[32];
    int64_t r = env->retention_ms;
    if (r % 86400000 == 0)
        snprintf(ret, sizeof ret, "%lldd", (long long)(r / 86400000));
    else if (r % 3600000 == 0)
        snprintf(ret, sizeof ret, "%lldh", (long long)(r / 3600000));
    else
        snprintf(ret, sizeof ret, "%llds", (long long)(r / 1000));
    tr_prom_open_success(&js);
    tr_json_obj_open(&js);
    tr_json_key(&js, "startTime");
    tr_json_str(&js, ts);
    tr_json_key(&js, "CWD");
    tr_json_str(&js, cwd);
    tr_json_key(&js, "reloadConfigSuccess");
    tr_json_bool(&js, 1);
    tr_json_key(&js, "lastConfigTime");
    tr_json_str(&js, ts);
    tr_json_key(&js, "corruptionCount");
    tr_json_int(&js, 0);
    tr_json_key(&js, "goroutineCount");
    tr_json_int(&js, (int64_t)tr_workq_busy(env->wq));
    tr_json_key(&js, "GOMAXPROCS");
    tr_json_int(&js, sysconf(_SC_NPROCESSORS_ONLN));
    tr_json_key(&js, "GOGC");
    tr_json_str(&js, "");
    tr_json_key(&js, "GODEBUG");
    tr_json_str(&js, "");
    tr_json_key(&js, "storageRetention");
    tr_json_str(&js, ret);
    tr_json_obj_close(&js);
    tr_prom_close_success(&js, NULL);
    tr_prom_reply_json(req, &b);
    tr_buf_free(&b);
}

void tr_api_prom_query_routes(tr_http *h, const tr_api_env *env) {
    void *e = (void *)env;
    started_at = time(NULL);
    tr_http_route(h, TR_GET | TR_POST, "/api/v1/query", 0, api_query, e);
    tr_http_route(h, TR_GET | TR_POST, "/api/v1/query_range", 0, api_query_range, e);
    tr_http_route(h, TR_GET | TR_POST, "/api/v1/format_query", 0, api_format_query, e);
    tr_http_route(h, TR_GET, "/api/v1/status/runtimeinfo", 0, api_runtimeinfo, e);
}
