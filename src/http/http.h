/* The HTTP server (libevent evhttp): one route table served on --http-addr, and the OTLP
 * routes also on --otlp-http-addr. Authentication, limits and the reply helpers that every
 * API handler uses live here. */
#ifndef TR_HTTP_H
#define TR_HTTP_H

#include <stddef.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "util/buf.h"

typedef struct tr_http tr_http;

/* A handler gets the request and its decoded path. It must answer, now or later (deferred
 * replies are allowed: libevent keeps the request alive even if the client goes away). */
typedef void (*tr_http_fn)(struct evhttp_request *req, const char *path, void *ctx);

enum {
    TR_HTTP_PREFIX = 1, /* `path` is a prefix (ends with '/'); longer paths match too */
    TR_HTTP_PUBLIC = 2, /* no basic auth (/healthz) */
    TR_HTTP_INGEST = 4, /* a write endpoint: also served on the OTLP HTTP listener, and the
                           ingest token (Bearer) is accepted in place of basic auth */
};

typedef struct tr_http_config {
    const char *basic_user, *basic_pass; /* NULL: no basic auth */
    const char *ingest_token;            /* NULL: none */
    size_t max_body_bytes;               /* request bodies larger than this get 413 */
    int idle_timeout_s;                  /* idle keep-alive connections are closed (0: 60) */
} tr_http_config;

/* Returns NULL on OOM. The strings in cfg must outlive the server. */
tr_http *tr_http_new(struct event_base *base, const tr_http_config *cfg);
/* Serves the full route table (ingest_only = 0) or only TR_HTTP_INGEST routes on a bound,
 * listening, non-blocking socket. Returns 0 or -1. */
int tr_http_listen(tr_http *h, int fd, int ingest_only);
/* Adds a route. Exact paths win over prefixes; the longest prefix wins. */
void tr_http_route(tr_http *h, const char *path, int flags, tr_http_fn fn, void *ctx);
/* Stops accepting new connections (existing requests finish); from now on every reply says
 * `Connection: close` and closes its connection once written. */
void tr_http_stop_accepting(tr_http *h);
/* After tr_http_stop_accepting, on each shutdown tick: closes the keep-alive connections that
 * have nothing in progress (no request being handled or read, none waiting in the socket, no
 * reply being written). Returns the connections still open. */
unsigned tr_http_drain(tr_http *h);
void tr_http_free(tr_http *h);
/* Requests currently being handled (deferred replies included). */
unsigned tr_http_inflight(const tr_http *h);
/* Open connections over all listeners. */
unsigned tr_http_connections(const tr_http *h);

/* ---- helpers for handlers ---- */

/* Copies the request body into `out` (initialised by the caller); -1 when over `max`. */
int tr_http_body(struct evhttp_request *req, size_t max, tr_buf *out);
/* Parses the query string, and for POST with application/x-www-form-urlencoded also the
 * body, into `out` (caller frees with evhttp_clear_headers). Keys and values are
 * percent-decoded ('+' is a space); repeated keys are kept in order.
 * Returns 0, or -1 on a malformed query. */
int tr_http_params(struct evhttp_request *req, struct evkeyvalq *out);
/* As tr_http_params for the query string alone (for endpoints whose body is data). */
int tr_http_query(struct evhttp_request *req, struct evkeyvalq *out);
/* First value of `key`, or NULL. */
const char *tr_http_param(struct evkeyvalq *q, const char *key);
const char *tr_http_header(struct evhttp_request *req, const char *name);

/* Sends a complete reply; `ctype` may be NULL. Counts it in /metrics. */
void tr_http_reply(struct evhttp_request *req, int status, const char *ctype, const void *body,
                   size_t len);
void tr_http_reply_buf(struct evhttp_request *req, int status, const char *ctype, const tr_buf *b);
/* A text/plain reply ending with a newline. */
void tr_http_reply_text(struct evhttp_request *req, int status, const char *text);
/* Prometheus API error shape: {"status":"error","errorType":type,"error":msg}. */
void tr_http_reply_prom_error(struct evhttp_request *req, int status, const char *type,
                              const char *msg);

#endif
