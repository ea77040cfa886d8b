/* Prometheus remote write 1.0 decoding: the snappy block, then a streaming walker over the
 * WriteRequest that hands each sample to a sink (and tr_remote_write_apply, the sink that
 * appends to the store). The HTTP handler is src/http/remote_write.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <snappy-c.h>

#include "promwire.h"
#include "util/log.h"
#include "util/pbwire.h"
#include "util/text.h"

#define TR_RW_XSTR(x) #x
#define TR_RW_STR(x) TR_RW_XSTR(x)

int tr_remote_write_uncompress(const uint8_t *body, size_t len, size_t max_uncompressed, uint8_t **buf,
                               size_t *cap, size_t *out_len, char *err, size_t errlen) {
    size_t ulen = 0;
    *out_len = 0;
    if (snappy_uncompressed_length((const char *)body, len, &ulen) != SNAPPY_OK) {
        snprintf(err, errlen, "body is not snappy-compressed (block format)");
        return 400;
    }
    if (ulen > max_uncompressed) {
        snprintf(err, errlen, "uncompressed body of %zu bytes is over the limit of %zu bytes", ulen,
                 max_uncompressed);
        return 413;
    }
    if (ulen > *cap || !*buf) {
        uint8_t *n = malloc(ulen ? ulen : 1);
        if (!n) {
            snprintf(err, errlen, "out of memory for %zu bytes", ulen);
            return 503;
        }
        free(*buf);
        *buf = n;
        *cap = ulen ? ulen : 1;
    }
    size_t got = ulen;
    if (snappy_uncompress((const char *)body, len, (char *)*buf, &got) != SNAPPY_OK || got != ulen) {
        snprintf(err, errlen, "corrupt snappy data");
        return 400;
    }
    *out_len = got;
    return 0;
}

/* ---- the streaming decoder ----
 * Walks the uncompressed WriteRequest bytes directly (no protobuf-c unpack of the whole
 * message: that allocated a struct per label and sample and was half of the ingest CPU).
 * Wire format: each field is a varint tag (field number << 3 | wire type) followed by a
 * varint (type 0), 8 bytes (1), a varint length and that many bytes (2) or 4 bytes (5).
 * Groups (3, 4) are refused, and tags and lengths of more than 5 bytes, as protobuf-c did
 * (no encoder writes them longer). A known field with another wire type is
 * malformed; unknown fields are skipped. Field numbers from proto/prometheus_remote.proto. */

typedef struct pbcur {
    const uint8_t *p, *end;
} pbcur;

/* Growable scratch holding one label set as "name\0value\0…" plus the tsdb_label array
 * pointing into it. */
typedef struct lscratch {
    char *s;
    size_t len, cap;
    tsdb_label *l;
    size_t n, lcap;
    int too_many;
    int canonical; /* so far sorted by name, distinct, no empty value: s[0..len) is the store's key */
    int nul;       /* a NUL byte inside a name or value */
    int in_block;  /* s lies in a strblock: it cannot be moved */
} lscratch;

/* The strings of series labels live in blocks kept until the walk ends, so that a consumer
 * may hold on to them (the remote write handler batches samples by key). */
typedef struct strblock {
    struct strblock *next;
    size_t cap, used;
    char data[];
} strblock;
#define STRBLOCK_BYTES (64u << 10)

typedef struct rwdec {
    const uint8_t *base, *end;
    const tr_rw_sink *sink;
    void *ctx;
    char *err;
    size_t errlen;
    int oom;
    lscratch ser, ex, md;
    strblock *blocks; /* the first is the one being filled */
} rwdec;

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define LE64(x) __builtin_bswap64(x)
#else
#define LE64(x) (x)
#endif

static double rd_double(const uint8_t *p) {
    uint64_t b;
    memcpy(&b, p, 8);
    b = LE64(b);
    double v;
    memcpy(&v, &b, 8);
    return v;
}

__attribute__((format(printf, 3, 4))) static int malformed(rwdec *d, const uint8_t *at, const char *fmt,
                                                           ...) {
    if (d->err && d->errlen) {
        int o = snprintf(d->err, d->errlen, "malformed WriteRequest at byte %zu: ", (size_t)(at - d->base));
        if (o > 0 && (size_t)o < d->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(d->err + o, d->errlen - (size_t)o, fmt, ap);
            va_end(ap);
        }
    }
    return -1;
}

static int out_of_memory(rwdec *d) {
    d->oom = 1;
    if (d->err && d->errlen) snprintf(d->err, d->errlen, "out of memory decoding the WriteRequest");
    return -1;
}

/* A varint of at most 10 bytes whose value fits 64 bits; 0, or -1 (c->p unchanged). */
static inline int rd_varint(pbcur *c, uint64_t *out) { return tr_pb_varint(&c->p, c->end, out); }

/* Reads a field's tag. Returns 0 with *field and *wt, or -1 (reported). */
static inline __attribute__((always_inline)) int rd_tag(rwdec *d, pbcur *c, const char *msg, uint32_t *field,
                                                        unsigned *wt) {
    uint64_t t;
    const uint8_t *at = c->p;
    *field = 0;
    *wt = 0;
    if (at < c->end && *at >= 8 && *at < 0x80 && ((*at & 7) < 3 || (*at & 7) == 5)) {
        /* one byte, a field number of 1-15 and a valid wire type: the usual case */
        *field = *at >> 3;
        *wt = *at & 7;
        c->p++;
        return 0;
    }
    if (rd_varint(c, &t)) return malformed(d, at, "truncated field tag in %s", msg);
    /* a tag is 32 bits: at most 5 bytes, as protobuf-c reads it */
    if (c->p - at > 5) return malformed(d, at, "field tag of more than 5 bytes in %s", msg);
    if (t >> 32 || (t >> 3) == 0)
        return malformed(d, at, "invalid field number %llu in %s", (unsigned long long)(t >> 3), msg);
    *field = (uint32_t)(t >> 3);
    *wt = (unsigned)(t & 7);
    if (*wt == 3 || *wt == 4)
        return malformed(d, at, "groups (wire type %u) are not supported, in %s", *wt, msg);
    if (*wt > 5) return malformed(d, at, "invalid wire type %u in %s", *wt, msg);
    return 0;
}

/* The bytes of a length-delimited field (tag already read) into *sub. */
static inline int rd_len(rwdec *d, pbcur *c, const char *what, pbcur *sub) {
    uint64_t n;
    const uint8_t *at = c->p;
    sub->p = sub->end = at;
    if (rd_varint(c, &n)) return malformed(d, at, "truncated length of %s", what);
    if (c->p - at > 5) return malformed(d, at, "length of %s in more than 5 bytes", what);
    if (n > (uint64_t)(c->end - c->p)) {
        c->p = at;
        return malformed(d, at, "%s of %llu bytes runs past the end of its message (%zu bytes left)", what,
                         (unsigned long long)n, (size_t)(c->end - at));
    }
    sub->p = c->p;
    sub->end = c->p + n;
    c->p += n;
    return 0;
}

/* Skips the value of a field of wire type wt (tag already read). */
static int skip_value(rwdec *d, pbcur *c, unsigned wt, const char *msg) {
    uint64_t v;
    pbcur sub;
    switch (wt) {
    case 0:
        if (rd_varint(c, &v)) return malformed(d, c->p, "truncated varint in %s", msg);
        return 0;
    case 1:
    case 5: {
        size_t k = wt == 1 ? 8 : 4;
        if ((size_t)(c->end - c->p) < k) return malformed(d, c->p, "truncated fixed-width value in %s", msg);
        c->p += k;
        return 0;
    }
    case 2:
        return rd_len(d, c, "a field", &sub);
    default:
        return malformed(d, c->p, "invalid wire type %u in %s", wt, msg);
    }
}

static int wrong_type(rwdec *d, const uint8_t *at, const char *field, unsigned wt, unsigned want) {
    return malformed(d, at, "%s has wire type %u, expected %u", field, wt, want);
}

/* Strings are copied 8 bytes at a time when short: room for the overshoot. */
#define COPY_SLACK 16

/* Makes room for `need` more bytes of strings (bounded by the caller: at most the size of the
 * message they come from, plus the slack). */
static int ls_grow(rwdec *d, lscratch *s, size_t need) {
    if (s->in_block) return out_of_memory(d); /* reserved for the whole series: cannot happen */
    size_t c = s->cap ? s->cap * 2 : 1024;
    while (c - s->len < need)
        c *= 2;
    char *n = malloc(c);
    if (!n) return out_of_memory(d);
    if (s->len) memcpy(n, s->s, s->len);
    /* labels point into the old buffer: move them */
    for (size_t i = 0; i < s->n; i++) {
        s->l[i].name = n + (s->l[i].name - s->s);
        s->l[i].value = n + (s->l[i].value - s->s);
    }
    free(s->s);
    s->s = n;
    s->cap = c;
    return 0;
}

static inline int ls_reserve(rwdec *d, lscratch *s, size_t need) {
    return s->cap - s->len >= need ? 0 : ls_grow(d, s, need);
}

/* 0x80 in each byte of x that is zero, 0 in the others (exact: no false positives). */
static inline uint64_t zero_bytes(uint64_t x) {
    const uint64_t lo7 = 0x7f7f7f7f7f7f7f7fULL;
    return ~(((x & lo7) + lo7) | x | lo7);
}

/* Copies a string of the request and a terminating NUL to dst (which has COPY_SLACK bytes of
 * room past it), checking it for NUL bytes on the way: 8 bytes at a time when the request
 * has the whole last word readable (names and values are short). Returns 1 when the string
 * holds a NUL. */
static inline int copy_str(const rwdec *d, char *dst, const uint8_t *src, size_t n) {
    int nul;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (n <= 64 && (size_t)(d->end - src) >= ((n + 7) & ~(size_t)7)) {
        uint64_t z = 0, w;
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            memcpy(&w, src + i, 8);
            memcpy(dst + i, &w, 8);
            z |= zero_bytes(w);
        }
        if (i < n) {
            /* byte k of the word is bits 8k..8k+7: keep the flags of the string's bytes */
            memcpy(&w, src + i, 8);
            memcpy(dst + i, &w, 8);
            z |= zero_bytes(w) & ((1ULL << (8 * (n - i))) - 1);
        }
        dst[n] = 0;
        return z != 0;
    }
#endif
    if (n) memcpy(dst, src, n);
    nul = n && memchr(src, 0, n) != NULL;
    dst[n] = 0;
    return nul;
}

/* Parses one Label message into the scratch. */
static inline __attribute__((always_inline)) int parse_label(rwdec *d, pbcur c, lscratch *s) {
    const uint8_t *name = c.p, *value = c.p; /* absent: empty (and a valid place to copy from) */
    size_t nl = 0, vl = 0;
    const uint8_t *p = c.p;
    size_t len = (size_t)(c.end - p), a, b;
    if (len >= 4 && p[0] == 0x0a && (a = p[1]) < 0x80 && a + 4 <= len && p[2 + a] == 0x12 &&
        (b = p[3 + a]) < 0x80 && a + b + 4 == len) {
        /* exactly a name and a value of under 128 bytes each, as every sender writes them */
        name = p + 2, nl = a;
        value = p + 4 + a, vl = b;
        c.p = c.end;
    }
    while (c.p < c.end) {
        const uint8_t *at = c.p;
        uint32_t f;
        unsigned wt;
        pbcur sub;
        if (rd_tag(d, &c, "Label", &f, &wt)) return -1;
        if (f == 1 || f == 2) { /* name, value: the last one wins */
            const char *what = f == 1 ? "Label.name" : "Label.value";
            if (wt != 2) return wrong_type(d, at, what, wt, 2);
            if (rd_len(d, &c, what, &sub)) return -1;
            if (f == 1)
                name = sub.p, nl = (size_t)(sub.end - sub.p);
            else
                value = sub.p, vl = (size_t)(sub.end - sub.p);
        } else if (skip_value(d, &c, wt, "Label")) {
            return -1;
        }
    }
    if (__builtin_expect(s->n == TR_RW_MAX_LABELS, 0)) {
        s->too_many = 1;
        return 0;
    }
    if (__builtin_expect(s->n == s->lcap, 0)) {
        size_t nc = s->lcap ? s->lcap * 2 : 32;
        tsdb_label *l = realloc(s->l, nc * sizeof *l);
        if (!l) return out_of_memory(d);
        s->l = l;
        s->lcap = nc;
    }
    if (ls_reserve(d, s, nl + vl + 2 + COPY_SLACK)) return -1;
    /* in locals: the copies store through char pointers, which could alias the scratch's fields */
    size_t n = s->n;
    tsdb_label *l = s->l;
    char *o = s->s + s->len;
    const char *prev = n ? l[n - 1].name : NULL;
    int canonical = s->canonical;
    int nul = copy_str(d, o, name, nl) | copy_str(d, o + nl + 1, value, vl);
    if (canonical) {
        /* byte order, as strcmp; almost always settled by the first byte */
        unsigned char p0 = prev ? (unsigned char)prev[0] : 0, c0 = (unsigned char)o[0];
        if (!vl || (prev && (p0 > c0 || (p0 == c0 && strcmp(prev, o) >= 0)))) s->canonical = 0;
    }
    l[n].name = o;
    l[n].value = o + nl + 1;
    s->n = n + 1;
    s->len += nl + vl + 2;
    s->nul |= nul;
    return 0;
}

static void ls_clear(lscratch *s) {
    s->len = 0;
    s->n = 0;
    s->too_many = 0;
    s->canonical = 1;
    s->nul = 0;
}

/* Why a label set in the scratch cannot be used, or NULL. */
static const char *ls_problem(const lscratch *s) {
    if (s->too_many) return "more than " TR_RW_STR(TR_RW_MAX_LABELS) " labels";
    if (s->nul) return "a label name or value contains a NUL byte";
    return NULL;
}

static int parse_sample(rwdec *d, pbcur c, int64_t *t, double *v) {
    *t = 0;
    *v = 0;
    if (c.end - c.p >= 11 && c.p[0] == 0x09 && c.p[9] == 0x10) {
        /* the value then the timestamp and nothing else, as every sender writes them */
        pbcur ts = {c.p + 10, c.end};
        uint64_t x;
        if (rd_varint(&ts, &x) == 0 && ts.p == c.end) {
            *v = rd_double(c.p + 1);
            *t = (int64_t)x;
            return 0;
        }
    }
    while (c.p < c.end) {
        const uint8_t *at = c.p;
        uint32_t f;
        unsigned wt;
        uint64_t x;
        if (rd_tag(d, &c, "Sample", &f, &wt)) return -1;
        if (f == 1) {
            if (wt != 1) return wrong_type(d, at, "Sample.value", wt, 1);
            if (c.end - c.p < 8) return malformed(d, c.p, "truncated Sample.value");
            *v = rd_double(c.p);
            c.p += 8;
        } else if (f == 2) {
            if (wt != 0) return wrong_type(d, at, "Sample.timestamp", wt, 0);
            if (rd_varint(&c, &x)) return malformed(d, c.p, "truncated Sample.timestamp");
            *t = (int64_t)x;
        } else if (skip_value(d, &c, wt, "Sample")) {
            return -1;
        }
    }
    return 0;
}

static int parse_exemplar(rwdec *d, pbcur c, int64_t *t, double *v) {
    *t = 0;
    *v = 0;
    ls_clear(&d->ex);
    /* the strings of an exemplar are at most as long as the exemplar */
    if (ls_reserve(d, &d->ex, (size_t)(c.end - c.p) + 1 + COPY_SLACK)) return -1;
    while (c.p < c.end) {
        const uint8_t *at = c.p;
        uint32_t f;
        unsigned wt;
        uint64_t x;
        pbcur sub;
        if (rd_tag(d, &c, "Exemplar", &f, &wt)) return -1;
        switch (f) {
        case 1:
            if (wt != 2) return wrong_type(d, at, "Exemplar.labels", wt, 2);
            if (rd_len(d, &c, "Exemplar.labels", &sub) || parse_label(d, sub, &d->ex)) return -1;
            break;
        case 2:
            if (wt != 1) return wrong_type(d, at, "Exemplar.value", wt, 1);
            if (c.end - c.p < 8) return malformed(d, c.p, "truncated Exemplar.value");
            *v = rd_double(c.p);
            c.p += 8;
            break;
        case 3:
            if (wt != 0) return wrong_type(d, at, "Exemplar.timestamp", wt, 0);
            if (rd_varint(&c, &x)) return malformed(d, c.p, "truncated Exemplar.timestamp");
            *t = (int64_t)x;
            break;
        default:
            if (skip_value(d, &c, wt, "Exemplar")) return -1;
        }
    }
    return 0;
}

/* A native histogram is refused, but must still be well-formed: every field's wire type is
 * checked (repeated numbers packed or not), BucketSpans and packed contents walked. */
static int check_packed(rwdec *d, pbcur c, int varints, const char *what) {
    if (!varints) {
        if ((c.end - c.p) % 8) return malformed(d, c.p, "packed %s is not a whole number of doubles", what);
        return 0;
    }
    while (c.p < c.end) {
        uint64_t x;
        if (rd_varint(&c, &x)) return malformed(d, c.p, "truncated varint in packed %s", what);
    }
    return 0;
}

static int check_span(rwdec *d, pbcur c) {
    while (c.p < c.end) {
        const uint8_t *at = c.p;
        uint32_t f;
        unsigned wt;
        if (rd_tag(d, &c, "BucketSpan", &f, &wt)) return -1;
        if ((f == 1 || f == 2) && wt != 0)
            return wrong_type(d, at, f == 1 ? "BucketSpan.offset" : "BucketSpan.length", wt, 0);
        if (skip_value(d, &c, wt, "BucketSpan")) return -1;
    }
    return 0;
}

static int check_histogram(rwdec *d, pbcur c) {
    while (c.p < c.end) {
        const uint8_t *at = c.p;
        uint32_t f;
        unsigned wt;
        if (rd_tag(d, &c, "Histogram", &f, &wt)) return -1;
        pbcur sub;
        switch (f) {
        case 1:
        case 4:
        case 6:
        case 14:
        case 15: /* varints */
            if (wt != 0) return wrong_type(d, at, "a Histogram varint field", wt, 0);
            break;
        case 2:
        case 3:
        case 5:
        case 7: /* doubles */
            if (wt != 1) return wrong_type(d, at, "a Histogram double field", wt, 1);
            break;
        case 8:
        case 11: /* BucketSpans */
            if (wt != 2) return wrong_type(d, at, "Histogram spans", wt, 2);
            if (rd_len(d, &c, "Histogram spans", &sub) || check_span(d, sub)) return -1;
            continue;
        case 9:
        case 12: /* sint64 deltas, packed or not */
            if (wt == 2) {
                if (rd_len(d, &c, "Histogram deltas", &sub) || check_packed(d, sub, 1, "Histogram deltas"))
                    return -1;
                continue;
            }
            if (wt != 0) return wrong_type(d, at, "Histogram deltas", wt, 0);
            break;
        case 10:
        case 13:
        case 16: /* doubles, packed or not */
            if (wt == 2) {
                if (rd_len(d, &c, "Histogram counts", &sub) || check_packed(d, sub, 0, "Histogram counts"))
                    return -1;
                continue;
            }
            if (wt != 1) return wrong_type(d, at, "Histogram counts", wt, 1);
            break;
        }
        if (skip_value(d, &c, wt, "Histogram")) return -1;
    }
    return 0;
}

/* One TimeSeries: first its labels (wherever they are in the message), then, in order, its
 * samples, exemplars and histograms. */
static int parse_series(rwdec *d, pbcur ts) {
    lscratch *s = &d->ser;
    ls_clear(s);
    /* the strings of a series are at most as long as the series: room reserved at once in
     * the current block; only what is used is kept */
    size_t need = (size_t)(ts.end - ts.p) + 1 + COPY_SLACK;
    strblock *b = d->blocks;
    if (!b || b->cap - b->used < need) {
        size_t cap = need > STRBLOCK_BYTES ? need : STRBLOCK_BYTES;
        b = malloc(sizeof *b + cap);
        if (!b) return out_of_memory(d);
        b->cap = cap;
        b->used = 0;
        b->next = d->blocks;
        d->blocks = b;
    }
    s->s = b->data + b->used;
    s->cap = b->cap - b->used;
    s->in_block = 1;
    static const char *const names[] = {"", "TimeSeries.labels", "TimeSeries.samples", "TimeSeries.exemplars",
                                        "TimeSeries.histograms"};
    const uint8_t *rest = NULL; /* the first field that is not a label */
    pbcur c = ts;
    while (c.p < c.end) {
        const uint8_t *at = c.p;
        uint32_t f;
        unsigned wt;
        pbcur sub;
        if (c.p[0] == 0x0a) { /* a label: the usual case, without the general tag checks */
            c.p++;
            if (rd_len(d, &c, names[1], &sub) || parse_label(d, sub, s)) return -1;
            continue;
        }
        if (rd_tag(d, &c, "TimeSeries", &f, &wt)) return -1;
        if (f >= 1 && f <= 4 && wt != 2) return wrong_type(d, at, names[f], wt, 2);
        if (f == 1) {
            if (rd_len(d, &c, names[1], &sub) || parse_label(d, sub, s)) return -1;
            continue;
        }
        if (!rest) rest = at;
        if (skip_value(d, &c, wt, "TimeSeries")) return -1;
    }
    b->used += s->len;
    tr_rw_series ser = {s->l, s->n, NULL, 0, ls_problem(s)};
    if (!ser.problem && s->canonical && s->n) {
        ser.key = s->s;
        ser.keylen = s->len;
    }
    if (d->sink->series) d->sink->series(d->ctx, &ser);
    /* the second walk: the structure was checked by the first, only contents are left */
    for (c.p = rest ? rest : c.end; c.p < c.end;) {
        uint32_t f;
        unsigned wt;
        pbcur sub;
        int64_t t;
        double v;
        if (c.p[0] == 0x12) { /* a sample: the usual case */
            c.p++;
            rd_len(d, &c, names[2], &sub);
            if (parse_sample(d, sub, &t, &v)) return -1;
            if (d->sink->sample) d->sink->sample(d->ctx, t, v);
            continue;
        }
        rd_tag(d, &c, "TimeSeries", &f, &wt);
        if (f < 2 || f > 4) {
            skip_value(d, &c, wt, "TimeSeries");
            continue;
        }
        rd_len(d, &c, names[f], &sub);
        if (f == 2) {
            if (parse_sample(d, sub, &t, &v)) return -1;
            if (d->sink->sample) d->sink->sample(d->ctx, t, v);
        } else if (f == 3) {
            if (parse_exemplar(d, sub, &t, &v)) return -1;
            if (d->sink->exemplar) d->sink->exemplar(d->ctx, d->ex.l, d->ex.n, ls_problem(&d->ex), t, v);
        } else {
            if (check_histogram(d, sub)) return -1;
            if (d->sink->histogram) d->sink->histogram(d->ctx);
        }
    }
    return 0;
}

/* One MetricMetadata; emits it when `emit`. */
static int parse_metadata(rwdec *d, pbcur c, int emit) {
    lscratch *s = &d->md;
    ls_clear(s);
    if (ls_reserve(d, s, (size_t)(c.end - c.p) + 3)) return -1;
    uint64_t type = 0;
    pbcur str[6] = {{0}};
    while (c.p < c.end) {
        const uint8_t *at = c.p;
        uint32_t f;
        unsigned wt;
        if (rd_tag(d, &c, "MetricMetadata", &f, &wt)) return -1;
        if (f == 1) {
            if (wt != 0) return wrong_type(d, at, "MetricMetadata.type", wt, 0);
            if (rd_varint(&c, &type)) return malformed(d, c.p, "truncated MetricMetadata.type");
        } else if (f == 2 || f == 4 || f == 5) {
            if (wt != 2) return wrong_type(d, at, "a MetricMetadata string", wt, 2);
            if (rd_len(d, &c, "a MetricMetadata string", &str[f])) return -1;
        } else if (skip_value(d, &c, wt, "MetricMetadata")) {
            return -1;
        }
    }
    if (!emit || !d->sink->metadata) return 0;
    const char *out[6] = {0}, *problem = NULL;
    for (int f = 2; f <= 5; f++) {
        if (f == 3) continue;
        size_t n = (size_t)(str[f].end - str[f].p);
        char *o = s->s + s->len;
        if (n) memcpy(o, str[f].p, n);
        o[n] = 0;
        s->len += n + 1;
        out[f] = o;
        if (n && memchr(o, 0, n)) problem = "a metadata string contains a NUL byte";
    }
    /* the enum is an int32 on the wire: a negative one is sent as a 64-bit varint */
    d->sink->metadata(d->ctx, (int)(int32_t)type, out[2], out[4], out[5], problem);
    return 0;
}

/* The WriteRequest: timeseries as they come; metadata only after the whole request was
 * found well-formed (it is stored at once, not through the appender a caller rolls back). */
int tr_remote_write_parse(const uint8_t *pb, size_t len, const tr_rw_sink *sink, void *ctx, char *err,
                          size_t errlen) {
    rwdec d = {.base = pb, .end = pb + len, .sink = sink, .ctx = ctx, .err = err, .errlen = errlen};
    if (err && errlen) err[0] = 0;
    int rc = 0, has_md = 0;
    pbcur c = {pb, pb + len};
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        if (pass == 1 && sink->end) sink->end(ctx); /* the series' strings are still there */
        if (pass == 1 && !has_md) break;
        c.p = pb;
        while (c.p < c.end) {
            pbcur sub;
            const uint8_t *at = c.p;
            uint32_t f;
            unsigned wt;
            if (rd_tag(&d, &c, "WriteRequest", &f, &wt)) {
                rc = -1;
                break;
            }
            if ((f == 1 || f == 3) && wt != 2) {
                rc = wrong_type(&d, at, f == 1 ? "WriteRequest.timeseries" : "WriteRequest.metadata", wt, 2);
                break;
            }
            if (f == 1) {
                if (rd_len(&d, &c, "WriteRequest.timeseries", &sub) || (pass == 0 && parse_series(&d, sub)))
                    rc = -1;
            } else if (f == 3) {
                has_md = 1;
                if (rd_len(&d, &c, "WriteRequest.metadata", &sub) || parse_metadata(&d, sub, pass == 1))
                    rc = -1;
            } else if (skip_value(&d, &c, wt, "WriteRequest")) {
                rc = -1;
            }
            if (rc) break;
        }
    }
    while (d.blocks) {
        strblock *n = d.blocks->next;
        free(d.blocks);
        d.blocks = n;
    }
    free(d.ser.l);
    free(d.ex.s);
    free(d.ex.l);
    free(d.md.s);
    free(d.md.l);
    if (rc == 0) return 0;
    return d.oom ? 503 : 400;
}

/* ---- from a WriteRequest to the store ---- */

/* Samples of series whose labels came sorted are handed to the store in batches (their
 * lookups overlap); their keys stay valid until the decoder returns. */
#define APPLY_BATCH 64

typedef struct apply_ctx {
    tsdb *db;
    tsdb_appender *app;
    const tsdb_label *lb;
    size_t n;
    const char *key;
    size_t keylen;
    const char *problem;
    tr_rw_result *res;
    tsdb_keyed batch[APPLY_BATCH];
    size_t nbatch;
} apply_ctx;

/* Writes `{a="b",…}` of a series (for messages), cut to fit. */
static void series_text(char *out, size_t cap, const tsdb_label *l, size_t n) {
    size_t o = 0;
    const char *name = "";
    for (size_t i = 0; i < n; i++)
        if (strcmp(l[i].name, "__name__") == 0) name = l[i].value;
    o += snprintf(out + o, cap - o, "%.80s{", name);
    int first = 1;
    for (size_t i = 0; i < n && o < cap; i++) {
        if (strcmp(l[i].name, "__name__") == 0) continue;
        o += snprintf(out + o, cap - o, "%s%.40s=\"%.60s\"", first ? "" : ",", l[i].name, l[i].value);
        first = 0;
    }
    if (o < cap) snprintf(out + o, cap - o, "}");
}

static void on_series(void *ctx, const tr_rw_series *s) {
    apply_ctx *c = ctx;
    c->lb = s->labels;
    c->n = s->n;
    c->key = s->key;
    c->keylen = s->keylen;
    c->problem = s->problem;
}

static void refused(tr_rw_result *r, const char *why, const tsdb_label *l, size_t n, int64_t t) {
    r->refused++;
    if (r->first[0]) return;
    char ser[300];
    series_text(ser, sizeof ser, l, n);
    snprintf(r->first, sizeof r->first, "%s for %s at %lld", why, ser, (long long)t);
}

/* Hands the batched samples to the store, in order. */
static void flush(apply_ctx *c) {
    if (!c->nbatch) return;
    int rc[APPLY_BATCH];
    if (tsdb_appender_add_keys(c->app, c->batch, c->nbatch, rc))
        for (size_t i = 0; i < c->nbatch; i++) {
            if (rc[i] == TSDB_OK) continue;
            /* the series' labels back from its key, for the message */
            tsdb_label l[64];
            size_t n = 0;
            for (const char *p = c->batch[i].key, *end = p + c->batch[i].len; p < end && n < 64; n++) {
                l[n].name = p;
                l[n].value = p + strlen(p) + 1;
                p = l[n].value + strlen(l[n].value) + 1;
            }
            refused(c->res, tsdb_strerror(rc[i]), l, n, c->batch[i].t_ms);
        }
    c->nbatch = 0;
}

static void on_sample(void *ctx, int64_t t, double v) {
    apply_ctx *c = ctx;
    c->res->samples++;
    /* labels are validated by the store (names, lengths, UTF-8) when they create a series */
    if (c->key) { /* sorted, as senders send them */
        c->batch[c->nbatch++] = (tsdb_keyed){c->key, c->keylen, t, v};
        if (c->nbatch == APPLY_BATCH) flush(c);
        return;
    }
    flush(c); /* keeps refusals (and each series' samples) in wire order */
    int rc = c->problem ? TSDB_ERR_LABEL_NAME : tsdb_appender_add(c->app, c->lb, c->n, t, v);
    if (rc != TSDB_OK) refused(c->res, c->problem ? c->problem : tsdb_strerror(rc), c->lb, c->n, t);
}

static void on_exemplar(void *ctx, const tsdb_label *el, size_t en, const char *problem, int64_t t,
                        double v) {
    apply_ctx *c = ctx;
    if (c->problem || problem) return;
    (void)tsdb_appender_add_exemplar(c->app, c->lb, c->n, el, en, t, v);
}

static void on_end(void *ctx) { flush(ctx); }

static void on_histogram(void *ctx) {
    apply_ctx *c = ctx;
    c->res->histograms++;
}

static const char *metadata_type(int t) {
    /* MetricMetadata.MetricType */
    static const char *const names[] = {"unknown",        "counter", "gauge", "histogram",
                                        "gaugehistogram", "summary", "info",  "stateset"};
    return t >= 0 && t < 8 ? names[t] : "unknown";
}

static void on_metadata(void *ctx, int type, const char *family, const char *help, const char *unit,
                        const char *problem) {
    apply_ctx *c = ctx;
    if (problem || !*family || !tr_utf8_valid(family, strlen(family)) || !tr_utf8_valid(help, strlen(help)) ||
        !tr_utf8_valid(unit, strlen(unit)))
        return;
    tsdb_set_metadata(c->db, family, metadata_type(type), *help ? help : NULL, *unit ? unit : NULL);
}

int tr_remote_write_apply(tsdb *db, tsdb_appender *app, const uint8_t *pb, size_t len, tr_rw_result *res,
                          char *err, size_t errlen) {
    memset(res, 0, sizeof *res);
    apply_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return 503;
    }
    *c = (apply_ctx){.db = db, .app = app, .res = res};
    static const tr_rw_sink sink = {on_series, on_sample, on_exemplar, on_histogram, on_metadata, on_end};
    int rc = tr_remote_write_parse(pb, len, &sink, c, err, errlen);
    free(c);
    return rc;
}
