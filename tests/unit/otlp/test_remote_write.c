/* The remote write 1.0 decoder behind POST /api/v1/write: snappy (limits checked before
 * allocating), the streaming WriteRequest walker (requests as Prometheus sends them, checked
 * against protobuf-c; truncation at every byte; wrong wire types; unknown fields; groups,
 * field 0, overlong varints; NUL bytes and label limits), and what it hands to the store
 * (invalid UTF-8 in a new series refused, the rest stored; malformed requests store nothing). */
#include <criterion/criterion.h>
#include <math.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../metrics/helpers.h"
#include "otlp/promwire.h"
#include "prometheus_remote.pb-c.h"
#include "util/log.h"

/* selectors as the API parses match[] (PromQL's selector parser) */

/* ---------------------------------------------------------------- a tiny protobuf writer */

typedef struct pbw {
    uint8_t b[1 << 16];
    size_t n;
} pbw;

static void w_varint(pbw *w, uint64_t v) {
    while (v >= 0x80) {
        w->b[w->n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    w->b[w->n++] = (uint8_t)v;
}
static void w_tag(pbw *w, unsigned f, unsigned wt) { w_varint(w, (uint64_t)f << 3 | wt); }
static void w_bytes(pbw *w, unsigned f, const void *p, size_t n) {
    w_tag(w, f, 2);
    w_varint(w, n);
    memcpy(w->b + w->n, p, n);
    w->n += n;
}
static void w_str(pbw *w, unsigned f, const char *s) { w_bytes(w, f, s, strlen(s)); }
static void w_double(pbw *w, unsigned f, double v) {
    w_tag(w, f, 1);
    memcpy(w->b + w->n, &v, 8);
    w->n += 8;
}
static void w_msg(pbw *w, unsigned f, const pbw *m) { w_bytes(w, f, m->b, m->n); }
/* one unknown field of each wire type, numbered far from the known ones */
static void w_unknown(pbw *w) {
    w_tag(w, 100, 0);
    w_varint(w, 300);
    w_tag(w, 101, 1);
    memset(w->b + w->n, 0xab, 8);
    w->n += 8;
    w_str(w, 102, "ignored");
    w_tag(w, 103, 5);
    w->n += 4;
}

static pbw *new_w(void) { return calloc(1, sizeof(pbw)); }

static void label(pbw *ts, const char *n, const char *v, int extra) {
    pbw *l = new_w();
    if (extra) w_unknown(l);
    w_str(l, 1, n);
    w_str(l, 2, v);
    w_msg(ts, 1, l);
    free(l);
}
static void sample(pbw *ts, double v, int64_t t, int extra) {
    pbw *s = new_w();
    w_double(s, 1, v);
    if (extra) w_unknown(s);
    w_tag(s, 2, 0);
    w_varint(s, (uint64_t)t);
    w_msg(ts, 2, s);
    free(s);
}

/* ---------------------------------------------------------------- a recording sink */

typedef struct rec {
    char log[1 << 15]; /* one line per event */
    size_t n;
    int metadata, keys, ended;
} rec;

static void logf_(rec *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(r->log + r->n, sizeof r->log - r->n, fmt, ap);
    va_end(ap);
    if (k > 0) r->n += (size_t)k;
    if (r->n >= sizeof r->log) r->n = sizeof r->log - 1;
}
static void log_labels(rec *r, const tsdb_label *l, size_t n) {
    for (size_t i = 0; i < n; i++)
        logf_(r, "%s%s=%s", i ? "," : "", l[i].name, l[i].value);
}
/* Whether labels are in the store's canonical order (sorted, distinct, no empty value). */
static int canonical(const tsdb_label *l, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!l[i].value[0] || (i && strcmp(l[i - 1].name, l[i].name) >= 0)) return 0;
    return n > 0;
}
static void r_series(void *c, const tr_rw_series *s) {
    rec *r = c;
    logf_(r, "series ");
    log_labels(r, s->labels, s->n);
    logf_(r, "%s%s\n", s->problem ? " PROBLEM " : "", s->problem ? s->problem : "");
    /* the key is offered exactly when the labels are canonical, and spells them */
    if (s->problem) {
        cr_assert_null(s->key);
        return;
    }
    cr_assert_eq(s->key != NULL, canonical(s->labels, s->n));
    if (!s->key) return;
    r->keys++;
    size_t o = 0;
    for (size_t i = 0; i < s->n; i++) {
        size_t nl = strlen(s->labels[i].name) + 1, vl = strlen(s->labels[i].value) + 1;
        cr_assert_leq(o + nl + vl, s->keylen);
        cr_assert_eq(memcmp(s->key + o, s->labels[i].name, nl), 0);
        cr_assert_eq(memcmp(s->key + o + nl, s->labels[i].value, vl), 0);
        o += nl + vl;
    }
    cr_assert_eq(o, s->keylen);
}
static void r_sample(void *c, int64_t t, double v) { logf_(c, "sample %lld %g\n", (long long)t, v); }
static void r_exemplar(void *c, const tsdb_label *l, size_t n, const char *problem, int64_t t, double v) {
    rec *r = c;
    logf_(r, "exemplar ");
    log_labels(r, l, n);
    logf_(r, " %lld %g%s\n", (long long)t, v, problem ? " PROBLEM" : "");
}
static void r_histogram(void *c) { logf_(c, "histogram\n"); }
static void r_metadata(void *c, int type, const char *f, const char *h, const char *u, const char *problem) {
    rec *r = c;
    r->metadata++;
    logf_(r, "metadata %d %s help=%s unit=%s%s\n", type, f, h, u, problem ? " PROBLEM" : "");
}
static void r_end(void *c) {
    rec *r = c;
    cr_assert_eq(r->metadata, 0, "the end comes before the metadata");
    r->ended++;
}
static const tr_rw_sink SINK = {r_series, r_sample, r_exemplar, r_histogram, r_metadata, r_end};

static int parse(const void *p, size_t n, rec *r, char *err) {
    memset(r, 0, sizeof *r);
    int rc = tr_remote_write_parse(p, n, &SINK, r, err, 256);
    cr_assert_eq(r->ended, rc == 0, "end called once exactly when well-formed");
    return rc;
}

/* The same events, as protobuf-c decodes the request (samples, exemplars, histograms grouped
 * by kind: compare with requests that send them in that order). */
static void oracle(const uint8_t *p, size_t n, rec *r) {
    memset(r, 0, sizeof *r);
    Prometheus__WriteRequest *w = prometheus__write_request__unpack(NULL, n, p);
    cr_assert_not_null(w, "protobuf-c refuses the request");
    for (size_t i = 0; i < w->n_timeseries; i++) {
        Prometheus__TimeSeries *ts = w->timeseries[i];
        tsdb_label l[256];
        cr_assert_leq(ts->n_labels, 256);
        for (size_t j = 0; j < ts->n_labels; j++)
            l[j] = (tsdb_label){ts->labels[j]->name, ts->labels[j]->value};
        tr_rw_series rs = {l, ts->n_labels, NULL, 0, NULL};
        r->log[r->n] = 0;
        logf_(r, "series ");
        log_labels(r, rs.labels, rs.n);
        logf_(r, "\n");
        for (size_t j = 0; j < ts->n_samples; j++)
            r_sample(r, ts->samples[j]->timestamp, ts->samples[j]->value);
        for (size_t j = 0; j < ts->n_exemplars; j++) {
            Prometheus__Exemplar *e = ts->exemplars[j];
            for (size_t k = 0; k < e->n_labels; k++)
                l[k] = (tsdb_label){e->labels[k]->name, e->labels[k]->value};
            r_exemplar(r, l, e->n_labels, NULL, e->timestamp, e->value);
        }
        for (size_t j = 0; j < ts->n_histograms; j++)
            r_histogram(r);
    }
    for (size_t i = 0; i < w->n_metadata; i++) {
        Prometheus__MetricMetadata *m = w->metadata[i];
        r_metadata(r, (int)m->type, m->metric_family_name, m->help, m->unit, NULL);
    }
    prometheus__write_request__free_unpacked(w, NULL);
}

static uint8_t *read_file(const char *name, size_t *n) {
    char path[512];
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus/fuzz_remote_write/%s", TR_SOURCE_DIR, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    uint8_t *b = malloc(1 << 20);
    *n = fread(b, 1, 1 << 20, f);
    fclose(f);
    return b;
}

static uint8_t *snappy(const uint8_t *in, size_t n, size_t *out_len) {
    size_t cap = snappy_max_compressed_length(n);
    uint8_t *out = malloc(cap);
    *out_len = cap;
    cr_assert_eq(snappy_compress((const char *)in, n, (char *)out, out_len), SNAPPY_OK);
    return out;
}

TestSuite(remote_write_walk);

/* Bodies captured from a real Prometheus (2.x, Debian) remote-writing scraped series and
 * metadata: the corpus files hold a mode byte (odd: the WriteRequest; even: the body as sent,
 * snappy-compressed) and then the bytes. */
Test(remote_write_walk, requests_as_prometheus_sends_them) {
    const char *files[] = {"prometheus_samples_plain.bin", "prometheus_samples_raw.bin",
                           "prometheus_metadata_plain.bin", "prometheus_metadata_raw.bin"};
    for (size_t i = 0; i < 4; i++) {
        size_t n, plen;
        uint8_t *f = read_file(files[i], &n), *plain = NULL;
        size_t cap = 0;
        char err[256];
        if (f[0] & 1) {
            plain = malloc(n);
            memcpy(plain, f + 1, n - 1);
            plen = n - 1;
        } else {
            cr_assert_eq(
                tr_remote_write_uncompress(f + 1, n - 1, 1 << 20, &plain, &cap, &plen, err, sizeof err), 0,
                "%s", err);
        }
        rec mine, theirs;
        cr_assert_eq(parse(plain, plen, &mine, err), 0, "%s: %s", files[i], err);
        oracle(plain, plen, &theirs);
        cr_assert_str_eq(mine.log, theirs.log, "%s", files[i]);
        if (strstr(files[i], "samples")) cr_assert_gt(mine.keys, 0, "Prometheus sends labels sorted");
        cr_assert_gt(mine.n, 20, "%s: something was decoded", files[i]);
        if (strstr(files[i], "samples")) {
            cr_assert(strstr(mine.log, "series __name__=up,instance="), "%s", mine.log);
            cr_assert(strstr(mine.log, "\nsample "), "%s", mine.log);
        } else {
            cr_assert_gt(mine.metadata, 0);
        }
        free(plain);
        free(f);
    }
}

/* A request using every message and field, with unknown fields of every wire type in every
 * message, labels after samples in one series, and everything interleaved. */
static size_t full_request(pbw *w, size_t *bounds, size_t *nb) {
    memset(w, 0, sizeof *w);
    *nb = 0;
    pbw *ts = new_w();
    w_unknown(ts);
    label(ts, "job", "api", 1);
    label(ts, "__name__", "http_requests_total", 0);
    sample(ts, 1.5, 1700000000000LL, 1);
    pbw *ex = new_w();
    label(ex, "trace_id", "abc", 0);
    w_double(ex, 2, 0.25);
    w_unknown(ex);
    w_tag(ex, 3, 0);
    w_varint(ex, 1700000000001ULL);
    w_msg(ts, 3, ex);
    free(ex);
    sample(ts, -2, -5, 0); /* a negative timestamp: a 10-byte varint */
    w_msg(w, 1, ts);
    bounds[(*nb)++] = w->n;
    w_unknown(w); /* fields of 4, 10, 10 and 6 bytes */
    size_t u = bounds[*nb - 1];
    bounds[(*nb)++] = u + 4, bounds[(*nb)++] = u + 14, bounds[(*nb)++] = u + 24, bounds[(*nb)++] = u + 30;
    cr_assert_eq(w->n, u + 30);
    memset(ts, 0, sizeof *ts);
    sample(ts, NAN, 7, 0);
    pbw *h = new_w();
    w_tag(h, 1, 0), w_varint(h, 3);
    w_double(h, 3, 4.5);
    w_tag(h, 4, 0), w_varint(h, 5);
    pbw *span = new_w();
    w_tag(span, 1, 0), w_varint(span, 2);
    w_tag(span, 2, 0), w_varint(span, 1);
    w_msg(h, 11, span);
    free(span);
    const uint8_t deltas[] = {2, 4};
    w_bytes(h, 12, deltas, 2);
    double counts[2] = {1, 2};
    w_bytes(h, 13, counts, 16);
    w_unknown(h);
    w_tag(h, 15, 0), w_varint(h, 9);
    w_msg(ts, 4, h);
    free(h);
    label(ts, "__name__", "late_labels", 0);
    w_unknown(ts);
    w_msg(w, 1, ts);
    bounds[(*nb)++] = w->n;
    pbw *md = new_w();
    w_tag(md, 1, 0), w_varint(md, 1);
    w_str(md, 2, "http_requests_total");
    w_unknown(md);
    w_str(md, 4, "Requests.");
    w_str(md, 5, "requests");
    w_msg(w, 3, md);
    free(md);
    free(ts);
    bounds[(*nb)++] = w->n;
    return w->n;
}

static const char FULL[] = "series job=api,__name__=http_requests_total\n"
                           "sample 1700000000000 1.5\n"
                           "exemplar trace_id=abc 1700000000001 0.25\n"
                           "sample -5 -2\n"
                           "series __name__=late_labels\n"
                           "sample 7 nan\n"
                           "histogram\n"
                           "metadata 1 http_requests_total help=Requests. unit=requests\n";

Test(remote_write_walk, every_field_unknown_fields_skipped_labels_first) {
    pbw *w = new_w();
    size_t bounds[8], nb;
    size_t n = full_request(w, bounds, &nb);
    rec r;
    char err[256];
    cr_assert_eq(parse(w->b, n, &r, err), 0, "%s", err);
    cr_assert_str_eq(r.log, FULL);
    cr_assert_eq(r.keys, 1, "only the second series has its labels sorted");
    /* protobuf-c reads the same (it groups by kind: compare the parts that are in order) */
    rec o;
    oracle(w->b, n, &o);
    cr_assert(strstr(o.log,
                     "series job=api,__name__=http_requests_total\nsample 1700000000000 1.5\nsample -5 -2\n"
                     "exemplar trace_id=abc 1700000000001 0.25\n"),
              "%s", o.log);
    cr_assert(strstr(o.log, "metadata 1 http_requests_total help=Requests. unit=requests\n"), "%s", o.log);
    free(w);
}

Test(remote_write_walk, truncation_at_every_byte) {
    pbw *w = new_w();
    size_t bounds[8], nb;
    size_t n = full_request(w, bounds, &nb);
    for (size_t k = 0; k < n; k++) {
        uint8_t *cut = malloc(k ? k : 1); /* exactly k bytes: ASan sees any read past them */
        memcpy(cut, w->b, k);
        rec r;
        char err[256];
        int at_boundary = k == 0;
        for (size_t i = 0; i < nb; i++)
            at_boundary |= bounds[i] == k;
        int rc = parse(cut, k, &r, err);
        if (at_boundary) {
            cr_assert_eq(rc, 0, "cut at %zu (a field boundary): %s", k, err);
        } else {
            cr_assert_eq(rc, 400, "cut at %zu should be malformed", k);
            cr_assert(strstr(err, "malformed WriteRequest at byte "), "%s", err);
            cr_assert_eq(r.metadata, 0, "cut at %zu: metadata of a malformed request", k);
        }
        free(cut);
    }
    /* and as snappy bodies: any cut is corrupt */
    size_t cl;
    uint8_t *c = snappy(w->b, n, &cl);
    for (size_t k = 0; k < cl; k++) {
        uint8_t *buf = NULL, *cut = malloc(k ? k : 1);
        memcpy(cut, c, k);
        size_t cap = 0, plen;
        char err[256];
        int rc = tr_remote_write_uncompress(cut, k, 1 << 20, &buf, &cap, &plen, err, sizeof err);
        cr_assert_eq(rc, 400, "snappy cut at %zu: %d", k, rc);
        free(buf);
        free(cut);
    }
    free(c);
    free(w);
}

/* Each known field sent with each wrong wire type: 400 naming the field. */
Test(remote_write_walk, wrong_wire_types) {
    struct {
        const char *name;
        unsigned field, right;
        int depth; /* 0: in WriteRequest, 1: in TimeSeries, 2: in a Label, 3: in a Sample, 4: Exemplar, 5:
                      MetricMetadata */
    } fields[] = {
        {"WriteRequest.timeseries", 1, 2, 0},
        {"WriteRequest.metadata", 3, 2, 0},
        {"TimeSeries.labels", 1, 2, 1},
        {"TimeSeries.samples", 2, 2, 1},
        {"TimeSeries.exemplars", 3, 2, 1},
        {"TimeSeries.histograms", 4, 2, 1},
        {"Label.name", 1, 2, 2},
        {"Label.value", 2, 2, 2},
        {"Sample.value", 1, 1, 3},
        {"Sample.timestamp", 2, 0, 3},
        {"Exemplar.labels", 1, 2, 4},
        {"Exemplar.value", 2, 1, 4},
        {"Exemplar.timestamp", 3, 0, 4},
        {"MetricMetadata.type", 1, 0, 5},
        {"a MetricMetadata string", 2, 2, 5},
    };
    const unsigned wts[] = {0, 1, 2, 5};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        for (size_t j = 0; j < 4; j++) {
            if (wts[j] == fields[i].right) continue;
            /* the field with wire type wts[j] and a well-formed value of that type */
            pbw *in = new_w(), *m = new_w(), *top = new_w();
            w_tag(in, fields[i].field, wts[j]);
            if (wts[j] == 0)
                w_varint(in, 1);
            else if (wts[j] == 1)
                in->n += 8;
            else if (wts[j] == 2)
                w_varint(in, 0);
            else
                in->n += 4;
            switch (fields[i].depth) {
            case 0:
                *top = *in;
                break;
            case 1:
                w_msg(top, 1, in);
                break;
            case 2:
                w_msg(m, 1, in), w_msg(top, 1, m);
                break;
            case 3:
                w_msg(m, 2, in), w_msg(top, 1, m);
                break;
            case 4:
                w_msg(m, 3, in), w_msg(top, 1, m);
                break;
            case 5:
                w_msg(top, 3, in);
                break;
            }
            rec r;
            char err[256];
            cr_assert_eq(parse(top->b, top->n, &r, err), 400, "%s with wire type %u", fields[i].name, wts[j]);
            cr_assert(strstr(err, fields[i].name), "%s: %s", fields[i].name, err);
            cr_assert(strstr(err, "wire type"), "%s", err);
            free(in), free(m), free(top);
        }
}

Test(remote_write_walk, groups_field_zero_and_bad_varints_are_malformed) {
    struct {
        const char *what;
        uint8_t b[16];
        size_t n;
        const char *msg;
    } bad[] = {
        {"a group", {0x0b, 0x0c}, 2, "groups"},
        {"field number 0", {0x02, 0x00}, 2, "field number 0"},
        {"wire type 7", {0x0f}, 1, "wire type 7"},
        {"an 11-byte varint",
         {0x28, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00},
         12,
         "varint"},
        {"a varint over 64 bits",
         {0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
         11,
         "varint"},
        {"a length past the end", {0x0a, 0x05, 0x00}, 3, "past the end"},
        {"a tag over 32 bits", {0xff, 0xff, 0xff, 0xff, 0x7f}, 5, "field number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rec r;
        char err[256];
        cr_assert_eq(parse(bad[i].b, bad[i].n, &r, err), 400, "%s", bad[i].what);
        cr_assert(strstr(err, bad[i].msg), "%s: %s", bad[i].what, err);
    }
    /* the largest 10-byte varint is fine, and so is a tag written in more bytes than needed */
    const uint8_t ok[] = {0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x8a, 0x00, 0x00};
    rec r;
    char err[256];
    cr_assert_eq(parse(ok, sizeof ok, &r, err), 0, "%s", err);
    cr_assert_str_eq(r.log, "series \n");
}

Test(remote_write_walk, nul_bytes_and_label_limits_make_a_problem_not_an_error) {
    pbw *w = new_w(), *ts = new_w(), *l = new_w();
    w_str(l, 1, "__name__");
    w_bytes(l, 2, "a\0b", 3);
    w_msg(ts, 1, l);
    sample(ts, 1, 1, 0);
    w_msg(w, 1, ts);
    rec r;
    char err[256];
    cr_assert_eq(parse(w->b, w->n, &r, err), 0, "%s", err);
    cr_assert(strstr(r.log, "PROBLEM a label name or value contains a NUL byte"), "%s", r.log);
    cr_assert(strstr(r.log, "sample 1 1"), "%s", r.log);
    /* TR_RW_MAX_LABELS + 1 labels (empty ones: two bytes each) */
    memset(w, 0, sizeof *w);
    memset(ts, 0, sizeof *ts);
    for (int i = 0; i <= TR_RW_MAX_LABELS; i++)
        w_bytes(ts, 1, "", 0);
    w_msg(w, 1, ts);
    cr_assert_eq(parse(w->b, w->n, &r, err), 0, "%s", err);
    cr_assert(strstr(r.log, "PROBLEM more than 4096 labels"), "%.200s", r.log);
    /* an empty request, and one of only unknown fields */
    cr_assert_eq(parse("", 0, &r, err), 0);
    cr_assert_str_eq(r.log, "");
    memset(w, 0, sizeof *w);
    w_unknown(w);
    cr_assert_eq(parse(w->b, w->n, &r, err), 0, "%s", err);
    cr_assert_str_eq(r.log, "");
    free(w), free(ts), free(l);
}

Test(remote_write_walk, snappy_limits_before_allocating) {
    uint8_t *buf = NULL;
    size_t cap = 0, plen;
    char err[256];
    /* a snappy header claiming 4 GiB - 1, and no data behind it */
    const uint8_t hdr[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    cr_assert_eq(tr_remote_write_uncompress(hdr, sizeof hdr, 32 << 20, &buf, &cap, &plen, err, sizeof err),
                 413);
    cr_assert_null(buf);
    cr_assert(strstr(err, "limit"), "%s", err);
    /* not snappy at all */
    const uint8_t junk[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80};
    cr_assert_eq(tr_remote_write_uncompress(junk, sizeof junk, 1 << 20, &buf, &cap, &plen, err, sizeof err),
                 400);
    /* an empty body is a valid empty block; the buffer is reused when big enough */
    const uint8_t empty[] = {0x00};
    cr_assert_eq(tr_remote_write_uncompress(empty, 1, 32 << 20, &buf, &cap, &plen, err, sizeof err), 0, "%s",
                 err);
    cr_assert_eq(plen, 0);
    pbw *w = new_w();
    size_t bounds[8], nb;
    size_t n = full_request(w, bounds, &nb), cl;
    uint8_t *c = snappy(w->b, n, &cl);
    cr_assert_eq(tr_remote_write_uncompress(c, cl, n - 1, &buf, &cap, &plen, err, sizeof err), 413);
    cr_assert_eq(tr_remote_write_uncompress(c, cl, n, &buf, &cap, &plen, err, sizeof err), 0, "%s", err);
    cr_assert_eq(plen, n);
    cr_assert_eq(memcmp(buf, w->b, n), 0);
    uint8_t *was = buf;
    cr_assert_eq(tr_remote_write_uncompress(c, cl, n, &buf, &cap, &plen, err, sizeof err), 0, "%s", err);
    cr_assert_eq(buf, was, "reused");
    free(buf);
    free(c);
    free(w);
}

/* ---------------------------------------------------------------- into the store */

static char dir[256];
static tsdb *DB;

static void open_db(void) {
    tr_log_set_level(TR_LOG_ERROR);
    snprintf(dir, sizeof dir, "/tmp/tr-rw-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    tsdb_options o = {.dir = dir};
    char err[256];
    cr_assert_eq(tsdb_open(&o, &DB, err, sizeof err), 0, "%s", err);
}
static void close_db(void) {
    tsdb_close(DB);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {
    }
}

TestSuite(remote_write_store, .init = open_db, .fini = close_db);

static void done(void *c, int st, const char *m) {
    (void)m;
    *(int *)c = st == TSDB_OK ? 1 : -1;
}

static int apply(const pbw *w, tr_rw_result *res, char *err) {
    tsdb_appender *a = tsdb_appender_begin(DB);
    int rc = tr_remote_write_apply(DB, a, w->b, w->n, res, err, 256);
    if (rc) {
        tsdb_appender_rollback(a);
        return rc;
    }
    int st = 0;
    tsdb_appender_commit(a, done, &st);
    cr_assert_eq(st, 1);
    return 0;
}

/* The samples of the series `sel` now in the store. */
static size_t stored(const char *sel, double *last) {
    tsdb_querier *q = tsdb_querier_open(DB, INT64_MIN, INT64_MAX);
    tsdb_matcher **m;
    size_t nm, n = 0;
    char err[256];
    cr_assert_eq(test_selector(sel, &m, &nm, err, sizeof err), 0, "%s", err);
    tsdb_seriesset *s = tsdb_select(q, m, nm, TSDB_SELECT_SAMPLES, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    for (size_t i = 0; i < tsdb_seriesset_len(s); i++) {
        const int64_t *t;
        const double *v;
        size_t k = tsdb_seriesset_samples(s, i, &t, &v);
        if (k && last) *last = v[k - 1];
        n += k;
    }
    tsdb_seriesset_free(s);
    tsdb_matchers_free(m, nm);
    tsdb_querier_close(q);
    return n;
}

typedef struct mdfind {
    const char *family;
    int seen;
} mdfind;
static int find_md(void *c, const tsdb_metadata *m) {
    mdfind *f = c;
    if (strcmp(m->family, f->family) == 0) f->seen = 1;
    return 0;
}
static int has_metadata(const char *family) {
    mdfind f = {family, 0};
    tsdb_metadata_foreach(DB, find_md, &f);
    return f.seen;
}

Test(remote_write_store, invalid_utf8_in_a_new_series_is_refused_the_rest_stored) {
    int64_t now = (int64_t)time(NULL) * 1000;
    pbw *w = new_w(), *ts = new_w();
    label(ts, "__name__", "rw_good", 0);
    label(ts, "k", "v", 0);
    sample(ts, 1, now - 2000, 0);
    w_msg(w, 1, ts);
    memset(ts, 0, sizeof *ts);
    label(ts, "__name__", "rw_bad", 0);
    label(ts, "k", "\xff\xfe", 0);
    sample(ts, 2, now - 2000, 0);
    w_msg(w, 1, ts);
    pbw *md = new_w();
    w_tag(md, 1, 0), w_varint(md, 2);
    w_str(md, 2, "rw_good");
    w_msg(w, 3, md);
    tr_rw_result res;
    char err[256];
    cr_assert_eq(apply(w, &res, err), 0, "%s", err);
    cr_assert_eq(res.samples, 2);
    cr_assert_eq(res.refused, 1);
    cr_assert(strstr(res.first, "UTF-8"), "%s", res.first);
    cr_assert(strstr(res.first, "rw_bad{k="), "%s", res.first);
    cr_assert_eq(stored("rw_good", NULL), 1);
    cr_assert_eq(stored("{__name__=~\"rw_bad.*\"}", NULL), 0);
    cr_assert(has_metadata("rw_good"), "metadata stored");
    /* the series is known now: its next sample goes in, the invalid one is refused again */
    memset(w, 0, sizeof *w);
    memset(ts, 0, sizeof *ts);
    label(ts, "k", "v", 0); /* another label order: the same series */
    label(ts, "__name__", "rw_good", 0);
    sample(ts, 3, now - 1000, 0);
    w_msg(w, 1, ts);
    memset(ts, 0, sizeof *ts);
    label(ts, "__name__", "rw_bad", 0);
    label(ts, "k", "\xff\xfe", 0);
    sample(ts, 4, now - 1000, 0);
    w_msg(w, 1, ts);
    cr_assert_eq(apply(w, &res, err), 0, "%s", err);
    cr_assert_eq(res.refused, 1);
    double last = 0;
    cr_assert_eq(stored("rw_good", &last), 2);
    cr_assert_eq(last, 3);
    free(w), free(ts), free(md);
}

Test(remote_write_store, a_malformed_request_stores_nothing) {
    int64_t now = (int64_t)time(NULL) * 1000;
    pbw *w = new_w(), *ts = new_w(), *md = new_w();
    w_str(md, 2, "rw_mal");
    w_msg(w, 3, md); /* metadata first: still not applied */
    label(ts, "__name__", "rw_mal", 0);
    sample(ts, 1, now, 0);
    w_msg(w, 1, ts);
    w_tag(w, 1, 2);
    w_varint(w, 50); /* a series running past the end */
    tr_rw_result res;
    char err[256];
    cr_assert_eq(apply(w, &res, err), 400);
    cr_assert(strstr(err, "past the end"), "%s", err);
    cr_assert_eq(stored("rw_mal", NULL), 0);
    cr_assert_not(has_metadata("rw_mal"), "metadata of a malformed request");
    /* a NUL byte in a label: that series' samples refused with the reason */
    memset(w, 0, sizeof *w);
    memset(ts, 0, sizeof *ts);
    pbw *l = new_w();
    w_str(l, 1, "__name__");
    w_bytes(l, 2, "rw_nul\0x", 8);
    w_msg(ts, 1, l);
    sample(ts, 1, now, 0);
    w_msg(w, 1, ts);
    cr_assert_eq(apply(w, &res, err), 0, "%s", err);
    cr_assert_eq(res.refused, 1);
    cr_assert(strstr(res.first, "NUL byte"), "%s", res.first);
    cr_assert_eq(stored("rw_nul", NULL), 0);
    free(w), free(ts), free(md), free(l);
}

/* NUL bytes are found at every position of short and long names and values, whether the
 * string is read in 16-byte moves (more of the request follows) or not (it ends the request). */
Test(remote_write_walk, nul_bytes_found_anywhere) {
    pbw *w = new_w(), *ts = new_w(), *l = new_w();
    for (size_t n = 1; n <= 70; n++) /* read a word at a time up to 64 bytes */
        for (int at_end = 0; at_end < 2; at_end++)
            for (int in_name = 0; in_name < 2; in_name++)
                for (size_t pos = 0; pos <= n; pos++) { /* pos == n: no NUL */
                    char str[71];
                    memset(str, 'x', n);
                    if (pos < n) str[pos] = 0;
                    memset(w, 0, sizeof *w), memset(ts, 0, sizeof *ts), memset(l, 0, sizeof *l);
                    w_bytes(l, 1, in_name ? str : "__name__", in_name ? n : 8);
                    w_bytes(l, 2, in_name ? "v" : str, in_name ? 1 : n);
                    w_msg(ts, 1, l);
                    if (!at_end) sample(ts, 1, 1, 1); /* 30 more bytes after the label */
                    w_msg(w, 1, ts);
                    uint8_t *exact = malloc(w->n); /* nothing readable past the request */
                    memcpy(exact, w->b, w->n);
                    rec r;
                    char err[256];
                    cr_assert_eq(parse(exact, w->n, &r, err), 0, "%s", err);
                    int flagged = strstr(r.log, "contains a NUL byte") != NULL;
                    cr_assert_eq(flagged, pos < n, "n %zu, NUL at %zu, %s, %s: %s", n, pos,
                                 in_name ? "name" : "value", at_end ? "at the end" : "inside", r.log);
                    free(exact);
                }
    free(w), free(ts), free(l);
}

/* Many series, sorted and unsorted labels mixed (samples go to the store in batches, or one
 * by one): every sample stored or refused, in wire order, the first refusal reported. */
Test(remote_write_store, batches_keep_wire_order_and_count_every_refusal) {
    int64_t now = (int64_t)time(NULL) * 1000;
    pbw *w = new_w(), *ts = new_w();
    char name[32];
    for (int round = 0; round < 2; round++) {
        memset(w, 0, sizeof *w);
        for (int i = 0; i < 300; i++) {
            memset(ts, 0, sizeof *ts);
            snprintf(name, sizeof name, "rw_b_%d", i);
            if (i % 3 == 0) { /* unsorted: the one-by-one path */
                label(ts, "k", "v", 0);
                label(ts, "__name__", name, 0);
            } else {
                label(ts, "__name__", name, 0);
                label(ts, "k", "v", 0);
            }
            /* the second round: every 50th series from 7 on goes back in time (refused) */
            int64_t t = round == 0 ? now - 10000 : i % 50 == 7 ? now - 20000 : now - 5000;
            sample(ts, i, t, 0);
            w_msg(w, 1, ts);
        }
        tr_rw_result res;
        char err[256];
        cr_assert_eq(apply(w, &res, err), 0, "%s", err);
        cr_assert_eq(res.samples, 300);
        if (round == 0) {
            cr_assert_eq(res.refused, 0, "%s", res.first);
        } else {
            cr_assert_eq(res.refused, 6);
            cr_assert(strstr(res.first, "out of order"), "%s", res.first);
            cr_assert(strstr(res.first, "rw_b_7{k=\"v\"}"), "the first in wire order: %s", res.first);
        }
    }
    cr_assert_eq(stored("{__name__=~\"rw_b_.*\"}", NULL), 300 + 294);
    free(w), free(ts);
}

/* A request far larger than one of the decoder's 64 KiB string blocks: keys held across
 * blocks until the last batch is handed over. */
Test(remote_write_store, a_request_spanning_many_string_blocks) {
    int64_t now = (int64_t)time(NULL) * 1000;
    size_t cap = 1 << 20, n = 0;
    uint8_t *big = malloc(cap);
    pbw *ts = new_w(), *one = new_w();
    char name[64], value[64];
    for (int i = 0; i < 5000; i++) {
        memset(ts, 0, sizeof *ts);
        memset(one, 0, sizeof *one);
        snprintf(name, sizeof name, "rw_big_%d", i % 7);
        snprintf(value, sizeof value, "a-rather-long-label-value-to-fill-blocks-%d", i);
        label(ts, "__name__", name, 0);
        label(ts, "instance", value, 0);
        sample(ts, i, now - 1000, 0);
        w_msg(one, 1, ts);
        cr_assert_lt(n + one->n, cap);
        memcpy(big + n, one->b, one->n);
        n += one->n;
    }
    cr_assert_gt(n, 4 * 65536);
    tsdb_appender *a = tsdb_appender_begin(DB);
    tr_rw_result res;
    char err[256];
    cr_assert_eq(tr_remote_write_apply(DB, a, big, n, &res, err, sizeof err), 0, "%s", err);
    int st = 0;
    tsdb_appender_commit(a, done, &st);
    cr_assert_eq(st, 1);
    cr_assert_eq(res.samples, 5000);
    cr_assert_eq(res.refused, 0, "%s", res.first);
    cr_assert_eq(stored("{__name__=~\"rw_big_.*\"}", NULL), 5000);
    free(big), free(ts), free(one);
}
