/* The Jaeger API's parameter parsers and its renderings of stored spans: the legacy Jaeger
 * JSON model and the v3 OTLP JSON, checked field by field against what jaeger-query emits. */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>

#include "../traces/helpers.h"
#include "http/jaeger.h"
#include "util/clock.h"

#define MS 1000000ULL

static tr_arena *A;
static void setup(void) { A = tr_arena_new(0); }
static void teardown(void) { tr_arena_free(A); }
TestSuite(http_jaeger, .init = setup, .fini = teardown);

Test(http_jaeger, durations_like_go) {
    int64_t ns;
    char err[200];
    cr_assert_eq(tr_jaeger_parse_duration("35ms", &ns, err, sizeof err), 0);
    cr_assert_eq(ns, 35 * 1000000LL);
    cr_assert_eq(tr_jaeger_parse_duration("1.5s", &ns, err, sizeof err), 0);
    cr_assert_eq(ns, 1500000000LL);
    cr_assert_eq(tr_jaeger_parse_duration("1h30m", &ns, err, sizeof err), 0);
    cr_assert_eq(ns, 5400LL * 1000000000LL);
    cr_assert_eq(tr_jaeger_parse_duration("100us", &ns, err, sizeof err), 0);
    cr_assert_eq(ns, 100000);
    cr_assert_eq(tr_jaeger_parse_duration("3\xc2\xb5s", &ns, err, sizeof err), 0);
    cr_assert_eq(ns, 3000);
    cr_assert_eq(tr_jaeger_parse_duration("0", &ns, err, sizeof err), 0);
    cr_assert_eq(ns, 0);
    cr_assert_eq(tr_jaeger_parse_duration("1d", &ns, err, sizeof err), -1);
    cr_assert_str_eq(err, "time: unknown unit \"d\" in duration \"1d\"");
    cr_assert_eq(tr_jaeger_parse_duration("10", &ns, err, sizeof err), -1);
    cr_assert_str_eq(err, "time: missing unit in duration \"10\"");
    cr_assert_eq(tr_jaeger_parse_duration("x", &ns, err, sizeof err), -1);
    cr_assert_str_eq(err, "time: invalid duration \"x\"");
    cr_assert_eq(tr_jaeger_parse_duration("", &ns, err, sizeof err), -1);
}

Test(http_jaeger, ints_bools_ids_and_times) {
    int64_t v;
    char err[200];
    cr_assert_eq(tr_jaeger_parse_int("-12", 64, &v, err, sizeof err), 0);
    cr_assert_eq(v, -12);
    cr_assert_eq(tr_jaeger_parse_int("abc", 64, &v, err, sizeof err), -1);
    cr_assert_str_eq(err, "strconv.ParseInt: parsing \"abc\": invalid syntax");
    cr_assert_eq(tr_jaeger_parse_int("3000000000", 32, &v, err, sizeof err), -1);
    cr_assert_str_eq(err, "strconv.ParseInt: parsing \"3000000000\": value out of range");
    int b;
    cr_assert_eq(tr_jaeger_parse_bool("True", &b, err, sizeof err), 0);
    cr_assert_eq(b, 1);
    cr_assert_eq(tr_jaeger_parse_bool("yes", &b, err, sizeof err), -1);

    uint8_t id[16], want[16] = {0};
    want[15] = 1;
    cr_assert_eq(tr_jaeger_parse_trace_id("1", id, err, sizeof err), 0);
    cr_assert_eq(memcmp(id, want, 16), 0);
    cr_assert_eq(tr_jaeger_parse_trace_id("00000000000000000000000000000001", id, err, sizeof err), 0);
    cr_assert_eq(memcmp(id, want, 16), 0);
    cr_assert_eq(tr_jaeger_parse_trace_id("5B8EFFF798038103D269B633813FC60C", id, err, sizeof err), 0);
    cr_assert_eq(id[0], 0x5b);
    cr_assert_eq(id[15], 0x0c);
    cr_assert_eq(tr_jaeger_parse_trace_id("xyz", id, err, sizeof err), -1);
    cr_assert_str_eq(err, "strconv.ParseUint: parsing \"xyz\": invalid syntax");
    cr_assert_eq(tr_jaeger_parse_trace_id("000000000000000000000000000000001", id, err, sizeof err), -1);
    cr_assert(strstr(err, "cannot be longer than 32 hex characters"));

    char out[33];
    tr_jaeger_format_trace_id(want, out);
    cr_assert_str_eq(out, "0000000000000001");
    want[0] = 0xab;
    tr_jaeger_format_trace_id(want, out);
    cr_assert_str_eq(out, "ab000000000000000000000000000001");

    int64_t ns;
    cr_assert_eq(tr_rfc3339_ns("2024-06-10T12:00:00Z", &ns), 0);
    cr_assert_eq(ns, 1718020800LL * 1000000000LL);
    cr_assert_eq(tr_rfc3339_ns("2024-06-10T14:00:00.123456789+02:00", &ns), 0);
    cr_assert_eq(ns, 1718020800LL * 1000000000LL + 123456789);
    cr_assert_eq(tr_rfc3339_ns("2024-06-10 12:00:00", &ns), -1);
    cr_assert_eq(tr_rfc3339_ns("x", &ns), -1);
}

/* The example of API.md §3.8, built as OTLP and rendered. */
static traces_trace example(uint8_t tid[16]) {
    static const uint8_t id[16] = {0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03,
                                   0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c};
    memcpy(tid, id, 16);
    uint64_t t0 = 1718000000000000000ULL;
    traces_pb_span *root = t_span(A, tid, 0xeee19b7ec3c1b174ULL, 0, "GET /orders/{id}", 2, t0, 5 * MS);
    t_attrs(A, root, 2, t_int(A, "http.response.status_code", 504), t_str(A, "http.request.method", "GET"));
    t_status(A, root, 2, "upstream timed out");
    traces_pb_span *child =
        t_span(A, tid, 0xa1b2c3d4e5f60718ULL, 0xeee19b7ec3c1b174ULL, "SELECT orders", 3, t0 + MS, 2500000);
    t_attrs(A, child, 1, t_str(A, "db.system", "postgresql"));
    t_event(A, child, "retry", t0 + 2 * MS, 1, t_int(A, "attempt", 2));
    T_RS *fe = t_rs(A, "frontend", 1, t_str(A, "host.name", "web-1"));
    t_scope(A, fe, "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp", "0.52.0", 1, root);
    T_RS * or = t_rs(A, "orders", 1, t_str(A, "host.name", "db-1"));
    t_scope(A, or, "database/sql", "", 1, child);
    traces_trace t = {.n = 2};
    memcpy(t.id, tid, 16);
    t.spans = tr_arena_alloc(A, 2 * sizeof *t.spans);
    t.spans[0] = (traces_span){root, fe->resource, fe->scope_spans[0]->scope};
    t.spans[1] = (traces_span){child, or->resource, or->scope_spans[0]->scope};
    return t;
}

static cJSON *render(const traces_trace *t) {
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_json j;
    tr_json_init(&j, &b);
    tr_jaeger_render_trace(&j, t);
    cJSON *o = cJSON_Parse(b.data);
    cr_assert(o, "invalid JSON: %s", b.data);
    tr_buf_free(&b);
    return o;
}

static void expect_kv(cJSON *kv, const char *key, const char *type) {
    cr_assert_str_eq(cJSON_GetObjectItem(kv, "key")->valuestring, key);
    cr_assert_str_eq(cJSON_GetObjectItem(kv, "type")->valuestring, type);
    cr_assert(cJSON_GetObjectItem(kv, "value"));
    cr_assert_eq(cJSON_GetArraySize(kv), 3, "a KeyValue has exactly key, type, value");
}

static const char *kv_s(cJSON *kv) { return cJSON_GetObjectItem(kv, "value")->valuestring; }
static double kv_n(cJSON *kv) { return cJSON_GetObjectItem(kv, "value")->valuedouble; }

Test(http_jaeger, legacy_model_field_by_field) {
    uint8_t tid[16];
    traces_trace t = example(tid);
    cJSON *o = render(&t);
    /* trace: exactly traceID, spans, processes, warnings */
    cr_assert_eq(cJSON_GetArraySize(o), 4);
    cr_assert_str_eq(cJSON_GetObjectItem(o, "traceID")->valuestring, "5b8efff798038103d269b633813fc60c");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "warnings")));
    cJSON *spans = cJSON_GetObjectItem(o, "spans");
    cr_assert_eq(cJSON_GetArraySize(spans), 2);

    cJSON *s0 = cJSON_GetArrayItem(spans, 0);
    const char *keys[] = {"traceID",  "spanID", "operationName", "references", "startTime",
                          "duration", "tags",   "logs",          "processID",  "warnings"};
    cr_assert_eq(cJSON_GetArraySize(s0), 10, "no flags, no parentSpanID");
    int i = 0;
    for (cJSON *c = s0->child; c; c = c->next, i++)
        cr_assert_str_eq(c->string, keys[i], "key order");
    cr_assert_str_eq(cJSON_GetObjectItem(s0, "spanID")->valuestring, "eee19b7ec3c1b174");
    cr_assert_str_eq(cJSON_GetObjectItem(s0, "operationName")->valuestring, "GET /orders/{id}");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(s0, "references")), 0);
    cr_assert_eq(cJSON_GetObjectItem(s0, "startTime")->valuedouble, 1718000000000000.0);
    cr_assert_eq(cJSON_GetObjectItem(s0, "duration")->valuedouble, 5000);
    cr_assert_str_eq(cJSON_GetObjectItem(s0, "processID")->valuestring, "p1");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(s0, "warnings")));
    cJSON *tags = cJSON_GetObjectItem(s0, "tags");
    cr_assert_eq(cJSON_GetArraySize(tags), 8);
    expect_kv(cJSON_GetArrayItem(tags, 0), "otel.scope.name", "string");
    cr_assert_str_eq(kv_s(cJSON_GetArrayItem(tags, 0)),
                     "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp");
    expect_kv(cJSON_GetArrayItem(tags, 1), "otel.scope.version", "string");
    expect_kv(cJSON_GetArrayItem(tags, 2), "http.request.method", "string"); /* attributes sorted by key */
    expect_kv(cJSON_GetArrayItem(tags, 3), "http.response.status_code", "int64");
    cr_assert_eq(kv_n(cJSON_GetArrayItem(tags, 3)), 504);
    expect_kv(cJSON_GetArrayItem(tags, 4), "span.kind", "string");
    cr_assert_str_eq(kv_s(cJSON_GetArrayItem(tags, 4)), "server");
    expect_kv(cJSON_GetArrayItem(tags, 5), "otel.status_code", "string");
    cr_assert_str_eq(kv_s(cJSON_GetArrayItem(tags, 5)), "ERROR");
    expect_kv(cJSON_GetArrayItem(tags, 6), "error", "bool");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(tags, 6), "value")));
    expect_kv(cJSON_GetArrayItem(tags, 7), "otel.status_description", "string");
    cr_assert_str_eq(kv_s(cJSON_GetArrayItem(tags, 7)), "upstream timed out");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(s0, "logs")), 0);

    cJSON *s1 = cJSON_GetArrayItem(spans, 1);
    cJSON *refs = cJSON_GetObjectItem(s1, "references");
    cr_assert_eq(cJSON_GetArraySize(refs), 1);
    cJSON *r0 = cJSON_GetArrayItem(refs, 0);
    cr_assert_eq(cJSON_GetArraySize(r0), 3);
    cr_assert_str_eq(cJSON_GetObjectItem(r0, "refType")->valuestring, "CHILD_OF");
    cr_assert_str_eq(cJSON_GetObjectItem(r0, "traceID")->valuestring, "5b8efff798038103d269b633813fc60c");
    cr_assert_str_eq(cJSON_GetObjectItem(r0, "spanID")->valuestring, "eee19b7ec3c1b174");
    cr_assert_eq(cJSON_GetObjectItem(s1, "startTime")->valuedouble, 1718000000001000.0);
    cr_assert_eq(cJSON_GetObjectItem(s1, "duration")->valuedouble, 2500);
    cJSON *t1 = cJSON_GetObjectItem(s1, "tags");
    cr_assert_eq(cJSON_GetArraySize(t1), 3, "no otel.scope.version when empty");
    expect_kv(cJSON_GetArrayItem(t1, 0), "otel.scope.name", "string");
    expect_kv(cJSON_GetArrayItem(t1, 1), "db.system", "string");
    expect_kv(cJSON_GetArrayItem(t1, 2), "span.kind", "string");
    cr_assert_str_eq(kv_s(cJSON_GetArrayItem(t1, 2)), "client");
    cJSON *logs = cJSON_GetObjectItem(s1, "logs");
    cr_assert_eq(cJSON_GetArraySize(logs), 1);
    cJSON *l0 = cJSON_GetArrayItem(logs, 0);
    cr_assert_eq(cJSON_GetArraySize(l0), 2);
    cr_assert_eq(cJSON_GetObjectItem(l0, "timestamp")->valuedouble, 1718000000002000.0);
    cJSON *fields = cJSON_GetObjectItem(l0, "fields");
    cr_assert_eq(cJSON_GetArraySize(fields), 2);
    expect_kv(cJSON_GetArrayItem(fields, 0), "event", "string");
    cr_assert_str_eq(kv_s(cJSON_GetArrayItem(fields, 0)), "retry");
    expect_kv(cJSON_GetArrayItem(fields, 1), "attempt", "int64");
    cr_assert_eq(kv_n(cJSON_GetArrayItem(fields, 1)), 2);
    cr_assert_str_eq(cJSON_GetObjectItem(s1, "processID")->valuestring, "p2");

    cJSON *procs = cJSON_GetObjectItem(o, "processes");
    cr_assert_eq(cJSON_GetArraySize(procs), 2);
    cJSON *p1 = cJSON_GetObjectItem(procs, "p1"), *p2 = cJSON_GetObjectItem(procs, "p2");
    cr_assert_eq(cJSON_GetArraySize(p1), 2);
    cr_assert_str_eq(cJSON_GetObjectItem(p1, "serviceName")->valuestring, "frontend");
    cJSON *pt = cJSON_GetObjectItem(p1, "tags");
    cr_assert_eq(cJSON_GetArraySize(pt), 1, "service.name is not a process tag");
    expect_kv(cJSON_GetArrayItem(pt, 0), "host.name", "string");
    cr_assert_str_eq(kv_s(cJSON_GetArrayItem(pt, 0)), "web-1");
    cr_assert_str_eq(cJSON_GetObjectItem(p2, "serviceName")->valuestring, "orders");
    cJSON_Delete(o);
}

Test(http_jaeger, types_links_ids_and_shared_processes) {
    uint8_t tid[16], other[16] = {0}, zero[16] = {0};
    memset(tid, 0, 16);
    tid[15] = 0x2a; /* a 64-bit id: printed with 16 digits */
    other[0] = 0x77;
    other[15] = 1;
    uint8_t raw[] = {1, 2, 3};
    traces_pb_span *sp = t_span(A, tid, 0x10, 0x09, "op", 4, 1000000123456ULL, 1999);
    t_attrs(A, sp, 6, t_dbl(A, "f", 0.25), t_bool(A, "b", 0), t_int(A, "big", 9007199254740993LL),
            t_bytes(A, "raw", raw, 3), t_strarr(A, "arr", "x", "y"), t_str(A, "a", "first"));
    sp->trace_state = "k=v";
    sp->dropped_events_count = 3;
    t_link(A, sp, other, 0x55, 0);
    t_link(A, sp, other, 0x56, 1, t_str(A, "opentracing.ref_type", "child_of"));
    t_link(A, sp, zero, 0x57, 0);
    traces_pb_span *sp2 = t_span(A, tid, 0x11, 0x10, "op2", 0, 1000000200000ULL, 0);
    t_event(A, sp2, "late", 1000000300000ULL, 0);
    t_event(A, sp2, "early", 1000000250000ULL, 1, t_str(A, "event", "explicit"));
    T_RS *r1 = t_rs(A, "svc", 1, t_str(A, "host.name", "h"));
    T_RS *r2 = t_rs(A, "svc", 1, t_str(A, "host.name", "h")); /* equal content: same key */
    t_scope(A, r1, "", "", 1, sp);
    t_scope(A, r2, "", "", 1, sp2);
    traces_trace t = {.n = 2};
    memcpy(t.id, tid, 16);
    t.spans = tr_arena_alloc(A, 2 * sizeof *t.spans);
    t.spans[0] = (traces_span){sp, r1->resource, r1->scope_spans[0]->scope};
    t.spans[1] = (traces_span){sp2, r2->resource, r2->scope_spans[0]->scope};
    cJSON *o = render(&t);
    cr_assert_str_eq(cJSON_GetObjectItem(o, "traceID")->valuestring, "000000000000002a");
    cJSON *s0 = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "spans"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(s0, "traceID")->valuestring, "000000000000002a");
    cr_assert_str_eq(cJSON_GetObjectItem(s0, "spanID")->valuestring, "0000000000000010");
    cr_assert_eq(cJSON_GetObjectItem(s0, "startTime")->valuedouble, 1000000123.0, "µs, truncated");
    cr_assert_eq(cJSON_GetObjectItem(s0, "duration")->valuedouble, 1.0);
    cJSON *refs = cJSON_GetObjectItem(s0, "references");
    cr_assert_eq(cJSON_GetArraySize(refs), 3, "parent + 2 links (the zero-id link is removed)");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(refs, 0), "refType")->valuestring, "CHILD_OF");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(refs, 0), "spanID")->valuestring,
                     "0000000000000009");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(refs, 1), "refType")->valuestring,
                     "FOLLOWS_FROM");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(refs, 1), "traceID")->valuestring,
                     "77000000000000000000000000000001");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(refs, 2), "refType")->valuestring, "CHILD_OF");
    cJSON *w = cJSON_GetObjectItem(s0, "warnings");
    cr_assert(cJSON_IsArray(w));
    cr_assert_eq(cJSON_GetArraySize(w), 2);
    cr_assert_str_eq(cJSON_GetArrayItem(w, 0)->valuestring,
                     "parent span ID=0000000000000009 is not in the trace; skipping clock skew adjustment");
    cr_assert_str_eq(cJSON_GetArrayItem(w, 1)->valuestring, "Invalid span link removed");
    cJSON *tags = cJSON_GetObjectItem(s0, "tags");
    /* sorted: a, arr, b, big, f, raw; then span.kind, w3c.tracestate, dropped count */
    const char *want[][2] = {{"a", "string"},
                             {"arr", "string"},
                             {"b", "bool"},
                             {"big", "int64"},
                             {"f", "float64"},
                             {"raw", "binary"},
                             {"span.kind", "string"},
                             {"w3c.tracestate", "string"},
                             {"otel.dropped_events_count", "int64"}};
    cr_assert_eq(cJSON_GetArraySize(tags), 9);
    for (int i = 0; i < 9; i++)
        expect_kv(cJSON_GetArrayItem(tags, i), want[i][0], want[i][1]);
    cr_assert_str_eq(kv_s(cJSON_GetArrayItem(tags, 1)), "[\"x\",\"y\"]");
    cr_assert(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetArrayItem(tags, 2), "value")));
    cr_assert_str_eq(kv_s(cJSON_GetArrayItem(tags, 3)), "9007199254740993", "beyond 2^53: a string");
    cr_assert_eq(kv_n(cJSON_GetArrayItem(tags, 4)), 0.25);
    cr_assert_str_eq(kv_s(cJSON_GetArrayItem(tags, 5)), "AQID");
    cr_assert_str_eq(kv_s(cJSON_GetArrayItem(tags, 6)), "producer");
    cr_assert_str_eq(kv_s(cJSON_GetArrayItem(tags, 7)), "k=v");

    cJSON *s1 = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "spans"), 1);
    cr_assert_str_eq(cJSON_GetObjectItem(s1, "processID")->valuestring, "p1", "equal resources share a key");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(s1, "tags")), 0, "unspecified kind: no span.kind");
    cJSON *logs = cJSON_GetObjectItem(s1, "logs");
    cr_assert_eq(cJSON_GetArraySize(logs), 2);
    cJSON *f0 = cJSON_GetObjectItem(cJSON_GetArrayItem(logs, 0), "fields");
    cr_assert_eq(cJSON_GetArraySize(f0), 1, "an explicit event attribute wins over the name");
    cr_assert_str_eq(kv_s(cJSON_GetArrayItem(f0, 0)), "explicit");
    cJSON *f1 = cJSON_GetObjectItem(cJSON_GetArrayItem(logs, 1), "fields");
    cr_assert_str_eq(kv_s(cJSON_GetArrayItem(f1, 0)), "late");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(o, "processes")), 1);
    cJSON_Delete(o);
}

Test(http_jaeger, v3_otlp_json) {
    uint8_t tid[16];
    traces_trace t = example(tid);
    const traces_trace *tp = &t;
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_json j;
    tr_json_init(&j, &b);
    tr_jaeger_render_v3_traces(&j, &tp, 1, NULL);
    cJSON *o = cJSON_Parse(b.data);
    cr_assert(o, "%s", b.data);
    cJSON *rss = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "result"), "resourceSpans");
    cr_assert_eq(cJSON_GetArraySize(rss), 2);
    cJSON *rs0 = cJSON_GetArrayItem(rss, 0);
    cJSON *rattr = cJSON_GetObjectItem(cJSON_GetObjectItem(rs0, "resource"), "attributes");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(rattr, 0), "key")->valuestring, "service.name");
    cr_assert_str_eq(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(rattr, 0), "value"), "stringValue")
            ->valuestring,
        "frontend");
    cJSON *ss0 = cJSON_GetArrayItem(cJSON_GetObjectItem(rs0, "scopeSpans"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(ss0, "scope"), "version")->valuestring,
                     "0.52.0");
    cJSON *sp = cJSON_GetArrayItem(cJSON_GetObjectItem(ss0, "spans"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(sp, "traceId")->valuestring, "5b8efff798038103d269b633813fc60c");
    cr_assert_str_eq(cJSON_GetObjectItem(sp, "spanId")->valuestring, "eee19b7ec3c1b174");
    cr_assert_null(cJSON_GetObjectItem(sp, "parentSpanId"));
    cr_assert_eq(cJSON_GetObjectItem(sp, "kind")->valueint, 2);
    cr_assert_str_eq(cJSON_GetObjectItem(sp, "startTimeUnixNano")->valuestring, "1718000000000000000");
    cr_assert_str_eq(cJSON_GetObjectItem(sp, "endTimeUnixNano")->valuestring, "1718000000005000000");
    cJSON *a0 = cJSON_GetArrayItem(cJSON_GetObjectItem(sp, "attributes"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(a0, "value"), "intValue")->valuestring, "504");
    cJSON *st = cJSON_GetObjectItem(sp, "status");
    cr_assert_eq(cJSON_GetObjectItem(st, "code")->valueint, 2);
    cr_assert_str_eq(cJSON_GetObjectItem(st, "message")->valuestring, "upstream timed out");
    cJSON *rs1 = cJSON_GetArrayItem(rss, 1);
    cJSON *sp1 = cJSON_GetArrayItem(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(rs1, "scopeSpans"), 0), "spans"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(sp1, "parentSpanId")->valuestring, "eee19b7ec3c1b174");
    cJSON *ev = cJSON_GetArrayItem(cJSON_GetObjectItem(sp1, "events"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(ev, "name")->valuestring, "retry");
    cr_assert_str_eq(cJSON_GetObjectItem(ev, "timeUnixNano")->valuestring, "1718000000002000000");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(sp1, "status")), 0, "unset status is {}");
    cJSON_Delete(o);
    tr_buf_free(&b);
}

/* /api/v3/trace-summaries: root = the parentless span starting first, orphans counted, services
 * sorted by name, zero counts left out. */
Test(http_jaeger, v3_summaries) {
    uint8_t tid[16];
    traces_trace t = example(tid);
    /* a third span whose parent is not in the trace (an orphan), in a service sorting first */
    uint64_t t0 = 1718000000000000000ULL;
    traces_pb_span *orphan = t_span(A, tid, 0x1111ULL, 0x9999ULL, "late", 1, t0 + 9 * MS, MS);
    T_RS *ac = t_rs(A, "accounts", 0);
    t_scope(A, ac, "x", "", 1, orphan);
    traces_span *sp = tr_arena_alloc(A, 3 * sizeof *sp);
    memcpy(sp, t.spans, 2 * sizeof *sp);
    sp[2] = (traces_span){orphan, ac->resource, ac->scope_spans[0]->scope};
    t.spans = sp;
    t.n = 3;
    const traces_trace *tp = &t;
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_json j;
    tr_json_init(&j, &b);
    cr_assert_eq(tr_jaeger_render_v3_summaries(&j, &tp, 1), 0);
    cr_assert_str_eq(
        b.data,
        "{\"summaries\":[{\"traceId\":\"5b8efff798038103d269b633813fc60c\",\"rootServiceName\":\"frontend\","
        "\"rootOperationName\":\"GET /orders/{id}\",\"minStartTimeUnixNano\":\"1718000000000000000\","
        "\"maxEndTimeUnixNano\":\"1718000000010000000\",\"spanCount\":3,\"errorSpanCount\":1,"
        "\"orphanSpanCount\":1,\"services\":[{\"name\":\"accounts\",\"spanCount\":1},"
        "{\"name\":\"frontend\",\"spanCount\":1,\"errorSpanCount\":1},{\"name\":\"orders\",\"spanCount\":1}]}"
        "]}");
    tr_buf_reset(&b);
    tr_json_init(&j, &b);
    cr_assert_eq(tr_jaeger_render_v3_summaries(&j, NULL, 0), 0);
    cr_assert_str_eq(b.data, "{\"summaries\":[]}");
    tr_buf_free(&b);
}

Test(http_jaeger, go_durations) {
    char b[48];
    const struct {
        int64_t ns;
        const char *s;
    } c[] = {
        {0, "0s"},
        {35000000, "35ms"},
        {-45000000, "-45ms"},
        {500000, "500µs"},
        {1500, "1.5µs"},
        {7, "7ns"},
        {4323179750, "4.32317975s"},
        {90000000000LL, "1m30s"},
        {3600000000000LL, "1h0m0s"},
        {1000000000, "1s"},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        tr_go_duration(c[i].ns, b, sizeof b);
        cr_assert_str_eq(b, c[i].s);
    }
}

/* A span per host: id, parent, start and duration in ms. */
static traces_trace skew_trace(int n, const uint64_t (*d)[4], const char *const *hosts) {
    static const uint8_t tid[16] = {1};
    traces_trace t = {.n = (size_t)n};
    t.spans = tr_arena_alloc(A, n * sizeof *t.spans);
    for (int i = 0; i < n; i++) {
        traces_pb_span *sp =
            t_span(A, tid, d[i][0], d[i][1], "op", 2, 1000000000000ULL * 1000 + d[i][2] * MS, d[i][3] * MS);
        T_RS *rs = hosts[i] ? t_rs(A, "svc", 1, t_str(A, "host.name", hosts[i])) : t_rs(A, "svc", 0);
        t_scope(A, rs, "", "", 1, sp);
        t.spans[i] = (traces_span){sp, rs->resource, rs->scope_spans[0]->scope};
    }
    return t;
}

Test(http_jaeger, clock_skew_adjuster) {
    tr_jaeger_adj a;
    /* a child on another host starting before its parent: centred (delta 35ms) */
    const uint64_t d1[][4] = {{1, 0, 10, 100}, {2, 1, 0, 50}};
    const char *h1[] = {"a", "b"};
    traces_trace t = skew_trace(2, d1, h1);
    cr_assert_eq(tr_jaeger_adjust(&t, 0, &a), 0);
    cr_assert_eq(a.sp[1].nwarn, 1);
    cr_assert_str_eq(a.sp[1].warn[0],
                     "clock skew adjustment disabled; not applying calculated delta of 35ms");
    cr_assert_eq(a.sp[1].delta_ns, 0);
    cr_assert_eq(a.sp[0].nwarn, 0);
    tr_jaeger_adj_free(&a);
    cr_assert_eq(tr_jaeger_adjust(&t, 10 * MS, &a), 0);
    cr_assert_str_eq(
        a.sp[1].warn[0],
        "max clock skew adjustment delta of 10ms exceeded; not applying calculated delta of 35ms");
    tr_jaeger_adj_free(&a);
    cr_assert_eq(tr_jaeger_adjust(&t, 1000 * MS, &a), 0);
    cr_assert_eq(a.sp[1].delta_ns, 35 * (int64_t)MS);
    cr_assert_str_eq(a.sp[1].warn[0], "This span's timestamps were adjusted by 35ms");
    tr_jaeger_adj_free(&a);
    /* the same host, or no host: never adjusted */
    const char *h2[] = {"a", "a"}, *h3[] = {NULL, NULL};
    t = skew_trace(2, d1, h2);
    cr_assert_eq(tr_jaeger_adjust(&t, 1000 * MS, &a), 0);
    cr_assert_eq(a.sp[1].nwarn + a.sp[1].delta_ns, 0);
    tr_jaeger_adj_free(&a);
    t = skew_trace(2, d1, h3);
    cr_assert_eq(tr_jaeger_adjust(&t, 1000 * MS, &a), 0);
    cr_assert_eq(a.sp[1].nwarn + a.sp[1].delta_ns, 0);
    tr_jaeger_adj_free(&a);
    /* a shorter child ending after its parent (-25ms); its child on the same host follows, a
     * grandchild on a third host is measured against the shifted parent */
    const uint64_t d4[][4] = {{1, 0, 10, 100}, {2, 1, 50, 70}, {3, 2, 60, 20}, {4, 2, 0, 10}};
    const char *h4[] = {"a", "b", "b", "c"};
    t = skew_trace(4, d4, h4);
    cr_assert_eq(tr_jaeger_adjust(&t, 1000 * MS, &a), 0);
    cr_assert_eq(a.sp[1].delta_ns, -25 * (int64_t)MS);
    cr_assert_eq(a.sp[2].delta_ns, -25 * (int64_t)MS);
    cr_assert_eq(a.sp[3].delta_ns, 55 * (int64_t)MS, "parent now 25..95: 25 + (70-10)/2 = 55");
    tr_jaeger_adj_free(&a);
    /* fits, or longer and starting later: left alone */
    const uint64_t d5[][4] = {{1, 0, 10, 100}, {2, 1, 20, 50}, {3, 1, 20, 150}};
    const char *h5[] = {"a", "b", "c"};
    t = skew_trace(3, d5, h5);
    cr_assert_eq(tr_jaeger_adjust(&t, 1000 * MS, &a), 0);
    cr_assert_eq(a.sp[1].nwarn + a.sp[2].nwarn, 0);
    tr_jaeger_adj_free(&a);
    /* duplicate ids and missing parents are warned about */
    const uint64_t d6[][4] = {{1, 0, 0, 100}, {1, 0, 0, 100}, {5, 99, 0, 1}};
    const char *h6[] = {"a", "a", "a"};
    t = skew_trace(3, d6, h6);
    cr_assert_eq(tr_jaeger_adjust(&t, 0, &a), 0);
    cr_assert_eq(a.sp[0].nwarn, 0);
    cr_assert_str_eq(a.sp[1].warn[0], "duplicate span IDs; skipping clock skew adjustment");
    cr_assert_str_eq(a.sp[2].warn[0],
                     "parent span ID=0000000000000063 is not in the trace; skipping clock skew adjustment");
    tr_jaeger_adj_free(&a);
}

/* telemetry.sdk.* move to the process (a conflicting value stays, warned about), numeric IPs
 * are dotted, and raw=true shows the spans as stored. */
Test(http_jaeger, sdk_ip_and_raw) {
    static const uint8_t tid[16] = {2};
    traces_pb_span *sp = t_span(A, tid, 1, 0, "op", 0, 1000000000000ULL * 1000, MS);
    t_attrs(A, sp, 4, t_str(A, "telemetry.sdk.name", "opentelemetry"),
            t_str(A, "telemetry.sdk.language", "go"), t_int(A, "peer.ipv4", 0x7f000001), t_str(A, "b", "x"));
    T_RS *rs = t_rs(A, "svc", 2, t_str(A, "telemetry.sdk.language", "python"), t_int(A, "ip", 0x0a000002));
    t_scope(A, rs, "", "", 1, sp);
    traces_trace t = {.n = 1};
    memcpy(t.id, tid, 16);
    t.spans = tr_arena_alloc(A, sizeof *t.spans);
    t.spans[0] = (traces_span){sp, rs->resource, rs->scope_spans[0]->scope};
    cJSON *o = render(&t);
    cJSON *s0 = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "spans"), 0);
    cJSON *tags = cJSON_GetObjectItem(s0, "tags");
    cr_assert_eq(cJSON_GetArraySize(tags), 3, "b, peer.ipv4, the conflicting telemetry.sdk.language");
    expect_kv(cJSON_GetArrayItem(tags, 0), "b", "string");
    expect_kv(cJSON_GetArrayItem(tags, 1), "peer.ipv4", "string");
    cr_assert_str_eq(kv_s(cJSON_GetArrayItem(tags, 1)), "127.0.0.1");
    expect_kv(cJSON_GetArrayItem(tags, 2), "telemetry.sdk.language", "string");
    cJSON *w = cJSON_GetObjectItem(s0, "warnings");
    cr_assert_str_eq(cJSON_GetArrayItem(w, 0)->valuestring,
                     "conflicting values between Span and Resource for attribute telemetry.sdk.language");
    cJSON *ptags =
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "processes"), "p1"), "tags");
    cr_assert_eq(cJSON_GetArraySize(ptags), 3);
    expect_kv(cJSON_GetArrayItem(ptags, 0), "ip", "string");
    cr_assert_str_eq(kv_s(cJSON_GetArrayItem(ptags, 0)), "10.0.0.2");
    expect_kv(cJSON_GetArrayItem(ptags, 1), "telemetry.sdk.language", "string");
    expect_kv(cJSON_GetArrayItem(ptags, 2), "telemetry.sdk.name", "string");
    cr_assert_str_eq(kv_s(cJSON_GetArrayItem(ptags, 2)), "opentelemetry");
    cJSON_Delete(o);

    tr_buf b;
    tr_buf_init(&b, 0);
    tr_json j;
    tr_json_init(&j, &b);
    tr_jaeger_render_trace_adj(&j, &t, NULL);
    o = cJSON_Parse(b.data);
    s0 = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "spans"), 0);
    tags = cJSON_GetObjectItem(s0, "tags");
    cr_assert_eq(cJSON_GetArraySize(tags), 4, "raw: every attribute, in stored order");
    expect_kv(cJSON_GetArrayItem(tags, 0), "telemetry.sdk.name", "string");
    expect_kv(cJSON_GetArrayItem(tags, 2), "peer.ipv4", "int64");
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(s0, "warnings")));
    cJSON_Delete(o);
    tr_buf_free(&b);
}

Test(http_jaeger, base64_trace_ids) {
    uint8_t id[16];
    cr_assert_eq(tr_jaeger_parse_trace_id_b64("W47/95gDgQPSabYzgT/GDA==", id), 0);
    cr_assert_eq(id[0], 0x5b);
    cr_assert_eq(id[15], 0x0c);
    cr_assert_eq(tr_jaeger_parse_trace_id_b64("W47_95gDgQPSabYzgT_GDA", id), 0, "URL alphabet, unpadded");
    cr_assert_eq(id[2], 0xff);
    cr_assert_eq(tr_jaeger_parse_trace_id_b64("AAAAAAAAAAE", id), 0, "8 bytes: the low half");
    cr_assert_eq(id[7], 0);
    cr_assert_eq(id[15], 1);
    cr_assert_eq(tr_jaeger_parse_trace_id_b64("AAAA", id), -1, "3 bytes");
    cr_assert_eq(tr_jaeger_parse_trace_id_b64("W47/95gDgQPSabYzgT/GDA==AAAA", id), -1, "too long");
    cr_assert_eq(tr_jaeger_parse_trace_id_b64("", id), -1);
}
