/* Registry of tricorder's own metrics; one mutex guards the registry and every value. */
#include "selfmon.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { K_COUNTER, K_GAUGE, K_HISTOGRAM } kind;

struct tr_metric {
    struct tr_metric *next;
    kind k;
    char *name, *help, *labels;
    double value;      /* counter and gauge */
    double *bounds;    /* histogram */
    uint64_t *buckets; /* n+1, not cumulative */
    int n;
    double sum;
    uint64_t count;
};

typedef struct coll {
    struct coll *next;
    void (*fn)(void *);
    void *ctx;
} coll;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static tr_metric *all;
static coll *colls;

const double tr_latency_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                     0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const int tr_latency_buckets_n = sizeof tr_latency_buckets / sizeof tr_latency_buckets[0];

static tr_metric *add(kind k, const char *name, const char *help, const char *labels) {
    tr_metric *m = calloc(1, sizeof *m);
    if (!m) abort();
    m->k = k;
    m->name = strdup(name);
    m->help = strdup(help);
    m->labels = strdup(labels ? labels : "");
    if (!m->name || !m->help || !m->labels) abort();
    pthread_mutex_lock(&mu);
    /* append, so that series of one family keep their creation order */
    tr_metric **pp = &all;
    while (*pp)
        pp = &(*pp)->next;
    *pp = m;
    pthread_mutex_unlock(&mu);
    return m;
}

typedef struct storerr {
    struct storerr *next;
    const char *store, *kind;
    tr_metric *m;
} storerr;
static storerr *storerrs;
static pthread_mutex_t storerr_mu = PTHREAD_MUTEX_INITIALIZER;

void tr_storage_error(const char *store, const char *what) {
    pthread_mutex_lock(&storerr_mu);
    storerr *e = storerrs;
    while (e && !(strcmp(e->store, store) == 0 && strcmp(e->kind, what) == 0))
        e = e->next;
    if (!e && (e = calloc(1, sizeof *e))) {
        char lbl[256];
        snprintf(lbl, sizeof lbl, "store=\"%s\",kind=\"%s\"", store, what);
        e->store = store;
        e->kind = what;
        e->m = tr_counter_new("tricorder_storage_errors_total",
                              "Disk I/O failures of the stores (each one is logged with its errno).", lbl);
        e->next = storerrs;
        storerrs = e;
    }
    pthread_mutex_unlock(&storerr_mu);
    if (e) tr_counter_add(e->m, 1);
}

tr_metric *tr_counter_new(const char *name, const char *help, const char *labels) {
    return add(K_COUNTER, name, help, labels);
}

tr_metric *tr_gauge_new(const char *name, const char *help, const char *labels) {
    return add(K_GAUGE, name, help, labels);
}

tr_metric *tr_histogram_new(const char *name, const char *help, const char *labels, const double *bounds,
                            int n) {
    tr_metric *m = add(K_HISTOGRAM, name, help, labels);
    m->bounds = malloc(sizeof(double) * (n ? n : 1));
    m->buckets = calloc(n + 1, sizeof(uint64_t));
    if (!m->bounds || !m->buckets) abort();
    memcpy(m->bounds, bounds, sizeof(double) * n);
    m->n = n;
    return m;
}

void tr_counter_add(tr_metric *m, uint64_t v) {
    pthread_mutex_lock(&mu);
    m->value += (double)v;
    pthread_mutex_unlock(&mu);
}

void tr_gauge_set(tr_metric *m, double v) {
    pthread_mutex_lock(&mu);
    m->value = v;
    pthread_mutex_unlock(&mu);
}

void tr_gauge_add(tr_metric *m, double v) {
    pthread_mutex_lock(&mu);
    m->value += v;
    pthread_mutex_unlock(&mu);
}

void tr_histogram_observe(tr_metric *m, double v) {
    int i = 0;
    while (i < m->n && v > m->bounds[i])
        i++;
    pthread_mutex_lock(&mu);
    m->buckets[i]++;
    m->sum += v;
    m->count++;
    pthread_mutex_unlock(&mu);
}

double tr_metric_value(tr_metric *m) {
    pthread_mutex_lock(&mu);
    double v = m->value;
    pthread_mutex_unlock(&mu);
    return v;
}

void tr_selfmon_add_collector(void (*fn)(void *ctx), void *ctx) {
    coll *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->fn = fn;
    c->ctx = ctx;
    pthread_mutex_lock(&mu);
    c->next = colls;
    colls = c;
    pthread_mutex_unlock(&mu);
}

static void labels_with(tr_buf *out, const char *labels, const char *extra) {
    int has = labels && *labels;
    if (!has && !extra) return;
    tr_buf_putc(out, '{');
    if (has) tr_buf_puts(out, labels);
    if (extra) {
        if (has) tr_buf_putc(out, ',');
        tr_buf_puts(out, extra);
    }
    tr_buf_putc(out, '}');
}

void tr_selfmon_render(tr_buf *out) {
    pthread_mutex_lock(&mu);
    coll *c = colls;
    pthread_mutex_unlock(&mu);
    for (; c; c = c->next)
        c->fn(c->ctx);

    pthread_mutex_lock(&mu);
    size_t n = 0;
    for (tr_metric *m = all; m; m = m->next)
        n++;
    tr_metric **v = malloc(sizeof *v * (n ? n : 1));
    if (!v) {
        pthread_mutex_unlock(&mu);
        return;
    }
    n = 0;
    for (tr_metric *m = all; m; m = m->next)
        v[n++] = m;
    /* insertion sort by name keeps creation order within a family */
    for (size_t i = 1; i < n; i++) {
        tr_metric *x = v[i];
        size_t k = i;
        while (k > 0 && strcmp(v[k - 1]->name, x->name) > 0) {
            v[k] = v[k - 1];
            k--;
        }
        v[k] = x;
    }
    static const char *const types[] = {"counter", "gauge", "histogram"};
    char num[64];
    for (size_t i = 0; i < n; i++) {
        tr_metric *m = v[i];
        if (i == 0 || strcmp(v[i - 1]->name, m->name) != 0)
            tr_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, types[m->k]);
        if (m->k != K_HISTOGRAM) {
            tr_buf_puts(out, m->name);
            labels_with(out, m->labels, NULL);
            tr_format_double(num, sizeof num, m->value);
            tr_buf_printf(out, " %s\n", num);
            continue;
        }
        uint64_t cum = 0;
        char le[96];
        for (int b = 0; b <= m->n; b++) {
            cum += m->buckets[b];
            if (b < m->n) {
                tr_format_double(num, sizeof num, m->bounds[b]);
                snprintf(le, sizeof le, "le=\"%s\"", num);
            } else {
                snprintf(le, sizeof le, "le=\"+Inf\"");
            }
            tr_buf_printf(out, "%s_bucket", m->name);
            labels_with(out, m->labels, le);
            tr_buf_printf(out, " %llu\n", (unsigned long long)cum);
        }
        tr_format_double(num, sizeof num, m->sum);
        tr_buf_printf(out, "%s_sum", m->name);
        labels_with(out, m->labels, NULL);
        tr_buf_printf(out, " %s\n%s_count", num, m->name);
        labels_with(out, m->labels, NULL);
        tr_buf_printf(out, " %llu\n", (unsigned long long)m->count);
    }
    pthread_mutex_unlock(&mu);
    free(v);
}

void tr_selfmon_reset(void) {
    pthread_mutex_lock(&storerr_mu);
    while (storerrs) {
        storerr *e = storerrs;
        storerrs = e->next;
        free(e);
    }
    pthread_mutex_unlock(&storerr_mu);
    pthread_mutex_lock(&mu);
    while (all) {
        tr_metric *m = all;
        all = m->next;
        free(m->name);
        free(m->help);
        free(m->labels);
        free(m->bounds);
        free(m->buckets);
        free(m);
    }
    while (colls) {
        coll *c = colls;
        colls = c->next;
        free(c);
    }
    pthread_mutex_unlock(&mu);
}
