/* The OTLP metrics sink: each export is translated (translate.c) and appended to the TSDB as
 * one batch; the batch's WAL commit acknowledges it. Samples the store refuses are reported
 * through OTLP partial_success (rejected data points plus the store's reason), the rest of
 * the request is still stored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"
#include "translate.h"
#include "util/log.h"
#include "util/selfmon.h"

struct otlp_metrics_sink {
    tsdb *db;
    otlp_translator *tr;
    tr_metric *stored, *refused, *delta_series;
};

/* State of one export while it is appended. */
typedef struct batch {
    otlp_metrics_sink *s;
    tsdb_appender *app;
    tsdb_label *lbuf, *ebuf; /* label copies handed to the store */
    size_t lcap, ecap;
    char *key; /* the sample's labels as the store's lookup key */
    size_t kcap;
    char why[200];
} batch;

/* Waiting for the WAL. */
typedef struct pending {
    otlp_done_fn done;
    void *cookie;
    otlp_translate_stats st;
    otlp_metrics_sink *s;
} pending;

static int grow(tsdb_label **buf, size_t *cap, size_t n) {
    if (n <= *cap) return 0;
    size_t c = n * 2 + 16;
    tsdb_label *b = realloc(*buf, c * sizeof *b);
    if (!b) return -1;
    *buf = b;
    *cap = c;
    return 0;
}

static const char *metric_name(const otlp_sample *smp) {
    for (size_t i = 0; i < smp->n_labels; i++)
        if (strcmp(smp->labels[i].name, "__name__") == 0) return smp->labels[i].value;
    return "?";
}

/* Appends s and its NUL to the key, growing it. Returns 0, or -1 when out of memory. */
static int put_str(batch *b, size_t *len, const char *s) {
    size_t n = strlen(s) + 1;
    if (b->kcap - *len < n) {
        size_t c = (*len + n) * 2 + 256;
        char *k = realloc(b->key, c);
        if (!k) return -1;
        b->key = k;
        b->kcap = c;
    }
    memcpy(b->key + *len, s, n);
    *len += n;
    return 0;
}

/* The sample's labels as the store's canonical key, so that the store neither sorts nor
 * copies them again before its lookup. The translator hands labels sorted by name, distinct
 * and without empty values; that is checked on the way (almost always by a first byte).
 * Returns the length, or 0 when the labels are not in that form or memory is short. */
static size_t build_key(batch *b, const otlp_sample *smp) {
    size_t len = 0;
    const unsigned char *prev = NULL;
    for (size_t i = 0; i < smp->n_labels; i++) {
        const unsigned char *n = (const unsigned char *)smp->labels[i].name;
        if (!smp->labels[i].value[0] ||
            (prev &&
             (prev[0] > n[0] || (prev[0] == n[0] && strcmp((const char *)prev, (const char *)n) >= 0))))
            return 0;
        prev = n;
        if (put_str(b, &len, smp->labels[i].name) || put_str(b, &len, smp->labels[i].value)) return 0;
    }
    return len;
}

/* The sample's labels as tsdb_labels in b->lbuf (for the paths that need them). */
static int copy_labels(batch *b, const otlp_sample *smp) {
    if (grow(&b->lbuf, &b->lcap, smp->n_labels)) return -1;
    for (size_t i = 0; i < smp->n_labels; i++)
        b->lbuf[i] = (tsdb_label){smp->labels[i].name, smp->labels[i].value};
    return 0;
}

static int on_sample(void *ctx, const otlp_sample *smp, const char **why) {
    batch *b = ctx;
    size_t klen = build_key(b, smp);
    int rc;
    if (klen) {
        rc = tsdb_appender_add_key(b->app, b->key, klen, smp->t_ms, smp->value);
    } else if (copy_labels(b, smp)) {
        *why = "out of memory";
        return 1;
    } else {
        rc = tsdb_appender_add(b->app, b->lbuf, smp->n_labels, smp->t_ms, smp->value);
    }
    if (rc != TSDB_OK) {
        snprintf(b->why, sizeof b->why, "%s (%.100s at %lld)", tsdb_strerror(rc), metric_name(smp),
                 (long long)smp->t_ms);
        *why = b->why;
        tr_counter_add(b->s->refused, 1);
        return 1;
    }
    tr_counter_add(b->s->stored, 1);
    if (smp->n_exemplars && (klen == 0 || !copy_labels(b, smp)))
        for (size_t e = 0; e < smp->n_exemplars; e++) {
            const otlp_exemplar *ex = &smp->exemplars[e];
            if (grow(&b->ebuf, &b->ecap, ex->n_labels)) break;
            for (size_t i = 0; i < ex->n_labels; i++)
                b->ebuf[i] = (tsdb_label){ex->labels[i].name, ex->labels[i].value};
            /* an exemplar the store does not keep costs the sample nothing */
            (void)tsdb_appender_add_exemplar(b->app, b->lbuf, smp->n_labels, b->ebuf, ex->n_labels, ex->t_ms,
                                             ex->value);
        }
    return 0;
}

static void on_metadata(void *ctx, const otlp_metadata *m) {
    batch *b = ctx;
    tsdb_set_metadata(b->s->db, m->family, m->type, m->help, m->unit);
}

static void committed(void *cookie, int status, const char *msg) {
    pending *p = cookie;
    otlp_result res = {.status = OTLP_OK};
    if (status != TSDB_OK) {
        res.status = OTLP_UNAVAILABLE;
        snprintf(res.message, sizeof res.message, "metrics not stored: %s",
                 msg ? msg : tsdb_strerror(status));
        TR_WARN("metrics batch not stored", "error=\"%.200s\"", res.message);
    } else {
        res.rejected = p->st.rejected;
        snprintf(res.message, sizeof res.message, "%s", p->st.message);
    }
    p->done(p->cookie, &res);
    free(p);
}

static void submit(void *ctx, const otlp_export *ex, otlp_done_fn done, void *cookie) {
    otlp_metrics_sink *s = ctx;
    otlp_result res = {.status = OTLP_UNAVAILABLE};
    pending *p = calloc(1, sizeof *p);
    batch b = {.s = s, .app = tsdb_appender_begin(s->db)};
    if (!p || !b.app) {
        snprintf(res.message, sizeof res.message, "out of memory");
        goto fail;
    }
    otlp_emit emit = {.ctx = &b, .sample = on_sample, .metadata = on_metadata};
    if (otlp_translate(s->tr, ex->metrics, &emit, &p->st) != 0) {
        snprintf(res.message, sizeof res.message, "%s", p->st.message);
        goto fail;
    }
    free(b.lbuf);
    free(b.ebuf);
    free(b.key);
    p->done = done;
    p->cookie = cookie;
    p->s = s;
    tsdb_appender_commit(b.app, committed, p);
    return;
fail:
    if (b.app) tsdb_appender_rollback(b.app);
    free(b.lbuf);
    free(b.ebuf);
    free(b.key);
    free(p);
    done(cookie, &res);
}

static void collect(void *ctx) {
    otlp_metrics_sink *s = ctx;
    tr_gauge_set(s->delta_series, (double)otlp_translator_delta_series(s->tr));
}

otlp_metrics_sink *otlp_metrics_sink_new(struct tsdb *db, const otlp_translate_opts *o, char *err,
                                         size_t errlen) {
    otlp_metrics_sink *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->db = db;
    s->tr = otlp_translator_new(o, err, errlen);
    if (!s->tr) {
        free(s);
        return NULL;
    }
    s->stored =
        tr_counter_new("tricorder_otlp_samples_total",
                       "Prometheus samples from OTLP metrics, by outcome in the store.", "result=\"stored\"");
    s->refused = tr_counter_new("tricorder_otlp_samples_total",
                                "Prometheus samples from OTLP metrics, by outcome in the store.",
                                "result=\"refused\"");
    s->delta_series = tr_gauge_new("tricorder_otlp_delta_series",
                                   "Delta-temporality series whose running cumulative state is kept.", NULL);
    tr_selfmon_add_collector(collect, s);
    return s;
}

otlp_sink otlp_metrics_sink_get(otlp_metrics_sink *s) {
    otlp_sink k = {.ctx = s, .submit = submit};
    return k;
}

void otlp_metrics_sink_free(otlp_metrics_sink *s) {
    if (!s) return;
    otlp_translator_free(s->tr);
    free(s);
}
