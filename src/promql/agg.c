/* Aggregation operators. Each input series is assigned its group once; the per-step work
 * folds values into per-group accumulators. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promql/eval_int.h"

double pq_quantile(double q, double *v, size_t n);

static int cmp_nan_first(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    if (isnan(x)) return isnan(y) ? 0 : -1;
    if (isnan(y)) return 1;
    return x < y ? -1 : x > y ? 1 : 0;
}

double pq_quantile(double q, double *v, size_t n) {
    if (n == 0 || isnan(q)) return NAN;
    if (q < 0) return -INFINITY;
    if (q > 1) return INFINITY;
    qsort(v, n, sizeof *v, cmp_nan_first);
    double rank = q * (double)(n - 1);
    double lo = fmax(0, floor(rank));
    double hi = fmin((double)n - 1, lo + 1);
    double w = rank - floor(rank);
    return v[(size_t)lo] * (1 - w) + v[(size_t)hi] * w;
}

typedef struct {
    double val, kc, mean, count;
    int incr, has;
} acc;

static int valid_label_name(const char *s) {
    if (!*s) return 0;
    /* Prometheus 3 accepts any UTF-8 label name; refuse invalid UTF-8 */
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

/* Go's strconv.FormatFloat(v, 'f', -1, 64) */
static void fmt_f(double v, char *buf, size_t cap) {
    if (isnan(v)) {
        snprintf(buf, cap, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, cap, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char tmp[64];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
        if (strtod(tmp, NULL) == v) break;
    }
    char *e = strchr(tmp, 'e');
    int exp = atoi(e + 1);
    int decimals = prec - 1 - exp;
    if (decimals < 0) decimals = 0;
    snprintf(buf, cap, "%.*f", decimals, v);
}

typedef struct {
    int idx;
    double v;
} kv;

/* topk/bottomk as Prometheus selects them: a heap of k (Go's container/heap algorithm, so
 * that ties resolve as Prometheus resolves them), NaNs losing; then sorted best first. */
static int heap_less(const kv *h, size_t i, size_t j, int top) {
    if (isnan(h[i].v)) return 1;
    return top ? h[i].v < h[j].v : h[i].v > h[j].v;
}

static void heap_swap(kv *h, size_t i, size_t j) {
    kv t = h[i];
    h[i] = h[j];
    h[j] = t;
}

static void heap_up(kv *h, size_t j, int top) {
    while (j > 0) {
        size_t i = (j - 1) / 2;
        if (!heap_less(h, j, i, top)) break;
        heap_swap(h, i, j);
        j = i;
    }
}

static int heap_down(kv *h, size_t i0, size_t n, int top) {
    size_t i = i0;
    for (;;) {
        size_t j1 = 2 * i + 1;
        if (j1 >= n) break;
        size_t j = j1;
        if (j1 + 1 < n && heap_less(h, j1 + 1, j1, top)) j = j1 + 1;
        if (!heap_less(h, j, i, top)) break;
        heap_swap(h, i, j);
        i = j;
    }
    return i > i0;
}

/* selects in place into buf[0..k); returns the count, ordered best first */
static size_t heap_select(kv *buf, size_t nb, int64_t k, int top) {
    size_t len = 0;
    for (size_t t = 0; t < nb; t++) {
        kv s = buf[t];
        if ((int64_t)len < k) {
            buf[len] = s;
            heap_up(buf, len, top);
            len++;
        } else if ((top ? buf[0].v < s.v : buf[0].v > s.v) || (isnan(buf[0].v) && !isnan(s.v))) {
            buf[0] = s;
            if (k > 1 && !heap_down(buf, 0, len, top)) heap_up(buf, 0, top);
        }
    }
    /* reverse of the heap order, stable (insertion sort, as Go sorts small slices) */
    for (size_t i = 1; i < len; i++)
        for (size_t j = i; j > 0 && heap_less(buf, j - 1, j, top); j--)
            heap_swap(buf, j, j - 1);
    return len;
}

pq_val pq_eval_agg(pq_ev *ev, const pq_node *n, const pq_rng *r) {
    size_t ns = r->n;
    pq_val param = {0};
    if (n->param) param = pq_eval(ev, n->param, r);
    pq_val in = pq_eval(ev, n->expr, r);
    int op = n->op;
    /* group of every input series */
    pq_map m = {0};
    int *g = pq_alloc(ev, (in.n + 1) * sizeof(int));
    pq_lset *glb = pq_alloc(ev, (in.n + 1) * sizeof(pq_lset));
    int *gdrop = pq_calloc(ev, in.n + 1, sizeof(int));
    int ng = 0;
    for (size_t i = 0; i < in.n; i++) {
        pq_lset l;
        if (n->without)
            l = pq_lset_without(ev, &in.s[i].lb, n->grp, n->ngrp, 1);
        else
            l = pq_lset_keep(ev, &in.s[i].lb, n->grp, n->ngrp);
        size_t kl;
        char *k = pq_lset_sig(ev, &l, &kl);
        int added;
        int *slot = pq_map_put(ev, &m, k, kl, &added);
        if (added) {
            glb[ng] = l;
            gdrop[ng] = 0;
            *slot = ng++;
        }
        g[i] = *slot;
        if (in.s[i].drop_name && pq_lget(&l, "__name__")[0]) gdrop[*slot] = 1;
    }
    pq_val o = {.type = PV_VECTOR};
    if (op == AGG_TOPK || op == AGG_BOTTOMK || op == AGG_LIMITK || op == AGG_LIMIT_RATIO) {
        /* keeps the input series; per step the selected ones */
        uint8_t **keep = pq_alloc(ev, (in.n + 1) * sizeof(uint8_t *));
        for (size_t i = 0; i < in.n; i++)
            keep[i] = pq_calloc(ev, ns, 1);
        kv *buf = pq_alloc(ev, (in.n + 1) * sizeof(kv));
        size_t *cnt = pq_calloc(ev, (size_t)ng + 1, sizeof(size_t));
        int **members = pq_alloc(ev, ((size_t)ng + 1) * sizeof(int *));
        for (int k = 0; k < ng; k++)
            members[k] = pq_alloc(ev, (in.n + 1) * sizeof(int));
        for (size_t i = 0; i < in.n; i++)
            members[g[i]][cnt[g[i]]++] = (int)i;
        int *order = NULL;
        size_t norder = 0;
        if (ns == 1) order = pq_alloc(ev, (in.n + 1) * sizeof(int));
        for (size_t j = 0; j < ns; j++) {
            double pv = param.sc[j];
            if (op == AGG_LIMIT_RATIO) {
                if (isnan(pv)) pq_fail(ev, PROMQL_ERR_EXECUTION, "Ratio value is NaN");
                if (pv > 1 || pv < -1) {
                    pq_warn(ev, 0, n->param, "ratio value should be between -1 and 1, got %g, capping to %g",
                            pv, pv > 1 ? 1.0 : -1.0);
                    pv = pv > 1 ? 1 : -1;
                }
            } else if (isnan(pv))
                pq_fail(ev, PROMQL_ERR_EXECUTION, "Parameter value is NaN");
            int64_t k = 0;
            if (op != AGG_LIMIT_RATIO) {
                if (pv >= 9.2e18)
                    k = INT64_MAX;
                else if (pv <= -9.2e18)
                    k = INT64_MIN;
                else
                    k = (int64_t)pv;
                if (k < 1) continue;
            }
            for (int gi = 0; gi < ng; gi++) {
                size_t nb = 0;
                for (size_t t = 0; t < cnt[gi]; t++) {
                    int si = members[gi][t];
                    if (!in.s[si].ok[j]) continue;
                    buf[nb].idx = si;
                    buf[nb++].v = in.s[si].v[j];
                }
                if (!nb) continue;
                if (op == AGG_TOPK || op == AGG_BOTTOMK) {
                    nb = heap_select(buf, nb, k, op == AGG_TOPK);
                } else if (op == AGG_LIMITK) {
                    if ((int64_t)nb > k) nb = (size_t)k;
                } else {
                    size_t w = 0;
                    for (size_t t = 0; t < nb; t++) {
                        size_t kl;
                        char *key = pq_lset_sig(ev, &in.s[buf[t].idx].lb, &kl);
                        uint64_t h = 1469598103934665603ULL;
                        for (size_t q = 0; q < kl; q++)
                            h = (h ^ (unsigned char)key[q]) * 1099511628211ULL;
                        double off = (double)h / 18446744073709551615.0;
                        if ((pv >= 0 && off < pv) || (pv < 0 && off >= 1.0 + pv)) buf[w++] = buf[t];
                    }
                    nb = w;
                }
                for (size_t t = 0; t < nb; t++) {
                    keep[buf[t].idx][j] = 1;
                    if (order) order[norder++] = buf[t].idx;
                }
            }
        }
        o.s = pq_calloc(ev, in.n, sizeof *o.s);
        if (order) {
            for (size_t t = 0; t < norder; t++) {
                pq_ser s = in.s[order[t]];
                o.s[o.n++] = s;
            }
        } else {
            for (size_t i = 0; i < in.n; i++) {
                pq_ser s = in.s[i];
                for (size_t j = 0; j < ns; j++)
                    s.ok[j] = s.ok[j] && keep[i][j];
                o.s[o.n++] = s;
            }
        }
        return o;
    }
    if (op == AGG_COUNT_VALUES) {
        const char *lname = param.str;
        if (!valid_label_name(lname)) pq_fail(ev, PROMQL_ERR_EXECUTION, "invalid label name \"%s\"", lname);
        pq_out ob;
        pq_out_init(&ob, ns);
        for (size_t j = 0; j < ns; j++) {
            for (size_t i = 0; i < in.n; i++) {
                if (!in.s[i].ok[j]) continue;
                char vb[64];
                fmt_f(in.s[i].v[j], vb, sizeof vb);
                pq_lset l = pq_lset_set(ev, &glb[g[i]], lname, pq_strdup(ev, vb));
                int idx = pq_out_series(ev, &ob, &l, 0);
                if (!ob.s[idx].ok[j]) {
                    ob.s[idx].ok[j] = 1;
                    ob.s[idx].v[j] = 0;
                }
                ob.s[idx].v[j] += 1;
            }
        }
        o.s = ob.s;
        o.n = ob.n;
        return o;
    }
    o.s = pq_new_series(ev, (size_t)ng, ns);
    o.n = (size_t)ng;
    for (int k = 0; k < ng; k++) {
        o.s[k].lb = glb[k];
        o.s[k].drop_name = gdrop[k];
    }
    acc *A = pq_calloc(ev, (size_t)ng + 1, sizeof(acc));
    double **qv = NULL;
    size_t *qn = NULL;
    if (op == AGG_QUANTILE) {
        size_t *cnt = pq_calloc(ev, (size_t)ng + 1, sizeof(size_t));
        for (size_t i = 0; i < in.n; i++)
            cnt[g[i]]++;
        qv = pq_alloc(ev, ((size_t)ng + 1) * sizeof(double *));
        qn = pq_calloc(ev, (size_t)ng + 1, sizeof(size_t));
        for (int k = 0; k < ng; k++)
            qv[k] = pq_alloc(ev, (cnt[k] + 1) * sizeof(double));
    }
    for (size_t j = 0; j < ns; j++) {
        if ((j & 255) == 0) pq_poll(ev);
        memset(A, 0, (size_t)ng * sizeof(acc));
        if (qn) memset(qn, 0, (size_t)ng * sizeof(size_t));
        for (size_t i = 0; i < in.n; i++) {
            if (!in.s[i].ok[j]) continue;
            double f = in.s[i].v[j];
            acc *a = &A[g[i]];
            if (!a->has) {
                a->has = 1;
                a->count = 1;
                a->val = f;
                a->kc = 0;
                a->mean = f;
                if (op == AGG_STDDEV || op == AGG_STDVAR) a->val = f * (f - f); /* NaN for NaN and ±Inf */
                if (op == AGG_QUANTILE) qv[g[i]][qn[g[i]]++] = f;
                continue;
            }
            a->count++;
            switch (op) {
            case AGG_SUM:
                a->val = pq_kahan_inc(f, a->val, &a->kc);
                break;
            case AGG_AVG:
                if (!a->incr) {
                    double c2 = a->kc;
                    double nv = pq_kahan_inc(f, a->val, &c2);
                    if (!isinf(nv)) {
                        a->val = nv;
                        a->kc = c2;
                        break;
                    }
                    a->incr = 1;
                    a->mean = a->val / (a->count - 1);
                    a->kc /= a->count - 1;
                }
                {
                    double q = (a->count - 1) / a->count;
                    double c = q * a->kc;
                    a->mean = pq_kahan_inc(f / a->count, q * a->mean, &c);
                    a->kc = c;
                }
                break;
            case AGG_MIN:
                if (a->val > f || isnan(a->val)) a->val = f;
                break;
            case AGG_MAX:
                if (a->val < f || isnan(a->val)) a->val = f;
                break;
            case AGG_STDDEV:
            case AGG_STDVAR: {
                double d = f - a->mean;
                a->mean += d / a->count;
                a->val += d * (f - a->mean);
                break;
            }
            case AGG_QUANTILE:
                qv[g[i]][qn[g[i]]++] = f;
                break;
            default:
                break;
            }
        }
        for (int k = 0; k < ng; k++) {
            acc *a = &A[k];
            if (!a->has) continue;
            double v = 0;
            switch (op) {
            case AGG_SUM:
                v = a->val + a->kc;
                break;
            case AGG_AVG:
                v = a->incr ? a->mean + a->kc : a->val / a->count + a->kc / a->count;
                break;
            case AGG_COUNT:
                v = a->count;
                break;
            case AGG_GROUP:
                v = 1;
                break;
            case AGG_MIN:
            case AGG_MAX:
                v = a->val;
                break;
            case AGG_STDVAR:
                v = a->val / a->count;
                break;
            case AGG_STDDEV:
                v = sqrt(a->val / a->count);
                break;
            case AGG_QUANTILE: {
                double q = param.sc[j];
                if (isnan(q) || q < 0 || q > 1) {
                    char qb[40];
                    pq_format_float(q, qb, sizeof qb);
                    pq_warn(ev, 0, n->param, "quantile value should be between 0 and 1, got %s", qb);
                }
                v = pq_quantile(q, qv[k], qn[k]);
                break;
            }
            }
            o.s[k].v[j] = v;
            o.s[k].ok[j] = 1;
        }
    }
    return o;
}
