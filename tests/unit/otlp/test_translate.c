/* OTLP → Prometheus translation: the naming rules (every row of the examples table of the
 * naming reference), labels (sanitising, collisions, job/instance, target_info, scope,
 * promotion), every point type, delta → cumulative, stale markers, exemplars, and each of
 * Scotty's 51 instruments as Scotty's Rust SDK exports them. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otlp/translate.h"
#include "util/arena.h"

/* ------------------------------------------------------------------ request builders */

typedef Opentelemetry__Proto__Common__V1__KeyValue KV;
typedef Opentelemetry__Proto__Common__V1__AnyValue AV;
typedef Opentelemetry__Proto__Metrics__V1__Metric Metric;
typedef Opentelemetry__Proto__Metrics__V1__NumberDataPoint NumPt;
typedef Opentelemetry__Proto__Metrics__V1__HistogramDataPoint HistPt;
typedef Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint ExpPt;
typedef Opentelemetry__Proto__Metrics__V1__ExponentialHistogramDataPoint__Buckets ExpBuckets;
typedef Opentelemetry__Proto__Metrics__V1__SummaryDataPoint SumPt;
typedef Opentelemetry__Proto__Metrics__V1__Exemplar Exemplar;
typedef Opentelemetry__Proto__Metrics__V1__ResourceMetrics RM;
typedef Opentelemetry__Proto__Metrics__V1__ScopeMetrics SM;

static tr_arena *A;

static void setup(void) { A = tr_arena_new(0); }
static void teardown(void) { tr_arena_free(A); }

static void *mk(size_t n) {
    void *p = tr_arena_calloc(A, 1, n);
    cr_assert(p);
    return p;
}
#define NEW(T, INIT)                                                                                         \
    ({                                                                                                       \
        T *_p = mk(sizeof(T));                                                                               \
        T _i = INIT;                                                                                         \
        *_p = _i;                                                                                            \
        _p;                                                                                                  \
    })

static char *S(const char *s) { return tr_arena_strndup(A, s, strlen(s)); }

static AV *av_str(const char *s) {
    AV *v = NEW(AV, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE;
    v->string_value = S(s);
    return v;
}
static KV *kv(const char *k, AV *v) {
    KV *x = NEW(KV, OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE__INIT);
    x->key = S(k);
    x->value = v;
    return x;
}
static KV *kvs(const char *k, const char *v) { return kv(k, av_str(v)); }
static KV *kvi(const char *k, int64_t i) {
    AV *v = NEW(AV, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE;
    v->int_value = i;
    return kv(k, v);
}
static KV *kvd(const char *k, double d) {
    AV *v = NEW(AV, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE;
    v->double_value = d;
    return kv(k, v);
}
static KV *kvb(const char *k, int b) {
    AV *v = NEW(AV, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT);
    v->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE;
    v->bool_value = b;
    return kv(k, v);
}

/* A NULL-terminated list of KV* into (n, array). */
static KV **kvlist(size_t *n, KV **l) {
    *n = 0;
    while (l && l[*n])
        (*n)++;
    return l;
}
#define KVS(...) ((KV *[]){__VA_ARGS__, NULL})

static NumPt *num_pt(KV **attrs, uint64_t start_ns, uint64_t t_ns, double v, int as_int) {
    NumPt *p = NEW(NumPt, OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__INIT);
    p->attributes = kvlist(&p->n_attributes, attrs);
    p->start_time_unix_nano = start_ns;
    p->time_unix_nano = t_ns;
    if (as_int) {
        p->value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_INT;
        p->as_int = (int64_t)v;
    } else {
        p->value_case = OPENTELEMETRY__PROTO__METRICS__V1__NUMBER_DATA_POINT__VALUE_AS_DOUBLE;
        p->as_double = v;
    }
    return p;
}

static Metric *metric(const char *name, const char *unit, const char *desc) {
    Metric *m = NEW(Metric, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__INIT);
    m->name = S(name);
    m->unit = S(unit);
    m->description = S(desc);
    return m;
}

static Metric *gauge(const char *name, const char *unit, NumPt *p) {
    Metric *m = metric(name, unit, "");
    m->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE;
    m->gauge = NEW(Opentelemetry__Proto__Metrics__V1__Gauge, OPENTELEMETRY__PROTO__METRICS__V1__GAUGE__INIT);
    m->gauge->n_data_points = 1;
    m->gauge->data_points = mk(sizeof(NumPt *));
    m->gauge->data_points[0] = p;
    return m;
}

static Metric *sum(const char *name, const char *unit, int monotonic, int temporality, size_t n,
                   NumPt **pts) {
    Metric *m = metric(name, unit, "");
    m->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM;
    m->sum = NEW(Opentelemetry__Proto__Metrics__V1__Sum, OPENTELEMETRY__PROTO__METRICS__V1__SUM__INIT);
    m->sum->is_monotonic = monotonic;
    m->sum->aggregation_temporality = temporality;
    m->sum->n_data_points = n;
    m->sum->data_points = pts;
    return m;
}
#define CUMUL OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE
#define DELTA OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_DELTA

static HistPt *hist_pt(KV **attrs, uint64_t t_ns, size_t nb, const double *bounds, const uint64_t *counts,
                       uint64_t count, int has_sum, double s) {
    HistPt *p = NEW(HistPt, OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__INIT);
    p->attributes = kvlist(&p->n_attributes, attrs);
    p->time_unix_nano = t_ns;
    p->n_explicit_bounds = nb;
    p->explicit_bounds = mk(sizeof(double) * (nb + 1));
    memcpy(p->explicit_bounds, bounds, sizeof(double) * nb);
    p->n_bucket_counts = nb + 1;
    p->bucket_counts = mk(sizeof(uint64_t) * (nb + 1));
    memcpy(p->bucket_counts, counts, sizeof(uint64_t) * (nb + 1));
    p->count = count;
    if (has_sum) {
        p->_sum_case = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT___SUM_SUM;
        p->sum = s;
    }
    return p;
}

static Metric *histogram(const char *name, const char *unit, int temporality, size_t n, HistPt **pts) {
    Metric *m = metric(name, unit, "");
    m->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM;
    m->histogram =
        NEW(Opentelemetry__Proto__Metrics__V1__Histogram, OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM__INIT);
    m->histogram->aggregation_temporality = temporality;
    m->histogram->n_data_points = n;
    m->histogram->data_points = pts;
    return m;
}

static ExpBuckets *expb(int32_t off, size_t n, const uint64_t *c) {
    ExpBuckets *b =
        NEW(ExpBuckets, OPENTELEMETRY__PROTO__METRICS__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__BUCKETS__INIT);
    b->offset = off;
    b->n_bucket_counts = n;
    b->bucket_counts = mk(sizeof(uint64_t) * (n + 1));
    memcpy(b->bucket_counts, c, sizeof(uint64_t) * n);
    return b;
}

static Metric *exp_histogram(const char *name, const char *unit, int temporality, size_t n, ExpPt **pts) {
    Metric *m = metric(name, unit, "");
    m->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM;
    m->exponential_histogram = NEW(Opentelemetry__Proto__Metrics__V1__ExponentialHistogram,
                                   OPENTELEMETRY__PROTO__METRICS__V1__EXPONENTIAL_HISTOGRAM__INIT);
    m->exponential_histogram->aggregation_temporality = temporality;
    m->exponential_histogram->n_data_points = n;
    m->exponential_histogram->data_points = pts;
    return m;
}

/* One ResourceMetrics with one scope holding the given metrics. */
static otlp_metrics_req *request(KV **res, const char *scope, const char *version, KV **scope_attrs,
                                 size_t nm, Metric **ms) {
    otlp_metrics_req *r =
        NEW(otlp_metrics_req, OPENTELEMETRY__PROTO__COLLECTOR__V1__EXPORT_METRICS_SERVICE_REQUEST__INIT);
    RM *rm = NEW(RM, OPENTELEMETRY__PROTO__METRICS__V1__RESOURCE_METRICS__INIT);
    rm->resource =
        NEW(Opentelemetry__Proto__Resource__V1__Resource, OPENTELEMETRY__PROTO__RESOURCE__V1__RESOURCE__INIT);
    rm->resource->attributes = kvlist(&rm->resource->n_attributes, res);
    SM *sm = NEW(SM, OPENTELEMETRY__PROTO__METRICS__V1__SCOPE_METRICS__INIT);
    if (scope) {
        sm->scope = NEW(Opentelemetry__Proto__Common__V1__InstrumentationScope,
                        OPENTELEMETRY__PROTO__COMMON__V1__INSTRUMENTATION_SCOPE__INIT);
        sm->scope->name = S(scope);
        sm->scope->version = S(version ? version : "");
        sm->scope->attributes = kvlist(&sm->scope->n_attributes, scope_attrs);
    }
    sm->n_metrics = nm;
    sm->metrics = ms;
    rm->n_scope_metrics = 1;
    rm->scope_metrics = mk(sizeof(SM *));
    rm->scope_metrics[0] = sm;
    r->n_resource_metrics = 1;
    r->resource_metrics = mk(sizeof(RM *));
    r->resource_metrics[0] = rm;
    return r;
}
#define METRICS(...) (sizeof((Metric *[]){__VA_ARGS__}) / sizeof(Metric *)), ((Metric *[]){__VA_ARGS__})

/* ------------------------------------------------------------------ a recording sink */

typedef struct rec {
    char series[2048]; /* name{a="b",…} in label order, __name__ first */
    int64_t t;
    double v;
    char exemplars[1024];
    uint64_t point;
} rec;

typedef struct got {
    rec *r;
    size_t n;
    char meta[256][256];
    size_t nmeta;
    const char *refuse; /* refuse samples whose series contains this */
} got;

static got G;

static int on_sample(void *ctx, const otlp_sample *s, const char **why) {
    got *g = ctx;
    g->r = realloc(g->r, (g->n + 1) * sizeof *g->r);
    rec *r = &g->r[g->n++];
    memset(r, 0, sizeof *r);
    const char *name = NULL;
    for (size_t i = 0; i < s->n_labels; i++) {
        if (i) cr_assert(strcmp(s->labels[i - 1].name, s->labels[i].name) < 0, "labels sorted and distinct");
        cr_assert(s->labels[i].value[0], "no empty label values");
        if (strcmp(s->labels[i].name, "__name__") == 0) name = s->labels[i].value;
    }
    cr_assert(name, "every sample has __name__");
    size_t o = snprintf(r->series, sizeof r->series, "%s{", name);
    int first = 1;
    for (size_t i = 0; i < s->n_labels; i++) {
        if (strcmp(s->labels[i].name, "__name__") == 0) continue;
        o += snprintf(r->series + o, sizeof r->series - o, "%s%s=\"%s\"", first ? "" : ",", s->labels[i].name,
                      s->labels[i].value);
        first = 0;
    }
    snprintf(r->series + o, sizeof r->series - o, "}");
    r->t = s->t_ms;
    r->v = s->value;
    r->point = s->point;
    o = 0;
    for (size_t e = 0; e < s->n_exemplars; e++) {
        o += snprintf(r->exemplars + o, sizeof r->exemplars - o, "%s%g@%lld{", e ? ";" : "",
                      s->exemplars[e].value, (long long)s->exemplars[e].t_ms);
        for (size_t i = 0; i < s->exemplars[e].n_labels; i++)
            o += snprintf(r->exemplars + o, sizeof r->exemplars - o, "%s%s=%s", i ? "," : "",
                          s->exemplars[e].labels[i].name, s->exemplars[e].labels[i].value);
        o += snprintf(r->exemplars + o, sizeof r->exemplars - o, "}");
    }
    if (g->refuse && strstr(r->series, g->refuse)) {
        *why = "refused by the test";
        return 1;
    }
    return 0;
}

static void on_meta(void *ctx, const otlp_metadata *m) {
    got *g = ctx;
    if (g->nmeta < 256)
        snprintf(g->meta[g->nmeta++], 256, "%s|%s|%s|%s", m->family, m->type, m->unit, m->help);
}

static otlp_translate_stats run(otlp_translator *t, otlp_metrics_req *req) {
    free(G.r);
    const char *refuse = G.refuse;
    memset(&G, 0, sizeof G);
    G.refuse = refuse;
    otlp_emit e = {.ctx = &G, .sample = on_sample, .metadata = on_meta};
    otlp_translate_stats st;
    cr_assert_eq(otlp_translate(t, req, &e, &st), 0);
    return st;
}

static const rec *find(const char *series) {
    for (size_t i = 0; i < G.n; i++)
        if (strcmp(G.r[i].series, series) == 0) return &G.r[i];
    return NULL;
}

static void expect(const char *series, double v) {
    const rec *r = find(series);
    if (!r) {
        for (size_t i = 0; i < G.n; i++)
            fprintf(stderr, "  have %s = %g\n", G.r[i].series, G.r[i].v);
        cr_assert_fail("missing series %s", series);
    }
    cr_assert(r->v == v || (isnan(v) && isnan(r->v)), "%s = %g, want %g", series, r->v, v);
}

static int is_stale(double v) {
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b == 0x7ff0000000000002ULL;
}

static otlp_translator *translator(const char *promote) {
    char err[128];
    otlp_translate_opts o = {.promote_resource_attributes = promote};
    otlp_translator *t = otlp_translator_new(&o, err, sizeof err);
    cr_assert(t, "%s", err);
    return t;
}

static void fini_got(void) {
    free(G.r);
    memset(&G, 0, sizeof G);
    teardown();
}

TestSuite(translate, .init = setup, .fini = fini_got);

/* ------------------------------------------------------------------ names */

Test(translate, naming_reference_examples) {
    static const struct {
        const char *name, *unit;
        otlp_metric_kind kind;
        const char *want;
    } rows[] = {
        {"http.server.request.duration", "s", OTLP_KIND_HISTOGRAM, "http_server_request_duration_seconds"},
        {"http.server.active_requests", "{request}", OTLP_KIND_UPDOWN, "http_server_active_requests"},
        {"process.cpu.time", "s", OTLP_KIND_COUNTER, "process_cpu_time_seconds_total"},
        {"system.memory.usage", "By", OTLP_KIND_GAUGE, "system_memory_usage_bytes"},
        {"system.cpu.utilization", "1", OTLP_KIND_GAUGE, "system_cpu_utilization_ratio"},
        {"system.network.io", "By", OTLP_KIND_COUNTER, "system_network_io_bytes_total"},
        {"requests", "1", OTLP_KIND_COUNTER, "requests_total"},
        {"throughput", "By/s", OTLP_KIND_GAUGE, "throughput_bytes_per_second"},
        {"requests", "1/s", OTLP_KIND_GAUGE, "requests_per_second"},
        {"requests", "1/s", OTLP_KIND_COUNTER, "requests_per_second_total"},
        {"queue.size", "{item}", OTLP_KIND_GAUGE, "queue_size"},
        {"jvm.gc.duration", "ms", OTLP_KIND_HISTOGRAM, "jvm_gc_duration_milliseconds"},
        {"cpu_seconds_total", "s", OTLP_KIND_COUNTER, "cpu_seconds_total"},
        {"foo.total.bar", "", OTLP_KIND_COUNTER, "foo_bar_total"},
        {"temp", "Cel", OTLP_KIND_GAUGE, "temp_celsius"},
        {"disk.io", "MiBy", OTLP_KIND_COUNTER, "disk_io_mebibytes_total"},
        {"custom_metric", "custom_unit", OTLP_KIND_GAUGE, "custom_metric_custom_unit"},
        {"123metric", "", OTLP_KIND_GAUGE, "_123metric"},
        {"k8s.pod.cpu-usage", "%", OTLP_KIND_GAUGE, "k8s_pod_cpu_usage_percent"},
        {"scotty.http.requests.total", "", OTLP_KIND_COUNTER, "scotty_http_requests_total"},
        {"scotty.memory.rss_bytes", "bytes", OTLP_KIND_GAUGE, "scotty_memory_rss_bytes"},
        {"scotty.apps.total", "", OTLP_KIND_GAUGE, "scotty_apps_total"},
        {"scotty.http.requests.active", "", OTLP_KIND_UPDOWN, "scotty_http_requests_active"},
        {"scotty.log_stream.duration", "s", OTLP_KIND_HISTOGRAM, "scotty_log_stream_duration_seconds"},
        {"scotty.app.services.count", "", OTLP_KIND_HISTOGRAM, "scotty_app_services_count"},
        {"rpc.server.duration", "ms", OTLP_KIND_EXP_HISTOGRAM, "rpc_server_duration_milliseconds"},
        {"requests_per_second", "1/s", OTLP_KIND_GAUGE, "requests_per_second_per_second"},
        {"a..b__c", "", OTLP_KIND_GAUGE, "a_b_c"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char out[256];
        int n = otlp_prom_metric_name(rows[i].name, rows[i].unit, rows[i].kind, out, sizeof out);
        cr_assert(n > 0, "%s failed", rows[i].name);
        cr_expect_str_eq(out, rows[i].want, "%s [%s] → %s, want %s", rows[i].name, rows[i].unit, out,
                         rows[i].want);
        cr_expect_eq((size_t)n, strlen(out));
    }
}

Test(translate, naming_edges) {
    char out[64];
    cr_assert_eq(otlp_prom_metric_name("...", "", OTLP_KIND_GAUGE, out, sizeof out), -1, "only separators");
    cr_assert_eq(otlp_prom_metric_name("", "", OTLP_KIND_GAUGE, out, sizeof out), -1);
    cr_assert_gt(otlp_prom_metric_name("", "s", OTLP_KIND_GAUGE, out, sizeof out), 0);
    cr_assert_str_eq(out, "seconds", "a unit alone still names the metric");
    cr_assert_gt(otlp_prom_metric_name("caf\xc3\xa9.size", "By", OTLP_KIND_GAUGE, out, sizeof out), 0);
    cr_assert_str_eq(out, "caf_size_bytes", "non-ASCII runes separate tokens");
    cr_assert_gt(otlp_prom_metric_name("ns:metric", "", OTLP_KIND_GAUGE, out, sizeof out), 0);
    cr_assert_str_eq(out, "ns:metric", "colons are kept");
    cr_assert_gt(otlp_prom_metric_name("up.ratio", "1", OTLP_KIND_GAUGE, out, sizeof out), 0);
    cr_assert_str_eq(out, "up_ratio", "ratio moves to the end, once");
    cr_assert_gt(otlp_prom_metric_name("x", " ms / s ", OTLP_KIND_GAUGE, out, sizeof out), 0);
    cr_assert_str_eq(out, "x_milliseconds_per_second", "units are trimmed");
    cr_assert_gt(otlp_prom_metric_name("x", "{a}/s", OTLP_KIND_COUNTER, out, sizeof out), 0);
    cr_assert_str_eq(out, "x_per_second_total");
    cr_assert_eq(otlp_prom_metric_name("a.very.long.name.indeed", "", OTLP_KIND_GAUGE, out, 8), -1,
                 "does not fit");
}

Test(translate, unit_words) {
    static const struct {
        const char *in, *want;
    } rows[] = {
        {"s", "seconds"},
        {"By/s", "bytes_per_second"},
        {"1", ""},
        {"{request}", ""},
        {"1/s", "per_second"},
        {"ms", "milliseconds"},
        {"bytes", "bytes"},
        {"", ""},
        {"KiBy", "kibibytes"},
        {"custom_unit", "custom_unit"},
        {"m/mo", "meters_per_month"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char out[64];
        cr_assert_geq(otlp_prom_unit(rows[i].in, out, sizeof out), 0);
        cr_expect_str_eq(out, rows[i].want, "unit %s → %s", rows[i].in, out);
    }
}

Test(translate, label_names) {
    static const struct {
        const char *in, *want;
    } rows[] = {
        {"http.request.method", "http_request_method"},
        {"method", "method"},
        {"123abc", "key_123abc"},
        {"__reserved__", "__reserved__"},
        {"a..b", "a_b"},
        {"a__b", "a_b"},
        {"k8s.pod-name", "k8s_pod_name"},
        {"_private", "_private"},
        {"a\xc3\xa9z", "a_z"},
        {"__a.b__", "__a_b__"},
        {"Upper.Case", "Upper_Case"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char out[64];
        cr_assert_gt(otlp_prom_label_name(rows[i].in, out, sizeof out), 0, "%s", rows[i].in);
        cr_expect_str_eq(out, rows[i].want, "label %s → %s", rows[i].in, out);
    }
    char out[16];
    cr_assert_eq(otlp_prom_label_name("", out, sizeof out), -1);
    cr_assert_eq(otlp_prom_label_name("...", out, sizeof out), -1);
    cr_assert_eq(otlp_prom_label_name("\xc3\xa9", out, sizeof out), -1, "only an underscore is left");
}

/* ------------------------------------------------------------------ labels */

Test(translate, labels_job_instance_scope_target_info) {
    otlp_translator *t = translator("none");
    NumPt *p1 = num_pt(KVS(kvs("http.method", "GET"), kvs("job", "ignored")), 0, 5000000000ULL, 7, 0);
    NumPt *p2 = num_pt(KVS(kvs("x", "y")), 0, 9000000000ULL, 8, 0);
    otlp_metrics_req *r =
        request(KVS(kvs("service.name", "api"), kvs("service.namespace", "shop"),
                    kvs("service.instance.id", "i-1"), kvs("host.name", "h1"), kvi("process.pid", 42)),
                "lib", "1.2", KVS(kvs("team", "core")), METRICS(gauge("g1", "", p1), gauge("g2", "", p2)));
    otlp_translate_stats st = run(t, r);
    cr_assert_eq(st.points, 2);
    cr_assert_eq(st.rejected, 0);
    expect("g1{http_method=\"GET\",instance=\"i-1\",job=\"shop/"
           "api\",otel_scope_name=\"lib\",otel_scope_team=\"core\",otel_scope_version=\"1.2\"}",
           7);
    expect("g2{instance=\"i-1\",job=\"shop/"
           "api\",otel_scope_name=\"lib\",otel_scope_team=\"core\",otel_scope_version=\"1.2\",x=\"y\"}",
           8);
    const rec *ti =
        find("target_info{host_name=\"h1\",instance=\"i-1\",job=\"shop/api\",process_pid=\"42\"}");
    cr_assert(ti, "target_info with the non-identifying attributes");
    cr_assert_eq(ti->v, 1);
    cr_assert_eq(ti->t, 9000, "stamped with the newest point of the resource");
    cr_assert_eq(ti->point, OTLP_NO_POINT);
    cr_assert_eq(G.n, 3);
    cr_assert_eq(find("g1{http_method=\"GET\",instance=\"i-1\",job=\"shop/"
                      "api\",otel_scope_name=\"lib\",otel_scope_team=\"core\",otel_scope_version=\"1.2\"}")
                     ->t,
                 5000, "ns → ms");
    otlp_translator_free(t);
}

Test(translate, no_target_info_without_job_or_other_attributes) {
    otlp_translator *t = translator("none");
    /* only identifying attributes: nothing to put on target_info */
    run(t, request(KVS(kvs("service.name", "a")), NULL, NULL, NULL,
                   METRICS(gauge("g", "", num_pt(NULL, 0, 1000000, 1, 0)))));
    cr_assert_eq(G.n, 1);
    expect("g{job=\"a\"}", 1);
    /* no service name nor instance: nothing to join target_info on */
    run(t, request(KVS(kvs("host.name", "h")), NULL, NULL, NULL,
                   METRICS(gauge("g", "", num_pt(NULL, 0, 1000000, 1, 0)))));
    cr_assert_eq(G.n, 1);
    expect("g{}", 1);
    /* a zero timestamp: none either (the point itself keeps t=0, as the Collector does) */
    run(t, request(KVS(kvs("service.name", "a"), kvs("host.name", "h")), NULL, NULL, NULL,
                   METRICS(gauge("g", "", num_pt(NULL, 0, 0, 1, 0)))));
    cr_assert_eq(G.n, 1);
    cr_assert_eq(G.r[0].t, 0);
    otlp_translator_free(t);
}

Test(translate, label_collisions_join_in_key_order) {
    otlp_translator *t = translator("none");
    /* k-a < k.a < k_a byte-wise; equal values are not repeated */
    run(t, request(NULL, NULL, NULL, NULL,
                   METRICS(gauge("g", "",
                                 num_pt(KVS(kvs("k_a", "2"), kvs("k.a", "1"), kvs("k-a", "2"),
                                            kvs("b.b", "x"), kvs("b_b", "x")),
                                        0, 1000000, 1, 0)))));
    expect("g{b_b=\"x\",k_a=\"2;1;2\"}", 1);
    otlp_translator_free(t);
}

Test(translate, attribute_value_types) {
    otlp_translator *t = translator("none");
    AV *arr = NEW(AV, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT);
    arr->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_ARRAY_VALUE;
    arr->array_value = NEW(Opentelemetry__Proto__Common__V1__ArrayValue,
                           OPENTELEMETRY__PROTO__COMMON__V1__ARRAY_VALUE__INIT);
    arr->array_value->n_values = 3;
    arr->array_value->values = mk(3 * sizeof(AV *));
    arr->array_value->values[0] = av_str("a<b");
    arr->array_value->values[1] = kvi("", 5)->value;
    arr->array_value->values[2] = kvd("", 0.5)->value;
    AV *map = NEW(AV, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT);
    map->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_KVLIST_VALUE;
    map->kvlist_value = NEW(Opentelemetry__Proto__Common__V1__KeyValueList,
                            OPENTELEMETRY__PROTO__COMMON__V1__KEY_VALUE_LIST__INIT);
    map->kvlist_value->n_values = 2;
    map->kvlist_value->values = mk(2 * sizeof(KV *));
    map->kvlist_value->values[0] = kvb("z", 1);
    map->kvlist_value->values[1] = kvs("a", "q\"");
    AV *bytes = NEW(AV, OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__INIT);
    bytes->value_case = OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BYTES_VALUE;
    bytes->bytes_value.data = (uint8_t *)S("hi!?");
    bytes->bytes_value.len = 4;
    run(t, request(NULL, NULL, NULL, NULL,
                   METRICS(gauge("g", "",
                                 num_pt(KVS(kvi("i", -3), kvd("d", 1.5), kvd("big", 1e21),
                                            kvd("tiny", 1.5e-7), kvb("b", 0), kv("arr", arr), kv("map", map),
                                            kv("bytes", bytes), kvs("empty", "")),
                                        0, 1000000, 1, 0)))));
    expect("g{arr=\"[\"a\\u003cb\",5,0.5]\",b=\"false\",big=\"1e+21\",bytes=\"aGkhPw==\",d=\"1.5\",i=\"-3\","
           "map=\"{\"a\":\"q\\\"\",\"z\":true}\",tiny=\"1.5e-7\"}",
           1);
    otlp_translator_free(t);
}

Test(translate, promotion_all_none_list) {
    KV **res =
        KVS(kvs("service.name", "svc"), kvs("service.version", "1"), kvs("deployment.environment", "prod"));
    NumPt *p = num_pt(KVS(kvs("service.version", "point"), kvs("a", "b")), 0, 1000000, 1, 0);
    /* all: resource attributes overwrite the point's (resource_to_telemetry_conversion) */
    otlp_translator *t = translator("all");
    run(t, request(res, NULL, NULL, NULL, METRICS(gauge("g", "", p))));
    expect(
        "g{a=\"b\",deployment_environment=\"prod\",job=\"svc\",service_name=\"svc\",service_version=\"1\"}",
        1);
    otlp_translator_free(t);
    /* NULL means all too */
    t = translator(NULL);
    run(t, request(res, NULL, NULL, NULL, METRICS(gauge("g", "", p))));
    expect(
        "g{a=\"b\",deployment_environment=\"prod\",job=\"svc\",service_name=\"svc\",service_version=\"1\"}",
        1);
    otlp_translator_free(t);
    /* none */
    t = translator("");
    run(t, request(res, NULL, NULL, NULL, METRICS(gauge("g", "", p))));
    expect("g{a=\"b\",job=\"svc\",service_version=\"point\"}", 1);
    otlp_translator_free(t);
    /* a list fills in; the point's own attributes win */
    t = translator(" deployment.environment , service.version,missing ");
    run(t, request(res, NULL, NULL, NULL, METRICS(gauge("g", "", p))));
    expect("g{a=\"b\",deployment_environment=\"prod\",job=\"svc\",service_version=\"point\"}", 1);
    otlp_translator_free(t);
    char err[128];
    otlp_translate_opts o = {.promote_resource_attributes = "a,all"};
    cr_assert_null(otlp_translator_new(&o, err, sizeof err));
    cr_assert(strstr(err, "all"));
}

/* ------------------------------------------------------------------ point types */

Test(translate, sums_and_gauges) {
    otlp_translator *t = translator("none");
    NumPt *c1 = num_pt(NULL, 1, 2000000, 10, 1);
    NumPt *u1 = num_pt(NULL, 1, 2000000, -3, 1);
    Metric *g = gauge("util", "1", num_pt(NULL, 0, 2000000, 0.25, 0));
    g->description = S("CPU use");
    otlp_translate_stats st =
        run(t, request(NULL, NULL, NULL, NULL,
                       METRICS(sum("req", "1", 1, CUMUL, 1, (NumPt *[]){c1}),
                               sum("active", "{request}", 0, CUMUL, 1, (NumPt *[]){u1}), g)));
    cr_assert_eq(st.points, 3);
    expect("req_total{}", 10);
    expect("active{}", -3);
    expect("util_ratio{}", 0.25);
    cr_assert_eq(G.nmeta, 3);
    cr_assert_str_eq(G.meta[0], "req_total|counter||");
    cr_assert_str_eq(G.meta[1], "active|gauge||", "a non-monotonic sum is a gauge");
    cr_assert_str_eq(G.meta[2], "util_ratio|gauge||CPU use");
    otlp_translator_free(t);
}

static const double scotty_bounds[15] = {0,   5,   10,   25,   50,   75,   100,  250,
                                         500, 750, 1000, 2500, 5000, 7500, 10000};

Test(translate, explicit_histogram) {
    otlp_translator *t = translator("none");
    double b[] = {0.005, 0.5, 1, 2.5, 1e6, 1e-7};
    uint64_t c[] = {1, 2, 3, 0, 4, 0, 5};
    HistPt *p = hist_pt(KVS(kvs("route", "/")), 3000000000ULL, 6, b, c, 15, 1, 12.5);
    Metric *m = histogram("http.dur", "s", CUMUL, 1, (HistPt *[]){p});
    m->description = S("Latency");
    run(t, request(NULL, NULL, NULL, NULL, METRICS(m)));
    expect("http_dur_seconds_sum{route=\"/\"}", 12.5);
    expect("http_dur_seconds_count{route=\"/\"}", 15);
    expect("http_dur_seconds_bucket{le=\"0.005\",route=\"/\"}", 1);
    expect("http_dur_seconds_bucket{le=\"0.5\",route=\"/\"}", 3);
    expect("http_dur_seconds_bucket{le=\"1\",route=\"/\"}", 6);
    expect("http_dur_seconds_bucket{le=\"2.5\",route=\"/\"}", 6);
    expect("http_dur_seconds_bucket{le=\"1000000\",route=\"/\"}", 10);
    expect("http_dur_seconds_bucket{le=\"0.0000001\",route=\"/\"}", 10);
    expect("http_dur_seconds_bucket{le=\"+Inf\",route=\"/\"}", 15);
    cr_assert_eq(G.n, 9);
    cr_assert_str_eq(G.meta[0], "http_dur_seconds|histogram|seconds|Latency");
    /* no sum: no _sum series */
    run(t, request(NULL, NULL, NULL, NULL,
                   METRICS(histogram("h", "", CUMUL, 1,
                                     (HistPt *[]){hist_pt(NULL, 1000000, 1, b, c, 3, 0, 0)}))));
    cr_assert_null(find("h_sum{}"));
    expect("h_count{}", 3);
    expect("h_bucket{le=\"0.005\"}", 1);
    expect("h_bucket{le=\"+Inf\"}", 3);
    otlp_translator_free(t);
}

Test(translate, summary) {
    otlp_translator *t = translator("none");
    SumPt *p = NEW(SumPt, OPENTELEMETRY__PROTO__METRICS__V1__SUMMARY_DATA_POINT__INIT);
    p->time_unix_nano = 1000000;
    p->count = 9;
    p->sum = 4.5;
    p->n_quantile_values = 3;
    p->quantile_values = mk(3 * sizeof(void *));
    double qs[3][2] = {{0.5, 0.1}, {0.99, 0.9}, {1, 2}};
    for (int i = 0; i < 3; i++) {
        p->quantile_values[i] =
            NEW(Opentelemetry__Proto__Metrics__V1__SummaryDataPoint__ValueAtQuantile,
                OPENTELEMETRY__PROTO__METRICS__V1__SUMMARY_DATA_POINT__VALUE_AT_QUANTILE__INIT);
        p->quantile_values[i]->quantile = qs[i][0];
        p->quantile_values[i]->value = qs[i][1];
    }
    Metric *m = metric("rpc.latency", "ms", "");
    m->data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY;
    m->summary =
        NEW(Opentelemetry__Proto__Metrics__V1__Summary, OPENTELEMETRY__PROTO__METRICS__V1__SUMMARY__INIT);
    m->summary->n_data_points = 1;
    m->summary->data_points = (SumPt *[]){p};
    run(t, request(NULL, NULL, NULL, NULL, METRICS(m)));
    expect("rpc_latency_milliseconds_sum{}", 4.5);
    expect("rpc_latency_milliseconds_count{}", 9);
    expect("rpc_latency_milliseconds{quantile=\"0.5\"}", 0.1);
    expect("rpc_latency_milliseconds{quantile=\"0.99\"}", 0.9);
    expect("rpc_latency_milliseconds{quantile=\"1\"}", 2);
    cr_assert_eq(G.n, 5);
    cr_assert_str_eq(G.meta[0], "rpc_latency_milliseconds|summary|milliseconds|");
    otlp_translator_free(t);
}

Test(translate, exponential_histogram) {
    otlp_translator *t = translator("none");
    /* scale 0 (base 2): positive buckets 0..2 = (1,2], (2,4], (4,8]; negative bucket 1 = [-4,-2) */
    ExpPt *p = NEW(ExpPt, OPENTELEMETRY__PROTO__METRICS__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__INIT);
    p->time_unix_nano = 1000000;
    p->scale = 0;
    p->count = 12;
    p->zero_count = 2;
    p->zero_threshold = 0;
    p->_sum_case = OPENTELEMETRY__PROTO__METRICS__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT___SUM_SUM;
    p->sum = 30;
    p->positive = expb(0, 3, (uint64_t[]){3, 0, 4});
    p->negative = expb(1, 1, (uint64_t[]){3});
    run(t, request(NULL, NULL, NULL, NULL,
                   METRICS(exp_histogram("rpc.server.duration", "ms", CUMUL, 1, (ExpPt *[]){p}))));
    const char *n = "rpc_server_duration_milliseconds";
    char s[128];
    snprintf(s, sizeof s, "%s_bucket{le=\"-2\"}", n);
    expect(s, 3);
    snprintf(s, sizeof s, "%s_bucket{le=\"0\"}", n);
    expect(s, 5);
    snprintf(s, sizeof s, "%s_bucket{le=\"2\"}", n);
    expect(s, 8);
    snprintf(s, sizeof s, "%s_bucket{le=\"4\"}", n);
    expect(s, 8);
    snprintf(s, sizeof s, "%s_bucket{le=\"8\"}", n);
    expect(s, 12);
    snprintf(s, sizeof s, "%s_bucket{le=\"+Inf\"}", n);
    expect(s, 12);
    snprintf(s, sizeof s, "%s_sum{}", n);
    expect(s, 30);
    snprintf(s, sizeof s, "%s_count{}", n);
    expect(s, 12);
    cr_assert_eq(G.n, 8);
    cr_assert_str_eq(G.meta[0], "rpc_server_duration_milliseconds|histogram|milliseconds|");

    /* a fine scale is merged down to scale 3 (8 buckets per doubling): at scale 5 buckets
     * 32..35 are (2^(32/32), 2^(36/32)] = (2, 2^(9/8)]: one bucket at scale 3, le = 2^(9/8) */
    ExpPt *q = NEW(ExpPt, OPENTELEMETRY__PROTO__METRICS__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__INIT);
    q->time_unix_nano = 1000000;
    q->scale = 5;
    q->count = 10;
    q->zero_threshold = 1e-9;
    q->positive = expb(32, 4, (uint64_t[]){1, 2, 3, 4});
    run(t, request(NULL, NULL, NULL, NULL, METRICS(exp_histogram("e", "", CUMUL, 1, (ExpPt *[]){q}))));
    cr_assert_eq(G.n, 4, "zero bucket, one merged bucket, +Inf, count (no sum)");
    expect("e_bucket{le=\"0.000000001\"}", 0);
    char le[64], want[128];
    snprintf(le, sizeof le, "%.17g", exp2(9.0 / 8));
    double v = strtod(le, NULL);
    cr_assert_eq(v, exp2(9.0 / 8));
    const rec *merged = NULL;
    for (size_t i = 0; i < G.n; i++)
        if (strstr(G.r[i].series, "e_bucket{le=\"2.18")) merged = &G.r[i];
    cr_assert(merged, "le = 2^(9/8) = 2.18…");
    cr_assert_eq(merged->v, 10);
    snprintf(want, sizeof want, "e_bucket{le=\"+Inf\"}");
    expect(want, 10);
    /* a scale outside the data model is refused, not guessed at */
    q->scale = 21;
    otlp_translate_stats st =
        run(t, request(NULL, NULL, NULL, NULL, METRICS(exp_histogram("e", "", CUMUL, 1, (ExpPt *[]){q}))));
    cr_assert_eq(st.rejected, 1);
    cr_assert_eq(G.n, 0);
    cr_assert(strstr(st.message, "scale"));
    otlp_translator_free(t);
}

/* ------------------------------------------------------------------ delta → cumulative */

Test(translate, delta_sums_accumulate_reset_and_refuse_out_of_order) {
    otlp_translator *t = translator("none");
    const uint64_t s = 1000000000ULL;
    struct {
        uint64_t start, end;
        double v;
        double want;
        int refused;
    } steps[] = {
        {10 * s, 20 * s, 5, 5, 0},  {20 * s, 30 * s, 3, 8, 0},
        {40 * s, 50 * s, 2, 10, 0}, /* a gap: still adds up */
        {45 * s, 50 * s, 9, 0, 1},  /* ends at the last end: out of order */
        {45 * s, 60 * s, 4, 4, 0},  /* starts inside the counted window: a new run */
        {60 * s, 70 * s, 1, 5, 0},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        NumPt *p = num_pt(KVS(kvs("k", "v")), steps[i].start, steps[i].end, steps[i].v, 1);
        otlp_translate_stats st =
            run(t, request(NULL, NULL, NULL, NULL, METRICS(sum("d", "", 1, DELTA, 1, (NumPt *[]){p}))));
        cr_assert_eq(st.rejected, (uint64_t)steps[i].refused, "step %zu", i);
        if (steps[i].refused) {
            cr_assert_eq(G.n, 0);
            cr_assert(strstr(st.message, "1 of 1 data points rejected"), "%s", st.message);
        } else {
            expect("d_total{k=\"v\"}", steps[i].want);
            cr_assert_eq(G.r[0].t, (int64_t)(steps[i].end / 1000000));
        }
    }
    cr_assert_eq(otlp_translator_delta_series(t), 1);
    /* another label set is another running sum; an up-down delta adds negatives */
    NumPt *u1 = num_pt(KVS(kvs("k", "w")), 1 * s, 2 * s, 4, 1),
          *u2 = num_pt(KVS(kvs("k", "w")), 2 * s, 3 * s, -6, 1);
    run(t, request(NULL, NULL, NULL, NULL, METRICS(sum("d", "", 0, DELTA, 2, (NumPt *[]){u1, u2}))));
    cr_assert_eq(G.n, 2);
    cr_assert_eq(G.r[0].v, 4);
    cr_assert_eq(G.r[1].v, -2);
    cr_assert_str_eq(G.r[1].series, "d{k=\"w\"}");
    cr_assert_eq(otlp_translator_delta_series(t), 2);
    /* no recorded value: a stale marker, and the running state is forgotten */
    NumPt *st = num_pt(KVS(kvs("k", "v")), 70 * s, 80 * s, 0, 1);
    st->flags = 1;
    run(t, request(NULL, NULL, NULL, NULL, METRICS(sum("d", "", 1, DELTA, 1, (NumPt *[]){st}))));
    cr_assert(is_stale(G.r[0].v));
    cr_assert_eq(otlp_translator_delta_series(t), 1);
    otlp_translator_free(t);
}

Test(translate, delta_state_is_bounded) {
    char err[64];
    otlp_translate_opts o = {.promote_resource_attributes = "none", .max_delta_series = 3};
    otlp_translator *t = otlp_translator_new(&o, err, sizeof err);
    for (int i = 0; i < 10; i++) {
        char v[8];
        snprintf(v, sizeof v, "%d", i);
        run(t, request(NULL, NULL, NULL, NULL,
                       METRICS(sum("d", "", 1, DELTA, 1,
                                   (NumPt *[]){num_pt(KVS(kvs("i", v)), 1000, 2000000 + i, 1, 1)}))));
    }
    cr_assert_eq(otlp_translator_delta_series(t), 3);
    /* the evicted series starts again from its own point */
    run(t, request(NULL, NULL, NULL, NULL,
                   METRICS(sum("d", "", 1, DELTA, 1,
                               (NumPt *[]){num_pt(KVS(kvs("i", "0")), 3000000, 4000000, 7, 1)}))));
    expect("d_total{i=\"0\"}", 7);
    run(t, request(NULL, NULL, NULL, NULL,
                   METRICS(sum("d", "", 1, DELTA, 1,
                               (NumPt *[]){num_pt(KVS(kvs("i", "9")), 3000000, 4000000, 7, 1)}))));
    expect("d_total{i=\"9\"}", 8);
    otlp_translator_free(t);
    /* idle states go (data time): a point 2h later expires one not updated since */
    otlp_translate_opts o2 = {.promote_resource_attributes = "none", .delta_idle_ms = 3600000};
    t = otlp_translator_new(&o2, err, sizeof err);
    const uint64_t s = 1000000000ULL;
    run(t, request(NULL, NULL, NULL, NULL,
                   METRICS(sum("d", "", 1, DELTA, 1,
                               (NumPt *[]){num_pt(KVS(kvs("i", "a")), 1 * s, 2 * s, 1, 1)}))));
    run(t, request(NULL, NULL, NULL, NULL,
                   METRICS(sum("d", "", 1, DELTA, 1,
                               (NumPt *[]){num_pt(KVS(kvs("i", "b")), 7200 * s, 7300 * s, 1, 1)}))));
    cr_assert_eq(otlp_translator_delta_series(t), 2);
    run(t, request(NULL, NULL, NULL, NULL,
                   METRICS(sum("d", "", 1, DELTA, 1,
                               (NumPt *[]){num_pt(KVS(kvs("i", "b")), 7300 * s, 7400 * s, 1, 1)}))));
    cr_assert_eq(otlp_translator_delta_series(t), 1);
    otlp_translator_free(t);
}

Test(translate, delta_histograms) {
    otlp_translator *t = translator("none");
    double b[] = {1, 10};
    HistPt *p1 = hist_pt(NULL, 2000000, 2, b, (uint64_t[]){1, 2, 3}, 6, 1, 20);
    p1->start_time_unix_nano = 1000000;
    HistPt *p2 = hist_pt(NULL, 3000000, 2, b, (uint64_t[]){0, 1, 1}, 2, 1, 15);
    p2->start_time_unix_nano = 2000000;
    run(t, request(NULL, NULL, NULL, NULL, METRICS(histogram("h", "", DELTA, 2, (HistPt *[]){p1, p2}))));
    cr_assert_eq(G.n, 10);
    /* the second point's series carry the running totals */
    const rec *last = &G.r[5];
    cr_assert_str_eq(last->series, "h_sum{}");
    cr_assert_eq(last->v, 35);
    cr_assert_str_eq(G.r[6].series, "h_count{}");
    cr_assert_eq(G.r[6].v, 8);
    cr_assert_str_eq(G.r[7].series, "h_bucket{le=\"1\"}");
    cr_assert_eq(G.r[7].v, 1);
    cr_assert_eq(G.r[8].v, 4);
    cr_assert_str_eq(G.r[9].series, "h_bucket{le=\"+Inf\"}");
    cr_assert_eq(G.r[9].v, 8);
    /* new bounds: a new run */
    double b2[] = {1, 5};
    HistPt *p3 = hist_pt(NULL, 4000000, 2, b2, (uint64_t[]){1, 0, 0}, 1, 1, 0.5);
    p3->start_time_unix_nano = 3000000;
    run(t, request(NULL, NULL, NULL, NULL, METRICS(histogram("h", "", DELTA, 1, (HistPt *[]){p3}))));
    expect("h_count{}", 1);
    expect("h_bucket{le=\"5\"}", 1);

    /* exponential deltas merge at the coarser scale */
    ExpPt *e1 = NEW(ExpPt, OPENTELEMETRY__PROTO__METRICS__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__INIT);
    e1->start_time_unix_nano = 1000000;
    e1->time_unix_nano = 2000000;
    e1->scale = 1;
    e1->count = 3;
    e1->positive = expb(0, 2, (uint64_t[]){1, 2}); /* (1,√2], (√2,2] */
    ExpPt *e2 = NEW(ExpPt, OPENTELEMETRY__PROTO__METRICS__V1__EXPONENTIAL_HISTOGRAM_DATA_POINT__INIT);
    e2->start_time_unix_nano = 2000000;
    e2->time_unix_nano = 3000000;
    e2->scale = 0;
    e2->count = 5;
    e2->zero_count = 1;
    e2->positive = expb(0, 2, (uint64_t[]){1, 3}); /* (1,2], (2,4] */
    run(t, request(NULL, NULL, NULL, NULL, METRICS(exp_histogram("x", "", DELTA, 2, (ExpPt *[]){e1, e2}))));
    /* the second point: scale 0, (1,2] = 1+2+1, (2,4] = 3, zero = 1, count = 8 */
    const rec *r2 = NULL, *r4 = NULL, *r0 = NULL, *inf = NULL;
    for (size_t i = 0; i < G.n; i++) {
        if (G.r[i].t != 3) continue;
        if (!strcmp(G.r[i].series, "x_bucket{le=\"2\"}")) r2 = &G.r[i];
        if (!strcmp(G.r[i].series, "x_bucket{le=\"4\"}")) r4 = &G.r[i];
        if (!strcmp(G.r[i].series, "x_bucket{le=\"0\"}")) r0 = &G.r[i];
        if (!strcmp(G.r[i].series, "x_bucket{le=\"+Inf\"}")) inf = &G.r[i];
    }
    cr_assert(r2 && r4 && r0 && inf);
    cr_assert_eq(r0->v, 1);
    cr_assert_eq(r2->v, 5);
    cr_assert_eq(r4->v, 8);
    cr_assert_eq(inf->v, 8);
    otlp_translator_free(t);
}

Test(translate, unspecified_temporality_is_refused) {
    otlp_translator *t = translator("none");
    otlp_translate_stats st = run(
        t,
        request(NULL, NULL, NULL, NULL,
                METRICS(sum("s", "", 1, 0, 2,
                            (NumPt *[]){num_pt(NULL, 0, 1000000, 1, 1), num_pt(NULL, 0, 2000000, 1, 1)}))));
    cr_assert_eq(st.points, 2);
    cr_assert_eq(st.rejected, 2);
    cr_assert_eq(G.n, 0);
    cr_assert(strstr(st.message, "temporality"), "%s", st.message);
    st = run(t, request(NULL, NULL, NULL, NULL, METRICS(gauge("...", "", num_pt(NULL, 0, 1000000, 1, 1)))));
    cr_assert_eq(st.rejected, 1);
    cr_assert(strstr(st.message, "no valid Prometheus name"), "%s", st.message);
    otlp_translator_free(t);
}

/* ------------------------------------------------------------------ stale markers, exemplars */

Test(translate, no_recorded_value_is_a_stale_marker) {
    otlp_translator *t = translator("none");
    NumPt *g = num_pt(NULL, 0, 1000000, 5, 0);
    g->flags = 1;
    double b[] = {1};
    HistPt *h = hist_pt(NULL, 1000000, 1, b, (uint64_t[]){0, 0}, 0, 1, 0);
    h->flags = 1;
    run(t, request(NULL, NULL, NULL, NULL,
                   METRICS(gauge("g", "", g), histogram("h", "", CUMUL, 1, (HistPt *[]){h}))));
    cr_assert_eq(G.n, 5);
    for (size_t i = 0; i < G.n; i++)
        cr_assert(is_stale(G.r[i].v), "%s is a stale marker", G.r[i].series);
    otlp_translator_free(t);
}

static Exemplar *exemplar(double v, uint64_t t_ns, int with_ids, KV **attrs) {
    Exemplar *e = NEW(Exemplar, OPENTELEMETRY__PROTO__METRICS__V1__EXEMPLAR__INIT);
    e->value_case = OPENTELEMETRY__PROTO__METRICS__V1__EXEMPLAR__VALUE_AS_DOUBLE;
    e->as_double = v;
    e->time_unix_nano = t_ns;
    if (with_ids) {
        e->trace_id.len = 16;
        e->trace_id.data = mk(16);
        for (int i = 0; i < 16; i++)
            e->trace_id.data[i] = (uint8_t)(i + 1);
        e->span_id.len = 8;
        e->span_id.data = mk(8);
        for (int i = 0; i < 8; i++)
            e->span_id.data[i] = (uint8_t)(0xa0 + i);
    }
    e->filtered_attributes = kvlist(&e->n_filtered_attributes, attrs);
    return e;
}

Test(translate, exemplars) {
    otlp_translator *t = translator("none");
    NumPt *c = num_pt(NULL, 1, 5000000, 3, 1);
    c->n_exemplars = 1;
    c->exemplars = (Exemplar *[]){exemplar(1, 4000000, 1, KVS(kvs("user.id", "u1")))};
    double b[] = {1, 10};
    HistPt *h = hist_pt(NULL, 5000000, 2, b, (uint64_t[]){1, 1, 1}, 3, 1, 20);
    h->n_exemplars = 3;
    char longv[200];
    memset(longv, 'x', sizeof longv - 1);
    longv[sizeof longv - 1] = 0;
    h->exemplars =
        (Exemplar *[]){exemplar(0.5, 3000000, 0, NULL), exemplar(7, 3000000, 1, KVS(kvs("big", longv))),
                       exemplar(99, 3000000, 1, NULL)};
    run(t, request(NULL, NULL, NULL, NULL,
                   METRICS(sum("c", "", 1, CUMUL, 1, (NumPt *[]){c}),
                           histogram("h", "", CUMUL, 1, (HistPt *[]){h}))));
    cr_assert_str_eq(find("c_total{}")->exemplars,
                     "1@4{span_id=a0a1a2a3a4a5a6a7,trace_id=0102030405060708090a0b0c0d0e0f10,user_id=u1}");
    cr_assert_str_eq(find("h_bucket{le=\"1\"}")->exemplars, "0.5@3{}");
    /* over 128 runes: the filtered attributes are left out, the ids stay */
    cr_assert_str_eq(find("h_bucket{le=\"10\"}")->exemplars,
                     "7@3{span_id=a0a1a2a3a4a5a6a7,trace_id=0102030405060708090a0b0c0d0e0f10}");
    cr_assert_str_eq(find("h_bucket{le=\"+Inf\"}")->exemplars,
                     "99@3{span_id=a0a1a2a3a4a5a6a7,trace_id=0102030405060708090a0b0c0d0e0f10}");
    cr_assert_str_eq(find("h_count{}")->exemplars, "");
    otlp_translator_free(t);
}

Test(translate, refused_samples_count_their_points_once) {
    otlp_translator *t = translator("none");
    double b[] = {1, 2, 3};
    HistPt *h1 = hist_pt(KVS(kvs("a", "1")), 1000000, 3, b, (uint64_t[]){1, 1, 1, 1}, 4, 1, 1);
    HistPt *h2 = hist_pt(KVS(kvs("a", "2")), 1000000, 3, b, (uint64_t[]){1, 1, 1, 1}, 4, 1, 1);
    G.refuse = "a=\"2\"";
    otlp_translate_stats st =
        run(t, request(KVS(kvs("service.name", "s"), kvs("host", "h")), NULL, NULL, NULL,
                       METRICS(histogram("h", "", CUMUL, 2, (HistPt *[]){h1, h2}))));
    G.refuse = NULL;
    cr_assert_eq(st.points, 2);
    cr_assert_eq(st.rejected, 1, "six refused samples are one rejected point");
    cr_assert_eq(st.samples_refused, 6);
    cr_assert_eq(st.samples, 13, "6 + 6 + target_info");
    cr_assert_str_eq(st.message, "1 of 2 data points rejected: refused by the test");
    /* the points are numbered in request order */
    cr_assert_eq(G.r[0].point, 0);
    cr_assert_eq(G.r[6].point, 1);
    otlp_translator_free(t);
}

/* ------------------------------------------------------------------ Scotty's instruments */

enum { SC_GAUGE, SC_COUNTER, SC_HIST, SC_UPDOWN };

typedef struct pair {
    const char *k, *v;
} pair;

static int pair_cmp(const void *a, const void *b) {
    return strcmp(((const pair *)a)->k, ((const pair *)b)->k);
}

/* name{k="v",…} with the labels sorted by name, as the recorder prints series. */
static void series_str(char *out, size_t cap, const char *name, const pair *l, size_t n) {
    pair s[32];
    memcpy(s, l, n * sizeof *s);
    qsort(s, n, sizeof *s, pair_cmp);
    size_t o = snprintf(out, cap, "%s{", name);
    for (size_t i = 0; i < n; i++)
        o += snprintf(out + o, cap - o, "%s%s=\"%s\"", i ? "," : "", s[i].k, s[i].v);
    snprintf(out + o, cap - o, "}");
}

/* TELEMETRY.md §4: name, instrument, unit, description, attributes, Prometheus name. */
static const struct scotty_instrument {
    const char *name;
    int kind;
    const char *unit, *desc, *attrs, *prom;
} scotty[51] = {
    {"scotty.log_streams.active", SC_GAUGE, "", "Active log streams", "", "scotty_log_streams_active"},
    {"scotty.log_streams.total", SC_COUNTER, "", "Total log streams", "", "scotty_log_streams_total"},
    {"scotty.log_stream.duration", SC_HIST, "s", "Log stream duration", "",
     "scotty_log_stream_duration_seconds"},
    {"scotty.log_stream.lines", SC_COUNTER, "", "Log lines received", "", "scotty_log_stream_lines_total"},
    {"scotty.log_stream.errors", SC_COUNTER, "", "Log streaming errors", "",
     "scotty_log_stream_errors_total"},
    {"scotty.shell_sessions.active", SC_GAUGE, "", "Active shell sessions", "",
     "scotty_shell_sessions_active"},
    {"scotty.shell_sessions.total", SC_COUNTER, "", "Total shell sessions", "",
     "scotty_shell_sessions_total"},
    {"scotty.shell_session.duration", SC_HIST, "s", "Shell session duration", "",
     "scotty_shell_session_duration_seconds"},
    {"scotty.shell_session.errors", SC_COUNTER, "", "Shell session errors", "",
     "scotty_shell_session_errors_total"},
    {"scotty.shell_session.timeouts", SC_COUNTER, "", "Shell session timeouts", "",
     "scotty_shell_session_timeouts_total"},
    {"scotty.websocket.connections", SC_GAUGE, "", "Active WebSocket connections", "",
     "scotty_websocket_connections"},
    {"scotty.websocket.messages_sent", SC_COUNTER, "", "WebSocket messages sent", "",
     "scotty_websocket_messages_sent_total"},
    {"scotty.websocket.messages_received", SC_COUNTER, "", "WebSocket messages received", "",
     "scotty_websocket_messages_received_total"},
    {"scotty.websocket.auth_failures", SC_COUNTER, "", "WebSocket authentication failures", "",
     "scotty_websocket_auth_failures_total"},
    {"scotty.tasks.active", SC_GAUGE, "", "Active tasks", "", "scotty_tasks_active"},
    {"scotty.tasks.total", SC_COUNTER, "", "Total tasks executed", "", "scotty_tasks_total"},
    {"scotty.task.duration", SC_HIST, "s", "Task execution duration", "", "scotty_task_duration_seconds"},
    {"scotty.task.failures", SC_COUNTER, "", "Failed tasks", "", "scotty_task_failures_total"},
    {"scotty.task.output_lines", SC_COUNTER, "", "Task output lines streamed", "",
     "scotty_task_output_lines_total"},
    {"scotty.task_output_streams.active", SC_GAUGE, "", "Active task output streams", "",
     "scotty_task_output_streams_active"},
    {"scotty.task_output_streams.total", SC_COUNTER, "", "Total task output streams", "",
     "scotty_task_output_streams_total"},
    {"scotty.memory.rss_bytes", SC_GAUGE, "bytes", "Resident Set Size (RSS) in bytes", "",
     "scotty_memory_rss_bytes"},
    {"scotty.memory.virtual_bytes", SC_GAUGE, "bytes", "Virtual memory size in bytes", "",
     "scotty_memory_virtual_bytes"},
    {"scotty.tokio.workers.count", SC_GAUGE, "", "Number of Tokio worker threads", "",
     "scotty_tokio_workers_count"},
    {"scotty.tokio.tasks.active", SC_GAUGE, "", "Number of active instrumented tasks", "",
     "scotty_tokio_tasks_active"},
    {"scotty.tokio.tasks.dropped", SC_COUNTER, "", "Number of completed tasks", "",
     "scotty_tokio_tasks_dropped_total"},
    {"scotty.tokio.poll.count", SC_COUNTER, "", "Total number of task polls", "",
     "scotty_tokio_poll_count_total"},
    {"scotty.tokio.poll.duration", SC_HIST, "s", "Task poll duration", "",
     "scotty_tokio_poll_duration_seconds"},
    {"scotty.tokio.poll.slow_count", SC_COUNTER, "", "Number of slow task polls", "",
     "scotty_tokio_poll_slow_count_total"},
    {"scotty.tokio.idle.duration", SC_HIST, "s", "Task idle duration between polls", "",
     "scotty_tokio_idle_duration_seconds"},
    {"scotty.tokio.scheduled.count", SC_COUNTER, "", "Number of times tasks were scheduled", "",
     "scotty_tokio_scheduled_count_total"},
    {"scotty.tokio.first_poll.delay", SC_HIST, "s", "Delay between task creation and first poll", "",
     "scotty_tokio_first_poll_delay_seconds"},
    {"scotty.http.requests.total", SC_COUNTER, "", "Total HTTP requests",
     "method=GET,route=/api/v1/health,status=200", "scotty_http_requests_total"},
    {"scotty.http.request.duration", SC_HIST, "s", "HTTP request duration",
     "method=GET,route=/api/v1/health,status=200", "scotty_http_request_duration_seconds"},
    {"scotty.http.requests.active", SC_UPDOWN, "", "Active HTTP requests", "", "scotty_http_requests_active"},
    {"scotty.apps.total", SC_GAUGE, "", "Total number of managed applications", "", "scotty_apps_total"},
    {"scotty.apps.by_status", SC_GAUGE, "", "Number of apps by status", "status=running",
     "scotty_apps_by_status"},
    {"scotty.app.services.count", SC_HIST, "", "Number of services per application", "",
     "scotty_app_services_count"},
    {"scotty.app.last_check.age", SC_HIST, "s", "Time since last health check", "",
     "scotty_app_last_check_age_seconds"},
    {"scotty.oauth.device_flow_sessions.active", SC_GAUGE, "", "Active OAuth device flow sessions", "",
     "scotty_oauth_device_flow_sessions_active"},
    {"scotty.oauth.web_flow_sessions.active", SC_GAUGE, "", "Active OAuth web flow sessions", "",
     "scotty_oauth_web_flow_sessions_active"},
    {"scotty.oauth.sessions.active", SC_GAUGE, "", "Active OAuth sessions", "",
     "scotty_oauth_sessions_active"},
    {"scotty.oauth.sessions.expired_cleaned", SC_COUNTER, "", "Expired OAuth sessions cleaned up", "",
     "scotty_oauth_sessions_expired_cleaned_total"},
    {"scotty.oauth.device_flows.total", SC_COUNTER, "", "Total OAuth device flows started", "",
     "scotty_oauth_device_flows_total"},
    {"scotty.oauth.web_flows.total", SC_COUNTER, "", "Total OAuth web flows started", "",
     "scotty_oauth_web_flows_total"},
    {"scotty.oauth.flows.failures", SC_COUNTER, "", "Failed OAuth flows", "",
     "scotty_oauth_flows_failures_total"},
    {"scotty.oauth.token_validations.total", SC_COUNTER, "", "Total OAuth token validations", "",
     "scotty_oauth_token_validations_total"},
    {"scotty.oauth.token_validation.duration", SC_HIST, "s", "OAuth token validation duration", "",
     "scotty_oauth_token_validation_duration_seconds"},
    {"scotty.oauth.token_validations.failures", SC_COUNTER, "", "Failed OAuth token validations", "",
     "scotty_oauth_token_validations_failures_total"},
    {"scotty.rate_limit.requests.total", SC_COUNTER, "", "Total rate limit requests (allowed and denied)",
     "tier=public_auth,decision=allowed", "scotty_rate_limit_requests_total"},
    {"scotty.rate_limit.extractor.errors", SC_COUNTER, "", "Rate limit key extraction failures", "",
     "scotty_rate_limit_extractor_errors_total"},
};

/* The table above is checked against TELEMETRY.md §4 when the reference is at hand: instrument
 * name, unit and Prometheus name of all 51 rows. */
Test(translate, scotty_table_matches_the_reference) {
    char path[1024];
    snprintf(path, sizeof path, "%s/reference/scotty/TELEMETRY.md", TR_SHARED_DIR);
    FILE *f = fopen(path, "r");
    if (!f) cr_skip_test("reference not present at %s", path);
    char line[4096];
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        int idx;
        if (sscanf(line, "| %d |", &idx) != 1 || idx < 1 || idx > 51) continue;
        /* columns: # | field | `otel name` | instrument | data | unit | desc | attrs | when | prom */
        char *col[12] = {0};
        int nc = 0;
        for (char *p = strchr(line, '|'); p && nc < 12; p = strchr(p + 1, '|'))
            col[nc++] = p + 1;
        cr_assert_geq(nc, 10, "row %d", idx);
        const struct scotty_instrument *s = &scotty[idx - 1];
        char want[256];
        snprintf(want, sizeof want, "`%s`", s->name);
        cr_assert(strncmp(col[2] + 1, want, strlen(want)) == 0, "row %d name: %s", idx, s->name);
        int has_unit = strncmp(col[5] + 1, "`", 1) == 0;
        if (*s->unit) {
            snprintf(want, sizeof want, "`%s`", s->unit);
            cr_assert(strncmp(col[5] + 1, want, strlen(want)) == 0, "row %d unit", idx);
        } else {
            cr_assert(!has_unit, "row %d has no unit", idx);
        }
        snprintf(want, sizeof want, "`%s%s`", s->prom, s->kind == SC_HIST ? "_bucket" : "");
        cr_assert(strncmp(col[9] + 1, want, strlen(want)) == 0, "row %d prometheus name %s", idx, want);
        rows++;
    }
    fclose(f);
    cr_assert_eq(rows, 51);
}

Test(translate, scotty_instruments) {
    otlp_translator *t = translator("all");
    KV **res = KVS(kvs("service.name", "scotty"), kvs("service.version", "0.3.3"),
                   kvs("telemetry.sdk.language", "rust"), kvs("telemetry.sdk.name", "opentelemetry"),
                   kvs("telemetry.sdk.version", "0.31.0"));
    Metric **ms = mk(51 * sizeof(Metric *));
    const uint64_t t0 = 1750000000000000000ULL, t1 = t0 + 10000000000ULL;
    for (int i = 0; i < 51; i++) {
        const struct scotty_instrument *s = &scotty[i];
        /* the instrument's attributes: "k=v,k=v" */
        KV **attrs = mk(8 * sizeof(KV *));
        char buf[256];
        snprintf(buf, sizeof buf, "%s", s->attrs);
        int na = 0;
        for (char *tokp, *kvp = strtok_r(buf, ",", &tokp); kvp; kvp = strtok_r(NULL, ",", &tokp)) {
            char *eq = strchr(kvp, '=');
            *eq = 0;
            attrs[na++] = kvs(kvp, eq + 1);
        }
        Metric *m;
        if (s->kind == SC_GAUGE) {
            m = gauge(s->name, s->unit, num_pt(attrs, 0, t1, 3, 1));
        } else if (s->kind == SC_COUNTER || s->kind == SC_UPDOWN) {
            NumPt **p = mk(sizeof(NumPt *));
            p[0] = num_pt(attrs, t0, t1, 3, 1);
            m = sum(s->name, s->unit, s->kind == SC_COUNTER, CUMUL, 1, p);
        } else {
            uint64_t counts[16] = {0, 2, 1};
            HistPt **p = mk(sizeof(HistPt *));
            p[0] = hist_pt(attrs, t1, 15, scotty_bounds, counts, 3, 1, 17.5);
            p[0]->start_time_unix_nano = t0;
            m = histogram(s->name, s->unit, CUMUL, 1, p);
        }
        m->description = S(s->desc);
        ms[i] = m;
    }
    otlp_translate_stats st = run(t, request(res, "scotty", "", NULL, 51, ms));
    cr_assert_eq(st.points, 51);
    cr_assert_eq(st.rejected, 0);
    static const char *les[] = {"0",   "5",   "10",   "25",   "50",   "75",   "100",   "250",
                                "500", "750", "1000", "2500", "5000", "7500", "10000", "+Inf"};
    size_t want_samples = 1; /* target_info */
    for (int i = 0; i < 51; i++) {
        const struct scotty_instrument *s = &scotty[i];
        /* the labels Scotty's stack gives: resource attributes, job, scope, the instrument's own */
        pair l[16] = {{"job", "scotty"},
                      {"otel_scope_name", "scotty"},
                      {"service_name", "scotty"},
                      {"service_version", "0.3.3"},
                      {"telemetry_sdk_language", "rust"},
                      {"telemetry_sdk_name", "opentelemetry"},
                      {"telemetry_sdk_version", "0.31.0"}};
        size_t nl = 7;
        char buf[256];
        snprintf(buf, sizeof buf, "%s", s->attrs);
        for (char *tokp, *kvp = strtok_r(buf, ",", &tokp); kvp; kvp = strtok_r(NULL, ",", &tokp)) {
            char *eq = strchr(kvp, '=');
            *eq = 0;
            l[nl++] = (pair){kvp, eq + 1};
        }
        char series[2048], name[256];
        if (s->kind != SC_HIST) {
            series_str(series, sizeof series, s->prom, l, nl);
            expect(series, 3);
            cr_assert_eq(find(series)->t, (int64_t)(t1 / 1000000));
            want_samples++;
        } else {
            snprintf(name, sizeof name, "%s_sum", s->prom);
            series_str(series, sizeof series, name, l, nl);
            expect(series, 17.5);
            snprintf(name, sizeof name, "%s_count", s->prom);
            series_str(series, sizeof series, name, l, nl);
            expect(series, 3);
            uint64_t cum = 0, counts[16] = {0, 2, 1};
            snprintf(name, sizeof name, "%s_bucket", s->prom);
            for (int b = 0; b < 16; b++) {
                cum += counts[b];
                l[nl] = (pair){"le", les[b]};
                series_str(series, sizeof series, name, l, nl + 1);
                expect(series, b == 15 ? 3 : (double)cum);
            }
            want_samples += 18;
        }
    }
    cr_assert_eq(G.n, want_samples, "no other series");
    const rec *ti = find("target_info{job=\"scotty\",service_version=\"0.3.3\",telemetry_sdk_language="
                         "\"rust\",telemetry_sdk_name=\"opentelemetry\",telemetry_sdk_version=\"0.31.0\"}");
    cr_assert(ti, "Scotty's target_info");
    cr_assert_eq(ti->t, (int64_t)(t1 / 1000000));
    /* metadata: type, help and unit per family */
    cr_assert_eq(G.nmeta, 51);
    cr_assert_str_eq(G.meta[2], "scotty_log_stream_duration_seconds|histogram|seconds|Log stream duration");
    cr_assert_str_eq(G.meta[21], "scotty_memory_rss_bytes|gauge|bytes|Resident Set Size (RSS) in bytes");
    cr_assert_str_eq(G.meta[32], "scotty_http_requests_total|counter||Total HTTP requests");
    cr_assert_str_eq(G.meta[34], "scotty_http_requests_active|gauge||Active HTTP requests");
    otlp_translator_free(t);
}
