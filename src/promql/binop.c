/* Binary operators: arithmetic, comparisons (filtering or bool), set operators and vector
 * matching (on/ignoring, group_left/group_right). Label matching is resolved once per series;
 * the per-step work is a table lookup. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "promql/eval_int.h"

static int is_cmp(int op) {
    return op == T_EQLC || op == T_NEQ || op == T_LSS || op == T_GTR || op == T_LTE || op == T_GTE;
}

/* returns the value and whether to keep (comparisons) */
static double elem(int op, double l, double r, int *keep) {
    *keep = 1;
    switch (op) {
    case T_ADD:
        return l + r;
    case T_SUB:
        return l - r;
    case T_MUL:
        return l * r;
    case T_DIV:
        return l / r;
    case T_MOD:
        return fmod(l, r);
    case T_POW:
        return pow(l, r);
    case T_ATAN2:
        return atan2(l, r);
    case T_EQLC:
        *keep = l == r;
        return l;
    case T_NEQ:
        *keep = l != r;
        return l;
    case T_LSS:
        *keep = l < r;
        return l;
    case T_GTR:
        *keep = l > r;
        return l;
    case T_LTE:
        *keep = l <= r;
        return l;
    case T_GTE:
        *keep = l >= r;
        return l;
    }
    return NAN;
}

/* matching signature of a series */
static char *sig(pq_ev *ev, const pq_node *n, const pq_lset *l, size_t *len) {
    pq_lset k;
    if (n->on)
        k = pq_lset_keep(ev, l, n->grp, n->ngrp);
    else
        k = pq_lset_without(ev, l, n->grp, n->ngrp, 1);
    return pq_lset_sig(ev, &k, len);
}

static pq_val setop(pq_ev *ev, const pq_node *n, pq_val *L, pq_val *R, const pq_rng *r) {
    size_t ns = r->n;
    pq_map m = {0};
    /* group index per rhs series; per group and step: is any rhs present */
    int *rg = pq_alloc(ev, (R->n + 1) * sizeof(int));
    int ngroups = 0;
    for (size_t i = 0; i < R->n; i++) {
        size_t kl;
        char *k = sig(ev, n, &R->s[i].lb, &kl);
        int added;
        int *slot = pq_map_put(ev, &m, k, kl, &added);
        if (added) *slot = ngroups++;
        rg[i] = *slot;
    }
    int *lg = pq_alloc(ev, (L->n + 1) * sizeof(int));
    for (size_t i = 0; i < L->n; i++) {
        size_t kl;
        char *k = sig(ev, n, &L->s[i].lb, &kl);
        int added;
        int *slot = pq_map_put(ev, &m, k, kl, &added);
        if (added) *slot = ngroups++;
        lg[i] = *slot;
    }
    uint8_t *rpres = pq_calloc(ev, (size_t)ngroups * ns, 1);
    uint8_t *lpres = pq_calloc(ev, (size_t)ngroups * ns, 1);
    for (size_t i = 0; i < R->n; i++)
        for (size_t j = 0; j < ns; j++)
            if (R->s[i].ok[j]) rpres[(size_t)rg[i] * ns + j] = 1;
    for (size_t i = 0; i < L->n; i++)
        for (size_t j = 0; j < ns; j++)
            if (L->s[i].ok[j]) lpres[(size_t)lg[i] * ns + j] = 1;
    pq_val o = {.type = PV_VECTOR};
    if (n->op == T_LAND || n->op == T_LUNLESS) {
        int want = n->op == T_LAND;
        for (size_t i = 0; i < L->n; i++) {
            pq_ser *s = &L->s[i];
            for (size_t j = 0; j < ns; j++)
                if (s->ok[j] && rpres[(size_t)lg[i] * ns + j] != want) s->ok[j] = 0;
        }
        return *L;
    }
    /* or */
    o.s = pq_calloc(ev, L->n + R->n, sizeof *o.s);
    for (size_t i = 0; i < L->n; i++)
        o.s[o.n++] = L->s[i];
    for (size_t i = 0; i < R->n; i++) {
        pq_ser *s = &R->s[i];
        for (size_t j = 0; j < ns; j++)
            if (s->ok[j] && lpres[(size_t)rg[i] * ns + j]) s->ok[j] = 0;
        o.s[o.n++] = *s;
    }
    /* the same label set on both sides (when matching ignores labels that differ) merges */
    pq_out ob;
    pq_out_init(&ob, ns);
    for (size_t i = 0; i < o.n; i++) {
        int idx = pq_out_series(ev, &ob, &o.s[i].lb, o.s[i].drop_name);
        for (size_t j = 0; j < ns; j++)
            if (o.s[i].ok[j]) pq_out_set(ev, &ob, idx, j, o.s[i].v[j]);
    }
    o.s = ob.s;
    o.n = ob.n;
    return o;
}

static pq_val vec_vec(pq_ev *ev, const pq_node *n, pq_val *L, pq_val *R, const pq_rng *r) {
    size_t ns = r->n;
    pq_card card = n->card;
    pq_val *lhs = L, *rhs = R;
    if (card == CARD_ONE_TO_MANY) {
        lhs = R;
        rhs = L;
    }
    int drop = n->bool_ || !is_cmp(n->op);
    /* rhs ("one" side) grouped by signature */
    pq_map m = {0};
    int ngroups = 0;
    int *rg = pq_alloc(ev, (rhs->n + 1) * sizeof(int));
    for (size_t i = 0; i < rhs->n; i++) {
        size_t kl;
        char *k = sig(ev, n, &rhs->s[i].lb, &kl);
        int added;
        int *slot = pq_map_put(ev, &m, k, kl, &added);
        if (added) *slot = ngroups++;
        rg[i] = *slot;
    }
    int *lg = pq_alloc(ev, (lhs->n + 1) * sizeof(int));
    for (size_t i = 0; i < lhs->n; i++) {
        size_t kl;
        char *k = sig(ev, n, &lhs->s[i].lb, &kl);
        lg[i] = pq_map_get(&m, k, kl);
    }
    /* per group: the rhs series present at each step (-1 none) */
    int *pres = pq_alloc(ev, ((size_t)ngroups * ns + 1) * sizeof(int));
    for (size_t i = 0; i < (size_t)ngroups * ns; i++)
        pres[i] = -1;
    for (size_t i = 0; i < rhs->n; i++)
        for (size_t j = 0; j < ns; j++) {
            if (!rhs->s[i].ok[j]) continue;
            int *p = &pres[(size_t)rg[i] * ns + j];
            if (*p >= 0) {
                pq_lset ml = n->on ? pq_lset_keep(ev, &rhs->s[i].lb, n->grp, n->ngrp)
                                   : pq_lset_without(ev, &rhs->s[i].lb, n->grp, n->ngrp, 1);
                char a[512], b[512], c[512];
                pq_lset_str(&ml, a, sizeof a);
                pq_lset_str(&rhs->s[i].lb, b, sizeof b);
                pq_lset_str(&rhs->s[*p].lb, c, sizeof c);
                pq_fail(ev, PROMQL_ERR_EXECUTION,
                        "found duplicate series for the match group %s on the %s hand-side of the operation: "
                        "[%s, %s]"
                        ";many-to-many matching not allowed: matching labels must be unique on one side",
                        a, card == CARD_ONE_TO_MANY ? "left" : "right", b, c);
            }
            *p = (int)i;
        }
    /* one-to-one: one lhs per group and step */
    int *used = NULL;
    if (card == CARD_ONE_TO_ONE) {
        used = pq_alloc(ev, ((size_t)ngroups * ns + 1) * sizeof(int));
        for (size_t i = 0; i < (size_t)ngroups * ns; i++)
            used[i] = -1;
    }
    pq_out ob;
    pq_out_init(&ob, ns);
    /* result series per (lhs, rhs) pair, cached */
    pq_map pairs = {0};
    for (size_t i = 0; i < lhs->n; i++) {
        if ((i & 63) == 0) pq_poll(ev);
        if (lg[i] < 0) continue;
        pq_ser *ls = &lhs->s[i];
        for (size_t j = 0; j < ns; j++) {
            if (!ls->ok[j]) continue;
            int ri = pres[(size_t)lg[i] * ns + j];
            if (ri < 0) continue;
            pq_ser *rs = &rhs->s[ri];
            double fl = ls->v[j], fr = rs->v[j];
            if (card == CARD_ONE_TO_MANY) {
                double t = fl;
                fl = fr;
                fr = t;
            }
            int keep;
            double v = elem(n->op, fl, fr, &keep);
            if (n->bool_) {
                v = keep ? 1 : 0;
                keep = 1;
            }
            if (!keep) continue;
            if (card == CARD_ONE_TO_ONE) {
                int *u = &used[(size_t)lg[i] * ns + j];
                if (*u >= 0 && *u != (int)i)
                    pq_fail(ev, PROMQL_ERR_EXECUTION,
                            "multiple matches for labels: many-to-one matching must be explicit "
                            "(group_left/group_right)");
                *u = (int)i;
            }
            char key[32];
            int kl = snprintf(key, sizeof key, "%zu/%d", i, ri);
            int added;
            int *slot = pq_map_put(ev, &pairs, pq_strdup(ev, key), (size_t)kl, &added);
            if (added) {
                pq_lset lb = ls->lb;
                if (drop) lb = lb; /* delayed __name__ removal: marked, dropped at the end */
                if (card == CARD_ONE_TO_ONE) {
                    if (n->on)
                        lb = pq_lset_keep(ev, &lb, n->grp, n->ngrp);
                    else
                        lb = pq_lset_without(ev, &lb, n->grp, n->ngrp, 0);
                }
                for (size_t k = 0; k < n->nincl; k++)
                    lb = pq_lset_set(ev, &lb, n->incl[k], pq_lget(&rs->lb, n->incl[k]));
                int dn = drop || ls->drop_name;
                if (card == CARD_ONE_TO_ONE && n->on && !pq_lget(&lb, "__name__")[0]) dn = 0;
                *slot = pq_out_series(ev, &ob, &lb, dn);
            }
            pq_ser *os = &ob.s[*slot];
            if (os->ok[j]) {
                if (card == CARD_ONE_TO_ONE)
                    pq_fail(ev, PROMQL_ERR_EXECUTION, "vector cannot contain metrics with the same labelset");
                pq_fail(ev, PROMQL_ERR_EXECUTION,
                        "multiple matches for labels: grouping labels must ensure unique matches");
            }
            pq_out_set(ev, &ob, *slot, j, v);
        }
    }
    pq_val o = {.type = PV_VECTOR, .s = ob.s, .n = ob.n};
    return o;
}

pq_val pq_eval_binop(pq_ev *ev, const pq_node *n, const pq_rng *r) {
    pq_val L = pq_eval(ev, n->lhs, r);
    pq_val R = pq_eval(ev, n->rhs, r);
    size_t ns = r->n;
    if (L.type == PV_SCALAR && R.type == PV_SCALAR) {
        for (size_t j = 0; j < ns; j++) {
            int keep;
            double v = elem(n->op, L.sc[j], R.sc[j], &keep);
            if (is_cmp(n->op)) v = keep ? 1 : 0;
            L.sc[j] = v;
        }
        return L;
    }
    if (L.type == PV_VECTOR && R.type == PV_VECTOR) {
        if (n->op == T_LAND || n->op == T_LOR || n->op == T_LUNLESS) return setop(ev, n, &L, &R, r);
        return vec_vec(ev, n, &L, &R, r);
    }
    /* vector op scalar, scalar op vector */
    int swap = L.type == PV_SCALAR;
    pq_val *V = swap ? &R : &L;
    double *S = swap ? L.sc : R.sc;
    int drop = n->bool_ || !is_cmp(n->op);
    for (size_t i = 0; i < V->n; i++) {
        pq_ser *s = &V->s[i];
        for (size_t j = 0; j < ns; j++) {
            if (!s->ok[j]) continue;
            double l = s->v[j], rv = S[j];
            if (swap) {
                double t = l;
                l = rv;
                rv = t;
            }
            int keep;
            double v = elem(n->op, l, rv, &keep);
            if (is_cmp(n->op) && swap) v = rv;
            if (n->bool_) {
                v = keep ? 1 : 0;
                keep = 1;
            }
            if (!keep) {
                s->ok[j] = 0;
                continue;
            }
            s->v[j] = v;
        }
        if (drop) s->drop_name = 1;
    }
    return *V;
}
