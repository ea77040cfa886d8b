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
