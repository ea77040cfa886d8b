/* /healthz, /-/ready and /metrics (tricorder's own metrics). */
#include "api.h"
#include "util/selfmon.h"

void tr_api_health(struct evhttp_request *req, const char *path, void *ctx) {
    (void)path;
    (void)ctx;
    tr_http_reply_text(req, 200, "ok");
}

void tr_api_selfmetrics(struct evhttp_request *req, const char *path, void *ctx) {
    (void)path;
    (void)ctx;
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_selfmon_render(&b);
    tr_http_reply_buf(req, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
    tr_buf_free(&b);
}
