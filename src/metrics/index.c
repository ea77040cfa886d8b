/* Label matchers (regexes through util/re.h: RE2 with Prometheus's semantics), the series selector
 * parser used by match[] parameters, and the generic postings selection shared by the head
 * and the blocks. */
#include "metrics_int.h"
#include "util/re.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- matchers ---- */

tsdb_matcher *tsdb_matcher_new(tsdb_match_type type, const char *name, const char *value,
                               char *err, size_t errlen) {
    tsdb_matcher *m = calloc(1, sizeof *m);
    if (!m) goto oom;
    m->type = type;
    m->name = strdup(name);
    m->value = strdup(value);
    if (!m->name || !m->value) goto oom;
    if (type == TSDB_MATCH_RE || type == TSDB_MATCH_NRE) {
        m->re = tr_re_compile(value, strlen(value), err, errlen);
        if (!m->re) goto fail;
    }
    m->matches_empty = tsdb_matcher_matches(m, "");
    return m;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    tsdb_matcher_free(m);
    return NULL;
}

void tsdb_matcher_free(tsdb_matcher *m) {
    if (!m) return;
    tr_re_free(m->re);
    free(m->name);
    free(m->value);
    free(m);
}

int tsdb_matcher_matches(const tsdb_matcher *m, const char *v) {
    int r;
    if (m->re) r = tr_re_match(m->re, v, strlen(v));
    else r = strcmp(m->value, v) == 0;
    return (m->type == TSDB_MATCH_NEQ || m->type == TSDB_MATCH_NRE) ? !r : r;
}
const char *tsdb_matcher_name(const tsdb_matcher *m) { return m->name; }
const char *tsdb_matcher_value(const tsdb_matcher *m) { return m->value; }
tsdb_match_type tsdb_matcher_type(const tsdb_matcher *m) { return m->type; }

void tsdb_matchers_free(tsdb_matcher **m, size_t n) {
    if (!m) return;
    for (size_t i = 0; i < n; i++) tsdb_matcher_free(m[i]);
    free(m);
}

/* ---- selector parser ---- */

typedef struct sp {
    const char *s, *p;
    char *err;
    size_t errlen;
} sp;

static void sp_ws(sp *x) {
    while (*x->p == ' ' || *x->p == '\t' || *x->p == '\n' || *x->p == '\r') x->p++;
}

static int sp_fail(sp *x, const char *msg) {
    snprintf(x->err, x->errlen, "1:%d: parse error: %s", (int)(x->p - x->s) + 1, msg);
    return -1;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void put_utf8(bvec *b, uint32_t cp) {
    if (cp < 0x80) bv_u8(b, (uint8_t)cp);
    else if (cp < 0x800) bv_u8(b, (uint8_t)(0xc0 | cp >> 6)), bv_u8(b, (uint8_t)(0x80 | (cp & 63)));
    else if (cp < 0x10000)
        bv_u8(b, (uint8_t)(0xe0 | cp >> 12)), bv_u8(b, (uint8_t)(0x80 | ((cp >> 6) & 63))),
            bv_u8(b, (uint8_t)(0x80 | (cp & 63)));
    else
        bv_u8(b, (uint8_t)(0xf0 | cp >> 18)), bv_u8(b, (uint8_t)(0x80 | ((cp >> 12) & 63))),
            bv_u8(b, (uint8_t)(0x80 | ((cp >> 6) & 63))), bv_u8(b, (uint8_t)(0x80 | (cp & 63)));
}

/* Parses a quoted string (Go escapes) into a malloc'd C string. */
static char *sp_string(sp *x) {
    char q = *x->p;
    if (q != '"' && q != '\'' && q != '`') {
        sp_fail(x, "unexpected character in label matcher, expected string");
        return NULL;
    }
    x->p++;
    bvec b = {0};
    for (;;) {
        char c = *x->p;
        if (!c || (c == '\n' && q != '`')) {
            bv_free(&b);
            sp_fail(x, "unterminated quoted string");
            return NULL;
        }
        x->p++;
        if (c == q) break;
        if (c != '\\' || q == '`') {
            bv_u8(&b, (uint8_t)c);
            continue;
        }
        char e = *x->p++;
        int nd = 0;
        switch (e) {
        case 'n': bv_u8(&b, '\n'); break;
        case 't': bv_u8(&b, '\t'); break;
        case 'r': bv_u8(&b, '\r'); break;
        case 'a': bv_u8(&b, '\a'); break;
        case 'b': bv_u8(&b, '\b'); break;
        case 'f': bv_u8(&b, '\f'); break;
        case 'v': bv_u8(&b, '\v'); break;
        case '\\': bv_u8(&b, '\\'); break;
        case '"': case '\'': bv_u8(&b, (uint8_t)e); break;
        case 'x': nd = 2; break;
        case 'u': nd = 4; break;
        case 'U': nd = 8; break;
        default:
            if (e >= '0' && e <= '7' && x->p[0] >= '0' && x->p[0] <= '7' && x->p[1] >= '0' && x->p[1] <= '7') {
                bv_u8(&b, (uint8_t)((e - '0') * 64 + (x->p[0] - '0') * 8 + (x->p[1] - '0')));
                x->p += 2;
                break;
            }
            bv_free(&b);
            sp_fail(x, "unknown escape sequence");
            return NULL;
        }
        if (nd) {
            uint32_t cp = 0;
            for (int i = 0; i < nd; i++) {
                int h = hexval(x->p[i]);
                if (h < 0) {
                    bv_free(&b);
                    sp_fail(x, "invalid escape sequence");
                    return NULL;
                }
                cp = cp * 16 + (uint32_t)h;
            }
            x->p += nd;
            if (e == 'x') bv_u8(&b, (uint8_t)cp);
            else put_utf8(&b, cp);
        }
    }
    bv_u8(&b, 0);
    if (b.err) {
        bv_free(&b);
        return NULL;
    }
    return (char *)b.p;
}

static int ident_start(char c, int colon) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}
static int ident_char(char c, int colon) { return ident_start(c, colon) || (c >= '0' && c <= '9'); }

int tsdb_parse_selector(const char *s, tsdb_matcher ***out, size_t *n, char *err, size_t errlen) {
    sp x = {s, s, err, errlen};
    tsdb_matcher **ms = NULL;
    size_t nm = 0, cap = 0;
    char *name = NULL, *val = NULL;
    char mname[512];
    *out = NULL;
    *n = 0;
#define PUSH(mt)                                                                 \
    do {                                                                         \
        if (nm == cap) {                                                         \
            cap = cap ? cap * 2 : 4;                                             \
            tsdb_matcher **nms = realloc(ms, cap * sizeof *ms);                  \
            if (!nms) { tsdb_matcher_free(mt); snprintf(err, errlen, "out of memory"); goto fail; } \
            ms = nms;                                                            \
        }                                                                        \
        ms[nm++] = (mt);                                                         \
    } while (0)
    sp_ws(&x);
    if (!*x.p) {
        sp_fail(&x, "unexpected end of input");
        goto fail;
    }
    if (ident_start(*x.p, 1)) {
        const char *st = x.p;
        while (ident_char(*x.p, 1)) x.p++;
        size_t l = (size_t)(x.p - st);
        if (l >= sizeof mname) {
            sp_fail(&x, "metric name too long");
            goto fail;
        }
        memcpy(mname, st, l);
        mname[l] = 0;
        tsdb_matcher *m = tsdb_matcher_new(TSDB_MATCH_EQ, "__name__", mname, err, errlen);
        if (!m) goto fail;
        PUSH(m);
        sp_ws(&x);
    }
    if (*x.p == '{') {
        x.p++;
        for (;;) {
            sp_ws(&x);
            if (*x.p == '}') {
                x.p++;
                break;
            }
            const char *st = x.p;
            if (*x.p == '"' || *x.p == '\'' || *x.p == '`') {
                /* a quoted name alone is a metric name (Prometheus 3 syntax) */
                name = sp_string(&x);
                if (!name) goto fail;
                sp_ws(&x);
                if (*x.p == ',' || *x.p == '}') {
                    tsdb_matcher *m = tsdb_matcher_new(TSDB_MATCH_EQ, "__name__", name, err, errlen);
                    if (!m) goto fail;
                    PUSH(m);
                    free(name);
                    name = NULL;
                    if (*x.p == ',') x.p++;
                    continue;
                }
            } else {
                if (!ident_start(*x.p, 0)) {
                    sp_fail(&x, *x.p ? "unexpected character inside braces" : "unexpected end of input inside braces");
                    goto fail;
                }
                while (ident_char(*x.p, 0)) x.p++;
                name = strndup(st, (size_t)(x.p - st));
                if (!name) goto fail;
                sp_ws(&x);
            }
            tsdb_match_type t;
            if (x.p[0] == '=' && x.p[1] == '~') t = TSDB_MATCH_RE, x.p += 2;
            else if (x.p[0] == '!' && x.p[1] == '~') t = TSDB_MATCH_NRE, x.p += 2;
            else if (x.p[0] == '!' && x.p[1] == '=') t = TSDB_MATCH_NEQ, x.p += 2;
            else if (x.p[0] == '=') t = TSDB_MATCH_EQ, x.p += 1;
            else {
                sp_fail(&x, "unexpected character in label matcher, expected label matching operator");
                goto fail;
            }
            sp_ws(&x);
            val = sp_string(&x);
            if (!val) goto fail;
            tsdb_matcher *m = tsdb_matcher_new(t, name, val, err, errlen);
            if (!m) goto fail;
            PUSH(m);
            free(name);
            free(val);
            name = val = NULL;
            sp_ws(&x);
            if (*x.p == ',') {
                x.p++;
                continue;
            }
            if (*x.p == '}') {
                x.p++;
                break;
            }
            sp_fail(&x, *x.p ? "unexpected character in label matching, expected \",\" or \"}\"" : "unexpected end of input inside braces");
            goto fail;
        }
        sp_ws(&x);
    }
    if (*x.p) {
        sp_fail(&x, "unexpected character after series selector");
        goto fail;
    }
    if (!nm) {
        snprintf(err, errlen, "1:1: parse error: vector selector must contain at least one non-empty matcher");
        goto fail;
    }
    *out = ms;
    *n = nm;
    return 0;
fail:
#undef PUSH
    free(name);
    free(val);
    tsdb_matchers_free(ms, nm);
    return -1;
}

/* ---- postings selection over any index (head or block) ---- */

typedef struct collect {
    const tsdb_matcher *m;
    int want; /* collect values where matches() == want */
    const uint32_t **lists;
    size_t *lens, n, cap;
} collect;

static int collect_fn(void *ctx, const char *v, const uint32_t *ids, size_t n) {
    collect *c = ctx;
    if (tsdb_matcher_matches(c->m, v) != c->want) return 0;
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 16;
        const uint32_t **nl = realloc(c->lists, nc * sizeof *nl);
        size_t *nn = realloc(c->lens, nc * sizeof *nn);
        if (nl) c->lists = nl;
        if (nn) c->lens = nn;
        if (!nl || !nn) return -1;
        c->cap = nc;
    }
    c->lists[c->n] = ids;
    c->lens[c->n++] = n;
    return 0;
}

int ix_select(const ixview *ix, tsdb_matcher *const *m, size_t n, idlist *out) {
    int have = 0, rc = 0;
    out->n = 0;
    /* restrictive matchers first, those that also match an absent label last */
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        for (size_t i = 0; i < n; i++) {
            const tsdb_matcher *mt = m[i];
            if (mt->matches_empty != pass) continue;
            if (have && out->n == 0) return 0;
            idlist l = {0};
            tr_re_kind kind = mt->re ? tr_re_kind_of(mt->re) : TR_RE_GENERIC;
            if (kind == TR_RE_ANY && mt->type == TSDB_MATCH_RE) continue; /* =~".*": no-op */
            if (kind == TR_RE_ANY) { /* !~".*" matches no series */
                out->n = 0;
                return rc;
            }
            if (!mt->matches_empty && mt->type == TSDB_MATCH_EQ) {
                const uint32_t *ids = NULL;
                size_t k = 0;
                ix->lookup(ix->ctx, mt->name, mt->value, &ids, &k);
                il_union_many(&l, &ids, &k, k ? 1 : 0);
            } else if (kind == TR_RE_SET && mt->matches_empty == (mt->type == TSDB_MATCH_NRE)) {
                /* =~"a|b" (without "") selects, !~"a|b" (without "") removes, the postings of
                 * the listed values: look them up instead of testing every value */
                size_t ns = 0;
                const char *const *set = tr_re_set(mt->re, &ns);
                const uint32_t **lists = malloc((ns ? ns : 1) * sizeof *lists);
                size_t *lens = malloc((ns ? ns : 1) * sizeof *lens);
                size_t k = 0;
                if (!lists || !lens) rc = -1;
                for (size_t j = 0; rc == 0 && j < ns; j++) {
                    ix->lookup(ix->ctx, mt->name, set[j], &lists[k], &lens[k]);
                    if (lens[k]) k++;
                }
                if (rc == 0) il_union_many(&l, lists, lens, k);
                free(lists);
                free(lens);
            } else {
                collect c = {.m = mt, .want = !mt->matches_empty};
                if (ix->values(ix->ctx, mt->name, collect_fn, &c) != 0) rc = -1;
                il_union_many(&l, c.lists, c.lens, c.n);
                free(c.lists);
                free(c.lens);
            }
            if (!mt->matches_empty) {
                if (!have) {
                    il_free(out);
                    *out = l;
                    have = 1;
                    continue;
                }
                il_intersect(out, &l);
            } else {
                if (!have) {
                    ix->all(ix->ctx, out);
                    have = 1;
                }
                il_subtract(out, &l);
            }
            il_free(&l);
        }
    }
    if (!have) ix->all(ix->ctx, out);
    return rc;
}
