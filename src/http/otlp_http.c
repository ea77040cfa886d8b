/* OTLP/HTTP: POST /v1/metrics, /v1/traces (and /v1/logs, answered 404 with a status body),
 * protobuf or JSON, optionally gzip-compressed; the answer in the request's encoding. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "api.h"
#include "otlp/otlp_int.h"

typedef struct pending {
    struct evhttp_request *req;
    otlp_signal sig;
    int json;
} pending;

static void reply_status(struct evhttp_request *req, int json, int http_status, int grpc_code,
                         const char *msg) {
    tr_buf b;
    tr_buf_init(&b, 0);
    otlp_encode_status(json, grpc_code, msg, &b);
    tr_http_reply_buf(req, http_status, json ? "application/json" : "application/x-protobuf", &b);
    tr_buf_free(&b);
}

static void done(void *cookie, const otlp_result *res) {
    pending *p = cookie;
    if (res->status == OTLP_OK) {
        tr_buf b;
        tr_buf_init(&b, 0);
        otlp_encode_response(p->sig, p->json, res, &b);
        tr_http_reply_buf(p->req, 200, p->json ? "application/json" : "application/x-protobuf", &b);
        tr_buf_free(&b);
    } else {
        if (res->status == OTLP_UNAVAILABLE || res->status == OTLP_OVERLOADED)
            evhttp_add_header(evhttp_request_get_output_headers(p->req), "Retry-After", "5");
        reply_status(p->req, p->json, otlp_status_to_http(res->status), otlp_status_to_grpc(res->status),
                     res->message);
    }
    free(p);
}

static int media_is(const char *ct, const char *want) {
    size_t n = strlen(want);
    if (strncasecmp(ct, want, n) != 0) return 0;
    return ct[n] == 0 || ct[n] == ';' || ct[n] == ' ';
}

static void api_otlp_http(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    otlp_receiver *r = ((const tr_api_env *)ctx)->recv;
    const char *path = m->path;
    otlp_signal sig = strcmp(path, "/v1/metrics") == 0  ? OTLP_METRICS
                      : strcmp(path, "/v1/traces") == 0 ? OTLP_TRACES
                                                        : OTLP_LOGS;
    const char *ct = tr_http_header(req, "Content-Type");
    int json = ct && media_is(ct, "application/json");
    otlp_transport tr = json ? OTLP_HTTP_JSON : OTLP_HTTP_PROTOBUF;
    size_t len = evbuffer_get_length(evhttp_request_get_input_buffer(req));
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        otlp_receiver_count_error(r, sig, tr, OTLP_INVALID, len);
        reply_status(req, json, 405, GRPC_UNIMPLEMENTED, "method not allowed: OTLP/HTTP takes POST");
        return;
    }
    if (!ct || (!json && !media_is(ct, "application/x-protobuf"))) {
        otlp_receiver_count_error(r, sig, tr, OTLP_INVALID, len);
        reply_status(req, 0, 415, GRPC_INVALID_ARGUMENT,
                     "unsupported content type: use application/x-protobuf or application/json");
        return;
    }
    const char *ce = tr_http_header(req, "Content-Encoding");
    int gzip = 0;
    if (ce && strcasecmp(ce, "gzip") == 0)
        gzip = 1;
    else if (ce && *ce && strcasecmp(ce, "identity") != 0) {
        otlp_receiver_count_error(r, sig, tr, OTLP_INVALID, len);
        reply_status(req, json, 415, GRPC_INVALID_ARGUMENT, "unsupported content encoding: use gzip or none");
        return;
    }
    pending *p = malloc(sizeof *p);
    if (!p) {
        reply_status(req, json, 503, GRPC_UNAVAILABLE, "out of memory");
        return;
    }
    p->req = req;
    p->sig = sig;
    p->json = json;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    const uint8_t *body = len ? evbuffer_pullup(in, -1) : (const uint8_t *)"";
    otlp_receiver_process(r, sig, tr, body, len, gzip, done, p);
}

void tr_api_otlp_routes(tr_http *h, const tr_api_env *env) {
    /* every method reaches the handler: a wrong one is answered in OTLP's status encoding */
    tr_http_route(h, TR_ANY, "/v1/metrics", TR_HTTP_INGEST | TR_HTTP_OTLP, api_otlp_http, (void *)env);
    tr_http_route(h, TR_ANY, "/v1/traces", TR_HTTP_INGEST | TR_HTTP_OTLP, api_otlp_http, (void *)env);
    tr_http_route(h, TR_ANY, "/v1/logs", TR_HTTP_INGEST | TR_HTTP_OTLP, api_otlp_http, (void *)env);
}
