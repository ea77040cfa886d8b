/* /healthz, /-/ready and /metrics (tricorder's own metrics), and the job submission helper
 * every API file uses. */
#include "api.h"
#include "metrics/metrics.h"
#include "util/selfmon.h"

volatile int *tr_api_submit(const tr_api_env *env, struct evhttp_request *req, tr_workq_fn fn,
                            tr_workq_done_fn done, void *ctx) {
    volatile int *cancel = tr_workq_submit(env->wq, fn, done, ctx);
    if (cancel) tr_http_watch(req, cancel);
    return cancel;
}

static void api_health(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    (void)m;
    (void)ctx;
    tr_http_reply_text(req, 200, "ok");
}

static void api_selfmetrics(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    (void)m;
    (void)ctx;
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_selfmon_render(&b);
    tr_http_reply_buf(req, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
    tr_buf_free(&b);
}

/* /-/ready: 503 while the metrics store replays its write-ahead log. */
static void api_ready(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    if (!tsdb_ready(ctx))
        tr_http_reply_text(req, 503, "not ready: the metrics store is replaying its write-ahead log");
    else
        api_health(req, m, ctx);
}

void tr_api_core_routes(tr_http *h, const tr_api_env *env) {
    tr_http_route(h, TR_GET, "/healthz", TR_HTTP_PUBLIC, api_health, NULL);
    tr_http_route(h, TR_GET, "/-/healthy", TR_HTTP_PUBLIC, api_health, NULL);
    tr_http_route(h, TR_GET, "/-/ready", TR_HTTP_PUBLIC, api_ready, env->db);
    tr_http_route(h, TR_GET, "/metrics", 0, api_selfmetrics, NULL);
}

/* ---- self-scrape: /metrics into the store, as a Prometheus scraping tricorder would ---- */

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "otlp/promwire.h"
#include "util/arena.h"
#include "util/log.h"

struct tr_selfscrape {
    struct event *ev;
    tsdb *db;
    int64_t interval_ms;
    char *instance;
};

long tr_selfscrape_once(tsdb *db, const char *instance, int64_t t_ms) {
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_selfmon_render(&b);
    tr_arena *ar = tr_arena_new(64u << 20);
    tr_text_result res;
    long added = -1;
    tsdb_appender *app = NULL;
    if (!ar || tr_prom_text_parse((const char *)b.data, b.len, ar, &res) != 0) goto out;
    if (!(app = tsdb_appender_begin(db))) goto out;
    added = 0;
    for (size_t i = 0; i < res.n_samples; i++) {
        const tr_text_sample *s = &res.samples[i];
        tsdb_label l[80];
        size_t n = 0;
        for (size_t k = 0; k < s->n_labels && n < 78; k++)
            if (strcmp(s->labels[k].name, "job") != 0 && strcmp(s->labels[k].name, "instance") != 0)
                l[n++] = s->labels[k];
        l[n++] = (tsdb_label){.name = "job", .value = "tricorder"};
        l[n++] = (tsdb_label){.name = "instance", .value = instance};
        if (tsdb_appender_add(app, l, n, t_ms, s->value) == TSDB_OK) added++;
    }
    tsdb_appender_commit(app, NULL, NULL);
out:
    tr_arena_free(ar);
    tr_buf_free(&b);
    return added;
}

static void selfscrape_tick(evutil_socket_t fd, short what, void *arg) {
    tr_selfscrape *s = arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (tr_selfscrape_once(s->db, s->instance, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000) < 0)
        TR_WARN("self-scrape failed: out of memory", NULL);
    struct timeval tv = {s->interval_ms / 1000, (s->interval_ms % 1000) * 1000};
    evtimer_add(s->ev, &tv);
}

tr_selfscrape *tr_selfscrape_start(struct event_base *base, tsdb *db, int64_t interval_ms,
                                   const char *instance) {
    tr_selfscrape *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->db = db;
    s->interval_ms = interval_ms;
    s->instance = strdup(instance ? instance : "");
    s->ev = evtimer_new(base, selfscrape_tick, s);
    if (!s->instance || !s->ev) {
        tr_selfscrape_free(s);
        return NULL;
    }
    int64_t first = interval_ms < 2000 ? interval_ms : 2000;
    struct timeval tv = {first / 1000, (first % 1000) * 1000};
    evtimer_add(s->ev, &tv);
    return s;
}

void tr_selfscrape_free(tr_selfscrape *s) {
    if (!s) return;
    if (s->ev) event_free(s->ev);
    free(s->instance);
    free(s);
}
