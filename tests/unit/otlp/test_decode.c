/* Unit tests of the binary protobuf OTLP decoder (otlp_decode_pb): round trips of requests
 * built with the protobuf-c structs, item counts, truncated and garbage input, invalid UTF-8,
 * id lengths, nesting bounds; and of the response encoders. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otlp/otlp_int.h"

typedef Opentelemetry__Proto__Common__V1__AnyValue AnyValue;
typedef Opentelemetry__Proto__Common__V1__ArrayValue ArrayValue;
typedef Opentelemetry__Proto__Common__V1__KeyValueList KeyValueList;
typedef Opentelemetry__Proto__Common__V1__KeyValue KeyValue;
typedef Opentelemetry__Proto__Common__V1__InstrumentationScope Scope;
typedef Opentelemetry__Proto__Resource__V1__Resource Resource;
typedef Opentelemetry__Proto__Trace__V1__ResourceSpans ResourceSpans;
typedef Opentelemetry__Proto__Trace__V1__ScopeSpans ScopeSpans;
typedef Opentelemetry__Proto__Trace__V1__Span Span;
typedef Opentelemetry__Proto__Trace__V1__Span__Event Event;
typedef Opentelemetry__Proto__Trace__V1__Span__Link Link;
typedef Opentelemetry__Proto__Trace__V1__Status Status;
typedef Opentelemetry__Proto__Metrics__V1__ResourceMetrics ResourceMetrics;
typedef Opentelemetry__Proto__Metrics__V1__ScopeMetrics ScopeMetrics;
typedef Opentelemetry__Proto__Metrics__V1__Metric Metric;
typedef Opentelemetry__Proto__Metrics__V1__Gauge Gauge;
typedef Opentelemetry__Proto__Metrics__V1__Sum Sum;
typedef Opentelemetry__Proto__Metrics__V1__Histogram Histogram;
typedef Opentelemetry__Proto__Metrics__V1__ExponentialHistogram ExpHistogram;
typedef Opentelemetry__Proto__Metrics__V1__Summary Summary;
typedef Opentelemetry__Proto__Metrics__V1__NumberDataPoint NumberDP;
typedef Opentelemetry__Proto__Metrics__V1__HistogramDataPoint HistDP;
typedef Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint ExpDP;
typedef Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint__Buckets Buckets;
typedef Opentelemetry__Proto__Metrics__V1__SummaryDataPoint SummaryDP;
typedef Opentelemetry__Proto__Metrics__V1__SummaryDataPoint__ValueAtQuantile Quantile;
typedef Opentelemetry__Proto__Metrics__V1__Exemplar Exemplar;

static tr_arena *arena;
static char err[256];

static void setup(void) {
    arena = tr_arena_new(64u << 20);
    err[0] = 0;
}
static void teardown(void) { tr_arena_free(arena); }

TestSuite(otlp_decode, .init = setup, .fini = teardown);

/* Decodes with a fresh arena each time (the old one is freed). */
static int dec(otlp_signal sig, const void *buf, size_t len, otlp_export *ex) {
    tr_arena_free(arena);
    arena = tr_arena_new(64u << 20);
    memset(ex, 0, sizeof *ex);
    err[0] = 0;
    return otlp_decode_pb(sig, buf, len, arena, ex, err, sizeof err);
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *len) {
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(*len ? *len : 1);
    cr_assert(b);
    cr_assert_eq(protobuf_c_message_pack(m, b), *len);
    return b;
}

static uint8_t *read_file(const char *rel, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", TR_SOURCE_DIR, rel);
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* ---- a trace request built from the structs ---- */

typedef struct tfix {
    otlp_traces_req req;
    ResourceSpans rs, *rsp[1];
    Resource res;
    KeyValue rkv[2], *rkvp[2];
    AnyValue rav[2];
    ScopeSpans ss, *ssp[1];
    Scope scope;
    Span sp[2], *spp[2];
    KeyValue skv[3], *skvp[3];
    AnyValue sav[3];
    /* a kvlist attribute {"inner": "deep"} */
    KeyValueList kvl;
    KeyValue ikv, *ikvp[1];
    AnyValue iav;
    Event ev, *evp[1];
    KeyValue ekv, *ekvp[1];
    AnyValue eav;
    Link ln, *lnp[1];
    KeyValue lkv, *lkvp[1];
    AnyValue lav;
    Status st;
    uint8_t tid[16], sid[8], sid2[8], psid[8];
} tfix;

static void kv_str(KeyValue *kv, AnyValue *av, const char *k, const char *v) {
    opentelemetry__proto__common__v1__key_value__init(kv);
    opentelemetry__proto__common__v1__any_value__init(av);
    kv->key = (char *)k;
    kv->value = av;
    av->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    av->string_value = (char *)v;
}

static void tfix_init(tfix *f) {
    memset(f, 0, sizeof *f);
    for (int i = 0; i < 16; i++)
        f->tid[i] = (uint8_t)(0xA0 + i);
    for (int i = 0; i < 8; i++)
        f->sid[i] = (uint8_t)(0x10 + i), f->sid2[i] = (uint8_t)(0x20 + i), f->psid[i] = (uint8_t)(0x30 + i);
    opentelemetry__proto__collector__v1__export_trace_service_request__init(&f->req);
    opentelemetry__proto__trace__v1__resource_spans__init(&f->rs);
    opentelemetry__proto__resource__v1__resource__init(&f->res);
    opentelemetry__proto__trace__v1__scope_spans__init(&f->ss);
    opentelemetry__proto__common__v1__instrumentation_scope__init(&f->scope);
    f->req.n_resource_spans = 1;
    f->req.resource_spans = f->rsp;
    f->rsp[0] = &f->rs;
    f->rs.resource = &f->res;
    f->rs.schema_url = "https://opentelemetry.io/schemas/1.21.0";
    kv_str(&f->rkv[0], &f->rav[0], "service.name", "checkout");
    opentelemetry__proto__common__v1__key_value__init(&f->rkv[1]);
    opentelemetry__proto__common__v1__any_value__init(&f->rav[1]);
    f->rkv[1].key = "host.cpus";
    f->rkv[1].value = &f->rav[1];
    f->rav[1].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    f->rav[1].int_value = -42;
    f->rkvp[0] = &f->rkv[0];
    f->rkvp[1] = &f->rkv[1];
    f->res.n_attributes = 2;
    f->res.attributes = f->rkvp;
    f->rs.n_scope_spans = 1;
    f->rs.scope_spans = f->ssp;
    f->ssp[0] = &f->ss;
    f->ss.scope = &f->scope;
    f->scope.name = "my.lib";
    f->scope.version = "1.0";
    f->ss.n_spans = 2;
    f->ss.spans = f->spp;
    for (int i = 0; i < 2; i++) {
        opentelemetry__proto__trace__v1__span__init(&f->sp[i]);
        f->spp[i] = &f->sp[i];
        f->sp[i].trace_id.data = f->tid;
        f->sp[i].trace_id.len = 16;
        f->sp[i].start_time_unix_nano = 1700000000123456789ull + (uint64_t)i;
        f->sp[i].end_time_unix_nano = 1700000001000000000ull;
    }
    Span *root = &f->sp[0], *child = &f->sp[1];
    root->span_id.data = f->sid;
    root->span_id.len = 8;
    root->name = "GET /checkout";
    root->kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER;
    root->trace_state = "vendor=1";
    root->flags = 0x301;
    kv_str(&f->skv[0], &f->sav[0], "http.method", "GET");
    opentelemetry__proto__common__v1__key_value__init(&f->skv[1]);
    opentelemetry__proto__common__v1__any_value__init(&f->sav[1]);
    f->skv[1].key = "ratio";
    f->skv[1].value = &f->sav[1];
    f->sav[1].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
    f->sav[1].double_value = 0.25;
    opentelemetry__proto__common__v1__key_value__init(&f->skv[2]);
    opentelemetry__proto__common__v1__any_value__init(&f->sav[2]);
    opentelemetry__proto__common__v1__key_value_list__init(&f->kvl);
    f->skv[2].key = "map";
    f->skv[2].value = &f->sav[2];
    f->sav[2].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE;
    f->sav[2].kvlist_value = &f->kvl;
    kv_str(&f->ikv, &f->iav, "inner", "deep");
    f->ikvp[0] = &f->ikv;
    f->kvl.n_values = 1;
    f->kvl.values = f->ikvp;
    for (int i = 0; i < 3; i++)
        f->skvp[i] = &f->skv[i];
    root->n_attributes = 3;
    root->attributes = f->skvp;
    opentelemetry__proto__trace__v1__span__event__init(&f->ev);
    f->ev.name = "exception";
    f->ev.time_unix_nano = 1700000000500000000ull;
    kv_str(&f->ekv, &f->eav, "exception.message", "boom");
    f->ekvp[0] = &f->ekv;
    f->ev.n_attributes = 1;
    f->ev.attributes = f->ekvp;
    f->evp[0] = &f->ev;
    root->n_events = 1;
    root->events = f->evp;
    opentelemetry__proto__trace__v1__status__init(&f->st);
    f->st.code = OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR;
    f->st.message = "payment failed";
    root->status = &f->st;

    child->span_id.data = f->sid2;
    child->span_id.len = 8;
    child->parent_span_id.data = f->sid;
    child->parent_span_id.len = 8;
    child->name = "charge card";
    child->kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT;
    opentelemetry__proto__trace__v1__span__link__init(&f->ln);
    f->ln.trace_id.data = f->tid;
    f->ln.trace_id.len = 16;
    f->ln.span_id.data = f->psid;
    f->ln.span_id.len = 8;
    f->ln.trace_state = "x=y";
    kv_str(&f->lkv, &f->lav, "reason", "retry");
    f->lkvp[0] = &f->lkv;
    f->ln.n_attributes = 1;
    f->ln.attributes = f->lkvp;
    f->lnp[0] = &f->ln;
    child->n_links = 1;
    child->links = f->lnp;
}

Test(otlp_decode, traces_round_trip) {
    tfix f;
    tfix_init(&f);
    size_t n;
    uint8_t *b = pack(&f.req.base, &n);
    otlp_export ex;
    cr_assert_eq(dec(OTLP_TRACES, b, n, &ex), 0, "%s", err);
    free(b);
    cr_assert_eq(ex.items, 2);
    cr_assert_null(ex.metrics);
    otlp_traces_req *t = ex.traces;
    cr_assert_eq(t->n_resource_spans, 1);
    ResourceSpans *rs = t->resource_spans[0];
    cr_assert_str_eq(rs->schema_url, "https://opentelemetry.io/schemas/1.21.0");
    cr_assert_eq(rs->resource->n_attributes, 2);
    cr_assert_str_eq(rs->resource->attributes[0]->key, "service.name");
    cr_assert_str_eq(rs->resource->attributes[0]->value->string_value, "checkout");
    cr_assert_eq(rs->resource->attributes[1]->value->int_value, -42);
    ScopeSpans *ss = rs->scope_spans[0];
    cr_assert_str_eq(ss->scope->name, "my.lib");
    cr_assert_str_eq(ss->scope->version, "1.0");
    cr_assert_eq(ss->n_spans, 2);
    Span *root = ss->spans[0], *child = ss->spans[1];
    cr_assert_eq(root->trace_id.len, 16);
    cr_assert_arr_eq(root->trace_id.data, f.tid, 16);
    cr_assert_arr_eq(root->span_id.data, f.sid, 8);
    cr_assert_eq(root->parent_span_id.len, 0);
    cr_assert_str_eq(root->name, "GET /checkout");
    cr_assert_eq(root->kind, OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_SERVER);
    cr_assert_str_eq(root->trace_state, "vendor=1");
    cr_assert_eq(root->flags, 0x301);
    cr_assert_eq(root->start_time_unix_nano, 1700000000123456789ull);
    cr_assert_eq(root->end_time_unix_nano, 1700000001000000000ull);
    cr_assert_eq(root->n_attributes, 3);
    cr_assert_eq(root->attributes[1]->value->double_value, 0.25);
    AnyValue *map = root->attributes[2]->value;
    cr_assert_eq(map->value_case, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE);
    cr_assert_str_eq(map->kvlist_value->values[0]->key, "inner");
    cr_assert_str_eq(map->kvlist_value->values[0]->value->string_value, "deep");
    cr_assert_eq(root->n_events, 1);
    cr_assert_str_eq(root->events[0]->name, "exception");
    cr_assert_eq(root->events[0]->time_unix_nano, 1700000000500000000ull);
    cr_assert_str_eq(root->events[0]->attributes[0]->value->string_value, "boom");
    cr_assert_eq(root->status->code, OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR);
    cr_assert_str_eq(root->status->message, "payment failed");
    cr_assert_arr_eq(child->parent_span_id.data, f.sid, 8);
    cr_assert_eq(child->n_links, 1);
    cr_assert_arr_eq(child->links[0]->span_id.data, f.psid, 8);
    cr_assert_str_eq(child->links[0]->trace_state, "x=y");
    cr_assert_str_eq(child->links[0]->attributes[0]->value->string_value, "retry");
}

/* ---- a metrics request with every metric type ---- */

typedef struct mfix {
    otlp_metrics_req req;
    ResourceMetrics rm, *rmp[1];
    Resource res;
    ScopeMetrics sm, *smp[1];
    Scope scope;
    Metric m[5], *mp[5];
    Gauge gauge;
    Sum sum;
    Histogram hist;
    ExpHistogram exph;
    Summary summ;
    NumberDP g[2], *gp[2], s[3], *sp[3];
    HistDP h, *hp[1];
    uint64_t hcounts[3];
    double hbounds[2];
    ExpDP e, *ep[1];
    Buckets pos, neg;
    uint64_t ecounts[4];
    SummaryDP q[2], *qp[2];
    Quantile qv[2], *qvp[2];
    KeyValue kv, *kvp[1];
    AnyValue av;
    Exemplar ex, *exp[1];
    KeyValue xkv, *xkvp[1];
    AnyValue xav;
    uint8_t tid[16], sid[8];
} mfix;

static void mfix_init(mfix *f) {
    memset(f, 0, sizeof *f);
    opentelemetry__proto__collector__v1__export_metrics_service_request__init(&f->req);
    opentelemetry__proto__metrics__v1__resource_metrics__init(&f->rm);
    opentelemetry__proto__resource__v1__resource__init(&f->res);
    opentelemetry__proto__metrics__v1__scope_metrics__init(&f->sm);
    opentelemetry__proto__common__v1__instrumentation_scope__init(&f->scope);
    f->req.n_resource_metrics = 1;
    f->req.resource_metrics = f->rmp;
    f->rmp[0] = &f->rm;
    f->rm.resource = &f->res;
    f->rm.n_scope_metrics = 1;
    f->rm.scope_metrics = f->smp;
    f->smp[0] = &f->sm;
    f->sm.scope = &f->scope;
    f->scope.name = "meter";
    f->sm.n_metrics = 5;
    f->sm.metrics = f->mp;
    kv_str(&f->kv, &f->av, "route", "/a");
    f->kvp[0] = &f->kv;
    for (int i = 0; i < 5; i++) {
        opentelemetry__proto__metrics__v1__metric__init(&f->m[i]);
        f->mp[i] = &f->m[i];
    }
    /* gauge: a double and an int point, the first with an exemplar */
    opentelemetry__proto__metrics__v1__gauge__init(&f->gauge);
    f->m[0].name = "temperature";
    f->m[0].unit = "Cel";
    f->m[0].description = "Room temperature";
    f->m[0].data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE;
    f->m[0].gauge = &f->gauge;
    for (int i = 0; i < 2; i++) {
        opentelemetry__proto__metrics__v1__number_data_point__init(&f->g[i]);
        f->gp[i] = &f->g[i];
        f->g[i].time_unix_nano = 1700000000000000000ull + (uint64_t)i;
        f->g[i].n_attributes = 1;
        f->g[i].attributes = f->kvp;
    }
    f->g[0].value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
    f->g[0].as_double = 21.5;
    f->g[1].value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT;
    f->g[1].as_int = -9007199254740993ll;
    f->gauge.n_data_points = 2;
    f->gauge.data_points = f->gp;
    opentelemetry__proto__metrics__v1__exemplar__init(&f->ex);
    for (int i = 0; i < 16; i++)
        f->tid[i] = (uint8_t)i;
    for (int i = 0; i < 8; i++)
        f->sid[i] = (uint8_t)(0xF0 + i);
    f->ex.trace_id.data = f->tid;
    f->ex.trace_id.len = 16;
    f->ex.span_id.data = f->sid;
    f->ex.span_id.len = 8;
    f->ex.value_case = OPENTELEMETRY__PROTO__METRICS__V1__EXEMPLAR__VALUE_AS_DOUBLE;
    f->ex.as_double = 22;
    kv_str(&f->xkv, &f->xav, "user", "u1");
    f->xkvp[0] = &f->xkv;
    f->ex.n_filtered_attributes = 1;
    f->ex.filtered_attributes = f->xkvp;
    f->exp[0] = &f->ex;
    f->g[0].n_exemplars = 1;
    f->g[0].exemplars = f->exp;
    /* sum: three int points, cumulative, monotonic */
    opentelemetry__proto__metrics__v1__sum__init(&f->sum);
    f->m[1].name = "requests";
    f->m[1].data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM;
    f->m[1].sum = &f->sum;
    f->sum.aggregation_temporality =
        OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE;
    f->sum.is_monotonic = 1;
    for (int i = 0; i < 3; i++) {
        opentelemetry__proto__metrics__v1__number_data_point__init(&f->s[i]);
        f->sp[i] = &f->s[i];
        f->s[i].value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT;
        f->s[i].as_int = 10 * (i + 1);
    }
    f->sum.n_data_points = 3;
    f->sum.data_points = f->sp;
    /* histogram */
    opentelemetry__proto__metrics__v1__histogram__init(&f->hist);
    f->m[2].name = "latency";
    f->m[2].unit = "s";
    f->m[2].data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM;
    f->m[2].histogram = &f->hist;
    f->hist.aggregation_temporality =
        OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_DELTA;
    opentelemetry__proto__metrics__v1__histogram_data_point__init(&f->h);
    f->hp[0] = &f->h;
    f->hcounts[0] = 1, f->hcounts[1] = 2, f->hcounts[2] = 3;
    f->hbounds[0] = 0.5, f->hbounds[1] = 1;
    f->h.count = 6;
    f->h.n_bucket_counts = 3;
    f->h.bucket_counts = f->hcounts;
    f->h.n_explicit_bounds = 2;
    f->h.explicit_bounds = f->hbounds;
    f->h._sum_case = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___SUM_SUM;
    f->h.sum = 7.5;
    f->h._min_case = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___MIN_MIN;
    f->h.min = 0;
    f->hist.n_data_points = 1;
    f->hist.data_points = f->hp;
    /* exponential histogram */
    opentelemetry__proto__metrics__v1__exponential_histogram__init(&f->exph);
    f->m[3].name = "latency_exp";
    f->m[3].data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM;
    f->m[3].exponential_histogram = &f->exph;
    opentelemetry__proto__metrics__v1__exponential_histogram_data_point__init(&f->e);
    opentelemetry__proto__metrics__v1__exponential_histogram_data_point__buckets__init(&f->pos);
    opentelemetry__proto__metrics__v1__exponential_histogram_data_point__buckets__init(&f->neg);
    f->ep[0] = &f->e;
    f->e.scale = -3;
    f->e.count = 10;
    f->e.zero_count = 1;
    f->e.zero_threshold = 1e-9;
    f->ecounts[0] = 2, f->ecounts[1] = 3, f->ecounts[2] = 0, f->ecounts[3] = 4;
    f->pos.offset = -2;
    f->pos.n_bucket_counts = 4;
    f->pos.bucket_counts = f->ecounts;
    f->e.positive = &f->pos;
    f->e.negative = &f->neg;
    f->exph.n_data_points = 1;
    f->exph.data_points = f->ep;
    /* summary: two points with two quantiles */
    opentelemetry__proto__metrics__v1__summary__init(&f->summ);
    f->m[4].name = "rpc_duration";
    f->m[4].data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY;
    f->m[4].summary = &f->summ;
    for (int i = 0; i < 2; i++) {
        opentelemetry__proto__metrics__v1__summary_data_point__init(&f->q[i]);
        opentelemetry__proto__metrics__v1__summary_data_point__value_at_quantile__init(&f->qv[i]);
        f->qp[i] = &f->q[i];
        f->qvp[i] = &f->qv[i];
        f->q[i].count = 100;
        f->q[i].sum = 12.5;
        f->q[i].n_quantile_values = 2;
        f->q[i].quantile_values = f->qvp;
    }
    f->qv[0].quantile = 0.5, f->qv[0].value = 0.1;
    f->qv[1].quantile = 0.99, f->qv[1].value = 0.9;
    f->summ.n_data_points = 2;
    f->summ.data_points = f->qp;
}

Test(otlp_decode, metrics_round_trip_every_type) {
    mfix f;
    mfix_init(&f);
    size_t n;
    uint8_t *b = pack(&f.req.base, &n);
    otlp_export ex;
    cr_assert_eq(dec(OTLP_METRICS, b, n, &ex), 0, "%s", err);
    free(b);
    cr_assert_null(ex.traces);
    cr_assert_eq(ex.items, 2 + 3 + 1 + 1 + 2);
    ScopeMetrics *sm = ex.metrics->resource_metrics[0]->scope_metrics[0];
    cr_assert_str_eq(sm->scope->name, "meter");
    cr_assert_eq(sm->n_metrics, 5);
    Metric *g = sm->metrics[0];
    cr_assert_str_eq(g->name, "temperature");
    cr_assert_str_eq(g->unit, "Cel");
    cr_assert_str_eq(g->description, "Room temperature");
    cr_assert_eq(g->data_case, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE);
    cr_assert_eq(g->gauge->data_points[0]->as_double, 21.5);
    cr_assert_eq(g->gauge->data_points[1]->value_case,
                 OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT);
    cr_assert_eq(g->gauge->data_points[1]->as_int, -9007199254740993ll);
    cr_assert_eq(g->gauge->data_points[1]->time_unix_nano, 1700000000000000001ull);
    cr_assert_str_eq(g->gauge->data_points[0]->attributes[0]->value->string_value, "/a");
    Exemplar *x = g->gauge->data_points[0]->exemplars[0];
    cr_assert_arr_eq(x->trace_id.data, f.tid, 16);
    cr_assert_arr_eq(x->span_id.data, f.sid, 8);
    cr_assert_eq(x->as_double, 22);
    cr_assert_str_eq(x->filtered_attributes[0]->key, "user");
    Metric *s = sm->metrics[1];
    cr_assert_eq(s->data_case, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM);
    cr_assert(s->sum->is_monotonic);
    cr_assert_eq(
        s->sum->aggregation_temporality,
        OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE);
    cr_assert_eq(s->sum->data_points[2]->as_int, 30);
    HistDP *h = sm->metrics[2]->histogram->data_points[0];
    cr_assert_eq(sm->metrics[2]->histogram->aggregation_temporality,
                 OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_DELTA);
    cr_assert_eq(h->count, 6);
    cr_assert_eq(h->n_bucket_counts, 3);
    cr_assert_eq(h->bucket_counts[2], 3);
    cr_assert_eq(h->n_explicit_bounds, 2);
    cr_assert_eq(h->explicit_bounds[0], 0.5);
    cr_assert_eq(h->_sum_case, OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___SUM_SUM);
    cr_assert_eq(h->sum, 7.5);
    cr_assert_eq(h->_min_case, OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___MIN_MIN,
                 "min = 0 keeps its presence");
    cr_assert_eq(h->_max_case, OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___MAX__NOT_SET);
    ExpDP *e = sm->metrics[3]->exponential_histogram->data_points[0];
    cr_assert_eq(e->scale, -3);
    cr_assert_eq(e->zero_count, 1);
    cr_assert_eq(e->zero_threshold, 1e-9);
    cr_assert_eq(e->positive->offset, -2);
    cr_assert_eq(e->positive->n_bucket_counts, 4);
    cr_assert_eq(e->positive->bucket_counts[3], 4);
    cr_assert_not_null(e->negative);
    cr_assert_eq(e->negative->n_bucket_counts, 0);
    SummaryDP *q = sm->metrics[4]->summary->data_points[1];
    cr_assert_eq(q->count, 100);
    cr_assert_eq(q->sum, 12.5);
    cr_assert_eq(q->n_quantile_values, 2);
    cr_assert_eq(q->quantile_values[1]->quantile, 0.99);
    cr_assert_eq(q->quantile_values[1]->value, 0.9);
}

/* One metric of each type alone, with k points: the count is the number of points. */
Test(otlp_decode, item_count_per_metric_type) {
    for (int type = 0; type < 5; type++) {
        for (size_t k = 0; k <= 3; k++) {
            mfix f;
            mfix_init(&f);
            NumberDP pts[3], *pp[3];
            HistDP hp[3], *hpp[3];
            ExpDP ep[3], *epp[3];
            SummaryDP sp[3], *spp[3];
            for (size_t i = 0; i < 3; i++) {
                opentelemetry__proto__metrics__v1__number_data_point__init(&pts[i]);
                opentelemetry__proto__metrics__v1__histogram_data_point__init(&hp[i]);
                opentelemetry__proto__metrics__v1__exponential_histogram_data_point__init(&ep[i]);
                opentelemetry__proto__metrics__v1__summary_data_point__init(&sp[i]);
                pp[i] = &pts[i], hpp[i] = &hp[i], epp[i] = &ep[i], spp[i] = &sp[i];
            }
            f.gauge.n_data_points = f.sum.n_data_points = f.hist.n_data_points = k;
            f.exph.n_data_points = f.summ.n_data_points = k;
            f.gauge.data_points = f.sum.data_points = pp;
            f.hist.data_points = hpp;
            f.exph.data_points = epp;
            f.summ.data_points = spp;
            f.sm.metrics = &f.mp[type];
            f.sm.n_metrics = 1;
            size_t n;
            uint8_t *b = pack(&f.req.base, &n);
            otlp_export ex;
            cr_assert_eq(dec(OTLP_METRICS, b, n, &ex), 0, "%s", err);
            free(b);
            cr_assert_eq(ex.items, k, "type %d with %zu points counted %llu", type, k,
                         (unsigned long long)ex.items);
        }
    }
}

Test(otlp_decode, empty_request_is_valid) {
    otlp_export ex;
    cr_assert_eq(dec(OTLP_METRICS, "", 0, &ex), 0);
    cr_assert_eq(ex.items, 0);
    cr_assert_not_null(ex.metrics);
    cr_assert_eq(dec(OTLP_TRACES, NULL, 0, &ex), 0);
    cr_assert_not_null(ex.traces);
}

Test(otlp_decode, logs_signal_refused) {
    otlp_export ex;
    cr_assert_eq(dec(OTLP_LOGS, "", 0, &ex), -1);
    cr_assert(err[0]);
}

/* Cutting a real message at every byte: never a crash or an over-read (ASan), and either an
 * error or a request with no more items than the whole. */
static void truncate_everywhere(otlp_signal sig, const uint8_t *b, size_t n) {
    otlp_export ex;
    cr_assert_eq(dec(sig, b, n, &ex), 0, "%s", err);
    uint64_t full = ex.items;
    cr_assert_gt(full, 0);
    int errors = 0;
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1); /* exact size, so ASan sees any over-read */
        memcpy(copy, b, cut);
        int rc = dec(sig, copy, cut, &ex);
        if (rc == 0)
            cr_assert_leq(ex.items, full, "cut at %zu: %llu items", cut, (unsigned long long)ex.items);
        else {
            errors++;
            cr_assert(err[0], "an error names its reason");
        }
        free(copy);
    }
    cr_assert_gt(errors, (int)(n / 2), "most cuts land inside a field");
}

Test(otlp_decode, truncated_at_every_offset) {
    tfix t;
    tfix_init(&t);
    size_t n;
    uint8_t *b = pack(&t.req.base, &n);
    truncate_everywhere(OTLP_TRACES, b, n);
    free(b);
    mfix m;
    mfix_init(&m);
    b = pack(&m.req.base, &n);
    truncate_everywhere(OTLP_METRICS, b, n);
    free(b);
    /* the JS SDK's own encodings */
    b = read_file("tests/fuzz/corpus/fuzz_otlp_pb/sdk_traces.pb", &n);
    truncate_everywhere(OTLP_TRACES, b, n);
    free(b);
    b = read_file("tests/fuzz/corpus/fuzz_otlp_pb/sdk_metrics.pb", &n);
    truncate_everywhere(OTLP_METRICS, b, n);
    free(b);
}

Test(otlp_decode, sdk_encodings_decode) {
    size_t n;
    otlp_export ex;
    uint8_t *b = read_file("tests/fuzz/corpus/fuzz_otlp_pb/sdk_traces.pb", &n);
    cr_assert_eq(dec(OTLP_TRACES, b, n, &ex), 0, "%s", err);
    cr_assert_eq(ex.items, 3);
    free(b);
    b = read_file("tests/fuzz/corpus/fuzz_otlp_pb/sdk_metrics.pb", &n);
    cr_assert_eq(dec(OTLP_METRICS, b, n, &ex), 0, "%s", err);
    cr_assert_eq(ex.items, 6);
    free(b);
}

Test(otlp_decode, malformed_wire_format) {
    static const struct {
        const char *b;
        size_t n;
        const char *why;
    } bad[] = {
        {"\x0a\x05"
         "ab",
         4, "length past the end"},
        {"\x0a", 1, "missing length"},
        {"\x08", 1, "truncated varint"},
        {"\x0a\x80", 2, "truncated length varint"},
        {"\x00\x01", 2, "field number 0"},
        {"\x0b\x0c", 2, "group wire type"},
        {"\x0e", 1, "wire type 6"},
        {"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12, "11-byte varint"},
        {"\x08\x01", 2, "varint where a message is declared"},
        {"\x0a\x02\x0a\x05", 4, "inner length past the outer one"},
        {"\x0a\x03\x12\x01\xff", 5, "sub-message field cut by its parent"},
        {"\x0d\x00\x00", 3, "fixed32 cut short"},
        {"\x09\x00\x00\x00\x00\x00\x00\x00", 8, "fixed64 cut short"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint8_t *copy = malloc(bad[i].n);
        memcpy(copy, bad[i].b, bad[i].n);
        otlp_export ex;
        cr_assert_eq(dec(OTLP_TRACES, copy, bad[i].n, &ex), -1, "%s accepted", bad[i].why);
        cr_assert(strstr(err, "not a valid protobuf trace export request"), "%s: %s", bad[i].why, err);
        cr_assert_eq(dec(OTLP_METRICS, copy, bad[i].n, &ex), -1, "%s accepted", bad[i].why);
        free(copy);
    }
}

Test(otlp_decode, unknown_fields_are_skipped) {
    /* field 15 (unknown) as varint, fixed64, bytes and fixed32, then one empty ResourceSpans */
    static const uint8_t b[] = {0x78, 0x96, 0x01, 0x79, 1,    2, 3, 4, 5, 6,    7,   8,
                                0x7a, 0x02, 'h',  'i',  0x7d, 1, 2, 3, 4, 0x0a, 0x00};
    otlp_export ex;
    cr_assert_eq(dec(OTLP_TRACES, b, sizeof b, &ex), 0, "%s", err);
    cr_assert_eq(ex.traces->n_resource_spans, 1);
    cr_assert_eq(ex.items, 0);
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

Test(otlp_decode, random_garbage_and_mutations) {
    tfix t;
    tfix_init(&t);
    size_t n;
    uint8_t *orig = pack(&t.req.base, &n);
    for (int round = 0; round < 3000; round++) {
        size_t len;
        uint8_t *b;
        if (round % 2) { /* pure garbage */
            len = next_rand() % 200;
            b = malloc(len ? len : 1);
            for (size_t i = 0; i < len; i++)
                b[i] = (uint8_t)next_rand();
        } else { /* a real message with a few bytes flipped */
            len = n;
            b = malloc(n);
            memcpy(b, orig, n);
            for (int k = 0; k < 3; k++)
                b[next_rand() % n] = (uint8_t)next_rand();
        }
        otlp_export ex;
        int rc = dec(round % 3 ? OTLP_TRACES : OTLP_METRICS, b, len, &ex);
        cr_assert(rc == 0 || rc == -1);
        if (rc) cr_assert(err[0]);
        free(b);
    }
    free(orig);
}

/* ---- invalid UTF-8: every string field is checked and named ---- */

static const char *const bad_utf8[] = {
    "\xff",             /* never valid */
    "ab\xc0\x80",       /* overlong NUL */
    "\xed\xa0\x80",     /* UTF-16 surrogate */
    "\xf4\x90\x80\x80", /* past U+10FFFF */
    "caf\xc3",          /* cut sequence */
    "\xe2\x82\x28",     /* bad continuation */
};

static void expect_trace_error(tfix *f, const char *path_and_reason) {
    size_t n;
    uint8_t *b = pack(&f->req.base, &n);
    otlp_export ex;
    int rc = dec(OTLP_TRACES, b, n, &ex);
    free(b);
    cr_assert_eq(rc, -1, "accepted; expected %s", path_and_reason);
    cr_assert_str_eq(err, path_and_reason);
}

Test(otlp_decode, invalid_utf8_in_trace_strings) {
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof *bad_utf8; i++) {
        char *s = (char *)bad_utf8[i];
        tfix f;
        tfix_init(&f);
        f.rkv[1].key = s;
        expect_trace_error(&f, "resource_spans[0].resource.attributes[1].key: invalid UTF-8");
        tfix_init(&f);
        f.rav[0].string_value = s;
        expect_trace_error(&f, "resource_spans[0].resource.attributes[0].value.string_value: invalid UTF-8");
        tfix_init(&f);
        f.rs.schema_url = s;
        expect_trace_error(&f, "resource_spans[0].schema_url: invalid UTF-8");
        tfix_init(&f);
        f.ss.schema_url = s;
        expect_trace_error(&f, "resource_spans[0].scope_spans[0].schema_url: invalid UTF-8");
        tfix_init(&f);
        f.scope.version = s;
        expect_trace_error(&f, "resource_spans[0].scope_spans[0].scope.version: invalid UTF-8");
        tfix_init(&f);
        f.sp[1].name = s;
        expect_trace_error(&f, "resource_spans[0].scope_spans[0].spans[1].name: invalid UTF-8");
        tfix_init(&f);
        f.sp[0].trace_state = s;
        expect_trace_error(&f, "resource_spans[0].scope_spans[0].spans[0].trace_state: invalid UTF-8");
        tfix_init(&f);
        f.iav.string_value = s; /* inside a kvlist */
        expect_trace_error(&f, "resource_spans[0].scope_spans[0].spans[0].attributes[2].value.kvlist_value."
                               "values[0].value.string_value: invalid UTF-8");
        tfix_init(&f);
        f.ikv.key = s;
        expect_trace_error(&f, "resource_spans[0].scope_spans[0].spans[0].attributes[2].value.kvlist_value."
                               "values[0].key: invalid UTF-8");
        tfix_init(&f);
        f.ev.name = s;
        expect_trace_error(&f, "resource_spans[0].scope_spans[0].spans[0].events[0].name: invalid UTF-8");
        tfix_init(&f);
        f.eav.string_value = s;
        expect_trace_error(&f, "resource_spans[0].scope_spans[0].spans[0].events[0].attributes[0].value."
                               "string_value: invalid UTF-8");
        tfix_init(&f);
        f.st.message = s;
        expect_trace_error(&f, "resource_spans[0].scope_spans[0].spans[0].status.message: invalid UTF-8");
        tfix_init(&f);
        f.ln.trace_state = s;
        expect_trace_error(&f,
                           "resource_spans[0].scope_spans[0].spans[1].links[0].trace_state: invalid UTF-8");
        tfix_init(&f);
        f.lkv.key = s;
        expect_trace_error(
            &f, "resource_spans[0].scope_spans[0].spans[1].links[0].attributes[0].key: invalid UTF-8");
    }
}

Test(otlp_decode, invalid_utf8_in_metric_strings) {
    static const char *const paths[] = {
        "resource_metrics[0].scope_metrics[0].metrics[0].name: invalid UTF-8",
        "resource_metrics[0].scope_metrics[0].metrics[0].description: invalid UTF-8",
        "resource_metrics[0].scope_metrics[0].metrics[0].unit: invalid UTF-8",
        "resource_metrics[0].scope_metrics[0].scope.name: invalid UTF-8",
        "resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0].attributes[0].value.string_"
        "value: invalid UTF-8",
        "resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0].exemplars[0].filtered_"
        "attributes[0].key: invalid UTF-8",
    };
    for (int w = 0; w < 6; w++) {
        mfix f;
        mfix_init(&f);
        char *s = "\xc3\x28";
        switch (w) {
        case 0:
            f.m[0].name = s;
            break;
        case 1:
            f.m[0].description = s;
            break;
        case 2:
            f.m[0].unit = s;
            break;
        case 3:
            f.scope.name = s;
            break;
        case 4:
            f.av.string_value = s;
            break;
        case 5:
            f.xkv.key = s;
            break;
        }
        size_t n;
        uint8_t *b = pack(&f.req.base, &n);
        otlp_export ex;
        cr_assert_eq(dec(OTLP_METRICS, b, n, &ex), -1, "case %d accepted", w);
        free(b);
        cr_assert_str_eq(err, paths[w]);
    }
}

Test(otlp_decode, valid_multibyte_utf8_accepted) {
    tfix f;
    tfix_init(&f);
    f.sp[0].name = "grüße ✓ \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"; /* 2, 3 and 4-byte forms, U+10FFFF */
    size_t n;
    uint8_t *b = pack(&f.req.base, &n);
    otlp_export ex;
    cr_assert_eq(dec(OTLP_TRACES, b, n, &ex), 0, "%s", err);
    free(b);
    cr_assert_str_eq(ex.traces->resource_spans[0]->scope_spans[0]->spans[0]->name, f.sp[0].name);
}

/* ---- ids ---- */

Test(otlp_decode, wrong_id_lengths_rejected) {
    tfix f;
    tfix_init(&f);
    f.sp[0].trace_id.len = 15;
    expect_trace_error(&f, "resource_spans[0].scope_spans[0].spans[0].trace_id: must be 16 bytes, got 15");
    tfix_init(&f);
    f.sp[1].span_id.len = 7;
    expect_trace_error(&f, "resource_spans[0].scope_spans[0].spans[1].span_id: must be 8 bytes, got 7");
    tfix_init(&f);
    uint8_t nine[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    f.sp[1].parent_span_id.data = nine;
    f.sp[1].parent_span_id.len = 9;
    expect_trace_error(&f,
                       "resource_spans[0].scope_spans[0].spans[1].parent_span_id: must be 8 bytes, got 9");
    tfix_init(&f);
    f.ln.span_id.len = 4;
    expect_trace_error(&f,
                       "resource_spans[0].scope_spans[0].spans[1].links[0].span_id: must be 8 bytes, got 4");
    tfix_init(&f);
    f.ln.trace_id.len = 1;
    expect_trace_error(
        &f, "resource_spans[0].scope_spans[0].spans[1].links[0].trace_id: must be 16 bytes, got 1");

    mfix m;
    mfix_init(&m);
    m.ex.trace_id.len = 3;
    size_t n;
    uint8_t *b = pack(&m.req.base, &n);
    otlp_export ex;
    cr_assert_eq(dec(OTLP_METRICS, b, n, &ex), -1);
    free(b);
    cr_assert_str_eq(err, "resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0].exemplars[0]."
                          "trace_id: must be 16 bytes, got 3");
}

Test(otlp_decode, empty_ids_accepted_here) {
    /* the trace store refuses such spans later, through partial_success */
    tfix f;
    tfix_init(&f);
    f.sp[0].trace_id.len = 0;
    f.sp[0].span_id.len = 0;
    size_t n;
    uint8_t *b = pack(&f.req.base, &n);
    otlp_export ex;
    cr_assert_eq(dec(OTLP_TRACES, b, n, &ex), 0, "%s", err);
    free(b);
    cr_assert_eq(ex.traces->resource_spans[0]->scope_spans[0]->spans[0]->trace_id.len, 0);
    cr_assert_eq(ex.items, 2);
}

Test(otlp_decode, bytes_value_attribute_not_an_id) {
    tfix f;
    tfix_init(&f);
    uint8_t raw[3] = {0, 0xff, 7};
    f.sav[0].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE;
    f.sav[0].bytes_value.data = raw;
    f.sav[0].bytes_value.len = 3;
    size_t n;
    uint8_t *b = pack(&f.req.base, &n);
    otlp_export ex;
    cr_assert_eq(dec(OTLP_TRACES, b, n, &ex), 0, "%s", err);
    free(b);
    AnyValue *v = ex.traces->resource_spans[0]->scope_spans[0]->spans[0]->attributes[0]->value;
    cr_assert_eq(v->bytes_value.len, 3);
    cr_assert_arr_eq(v->bytes_value.data, raw, 3);
}

/* ---- nesting ---- */

/* Wraps the span's first attribute value in `levels` AnyValues (arrays or kvlists). */
static int decode_nested(int levels, int kvlist) {
    tfix f;
    tfix_init(&f);
    AnyValue *av = calloc((size_t)levels, sizeof *av);
    ArrayValue *arr = calloc((size_t)levels, sizeof *arr);
    KeyValueList *kvl = calloc((size_t)levels, sizeof *kvl);
    KeyValue *kv = calloc((size_t)levels, sizeof *kv);
    AnyValue **avp = calloc((size_t)levels, sizeof *avp);
    KeyValue **kvp = calloc((size_t)levels, sizeof *kvp);
    for (int i = 0; i < levels; i++) {
        opentelemetry__proto__common__v1__any_value__init(&av[i]);
        if (i == levels - 1) {
            av[i].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
            av[i].string_value = "leaf";
        } else if (kvlist) {
            opentelemetry__proto__common__v1__key_value_list__init(&kvl[i]);
            opentelemetry__proto__common__v1__key_value__init(&kv[i]);
            kv[i].key = "k";
            kv[i].value = &av[i + 1];
            kvp[i] = &kv[i];
            kvl[i].n_values = 1;
            kvl[i].values = &kvp[i];
            av[i].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE;
            av[i].kvlist_value = &kvl[i];
        } else {
            opentelemetry__proto__common__v1__array_value__init(&arr[i]);
            avp[i] = &av[i + 1];
            arr[i].n_values = 1;
            arr[i].values = &avp[i];
            av[i].value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
            av[i].array_value = &arr[i];
        }
    }
    f.skv[0].value = &av[0];
    size_t n;
    uint8_t *b = pack(&f.req.base, &n);
    otlp_export ex;
    int rc = dec(OTLP_TRACES, b, n, &ex);
    free(b);
    free(av), free(arr), free(kvl), free(kv), free(avp), free(kvp);
    return rc;
}

Test(otlp_decode, attribute_nesting_bounded_at_32) {
    cr_assert_eq(decode_nested(32, 0), 0, "%s", err);
    cr_assert_eq(decode_nested(32, 1), 0, "%s", err);
    cr_assert_eq(decode_nested(33, 0), -1);
    cr_assert_str_eq(
        err,
        "resource_spans[0].scope_spans[0].spans[0].attributes[0].value: value nested deeper than 32 levels");
    cr_assert_eq(decode_nested(33, 1), -1);
    cr_assert(strstr(err, "nested deeper than 32 levels"), "%s", err);
    cr_assert_eq(decode_nested(40, 1), -1, "kvlist nesting past the message depth limit");
}

static void put_varint(uint8_t **p, uint64_t v) {
    while (v >= 0x80)
        *(*p)++ = (uint8_t)(v | 0x80), v >>= 7;
    *(*p)++ = (uint8_t)v;
}
static size_t varint_len(uint64_t v) {
    size_t n = 1;
    while (v >= 0x80)
        v >>= 7, n++;
    return n;
}

/* A ~4 MiB request whose attribute value nests arrays as deep as the bytes allow (about a
 * million levels): protobuf-c alone recurses until the stack overflows. `tag_field` 0 uses the
 * real AnyValue/ArrayValue fields; otherwise an unknown field, which is never recursed into. */
static uint8_t *deep_message(size_t target, int unknown, size_t *outlen) {
    size_t cap = 1u << 21;
    size_t *lens = malloc(cap * sizeof *lens);
    uint8_t *tags = malloc(cap);
    size_t k = 0, L = 0;
    for (;;) {
        uint8_t tag = unknown ? (15 << 3 | 2) : (k % 2 == 0 ? (5 << 3 | 2) : (1 << 3 | 2));
        size_t nl = 1 + varint_len(L) + L;
        if (nl > target || k == cap) break;
        tags[k] = tag;
        lens[k] = L;
        L = nl;
        k++;
    }
    if (!unknown && k % 2 == 0) { /* the outermost wrapper must be AnyValue.array_value */
        k--;
        L = 1 + varint_len(lens[k - 1]) + lens[k - 1];
    }
    size_t anylen = L;
    /* KeyValue{key="k", value=AnyValue} inside Resource inside ResourceSpans inside the request */
    size_t kvlen = 3 + 1 + varint_len(anylen) + anylen;
    size_t reslen = 1 + varint_len(kvlen) + kvlen;
    size_t rslen = 1 + varint_len(reslen) + reslen;
    size_t total = 1 + varint_len(rslen) + rslen;
    uint8_t *b = malloc(total), *p = b;
    *p++ = 0x0a, put_varint(&p, rslen);
    *p++ = 0x0a, put_varint(&p, reslen);
    *p++ = 0x0a, put_varint(&p, kvlen);
    *p++ = 0x0a, *p++ = 1, *p++ = 'k';
    *p++ = 0x12, put_varint(&p, anylen);
    for (size_t i = k; i-- > 0;) {
        *p++ = tags[i];
        put_varint(&p, lens[i]);
    }
    cr_assert_eq((size_t)(p - b), total);
    free(lens);
    free(tags);
    *outlen = total;
    return b;
}

Test(otlp_decode, deep_nesting_4mib_does_not_recurse) {
    size_t n;
    uint8_t *b = deep_message(4u << 20, 0, &n);
    cr_assert_gt(n, 4000000);
    otlp_export ex;
    cr_assert_eq(dec(OTLP_TRACES, b, n, &ex), -1);
    cr_assert_str_eq(err, "protobuf trace export request nested deeper than 128 levels");
    free(b);
    /* the same depth inside an unknown field is just skipped bytes */
    b = deep_message(4u << 20, 1, &n);
    cr_assert_eq(dec(OTLP_TRACES, b, n, &ex), 0, "%s", err);
    free(b);
}

/* ---- responses ---- */

Test(otlp_decode, json_responses) {
    tr_buf out;
    tr_buf_init(&out, 0);
    otlp_result ok = {.status = OTLP_OK};
    otlp_encode_response(OTLP_METRICS, 1, &ok, &out);
    cr_assert_str_eq(out.data, "{}");
    tr_buf_reset(&out);
    otlp_result part = {.status = OTLP_OK, .rejected = 3};
    strcpy(part.message, "3 points had \"NaN\" names");
    otlp_encode_response(OTLP_METRICS, 1, &part, &out);
    cr_assert_str_eq(out.data, "{\"partialSuccess\":{\"rejectedDataPoints\":\"3\",\"errorMessage\":\"3 "
                               "points had \\\"NaN\\\" names\"}}");
    tr_buf_reset(&out);
    part.rejected = 9007199254740993ull;
    strcpy(part.message, "x");
    otlp_encode_response(OTLP_TRACES, 1, &part, &out);
    cr_assert_str_eq(out.data,
                     "{\"partialSuccess\":{\"rejectedSpans\":\"9007199254740993\",\"errorMessage\":\"x\"}}");
    tr_buf_reset(&out);
    otlp_encode_status(1, GRPC_INVALID_ARGUMENT, "bad \x01 input", &out);
    cr_assert_str_eq(out.data, "{\"code\":3,\"message\":\"bad \\u0001 input\"}");
    tr_buf_free(&out);
}

Test(otlp_decode, protobuf_responses) {
    tr_buf out;
    tr_buf_init(&out, 0);
    otlp_result ok = {.status = OTLP_OK};
    otlp_encode_response(OTLP_TRACES, 0, &ok, &out);
    cr_assert_eq(out.len, 0, "a full success is an empty message");
    otlp_result part = {.status = OTLP_OK, .rejected = 2};
    strcpy(part.message, "two spans without ids");
    otlp_encode_response(OTLP_TRACES, 0, &part, &out);
    Opentelemetry__Proto__Collector__V1__ExportTraceServiceResponse *r =
        opentelemetry__proto__collector__v1__export_trace_service_response__unpack(NULL, out.len,
                                                                                   (uint8_t *)out.data);
    cr_assert_not_null(r);
    cr_assert_not_null(r->partial_success);
    cr_assert_eq(r->partial_success->rejected_spans, 2);
    cr_assert_str_eq(r->partial_success->error_message, "two spans without ids");
    opentelemetry__proto__collector__v1__export_trace_service_response__free_unpacked(r, NULL);
    tr_buf_reset(&out);
    otlp_encode_response(OTLP_METRICS, 0, &part, &out);
    Opentelemetry__Proto__Collector__V1__ExportMetricsServiceResponse *mr =
        opentelemetry__proto__collector__v1__export_metrics_service_response__unpack(NULL, out.len,
                                                                                     (uint8_t *)out.data);
    cr_assert_not_null(mr);
    cr_assert_eq(mr->partial_success->rejected_data_points, 2);
    opentelemetry__proto__collector__v1__export_metrics_service_response__free_unpacked(mr, NULL);
    tr_buf_reset(&out);
    otlp_encode_status(0, GRPC_RESOURCE_EXHAUSTED, "too big", &out);
    Opentelemetry__Proto__Collector__V1__RpcStatus *s =
        opentelemetry__proto__collector__v1__rpc_status__unpack(NULL, out.len, (uint8_t *)out.data);
    cr_assert_not_null(s);
    cr_assert_eq(s->code, 8);
    cr_assert_str_eq(s->message, "too big");
    opentelemetry__proto__collector__v1__rpc_status__free_unpacked(s, NULL);
    tr_buf_free(&out);
}

Test(otlp_decode, status_mappings) {
    cr_assert_eq(otlp_status_to_http(OTLP_OK), 200);
    cr_assert_eq(otlp_status_to_http(OTLP_INVALID), 400);
    cr_assert_eq(otlp_status_to_http(OTLP_TOO_LARGE), 413);
    cr_assert_eq(otlp_status_to_http(OTLP_UNAUTHENTICATED), 401);
    cr_assert_eq(otlp_status_to_http(OTLP_UNIMPLEMENTED), 404);
    cr_assert_eq(otlp_status_to_http(OTLP_UNAVAILABLE), 503);
    cr_assert_eq(otlp_status_to_grpc(OTLP_OK), 0);
    cr_assert_eq(otlp_status_to_grpc(OTLP_INVALID), 3);
    cr_assert_eq(otlp_status_to_grpc(OTLP_TOO_LARGE), 8);
    cr_assert_eq(otlp_status_to_grpc(OTLP_UNAUTHENTICATED), 16);
    cr_assert_eq(otlp_status_to_grpc(OTLP_UNIMPLEMENTED), 12);
    cr_assert_eq(otlp_status_to_grpc(OTLP_UNAVAILABLE), 14);
}

Test(otlp_decode, arena_limit_fails_cleanly) {
    mfix f;
    mfix_init(&f);
    size_t n;
    uint8_t *b = pack(&f.req.base, &n);
    int failed = 0, passed = 0;
    for (size_t limit = 64; limit < 8192; limit += 64) {
        tr_arena *a = tr_arena_new(limit);
        otlp_export ex = {0};
        char e[200] = "";
        int rc = otlp_decode_pb(OTLP_METRICS, b, n, a, &ex, e, sizeof e);
        if (rc == 0) {
            passed++;
            cr_assert_eq(ex.items, 9);
        } else {
            failed++;
            cr_assert_str_eq(e, "request too large to decode: its decoded form exceeds the memory limit");
        }
        cr_assert_leq(tr_arena_used(a), limit);
        tr_arena_free(a);
    }
    cr_assert_gt(failed, 0);
    cr_assert_gt(passed, 0);
    free(b);
}
