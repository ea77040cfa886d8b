/* Jaeger query API internals shared by jaeger.c, jaeger_v3.c and their unit tests: the
 * parameter parsers (with jaeger-query's error texts) and the renderers of stored spans as
 * Jaeger JSON (legacy /api) and as OTLP JSON (/api/v3). */
#ifndef TR_HTTP_JAEGER_H
#define TR_HTTP_JAEGER_H

#include <stddef.h>
#include <stdint.h>

#include "traces/traces.h"
#include "util/buf.h"

/* Go's strconv.ParseInt(s, 10, bits): returns 0, or -1 with Go's error text in err. */
int tr_jaeger_parse_int(const char *s, int bits, int64_t *out, char *err, size_t errlen);
/* Go's time.ParseDuration: "35ms", "1.5s", "1h30m", "-2us", "0". Returns 0 and
 * nanoseconds, or -1 with Go's error text. */
int tr_jaeger_parse_duration(const char *s, int64_t *ns, char *err, size_t errlen);
/* A Jaeger trace id: 1–32 hex digits (leading zeros optional). Returns 0 with the 16-byte
 * big-endian id, or -1 with Jaeger's error text. */
int tr_jaeger_parse_trace_id(const char *s, uint8_t id[16], char *err, size_t errlen);
/* Jaeger v2.20's second form of a trace id in a path: base64 (standard or URL alphabet,
 * padding optional, at most 24 characters) of 8 or 16 bytes. Returns 0 or -1. */
int tr_jaeger_parse_trace_id_b64(const char *s, uint8_t id[16]);
/* Go's strconv.ParseBool. Returns 0 or -1 with Go's error text. */
int tr_jaeger_parse_bool(const char *s, int *out, char *err, size_t errlen);

/* Formats a trace id as the legacy API does: 16 hex digits when the high half is zero,
 * else 32. out needs 33 bytes. */
void tr_jaeger_format_trace_id(const uint8_t id[16], char *out);

/* ---- query-time adjusters (jaeger_adjust.c), skipped with raw=true ---- */

#define TR_JAEGER_NSDK 5
/* telemetry.sdk.{language,name,version}, telemetry.distro.{name,version}: moved from span
 * attributes to the resource. */
extern const char *const tr_jaeger_sdk_keys[TR_JAEGER_NSDK];

typedef struct tr_jaeger_span_adj {
    int64_t delta_ns;   /* clock-skew shift applied to the span and its events */
    unsigned sdk_moved; /* bit k: tr_jaeger_sdk_keys[k] left the span's attributes */
    char **warn;        /* the span's warnings, in the order Jaeger's adjusters add them */
    size_t nwarn;
} tr_jaeger_span_adj;

typedef struct tr_jaeger_res_extra {
    const traces_pb_resource *res;
    const Opentelemetry__Proto__Common__V1__KeyValue *kv[TR_JAEGER_NSDK]; /* moved into it */
    size_t n;
} tr_jaeger_res_extra;

typedef struct tr_jaeger_adj {
    tr_jaeger_span_adj *sp; /* one per span of the trace */
    size_t n;
    tr_jaeger_res_extra *rx;
    size_t nrx;
} tr_jaeger_adj;

/* Computes the adjustments of trace t. Clock skew: a child on another host (resource host.id,
 * host.ip or host.name) that does not fit in its parent is shifted when the shift is at most
 * max_skew_ns, else warned about ("clock skew adjustment disabled; …" when max_skew_ns is 0,
 * jaeger-query's default). Returns 0, or -1 when out of memory. Free with tr_jaeger_adj_free. */
int tr_jaeger_adjust(const traces_trace *t, int64_t max_skew_ns, tr_jaeger_adj *a);
void tr_jaeger_adj_free(tr_jaeger_adj *a);
/* The attributes spans moved into `res`, or NULL. */
const tr_jaeger_res_extra *tr_jaeger_adj_extra(const tr_jaeger_adj *a, const traces_pb_resource *res);
/* Go's time.Duration.String() of ns nanoseconds ("35ms", "-1.5s", "1m30s", "0s"). */
void tr_go_duration(int64_t ns, char *out, size_t n);

/* One trace in the legacy Jaeger JSON model ({"traceID","spans","processes","warnings"}),
 * with the adjustments of `adj` (NULL: raw, as stored: no sorting, no IP rewriting, events in
 * storage order, empty links kept). */
void tr_jaeger_render_trace_adj(tr_json *j, const traces_trace *t, const tr_jaeger_adj *adj);
/* tr_jaeger_render_trace_adj with the default adjustments (clock skew never applied). */
void tr_jaeger_render_trace(tr_json *j, const traces_trace *t);
/* The v3 body {"result":{"resourceSpans":[…]}} in OTLP JSON for every trace of `res`, with
 * adjs[i] the adjustments of traces[i] as Jaeger v2's query service applies them (attributes,
 * events and link attributes sorted, IPs dotted, library attributes moved to the resource,
 * clock skew, empty links removed, warnings in the span attribute "@jaeger@warnings"); adjs
 * NULL: raw, as stored. */
void tr_jaeger_render_v3_traces(tr_json *j, const traces_trace *const *traces, size_t n,
                                const tr_jaeger_adj *adjs);
/* Attributes sorted by key (a stable sort; NULL entries dropped, the array NULL-terminated when
 * shorter), as Jaeger's sort adjuster orders them. Returns NULL when out of memory; free(). */
Opentelemetry__Proto__Common__V1__KeyValue **
tr_jaeger_sorted_kvs(Opentelemetry__Proto__Common__V1__KeyValue **kvs, size_t n);
/* Jaeger's IP adjuster: 1 with out set to the dotted form when kv is an `ip` or `peer.ipv4`
 * attribute holding a number (the address as a big-endian uint32). */
int tr_jaeger_ip_attr(const Opentelemetry__Proto__Common__V1__KeyValue *kv, char out[16]);
/* 1 when kv is one of the library attributes whose bit is set in sdk_moved. */
int tr_jaeger_sdk_skipped(const Opentelemetry__Proto__Common__V1__KeyValue *kv, unsigned sdk_moved);
/* The /api/v3/trace-summaries body {"summaries":[…]}: per trace its root (the parentless span
 * that starts first), time bounds, span, error and orphan counts, and per-service counts
 * sorted by name; zero values left out as protobuf JSON does. Returns -1 when out of memory. */
int tr_jaeger_render_v3_summaries(tr_json *j, const traces_trace *const *traces, size_t n);

#endif
