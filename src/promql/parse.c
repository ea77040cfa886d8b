/* PromQL parser: recursive descent with precedence climbing over the lexer's tokens, type
 * checks as Prometheus's checkAST does them, and Prometheus's String() form of a tree. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promql/ast.h"
#include "promql/promql.h"

#define V PV_VECTOR
#define M PV_MATRIX
#define S PV_SCALAR
#define STR PV_STRING
static const pq_func funcs[] = {
    {"abs", {V}, 1, 0, V, 0},
    {"absent", {V}, 1, 0, V, 0},
    {"absent_over_time", {M}, 1, 0, V, 0},
    {"acos", {V}, 1, 0, V, 0},
    {"acosh", {V}, 1, 0, V, 0},
    {"asin", {V}, 1, 0, V, 0},
    {"asinh", {V}, 1, 0, V, 0},
    {"atan", {V}, 1, 0, V, 0},
    {"atanh", {V}, 1, 0, V, 0},
    {"avg_over_time", {M}, 1, 0, V, 0},
    {"ceil", {V}, 1, 0, V, 0},
    {"changes", {M}, 1, 0, V, 0},
    {"clamp", {V, S, S}, 3, 0, V, 0},
    {"clamp_max", {V, S}, 2, 0, V, 0},
    {"clamp_min", {V, S}, 2, 0, V, 0},
    {"cos", {V}, 1, 0, V, 0},
    {"cosh", {V}, 1, 0, V, 0},
    {"count_over_time", {M}, 1, 0, V, 0},
    {"days_in_month", {V}, 1, 1, V, 0},
    {"day_of_month", {V}, 1, 1, V, 0},
    {"day_of_week", {V}, 1, 1, V, 0},
    {"day_of_year", {V}, 1, 1, V, 0},
    {"deg", {V}, 1, 0, V, 0},
    {"delta", {M}, 1, 0, V, 0},
    {"deriv", {M}, 1, 0, V, 0},
    {"double_exponential_smoothing", {M, S, S}, 3, 0, V, 1},
    {"exp", {V}, 1, 0, V, 0},
    {"floor", {V}, 1, 0, V, 0},
    {"histogram_avg", {V}, 1, 0, V, 0},
    {"histogram_count", {V}, 1, 0, V, 0},
    {"histogram_fraction", {S, S, V}, 3, 0, V, 0},
    {"histogram_quantile", {S, V}, 2, 0, V, 0},
    {"histogram_stddev", {V}, 1, 0, V, 0},
    {"histogram_stdvar", {V}, 1, 0, V, 0},
    {"histogram_sum", {V}, 1, 0, V, 0},
    {"hour", {V}, 1, 1, V, 0},
    {"idelta", {M}, 1, 0, V, 0},
    {"increase", {M}, 1, 0, V, 0},
    {"irate", {M}, 1, 0, V, 0},
    {"label_join", {V, STR, STR, STR}, 4, -1, V, 0},
    {"label_replace", {V, STR, STR, STR, STR}, 5, 0, V, 0},
    {"last_over_time", {M}, 1, 0, V, 0},
    {"ln", {V}, 1, 0, V, 0},
    {"log10", {V}, 1, 0, V, 0},
    {"log2", {V}, 1, 0, V, 0},
    {"mad_over_time", {M}, 1, 0, V, 1},
    {"max_over_time", {M}, 1, 0, V, 0},
    {"min_over_time", {M}, 1, 0, V, 0},
    {"minute", {V}, 1, 1, V, 0},
    {"month", {V}, 1, 1, V, 0},
    {"pi", {0}, 0, 0, S, 0},
    {"predict_linear", {M, S}, 2, 0, V, 0},
    {"present_over_time", {M}, 1, 0, V, 0},
    {"quantile_over_time", {S, M}, 2, 0, V, 0},
    {"rad", {V}, 1, 0, V, 0},
    {"rate", {M}, 1, 0, V, 0},
    {"resets", {M}, 1, 0, V, 0},
    {"round", {V, S}, 2, 1, V, 0},
    {"scalar", {V}, 1, 0, S, 0},
    {"sgn", {V}, 1, 0, V, 0},
    {"sin", {V}, 1, 0, V, 0},
    {"sinh", {V}, 1, 0, V, 0},
    {"sort", {V}, 1, 0, V, 0},
    {"sort_by_label", {V, STR}, 2, -1, V, 1},
    {"sort_by_label_desc", {V, STR}, 2, -1, V, 1},
    {"sort_desc", {V}, 1, 0, V, 0},
    {"sqrt", {V}, 1, 0, V, 0},
    {"stddev_over_time", {M}, 1, 0, V, 0},
    {"stdvar_over_time", {M}, 1, 0, V, 0},
    {"sum_over_time", {M}, 1, 0, V, 0},
    {"ts_of_last_over_time", {M}, 1, 0, V, 1},
    {"ts_of_max_over_time", {M}, 1, 0, V, 1},
    {"ts_of_min_over_time", {M}, 1, 0, V, 1},
    {"tan", {V}, 1, 0, V, 0},
    {"tanh", {V}, 1, 0, V, 0},
    {"time", {0}, 0, 0, S, 0},
    {"timestamp", {V}, 1, 0, V, 0},
    {"vector", {S}, 1, 0, V, 0},
    {"year", {V}, 1, 1, V, 0},
};
#undef V
#undef M
#undef S
#undef STR

const pq_func *pq_func_lookup(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof funcs / sizeof funcs[0]; i++)
        if (strlen(funcs[i].name) == len && !memcmp(funcs[i].name, name, len)) return &funcs[i];
    return NULL;
}

static const char *type_name(pq_vtype t) {
    switch (t) {
    case PV_SCALAR:
        return "scalar";
    case PV_VECTOR:
        return "instant vector";
    case PV_MATRIX:
        return "range vector";
    case PV_STRING:
        return "string";
    default:
        return "none";
    }
}

typedef struct {
    tr_arena *a;
    pq_lexer lx;
    pq_tok tok, peek;
    int has_peek;
    const char *q;
    size_t qlen;
    char *err;
    size_t errlen;
    int failed;
    int depth;
    int selector_mode; /* match[]: no "non-empty matcher" rule (the API checks it) */
    struct mlist {
        tsdb_matcher *m;
        struct mlist *next;
    } * compiled;
} P;

static void perr(P *p, int pos, const char *fmt, ...) {
    if (p->failed) return;
    p->failed = 1;
    int line = 1, col = 1;
    for (int i = 0; i < pos && i < (int)p->qlen; i++) {
        if (p->q[i] == '\n') {
            line++;
            col = 1;
        } else
            col++;
    }
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(p->err, p->errlen, "%d:%d: parse error: %s", line, col, msg);
}

static pq_tok next(P *p) {
    if (p->has_peek) {
        p->has_peek = 0;
        p->tok = p->peek;
    } else
        p->tok = pq_lex_next(&p->lx);
    if (p->tok.kind == T_ERROR) perr(p, p->tok.pos, "%s", p->lx.err);
    return p->tok;
}

static pq_tok peek(P *p) {
    if (!p->has_peek) {
        p->peek = pq_lex_next(&p->lx);
        p->has_peek = 1;
        if (p->peek.kind == T_ERROR) {
            perr(p, p->peek.pos, "%s", p->lx.err);
        }
    }
    return p->peek;
}

static int tok_is(pq_tok t, const char *word) {
    return t.kind == T_IDENT && (int)strlen(word) == t.len && !strncasecmp(t.s, word, t.len);
}

static const char *tok_desc(P *p, pq_tok t, char *buf, size_t cap) {
    switch (t.kind) {
    case T_EOF:
        return "end of input";
    case T_RPAREN:
        return "\")\"";
    case T_LPAREN:
        return "\"(\"";
    case T_RBRACE:
        return "\"}\"";
    case T_LBRACE:
        return "\"{\"";
    case T_RBRACKET:
        return "\"]\"";
    case T_LBRACKET:
        return "\"[\"";
    case T_COMMA:
        return "\",\"";
    case T_NUMBER:
        snprintf(buf, cap, "number \"%.*s\"", t.len, t.s);
        return buf;
    case T_DURATION:
        snprintf(buf, cap, "duration \"%.*s\"", t.len, t.s);
        return buf;
    case T_STRING:
        snprintf(buf, cap, "string %.*s", t.len, t.s);
        return buf;
    case T_IDENT:
        snprintf(buf, cap, "identifier \"%.*s\"", t.len, t.s);
        return buf;
    default:
        snprintf(buf, cap, "\"%.*s\"", t.len, t.s);
        return buf;
    }
}

static void unexpected(P *p, pq_tok t, const char *ctx, const char *expected) {
    char b[96];
    if (t.kind == T_EOF)
        perr(p, t.pos, "unexpected end of input%s%s%s%s", ctx ? " in " : "", ctx ? ctx : "",
             expected ? ", expected " : "", expected ? expected : "");
    else
        perr(p, t.pos, "unexpected %s%s%s%s%s", tok_desc(p, t, b, sizeof b), ctx ? " in " : "",
             ctx ? ctx : "", expected ? ", expected " : "", expected ? expected : "");
}

static pq_node *mknode(P *p, pq_nkind k, int pos) {
    pq_node *n = tr_arena_calloc(p->a, 1, sizeof *n);
    if (!n) {
        perr(p, pos, "out of memory");
        return NULL;
    }
    n->kind = k;
    n->pos = pos;
    return n;
}

static char *tokdup(P *p, pq_tok t) { return tr_arena_strndup(p->a, t.s, t.len); }

static const char *aggs[] = {"sum",      "avg",          "count",  "min",        "max",
                             "group",    "stddev",       "stdvar", "topk",       "bottomk",
                             "quantile", "count_values", "limitk", "limit_ratio"};

static int agg_of(pq_tok t) {
    if (t.kind != T_IDENT) return -1;
    for (int i = 0; i < (int)(sizeof aggs / sizeof aggs[0]); i++)
        if (tok_is(t, aggs[i])) return i;
    return -1;
}

static int is_keyword(pq_tok t) {
    static const char *kw[] = {"and", "or",       "unless",     "atan2",       "by",   "without",
                               "on",  "ignoring", "group_left", "group_right", "bool", "offset"};
    for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++)
        if (tok_is(t, kw[i])) return 1;
    return agg_of(t) >= 0;
}

static pq_node *parse_expr(P *p, int minprec);

/* ( label, label, ... ) */
static int parse_label_list(P *p, char ***out, size_t *n) {
    pq_tok t = next(p);
    if (t.kind != T_LPAREN) {
        unexpected(p, t, "grouping opts", "\"(\"");
        return -1;
    }
    size_t cap = 4;
    char **v = tr_arena_alloc(p->a, cap * sizeof *v);
    *n = 0;
    for (;;) {
        t = next(p);
        if (p->failed) return -1;
        if (t.kind == T_RPAREN) break;
        char *name = NULL;
        if (t.kind == T_IDENT) {
            name = tokdup(p, t);
        } else if (t.kind == T_STRING) {
            if (pq_unquote(p->a, t.s, t.len, &name, NULL) != 0) {
                perr(p, t.pos, "invalid string");
                return -1;
            }
        } else {
            unexpected(p, t, "grouping opts", "label");
            return -1;
        }
        for (const char *c = name; *c && t.kind == T_IDENT; c++)
            if (*c == ':') {
                perr(p, t.pos, "unexpected identifier \"%s\" in grouping opts, expected label", name);
                return -1;
            }
        if (*n == cap) {
            char **nv = tr_arena_alloc(p->a, 2 * cap * sizeof *nv);
            memcpy(nv, v, cap * sizeof *v);
            v = nv;
            cap *= 2;
        }
        v[(*n)++] = name;
        t = next(p);
        if (t.kind == T_RPAREN) break;
        if (t.kind != T_COMMA) {
            unexpected(p, t, "grouping opts", "\",\" or \")\"");
            return -1;
        }
    }
    *out = v;
    return 0;
}

static int add_matcher(P *p, pq_node *n, tsdb_match_type ty, const char *name, const char *val, int pos) {
    pq_matcher *nm = tr_arena_alloc(p->a, (n->nms + 1) * sizeof *nm);
    if (n->nms) memcpy(nm, n->ms, n->nms * sizeof *nm);
    char e[256];
    tsdb_matcher *m = tsdb_matcher_new(ty, name, val, e, sizeof e);
    if (!m) {
        perr(p, pos, "%s", e);
        return -1;
    }
    struct mlist *ml = tr_arena_alloc(p->a, sizeof *ml);
    if (!ml) {
        tsdb_matcher_free(m);
        perr(p, pos, "out of memory");
        return -1;
    }
    ml->m = m;
    ml->next = p->compiled;
    p->compiled = ml;
    nm[n->nms].type = ty;
    nm[n->nms].name = tr_arena_strndup(p->a, name, strlen(name));
    nm[n->nms].value = tr_arena_strndup(p->a, val, strlen(val));
    nm[n->nms].m = m;
    n->ms = nm;
    n->nms++;
    return 0;
}

/* { matchers } after an optional metric name */
static int parse_matchers(P *p, pq_node *n) {
    pq_tok t;
    for (;;) {
        t = next(p);
        if (p->failed) return -1;
        if (t.kind == T_RBRACE) break;
        char *lname = NULL;
        if (t.kind == T_IDENT) {
            lname = tokdup(p, t);
        } else if (t.kind == T_STRING) {
            if (pq_unquote(p->a, t.s, t.len, &lname, NULL) != 0) {
                perr(p, t.pos, "invalid string");
                return -1;
            }
            pq_tok pk = peek(p);
            if (pk.kind == T_COMMA || pk.kind == T_RBRACE) {
                /* a bare quoted metric name */
                if (n->name) {
                    perr(p, t.pos, "metric name must not be set twice: \"%s\" or \"%s\"", n->name, lname);
                    return -1;
                }
                n->name = lname;
                if (add_matcher(p, n, TSDB_MATCH_EQ, "__name__", lname, t.pos)) return -1;
                t = next(p);
                if (t.kind == T_RBRACE) break;
                continue;
            }
        } else {
            unexpected(p, t, "label matching", "label matching operator");
            if (t.kind == T_IDENT || t.kind == T_STRING) {
            }
            return -1;
        }
        pq_tok op = next(p);
        tsdb_match_type ty;
        switch (op.kind) {
        case T_ASSIGN:
            ty = TSDB_MATCH_EQ;
            break;
        case T_NEQ:
            ty = TSDB_MATCH_NEQ;
            break;
        case T_EQLREGEX:
            ty = TSDB_MATCH_RE;
            break;
        case T_NEQREGEX:
            ty = TSDB_MATCH_NRE;
            break;
        default:
            unexpected(p, op, "label matching", "label matching operator");
            return -1;
        }
        pq_tok v = next(p);
        if (v.kind != T_STRING) {
            unexpected(p, v, "label matching", "string");
            return -1;
        }
        char *val;
        if (pq_unquote(p->a, v.s, v.len, &val, NULL) != 0) {
            perr(p, v.pos, "invalid string");
            return -1;
        }
        if (!strcmp(lname, "__name__") && ty == TSDB_MATCH_EQ && n->name) {
            perr(p, t.pos, "metric name must not be set twice: \"%s\" or \"%s\"", n->name, val);
            return -1;
        }
        if (add_matcher(p, n, ty, lname, val, v.pos)) return -1;
        t = next(p);
        if (t.kind == T_RBRACE) break;
        if (t.kind != T_COMMA) {
            unexpected(p, t, "label matching", "\",\" or \"}\"");
            return -1;
        }
    }
    n->end = t.pos + 1;
    return 0;
}

static int check_selector(P *p, pq_node *n) {
    if (p->selector_mode) return 0;
    int nonempty = 0;
    for (size_t i = 0; i < n->nms; i++)
        if (!tsdb_matcher_matches(n->ms[i].m, "")) nonempty = 1;
    if (!nonempty) {
        perr(p, n->pos, "vector selector must contain at least one non-empty matcher");
        return -1;
    }
    return 0;
}

/* a duration or a number of seconds */
static int parse_dur(P *p, int64_t *ms, int allow_neg, const char *ctx) {
    pq_tok t = next(p);
    int neg = 0;
    if (allow_neg && (t.kind == T_SUB || t.kind == T_ADD)) {
        neg = t.kind == T_SUB;
        t = next(p);
    }
    if (t.kind == T_DURATION) {
        if (pq_parse_duration(t.s, t.len, ms) != 0) {
            perr(p, t.pos, "not a valid duration string: \"%.*s\"", t.len, t.s);
            return -1;
        }
    } else if (t.kind == T_NUMBER) {
        char *buf = tokdup(p, t);
        double d = buf ? strtod(buf, NULL) : NAN;
        if (!isfinite(d) || fabs(d) * 1000 > 9.2e18) {
            perr(p, t.pos, "duration out of range");
            return -1;
        }
        *ms = (int64_t)llround(d * 1000);
    } else {
        unexpected(p, t, ctx, "duration");
        return -1;
    }
    if (neg) *ms = -*ms;
    return 0;
}

/* duration arithmetic ([26m+4m], [1h/2], offset (2*3)): seconds as doubles */
static int dexpr(P *p, int minprec, double *v);

static int dprimary(P *p, double *v) {
    pq_tok t = next(p);
    if (p->failed) return -1;
    if (t.kind == T_LPAREN) {
        if (dexpr(p, 0, v)) return -1;
        pq_tok c = next(p);
        if (c.kind != T_RPAREN) {
            unexpected(p, c, "duration expression", "\")\"");
            return -1;
        }
        return 0;
    }
    if (t.kind == T_SUB || t.kind == T_ADD) {
        if (dexpr(p, 6, v)) return -1;
        if (t.kind == T_SUB) *v = -*v;
        return 0;
    }
    if (t.kind == T_DURATION) {
        int64_t ms;
        if (pq_parse_duration(t.s, t.len, &ms)) {
            perr(p, t.pos, "not a valid duration string: \"%.*s\"", t.len, t.s);
            return -1;
        }
        *v = ms / 1000.0;
        return 0;
    }
    if (t.kind == T_NUMBER) {
        char *buf = tokdup(p, t);
        if (!buf) return -1;
        *v = (t.len >= 2 && (buf[1] == 'x' || buf[1] == 'X')) ? (double)strtoull(buf, NULL, 16)
                                                              : strtod(buf, NULL);
        return 0;
    }
    unexpected(p, t, "duration expression", "duration");
    return -1;
}

static int dexpr(P *p, int minprec, double *v) {
    if (++p->depth > 500) {
        perr(p, p->tok.pos, "expression nested too deeply");
        return -1;
    }
    if (dprimary(p, v)) return -1;
    for (;;) {
        pq_tok t = peek(p);
        int prec;
        switch (t.kind) {
        case T_ADD:
        case T_SUB:
            prec = 4;
            break;
        case T_MUL:
        case T_DIV:
        case T_MOD:
            prec = 5;
            break;
        case T_POW:
            prec = 6;
            break;
        default:
            prec = -1;
        }
        if (prec < 0 || prec < minprec) break;
        next(p);
        double r;
        if (dexpr(p, t.kind == T_POW ? prec : prec + 1, &r)) return -1;
        switch (t.kind) {
        case T_ADD:
            *v += r;
            break;
        case T_SUB:
            *v -= r;
            break;
        case T_MUL:
            *v *= r;
            break;
        case T_DIV:
            if (r == 0) {
                perr(p, t.pos, "division by zero");
                return -1;
            }
            *v /= r;
            break;
        case T_MOD:
            if (r == 0) {
                perr(p, t.pos, "modulo by zero");
                return -1;
            }
            *v = fmod(*v, r);
            break;
        default:
            *v = pow(*v, r);
        }
    }
    p->depth--;
    return 0;
}

/* a duration in brackets: a literal or an arithmetic expression (its text kept in *src) */
static int parse_dur_expr(P *p, int64_t *ms, char **src) {
    pq_tok first = peek(p);
    *src = NULL;
    double v;
    if (dexpr(p, 0, &v)) return -1;
    if (!isfinite(v) || fabs(v) * 1000 > 9.2e18) {
        perr(p, first.pos, "duration out of range");
        return -1;
    }
    *ms = (int64_t)llround(v * 1000);
    int end = p->tok.pos + p->tok.len;
    if (p->tok.pos != first.pos || first.kind == T_SUB || first.kind == T_ADD)
        *src = tr_arena_strndup(p->a, p->q + first.pos, (size_t)(end - first.pos));
    return 0;
}

static pq_node *parse_postfix(P *p, pq_node *e) {
    for (;;) {
        if (p->failed) return NULL;
        pq_tok t = peek(p);
        if (t.kind == T_LBRACKET) {
            next(p);
            int64_t r;
            char *rsrc;
            if (parse_dur_expr(p, &r, &rsrc)) return NULL;
            pq_tok c = next(p);
            if (c.kind == T_RBRACKET) {
                if (e->kind != N_VSEL) {
                    perr(p, e->pos, "ranges only allowed for vector selectors");
                    return NULL;
                }
                if (e->offset_ms) {
                    perr(p, e->pos, "no offset modifiers allowed before range");
                    return NULL;
                }
                if (e->at) {
                    perr(p, e->pos, "no @ modifiers allowed before range");
                    return NULL;
                }
                if (r <= 0) {
                    perr(p, t.pos, "duration must be greater than 0");
                    return NULL;
                }
                pq_node *m = mknode(p, N_MSEL, e->pos);
                m->expr = e;
                m->range_ms = r;
                m->range_src = rsrc;
                m->type = PV_MATRIX;
                m->h = e->h + 1;
                m->end = c.pos + 1;
                e = m;
                continue;
            }
            if (c.kind != T_COLON) {
                unexpected(p, c, "subquery or range selector", "\":\" or \"]\"");
                return NULL;
            }
            int64_t step = 0;
            char *ssrc = NULL;
            pq_tok s = peek(p);
            if (s.kind != T_RBRACKET) {
                if (parse_dur_expr(p, &step, &ssrc)) return NULL;
                if (step <= 0) {
                    perr(p, s.pos, "zero or negative subquery step");
                    return NULL;
                }
            }
            c = next(p);
            if (c.kind != T_RBRACKET) {
                unexpected(p, c, "subquery selector", "\"]\"");
                return NULL;
            }
            if (e->type != PV_VECTOR) {
                perr(p, e->pos, "subquery is only allowed on instant vector, got %s instead",
                     type_name(e->type));
                return NULL;
            }
            if (r <= 0) {
                perr(p, t.pos, "duration must be greater than 0");
                return NULL;
            }
            pq_node *sq = mknode(p, N_SUBQ, e->pos);
            sq->expr = e;
            sq->range_ms = r;
            sq->step_ms = step;
            sq->range_src = rsrc;
            sq->step_src = ssrc;
            sq->type = PV_MATRIX;
            sq->h = e->h + 1;
            sq->end = c.pos + 1;
            e = sq;
            continue;
        }
        if (tok_is(t, "offset")) {
            next(p);
            pq_node *tgt = e->kind == N_MSEL ? e->expr : e;
            if (tgt->kind != N_VSEL && e->kind != N_SUBQ) {
                perr(p, t.pos,
                     "offset modifier must be preceded by an instant vector selector or range vector "
                     "selector or a subquery");
                return NULL;
            }
            if (tgt->offset_ms) {
                perr(p, t.pos, "offset may not be set multiple times");
                return NULL;
            }
            int64_t o;
            pq_tok o1 = peek(p);
            if (o1.kind == T_LPAREN || o1.kind == T_SUB || o1.kind == T_ADD) {
                /* offset (expr), offset -(expr), offset -5m */
                pq_tok sign = o1;
                if (o1.kind != T_LPAREN) {
                    next(p);
                    o1 = peek(p);
                }
                if (o1.kind == T_LPAREN) {
                    double v;
                    if (dprimary(p, &v)) return NULL;
                    if (!isfinite(v) || fabs(v) * 1000 > 9.2e18) {
                        perr(p, o1.pos, "duration out of range");
                        return NULL;
                    }
                    if (sign.kind == T_SUB) v = -v;
                    o = (int64_t)llround(v * 1000);
                    int end = p->tok.pos + p->tok.len;
                    tgt->offset_src = tr_arena_strndup(p->a, p->q + sign.pos, (size_t)(end - sign.pos));
                } else {
                    if (parse_dur(p, &o, 0, "offset")) return NULL;
                    if (sign.kind == T_SUB) o = -o;
                }
            } else if (parse_dur(p, &o, 1, "offset"))
                return NULL;
            tgt->offset_ms = o;
            e->end = p->tok.pos + p->tok.len;
            continue;
        }
        if (t.kind == T_AT) {
            next(p);
            pq_node *tgt = e->kind == N_MSEL ? e->expr : e;
            if (tgt->kind != N_VSEL && e->kind != N_SUBQ) {
                perr(p, t.pos,
                     "@ modifier must be preceded by an instant vector selector or range vector selector or "
                     "a subquery");
                return NULL;
            }
            if (tgt->at) {
                perr(p, t.pos, "@ <timestamp> may not be set multiple times");
                return NULL;
            }
            pq_tok v = next(p);
            if (tok_is(v, "start") || tok_is(v, "end")) {
                tgt->at = tok_is(v, "start") ? AT_START : AT_END;
                if (next(p).kind != T_LPAREN || next(p).kind != T_RPAREN) {
                    unexpected(p, p->tok, "@", "\"(\" and \")\"");
                    return NULL;
                }
            } else {
                int neg = 0;
                if (v.kind == T_SUB || v.kind == T_ADD) {
                    neg = v.kind == T_SUB;
                    v = next(p);
                }
                double d;
                char *buf;
                if (v.kind == T_NUMBER) {
                    buf = tokdup(p, v);
                    if (!buf) return NULL;
                    d = strtod(buf, NULL);
                } else if (v.kind == T_DURATION) {
                    int64_t ms;
                    if (pq_parse_duration(v.s, v.len, &ms)) {
                        perr(p, v.pos, "bad duration");
                        return NULL;
                    }
                    d = ms / 1000.0;
                } else {
                    unexpected(p, v, "@", "timestamp");
                    return NULL;
                }
                if (neg) d = -d;
                if (!isfinite(d) || fabs(d * 1000) > 9.2e18) {
                    perr(p, v.pos, "timestamp out of bounds for @ modifier: %f", d);
                    return NULL;
                }
                tgt->at = AT_TIME;
                tgt->at_ms = (int64_t)llround(d * 1000);
            }
            e->end = p->tok.pos + p->tok.len;
            continue;
        }
        return e;
    }
}

static int check_call(P *p, pq_node *n) {
    const pq_func *f = n->fn;
    int na = (int)n->nargs;
    if (f->variadic == 0 && na != f->nargs) {
        perr(p, n->pos, "expected %d argument(s) in call to \"%s\", got %d", f->nargs, f->name, na);
        return -1;
    }
    if (f->variadic != 0 && na < f->nargs - 1) {
        perr(p, n->pos, "expected at least %d argument(s) in call to \"%s\", got %d", f->nargs - 1, f->name,
             na);
        return -1;
    }
    if (f->variadic > 0 && na > f->nargs - 1 + f->variadic) {
        perr(p, n->pos, "expected at most %d argument(s) in call to \"%s\", got %d",
             f->nargs - 1 + f->variadic, f->name, na);
        return -1;
    }
    for (int i = 0; i < na; i++) {
        pq_vtype want = i < f->nargs ? f->args[i] : f->args[f->nargs - 1];
        if (n->args[i]->type != want) {
            perr(p, n->args[i]->pos, "expected type %s in call to function \"%s\", got %s", type_name(want),
                 f->name, type_name(n->args[i]->type));
            return -1;
        }
    }
    return 0;
}

static pq_node *parse_primary(P *p) {
    pq_tok t = next(p);
    if (p->failed) return NULL;
    if (++p->depth > 500) {
        perr(p, t.pos, "expression nested too deeply");
        return NULL;
    }
    pq_node *n = NULL;
    switch (t.kind) {
    case T_NUMBER: {
        n = mknode(p, N_NUM, t.pos);
        char *buf = tokdup(p, t);
        if (!buf) return NULL;
        if (t.len >= 2 && (buf[1] == 'x' || buf[1] == 'X'))
            n->num = (double)strtoull(buf, NULL, 16);
        else
            n->num = strtod(buf, NULL);
        n->type = PV_SCALAR;
        n->end = t.pos + t.len;
        break;
    }
    case T_DURATION: {
        int64_t ms;
        if (pq_parse_duration(t.s, t.len, &ms)) {
            perr(p, t.pos, "not a valid duration string: \"%.*s\"", t.len, t.s);
            return NULL;
        }
        n = mknode(p, N_NUM, t.pos);
        n->num = ms / 1000.0;
        n->is_dur = 1;
        n->type = PV_SCALAR;
        n->end = t.pos + t.len;
        break;
    }
    case T_STRING: {
        n = mknode(p, N_STR, t.pos);
        if (pq_unquote(p->a, t.s, t.len, &n->str, NULL) != 0) {
            perr(p, t.pos, "invalid syntax");
            return NULL;
        }
        n->type = PV_STRING;
        n->end = t.pos + t.len;
        break;
    }
    case T_LPAREN: {
        pq_node *in = parse_expr(p, 0);
        if (!in) return NULL;
        pq_tok c = next(p);
        if (c.kind != T_RPAREN) {
            unexpected(p, c, "paren expression", "\")\"");
            return NULL;
        }
        n = mknode(p, N_PAREN, t.pos);
        n->expr = in;
        n->type = in->type;
        n->h = in->h + 1;
        n->end = c.pos + 1;
        break;
    }
    case T_LBRACE: {
        n = mknode(p, N_VSEL, t.pos);
        if (parse_matchers(p, n)) return NULL;
        if (check_selector(p, n)) return NULL;
        n->type = PV_VECTOR;
        break;
    }
    case T_IDENT: {
        int ag = agg_of(t);
        pq_tok pk = peek(p);
        if (ag >= 0 && (pk.kind == T_LPAREN || tok_is(pk, "by") || tok_is(pk, "without"))) {
            n = mknode(p, N_AGG, t.pos);
            n->op = ag;
            n->type = PV_VECTOR;
            if (tok_is(pk, "by") || tok_is(pk, "without")) {
                next(p);
                n->without = tok_is(pk, "without");
                n->by_given = 1;
                if (parse_label_list(p, &n->grp, &n->ngrp)) return NULL;
            }
            pq_tok lp = next(p);
            if (lp.kind != T_LPAREN) {
                unexpected(p, lp, "aggregation", "\"(\"");
                return NULL;
            }
            pq_node *args[3];
            int na = 0;
            if (peek(p).kind != T_RPAREN) {
                for (;;) {
                    pq_node *a = parse_expr(p, 0);
                    if (!a) return NULL;
                    if (na < 3) args[na] = a;
                    na++;
                    pq_tok c = next(p);
                    if (c.kind == T_RPAREN) break;
                    if (c.kind != T_COMMA) {
                        unexpected(p, c, "aggregation", "\",\" or \")\"");
                        return NULL;
                    }
                    if (peek(p).kind == T_RPAREN) {
                        next(p);
                        break;
                    }
                }
            } else
                next(p);
            n->end = p->tok.pos + 1;
            int want = (ag == AGG_TOPK || ag == AGG_BOTTOMK || ag == AGG_QUANTILE || ag == AGG_COUNT_VALUES ||
                        ag == AGG_LIMITK || ag == AGG_LIMIT_RATIO)
                           ? 2
                           : 1;
            if (na != want) {
                perr(p, t.pos,
                     "wrong number of arguments for aggregate expression provided, expected %d, got %d", want,
                     na);
                return NULL;
            }
            if (want == 2) {
                n->param = args[0];
                n->h = args[0]->h;
                n->expr = args[1];
            } else
                n->expr = args[0];
            pq_tok after = peek(p);
            if (tok_is(after, "by") || tok_is(after, "without")) {
                if (n->by_given) {
                    unexpected(p, after, "aggregation", NULL);
                    return NULL;
                }
                next(p);
                n->without = tok_is(after, "without");
                n->by_given = 1;
                n->grp_after = 1;
                if (parse_label_list(p, &n->grp, &n->ngrp)) return NULL;
                n->end = p->tok.pos + 1;
            }
            if (n->expr->h + 1 > n->h) n->h = n->expr->h + 1;
            if (n->expr->type != PV_VECTOR) {
                perr(p, n->expr->pos, "expected type instant vector in aggregation expression, got %s",
                     type_name(n->expr->type));
                return NULL;
            }
            if (n->param) {
                pq_vtype w = ag == AGG_COUNT_VALUES ? PV_STRING : PV_SCALAR;
                if (n->param->type != w) {
                    perr(p, n->param->pos, "expected type %s in aggregation parameter, got %s", type_name(w),
                         type_name(n->param->type));
                    return NULL;
                }
            }
            break;
        }
        if (pk.kind == T_LPAREN && !is_keyword(t)) {
            const pq_func *f = pq_func_lookup(t.s, t.len);
            if (!f) {
                perr(p, t.pos, "unknown function with name \"%.*s\"", t.len, t.s);
                return NULL;
            }
            next(p);
            n = mknode(p, N_CALL, t.pos);
            n->fn = f;
            n->type = f->ret;
            size_t cap = 0;
            if (peek(p).kind != T_RPAREN) {
                for (;;) {
                    pq_node *a = parse_expr(p, 0);
                    if (!a) return NULL;
                    if (n->nargs == cap) {
                        size_t nc = cap ? cap * 2 : 4;
                        pq_node **na = tr_arena_alloc(p->a, nc * sizeof *na);
                        if (cap) memcpy(na, n->args, cap * sizeof *na);
                        n->args = na;
                        cap = nc;
                    }
                    n->args[n->nargs++] = a;
                    pq_tok c = next(p);
                    if (c.kind == T_RPAREN) break;
                    if (c.kind != T_COMMA) {
                        unexpected(p, c, "function call", "\",\" or \")\"");
                        return NULL;
                    }
                    if (peek(p).kind == T_RPAREN) {
                        next(p);
                        break;
                    }
                }
            } else
                next(p);
            n->end = p->tok.pos + 1;
            if (check_call(p, n)) return NULL;
            for (size_t i = 0; i < n->nargs; i++)
                if (n->args[i]->h + 1 > n->h) n->h = n->args[i]->h + 1;
            break;
        }
        if (is_keyword(t) || tok_is(t, "start") || tok_is(t, "end")) {
            if (!(tok_is(t, "start") || tok_is(t, "end")) || pk.kind == T_LPAREN) {
                unexpected(p, t, NULL, NULL);
                return NULL;
            }
        }
        n = mknode(p, N_VSEL, t.pos);
        n->name = tokdup(p, t);
        n->type = PV_VECTOR;
        n->end = t.pos + t.len;
        if (add_matcher(p, n, TSDB_MATCH_EQ, "__name__", n->name, t.pos)) return NULL;
        if (peek(p).kind == T_LBRACE) {
            next(p);
            if (parse_matchers(p, n)) return NULL;
        }
        break;
    }
    case T_EOF:
        unexpected(p, t, NULL, NULL);
        return NULL;
    default:
        unexpected(p, t, NULL, NULL);
        return NULL;
    }
    if (!n || p->failed) return NULL;
    n = parse_postfix(p, n);
    p->depth--;
    return n;
}

static int binop_of(P *p, pq_tok t, int *prec) {
    switch (t.kind) {
    case T_ADD:
    case T_SUB:
        *prec = 4;
        return t.kind;
    case T_MUL:
    case T_DIV:
    case T_MOD:
        *prec = 5;
        return t.kind;
    case T_POW:
        *prec = 6;
        return t.kind;
    case T_EQLC:
    case T_NEQ:
    case T_LSS:
    case T_GTR:
    case T_LTE:
    case T_GTE:
        *prec = 3;
        return t.kind;
    case T_ASSIGN:
        return -2;
    case T_IDENT:
        if (tok_is(t, "or")) {
            *prec = 1;
            return T_LOR;
        }
        if (tok_is(t, "and")) {
            *prec = 2;
            return T_LAND;
        }
        if (tok_is(t, "unless")) {
            *prec = 2;
            return T_LUNLESS;
        }
        if (tok_is(t, "atan2")) {
            *prec = 5;
            return T_ATAN2;
        }
        return -1;
    default:
        return -1;
    }
}

static int is_comparison(int op) {
    return op == T_EQLC || op == T_NEQ || op == T_LSS || op == T_GTR || op == T_LTE || op == T_GTE;
}
static int is_setop(int op) { return op == T_LAND || op == T_LOR || op == T_LUNLESS; }

static pq_node *parse_unary(P *p) {
    pq_tok t = peek(p);
    if (t.kind == T_ADD || t.kind == T_SUB) {
        next(p);
        if (++p->depth > 500) {
            perr(p, t.pos, "expression nested too deeply");
            return NULL;
        }
        pq_node *e = parse_expr(p, 6);
        p->depth--;
        if (!e) return NULL;
        if (e->type != PV_SCALAR && e->type != PV_VECTOR) {
            perr(p, t.pos,
                 "unary expression only allowed on expressions of type scalar or instant vector, got %s",
                 type_name(e->type));
            return NULL;
        }
        if (e->kind == N_NUM || t.kind == T_ADD) {
            /* literals fold; a unary plus changes nothing (and printing "+" before a printed
             * "+Inf" would not parse back to the same tree) */
            if (t.kind == T_SUB) e->num = -e->num;
            if (e->kind == N_NUM) e->pos = t.pos;
            return e;
        }
        pq_node *u = mknode(p, N_UNARY, t.pos);
        u->expr = e;
        u->unary_neg = t.kind == T_SUB;
        u->type = e->type;
        u->h = e->h + 1;
        u->end = e->end;
        return u;
    }
    return parse_primary(p);
}

static pq_node *parse_expr(P *p, int minprec) {
    pq_node *lhs = parse_unary(p);
    if (!lhs) return NULL;
    for (;;) {
        if (p->failed) return NULL;
        pq_tok t = peek(p);
        int prec = 0;
        int op = binop_of(p, t, &prec);
        if (op == -2) {
            perr(p, t.pos, "unexpected \"=\" in binary expression, did you mean \"==\"?");
            return NULL;
        }
        if (op < 0 || prec < minprec) {
            if (op < 0 && t.kind != T_EOF && t.kind != T_RPAREN && t.kind != T_COMMA &&
                t.kind != T_RBRACKET && t.kind != T_COLON && t.kind != T_RBRACE && minprec == 0 &&
                p->depth == 0) {
                /* leftover garbage at the top level */
            }
            return lhs;
        }
        next(p);
        pq_node *b = mknode(p, N_BIN, lhs->pos);
        b->op = op;
        b->lhs = lhs;
        if (tok_is(peek(p), "bool")) {
            next(p);
            if (!is_comparison(op)) {
                perr(p, t.pos, "bool modifier can only be used on comparison operators");
                return NULL;
            }
            b->bool_ = 1;
        }
        pq_tok m = peek(p);
        if (tok_is(m, "on") || tok_is(m, "ignoring")) {
            next(p);
            b->has_matching = 1;
            b->on = tok_is(m, "on");
            if (parse_label_list(p, &b->grp, &b->ngrp)) return NULL;
            pq_tok g = peek(p);
            if (tok_is(g, "group_left") || tok_is(g, "group_right")) {
                next(p);
                b->card = tok_is(g, "group_left") ? CARD_MANY_TO_ONE : CARD_ONE_TO_MANY;
                if (peek(p).kind == T_LPAREN)
                    if (parse_label_list(p, &b->incl, &b->nincl)) return NULL;
            }
        } else if (tok_is(m, "group_left") || tok_is(m, "group_right")) {
            unexpected(p, m, "binary expression", NULL);
            return NULL;
        }
        if (++p->depth > 500) {
            perr(p, t.pos, "expression nested too deeply");
            return NULL;
        }
        pq_node *rhs = parse_expr(p, op == T_POW ? prec : prec + 1);
        p->depth--;
        if (!rhs) return NULL;
        b->rhs = rhs;
        b->end = rhs->end;
        /* type checks (checkAST) */
        pq_vtype lt = lhs->type, rt = rhs->type;
        if ((lt != PV_SCALAR && lt != PV_VECTOR) || (rt != PV_SCALAR && rt != PV_VECTOR)) {
            perr(p, lhs->pos, "binary expression must contain only scalar and instant vector types");
            return NULL;
        }
        if (is_comparison(op) && !b->bool_ && lt == PV_SCALAR && rt == PV_SCALAR) {
            perr(p, lhs->pos, "comparisons between scalars must use BOOL modifier");
            return NULL;
        }
        if (is_setop(op) && (lt == PV_SCALAR || rt == PV_SCALAR)) {
            static const char *nm[] = {"and", "or", "unless"};
            perr(p, lhs->pos, "set operator \"%s\" not allowed in binary scalar expression",
                 nm[op == T_LAND  ? 0
                    : op == T_LOR ? 1
                                  : 2]);
            return NULL;
        }
        if (b->has_matching && (lt != PV_VECTOR || rt != PV_VECTOR)) {
            perr(p, lhs->pos, "vector matching only allowed between instant vectors");
            return NULL;
        }
        if (is_setop(op) && b->card != CARD_ONE_TO_ONE) {
            static const char *nm[] = {"and", "or", "unless"};
            perr(p, lhs->pos, "no grouping allowed for \"%s\" operation",
                 nm[op == T_LAND  ? 0
                    : op == T_LOR ? 1
                                  : 2]);
            return NULL;
        }
        if (is_setop(op)) b->card = CARD_MANY_TO_MANY;
        if (b->on)
            for (size_t i = 0; i < b->ngrp; i++)
                for (size_t j = 0; j < b->nincl; j++)
                    if (!strcmp(b->grp[i], b->incl[j])) {
                        perr(p, lhs->pos, "label \"%s\" must not occur in ON and GROUP clause at once",
                             b->incl[j]);
                        return NULL;
                    }
        b->type = (lt == PV_VECTOR || rt == PV_VECTOR) ? PV_VECTOR : PV_SCALAR;
        b->h = (lhs->h > rhs->h ? lhs->h : rhs->h) + 1;
        if (b->h > 1000) {
            perr(p, t.pos, "expression nested too deeply");
            return NULL;
        }
        lhs = b;
    }
}

static void free_rec(pq_node *n) {
    if (!n) return;
    for (size_t i = 0; i < n->nms; i++)
        tsdb_matcher_free(n->ms[i].m);
    n->nms = 0;
    free_rec(n->expr);
    free_rec(n->lhs);
    free_rec(n->rhs);
    free_rec(n->param);
    for (size_t i = 0; i < n->nargs; i++)
        free_rec(n->args[i]);
}

void pq_tree_free(pq_node *n) { free_rec(n); }

pq_node *pq_parse(tr_arena *a, const char *q, size_t len, char *err, size_t errlen) {
    return pq_parse_ex(a, q, len, 0, err, errlen);
}

pq_node *pq_parse_ex(tr_arena *a, const char *q, size_t len, int selector_mode, char *err, size_t errlen) {
    P p = {0};
    p.selector_mode = selector_mode;
    p.a = a;
    p.q = q;
    p.qlen = len;
    p.err = err;
    p.errlen = errlen;
    pq_lex_init(&p.lx, q, len);
    pq_tok first = peek(&p);
    if (first.kind == T_EOF && !p.failed) {
        snprintf(err, errlen, "no expression found in input");
        return NULL;
    }
    pq_node *n = p.failed ? NULL : parse_expr(&p, 0);
    if (n && !p.failed) {
        pq_tok t = next(&p);
        if (t.kind != T_EOF && !p.failed) {
            unexpected(&p, t, NULL, NULL);
        }
    }
    if (p.failed || !n) {
        for (struct mlist *ml = p.compiled; ml; ml = ml->next)
            tsdb_matcher_free(ml->m);
        if (!p.failed) snprintf(err, errlen, "parse error");
        return NULL;
    }
    if (tr_arena_exhausted(a)) {
        pq_tree_free(n);
        snprintf(err, errlen, "query too large");
        return NULL;
    }
    return n;
}
