/* Binary protobuf decoding of OTLP Export requests into an arena (protobuf-c), and the
 * encoders of the responses. */
#include <stdio.h>
#include <string.h>

#include "otlp_int.h"

static uint64_t count_metric_points(const otlp_metrics_req *m) {
    uint64_t n = 0;
    for (size_t i = 0; i < m->n_resource_metrics; i++) {
        const Opentelemetry__Proto__Metrics__V1__ResourceMetrics *rm = m->resource_metrics[i];
        for (size_t j = 0; j < rm->n_scope_metrics; j++) {
            const Opentelemetry__Proto__Metrics__V1__ScopeMetrics *sm = rm->scope_metrics[j];
            for (size_t k = 0; k < sm->n_metrics; k++) {
                const Opentelemetry__Proto__Metrics__V1__Metric *mt = sm->metrics[k];
                switch (mt->data_case) {
                case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE: n += mt->gauge->n_data_points; break;
                case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM: n += mt->sum->n_data_points; break;
                case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM: n += mt->histogram->n_data_points; break;
                case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM: n += mt->exponential_histogram->n_data_points; break;
                case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY: n += mt->summary->n_data_points; break;
                default: break;
                }
            }
        }
    }
    return n;
}

static uint64_t count_spans(const otlp_traces_req *t) {
    uint64_t n = 0;
    for (size_t i = 0; i < t->n_resource_spans; i++)
        for (size_t j = 0; j < t->resource_spans[i]->n_scope_spans; j++) n += t->resource_spans[i]->scope_spans[j]->n_spans;
    return n;
}

int otlp_decode_pb(otlp_signal sig, const uint8_t *buf, size_t len, tr_arena *a, otlp_export *ex,
                   char *err, size_t errlen) {
    ProtobufCAllocator al = tr_arena_pb_allocator(a);
    if (sig == OTLP_METRICS) {
        ex->metrics = opentelemetry__proto__collector__v1__export_metrics_service_request__unpack(&al, len, buf);
        if (!ex->metrics) goto bad;
        ex->items = count_metric_points(ex->metrics);
    } else if (sig == OTLP_TRACES) {
        ex->traces = opentelemetry__proto__collector__v1__export_trace_service_request__unpack(&al, len, buf);
        if (!ex->traces) goto bad;
        ex->items = count_spans(ex->traces);
    } else {
        snprintf(err, errlen, "unsupported signal");
        return -1;
    }
    return 0;
bad:
    snprintf(err, errlen, "request body is not a valid protobuf %s export request",
             sig == OTLP_METRICS ? "metrics" : "trace");
    return -1;
}

int otlp_decode_json(otlp_signal sig, const uint8_t *buf, size_t len, tr_arena *a,
                     otlp_export *ex, char *err, size_t errlen) {
    (void)sig; (void)buf; (void)len; (void)a; (void)ex;
    snprintf(err, errlen, "JSON decoding not built yet");
    return -1;
}

void otlp_encode_response(otlp_signal sig, int json, const otlp_result *res, tr_buf *out) {
    if (json) {
        if (res->rejected == 0 && !res->message[0]) {
            tr_buf_puts(out, "{}");
            return;
        }
        tr_json j;
        tr_json_init(&j, out);
        tr_json_obj_open(&j);
        tr_json_key(&j, "partialSuccess");
        tr_json_obj_open(&j);
        tr_json_key(&j, sig == OTLP_METRICS ? "rejectedDataPoints" : "rejectedSpans");
        char n[32];
        snprintf(n, sizeof n, "%llu", (unsigned long long)res->rejected);
        tr_json_str(&j, n);
        tr_json_key(&j, "errorMessage");
        tr_json_str(&j, res->message);
        tr_json_obj_close(&j);
        tr_json_obj_close(&j);
        return;
    }
    size_t n;
    if (sig == OTLP_METRICS) {
        Opentelemetry__Proto__Collector__V1__ExportMetricsServiceResponse r = OPENTELEMETRY__PROTO__COLLECTOR__V1__EXPORT_METRICS_SERVICE_RESPONSE__INIT;
        Opentelemetry__Proto__Collector__V1__ExportMetricsPartialSuccess ps = OPENTELEMETRY__PROTO__COLLECTOR__V1__EXPORT_METRICS_PARTIAL_SUCCESS__INIT;
        if (res->rejected || res->message[0]) {
            ps.rejected_data_points = (int64_t)res->rejected;
            ps.error_message = (char *)res->message;
            r.partial_success = &ps;
        }
        n = opentelemetry__proto__collector__v1__export_metrics_service_response__get_packed_size(&r);
        if (tr_buf_reserve(out, n)) return;
        opentelemetry__proto__collector__v1__export_metrics_service_response__pack(&r, (uint8_t *)out->data + out->len);
    } else {
        Opentelemetry__Proto__Collector__V1__ExportTraceServiceResponse r = OPENTELEMETRY__PROTO__COLLECTOR__V1__EXPORT_TRACE_SERVICE_RESPONSE__INIT;
        Opentelemetry__Proto__Collector__V1__ExportTracePartialSuccess ps = OPENTELEMETRY__PROTO__COLLECTOR__V1__EXPORT_TRACE_PARTIAL_SUCCESS__INIT;
        if (res->rejected || res->message[0]) {
            ps.rejected_spans = (int64_t)res->rejected;
            ps.error_message = (char *)res->message;
            r.partial_success = &ps;
        }
        n = opentelemetry__proto__collector__v1__export_trace_service_response__get_packed_size(&r);
        if (tr_buf_reserve(out, n)) return;
        opentelemetry__proto__collector__v1__export_trace_service_response__pack(&r, (uint8_t *)out->data + out->len);
    }
    out->len += n;
    out->data[out->len] = 0;
}

void otlp_encode_status(int json, int grpc_code, const char *message, tr_buf *out) {
    if (json) {
        tr_json j;
        tr_json_init(&j, out);
        tr_json_obj_open(&j);
        tr_json_key(&j, "code");
        tr_json_int(&j, grpc_code);
        tr_json_key(&j, "message");
        tr_json_str(&j, message);
        tr_json_obj_close(&j);
        return;
    }
    Opentelemetry__Proto__Collector__V1__RpcStatus s = OPENTELEMETRY__PROTO__COLLECTOR__V1__RPC_STATUS__INIT;
    s.code = grpc_code;
    s.message = (char *)message;
    size_t n = opentelemetry__proto__collector__v1__rpc_status__get_packed_size(&s);
    if (tr_buf_reserve(out, n)) return;
    opentelemetry__proto__collector__v1__rpc_status__pack(&s, (uint8_t *)out->data + out->len);
    out->len += n;
    out->data[out->len] = 0;
}

int otlp_status_to_grpc(otlp_status st) {
    switch (st) {
    case OTLP_OK: return GRPC_OK;
    case OTLP_INVALID: return GRPC_INVALID_ARGUMENT;
    case OTLP_TOO_LARGE: return GRPC_RESOURCE_EXHAUSTED;
    case OTLP_UNAUTHENTICATED: return GRPC_UNAUTHENTICATED;
    case OTLP_UNIMPLEMENTED: return GRPC_UNIMPLEMENTED;
    case OTLP_UNAVAILABLE: return GRPC_UNAVAILABLE;
    }
    return GRPC_INTERNAL;
}

int otlp_status_to_http(otlp_status st) {
    switch (st) {
    case OTLP_OK: return 200;
    case OTLP_INVALID: return 400;
    case OTLP_TOO_LARGE: return 413;
    case OTLP_UNAUTHENTICATED: return 401;
    case OTLP_UNIMPLEMENTED: return 404;
    case OTLP_UNAVAILABLE: return 503;
    }
    return 500;
}
