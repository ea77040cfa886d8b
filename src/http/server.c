/* The libevent HTTP server: route table, authentication, limits, connection accounting and
 * the reply helpers. */
#include <dlfcn.h> /* dlsym(RTLD_NEXT) */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/http_struct.h> /* the HTTP version of a request libevent refused */
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "auth.h"
#include "drain.h"
#include "http.h"
#include "http_int.h"
#include "tls/tls.h"
#include "util/addrcount.h"
#include "util/clock.h"
#include "util/gzip.h"
#include "util/log.h"
#include "util/re.h"
#include "util/selfmon.h"
#include "util/text.h"

#define MAX_HEADERS_BYTES ((1 << 20) + 4096) /* request line and headers: as Go's server (1 MiB + 4 KiB) */

#define MAX_SEGS 16

typedef struct route {
    char *pattern; /* owns the segment strings: '/' replaced by NUL */
    const char *seg[MAX_SEGS];
    unsigned char is_var[MAX_SEGS];
    size_t nseg, literals;
    unsigned methods;
    int flags;
    tr_http_fn fn;
    void *ctx;
} route;

typedef struct listener {
    tr_http *h;
    struct evhttp *eh;
    struct evhttp_bound_socket *bound;
    int ingest_only;
    tr_tls_server *tls; /* NULL: plain HTTP */
    /* accept-side limits: evhttp's own accept callback, called when a connection is let in */
    evconnlistener_cb evhttp_accept;
    struct evconnlistener *lev;
    struct event *pause_ev;      /* re-enables accepting after accept() failed or a burst */
    unsigned burst;              /* accepted since the last yield */
    struct bufferevent *new_bev; /* the bufferevent made for the connection being accepted */
    tr_addrcount *per_addr;      /* open connections per client address */
    unsigned nconns;             /* open connections on this listener */
    tr_metric *refused_addr, *refused_total;
} listener;

/* Where a connection is in its request: the header and body deadlines are absolute, counted
 * from the accept (first request) or the request's first byte (later ones) to the end of the
 * headers, then from there to the end of the body. Waiting for a next request on a keep-alive
 * connection is left to the idle timeout, and a request being answered (a streamed export
 * included) has no deadline. */
enum { P_HEAD, P_BODY, P_BUSY, P_IDLE, P_CLOSING };

typedef struct cstate {
    listener *l; /* NULL: counted in dispatch only (no accept-side accounting) */
    tr_addrkey key;
    int64_t t0;
    size_t body_limit; /* the body limit of the route of the request being read (0: not known) */
    unsigned char phase, eol, seen;
} cstate;

struct tr_http {
    struct event_base *base;
    tr_http_config cfg;
    route *routes;
    size_t nroutes, caproutes;
    listener ls[4];
    int nls;
    unsigned inflight, connections;
    /* open-addressing set of connections already counted, and per slot the cancel flag of
     * the work running for that connection's request (tr_http_watch) */
    void **conns;
    volatile int **watch;
    cstate *cst;
    size_t *held;    /* per slot: the body bytes reserved for the request being read */
    size_t buffered; /* sum of held */
    unsigned nwatch;
    struct event *watch_ev; /* while anything is watched: looks for clients that went away */
    size_t conncap;
    tr_metric *req_by_class[6], *conn_gauge;
    tr_drain *drain;        /* shutdown: which connections have work in progress */
    tr_re *cors;            /* --web-cors-origin unless ".*" (then NULL: "*" for any origin) */
    struct event *sweep_ev; /* checks the header and body deadlines */
    tr_metric *timeouts_head, *timeouts_body;
    tr_auth *auth;
    tr_metric *budget_refused;
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
        h->req_by_class[i] =
            tr_counter_new("tricorder_http_responses_total", "HTTP responses sent, by status class.", l);
    }
    h->conn_gauge =
        tr_gauge_new("tricorder_open_connections", "Open client connections.", "listener=\"http\"");
    h->drain = tr_drain_new();
    static const char timeouts_help[] =
        "Connections closed (408) because a request's headers or body did not "
        "arrive by their deadline (--header-timeout, --body-timeout).";
    h->timeouts_head =
        tr_counter_new("tricorder_http_request_timeouts_total", timeouts_help, "phase=\"headers\"");
    h->timeouts_body =
        tr_counter_new("tricorder_http_request_timeouts_total", timeouts_help, "phase=\"body\"");
    if (cfg->cors_origin && strcmp(cfg->cors_origin, ".*") != 0) {
        char err[300];
        h->cors = tr_re_compile(cfg->cors_origin, strlen(cfg->cors_origin), err, sizeof err);
        if (!h->cors) {
            free(h);
            return NULL;
        }
    }
    h->auth = tr_auth_new(cfg->creds, cfg->wq, cfg->open_reads);
    if (!h->auth) {
        tr_re_free(h->cors);
        free(h);
        return NULL;
    }
    h->budget_refused = tr_counter_new("tricorder_http_body_budget_refused_total",
                                       "Requests answered 503 because request bodies being read filled "
                                       "--max-buffered-body-bytes.",
                                       NULL);
    g_http = h;
    return h;
}

/* ---- connection accounting ---- */

static size_t conn_slot(tr_http *h, void *c) {
    size_t i = ((uintptr_t)c >> 4) * 11400714819323198485ull & (h->conncap - 1);
    while (h->conns[i] && h->conns[i] != c && h->conns[i] != (void *)1)
        i = (i + 1) & (h->conncap - 1);
    return i;
}

static void conn_closed(struct evhttp_connection *evcon, void *arg) {
    tr_http *h = arg;
    tr_drain_closed(h->drain, evcon);
    if (!h->conncap) return;
    size_t i = ((uintptr_t)evcon >> 4) * 11400714819323198485ull & (h->conncap - 1);
    for (size_t n = 0; n < h->conncap && h->conns[i]; n++, i = (i + 1) & (h->conncap - 1))
        if (h->conns[i] == evcon) {
            if (h->watch[i]) {
                *h->watch[i] = 1; /* the client went away: the work stops */
                h->watch[i] = NULL;
                h->nwatch--;
            }
            h->buffered -= h->held[i];
            h->held[i] = 0;
            h->conns[i] = (void *)1; /* tombstone */
            listener *l = h->cst[i].l;
            if (l) {
                if (l->per_addr) tr_addrcount_release(l->per_addr, &h->cst[i].key);
                if (l->nconns) l->nconns--;
            }
            h->connections--;
            tr_gauge_set(h->conn_gauge, h->connections);
            return;
        }
}

/* Counts a connection (once) and returns its slot, or -1 (out of memory: not counted). */
static long conn_seen(tr_http *h, struct evhttp_connection *evcon) {
    if (!evcon) return -1;
    if ((h->connections + 1) * 2 > h->conncap) {
        size_t ncap = h->conncap ? h->conncap * 2 : 64;
        void **old = h->conns;
        volatile int **oldw = h->watch;
        cstate *olds = h->cst;
        size_t ocap = h->conncap;
        void **nc = calloc(ncap, sizeof *nc);
        volatile int **nw = calloc(ncap, sizeof *nw);
        cstate *ns = calloc(ncap, sizeof *ns);
        size_t *nh = calloc(ncap, sizeof *nh), *oldh = h->held;
        if (!nc || !nw || !ns || !nh) {
            free(nc);
            free((void *)nw);
            free(ns);
            free(nh);
            return -1;
        }
        h->conns = nc;
        h->watch = nw;
        h->cst = ns;
        h->held = nh;
        h->conncap = ncap;
        for (size_t i = 0; i < ocap; i++)
            if (old[i] && old[i] != (void *)1) {
                size_t k = conn_slot(h, old[i]);
                h->conns[k] = old[i];
                h->watch[k] = oldw[i];
                h->cst[k] = olds[i];
                h->held[k] = oldh[i];
            }
        free(old);
        free((void *)oldw);
        free(olds);
        free(oldh);
    }
    size_t i = conn_slot(h, evcon);
    if (h->conns[i] == evcon) return (long)i;
    /* conn_slot may stop at a tombstone before the key: look further before inserting */
    size_t j = i;
    for (size_t n = 0; n < h->conncap && h->conns[j]; n++, j = (j + 1) & (h->conncap - 1))
        if (h->conns[j] == evcon) return (long)j;
    h->conns[i] = evcon;
    h->watch[i] = NULL;
    memset(&h->cst[i], 0, sizeof h->cst[i]);
    h->cst[i].phase = P_BUSY;
    h->held[i] = 0;
    h->connections++;
    tr_gauge_set(h->conn_gauge, h->connections);
    evhttp_connection_set_closecb(evcon, conn_closed, h);
    return (long)i;
}

static long conn_find(tr_http *h, const void *evcon) {
    if (!h || !h->conncap || !evcon) return -1;
    size_t i = ((uintptr_t)evcon >> 4) * 11400714819323198485ull & (h->conncap - 1);
    for (size_t n = 0; n < h->conncap && h->conns[i]; n++, i = (i + 1) & (h->conncap - 1))
        if (h->conns[i] == evcon) return (long)i;
    return -1;
}

/* libevent does not read from a connection while its request is being answered, so a
 * client that closes meanwhile is not noticed until the reply is written. While work is
 * watched, a timer peeks at each watched socket: end of file means the client is gone. (A
 * client that half-closes after its request would be taken as gone; HTTP clients do not.) */
#define WATCH_POLL_MS 100

static void watch_poll(evutil_socket_t fd, short what, void *arg) {
    tr_http *h = arg;
    for (size_t i = 0; i < h->conncap && h->nwatch; i++) {
        if (!h->watch[i]) continue;
        struct bufferevent *bev = evhttp_connection_get_bufferevent(h->conns[i]);
        evutil_socket_t s = bev ? bufferevent_getfd(bev) : -1;
        char c;
        ssize_t r = s >= 0 ? recv(s, &c, 1, MSG_PEEK | MSG_DONTWAIT) : 0;
        if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)))
            continue; /* still there */
        *h->watch[i] = 1;
        h->watch[i] = NULL;
        h->nwatch--;
    }
    if (h->nwatch) {
        struct timeval tv = {0, WATCH_POLL_MS * 1000};
        evtimer_add(h->watch_ev, &tv);
    }
}

void tr_http_watch(struct evhttp_request *req, volatile int *flag) {
    tr_http *h = g_http;
    long i = conn_find(h, evhttp_request_get_connection(req));
    if (i < 0) {
        *flag = 1; /* already gone */
        return;
    }
    if (!h->watch[i]) h->nwatch++;
    h->watch[i] = flag;
    if (!h->watch_ev) h->watch_ev = evtimer_new(h->base, watch_poll, h);
    if (h->watch_ev && !evtimer_pending(h->watch_ev, NULL)) {
        struct timeval tv = {0, WATCH_POLL_MS * 1000};
        evtimer_add(h->watch_ev, &tv);
    }
}

void tr_http_unwatch(struct evhttp_request *req) {
    long i = conn_find(g_http, evhttp_request_get_connection(req));
    if (i >= 0 && g_http->watch[i]) {
        g_http->watch[i] = NULL;
        g_http->nwatch--;
    }
}

/* ---- accept-side limits and request deadlines ---- */

#define SWEEP_MS 250        /* how often the header and body deadlines are checked */
#define ACCEPT_PAUSE_MS 250 /* accepting stops this long after accept() failed (EMFILE …) */
#define CLOSE_WRITE_S 2     /* a 408 that cannot be written within this is dropped */
#define ACCEPT_BURST 32     /* connections accepted before the loop turns to other work */

static void set_phase(tr_http *h, struct evhttp_connection *evcon, int phase) {
    long i = conn_find(h, evcon);
    if (i < 0 || h->cst[i].phase == P_CLOSING) return;
    h->cst[i].phase = (unsigned char)phase;
    if (phase == P_HEAD || phase == P_IDLE) h->cst[i].body_limit = 0; /* the next request's */
    h->cst[i].t0 = tr_mono_ms();
    h->cst[i].eol = h->cst[i].seen = 0;
}

/* Bytes arrived on a connection (its bufferevent's input, before evhttp parses them): the
 * first byte of a request on a kept-alive connection starts the header deadline, and an
 * empty line ends the headers. Costs a look at the new bytes while headers are arriving. */
static void input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg) {
    tr_http *h = g_http;
    if (!info->n_added || !h) return;
    long i = conn_find(h, arg);
    if (i < 0) return;
    cstate *c = &h->cst[i];
    if (c->phase == P_IDLE) {
        c->phase = P_HEAD;
        c->t0 = tr_mono_ms();
        c->eol = c->seen = 0;
    }
    if (c->phase != P_HEAD || info->orig_size > evbuffer_get_length(buf)) return;
    struct evbuffer_ptr at;
    if (evbuffer_ptr_set(buf, &at, info->orig_size, EVBUFFER_PTR_SET) != 0) return;
    struct evbuffer_iovec v[16];
    int nv = evbuffer_peek(buf, (ev_ssize_t)info->n_added, &at, v, 16);
    if (nv > 16) nv = 16;
    for (int k = 0; k < nv; k++) {
        const unsigned char *p = v[k].iov_base;
        for (size_t n = 0; n < v[k].iov_len; n++) {
            if (p[n] == '\n') {
                if (c->eol && c->seen) { /* an empty line after the request line: headers done */
                    c->phase = P_BODY;
                    c->t0 = tr_mono_ms();
                    return;
                }
                c->eol = 1;
            } else if (p[n] != '\r') { /* CR leaves the state: CRLF ends a line as LF does */
                c->eol = 0;
                c->seen = 1;
            }
        }
    }
}

static void closing_done(struct bufferevent *bev, void *arg) {
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) evhttp_connection_free(arg);
}

static void closing_event(struct bufferevent *bev, short what, void *arg) { evhttp_connection_free(arg); }

/* The request's deadline passed before it was read: answer 408 (nothing was answered on it
 * yet) and close. evhttp is taken out of the connection first: it sees no more input. */
static void expire(tr_http *h, size_t i) {
    struct evhttp_connection *evcon = h->conns[i];
    cstate *c = &h->cst[i];
    int body = c->phase == P_BODY;
    c->phase = P_CLOSING;
    tr_counter_add(body ? h->timeouts_body : h->timeouts_head, 1);
    char peer[64];
    tr_addrkey_format(&c->key, peer, sizeof peer);
    TR_DEBUG("http: request not read by its deadline, closing", "peer=%s phase=%s", peer,
             body ? "body" : "headers");
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    const char *msg = body ? "408 Request Timeout: the request body did not arrive in time\n"
                           : "408 Request Timeout: the request headers did not arrive in time\n";
    char head[200];
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n"
                      "Connection: close\r\nContent-Length: %zu\r\n\r\n",
                      strlen(msg));
    tr_http__count_reply(408);
    bufferevent_disable(bev, EV_READ);
    bufferevent_setcb(bev, NULL, closing_done, closing_event, evcon);
    struct timeval wt = {CLOSE_WRITE_S, 0};
    bufferevent_set_timeouts(bev, NULL, &wt);
    if (bufferevent_write(bev, head, (size_t)hl) != 0 || bufferevent_write(bev, msg, strlen(msg)) != 0 ||
        bufferevent_enable(bev, EV_WRITE) != 0)
        evhttp_connection_free(evcon);
}

static void sweep(evutil_socket_t fd, short what, void *arg) {
    tr_http *h = arg;
    int64_t now = tr_mono_ms();
    int64_t ht = h->cfg.header_timeout_ms, bt = h->cfg.body_timeout_ms;
    for (size_t i = 0; i < h->conncap; i++) {
        if (!h->conns[i] || h->conns[i] == (void *)1) continue;
        const cstate *c = &h->cst[i];
        if ((c->phase == P_HEAD && ht > 0 && now - c->t0 >= ht) ||
            (c->phase == P_BODY && bt > 0 && now - c->t0 >= bt))
            expire(h, i); /* may free the connection: its slot becomes a tombstone */
    }
}

/* evhttp makes each connection's bufferevent here (an OpenSSL one on a TLS listener); we keep
 * it to find the connection. */
static struct bufferevent *listener_bev(struct event_base *base, void *arg) {
    listener *l = arg;
    struct bufferevent *bev = l->tls ? tr_tls_bufferevent(l->tls, base, -1)
                                     : bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (bev) bufferevent_incref(bev); /* outlives a failed set-up: see on_accept */
    l->new_bev = bev;
    return bev;
}

static void on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg) {
    listener *l = arg;
    tr_http *h = l->h;
    /* libevent accepts every pending connection in one go: after a burst, the loop serves
     * other work first */
    if (++l->burst >= ACCEPT_BURST && l->pause_ev && !evtimer_pending(l->pause_ev, NULL)) {
        struct timeval now = {0, 0};
        evconnlistener_disable(lev);
        evtimer_add(l->pause_ev, &now);
    }
    tr_addrkey key;
    tr_addrkey_from(sa, &key);
    unsigned per = h->cfg.max_conns_per_addr, total = h->cfg.max_conns;
    /* the cap per address first, so one client cannot take the whole listener */
    int over_addr = per && tr_addrcount_get(l->per_addr, &key) >= per;
    if (over_addr || (total && l->nconns >= total)) {
        char peer[64];
        tr_addrkey_format(&key, peer, sizeof peer);
        tr_counter_add(over_addr ? l->refused_addr : l->refused_total, 1);
        TR_DEBUG("http: connection refused: over the limit", "peer=%s listener=%s limit=%s", peer,
                 l->ingest_only ? "otlp_http" : "http", over_addr ? "per_address" : "total");
        evutil_closesocket(fd);
        return;
    }
    l->new_bev = NULL;
    l->evhttp_accept(lev, fd, sa, salen, l->eh);
    struct bufferevent *bev = l->new_bev;
    l->new_bev = NULL;
    if (!bev) return;
    /* a connection evhttp could not set up freed its bufferevent: our reference kept the
     * memory, and the callbacks were cleared */
    bufferevent_data_cb rcb;
    bufferevent_event_cb ecb;
    void *evcon = NULL;
    bufferevent_getcb(bev, &rcb, NULL, &ecb, &evcon);
    if (rcb && evcon) {
        long i = conn_seen(h, evcon);
        if (i >= 0 && tr_addrcount_acquire(l->per_addr, &key, 0) >= 0) {
            h->cst[i].l = l;
            h->cst[i].key = key;
            l->nconns++;
        }
        if (i >= 0) {
            h->cst[i].phase = P_HEAD; /* the first request's deadline runs from the accept */
            h->cst[i].t0 = tr_mono_ms();
            evbuffer_add_cb(bufferevent_get_input(bev), input_cb, evcon);
        }
    }
    bufferevent_decref(bev);
}

static void accept_resume(evutil_socket_t fd, short what, void *arg) {
    listener *l = arg;
    l->burst = 0;
    if (l->lev) evconnlistener_enable(l->lev);
}

/* accept() failed with something other than a retry (EMFILE, ENFILE, ENOBUFS …): the pending
 * connection stays queued and the listener would fire again at once, spinning a core and
 * the log. Pause this listener a moment; the connections we have are served meanwhile. */
static void accept_error(struct evconnlistener *lev, void *arg) {
    listener *l = arg;
    int err = EVUTIL_SOCKET_ERROR();
    TR_WARN_LIMITED("accept", "accept failed: pausing the listener",
                    "listener=%s error=\"%s\" pause_ms=%d open=%u", l->ingest_only ? "otlp_http" : "http",
                    evutil_socket_error_to_string(err), ACCEPT_PAUSE_MS, l->nconns);
    evconnlistener_disable(lev);
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    if (l->pause_ev) evtimer_add(l->pause_ev, &tv);
}

/* libevent 2.1 has no hook between accept() and evhttp taking the connection (2.2's
 * evhttp_set_max_connections is not in Debian 12), so the listener's callback is wrapped:
 * evhttp_bind_listener installed (cb = its accept function, user_data = the evhttp), read
 * from 2.1's struct evconnlistener {ops, lock, cb, errorcb, user_data, …} and checked against
 * the evhttp before it is replaced. Returns 0, or -1 when the layout is not the expected one
 * (then the limits are off on this listener, said once in the log). */
static int wrap_accept(listener *l) {
    struct evconnlistener *lev = evhttp_bound_socket_get_listener(l->bound);
    if (!lev) return -1;
    const char *raw = (const char *)lev;
    evconnlistener_cb cb;
    void *ud;
    memcpy(&cb, raw + 2 * sizeof(void *), sizeof cb);
    memcpy(&ud, raw + 4 * sizeof(void *), sizeof ud);
    if (ud != (void *)l->eh || !cb) return -1;
    l->evhttp_accept = cb;
    l->lev = lev;
    evconnlistener_set_cb(lev, on_accept, l);
    evconnlistener_set_error_cb(lev, accept_error);
    return 0;
}

/* A refusal decided from a request's headers (on_headers) rides in this output header until
 * the answer: "400", "401 B" (basic) or "401 T" (bearer), "429 <seconds>", "503". */
#define REFUSED_HDR "X-Tricorder-Refused"
static const char basic_challenge[] = "Basic realm=\"tricorder\", charset=\"UTF-8\"";
static int refused_reply(struct evhttp_request *req);

/* ---- replies ---- */

static const char *reason_of(int status) {
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 307:
        return "Temporary Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

void tr_http__count_reply(int status) {
    if (!g_http) return;
    int cls = status / 100 - 1;
    if (cls < 0 || cls > 4) cls = 5;
    tr_counter_add(g_http->req_by_class[cls], 1);
}

/* On every reply that has not set its own (the UI sets a policy for its pages): API answers
 * load nothing, may not be framed, and are not sniffed into another type. */
static void security_headers(struct evhttp_request *req) {
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    if (!evhttp_find_header(oh, "Content-Security-Policy"))
        evhttp_add_header(oh, "Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
    if (!evhttp_find_header(oh, "X-Content-Type-Options"))
        evhttp_add_header(oh, "X-Content-Type-Options", "nosniff");
    if (!evhttp_find_header(oh, "Referrer-Policy")) evhttp_add_header(oh, "Referrer-Policy", "no-referrer");
}

void tr_http__reply_starting(struct evhttp_request *req) {
    security_headers(req);
    if (g_http) tr_drain_reply(g_http->drain, req);
}

void tr_http__request_finished(void) {
    if (g_http && g_http->inflight) g_http->inflight--;
}

/* Accept-Encoding names gzip (with a q-value other than 0). */
int tr_http_accepts_gzip(struct evhttp_request *req) {
    const char *ae = tr_http_header(req, "Accept-Encoding");
    for (const char *p = ae; p && (p = strstr(p, "gzip")); p += 4) {
        const char *q = p + 4;
        while (*q == ' ')
            q++;
        if (*q == ';') {
            const char *v = strstr(q, "q=");
            if (v && strtod(v + 2, NULL) == 0) return 0;
        }
        if (*q == 0 || *q == ',' || *q == ';') return 1;
    }
    return 0;
}

/* CORS on the APIs, as Prometheus sets it: with the default --web-cors-origin '.*' any
 * origin gets "*"; with another regex, an origin it matches (whole) is echoed and others get
 * no Access-Control-Allow-Origin (the other CORS headers are sent either way). */
static void cors(tr_http *h, struct evhttp_request *req, const char *path) {
    const char *origin = tr_http_header(req, "Origin");
    if (!origin || strncmp(path, "/api/", 5) != 0) return;
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    if (!h->cors)
        evhttp_add_header(oh, "Access-Control-Allow-Origin", "*");
    else if (tr_re_match(h->cors, origin, strlen(origin)))
        evhttp_add_header(oh, "Access-Control-Allow-Origin", origin);
    evhttp_add_header(oh, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    evhttp_add_header(oh, "Access-Control-Allow-Headers", "Accept, Authorization, Content-Type, Origin");
    evhttp_add_header(oh, "Access-Control-Expose-Headers", "Date");
    evhttp_add_header(oh, "Vary", "Origin");
}

void tr_http_reply(struct evhttp_request *req, int status, const char *ctype, const void *body, size_t len) {
    tr_http_unwatch(req);
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    if (ctype) {
        evhttp_remove_header(oh, "Content-Type"); /* a streamed reply that failed set one */
        evhttp_add_header(oh, "Content-Type", ctype);
    }
    struct evbuffer *eb = evhttp_request_get_output_buffer(req);
    tr_buf z;
    tr_buf_init(&z, 0);
    if (len >= 1024 && ctype &&
        (strncmp(ctype, "application/json", 16) == 0 || strncmp(ctype, "text/", 5) == 0) &&
        !evhttp_find_header(oh, "Content-Encoding") && tr_http_accepts_gzip(req) &&
        tr_gzip(body, len, &z) == 0 && !z.failed) {
        evhttp_add_header(oh, "Content-Encoding", "gzip");
        evhttp_add_header(oh, "Vary", "Accept-Encoding");
        body = z.data;
        len = z.len;
    }
    if (len) evbuffer_add(eb, body, len);
    tr_http__reply_starting(req);
    tr_buf_free(&z);
    evhttp_send_reply(req, status, reason_of(status), NULL);
    tr_http__count_reply(status);
    tr_http__request_finished();
}

/* libevent answers the requests it refuses before any handler sees them (a body or headers
 * over the limit, a malformed request) through evhttp_send_error, with an HTML page no
 * Prometheus or Jaeger client expects. This definition takes its place (the library calls it
 * through its PLT, so the executable's symbol wins) and answers as Go's server does: plain
 * text, `Connection: close`, 431 for headers over the limit (libevent says 413 for both). */
/* The body limit of the listener the request came in on: --http-addr also takes imports of up
 * to --max-import-bytes (the import route checks its own limit, every other route its own). */
static size_t listen_limit(const tr_http *h, int ingest_only) {
    size_t m = h->cfg.max_body_bytes;
    return !ingest_only && h->cfg.max_import_bytes > m ? h->cfg.max_import_bytes : m;
}

static size_t body_limit_of(struct evhttp_request *req) {
    if (!g_http) return 0;
    struct evhttp_connection *c = evhttp_request_get_connection(req);
    long slot = c ? conn_find(g_http, c) : -1;
    if (slot >= 0 && g_http->cst[slot].body_limit) return g_http->cst[slot].body_limit; /* on_headers */
    struct bufferevent *bev = c ? evhttp_connection_get_bufferevent(c) : NULL;
    struct sockaddr_storage a, b;
    socklen_t al = sizeof a, bl = sizeof b;
    if (bev && getsockname(bufferevent_getfd(bev), (struct sockaddr *)&a, &al) == 0)
        for (int i = 0; i < g_http->nls; i++) {
            const listener *l = &g_http->ls[i];
            bl = sizeof b;
            if (l->bound &&
                getsockname(evhttp_bound_socket_get_fd(l->bound), (struct sockaddr *)&b, &bl) == 0 &&
                ((struct sockaddr_in *)&a)->sin_port == ((struct sockaddr_in *)&b)->sin_port)
                return listen_limit(g_http, l->ingest_only);
        }
    return g_http->cfg.max_body_bytes;
}

/* libevent 2.1 reports a request line or headers over evhttp_set_max_headers_size as an
 * invalid header (400), not as data too long. It refuses them when what it has counted of the
 * headers, plus what waits unparsed in the connection's input, is over the limit: the same
 * sum tells them from a malformed request here. */
static int header_overflow(struct evhttp_request *req) {
    struct evhttp_connection *c = evhttp_request_get_connection(req);
    struct bufferevent *bev = c ? evhttp_connection_get_bufferevent(c) : NULL;
    size_t pending = bev ? evbuffer_get_length(bufferevent_get_input(bev)) : 0;
    return req->headers_size + pending > MAX_HEADERS_BYTES;
}

void evhttp_send_error(struct evhttp_request *req, int error, const char *reason) {
    if (error == 413 && refused_reply(req)) return;
    struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
    const char *cl = ih ? evhttp_find_header(ih, "Content-Length") : NULL;
    const char *te = ih ? evhttp_find_header(ih, "Transfer-Encoding") : NULL;
    int code = error;
    const char *text;
    char msg[160];
    if (error == 413) {
        size_t max = body_limit_of(req);
        int body = te || (cl && strtoull(cl, NULL, 10) > max);
        if (body) {
            snprintf(msg, sizeof msg,
                     "413 Request Entity Too Large: the request body is over the limit of %zu bytes", max);
            text = msg;
        } else {
            code = 431;
            text = "431 Request Header Fields Too Large";
        }
    } else if (error == 400 && header_overflow(req)) {
        code = 431;
        text = "431 Request Header Fields Too Large";
    } else if (error == 400) {
        text = "400 Bad Request";
    } else {
        snprintf(msg, sizeof msg, "%d %s", error, reason ? reason : reason_of(error));
        text = msg;
    }
    /* a request line that failed to parse left no HTTP version: answer as HTTP/1.1, as
     * libevent's own error page does */
    if (!req->major) req->major = 1, req->minor = 1;
    if (g_http) set_phase(g_http, evhttp_request_get_connection(req), P_BUSY); /* answered: no 408 */
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    evhttp_clear_headers(oh);
    evhttp_add_header(oh, "Content-Type", "text/plain; charset=utf-8");
    evhttp_add_header(oh, "Connection", "close");
    struct evbuffer *b = evbuffer_new();
    /* Go's server writes its own refusals (400, 431) without a trailing newline */
    if (b) evbuffer_add_printf(b, code == 400 || code == 431 ? "%s" : "%s\n", text);
    evhttp_send_reply(req, code, code == 431 ? "Request Header Fields Too Large" : reason_of(code), b);
    if (b) evbuffer_free(b);
    tr_http__count_reply(code);
}

void tr_http_reply_buf(struct evhttp_request *req, int status, const char *ctype, const tr_buf *b) {
    tr_http_reply(req, status, ctype, b->data, b->len);
}

void tr_http_reply_gzipped(struct evhttp_request *req, int status, const char *ctype, const tr_buf *gz) {
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    evhttp_remove_header(oh, "Content-Encoding");
    evhttp_add_header(oh, "Content-Encoding", "gzip");
    evhttp_add_header(oh, "Vary", "Accept-Encoding");
    tr_http_reply(req, status, ctype, gz->data, gz->len);
}

void tr_http_reply_text(struct evhttp_request *req, int status, const char *text) {
    size_t n = strlen(text);
    struct evbuffer *eb = evhttp_request_get_output_buffer(req);
    evbuffer_add(eb, text, n);
    if (n == 0 || text[n - 1] != '\n') evbuffer_add(eb, "\n", 1);
    tr_http_reply(req, status, "text/plain; charset=utf-8", NULL, 0);
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

/* ---- authentication and body budget, decided from the headers ---- */

static void peer_of(struct evhttp_request *req, char *out, size_t cap) {
    struct evhttp_connection *c = evhttp_request_get_connection(req);
    const char *a = NULL;
    ev_uint16_t port;
    if (c) evhttp_connection_get_peer(c, (char **)&a, &port);
    snprintf(out, cap, "%s", a ? a : "");
}

/* More than one Content-Length header (even with equal values): refused, as a request
 * smuggling vector (RFC 9112 §6.3 allows refusing). */
static int duplicate_content_length(const struct evkeyvalq *ih) {
    int n = 0;
    const struct evkeyval *kv;
    TAILQ_FOREACH(kv, ih, next)
    if (evutil_ascii_strcasecmp(kv->key, "Content-Length") == 0) n++;
    return n > 1;
}

static void refuse(tr_http *h, struct evhttp_request *req, int rc, const char *challenge, int64_t retry_s,
                   const char *addr) {
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    if (rc == TR_AUTH_THROTTLED) {
        char v[24];
        snprintf(v, sizeof v, "%lld", (long long)retry_s);
        evhttp_add_header(oh, "Retry-After", v);
        tr_auth_throttled(h->auth);
        tr_http_reply_text(req, 429, "too many failed logins from this address, retry later");
        return;
    }
    if (rc == TR_AUTH_DENY) tr_auth_failed(h->auth, addr);
    if (challenge) evhttp_add_header(oh, "WWW-Authenticate", challenge);
    tr_http_reply_text(req, 401, "unauthorized");
}

/* The answer to a request refused by on_headers, whose body libevent discarded (it was
 * given a body limit of 0, so it read the body to its end without keeping it and asks for a
 * 413). Returns 0 when req was not refused that way. */
static int refused_reply(struct evhttp_request *req) {
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    const char *v = oh ? evhttp_find_header(oh, REFUSED_HDR) : NULL;
    if (!v || !g_http) return 0;
    int code = atoi(v);
    char extra[64] = "";
    snprintf(extra, sizeof extra, "%s", strchr(v, ' ') ? strchr(v, ' ') + 1 : "");
    evhttp_clear_headers(oh);
    evhttp_add_header(oh, "Content-Type", "text/plain; charset=utf-8");
    evhttp_add_header(oh, "Connection", "close");
    security_headers(req);
    const char *text = "400 Bad Request: more than one Content-Length header\n";
    char addr[64];
    if (code == 401) {
        peer_of(req, addr, sizeof addr);
        if (extra[0] == 'T' || extra[0] == 'B') tr_auth_failed(g_http->auth, addr); /* not when missing */
        evhttp_add_header(oh, "WWW-Authenticate",
                          extra[0] == 'T' || extra[0] == 't' ? "Bearer realm=\"tricorder\""
                                                             : basic_challenge);
        text = "unauthorized\n";
    } else if (code == 429) {
        tr_auth_throttled(g_http->auth);
        evhttp_add_header(oh, "Retry-After", extra);
        text = "too many failed logins from this address, retry later\n";
    } else if (code == 404) {
        text = "404 page not found\n";
    } else if (code == 503) {
        tr_counter_add(g_http->budget_refused, 1);
        evhttp_add_header(oh, "Retry-After", "1");
        text = "503 Service Unavailable: too many request bodies being read at once, retry later\n";
    }
    if (!req->major) req->major = 1, req->minor = 1;
    struct evbuffer *b = evbuffer_new();
    if (b) evbuffer_add(b, text, strlen(text));
    evhttp_send_reply(req, code, reason_of(code), b);
    if (b) evbuffer_free(b);
    tr_http__count_reply(code);
    return 1;
}

static void body_done(struct evhttp_request *req, void *arg) {
    tr_http *h = arg;
    long i = conn_find(h, evhttp_request_get_connection(req));
    if (i >= 0) {
        h->buffered -= h->held[i];
        h->held[i] = 0;
    }
}

static int resolve(tr_http *h, int ingest_only, unsigned method, const char *raw, tr_http_match *m,
                   char *scratch, size_t scap, const route **out, unsigned *allow, int *flags);

/* The route's flags for a request (0 when no route matches: the 404 needs no credentials,
 * but neither does it need a body). */
static int route_flags(tr_http *h, listener *l, struct evhttp_request *req, int *rc) {
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *raw = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!raw || !*raw) raw = "/";
    size_t scap = strlen(raw) * 2 + 2 * MAX_SEGS + 16;
    char *scratch = malloc(scap);
    int flags = 0;
    *rc = 404;
    if (!scratch) return 0;
    tr_http_match m;
    const route *r;
    unsigned allow;
    *rc = resolve(h, l->ingest_only, (unsigned)evhttp_request_get_command(req), raw, &m, scratch, scap, &r,
                  &allow, &flags);
    if (r) flags = r->flags;
    free(scratch);
    return flags;
}

/* Runs once a request's headers are read, before any of its body: refusals that need no
 * body (duplicate Content-Length, no or wrong credentials, a throttled address, the body
 * budget full) make libevent discard the body (limit 0: read to its end, never kept; see
 * refused_reply); a body that may be read reserves its size in the budget until the reply
 * is sent or the connection closes. */
static int on_headers(struct evhttp_request *req, void *arg) {
    tr_http *h = g_http;
    listener *l = NULL;
    for (int i = 0; h && i < h->nls; i++)
        if ((void *)h->ls[i].eh == arg) l = &h->ls[i];
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (!l || !evcon) return 0;
    long slot = conn_seen(h, evcon);
    int rc;
    int flags = route_flags(h, l, req, &rc);
    /* the route's own limit: only the import takes --max-import-bytes, every other route
     * --otlp-max-message-bytes, so a body meant for no import is never buffered past that */
    size_t limit = (flags & TR_HTTP_BIG_BODY) ? listen_limit(h, l->ingest_only) : h->cfg.max_body_bytes;
    if (slot >= 0) h->cst[slot].body_limit = limit; /* for evhttp_send_error's 413 text */
    evhttp_connection_set_max_body_size(evcon, (ev_ssize_t)limit);
    struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
    char code[32] = "";
    if (duplicate_content_length(ih)) {
        snprintf(code, sizeof code, "400");
    } else {
        const char *cl0 = evhttp_find_header(ih, "Content-Length");
        unsigned long long n0 = cl0 ? strtoull(cl0, NULL, 10) : 0;
        /* (a body over the limit keeps libevent's 413, as before) */
        if (rc == 404 && (evhttp_find_header(ih, "Transfer-Encoding") || (n0 > 0 && n0 <= limit)))
            snprintf(code, sizeof code, "404"); /* no route reads it: dropped, not kept */
        else if (rc != 404) {
            const char *challenge;
            char addr[64];
            int64_t retry_s;
            peer_of(req, addr, sizeof addr);
            int a = tr_auth_decide(h->auth, flags, l->ingest_only, addr,
                                   evhttp_find_header(ih, "Authorization"), &challenge, &retry_s);
            /* "401 T"/"401 B": wrong bearer/basic credentials; lower case: none sent */
            int bearer = challenge && challenge[0] == 'B' && challenge[1] == 'e';
            if (a == TR_AUTH_DENY || a == TR_AUTH_MISSING)
                snprintf(code, sizeof code, "401 %c",
                         a == TR_AUTH_DENY ? (bearer ? 'T' : 'B') : (bearer ? 't' : 'b'));
            else if (a == TR_AUTH_THROTTLED)
                snprintf(code, sizeof code, "429 %lld", (long long)retry_s);
        }
    }
    const char *cl = evhttp_find_header(ih, "Content-Length"),
               *te = evhttp_find_header(ih, "Transfer-Encoding");
    size_t need = 0;
    if (te)
        need = limit;
    else if (cl) {
        unsigned long long n = strtoull(cl, NULL, 10);
        need = n > limit ? 0 : (size_t)n; /* over the limit: libevent's 413 */
    }
    if (!*code && need && h->cfg.max_buffered_body_bytes) {
        long i = conn_find(h, evcon);
        if (h->buffered + need > h->cfg.max_buffered_body_bytes || i < 0) {
            snprintf(code, sizeof code, "503");
        } else {
            h->buffered += need;
            h->held[i] += need;
            evhttp_request_set_on_complete_cb(req, body_done, h);
        }
    }
    if (*code) {
        evhttp_add_header(evhttp_request_get_output_headers(req), REFUSED_HDR, code);
        evhttp_connection_set_max_body_size(evcon, 0);
    }
    return 0;
}

/* libevent 2.1 has no hook for a server request whose headers are in (2.2's
 * evhttp_set_newreqcb comes earlier still): it creates each request through
 * evhttp_request_new, called through the PLT, so this definition sees them and gives the
 * requests of our listeners (their callback argument is our evhttp) a header callback. */
struct evhttp_request *evhttp_request_new(void (*cb)(struct evhttp_request *, void *), void *arg) {
    static struct evhttp_request *(*real)(void (*)(struct evhttp_request *, void *), void *);
    if (!real) *(void **)&real = dlsym(RTLD_NEXT, "evhttp_request_new");
    if (!real) abort();
    struct evhttp_request *req = real(cb, arg);
    if (req && g_http)
        for (int i = 0; i < g_http->nls; i++)
            if ((void *)g_http->ls[i].eh == arg) evhttp_request_set_header_cb(req, on_headers);
    return req;
}

/* ---- dispatch ---- */

static int hexdig(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes raw[0..n) into out (a path segment: '+' stays '+'). Returns the length,
 * or -1 on a bad escape or when out is too small. */
static long seg_decode(const char *raw, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (o + 1 >= cap) return -1;
        if (raw[i] != '%') {
            out[o++] = raw[i];
            continue;
        }
        if (i + 2 >= n) return -1;
        int a = hexdig((unsigned char)raw[i + 1]), b = hexdig((unsigned char)raw[i + 2]);
        if (a < 0 || b < 0) return -1;
        out[o++] = (char)(a << 4 | b);
        i += 2;
    }
    out[o] = 0;
    return (long)o;
}

/* Requests' method bit as routes store it: HEAD is answered by GET routes. */
static unsigned method_bit(unsigned m) { return m == EVHTTP_REQ_HEAD ? (unsigned)EVHTTP_REQ_GET : m; }

/* The router: 0 with *out set, 404 or 405 (*allow: the methods the path takes). */
static int resolve(tr_http *h, int ingest_only, unsigned method, const char *raw, tr_http_match *m,
                   char *scratch, size_t scap, const route **out, unsigned *allow, int *flags) {
    const char *seg[MAX_SEGS];
    size_t nseg = 0, used = 0;
    memset(m, 0, sizeof *m);
    *allow = 0;
    *out = NULL;
    if (*raw != '/') return 404;
    /* the decoded path first, then each decoded segment */
    long pl = seg_decode(raw, strlen(raw), scratch, scap);
    if (pl < 0) return 404;
    m->path = scratch;
    used = (size_t)pl + 1;
    for (const char *p = raw + 1;;) {
        size_t n = strcspn(p, "/");
        if (nseg == MAX_SEGS) return 404;
        long l = seg_decode(p, n, scratch + used, scap - used);
        if (l < 0) return 404;
        seg[nseg++] = scratch + used;
        used += (size_t)l + 1;
        if (!p[n]) break;
        p += n + 1;
    }
    unsigned want = method_bit(method);
    for (size_t i = 0; i < h->nroutes; i++) {
        const route *r = &h->routes[i];
        if (r->nseg != nseg || (ingest_only && !(r->flags & TR_HTTP_OTLP))) continue;
        size_t k = 0;
        for (; k < nseg; k++)
            if (r->is_var[k] ? !*seg[k] : strcmp(r->seg[k], seg[k]) != 0) break;
        if (k < nseg) continue;
        if (!*allow) *flags = r->flags;
        *allow |= r->methods;
        if ((r->methods & want) && (!*out || r->literals > (*out)->literals)) *out = r;
    }
    if (!*allow) return 404;
    if (!*out) return 405;
    for (size_t k = 0; k < nseg && m->nvars < TR_HTTP_MAX_VARS; k++)
        if ((*out)->is_var[k]) {
            m->names[m->nvars] = (*out)->seg[k];
            m->vars[m->nvars++] = seg[k];
        }
    return 0;
}

int tr_http_resolve(tr_http *h, unsigned method, const char *raw_path, tr_http_match *m, char *scratch,
                    size_t scap, void **ctx, unsigned *allow) {
    const route *r;
    int flags;
    int rc = resolve(h, 0, method, raw_path, m, scratch, scap, &r, allow, &flags);
    if (ctx) *ctx = r ? r->ctx : NULL;
    return rc;
}

const char *tr_http_var(const tr_http_match *m, const char *name) {
    for (size_t i = 0; i < m->nvars; i++)
        if (strcmp(m->names[i], name) == 0) return m->vars[i];
    return NULL;
}

static void allow_header(struct evhttp_request *req, unsigned allow) {
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{EVHTTP_REQ_GET, "GET"},        {EVHTTP_REQ_GET, "HEAD"},      {EVHTTP_REQ_POST, "POST"},
                 {EVHTTP_REQ_PUT, "PUT"},        {EVHTTP_REQ_DELETE, "DELETE"}, {EVHTTP_REQ_PATCH, "PATCH"},
                 {EVHTTP_REQ_OPTIONS, "OPTIONS"}};
    char v[128] = "";
    size_t o = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (allow & names[i].bit)
            o += (size_t)snprintf(v + o, sizeof v - o, "%s%s", o ? ", " : "", names[i].name);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", v);
}

/* Prometheus' router (httprouter) answers a path that is known without its trailing slash
 * with a redirect there: 301 for GET and HEAD, 307 otherwise, the query string kept. The
 * Jaeger routes (TR_HTTP_NO_405) do not: jaeger-query's catch-all answers 404. Returns 1 when
 * it answered. */
static int trailing_slash_redirect(tr_http *h, listener *l, struct evhttp_request *req, unsigned method,
                                   const char *raw) {
    size_t n = strlen(raw);
    if (n < 2 || raw[n - 1] != '/' || raw[n - 2] == '/') return 0;
    char *path = strndup(raw, n - 1);
    size_t scap = n * 2 + 2 * MAX_SEGS + 16;
    char *scratch = malloc(scap);
    int done = 0;
    if (path && scratch) {
        tr_http_match m;
        const route *r;
        unsigned allow;
        int flags = 0;
        int rc = resolve(h, l->ingest_only, method, path, &m, scratch, scap, &r, &allow, &flags);
        if (r) flags = r->flags;
        if (rc != 404 && !(flags & TR_HTTP_NO_405)) {
            const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
            const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
            tr_buf loc, body;
            tr_buf_init(&loc, 0);
            tr_buf_init(&body, 0);
            tr_buf_puts(&loc, path);
            if (q) tr_buf_printf(&loc, "?%s", q);
            int get = method == EVHTTP_REQ_GET || method == EVHTTP_REQ_HEAD;
            if (!loc.failed) {
                evhttp_add_header(evhttp_request_get_output_headers(req), "Location", loc.data);
                if (get) { /* Go's http.Redirect body, the URL HTML-escaped */
                    tr_buf_puts(&body, "<a href=\"");
                    for (const char *c = loc.data; *c; c++) {
                        if (*c == '&')
                            tr_buf_puts(&body, "&amp;");
                        else if (*c == '<')
                            tr_buf_puts(&body, "&lt;");
                        else if (*c == '>')
                            tr_buf_puts(&body, "&gt;");
                        else if (*c == '"')
                            tr_buf_puts(&body, "&#34;");
                        else if (*c == '\'')
                            tr_buf_puts(&body, "&#39;");
                        else
                            tr_buf_putc(&body, *c);
                    }
                    tr_buf_puts(&body, "\">Moved Permanently</a>.\n\n");
                }
                tr_http_reply(req, get ? 301 : 307, get ? "text/html; charset=utf-8" : NULL, body.data,
                              body.len);
                done = 1;
            }
            tr_buf_free(&loc);
            tr_buf_free(&body);
        }
    }
    free(path);
    free(scratch);
    return done;
}

/* ---- TLS ---- */

/* On a TLS listener: HSTS on the UI and API replies; the ingest routes of a listener that
 * asks for client certificates without requiring them (the UI's) need a verified one.
 * Returns 1 when it answered. */
static int tls_check(listener *l, struct evhttp_request *req, int flags) {
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evhttp_request_get_connection(req));
    if (!tr_tls_is_tls(bev)) { /* evhttp falls back to a plain socket when ours failed */
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        tr_http_reply_text(req, 503, "TLS unavailable");
        return 1;
    }
    if (!l->ingest_only)
        evhttp_add_header(evhttp_request_get_output_headers(req), "Strict-Transport-Security",
                          "max-age=31536000");
    if ((flags & TR_HTTP_INGEST) && tr_tls_server_client_mode(l->tls) == TR_TLS_CLIENT_OPTIONAL &&
        !tr_tls_peer_verified(bev)) {
        tr_http_reply_text(req, 403,
                           "ingestion needs a client certificate signed by the --tls-client-ca-file CA");
        return 1;
    }
    return 0;
}

/* A reply was written: the connection waits for its next request (under the idle timeout),
 * or one already arriving (pipelined) runs under the header deadline from now. */
static void request_complete(struct evhttp_request *req, void *arg) {
    tr_http *h = g_http;
    if (!h) return;
    /* this callback replaced on_headers' body_done (a request has one): release the body's
     * share of --max-buffered-body-bytes here too, or a kept-alive client would fill it */
    long slot = conn_find(h, arg);
    if (slot >= 0) {
        h->buffered -= h->held[slot];
        h->held[slot] = 0;
    }
    struct bufferevent *bev = evhttp_connection_get_bufferevent(arg);
    int more = bev && evbuffer_get_length(bufferevent_get_input(bev)) > 0;
    set_phase(h, arg, more ? P_HEAD : P_IDLE);
}

static void serve(listener *l, struct evhttp_request *req, int authed);

static void verified(struct evhttp_request *req, int ok, void *arg) {
    if (ok) {
        serve(arg, req, 1);
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", basic_challenge);
    tr_http_reply_text(req, 401, "unauthorized");
}

static void dispatch(struct evhttp_request *req, void *arg) {
    listener *l = arg;
    tr_http *h = l->h;
    h->inflight++;
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (conn_seen(h, evcon) >= 0) {
        set_phase(h, evcon, P_BUSY);
        evhttp_request_set_on_complete_cb(req, request_complete, evcon);
    }
    tr_drain_request(h->drain, req);
    evhttp_remove_header(evhttp_request_get_output_headers(req), REFUSED_HDR);
    if (duplicate_content_length(evhttp_request_get_input_headers(req))) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        tr_http_reply_text(req, 400, "400 Bad Request: more than one Content-Length header");
        return;
    }
    serve(l, req, 0);
}

static void serve(listener *l, struct evhttp_request *req, int authed) {
    tr_http *h = l->h;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *raw = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!raw || !*raw) raw = "/";
    size_t scap = strlen(raw) * 2 + 2 * MAX_SEGS + 16;
    char *scratch = malloc(scap);
    if (!scratch) {
        tr_http_reply_text(req, 503, "out of memory");
        return;
    }
    tr_http_match m;
    const route *r;
    unsigned allow;
    unsigned method = (unsigned)evhttp_request_get_command(req);
    int flags = 0;
    int rc = resolve(h, l->ingest_only, method, raw, &m, scratch, scap, &r, &allow, &flags);
    if (rc == 404 && trailing_slash_redirect(h, l, req, method, raw)) goto out;
    if (rc == 404) {
        tr_http_reply_text(req, 404, "404 page not found");
        goto out;
    }
    if (!authed) cors(h, req, raw); /* a second pass (after a bcrypt check) has them already */
    /* authentication follows the path's routes (on 405, the first that matched) */
    if (r) flags = r->flags;
    if (!authed && l->tls && tls_check(l, req, flags)) goto out;
    if (!authed) {
        const char *auth = tr_http_header(req, "Authorization"), *challenge;
        char addr[64];
        int64_t retry_s;
        peer_of(req, addr, sizeof addr);
        int rc_auth = tr_auth_decide(h->auth, flags, l->ingest_only, addr, auth, &challenge, &retry_s);
        if (rc_auth == TR_AUTH_VERIFY) {
            if (tr_auth_verify(h->auth, req, addr, auth, verified, l) != 0)
                tr_http_reply_text(req, 503, "server busy, retry later");
            goto out;
        }
        if (rc_auth != TR_AUTH_OK) {
            refuse(h, req, rc_auth, challenge, retry_s, addr);
            goto out;
        }
    }
    if (rc == 405 && (flags & TR_HTTP_NO_405)) {
        tr_http_reply_text(req, 404, "404 page not found");
        goto out;
    }
    if (rc == 405) {
        allow_header(req, allow);
        if (method == EVHTTP_REQ_OPTIONS)
            tr_http_reply(req, 204, NULL, NULL, 0);
        else
            tr_http_reply_text(req, 405, "Method Not Allowed");
        goto out;
    }
    if (!(flags & TR_HTTP_BIG_BODY) &&
        evbuffer_get_length(evhttp_request_get_input_buffer(req)) > h->cfg.max_body_bytes) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "413 Request Entity Too Large: the request body is over the limit of %zu bytes",
                 h->cfg.max_body_bytes);
        tr_http_reply_text(req, 413, msg);
        goto out;
    }
    r->fn(req, &m, r->ctx);
out:
    free(scratch);
}

void tr_http_route(tr_http *h, unsigned methods, const char *pattern, int flags, tr_http_fn fn, void *ctx) {
    if (h->nroutes == h->caproutes) {
        size_t n = h->caproutes ? h->caproutes * 2 : 32;
        route *nr = realloc(h->routes, n * sizeof *nr);
        if (!nr) abort();
        h->routes = nr;
        h->caproutes = n;
    }
    route *r = &h->routes[h->nroutes];
    memset(r, 0, sizeof *r);
    /* a programming error, not input: routes are fixed at start-up */
    if (pattern[0] != '/' || !(r->pattern = strdup(pattern + 1))) abort();
    for (char *p = r->pattern;;) {
        if (r->nseg == MAX_SEGS) abort();
        char *slash = strchr(p, '/');
        if (slash) *slash = 0;
        size_t n = strlen(p);
        if (n > 2 && p[0] == '{' && p[n - 1] == '}') {
            p[n - 1] = 0;
            r->is_var[r->nseg] = 1;
            r->seg[r->nseg++] = p + 1;
        } else {
            r->seg[r->nseg++] = p;
            r->literals++;
        }
        if (!slash) break;
        p = slash + 1;
    }
    r->methods = methods;
    r->flags = flags;
    r->fn = fn;
    r->ctx = ctx;
    h->nroutes++;
}

int tr_http_listen(tr_http *h, int fd, int ingest_only) {
    return tr_http_listen_tls(h, fd, ingest_only, NULL);
}

int tr_http_listen_tls(tr_http *h, int fd, int ingest_only, tr_tls_server *tls) {
    if (h->nls >= 4) return -1;
    listener *l = &h->ls[h->nls];
    l->h = h;
    l->ingest_only = ingest_only;
    l->tls = tls;
    l->eh = evhttp_new(h->base);
    if (!l->eh) return -1;
    evhttp_set_max_body_size(l->eh, listen_limit(h, ingest_only));
    /* a body over the limit is read to its end and dropped before the 413 goes out and the
     * connection closes (nginx's lingering close): a client that writes its whole body before
     * reading (Python's urllib, the OTel exporters) reads the 413 instead of a reset */
    evhttp_set_flags(l->eh, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_max_headers_size(l->eh, MAX_HEADERS_BYTES);
    evhttp_set_timeout(l->eh, h->cfg.idle_timeout_s > 0 ? h->cfg.idle_timeout_s : 60);
    evhttp_set_allowed_methods(l->eh, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                          EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(l->eh, dispatch, l);
    /* replies go out in a few writes: without TCP_NODELAY the last small segment can wait
     * ~40 ms for the client's delayed ACK (accepted sockets inherit the option) */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    evhttp_set_bevcb(l->eh, listener_bev, l);
    l->bound = evhttp_accept_socket_with_handle(l->eh, fd);
    l->per_addr = tr_addrcount_new();
    l->pause_ev = evtimer_new(h->base, accept_resume, l);
    if (!l->bound || !l->per_addr || !l->pause_ev) {
        if (l->bound) evhttp_del_accept_socket(l->eh, l->bound);
        l->bound = NULL;
        evhttp_free(l->eh);
        l->eh = NULL;
        tr_addrcount_free(l->per_addr);
        l->per_addr = NULL;
        if (l->pause_ev) event_free(l->pause_ev);
        l->pause_ev = NULL;
        return -1;
    }
    const char *ln = ingest_only ? "listener=\"otlp_http\",reason=" : "listener=\"http\",reason=";
    char lab[96];
    snprintf(lab, sizeof lab, "%s\"per_address\"", ln);
    l->refused_addr = tr_counter_new("tricorder_connections_refused_total", TR_CONN_REFUSED_HELP, lab);
    snprintf(lab, sizeof lab, "%s\"total\"", ln);
    l->refused_total = tr_counter_new("tricorder_connections_refused_total", TR_CONN_REFUSED_HELP, lab);
    if (wrap_accept(l) != 0)
        TR_WARN("http: cannot wrap libevent's accept; connection limits are off on this listener", NULL);
    if (!h->sweep_ev && (h->cfg.header_timeout_ms > 0 || h->cfg.body_timeout_ms > 0)) {
        h->sweep_ev = event_new(h->base, -1, EV_PERSIST, sweep, h);
        struct timeval tv = {0, SWEEP_MS * 1000};
        if (h->sweep_ev) evtimer_add(h->sweep_ev, &tv);
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
            h->ls[i].lev = NULL;
        }
}

void tr_http_free(tr_http *h) {
    if (!h) return;
    for (int i = 0; i < h->nls; i++) {
        if (h->ls[i].eh) evhttp_free(h->ls[i].eh);
        if (h->ls[i].pause_ev) event_free(h->ls[i].pause_ev);
        tr_addrcount_free(h->ls[i].per_addr);
    }
    if (h->sweep_ev) event_free(h->sweep_ev);
    free(h->cst);
    for (size_t i = 0; i < h->nroutes; i++)
        free(h->routes[i].pattern);
    free(h->routes);
    free(h->conns);
    free(h->held);
    tr_auth_free(h->auth);
    free((void *)h->watch);
    tr_drain_free(h->drain);
    tr_re_free(h->cors);
    if (h->watch_ev) event_free(h->watch_ev);
    if (g_http == h) g_http = NULL;
    free(h);
}

unsigned tr_http_inflight(const tr_http *h) { return h->inflight; }
unsigned tr_http_drain(tr_http *h) { return h ? tr_drain_idle_close(h->drain) : 0; }
unsigned tr_http_connections(const tr_http *h) { return h->connections; }
