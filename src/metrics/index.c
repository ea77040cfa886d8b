/* Label matchers (with Go RE2 regexes translated to anchored POSIX ERE), the series selector
 * parser used by match[] parameters, and the generic postings selection shared by the head
 * and the blocks. */
#include "metrics_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- regex translation ---- */

/* Appends the ERE equivalent of the RE2 pattern `s` to b; sets *icase for a leading (?i).
 * Returns 0 or -1 with err set for constructs POSIX cannot express. */
static int re2_to_ere(const char *s, bvec *b, int *icase, char *err, size_t errlen) {
    if (strncmp(s, "(?i)", 4) == 0) {
        *icase = 1;
        s += 4;
    }
    int inbr = 0; /* inside [...] */
    int last_quant = 0; /* the previous atom was a quantifier: RE2 refuses a** and a+?+ */
    if (strlen(s) > 16384) {
        snprintf(err, errlen, "error parsing regexp: expression too large");
        return -1;
    }
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (last_quant) last_quant--;
        if (inbr) {
            if (c == '\\' && p[1]) {
                p++;
                switch (*p) {
                case 'd': bv_put(b, "0-9", 3); break;
                case 'w': bv_put(b, "A-Za-z0-9_", 10); break;
                case 's': bv_put(b, "[:space:]", 9); break;
                case 'n': bv_u8(b, '\n'); break;
                case 't': bv_u8(b, '\t'); break;
                default: bv_u8(b, (uint8_t)*p);
                }
                continue;
            }
            if (c == '[' && p[1] == ':') { /* [:alpha:] classes pass through */
                const char *e = strstr(p + 2, ":]");
                if (e) {
                    bv_put(b, p, (size_t)(e + 2 - p));
                    p = e + 1;
                    continue;
                }
            }
            if (c == ']') inbr = 0;
            bv_u8(b, (uint8_t)c);
            continue;
        }
        switch (c) {
        case '[':
            inbr = 1;
            bv_u8(b, '[');
            if (p[1] == '^') bv_u8(b, '^'), p++;
            if (p[1] == ']') bv_u8(b, ']'), p++; /* a leading ] is literal */
            break;
        case '(':
            if (p[1] == '?') {
                if (p[2] == ':') {
                    p += 2;
                } else if (p[2] == 'P' || p[2] == '<') { /* named group: (?P<n>…) */
                    const char *e = strchr(p, '>');
                    if (!e) goto bad;
                    p = e;
                } else {
                    goto bad;
                }
            }
            bv_u8(b, '(');
            break;
        case '{': {
            /* counted repetition: RE2 allows at most 1000; larger ones make glibc's automaton
             * explode. A '{' that is not a repetition is a literal, as in RE2. */
            const char *q = p + 1;
            long lo = -1, hi = -1;
            char *end;
            if (*q >= '0' && *q <= '9') {
                lo = strtol(q, &end, 10);
                q = end;
                hi = lo;
                if (*q == ',') {
                    q++;
                    hi = (*q >= '0' && *q <= '9') ? strtol(q, &end, 10) : -1;
                    if (hi >= 0) q = end;
                }
            }
            if (lo < 0 || *q != '}') {
                bv_put(b, "\\{", 2);
                break;
            }
            if (lo > 1000 || hi > 1000 || (hi >= 0 && hi < lo)) {
                snprintf(err, errlen, "error parsing regexp: invalid repeat count: `%.*s`", (int)(q + 1 - p), p);
                return -1;
            }
            if (last_quant) goto nested;
            bv_put(b, p, (size_t)(q + 1 - p));
            p = q;
            if (p[1] == '?') p++;
            last_quant = 2;
            break;
        }
        case '*':
        case '+':
        case '?':
            if (last_quant) goto nested;
            bv_u8(b, (uint8_t)c);
            if (p[1] == '?') p++; /* non-greedy: the same set of full matches */
            last_quant = 2;
            break;
        case '\\':
            if (!p[1]) goto bad;
            p++;
            switch (*p) {
            case 'd': bv_put(b, "[0-9]", 5); break;
            case 'D': bv_put(b, "[^0-9]", 6); break;
            case 'w': bv_put(b, "[A-Za-z0-9_]", 12); break;
            case 'W': bv_put(b, "[^A-Za-z0-9_]", 13); break;
            case 's': bv_put(b, "[[:space:]]", 11); break;
            case 'S': bv_put(b, "[^[:space:]]", 12); break;
            case 'n': bv_u8(b, '\n'); break;
            case 't': bv_u8(b, '\t'); break;
            case 'b': case 'B': case 'A': case 'z': case 'p': case 'P': goto bad;
            default:
                if (isalnum((unsigned char)*p)) goto bad;
                bv_u8(b, '\\');
                bv_u8(b, (uint8_t)*p);
            }
            break;
        default:
            bv_u8(b, (uint8_t)c);
        }
    }
    if (inbr) {
        snprintf(err, errlen, "error parsing regexp: missing closing ]: `%s`", s);
        return -1;
    }
    return 0;
nested:
    snprintf(err, errlen, "error parsing regexp: invalid nested repetition operator: `%s`", s);
    return -1;
bad:
    snprintf(err, errlen, "error parsing regexp: unsupported syntax in `%s`", s);
    return -1;
}

static int is_literal(const char *s) {
    for (; *s; s++)
        if (strchr(".+*?()[]{}|^$\\", *s)) return 0;
    return 1;
}

tsdb_matcher *tsdb_matcher_new(tsdb_match_type type, const char *name, const char *value,
                               char *err, size_t errlen) {
    tsdb_matcher *m = calloc(1, sizeof *m);
    if (!m) goto oom;
    m->type = type;
    m->name = strdup(name);
    m->value = strdup(value);
    if (!m->name || !m->value) goto oom;
    if ((type == TSDB_MATCH_RE || type == TSDB_MATCH_NRE) && !is_literal(value)) {
        bvec b = {0};
        int icase = 0;
        bv_put(&b, "^(", 2);
        if (re2_to_ere(value, &b, &icase, err, errlen)) {
            bv_free(&b);
            goto fail;
        }
        bv_put(&b, ")$", 3);
        if (b.err) {
            bv_free(&b);
            goto oom;
        }
        int rc = regcomp(&m->re, (char *)b.p, REG_EXTENDED | REG_NOSUB | (icase ? REG_ICASE : 0));
        bv_free(&b);
        if (rc) {
            char e[128];
            regerror(rc, &m->re, e, sizeof e);
            snprintf(err, errlen, "error parsing regexp: %s: `%s`", e, value);
            goto fail;
        }
        m->has_re = 1;
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
    if (m->has_re) regfree(&m->re);
    free(m->name);
    free(m->value);
    free(m);
}

int tsdb_matcher_matches(const tsdb_matcher *m, const char *v) {
    int r;
    if (m->has_re) r = regexec(&m->re, v, 0, NULL, 0) == 0;
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
            if (!mt->matches_empty && mt->type == TSDB_MATCH_EQ) {
                const uint32_t *ids = NULL;
                size_t k = 0;
                ix->lookup(ix->ctx, mt->name, mt->value, &ids, &k);
                il_union_many(&l, &ids, &k, k ? 1 : 0);
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
