/* Prometheus remote write 1.0 receiver: POST /api/v1/write with a snappy-compressed (block
 * format) WriteRequest, as Prometheus, vmagent and the Collector's prometheusremotewrite
 * exporter send it. Answers as Prometheus does: 204 when everything was stored; 400 with a
 * message when the body is malformed or some samples were refused (the rest of the request is
 * still stored, so a sender that does not retry 4xx loses nothing else); 415 for other
 * encodings or remote write 2.0 (whose senders then fall back to 1.0); 413 over the limits;
 * 503 when the WAL could not be written. Also holds the shared ingest context. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <snappy-c.h>

#include "api.h"
#include "ingest.h"
#include "util/log.h"

/* Decoded protobuf takes more room than its wire form (a struct per label and sample). */
#define DECODE_EXPANSION 16

int tr_remote_write_decode(const uint8_t *body, size_t len, size_t max_uncompressed, tr_arena *a,
                           Prometheus__WriteRequest **out, char *err, size_t errlen) {
    *out = NULL;
    size_t ulen = 0;
    if (snappy_uncompressed_length((const char *)body, len, &ulen) != SNAPPY_OK) {
        snprintf(err, errlen, "body is not snappy-compressed (block format)");
        return 400;
    }
    if (ulen > max_uncompressed) {
        snprintf(err, errlen, "uncompressed body of %zu bytes is over the limit of %zu bytes", ulen, max_uncompressed);
        return 413;
    }
    char *plain = tr_arena_alloc(a, ulen ? ulen : 1);
    if (!plain) {
        snprintf(err, errlen, "out of memory for %zu bytes", ulen);
        return 413;
    }
    size_t got = ulen;
    if (snappy_uncompress((const char *)body, len, plain, &got) != SNAPPY_OK || got != ulen) {
        snprintf(err, errlen, "corrupt snappy data");
        return 400;
    }
    ProtobufCAllocator al = tr_arena_pb_allocator(a);
    *out = prometheus__write_request__unpack(&al, got, (const uint8_t *)plain);
    if (!*out) {
        snprintf(err, errlen, "body is not a valid remote write 1.0 WriteRequest");
        return 400;
    }
    return 0;
}

/* ---- the shared ingest context ---- */

tr_ingest *tr_ingest_new(tsdb *db, size_t max_body, size_t max_uncompressed) {
    tr_ingest *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->db = db;
    g->max_body = max_body;
    g->max_uncompressed = max_uncompressed;
    static const char *const ep[2] = {"endpoint=\"remote_write\"", "endpoint=\"import_prometheus\""};
    for (int i = 0; i < 2; i++) {
        char l[96];
        g->requests[i] = tr_counter_new("tricorder_ingest_requests_total", "Remote write and text import requests received.", ep[i]);
        g->errors[i] = tr_counter_new("tricorder_ingest_request_errors_total", "Remote write and text import requests answered with an error (4xx/5xx).", ep[i]);
        snprintf(l, sizeof l, "%s,result=\"stored\"", ep[i]);
        g->stored[i] = tr_counter_new("tricorder_ingest_samples_total", "Samples from remote write and text import, by outcome in the store.", l);
        snprintf(l, sizeof l, "%s,result=\"refused\"", ep[i]);
        g->refused[i] = tr_counter_new("tricorder_ingest_samples_total", "Samples from remote write and text import, by outcome in the store.", l);
    }
    return g;
}

void tr_ingest_free(tr_ingest *g) { free(g); }

/* ---- the handler ---- */

typedef struct rw_pending {
    struct evhttp_request *req;
    tr_ingest *g;
    uint64_t refused;
    uint64_t samples;
    char msg[512];
} rw_pending;

static int valid_utf8(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        if (*p < 0x80) { p++; continue; }
        size_t n = (*p >= 0xC2 && *p <= 0xDF) ? 2 : (*p >= 0xE0 && *p <= 0xEF) ? 3 : (*p >= 0xF0 && *p <= 0xF4) ? 4 : 0;
        if (!n) return 0;
        for (size_t i = 1; i < n; i++)
            if ((p[i] & 0xC0) != 0x80) return 0;
        if (n == 3 && ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] >= 0xA0))) return 0;
        if (n == 4 && ((p[0] == 0xF0 && p[1] < 0x90) || (p[0] == 0xF4 && p[1] >= 0x90))) return 0;
        p += n;
    }
    return 1;
}

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

static const char *metadata_type(int t) {
    switch (t) {
    case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__COUNTER: return "counter";
    case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__GAUGE: return "gauge";
    case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__HISTOGRAM: return "histogram";
    case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__GAUGEHISTOGRAM: return "gaugehistogram";
    case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__SUMMARY: return "summary";
    case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__INFO: return "info";
    case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__STATESET: return "stateset";
    default: return "unknown";
    }
}

/* Writes `{a="b",…}` of a series (for messages), cut to fit. */
static void series_text(char *out, size_t cap, const tsdb_label *l, size_t n) {
    size_t o = 0;
    const char *name = "";
    for (size_t i = 0; i < n; i++)
        if (strcmp(l[i].name, "__name__") == 0) name = l[i].value;
    o += snprintf(out + o, cap - o, "%.80s{", name);
    int first = 1;
    for (size_t i = 0; i < n && o < cap; i++) {
        if (strcmp(l[i].name, "__name__") == 0) continue;
        o += snprintf(out + o, cap - o, "%s%.40s=\"%.60s\"", first ? "" : ",", l[i].name, l[i].value);
        first = 0;
    }
    if (o < cap) snprintf(out + o, cap - o, "}");
}

static int media_is(const char *ct, const char *want) {
    while (*ct == ' ') ct++;
    size_t n = strlen(want);
    return strncasecmp(ct, want, n) == 0 && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ');
}

void tr_api_remote_write(struct evhttp_request *req, const char *path, void *ctx) {
    tr_ingest *g = ctx;
    tr_counter_add(g->requests[TR_INGEST_RW], 1);
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
        rw_reply_error(g, req, 405, "remote write takes POST");
        return;
    }
    const char *ct = tr_http_header(req, "Content-Type");
    if (ct && !media_is(ct, "application/x-protobuf")) {
        rw_reply_error(g, req, 415, "unsupported content type: remote write 1.0 sends application/x-protobuf");
        return;
    }
    if (ct && strstr(ct, "io.prometheus.write.v2")) {
        rw_reply_error(g, req, 415, "remote write 2.0 is not supported: send remote write 1.0 (prometheus.WriteRequest)");
        return;
    }
    const char *ce = tr_http_header(req, "Content-Encoding");
    if (ce && *ce && strcasecmp(ce, "snappy") != 0) {
        rw_reply_error(g, req, 415, "unsupported content encoding: remote write 1.0 uses snappy");
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    if (len > g->max_body) {
        rw_reply_error(g, req, 413, "request body over the size limit");
        return;
    }
    const uint8_t *body = len ? evbuffer_pullup(in, -1) : (const uint8_t *)"";
    tr_arena *a = tr_arena_new(g->max_uncompressed * (DECODE_EXPANSION + 1) + 65536);
    rw_pending *p = calloc(1, sizeof *p);
    tsdb_appender *app = tsdb_appender_begin(g->db);
    tsdb_label *lb = NULL;
    size_t lcap = 0;
    if (!a || !p || !app) {
        rw_reply_error(g, req, 503, "out of memory");
        goto out;
    }
    Prometheus__WriteRequest *wr;
    char err[256];
    int st = tr_remote_write_decode(body, len, g->max_uncompressed, a, &wr, err, sizeof err);
    if (st) {
        rw_reply_error(g, req, st, err);
        goto out;
    }
    p->req = req;
    p->g = g;
    uint64_t histograms = 0;
    char first[400] = "";
    for (size_t i = 0; i < wr->n_timeseries; i++) {
        const Prometheus__TimeSeries *ts = wr->timeseries[i];
        if (!ts) continue;
        if (ts->n_labels > lcap) {
            size_t c = ts->n_labels * 2 + 16;
            tsdb_label *nl = realloc(lb, c * sizeof *nl);
            if (!nl) {
                rw_reply_error(g, req, 503, "out of memory");
                goto out;
            }
            lb = nl;
            lcap = c;
        }
        int bad_utf8 = 0;
        for (size_t j = 0; j < ts->n_labels; j++) {
            const Prometheus__Label *l = ts->labels[j];
            lb[j].name = l && l->name ? l->name : "";
            lb[j].value = l && l->value ? l->value : "";
            if (!valid_utf8(lb[j].value) || !valid_utf8(lb[j].name)) bad_utf8 = 1;
        }
        histograms += ts->n_histograms;
        for (size_t k = 0; k < ts->n_samples; k++) {
            const Prometheus__Sample *s = ts->samples[k];
            if (!s) continue;
            p->samples++;
            int rc = bad_utf8 ? TSDB_ERR_LABEL_NAME : tsdb_appender_add(app, lb, ts->n_labels, s->timestamp, s->value);
            if (rc != TSDB_OK) {
                p->refused++;
                if (!first[0]) {
                    char ser[300];
                    series_text(ser, sizeof ser, lb, ts->n_labels);
                    snprintf(first, sizeof first, "%s for %s at %lld", bad_utf8 ? "invalid UTF-8 in a label" : tsdb_strerror(rc),
                             ser, (long long)s->timestamp);
                }
            }
        }
        for (size_t k = 0; k < ts->n_exemplars && !bad_utf8; k++) {
            const Prometheus__Exemplar *e = ts->exemplars[k];
            if (!e) continue;
            tsdb_label el[64];
            size_t n = e->n_labels < 64 ? e->n_labels : 64;
            for (size_t j = 0; j < n; j++) {
                el[j].name = e->labels[j] && e->labels[j]->name ? e->labels[j]->name : "";
                el[j].value = e->labels[j] && e->labels[j]->value ? e->labels[j]->value : "";
            }
            (void)tsdb_appender_add_exemplar(app, lb, ts->n_labels, el, n, e->timestamp, e->value);
        }
    }
    for (size_t i = 0; i < wr->n_metadata; i++) {
        const Prometheus__MetricMetadata *m = wr->metadata[i];
        if (!m || !m->metric_family_name || !*m->metric_family_name || !valid_utf8(m->metric_family_name) ||
            (m->help && !valid_utf8(m->help)) || (m->unit && !valid_utf8(m->unit)))
            continue;
        tsdb_set_metadata(g->db, m->metric_family_name, metadata_type(m->type), m->help, m->unit);
    }
    tr_counter_add(g->stored[TR_INGEST_RW], p->samples - p->refused);
    tr_counter_add(g->refused[TR_INGEST_RW], p->refused);
    if (p->refused && histograms)
        snprintf(p->msg, sizeof p->msg, "%llu of %llu samples refused (first: %s); %llu native histogram samples ignored: not supported",
                 (unsigned long long)p->refused, (unsigned long long)p->samples, first, (unsigned long long)histograms);
    else if (p->refused)
        snprintf(p->msg, sizeof p->msg, "%llu of %llu samples refused (first: %s)", (unsigned long long)p->refused,
                 (unsigned long long)p->samples, first);
    else if (histograms) {
        snprintf(p->msg, sizeof p->msg, "%llu native histogram samples ignored: native histograms are not supported (send classic histograms)",
                 (unsigned long long)histograms);
        p->refused = histograms;
    }
    tr_arena_free(a);
    free(lb);
    tsdb_appender_commit(app, rw_committed, p);
    return;
out:
    if (app) tsdb_appender_rollback(app);
    tr_arena_free(a);
    free(lb);
    free(p);
}
