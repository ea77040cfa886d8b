/* PromQL evaluator core: selectors, subqueries, literals, the public API and the conversion
 * of step matrices into results. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "promql/eval_int.h"
#include "util/clock.h"

/* ---- errors, memory ---- */

_Noreturn void pq_fail(pq_ev *ev, promql_err code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ev->err, ev->errlen, fmt, ap);
    va_end(ap);
    ev->code = code;
    longjmp(ev->jb, 1);
}

static void add_note(pq_ev *ev, int info, const char *full) {
    char ***arr = info ? &ev->info : &ev->warn;
    size_t *n = info ? &ev->ninfo : &ev->nwarn;
    for (size_t i = 0; i < *n; i++)
        if (!strcmp((*arr)[i], full)) return;
    if (*n >= 64) return;
    char **na = pq_alloc(ev, (*n + 1) * sizeof *na);
    if (*n) memcpy(na, *arr, *n * sizeof *na);
    na[*n] = pq_strdup(ev, full);
    *arr = na;
    (*n)++;
}

void pq_warn_raw(pq_ev *ev, const char *msg) { add_note(ev, 0, msg); }

void pq_warn(pq_ev *ev, int info, const pq_node *at, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char full[640];
    int line = 1, col = 1;
    if (at)
        for (int i = 0; i < at->pos && i < (int)ev->qlen; i++) {
            if (ev->q[i] == '\n') {
                line++;
                col = 1;
            } else
                col++;
        }
    if (at)
        snprintf(full, sizeof full, "PromQL %s: %s (%d:%d)", info ? "info" : "warning", msg, line, col);
    else
        snprintf(full, sizeof full, "PromQL %s: %s", info ? "info" : "warning", msg);
    add_note(ev, info, full);
}

void pq_poll(pq_ev *ev) {
    if (ev->cancel && *ev->cancel)
        pq_fail(ev, PROMQL_ERR_CANCELED, "query was canceled in expression evaluation");
    if (ev->deadline_ns && (++ev->polls & 63) == 0 && tr_mono_ns() > ev->deadline_ns)
        pq_fail(ev, PROMQL_ERR_TIMEOUT, "query timed out in expression evaluation");
}

void *pq_alloc(pq_ev *ev, size_t n) {
    void *p = tr_arena_alloc(ev->a, n ? n : 1);
    if (!p) pq_fail(ev, PROMQL_ERR_INTERNAL, "out of memory");
    return p;
}

void *pq_calloc(pq_ev *ev, size_t n, size_t sz) {
    if (sz && n > SIZE_MAX / sz) pq_fail(ev, PROMQL_ERR_INTERNAL, "out of memory");
    void *p = tr_arena_calloc(ev->a, n ? n : 1, sz ? sz : 1);
    if (!p) pq_fail(ev, PROMQL_ERR_INTERNAL, "out of memory");
    return p;
}

char *pq_strdup(pq_ev *ev, const char *s) {
    char *p = tr_arena_strndup(ev->a, s, strlen(s));
    if (!p) pq_fail(ev, PROMQL_ERR_INTERNAL, "out of memory");
    return p;
}

static _Noreturn void too_many(pq_ev *ev) {
    pq_fail(ev, PROMQL_ERR_TOO_MANY_SAMPLES,
            "query processing would load too many samples into memory in query execution");
}

void pq_count_samples(pq_ev *ev, int64_t n) {
    ev->samples += n;
    if (ev->samples > ev->hard_max) too_many(ev);
}

void pq_hold_check(pq_ev *ev, int64_t n) {
    if (ev->cur + n > ev->max_samples) too_many(ev);
}

/* a range function's buffer: held until the function's node is done */
static void hold_window(pq_ev *ev, const pq_rangearg *ra, size_t nsteps) {
    if (ev->plain_matrix) return; /* a range vector as the result: no function reads it */
    int64_t w = pq_max_window(ra, nsteps);
    pq_hold_check(ev, w);
    ev->cur += w;
}

int64_t pq_max_window(const pq_rangearg *ra, size_t nsteps) {
    int64_t best = 0;
    for (size_t i = 0; i < ra->n; i++) {
        const pq_raw *s = &ra->s[i];
        size_t lo = 0, hi = 0;
        for (size_t j = 0; j < nsteps; j++) {
            int64_t tt = ra->tt[j];
            if (j && tt < ra->tt[j - 1]) lo = hi = 0;
            while (hi < s->n && s->t[hi] <= tt)
                hi++;
            while (lo < hi && s->t[lo] <= tt - ra->range)
                lo++;
            if ((int64_t)(hi - lo) > best) best = (int64_t)(hi - lo);
        }
    }
    return best;
}

/* the samples a value holds: one per present step and series, a scalar one per step */
static int64_t val_points(const pq_val *v, size_t nsteps) {
    int64_t c = 0;
    switch (v->type) {
    case PV_SCALAR:
        return (int64_t)nsteps;
    case PV_VECTOR:
        for (size_t i = 0; i < v->n; i++)
            for (size_t j = 0; j < nsteps; j++)
                c += v->s[i].ok[j];
        return c;
    case PV_MATRIX:
        for (size_t i = 0; i < v->nm; i++)
            c += (int64_t)v->m[i].n;
        return c;
    default:
        return 0;
    }
}

/* Inlined in the sample loops (a call there spilled the loop's registers); only a NaN can
 * be the stale marker. */
static inline int stale_nan(double v) {
    if (v == v) return 0;
    uint64_t b;
    memcpy(&b, &v, 8);
    return b == TSDB_STALE_NAN_BITS;
}

int pq_is_stale(double v) { return stale_nan(v); }

const pq_node *pq_unwrap(const pq_node *n) {
    while (n && (n->kind == N_PAREN || n->kind == N_STEPINV))
        n = n->expr;
    return n;
}

/* ---- labels ---- */

const char *pq_lget(const pq_lset *l, const char *name) {
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->l[i].n, name)) return l->l[i].v;
    return "";
}

pq_lset pq_lset_set(pq_ev *ev, const pq_lset *l, const char *name, const char *value) {
    pq_lset r;
    r.l = pq_alloc(ev, (l->n + 1) * sizeof *r.l);
    r.n = 0;
    int done = !*value;
    for (size_t i = 0; i < l->n; i++) {
        int c = strcmp(l->l[i].n, name);
        if (c == 0) continue;
        if (c > 0 && !done) {
            r.l[r.n].n = name;
            r.l[r.n++].v = value;
            done = 1;
        }
        r.l[r.n++] = l->l[i];
    }
    if (!done) {
        r.l[r.n].n = name;
        r.l[r.n++].v = value;
    }
    return r;
}

pq_lset pq_lset_del(pq_ev *ev, const pq_lset *l, const char *name) { return pq_lset_set(ev, l, name, ""); }

static int in_list(const char *s, char **names, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s, names[i])) return 1;
    return 0;
}

pq_lset pq_lset_keep(pq_ev *ev, const pq_lset *l, char **names, size_t n) {
    pq_lset r;
    r.l = pq_alloc(ev, (l->n + 1) * sizeof *r.l);
    r.n = 0;
    for (size_t i = 0; i < l->n; i++)
        if (in_list(l->l[i].n, names, n)) r.l[r.n++] = l->l[i];
    return r;
}

pq_lset pq_lset_without(pq_ev *ev, const pq_lset *l, char **names, size_t n, int and_name) {
    pq_lset r;
    r.l = pq_alloc(ev, (l->n + 1) * sizeof *r.l);
    r.n = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (in_list(l->l[i].n, names, n)) continue;
        if (and_name && !strcmp(l->l[i].n, "__name__")) continue;
        r.l[r.n++] = l->l[i];
    }
    return r;
}

int pq_lset_cmp(const pq_lset *a, const pq_lset *b) {
    size_t n = a->n < b->n ? a->n : b->n;
    for (size_t i = 0; i < n; i++) {
        int c = strcmp(a->l[i].n, b->l[i].n);
        if (c) return c;
        c = strcmp(a->l[i].v, b->l[i].v);
        if (c) return c;
    }
    return a->n < b->n ? -1 : a->n > b->n ? 1 : 0;
}

char *pq_lset_sig(pq_ev *ev, const pq_lset *l, size_t *len) {
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        n += strlen(l->l[i].n) + strlen(l->l[i].v) + 2;
    char *s = pq_alloc(ev, n + 2);
    size_t o = 0;
    for (size_t i = 0; i < l->n; i++) {
        size_t a = strlen(l->l[i].n), b = strlen(l->l[i].v);
        memcpy(s + o, l->l[i].n, a);
        o += a;
        s[o++] = (char)0xff;
        memcpy(s + o, l->l[i].v, b);
        o += b;
        s[o++] = (char)0xfe;
    }
    s[o] = 0;
    *len = o;
    return s;
}

void pq_lset_str(const pq_lset *l, char *buf, size_t cap) {
    size_t o = 0;
    o += snprintf(buf + o, cap - o, "{");
    for (size_t i = 0; i < l->n && o < cap; i++)
        o += snprintf(buf + o, cap - o, "%s%s=\"%s\"", i ? ", " : "", l->l[i].n, l->l[i].v);
    if (o < cap) snprintf(buf + o, cap - o, "}");
}

/* ---- map ---- */

static uint64_t hbytes(const char *k, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ULL;
    }
    return h ? h : 1;
}

int *pq_map_put(pq_ev *ev, pq_map *m, const char *k, size_t klen, int *added) {
    if ((m->n + 1) * 2 > m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 16;
        struct pq_ment *ne = pq_calloc(ev, nc, sizeof *ne);
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->e[i].h) continue;
            size_t j = m->e[i].h & (nc - 1);
            while (ne[j].h)
                j = (j + 1) & (nc - 1);
            ne[j] = m->e[i];
        }
        m->e = ne;
        m->cap = nc;
    }
    uint64_t h = hbytes(k, klen);
    size_t j = h & (m->cap - 1);
    while (m->e[j].h) {
        if (m->e[j].h == h && m->e[j].klen == klen && !memcmp(m->e[j].k, k, klen)) {
            *added = 0;
            return &m->e[j].v;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->e[j].h = h;
    m->e[j].k = k;
    m->e[j].klen = klen;
    m->e[j].v = -1;
    m->n++;
    *added = 1;
    return &m->e[j].v;
}

int pq_map_get(const pq_map *m, const char *k, size_t klen) {
    if (!m->cap) return -1;
    uint64_t h = hbytes(k, klen);
    size_t j = h & (m->cap - 1);
    while (m->e[j].h) {
        if (m->e[j].h == h && m->e[j].klen == klen && !memcmp(m->e[j].k, k, klen)) return m->e[j].v;
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

/* ---- output builder ---- */

pq_ser *pq_new_series(pq_ev *ev, size_t n, size_t nsteps) {
    if (nsteps && n > (size_t)INT64_MAX / nsteps) pq_count_samples(ev, INT64_MAX / 2);
    pq_count_samples(ev, (int64_t)(n * nsteps));
    pq_ser *s = pq_calloc(ev, n, sizeof *s);
    for (size_t i = 0; i < n; i++) {
        s[i].v = pq_alloc(ev, nsteps * sizeof(double));
        s[i].ok = pq_calloc(ev, nsteps, 1);
    }
    return s;
}

void pq_out_init(pq_out *o, size_t nsteps) {
    memset(o, 0, sizeof *o);
    o->nsteps = nsteps;
}

int pq_out_series(pq_ev *ev, pq_out *o, const pq_lset *lb, int drop_name) {
    size_t kl;
    char *k = pq_lset_sig(ev, lb, &kl);
    /* series whose __name__ is still to be dropped are kept apart from those that keep it */
    k[kl] = drop_name ? 'd' : 'k';
    kl++;
    int added;
    int *slot = pq_map_put(ev, &o->map, k, kl, &added);
    if (!added) return *slot;
    if (o->n == o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 8;
        pq_ser *ns = pq_calloc(ev, nc, sizeof *ns);
        if (o->n) memcpy(ns, o->s, o->n * sizeof *ns);
        o->s = ns;
        o->cap = nc;
    }
    pq_ser *s = &o->s[o->n];
    s->lb = *lb;
    s->drop_name = drop_name;
    pq_count_samples(ev, (int64_t)o->nsteps);
    s->v = pq_alloc(ev, o->nsteps * sizeof(double));
    s->ok = pq_calloc(ev, o->nsteps, 1);
    *slot = (int)o->n;
    return (int)o->n++;
}

void pq_out_set(pq_ev *ev, pq_out *o, int idx, size_t step, double v) {
    pq_ser *s = &o->s[idx];
    if (s->ok[step])
        pq_fail(ev, PROMQL_ERR_EXECUTION, "vector cannot contain metrics with the same labelset");
    s->ok[step] = 1;
    s->v[step] = v;
}

/* ---- selectors ---- */

int64_t pq_step_time(const pq_rng *r, size_t i) { return r->start + (int64_t)i * r->step; }

static int64_t at_time(pq_ev *ev, const pq_node *n, int64_t ts) {
    switch (n->at) {
    case AT_TIME:
        return n->at_ms;
    case AT_START:
        return ev->qstart;
    case AT_END:
        return ev->qend;
    default:
        return ts;
    }
}

typedef struct {
    tsdb_querier *q;
    tsdb_seriesset *ss;
} sel_h;

static void sel_close(sel_h *h) {
    if (h->ss) tsdb_seriesset_free(h->ss);
    if (h->q) tsdb_querier_close(h->q);
    h->ss = NULL;
    h->q = NULL;
}

/* Loads the series of selector n with samples in [mint, maxt] as raw series (stale markers
 * kept when keep_stale). */
/* Loads the series of selector n, keeping only the samples that fall in some step's window
 * (tts[i] - w, tts[i]] (tts non-decreasing): a long range at a coarse step holds only what its
 * windows read. Series are loaded one at a time from the store. Stale markers are kept when
 * keep_stale (instant selectors need them), else dropped. */
static pq_raw *load_series(pq_ev *ev, const pq_node *n, const int64_t *tts, size_t nt, int64_t w,
                           size_t *count, int keep_stale) {
    pq_poll(ev);
    int64_t mint = tts[0] - w + 1, maxt = tts[nt - 1];
    sel_h h = {0};
    h.q = tsdb_querier_open(ev->db, mint, maxt);
    if (!h.q) pq_fail(ev, PROMQL_ERR_INTERNAL, "out of memory");
    tsdb_matcher **ms = pq_alloc(ev, (n->nms + 1) * sizeof *ms);
    for (size_t i = 0; i < n->nms; i++)
        ms[i] = n->ms[i].m;
    char err[256];
    h.ss = tsdb_select(h.q, ms, n->nms, 0, err, sizeof err);
    if (!h.ss) {
        sel_close(&h);
        pq_fail(ev, PROMQL_ERR_INTERNAL, "%s", err);
    }
    size_t ns = tsdb_seriesset_len(h.ss);
    pq_raw *out = tr_arena_calloc(ev->a, ns ? ns : 1, sizeof *out);
    if (!out) {
        sel_close(&h);
        pq_fail(ev, PROMQL_ERR_INTERNAL, "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < ns; i++) {
        if ((ev->cancel && *ev->cancel) ||
            ((i & 127) == 127 && ev->deadline_ns && tr_mono_ns() > ev->deadline_ns)) {
            sel_close(&h);
            ev->polls = 63; /* the next poll checks the clock */
            pq_poll(ev);
        }
        if (tsdb_seriesset_load(h.ss, i, err, sizeof err) != 0) {
            sel_close(&h);
            pq_fail(ev, PROMQL_ERR_INTERNAL, "%s", err);
        }
        const tsdb_label *lab;
        size_t nl = tsdb_seriesset_labels(h.ss, i, &lab);
        const int64_t *t;
        const double *v;
        size_t m = tsdb_seriesset_samples(h.ss, i, &t, &v);
        /* count what the windows keep */
        size_t c = 0, si = 0;
        for (size_t j = 0; j < m; j++) {
            if (t[j] < mint || t[j] > maxt) continue;
            while (si < nt && tts[si] < t[j])
                si++;
            if (si == nt) break;
            if (t[j] <= tts[si] - w) continue;
            if (!keep_stale && stale_nan(v[j])) continue;
            c++;
        }
        if (c == 0) {
            tsdb_seriesset_unload(h.ss, i);
            continue;
        }
        ev->samples += (int64_t)c;
        if (ev->samples > ev->hard_max) {
            sel_close(&h);
            too_many(ev);
        }
        pq_raw *r = &out[k++];
        r->lb.l = tr_arena_alloc(ev->a, (nl ? nl : 1) * sizeof *r->lb.l);
        r->t = tr_arena_alloc(ev->a, c * sizeof *r->t);
        r->v = tr_arena_alloc(ev->a, c * sizeof *r->v);
        if (!r->lb.l || !r->t || !r->v) {
            sel_close(&h);
            pq_fail(ev, PROMQL_ERR_INTERNAL, "out of memory");
        }
        for (size_t j = 0; j < nl; j++) {
            r->lb.l[j].n = tr_arena_strndup(ev->a, lab[j].name, strlen(lab[j].name));
            r->lb.l[j].v = tr_arena_strndup(ev->a, lab[j].value, strlen(lab[j].value));
        }
        r->lb.n = nl;
        si = 0;
        for (size_t j = 0; j < m && r->n < c; j++) {
            if (t[j] < mint || t[j] > maxt) continue;
            while (si < nt && tts[si] < t[j])
                si++;
            if (si == nt) break;
            if (t[j] <= tts[si] - w) continue;
            if (!keep_stale && stale_nan(v[j])) continue;
            r->t[r->n] = t[j];
            r->v[r->n++] = v[j];
        }
        tsdb_seriesset_unload(h.ss, i);
    }
    /* the store's warnings (a damaged block left out) go to the answer as Prometheus's
     * storage warnings do: verbatim */
    const char *const *ws;
    size_t nw = tsdb_querier_warnings(h.q, &ws);
    for (size_t i = 0; i < nw; i++)
        pq_warn_raw(ev, ws[i]);
    sel_close(&h);
    *count = k;
    return out;
}

/* instant vector selector; ts_out: values are sample timestamps (for timestamp()) */
static pq_val eval_vsel(pq_ev *ev, const pq_node *n, const pq_rng *r, int ts_out) {
    int64_t tmin = INT64_MAX, tmax = INT64_MIN;
    for (size_t i = 0; i < r->n; i++) {
        int64_t tt = at_time(ev, n, pq_step_time(r, i)) - n->offset_ms;
        if (tt < tmin) tmin = tt;
        if (tt > tmax) tmax = tt;
    }
    size_t ns;
    int64_t *tts = pq_alloc(ev, r->n * sizeof *tts);
    for (size_t i = 0; i < r->n; i++)
        tts[i] = at_time(ev, n, pq_step_time(r, i)) - n->offset_ms;
    pq_raw *raw = load_series(ev, n, tts, r->n, ev->lookback, &ns, 1);
    pq_val out = {.type = PV_VECTOR};
    out.s = pq_calloc(ev, ns, sizeof *out.s);
    size_t k = 0;
    for (size_t i = 0; i < ns; i++) {
        pq_raw *s = &raw[i];
        pq_ser *o = &out.s[k];
        o->lb = s->lb;
        pq_count_samples(ev, (int64_t)r->n);
        o->v = pq_alloc(ev, r->n * sizeof(double));
        o->ok = pq_calloc(ev, r->n, 1);
        size_t j = 0; /* first sample with t > tt */
        int any = 0;
        for (size_t st = 0; st < r->n; st++) {
            int64_t tt = at_time(ev, n, pq_step_time(r, st)) - n->offset_ms;
            if (n->at) j = 0;
            while (j < s->n && s->t[j] <= tt)
                j++;
            if (j == 0) continue;
            size_t p = j - 1;
            if (s->t[p] <= tt - ev->lookback) continue;
            if (stale_nan(s->v[p])) continue;
            o->ok[st] = 1;
            o->v[st] = ts_out ? s->t[p] / 1000.0 : s->v[p];
            any = 1;
        }
        if (any) k++;
    }
    out.n = k;

    return out;
}

void pq_eval_rangearg(pq_ev *ev, const pq_node *n, const pq_rng *r, pq_rangearg *out) {
    n = pq_unwrap(n);
    memset(out, 0, sizeof *out);
    out->tt = pq_alloc(ev, r->n * sizeof(int64_t));
    const pq_node *mod = n->kind == N_MSEL ? n->expr : n;
    int64_t tmin = INT64_MAX, tmax = INT64_MIN;
    for (size_t i = 0; i < r->n; i++) {
        int64_t tt = at_time(ev, mod, pq_step_time(r, i)) - mod->offset_ms;
        out->tt[i] = tt;
        if (tt < tmin) tmin = tt;
        if (tt > tmax) tmax = tt;
    }
    out->range = n->range_ms;
    if (n->kind == N_MSEL) {
        out->sel = n->expr;
        out->s = load_series(ev, n->expr, out->tt, r->n, n->range_ms, &out->n, 0);
        hold_window(ev, out, r->n);
        return;
    }
    if (n->kind != N_SUBQ) pq_fail(ev, PROMQL_ERR_BAD_DATA, "expected a range vector");
    int64_t step = n->step_ms ? n->step_ms : ev->subq_step;
    if (step <= 0) pq_fail(ev, PROMQL_ERR_BAD_DATA, "zero or negative subquery step");
    int64_t lo = tmin - n->range_ms;
    /* first multiple of step strictly after lo (Go's truncating division, as Prometheus) */
    int64_t start = step * (lo / step);
    if (start <= lo) start += step;
    pq_rng ir = {start, tmax, step, 0};
    if (tmax >= start) {
        if ((tmax - start) / step + 1 > 11000000)
            pq_fail(ev, PROMQL_ERR_TOO_MANY_SAMPLES,
                    "query processing would load too many samples into memory in query execution");
        ir.n = (size_t)((tmax - start) / step + 1);
    }
    if (ir.n == 0) {
        out->n = 0;
        out->s = NULL;
        return;
    }
    ir.end = start + (int64_t)(ir.n - 1) * step;
    int plain = ev->plain_matrix;
    ev->plain_matrix = 0; /* functions inside the subquery hold their windows */
    pq_val v = pq_eval(ev, n->expr, &ir);
    ev->plain_matrix = plain;
    if (v.type == PV_SCALAR) {
        /* a scalar subquery is not valid PromQL; the parser refuses it */
        pq_fail(ev, PROMQL_ERR_BAD_DATA, "subquery is only allowed on instant vector");
    }
    out->s = pq_calloc(ev, v.n, sizeof *out->s);
    size_t k = 0;
    for (size_t i = 0; i < v.n; i++) {
        pq_ser *s = &v.s[i];
        size_t c = 0;
        for (size_t j = 0; j < ir.n; j++)
            c += s->ok[j];
        if (!c) continue;
        pq_raw *o = &out->s[k++];
        o->lb = s->lb;
        o->drop_name = s->drop_name;
        o->t = pq_alloc(ev, c * sizeof(int64_t));
        o->v = pq_alloc(ev, c * sizeof(double));
        for (size_t j = 0; j < ir.n; j++)
            if (s->ok[j]) {
                o->t[o->n] = pq_step_time(&ir, j);
                o->v[o->n++] = s->v[j];
            }
    }
    out->n = k;
    hold_window(ev, out, r->n);
}

static pq_val scalar_val(pq_ev *ev, const pq_rng *r, double v) {
    pq_val o = {.type = PV_SCALAR};
    o.sc = pq_alloc(ev, r->n * sizeof(double));
    for (size_t i = 0; i < r->n; i++)
        o.sc[i] = v;
    return o;
}

static pq_val eval_unary(pq_ev *ev, const pq_node *n, const pq_rng *r) {
    pq_val v = pq_eval(ev, n->expr, r);
    if (!n->unary_neg) return v;
    if (v.type == PV_SCALAR) {
        for (size_t i = 0; i < r->n; i++)
            v.sc[i] = -v.sc[i];
        return v;
    }
    for (size_t i = 0; i < v.n; i++) {
        for (size_t j = 0; j < r->n; j++)
            v.s[i].v[j] = -v.s[i].v[j];
        v.s[i].drop_name = 1;
    }
    return v;
}

/* top-level range vector of an instant query */
static pq_val eval_matrix(pq_ev *ev, const pq_node *n, const pq_rng *r) {
    pq_rangearg ra;
    int64_t before = ev->cur;
    ev->plain_matrix = 1;
    pq_eval_rangearg(ev, n, r, &ra);
    ev->plain_matrix = 0;
    ev->cur = before; /* the matrix itself is what is held (pq_eval counts it) */
    pq_val o = {.type = PV_MATRIX};
    o.m = pq_calloc(ev, ra.n, sizeof *o.m);
    int64_t tt = ra.tt[0];
    for (size_t i = 0; i < ra.n; i++) {
        pq_raw *s = &ra.s[i];
        size_t lo = 0, hi = s->n;
        while (lo < hi && s->t[lo] <= tt - ra.range)
            lo++;
        while (hi > lo && s->t[hi - 1] > tt)
            hi--;
        if (hi == lo) continue;
        pq_raw *d = &o.m[o.nm++];
        *d = *s;
        d->t = s->t + lo;
        d->v = s->v + lo;
        d->n = hi - lo;
    }
    return o;
}

/* ---- identical sub-expressions are evaluated once ---- */

static pq_val copy_val(pq_ev *ev, const pq_val *v, size_t nsteps) {
    pq_val o = *v;
    if (v->type == PV_SCALAR) {
        o.sc = pq_alloc(ev, nsteps * sizeof(double));
        memcpy(o.sc, v->sc, nsteps * sizeof(double));
    } else if (v->type == PV_VECTOR) {
        pq_count_samples(ev, (int64_t)(v->n * nsteps));
        o.s = pq_alloc(ev, (v->n + 1) * sizeof *o.s);
        for (size_t i = 0; i < v->n; i++) {
            o.s[i] = v->s[i];
            o.s[i].v = pq_alloc(ev, nsteps * sizeof(double));
            o.s[i].ok = pq_alloc(ev, nsteps);
            memcpy(o.s[i].v, v->s[i].v, nsteps * sizeof(double));
            memcpy(o.s[i].ok, v->s[i].ok, nsteps);
        }
    }
    return o;
}

static pq_val eval_node(pq_ev *ev, const pq_node *n, const pq_rng *r);

static pq_val eval_memo(pq_ev *ev, const pq_node *n, const pq_rng *r);

/* Evaluates n and accounts its result as Prometheus does: while it is computed its arguments
 * are held too; afterwards only its result is. */
pq_val pq_eval(pq_ev *ev, const pq_node *n, const pq_rng *r) {
    /* parentheses and unary signs hand on their operand's samples */
    if (n->kind == N_PAREN || n->kind == N_STEPINV || n->kind == N_UNARY) return eval_memo(ev, n, r);
    int64_t before = ev->cur;
    pq_val v = eval_memo(ev, n, r);
    int64_t pts = val_points(&v, r->n);
    pq_hold_check(ev, pts);
    ev->cur = before + pts;
    return v;
}

static pq_val eval_memo(pq_ev *ev, const pq_node *n, const pq_rng *r) {
    if (!n->key) return eval_node(ev, n, r);
    char pre[80];
    int pl = snprintf(pre, sizeof pre, "%lld/%lld/%lld/", (long long)r->start, (long long)r->end,
                      (long long)r->step);
    size_t kl = (size_t)pl + strlen(n->key);
    char *k = pq_alloc(ev, kl + 1);
    memcpy(k, pre, (size_t)pl);
    memcpy(k + pl, n->key, strlen(n->key) + 1);
    int idx = pq_map_get(&ev->memo, k, kl);
    if (idx >= 0) return copy_val(ev, &ev->memo_vals[idx], r->n);
    pq_val v = eval_node(ev, n, r);
    if (v.type != PV_SCALAR && v.type != PV_VECTOR) return v;
    if (ev->nmemo == ev->memo_cap) {
        size_t nc = ev->memo_cap ? ev->memo_cap * 2 : 8;
        pq_val *nv = pq_alloc(ev, nc * sizeof *nv);
        if (ev->nmemo) memcpy(nv, ev->memo_vals, ev->nmemo * sizeof *nv);
        ev->memo_vals = nv;
        ev->memo_cap = nc;
    }
    ev->memo_vals[ev->nmemo] = copy_val(ev, &v, r->n);
    int added;
    *pq_map_put(ev, &ev->memo, k, kl, &added) = (int)ev->nmemo++;
    return v;
}

/* marks the sub-expressions that occur more than once (their printed forms are equal) */
static void count_keys(pq_ev *ev, pq_node *n, pq_map *m, int mark) {
    if (!n) return;
    if (n->kind != N_NUM && n->kind != N_STR && n->kind != N_MSEL) {
        char *s = pq_format_node(n);
        if (s) {
            size_t l = strlen(s);
            char *k = tr_arena_strndup(ev->a, s, l);
            free(s);
            if (k) {
                int added;
                int *c = pq_map_put(ev, m, k, l, &added);
                if (added) *c = 0;
                if (!mark)
                    (*c)++;
                else if (*c > 1)
                    n->key = k;
            }
        }
    }
    if (n->kind != N_MSEL) count_keys(ev, n->expr, m, mark); /* a range's selector is read in place */
    count_keys(ev, n->lhs, m, mark);
    count_keys(ev, n->rhs, m, mark);
    count_keys(ev, n->param, m, mark);
    for (size_t i = 0; i < n->nargs; i++)
        count_keys(ev, n->args[i], m, mark);
}

static pq_val eval_node(pq_ev *ev, const pq_node *n, const pq_rng *r) {
    pq_poll(ev);
    switch (n->kind) {
    case N_NUM:
        return scalar_val(ev, r, n->num);
    case N_STR: {
        pq_val o = {.type = PV_STRING, .str = n->str};
        return o;
    }
    case N_PAREN:
    case N_STEPINV:
        return pq_eval(ev, n->expr, r);
    case N_VSEL:
        return eval_vsel(ev, n, r, 0);
    case N_MSEL:
    case N_SUBQ:
        return eval_matrix(ev, n, r);
    case N_UNARY:
        return eval_unary(ev, n, r);
    case N_BIN:
        return pq_eval_binop(ev, n, r);
    case N_AGG:
        return pq_eval_agg(ev, n, r);
    case N_CALL:
        if (!strcmp(n->fn->name, "timestamp")) {
            const pq_node *a = pq_unwrap(n->args[0]);
            if (a->kind == N_VSEL) {
                pq_val v = eval_vsel(ev, a, r, 1);
                for (size_t i = 0; i < v.n; i++)
                    v.s[i].drop_name = 1;
                return v;
            }
        }
        return pq_eval_call(ev, n, r);
    }
    pq_fail(ev, PROMQL_ERR_INTERNAL, "unknown node");
}

/* ---- results ---- */

static int copy_labels(promql_series *d, const pq_lset *l, int drop_name) {
    d->labels = calloc(l->n ? l->n : 1, sizeof *d->labels);
    if (!d->labels) return -1;
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++) {
        if (drop_name && !strcmp(l->l[i].n, "__name__")) continue;
        d->labels[k].name = strdup(l->l[i].n);
        d->labels[k].value = strdup(l->l[i].v);
        if (!d->labels[k].name || !d->labels[k].value) {
            free(d->labels[k].name);
            free(d->labels[k].value);
            d->nlabels = k;
            return -1;
        }
        k++;
    }
    d->nlabels = k;
    return 0;
}

static pq_lset dropped(pq_ev *ev, const pq_lset *l, int drop) {
    if (!drop) return *l;
    return pq_lset_del(ev, l, "__name__");
}

static int cmp_raw(const void *a, const void *b) {
    return pq_lset_cmp(&((const pq_raw *)a)->lb, &((const pq_raw *)b)->lb);
}

static int cmp_ser(const void *a, const void *b) {
    return pq_lset_cmp(&((const pq_ser *)a)->lb, &((const pq_ser *)b)->lb);
}

static char **copy_strs(char **s, size_t n) {
    if (!n) return NULL;
    char **o = calloc(n, sizeof *o);
    if (!o) return NULL;
    for (size_t i = 0; i < n; i++)
        o[i] = strdup(s[i]);
    return o;
}

/* delayed __name__ removal, then the duplicate check Prometheus does at the end */
static void cleanup_names(pq_ev *ev, pq_val *v, const pq_rng *r) {
    if (v->type == PV_VECTOR) {
        int any = 0;
        for (size_t i = 0; i < v->n; i++)
            if (v->s[i].drop_name) {
                v->s[i].lb = dropped(ev, &v->s[i].lb, 1);
                v->s[i].drop_name = 0;
                any = 1;
            }
        if (!any) return;
        pq_map m = {0};
        for (size_t i = 0; i < v->n; i++) {
            size_t kl;
            char *k = pq_lset_sig(ev, &v->s[i].lb, &kl);
            int added;
            int *slot = pq_map_put(ev, &m, k, kl, &added);
            if (!added) {
                if (r->n == 1) {
                    pq_ser *o = &v->s[*slot];
                    if (!(o->ok[0] && v->s[i].ok[0])) continue;
                }
                pq_fail(ev, PROMQL_ERR_EXECUTION, "vector cannot contain metrics with the same labelset");
            }
            *slot = (int)i;
        }
    } else if (v->type == PV_MATRIX) {
        int any = 0;
        for (size_t i = 0; i < v->nm; i++)
            if (v->m[i].drop_name) {
                v->m[i].lb = dropped(ev, &v->m[i].lb, 1);
                v->m[i].drop_name = 0;
                any = 1;
            }
        if (!any) return;
        pq_map m = {0};
        for (size_t i = 0; i < v->nm; i++) {
            size_t kl;
            char *k = pq_lset_sig(ev, &v->m[i].lb, &kl);
            int added;
            pq_map_put(ev, &m, k, kl, &added);
            if (!added)
                pq_fail(ev, PROMQL_ERR_EXECUTION, "vector cannot contain metrics with the same labelset");
        }
    }
}

static promql_err to_result(pq_ev *ev, pq_val *v, const pq_rng *r, int range, promql_result *out) {
    out->t = r->start;
    if (v->type == PV_STRING) {
        out->type = PROMQL_STRING;
        out->str = strdup(v->str);
        return out->str ? PROMQL_OK : PROMQL_ERR_INTERNAL;
    }
    if (v->type == PV_SCALAR && !range) {
        out->type = PROMQL_SCALAR;
        out->scalar = v->sc[0];
        return PROMQL_OK;
    }
    if (v->type == PV_SCALAR) {
        pq_val nv = {.type = PV_VECTOR, .n = 1};
        nv.s = pq_calloc(ev, 1, sizeof *nv.s);
        nv.s[0].v = v->sc;
        nv.s[0].ok = pq_alloc(ev, r->n);
        memset(nv.s[0].ok, 1, r->n);
        *v = nv;
    }
    cleanup_names(ev, v, r);
    if (v->type == PV_MATRIX) {
        out->type = PROMQL_MATRIX;
        if (v->nm) qsort(v->m, v->nm, sizeof *v->m, cmp_raw);
        out->series = calloc(v->nm ? v->nm : 1, sizeof *out->series);
        if (!out->series) return PROMQL_ERR_INTERNAL;
        for (size_t i = 0; i < v->nm; i++) {
            promql_series *d = &out->series[out->nseries++];
            if (copy_labels(d, &v->m[i].lb, 0)) return PROMQL_ERR_INTERNAL;
            d->t = malloc(v->m[i].n * sizeof *d->t + 1);
            d->v = malloc(v->m[i].n * sizeof *d->v + 1);
            if (!d->t || !d->v) return PROMQL_ERR_INTERNAL;
            memcpy(d->t, v->m[i].t, v->m[i].n * sizeof *d->t);
            memcpy(d->v, v->m[i].v, v->m[i].n * sizeof *d->v);
            d->n = v->m[i].n;
        }
        return PROMQL_OK;
    }
    out->type = range ? PROMQL_MATRIX : PROMQL_VECTOR;
    if (range && v->n) qsort(v->s, v->n, sizeof *v->s, cmp_ser);
    out->series = calloc(v->n ? v->n : 1, sizeof *out->series);
    if (!out->series) return PROMQL_ERR_INTERNAL;
    for (size_t i = 0; i < v->n; i++) {
        pq_ser *s = &v->s[i];
        size_t c = 0;
        for (size_t j = 0; j < r->n; j++)
            c += s->ok[j];
        if (!c) continue;
        promql_series *d = &out->series[out->nseries++];
        if (copy_labels(d, &s->lb, 0)) return PROMQL_ERR_INTERNAL;
        d->t = malloc(c * sizeof *d->t);
        d->v = malloc(c * sizeof *d->v);
        if (!d->t || !d->v) return PROMQL_ERR_INTERNAL;
        for (size_t j = 0; j < r->n; j++)
            if (s->ok[j]) {
                d->t[d->n] = pq_step_time(r, j);
                d->v[d->n++] = s->v[j];
            }
    }
    return PROMQL_OK;
}

void promql_result_free(promql_result *r) {
    if (!r) return;
    for (size_t i = 0; i < r->nseries; i++) {
        promql_series *s = &r->series[i];
        for (size_t j = 0; j < s->nlabels; j++) {
            free(s->labels[j].name);
            free(s->labels[j].value);
        }
        free(s->labels);
        free(s->t);
        free(s->v);
    }
    free(r->series);
    free(r->str);
    for (size_t i = 0; i < r->nwarnings; i++)
        free(r->warnings[i]);
    free(r->warnings);
    for (size_t i = 0; i < r->ninfos; i++)
        free(r->infos[i]);
    free(r->infos);
    memset(r, 0, sizeof *r);
}

static promql_err run(tsdb *db, const char *q, size_t qlen, int64_t start, int64_t end, int64_t step,
                      int range, const promql_opts *o, promql_result *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (errlen) err[0] = 0;
    promql_opts def = {0};
    if (!o) o = &def;
    tr_arena *a = tr_arena_new((size_t)16 << 30);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return PROMQL_ERR_INTERNAL;
    }
    pq_node *root = pq_parse(a, q, qlen, err, errlen);
    if (!root) {
        tr_arena_free(a);
        return PROMQL_ERR_BAD_DATA;
    }
    if (range && root->type != PV_SCALAR && root->type != PV_VECTOR) {
        snprintf(err, errlen,
                 "invalid expression type \"%s\" for range query, must be Scalar or instant Vector",
                 root->type == PV_MATRIX ? "range vector" : "string");
        pq_tree_free(root);
        tr_arena_free(a);
        return PROMQL_ERR_BAD_DATA;
    }
    pq_ev *ev = calloc(1, sizeof *ev);
    if (!ev) {
        pq_tree_free(root);
        tr_arena_free(a);
        snprintf(err, errlen, "out of memory");
        return PROMQL_ERR_INTERNAL;
    }
    ev->db = db;
    ev->a = a;
    ev->qstart = start;
    ev->qend = end;
    ev->lookback = o->lookback_ms > 0 ? o->lookback_ms : 300000;
    ev->max_samples = o->max_samples > 0 ? o->max_samples : 50000000;
    /* allocations may exceed what is held at once (a range function reads every series'
     * windows); bounded still, relative to the limit */
    ev->hard_max = ev->max_samples > INT64_MAX / 4 ? INT64_MAX / 2 : 2 * ev->max_samples + 1000000;
    ev->subq_step = o->subquery_step_ms > 0 ? o->subquery_step_ms : 60000;
    ev->deadline_ns = o->timeout_ms > 0 ? tr_mono_ns() + o->timeout_ms * 1000000LL : 0;
    ev->cancel = o->cancel;
    ev->err = err;
    ev->errlen = errlen;
    ev->q = q;
    ev->qlen = qlen;
    promql_err rc;
    if (setjmp(ev->jb) == 0) {
        pq_rng r = {start, end, step > 0 ? step : 1, 1};
        if (range) {
            if (end < start || step <= 0) pq_fail(ev, PROMQL_ERR_BAD_DATA, "invalid range");
            r.n = (size_t)((end - start) / step + 1);
        }
        if (qlen <= 16384) {
            pq_map keys = {0};
            count_keys(ev, root, &keys, 0);
            count_keys(ev, root, &keys, 1);
        }
        pq_val v = pq_eval(ev, root, &r);
        rc = to_result(ev, &v, &r, range, out);
        if (rc != PROMQL_OK) snprintf(err, errlen, "out of memory");
    } else {
        rc = ev->code;
    }
    if (rc == PROMQL_OK) {
        out->warnings = copy_strs(ev->warn, ev->nwarn);
        out->nwarnings = out->warnings ? ev->nwarn : 0;
        out->infos = copy_strs(ev->info, ev->ninfo);
        out->ninfos = out->infos ? ev->ninfo : 0;
    } else {
        promql_result_free(out);
    }
    free(ev);
    pq_tree_free(root);
    tr_arena_free(a);
    return rc;
}

promql_err promql_query_instant(tsdb *db, const char *q, size_t qlen, int64_t t_ms, const promql_opts *o,
                                promql_result *out, char *err, size_t errlen) {
    return run(db, q, qlen, t_ms, t_ms, 1, 0, o, out, err, errlen);
}

promql_err promql_query_range(tsdb *db, const char *q, size_t qlen, int64_t start_ms, int64_t end_ms,
                              int64_t step_ms, const promql_opts *o, promql_result *out, char *err,
                              size_t errlen) {
    return run(db, q, qlen, start_ms, end_ms, step_ms, 1, o, out, err, errlen);
}

char *promql_format(const char *q, size_t qlen, char *err, size_t errlen) {
    tr_arena *a = tr_arena_new((size_t)1 << 30);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pq_node *n = pq_parse(a, q, qlen, err, errlen);
    char *s = NULL;
    if (n) {
        s = pq_pretty_node(n);
        if (!s) snprintf(err, errlen, "out of memory");
        pq_tree_free(n);
    }
    tr_arena_free(a);
    return s;
}

int promql_parse_selector(const char *s, size_t len, tsdb_matcher ***out, char *err, size_t errlen) {
    tr_arena *a = tr_arena_new((size_t)64 << 20);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pq_node *n = pq_parse_ex(a, s, len, 1, err, errlen);
    if (!n) {
        tr_arena_free(a);
        return -1;
    }
    if (n->kind != N_VSEL || n->offset_ms || n->at) {
        snprintf(err, errlen, "1:1: parse error: expected a series selector");
        pq_tree_free(n);
        tr_arena_free(a);
        return -1;
    }
    tsdb_matcher **m = calloc(n->nms ? n->nms : 1, sizeof *m);
    if (!m) {
        pq_tree_free(n);
        tr_arena_free(a);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int cnt = (int)n->nms;
    for (size_t i = 0; i < n->nms; i++) {
        m[i] = n->ms[i].m; /* ownership moves to the caller */
        n->ms[i].m = NULL;
    }
    n->nms = 0;
    tr_arena_free(a);
    *out = m;
    return cnt;
}

typedef struct {
    tsdb_matcher ***sets;
    size_t *counts;
    size_t n, cap;
    int oom;
} sel_list;

/* moves the matchers of every vector selector under n into l */
static void collect_selectors(pq_node *n, sel_list *l) {
    if (!n || l->oom) return;
    if (n->kind == N_VSEL) {
        if (l->n == l->cap) {
            size_t nc = l->cap ? l->cap * 2 : 4;
            tsdb_matcher ***ns = realloc(l->sets, nc * sizeof *ns);
            if (ns) l->sets = ns;
            size_t *nn = realloc(l->counts, nc * sizeof *nn);
            if (nn) l->counts = nn;
            if (!ns || !nn) {
                l->oom = 1;
                return;
            }
            l->cap = nc;
        }
        tsdb_matcher **m = calloc(n->nms ? n->nms : 1, sizeof *m);
        if (!m) {
            l->oom = 1;
            return;
        }
        for (size_t i = 0; i < n->nms; i++) {
            m[i] = n->ms[i].m; /* ownership moves to the list */
            n->ms[i].m = NULL;
        }
        l->sets[l->n] = m;
        l->counts[l->n++] = n->nms;
        n->nms = 0;
    }
    collect_selectors(n->expr, l);
    collect_selectors(n->lhs, l);
    collect_selectors(n->rhs, l);
    collect_selectors(n->param, l);
    for (size_t i = 0; i < n->nargs; i++)
        collect_selectors(n->args[i], l);
}

void promql_selectors_free(tsdb_matcher ***sets, size_t *counts, size_t n) {
    for (size_t i = 0; sets && i < n; i++) {
        for (size_t k = 0; k < counts[i]; k++)
            tsdb_matcher_free(sets[i][k]);
        free(sets[i]);
    }
    free(sets);
    free(counts);
}

int promql_expr_selectors(const char *q, size_t qlen, tsdb_matcher ****sets, size_t **counts, char *err,
                          size_t errlen) {
    *sets = NULL;
    *counts = NULL;
    tr_arena *a = tr_arena_new((size_t)1 << 30);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pq_node *n = pq_parse(a, q, qlen, err, errlen);
    if (!n) {
        tr_arena_free(a);
        return -1;
    }
    sel_list l = {0};
    collect_selectors(n, &l);
    pq_tree_free(n);
    tr_arena_free(a);
    if (l.oom) {
        promql_selectors_free(l.sets, l.counts, l.n);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *sets = l.sets;
    *counts = l.counts;
    return (int)l.n;
}
