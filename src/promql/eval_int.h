/* The evaluator's internal types: every expression is evaluated once over all steps of the
 * query (a "step matrix": one value slot per step and series), so range functions walk each
 * series' samples once with a sliding window, and aggregations and binary operators resolve
 * their label groups once per series rather than once per step. */
#ifndef TR_PROMQL_EVAL_INT_H
#define TR_PROMQL_EVAL_INT_H

#include <setjmp.h>
#include <stdint.h>

#include "promql/ast.h"
#include "promql/promql.h"

typedef struct {
    const char *n, *v;
} pq_lbl;

typedef struct {
    pq_lbl *l;
    size_t n;
} pq_lset;

/* one series of a step matrix */
typedef struct {
    pq_lset lb;
    double *v;   /* nsteps values */
    uint8_t *ok; /* present at step i? */
    int drop_name;
} pq_ser;

/* raw samples of a range vector series */
typedef struct {
    pq_lset lb;
    int64_t *t;
    double *v;
    size_t n;
    int drop_name;
} pq_raw;

typedef struct {
    pq_vtype type;
    size_t n; /* vector: series */
    pq_ser *s;
    double *sc; /* scalar: nsteps values */
    char *str;
    pq_raw *m; /* matrix (instant query of a range vector) */
    size_t nm;
} pq_val;

/* the steps an expression is evaluated at */
typedef struct {
    int64_t start, end, step;
    size_t n;
} pq_rng;

/* string -> int map (arena) */
typedef struct {
    struct pq_ment {
        const char *k;
        size_t klen;
        uint64_t h;
        int v;
    } * e;
    size_t cap, n;
} pq_map;
typedef struct {
    tsdb *db;
    tr_arena *a;
    int64_t qstart, qend; /* for @ start() / end() */
    int64_t lookback, max_samples, subq_step;
    int64_t deadline_ns;
    const volatile int *cancel;
    /* --query-max-samples as Prometheus counts it: the samples held at once (results of
     * evaluated sub-expressions, the window of the series a range function reads, the result
     * being built); checked against max_samples. */
    int64_t cur;
    /* memory guard: every slot and raw sample allocated, against hard_max */
    int64_t samples, hard_max;
    int plain_matrix; /* set while a range vector is evaluated as a query's result */
    jmp_buf jb;
    promql_err code;
    char *err;
    size_t errlen;
    char **warn, **info;
    size_t nwarn, ninfo;
    const char *q;
    size_t qlen;
    unsigned polls;
    /* results of sub-expressions that occur more than once, by printed form and steps */
    pq_map memo;
    pq_val *memo_vals;
    size_t nmemo, memo_cap;
} pq_ev;

/* Stops evaluation with an error (longjmp). */
_Noreturn void pq_fail(pq_ev *ev, promql_err code, const char *fmt, ...);
void pq_warn(pq_ev *ev, int info, const pq_node *at, const char *fmt, ...);
/* a warning as the store words it (no "PromQL warning:" prefix, no position) */
void pq_warn_raw(pq_ev *ev, const char *msg);
void pq_poll(pq_ev *ev);
void *pq_alloc(pq_ev *ev, size_t n);
void *pq_calloc(pq_ev *ev, size_t n, size_t sz);
char *pq_strdup(pq_ev *ev, const char *s);
/* memory guard: n more value slots or raw samples are allocated */
void pq_count_samples(pq_ev *ev, int64_t n);
/* fails with the too-many-samples error when n samples more than those held would not fit */
void pq_hold_check(pq_ev *ev, int64_t n);

pq_val pq_eval(pq_ev *ev, const pq_node *n, const pq_rng *r);
pq_ser *pq_new_series(pq_ev *ev, size_t n, size_t nsteps);
int64_t pq_step_time(const pq_rng *r, size_t i);

/* labels */
const char *pq_lget(const pq_lset *l, const char *name);
pq_lset pq_lset_set(pq_ev *ev, const pq_lset *l, const char *name, const char *value); /* value "" deletes */
pq_lset pq_lset_del(pq_ev *ev, const pq_lset *l, const char *name);
pq_lset pq_lset_keep(pq_ev *ev, const pq_lset *l, char **names, size_t n);
pq_lset pq_lset_without(pq_ev *ev, const pq_lset *l, char **names, size_t n, int and_name);
int pq_lset_cmp(const pq_lset *a, const pq_lset *b);
/* a byte signature of the labels (arena) */
char *pq_lset_sig(pq_ev *ev, const pq_lset *l, size_t *len);
void pq_lset_str(const pq_lset *l, char *buf, size_t cap);

/* Returns a pointer to the value slot; *added is 1 when the key is new (slot set to -1). */
int *pq_map_put(pq_ev *ev, pq_map *m, const char *k, size_t klen, int *added);
int pq_map_get(const pq_map *m, const char *k, size_t klen);

/* output builder: series keyed by label set, one value per step, duplicates are errors */
typedef struct {
    pq_map map;
    pq_ser *s;
    size_t n, cap, nsteps;
} pq_out;
void pq_out_init(pq_out *o, size_t nsteps);
/* Series index for labels (created on first use). */
int pq_out_series(pq_ev *ev, pq_out *o, const pq_lset *lb, int drop_name);
void pq_out_set(pq_ev *ev, pq_out *o, int idx, size_t step, double v);

/* parts */
pq_val pq_eval_binop(pq_ev *ev, const pq_node *n, const pq_rng *r);
pq_val pq_eval_agg(pq_ev *ev, const pq_node *n, const pq_rng *r);
pq_val pq_eval_call(pq_ev *ev, const pq_node *n, const pq_rng *r);
/* A range-vector argument (matrix selector or subquery) as raw series plus each step's
 * window end (tt) and range. */
typedef struct {
    pq_raw *s;
    size_t n;
    int64_t range;
    int64_t *tt;        /* per step: window (tt - range, tt] */
    const pq_node *sel; /* the vector selector inside a matrix selector, or NULL */
} pq_rangearg;
void pq_eval_rangearg(pq_ev *ev, const pq_node *n, const pq_rng *r, pq_rangearg *out);
/* the largest number of samples of one series inside one step's window (the buffer
 * Prometheus holds while a range function reads that series) */
int64_t pq_max_window(const pq_rangearg *ra, size_t nsteps);

/* Kahan-Neumaier summation step (Prometheus's kahanSumInc): returns the new sum, updates *c */
static inline double pq_kahan_inc(double inc, double sum, double *c) {
    double t = sum + inc;
    if (__builtin_isinf(t))
        *c = 0;
    else if (__builtin_fabs(sum) >= __builtin_fabs(inc))
        *c += (sum - t) + inc;
    else
        *c += (inc - t) + sum;
    return t;
}
double pq_quantile(double q, double *v, size_t n);
int pq_is_stale(double v);
const pq_node *pq_unwrap(const pq_node *n);

#endif
