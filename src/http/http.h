/* The HTTP server (libevent evhttp): one route table (method + path pattern) served on
 * --http-addr, and the ingest routes also on --otlp-http-addr. Authentication, limits, the
 * query-string and form parser, and the reply helpers that every API handler uses live here. */
#ifndef TR_HTTP_H
#define TR_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "util/buf.h"

typedef struct tr_http tr_http;

/* What the router found for a request: the decoded path and the values of the pattern's
 * `{name}` segments (each percent-decoded; valid until the handler returns). */
#define TR_HTTP_MAX_VARS 4
typedef struct tr_http_match {
    const char *path;
    const char *names[TR_HTTP_MAX_VARS];
    const char *vars[TR_HTTP_MAX_VARS];
    size_t nvars;
} tr_http_match;

/* The value of `{name}` in the matched pattern, or NULL. */
const char *tr_http_var(const tr_http_match *m, const char *name);

/* A handler gets the request and what the router matched. It must answer, now or later
 * (deferred replies are allowed: libevent keeps the request alive even if the client goes
 * away; see tr_http_watch for noticing it). */
typedef void (*tr_http_fn)(struct evhttp_request *req, const tr_http_match *m, void *ctx);

enum {
    TR_HTTP_PUBLIC = 2,    /* no basic auth (/healthz) */
    TR_HTTP_INGEST = 4,    /* a write endpoint: also served on the OTLP HTTP listener, and the
                              ingest token (Bearer) is accepted in place of basic auth */
    TR_HTTP_NO_405 = 8,    /* another method gets 404 "404 page not found", not 405 (jaeger-query
                              v2, whose /api/ catch-all answers before any method check) */
    TR_HTTP_BIG_BODY = 16, /* bodies up to max_import_bytes (the text import checks its own
                              limit); every other route's body is bounded by max_body_bytes */
    TR_HTTP_OTLP = 32,     /* an OTLP route: the only ones the OTLP/HTTP listener serves */
    TR_HTTP_ADMIN = 64,    /* flush, snapshot: behind basic auth, or the ingest token when only
                              that is set; never open while any credential is configured */
};

/* Methods a route answers (libevent's EVHTTP_REQ_* bits). GET routes also answer HEAD. */
#define TR_GET ((unsigned)EVHTTP_REQ_GET)
#define TR_POST ((unsigned)EVHTTP_REQ_POST)
#define TR_PUT ((unsigned)EVHTTP_REQ_PUT)
#define TR_ANY (~0u) /* the handler checks the method itself */

struct tr_credstore;
struct tr_workq;
typedef struct tr_http_config {
    struct tr_credstore *creds;     /* users and tokens (NULL: no authentication) */
    struct tr_workq *wq;            /* runs bcrypt checks of --basic-auth-file users */
    size_t max_body_bytes;          /* request bodies larger than this get 413 */
    size_t max_buffered_body_bytes; /* all bodies being read at once; over it: 503 (0: no cap) */
    int open_reads;                 /* --auth-reads=false: routes neither ingest nor admin are open */
    int idle_timeout_s;             /* idle keep-alive connections are closed (0: 60) */
    const char *cors_origin;        /* regex of allowed CORS origins (NULL or ".*": any, "*") */
    size_t max_import_bytes;        /* /api/v1/import bodies on the full listener (0: as above) */
    unsigned max_conns;             /* open connections per listener; more are closed at accept (0: any) */
    unsigned max_conns_per_addr;    /* the same from one client address (0: any) */
    int64_t header_timeout_ms;      /* accept or a request's first byte → end of its headers (0: none) */
    int64_t body_timeout_ms;        /* end of the headers → end of the body (0: none) */
} tr_http_config;

/* Returns NULL on OOM. The strings in cfg must outlive the server. */
tr_http *tr_http_new(struct event_base *base, const tr_http_config *cfg);
/* Serves the full route table (ingest_only = 0) or only TR_HTTP_INGEST routes on a bound,
 * listening, non-blocking socket. Returns 0 or -1. */
int tr_http_listen(tr_http *h, int fd, int ingest_only);
/* The same over TLS (tls/tls.h): each connection gets a TLS bufferevent from `tls`. Replies
 * of the full route table carry Strict-Transport-Security; when `tls` asks for client
 * certificates without requiring them, the TR_HTTP_INGEST routes answer 403 to a client
 * without a verified one. tls NULL: plain, as tr_http_listen. */
struct tr_tls_server;
int tr_http_listen_tls(tr_http *h, int fd, int ingest_only, struct tr_tls_server *tls);
/* Adds a route: `methods` (TR_GET | TR_POST …) on a path pattern of `/`-separated segments,
 * each a literal or a `{name}` that matches one non-empty segment (`/api/traces/{id}`).
 * When several patterns match, the one with more literal segments wins. A path that matches
 * some pattern but none for the request's method gets 405 with an `Allow` header (OPTIONS:
 * 204 with `Allow`); a path that matches none gets 404. One handler per (pattern, method). */
void tr_http_route(tr_http *h, unsigned methods, const char *pattern, int flags, tr_http_fn fn, void *ctx);
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

/* The router's decision for (method, raw path) without a request: fills m (vars point into
 * `scratch`, scap bytes) and returns the route's handler context through *ctx, or returns 404
 * or 405 (with the allowed methods in *allow). For tests and tools. */
int tr_http_resolve(tr_http *h, unsigned method, const char *raw_path, tr_http_match *m, char *scratch,
                    size_t scap, void **ctx, unsigned *allow);

/* Sets *flag to 1 (on the loop thread) when the client of `req` goes away before the reply
 * is complete; a worker polls the flag. Undo with tr_http_unwatch before the flag's memory
 * goes, and at the latest when the reply is sent. */
void tr_http_watch(struct evhttp_request *req, volatile int *flag);
void tr_http_unwatch(struct evhttp_request *req);

/* ---- query strings and forms, as Go's net/url and net/http parse them ---- */

typedef struct tr_form_kv {
    char *key, *value; /* decoded, NUL-terminated; may hold any byte (vlen counts them) */
    size_t klen, vlen;
} tr_form_kv;

typedef struct tr_form {
    tr_form_kv *kv; /* in order: for a POST form, the body's pairs before the URL's */
    size_t n, cap;
} tr_form;

/* Go's url.ParseQuery: `&`-separated pairs, `+` is a space, %XX escapes decoded; a pair
 * holding `;` is refused ("invalid semicolon separator in query"), a bad escape too
 * (`invalid URL escape "%zz"`). Like Go, the good pairs are kept and the first error is
 * returned: 0, or -1 with Go's text in err; -2 when out of memory or past TR_FORM_MAX_PAIRS. */
#define TR_FORM_MAX_PAIRS 100000
int tr_form_parse(tr_form *f, const char *s, size_t len, char *err, size_t errlen);
/* First value of `key` (case-sensitive), or NULL. */
const char *tr_form_get(const tr_form *f, const char *key);
/* As tr_form_get, but an empty value counts as absent. */
const char *tr_form_get_nonempty(const tr_form *f, const char *key);
void tr_form_free(tr_form *f);

/* Go's Request.ParseForm: for POST, PUT and PATCH with Content-Type
 * application/x-www-form-urlencoded the body's pairs, then the URL query's. Returns 0, or -1
 * with Go's error text in err (the form then holds what parsed). Free `out` either way. */
int tr_http_form(struct evhttp_request *req, tr_form *out, char *err, size_t errlen);
/* The URL query alone (endpoints whose body is data). Same returns. */
int tr_http_query_form(struct evhttp_request *req, tr_form *out, char *err, size_t errlen);

/* ---- helpers for handlers ---- */

/* Copies the request body into `out` (initialised by the caller); -1 when over `max`. */
int tr_http_body(struct evhttp_request *req, size_t max, tr_buf *out);
const char *tr_http_header(struct evhttp_request *req, const char *name);

/* Sends a complete reply; `ctype` may be NULL. Counts it in /metrics. */
void tr_http_reply(struct evhttp_request *req, int status, const char *ctype, const void *body, size_t len);
void tr_http_reply_buf(struct evhttp_request *req, int status, const char *ctype, const tr_buf *b);
/* Whether the request's Accept-Encoding takes gzip (loop thread). */
int tr_http_accepts_gzip(struct evhttp_request *req);
/* A reply whose body `gz` is already gzip-compressed (e.g. on a worker thread, for a request
 * that tr_http_accepts_gzip): sent with Content-Encoding: gzip. */
void tr_http_reply_gzipped(struct evhttp_request *req, int status, const char *ctype, const tr_buf *gz);
/* A text/plain reply ending with a newline. */
void tr_http_reply_text(struct evhttp_request *req, int status, const char *text);

/* ---- streamed replies: produced on a worker thread, sent by the loop in chunks ---- */

struct tr_workq;
typedef struct tr_http_stream tr_http_stream;

/* Loop thread: prepares a streamed 200 reply to `req` (set its headers before the first
 * write). Returns NULL when out of memory. */
tr_http_stream *tr_http_stream_new(struct evhttp_request *req, struct tr_workq *q);
/* Worker thread, before the first write: the job's cancellation flag, which stops a write
 * that waits for a slow client. */
void tr_http_stream_bind(tr_http_stream *s, const volatile int *cancel);
/* Worker thread: queues bytes for the client. Blocks while more than TR_HTTP_STREAM_HIGH
 * bytes wait to be written (back-pressure: a slow client slows the producer, memory stays
 * bounded). Returns 0, or -1 when the job was cancelled (client gone): stop producing. */
#define TR_HTTP_STREAM_HIGH (1u << 20)
int tr_http_stream_write(tr_http_stream *s, const void *p, size_t n);
/* Worker thread: writes b's bytes once it holds `at_least` (0: always), then empties it.
 * Returns as tr_http_stream_write; b->failed counts as an error (-1). */
int tr_http_stream_flush(tr_http_stream *s, tr_buf *b, size_t at_least);
/* Loop thread, once the job is done: ok = 1 sends what is left and ends the reply (200);
 * ok = 0 ends it as failed: when nothing was sent yet it returns -1 and the caller sends an
 * error reply, else the connection is closed so the client sees a cut reply. Frees s. */
int tr_http_stream_end(tr_http_stream *s, int ok);

#endif
