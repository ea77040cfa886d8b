/* Alert notifications: see notify.h. */
#include "notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/selfmon.h"

#define MAX_QUEUED 10000 /* alerts per target, as Prometheus's notification queue */
#define MAX_BATCH 64     /* alerts per request, as Prometheus */
#define MAX_ATTEMPTS 5
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define TIMEOUT_S 10

typedef struct batch {
    char *body;
    size_t len, nalerts;
    int attempts;
    struct batch *next;
} batch;

typedef struct target {
    tr_notifier *n;
    int webhook;
    char *url, *host, *path;
    int port;
    struct evhttp_connection *conn;
    batch *head, *tail;
    size_t queued;
    int inflight;
    struct event *retry;
    tr_metric *sent, *failed, *dropped, *queue;
} target;

struct tr_notifier {
    struct event_base *base;
    target *t;
    size_t nt;
    char *external_url;
    int closing;
};

void tr_notice_free(tr_notice *n) {
    free(n->labels_json);
    free(n->annotations_json);
    free(n->generator_url);
}

static void fmt_rfc3339(int64_t ms, char *out, size_t cap) {
    if (ms <= 0) {
        snprintf(out, cap, "0001-01-01T00:00:00Z");
        return;
    }
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t l = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + l, cap - l, ".%03dZ", (int)(ms % 1000));
}

static void send_next(target *t);

static void retry_cb(evutil_socket_t fd, short what, void *arg) { send_next(arg); }

static void pop(target *t) {
    batch *b = t->head;
    t->head = b->next;
    if (!t->head) t->tail = NULL;
    t->queued -= b->nalerts;
    tr_gauge_set(t->queue, (double)t->queued);
    free(b->body);
    free(b);
}

static void on_done(struct evhttp_request *req, void *arg) {
    target *t = arg;
    t->inflight = 0;
    if (t->n->closing || !t->head) return;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    batch *b = t->head;
    if (code >= 200 && code < 300) {
        tr_counter_add(t->sent, b->nalerts);
        pop(t);
        send_next(t);
        return;
    }
    b->attempts++;
    char q[600];
    TR_WARN_LIMITED(t->url, "rules: notification failed", "url=%s status=%d attempt=%d",
                    tr_log_quote(q, sizeof q, t->url), code, b->attempts);
    if (b->attempts >= MAX_ATTEMPTS || code == 400) { /* a refused body will not get better */
        tr_counter_add(t->failed, b->nalerts);
        pop(t);
        send_next(t);
        return;
    }
    int64_t ms = (int64_t)BACKOFF_MIN_MS << (b->attempts - 1);
    if (ms > BACKOFF_MAX_MS) ms = BACKOFF_MAX_MS;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(t->retry, &tv);
}

static void send_next(target *t) {
    if (t->inflight || !t->head || t->n->closing) return;
    if (!t->conn) {
        t->conn = evhttp_connection_base_new(t->n->base, NULL, t->host, (unsigned short)t->port);
        if (!t->conn) return;
        evhttp_connection_set_timeout(t->conn, TIMEOUT_S);
    }
    struct evhttp_request *req = evhttp_request_new(on_done, t);
    if (!req) return;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char hostport[300];
    snprintf(hostport, sizeof hostport, "%s:%d", t->host, t->port);
    evhttp_add_header(h, "Host", hostport);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "User-Agent", "tricorder");
    evbuffer_add(evhttp_request_get_output_buffer(req), t->head->body, t->head->len);
    t->inflight = 1;
    if (evhttp_make_request(t->conn, req, EVHTTP_REQ_POST, t->path) != 0) {
        t->inflight = 0;
        evhttp_connection_free(t->conn);
        t->conn = NULL;
    }
}

static void enqueue(target *t, tr_buf *body, size_t nalerts) {
    batch *b = calloc(1, sizeof *b);
    if (!b || body->failed) {
        free(b);
        tr_counter_add(t->dropped, nalerts);
        return;
    }
    b->body = body->data;
    b->len = body->len;
    b->nalerts = nalerts;
    body->data = NULL;
    /* full: the oldest go first (a newer state supersedes them) */
    while (t->head && t->queued + nalerts > MAX_QUEUED && !(t->inflight && t->head->next == NULL)) {
        batch *old = t->inflight ? t->head->next : t->head;
        if (!old) break;
        tr_counter_add(t->dropped, old->nalerts);
        if (t->inflight) {
            t->head->next = old->next;
            if (t->tail == old) t->tail = t->head;
            t->queued -= old->nalerts;
            free(old->body);
            free(old);
        } else {
            pop(t);
        }
    }
    if (t->tail)
        t->tail->next = b;
    else
        t->head = b;
    t->tail = b;
    t->queued += nalerts;
    tr_gauge_set(t->queue, (double)t->queued);
    send_next(t);
}

static void json_str(tr_buf *b, const char *s) {
    tr_buf_putc(b, '"');
    tr_json_escape(b, s, strlen(s));
    tr_buf_putc(b, '"');
}

static void am_alert(tr_buf *b, const tr_notice *n) {
    char s[64], e[64];
    fmt_rfc3339(n->starts_ms, s, sizeof s);
    fmt_rfc3339(n->ends_ms, e, sizeof e);
    tr_buf_printf(b,
                  "{\"labels\":%s,\"annotations\":%s,\"startsAt\":\"%s\",\"endsAt\":\"%s\",\"generatorURL\":",
                  n->labels_json, n->annotations_json, s, e);
    json_str(b, n->generator_url);
    tr_buf_putc(b, '}');
}

void tr_notifier_send(tr_notifier *nt, tr_notice *n, size_t count) {
    for (size_t off = 0; nt && off < count; off += MAX_BATCH) {
        size_t k = count - off < MAX_BATCH ? count - off : MAX_BATCH;
        for (size_t ti = 0; ti < nt->nt; ti++) {
            target *t = &nt->t[ti];
            tr_buf b;
            tr_buf_init(&b, 0);
            if (!t->webhook) {
                tr_buf_putc(&b, '[');
                for (size_t i = 0; i < k; i++) {
                    if (i) tr_buf_putc(&b, ',');
                    am_alert(&b, &n[off + i]);
                }
                tr_buf_putc(&b, ']');
            } else {
                /* Alertmanager's webhook payload, version 4 */
                int firing = 0;
                for (size_t i = 0; i < k; i++)
                    firing |= !n[off + i].resolved;
                tr_buf_printf(
                    &b,
                    "{\"version\":\"4\",\"groupKey\":\"{}:{}\",\"truncatedAlerts\":0,\"status\":\"%s\","
                    "\"receiver\":\"tricorder\","
                    "\"groupLabels\":{},\"commonLabels\":{},\"commonAnnotations\":{},\"externalURL\":",
                    firing ? "firing" : "resolved");
                json_str(&b, nt->external_url);
                tr_buf_puts(&b, ",\"alerts\":[");
                for (size_t i = 0; i < k; i++) {
                    const tr_notice *a = &n[off + i];
                    char s[64], e[64];
                    fmt_rfc3339(a->starts_ms, s, sizeof s);
                    fmt_rfc3339(a->resolved ? a->ends_ms : 0, e, sizeof e);
                    tr_buf_printf(&b,
                                  "%s{\"status\":\"%s\",\"labels\":%s,\"annotations\":%s,\"startsAt\":\"%s\","
                                  "\"endsAt\":\"%s\",\"generatorURL\":",
                                  i ? "," : "", a->resolved ? "resolved" : "firing", a->labels_json,
                                  a->annotations_json, s, e);
                    json_str(&b, a->generator_url);
                    tr_buf_printf(&b, ",\"fingerprint\":\"%016llx\"}", (unsigned long long)a->fp);
                }
                tr_buf_puts(&b, "]}");
            }
            enqueue(t, &b, k);
            tr_buf_free(&b);
        }
    }
    for (size_t i = 0; i < count; i++)
        tr_notice_free(&n[i]);
    free(n);
}

/* http://host[:port][/path] */
static int parse_url(const char *url, target *t, const char *suffix) {
    struct evhttp_uri *u = evhttp_uri_parse(url);
    if (!u) return -1;
    const char *scheme = evhttp_uri_get_scheme(u), *host = evhttp_uri_get_host(u),
               *path = evhttp_uri_get_path(u);
    if (!scheme || strcmp(scheme, "http") || !host || !*host) {
        evhttp_uri_free(u);
        return -1;
    }
    t->host = strdup(host);
    t->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 80;
    size_t pl = path ? strlen(path) : 0;
    while (pl && path[pl - 1] == '/')
        pl--;
    const char *query = evhttp_uri_get_query(u);
    t->path = malloc(pl + strlen(suffix) + (query ? strlen(query) + 1 : 0) + 2);
    sprintf(t->path, "%.*s%s%s%s", (int)pl, path ? path : "", suffix, query ? "?" : "", query ? query : "");
    if (!*t->path) strcpy(t->path, "/");
    evhttp_uri_free(u);
    return 0;
}

tr_notifier *tr_notifier_new(struct event_base *base, const char *const *am, size_t nam,
                             const char *const *wh, size_t nwh, const char *external_url, char *err,
                             size_t errlen) {
    if (nam + nwh == 0) return NULL;
    tr_notifier *n = calloc(1, sizeof *n);
    n->base = base;
    n->t = calloc(nam + nwh, sizeof *n->t);
    n->external_url = strdup(external_url ? external_url : "");
    for (size_t i = 0; i < nam + nwh; i++) {
        target *t = &n->t[n->nt];
        const char *url = i < nam ? am[i] : wh[i - nam];
        t->n = n;
        t->webhook = i >= nam;
        t->url = strdup(url);
        n->nt++;
        if (parse_url(url, t, t->webhook ? "" : "/api/v2/alerts")) {
            snprintf(err, errlen, "%s %s: want http://host[:port][/path] (https is not supported)",
                     t->webhook ? "--alert-webhook-url" : "--alertmanager-url", url);
            tr_notifier_free(n);
            return NULL;
        }
        t->retry = evtimer_new(base, retry_cb, t);
        char lbl[700], q[600];
        size_t o = 0;
        for (const char *c = url; *c && o + 3 < sizeof q; c++) {
            if (*c == '"' || *c == '\\') q[o++] = '\\';
            q[o++] = *c;
        }
        q[o] = 0;
        snprintf(lbl, sizeof lbl, "kind=\"%s\",url=\"%s\"", t->webhook ? "webhook" : "alertmanager", q);
        t->sent = tr_counter_new("tricorder_notifications_sent_total",
                                 "Alerts sent to Alertmanager or a webhook.", lbl);
        t->failed = tr_counter_new("tricorder_notifications_errors_total",
                                   "Alerts whose sending failed after every retry.", lbl);
        t->dropped = tr_counter_new("tricorder_notifications_dropped_total",
                                    "Alerts dropped because the queue was full.", lbl);
        t->queue = tr_gauge_new("tricorder_notifications_queue_length", "Alerts waiting to be sent.", lbl);
    }
    return n;
}

void tr_notifier_free(tr_notifier *n) {
    if (!n) return;
    n->closing = 1;
    for (size_t i = 0; i < n->nt; i++) {
        target *t = &n->t[i];
        if (t->conn) evhttp_connection_free(t->conn);
        if (t->retry) event_free(t->retry);
        while (t->head)
            pop(t);
        free(t->url);
        free(t->host);
        free(t->path);
    }
    free(n->t);
    free(n->external_url);
    free(n);
}
