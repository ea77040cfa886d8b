/* The OTLP receiver's public face: what a decoded export looks like, the two sinks through
 * which exports leave the receiver (metrics and traces), and the entry points of the gRPC and
 * HTTP transports. */
#ifndef TR_OTLP_H
#define TR_OTLP_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "otlp_collector.pb-c.h"
#include "util/arena.h"

typedef Opentelemetry__Proto__Collector__V1__ExportMetricsServiceRequest otlp_metrics_req;
typedef Opentelemetry__Proto__Collector__V1__ExportTraceServiceRequest otlp_traces_req;

typedef enum { OTLP_METRICS = 0, OTLP_TRACES = 1, OTLP_LOGS = 2 } otlp_signal;
typedef enum { OTLP_GRPC = 0, OTLP_HTTP_PROTOBUF = 1, OTLP_HTTP_JSON = 2 } otlp_transport;

/* Outcome classes; each transport maps them to its own status codes. */
typedef enum {
    OTLP_OK = 0,          /* stored; `rejected` may still be > 0 (partial success) */
    OTLP_INVALID,         /* malformed payload: 400 / INVALID_ARGUMENT */
    OTLP_TOO_LARGE,       /* over a size limit: 413 / RESOURCE_EXHAUSTED */
    OTLP_UNAUTHENTICATED, /* 401 / UNAUTHENTICATED */
    OTLP_UNIMPLEMENTED,   /* 404 / UNIMPLEMENTED */
    OTLP_UNAVAILABLE,     /* nothing stored, try again: 503 / UNAVAILABLE */
    OTLP_OVERLOADED,      /* over --memory-limit, nothing stored, try again: 503 / RESOURCE_EXHAUSTED
                             with RetryInfo (retryable per the OTLP specification) */
} otlp_status;

/* One decoded export. The receiver owns it (and its arena) until the sink's done callback. */
typedef struct otlp_export {
    otlp_signal signal;
    otlp_transport transport;
    tr_arena *arena;
    otlp_metrics_req *metrics; /* set when signal == OTLP_METRICS */
    otlp_traces_req *traces;   /* set when signal == OTLP_TRACES */
    uint64_t items;            /* data points (metrics) or spans (traces) in the request */
} otlp_export;

typedef struct otlp_result {
    otlp_status status;
    uint64_t rejected; /* points or spans not stored (OTLP partial_success) */
    char message[256]; /* why, when status != OK or rejected > 0 */
} otlp_result;

typedef void (*otlp_done_fn)(void *cookie, const otlp_result *res);

/* A place exports go. submit() must call done(cookie, result) exactly once, on the event-loop
 * thread, either before it returns or later (a store that writes on its own thread). `ex`
 * stays valid until done is called and must not be touched afterwards. Acknowledging
 * (OTLP_OK) means the data is durable. */
typedef struct otlp_sink {
    void *ctx;
    void (*submit)(void *ctx, const otlp_export *ex, otlp_done_fn done, void *cookie);
} otlp_sink;

typedef struct otlp_config {
    size_t max_message_bytes;         /* decoded (decompressed) size limit, default 4 MiB */
    const char *ingest_token;         /* NULL: no auth on OTLP */
    const struct tr_credstore *creds; /* set: its tokens (reloaded) decide, not ingest_token */
    otlp_sink metrics, traces;        /* a sink with submit == NULL counts and acknowledges */
    /* OTLP forwarding: called on the loop with each decoded metrics or traces export as
     * protobuf (the decompressed body; JSON re-encoded), before its sink; a non-zero return
     * answers UNAVAILABLE (retry). NULL: no forwarding. */
    int (*forward)(void *ctx, otlp_signal sig, uint64_t items, const uint8_t *pb, size_t len);
    void *forward_ctx;
} otlp_config;

typedef struct otlp_receiver otlp_receiver;

/* Creates the receiver core shared by both transports; registers its self-metrics.
 * Returns NULL on OOM. Free with otlp_receiver_free() after the transports are gone. */
otlp_receiver *otlp_receiver_new(const otlp_config *cfg);
void otlp_receiver_free(otlp_receiver *r);
const otlp_config *otlp_receiver_config(const otlp_receiver *r);

/* Exports submitted and not yet completed (for graceful shutdown). */
unsigned otlp_receiver_inflight(const otlp_receiver *r);

/* Processes one request body as a transport received it. `body` is only read during the
 * call. `gzip` says the body is gzip-compressed. Decodes, validates, submits to the sink,
 * and calls done(cookie, result) exactly once (maybe before returning). Counts requests,
 * errors, items, bytes and duration in /metrics. On OTLP_OK the result's `rejected` and
 * `message` fill partial_success. */
void otlp_receiver_process(otlp_receiver *r, otlp_signal sig, otlp_transport tr, const uint8_t *body,
                           size_t len, int gzip, otlp_done_fn done, void *cookie);

/* Counts a request answered without processing (auth failure, unknown method, too large
 * before decoding). */
void otlp_receiver_count_error(otlp_receiver *r, otlp_signal sig, otlp_transport tr, otlp_status st,
                               size_t bytes);

/* Checks an `Authorization` header value against the ingest token in constant time;
 * returns 1 when allowed (also when no token is configured). */
int otlp_receiver_authorized(const otlp_receiver *r, const char *authorization);

/* ---- gRPC transport (grpc.c): HTTP/2 cleartext with nghttp2 on libevent ---- */
typedef struct otlp_grpc otlp_grpc;

/* Listens on `fd` (bound, listening, non-blocking). Returns NULL on failure. */
otlp_grpc *otlp_grpc_new(struct event_base *base, otlp_receiver *r, int fd);
/* Stops accepting; in-flight streams finish. */
void otlp_grpc_stop_accepting(otlp_grpc *g);
/* Serves TLS (tls/tls.h, ALPN h2) on the connections accepted from now on. */
struct tr_tls_server;
void otlp_grpc_set_tls(otlp_grpc *g, struct tr_tls_server *tls);
/* Open connections (for /metrics and shutdown). */
unsigned otlp_grpc_connections(const otlp_grpc *g);
/* Connection caps (0: none): open connections in total and from one client address; over
 * either (the per-address cap is checked first) a new connection is closed at accept and
 * counted. The defaults until called: 1024 in total, none per address. */
void otlp_grpc_set_limits(otlp_grpc *g, unsigned max_total, unsigned max_per_addr);
/* Closes every connection and frees. */
void otlp_grpc_free(otlp_grpc *g);

#endif
