/* Builders for OTLP trace requests and a synchronous ingest for the trace store tests. */
#include "helpers.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

static void *zalloc(tr_arena *a, size_t n) {
    void *p = tr_arena_calloc(a, 1, n);
    cr_assert(p);
    return p;
}

static T_KV *kv(tr_arena *a, const char *k) {
    T_KV *x = zalloc(a, sizeof *x);
    opentelemetry__proto__common__v1__key_value__init(x);
    x->key = tr_arena_strndup(a, k, strlen(k));
    x->value = zalloc(a, sizeof *x->value);
    opentelemetry__proto__common__v1__any_value__init(x->value);
    return x;
}

T_KV *t_str(tr_arena *a, const char *k, const char *v) {
    T_KV *x = kv(a, k);
    x->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    x->value->string_value = tr_arena_strndup(a, v, strlen(v));
    return x;
}

T_KV *t_int(tr_arena *a, const char *k, int64_t v) {
    T_KV *x = kv(a, k);
    x->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    x->value->int_value = v;
    return x;
}

T_KV *t_bool(tr_arena *a, const char *k, int v) {
    T_KV *x = kv(a, k);
    x->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
    x->value->bool_value = v;
    return x;
}

T_KV *t_dbl(tr_arena *a, const char *k, double v) {
    T_KV *x = kv(a, k);
    x->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
    x->value->double_value = v;
    return x;
}

T_KV *t_bytes(tr_arena *a, const char *k, const uint8_t *p, size_t n) {
    T_KV *x = kv(a, k);
    x->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE;
    x->value->bytes_value.data = zalloc(a, n + 1);
    memcpy(x->value->bytes_value.data, p, n);
    x->value->bytes_value.len = n;
    return x;
}

T_KV *t_strarr(tr_arena *a, const char *k, const char *v1, const char *v2) {
    T_KV *x = kv(a, k);
    x->value->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
    x->value->array_value = zalloc(a, sizeof *x->value->array_value);
    opentelemetry__proto__common__v1__array_value__init(x->value->array_value);
    x->value->array_value->n_values = 2;
    x->value->array_value->values = zalloc(a, 2 * sizeof(void *));
    x->value->array_value->values[0] = t_str(a, "", v1)->value;
    x->value->array_value->values[1] = t_str(a, "", v2)->value;
    return x;
}

void t_tid(uint8_t id[16], uint8_t b, uint8_t last) {
    memset(id, b, 16);
    id[15] = last;
}

static ProtobufCBinaryData bin(tr_arena *a, const void *p, size_t n) {
    ProtobufCBinaryData d = {n, zalloc(a, n)};
    memcpy(d.data, p, n);
    return d;
}

static ProtobufCBinaryData sid8(tr_arena *a, uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
    return bin(a, b, 8);
}

traces_pb_span *t_span(tr_arena *a, const uint8_t tid[16], uint64_t sid, uint64_t parent, const char *name,
                       int kind, uint64_t start_ns, uint64_t dur_ns) {
    traces_pb_span *s = zalloc(a, sizeof *s);
    opentelemetry__proto__trace__v1__span__init(s);
    s->trace_id = bin(a, tid, 16);
    s->span_id = sid8(a, sid);
    if (parent) s->parent_span_id = sid8(a, parent);
    s->name = tr_arena_strndup(a, name, strlen(name));
    s->kind = kind;
    s->start_time_unix_nano = start_ns;
    s->end_time_unix_nano = start_ns + dur_ns;
    return s;
}

#define COLLECT(arr, nfield, n, T)                                                                           \
    do {                                                                                                     \
        va_list ap;                                                                                          \
        va_start(ap, n);                                                                                     \
        arr = zalloc(a, (size_t)(n ? n : 1) * sizeof(T));                                                    \
        for (int i_ = 0; i_ < n; i_++)                                                                       \
            arr[i_] = va_arg(ap, T);                                                                         \
        nfield = (size_t)n;                                                                                  \
        va_end(ap);                                                                                          \
    } while (0)

void t_attrs(tr_arena *a, traces_pb_span *s, int n, ...) {
    COLLECT(s->attributes, s->n_attributes, n, T_KV *);
}

void t_event(tr_arena *a, traces_pb_span *s, const char *name, uint64_t t_ns, int n, ...) {
    Opentelemetry__Proto__Trace__V1__Span__Event *e = zalloc(a, sizeof *e);
    opentelemetry__proto__trace__v1__span__event__init(e);
    e->name = tr_arena_strndup(a, name, strlen(name));
    e->time_unix_nano = t_ns;
    COLLECT(e->attributes, e->n_attributes, n, T_KV *);
    Opentelemetry__Proto__Trace__V1__Span__Event **ne = zalloc(a, (s->n_events + 1) * sizeof *ne);
    if (s->n_events) memcpy(ne, s->events, s->n_events * sizeof *ne);
    ne[s->n_events++] = e;
    s->events = ne;
}

void t_link(tr_arena *a, traces_pb_span *s, const uint8_t tid[16], uint64_t sid, int n, ...) {
    Opentelemetry__Proto__Trace__V1__Span__Link *l = zalloc(a, sizeof *l);
    opentelemetry__proto__trace__v1__span__link__init(l);
    l->trace_id = bin(a, tid, 16);
    l->span_id = sid8(a, sid);
    COLLECT(l->attributes, l->n_attributes, n, T_KV *);
    Opentelemetry__Proto__Trace__V1__Span__Link **nl = zalloc(a, (s->n_links + 1) * sizeof *nl);
    if (s->n_links) memcpy(nl, s->links, s->n_links * sizeof *nl);
    nl[s->n_links++] = l;
    s->links = nl;
}

void t_status(tr_arena *a, traces_pb_span *s, int code, const char *msg) {
    s->status = zalloc(a, sizeof *s->status);
    opentelemetry__proto__trace__v1__status__init(s->status);
    s->status->code = code;
    s->status->message = tr_arena_strndup(a, msg, strlen(msg));
}

T_RS *t_rs(tr_arena *a, const char *service, int n, ...) {
    T_RS *rs = zalloc(a, sizeof *rs);
    opentelemetry__proto__trace__v1__resource_spans__init(rs);
    rs->resource = zalloc(a, sizeof *rs->resource);
    opentelemetry__proto__resource__v1__resource__init(rs->resource);
    va_list ap;
    va_start(ap, n);
    rs->resource->attributes = zalloc(a, (size_t)(n + 1) * sizeof(T_KV *));
    if (service) rs->resource->attributes[rs->resource->n_attributes++] = t_str(a, "service.name", service);
    for (int i = 0; i < n; i++)
        rs->resource->attributes[rs->resource->n_attributes++] = va_arg(ap, T_KV *);
    va_end(ap);
    return rs;
}

void t_scope(tr_arena *a, T_RS *rs, const char *name, const char *version, int n, ...) {
    T_SS *ss = zalloc(a, sizeof *ss);
    opentelemetry__proto__trace__v1__scope_spans__init(ss);
    ss->scope = zalloc(a, sizeof *ss->scope);
    opentelemetry__proto__common__v1__instrumentation_scope__init(ss->scope);
    ss->scope->name = tr_arena_strndup(a, name, strlen(name));
    ss->scope->version = tr_arena_strndup(a, version, strlen(version));
    COLLECT(ss->spans, ss->n_spans, n, traces_pb_span *);
    T_SS **nss = zalloc(a, (rs->n_scope_spans + 1) * sizeof *nss);
    if (rs->n_scope_spans) memcpy(nss, rs->scope_spans, rs->n_scope_spans * sizeof *nss);
    nss[rs->n_scope_spans++] = ss;
    rs->scope_spans = nss;
}

traces_request *t_req(tr_arena *a, int n, ...) {
    traces_request *r = zalloc(a, sizeof *r);
    opentelemetry__proto__collector__v1__export_trace_service_request__init(r);
    COLLECT(r->resource_spans, r->n_resource_spans, n, T_RS *);
    return r;
}

traces_store *t_open(char *dir, const traces_config *over) {
    if (!dir[0]) {
        snprintf(dir, 256, "/tmp/tr-unit-traces-XXXXXX");
        cr_assert(mkdtemp(dir));
    }
    traces_config c = {.dir = dir, .readers = 1};
    if (over) {
        c = *over;
        c.dir = dir;
    }
    char err[512];
    traces_store *s = traces_open(&c, err, sizeof err);
    cr_assert(s, "open: %s", err);
    return s;
}

typedef struct ack {
    int done, status;
    uint64_t rejected;
    char msg[256];
} ack;

static void on_ack(void *cookie, int status, uint64_t rejected, const char *msg) {
    ack *k = cookie;
    k->done = 1;
    k->status = status;
    k->rejected = rejected;
    snprintf(k->msg, sizeof k->msg, "%s", msg ? msg : "");
}

int t_ingest(traces_store *s, const traces_request *req, uint64_t *rejected, char *msg, size_t msglen) {
    ack k = {0};
    traces_submit(s, req, on_ack, &k);
    for (int i = 0; i < 20000 && !k.done; i++) {
        traces_run_completions(s);
        if (!k.done) usleep(500);
    }
    cr_assert(k.done, "ingest was not acknowledged");
    if (rejected) *rejected = k.rejected;
    if (msg) snprintf(msg, msglen, "%s", k.msg);
    return k.status;
}

uint64_t t_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}
