/* Prometheus remote write 1.0 receiver: POST /api/v1/write with a snappy-compressed (block
 * format) WriteRequest, as Prometheus, vmagent and the Collector's prometheusremotewrite
 * exporter send it. Answers as Prometheus does: 204 when everything was stored; 400 with a
 * message when the body is malformed or some samples were refused (the rest of the request is
 * still stored, so a sender that does not retry 4xx loses nothing else); 415 for other
 * encodings or remote write 2.0 (whose senders then fall back to 1.0); 413 over the limits;
 * 503 when the WAL could not be written. The decoder is otlp/promwire.h's. Also holds the
 * shared ingest context. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "api.h"
#include "ingest.h"
#include "util/log.h"
#include "util/memlimit.h"

/* The uncompressed buffer kept between requests up to this size (ingest runs on the loop
 * thread, one request at a time): no allocation and no fresh page faults per request. */
#define KEEP_PLAIN_BYTES (8u << 20)

/* ---- the shared ingest context ---- */

tr_ingest *tr_ingest_new(tsdb *db, size_t max_body, size_t max_uncompressed, size_t max_import) {
    tr_ingest *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->db = db;
    g->max_body = max_body;
    g->max_uncompressed = max_uncompressed;
    g->max_import = max_import;
    static const char *const ep[2] = {"endpoint=\"remote_write\"", "endpoint=\"import_prometheus\""};
    for (int i = 0; i < 2; i++) {
        char l[96];
        g->requests[i] = tr_counter_new("tricorder_ingest_requests_total",
                                        "Remote write and text import requests received.", ep[i]);
        g->errors[i] =
            tr_counter_new("tricorder_ingest_request_errors_total",
                           "Remote write and text import requests answered with an error (4xx/5xx).", ep[i]);
        snprintf(l, sizeof l, "%s,result=\"stored\"", ep[i]);
        g->stored[i] =
            tr_counter_new("tricorder_ingest_samples_total",
                           "Samples from remote write and text import, by outcome in the store.", l);
        snprintf(l, sizeof l, "%s,result=\"refused\"", ep[i]);
        g->refused[i] =
            tr_counter_new("tricorder_ingest_samples_total",
                           "Samples from remote write and text import, by outcome in the store.", l);
    }
    return g;
}

void tr_ingest_free(tr_ingest *g) {
    if (!g) return;
    free(g->plain);
    free(g);
}

/* ---- the handler ---- */

typedef struct rw_pending {
    struct evhttp_request *req;
    tr_ingest *g;
    uint64_t refused;
    char msg[640]; /* room for tr_rw_result.first and the rest of the sentence */
} rw_pending;

static void rw_reply_error(tr_ingest *g, struct evhttp_request *req, int status, const char *msg) {
    tr_counter_add(g->errors[TR_INGEST_RW], 1);
    tr_http_reply_text(req, status, msg);
}

static void rw_committed(void *cookie, int status, const char *msg) {
    rw_pending *p = cookie;
    if (status != TSDB_OK) {
        char m[300];
        snprintf(m, sizeof m, "samples not stored: %s", msg ? msg : tsdb_strerror(status));
        evhttp_add_header(evhttp_request_get_output_headers(p->req), "Retry-After", "5");
        rw_reply_error(p->g, p->req, 503, m);
    } else if (p->refused) {
        rw_reply_error(p->g, p->req, 400, p->msg);
    } else {
        tr_http_reply(p->req, 204, NULL, NULL, 0);
    }
    free(p);
}

static int media_is(const char *ct, const char *want) {
    while (*ct == ' ')
        ct++;
    size_t n = strlen(want);
    return strncasecmp(ct, want, n) == 0 && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ');
}

void tr_api__remote_write(struct evhttp_request *req, const tr_http_match *m, void *ctx) {
    tr_ingest *g = ((const tr_api_env *)ctx)->ingest;
    tr_counter_add(g->requests[TR_INGEST_RW], 1);
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        rw_reply_error(g, req, 405, "remote write takes POST");
        return;
    }
    const char *ct = tr_http_header(req, "Content-Type");
    if (ct && !media_is(ct, "application/x-protobuf")) {
        rw_reply_error(g, req, 415,
                       "unsupported content type: remote write 1.0 sends application/x-protobuf");
        return;
    }
    if (ct && strstr(ct, "io.prometheus.write.v2")) {
        rw_reply_error(g, req, 415,
                       "remote write 2.0 is not supported: send remote write 1.0 (prometheus.WriteRequest)");
        return;
    }
    const char *ce = tr_http_header(req, "Content-Encoding");
    if (ce && *ce && strcasecmp(ce, "snappy") != 0) {
        rw_reply_error(g, req, 415, "unsupported content encoding: remote write 1.0 uses snappy");
        return;
    }
    if (tr_mem_refuse()) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "5");
        rw_reply_error(g, req, 503, "server over its memory limit (--memory-limit); retry later");
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > g->max_body) {
        rw_reply_error(g, req, 413, "request body over the size limit");
        return;
    }
    const uint8_t *body = len ? evbuffer_pullup(in, -1) : (const uint8_t *)"";
    rw_pending *p = calloc(1, sizeof *p);
    tsdb_appender *app = tsdb_appender_begin(g->db);
    char err[256];
    size_t plen;
    tr_rw_result res;
    if (!p || !app) {
        rw_reply_error(g, req, 503, "out of memory");
        goto out;
    }
    int st = tr_remote_write_uncompress(body, len, g->max_uncompressed, &g->plain, &g->plain_cap, &plen, err,
                                        sizeof err);
    if (!st) st = tr_remote_write_apply(g->db, app, g->plain, plen, &res, err, sizeof err);
    if (g->plain_cap > KEEP_PLAIN_BYTES) {
        free(g->plain);
        g->plain = NULL;
        g->plain_cap = 0;
    }
    if (st) {
        rw_reply_error(g, req, st, err);
        goto out;
    }
    p->req = req;
    p->g = g;
    p->refused = res.refused;
    tr_counter_add(g->stored[TR_INGEST_RW], res.samples - res.refused);
    tr_counter_add(g->refused[TR_INGEST_RW], res.refused);
    if (res.refused && res.histograms)
        snprintf(
            p->msg, sizeof p->msg,
            "%llu of %llu samples refused (first: %s); %llu native histogram samples ignored: not supported",
            (unsigned long long)res.refused, (unsigned long long)res.samples, res.first,
            (unsigned long long)res.histograms);
    else if (res.refused)
        snprintf(p->msg, sizeof p->msg, "%llu of %llu samples refused (first: %s)",
                 (unsigned long long)res.refused, (unsigned long long)res.samples, res.first);
    else if (res.histograms) {
        snprintf(p->msg, sizeof p->msg,
                 "%llu native histogram samples ignored: native histograms are not supported (send classic "
                 "histograms)",
                 (unsigned long long)res.histograms);
        p->refused = res.histograms;
    }
    tsdb_appender_commit(app, rw_committed, p);
    return;
out:
    if (app) tsdb_appender_rollback(app);
    free(p);
}
