/* Test helpers for the trace store: building OTLP requests from protobuf-c structs in an
 * arena, opening a store in a fresh directory, and ingesting synchronously. */
#ifndef TEST_TRACES_HELPERS_H
#define TEST_TRACES_HELPERS_H

#include <stdint.h>

#include "traces/traces.h"
#include "util/arena.h"

typedef Opentelemetry__Proto__Common__V1__KeyValue T_KV;
typedef Opentelemetry__Proto__Trace__V1__ResourceSpans T_RS;
typedef Opentelemetry__Proto__Trace__V1__ScopeSpans T_SS;

T_KV *t_str(tr_arena *a, const char *k, const char *v);
T_KV *t_int(tr_arena *a, const char *k, int64_t v);
T_KV *t_bool(tr_arena *a, const char *k, int v);
T_KV *t_dbl(tr_arena *a, const char *k, double v);
T_KV *t_bytes(tr_arena *a, const char *k, const uint8_t *p, size_t n);
T_KV *t_strarr(tr_arena *a, const char *k, const char *v1, const char *v2);

/* A trace id whose 16 bytes are all `b` except the last one, `last`. */
void t_tid(uint8_t id[16], uint8_t b, uint8_t last);
/* A span: ids copied into the arena; parent may be NULL. Times in ns. */
traces_pb_span *t_span(tr_arena *a, const uint8_t tid[16], uint64_t sid, uint64_t parent, const char *name,
                       int kind, uint64_t start_ns, uint64_t dur_ns);
void t_attrs(tr_arena *a, traces_pb_span *s, int n, ...);                                  /* T_KV* … */
void t_event(tr_arena *a, traces_pb_span *s, const char *name, uint64_t t_ns, int n, ...); /* T_KV* … */
void t_link(tr_arena *a, traces_pb_span *s, const uint8_t tid[16], uint64_t sid, int n, ...);
void t_status(tr_arena *a, traces_pb_span *s, int code, const char *msg);

/* A ResourceSpans with service.name (NULL: no attributes at all) and extra attributes. */
T_RS *t_rs(tr_arena *a, const char *service, int n, ...); /* T_KV* … */
/* Adds a scope with spans to rs. */
void t_scope(tr_arena *a, T_RS *rs, const char *name, const char *version, int n, ...); /* span* … */
traces_request *t_req(tr_arena *a, int n, ...);                                         /* T_RS* … */

/* Opens a store in a new temp dir (path in dir, 256 bytes) with the given limits. */
traces_store *t_open(char *dir, const traces_config *over);
/* Submits and waits for the acknowledgement; returns status, sets *rejected and msg. */
int t_ingest(traces_store *s, const traces_request *req, uint64_t *rejected, char *msg, size_t msglen);
uint64_t t_now_ns(void);

#endif
