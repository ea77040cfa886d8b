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
/* Go's strconv.ParseBool. Returns 0 or -1 with Go's error text. */
int tr_jaeger_parse_bool(const char *s, int *out, char *err, size_t errlen);

/* Formats a trace id as the legacy API does: 16 hex digits when the high half is zero,
 * else 32. out needs 33 bytes. */
void tr_jaeger_format_trace_id(const uint8_t id[16], char *out);

/* One trace in the legacy Jaeger JSON model ({"traceID","spans","processes","warnings"}). */
void tr_jaeger_render_trace(tr_json *j, const traces_trace *t);
/* The v3 body {"result":{"resourceSpans":[…]}} in OTLP JSON for every trace of `res`. */
void tr_jaeger_render_v3_traces(tr_json *j, const traces_trace *const *traces, size_t n);
/* The /api/v3/trace-summaries body {"summaries":[…]}: per trace its root (the parentless span
 * that starts first), time bounds, span, error and orphan counts, and per-service counts
 * sorted by name; zero values left out as protobuf JSON does. Returns -1 when out of memory. */
int tr_jaeger_render_v3_summaries(tr_json *j, const traces_trace *const *traces, size_t n);

#endif
