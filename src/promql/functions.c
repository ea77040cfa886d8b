/* PromQL functions. Range functions walk each series once: the window (tt - range, tt] of
 * step i+1 starts where step i's ended, so the store is read once and every sample is visited
 * by two moving indices. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "promql/eval_int.h"
#include "util/re.h"

/* ---- range functions ---- */

typedef struct {
    const pq_node *call;
    const pq_rangearg *ra;
    size_t step;
    int64_t ts;    /* the step's evaluation time */
    double p1, p2; /* scalar arguments */
    double *buf;   /* scratch of bufcap values (quantiles sort a copy of the window) */
    size_t bufcap;
    pq_ev *ev;
    const uint32_t *resets; /* rate/increase: drops among the series' first i+1 samples */
    size_t lo;              /* the window's first sample in the series */
} rctx;

typedef int (*rfn)(const rctx *c, const int64_t *t, const double *v, size_t n, double *out);

static int extrapolated(const rctx *c, const int64_t *t, const double *v, size_t n, double *out, int counter,
                        int rate) {
    if (n < 2) return 0;
    int64_t rangeEnd = c->ra->tt[c->step], rangeStart = rangeEnd - c->ra->range;
    double res = v[n - 1] - v[0];
    /* windows without a drop (most) skip the walk; with one, it runs as Prometheus's does */
    if (counter && (!c->resets || c->resets[c->lo + n - 1] != c->resets[c->lo])) {
        double last = 0;
        for (size_t i = 0; i < n; i++) {
            if (v[i] < last) res += last;
            last = v[i];
        }
    }
    double toStart = (double)(t[0] - rangeStart) / 1000, toEnd = (double)(rangeEnd - t[n - 1]) / 1000;
    double sampled = (double)(t[n - 1] - t[0]) / 1000;
    double avg = sampled / (double)(n - 1);
    double thr = avg * 1.1;
    double ext = sampled;
    if (toStart >= thr) toStart = avg / 2;
    if (counter && res > 0 && v[0] >= 0) {
        double toZero = sampled * (v[0] / res);
        if (toZero < toStart) toStart = toZero;
    }
    ext += toStart;
    if (toEnd >= thr) toEnd = avg / 2;
    ext += toEnd;
    double factor = ext / sampled;
    if (rate) factor /= (double)c->ra->range / 1000;
    *out = res * factor;
    return 1;
}
static int f_rate(const rctx *c, const int64_t *t, const double *v, size_t n, double *o) {
    return extrapolated(c, t, v, n, o, 1, 1);
}
static int f_increase(const rctx *c, const int64_t *t, const double *v, size_t n, double *o) {
    return extrapolated(c, t, v, n, o, 1, 0);
}
static int f_delta(const rctx *c, const int64_t *t, const double *v, size_t n, double *o) {
    return extrapolated(c, t, v, n, o, 0, 0);
}
static int instant_value(const int64_t *t, const double *v, size_t n, double *o, int rate) {
    if (n < 2) return 0;
    double last = v[n - 1], prev = v[n - 2];
    double r = (rate && last < prev) ? last : last - prev;
    int64_t iv = t[n - 1] - t[n - 2];
    if (iv == 0) return 0;
    if (rate) r /= (double)iv / 1000;
    *o = r;
    return 1;
}
static int f_irate(const rctx *c, const int64_t *t, const double *v, size_t n, double *o) {
    return instant_value(t, v, n, o, 1);
}
static int f_idelta(const rctx *c, const int64_t *t, const double *v, size_t n, double *o) {
    return instant_value(t, v, n, o, 0);
}

static void linreg(const int64_t *t, const double *v, size_t n, int64_t icpt, double *slope,
                   double *intercept) {
    double N = 0, sx = 0, cx = 0, sy = 0, cy = 0, sxy = 0, cxy = 0, sx2 = 0, cx2 = 0;
    double init = v[0];
    int consty = 1;
    for (size_t i = 0; i < n; i++) {
        if (consty && i > 0 && v[i] != init) consty = 0;
        N += 1;
        double x = (double)(t[i] - icpt) / 1e3;
        sx = pq_kahan_inc(x, sx, &cx);
        sy = pq_kahan_inc(v[i], sy, &cy);
        sxy = pq_kahan_inc(x * v[i], sxy, &cxy);
        sx2 = pq_kahan_inc(x * x, sx2, &cx2);
    }
    if (consty) {
        if (isinf(init)) {
            *slope = NAN;
            *intercept = NAN;
            return;
        }
        *slope = 0;
        *intercept = init;
        return;
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    double cov = sxy - sx * sy / N, var = sx2 - sx * sx / N;
    *slope = cov / var;
    *intercept = sy / N - *slope * sx / N;
}
static int f_deriv(const rctx *c, const int64_t *t, const double *v, size_t n, double *o) {
    if (n < 2) return 0;
    double s, i;
    linreg(t, v, n, t[0], &s, &i);
    *o = s;
    return 1;
}
static int f_predict_linear(const rctx *c, const int64_t *t, const double *v, size_t n, double *o) {
    if (n < 2) return 0;
    double s, i;
    linreg(t, v, n, c->ts, &s, &i);
    *o = s * c->p1 + i;
    return 1;
}
static int f_sum_ot(const rctx *c, const int64_t *t, const double *v, size_t n, double *o) {
    if (!n) return 0;
    double s = 0, k = 0;
    for (size_t i = 0; i < n; i++)
        s = pq_kahan_inc(v[i], s, &k);
    *o = s + k;
    return 1;
}
static int f_avg_ot(const rctx *c, const int64_t *t, const double *v, size_t n, double *o) {
    if (!n) return 0;
    double sum = 0, mean = 0, count = 0, kc = 0;
    int incr = 0;
    for (size_t i = 0; i < n; i++) {
        count++;
        if (!incr) {
            double c2 = kc;
            double ns = pq_kahan_inc(v[i], sum, &c2);
            if (count == 1 || !isinf(ns)) {
                sum = ns;
                kc = c2;
                continue;
            }
            incr = 1;
            mean = sum / (count - 1);
            kc /= count - 1;
        }
        double q = (count - 1) / count;
        double c3 = q * kc;
        mean = pq_kahan_inc(v[i] / count, q * mean, &c3);
        kc = c3;
    }
    *o = incr ? mean + kc : sum / count + kc / count;
    return 1;
}
static int f_count_ot(const rctx *c, const int64_t *t, const double *v, size_t n, double *o) {
    if (!n) return 0;
    *o = (double)n;
    return 1;
}
static int f_min_ot(const rctx *c, const int64_t *t, const double *v, size_t n, double *o) {
    if (!n) return 0;
    double m = v[0];
    for (size_t i = 0; i < n; i++)
        if (v[i] < m || isnan(m)) m = v[i];
    *o = m;
    return 1;
}
static int f_max_ot(const rctx *c, const int64_t *t, const double *v, size_t n, double *o) {
    if (!n) return 0;
    double m = v[0];
    for (size_t i = 0; i < n; i++)
        if (v[i] > m || isnan(m)) m = v[i];
    *o = m;
    return 1;
}
static int f_last_ot(const rctx *c, const int64_t *t, const double *v, size_t n, double *o) {
    if (!n) return 0;
    *o = v[n - 1];
    return 1;
}
static int f_ts_last(const rctx *c, const int64_t *t, const double *v, size_t n, double *o) {
    if (!n) return 0;
    *o = t[n - 1] / 1000.0;
    return 1;
}
static int f_ts_min(const rctx *c, const int64_t *t, const double *v, size_t n, double *o) {
    if (!n) return 0;
    size_t k = 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] <= v[k] || isnan(v[k])) k = i;
    *o = t[k] / 1000.0;
    return 1;
}
static int f_ts_max(const rctx *c, const int64_t *t, const double *v, size_t n, double *o) {
    if (!n) return 0;
    size_t k = 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] >= v[k] || isnan(v[k])) k = i;
    *o = t[k] / 1000.0;
    return 1;
}
static int f_present_ot(const rctx *c, const int64_t *t, const double *v, size_t n, double *o) {
    if (!n) return 0;
    *o = 1;
    return 1;
}
static int variance(const double *v, size_t n, double *o) {
    if (!n) return 0;
    double count = 0, mean = 0, cm = 0, aux = 0, ca = 0;
    for (size_t i = 0; i < n; i++) {
        count++;
        double d = v[i] - (mean + cm);
        mean = pq_kahan_inc(d / count, mean, &cm);
        aux = pq_kahan_inc(d * (v[i] - (mean + cm)), aux, &ca);
    }
    *o = (aux + ca) / count;
    return 1;
}
static int f_stdvar_ot(const rctx *c, const int64_t *t, const double *v, size_t n, double *o) {
    return variance(v, n, o);
}
static int f_stddev_ot(const rctx *c, const int64_t *t, const double *v, size_t n, double *o) {
    if (!variance(v, n, o)) return 0;
    *o = sqrt(*o);
    return 1;
}
static double *scratch(const rctx *cc, const double *v, size_t n) {
    rctx *c = (rctx *)cc;
    if (n > c->bufcap) {
        size_t nc = n < 64 ? 64 : n * 2;
        c->buf = pq_alloc(c->ev, nc * sizeof *c->buf);
        c->bufcap = nc;
    }
    memcpy(c->buf, v, n * sizeof *v);
    return c->buf;
}
static int f_quantile_ot(const rctx *c, const int64_t *t, const double *v, size_t n, double *o) {
    if (!n) return 0;
    double *b = scratch(c, v, n);
    if (!b) return 0;
    *o = pq_quantile(c->p1, b, n);
    return 1;
}
static int f_mad_ot(const rctx *c, const int64_t *t, const double *v, size_t n, double *o) {
    if (!n) return 0;
    double *b = scratch(c, v, n);
    if (!b) return 0;
    double med = pq_quantile(0.5, b, n);
    for (size_t i = 0; i < n; i++)
        b[i] = fabs(v[i] - med);
    *o = pq_quantile(0.5, b, n);
    return 1;
}
static int f_changes(const rctx *c, const int64_t *t, const double *v, size_t n, double *o) {
    if (!n) return 0;
    double k = 0;
    for (size_t i = 1; i < n; i++)
        if (!(v[i] == v[i - 1] || (isnan(v[i]) && isnan(v[i - 1])))) k++;
    *o = k;
    return 1;
}
static int f_resets(const rctx *c, const int64_t *t, const double *v, size_t n, double *o) {
    if (!n) return 0;
    double k = 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] < v[i - 1]) k++;
    *o = k;
    return 1;
}
static int f_des(const rctx *c, const int64_t *t, const double *v, size_t n, double *o) {
    if (n < 2) return 0;
    double sf = c->p1, tf = c->p2;
    double s0 = 0, s1 = v[0], b = v[1] - v[0];
    for (size_t i = 1; i < n; i++) {
        double x = sf * v[i];
        if (i - 1 != 0) b = tf * (s1 - s0) + (1 - tf) * b;
        double y = (1 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    *o = s1;
    return 1;
}

static const struct {
    const char *name;
    rfn fn;
    int keep_name;
} rfuncs[] = {
    {"rate", f_rate, 0},
    {"increase", f_increase, 0},
    {"delta", f_delta, 0},
    {"irate", f_irate, 0},
    {"idelta", f_idelta, 0},
    {"deriv", f_deriv, 0},
    {"predict_linear", f_predict_linear, 0},
    {"sum_over_time", f_sum_ot, 0},
    {"avg_over_time", f_avg_ot, 0},
    {"count_over_time", f_count_ot, 0},
    {"min_over_time", f_min_ot, 0},
    {"max_over_time", f_max_ot, 0},
    {"last_over_time", f_last_ot, 1},
    {"present_over_time", f_present_ot, 0},
    {"ts_of_last_over_time", f_ts_last, 0},
    {"ts_of_min_over_time", f_ts_min, 0},
    {"ts_of_max_over_time", f_ts_max, 0},
    {"stddev_over_time", f_stddev_ot, 0},
    {"stdvar_over_time", f_stdvar_ot, 0},
    {"quantile_over_time", f_quantile_ot, 0},
    {"mad_over_time", f_mad_ot, 0},
    {"changes", f_changes, 0},
    {"resets", f_resets, 0},
    {"double_exponential_smoothing", f_des, 0},
};

static int counter_name_ok(const char *name) {
    size_t l = strlen(name);
    static const char *suf[] = {"_total", "_sum", "_count", "_bucket"};
    for (int i = 0; i < 4; i++) {
        size_t s = strlen(suf[i]);
        if (l >= s && !strcmp(name + l - s, suf[i])) return 1;
    }
    return 0;
}

static pq_val absent_labels_vec(pq_ev *ev, const pq_node *arg, size_t ns, const uint8_t *present);

static pq_val eval_range_fn(pq_ev *ev, const pq_node *n, const pq_rng *r) {
    const pq_node *marg = NULL;
    double *p1 = NULL, *p2 = NULL;
    const char *name = n->fn->name;
    if (!strcmp(name, "quantile_over_time")) {
        pq_val q = pq_eval(ev, n->args[0], r);
        p1 = q.sc;
        marg = n->args[1];
    } else {
        marg = n->args[0];
        if (n->nargs > 1) p1 = pq_eval(ev, n->args[1], r).sc;
        if (n->nargs > 2) p2 = pq_eval(ev, n->args[2], r).sc;
    }
    pq_rangearg ra;
    pq_eval_rangearg(ev, marg, r, &ra);
    size_t ns = r->n;
    if (!strcmp(name, "absent_over_time")) {
        uint8_t *present = pq_calloc(ev, ns, 1);
        for (size_t i = 0; i < ra.n; i++) {
            pq_raw *s = &ra.s[i];
            size_t lo = 0, hi = 0;
            for (size_t j = 0; j < ns; j++) {
                int64_t tt = ra.tt[j];
                if (j && tt < ra.tt[j - 1]) lo = hi = 0;
                while (hi < s->n && s->t[hi] <= tt)
                    hi++;
                while (lo < hi && s->t[lo] <= tt - ra.range)
                    lo++;
                if (hi > lo) present[j] = 1;
            }
        }
        return absent_labels_vec(ev, marg->kind == N_MSEL ? marg->expr : NULL, ns, present);
    }
    rfn fn = NULL;
    int keep = 0;
    for (size_t i = 0; i < sizeof rfuncs / sizeof rfuncs[0]; i++)
        if (!strcmp(rfuncs[i].name, name)) {
            fn = rfuncs[i].fn;
            keep = rfuncs[i].keep_name;
        }
    if (!fn) pq_fail(ev, PROMQL_ERR_BAD_DATA, "function \"%s\" is not supported", name);
    if (fn == f_des) {
        for (size_t j = 0; j < ns; j++) {
            if (!(p1[j] > 0 && p1[j] < 1))
                pq_fail(ev, PROMQL_ERR_EXECUTION, "invalid smoothing factor. Expected: 0 < sf < 1, got: %f",
                        p1[j]);
            if (!(p2[j] > 0 && p2[j] < 1))
                pq_fail(ev, PROMQL_ERR_EXECUTION, "invalid trend factor. Expected: 0 < tf < 1, got: %f",
                        p2[j]);
        }
    }
    int is_rate = fn == f_rate || fn == f_increase;
    pq_val o = {.type = PV_VECTOR};
    o.s = pq_calloc(ev, ra.n, sizeof *o.s);
    int warned_q = 0;
    for (size_t i = 0; i < ra.n; i++) {
        if ((i & 63) == 0) pq_poll(ev);
        pq_raw *s = &ra.s[i];
        pq_ser *d = &o.s[o.n];
        d->lb = s->lb;
        d->drop_name = keep ? s->drop_name : 1;
        pq_count_samples(ev, (int64_t)ns);
        d->v = pq_alloc(ev, ns * sizeof(double));
        d->ok = pq_calloc(ev, ns, 1);
        size_t lo = 0, hi = 0;
        int any = 0;
        rctx c = {n, &ra, 0, 0, 0, 0, NULL, 0, ev, NULL, 0};
        if (is_rate && s->n) {
            uint32_t *rs = pq_alloc(ev, s->n * sizeof *rs);
            rs[0] = 0;
            for (size_t k = 1; k < s->n; k++)
                rs[k] = rs[k - 1] + (s->v[k] < s->v[k - 1]);
            c.resets = rs;
        }
        for (size_t j = 0; j < ns; j++) {
            int64_t tt = ra.tt[j];
            if (j && tt < ra.tt[j - 1]) lo = hi = 0;
            while (hi < s->n && s->t[hi] <= tt)
                hi++;
            while (lo < hi && s->t[lo] <= tt - ra.range)
                lo++;
            if (hi == lo) continue;
            c.step = j;
            c.ts = pq_step_time(r, j);
            c.p1 = p1 ? p1[j] : 0;
            c.p2 = p2 ? p2[j] : 0;
            if (fn == f_quantile_ot && !warned_q && (isnan(c.p1) || c.p1 < 0 || c.p1 > 1)) {
                char b[40];
                pq_format_float(c.p1, b, sizeof b);
                pq_warn(ev, 0, n->args[0], "quantile value should be between 0 and 1, got %s", b);
                warned_q = 1;
            }
            double v;
            c.lo = lo;
            if (fn(&c, s->t + lo, s->v + lo, hi - lo, &v)) {
                d->v[j] = v;
                d->ok[j] = 1;
                any = 1;
            }
        }
        if (any) {
            o.n++;
            if (is_rate && ra.sel) {
                const char *mn = pq_lget(&s->lb, "__name__");
                if (*mn && !counter_name_ok(mn)) {
                    const pq_node *u = pq_unwrap(marg);
                    pq_warn(ev, 1, u,
                            "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: "
                            "\"%s\"",
                            mn);
                }
            }
        }
    }

    return o;
}

/* ---- absent ---- */

static pq_val absent_labels_vec(pq_ev *ev, const pq_node *sel, size_t ns, const uint8_t *present) {
    pq_lset l = {0};
    if (sel) {
        char **seen = pq_alloc(ev, (sel->nms + 1) * sizeof(char *));
        size_t nseen = 0;
        for (size_t i = 0; i < sel->nms; i++) {
            const pq_matcher *m = &sel->ms[i];
            if (!strcmp(m->name, "__name__")) continue;
            int dup = 0;
            for (size_t k = 0; k < nseen; k++)
                if (!strcmp(seen[k], m->name)) dup = 1;
            if (m->type == TSDB_MATCH_EQ && !dup) {
                l = pq_lset_set(ev, &l, m->name, m->value);
                seen[nseen++] = m->name;
            } else
                l = pq_lset_del(ev, &l, m->name);
        }
    }
    pq_val o = {.type = PV_VECTOR};
    o.s = pq_new_series(ev, 1, ns);
    o.n = 1;
    o.s[0].lb = l;
    for (size_t j = 0; j < ns; j++) {
        o.s[0].ok[j] = !present[j];
        o.s[0].v[j] = 1;
    }
    return o;
}

/* ---- instant-vector functions ---- */

static double sgn(double x) { return x > 0 ? 1 : x < 0 ? -1 : x; }
static double deg(double x) { return x * 180 / M_PI; }
static double rad(double x) { return x * M_PI / 180; }

static const struct {
    const char *name;
    double (*fn)(double);
} simple[] = {
    {"abs", fabs},    {"ceil", ceil},   {"floor", floor}, {"exp", exp},   {"sqrt", sqrt}, {"ln", log},
    {"log2", log2},   {"log10", log10}, {"sgn", sgn},     {"sin", sin},   {"cos", cos},   {"tan", tan},
    {"asin", asin},   {"acos", acos},   {"atan", atan},   {"sinh", sinh}, {"cosh", cosh}, {"tanh", tanh},
    {"asinh", asinh}, {"acosh", acosh}, {"atanh", atanh}, {"deg", deg},   {"rad", rad},
};

static double date_part(const char *fn, double v) {
    if (isnan(v) || isinf(v) || fabs(v) > 9e15) return NAN;
    time_t t = (time_t)(int64_t)v;
    struct tm tm;
    gmtime_r(&t, &tm);
    if (!strcmp(fn, "year")) return tm.tm_year + 1900;
    if (!strcmp(fn, "month")) return tm.tm_mon + 1;
    if (!strcmp(fn, "day_of_month")) return tm.tm_mday;
    if (!strcmp(fn, "day_of_week")) return tm.tm_wday;
    if (!strcmp(fn, "day_of_year")) return tm.tm_yday + 1;
    if (!strcmp(fn, "hour")) return tm.tm_hour;
    if (!strcmp(fn, "minute")) return tm.tm_min;
    if (!strcmp(fn, "days_in_month")) {
        static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        int y = tm.tm_year + 1900;
        int d = dm[tm.tm_mon];
        if (tm.tm_mon == 1 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) d = 29;
        return d;
    }
    return NAN;
}

/* natural ordering of label values (as Prometheus's natsort) */
static int natcmp(const char *a, const char *b) {
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            const char *sa = a, *sb = b;
            while (*sa == '0')
                sa++;
            while (*sb == '0')
                sb++;
            const char *ea = sa, *eb = sb;
            while (isdigit((unsigned char)*ea))
                ea++;
            while (isdigit((unsigned char)*eb))
                eb++;
            if (ea - sa != eb - sb) return ea - sa < eb - sb ? -1 : 1;
            int c = strncmp(sa, sb, (size_t)(ea - sa));
            if (c) return c;
            a = ea;
            b = eb;
            continue;
        }
        if (*a != *b) return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        a++;
        b++;
    }
    return *a ? 1 : *b ? -1 : 0;
}

typedef struct {
    pq_ser *s;
    char **labels;
    size_t nl;
    int desc;
    double v;
} sortitem;

static int cmp_by_label(const void *x, const void *y) {
    const sortitem *a = x, *b = y;
    for (size_t i = 0; i < a->nl; i++) {
        const char *va = pq_lget(&a->s->lb, a->labels[i]), *vb = pq_lget(&b->s->lb, a->labels[i]);
        if (!strcmp(va, vb)) continue;
        int c = natcmp(va, vb);
        if (c == 0) c = strcmp(va, vb);
        return a->desc ? -c : c;
    }
    int c = pq_lset_cmp(&a->s->lb, &b->s->lb);
    return a->desc ? -c : c;
}

static int cmp_by_value(const void *x, const void *y) {
    const sortitem *a = x, *b = y;
    if (isnan(a->v)) return isnan(b->v) ? 0 : 1;
    if (isnan(b->v)) return -1;
    if (a->v == b->v) return 0;
    return (a->v < b->v) != a->desc ? -1 : 1;
}

static int valid_label_name(const char *s) {
    if (!*s) return 0;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        int n = (*p & 0xE0) == 0xC0 ? 1 : (*p & 0xF0) == 0xE0 ? 2 : (*p & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0) return 0;
        for (int i = 1; i <= n; i++)
            if ((p[i] & 0xC0) != 0x80) return 0;
        p += n + 1;
    }
    return 1;
}

static pq_val relabel_finish(pq_ev *ev, pq_val *v, size_t ns) {
    pq_out ob;
    pq_out_init(&ob, ns);
    for (size_t i = 0; i < v->n; i++) {
        int idx = pq_out_series(ev, &ob, &v->s[i].lb, v->s[i].drop_name);
        for (size_t j = 0; j < ns; j++)
            if (v->s[i].ok[j]) pq_out_set(ev, &ob, idx, j, v->s[i].v[j]);
    }
    pq_val o = {.type = PV_VECTOR, .s = ob.s, .n = ob.n};
    return o;
}

typedef struct {
    double ub, c;
} bucket;

static int cmp_bucket(const void *a, const void *b) {
    double x = ((const bucket *)a)->ub, y = ((const bucket *)b)->ub;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* buckets usually arrive in order (eval_histogram fills them so): sort only when not */
static void sort_buckets(bucket *b, size_t n) {
    for (size_t i = 1; i < n; i++)
        if (cmp_bucket(&b[i - 1], &b[i]) > 0) {
            qsort(b, n, sizeof *b, cmp_bucket);
            return;
        }
}

static int almost_eq(double a, double b, double eps) {
    if (a == b) return 1;
    if (isnan(a) && isnan(b)) return 1;
    double diff = fabs(a - b);
    double minn = 2.2250738585072014e-308;
    if (a == 0 || b == 0 || fabs(a) + fabs(b) < minn) return diff < eps * minn;
    double s = fabs(a) + fabs(b);
    if (s > 1.7976931348623157e308) s = 1.7976931348623157e308;
    return diff / s < eps;
}

static size_t coalesce(bucket *b, size_t n) {
    if (!n) return 0;
    sort_buckets(b, n);
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (w && b[w - 1].ub == b[i].ub)
            b[w - 1].c += b[i].c;
        else
            b[w++] = b[i];
    }
    return w;
}

static double bucket_quantile(double q, bucket *b, size_t n, int *forced) {
    if (isnan(q)) return NAN;
    if (q < 0) return -INFINITY;
    if (q > 1) return INFINITY;
    sort_buckets(b, n);
    if (!n || !isinf(b[n - 1].ub) || b[n - 1].ub < 0) return NAN;
    n = coalesce(b, n);
    double prev = b[0].c;
    for (size_t i = 1; i < n; i++) {
        double cur = b[i].c;
        if (cur == prev) continue;
        if (almost_eq(prev, cur, 1e-12)) {
            b[i].c = prev;
            continue;
        }
        if (cur < prev) {
            b[i].c = prev;
            *forced = 1;
            continue;
        }
        prev = cur;
    }
    if (n < 2) return NAN;
    double obs = b[n - 1].c;
    if (obs == 0) return NAN;
    double rank = q * obs;
    size_t k = 0;
    while (k < n - 1 && !(b[k].c >= rank))
        k++;
    if (k == n - 1) return b[n - 2].ub;
    if (k == 0 && b[0].ub <= 0) return b[0].ub;
    double start = 0, end = b[k].ub, count = b[k].c;
    if (k > 0) {
        start = b[k - 1].ub;
        count -= b[k - 1].c;
        rank -= b[k - 1].c;
    }
    return start + (end - start) * (rank / count);
}

static double bucket_fraction(double lower, double upper, bucket *b, size_t n) {
    sort_buckets(b, n);
    if (!n || !isinf(b[n - 1].ub) || b[n - 1].ub < 0) return NAN;
    n = coalesce(b, n);
    double count = b[n - 1].c;
    if (count == 0 || isnan(lower) || isnan(upper)) return NAN;
    if (lower >= upper) return 0;
    double rank = 0, lowerRank = 0, upperRank = 0;
    int lowerSet = 0, upperSet = 0;
    for (size_t i = 0; i < n; i++) {
        double lb = i > 0 ? b[i - 1].ub : -INFINITY;
        double ub = b[i].ub;
        if (!lowerSet && lb >= lower) {
            lowerRank = rank;
            lowerSet = 1;
        }
        if (!upperSet && lb >= upper) {
            upperRank = rank;
            upperSet = 1;
        }
        if (lowerSet && upperSet) break;
        if (!lowerSet && lb < lower && ub > lower) {
            if (i == 0 && ub <= 0)
                lowerRank = b[i].c;
            else if (isinf(lb) || isinf(ub))
                lowerRank =
                    (isinf(ub) && !isinf(lb)) ? rank : rank; /* no interpolation into infinite buckets */
            else
                lowerRank = rank + (b[i].c - rank) * (lower - lb) / (ub - lb);
            if (isinf(lb) && !(i == 0 && ub <= 0)) lowerRank = i == 0 ? 0 : rank;
            lowerSet = 1;
        }
        if (!upperSet && lb < upper && ub > upper) {
            if (i == 0 && ub <= 0)
                upperRank = b[i].c;
            else if (isinf(lb) || isinf(ub))
                upperRank = isinf(ub) ? rank : b[i].c;
            else
                upperRank = rank + (b[i].c - rank) * (upper - lb) / (ub - lb);
            upperSet = 1;
        }
        rank = b[i].c;
    }
    if (!lowerSet || lowerRank > count) lowerRank = count;
    if (!upperSet || upperRank > count) upperRank = count;
    return (upperRank - lowerRank) / count;
}

typedef struct {
    double ub;
    size_t i;
} hord;

static int cmp_hord(const void *a, const void *b) {
    const hord *x = a, *y = b;
    if (x->ub != y->ub) return x->ub < y->ub ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i ? 1 : 0;
}

static pq_val eval_histogram(pq_ev *ev, const pq_node *n, const pq_rng *r, int fraction) {
    size_t ns = r->n;
    double *q = NULL, *q2 = NULL;
    pq_val in;
    if (fraction) {
        q = pq_eval(ev, n->args[0], r).sc;
        q2 = pq_eval(ev, n->args[1], r).sc;
        in = pq_eval(ev, n->args[2], r);
    } else {
        q = pq_eval(ev, n->args[0], r).sc;
        in = pq_eval(ev, n->args[1], r);
    }
    pq_map m = {0};
    int ng = 0;
    int *g = pq_alloc(ev, (in.n + 1) * sizeof(int));
    double *ub = pq_alloc(ev, (in.n + 1) * sizeof(double));
    pq_lset *glb = pq_alloc(ev, (in.n + 1) * sizeof(pq_lset));
    size_t *gcount = pq_calloc(ev, in.n + 1, sizeof(size_t));
    for (size_t i = 0; i < in.n; i++) {
        const char *le = pq_lget(&in.s[i].lb, "le");
        char *end;
        double u = strtod(le, &end);
        if (!*le || *end) {
            g[i] = -1;
            if (*le || 1) {
                const char *mn = pq_lget(&in.s[i].lb, "__name__");
                pq_warn(ev, 0, n->args[fraction ? 2 : 1],
                        "bucket label \"le\" is missing or has a malformed value of \"%s\" for metric name "
                        "\"%s\"",
                        le, mn);
            }
            continue;
        }
        ub[i] = u;
        pq_lset l = pq_lset_del(ev, &in.s[i].lb, "le");
        size_t kl;
        char *k = pq_lset_sig(ev, &l, &kl);
        int added;
        int *slot = pq_map_put(ev, &m, k, kl, &added);
        if (added) {
            glb[ng] = l;
            *slot = ng++;
        }
        g[i] = *slot;
        gcount[*slot]++;
    }
    pq_val o = {.type = PV_VECTOR};
    o.s = pq_new_series(ev, (size_t)ng, ns);
    o.n = (size_t)ng;
    bucket **bk = pq_alloc(ev, ((size_t)ng + 1) * sizeof(bucket *));
    size_t *nb = pq_calloc(ev, (size_t)ng + 1, sizeof(size_t));
    for (int k = 0; k < ng; k++) {
        bk[k] = pq_alloc(ev, (gcount[k] + 1) * sizeof(bucket));
        o.s[k].lb = glb[k];
        o.s[k].drop_name = 1;
    }
    int warned = 0;
    /* the inputs in bucket order, so that each step's buckets come sorted */
    hord *ord = pq_alloc(ev, (in.n + 1) * sizeof *ord);
    size_t nord = 0;
    for (size_t i = 0; i < in.n; i++)
        if (g[i] >= 0) {
            ord[nord].ub = ub[i];
            ord[nord++].i = i;
        }
    qsort(ord, nord, sizeof *ord, cmp_hord);
    for (size_t j = 0; j < ns; j++) {
        memset(nb, 0, (size_t)ng * sizeof(size_t));
        for (size_t oi = 0; oi < nord; oi++) {
            size_t i = ord[oi].i;
            if (!in.s[i].ok[j]) continue;
            bucket *b = &bk[g[i]][nb[g[i]]++];
            b->ub = ub[i];
            b->c = in.s[i].v[j];
        }
        if (!fraction && !warned && (isnan(q[j]) || q[j] < 0 || q[j] > 1)) {
            char b[40];
            pq_format_float(q[j], b, sizeof b);
            pq_warn(ev, 0, n->args[0], "quantile value should be between 0 and 1, got %s", b);
            warned = 1;
        }
        for (int k = 0; k < ng; k++) {
            if (!nb[k]) continue;
            int forced = 0;
            double v = fraction ? bucket_fraction(q[j], q2[j], bk[k], nb[k])
                                : bucket_quantile(q[j], bk[k], nb[k], &forced);
            if (forced) {
                const char *mn = pq_lget(&glb[k], "__name__");
                pq_warn(ev, 1, n->args[1],
                        "input to histogram_quantile needed to be fixed for monotonicity (see "
                        "https://prometheus.io/docs/prometheus/latest/querying/functions/"
                        "#histogram_quantile) for metric name \"%s\"",
                        mn);
            }
            o.s[k].v[j] = v;
            o.s[k].ok[j] = 1;
        }
    }
    return o;
}

pq_val pq_eval_call(pq_ev *ev, const pq_node *n, const pq_rng *r) {
    const char *name = n->fn->name;
    size_t ns = r->n;
    for (int i = 0; i < n->fn->nargs && i < (int)n->nargs; i++)
        if (n->fn->args[i] == PV_MATRIX) return eval_range_fn(ev, n, r);
    if (!strcmp(name, "time") || !strcmp(name, "pi")) {
        pq_val o = {.type = PV_SCALAR};
        o.sc = pq_alloc(ev, ns * sizeof(double));
        for (size_t j = 0; j < ns; j++)
            o.sc[j] = name[0] == 't' ? pq_step_time(r, j) / 1000.0 : M_PI;
        return o;
    }
    if (!strcmp(name, "vector")) {
        pq_val s = pq_eval(ev, n->args[0], r);
        pq_val o = {.type = PV_VECTOR, .n = 1};
        o.s = pq_new_series(ev, 1, ns);
        for (size_t j = 0; j < ns; j++) {
            o.s[0].v[j] = s.sc[j];
            o.s[0].ok[j] = 1;
        }
        return o;
    }
    if (!strcmp(name, "histogram_quantile")) return eval_histogram(ev, n, r, 0);
    if (!strcmp(name, "histogram_fraction")) return eval_histogram(ev, n, r, 1);
    if (!strncmp(name, "histogram_", 10)) {
        /* native-histogram functions: float samples have no histogram to read */
        pq_eval(ev, n->args[0], r);
        pq_val o = {.type = PV_VECTOR};
        return o;
    }
    /* date functions with an optional argument */
    static const char *dates[] = {"year",        "month", "day_of_month", "day_of_week",
                                  "day_of_year", "hour",  "minute",       "days_in_month"};
    for (size_t k = 0; k < sizeof dates / sizeof dates[0]; k++) {
        if (strcmp(name, dates[k])) continue;
        if (n->nargs == 0) {
            pq_val o = {.type = PV_VECTOR, .n = 1};
            o.s = pq_new_series(ev, 1, ns);
            for (size_t j = 0; j < ns; j++) {
                o.s[0].v[j] = date_part(name, pq_step_time(r, j) / 1000.0);
                o.s[0].ok[j] = 1;
            }
            return o;
        }
        pq_val v = pq_eval(ev, n->args[0], r);
        for (size_t i = 0; i < v.n; i++) {
            for (size_t j = 0; j < ns; j++)
                if (v.s[i].ok[j]) v.s[i].v[j] = date_part(name, v.s[i].v[j]);
            v.s[i].drop_name = 1;
        }
        return v;
    }
    if (!strcmp(name, "scalar")) {
        pq_val v = pq_eval(ev, n->args[0], r);
        pq_val o = {.type = PV_SCALAR};
        o.sc = pq_alloc(ev, ns * sizeof(double));
        for (size_t j = 0; j < ns; j++) {
            int c = 0;
            double x = NAN;
            for (size_t i = 0; i < v.n && c < 2; i++)
                if (v.s[i].ok[j]) {
                    c++;
                    x = v.s[i].v[j];
                }
            o.sc[j] = c == 1 ? x : NAN;
        }
        return o;
    }
    if (!strcmp(name, "absent")) {
        pq_val v = pq_eval(ev, n->args[0], r);
        uint8_t *present = pq_calloc(ev, ns, 1);
        for (size_t i = 0; i < v.n; i++)
            for (size_t j = 0; j < ns; j++)
                if (v.s[i].ok[j]) present[j] = 1;
        const pq_node *a = n->args[0]; /* (x) is not a selector to absent() */
        return absent_labels_vec(ev, a->kind == N_VSEL ? a : NULL, ns, present);
    }
    for (size_t k = 0; k < sizeof simple / sizeof simple[0]; k++) {
        if (strcmp(name, simple[k].name)) continue;
        pq_val v = pq_eval(ev, n->args[0], r);
        for (size_t i = 0; i < v.n; i++) {
            for (size_t j = 0; j < ns; j++)
                if (v.s[i].ok[j]) v.s[i].v[j] = simple[k].fn(v.s[i].v[j]);
            v.s[i].drop_name = 1;
        }
        return v;
    }
    if (!strcmp(name, "round") || !strncmp(name, "clamp", 5)) {
        pq_val v = pq_eval(ev, n->args[0], r);
        double *a1 = n->nargs > 1 ? pq_eval(ev, n->args[1], r).sc : NULL;
        double *a2 = n->nargs > 2 ? pq_eval(ev, n->args[2], r).sc : NULL;
        for (size_t i = 0; i < v.n; i++) {
            pq_ser *s = &v.s[i];
            for (size_t j = 0; j < ns; j++) {
                if (!s->ok[j]) continue;
                double x = s->v[j];
                if (!strcmp(name, "round")) {
                    double inv = 1.0 / (a1 ? a1[j] : 1.0);
                    s->v[j] = floor(x * inv + 0.5) / inv;
                } else if (!strcmp(name, "clamp")) {
                    if (a2[j] < a1[j]) {
                        s->ok[j] = 0;
                        continue;
                    }
                    s->v[j] = (isnan(x) || isnan(a1[j]) || isnan(a2[j])) ? NAN : fmax(a1[j], fmin(a2[j], x));
                } else if (!strcmp(name, "clamp_max")) {
                    s->v[j] = (isnan(x) || isnan(a1[j])) ? NAN : fmin(a1[j], x);
                } else {
                    s->v[j] = (isnan(x) || isnan(a1[j])) ? NAN : fmax(a1[j], x);
                }
            }
            s->drop_name = 1;
        }
        return v;
    }
    if (!strcmp(name, "timestamp")) {
        pq_val v = pq_eval(ev, n->args[0], r);
        for (size_t i = 0; i < v.n; i++) {
            for (size_t j = 0; j < ns; j++)
                if (v.s[i].ok[j]) v.s[i].v[j] = pq_step_time(r, j) / 1000.0;
            v.s[i].drop_name = 1;
        }
        return v;
    }
    if (!strncmp(name, "sort", 4)) {
        pq_val v = pq_eval(ev, n->args[0], r);
        if (ns != 1 && strncmp(name, "sort_by_label", 13)) return v;
        sortitem *it = pq_alloc(ev, (v.n + 1) * sizeof *it);
        size_t nl = n->nargs - 1;
        char **labels = pq_alloc(ev, (nl + 1) * sizeof(char *));
        for (size_t k = 0; k < nl; k++)
            labels[k] = pq_eval(ev, n->args[k + 1], r).str;
        size_t m = 0;
        for (size_t i = 0; i < v.n; i++) {
            if (ns == 1 && !v.s[i].ok[0]) continue;
            it[m].s = &v.s[i];
            it[m].labels = labels;
            it[m].nl = nl;
            it[m].desc = strstr(name, "desc") != NULL;
            it[m].v = v.s[i].v[0];
            m++;
        }
        if (m) qsort(it, m, sizeof *it, !strncmp(name, "sort_by_label", 13) ? cmp_by_label : cmp_by_value);
        pq_ser *o = pq_alloc(ev, (m + 1) * sizeof *o);
        for (size_t i = 0; i < m; i++)
            o[i] = *it[i].s;
        v.s = o;
        v.n = m;
        return v;
    }
    if (!strcmp(name, "label_replace")) {
        pq_val v = pq_eval(ev, n->args[0], r);
        const char *dst = pq_eval(ev, n->args[1], r).str;
        const char *repl = pq_eval(ev, n->args[2], r).str;
        const char *src = pq_eval(ev, n->args[3], r).str;
        const char *re = pq_eval(ev, n->args[4], r).str;
        char err[256];
        tr_re *rx = tr_re_compile(re, strlen(re), err, sizeof err);
        if (!rx) pq_fail(ev, PROMQL_ERR_EXECUTION, "invalid regular expression in label_replace(): %s", re);
        if (!valid_label_name(dst)) {
            tr_re_free(rx);
            pq_fail(ev, PROMQL_ERR_EXECUTION, "invalid destination label name in label_replace(): %s", dst);
        }
        for (size_t i = 0; i < v.n; i++) {
            const char *sv = pq_lget(&v.s[i].lb, src);
            char *outs = NULL;
            size_t ol = 0;
            int rc = tr_re_replace(rx, sv, strlen(sv), repl, strlen(repl), &outs, &ol);
            if (rc < 0) {
                tr_re_free(rx);
                pq_fail(ev, PROMQL_ERR_INTERNAL, "out of memory");
            }
            if (rc == 1) {
                char *cp = tr_arena_strndup(ev->a, outs, ol);
                free(outs);
                if (!cp) {
                    tr_re_free(rx);
                    pq_fail(ev, PROMQL_ERR_INTERNAL, "out of memory");
                }
                v.s[i].lb = pq_lset_set(ev, &v.s[i].lb, pq_strdup(ev, dst), cp);
                if (!strcmp(dst, "__name__")) v.s[i].drop_name = 0;
            }
        }
        tr_re_free(rx);
        return relabel_finish(ev, &v, ns);
    }
    if (!strcmp(name, "label_join")) {
        pq_val v = pq_eval(ev, n->args[0], r);
        const char *dst = pq_eval(ev, n->args[1], r).str;
        const char *sep = pq_eval(ev, n->args[2], r).str;
        size_t nsrc = n->nargs - 3;
        const char **srcs = pq_alloc(ev, (nsrc + 1) * sizeof(char *));
        for (size_t k = 0; k < nsrc; k++) {
            srcs[k] = pq_eval(ev, n->args[k + 3], r).str;
            if (!valid_label_name(srcs[k]))
                pq_fail(ev, PROMQL_ERR_EXECUTION, "invalid source label name in label_join(): %s", srcs[k]);
        }
        if (!valid_label_name(dst))
            pq_fail(ev, PROMQL_ERR_EXECUTION, "invalid destination label name in label_join(): %s", dst);
        for (size_t i = 0; i < v.n; i++) {
            size_t len = 1;
            for (size_t k = 0; k < nsrc; k++)
                len += strlen(pq_lget(&v.s[i].lb, srcs[k])) + strlen(sep);
            char *buf = pq_alloc(ev, len);
            buf[0] = 0;
            size_t o = 0;
            for (size_t k = 0; k < nsrc; k++) {
                const char *sv = pq_lget(&v.s[i].lb, srcs[k]);
                if (k) {
                    memcpy(buf + o, sep, strlen(sep));
                    o += strlen(sep);
                }
                memcpy(buf + o, sv, strlen(sv));
                o += strlen(sv);
            }
            buf[o] = 0;
            v.s[i].lb = pq_lset_set(ev, &v.s[i].lb, pq_strdup(ev, dst), buf);
            if (!strcmp(dst, "__name__")) v.s[i].drop_name = 0;
        }
        return relabel_finish(ev, &v, ns);
    }
    pq_fail(ev, PROMQL_ERR_BAD_DATA, "function \"%s\" is not supported", name);
}
