/* libFuzzer target: the remote write 1.0 decoder (snappy block format, then the streaming
 * WriteRequest walker), checked against protobuf-c as an oracle. The first byte chooses how the
 * rest is used: odd, it is a WriteRequest that is snappy-compressed here first (so mutations
 * explore the protobuf); even, it is the body as sent (so they explore the snappy decoder and
 * the size checks). Checks: the status codes; metadata only when the request is well-formed;
 * whatever the walker accepts protobuf-c accepts too, with the same series, labels, samples,
 * exemplars, histograms and metadata; whatever protobuf-c accepts, once packed again without
 * its unknown fields (a canonical encoding), the walker accepts with the same content. */
#include <snappy-c.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "otlp/promwire.h"
#include "prometheus_remote.pb-c.h"

#define MAX_UNCOMPRESSED (1u << 20)

/* ---- an order-sensitive digest of what a request holds ---- */

static uint64_t mix(uint64_t h, uint64_t v) {
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdULL;
    return h ^ (h >> 29);
}
static uint64_t mix_str(uint64_t h, const char *s) {
    if (!s) s = "";
    for (; *s; s++)
        h = mix(h, (uint8_t)*s);
    return mix(h, 0x100);
}
static uint64_t mix_labels(uint64_t h, const tsdb_label *l, size_t n) {
    h = mix(h, n);
    for (size_t i = 0; i < n; i++)
        h = mix_str(mix_str(h, l[i].name), l[i].value);
    return h;
}
static uint64_t mix_double(uint64_t h, double v) {
    uint64_t b;
    memcpy(&b, &v, 8);
    return mix(h, b);
}

/* Per series: labels, samples, exemplars, histograms digested apart (the walker hands them
 * over in wire order, protobuf-c groups them by kind), then folded into the request's. */
typedef struct digest {
    uint64_t all, lbl, smp, ex, md;
    size_t series, hist, metadata;
    int open, bad;
} digest;

static void close_series(digest *d) {
    if (!d->open) return;
    d->all = mix(mix(mix(mix(d->all, d->lbl), d->smp), d->ex), d->hist);
    d->open = 0;
}
static void open_series(digest *d, const tsdb_label *l, size_t n) {
    close_series(d);
    d->series++;
    d->lbl = mix_labels(1, l, n);
    d->smp = d->ex = 2;
    d->hist = 0;
    d->open = 1;
}
static void add_sample(digest *d, int64_t t, double v) { d->smp = mix_double(mix(d->smp, (uint64_t)t), v); }
static void add_exemplar(digest *d, const tsdb_label *l, size_t n, int64_t t, double v) {
    d->ex = mix_double(mix(mix_labels(d->ex, l, n), (uint64_t)t), v);
}
static void add_metadata(digest *d, int type, const char *f, const char *h, const char *u) {
    d->metadata++;
    d->md = mix_str(mix_str(mix_str(mix(d->md, (uint64_t)(uint32_t)type), f), h), u);
}

/* ---- the walker's side ---- */

typedef struct wctx {
    digest d;
    int ended;
} wctx;

static void check_labels(const tsdb_label *l, size_t n, const char *problem) {
    if (n > TR_RW_MAX_LABELS) abort();
    for (size_t i = 0; i < n; i++)
        if (!l[i].name || !l[i].value) abort();
    (void)problem;
}
static void w_series(void *c, const tr_rw_series *s) {
    check_labels(s->labels, s->n, s->problem);
    /* the key is offered exactly when the labels are canonical, and spells them */
    int canonical = s->n > 0 && !s->problem;
    for (size_t i = 0; i < s->n && canonical; i++)
        if (!s->labels[i].value[0] || (i && strcmp(s->labels[i - 1].name, s->labels[i].name) >= 0))
            canonical = 0;
    if ((s->key != NULL) != canonical) abort();
    if (s->key) {
        size_t o = 0;
        for (size_t i = 0; i < s->n; i++) {
            size_t nl = strlen(s->labels[i].name) + 1, vl = strlen(s->labels[i].value) + 1;
            if (o + nl + vl > s->keylen || memcmp(s->key + o, s->labels[i].name, nl) ||
                memcmp(s->key + o + nl, s->labels[i].value, vl))
                abort();
            o += nl + vl;
        }
        if (o != s->keylen) abort();
    }
    open_series(&((wctx *)c)->d, s->labels, s->n);
}
static void w_sample(void *c, int64_t t, double v) {
    wctx *w = c;
    if (!w->d.open) abort();
    add_sample(&w->d, t, v);
}
static void w_exemplar(void *c, const tsdb_label *l, size_t n, const char *problem, int64_t t, double v) {
    wctx *w = c;
    if (!w->d.open) abort();
    check_labels(l, n, problem);
    add_exemplar(&w->d, l, n, t, v);
}
static void w_histogram(void *c) {
    wctx *w = c;
    if (!w->d.open) abort();
    w->d.hist++;
}
static void w_metadata(void *c, int type, const char *f, const char *h, const char *u, const char *problem) {
    wctx *w = c;
    if (!f || !h || !u || !w->ended) abort();
    (void)problem;
    close_series(&w->d);
    add_metadata(&w->d, type, f, h, u);
}
static void w_end(void *c) {
    wctx *w = c;
    if (w->ended++ || w->d.metadata) abort();
}
static const tr_rw_sink sink = {w_series, w_sample, w_exemplar, w_histogram, w_metadata, w_end};

static int walk(const uint8_t *pb, size_t n, digest *out) {
    wctx w = {0};
    w.d.md = 3;
    char err[256];
    int rc = tr_remote_write_parse(pb, n, &sink, &w, err, sizeof err);
    if (rc != 0 && rc != 400 && rc != 503) abort();
    if (rc != 0 && !err[0]) abort();
    if (rc == 400 && w.d.metadata) abort(); /* metadata only from well-formed requests */
    if ((rc == 0 && w.ended != 1) || (rc == 400 && w.ended)) abort(); /* (out of memory may come after) */
    close_series(&w.d);
    *out = w.d;
    return rc;
}

/* ---- protobuf-c's side ---- */

static size_t to_labels(Prometheus__Label **in, size_t n, tsdb_label *out) {
    if (n > TR_RW_MAX_LABELS) n = TR_RW_MAX_LABELS;
    for (size_t i = 0; i < n; i++) {
        out[i].name = in[i]->name;
        out[i].value = in[i]->value;
    }
    return n;
}

static void oracle(const Prometheus__WriteRequest *w, digest *d) {
    static tsdb_label l[TR_RW_MAX_LABELS];
    memset(d, 0, sizeof *d);
    d->md = 3;
    for (size_t i = 0; i < w->n_timeseries; i++) {
        const Prometheus__TimeSeries *ts = w->timeseries[i];
        open_series(d, l, to_labels(ts->labels, ts->n_labels, l));
        for (size_t j = 0; j < ts->n_samples; j++)
            add_sample(d, ts->samples[j]->timestamp, ts->samples[j]->value);
        for (size_t j = 0; j < ts->n_exemplars; j++) {
            const Prometheus__Exemplar *e = ts->exemplars[j];
            add_exemplar(d, l, to_labels(e->labels, e->n_labels, l), e->timestamp, e->value);
        }
        d->hist = ts->n_histograms;
    }
    close_series(d);
    for (size_t i = 0; i < w->n_metadata; i++) {
        const Prometheus__MetricMetadata *m = w->metadata[i];
        add_metadata(d, (int)m->type, m->metric_family_name, m->help, m->unit);
    }
}

static int same(const digest *a, const digest *b) {
    return a->all == b->all && a->md == b->md && a->series == b->series && a->metadata == b->metadata;
}

static void strip(ProtobufCMessage *m) { m->n_unknown_fields = 0; }
static void strip_all(Prometheus__WriteRequest *w) {
    strip(&w->base);
    for (size_t i = 0; i < w->n_timeseries; i++) {
        Prometheus__TimeSeries *ts = w->timeseries[i];
        strip(&ts->base);
        for (size_t j = 0; j < ts->n_labels; j++)
            strip(&ts->labels[j]->base);
        for (size_t j = 0; j < ts->n_samples; j++)
            strip(&ts->samples[j]->base);
        for (size_t j = 0; j < ts->n_exemplars; j++) {
            strip(&ts->exemplars[j]->base);
            for (size_t k = 0; k < ts->exemplars[j]->n_labels; k++)
                strip(&ts->exemplars[j]->labels[k]->base);
        }
        for (size_t j = 0; j < ts->n_histograms; j++) {
            Prometheus__Histogram *h = ts->histograms[j];
            strip(&h->base);
            for (size_t k = 0; k < h->n_negative_spans; k++)
                strip(&h->negative_spans[k]->base);
            for (size_t k = 0; k < h->n_positive_spans; k++)
                strip(&h->positive_spans[k]->base);
        }
    }
    for (size_t i = 0; i < w->n_metadata; i++)
        strip(&w->metadata[i]->base);
}

static void *pb_alloc(void *ctx, size_t n) { return tr_arena_alloc(ctx, n); }
static void pb_free(void *ctx, void *p) { (void)ctx, (void)p; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    char *packed = NULL;
    if (data[0] & 1) {
        size_t cap = snappy_max_compressed_length(len);
        packed = malloc(cap ? cap : 1);
        if (!packed || snappy_compress((const char *)body, len, packed, &cap) != SNAPPY_OK) abort();
        body = (const uint8_t *)packed;
        len = cap;
    }
    uint8_t *plain = NULL;
    size_t plain_cap = 0, n = 0;
    char err[256] = "";
    int rc = tr_remote_write_uncompress(body, len, MAX_UNCOMPRESSED, &plain, &plain_cap, &n, err, sizeof err);
    if (rc != 0 && rc != 400 && rc != 413 && rc != 503) abort();
    if (rc != 0 && !err[0]) abort();
    if (rc == 0) {
        digest mine, theirs;
        int mrc = walk(plain, n, &mine);
        tr_arena *a = tr_arena_new(0);
        ProtobufCAllocator al = {.alloc = pb_alloc, .free = pb_free, .allocator_data = a};
        Prometheus__WriteRequest *w = prometheus__write_request__unpack(&al, n, plain);
        /* the walker is at least as strict as protobuf-c, and agrees with it */
        if (mrc == 0 && !w) abort();
        if (mrc == 0) {
            oracle(w, &theirs);
            if (!same(&mine, &theirs)) abort();
        }
        if (w) {
            /* protobuf-c accepts a few encodings the walker refuses (field number 0, varints
             * overflowing 64 bits, tags over 32 bits); packed again canonically, the walker
             * must accept it and read what protobuf-c reads from it (packing drops -0.0 as a
             * default value, so the packed bytes are the reference) */
            strip_all(w);
            size_t pn = prometheus__write_request__get_packed_size(w);
            uint8_t *pb = malloc(pn ? pn : 1);
            if (!pb) abort();
            prometheus__write_request__pack(w, pb);
            Prometheus__WriteRequest *w2 = prometheus__write_request__unpack(&al, pn, pb);
            if (!w2) abort();
            oracle(w2, &theirs);
            digest again;
            if (walk(pb, pn, &again) != 0 || !same(&again, &theirs)) abort();
            free(pb);
        }
        tr_arena_free(a);
    }
    free(plain);
    free(packed);
    return 0;
}
