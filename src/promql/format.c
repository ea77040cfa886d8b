/* Prometheus's String() form of a PromQL tree (format_query, and the @-rewrites of tests). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "promql/ast.h"

typedef struct {
    char *b;
    size_t n, cap;
    int oom;
} sb;

static void sb_add(sb *s, const char *fmt, ...) {
    if (s->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(s->b ? s->b + s->n : NULL, s->b ? s->cap - s->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            s->oom = 1;
            return;
        }
        if (s->b && s->n + (size_t)k < s->cap) {
            s->n += (size_t)k;
            return;
        }
        size_t nc = (s->cap ? s->cap * 2 : 256) + (size_t)k;
        char *nb = realloc(s->b, nc);
        if (!nb) {
            s->oom = 1;
            return;
        }
        s->b = nb;
        s->cap = nc;
    }
}

/* Go's strconv.Quote for valid UTF-8 text */
static void sb_quote(sb *s, const char *v) {
    sb_add(s, "\"");
    for (const unsigned char *c = (const unsigned char *)v; *c; c++) {
        switch (*c) {
        case '"':
            sb_add(s, "\\\"");
            break;
        case '\\':
            sb_add(s, "\\\\");
            break;
        case '\n':
            sb_add(s, "\\n");
            break;
        case '\r':
            sb_add(s, "\\r");
            break;
        case '\t':
            sb_add(s, "\\t");
            break;
        case '\a':
            sb_add(s, "\\a");
            break;
        case '\b':
            sb_add(s, "\\b");
            break;
        case '\f':
            sb_add(s, "\\f");
            break;
        case '\v':
            sb_add(s, "\\v");
            break;
        default:
            if (*c < 0x20 || *c == 0x7f)
                sb_add(s, "\\x%02x", *c);
            else
                sb_add(s, "%c", *c);
        }
    }
    sb_add(s, "\"");
}

static const char *opstr(int op) {
    switch (op) {
    case T_ADD:
        return "+";
    case T_SUB:
        return "-";
    case T_MUL:
        return "*";
    case T_DIV:
        return "/";
    case T_MOD:
        return "%";
    case T_POW:
        return "^";
    case T_EQLC:
        return "==";
    case T_NEQ:
        return "!=";
    case T_LSS:
        return "<";
    case T_GTR:
        return ">";
    case T_LTE:
        return "<=";
    case T_GTE:
        return ">=";
    case T_LAND:
        return "and";
    case T_LOR:
        return "or";
    case T_LUNLESS:
        return "unless";
    case T_ATAN2:
        return "atan2";
    }
    return "?";
}

static const char *aggname[] = {"sum",      "avg",          "count",  "min",        "max",
                                "group",    "stddev",       "stdvar", "topk",       "bottomk",
                                "quantile", "count_values", "limitk", "limit_ratio"};

/* a name that needs no quotes: [a-zA-Z_][a-zA-Z0-9_]* (colons too for metric names) */
static int legacy_name(const char *v, int colon) {
    if (!*v) return 0;
    for (const char *c = v; *c; c++) {
        int ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' || (colon && *c == ':') ||
                 (c > v && *c >= '0' && *c <= '9');
        if (!ok) return 0;
    }
    return 1;
}

static int keyword(const char *v) {
    static const char *kw[] = {
        "and",        "or",          "unless", "atan2",  "by",    "without", "on",       "ignoring",
        "group_left", "group_right", "bool",   "offset", "sum",   "avg",     "count",    "min",
        "max",        "group",       "stddev", "stdvar", "topk",  "bottomk", "quantile", "count_values",
        "limitk",     "limit_ratio", "inf",    "nan",    "start", "end"};
    for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++)
        if (!strcasecmp(v, kw[i])) return 1;
    return 0;
}

static void label_name(sb *s, const char *n) {
    if (legacy_name(n, 0))
        sb_add(s, "%s", n);
    else
        sb_quote(s, n);
}

static void labels_list(sb *s, char **l, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (i) sb_add(s, ", ");
        label_name(s, l[i]);
    }
}

/* " @ <t>" then " offset <d>", as Prometheus prints them */
static void mods(sb *s, const pq_node *n) {
    char d[64];
    if (n->at == AT_TIME)
        sb_add(s, " @ %.3f", n->at_ms / 1000.0);
    else if (n->at == AT_START)
        sb_add(s, " @ start()");
    else if (n->at == AT_END)
        sb_add(s, " @ end()");
    if (n->offset_src) {
        sb_add(s, " offset %s", n->offset_src);
    } else if (n->offset_ms > 0) {
        pq_format_duration(n->offset_ms, d, sizeof d);
        sb_add(s, " offset %s", d);
    } else if (n->offset_ms < 0) {
        pq_format_duration(-n->offset_ms, d, sizeof d);
        sb_add(s, " offset -%s", d);
    }
}

/* Go's strconv.FormatFloat(v, 'f', -1, 64): shortest digits, never an exponent */
static void fmt_f(double v, char *buf, size_t cap) {
    if (isnan(v)) {
        snprintf(buf, cap, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, cap, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char tmp[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
        if (strtod(tmp, NULL) == v) break;
    }
    char *e = strchr(tmp, 'e');
    int exp = atoi(e + 1);
    char digits[32];
    int nd = 0, neg = tmp[0] == '-';
    for (char *p = tmp + neg; p < e; p++)
        if (*p >= '0' && *p <= '9') digits[nd++] = *p;
    size_t o = 0;
    if (neg && o + 1 < cap) buf[o++] = '-';
    if (exp < 0) {
        o += (size_t)snprintf(buf + o, cap - o, "0.");
        for (int k = 0; k < -exp - 1 && o + 1 < cap; k++)
            buf[o++] = '0';
        for (int k = 0; k < nd && o + 1 < cap; k++)
            buf[o++] = digits[k];
    } else {
        for (int k = 0; (k <= exp || k < nd) && o + 2 < cap; k++) {
            if (k == exp + 1) buf[o++] = '.';
            buf[o++] = k < nd ? digits[k] : '0';
        }
    }
    buf[o] = 0;
}

static void fmt(sb *s, const pq_node *n) {
    char d[64];
    switch (n->kind) {
    case N_NUM:
        if (n->is_dur && isfinite(n->num) && fabs(n->num) < 9e15) {
            pq_format_duration((int64_t)llround(fabs(n->num) * 1000), d, sizeof d);
            sb_add(s, "%s%s", n->num < 0 ? "-" : "", d);
        } else {
            char big[400];
            fmt_f(n->num, big, sizeof big);
            sb_add(s, "%s", big);
        }
        break;
    case N_STR:
        sb_quote(s, n->str);
        break;
    case N_VSEL: {
        /* name{matchers sorted as strings, joined by ","}; a name that is not a plain
         * identifier stays a __name__ matcher */
        int bare = n->name && legacy_name(n->name, 1) && !keyword(n->name);
        if (bare) sb_add(s, "%s", n->name);
        char **ms = calloc(n->nms + 1, sizeof *ms);
        size_t k = 0;
        for (size_t i = 0; ms && i < n->nms; i++) {
            const pq_matcher *m = &n->ms[i];
            if (bare && m->type == TSDB_MATCH_EQ && !strcmp(m->name, "__name__") &&
                !strcmp(m->value, n->name))
                continue;
            sb one = {0};
            label_name(&one, m->name);
            static const char *ops[] = {"=", "!=", "=~", "!~"};
            sb_add(&one, "%s", ops[m->type]);
            sb_quote(&one, m->value);
            if (one.oom || !one.b) {
                free(one.b);
                s->oom = 1;
                continue;
            }
            ms[k++] = one.b;
        }
        if (!ms) s->oom = 1;
        for (size_t i = 1; i < k; i++)
            for (size_t j = i; j > 0 && strcmp(ms[j - 1], ms[j]) > 0; j--) {
                char *t = ms[j];
                ms[j] = ms[j - 1];
                ms[j - 1] = t;
            }
        if (k) {
            sb_add(s, "{");
            for (size_t i = 0; i < k; i++)
                sb_add(s, "%s%s", i ? "," : "", ms[i]);
            sb_add(s, "}");
        } else if (!bare)
            sb_add(s, "{}");
        for (size_t i = 0; i < k; i++)
            free(ms[i]);
        free(ms);
        mods(s, n);
        break;
    }
    case N_MSEL: {
        pq_node tmp = *n->expr;
        tmp.offset_ms = 0;
        tmp.offset_src = NULL;
        tmp.at = AT_NONE;
        fmt(s, &tmp);
        pq_format_duration(n->range_ms, d, sizeof d);
        sb_add(s, "[%s]", n->range_src ? n->range_src : d);
        mods(s, n->expr);
        break;
    }
    case N_SUBQ:
        fmt(s, n->expr);
        pq_format_duration(n->range_ms, d, sizeof d);
        sb_add(s, "[%s:", n->range_src ? n->range_src : d);
        if (n->step_ms) {
            pq_format_duration(n->step_ms, d, sizeof d);
            sb_add(s, "%s", n->step_src ? n->step_src : d);
        }
        sb_add(s, "]");
        mods(s, n);
        break;
    case N_CALL:
        sb_add(s, "%s(", n->fn->name);
        for (size_t i = 0; i < n->nargs; i++) {
            if (i) sb_add(s, ", ");
            fmt(s, n->args[i]);
        }
        sb_add(s, ")");
        break;
    case N_AGG:
        sb_add(s, "%s", aggname[n->op]);
        if (n->without) {
            sb_add(s, " without (");
            labels_list(s, n->grp, n->ngrp);
            sb_add(s, ") ");
        } else if (n->ngrp) {
            sb_add(s, " by (");
            labels_list(s, n->grp, n->ngrp);
            sb_add(s, ") ");
        }
        sb_add(s, "(");
        if (n->param) {
            fmt(s, n->param);
            sb_add(s, ", ");
        }
        fmt(s, n->expr);
        sb_add(s, ")");
        break;
    case N_BIN:
        fmt(s, n->lhs);
        sb_add(s, " %s", opstr(n->op));
        if (n->bool_) sb_add(s, " bool");
        if (n->has_matching &&
            (n->on || n->ngrp || n->card == CARD_MANY_TO_ONE || n->card == CARD_ONE_TO_MANY)) {
            sb_add(s, " %s (", n->on ? "on" : "ignoring");
            labels_list(s, n->grp, n->ngrp);
            sb_add(s, ")");
        }
        if (n->card == CARD_MANY_TO_ONE || n->card == CARD_ONE_TO_MANY) {
            sb_add(s, " %s (", n->card == CARD_MANY_TO_ONE ? "group_left" : "group_right");
            labels_list(s, n->incl, n->nincl);
            sb_add(s, ")");
        }
        sb_add(s, " ");
        fmt(s, n->rhs);
        break;
    case N_UNARY:
        sb_add(s, "%s", n->unary_neg ? "-" : "+");
        fmt(s, n->expr);
        break;
    case N_PAREN:
        sb_add(s, "(");
        fmt(s, n->expr);
        sb_add(s, ")");
        break;
    case N_STEPINV:
        fmt(s, n->expr);
        break;
    }
}

char *pq_format_node(const pq_node *n) {
    sb s = {0};
    fmt(&s, n);
    if (s.oom || !s.b) {
        free(s.b);
        return NULL;
    }
    return s.b;
}

/* ---- Prometheus's Prettify (format_query): an expression whose one-line form is longer
 * than 100 characters is split, its operands indented by two spaces per level ---- */

enum { PRETTY_MAX = 100 };

static void indent(sb *s, int level) {
    for (int i = 0; i < level; i++)
        sb_add(s, "  ");
}

/* n's one-line form, and whether it is too long for one line */
static char *one_line(sb *s, const pq_node *n, int *split) {
    char *t = pq_format_node(n);
    if (!t) {
        s->oom = 1;
        *split = 0;
        return NULL;
    }
    *split = strlen(t) > PRETTY_MAX;
    return t;
}

static void pretty(sb *s, const pq_node *n, int level) {
    int split;
    char *t;
    switch (n->kind) {
    case N_STEPINV:
        pretty(s, n->expr, level);
        return;
    case N_UNARY: {
        sb c = {0};
        pretty(&c, n->expr, level);
        if (c.oom) s->oom = 1;
        const char *b = c.b ? c.b : "";
        while (*b == ' ' || *b == '\n' || *b == '\t')
            b++;
        size_t l = strlen(b);
        while (l && (b[l - 1] == ' ' || b[l - 1] == '\n' || b[l - 1] == '\t'))
            l--;
        indent(s, level);
        sb_add(s, "%s%.*s", n->unary_neg ? "-" : "+", (int)l, b);
        free(c.b);
        return;
    }
    case N_SUBQ:
        t = one_line(s, n, &split);
        if (!t) return;
        if (!split) {
            sb_add(s, "%s", t); /* Prometheus indents no unsplit subquery */
        } else {
            char d[64];
            pretty(s, n->expr, level);
            pq_format_duration(n->range_ms, d, sizeof d);
            sb_add(s, "[%s:", n->range_src ? n->range_src : d);
            if (n->step_ms) {
                pq_format_duration(n->step_ms, d, sizeof d);
                sb_add(s, "%s", n->step_src ? n->step_src : d);
            }
            sb_add(s, "]");
            mods(s, n);
        }
        free(t);
        return;
    case N_AGG:
    case N_BIN:
    case N_CALL:
    case N_PAREN:
        break;
    default: /* selectors and literals stay on one line */
        t = pq_format_node(n);
        if (!t) {
            s->oom = 1;
            return;
        }
        indent(s, level);
        sb_add(s, "%s", t);
        free(t);
        return;
    }
    t = one_line(s, n, &split);
    if (!t) return;
    if (!split) {
        indent(s, level);
        sb_add(s, "%s", t);
        free(t);
        return;
    }
    free(t);
    switch (n->kind) {
    case N_AGG:
        indent(s, level);
        sb_add(s, "%s", aggname[n->op]);
        if (n->without) {
            sb_add(s, " without (");
            labels_list(s, n->grp, n->ngrp);
            sb_add(s, ") ");
        } else if (n->ngrp) {
            sb_add(s, " by (");
            labels_list(s, n->grp, n->ngrp);
            sb_add(s, ") ");
        }
        sb_add(s, "(\n");
        if (n->param) {
            pretty(s, n->param, level + 1);
            sb_add(s, ",\n");
        }
        pretty(s, n->expr, level + 1);
        sb_add(s, "\n");
        indent(s, level);
        sb_add(s, ")");
        break;
    case N_BIN:
        pretty(s, n->lhs, level + 1);
        sb_add(s, "\n");
        indent(s, level);
        sb_add(s, "%s", opstr(n->op));
        if (n->bool_) sb_add(s, " bool");
        if (n->has_matching &&
            (n->on || n->ngrp || n->card == CARD_MANY_TO_ONE || n->card == CARD_ONE_TO_MANY)) {
            sb_add(s, " %s (", n->on ? "on" : "ignoring");
            labels_list(s, n->grp, n->ngrp);
            sb_add(s, ")");
        }
        if (n->card == CARD_MANY_TO_ONE || n->card == CARD_ONE_TO_MANY) {
            sb_add(s, " %s (", n->card == CARD_MANY_TO_ONE ? "group_left" : "group_right");
            labels_list(s, n->incl, n->nincl);
            sb_add(s, ")");
        }
        sb_add(s, "\n");
        pretty(s, n->rhs, level + 1);
        break;
    case N_CALL:
        indent(s, level);
        sb_add(s, "%s(\n", n->fn->name);
        for (size_t i = 0; i < n->nargs; i++) {
            if (i) sb_add(s, ",\n");
            pretty(s, n->args[i], level + 1);
        }
        sb_add(s, "\n");
        indent(s, level);
        sb_add(s, ")");
        break;
    default: /* N_PAREN */
        indent(s, level);
        sb_add(s, "(\n");
        pretty(s, n->expr, level + 1);
        sb_add(s, "\n");
        indent(s, level);
        sb_add(s, ")");
        break;
    }
}

char *pq_pretty_node(const pq_node *n) {
    sb s = {0};
    pretty(&s, n, 0);
    if (s.oom || !s.b) {
        free(s.b);
        return NULL;
    }
    return s.b;
}
