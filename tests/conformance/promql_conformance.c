/* Runs Prometheus's PromQL test scripts (promqltest format, see
 * ../shared/conformance/promql/FORMAT.md) in place against tricorder's engine and store.
 *
 *   promql_conformance [--dir D] [--baseline F] [--update-baseline] [-v] [file.test ...]
 *
 * Prints pass / skip / fail per file and the totals. Cases that need native histograms (or
 * features tricorder does not have) are skipped and counted apart. Exits 1 when a case listed
 * in the baseline (the ids of cases that passed before: file:line) fails, so a regression
 * fails the suite; --update-baseline (or PROMQL_UPDATE_BASELINE=1) rewrites the baseline with
 * the cases that pass now. */
#include <ctype.h>
#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics/metrics.h"
#include "promql/ast.h"
#include "promql/promql.h"

typedef struct {
    char *name, *value;
} lab;

typedef struct {
    lab *l;
    size_t n;
} labset;

typedef struct {
    int present, stale, hist;
    double v;
} point;

static int verbose;

/* ---- small helpers ---- */

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\r')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = 0;
    return s;
}

static int lab_cmp(const void *a, const void *b) {
    return strcmp(((const lab *)a)->name, ((const lab *)b)->name);
}

static void labset_free(labset *s) {
    for (size_t i = 0; i < s->n; i++) {
        free(s->l[i].name);
        free(s->l[i].value);
    }
    free(s->l);
    s->l = NULL;
    s->n = 0;
}

static void labset_add(labset *s, const char *n, size_t nl, const char *v) {
    s->l = realloc(s->l, (s->n + 1) * sizeof *s->l);
    s->l[s->n].name = strndup(n, nl);
    s->l[s->n].value = strdup(v);
    s->n++;
}

static int labset_eq(const labset *a, const labset *b) {
    if (a->n != b->n) return 0;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->l[i].name, b->l[i].name) || strcmp(a->l[i].value, b->l[i].value)) return 0;
    return 1;
}

static void labset_str(const labset *s, char *buf, size_t cap) {
    size_t o = snprintf(buf, cap, "{");
    for (size_t i = 0; i < s->n && o < cap; i++)
        o += snprintf(buf + o, cap - o, "%s%s=\"%s\"", i ? ", " : "", s->l[i].name, s->l[i].value);
    if (o < cap) snprintf(buf + o, cap - o, "}");
}

/* parses `name{a="b",...}` / `{...}` / `name` at *p; advances *p. */
static int parse_series_desc(const char **p, labset *out) {
    const char *s = *p;
    memset(out, 0, sizeof *out);
    while (*s == ' ' || *s == '\t')
        s++;
    const char *st = s;
    while (*s && (isalnum((unsigned char)*s) || *s == '_' || *s == ':'))
        s++;
    if (s > st) {
        char *nm = strndup(st, (size_t)(s - st));
        labset_add(out, "__name__", 8, nm);
        free(nm);
    }
    if (*s == '{') {
        s++;
        for (;;) {
            while (*s == ' ' || *s == '\t' || *s == ',')
                s++;
            if (*s == '}') {
                s++;
                break;
            }
            const char *ns = s;
            char *lname = NULL;
            if (*s == '"') {
                const char *q = s + 1;
                while (*q && *q != '"')
                    q += (*q == '\\' && q[1]) ? 2 : 1;
                if (!*q) return -1;
                size_t ul;
                if (pq_unquote(NULL, s, (size_t)(q + 1 - s), &lname, &ul)) return -1;
                s = q + 1;
            } else {
                while (*s && (isalnum((unsigned char)*s) || *s == '_'))
                    s++;
                if (s == ns) return -1;
                lname = strndup(ns, (size_t)(s - ns));
            }
            while (*s == ' ')
                s++;
            if (*s == ',' || *s == '}') {
                /* a quoted metric name */
                labset_add(out, "__name__", 8, lname);
                free(lname);
                continue;
            }
            if (*s != '=') {
                free(lname);
                return -1;
            }
            s++;
            while (*s == ' ')
                s++;
            char q = *s;
            if (q != '"' && q != '\'' && q != '`') {
                free(lname);
                return -1;
            }
            const char *e = s + 1;
            while (*e && *e != q)
                e += (*e == '\\' && q != '`' && e[1]) ? 2 : 1;
            if (!*e) {
                free(lname);
                return -1;
            }
            char *val;
            size_t vl;
            if (pq_unquote(NULL, s, (size_t)(e + 1 - s), &val, &vl)) {
                free(lname);
                return -1;
            }
            if (*val) labset_add(out, lname, strlen(lname), val);
            free(lname);
            free(val);
            s = e + 1;
        }
    }
    if (out->n) qsort(out->l, out->n, sizeof *out->l, lab_cmp);
    *p = s;
    return 0;
}

static int parse_num(const char *s, double *v) {
    if (!strcasecmp(s, "inf") || !strcasecmp(s, "+inf")) {
        *v = INFINITY;
        return 0;
    }
    if (!strcasecmp(s, "-inf")) {
        *v = -INFINITY;
        return 0;
    }
    if (!strcasecmp(s, "nan")) {
        *v = NAN;
        return 0;
    }
    char *e;
    *v = strtod(s, &e);
    return (*s && !*e) ? 0 : -1;
}

/* expands value tokens into points; returns -1 on a syntax error */
static int expand_values(const char *s, point **out, size_t *n) {
    *out = NULL;
    *n = 0;
    size_t cap = 0;
    char *dup = strdup(s);
    char *save = NULL;
    int rc = 0;
    /* histograms {{...}} contain spaces: treat the whole {{...}} as one token */
    char *p = dup;
    while (*p) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p) break;
        char *tok = p;
        if (p[0] == '{' && p[1] == '{') {
            char *e = strstr(p, "}}");
            if (!e) {
                rc = -1;
                break;
            }
            while ((e[2] == '+' || e[2] == '-') && e[3] == '{' && e[4] == '{' && strstr(e + 3, "}}"))
                e = strstr(e + 3, "}}");
            p = e + 2;
            while (*p && *p != ' ' && *p != '\t')
                p++;
        } else {
            while (*p && *p != ' ' && *p != '\t')
                p++;
        }
        char save_c = *p;
        *p = 0;
        /* tok */
        size_t reps = 1;
        int omit = 0, hist = 0, stale = 0;
        double a = 0, b = 0;
        int sign = 0;
        char *x = NULL;
        if (tok[0] == '{' && tok[1] == '{') {
            hist = 1;
            char *e = strstr(tok, "}}");
            if (e[2] == 'x')
                reps = (size_t)atol(e + 3) + 1;
            else if (e[2] == '+' || e[2] == '-') {
                char *xx = strrchr(e, 'x');
                reps = xx ? (size_t)atol(xx + 1) + 1 : 1;
            }
        } else if (tok[0] == '_') {
            omit = 1;
            if (tok[1] == 'x')
                reps = (size_t)atol(tok + 2);
            else
                reps = 1;
        } else if (!strcmp(tok, "stale")) {
            stale = 1;
        } else {
            x = strrchr(tok, 'x');
            if (x) {
                *x = 0;
                reps = (size_t)atol(x + 1) + 1;
            }
            /* a+b or a-b */
            char *op = NULL;
            for (char *q = tok + 1; *q; q++)
                if ((*q == '+' || *q == '-') && q[-1] != 'e' && q[-1] != 'E') {
                    op = q;
                    break;
                }
            if (op && x) {
                sign = *op == '+' ? 1 : -1;
                *op = 0;
                if (parse_num(tok, &a) || parse_num(op + 1, &b)) rc = -1;
            } else {
                if (parse_num(tok, &a)) rc = -1;
            }
        }
        for (size_t k = 0; k < reps && rc == 0; k++) {
            if (*n == cap) {
                cap = cap ? cap * 2 : 16;
                *out = realloc(*out, cap * sizeof **out);
            }
            point *pt = &(*out)[(*n)++];
            memset(pt, 0, sizeof *pt);
            pt->present = !omit;
            pt->stale = stale;
            pt->hist = hist;
            pt->v = a + (double)sign * b * (double)k;
        }
        *p = save_c;
        if (rc) break;
    }
    (void)save;
    free(dup);
    if (rc) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

static int parse_time(const char *s, int64_t *ms) {
    if (!strcmp(s, "0")) {
        *ms = 0;
        return 0;
    }
    return pq_parse_duration(s, strlen(s), ms);
}

/* Prometheus's almost.Equal with epsilon 1e-6 */
static int almost_equal(double a, double b) {
    int sa = tsdb_is_stale_nan(a), sb = tsdb_is_stale_nan(b);
    if (sa || sb) return sa && sb;
    if (isnan(a) && isnan(b)) return 1;
    if (a == b) return 1;
    double diff = fabs(a - b);
    const double minn = 2.2250738585072014e-308;
    if (a == 0 || b == 0 || fabs(a) + fabs(b) < minn) return diff < 1e-6 * minn;
    double s = fabs(a) + fabs(b);
    if (s > 1.7976931348623157e308) s = 1.7976931348623157e308;
    return diff / s < 1e-6;
}

/* ---- store ---- */

typedef struct {
    tsdb *db;
    char dir[256];
    char **hist_names; /* metrics loaded with native histogram samples */
    size_t nhist;
    labset *hist_sets; /* series loaded with native histogram samples */
    size_t nhs;
} store;

static int rm_cb(const char *p, const struct stat *sb, int f, struct FTW *ftw) {
    (void)sb;
    (void)f;
    (void)ftw;
    return remove(p);
}

static void store_close(store *s) {
    if (s->db) tsdb_close(s->db);
    s->db = NULL;
    if (s->dir[0]) nftw(s->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    s->dir[0] = 0;
    for (size_t i = 0; i < s->nhist; i++)
        free(s->hist_names[i]);
    free(s->hist_names);
    s->hist_names = NULL;
    s->nhist = 0;
    for (size_t i = 0; i < s->nhs; i++)
        labset_free(&s->hist_sets[i]);
    free(s->hist_sets);
    s->hist_sets = NULL;
    s->nhs = 0;
}

static int store_open(store *s) {
    const char *tmp = getenv("TMPDIR");
    snprintf(s->dir, sizeof s->dir, "%s/promqlconfXXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(s->dir)) return -1;
    tsdb_options o = {0};
    o.dir = s->dir;
    o.ooo_window_ms = INT64_MAX / 4;
    char err[256];
    if (tsdb_open(&o, &s->db, err, sizeof err) != 0) {
        fprintf(stderr, "tsdb_open: %s\n", err);
        return -1;
    }
    return 0;
}

static void mark_hist(store *s, const char *name) {
    for (size_t i = 0; i < s->nhist; i++)
        if (!strcmp(s->hist_names[i], name)) return;
    s->hist_names = realloc(s->hist_names, (s->nhist + 1) * sizeof *s->hist_names);
    s->hist_names[s->nhist++] = strdup(name);
}

/* ---- cases ---- */

typedef struct {
    labset ls;
    point *pts;
    size_t npts;
    int matched;
} expect_series;

typedef struct {
    int line;
    int is_range, fail, warn, info, ordered, no_warn, no_info;
    int64_t at, start, end, step;
    char *expr;
    char *fail_msg, *fail_re;
    int has_scalar;
    double scalar;
    int has_string;
    char *string;
    int range_vector;
    int64_t rv_start, rv_end, rv_step;
    expect_series *exp;
    size_t nexp;
    int needs_hist;
} evalcase;

static void case_free(evalcase *c) {
    free(c->expr);
    free(c->fail_msg);
    free(c->fail_re);
    free(c->string);
    for (size_t i = 0; i < c->nexp; i++) {
        labset_free(&c->exp[i].ls);
        free(c->exp[i].pts);
    }
    free(c->exp);
}

static char why[2048];

static void whyf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
}

static int series_labset(const promql_series *s, labset *out) {
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < s->nlabels; i++)
        labset_add(out, s->labels[i].name, strlen(s->labels[i].name), s->labels[i].value);
    if (out->n) qsort(out->l, out->n, sizeof *out->l, lab_cmp);
    return 0;
}

static int check_annotations(evalcase *c, promql_result *r) {
    if (c->warn && r->nwarnings == 0) {
        whyf("expected warnings, got none");
        return 0;
    }
    if (!c->warn && r->nwarnings) {
        whyf("unexpected warning: %s", r->warnings[0]);
        return 0;
    }
    if (c->info && r->ninfos == 0) {
        whyf("expected info annotations, got none");
        return 0;
    }
    if (!c->info && r->ninfos) {
        whyf("unexpected info: %s", r->infos[0]);
        return 0;
    }
    return 1;
}

static int compare(evalcase *c, promql_result *r, int64_t rstart, int64_t rstep) {
    if (c->has_string) {
        if (r->type != PROMQL_STRING || strcmp(r->str, c->string)) {
            whyf("expected string \"%s\"", c->string);
            return 0;
        }
        return 1;
    }
    if (c->has_scalar) {
        if (r->type != PROMQL_SCALAR) {
            whyf("expected scalar %g, got type %d", c->scalar, r->type);
            return 0;
        }
        if (!almost_equal(r->scalar, c->scalar)) {
            whyf("expected scalar %g, got %g", c->scalar, r->scalar);
            return 0;
        }
        return 1;
    }
    if (r->type == PROMQL_SCALAR) {
        whyf("got scalar %g, expected a vector", r->scalar);
        return 0;
    }
    int matrix = c->is_range || c->range_vector;
    for (size_t i = 0; i < c->nexp; i++)
        c->exp[i].matched = 0;
    size_t nonempty = 0;
    for (size_t i = 0; i < r->nseries; i++) {
        promql_series *s = &r->series[i];
        if (s->n == 0) continue;
        nonempty++;
        labset ls;
        series_labset(s, &ls);
        expect_series *e = NULL;
        size_t ei = 0;
        for (size_t k = 0; k < c->nexp; k++)
            if (labset_eq(&c->exp[k].ls, &ls)) {
                e = &c->exp[k];
                ei = k;
            }
        char lb[512];
        labset_str(&ls, lb, sizeof lb);
        labset_free(&ls);
        if (!e) {
            whyf("unexpected series %s = %g", lb, s->v[0]);
            return 0;
        }
        e->matched = 1;
        if (c->ordered && ei != nonempty - 1) {
            whyf("series %s at position %zu, expected %zu", lb, nonempty - 1, ei);
            return 0;
        }
        if (!matrix) {
            if (s->n != 1 || e->npts != 1) {
                whyf("series %s: %zu points, expected %zu", lb, s->n, e->npts);
                return 0;
            }
            if (e->pts[0].hist) {
                whyf("histogram expected");
                return 0;
            }
            if (!almost_equal(s->v[0], e->pts[0].v)) {
                whyf("series %s: got %.17g, expected %.17g", lb, s->v[0], e->pts[0].v);
                return 0;
            }
            continue;
        }
        size_t np = 0;
        for (size_t k = 0; k < e->npts; k++)
            np += e->pts[k].present;
        if (np != s->n) {
            whyf("series %s: %zu points, expected %zu", lb, s->n, np);
            return 0;
        }
        size_t q = 0;
        for (size_t k = 0; k < e->npts; k++) {
            if (!e->pts[k].present) continue;
            int64_t t = rstart + (int64_t)k * rstep;
            if (s->t[q] != t) {
                whyf("series %s: point %zu at %lld, expected at %lld", lb, q, (long long)s->t[q],
                     (long long)t);
                return 0;
            }
            if (e->pts[k].hist || !almost_equal(s->v[q], e->pts[k].v)) {
                whyf("series %s: at %lld got %.17g, expected %.17g", lb, (long long)t, s->v[q], e->pts[k].v);
                return 0;
            }
            q++;
        }
    }
    for (size_t k = 0; k < c->nexp; k++)
        if (!c->exp[k].matched) {
            char lb[512];
            labset_str(&c->exp[k].ls, lb, sizeof lb);
            whyf("expected series %s missing", lb);
            return 0;
        }
    return 1;
}

static long n_queries; /* queries run, @ re-runs and range-mode checks included */

static int run_one(store *st, evalcase *c, const char *expr, int64_t at) {
    n_queries++;
    promql_result r;
    char err[1024];
    promql_opts o = {0};
    o.max_samples = 50000000;
    promql_err rc;
    int64_t rstart, rstep;
    if (c->is_range) {
        rc = promql_query_range(st->db, expr, strlen(expr), c->start, c->end, c->step, &o, &r, err,
                                sizeof err);
        rstart = c->start;
        rstep = c->step;
    } else {
        int64_t t = c->range_vector ? c->rv_end : at;
        rc = promql_query_instant(st->db, expr, strlen(expr), t, &o, &r, err, sizeof err);
        rstart = c->rv_start;
        rstep = c->rv_step;
    }
    if (c->fail) {
        if (rc == PROMQL_OK) {
            whyf("expected an error, got none");
            promql_result_free(&r);
            return 0;
        }
        if (c->fail_msg && strcmp(c->fail_msg, err)) {
            /* Prometheus compares Error() without the position prefix of parse errors? No: exactly. */
            whyf("error %s, expected %s", err, c->fail_msg);
            return 0;
        }
        if (c->fail_re) {
            regex_t re;
            if (regcomp(&re, c->fail_re, REG_EXTENDED | REG_NOSUB) == 0) {
                int m = regexec(&re, err, 0, NULL, 0);
                regfree(&re);
                if (m != 0) {
                    whyf("error %s does not match %s", err, c->fail_re);
                    return 0;
                }
            }
        }
        return 1;
    }
    if (rc != PROMQL_OK) {
        whyf("error: %s", err);
        return 0;
    }
    int ok = check_annotations(c, &r) && compare(c, &r, rstart, rstep);
    promql_result_free(&r);
    if (!ok || c->is_range || c->ordered || c->range_vector || c->has_string || strstr(expr, "start()") ||
        strstr(expr, "end()") || strstr(expr, "range()") || strstr(expr, "step()"))
        return ok;
    /* promqltest's range-mode check: the same expression as a range query around t must give
     * the same points at t */
    int64_t t = at;
    n_queries++;
    rc = promql_query_range(st->db, expr, strlen(expr), t - 60000, t + 60000, 60000, &o, &r, err, sizeof err);
    if (rc != PROMQL_OK) {
        whyf("range mode: error: %s", err);
        return 0;
    }
    promql_result v = {0};
    v.type = PROMQL_VECTOR;
    v.series = calloc(r.nseries + 1, sizeof *v.series);
    for (size_t i = 0; i < r.nseries; i++) {
        for (size_t k = 0; k < r.series[i].n; k++)
            if (r.series[i].t[k] == t) {
                promql_series *d = &v.series[v.nseries++];
                *d = r.series[i];
                d->t = &r.series[i].t[k];
                d->v = &r.series[i].v[k];
                d->n = 1;
            }
    }
    if (c->has_scalar) {
        v.type = PROMQL_SCALAR;
        v.scalar = v.nseries ? v.series[0].v[0] : NAN;
        if (!v.nseries) {
            whyf("range mode: no point at t");
            ok = 0;
        }
    }
    v.nwarnings = r.nwarnings;
    v.ninfos = r.ninfos;
    v.warnings = r.warnings;
    v.infos = r.infos;
    if (ok) ok = check_annotations(c, &v) && compare(c, &v, 0, 0);
    if (!ok) {
        char w[1900];
        memcpy(w, why, sizeof w - 1);
        w[sizeof w - 1] = 0;
        snprintf(why, sizeof why, "range mode: %s", w);
    }
    free(v.series);
    promql_result_free(&r);
    return ok;
}

/* promqltest's @ re-runs: unless the query calls a time-dependent function, every selector and
 * subquery without @ gets "@ <eval time>" and the query must give the same result at other
 * evaluation times. */
static void set_at(pq_node *n, int64_t ts) {
    if (!n) return;
    if (n->kind == N_VSEL && n->at == AT_NONE) {
        n->at = AT_TIME;
        n->at_ms = ts;
    }
    if (n->kind == N_SUBQ) {
        if (n->at == AT_NONE) {
            n->at = AT_TIME;
            n->at_ms = ts;
        }
        return;
    }
    set_at(n->expr, ts);
    set_at(n->lhs, ts);
    set_at(n->rhs, ts);
    set_at(n->param, ts);
    for (size_t i = 0; i < n->nargs; i++)
        set_at(n->args[i], ts);
}

static int time_dependent(const pq_node *n) {
    if (!n) return 0;
    static const char *fns[] = {"days_in_month", "day_of_month", "day_of_week", "day_of_year",
                                "hour",          "minute",       "month",       "predict_linear",
                                "time",          "timestamp",    "year",        NULL};
    if (n->kind == N_CALL)
        for (int i = 0; fns[i]; i++)
            if (!strcmp(n->fn->name, fns[i])) return 1;
    if (time_dependent(n->expr) || time_dependent(n->lhs) || time_dependent(n->rhs) ||
        time_dependent(n->param))
        return 1;
    for (size_t i = 0; i < n->nargs; i++)
        if (time_dependent(n->args[i])) return 1;
    return 0;
}

static int run_case(store *st, evalcase *c) {
    if (!run_one(st, c, c->expr, c->at)) return 0;
    if (c->is_range || c->range_vector || c->has_string) return 1;
    tr_arena *a = tr_arena_new((size_t)64 << 20);
    char err[512];
    pq_node *n = pq_parse(a, c->expr, strlen(c->expr), err, sizeof err);
    int ok = 1;
    if (n && !time_dependent(n) && !strstr(c->expr, "start()") && !strstr(c->expr, "end()")) {
        set_at(n, c->at);
        char *q = pq_format_node(n);
        int64_t t = c->at;
        int64_t times[5] = {-10 * t, 0, t / 5, t, 10 * t};
        int nt = 5;
        if (t == 0) {
            times[0] = -1000;
            times[1] = 0;
            times[2] = 1000;
            nt = 3;
        }
        for (int i = 0; i < nt && ok && q; i++) {
            if (!run_one(st, c, q, times[i])) {
                char w[1700];
                memcpy(w, why, sizeof w - 1);
                w[sizeof w - 1] = 0;
                snprintf(why, sizeof why, "@ re-run %s at %lld: %s", q, (long long)times[i], w);
                ok = 0;
            }
        }
        free(q);
    }
    if (n) pq_tree_free(n);
    tr_arena_free(a);
    return ok;
}

static int node_uses_hist(store *st, const pq_node *n) {
    if (!n) return 0;
    if (n->kind == N_VSEL) {
        for (size_t h = 0; h < st->nhs; h++) {
            int all = 1;
            for (size_t i = 0; i < n->nms && all; i++) {
                const char *v = "";
                for (size_t k = 0; k < st->hist_sets[h].n; k++)
                    if (!strcmp(st->hist_sets[h].l[k].name, n->ms[i].name)) v = st->hist_sets[h].l[k].value;
                if (!tsdb_matcher_matches(n->ms[i].m, v)) all = 0;
            }
            if (all) return 1;
        }
    }
    if (node_uses_hist(st, n->expr) || node_uses_hist(st, n->lhs) || node_uses_hist(st, n->rhs) ||
        node_uses_hist(st, n->param))
        return 1;
    for (size_t i = 0; i < n->nargs; i++)
        if (node_uses_hist(st, n->args[i])) return 1;
    return 0;
}

/* does the query select a series loaded with native histograms? */
static int query_uses_hist(store *st, const char *q) {
    if (st->nhs) {
        tr_arena *a = tr_arena_new((size_t)64 << 20);
        char err[256];
        pq_node *n = pq_parse(a, q, strlen(q), err, sizeof err);
        int r = n ? node_uses_hist(st, n) : 0;
        if (n) pq_tree_free(n);
        tr_arena_free(a);
        if (r) return 1;
    }
    for (size_t i = 0; i < st->nhist; i++) {
        const char *n = st->hist_names[i];
        size_t l = strlen(n);
        for (const char *p = strstr(q, n); p; p = strstr(p + 1, n)) {
            int before = p == q || !(isalnum((unsigned char)p[-1]) || p[-1] == '_' || p[-1] == ':');
            int after = !(isalnum((unsigned char)p[l]) || p[l] == '_' || p[l] == ':');
            if (before && after) return 1;
        }
    }
    return 0;
}

/* ---- files ---- */

typedef struct {
    int pass, fail, skip_nh, skip_feat, nh_pass; /* nh_pass: skipped cases that pass anyway */
} counts;

typedef struct {
    char **ids;
    size_t n;
} idlist;

static void idlist_add(idlist *l, const char *id) {
    l->ids = realloc(l->ids, (l->n + 1) * sizeof *l->ids);
    l->ids[l->n++] = strdup(id);
}

static int idlist_has(const idlist *l, const char *id) {
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->ids[i], id)) return 1;
    return 0;
}

static const char *feature_files[] = {"type_and_unit.test", "limit.test", NULL};

static int run_file(const char *dir, const char *fname, counts *tot, idlist *passing, idlist *failing) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, fname) >= (int)sizeof path) return -1;
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t nl = 0, cap = 0;
    char **lines = NULL;
    char *ln = NULL;
    size_t lcap = 0;
    while (getline(&ln, &lcap, f) >= 0) {
        size_t l = strlen(ln);
        if (l && ln[l - 1] == '\n') ln[--l] = 0;
        if (nl == cap) {
            cap = cap ? cap * 2 : 256;
            lines = realloc(lines, cap * sizeof *lines);
        }
        char *t = trim(ln);
        lines[nl++] = strdup(t[0] == '#' ? "" : t);
    }
    free(ln);
    fclose(f);
    int feature = 0;
    for (int i = 0; feature_files[i]; i++)
        if (!strcmp(fname, feature_files[i])) feature = 1;
    counts c = {0};
    store st = {0};
    if (store_open(&st)) return -1;
    for (size_t i = 0; i < nl; i++) {
        char *L = lines[i];
        if (!*L) continue;
        if (!strcasecmp(L, "clear")) {
            store_close(&st);
            if (store_open(&st)) return -1;
            continue;
        }
        if (!strncasecmp(L, "load", 4)) {
            int nhcb = !strncasecmp(L, "load_with_nhcb", 14);
            char *sp = strchr(L, ' ');
            int64_t interval = 0;
            if (!sp || parse_time(trim(sp), &interval)) {
                fprintf(stderr, "%s:%zu: bad load\n", fname, i + 1);
                continue;
            }
            tsdb_appender *ap = tsdb_appender_begin(st.db);
            size_t j = i + 1;
            size_t bend = j;
            while (bend < nl && *lines[bend])
                bend++;
            for (; j < nl && *lines[j]; j++) {
                const char *p = lines[j];
                labset ls;
                if (strstr(p, "@st")) {
                    continue;
                }
                /* a series repeated in the block: the later line's values win at the same time */
                char key[1024];
                {
                    const char *pp = p;
                    labset tmp;
                    if (parse_series_desc(&pp, &tmp) == 0) {
                        labset_str(&tmp, key, sizeof key);
                        labset_free(&tmp);
                    } else
                        key[0] = 0;
                }
                if (parse_series_desc(&p, &ls)) {
                    fprintf(stderr, "%s:%zu: bad series\n", fname, j + 1);
                    continue;
                }
                point *pts;
                size_t np;
                if (expand_values(p, &pts, &np)) {
                    fprintf(stderr, "%s:%zu: bad values\n", fname, j + 1);
                    labset_free(&ls);
                    continue;
                }
                const char *mname = "";
                tsdb_label *tl = calloc(ls.n + 1, sizeof *tl);
                for (size_t k = 0; k < ls.n; k++) {
                    tl[k].name = ls.l[k].name;
                    tl[k].value = ls.l[k].value;
                    if (!strcmp(ls.l[k].name, "__name__")) mname = ls.l[k].value;
                }
                int hist = 0;
                uint8_t *later = calloc(np + 1, 1);
                for (size_t q = j + 1; q < bend; q++) {
                    const char *pp = lines[q];
                    labset tmp;
                    if (parse_series_desc(&pp, &tmp) != 0) continue;
                    char k2[1024];
                    labset_str(&tmp, k2, sizeof k2);
                    labset_free(&tmp);
                    if (strcmp(k2, key)) continue;
                    point *lp;
                    size_t lnp;
                    if (expand_values(pp, &lp, &lnp) == 0) {
                        for (size_t k = 0; k < lnp && k < np; k++)
                            if (lp[k].present) later[k] = 1;
                        free(lp);
                    }
                }
                for (size_t k = 0; k < np; k++) {
                    if (!pts[k].present || later[k]) continue;
                    if (pts[k].hist) {
                        hist = 1;
                        continue;
                    }
                    double v = pts[k].stale ? tsdb_stale_nan() : pts[k].v;
                    int rc = tsdb_appender_add(ap, tl, ls.n, (int64_t)k * interval, v);
                    if (rc != TSDB_OK && verbose)
                        fprintf(stderr, "%s:%zu: append: %s\n", fname, j + 1, tsdb_strerror(rc));
                }
                free(later);
                if (hist) {
                    st.hist_sets = realloc(st.hist_sets, (st.nhs + 1) * sizeof *st.hist_sets);
                    labset *hs = &st.hist_sets[st.nhs++];
                    memset(hs, 0, sizeof *hs);
                    for (size_t k = 0; k < ls.n; k++)
                        labset_add(hs, ls.l[k].name, strlen(ls.l[k].name), ls.l[k].value);
                }
                if (nhcb) {
                    /* the converted native histogram is named without _bucket/_count/_sum */
                    char base[256];
                    snprintf(base, sizeof base, "%s", mname);
                    const char *sfx[] = {"_bucket", "_count", "_sum"};
                    for (int q = 0; q < 3; q++) {
                        size_t bl = strlen(base), sl = strlen(sfx[q]);
                        if (bl > sl && !strcmp(base + bl - sl, sfx[q])) {
                            base[bl - sl] = 0;
                            mark_hist(&st, base);
                        }
                    }
                }
                free(tl);
                free(pts);
                labset_free(&ls);
            }
            tsdb_appender_commit(ap, NULL, NULL);
            i = j - 1;
            continue;
        }
        if (strncasecmp(L, "eval", 4)) {
            fprintf(stderr, "%s:%zu: unknown command: %s\n", fname, i + 1, L);
            continue;
        }
        /* eval header */
        evalcase ec = {0};
        ec.line = (int)i + 1;
        char *h = strdup(L);
        char *words[16];
        int nw = 0;
        char *p = h;
        /* split the first few words; the rest is the expression */
        char *exprstart = NULL;
        while (nw < 16) {
            while (*p == ' ' || *p == '\t')
                p++;
            if (!*p) break;
            words[nw++] = p;
            while (*p && *p != ' ' && *p != '\t')
                p++;
            if (*p) *p++ = 0;
            const char *w = words[nw - 1];
            if (nw >= 2 && !strcmp(words[1], "instant") && ((nw == 3 && strcmp(w, "at")) || nw == 4)) {
                if (nw == 3) {
                    /* no "at": expression begins here */
                    exprstart = (char *)L + (w - h);
                    nw = 3;
                    break;
                }
                exprstart = (char *)L + (p - h);
                break;
            }
            if (nw >= 2 && !strcmp(words[1], "range") && nw == 8) {
                exprstart = (char *)L + (p - h);
                break;
            }
        }
        const char *cmd = words[0];
        if (!strcmp(cmd, "eval_fail")) ec.fail = 1;
        if (!strcmp(cmd, "eval_warn")) ec.warn = 1;
        if (!strcmp(cmd, "eval_info")) ec.info = 1;
        if (!strcmp(cmd, "eval_ordered")) ec.ordered = 1;
        int bad = !exprstart;
        if (!bad && !strcmp(words[1], "instant")) {
            if (nw == 4) bad = parse_time(words[3], &ec.at);
        } else if (!bad) {
            ec.is_range = 1;
            bad = strcmp(words[2], "from") || strcmp(words[4], "to") || strcmp(words[6], "step") ||
                  parse_time(words[3], &ec.start) || parse_time(words[5], &ec.end) ||
                  parse_time(words[7], &ec.step);
        }
        free(h);
        if (bad) {
            fprintf(stderr, "%s:%zu: bad eval line\n", fname, i + 1);
            continue;
        }
        ec.expr = strdup(trim(exprstart));
        size_t j = i + 1;
        for (; j < nl && *lines[j]; j++) {
            char *E = lines[j];
            if (!strncmp(E, "expected_fail_message", 21)) {
                ec.fail_msg = strdup(trim(E + 21));
                continue;
            }
            if (!strncmp(E, "expected_fail_regexp", 20)) {
                ec.fail_re = strdup(trim(E + 20));
                continue;
            }
            if (!strncmp(E, "expect ", 7)) {
                char *a = trim(E + 7);
                if (!strncmp(a, "fail", 4)) {
                    ec.fail = 1;
                    char *m = strstr(a, "msg:");
                    if (m) ec.fail_msg = strdup(trim(m + 4));
                    m = strstr(a, "regex:");
                    if (m) ec.fail_re = strdup(trim(m + 6));
                } else if (!strncmp(a, "warn", 4))
                    ec.warn = 1;
                else if (!strncmp(a, "info", 4))
                    ec.info = 1;
                else if (!strncmp(a, "no_warn", 7))
                    ec.no_warn = 1;
                else if (!strncmp(a, "no_info", 7))
                    ec.no_info = 1;
                else if (!strncmp(a, "ordered", 7))
                    ec.ordered = 1;
                else if (!strncmp(a, "range vector", 12)) {
                    char fs[64], ts[64], ss[64];
                    if (sscanf(a, "range vector from %63s to %63s step %63s", fs, ts, ss) == 3) {
                        ec.range_vector = 1;
                        parse_time(fs, &ec.rv_start);
                        parse_time(ts, &ec.rv_end);
                        parse_time(ss, &ec.rv_step);
                    }
                } else if (!strncmp(a, "string", 6)) {
                    char *q = trim(a + 6);
                    ec.has_string = 1;
                    size_t ol;
                    if (pq_unquote(NULL, q, strlen(q), &ec.string, &ol)) ec.string = strdup(q);
                }
                continue;
            }
            double sv;
            char *e2 = E;
            if (!ec.nexp && !parse_num(e2, &sv)) {
                ec.has_scalar = 1;
                ec.scalar = sv;
                continue;
            }
            if (!ec.nexp && (!strncmp(e2, "0x", 2) || !strncmp(e2, "-0x", 3))) {
                ec.has_scalar = 1;
                ec.scalar = (double)strtoll(e2, NULL, 0);
                continue;
            }
            const char *q = E;
            labset ls;
            if (parse_series_desc(&q, &ls)) {
                fprintf(stderr, "%s:%zu: bad expected series\n", fname, j + 1);
                continue;
            }
            ec.exp = realloc(ec.exp, (ec.nexp + 1) * sizeof *ec.exp);
            expect_series *es = &ec.exp[ec.nexp++];
            memset(es, 0, sizeof *es);
            es->ls = ls;
            if (expand_values(q, &es->pts, &es->npts))
                fprintf(stderr, "%s:%zu: bad expected values\n", fname, j + 1);
            for (size_t k = 0; k < es->npts; k++)
                if (es->pts[k].hist) ec.needs_hist = 1;
        }
        i = j - 1;
        char id[512];
        snprintf(id, sizeof id, "%s:%d", fname, ec.line);
        if (ec.needs_hist || query_uses_hist(&st, ec.expr)) {
            c.skip_nh++;
            if (!ec.needs_hist && run_case(&st, &ec)) c.nh_pass++;
            if (verbose > 1) printf("SKIP %s (native histograms)\n", id);
        } else if (feature) {
            c.skip_feat++;
            if (verbose > 1) printf("SKIP %s (feature)\n", id);
        } else if (run_case(&st, &ec)) {
            c.pass++;
            idlist_add(passing, id);
        } else {
            c.fail++;
            idlist_add(failing, id);
            if (verbose) printf("FAIL %s: %s\n     %s\n", id, ec.expr, why);
        }
        case_free(&ec);
    }
    store_close(&st);
    for (size_t k = 0; k < nl; k++)
        free(lines[k]);
    free(lines);
    printf("%-28s pass %4d  fail %4d  skip(native histograms) %4d  skip(features) %4d\n", fname, c.pass,
           c.fail, c.skip_nh, c.skip_feat);
    tot->pass += c.pass;
    tot->fail += c.fail;
    tot->skip_nh += c.skip_nh;
    tot->skip_feat += c.skip_feat;
    tot->nh_pass += c.nh_pass;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
    const char *dir = NULL, *baseline = NULL;
    int update = getenv("PROMQL_UPDATE_BASELINE") && *getenv("PROMQL_UPDATE_BASELINE") == '1';
    char **only = calloc((size_t)argc + 1, sizeof *only);
    int nonly = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--baseline") && i + 1 < argc)
            baseline = argv[++i];
        else if (!strcmp(argv[i], "--update-baseline"))
            update = 1;
        else if (!strcmp(argv[i], "-v"))
            verbose++;
        else if (!strcmp(argv[i], "-vv"))
            verbose = 2;
        else
            only[nonly++] = argv[i];
    }
    char dbuf[1024];
    if (!dir) {
        const char *sh = getenv("TR_SHARED_DIR");
#ifdef TR_SHARED_DIR
        if (!sh) sh = TR_SHARED_DIR;
#endif
        if (!sh) sh = "../shared";
        snprintf(dbuf, sizeof dbuf, "%s/conformance/promql", sh);
        dir = dbuf;
    }
    char bbuf[1024];
#ifdef TR_SOURCE_DIR
    if (!baseline) {
        snprintf(bbuf, sizeof bbuf, "%s/tests/conformance/promql_baseline.txt", TR_SOURCE_DIR);
        baseline = bbuf;
    }
#endif
    (void)bbuf;
    DIR *d = opendir(dir);
    if (!d) {
        perror(dir);
        return 2;
    }
    char **files = NULL;
    size_t nf = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".test")) continue;
        if (nonly) {
            int want = 0;
            for (int k = 0; k < nonly; k++)
                if (!strcmp(only[k], de->d_name)) want = 1;
            if (!want) continue;
        }
        files = realloc(files, (nf + 1) * sizeof *files);
        files[nf++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(files, nf, sizeof *files, cmp_str);
    counts tot = {0};
    idlist passing = {0}, failing = {0};
    for (size_t i = 0; i < nf; i++)
        run_file(dir, files[i], &tot, &passing, &failing);
    int total = tot.pass + tot.fail;
    printf("TOTAL pass %d fail %d (%.1f%% of %d run cases)  skipped: native histograms %d (of which %d pass "
           "anyway), features %d  (%ld queries with the range-mode and @ re-run checks)\n",
           tot.pass, tot.fail, total ? 100.0 * tot.pass / total : 0, total, tot.skip_nh, tot.nh_pass,
           tot.skip_feat, n_queries);
    int rc = 0;
    if (baseline && update) {
        FILE *f = fopen(baseline, "w");
        if (!f) {
            perror(baseline);
            return 2;
        }
        fprintf(f, "# PromQL conformance cases that pass (file:line of the eval); written by\n"
                   "# promql_conformance --update-baseline. A listed case that fails fails the suite.\n");
        for (size_t i = 0; i < passing.n; i++)
            fprintf(f, "%s\n", passing.ids[i]);
        fclose(f);
        printf("baseline %s: %zu cases\n", baseline, passing.n);
    } else if (baseline && !nonly) {
        FILE *f = fopen(baseline, "r");
        if (f) {
            char *l = NULL;
            size_t lc = 0;
            int regress = 0;
            while (getline(&l, &lc, f) >= 0) {
                char *t = trim(l);
                size_t tl = strlen(t);
                if (tl && t[tl - 1] == '\n') t[--tl] = 0;
                if (!*t || *t == '#') continue;
                if (idlist_has(&failing, t) || !idlist_has(&passing, t)) {
                    printf("REGRESSION: %s passed before and fails now\n", t);
                    regress++;
                }
            }
            free(l);
            fclose(f);
            if (regress) rc = 1;
        }
    }
    for (size_t i = 0; i < nf; i++)
        free(files[i]);
    free(files);
    free(only);
    for (size_t i = 0; i < passing.n; i++)
        free(passing.ids[i]);
    free(passing.ids);
    for (size_t i = 0; i < failing.n; i++)
        free(failing.ids[i]);
    free(failing.ids);
    return rc;
}
