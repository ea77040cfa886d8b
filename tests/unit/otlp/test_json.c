/* Unit tests of the OTLP/JSON decoder (otlp_decode_json): what the OTel JS SDK's HTTP/JSON
 * exporters send (compared with the same data in protobuf), the encoding rules of OTLP/JSON
 * (hex ids, 64-bit integers as strings or numbers, enums as integers or names, base64 bytes,
 * NaN/Infinity, snake_case keys, unknown keys, null), and every kind of bad input. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otlp/otlp_int.h"

static tr_arena *arena;
static char err[256];

static void setup(void) { arena = tr_arena_new(64u << 20); }
static void teardown(void) { tr_arena_free(arena); }

TestSuite(otlp_json, .init = setup, .fini = teardown);

static int decj(otlp_signal sig, const char *json, size_t len, otlp_export *ex) {
    tr_arena_free(arena);
    arena = tr_arena_new(64u << 20);
    memset(ex, 0, sizeof *ex);
    err[0] = 0;
    /* an exact-size copy, so ASan catches any read past the end */
    char *copy = malloc(len ? len : 1);
    memcpy(copy, json, len);
    int rc = otlp_decode_json(sig, (const uint8_t *)copy, len, arena, ex, err, sizeof err);
    free(copy);
    return rc;
}
static int dj(otlp_signal sig, const char *json, otlp_export *ex) {
    return decj(sig, json, strlen(json), ex);
}

static char *read_file(const char *rel, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", TR_SOURCE_DIR, rel);
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return b;
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len) {
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(*len ? *len : 1);
    protobuf_c_message_pack(m, b);
    return b;
}

/* The SDK's JSON and protobuf encodings of the same export decode to the same request:
 * re-encoding both with protobuf-c gives identical bytes. */
static void same_as_protobuf(otlp_signal sig, const char *json_file, const char *pb_file, uint64_t items) {
    size_t jn, pn;
    char *j = read_file(json_file, &jn);
    uint8_t *p = (uint8_t *)read_file(pb_file, &pn);
    tr_arena *a1 = tr_arena_new(0), *a2 = tr_arena_new(0);
    otlp_export e1 = {0}, e2 = {0};
    char er[256] = "";
    cr_assert_eq(otlp_decode_json(sig, (uint8_t *)j, jn, a1, &e1, er, sizeof er), 0, "%s", er);
    cr_assert_eq(otlp_decode_pb(sig, p, pn, a2, &e2, er, sizeof er), 0, "%s", er);
    cr_assert_eq(e1.items, items);
    cr_assert_eq(e2.items, items);
    const ProtobufCMessage *m1 = sig == OTLP_METRICS ? &e1.metrics->base : &e1.traces->base;
    const ProtobufCMessage *m2 = sig == OTLP_METRICS ? &e2.metrics->base : &e2.traces->base;
    size_t n1, n2;
    uint8_t *b1 = pack(m1, &n1), *b2 = pack(m2, &n2);
    cr_assert_eq(n1, n2, "re-encoded sizes differ: %zu vs %zu", n1, n2);
    cr_assert_arr_eq(b1, b2, n1);
    free(b1), free(b2), free(j), free(p);
    tr_arena_free(a1), tr_arena_free(a2);
}

Test(otlp_json, sdk_metrics_match_protobuf) {
    same_as_protobuf(OTLP_METRICS, "tests/fuzz/corpus/fuzz_otlp_json/sdk_metrics.json",
                     "tests/fuzz/corpus/fuzz_otlp_pb/sdk_metrics.pb", 6);
}

Test(otlp_json, sdk_traces_match_protobuf) {
    same_as_protobuf(OTLP_TRACES, "tests/fuzz/corpus/fuzz_otlp_json/sdk_traces.json",
                     "tests/fuzz/corpus/fuzz_otlp_pb/sdk_traces.pb", 3);
}

Test(otlp_json, sdk_traces_content) {
    size_t n;
    char *j = read_file("tests/fuzz/corpus/fuzz_otlp_json/sdk_traces.json", &n);
    otlp_export ex;
    cr_assert_eq(decj(OTLP_TRACES, j, n, &ex), 0, "%s", err);
    free(j);
    Opentelemetry__Proto__Trace__V1__ScopeSpans *ss = ex.traces->resource_spans[0]->scope_spans[0];
    cr_assert_str_eq(ss->scope->name, "corpus-tracer");
    Opentelemetry__Proto__Trace__V1__Span *root = NULL;
    for (size_t i = 0; i < ss->n_spans; i++)
        if (!strcmp(ss->spans[i]->name, "GET /checkout")) root = ss->spans[i];
    cr_assert_not_null(root);
    cr_assert_eq(root->trace_id.len, 16);
    cr_assert_eq(root->span_id.len, 8);
    cr_assert_eq(root->parent_span_id.len, 0);
    cr_assert_eq(root->kind, 2);
    cr_assert_eq(root->start_time_unix_nano, 1700000000123456789ull,
                 "a nanosecond timestamp survives exactly");
    cr_assert_eq(root->status->code, 2);
    cr_assert_str_eq(root->status->message, "payment failed");
    cr_assert_eq(root->flags, 257);
    cr_assert_eq(root->n_events, 1);
    cr_assert_eq(root->events[0]->time_unix_nano, 1700000000223456789ull);
    int seen = 0;
    for (size_t i = 0; i < root->n_attributes; i++) {
        Opentelemetry__Proto__Common__V1__KeyValue *kv = root->attributes[i];
        if (!strcmp(kv->key, "unicode")) {
            cr_assert_str_eq(kv->value->string_value, "grüße ✓");
            seen++;
        }
        if (!strcmp(kv->key, "http.status_code")) {
            cr_assert_eq(kv->value->int_value, 500);
            seen++;
        }
        if (!strcmp(kv->key, "ratio")) {
            cr_assert_eq(kv->value->double_value, 0.25);
            seen++;
        }
        if (!strcmp(kv->key, "ports")) {
            cr_assert_eq(kv->value->array_value->n_values, 2);
            cr_assert_eq(kv->value->array_value->values[1]->int_value, 443);
            seen++;
        }
    }
    cr_assert_eq(seen, 4);
}

/* A hand-written export with every metric type and every spelling OTLP/JSON allows. */
static const char metrics_json[] =
    "{\"resourceMetrics\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{"
    "\"stringValue\":\"api\"}}]},"
    "\"scopeMetrics\":[{\"scope\":{\"name\":\"m\",\"version\":\"1\"},\"metrics\":["
    /* gauge: int as string, int as number, double, NaN */
    "{\"name\":\"g\",\"unit\":\"1\",\"gauge\":{\"dataPoints\":["
    "{\"asInt\":\"-9223372036854775808\",\"timeUnixNano\":\"1700000000000000001\"},"
    "{\"asInt\":9007199254740993,\"timeUnixNano\":1700000000000000002},"
    "{\"asDouble\":2.5e-3,\"startTimeUnixNano\":\"0\"},"
    "{\"asDouble\":\"NaN\"}]}},"
    /* sum: enums as names and numbers, snake_case keys */
    "{\"name\":\"s\",\"sum\":{\"aggregationTemporality\":\"AGGREGATION_TEMPORALITY_DELTA\",\"isMonotonic\":"
    "true,"
    "\"data_points\":[{\"as_double\":\"Infinity\",\"time_unix_nano\":\"18446744073709551615\",\"flags\":1}]}}"
    ","
    "{\"name\":\"s2\",\"sum\":{\"aggregation_temporality\":2,\"is_monotonic\":false,\"dataPoints\":[{"
    "\"asDouble\":\"-Infinity\"}]}},"
    /* histogram: counts as strings and numbers, bounds, optional sum/min/max (min absent via null) */
    "{\"name\":\"h\",\"histogram\":{\"aggregationTemporality\":2,\"dataPoints\":[{\"count\":\"6\",\"sum\":7."
    "5,"
    "\"min\":null,\"max\":3,\"bucketCounts\":[\"1\",2,3],\"explicitBounds\":[0.5,1],"
    "\"exemplars\":[{\"asInt\":\"4\",\"traceId\":\"0102030405060708090A0B0C0D0E0F10\",\"spanId\":"
    "\"a1a2a3a4a5a6a7a8\","
    "\"filteredAttributes\":[{\"key\":\"u\",\"value\":{\"boolValue\":true}}]}]}]}},"
    /* exponential histogram */
    "{\"name\":\"e\",\"exponentialHistogram\":{\"aggregationTemporality\":1,\"dataPoints\":[{\"count\":10,"
    "\"scale\":-3,"
    "\"zeroCount\":\"1\",\"zeroThreshold\":1e-9,\"positive\":{\"offset\":-2,\"bucketCounts\":[\"2\",3,0,4]},"
    "\"negative\":{}}]}},"
    /* summary */
    "{\"name\":\"q\",\"summary\":{\"dataPoints\":[{\"count\":\"100\",\"sum\":12.5,\"quantileValues\":"
    "[{\"quantile\":0.5,\"value\":0.1},{\"quantile\":0.99,\"value\":\"0.9\"}]},{\"count\":1}]}}"
    "]}]}]}";

Test(otlp_json, metrics_every_type_and_spelling) {
    otlp_export ex;
    cr_assert_eq(dj(OTLP_METRICS, metrics_json, &ex), 0, "%s", err);
    cr_assert_eq(ex.items, 4 + 1 + 1 + 1 + 1 + 2);
    Opentelemetry__Proto__Metrics__V1__ResourceMetrics *rm = ex.metrics->resource_metrics[0];
    cr_assert_str_eq(rm->resource->attributes[0]->value->string_value, "api");
    Opentelemetry__Proto__Metrics__V1__Metric **m = rm->scope_metrics[0]->metrics;
    Opentelemetry__Proto__Metrics__V1__NumberDataPoint **g = m[0]->gauge->data_points;
    cr_assert_eq(g[0]->value_case, OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT);
    cr_assert_eq(g[0]->as_int, INT64_MIN);
    cr_assert_eq(g[0]->time_unix_nano, 1700000000000000001ull);
    cr_assert_eq(g[1]->as_int, 9007199254740993ll, "a JSON number above 2^53 is kept exactly");
    cr_assert_eq(g[1]->time_unix_nano, 1700000000000000002ull);
    cr_assert_eq(g[2]->value_case, OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE);
    cr_assert_eq(g[2]->as_double, 0.0025);
    cr_assert(isnan(g[3]->as_double));
    Opentelemetry__Proto__Metrics__V1__Sum *s = m[1]->sum;
    cr_assert_eq(s->aggregation_temporality, 1);
    cr_assert(s->is_monotonic);
    cr_assert(isinf(s->data_points[0]->as_double) && s->data_points[0]->as_double > 0);
    cr_assert_eq(s->data_points[0]->time_unix_nano, UINT64_MAX);
    cr_assert_eq(s->data_points[0]->flags, 1);
    cr_assert_eq(m[2]->sum->aggregation_temporality, 2);
    cr_assert_not(m[2]->sum->is_monotonic);
    cr_assert(isinf(m[2]->sum->data_points[0]->as_double) && m[2]->sum->data_points[0]->as_double < 0);
    Opentelemetry__Proto__Metrics__V1__HistogramDataPoint *h = m[3]->histogram->data_points[0];
    cr_assert_eq(h->count, 6);
    cr_assert_eq(h->_sum_case, OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___SUM_SUM);
    cr_assert_eq(h->sum, 7.5);
    cr_assert_eq(h->_min_case, OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___MIN__NOT_SET,
                 "null is absent");
    cr_assert_eq(h->_max_case, OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___MAX_MAX);
    cr_assert_eq(h->max, 3);
    cr_assert_eq(h->n_bucket_counts, 3);
    cr_assert_eq(h->bucket_counts[0], 1);
    cr_assert_eq(h->bucket_counts[2], 3);
    cr_assert_eq(h->n_explicit_bounds, 2);
    cr_assert_eq(h->explicit_bounds[1], 1.0);
    Opentelemetry__Proto__Metrics__V1__Exemplar *x = h->exemplars[0];
    cr_assert_eq(x->as_int, 4);
    static const uint8_t tid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    static const uint8_t sid[8] = {0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8};
    cr_assert_eq(x->trace_id.len, 16);
    cr_assert_arr_eq(x->trace_id.data, tid, 16, "upper-case hex");
    cr_assert_arr_eq(x->span_id.data, sid, 8);
    cr_assert(x->filtered_attributes[0]->value->bool_value);
    Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint *e =
        m[4]->exponential_histogram->data_points[0];
    cr_assert_eq(m[4]->exponential_histogram->aggregation_temporality, 1);
    cr_assert_eq(e->count, 10);
    cr_assert_eq(e->scale, -3);
    cr_assert_eq(e->zero_count, 1);
    cr_assert_eq(e->zero_threshold, 1e-9);
    cr_assert_eq(e->positive->offset, -2);
    cr_assert_eq(e->positive->n_bucket_counts, 4);
    cr_assert_eq(e->positive->bucket_counts[3], 4);
    cr_assert_not_null(e->negative);
    Opentelemetry__Proto__Metrics__V1__SummaryDataPoint *q = m[5]->summary->data_points[0];
    cr_assert_eq(q->count, 100);
    cr_assert_eq(q->sum, 12.5);
    cr_assert_eq(q->quantile_values[1]->quantile, 0.99);
    cr_assert_eq(q->quantile_values[1]->value, 0.9, "a double given as a string");
    cr_assert_eq(m[5]->summary->data_points[1]->count, 1);
}

static const char *span_json(const char *span_fields, char *buf, size_t cap) {
    snprintf(
        buf, cap,
        "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"5b8efff798038103d269b633813fc60c\","
        "\"spanId\":\"eee19b7ec3c1b174\",\"name\":\"s\"%s%s}]}]}]}",
        span_fields[0] ? "," : "", span_fields);
    return buf;
}

static Opentelemetry__Proto__Trace__V1__Span *one_span(otlp_export *ex) {
    return ex->traces->resource_spans[0]->scope_spans[0]->spans[0];
}

Test(otlp_json, span_fields) {
    char b[4096];
    otlp_export ex;
    cr_assert_eq(dj(OTLP_TRACES,
                    span_json("\"parentSpanId\":\"EEE19B7EC3C1B175\",\"kind\":\"SPAN_KIND_CLIENT\","
                              "\"traceState\":\"a=b\",\"flags\":\"769\",\"startTimeUnixNano\":1e3,"
                              "\"endTimeUnixNano\":\"2000\",\"droppedAttributesCount\":5,"
                              "\"status\":{\"code\":\"STATUS_CODE_OK\"},"
                              "\"events\":[{\"name\":\"e\",\"timeUnixNano\":\"1500\"}],"
                              "\"links\":[{\"traceId\":\"00000000000000000000000000000001\",\"spanId\":"
                              "\"0000000000000002\",\"flags\":1}]",
                              b, sizeof b),
                    &ex),
                 0, "%s", err);
    cr_assert_eq(ex.items, 1);
    Opentelemetry__Proto__Trace__V1__Span *s = one_span(&ex);
    static const uint8_t tid[16] = {0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03,
                                    0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c};
    cr_assert_arr_eq(s->trace_id.data, tid, 16);
    cr_assert_eq(s->parent_span_id.len, 8);
    cr_assert_eq(s->parent_span_id.data[7], 0x75);
    cr_assert_eq(s->kind, 3);
    cr_assert_str_eq(s->trace_state, "a=b");
    cr_assert_eq(s->flags, 769);
    cr_assert_eq(s->start_time_unix_nano, 1000, "1e3 is an exact integer");
    cr_assert_eq(s->end_time_unix_nano, 2000);
    cr_assert_eq(s->dropped_attributes_count, 5);
    cr_assert_eq(s->status->code, 1);
    cr_assert_eq(s->events[0]->time_unix_nano, 1500);
    cr_assert_eq(s->links[0]->trace_id.data[15], 1);
    cr_assert_eq(s->links[0]->span_id.data[7], 2);
    cr_assert_eq(s->links[0]->flags, 1);

    /* enums as plain integers, unknown numbers kept (proto3 enums are open) */
    cr_assert_eq(
        dj(OTLP_TRACES, span_json("\"kind\":4,\"status\":{\"code\":2,\"message\":\"m\"}", b, sizeof b), &ex),
        0, "%s", err);
    cr_assert_eq(one_span(&ex)->kind, 4);
    cr_assert_eq(one_span(&ex)->status->code, 2);
    cr_assert_eq(dj(OTLP_TRACES, span_json("\"kind\":99", b, sizeof b), &ex), 0, "%s", err);
    cr_assert_eq(one_span(&ex)->kind, 99);

    /* empty ids are accepted here (the store refuses the span later) */
    cr_assert_eq(dj(OTLP_TRACES,
                    "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"\",\"spanId\":\"\","
                    "\"parentSpanId\":\"\"}]}]}]}",
                    &ex),
                 0, "%s", err);
    cr_assert_eq(one_span(&ex)->trace_id.len, 0);
    cr_assert_eq(one_span(&ex)->parent_span_id.len, 0);
}

Test(otlp_json, snake_case_keys) {
    otlp_export ex;
    cr_assert_eq(dj(OTLP_TRACES,
                    "{\"resource_spans\":[{\"scope_spans\":[{\"spans\":[{\"trace_id\":"
                    "\"5b8efff798038103d269b633813fc60c\","
                    "\"span_id\":\"eee19b7ec3c1b174\",\"parent_span_id\":\"eee19b7ec3c1b175\",\"start_time_"
                    "unix_nano\":\"7\","
                    "\"dropped_events_count\":2}]}]}]}",
                    &ex),
                 0, "%s", err);
    cr_assert_eq(ex.items, 1);
    cr_assert_eq(one_span(&ex)->start_time_unix_nano, 7);
    cr_assert_eq(one_span(&ex)->parent_span_id.len, 8);
    cr_assert_eq(one_span(&ex)->dropped_events_count, 2);
    /* a spelling that is neither form is an unknown key, ignored */
    cr_assert_eq(dj(OTLP_TRACES,
                    "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceID\":\"zz\","
                    "\"StartTimeUnixNano\":\"x\"}]}]}]}",
                    &ex),
                 0, "%s", err);
    cr_assert_eq(one_span(&ex)->trace_id.len, 0);
}

Test(otlp_json, attribute_values) {
    char b[4096];
    otlp_export ex;
    cr_assert_eq(dj(OTLP_TRACES,
                    span_json("\"attributes\":["
                              "{\"key\":\"s\",\"value\":{\"stringValue\":\"caf\\u00e9 \\ud83d\\ude00 "
                              "\\\"q\\\" \\n\\t\\/\"}},"
                              "{\"key\":\"b\",\"value\":{\"bytesValue\":\"aGVsbG8=\"}},"
                              "{\"key\":\"b2\",\"value\":{\"bytesValue\":\"aGVsbG8\"}},"
                              "{\"key\":\"b3\",\"value\":{\"bytesValue\":\"-_8=\"}},"
                              "{\"key\":\"b4\",\"value\":{\"bytesValue\":\"\"}},"
                              "{\"key\":\"i\",\"value\":{\"intValue\":\"-12\"}},"
                              "{\"key\":\"d\",\"value\":{\"doubleValue\":1}},"
                              "{\"key\":\"f\",\"value\":{\"boolValue\":false}},"
                              "{\"key\":\"arr\",\"value\":{\"arrayValue\":{\"values\":[{\"intValue\":1},{"
                              "\"stringValue\":\"x\"},{}]}}},"
                              "{\"key\":\"kv\",\"value\":{\"kvlistValue\":{\"values\":[{\"key\":\"in\","
                              "\"value\":{\"doubleValue\":\"NaN\"}}]}}},"
                              "{\"key\":\"none\"},"
                              "{\"key\":\"nul\",\"value\":null}]",
                              b, sizeof b),
                    &ex),
                 0, "%s", err);
    Opentelemetry__Proto__Common__V1__KeyValue **a = one_span(&ex)->attributes;
    cr_assert_eq(one_span(&ex)->n_attributes, 12);
    cr_assert_str_eq(a[0]->value->string_value, "café \xf0\x9f\x98\x80 \"q\" \n\t/");
    cr_assert_eq(a[1]->value->value_case, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE);
    cr_assert_eq(a[1]->value->bytes_value.len, 5);
    cr_assert_arr_eq(a[1]->value->bytes_value.data, "hello", 5);
    cr_assert_eq(a[2]->value->bytes_value.len, 5, "padding is optional");
    cr_assert_arr_eq(a[2]->value->bytes_value.data, "hello", 5);
    static const uint8_t url[2] = {0xfb, 0xff};
    cr_assert_eq(a[3]->value->bytes_value.len, 2);
    cr_assert_arr_eq(a[3]->value->bytes_value.data, url, 2, "URL-safe alphabet");
    cr_assert_eq(a[4]->value->bytes_value.len, 0);
    cr_assert_eq(a[5]->value->int_value, -12);
    cr_assert_eq(a[6]->value->double_value, 1.0);
    cr_assert_eq(a[7]->value->value_case, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE);
    cr_assert_not(a[7]->value->bool_value);
    cr_assert_eq(a[8]->value->array_value->n_values, 3);
    cr_assert_eq(a[8]->value->array_value->values[0]->int_value, 1);
    cr_assert_eq(a[8]->value->array_value->values[2]->value_case,
                 OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET);
    cr_assert(isnan(a[9]->value->kvlist_value->values[0]->value->double_value));
    cr_assert_null(a[10]->value);
    cr_assert_null(a[11]->value);
}

Test(otlp_json, unknown_keys_and_nulls) {
    otlp_export ex;
    cr_assert_eq(dj(OTLP_TRACES,
                    "{\"extra\":{\"a\":[1,2,{\"b\":null,\"c\":[true,false,\"\\u0041\"]}],\"d\":-1.5e10},"
                    "\"resourceSpans\":[{\"resource\":null,\"schemaUrl\":null,\"future\":[],"
                    "\"scopeSpans\":[{\"scope\":null,\"spans\":[{\"name\":null,\"status\":null,"
                    "\"attributes\":null}]}]}]}",
                    &ex),
                 0, "%s", err);
    cr_assert_eq(ex.items, 1);
    cr_assert_null(ex.traces->resource_spans[0]->resource);
    cr_assert_str_eq(one_span(&ex)->name, "");
    cr_assert_null(one_span(&ex)->status);
    /* the other signal's key is just unknown */
    cr_assert_eq(dj(OTLP_METRICS, "{\"resourceSpans\":[{}]}", &ex), 0, "%s", err);
    cr_assert_eq(ex.items, 0);
    cr_assert_eq(dj(OTLP_METRICS, "{}", &ex), 0, "%s", err);
    cr_assert_eq(dj(OTLP_TRACES, " \r\n\t{\"resourceSpans\":[]} \n", &ex), 0, "%s", err);
}

Test(otlp_json, integer_rules) {
    char b[4096];
    otlp_export ex;
    struct {
        const char *field;
        int ok;
        uint64_t want;
        const char *why;
    } cases[] = {
        {"\"startTimeUnixNano\":\"18446744073709551615\"", 1, UINT64_MAX, "max fixed64 as a string"},
        {"\"startTimeUnixNano\":18446744073709551615", 1, UINT64_MAX, "max fixed64 as a number"},
        {"\"startTimeUnixNano\":\"18446744073709551616\"", 0, 0, "integer out of range"},
        {"\"startTimeUnixNano\":-1", 0, 0, "integer out of range"},
        {"\"startTimeUnixNano\":\"-0\"", 1, 0, "negative zero"},
        {"\"startTimeUnixNano\":1.5", 0, 0, "not an exact integer"},
        {"\"startTimeUnixNano\":2.0", 1, 2, "integral fraction"},
        {"\"startTimeUnixNano\":\"12abc\"", 0, 0, "not an integer"},
        {"\"startTimeUnixNano\":\" 12\"", 0, 0, "not an integer"},
        {"\"startTimeUnixNano\":\"\"", 0, 0, "not an integer"},
        {"\"startTimeUnixNano\":\"0x10\"", 0, 0, "not an integer"},
        {"\"startTimeUnixNano\":true", 0, 0, "expected a number"},
        {"\"startTimeUnixNano\":{}", 0, 0, "expected a number"},
        {"\"droppedAttributesCount\":4294967295", 1, 4294967295u, "max uint32"},
        {"\"droppedAttributesCount\":4294967296", 0, 0, "integer out of range"},
        {"\"flags\":1e2", 1, 100, "exponent form"},
        {"\"flags\":1e400", 0, 0, "not an exact integer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = dj(OTLP_TRACES, span_json(cases[i].field, b, sizeof b), &ex);
        if (!cases[i].ok) {
            cr_assert_eq(rc, -1, "%s accepted", cases[i].field);
            cr_assert(strstr(err, cases[i].why), "%s: got '%s'", cases[i].field, err);
            cr_assert(strstr(err, "resourceSpans[0].scopeSpans[0].spans[0]."), "%s", err);
            continue;
        }
        cr_assert_eq(rc, 0, "%s: %s", cases[i].field, err);
        Opentelemetry__Proto__Trace__V1__Span *s = one_span(&ex);
        uint64_t got = strstr(cases[i].field, "start")     ? s->start_time_unix_nano
                       : strstr(cases[i].field, "dropped") ? s->dropped_attributes_count
                                                           : s->flags;
        cr_assert_eq(got, cases[i].want, "%s (%s)", cases[i].field, cases[i].why);
    }
    /* signed 64-bit bounds */
    cr_assert_eq(dj(OTLP_TRACES,
                    span_json("\"attributes\":[{\"key\":\"k\",\"value\":{\"intValue\":9223372036854775807}}]",
                              b, sizeof b),
                    &ex),
                 0, "%s", err);
    cr_assert_eq(one_span(&ex)->attributes[0]->value->int_value, INT64_MAX);
    cr_assert_eq(
        dj(OTLP_TRACES,
           span_json("\"attributes\":[{\"key\":\"k\",\"value\":{\"intValue\":\"9223372036854775808\"}}]", b,
                     sizeof b),
           &ex),
        -1);
    cr_assert_str_eq(
        err, "resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value.intValue: integer out of range");
}

Test(otlp_json, double_rules) {
    otlp_export ex;
    const char *head =
        "{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"gauge\":{\"dataPoints\":[{\"asDouble\":";
    struct {
        const char *v;
        int ok;
        double want;
    } cases[] = {
        {"-0.5", 1, -0.5},
        {"1e308", 1, 1e308},
        {"\"1.25\"", 1, 1.25},
        {"0", 1, 0},
        {"-0", 1, -0.0},
        {"1E-7", 1, 1e-7},
        {"\"-Infinity\"", 1, -INFINITY},
        {"1e400", 0, 0},
        {"\"nan\"", 0, 0},
        {"\"inf\"", 0, 0},
        {"\".5\"", 0, 0},
        {"true", 0, 0},
        {"[1]", 0, 0},
        {"\"1.5 \"", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char b[512];
        snprintf(b, sizeof b, "%s%s}]}}]}]}]}", head, cases[i].v);
        int rc = dj(OTLP_METRICS, b, &ex);
        if (!cases[i].ok) {
            cr_assert_eq(rc, -1, "%s accepted", cases[i].v);
            cr_assert(
                strstr(err, "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0].asDouble: "),
                "%s: %s", cases[i].v, err);
            continue;
        }
        cr_assert_eq(rc, 0, "%s: %s", cases[i].v, err);
        double got =
            ex.metrics->resource_metrics[0]->scope_metrics[0]->metrics[0]->gauge->data_points[0]->as_double;
        cr_assert_eq(got, cases[i].want, "%s", cases[i].v);
    }
}

Test(otlp_json, bad_ids) {
    /* four spans; the fourth one's traceId has 31 digits */
    const char *fmt = "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{},{},{},{\"traceId\":\"%s\"}]}]}]}";
    const char *bad[] = {"5b8efff798038103d269b633813fc60", "5b8efff798038103d269b633813fc60cc",
                         "5b8efff798038103d269b633813fc6zz",
                         "W47/95gDgQPSabYzgT/GDA==", "5b8efff7-98038103d269b633813fc60"};
    otlp_export ex;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char b[512];
        snprintf(b, sizeof b, fmt, bad[i]);
        cr_assert_eq(dj(OTLP_TRACES, b, &ex), -1, "%s accepted", bad[i]);
        cr_assert_str_eq(err, "resourceSpans[0].scopeSpans[0].spans[3].traceId: not 32 hex digits");
    }
    cr_assert_eq(dj(OTLP_TRACES,
                    "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"spanId\":\"eee19b7ec3c1b17\"}]}]}]}",
                    &ex),
                 -1);
    cr_assert_str_eq(err, "resourceSpans[0].scopeSpans[0].spans[0].spanId: not 16 hex digits");
    cr_assert_eq(dj(OTLP_TRACES,
                    "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"links\":[{\"spanId\":"
                    "\"eee19b7ec3c1b17g\"}]}]}]}]}",
                    &ex),
                 -1);
    cr_assert_str_eq(err, "resourceSpans[0].scopeSpans[0].spans[0].links[0].spanId: not 16 hex digits");
    cr_assert_eq(
        dj(OTLP_TRACES, "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"parentSpanId\":12}]}]}]}", &ex),
        -1);
    cr_assert_str_eq(err, "resourceSpans[0].scopeSpans[0].spans[0].parentSpanId: expected a hex string");
    cr_assert_eq(
        dj(OTLP_TRACES,
           "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"spanId\":\"\\u0065ee19b7ec3c1b174\"}]}]}]}",
           &ex),
        -1, "escapes in ids");
}

Test(otlp_json, bad_base64) {
    const char *bad[] = {"a===", "!!!!", "aGVsbG8==x", "a", "aGVsb G8=", "aGVsbG8==="};
    otlp_export ex;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char b[512];
        snprintf(b, sizeof b,
                 "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"k\",\"value\":{"
                 "\"bytesValue\":\"%s\"}}]}}]}",
                 bad[i]);
        cr_assert_eq(dj(OTLP_TRACES, b, &ex), -1, "%s accepted", bad[i]);
        cr_assert_str_eq(err, "resourceSpans[0].resource.attributes[0].value.bytesValue: invalid base64");
    }
}

Test(otlp_json, enum_rules) {
    char b[4096];
    otlp_export ex;
    cr_assert_eq(dj(OTLP_TRACES, span_json("\"kind\":\"SPAN_KIND_BOGUS\"", b, sizeof b), &ex), -1);
    cr_assert_str_eq(err, "resourceSpans[0].scopeSpans[0].spans[0].kind: unknown SpanKind value");
    cr_assert_eq(dj(OTLP_TRACES, span_json("\"kind\":\"2\"", b, sizeof b), &ex), 0, "%s", err);
    cr_assert_eq(one_span(&ex)->kind, 2);
    cr_assert_eq(dj(OTLP_TRACES, span_json("\"kind\":1.5", b, sizeof b), &ex), -1);
    cr_assert_eq(dj(OTLP_TRACES, span_json("\"kind\":4294967296", b, sizeof b), &ex), -1);
    cr_assert_eq(dj(OTLP_TRACES, span_json("\"kind\":true", b, sizeof b), &ex), -1);
    cr_assert_eq(dj(OTLP_TRACES, span_json("\"status\":{\"code\":\"STATUS_CODE_ERROR\"}", b, sizeof b), &ex),
                 0, "%s", err);
    cr_assert_eq(one_span(&ex)->status->code, 2);
}

Test(otlp_json, wrong_types) {
    struct {
        const char *json;
        const char *err;
    } cases[] = {
        {"{\"resourceSpans\":{}}", "resourceSpans: expected an array"},
        {"{\"resourceSpans\":[[]]}", "resourceSpans[0]: expected an object"},
        {"{\"resourceSpans\":[null]}", "resourceSpans[0]: null is not allowed in an array"},
        {"{\"resourceSpans\":[{\"resource\":[]}]}", "resourceSpans[0].resource: expected an object"},
        {"{\"resourceSpans\":[{\"schemaUrl\":5}]}", "resourceSpans[0].schemaUrl: expected a string"},
        {"{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"name\":[\"x\"]}]}]}]}",
         "resourceSpans[0].scopeSpans[0].spans[0].name: expected a string"},
        {"{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"k\",\"value\":{\"boolValue\":"
         "\"true\"}}]}}]}",
         "resourceSpans[0].resource.attributes[0].value.boolValue: expected true or false"},
        {"{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"k\",\"value\":{\"intValue\":true}}]}}"
         "]}",
         "resourceSpans[0].resource.attributes[0].value.intValue: expected a number"},
        {"{\"resourceSpans\":[{\"resource\":{\"attributes\":{}}}]}",
         "resourceSpans[0].resource.attributes: expected an array"},
        {"{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"k\",\"value\":{\"arrayValue\":{"
         "\"values\":[1]}}}]}}]}",
         "resourceSpans[0].resource.attributes[0].value.arrayValue.values[0]: expected an object"},
        {"{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"k\",\"value\":{\"stringValue\":\"a\","
         "\"intValue\":1}}]}}]}",
         "resourceSpans[0].resource.attributes[0].value.intValue: another field of the same oneof is already "
         "set"},
        {"{\"resourceSpans\":[{\"schemaUrl\":\"a\",\"schema_url\":\"b\"}]}",
         "resourceSpans[0].schemaUrl: given more than once"},
        {"{\"resourceSpans\":[],\"resourceSpans\":[]}", "resourceSpans: given more than once"},
    };
    otlp_export ex;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cr_assert_eq(dj(OTLP_TRACES, cases[i].json, &ex), -1, "%s accepted", cases[i].json);
        cr_assert_str_eq(err, cases[i].err, "for %s", cases[i].json);
    }
    cr_assert_eq(dj(OTLP_METRICS,
                    "{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"gauge\":{},\"sum\":{}}]}]}]}",
                    &ex),
                 -1);
    cr_assert_str_eq(
        err,
        "resourceMetrics[0].scopeMetrics[0].metrics[0].sum: another field of the same oneof is already set");
}

Test(otlp_json, broken_json) {
    const char *cases[] = {
        "",
        " ",
        "{",
        "}",
        "[]",
        "null",
        "\"x\"",
        "42",
        "{\"resourceSpans\":[}",
        "{\"a\" 1}",
        "{'a':1}",
        "{\"a\":1,}",
        "{\"a\":tru}",
        "{\"a\":nul}",
        "{} x",
        "{}{}",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\x01\"}",
        "{\"a\":01}",
        "{\"a\":1.}",
        "{\"a\":-}",
        "{\"a\":.5}",
        "{\"a\":+1}",
        "{\"a\":1e}",
        "{\"a\":\"\\ud800\"}",
        "{\"a\":\"\\udc00\\ud800\"}",
        "{\"a\":\"\\ud800\\u0041\"}",
        "{\"a\":\"\\u12\"}",
        "{\"a\":\"abc",
        "{\"a\":\"abc\\",
        "{\"a\":[1,2",
        "{\"a\":[1 2]}",
        "{\"a\":\"\xff\"}",
        "{\"\xc3\x28\":1}",
        "{\"a\":\"\xed\xa0\x80\"}",
        "\xef\xbb\xbf{}",
        "{\"a\":NaN}",
        "{\"a\":Infinity}",
        "{1:2}",
        "{\"a\":1 \"b\":2}",
        "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"name\":\"x\"}]}]}]",
    };
    otlp_export ex;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cr_assert_eq(dj(OTLP_TRACES, cases[i], &ex), -1, "accepted: %s", cases[i]);
        cr_assert(!strncmp(err, "invalid JSON", 12), "%s: %s", cases[i], err);
    }
    cr_assert_eq(dj(OTLP_TRACES, "{\"resourceSpans\":[{\"foo\":\"bar\"}}", &ex), -1);
    cr_assert_str_eq(err, "invalid JSON at offset 31: expected ',' or ']'");
    cr_assert_eq(dj(OTLP_TRACES, "{\"resourceSpans\":[", &ex), -1);
    cr_assert(strstr(err, "unexpected end of input"), "%s", err);
}

Test(otlp_json, depth_limits) {
    /* 33 nested arrayValues: the attribute-depth rule names the attribute */
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_buf_puts(&b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"k\",\"value\":");
    for (int i = 0; i < 33; i++)
        tr_buf_puts(&b, "{\"arrayValue\":{\"values\":[");
    tr_buf_puts(&b, "{\"intValue\":1}");
    for (int i = 0; i < 33; i++)
        tr_buf_puts(&b, "]}}");
    tr_buf_puts(&b, "}]}}]}");
    otlp_export ex;
    cr_assert_eq(decj(OTLP_TRACES, b.data, b.len, &ex), -1);
    cr_assert_str_eq(err,
                     "resourceSpans[0].resource.attributes[0].value: value nested deeper than 32 levels");
    /* 32 kvlist levels are fine */
    tr_buf_reset(&b);
    tr_buf_puts(&b, "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"events\":[{\"attributes\":[{\"key\":"
                    "\"k\",\"value\":");
    for (int i = 0; i < 31; i++)
        tr_buf_puts(&b, "{\"kvlistValue\":{\"values\":[{\"key\":\"k\",\"value\":");
    tr_buf_puts(&b, "{\"intValue\":1}");
    for (int i = 0; i < 31; i++)
        tr_buf_puts(&b, "}]}}");
    tr_buf_puts(&b, "}]}]}]}]}]}");
    cr_assert_eq(decj(OTLP_TRACES, b.data, b.len, &ex), 0, "%s", err);
    /* deep junk under an unknown key: refused before it costs stack */
    tr_buf_reset(&b);
    tr_buf_puts(&b, "{\"x\":");
    for (int i = 0; i < 100000; i++)
        tr_buf_putc(&b, '[');
    for (int i = 0; i < 100000; i++)
        tr_buf_putc(&b, ']');
    tr_buf_putc(&b, '}');
    cr_assert_eq(decj(OTLP_TRACES, b.data, b.len, &ex), -1);
    cr_assert(strstr(err, "nested too deeply"), "%s", err);
    tr_buf_free(&b);
}

Test(otlp_json, invalid_utf8_named) {
    otlp_export ex;
    /* raw invalid bytes are a JSON error; \u escapes cannot produce invalid UTF-8 */
    cr_assert_eq(dj(OTLP_TRACES,
                    "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"name\":\"ab\xc0\x80\"}]}]}]}", &ex),
                 -1);
    cr_assert(strstr(err, "invalid UTF-8"), "%s", err);
    cr_assert_eq(dj(OTLP_TRACES,
                    "{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"name\":"
                    "\"\\u00e9\\u4e2d\\ud83d\\ude00\"}]}]}]}",
                    &ex),
                 0, "%s", err);
    cr_assert_str_eq(one_span(&ex)->name, "é中😀");
}

Test(otlp_json, truncated_at_every_offset) {
    size_t n;
    char *j = read_file("tests/fuzz/corpus/fuzz_otlp_json/sdk_traces.json", &n);
    otlp_export ex;
    for (size_t cut = 0; cut < n; cut++) {
        int rc = decj(OTLP_TRACES, j, cut, &ex);
        cr_assert_eq(rc, -1, "a cut JSON document is never complete (cut %zu)", cut);
        cr_assert(err[0]);
    }
    cr_assert_eq(decj(OTLP_TRACES, j, n, &ex), 0, "%s", err);
    free(j);
}

Test(otlp_json, arena_limit_fails_cleanly) {
    size_t n;
    char *j = read_file("tests/fuzz/corpus/fuzz_otlp_json/sdk_metrics.json", &n);
    int failed = 0, passed = 0;
    for (size_t limit = 256; limit < 65536; limit += 256) {
        tr_arena *a = tr_arena_new(limit);
        otlp_export ex = {0};
        char e[200] = "";
        int rc = otlp_decode_json(OTLP_METRICS, (uint8_t *)j, n, a, &ex, e, sizeof e);
        if (rc) {
            failed++;
            cr_assert(strstr(e, "request too large to decode"), "%s", e);
        } else {
            passed++;
            cr_assert_eq(ex.items, 6);
        }
        cr_assert_leq(tr_arena_used(a), limit);
        tr_arena_free(a);
    }
    cr_assert_gt(failed, 0);
    cr_assert_gt(passed, 0);
    free(j);
}

Test(otlp_json, nul_in_a_string_is_refused_naming_the_field) {
    /* protobuf-c strings end at a NUL: "\u0000" would silently cut the value */
    static const char j[] = "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
                            "\"value\":{\"stringValue\":\"a\\u0000b\"}}]}}]}";
    otlp_export ex;
    cr_assert_eq(decj(OTLP_TRACES, j, sizeof j - 1, &ex), -1);
    cr_assert(strstr(err, "stringValue"), "%s", err);
    cr_assert(strstr(err, "NUL"), "%s", err);
    static const char k[] = "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"a\\u0000b\","
                            "\"value\":{\"stringValue\":\"x\"}}]}}]}";
    cr_assert_eq(decj(OTLP_TRACES, k, sizeof k - 1, &ex), -1);
    cr_assert(strstr(err, "key"), "%s", err);
    static const char ok[] = "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"a\\u0001b\","
                             "\"value\":{\"stringValue\":\"x\"}}]}}]}";
    cr_assert_eq(decj(OTLP_TRACES, ok, sizeof ok - 1, &ex), 0, "%s", err);
}
