/* The Prometheus text exposition format parser behind VictoriaMetrics' import
 * (POST /api/v1/import/prometheus, handled in src/http/prom_import.c): a pure function over
 * (buf, len), fuzzed. Bad lines are counted and skipped. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <time.h>

#include "promwire.h"
#include "util/hash.h"
#include "util/text.h"

/* ---------------------------------------------------------------- the parser */

typedef struct cursor {
    const char *p, *end;
} cursor;

static void skip_ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

static int name_start(char ch) { return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_'; }
static int name_char(char ch) { return name_start(ch) || (ch >= '0' && ch <= '9'); }

/* A metric name ([a-zA-Z_:][a-zA-Z0-9_:]*); returns its length, 0 when there is none. */
static size_t metric_name_len(const cursor *c) {
    const char *p = c->p;
    if (p >= c->end || !(name_start(*p) || *p == ':')) return 0;
    while (p < c->end && (name_char(*p) || *p == ':'))
        p++;
    return (size_t)(p - c->p);
}

static size_t label_name_len(const cursor *c) {
    const char *p = c->p;
    if (p >= c->end || !name_start(*p)) return 0;
    while (p < c->end && name_char(*p))
        p++;
    return (size_t)(p - c->p);
}

/* A quoted label value with \\, \" and \n escapes, unescaped into the arena. Returns NULL with
 * *why set on a syntax error (or *oom). */
static char *quoted(cursor *c, tr_arena *a, const char **why, int *oom) {
    if (c->p >= c->end || *c->p != '"') {
        *why = "expected '\"' to start a label value";
        return NULL;
    }
    c->p++;
    const char *start = c->p;
    size_t n = 0;
    for (const char *q = start;; q++) {
        if (q >= c->end) {
            *why = "label value not terminated";
            return NULL;
        }
        if (*q == '"') break;
        if (*q == '\\') {
            if (q + 1 >= c->end) {
                *why = "label value not terminated";
                return NULL;
            }
            q++;
        }
        n++;
    }
    char *out = tr_arena_alloc(a, n + 1);
    if (!out) {
        *oom = 1;
        return NULL;
    }
    size_t o = 0;
    while (*c->p != '"') {
        char ch = *c->p++;
        if (ch == '\\') {
            char e = *c->p++;
            if (e == '\\' || e == '"')
                ch = e;
            else if (e == 'n')
                ch = '\n';
            else {
                *why = "invalid escape sequence in a label value";
                return NULL;
            }
        }
        out[o++] = ch;
    }
    c->p++;
    out[o] = 0;
    if (!tr_utf8_valid(out, o)) {
        *why = "label value is not valid UTF-8";
        return NULL;
    }
    return out;
}

/* The token up to the next blank, NUL-terminated in `tmp` (cap bytes); 0 when too long/empty. */
static size_t token(cursor *c, char *tmp, size_t cap) {
    const char *s = c->p;
    while (c->p < c->end && *c->p != ' ' && *c->p != '\t')
        c->p++;
    size_t n = (size_t)(c->p - s);
    if (n == 0 || n >= cap) return 0;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    return n;
}

/* Go's ParseFloat as the text format uses it: decimal or hex floats, NaN and ±Inf spelled any
 * case (and "infinity"). */
static int parse_float(const char *s, double *out) {
    const char *t = s;
    if (*t == '+' || *t == '-') t++;
    if (!strcasecmp(t, "inf") || !strcasecmp(t, "infinity")) {
        *out = *s == '-' ? -INFINITY : INFINITY;
        return 0;
    }
    if (!strcasecmp(s, "nan")) {
        *out = NAN;
        return 0;
    }
    for (const char *q = t; *q; q++) /* strtod's "nan(…)" and such are not numbers here */
        if (!strchr("0123456789.eEpPxXabcdefABCDEF+-", *q)) return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end) return -1;
    if (errno == ERANGE && isinf(v)) return -1; /* Go reports out-of-range values as errors */
    *out = v;
    return 0;
}

typedef tr_text_meta metaent;

/* The families met so far: their entries, and an open-addressing index of them by name
 * (a body may hold hundreds of thousands of families, each asked for by its HELP and TYPE). */
typedef struct metatab {
    metaent *ents;
    size_t n, cap;
    uint32_t *idx; /* entry + 1; 0: empty */
    size_t icap;   /* a power of two, at least twice n */
} metatab;

static size_t name_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return (size_t)tr_mix64(h);
}

/* The metadata entry of a family, added if new. */
static metaent *meta_get(tr_arena *a, metatab *t, const char *fam, size_t fl) {
    if ((t->n + 1) * 2 > t->icap) { /* grow the index (and rebuild it) */
        size_t ncap = t->icap ? t->icap * 2 : 64;
        uint32_t *ni = tr_arena_alloc(a, ncap * sizeof *ni);
        if (!ni || t->n >= UINT32_MAX - 1) return NULL;
        memset(ni, 0, ncap * sizeof *ni);
        for (size_t i = 0; i < t->n; i++) {
            size_t k = name_hash(t->ents[i].family, strlen(t->ents[i].family)) & (ncap - 1);
            while (ni[k])
                k = (k + 1) & (ncap - 1);
            ni[k] = (uint32_t)i + 1;
        }
        t->idx = ni;
        t->icap = ncap;
    }
    size_t k = name_hash(fam, fl) & (t->icap - 1);
    for (; t->idx[k]; k = (k + 1) & (t->icap - 1)) {
        metaent *e = &t->ents[t->idx[k] - 1];
        if (strncmp(e->family, fam, fl) == 0 && e->family[fl] == 0) return e;
    }
    if (t->n == t->cap) {
        size_t c = t->cap ? t->cap * 2 : 16;
        metaent *ne = tr_arena_alloc(a, c * sizeof *ne);
        if (!ne) return NULL;
        if (t->n) memcpy(ne, t->ents, t->n * sizeof *ne);
        t->ents = ne;
        t->cap = c;
    }
    metaent *e = &t->ents[t->n];
    e->type = e->help = NULL;
    e->family = tr_arena_strndup(a, fam, fl);
    if (!e->family) return NULL;
    t->idx[k] = (uint32_t)++t->n;
    return e;
}

static const char *const types[][2] = {
    {"counter", "counter"},
    {"gauge", "gauge"},
    {"histogram", "histogram"},
    {"summary", "summary"},
    {"untyped", "unknown"},
    {"unknown", "unknown"},
    {"gaugehistogram", "gaugehistogram"},
    {"info", "info"},
    {"stateset", "stateset"},
};

/* # HELP / # TYPE; other comments are ignored. Returns 0, 1 (bad line, *why set), -1 (OOM). */
static int comment_line(cursor *c, tr_arena *a, metatab *mt, const char **why) {
    c->p++; /* '#' */
    skip_ws(c);
    int help = 0;
    if (c->end - c->p > 4 && memcmp(c->p, "HELP", 4) == 0 && (c->p[4] == ' ' || c->p[4] == '\t'))
        help = 1;
    else if (!(c->end - c->p > 4 && memcmp(c->p, "TYPE", 4) == 0 && (c->p[4] == ' ' || c->p[4] == '\t')))
        return 0;
    c->p += 4;
    skip_ws(c);
    size_t fl = metric_name_len(c);
    if (!fl) {
        *why = "invalid metric name in a HELP or TYPE line";
        return 1;
    }
    const char *fam = c->p;
    c->p += fl;
    if (c->p < c->end && *c->p != ' ' && *c->p != '\t') {
        *why = "invalid metric name in a HELP or TYPE line";
        return 1;
    }
    skip_ws(c);
    if (help) {
        size_t tl = (size_t)(c->end - c->p);
        char *h = tr_arena_alloc(a, tl + 1);
        if (!h) return -1;
        size_t o = 0;
        for (const char *q = c->p; q < c->end; q++) {
            if (*q == '\\' && q + 1 < c->end && (q[1] == '\\' || q[1] == 'n')) {
                h[o++] = q[1] == 'n' ? '\n' : '\\';
                q++;
            } else {
                h[o++] = *q;
            }
        }
        h[o] = 0;
        if (!tr_utf8_valid(h, o)) {
            *why = "HELP text is not valid UTF-8";
            return 1;
        }
        metaent *e = meta_get(a, mt, fam, fl);
        if (!e) return -1;
        e->help = h;
        return 0;
    }
    const char *t = c->p;
    while (c->p < c->end && *c->p != ' ' && *c->p != '\t')
        c->p++;
    size_t tl = (size_t)(c->p - t);
    skip_ws(c);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strlen(types[i][0]) == tl && memcmp(types[i][0], t, tl) == 0 && c->p == c->end) {
            metaent *e = meta_get(a, mt, fam, fl);
            if (!e) return -1;
            e->type = types[i][1];
            return 0;
        }
    *why = "unknown metric type in a TYPE line";
    return 1;
}

/* One sample line. Returns 0 (sample in *s), 1 (bad line, *why set) or -1 (OOM). */
static int sample_line(cursor *c, tr_arena *a, tr_text_sample *s, const char **why) {
    int oom = 0;
    size_t nl = metric_name_len(c);
    const char *name = c->p;
    c->p += nl;
    size_t cap = 8, n = 1;
    tsdb_label *l = tr_arena_alloc(a, cap * sizeof *l);
    if (!l) return -1;
    l[0].name = "__name__";
    l[0].value = nl ? tr_arena_strndup(a, name, nl) : NULL;
    if (nl && !l[0].value) return -1;
    if (c->p < c->end && *c->p == '{') {
        c->p++;
        for (;;) {
            skip_ws(c);
            if (c->p < c->end && *c->p == '}') {
                c->p++;
                break;
            }
            size_t ln = label_name_len(c);
            if (!ln) {
                *why = "expected a label name or '}'";
                return 1;
            }
            const char *lname = c->p;
            c->p += ln;
            skip_ws(c);
            if (c->p >= c->end || *c->p != '=') {
                *why = "expected '=' after a label name";
                return 1;
            }
            c->p++;
            skip_ws(c);
            char *v = quoted(c, a, why, &oom);
            if (!v) return oom ? -1 : 1;
            if (ln == 8 && memcmp(lname, "__name__", 8) == 0) {
                if (l[0].value) {
                    *why = "duplicate label __name__";
                    return 1;
                }
                l[0].value = v;
            } else {
                for (size_t i = 1; i < n; i++)
                    if (strlen(l[i].name) == ln && memcmp(l[i].name, lname, ln) == 0) {
                        *why = "duplicate label name";
                        return 1;
                    }
                if (n == cap) {
                    tsdb_label *nlb = tr_arena_alloc(a, cap * 2 * sizeof *nlb);
                    if (!nlb) return -1;
                    memcpy(nlb, l, n * sizeof *nlb);
                    l = nlb;
                    cap *= 2;
                }
                l[n].name = tr_arena_strndup(a, lname, ln);
                if (!l[n].name) return -1;
                l[n++].value = v;
            }
            skip_ws(c);
            if (c->p < c->end && *c->p == ',') {
                c->p++;
                continue;
            }
            if (c->p < c->end && *c->p == '}') {
                c->p++;
                break;
            }
            *why = "expected ',' or '}' after a label value";
            return 1;
        }
    }
    if (!l[0].value || !l[0].value[0]) {
        *why = "a sample line must start with a metric name";
        return 1;
    }
    if (!nl) {
        cursor nc = {l[0].value, l[0].value + strlen(l[0].value)};
        if (metric_name_len(&nc) != strlen(l[0].value)) {
            *why = "invalid metric name in __name__";
            return 1;
        }
    }
    if (c->p >= c->end || (*c->p != ' ' && *c->p != '\t')) {
        *why = "expected a blank before the value";
        return 1;
    }
    skip_ws(c);
    char tmp[64];
    if (!token(c, tmp, sizeof tmp) || parse_float(tmp, &s->value)) {
        *why = "invalid sample value";
        return 1;
    }
    skip_ws(c);
    s->has_t = 0;
    if (c->p < c->end && *c->p != '#') {
        if (!token(c, tmp, sizeof tmp)) {
            *why = "invalid timestamp";
            return 1;
        }
        errno = 0;
        char *end;
        long long t = strtoll(tmp, &end, 10);
        if (*end || errno) {
            *why = "invalid timestamp (want integer milliseconds)";
            return 1;
        }
        s->t_ms = t;
        s->has_t = 1;
        skip_ws(c);
    }
    /* an OpenMetrics exemplar (" # {…} v [t]") may follow: not kept */
    if (c->p < c->end && *c->p != '#') {
        *why = "unexpected text after the sample";
        return 1;
    }
    s->labels = l;
    s->n_labels = n;
    return 0;
}

int tr_prom_text_parse(const char *buf, size_t len, tr_arena *a, tr_text_result *out) {
    memset(out, 0, sizeof *out);
    size_t scap = 0, lineno = 0;
    metatab mt = {0};
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *ls = p;
        lineno++;
        cursor c = {p, le};
        if (c.end > c.p && c.end[-1] == '\r') c.end--;
        p = nl ? nl + 1 : end;
        skip_ws(&c);
        if (c.p == c.end) continue;
        const char *why = NULL;
        int rc;
        if (*c.p == '#') {
            rc = comment_line(&c, a, &mt, &why);
        } else {
            if (out->n_samples == scap) {
                size_t nc = scap ? scap * 2 : 64;
                tr_text_sample *ns = tr_arena_alloc(a, nc * sizeof *ns);
                if (!ns) return -1;
                if (out->n_samples) memcpy(ns, out->samples, out->n_samples * sizeof *ns);
                out->samples = ns;
                scap = nc;
            }
            rc = sample_line(&c, a, &out->samples[out->n_samples], &why);
            if (rc == 0) out->n_samples++;
        }
        if (rc < 0) return -1;
        if (rc > 0) {
            if (!out->bad_lines) {
                /* quote the start of the line, cut on a character boundary */
                size_t ql = (size_t)(le - ls) > 80 ? 80 : (size_t)(le - ls);
                while (ql && ql < (size_t)(le - ls) && ((unsigned char)ls[ql] & 0xC0) == 0x80)
                    ql--;
                snprintf(out->err, sizeof out->err, "line %zu: %s: %.*s", lineno, why, (int)ql, ls);
            }
            out->bad_lines++;
        }
    }
    out->meta = mt.ents;
    out->n_meta = mt.n;
    return 0;
}
