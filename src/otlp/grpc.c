/* OTLP/gRPC over HTTP/2 cleartext (prior knowledge, as gRPC clients speak it) or TLS (ALPN h2): one nghttp2
 * server session per connection, driven by a libevent bufferevent. Each request stream
 * carries exactly one length-prefixed Export*ServiceRequest; it is buffered (bounded per
 * message and across all streams), handed to the receiver core, and answered with the
 * Export*ServiceResponse and a grpc-status trailer, or with a trailers-only error. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <nghttp2/nghttp2.h>

#include "grpc_frame.h"
#include "otlp_int.h"
#include "tls/tls.h"
#include "util/addrcount.h"
#include "util/log.h"
#include "util/selfmon.h"
#include "util/text.h"

/* ---- limits and timeouts (constants: no flag asks for them yet) ---- */
#define MAX_CONCURRENT_STREAMS 128
#define STREAM_WINDOW (1u << 20) /* per-stream receive window we advertise */
#define CONN_WINDOW (16u << 20)  /* connection receive window */
#define MAX_HEADER_LIST 32768u   /* request header list, counted as RFC 9113 does */
#define MAX_CONTINUATIONS 8
#define MAX_CONNECTIONS 1024
#define BUFFER_BUDGET (64u << 20) /* bytes buffered across all streams (at least 2 messages) */
#define FIRST_BODY_ALLOC 65536u
#define OUTPUT_HIGH (256u * 1024)      /* stop producing frames above this much unsent output */
#define FIRST_REQUEST_TIMEOUT_MS 10000 /* accept → a first request completed and accepted */
#define IDLE_TIMEOUT_MS 300000         /* no stream and no request (exporters send every 60 s) */
#define STREAM_TIMEOUT_MS 30000        /* request HEADERS → END_STREAM */
#define WRITE_TIMEOUT_S 30             /* pending output that makes no progress */
#define TICK_MS 1000
#define ACCEPT_PAUSE_MS 250 /* after accept() fails (out of descriptors) */
#define ACCEPT_BURST 32     /* connections accepted before the loop turns to other work */
#define CLOSE_GRACE_MS 5000 /* our GOAWAY's chance to leave before we drop */

#define GRPC_DEADLINE_EXCEEDED 4

enum { S_READING, S_ANSWERED, S_WAITING, S_RESPONDING };

typedef struct gconn gconn;

typedef struct gstream {
    gconn *c; /* NULL once orphaned: the stream closed while the receiver still works on it */
    struct gstream *prev, *next;
    int32_t id;
    int state;
    int known; /* :path is one of the Export methods */
    otlp_signal sig;
    int post; /* :method is POST */
    int have_ct, ct_ok;
    char ct[48]; /* content-type as given (truncated), for the error message */
    char *auth;  /* authorization value */
    grpc_encoding enc;
    char enc_name[32];
    size_t hdr_bytes;
    int req_ended;     /* the client's END_STREAM arrived */
    uint64_t deadline; /* ms, monotonic: the request must be complete by then */
    grpc_reader rd;
    int compressed;
    int complete; /* a whole message has been read */
    uint8_t *body;
    size_t body_len, body_cap, body_want;
    size_t wire_bytes; /* DATA payload received */
    tr_buf resp;       /* length-prefixed response message */
    size_t resp_off;
} gstream;

struct gconn {
    otlp_grpc *g;
    gconn *prev, *next;
    struct bufferevent *bev;
    nghttp2_session *session;
    struct event *timer;
    gstream *streams;
    int busy;        /* depth of nghttp2 calls on the stack: no send, no free inside */
    int got_request; /* a request was complete and authorized (PINGs and refused ones do not count) */
    int closing;     /* GOAWAY sent by us; drop once no stream is left and output drained */
    uint64_t accepted, last_io; /* last_io: the last request frame (HEADERS, DATA) or stream end */
    tr_addrkey key;
    uint64_t timer_at; /* when the pending timer fires (ms, monotonic) */
    uint64_t close_at; /* closing and streamless: dropped at this time even if unflushed */
    char peer[64];
};

struct otlp_grpc {
    struct event_base *base;
    otlp_receiver *r;
    struct evconnlistener *listener;
    tr_tls_server *tls;         /* NULL: cleartext (h2c with prior knowledge) */
    struct event *accept_pause; /* re-enables accepting after a failed accept() or a burst */
    unsigned burst;             /* accepted since the last yield */
    gconn *conns;
    unsigned nconns;
    unsigned max_conns, max_per_addr;
    tr_addrcount *per_addr;
    tr_metric *refused_addr, *refused_total, *auth_closed;
    size_t buffered, budget;
    int stopping;
};

/* =========================== pure helpers (grpc_frame.h) =========================== */

void grpc_reader_init(grpc_reader *r) { memset(r, 0, sizeof *r); }

int grpc_reader_idle(const grpc_reader *r) { return r->prefix_got == 0 && !r->in_body; }

size_t grpc_reader_partial(const grpc_reader *r) {
    return r->in_body ? 5 + (size_t)(r->length - r->need) : r->prefix_got;
}

int grpc_reader_feed(grpc_reader *r, const uint8_t *p, size_t n, const grpc_reader_ops *ops, void *ud) {
    int rc;
    while (n > 0) {
        if (!r->in_body) {
            size_t take = 5 - r->prefix_got;
            if (take > n) take = n;
            memcpy(r->prefix + r->prefix_got, p, take);
            r->prefix_got += (unsigned)take;
            p += take;
            n -= take;
            if (r->prefix_got < 5) break;
            if (r->prefix[0] > 1) return GRPC_READER_BAD_FLAG;
            r->length = (uint32_t)r->prefix[1] << 24 | (uint32_t)r->prefix[2] << 16 |
                        (uint32_t)r->prefix[3] << 8 | r->prefix[4];
            r->need = r->length;
            r->prefix_got = 0;
            r->in_body = 1;
            r->messages++;
            if ((rc = ops->message(ud, r->prefix[0], r->length)) != 0) return rc;
        } else {
            size_t take = r->need < n ? r->need : n;
            if (take) {
                r->need -= (uint32_t)take;
                if ((rc = ops->body(ud, p, take)) != 0) return rc;
                p += take;
                n -= take;
            }
        }
        if (r->in_body && r->need == 0) {
            r->in_body = 0;
            if ((rc = ops->complete(ud)) != 0) return rc;
        }
    }
    /* a zero-length message whose prefix ended exactly at the end of the input */
    if (r->in_body && r->need == 0) {
        r->in_body = 0;
        if ((rc = ops->complete(ud)) != 0) return rc;
    }
    return 0;
}

static const struct {
    const char *path;
    otlp_signal sig;
} routes[] = {
    {"/opentelemetry.proto.collector.metrics.v1.MetricsService/Export", OTLP_METRICS},
    {"/opentelemetry.proto.collector.trace.v1.TraceService/Export", OTLP_TRACES},
    {"/opentelemetry.proto.collector.logs.v1.LogsService/Export", OTLP_LOGS},
};

int grpc_route(const char *path, size_t n, otlp_signal *sig) {
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strlen(routes[i].path) == n && memcmp(routes[i].path, path, n) == 0) {
            *sig = routes[i].sig;
            return 1;
        }
    return 0;
}

int grpc_content_type_ok(const char *v, size_t n) {
    static const char base[] = "application/grpc";
    size_t bl = sizeof base - 1;
    if (n < bl || strncasecmp(v, base, bl) != 0) return 0;
    return n == bl || v[bl] == '+' || v[bl] == ';';
}

grpc_encoding grpc_parse_encoding(const char *v, size_t n) {
    if (n == 0 || (n == 8 && strncasecmp(v, "identity", 8) == 0)) return GRPC_ENC_IDENTITY;
    if (n == 4 && strncasecmp(v, "gzip", 4) == 0) return GRPC_ENC_GZIP;
    return GRPC_ENC_UNSUPPORTED;
}

size_t grpc_percent_encode(const char *in, char *out, size_t cap) {
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
            if (o + 1 >= cap) break;
            out[o++] = (char)*p;
        } else {
            if (o + 3 >= cap) break;
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = 0;
    return o;
}

/* =============================== streams =============================== */

static void budget_release(otlp_grpc *g, size_t n) { g->buffered = n > g->buffered ? 0 : g->buffered - n; }

static void stream_drop_body(gstream *s) {
    if (s->body_cap && s->c) budget_release(s->c->g, s->body_cap);
    free(s->body);
    s->body = NULL;
    s->body_len = s->body_cap = s->body_want = 0;
}

static void stream_unlink(gstream *s) {
    gconn *c = s->c;
    if (!c) return;
    if (s->prev)
        s->prev->next = s->next;
    else
        c->streams = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

static void stream_free(gstream *s) {
    stream_drop_body(s);
    stream_unlink(s);
    free(s->auth);
    tr_buf_free(&s->resp);
    free(s);
}

/* The receiver is still working on s: it lives on, detached, until the done callback. */
static void stream_orphan(gstream *s) {
    stream_drop_body(s);
    stream_unlink(s);
    s->c = NULL;
}

#define NV(n, v)                                                                                             \
    { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE }

/* A trailers-only response: one HEADERS frame with the status, ending the stream. When the
 * request is still arriving, on_frame_send then asks the client to stop with RST_STREAM
 * NO_ERROR (RFC 9113 §8.1). */
static void pb_varint(tr_buf *b, uint64_t v) {
    while (v >= 0x80) {
        tr_buf_putc(b, (char)((v & 0x7f) | 0x80));
        v >>= 7;
    }
    tr_buf_putc(b, (char)v);
}

static void pb_bytes(tr_buf *b, unsigned field, const void *p, size_t n) {
    pb_varint(b, field << 3 | 2);
    pb_varint(b, n);
    tr_buf_append(b, p, n);
}

/* grpc-status-details-bin: a google.rpc.Status with a google.rpc.RetryInfo detail, which makes
 * RESOURCE_EXHAUSTED retryable for OTLP exporters (after retry_s seconds). Base64 into out. */
static void retry_details(int code, const char *msg, int retry_s, tr_buf *out) {
    tr_buf dur, ri, any, st;
    tr_buf_init(&dur, 0), tr_buf_init(&ri, 0), tr_buf_init(&any, 0), tr_buf_init(&st, 0);
    pb_varint(&dur, 1 << 3); /* Duration.seconds */
    pb_varint(&dur, (uint64_t)retry_s);
    pb_bytes(&ri, 1, dur.data, dur.len); /* RetryInfo.retry_delay */
    static const char url[] = "type.googleapis.com/google.rpc.RetryInfo";
    pb_bytes(&any, 1, url, sizeof url - 1);
    pb_bytes(&any, 2, ri.data, ri.len);
    pb_varint(&st, 1 << 3); /* Status.code */
    pb_varint(&st, (uint64_t)code);
    pb_bytes(&st, 2, msg, strlen(msg));
    pb_bytes(&st, 3, any.data, any.len);
    if (!st.failed) tr_base64_encode(out, (const uint8_t *)st.data, st.len);
    tr_buf_free(&dur), tr_buf_free(&ri), tr_buf_free(&any), tr_buf_free(&st);
}

static void answer_error_retry(gstream *s, int http_status, int code, const char *msg, int retry_s);

static void answer_error(gstream *s, int http_status, int code, const char *msg) {
    answer_error_retry(s, http_status, code, msg, 0);
}

/* As answer_error; retry_s > 0 adds RetryInfo (retry after that many seconds). */
static void answer_error_retry(gstream *s, int http_status, int code, const char *msg, int retry_s) {
    gconn *c = s->c;
    if (s->state == S_ANSWERED || s->state == S_RESPONDING) return; /* one answer per stream */
    char st[8], gs[8], pm[512];
    snprintf(st, sizeof st, "%d", http_status);
    snprintf(gs, sizeof gs, "%d", code);
    grpc_percent_encode(msg ? msg : "", pm, sizeof pm);
    nghttp2_nv nva[] = {
        NV(":status", st),
        NV("content-type", "application/grpc"),
        NV("grpc-accept-encoding", "gzip"),
        NV("grpc-status", gs),
        NV("grpc-message", pm),
        NV("grpc-status-details-bin", ""),
    };
    size_t n = sizeof nva / sizeof nva[0] - 1;
    if (!pm[0]) n--;
    tr_buf det;
    tr_buf_init(&det, 0);
    if (retry_s > 0) {
        retry_details(code, msg ? msg : "", retry_s, &det);
        if (det.len && !det.failed) {
            nva[n] = nva[5];
            nva[n].value = (uint8_t *)det.data;
            nva[n].valuelen = det.len;
            n++;
        }
    }
    stream_drop_body(s);
    s->state = S_ANSWERED;
    int rv = nghttp2_submit_response(c->session, s->id, nva, n, NULL); /* copies the headers */
    tr_buf_free(&det);
    if (rv != 0) {
        TR_DEBUG("grpc: cannot submit response", "peer=%s stream=%d error=\"%s\"", c->peer, s->id,
                 nghttp2_strerror(rv));
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
    }
}

/* Counts an early rejection against the signal the path named (unknown paths have none). */
static void count_early(gstream *s, otlp_status st) {
    if (s->known && s->c) otlp_receiver_count_error(s->c->g->r, s->sig, OTLP_GRPC, st, s->wire_bytes);
}

static ssize_t resp_read(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
                         nghttp2_data_source *src, void *user_data) {
    gstream *s = src->ptr;
    size_t left = s->resp.len - s->resp_off;
    size_t n = left < length ? left : length;
    if (n) memcpy(buf, s->resp.data + s->resp_off, n);
    s->resp_off += n;
    if (s->resp_off == s->resp.len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_nv tr[] = {NV("grpc-status", "0")};
        int rv = nghttp2_submit_trailer(session, id, tr, 1);
        if (rv != 0) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return (ssize_t)n;
}

static void answer_ok(gstream *s, const otlp_result *res) {
    gconn *c = s->c;
    tr_buf_init(&s->resp, 0);
    static const uint8_t zero[5];
    tr_buf_append(&s->resp, zero, 5);
    otlp_encode_response(s->sig, 0, res, &s->resp);
    if (s->resp.failed || s->resp.len < 5) {
        answer_error(s, 200, GRPC_INTERNAL, "cannot encode the response");
        return;
    }
    uint32_t n = (uint32_t)(s->resp.len - 5);
    uint8_t *p = (uint8_t *)s->resp.data;
    p[1] = (uint8_t)(n >> 24);
    p[2] = (uint8_t)(n >> 16);
    p[3] = (uint8_t)(n >> 8);
    p[4] = (uint8_t)n;
    s->resp_off = 0;
    s->state = S_RESPONDING;
    nghttp2_nv nva[] = {
        NV(":status", "200"),
        NV("content-type", "application/grpc"),
        NV("grpc-accept-encoding", "gzip"),
    };
    nghttp2_data_provider prd = {.source.ptr = s, .read_callback = resp_read};
    int rv = nghttp2_submit_response(c->session, s->id, nva, sizeof nva / sizeof nva[0], &prd);
    if (rv != 0) {
        TR_DEBUG("grpc: cannot submit response", "peer=%s stream=%d error=\"%s\"", c->peer, s->id,
                 nghttp2_strerror(rv));
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
    }
}

static int conn_flush(gconn *c);
static void conn_goaway(gconn *c, const char *why);

/* The receiver's done callback: exactly once per processed stream, maybe before
 * otlp_receiver_process returns (then we are inside an nghttp2 callback and the frames go
 * out when it unwinds), maybe later from the event loop. */
static void on_done(void *cookie, const otlp_result *res) {
    gstream *s = cookie;
    gconn *c = s->c;
    if (!c) { /* the client went away meanwhile */
        stream_free(s);
        return;
    }
    if (res->status != OTLP_OK)
        answer_error_retry(s, 200, otlp_status_to_grpc(res->status), res->message,
                           res->status == OTLP_OVERLOADED ? 5 : 0);
    else
        answer_ok(s, res);
    if (!c->busy) conn_flush(c);
}

static void stream_process(gstream *s) {
    otlp_grpc *g = s->c->g;
    uint8_t *body = s->body;
    size_t len = s->body_len, held = s->body_cap;
    int gzip = s->compressed && s->enc == GRPC_ENC_GZIP;
    /* the body is only needed during the call: take it off the stream first, since done
     * may run (and the stream may even be freed) before process returns */
    s->body = NULL;
    s->body_len = s->body_cap = s->body_want = 0;
    s->state = S_WAITING;
    s->c->got_request = 1;
    otlp_receiver_process(g->r, s->sig, OTLP_GRPC, body ? body : (const uint8_t *)"", len, gzip, on_done, s);
    free(body);
    budget_release(g, held);
}

/* Grows the body buffer to hold `more` bytes, within the message's declared length and the
 * process-wide budget. Returns 0 or -1 (answered). */
static int body_reserve(gstream *s, size_t more) {
    otlp_grpc *g = s->c->g;
    size_t need = s->body_len + more;
    if (need <= s->body_cap) return 0;
    size_t cap = s->body_cap ? s->body_cap : FIRST_BODY_ALLOC;
    while (cap < need)
        cap *= 2;
    if (cap > s->body_want) cap = s->body_want;
    size_t grow = cap - s->body_cap;
    if (g->buffered + grow > g->budget) {
        char m[160];
        snprintf(m, sizeof m, "server busy: too much request data buffered (limit %zu bytes); retry later",
                 g->budget);
        count_early(s, OTLP_TOO_LARGE);
        answer_error(s, 200, GRPC_RESOURCE_EXHAUSTED, m);
        return -1;
    }
    uint8_t *nb = realloc(s->body, cap);
    if (!nb) {
        count_early(s, OTLP_UNAVAILABLE);
        answer_error(s, 200, GRPC_UNAVAILABLE, "out of memory");
        return -1;
    }
    s->body = nb;
    s->body_cap = cap;
    g->buffered += grow;
    return 0;
}

static int rd_message(void *ud, int compressed, uint32_t length) {
    gstream *s = ud;
    size_t max = otlp_receiver_config(s->c->g->r)->max_message_bytes;
    char m[200];
    if (s->rd.messages > 1) {
        count_early(s, OTLP_INVALID);
        answer_error(s, 200, GRPC_INTERNAL, "unary request carries more than one message");
        return 1;
    }
    if (compressed && s->enc == GRPC_ENC_IDENTITY) {
        count_early(s, OTLP_INVALID);
        answer_error(s, 200, GRPC_INTERNAL, "compressed flag set with identity or empty grpc-encoding");
        return 1;
    }
    if (length > max) { /* refused before a byte of it is buffered */
        snprintf(m, sizeof m, "message of %u bytes is larger than the limit of %zu bytes", length, max);
        count_early(s, OTLP_TOO_LARGE);
        answer_error(s, 200, GRPC_RESOURCE_EXHAUSTED, m);
        return 1;
    }
    s->compressed = compressed;
    s->body_want = length;
    return 0;
}

static int rd_body(void *ud, const uint8_t *p, size_t n) {
    gstream *s = ud;
    if (body_reserve(s, n) != 0) return 1;
    memcpy(s->body + s->body_len, p, n);
    s->body_len += n;
    return 0;
}

static int rd_complete(void *ud) {
    ((gstream *)ud)->complete = 1;
    return 0;
}

static const grpc_reader_ops reader_ops = {rd_message, rd_body, rd_complete};

/* The request HEADERS are complete: check them in grpc-go's order. */
static void headers_done(gstream *s) {
    gconn *c = s->c;
    char m[200];
    if (!s->post) {
        answer_error(s, 405, GRPC_INTERNAL, "invalid gRPC request method (want POST)");
        return;
    }
    if (!s->ct_ok) {
        snprintf(m, sizeof m, "invalid gRPC request content-type \"%s\"", s->have_ct ? s->ct : "");
        count_early(s, OTLP_INVALID);
        answer_error(s, 415, GRPC_INVALID_ARGUMENT, m);
        return;
    }
    if (!otlp_receiver_authorized(c->g->r, s->auth)) {
        count_early(s, OTLP_UNAUTHENTICATED);
        answer_error(s, 200, GRPC_UNAUTHENTICATED,
                     s->auth ? "invalid ingest token"
                             : "missing ingest token: send authorization: Bearer <token>");
        /* a client without the token gets nothing more from this connection: holding it open
         * (PINGs keep it busy) would let such clients take every slot from real exporters */
        tr_counter_add(c->g->auth_closed, 1);
        conn_goaway(c, "unauthenticated");
        return;
    }
    if (!s->known) {
        answer_error(s, 200, GRPC_UNIMPLEMENTED,
                     "unknown method (tricorder serves MetricsService/Export and TraceService/Export)");
        return;
    }
    if (s->sig == OTLP_LOGS) {
        count_early(s, OTLP_UNIMPLEMENTED);
        answer_error(s, 200, GRPC_UNIMPLEMENTED, "logs are not stored by tricorder (metrics and traces are)");
        return;
    }
    if (s->enc == GRPC_ENC_UNSUPPORTED) {
        snprintf(m, sizeof m, "grpc-encoding \"%s\" not supported (supported: identity, gzip)", s->enc_name);
        count_early(s, OTLP_UNIMPLEMENTED);
        answer_error(s, 200, GRPC_UNIMPLEMENTED, m);
        return;
    }
    s->state = S_READING;
}

/* The client's END_STREAM arrived. */
static void request_done(gstream *s) {
    s->req_ended = 1;
    if (s->state != S_READING) return;
    char m[200];
    if (s->rd.messages == 0) {
        count_early(s, OTLP_INVALID);
        answer_error(s, 200, GRPC_INTERNAL, "unary request carries no message");
        return;
    }
    if (!s->complete) {
        snprintf(m, sizeof m, "request ended inside a message (%zu of %u bytes)", grpc_reader_partial(&s->rd),
                 s->rd.length + 5);
        count_early(s, OTLP_INVALID);
        answer_error(s, 200, GRPC_INTERNAL, m);
        return;
    }
    stream_process(s);
}

/* =========================== nghttp2 callbacks =========================== */

static ssize_t cb_send(nghttp2_session *session, const uint8_t *data, size_t length, int flags,
                       void *user_data) {
    gconn *c = user_data;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (evbuffer_get_length(out) >= OUTPUT_HIGH) return NGHTTP2_ERR_WOULDBLOCK;
    if (bufferevent_write(c->bev, data, length) != 0) return NGHTTP2_ERR_CALLBACK_FAILURE;
    return (ssize_t)length;
}

static int cb_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
    gconn *c = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    gstream *s = calloc(1, sizeof *s);
    if (!s) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    s->c = c;
    s->id = frame->hd.stream_id;
    s->state = S_READING;
    s->deadline = (uint64_t)tr_mono_ms() + STREAM_TIMEOUT_MS;
    grpc_reader_init(&s->rd);
    tr_buf_init(&s->resp, 0);
    s->next = c->streams;
    if (c->streams) c->streams->prev = s;
    c->streams = s;
    nghttp2_session_set_stream_user_data(session, s->id, s);
    return 0;
}

static int hdr_is(const uint8_t *name, size_t namelen, const char *want) {
    size_t n = strlen(want);
    return namelen == n && memcmp(name, want, n) == 0;
}

static int cb_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data) {
    gconn *c = user_data;
    gstream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!s) return 0;
    s->hdr_bytes += namelen + valuelen + 32;
    if (s->hdr_bytes > MAX_HEADER_LIST) {
        /* refuse the stream (RST_STREAM) instead of decoding an unbounded block into memory */
        TR_DEBUG("grpc: request headers too large", "peer=%s stream=%d limit=%u", c->peer, s->id,
                 MAX_HEADER_LIST);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0; /* client trailers: unused */
    if (hdr_is(name, namelen, ":method")) {
        s->post = valuelen == 4 && memcmp(value, "POST", 4) == 0;
    } else if (hdr_is(name, namelen, ":path")) {
        s->known = grpc_route((const char *)value, valuelen, &s->sig);
    } else if (hdr_is(name, namelen, "content-type")) {
        s->have_ct = 1;
        s->ct_ok = grpc_content_type_ok((const char *)value, valuelen);
        snprintf(s->ct, sizeof s->ct, "%.*s", (int)(valuelen < sizeof s->ct ? valuelen : sizeof s->ct - 1),
                 (const char *)value);
    } else if (hdr_is(name, namelen, "authorization")) {
        free(s->auth);
        s->auth = strndup((const char *)value, valuelen);
        if (!s->auth) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    } else if (hdr_is(name, namelen, "grpc-encoding")) {
        s->enc = grpc_parse_encoding((const char *)value, valuelen);
        snprintf(s->enc_name, sizeof s->enc_name, "%.*s",
                 (int)(valuelen < sizeof s->enc_name ? valuelen : sizeof s->enc_name - 1),
                 (const char *)value);
    }
    return 0;
}

static int cb_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data,
                         size_t len, void *user_data) {
    /* our window opens as fast as data is buffered or discarded: the hard bounds are the
     * message limit and the buffer budget, checked before anything is kept */
    nghttp2_session_consume(session, stream_id, len);
    gstream *s = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!s || s->state != S_READING) return 0;
    s->wire_bytes += len;
    int rc = grpc_reader_feed(&s->rd, data, len, &reader_ops, s);
    if (rc == GRPC_READER_BAD_FLAG) {
        count_early(s, OTLP_INVALID);
        answer_error(s, 200, GRPC_INTERNAL, "invalid message prefix: compressed flag is neither 0 nor 1");
    }
    return 0;
}

static int cb_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
    gconn *c = user_data;
    gstream *s;
    /* only requests are activity: PING, SETTINGS and WINDOW_UPDATE alone do not keep a
     * connection open past its idle timeout */
    if (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA)
        c->last_io = (uint64_t)tr_mono_ms();
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
        if (!s) break;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) headers_done(s);
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) request_done(s);
        break;
    case NGHTTP2_DATA:
        if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) break;
        s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
        if (s) request_done(s);
        break;
    case NGHTTP2_GOAWAY:
        TR_DEBUG("grpc: client sent GOAWAY", "peer=%s error_code=%u", c->peer, frame->goaway.error_code);
        break;
    default:
        break;
    }
    return 0;
}

static int cb_frame_send(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
    if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    gstream *s = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    /* answered before the request was complete: ask the client to stop sending */
    if (s && !s->req_ended)
        nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
    return 0;
}

static int cb_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data) {
    gstream *s = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!s) return 0;
    if (s->c) s->c->last_io = (uint64_t)tr_mono_ms(); /* the idle time runs from the answer */
    nghttp2_session_set_stream_user_data(session, stream_id, NULL);
    if (s->state == S_WAITING) {
        TR_DEBUG("grpc: stream closed before its answer", "peer=%s stream=%d error_code=%u", s->c->peer,
                 s->id, error_code);
        stream_orphan(s);
    } else {
        stream_free(s);
    }
    return 0;
}

static nghttp2_session_callbacks *callbacks_new(void) {
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs) != 0) return NULL;
    nghttp2_session_callbacks_set_send_callback(cbs, cb_send);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, cb_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, cb_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cb_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cb_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, cb_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cb_stream_close);
    return cbs;
}

/* ============================== connections ============================== */

static unsigned conn_nstreams(const gconn *c) {
    unsigned n = 0;
    for (const gstream *s = c->streams; s; s = s->next)
        n++;
    return n;
}

static void conn_free(gconn *c) {
    otlp_grpc *g = c->g;
    if (c->prev)
        c->prev->next = c->next;
    else
        g->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    g->nconns--;
    if (g->per_addr) tr_addrcount_release(g->per_addr, &c->key);
    if (c->streams)
        TR_DEBUG("grpc: connection closed with open streams", "peer=%s streams=%u", c->peer,
                 conn_nstreams(c));
    while (c->streams) {
        gstream *s = c->streams;
        if (c->session) nghttp2_session_set_stream_user_data(c->session, s->id, NULL);
        if (s->state == S_WAITING)
            stream_orphan(s);
        else
            stream_free(s);
    }
    if (c->session) nghttp2_session_del(c->session);
    if (c->timer) event_free(c->timer);
    if (c->bev && c->closing) {
        /* closing with the client's frames (PINGs) unread makes the kernel send a reset, which
         * can discard our last answer (an UNAUTHENTICATED, the GOAWAY) before the client reads
         * it: what has arrived is read and dropped first, so the close is a plain FIN */
        evutil_socket_t fd = bufferevent_getfd(c->bev);
        char sink[4096];
        for (int i = 0; fd >= 0 && i < 16 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++) {
        }
    }
    if (c->bev) bufferevent_free(c->bev);
    free(c);
}

/* Hands queued frames to the bufferevent and drops the connection once nghttp2 is done with
 * it. Returns -1 when c was freed. Never called from inside an nghttp2 callback. */
static int conn_flush(gconn *c) {
    c->busy++;
    int rv = nghttp2_session_send(c->session);
    c->busy--;
    if (rv != 0) {
        TR_DEBUG("grpc: connection error", "peer=%s error=\"%s\"", c->peer, nghttp2_strerror(rv));
        conn_free(c);
        return -1;
    }
    int over = !nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session);
    if (c->closing && !c->streams && !nghttp2_session_want_write(c->session)) over = 1;
    if (over && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        conn_free(c);
        return -1;
    }
    if (over) bufferevent_disable(c->bev, EV_READ); /* on_write frees it once drained */
    return 0;
}

static void conn_goaway(gconn *c, const char *why) {
    if (c->closing) return;
    c->closing = 1;
    const char *d = why ? why : "";
    nghttp2_submit_goaway(c->session, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(c->session),
                          NGHTTP2_NO_ERROR, (const uint8_t *)d, strlen(d));
}

/* One timer per connection: the first-request deadline, a tick while streams are open (their
 * deadlines), the idle timeout, or the grace given to our GOAWAY. Traffic never postpones an
 * earlier expiry, so a trickling client cannot outrun its deadlines. */
static void conn_arm(gconn *c) {
    uint64_t now = (uint64_t)tr_mono_ms(), at;
    if (c->closing && !c->streams) {
        if (!c->close_at) c->close_at = now + CLOSE_GRACE_MS;
        at = c->close_at;
    } else if (c->streams) {
        at = now + TICK_MS;
    } else if (!c->got_request) {
        at = c->accepted + FIRST_REQUEST_TIMEOUT_MS;
    } else {
        at = c->last_io + IDLE_TIMEOUT_MS;
    }
    if (evtimer_pending(c->timer, NULL) && c->timer_at <= at) return;
    uint64_t d = at > now ? at - now : 0;
    struct timeval tv = {(time_t)(d / 1000), (suseconds_t)(d % 1000) * 1000};
    c->timer_at = at;
    evtimer_add(c->timer, &tv);
}

static void on_timer(evutil_socket_t fd, short what, void *arg) {
    gconn *c = arg;
    uint64_t now = (uint64_t)tr_mono_ms();
    if (c->close_at && now >= c->close_at) {
        TR_DEBUG("grpc: peer does not read our GOAWAY, dropping", "peer=%s", c->peer);
        conn_free(c);
        return;
    }
    if (!c->got_request && now >= c->accepted + FIRST_REQUEST_TIMEOUT_MS) {
        TR_DEBUG("grpc: no request in time, closing", "peer=%s timeout_ms=%d", c->peer,
                 FIRST_REQUEST_TIMEOUT_MS);
        conn_goaway(c, "no request");
    } else if (!c->streams && now >= c->last_io + IDLE_TIMEOUT_MS) {
        TR_DEBUG("grpc: idle connection, closing", "peer=%s", c->peer);
        conn_goaway(c, "idle");
    }
    c->busy++;
    for (gstream *s = c->streams, *next; s; s = next) {
        next = s->next;
        if (s->state == S_READING && now >= s->deadline) {
            TR_DEBUG("grpc: request not complete in time", "peer=%s stream=%d timeout_ms=%d", c->peer, s->id,
                     STREAM_TIMEOUT_MS);
            count_early(s, OTLP_INVALID);
            char m[96];
            snprintf(m, sizeof m, "request not received completely within %d s", STREAM_TIMEOUT_MS / 1000);
            answer_error(s, 200, GRPC_DEADLINE_EXCEEDED, m);
        }
    }
    c->busy--;
    if (conn_flush(c) != 0) return;
    conn_arm(c);
}

static void on_read(struct bufferevent *bev, void *arg) {
    gconn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    if (len == 0) return;
    unsigned char *data = evbuffer_pullup(in, -1);
    c->busy++;
    ssize_t rv = nghttp2_session_mem_recv(c->session, data, len);
    c->busy--;
    if (rv < 0) {
        TR_DEBUG("grpc: bad input, closing", "peer=%s error=\"%s\"", c->peer, nghttp2_strerror((int)rv));
        conn_free(c);
        return;
    }
    evbuffer_drain(in, (size_t)rv);
    if (conn_flush(c) != 0) return;
    conn_arm(c);
}

static void on_write(struct bufferevent *bev, void *arg) {
    gconn *c = arg;
    conn_flush(c); /* frees c when it is over and the output is drained */
}

static void on_event(struct bufferevent *bev, short events, void *arg) {
    gconn *c = arg;
    if (events & BEV_EVENT_EOF)
        TR_DEBUG("grpc: connection closed by peer", "peer=%s streams=%u", c->peer, conn_nstreams(c));
    else if (events & BEV_EVENT_TIMEOUT)
        TR_DEBUG("grpc: write timeout, closing", "peer=%s", c->peer);
    else if (events & BEV_EVENT_ERROR)
        TR_DEBUG("grpc: connection error", "peer=%s error=\"%s\"", c->peer, strerror(EVUTIL_SOCKET_ERROR()));
    else
        return;
    conn_free(c);
}

static void format_peer(const struct sockaddr *sa, char *out, size_t cap) {
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        port = ntohs(a->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        port = ntohs(a->sin6_port);
    }
    snprintf(out, cap, "%s:%d", ip, port);
}

static int conn_start_session(gconn *c) {
    static nghttp2_session_callbacks *cbs;
    if (!cbs && !(cbs = callbacks_new())) return -1;
    nghttp2_option *opt;
    if (nghttp2_option_new(&opt) != 0) return -1;
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_continuations(opt, MAX_CONTINUATIONS);
    int rv = nghttp2_session_server_new2(&c->session, cbs, c, opt);
    nghttp2_option_del(opt);
    if (rv != 0) return -1;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_CONCURRENT_STREAMS},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, MAX_HEADER_LIST},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    if (nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0) return -1;
    if (nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0) return -1;
    return 0;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg) {
    otlp_grpc *g = arg;
    /* libevent accepts every pending connection in one go: after a burst, the loop serves
     * other work first (a thousand connects at once would otherwise hold it for long) */
    if (++g->burst >= ACCEPT_BURST && !evtimer_pending(g->accept_pause, NULL)) {
        struct timeval now = {0, 0};
        evconnlistener_disable(l);
        evtimer_add(g->accept_pause, &now);
    }
    char peer[64];
    format_peer(sa, peer, sizeof peer);
    tr_addrkey key;
    tr_addrkey_from(sa, &key);
    /* the cap per address first, so one client cannot take the whole listener */
    int over_addr = g->max_per_addr && tr_addrcount_get(g->per_addr, &key) >= g->max_per_addr;
    if (g->stopping || over_addr || (g->max_conns && g->nconns >= g->max_conns)) {
        if (!g->stopping) tr_counter_add(over_addr ? g->refused_addr : g->refused_total, 1);
        TR_DEBUG("grpc: refusing connection", "peer=%s open=%u limit=%s", peer, g->nconns,
                 over_addr ? "per_address" : "total");
        evutil_closesocket(fd);
        return;
    }
    gconn *c = calloc(1, sizeof *c);
    if (!c || tr_addrcount_acquire(g->per_addr, &key, 0) < 0) {
        free(c);
        evutil_closesocket(fd);
        return;
    }
    c->key = key;
    c->g = g;
    memcpy(c->peer, peer, sizeof peer);
    c->accepted = c->last_io = (uint64_t)tr_mono_ms();
    c->next = g->conns;
    if (g->conns) g->conns->prev = c;
    g->conns = c;
    g->nconns++;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->bev = g->tls ? tr_tls_bufferevent(g->tls, g->base, fd)
                    : bufferevent_socket_new(g->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        evutil_closesocket(fd);
        conn_free(c);
        return;
    }
    c->timer = evtimer_new(g->base, on_timer, c);
    if (!c->timer || conn_start_session(c) != 0) {
        TR_DEBUG("grpc: cannot set up connection", "peer=%s", peer);
        conn_free(c);
        return;
    }
    struct timeval wt = {WRITE_TIMEOUT_S, 0};
    bufferevent_set_timeouts(c->bev, NULL, &wt);
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    TR_DEBUG("grpc: connection accepted", "peer=%s open=%u", peer, g->nconns);
    if (conn_flush(c) != 0) return;
    conn_arm(c);
}

static void on_accept_resume(evutil_socket_t fd, short what, void *arg) {
    otlp_grpc *g = arg;
    g->burst = 0;
    if (g->listener && !g->stopping) evconnlistener_enable(g->listener);
}

static void on_accept_error(struct evconnlistener *l, void *arg) {
    otlp_grpc *g = arg;
    int err = EVUTIL_SOCKET_ERROR();
    /* EMFILE and friends: the pending connection stays queued and the listener would fire
     * again at once; pause accepting for a second, keep serving the connections we have */
    TR_WARN_LIMITED("accept", "grpc: accept failed: pausing the listener", "error=\"%s\" pause_ms=%d open=%u",
                    evutil_socket_error_to_string(err), ACCEPT_PAUSE_MS, g->nconns);
    evconnlistener_disable(l);
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    evtimer_add(g->accept_pause, &tv);
}

/* ================================ public ================================ */

otlp_grpc *otlp_grpc_new(struct event_base *base, otlp_receiver *r, int fd) {
    otlp_grpc *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->base = base;
    g->r = r;
    size_t max = otlp_receiver_config(r)->max_message_bytes;
    g->budget = BUFFER_BUDGET;
    g->max_conns = MAX_CONNECTIONS;
    g->refused_addr = tr_counter_new("tricorder_connections_refused_total", TR_CONN_REFUSED_HELP,
                                     "listener=\"grpc\",reason=\"per_address\"");
    g->refused_total = tr_counter_new("tricorder_connections_refused_total", TR_CONN_REFUSED_HELP,
                                      "listener=\"grpc\",reason=\"total\"");
    g->auth_closed =
        tr_counter_new("tricorder_grpc_unauthenticated_closes_total",
                       "gRPC connections ended (GOAWAY) after a request without the ingest token.", NULL);
    if (!(g->per_addr = tr_addrcount_new())) goto fail;
    if (max > g->budget / 2) g->budget = max * 2; /* at least two messages fit */
    evutil_make_socket_nonblocking(fd);
    g->accept_pause = evtimer_new(base, on_accept_resume, g);
    if (!g->accept_pause) goto fail;
    /* from here on the listener owns fd (on failure it stays the caller's) */
    g->listener = evconnlistener_new(base, on_accept, g, LEV_OPT_CLOSE_ON_FREE, -1, fd);
    if (!g->listener) goto fail;
    evconnlistener_set_error_cb(g->listener, on_accept_error);
    return g;
fail:
    if (g->accept_pause) event_free(g->accept_pause);
    tr_addrcount_free(g->per_addr);
    free(g);
    return NULL;
}

void otlp_grpc_stop_accepting(otlp_grpc *g) {
    if (!g || g->stopping) return;
    g->stopping = 1;
    if (g->listener) {
        evconnlistener_free(g->listener);
        g->listener = NULL;
    }
    for (gconn *c = g->conns, *next; c; c = next) {
        next = c->next;
        conn_goaway(c, "server shutting down");
        /* requests already received are processed and answered; one still arriving will
         * not be waited for (shutdown waits for the receiver's in-flight work only), so it
         * gets a retryable answer now, while the loop still runs to deliver it */
        c->busy++;
        for (gstream *s = c->streams; s; s = s->next)
            if (s->state == S_READING) answer_error(s, 200, GRPC_UNAVAILABLE, "server shutting down; retry");
        c->busy--;
        conn_flush(c); /* may free c */
    }
}

void otlp_grpc_set_tls(otlp_grpc *g, tr_tls_server *tls) { g->tls = tls; }

unsigned otlp_grpc_connections(const otlp_grpc *g) { return g ? g->nconns : 0; }

void otlp_grpc_set_limits(otlp_grpc *g, unsigned max_total, unsigned max_per_addr) {
    g->max_conns = max_total;
    g->max_per_addr = max_per_addr;
}

void otlp_grpc_free(otlp_grpc *g) {
    if (!g) return;
    if (g->listener) evconnlistener_free(g->listener);
    if (g->accept_pause) event_free(g->accept_pause);
    while (g->conns) {
        gconn *c = g->conns;
        /* requests still arriving will not be processed: say so, then give the answers
         * already queued one last non-blocking write */
        c->busy++;
        for (gstream *s = c->streams; s; s = s->next)
            if (s->state == S_READING) answer_error(s, 200, GRPC_UNAVAILABLE, "server shutting down");
        nghttp2_session_send(c->session);
        c->busy--;
        if (tr_tls_is_tls(c->bev)) { /* no raw write under TLS: freeing closes it */
            conn_free(c);
            continue;
        }
        struct evbuffer *out = bufferevent_get_output(c->bev);
        evutil_socket_t fd = bufferevent_getfd(c->bev);
        size_t n = evbuffer_get_length(out);
        /* the bufferevent keeps its output frozen for draining: copy, don't drain */
        unsigned char *p = n ? evbuffer_pullup(out, -1) : NULL;
        if (p) send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        /* close with FIN rather than RST (unread input makes close() reset, and a reset
         * can destroy answers the peer has not read yet) */
        shutdown(fd, SHUT_WR);
        char sink[4096];
        while (recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0) {
        }
        conn_free(c);
    }
    tr_addrcount_free(g->per_addr);
    free(g);
}
