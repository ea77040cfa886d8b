/* The receiver core shared by the gRPC and HTTP transports: bounded decompression, decoding,
 * hand-off to the sinks, and the receiver's own metrics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "otlp_int.h"
#include "util/credentials.h"
#include "util/gzip.h"
#include "util/log.h"
#include "util/memlimit.h"
#include "util/selfmon.h"

/* Decoded messages take more room than their wire form (a struct per submessage); this
 * bounds the arena of one request relative to the message size limit. */
#define DECODE_EXPANSION 24

struct otlp_receiver {
    otlp_config cfg;
    char *token;
    unsigned inflight;
    tr_metric *requests[3][3], *errors[3][3], *bytes[3][3], *duration[3][3];
    tr_metric *accepted[2], *rejected[2];
};

typedef struct call {
    otlp_receiver *r;
    otlp_export ex;
    otlp_done_fn done;
    void *cookie;
    struct timespec t0;
} call;

static const char *const transports[] = {"grpc", "http_protobuf", "http_json"};
static const char *const signals[] = {"metrics", "traces", "logs"};

otlp_receiver *otlp_receiver_new(const otlp_config *cfg) {
    otlp_receiver *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->cfg = *cfg;
    if (cfg->ingest_token) {
        r->token = strdup(cfg->ingest_token);
        r->cfg.ingest_token = r->token;
    }
    char l[96];
    for (int t = 0; t < 3; t++)
        for (int s = 0; s < 3; s++) {
            snprintf(l, sizeof l, "transport=\"%s\",signal=\"%s\"", transports[t], signals[s]);
            r->requests[t][s] =
                tr_counter_new("tricorder_otlp_requests_total", "OTLP export requests received.", l);
            r->errors[t][s] = tr_counter_new("tricorder_otlp_request_errors_total",
                                             "OTLP export requests answered with an error.", l);
            r->bytes[t][s] =
                tr_counter_new("tricorder_otlp_received_bytes_total",
                               "OTLP request bytes received, as sent (before decompression).", l);
            r->duration[t][s] = tr_histogram_new("tricorder_otlp_request_duration_seconds",
                                                 "Time from a complete OTLP request to its answer.", l,
                                                 tr_latency_buckets, tr_latency_buckets_n);
        }
    r->accepted[0] =
        tr_counter_new("tricorder_otlp_points_accepted_total", "OTLP metric data points accepted.", NULL);
    r->rejected[0] =
        tr_counter_new("tricorder_otlp_points_rejected_total", "OTLP metric data points rejected.", NULL);
    r->accepted[1] = tr_counter_new("tricorder_otlp_spans_accepted_total", "OTLP spans accepted.", NULL);
    r->rejected[1] = tr_counter_new("tricorder_otlp_spans_rejected_total", "OTLP spans rejected.", NULL);
    return r;
}

void otlp_receiver_free(otlp_receiver *r) {
    if (!r) return;
    free(r->token);
    free(r);
}

const otlp_config *otlp_receiver_config(const otlp_receiver *r) { return &r->cfg; }
unsigned otlp_receiver_inflight(const otlp_receiver *r) { return r->inflight; }

int otlp_receiver_authorized(const otlp_receiver *r, const char *authorization) {
    if (r->cfg.creds)
        return !tr_credstore_has_tokens(r->cfg.creds) || tr_credstore_bearer_ok(r->cfg.creds, authorization);
    if (!r->token) return 1;
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0) return 0;
    const char *given = authorization + 7;
    while (*given == ' ')
        given++;
    return tr_secret_equal(given, r->token);
}

void otlp_receiver_count_error(otlp_receiver *r, otlp_signal sig, otlp_transport tr, otlp_status st,
                               size_t bytes) {
    (void)st;
    tr_counter_add(r->requests[tr][sig], 1);
    tr_counter_add(r->errors[tr][sig], 1);
    tr_counter_add(r->bytes[tr][sig], bytes);
}

static double since(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

static void finish(void *cookie, const otlp_result *res) {
    call *c = cookie;
    otlp_receiver *r = c->r;
    otlp_signal sig = c->ex.signal;
    otlp_transport tr = c->ex.transport;
    if (res->status != OTLP_OK) {
        tr_counter_add(r->errors[tr][sig], 1);
        if (sig != OTLP_LOGS && c->ex.items) tr_counter_add(r->rejected[sig], c->ex.items);
    } else if (sig != OTLP_LOGS) {
        uint64_t rej = res->rejected > c->ex.items ? c->ex.items : res->rejected;
        tr_counter_add(r->accepted[sig], c->ex.items - rej);
        tr_counter_add(r->rejected[sig], rej);
    }
    tr_histogram_observe(r->duration[tr][sig], since(&c->t0));
    if (res->status != OTLP_OK)
        TR_DEBUG("otlp request failed", "transport=%s signal=%s status=%d reason=\"%.200s\"", transports[tr],
                 signals[sig], res->status, res->message);
    c->done(c->cookie, res);
    tr_arena_free(c->ex.arena);
    r->inflight--;
    free(c);
}

static void fail(call *c, otlp_status st, const char *fmt, const char *detail) {
    otlp_result res = {.status = st};
    snprintf(res.message, sizeof res.message, fmt, detail);
    finish(c, &res);
}

/* Hands the export to the forwarding hook as protobuf: the body itself, or for OTLP/JSON
 * the decoded message packed again. */
static int forward(otlp_receiver *r, call *c, const uint8_t *body, size_t len) {
    if (c->ex.transport != OTLP_HTTP_JSON)
        return r->cfg.forward(r->cfg.forward_ctx, c->ex.signal, c->ex.items, body, len);
    const ProtobufCMessage *m = c->ex.signal == OTLP_METRICS ? (const ProtobufCMessage *)c->ex.metrics
                                                             : (const ProtobufCMessage *)c->ex.traces;
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *pb = malloc(n ? n : 1);
    if (!pb) return -1;
    protobuf_c_message_pack(m, pb);
    int rc = r->cfg.forward(r->cfg.forward_ctx, c->ex.signal, c->ex.items, pb, n);
    free(pb);
    return rc;
}

void otlp_receiver_process(otlp_receiver *r, otlp_signal sig, otlp_transport tr, const uint8_t *body,
                           size_t len, int gzip, otlp_done_fn done, void *cookie) {
    call *c = calloc(1, sizeof *c);
    if (!c) {
        otlp_result res = {.status = OTLP_UNAVAILABLE};
        snprintf(res.message, sizeof res.message, "out of memory");
        done(cookie, &res);
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &c->t0);
    c->r = r;
    c->done = done;
    c->cookie = cookie;
    c->ex.signal = sig;
    c->ex.transport = tr;
    r->inflight++;
    tr_counter_add(r->requests[tr][sig], 1);
    tr_counter_add(r->bytes[tr][sig], len);

    if (sig == OTLP_LOGS) {
        fail(c, OTLP_UNIMPLEMENTED, "%s", "logs are not stored by tricorder (metrics and traces are)");
        return;
    }
    if (tr_mem_refuse()) { /* before decoding: the refusal itself must cost nothing */
        char m[64];
        snprintf(m, sizeof m, "%lld", (long long)tr_mem_limit());
        fail(c, OTLP_OVERLOADED, "server over its memory limit (%s bytes); retry later", m);
        return;
    }
    size_t max = r->cfg.max_message_bytes;
    tr_buf plain;
    tr_buf_init(&plain, max);
    if (gzip) {
        int z = tr_gunzip(body, len, max, &plain);
        if (z == TR_GZIP_TOO_LARGE) {
            tr_buf_free(&plain);
            char m[64];
            snprintf(m, sizeof m, "%zu", max);
            fail(c, OTLP_TOO_LARGE, "decompressed message larger than the limit of %s bytes", m);
            return;
        }
        if (z != TR_GZIP_OK) {
            tr_buf_free(&plain);
            fail(c, OTLP_INVALID, "%s", "invalid gzip data");
            return;
        }
        body = (const uint8_t *)plain.data;
        len = plain.len;
        if (!body) body = (const uint8_t *)"";
    } else if (len > max) {
        char m[64];
        snprintf(m, sizeof m, "%zu", max);
        fail(c, OTLP_TOO_LARGE, "message larger than the limit of %s bytes", m);
        return;
    }
    c->ex.arena = tr_arena_new(max * DECODE_EXPANSION + 65536);
    if (!c->ex.arena) {
        tr_buf_free(&plain);
        fail(c, OTLP_UNAVAILABLE, "%s", "out of memory");
        return;
    }
    char err[200];
    err[0] = 0;
    int rc = tr == OTLP_HTTP_JSON ? otlp_decode_json(sig, body, len, c->ex.arena, &c->ex, err, sizeof err)
                                  : otlp_decode_pb(sig, body, len, c->ex.arena, &c->ex, err, sizeof err);
    if (rc == 0 && r->cfg.forward && forward(r, c, body, len) != 0) {
        tr_buf_free(&plain);
        fail(c, OTLP_UNAVAILABLE, "%s", "cannot queue the export for forwarding (disk error)");
        return;
    }
    tr_buf_free(&plain);
    if (rc != 0) {
        /* a well-formed message whose decoded form outgrows the request's memory budget is
         * too large, not malformed */
        fail(c, tr_arena_exhausted(c->ex.arena) ? OTLP_TOO_LARGE : OTLP_INVALID, "%s",
             err[0] ? err : "malformed request");
        return;
    }
    const otlp_sink *s = sig == OTLP_METRICS ? &r->cfg.metrics : &r->cfg.traces;
    if (!s->submit) {
        otlp_result ok = {.status = OTLP_OK};
        finish(c, &ok);
        return;
    }
    s->submit(s->ctx, &c->ex, finish, c);
}
