/* The libevent HTTP server: route table, authentication, limits, connection accounting and
 * the reply helpers. */
#include <stdio.h>
#include <sys/queue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "drain.h"
#include "http.h"
#include "util/log.h"
#include "util/selfmon.h"
#include "util/text.h"

#define MAX_HEADERS_BYTES (16 * 1024)

typedef struct route {
    char *path;
    size_t len;
    int flags;
    tr_http_fn fn;
    void *ctx;
} route;

typedef struct listener {
    tr_http *h;
    struct evhttp *eh;
    struct evhttp_bound_socket *bound;
    int ingest_only;
} listener;

struct tr_http {
    struct event_base *base;
    tr_http_config cfg;
    route *routes;
    size_t nroutes, caproutes;
    listener ls[4];
    int nls;
    unsigned inflight, connections;
    /* open-addressing set of connections already counted */
    void **conns;
    size_t conncap;
    tr_metric *req_by_class[6], *conn_gauge;
    tr_drain *drain; /* shutdown: which connections have work in progress */
};

static tr_http *g_http; /* for the reply helpers, which only see the request */

tr_http *tr_http_new(struct event_base *base, const tr_http_config *cfg) {
    tr_http *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->base = base;
    h->cfg = *cfg;
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx", "other"};
    char l[32];
    for (int i = 0; i < 6; i++) {
        snprintf(l, sizeof l, "code=\"%s\"", classes[i]);
        h->req_by_class[i] = tr_counter_new("tricorder_http_responses_total", "HTTP responses sent, by status class.", l);
    }
    h->conn_gauge = tr_gauge_new("tricorder_open_connections", "Open client connections.", "listener=\"http\"");
    h->drain = tr_drain_new();
    g_http = h;
    return h;
}

/* ---- connection accounting ---- */

static size_t conn_slot(tr_http *h, void *c) {
    size_t i = ((uintptr_t)c >> 4) * 11400714819323198485ull & (h->conncap - 1);
    while (h->conns[i] && h->conns[i] != c && h->conns[i] != (void *)1) i = (i + 1) & (h->conncap - 1);
    return i;
}

static void conn_closed(struct evhttp_connection *evcon, void *arg) {
    tr_http *h = arg;
    tr_drain_closed(h->drain, evcon);
    if (!h->conncap) return;
    size_t i = ((uintptr_t)evcon >> 4) * 11400714819323198485ull & (h->conncap - 1);
    for (size_t n = 0; n < h->conncap && h->conns[i]; n++, i = (i + 1) & (h->conncap - 1))
        if (h->conns[i] == evcon) {
            h->conns[i] = (void *)1; /* tombstone */
            h->connections--;
            tr_gauge_set(h->conn_gauge, h->connections);
            return;
        }
}

static void conn_seen(tr_http *h, struct evhttp_connection *evcon) {
    if (!evcon) return;
    if ((h->connections + 1) * 2 > h->conncap) {
        size_t ncap = h->conncap ? h->conncap * 2 : 64;
        void **old = h->conns;
        size_t ocap = h->conncap;
        void **nc = calloc(ncap, sizeof *nc);
        if (!nc) return;
        h->conns = nc;
        h->conncap = ncap;
        for (size_t i = 0; i < ocap; i++)
            if (old[i] && old[i] != (void *)1) h->conns[conn_slot(h, old[i])] = old[i];
        free(old);
    }
    size_t i = conn_slot(h, evcon);
    if (h->conns[i] == evcon) return;
    /* conn_slot may stop at a tombstone before the key: look further before inserting */
    size_t j = i;
    for (size_t n = 0; n < h->conncap && h->conns[j]; n++, j = (j + 1) & (h->conncap - 1))
        if (h->conns[j] == evcon) return;
    h->conns[i] = evcon;
    h->connections++;
    tr_gauge_set(h->conn_gauge, h->connections);
    evhttp_connection_set_closecb(evcon, conn_closed, h);
}

/* ---- replies ---- */

void tr_http_reply(struct evhttp_request *req, int status, const char *ctype, const void *body,
                   size_t len) {
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    if (ctype) evhttp_add_header(oh, "Content-Type", ctype);
    struct evbuffer *eb = evhttp_request_get_output_buffer(req);
    if (len) evbuffer_add(eb, body, len);
    const char *reason = NULL;
    switch (status) {
    case 200: reason = "OK"; break;
    case 204: reason = "No Content"; break;
    case 400: reason = "Bad Request"; break;
    case 401: reason = "Unauthorized"; break;
    case 404: reason = "Not Found"; break;
    case 405: reason = "Method Not Allowed"; break;
    case 413: reason = "Payload Too Large"; break;
    case 415: reason = "Unsupported Media Type"; break;
    case 422: reason = "Unprocessable Entity"; break;
    case 429: reason = "Too Many Requests"; break;
    case 500: reason = "Internal Server Error"; break;
    case 503: reason = "Service Unavailable"; break;
    default: reason = "Status";
    }
    if (g_http) tr_drain_reply(g_http->drain, req);
    evhttp_send_reply(req, status, reason, NULL);
    if (g_http) {
        int cls = status / 100 - 1;
        if (cls < 0 || cls > 4) cls = 5;
        tr_counter_add(g_http->req_by_class[cls], 1);
        if (g_http->inflight) g_http->inflight--;
    }
}

void tr_http_reply_buf(struct evhttp_request *req, int status, const char *ctype, const tr_buf *b) {
    tr_http_reply(req, status, ctype, b->data, b->len);
}

void tr_http_reply_text(struct evhttp_request *req, int status, const char *text) {
    size_t n = strlen(text);
    struct evbuffer *eb = evhttp_request_get_output_buffer(req);
    evbuffer_add(eb, text, n);
    if (n == 0 || text[n - 1] != '\n') evbuffer_add(eb, "\n", 1);
    tr_http_reply(req, status, "text/plain; charset=utf-8", NULL, 0);
}

void tr_http_reply_prom_error(struct evhttp_request *req, int status, const char *type,
                              const char *msg) {
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_json j;
    tr_json_init(&j, &b);
    tr_json_obj_open(&j);
    tr_json_key(&j, "status");
    tr_json_str(&j, "error");
    tr_json_key(&j, "errorType");
    tr_json_str(&j, type);
    tr_json_key(&j, "error");
    tr_json_str(&j, msg);
    tr_json_obj_close(&j);
    tr_http_reply_buf(req, status, "application/json", &b);
    tr_buf_free(&b);
}

/* ---- helpers ---- */

const char *tr_http_header(struct evhttp_request *req, const char *name) {
    return evhttp_find_header(evhttp_request_get_input_headers(req), name);
}

int tr_http_body(struct evhttp_request *req, size_t max, tr_buf *out) {
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    if (n > max) return -1;
    if (tr_buf_reserve(out, n)) return -1;
    evbuffer_copyout(in, out->data + out->len, n);
    out->len += n;
    out->data[out->len] = 0;
    return 0;
}

const char *tr_http_param(struct evkeyvalq *q, const char *key) { return evhttp_find_header(q, key); }

/* Adds each `key=value` pair of an application/x-www-form-urlencoded string to out, with
 * keys and values percent-decoded and '+' read as a space. (evhttp_parse_query_str leaves
 * keys encoded, so `match%5B%5D=up` — how Grafana sends match[] — would not be found.) */
static int parse_form(const char *s, struct evkeyvalq *out) {
    while (*s) {
        size_t n = strcspn(s, "&;");
        if (n) {
            const char *eq = memchr(s, '=', n);
            size_t kn = eq ? (size_t)(eq - s) : n;
            char *k = strndup(s, kn), *v = eq ? strndup(eq + 1, n - kn - 1) : strdup("");
            char *dk = k ? evhttp_uridecode(k, 1, NULL) : NULL;
            char *dv = v ? evhttp_uridecode(v, 1, NULL) : NULL;
            int rc = dk && dv ? evhttp_add_header(out, dk, dv) : -1;
            free(k), free(v), free(dk), free(dv);
            if (rc != 0) return -1;
        }
        s += n;
        if (*s) s++;
    }
    return 0;
}

int tr_http_query(struct evhttp_request *req, struct evkeyvalq *out) {
    TAILQ_INIT(out);
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (q && parse_form(q, out) != 0) {
        evhttp_clear_headers(out);
        return -1;
    }
    return 0;
}

int tr_http_params(struct evhttp_request *req, struct evkeyvalq *out) {
    if (tr_http_query(req, out) != 0) return -1;
    if (evhttp_request_get_command(req) == EVHTTP_REQ_POST) {
        const char *ct = tr_http_header(req, "Content-Type");
        if (ct && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0) {
            tr_buf b;
            tr_buf_init(&b, 0);
            int rc = tr_http_body(req, 1 << 24, &b) == 0 ? parse_form(b.data ? b.data : "", out) : -1;
            tr_buf_free(&b);
            if (rc != 0) goto fail;
        }
    }
    return 0;
fail:
    evhttp_clear_headers(out);
    return -1;
}

/* ---- dispatch ---- */

static const route *find_route(tr_http *h, const char *path) {
    const route *best = NULL;
    for (size_t i = 0; i < h->nroutes; i++) {
        const route *r = &h->routes[i];
        if (!(r->flags & TR_HTTP_PREFIX)) {
            if (strcmp(r->path, path) == 0) return r;
        } else if (strncmp(r->path, path, r->len) == 0 && (!best || r->len > best->len)) {
            best = r;
        }
    }
    return best;
}

static int basic_ok(tr_http *h, const char *auth) {
    if (!auth || strncasecmp(auth, "Basic ", 6) != 0) return 0;
    const char *b64 = auth + 6;
    while (*b64 == ' ') b64++;
    unsigned char out[512];
    size_t n = strlen(b64);
    if (tr_base64_max(n) >= sizeof out) return 0;
    long o = tr_base64_decode(b64, n, out);
    if (o < 0) return 0;
    out[o] = 0;
    char *colon = memchr(out, ':', (size_t)o);
    if (!colon) return 0;
    *colon = 0;
    int u = tr_secret_equal((char *)out, h->cfg.basic_user);
    int pw = tr_secret_equal(colon + 1, h->cfg.basic_pass);
    return u & pw;
}

static int bearer_ok(tr_http *h, const char *auth) {
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) return 0;
    const char *t = auth + 7;
    while (*t == ' ') t++;
    return tr_secret_equal(t, h->cfg.ingest_token);
}

static void dispatch(struct evhttp_request *req, void *arg) {
    listener *l = arg;
    tr_http *h = l->h;
    h->inflight++;
    conn_seen(h, evhttp_request_get_connection(req));
    tr_drain_request(h->drain, req);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *raw = uri ? evhttp_uri_get_path(uri) : NULL;
    char *path = evhttp_uridecode(raw && *raw ? raw : "/", 0, NULL);
    if (!path) {
        tr_http_reply_text(req, 400, "bad request path");
        return;
    }
    const route *r = find_route(h, path);
    if (!r || (l->ingest_only && !(r->flags & TR_HTTP_INGEST))) {
        tr_http_reply_text(req, 404, "not found");
        free(path);
        return;
    }
    const char *auth = tr_http_header(req, "Authorization");
    int ok = 1;
    const char *challenge = NULL;
    if (r->flags & TR_HTTP_PUBLIC) {
        ok = 1;
    } else if (r->flags & TR_HTTP_INGEST) {
        if (h->cfg.ingest_token) {
            ok = bearer_ok(h, auth);
            challenge = "Bearer realm=\"tricorder\"";
        } else if (h->cfg.basic_user && !l->ingest_only) {
            ok = basic_ok(h, auth);
            challenge = "Basic realm=\"tricorder\", charset=\"UTF-8\"";
        }
    } else if (h->cfg.basic_user) {
        ok = basic_ok(h, auth);
        challenge = "Basic realm=\"tricorder\", charset=\"UTF-8\"";
    }
    if (!ok) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", challenge);
        tr_http_reply_text(req, 401, "unauthorized");
        free(path);
        return;
    }
    r->fn(req, path, r->ctx);
    free(path);
}

void tr_http_route(tr_http *h, const char *path, int flags, tr_http_fn fn, void *ctx) {
    if (h->nroutes == h->caproutes) {
        size_t n = h->caproutes ? h->caproutes * 2 : 32;
        route *nr = realloc(h->routes, n * sizeof *nr);
        if (!nr) abort();
        h->routes = nr;
        h->caproutes = n;
    }
    route *r = &h->routes[h->nroutes++];
    r->path = strdup(path);
    if (!r->path) abort();
    r->len = strlen(path);
    r->flags = flags;
    r->fn = fn;
    r->ctx = ctx;
}

int tr_http_listen(tr_http *h, int fd, int ingest_only) {
    if (h->nls >= 4) return -1;
    listener *l = &h->ls[h->nls];
    l->h = h;
    l->ingest_only = ingest_only;
    l->eh = evhttp_new(h->base);
    if (!l->eh) return -1;
    evhttp_set_max_body_size(l->eh, h->cfg.max_body_bytes);
    evhttp_set_max_headers_size(l->eh, MAX_HEADERS_BYTES);
    evhttp_set_timeout(l->eh, h->cfg.idle_timeout_s > 0 ? h->cfg.idle_timeout_s : 60);
    evhttp_set_allowed_methods(l->eh, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                          EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                          EVHTTP_REQ_PATCH);
    evhttp_set_gencb(l->eh, dispatch, l);
    /* replies go out in a few writes: without TCP_NODELAY the last small segment can wait
     * ~40 ms for the client's delayed ACK (accepted sockets inherit the option) */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    l->bound = evhttp_accept_socket_with_handle(l->eh, fd);
    if (!l->bound) {
        evhttp_free(l->eh);
        l->eh = NULL;
        return -1;
    }
    h->nls++;
    return 0;
}

void tr_http_stop_accepting(tr_http *h) {
    tr_drain_stop(h->drain);
    for (int i = 0; i < h->nls; i++)
        if (h->ls[i].bound) {
            evhttp_del_accept_socket(h->ls[i].eh, h->ls[i].bound); /* closes the socket */
            h->ls[i].bound = NULL;
        }
}

void tr_http_free(tr_http *h) {
    if (!h) return;
    for (int i = 0; i < h->nls; i++)
        if (h->ls[i].eh) evhttp_free(h->ls[i].eh);
    for (size_t i = 0; i < h->nroutes; i++) free(h->routes[i].path);
    free(h->routes);
    free(h->conns);
    tr_drain_free(h->drain);
    if (g_http == h) g_http = NULL;
    free(h);
}

unsigned tr_http_inflight(const tr_http *h) { return h->inflight; }
unsigned tr_http_drain(tr_http *h) { return h ? tr_drain_idle_close(h->drain) : 0; }
unsigned tr_http_connections(const tr_http *h) { return h->connections; }
