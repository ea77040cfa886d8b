/* The translator's cache of `le` (and `quantile`) texts: whether a bound's text comes from
 * the cache (first use, later uses, other requests) or is formatted because the cache is full,
 * it is the text tr_format_double gives, attached to the right bucket. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "otlp/translate.h"
#include "util/buf.h"

typedef Opentelemetry__Proto__Metrics__V1__Metric Metric;
typedef Opentelemetry__Proto__Metrics__V1__HistogramDataPoint HistPt;
typedef Opentelemetry__Proto__Metrics__V1__ResourceMetrics RM;
typedef Opentelemetry__Proto__Metrics__V1__ScopeMetrics SM;

#define NB 300 /* bounds per point */

/* What came out: for each _bucket sample, its le text and its value. */
typedef struct got {
    char le[NB + 1][64];
    double v[NB + 1];
    size_t n;
} got;

static int on_sample(void *ctx, const otlp_sample *s, const char **why) {
    got *g = ctx;
    (void)why;
    const char *name = NULL, *le = NULL;
    for (size_t i = 0; i < s->n_labels; i++) {
        if (strcmp(s->labels[i].name, "__name__") == 0) name = s->labels[i].value;
        if (strcmp(s->labels[i].name, "le") == 0) le = s->labels[i].value;
    }
    cr_assert_not_null(name);
    if (!strstr(name, "_bucket")) return 0;
    cr_assert_not_null(le);
    cr_assert_lt(g->n, NB + 1);
    snprintf(g->le[g->n], sizeof g->le[0], "%s", le);
    g->v[g->n++] = s->value;
    return 0;
}

/* One cumulative histogram point with the given bounds; bucket i holds i + 1 (so the
 * cumulative _bucket series i has (i + 1)(i + 2) / 2). */
static void translate(otlp_translator *t, const double *bounds, got *g) {
    uint64_t counts[NB + 1];
    for (size_t i = 0; i <= NB; i++)
        counts[i] = i + 1;
    HistPt p = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__INIT;
    p.time_unix_nano = 1700000000000000000ULL;
    p.n_explicit_bounds = NB;
    p.explicit_bounds = (double *)bounds;
    p.n_bucket_counts = NB + 1;
    p.bucket_counts = counts;
    p.count = (NB + 1) * (NB + 2) / 2;
    HistPt *pp = &p;
    Opentelemetry__Proto__Metrics__V1__Histogram h = OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM__INIT;
    h.aggregation_temporality =
        OPENTELEMETRY__PROTO__METRICS__V1__AGGREGATION_TEMPORALITY__AGGREGATION_TEMPORALITY_CUMULATIVE;
    h.n_data_points = 1;
    h.data_points = &pp;
    Metric m = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__INIT;
    m.name = "lat";
    m.unit = "";
    m.description = "";
    m.data_case = OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM;
    m.histogram = &h;
    Metric *mp = &m;
    SM sm = OPENTELEMETRY__PROTO__METRICS__V1__SCOPE_METRICS__INIT;
    sm.n_metrics = 1;
    sm.metrics = &mp;
    SM *smp = &sm;
    RM rm = OPENTELEMETRY__PROTO__METRICS__V1__RESOURCE_METRICS__INIT;
    rm.n_scope_metrics = 1;
    rm.scope_metrics = &smp;
    RM *rmp = &rm;
    otlp_metrics_req r = OPENTELEMETRY__PROTO__COLLECTOR__V1__EXPORT_METRICS_SERVICE_REQUEST__INIT;
    r.n_resource_metrics = 1;
    r.resource_metrics = &rmp;
    memset(g, 0, sizeof *g);
    otlp_emit e = {.ctx = g, .sample = on_sample};
    otlp_translate_stats st;
    cr_assert_eq(otlp_translate(t, &r, &e, &st), 0, "%s", st.message);
    cr_assert_eq(st.rejected, 0, "%s", st.message);
}

static void check(const double *bounds, const got *g) {
    cr_assert_eq(g->n, NB + 1);
    for (size_t i = 0; i < NB; i++) {
        char want[64];
        tr_format_double(want, sizeof want, bounds[i]);
        cr_assert_str_eq(g->le[i], want, "bound %zu (%.17g)", i, bounds[i]);
        cr_assert_eq(g->v[i], (double)((i + 1) * (i + 2) / 2), "bucket %zu: cumulative", i);
    }
    cr_assert_str_eq(g->le[NB], "+Inf");
}

Test(translate_le_cache, texts_from_the_cache_and_past_its_capacity) {
    char err[128];
    otlp_translate_opts o = {.promote_resource_attributes = "none"};
    otlp_translator *t = otlp_translator_new(&o, err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    /* 20 sets of 300 distinct bounds: 6000 values, far more than the cache holds, with short
     * and long texts (1e-7, 0.30000000000000004, 1.7976931348623157e+308-like) */
    static double sets[20][NB];
    for (int s = 0; s < 20; s++)
        for (int i = 0; i < NB; i++) {
            double base = (s * NB + i + 1) * 0.001;
            sets[s][i] = i % 3 == 0 ? base : i % 3 == 1 ? base + 0.1 + 0.2 : base * 1e300;
        }
    for (int s = 0; s < 20; s++) /* ascending, as a histogram's bounds are */
        for (int i = 1; i < NB; i++)
            if (sets[s][i] <= sets[s][i - 1]) sets[s][i] = sets[s][i - 1] * 1.5 + 1;
    got *g = malloc(sizeof *g);
    for (int round = 0; round < 3; round++) /* first uses, then hits (or misses when full) */
        for (int s = 0; s < 20; s++) {
            translate(t, sets[s], g);
            check(sets[s], g);
        }
    free(g);
    otlp_translator_free(t);
}
