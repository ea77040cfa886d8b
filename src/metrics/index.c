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

tsdb_matcher *tsdb_matcher_new(tsdb_match_type type, const char *name, const char *value, char *err,
                               size_t errlen) {
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
    if (m->re)
        r = tr_re_match(m->re, v, strlen(v));
    else
        r = strcmp(m->value, v) == 0;
    return (m->type == TSDB_MATCH_NEQ || m->type == TSDB_MATCH_NRE) ? !r : r;
}
const char *tsdb_matcher_name(const tsdb_matcher *m) { return m->name; }
const char *tsdb_matcher_value(const tsdb_matcher *m) { return m->value; }
tsdb_match_type tsdb_matcher_type(const tsdb_matcher *m) { return m->type; }

void tsdb_matchers_free(tsdb_matcher **m, size_t n) {
    if (!m) return;
    for (size_t i = 0; i < n; i++)
        tsdb_matcher_free(m[i]);
    free(m);
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
            if (kind == TR_RE_ANY) {                                      /* !~".*" matches no series */
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
