/* The rule manager: loads rule files, schedules each group on the loop, evaluates it as a
 * work-queue job, keeps the alerts' states and writes the results to the store. */
#include <glob.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/event.h>

#include "notify.h"
#include "promql/promql.h"
#include "rules.h"
#include "tmpl.h"
#include "util/clock.h"
#include "util/hash.h"
#include "util/log.h"
#include "util/selfmon.h"

#define RESOLVED_RETENTION_MS (15 * 60000)
#define OUTAGE_TOLERANCE_MS (3600000)
#define WATCH_MS 3000
#define RESEND_DELAY_MS 60000 /* Prometheus's --rules.alert.resend-delay */

enum { ST_INACTIVE, ST_PENDING, ST_FIRING };
static const char *const state_names[] = {"inactive", "pending", "firing"};

typedef struct alert {
    uint64_t fp;
    tr_rkv *labels; /* sorted by name, alertname included */
    size_t nl;
    tr_rkv *ann;
    size_t na;
    int state;
    double value;
    int64_t active_at, fired_at, resolved_at, keep_since; /* ms; 0: unset */
    int64_t last_sent_at, valid_until;
} alert;

typedef struct skey {
    char *k;
    size_t len;
} skey;

typedef struct rule {
    const tr_rule_def *def;
    alert *alerts;
    size_t nalerts;
    char *last_error;
    int health; /* 0 unknown, 1 ok, 2 err */
    int64_t last_eval_ms;
    double eval_s;
    skey *prev; /* series written by the last evaluation */
    size_t nprev;
    int restored;
} rule;

typedef struct gstats {
    char *key;
    tr_metric *evals, *failures, *iterations, *missed, *duration, *nrules;
    struct gstats *next;
} gstats;

typedef struct group {
    tr_rules *m;
    const tr_group_def *def;
    rule *rules;
    size_t nrules;
    int64_t interval_ms;
    struct event *timer;
    int busy, retired;
    int64_t next_ns, last_eval_ms;
    double eval_s;
    gstats *st;
} group;

struct tr_rules {
    tr_rules_opts o;
    char **globs;
    pthread_mutex_t mu;
    tr_ruleset rs;
    group **groups;
    size_t ngroups;
    char *last_error; /* the last failed reload */
    char *sig;        /* the files' signature (names, sizes, mtimes) for the watch */
    struct event *watch;
    gstats *stats;
    int stopped;
    tr_metric *reloads_failed, *last_reload_ok;
    tr_notifier *nt;  /* NULL: no --alertmanager-url / --alert-webhook-url */
    tr_ruleset *kept; /* rule sets of groups retired while evaluating, freed at the end */
    size_t nkept;
    char *external_url;
};

/* ---- small helpers ---- */

static int kv_cmp(const void *a, const void *b) {
    return strcmp(((const tr_rkv *)a)->name, ((const tr_rkv *)b)->name);
}

static void kvs_free(tr_rkv *kv, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(kv[i].name);
        free(kv[i].value);
    }
    free(kv);
}

static uint64_t kvs_hash(const tr_rkv *kv, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        for (const char *c = kv[i].name; *c; c++)
            h = (h ^ (uint8_t)*c) * 0x100000001b3ULL;
        h = (h ^ 0xff) * 0x100000001b3ULL;
        for (const char *c = kv[i].value; *c; c++)
            h = (h ^ (uint8_t)*c) * 0x100000001b3ULL;
        h = (h ^ 0xfe) * 0x100000001b3ULL;
    }
    return tr_mix64(h);
}

static void alert_free(alert *a) {
    kvs_free(a->labels, a->nl);
    kvs_free(a->ann, a->na);
}

static void skeys_free(skey *k, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(k[i].k);
    free(k);
}

static int skey_cmp(const void *a, const void *b) {
    const skey *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->k, y->k, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static void rule_clear(rule *r) {
    for (size_t i = 0; i < r->nalerts; i++)
        alert_free(&r->alerts[i]);
    free(r->alerts);
    free(r->last_error);
    skeys_free(r->prev, r->nprev);
    memset(r, 0, sizeof *r);
}

static tr_rkv *kvs_dup(const tr_rkv *kv, size_t n) {
    tr_rkv *c = calloc(n ? n : 1, sizeof *c);
    if (!c) abort();
    for (size_t i = 0; i < n; i++) {
        c[i].name = strdup(kv[i].name);
        c[i].value = strdup(kv[i].value);
    }
    return c;
}

/* carries a rule's state over a reload (the definition stays r's own). Lock held. */
static void rule_copy(rule *r, const rule *o) {
    r->alerts = calloc(o->nalerts ? o->nalerts : 1, sizeof *r->alerts);
    if (!r->alerts) abort();
    for (size_t i = 0; i < o->nalerts; i++) {
        r->alerts[i] = o->alerts[i];
        r->alerts[i].labels = kvs_dup(o->alerts[i].labels, o->alerts[i].nl);
        r->alerts[i].ann = kvs_dup(o->alerts[i].ann, o->alerts[i].na);
    }
    r->nalerts = o->nalerts;
    r->prev = calloc(o->nprev ? o->nprev : 1, sizeof *r->prev);
    if (!r->prev) abort();
    for (size_t i = 0; i < o->nprev; i++) {
        r->prev[i].k = malloc(o->prev[i].len ? o->prev[i].len : 1);
        if (!r->prev[i].k) abort();
        memcpy(r->prev[i].k, o->prev[i].k, o->prev[i].len);
        r->prev[i].len = o->prev[i].len;
    }
    r->nprev = o->nprev;
    r->last_error = o->last_error ? strdup(o->last_error) : NULL;
    r->health = o->health;
    r->last_eval_ms = o->last_eval_ms;
    r->eval_s = o->eval_s;
    r->restored = o->restored;
}

static void fmt_time(int64_t ms, char *out, size_t cap) {
    if (ms == 0) {
        snprintf(out, cap, "0001-01-01T00:00:00Z");
        return;
    }
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    int frac = (int)(ms % 1000);
    size_t l = strlen(out);
    if (frac) {
        snprintf(out + l, cap - l, ".%03d", frac);
        l = strlen(out);
        while (out[l - 1] == '0')
            out[--l] = 0;
    }
    snprintf(out + l, cap - l, "Z");
}

/* strconv.FormatFloat(v, 'e', -1, 64) */
static void fmt_e(double v, char *out, size_t cap) {
    if (isnan(v)) {
        snprintf(out, cap, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    int p;
    for (p = 1; p < 17; p++) {
        snprintf(out, cap, "%.*e", p - 1, v);
        if (strtod(out, NULL) == v) return;
    }
    snprintf(out, cap, "%.16e", v);
}

/* ---- self-metrics, one set per group key, kept across reloads ---- */

static gstats *stats_for(tr_rules *m, const tr_group_def *g) {
    char key[1200];
    snprintf(key, sizeof key, "%s;%s", g->file, g->name);
    for (gstats *s = m->stats; s; s = s->next)
        if (!strcmp(s->key, key)) return s;
    gstats *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->key = strdup(key);
    char lbl[1400], fq[600], gq[600];
    /* label values quoted for the text format */
    size_t o = 0;
    for (const char *c = key; *c && o + 3 < sizeof fq; c++) {
        if (*c == '"' || *c == '\\') fq[o++] = '\\';
        fq[o++] = *c == '\n' ? ' ' : *c;
    }
    fq[o] = 0;
    (void)gq;
    snprintf(lbl, sizeof lbl, "rule_group=\"%s\"", fq);
    s->evals =
        tr_counter_new("tricorder_rule_evaluations_total", "The total number of rule evaluations.", lbl);
    s->failures = tr_counter_new("tricorder_rule_evaluation_failures_total",
                                 "The total number of rule evaluation failures.", lbl);
    s->iterations = tr_counter_new(
        "tricorder_rule_group_iterations_total",
        "The total number of scheduled rule group evaluations, whether executed or missed.", lbl);
    s->missed = tr_counter_new(
        "tricorder_rule_group_iterations_missed_total",
        "The total number of rule group evaluations missed due to slow rule group evaluation.", lbl);
    s->duration = tr_gauge_new("tricorder_rule_group_last_duration_seconds",
                               "The duration of the last rule group evaluation.", lbl);
    s->nrules = tr_gauge_new("tricorder_rule_group_rules", "The number of rules.", lbl);
    s->next = m->stats;
    m->stats = s;
    return s;
}

/* ---- evaluation ---- */

typedef struct qctx {
    tr_rules *m;
    int64_t t;
    const volatile int *cancel;
} qctx;

static promql_opts qopts(const tr_rules *m, const volatile int *cancel) {
    return (promql_opts){.lookback_ms = m->o.query_lookback_ms,
                         .max_samples = m->o.query_max_samples,
                         .timeout_ms = m->o.query_timeout_ms,
                         .cancel = cancel};
}

static int tmpl_query(void *ctx, const char *q, promql_result *out, char *err, size_t errlen) {
    qctx *c = ctx;
    promql_opts po = qopts(c->m, c->cancel);
    return promql_query_instant(c->m->o.db, q, strlen(q), c->t, &po, out, err, errlen) == PROMQL_OK ? 0 : -1;
}

/* the series to append, built under the lock and written after */
typedef struct outs {
    tsdb_label *l;
    size_t n;
    double v;
} outs;
typedef struct outbuf {
    outs *s;
    size_t n, cap;
    skey *keys; /* this evaluation's series of the rule being built */
    size_t nkeys, kcap;
    tr_notice *notices; /* alerts to send, handed to the notifier on the loop */
    size_t nnotices, ncap;
} outbuf;

static void key_of(const tsdb_label *l, size_t n, skey *k) {
    tr_buf b;
    tr_buf_init(&b, 0);
    for (size_t i = 0; i < n; i++) {
        tr_buf_append(&b, l[i].name, strlen(l[i].name) + 1);
        tr_buf_append(&b, l[i].value, strlen(l[i].value) + 1);
    }
    k->k = b.data;
    k->len = b.len;
}

static int lbl_cmp(const void *a, const void *b) {
    return strcmp(((const tsdb_label *)a)->name, ((const tsdb_label *)b)->name);
}

/* copies the labels (strings too) into the out buffer */
static void out_add(outbuf *o, const tsdb_label *l, size_t n, double v, int track) {
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 16;
        o->s = realloc(o->s, o->cap * sizeof *o->s);
        if (!o->s) abort();
    }
    tsdb_label *c = calloc(n ? n : 1, sizeof *c);
    if (!c) abort();
    for (size_t i = 0; i < n; i++) {
        c[i].name = strdup(l[i].name);
        c[i].value = strdup(l[i].value);
    }
    qsort(c, n, sizeof *c, lbl_cmp);
    o->s[o->n++] = (outs){c, n, v};
    if (track) {
        if (o->nkeys == o->kcap) {
            o->kcap = o->kcap ? o->kcap * 2 : 16;
            o->keys = realloc(o->keys, o->kcap * sizeof *o->keys);
            if (!o->keys) abort();
        }
        key_of(c, n, &o->keys[o->nkeys++]);
    }
}

static void out_free(outbuf *o) {
    for (size_t i = 0; i < o->n; i++) {
        for (size_t j = 0; j < o->s[i].n; j++) {
            free((char *)o->s[i].l[j].name);
            free((char *)o->s[i].l[j].value);
        }
        free(o->s[i].l);
    }
    free(o->s);
    skeys_free(o->keys, o->nkeys);
    for (size_t i = 0; i < o->nnotices; i++)
        tr_notice_free(&o->notices[i]);
    free(o->notices);
}

static char *kv_json(const tr_rkv *kv, size_t n) {
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_json j;
    tr_json_init(&j, &b);
    tr_json_obj_open(&j);
    for (size_t i = 0; i < n; i++) {
        tr_json_key(&j, kv[i].name);
        tr_json_str(&j, kv[i].value);
    }
    tr_json_obj_close(&j);
    return b.data ? b.data : strdup("{}");
}

/* Prometheus's link to the expression: <external URL>/graph?g0.expr=…&g0.tab=1 */
static char *generator_url(const char *base, const char *expr) {
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_buf_printf(&b, "%s/graph?g0.expr=", base ? base : "");
    for (const unsigned char *c = (const unsigned char *)expr; *c; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            strchr("-_.~", *c))
            tr_buf_putc(&b, (char)*c);
        else if (*c == ' ')
            tr_buf_putc(&b, '+');
        else
            tr_buf_printf(&b, "%%%02X", *c);
    }
    tr_buf_puts(&b, "&g0.tab=1");
    return b.data;
}

/* Prometheus's sendAlerts: firing alerts every resend delay, a resolution once. Lock held. */
static void collect_notices(group *g, rule *r, int64_t ts, outbuf *o) {
    if (!g->m->nt) return;
    for (size_t i = 0; i < r->nalerts; i++) {
        alert *a = &r->alerts[i];
        if (a->state == ST_PENDING) continue;
        int resolved_since = a->resolved_at > a->last_sent_at;
        if (!resolved_since && (a->state == ST_INACTIVE || a->last_sent_at + RESEND_DELAY_MS >= ts)) continue;
        a->last_sent_at = ts;
        int64_t delta = g->interval_ms > RESEND_DELAY_MS ? g->interval_ms : RESEND_DELAY_MS;
        a->valid_until = ts + 4 * delta;
        if (o->nnotices == o->ncap) {
            o->ncap = o->ncap ? o->ncap * 2 : 8;
            o->notices = realloc(o->notices, o->ncap * sizeof *o->notices);
            if (!o->notices) abort();
        }
        o->notices[o->nnotices++] = (tr_notice){
            .labels_json = kv_json(a->labels, a->nl),
            .annotations_json = kv_json(a->ann, a->na),
            .generator_url = generator_url(g->m->o.external_url, r->def->expr),
            .starts_ms = a->fired_at,
            .ends_ms = a->resolved_at ? a->resolved_at : a->valid_until,
            .resolved = a->state == ST_INACTIVE,
            .fp = a->fp,
        };
    }
}

/* The rule's series of this evaluation become its `prev`; the vanished ones get a stale
 * marker. Under the lock. */
static void finish_series(rule *r, outbuf *o) {
    if (o->nkeys) qsort(o->keys, o->nkeys, sizeof *o->keys, skey_cmp);
    for (size_t i = 0; i < r->nprev; i++) {
        if (o->nkeys && bsearch(&r->prev[i], o->keys, o->nkeys, sizeof *o->keys, skey_cmp)) continue;
        /* decode the key back into labels */
        tsdb_label l[256];
        size_t n = 0;
        const char *p = r->prev[i].k, *end = p + r->prev[i].len;
        while (p < end && n < 256) {
            l[n].name = p;
            p += strlen(p) + 1;
            l[n].value = p;
            p += strlen(p) + 1;
            n++;
        }
        out_add(o, l, n, tsdb_stale_nan(), 0);
    }
    skeys_free(r->prev, r->nprev);
    r->prev = o->keys;
    r->nprev = o->nkeys;
    o->keys = NULL;
    o->nkeys = o->kcap = 0;
}

static void set_error(rule *r, const char *msg) {
    free(r->last_error);
    r->last_error = msg ? strdup(msg) : NULL;
    r->health = msg ? 2 : 1;
}

static void eval_recording(group *g, rule *r, const promql_result *res, int64_t ts, outbuf *o, char *err,
                           size_t errlen) {
    const tr_rule_def *d = r->def;
    size_t n = res->type == PROMQL_SCALAR ? 1 : res->nseries;
    if (g->def->limit > 0 && (int64_t)n > g->def->limit) {
        snprintf(err, errlen, "exceeded limit of %lld with %zu series", (long long)g->def->limit, n);
        return;
    }
    size_t first = o->n;
    for (size_t i = 0; i < n; i++) {
        tsdb_label l[160];
        size_t k = 0;
        const promql_series *s = res->type == PROMQL_SCALAR ? NULL : &res->series[i];
        l[k++] = (tsdb_label){"__name__", d->name};
        for (size_t j = 0; s && j < s->nlabels && k < 128; j++) {
            if (!strcmp(s->labels[j].name, "__name__")) continue;
            int over = 0;
            for (size_t q = 0; q < d->nlabels; q++)
                over |= !strcmp(d->labels[q].name, s->labels[j].name);
            if (!over) l[k++] = (tsdb_label){s->labels[j].name, s->labels[j].value};
        }
        for (size_t q = 0; q < d->nlabels && k < 160; q++)
            if (*d->labels[q].value) l[k++] = (tsdb_label){d->labels[q].name, d->labels[q].value};
        double v = s ? (s->n ? s->v[0] : NAN) : res->scalar;
        out_add(o, l, k, v, 1);
    }
    /* duplicates after the rule's labels: o->keys holds this rule's series only */
    (void)first;
    (void)ts;
    if (o->nkeys > 1) qsort(o->keys, o->nkeys, sizeof *o->keys, skey_cmp);
    for (size_t i = 1; i < o->nkeys; i++)
        if (skey_cmp(&o->keys[i - 1], &o->keys[i]) == 0) {
            snprintf(err, errlen,
                     "vector contains metrics with the same labelset after applying rule labels");
            return;
        }
}

static alert *find_alert(rule *r, uint64_t fp) {
    for (size_t i = 0; i < r->nalerts; i++)
        if (r->alerts[i].fp == fp) return &r->alerts[i];
    return NULL;
}

static void expand_all(tr_rules *m, const tr_rule_def *d, const tr_tmpl_kv *sl, size_t snl, double v,
                       qctx *qc, tr_rkv **labels, size_t *nl, tr_rkv **ann, size_t *na) {
    char tname[600], err[700];
    snprintf(tname, sizeof tname, "__alert_%s", d->name);
    tr_tmpl_data td = {.labels = sl,
                       .nlabels = snl,
                       .external_url = m->o.external_url,
                       .value = v,
                       .query = tmpl_query,
                       .query_ctx = qc};
    /* labels: the sample's minus __name__, then the rule's (expanded), then alertname */
    tr_rkv *L = calloc(snl + d->nlabels + 1, sizeof *L);
    size_t k = 0;
    for (size_t i = 0; i < snl; i++) {
        if (!strcmp(sl[i].name, "__name__")) continue;
        L[k].name = strdup(sl[i].name);
        L[k++].value = strdup(sl[i].value);
    }
    for (size_t q = 0; q < d->nlabels + 1; q++) {
        const char *name = q < d->nlabels ? d->labels[q].name : "alertname";
        char *val;
        if (q < d->nlabels) {
            val = tr_tmpl_expand(tname, d->labels[q].value, &td, err, sizeof err);
            if (!val) {
                char *e = malloc(strlen(err) + 40);
                sprintf(e, "<error expanding template: %s>", err);
                val = e;
            }
        } else {
            val = strdup(d->name);
        }
        size_t j;
        for (j = 0; j < k; j++)
            if (!strcmp(L[j].name, name)) break;
        if (j < k) {
            free(L[j].value);
            if (*val)
                L[j].value = val;
            else { /* an empty value removes the label */
                free(val);
                free(L[j].name);
                L[j] = L[--k];
            }
        } else if (*val) {
            L[k].name = strdup(name);
            L[k++].value = val;
        } else {
            free(val);
        }
    }
    qsort(L, k, sizeof *L, kv_cmp);
    *labels = L;
    *nl = k;
    tr_rkv *A = calloc(d->nannotations ? d->nannotations : 1, sizeof *A);
    for (size_t q = 0; q < d->nannotations; q++) {
        char *val = tr_tmpl_expand(tname, d->annotations[q].value, &td, err, sizeof err);
        if (!val) {
            val = malloc(strlen(err) + 40);
            sprintf(val, "<error expanding template: %s>", err);
        }
        A[q].name = strdup(d->annotations[q].name);
        A[q].value = val;
    }
    qsort(A, d->nannotations, sizeof *A, kv_cmp);
    *ann = A;
    *na = d->nannotations;
}

/* Restores `for` state from ALERTS_FOR_STATE, once after a start (Prometheus's
 * RestoreForState). Called with the lock held. */
/* The query of ALERTS_FOR_STATE for a rule's restore, over the outage tolerance; run without
 * the lock. Returns 0 and *out, or -1 (logged). */
static int query_for_state(group *g, const rule *r, int64_t ts, const volatile int *cancel,
                           promql_result *out) {
    char q[1200], esc[600];
    size_t e = 0;
    for (const char *c = r->def->name; *c && e + 3 < sizeof esc; c++) {
        if (*c == '"' || *c == '\\') esc[e++] = '\\';
        esc[e++] = *c;
    }
    esc[e] = 0;
    snprintf(q, sizeof q, "ALERTS_FOR_STATE{alertname=\"%s\"}[%llds]", esc,
             (long long)(OUTAGE_TOLERANCE_MS / 1000));
    promql_opts po = qopts(g->m, cancel);
    char err[512];
    if (promql_query_instant(g->m->o.db, q, strlen(q), ts, &po, out, err, sizeof err) != PROMQL_OK) {
        TR_WARN("rules: cannot restore for state", "rule=%s error=%s", r->def->name, err);
        return -1;
    }
    return 0;
}

/* Restores `for` state from ALERTS_FOR_STATE (`res`, NULL when it could not be read), once
 * after a start (Prometheus's RestoreForState). Lock held. */
static void restore_for_state(rule *r, int64_t ts, const promql_result *rp) {
    r->restored = 1;
    if (!rp || !r->def->for_ms || !r->nalerts) return;
    const promql_result res = *rp;
    for (size_t i = 0; i < r->nalerts; i++) {
        alert *a = &r->alerts[i];
        if (a->state != ST_PENDING) continue;
        for (size_t s = 0; s < res.nseries; s++) {
            const promql_series *ps = &res.series[s];
            /* same labels, __name__ aside */
            size_t j = 0, k = 0;
            int same = 1;
            while (j < ps->nlabels || k < a->nl) {
                if (j < ps->nlabels && !strcmp(ps->labels[j].name, "__name__")) {
                    j++;
                    continue;
                }
                if (j >= ps->nlabels || k >= a->nl || strcmp(ps->labels[j].name, a->labels[k].name) ||
                    strcmp(ps->labels[j].value, a->labels[k].value)) {
                    same = 0;
                    break;
                }
                j++;
                k++;
            }
            if (!same || !ps->n) continue;
            int64_t down_at = ps->t[ps->n - 1];
            double v = ps->v[ps->n - 1];
            if (tsdb_is_stale_nan(v) || isnan(v)) continue;
            int64_t restored = (int64_t)v * 1000;
            int64_t down = ts - down_at, spent = down_at - restored, remaining = r->def->for_ms - spent;
            /* Prometheus's RestoreForState with a grace period of 0 (--rules.alert.for-grace-period=0s):
             * the time spent pending before the restart counts, the time down does not. An
             * alert that was firing keeps its activeAt and fires again at once. (Prometheus's
             * default grace of 10m would start alerts with a shorter `for` over.) */
            if (remaining > 0) restored += down;
            a->active_at = restored;
            TR_INFO("rules: restored for state", "rule=%s active_at=%lld", r->def->name, (long long)restored);
            if (ts - a->active_at >= r->def->for_ms) {
                a->state = ST_FIRING;
                a->fired_at = ts;
            }
            break;
        }
    }
}

/* one result sample of an alerting rule, its labels and annotations expanded */
typedef struct prepared {
    tr_rkv *L, *A;
    size_t nl, na;
    uint64_t fp;
    double v;
} prepared;

static void prepared_free(prepared *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        kvs_free(p[i].L, p[i].nl);
        kvs_free(p[i].A, p[i].na);
    }
    free(p);
}

/* Expands the templates of every sample (they may run queries): no lock, as it reads only the
 * rule's definition. Returns the samples, or NULL with err (duplicate label sets). */
static prepared *prepare_alerts(group *g, const tr_rule_def *d, const promql_result *res, int64_t ts,
                                const volatile int *cancel, size_t *np, char *err, size_t errlen) {
    qctx qc = {.m = g->m, .t = ts, .cancel = cancel};
    size_t n = res->type == PROMQL_SCALAR ? 1 : res->nseries;
    prepared *p = calloc(n ? n : 1, sizeof *p);
    if (!p) abort();
    for (size_t i = 0; i < n; i++) {
        const promql_series *s = res->type == PROMQL_SCALAR ? NULL : &res->series[i];
        tr_tmpl_kv sl[160];
        size_t snl = 0;
        for (size_t j = 0; s && j < s->nlabels && j < 160; j++)
            sl[snl++] = (tr_tmpl_kv){s->labels[j].name, s->labels[j].value};
        p[i].v = s ? (s->n ? s->v[0] : NAN) : res->scalar;
        expand_all(g->m, d, sl, snl, p[i].v, &qc, &p[i].L, &p[i].nl, &p[i].A, &p[i].na);
        p[i].fp = kvs_hash(p[i].L, p[i].nl);
    }
    /* as Prometheus, before any state changes */
    for (size_t i = 0; i < n; i++)
        for (size_t q = i + 1; q < n; q++)
            if (p[i].fp == p[q].fp) {
                snprintf(err, errlen,
                         "vector contains metrics with the same labelset after applying alert labels");
                prepared_free(p, n);
                return NULL;
            }
    *np = n;
    return p;
}

/* Applies an evaluation's samples to the rule's alerts (takes ownership of p). Lock held. */
static void eval_alerting(group *g, rule *r, prepared *p, size_t n, int64_t ts, outbuf *o, char *err,
                          size_t errlen, const promql_result *for_state) {
    const tr_rule_def *d = r->def;
    uint64_t *fps = calloc(n ? n : 1, sizeof *fps);
    size_t nfps = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t fp = p[i].fp;
        double v = p[i].v;
        fps[nfps++] = fp;
        alert *a = find_alert(r, fp);
        if (a && a->state != ST_INACTIVE) {
            a->value = v;
            kvs_free(a->ann, a->na);
            a->ann = p[i].A;
            a->na = p[i].na;
            kvs_free(p[i].L, p[i].nl);
            continue;
        }
        if (a) { /* a resolved one comes back: a new alert in its place */
            alert_free(a);
            *a = r->alerts[--r->nalerts];
        }
        alert *na_ = realloc(r->alerts, (r->nalerts + 1) * sizeof *r->alerts);
        if (!na_) abort();
        r->alerts = na_;
        r->alerts[r->nalerts++] = (alert){.fp = fp,
                                          .labels = p[i].L,
                                          .nl = p[i].nl,
                                          .ann = p[i].A,
                                          .na = p[i].na,
                                          .state = ST_PENDING,
                                          .value = v,
                                          .active_at = ts};
    }
    free(p);
    size_t active = 0;
    for (size_t i = 0; i < r->nalerts;) {
        alert *a = &r->alerts[i];
        int present = 0, keep = 0;
        for (size_t q = 0; q < nfps && !present; q++)
            present = fps[q] == a->fp;
        if (!present) {
            if (a->state == ST_FIRING && d->keep_firing_for_ms > 0) {
                if (!a->keep_since) a->keep_since = ts;
                keep = ts - a->keep_since < d->keep_firing_for_ms;
            }
            if (a->state == ST_PENDING || (a->resolved_at && ts - a->resolved_at > RESOLVED_RETENTION_MS)) {
                alert_free(a);
                r->alerts[i] = r->alerts[--r->nalerts];
                continue;
            }
            if (a->state != ST_INACTIVE && !keep) {
                a->state = ST_INACTIVE;
                a->resolved_at = ts;
            }
            if (!keep) {
                i++;
                continue;
            }
        } else {
            a->keep_since = 0;
        }
        active++;
        if (a->state == ST_PENDING && ts - a->active_at >= d->for_ms) {
            a->state = ST_FIRING;
            a->fired_at = ts;
        }
        i++;
    }
    free(fps);
    if (g->def->limit > 0 && (int64_t)active > g->def->limit) {
        for (size_t i = 0; i < r->nalerts; i++)
            alert_free(&r->alerts[i]);
        r->nalerts = 0;
        snprintf(err, errlen, "exceeded limit of %lld with %zu alerts", (long long)g->def->limit, active);
        return;
    }
    if (!r->restored) restore_for_state(r, ts, for_state);
    collect_notices(g, r, ts, o);
    int64_t st = ts - g->def->query_offset_ms;
    for (size_t i = 0; i < r->nalerts; i++) {
        alert *a = &r->alerts[i];
        if (a->state == ST_INACTIVE) continue;
        tsdb_label l[170];
        size_t k = 0;
        l[k++] = (tsdb_label){"__name__", "ALERTS"};
        l[k++] = (tsdb_label){"alertstate", state_names[a->state]};
        for (size_t j = 0; j < a->nl && k < 170; j++)
            if (strcmp(a->labels[j].name, "alertstate"))
                l[k++] = (tsdb_label){a->labels[j].name, a->labels[j].value};
        out_add(o, l, k, 1, 1);
        l[0].value = "ALERTS_FOR_STATE";
        l[1] = l[--k];
        out_add(o, l, k, (double)(a->active_at / 1000), 1);
    }
    (void)st;
}

typedef struct job {
    group *g;
    int64_t ts;
    tr_notice *notices;
    size_t nnotices;
} job;

static void eval_group(group *g, int64_t ts, const volatile int *cancel, job *jb) {
    tr_rules *m = g->m;
    int64_t t0 = tr_mono_ms();
    outbuf o = {0};
    int64_t qt = ts - g->def->query_offset_ms;
    for (size_t i = 0; i < g->nrules; i++) {
        if (cancel && *cancel) break;
        rule *r = &g->rules[i];
        int64_t r0 = tr_mono_ms();
        promql_opts po = qopts(m, cancel);
        promql_result res;
        char err[1024] = "";
        promql_err pe =
            promql_query_instant(m->o.db, r->def->expr, strlen(r->def->expr), qt, &po, &res, err, sizeof err);
        if (g->st) tr_counter_add(g->st->evals, 1);
        if (pe == PROMQL_OK && res.type != PROMQL_VECTOR && res.type != PROMQL_SCALAR) {
            snprintf(err, sizeof err, "rule result is not a vector or scalar");
            pe = PROMQL_ERR_EXECUTION;
            promql_result_free(&res);
        }
        /* the slow parts without the lock: templates (and their queries), the restore query */
        prepared *prep = NULL;
        size_t nprep = 0;
        promql_result fs;
        int have_fs = 0;
        if (pe == PROMQL_OK && r->def->alert) {
            prep = prepare_alerts(g, r->def, &res, qt, cancel, &nprep, err, sizeof err);
            if (prep && nprep && !r->restored && r->def->for_ms)
                have_fs = query_for_state(g, r, qt, cancel, &fs) == 0;
        }
        pthread_mutex_lock(&m->mu);
        if (pe == PROMQL_OK) {
            size_t first = o.n;
            if (r->def->alert) {
                if (prep) eval_alerting(g, r, prep, nprep, qt, &o, err, sizeof err, have_fs ? &fs : NULL);
            } else {
                eval_recording(g, r, &res, qt, &o, err, sizeof err);
            }
            if (have_fs) promql_result_free(&fs);
            promql_result_free(&res);
            if (*err) { /* nothing of this rule is written */
                for (size_t q = first; q < o.n; q++) {
                    for (size_t j = 0; j < o.s[q].n; j++) {
                        free((char *)o.s[q].l[j].name);
                        free((char *)o.s[q].l[j].value);
                    }
                    free(o.s[q].l);
                }
                o.n = first;
                skeys_free(o.keys, o.nkeys);
                o.keys = NULL;
                o.nkeys = o.kcap = 0;
            }
        }
        if (*err) {
            if (g->st) tr_counter_add(g->st->failures, 1);
            TR_WARN_LIMITED(r->def->name, "rules: evaluation failed", "group=%s rule=%s error=%s",
                            g->def->name, r->def->name, err);
        }
        if (!*err) {
            finish_series(r, &o);
        } else { /* as Prometheus: a failed evaluation leaves the rule's series alone */
            skeys_free(o.keys, o.nkeys);
            o.keys = NULL;
            o.nkeys = o.kcap = 0;
        }
        set_error(r, *err ? err : NULL);
        r->last_eval_ms = tr_now_ms();
        r->eval_s = (double)(tr_mono_ms() - r0) / 1000;
        pthread_mutex_unlock(&m->mu);
    }
    if (o.n) {
        tsdb_appender *ap = tsdb_appender_begin(m->o.db);
        if (ap) {
            for (size_t i = 0; i < o.n; i++)
                tsdb_appender_add(ap, o.s[i].l, o.s[i].n, qt, o.s[i].v);
            tsdb_appender_commit(ap, NULL, NULL);
        }
    }
    if (jb) {
        jb->notices = o.notices;
        jb->nnotices = o.nnotices;
        o.notices = NULL;
        o.nnotices = 0;
    }
    out_free(&o);
    pthread_mutex_lock(&m->mu);
    g->last_eval_ms = tr_now_ms();
    g->eval_s = (double)(tr_mono_ms() - t0) / 1000;
    pthread_mutex_unlock(&m->mu);
    if (g->st) tr_gauge_set(g->st->duration, g->eval_s);
}

static void group_free(group *g) {
    if (!g) return;
    if (g->timer) event_free(g->timer);
    for (size_t i = 0; i < g->nrules; i++)
        rule_clear(&g->rules[i]);
    free(g->rules);
    free(g);
}

static void job_fn(void *ctx, const volatile int *cancel) {
    job *j = ctx;
    eval_group(j->g, j->ts, cancel, j);
}

static void job_done(void *ctx, int cancelled) {
    job *j = ctx;
    group *g = j->g;
    g->busy = 0;
    if (j->nnotices && g->m->nt && !g->m->stopped) {
        tr_notifier_send(g->m->nt, j->notices, j->nnotices);
    } else {
        for (size_t i = 0; i < j->nnotices; i++)
            tr_notice_free(&j->notices[i]);
        free(j->notices);
    }
    if (g->retired) {
        /* the manager no longer lists it; its def belongs to a freed ruleset only if it was
         * copied: retired groups keep their own ruleset, see swap_in */
        group_free(g);
    }
    free(j);
}

/* the group's next aligned evaluation time after `now` (Prometheus: an offset from the
 * group's hash within the interval) */
/* xxHash64 (seed 0), written from its specification: Prometheus hashes label sets with it */
static uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static uint64_t rd64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static uint64_t xx_round(uint64_t acc, uint64_t in) {
    static const uint64_t P1 = 11400714785074694791ULL, P2 = 14029467366897019727ULL;
    return rotl64(acc + in * P2, 31) * P1;
}
uint64_t tr_rules_xxhash64(const void *data, size_t len);
uint64_t tr_rules_xxhash64(const void *data, size_t len) {
    static const uint64_t P1 = 11400714785074694791ULL, P2 = 14029467366897019727ULL,
                          P3 = 1609587929392839161ULL, P4 = 9650029242287828579ULL,
                          P5 = 2870177450012600261ULL;
    const uint8_t *p = data, *end = p + len;
    uint64_t h;
    if (len >= 32) {
        uint64_t v1 = P1 + P2, v2 = P2, v3 = 0, v4 = 0 - P1;
        while (end - p >= 32) {
            v1 = xx_round(v1, rd64(p));
            v2 = xx_round(v2, rd64(p + 8));
            v3 = xx_round(v3, rd64(p + 16));
            v4 = xx_round(v4, rd64(p + 24));
            p += 32;
        }
        h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
        uint64_t v[4] = {v1, v2, v3, v4};
        for (int i = 0; i < 4; i++)
            h = (h ^ xx_round(0, v[i])) * P1 + P4;
    } else {
        h = P5;
    }
    h += (uint64_t)len;
    while (end - p >= 8) {
        h ^= xx_round(0, rd64(p));
        h = rotl64(h, 27) * P1 + P4;
        p += 8;
    }
    if (end - p >= 4) {
        uint64_t k = (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
        h ^= k * P1;
        h = rotl64(h, 23) * P2 + P3;
        p += 4;
    }
    while (p < end) {
        h ^= (uint64_t)*p++ * P5;
        h = rotl64(h, 11) * P1;
    }
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

/* The group's next evaluation time (ns) after `now_ns`, as Prometheus's EvalTimestamp: an
 * offset within the interval from the hash of the label set {file, name}, so that the same
 * group in Prometheus and in tricorder is evaluated at the same instants. */
static int64_t next_tick(const group *g, int64_t now_ns) {
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_buf_printf(&b, "file%c%s%cname%c%s%c", 0xff, g->def->file, 0xff, 0xff, g->def->name, 0xff);
    uint64_t h = tr_rules_xxhash64(b.data ? b.data : "", b.len);
    tr_buf_free(&b);
    int64_t iv = g->interval_ms * 1000000, off = (int64_t)(h % (uint64_t)iv);
    int64_t adj = now_ns - off, base = adj - (adj % iv);
    int64_t t = base + off;
    while (t <= now_ns)
        t += iv;
    return t;
}

static void arm(group *g) {
    int64_t d = (g->next_ns - tr_now_ns()) / 1000;
    if (d < 0) d = 0;
    struct timeval tv = {(time_t)(d / 1000000), (suseconds_t)(d % 1000000)};
    evtimer_add(g->timer, &tv);
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
    group *g = arg;
    tr_rules *m = g->m;
    if (m->stopped || g->retired) return;
    int64_t tns = g->next_ns;
    if (!tsdb_ready(m->o.db)) { /* the WAL is being replayed: nothing to read or restore yet */
        g->next_ns = next_tick(g, tns);
        arm(g);
        return;
    }
    if (g->st) tr_counter_add(g->st->iterations, 1);
    /* ticks the loop slept through are missed iterations, as is one while the last still runs */
    int64_t iv = g->interval_ms * 1000000;
    int64_t missed = (tr_now_ns() - tns) / iv;
    if (missed > 0) {
        if (g->st) tr_counter_add(g->st->missed, (uint64_t)missed);
        if (g->st) tr_counter_add(g->st->iterations, (uint64_t)missed);
        tns += missed * iv;
    }
    int64_t ts = tns / 1000000; /* samples carry milliseconds, truncated as Prometheus does */
    if (g->busy) {
        if (g->st) tr_counter_add(g->st->missed, 1);
    } else {
        job *j = malloc(sizeof *j);
        if (j) {
            j->g = g;
            j->ts = ts;
            j->notices = NULL;
            j->nnotices = 0;
            g->busy = 1;
            if (!tr_workq_submit(m->o.wq, job_fn, job_done, j)) {
                g->busy = 0;
                free(j);
                if (g->st) tr_counter_add(g->st->missed, 1);
                TR_WARN_LIMITED(g->def->name, "rules: work queue full, evaluation skipped", "group=%s",
                                g->def->name);
            }
        }
    }
    g->next_ns = next_tick(g, tns);
    arm(g);
}

/* ---- loading ---- */

static int load_files(tr_rules *m, tr_ruleset *rs, tr_buf *errs, char **unused) {
    int nerr = 0;
    (void)unused;
    if (m->o.nglobs == 0 && !m->o.no_default)
        nerr += tr_rules_parse(tr_default_rules_name, tr_default_rules, tr_default_rules_len, rs, errs);
    for (size_t i = 0; i < m->o.nglobs; i++) {
        glob_t gl;
        int rc = glob(m->globs[i], 0, NULL, &gl);
        if (rc == GLOB_NOMATCH) continue; /* as Prometheus: a glob matching nothing is no error */
        if (rc) {
            tr_buf_printf(errs, "%s: invalid glob\n", m->globs[i]);
            nerr++;
            continue;
        }
        for (size_t k = 0; k < gl.gl_pathc; k++)
            nerr += tr_rules_parse_file(gl.gl_pathv[k], rs, errs);
        globfree(&gl);
    }
    return nerr;
}

static int same_rule(const tr_rule_def *a, const tr_rule_def *b) {
    if (a->alert != b->alert || strcmp(a->name, b->name) || strcmp(a->expr, b->expr) ||
        a->nlabels != b->nlabels)
        return 0;
    for (size_t i = 0; i < a->nlabels; i++)
        if (strcmp(a->labels[i].name, b->labels[i].name) || strcmp(a->labels[i].value, b->labels[i].value))
            return 0;
    return 1;
}

/* Builds groups for rs, carrying over the state of rules that are unchanged (same group,
 * name, expression and labels), and swaps them in. Loop thread. */
static void swap_in(tr_rules *m, tr_ruleset *rs, int first) {
    group **ng = calloc(rs->ngroups ? rs->ngroups : 1, sizeof *ng);
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < rs->ngroups; i++) {
        group *g = calloc(1, sizeof *g);
        g->m = m;
        g->def = &rs->groups[i];
        g->interval_ms = g->def->interval_ms > 0
                             ? g->def->interval_ms
                             : (m->o.default_interval_ms > 0 ? m->o.default_interval_ms : 60000);
        g->nrules = g->def->nrules;
        g->rules = calloc(g->nrules ? g->nrules : 1, sizeof *g->rules);
        g->st = stats_for(m, g->def);
        if (g->st) tr_gauge_set(g->st->nrules, (double)g->nrules);
        group *old = NULL;
        for (size_t k = 0; k < m->ngroups && !old; k++)
            if (!strcmp(m->groups[k]->def->name, g->def->name) &&
                !strcmp(m->groups[k]->def->file, g->def->file))
                old = m->groups[k];
        for (size_t j = 0; j < g->nrules; j++) {
            rule *r = &g->rules[j];
            r->def = &g->def->rules[j];
            r->restored = !first; /* `for` state comes back from the store only after a start */
            for (size_t k = 0; old && k < old->nrules; k++) {
                rule *o = &old->rules[k];
                if (o->def && same_rule(o->def, r->def)) {
                    /* a copy: the old group's evaluation may still be running */
                    rule_copy(r, o);
                    break;
                }
            }
        }
        g->timer = evtimer_new(m->o.base, on_tick, g);
        g->next_ns = next_tick(g, tr_now_ns());
        ng[i] = g;
    }
    group **old = m->groups;
    size_t nold = m->ngroups;
    tr_ruleset ors = m->rs;
    m->groups = ng;
    m->ngroups = rs->ngroups;
    m->rs = *rs;
    pthread_mutex_unlock(&m->mu);
    for (size_t i = 0; i < m->ngroups; i++)
        arm(m->groups[i]);
    int busy = 0;
    for (size_t i = 0; i < nold; i++) {
        if (old[i]->busy) {
            /* its job still reads its defs: keep the old ruleset alive (leaked on purpose
             * only in this rare case) and free the group when the job is done */
            old[i]->retired = 1;
            evtimer_del(old[i]->timer);
            busy = 1;
        } else {
            group_free(old[i]);
        }
    }
    free(old);
    if (!busy) {
        tr_ruleset_free(&ors);
    } else { /* a running evaluation reads it: freed with the manager */
        tr_ruleset *k = realloc(m->kept, (m->nkept + 1) * sizeof *k);
        if (k) {
            m->kept = k;
            m->kept[m->nkept++] = ors;
        }
    }
}

static void start_watch(tr_rules *m);
static char *signature(tr_rules *m);

tr_rules *tr_rules_new(const tr_rules_opts *o, char *err, size_t errlen) {
    tr_rules *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->o = *o;
    m->external_url = strdup(o->external_url ? o->external_url : "");
    m->o.external_url = m->external_url;       /* the caller's string may not outlive this call */
    m->o.alertmanagers = m->o.webhooks = NULL; /* only read here */
    m->globs = calloc(o->nglobs ? o->nglobs : 1, sizeof *m->globs);
    for (size_t i = 0; i < o->nglobs; i++)
        m->globs[i] = strdup(o->globs[i]);
    pthread_mutex_init(&m->mu, NULL);
    m->reloads_failed = tr_counter_new("tricorder_rule_reloads_failed_total",
                                       "Rule file reloads that failed (the old rules stay).", NULL);
    m->last_reload_ok = tr_gauge_new("tricorder_rule_last_reload_successful",
                                     "Whether the last rule file reload succeeded.", NULL);
    if (o->base && (o->nalertmanagers || o->nwebhooks)) {
        m->nt = tr_notifier_new(o->base, o->alertmanagers, o->nalertmanagers, o->webhooks, o->nwebhooks,
                                o->external_url, err, errlen);
        if (!m->nt) {
            tr_rules_free(m);
            return NULL;
        }
    }
    tr_ruleset rs = {0};
    tr_buf errs;
    tr_buf_init(&errs, 0);
    int n = load_files(m, &rs, &errs, NULL);
    m->sig = signature(m);
    if (n) {
        tr_buf_putc(&errs, 0);
        snprintf(err, errlen, "rule files: %s", errs.data);
        size_t l = strlen(err);
        while (l && err[l - 1] == '\n')
            err[--l] = 0;
        for (char *c = err; *c; c++)
            if (*c == '\n') *c = ';';
        tr_buf_free(&errs);
        tr_ruleset_free(&rs);
        tr_rules_free(m);
        return NULL;
    }
    tr_buf_free(&errs);
    tr_gauge_set(m->last_reload_ok, 1);
    if (m->o.base) {
        swap_in(m, &rs, 1);
        start_watch(m);
    } else { /* no loop: tests evaluate by hand */
        m->rs = rs;
        m->groups = calloc(rs.ngroups ? rs.ngroups : 1, sizeof *m->groups);
        m->ngroups = rs.ngroups;
        for (size_t i = 0; i < rs.ngroups; i++) {
            group *g = calloc(1, sizeof *g);
            g->m = m;
            g->def = &m->rs.groups[i];
            g->interval_ms = g->def->interval_ms > 0 ? g->def->interval_ms : 60000;
            g->nrules = g->def->nrules;
            g->rules = calloc(g->nrules ? g->nrules : 1, sizeof *g->rules);
            for (size_t j = 0; j < g->nrules; j++)
                g->rules[j].def = &g->def->rules[j];
            m->groups[i] = g;
        }
    }
    size_t nr = tr_ruleset_count(&m->rs);
    TR_INFO("rules loaded", "groups=%zu rules=%zu source=%s", m->rs.ngroups, nr,
            o->nglobs       ? "--rule-files"
            : o->no_default ? "none"
                            : tr_default_rules_name);
    return m;
}

/* the files' names, sizes and modification times */
static char *signature(tr_rules *m) {
    tr_buf s;
    tr_buf_init(&s, 0);
    for (size_t i = 0; i < m->o.nglobs; i++) {
        glob_t gl;
        int rc = glob(m->globs[i], 0, NULL, &gl);
        if (rc == GLOB_NOMATCH) {
            tr_buf_printf(&s, "%s:none;", m->globs[i]);
            continue;
        }
        if (rc) continue;
        for (size_t k = 0; k < gl.gl_pathc; k++) {
            struct stat st;
            if (stat(gl.gl_pathv[k], &st) == 0)
                tr_buf_printf(&s, "%s:%lld:%lld.%ld;", gl.gl_pathv[k], (long long)st.st_size,
                              (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
        }
        globfree(&gl);
    }
    tr_buf_putc(&s, 0);
    char *r = strdup(s.data);
    tr_buf_free(&s);
    return r;
}

static void watch_tick(evutil_socket_t fd, short what, void *arg) {
    tr_rules *m = arg;
    if (m->stopped) return;
    char *sig = signature(m);
    if (sig && m->sig && strcmp(sig, m->sig) != 0) {
        TR_INFO("rules: rule files changed, reloading", NULL);
        tr_rules_reload(m); /* sets m->sig */
        free(sig);
    } else {
        free(m->sig);
        m->sig = sig;
    }
    struct timeval tv = {WATCH_MS / 1000, (WATCH_MS % 1000) * 1000};
    evtimer_add(m->watch, &tv);
}

int tr_rules_reload(tr_rules *m) {
    tr_ruleset rs = {0};
    tr_buf errs;
    tr_buf_init(&errs, 0);
    int n = load_files(m, &rs, &errs, NULL);
    free(m->sig);
    m->sig = signature(m);
    if (n) {
        tr_buf_putc(&errs, 0);
        char *e = strdup(errs.data);
        size_t l = strlen(e);
        while (l && e[l - 1] == '\n')
            e[--l] = 0;
        char q[2048];
        TR_ERROR("rules: reload failed, keeping the previous rules", "error=%s",
                 tr_log_quote(q, sizeof q, e));
        pthread_mutex_lock(&m->mu);
        free(m->last_error);
        m->last_error = e;
        pthread_mutex_unlock(&m->mu);
        tr_counter_add(m->reloads_failed, 1);
        tr_gauge_set(m->last_reload_ok, 0);
        tr_buf_free(&errs);
        tr_ruleset_free(&rs);
        return -1;
    }
    tr_buf_free(&errs);
    pthread_mutex_lock(&m->mu);
    free(m->last_error);
    m->last_error = NULL;
    pthread_mutex_unlock(&m->mu);
    tr_gauge_set(m->last_reload_ok, 1);
    swap_in(m, &rs, 0);
    TR_INFO("rules reloaded", "groups=%zu rules=%zu", m->rs.ngroups, tr_ruleset_count(&m->rs));
    return 0;
}

static void start_watch(tr_rules *m) {
    if (!m->o.base || m->watch) return;
    m->watch = evtimer_new(m->o.base, watch_tick, m);
    struct timeval tv = {WATCH_MS / 1000, (WATCH_MS % 1000) * 1000};
    evtimer_add(m->watch, &tv);
}

void tr_rules_stop(tr_rules *m) {
    if (!m) return;
    m->stopped = 1;
    for (size_t i = 0; i < m->ngroups; i++)
        if (m->groups[i]->timer) evtimer_del(m->groups[i]->timer);
    if (m->watch) evtimer_del(m->watch);
}

void tr_rules_free(tr_rules *m) {
    if (!m) return;
    for (size_t i = 0; i < m->ngroups; i++)
        group_free(m->groups[i]);
    free(m->groups);
    tr_ruleset_free(&m->rs);
    tr_notifier_free(m->nt);
    for (size_t i = 0; i < m->nkept; i++)
        tr_ruleset_free(&m->kept[i]);
    free(m->kept);
    free(m->external_url);
    for (size_t i = 0; i < m->o.nglobs; i++)
        free(m->globs[i]);
    free(m->globs);
    if (m->watch) event_free(m->watch);
    free(m->sig);
    free(m->last_error);
    while (m->stats) {
        gstats *s = m->stats;
        m->stats = s->next;
        free(s->key);
        free(s);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void tr_rules_eval_all(tr_rules *m, int64_t t_ms) {
    for (size_t i = 0; i < m->ngroups; i++)
        eval_group(m->groups[i], t_ms, NULL, NULL);
}

/* ---- JSON ---- */

static void json_kv(tr_json *j, const tr_rkv *kv, size_t n) {
    tr_json_obj_open(j);
    for (size_t i = 0; i < n; i++) {
        tr_json_key(j, kv[i].name);
        tr_json_str(j, kv[i].value);
    }
    tr_json_obj_close(j);
}

static void json_alert(tr_json *j, const alert *a) {
    char t[64], v[64];
    tr_json_obj_open(j);
    tr_json_key(j, "labels");
    json_kv(j, a->labels, a->nl);
    tr_json_key(j, "annotations");
    json_kv(j, a->ann, a->na);
    tr_json_key(j, "state");
    tr_json_str(j, state_names[a->state]);
    tr_json_key(j, "activeAt");
    fmt_time(a->active_at, t, sizeof t);
    tr_json_str(j, t);
    if (a->keep_since) {
        tr_json_key(j, "keepFiringSince");
        fmt_time(a->keep_since, t, sizeof t);
        tr_json_str(j, t);
    }
    tr_json_key(j, "value");
    fmt_e(a->value, v, sizeof v);
    tr_json_str(j, v);
    tr_json_obj_close(j);
}

static int in_list(const char *s, const char *const *l, size_t n) {
    if (!n) return 1;
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s, l[i])) return 1;
    return 0;
}

static int group_cmp(const void *a, const void *b) {
    const group *x = *(group *const *)a, *y = *(group *const *)b;
    int c = strcmp(x->def->file, y->def->file);
    return c ? c : strcmp(x->def->name, y->def->name);
}

void tr_rules_json_rules(tr_rules *m, tr_json *j, const tr_rules_filter *f) {
    char t[64];
    pthread_mutex_lock(&m->mu);
    tr_json_obj_open(j);
    tr_json_key(j, "groups");
    tr_json_arr_open(j);
    int filtered = f && (f->nrule_names || f->ngroup_names || f->nfiles || f->type);
    /* Prometheus lists the groups by file, then name */
    group **order = malloc((m->ngroups ? m->ngroups : 1) * sizeof *order);
    if (m->ngroups) memcpy(order, m->groups, m->ngroups * sizeof *order);
    qsort(order, m->ngroups, sizeof *order, group_cmp);
    for (size_t gi = 0; order && gi < m->ngroups; gi++) {
        group *g = order[gi];
        if (f && (!in_list(g->def->name, f->group_names, f->ngroup_names) ||
                  !in_list(g->def->file, f->files, f->nfiles)))
            continue;
        size_t shown = 0;
        for (size_t i = 0; i < g->nrules; i++) {
            const tr_rule_def *d = g->rules[i].def;
            if (f && f->type && (d->alert != (f->type[0] == 'a'))) continue;
            if (f && !in_list(d->name, f->rule_names, f->nrule_names)) continue;
            shown++;
        }
        if (filtered && !shown) continue;
        tr_json_obj_open(j);
        tr_json_key(j, "name");
        tr_json_str(j, g->def->name);
        tr_json_key(j, "file");
        tr_json_str(j, g->def->file);
        tr_json_key(j, "rules");
        tr_json_arr_open(j);
        for (size_t i = 0; i < g->nrules; i++) {
            rule *r = &g->rules[i];
            const tr_rule_def *d = r->def;
            if (f && f->type && (d->alert != (f->type[0] == 'a'))) continue;
            if (f && !in_list(d->name, f->rule_names, f->nrule_names)) continue;
            tr_json_obj_open(j);
            if (d->alert) {
                int st = ST_INACTIVE;
                for (size_t k = 0; k < r->nalerts; k++)
                    if (r->alerts[k].state > st) st = r->alerts[k].state;
                tr_json_key(j, "state");
                tr_json_str(j, state_names[st]);
            }
            tr_json_key(j, "name");
            tr_json_str(j, d->name);
            tr_json_key(j, "query");
            tr_json_str(j, d->expr);
            if (d->alert) {
                tr_json_key(j, "duration");
                tr_json_double(j, (double)d->for_ms / 1000);
                tr_json_key(j, "keepFiringFor");
                tr_json_double(j, (double)d->keep_firing_for_ms / 1000);
            }
            if (!d->alert && !d->nlabels) goto no_labels; /* Prometheus: omitempty for recording rules */
            tr_json_key(j, "labels");
            tr_rkv *sl = malloc((d->nlabels ? d->nlabels : 1) * sizeof *sl);
            if (d->nlabels) memcpy(sl, d->labels, d->nlabels * sizeof *sl);
            qsort(sl, d->nlabels, sizeof *sl, kv_cmp);
            json_kv(j, sl, d->nlabels);
            free(sl);
        no_labels:
            if (d->alert) {
                tr_json_key(j, "annotations");
                tr_rkv *sa = malloc((d->nannotations ? d->nannotations : 1) * sizeof *sa);
                if (d->nannotations) memcpy(sa, d->annotations, d->nannotations * sizeof *sa);
                qsort(sa, d->nannotations, sizeof *sa, kv_cmp); /* Go's maps marshal sorted */
                json_kv(j, sa, d->nannotations);
                free(sa);
                tr_json_key(j, "alerts");
                tr_json_arr_open(j);
                for (size_t k = 0; !(f && f->exclude_alerts) && k < r->nalerts; k++)
                    if (r->alerts[k].state != ST_INACTIVE) json_alert(j, &r->alerts[k]);
                tr_json_arr_close(j);
            }
            tr_json_key(j, "health");
            tr_json_str(j, r->health == 0 ? "unknown" : r->health == 1 ? "ok" : "err");
            if (r->last_error) {
                tr_json_key(j, "lastError");
                tr_json_str(j, r->last_error);
            }
            tr_json_key(j, "evaluationTime");
            tr_json_double(j, r->eval_s);
            tr_json_key(j, "lastEvaluation");
            fmt_time(r->last_eval_ms, t, sizeof t);
            tr_json_str(j, t);
            tr_json_key(j, "type");
            tr_json_str(j, d->alert ? "alerting" : "recording");
            tr_json_obj_close(j);
        }
        tr_json_arr_close(j);
        tr_json_key(j, "interval");
        tr_json_double(j, (double)g->interval_ms / 1000);
        tr_json_key(j, "limit");
        tr_json_int(j, g->def->limit);
        tr_json_key(j, "evaluationTime");
        tr_json_double(j, g->eval_s);
        tr_json_key(j, "lastEvaluation");
        fmt_time(g->last_eval_ms, t, sizeof t);
        tr_json_str(j, t);
        tr_json_obj_close(j);
    }
    free(order);
    tr_json_arr_close(j);
    if (m->last_error) {
        /* a failed reload: the old rules run; say why next to them */
        tr_json_key(j, "lastError");
        tr_json_str(j, m->last_error);
    }
    tr_json_obj_close(j);
    pthread_mutex_unlock(&m->mu);
}

void tr_rules_json_alerts(tr_rules *m, tr_json *j) {
    pthread_mutex_lock(&m->mu);
    tr_json_obj_open(j);
    tr_json_key(j, "alerts");
    tr_json_arr_open(j);
    for (size_t gi = 0; gi < m->ngroups; gi++)
        for (size_t i = 0; i < m->groups[gi]->nrules; i++) {
            rule *r = &m->groups[gi]->rules[i];
            for (size_t k = 0; k < r->nalerts; k++)
                if (r->alerts[k].state != ST_INACTIVE) json_alert(j, &r->alerts[k]);
        }
    tr_json_arr_close(j);
    tr_json_obj_close(j);
    pthread_mutex_unlock(&m->mu);
}

void tr_rules_foreach_alert(tr_rules *m, tr_rules_alert_fn fn, void *ctx) {
    pthread_mutex_lock(&m->mu);
    for (size_t gi = 0; gi < m->ngroups; gi++)
        for (size_t i = 0; i < m->groups[gi]->nrules; i++) {
            rule *r = &m->groups[gi]->rules[i];
            for (size_t k = 0; k < r->nalerts; k++)
                if (r->alerts[k].state != ST_INACTIVE)
                    fn(ctx, r->def->name, r->alerts[k].labels, r->alerts[k].nl, r->alerts[k].ann,
                       r->alerts[k].na, r->alerts[k].state);
        }
    pthread_mutex_unlock(&m->mu);
}
