/* Binary protobuf decoding of OTLP Export requests into an arena (protobuf-c), and the
 * encoders of the responses. */
#include <stdio.h>
#include <string.h>

#include "otlp_int.h"

/* Limits that keep hostile nesting from exhausting the stack: protobuf-c's unpacker and the
 * validator below recurse once per message level. The OTLP schema itself needs 7 levels down
 * to an attribute value; each AnyValue nested in a kvlist adds 3 more. */
#define MAX_MSG_DEPTH 128
#define MAX_ANY_DEPTH 32

/* ---- UTF-8 ---- */

/* ---- wire-level pre-scan: bound the nesting before protobuf-c recurses into it ---- */

enum { SCAN_OK = 0, SCAN_BAD = -1, SCAN_DEEP = -2 };

/* Walks the wire format of a message of type d, descending into the fields that d declares
 * as messages (the only ones protobuf-c recurses into). Recursion is bounded by
 * MAX_MSG_DEPTH, so this is safe on any input. */
static int scan_depth(const uint8_t *p, const uint8_t *end, const ProtobufCMessageDescriptor *d, int depth) {
    while (p < end) {
        uint64_t key, n;
        if (tr_pb_varint(&p, end, &key)) return SCAN_BAD;
        uint64_t num = key >> 3;
        if (num == 0 || num > 536870911u) return SCAN_BAD;
        switch (key & 7) {
        case 0:
            if (tr_pb_varint(&p, end, &n)) return SCAN_BAD;
            break;
        case 1:
            if (end - p < 8) return SCAN_BAD;
            p += 8;
            break;
        case 5:
            if (end - p < 4) return SCAN_BAD;
            p += 4;
            break;
        case 2: {
            if (tr_pb_varint(&p, end, &n) || n > (uint64_t)(end - p)) return SCAN_BAD;
            const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, (unsigned)num);
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                if (depth + 1 >= MAX_MSG_DEPTH) return SCAN_DEEP;
                int rc = scan_depth(p, p + n, f->descriptor, depth + 1);
                if (rc) return rc;
            }
            p += n;
            break;
        }
        default:
            return SCAN_BAD; /* groups (3, 4) are not used by OTLP; 6, 7 do not exist */
        }
    }
    return SCAN_OK;
}

/* ---- validation of a decoded request (shared by the protobuf and JSON decoders) ---- */

typedef struct vseg {
    const char *name; /* proto field name */
    long idx;         /* element index for repeated fields, else -1 */
} vseg;

typedef struct vctx {
    int json;     /* name fields in lowerCamelCase, as the JSON encoding spells them */
    int any_root; /* path index of the field holding the outermost AnyValue being walked */
    vseg seg[MAX_MSG_DEPTH + 1];
    char *err;
    size_t errlen;
} vctx;

size_t otlp_field_path(char *out, size_t cap, const char *const *names, const long *idx, int n, int json) {
    size_t o = 0;
    if (cap == 0) return 0;
    out[0] = 0;
    for (int i = 0; i < n && o + 1 < cap; i++) {
        if (i) out[o++] = '.';
        for (const char *c = names[i]; *c && o + 1 < cap; c++) {
            if (json && *c == '_' && c[1]) {
                c++;
                out[o++] = (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
            } else {
                out[o++] = *c;
            }
        }
        if (idx[i] >= 0 && o + 1 < cap) {
            int w = snprintf(out + o, cap - o, "[%ld]", idx[i]);
            o = w < 0 ? o : (size_t)w >= cap - o ? cap - 1 : o + (size_t)w;
        }
        out[o] = 0;
    }
    out[o] = 0;
    return o;
}

static int verr(vctx *v, int depth, const char *what) {
    const char *names[MAX_MSG_DEPTH + 1];
    long idx[MAX_MSG_DEPTH + 1];
    for (int i = 0; i <= depth; i++) {
        names[i] = v->seg[i].name;
        idx[i] = v->seg[i].idx;
    }
    char path[160];
    otlp_field_path(path, sizeof path, names, idx, depth + 1, v->json);
    snprintf(v->err, v->errlen, "%s: %s", path, what);
    return -1;
}

/* Expected length of an id field (trace_id 16, span_id / parent_span_id 8), or 0. */
static size_t id_len(const char *field) {
    if (!strcmp(field, "trace_id")) return 16;
    if (!strcmp(field, "span_id") || !strcmp(field, "parent_span_id")) return 8;
    return 0;
}

static int walk(vctx *v, const ProtobufCMessage *m, int depth, int any_depth) {
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (d == &opentelemetry__proto__common__v1__any_value__descriptor) {
        if (++any_depth == 1) v->any_root = depth - 1;
        if (any_depth > MAX_ANY_DEPTH) return verr(v, v->any_root, "value nested deeper than 32 levels");
    }
    if (depth >= MAX_MSG_DEPTH) return verr(v, depth - 1, "message nested too deeply");
    const char *base = (const char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        size_t n = 1;
        const void *p = base + f->offset;
        int rep = f->label == PROTOBUF_C_LABEL_REPEATED;
        if (rep) {
            n = *(const size_t *)(base + f->quantifier_offset);
            p = *(const void *const *)p;
        } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *)(base + f->quantifier_offset) != f->id) continue;
        } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE &&
                   f->type != PROTOBUF_C_TYPE_STRING) {
            if (!*(const protobuf_c_boolean *)(base + f->quantifier_offset)) continue;
        }
        for (size_t k = 0; k < n; k++) {
            v->seg[depth].name = f->name;
            v->seg[depth].idx = rep ? (long)k : -1;
            switch (f->type) {
            case PROTOBUF_C_TYPE_STRING: {
                const char *s = ((const char *const *)p)[k];
                if (s && !tr_utf8_valid(s, strlen(s))) return verr(v, depth, "invalid UTF-8");
                break;
            }
            case PROTOBUF_C_TYPE_BYTES: {
                size_t want = id_len(f->name);
                const ProtobufCBinaryData *b = &((const ProtobufCBinaryData *)p)[k];
                if (want && b->len != 0 && b->len != want) {
                    char w[64];
                    snprintf(w, sizeof w, "must be %zu bytes, got %zu", want, b->len);
                    return verr(v, depth, w);
                }
                break;
            }
            case PROTOBUF_C_TYPE_MESSAGE: {
                const ProtobufCMessage *sub = ((const ProtobufCMessage *const *)p)[k];
                if (sub && walk(v, sub, depth + 1, any_depth)) return -1;
                break;
            }
            default:
                break;
            }
        }
    }
    return 0;
}

static uint64_t count_metric_points(const otlp_metrics_req *m) {
    uint64_t n = 0;
    for (size_t i = 0; i < m->n_resource_metrics; i++) {
        const Opentelemetry__Proto__Metrics__V1__ResourceMetrics *rm = m->resource_metrics[i];
        for (size_t j = 0; j < rm->n_scope_metrics; j++) {
            const Opentelemetry__Proto__Metrics__V1__ScopeMetrics *sm = rm->scope_metrics[j];
            for (size_t k = 0; k < sm->n_metrics; k++) {
                const Opentelemetry__Proto__Metrics__V1__Metric *mt = sm->metrics[k];
                switch (mt->data_case) {
                case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE:
                    n += mt->gauge->n_data_points;
                    break;
                case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM:
                    n += mt->sum->n_data_points;
                    break;
                case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM:
                    n += mt->histogram->n_data_points;
                    break;
                case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM:
                    n += mt->exponential_histogram->n_data_points;
                    break;
                case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY:
                    n += mt->summary->n_data_points;
                    break;
                default:
                    break;
                }
            }
        }
    }
    return n;
}

static uint64_t count_spans(const otlp_traces_req *t) {
    uint64_t n = 0;
    for (size_t i = 0; i < t->n_resource_spans; i++)
        for (size_t j = 0; j < t->resource_spans[i]->n_scope_spans; j++)
            n += t->resource_spans[i]->scope_spans[j]->n_spans;
    return n;
}

int otlp_finish_decode(otlp_export *ex, int json, char *err, size_t errlen) {
    vctx v = {.json = json, .err = err, .errlen = errlen};
    const ProtobufCMessage *root = ex->metrics ? &ex->metrics->base : ex->traces ? &ex->traces->base : NULL;
    if (!root) {
        snprintf(err, errlen, "no request decoded");
        return -1;
    }
    if (walk(&v, root, 0, 0)) return -1;
    ex->items = ex->metrics ? count_metric_points(ex->metrics) : count_spans(ex->traces);
    return 0;
}

/* The arena allocator, remembering whether it ran out: protobuf-c reports every failure as
 * NULL, and "too large to decode" must not read as "malformed". */
typedef struct pb_alloc_ctx {
    tr_arena *a;
    int exhausted;
} pb_alloc_ctx;

static void *pb_alloc(void *ctx, size_t n) {
    pb_alloc_ctx *c = ctx;
    void *p = tr_arena_alloc(c->a, n);
    if (!p) c->exhausted = 1;
    return p;
}

static void pb_free(void *ctx, void *p) { (void)ctx, (void)p; }

int otlp_decode_pb(otlp_signal sig, const uint8_t *buf, size_t len, tr_arena *a, otlp_export *ex, char *err,
                   size_t errlen) {
    const char *what = sig == OTLP_METRICS ? "metrics" : "trace";
    const ProtobufCMessageDescriptor *d;
    if (sig == OTLP_METRICS)
        d = &opentelemetry__proto__collector__v1__export_metrics_service_request__descriptor;
    else if (sig == OTLP_TRACES)
        d = &opentelemetry__proto__collector__v1__export_trace_service_request__descriptor;
    else {
        snprintf(err, errlen, "unsupported signal");
        return -1;
    }
    if (!buf) buf = (const uint8_t *)"";
    int rc = scan_depth(buf, buf + len, d, 0);
    if (rc == SCAN_DEEP) {
        snprintf(err, errlen, "protobuf %s export request nested deeper than %d levels", what, MAX_MSG_DEPTH);
        return -1;
    }
    if (rc != SCAN_OK) goto bad;
    pb_alloc_ctx ctx = {.a = a};
    ProtobufCAllocator al = {.alloc = pb_alloc, .free = pb_free, .allocator_data = &ctx};
    ProtobufCMessage *m = protobuf_c_message_unpack(d, &al, len, buf);
    if (!m && ctx.exhausted) {
        snprintf(err, errlen, "request too large to decode: its decoded form exceeds the memory limit");
        return -1;
    }
    if (!m) goto bad;
    ex->metrics = NULL;
    ex->traces = NULL;
    if (sig == OTLP_METRICS)
        ex->metrics = (otlp_metrics_req *)m;
    else
        ex->traces = (otlp_traces_req *)m;
    return otlp_finish_decode(ex, 0, err, errlen);
bad:
    snprintf(err, errlen, "request body is not a valid protobuf %s export request", what);
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
        Opentelemetry__Proto__Collector__V1__ExportMetricsServiceResponse r =
            OPENTELEMETRY__PROTO__COLLECTOR__V1__EXPORT_METRICS_SERVICE_RESPONSE__INIT;
        Opentelemetry__Proto__Collector__V1__ExportMetricsPartialSuccess ps =
            OPENTELEMETRY__PROTO__COLLECTOR__V1__EXPORT_METRICS_PARTIAL_SUCCESS__INIT;
        if (res->rejected || res->message[0]) {
            ps.rejected_data_points = (int64_t)res->rejected;
            ps.error_message = (char *)res->message;
            r.partial_success = &ps;
        }
        n = opentelemetry__proto__collector__v1__export_metrics_service_response__get_packed_size(&r);
        if (tr_buf_reserve(out, n)) return;
        opentelemetry__proto__collector__v1__export_metrics_service_response__pack(&r, (uint8_t *)out->data +
                                                                                           out->len);
    } else {
        Opentelemetry__Proto__Collector__V1__ExportTraceServiceResponse r =
            OPENTELEMETRY__PROTO__COLLECTOR__V1__EXPORT_TRACE_SERVICE_RESPONSE__INIT;
        Opentelemetry__Proto__Collector__V1__ExportTracePartialSuccess ps =
            OPENTELEMETRY__PROTO__COLLECTOR__V1__EXPORT_TRACE_PARTIAL_SUCCESS__INIT;
        if (res->rejected || res->message[0]) {
            ps.rejected_spans = (int64_t)res->rejected;
            ps.error_message = (char *)res->message;
            r.partial_success = &ps;
        }
        n = opentelemetry__proto__collector__v1__export_trace_service_response__get_packed_size(&r);
        if (tr_buf_reserve(out, n)) return;
        opentelemetry__proto__collector__v1__export_trace_service_response__pack(&r, (uint8_t *)out->data +
                                                                                         out->len);
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
    case OTLP_OK:
        return GRPC_OK;
    case OTLP_INVALID:
        return GRPC_INVALID_ARGUMENT;
    case OTLP_TOO_LARGE:
        return GRPC_RESOURCE_EXHAUSTED;
    case OTLP_UNAUTHENTICATED:
        return GRPC_UNAUTHENTICATED;
    case OTLP_UNIMPLEMENTED:
        return GRPC_UNIMPLEMENTED;
    case OTLP_UNAVAILABLE:
        return GRPC_UNAVAILABLE;
    case OTLP_OVERLOADED:
        return GRPC_RESOURCE_EXHAUSTED;
    }
    return GRPC_INTERNAL;
}

int otlp_status_to_http(otlp_status st) {
    switch (st) {
    case OTLP_OK:
        return 200;
    case OTLP_INVALID:
        return 400;
    case OTLP_TOO_LARGE:
        return 413;
    case OTLP_UNAUTHENTICATED:
        return 401;
    case OTLP_UNIMPLEMENTED:
        return 404;
    case OTLP_UNAVAILABLE:
    case OTLP_OVERLOADED:
        return 503;
    }
    return 500;
}
