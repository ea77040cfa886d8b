/* Go text/template, the part Prometheus's alert templates use: parsed into a small tree,
 * then executed against the alert's data. See tmpl.h. */
#include "tmpl.h"

#include "rules.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/buf.h"
#include "util/re.h"

#define MAX_DEPTH 64
#define MAX_OUT (1 << 20) /* one expansion's output */

/* ---- numbers as Go prints them ---- */

void tr_go_float(double v, char *out, size_t cap) {
    if (isnan(v)) {
        snprintf(out, cap, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == 0) {
        snprintf(out, cap, signbit(v) ? "-0" : "0");
        return;
    }
    char e[64];
    int p;
    for (p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, v);
        if (strtod(e, NULL) == v) break;
    }
    if (p > 17) p = 17;
    snprintf(e, sizeof e, "%.*e", p - 1, v);
    int exp = atoi(strchr(e, 'e') + 1);
    if (exp < -4 || exp >= 6) { /* %v: shortest digits, exponent from 1e+06 on */
        snprintf(out, cap, "%s", e);
        return;
    }
    int dec = p - 1 - exp;
    snprintf(out, cap, "%.*f", dec > 0 ? dec : 0, v);
}

/* Go's %.4g (NaN and Inf spelled as Go does). */
static void g4(double v, const char *suffix, char *out, size_t cap) {
    if (isnan(v))
        snprintf(out, cap, "NaN%s", suffix);
    else if (isinf(v))
        snprintf(out, cap, "%s%s", v > 0 ? "+Inf" : "-Inf", suffix);
    else
        snprintf(out, cap, "%.4g%s", v, suffix);
}

void tr_humanize(double v, char *out, size_t cap) {
    if (v == 0 || isnan(v) || isinf(v)) {
        g4(v, "", out, cap);
        return;
    }
    const char *prefix = "";
    if (fabs(v) >= 1) {
        static const char *const big[] = {"k", "M", "G", "T", "P", "E", "Z", "Y"};
        for (int i = 0; i < 8 && fabs(v) >= 1000; i++) {
            prefix = big[i];
            v /= 1000;
        }
    } else {
        static const char *const small[] = {"m", "u", "n", "p", "f", "a", "z", "y"};
        for (int i = 0; i < 8 && fabs(v) < 1; i++) {
            prefix = small[i];
            v *= 1000;
        }
    }
    g4(v, prefix, out, cap);
}

void tr_humanize1024(double v, char *out, size_t cap) {
    if (fabs(v) <= 1 || isnan(v) || isinf(v)) {
        g4(v, "", out, cap);
        return;
    }
    static const char *const big[] = {"ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"};
    const char *prefix = "";
    for (int i = 0; i < 8 && fabs(v) >= 1024; i++) {
        prefix = big[i];
        v /= 1024;
    }
    g4(v, prefix, out, cap);
}

void tr_humanize_duration(double v, char *out, size_t cap) {
    if (isnan(v) || isinf(v)) {
        g4(v, "", out, cap);
        return;
    }
    if (v == 0) {
        g4(v, "s", out, cap);
        return;
    }
    if (fabs(v) >= 1) {
        const char *sign = "";
        if (v < 0) {
            sign = "-";
            v = -v;
        }
        long long d = (long long)v, s = d % 60, m = (d / 60) % 60, h = (d / 3600) % 24, days = d / 86400;
        if (days)
            snprintf(out, cap, "%s%lldd %lldh %lldm %llds", sign, days, h, m, s);
        else if (h)
            snprintf(out, cap, "%s%lldh %lldm %llds", sign, h, m, s);
        else if (m)
            snprintf(out, cap, "%s%lldm %llds", sign, m, s);
        else
            snprintf(out, cap, "%s%.4gs", sign, v);
        return;
    }
    static const char *const small[] = {"ms", "us", "ns", "ps", "fs", "as", "zs", "ys"};
    const char *suffix = "s";
    for (int i = 0; i < 8 && fabs(v) < 1; i++) {
        suffix = small[i];
        v *= 1000;
    }
    g4(v, suffix, out, cap);
}

/* ---- the tree ---- */

typedef enum { N_TEXT, N_ACTION, N_IF, N_RANGE, N_WITH, N_LIST } nkind;
typedef enum { A_FIELD, A_VAR, A_DOT, A_STR, A_NUM, A_BOOL, A_NIL, A_IDENT, A_PIPE } akind;

typedef struct pipe pipe;
typedef struct arg {
    akind k;
    char *s;       /* A_VAR: name without $; A_STR; A_IDENT */
    char **fields; /* .a.b after the operand */
    int nfields;
    double n;
    int b;
    pipe *p; /* A_PIPE */
} arg;
typedef struct cmd {
    arg *args;
    int nargs;
} cmd;
struct pipe {
    char *decl; /* $x := … (name without $), or NULL */
    cmd *cmds;
    int ncmds;
    int line;
};
typedef struct node node;
struct node {
    nkind k;
    char *text;
    size_t len;
    pipe *p;
    node **kids; /* N_LIST */
    int nkids;
    node *then, *els; /* N_IF, N_RANGE, N_WITH */
};

typedef struct parser {
    const char *name, *src, *s, *end;
    int line;
    char *err;
    size_t errlen;
    int failed;
    int depth;
} parser;

static void perr(parser *p, int line, const char *fmt, ...) {
    if (p->failed) return;
    p->failed = 1;
    char m[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    snprintf(p->err, p->errlen, "template: %s:%d: %s", p->name, line, m);
}

static void pipe_free(pipe *p);
static void arg_free(arg *a) {
    free(a->s);
    for (int i = 0; i < a->nfields; i++)
        free(a->fields[i]);
    free(a->fields);
    if (a->p) pipe_free(a->p);
}
static void pipe_free(pipe *p) {
    if (!p) return;
    for (int i = 0; i < p->ncmds; i++) {
        for (int j = 0; j < p->cmds[i].nargs; j++)
            arg_free(&p->cmds[i].args[j]);
        free(p->cmds[i].args);
    }
    free(p->cmds);
    free(p->decl);
    free(p);
}
static void node_free(node *n) {
    if (!n) return;
    free(n->text);
    pipe_free(n->p);
    for (int i = 0; i < n->nkids; i++)
        node_free(n->kids[i]);
    free(n->kids);
    node_free(n->then);
    node_free(n->els);
    free(n);
}

static void *grow(void *p, int n, size_t sz) {
    void *q = realloc(p, (size_t)(n + 1) * sz);
    if (!q) abort(); /* tiny trees: treat as fatal like the rest of malloc failures here */
    return q;
}

/* inside an action: the lexer works on [s, close) */
static void skip_sp(parser *p, const char *lim) {
    while (p->s < lim && isspace((unsigned char)*p->s)) {
        if (*p->s == '\n') p->line++;
        p->s++;
    }
}

static int is_ident(int c) { return isalnum(c) || c == '_'; }

static pipe *parse_pipe(parser *p, const char *lim, int paren);

static int parse_arg(parser *p, const char *lim, arg *a) {
    memset(a, 0, sizeof *a);
    const char *s = p->s;
    if (*s == '(') {
        p->s++;
        if (++p->depth > MAX_DEPTH) {
            perr(p, p->line, "expression nests too deeply");
            return -1;
        }
        a->k = A_PIPE;
        a->p = parse_pipe(p, lim, 1);
        p->depth--;
        if (!a->p) return -1;
    } else if (*s == '"' || *s == '`') {
        char q = *s++;
        tr_buf b;
        tr_buf_init(&b, 0);
        while (s < lim && *s != q) {
            if (q == '"' && *s == '\\' && s + 1 < lim) {
                s++;
                char c = *s == 'n' ? '\n' : *s == 't' ? '\t' : *s == 'r' ? '\r' : *s;
                tr_buf_putc(&b, c);
                s++;
                continue;
            }
            if (q == '"' && *s == '\n') break;
            tr_buf_putc(&b, *s++);
        }
        if (s >= lim || *s != q) {
            tr_buf_free(&b);
            perr(p, p->line, q == '"' ? "unterminated quoted string" : "unterminated raw quoted string");
            return -1;
        }
        a->k = A_STR;
        a->s = strndup(b.data ? b.data : "", b.len);
        tr_buf_free(&b);
        p->s = s + 1;
    } else if (isdigit((unsigned char)*s) ||
               ((*s == '-' || *s == '+' || *s == '.') && s + 1 < lim && isdigit((unsigned char)s[1]))) {
        char *end;
        a->k = A_NUM;
        a->n = strtod(s, &end);
        if (end > lim || end == s) {
            perr(p, p->line, "bad number syntax: %.20s", s);
            return -1;
        }
        p->s = end;
    } else if (*s == '$') {
        s++;
        const char *st = s;
        while (s < lim && is_ident((unsigned char)*s))
            s++;
        a->k = A_VAR;
        a->s = strndup(st, s - st);
        p->s = s;
    } else if (*s == '.') {
        if (s + 1 >= lim || !is_ident((unsigned char)s[1])) {
            a->k = A_DOT;
            p->s = s + 1;
        } else {
            a->k = A_DOT; /* fields follow */
        }
    } else if (isalpha((unsigned char)*s) || *s == '_') {
        const char *st = s;
        while (s < lim && is_ident((unsigned char)*s))
            s++;
        size_t n = s - st;
        if (n == 4 && !strncmp(st, "true", 4))
            a->k = A_BOOL, a->b = 1;
        else if (n == 5 && !strncmp(st, "false", 5))
            a->k = A_BOOL;
        else if (n == 3 && !strncmp(st, "nil", 3))
            a->k = A_NIL;
        else
            a->k = A_IDENT, a->s = strndup(st, n);
        p->s = s;
    } else {
        perr(p, p->line, "unexpected \"%c\" in command", *s);
        return -1;
    }
    /* fields */
    while (p->s < lim && *p->s == '.' && p->s + 1 < lim && is_ident((unsigned char)p->s[1])) {
        const char *st = ++p->s;
        while (p->s < lim && is_ident((unsigned char)*p->s))
            p->s++;
        a->fields = grow(a->fields, a->nfields, sizeof *a->fields);
        a->fields[a->nfields++] = strndup(st, p->s - st);
    }
    return 0;
}

/* a pipeline up to lim (or the closing paren) */
static pipe *parse_pipe(parser *p, const char *lim, int paren) {
    pipe *pp = calloc(1, sizeof *pp);
    pp->line = p->line;
    skip_sp(p, lim);
    /* $x := / $x = */
    if (p->s < lim && *p->s == '$') {
        const char *s = p->s + 1;
        while (s < lim && is_ident((unsigned char)*s))
            s++;
        const char *t = s;
        while (t < lim && *t == ' ')
            t++;
        if (t + 1 < lim && ((t[0] == ':' && t[1] == '=') || (t[0] == '=' && t[1] != '='))) {
            pp->decl = strndup(p->s + 1, s - p->s - 1);
            p->s = t + (t[0] == ':' ? 2 : 1);
        }
    }
    cmd cur = {0};
    for (;;) {
        skip_sp(p, lim);
        if (p->s >= lim || (paren && *p->s == ')') || *p->s == '|') {
            if (cur.nargs == 0) {
                if (p->s >= lim && !paren && pp->ncmds == 0 && !pp->decl)
                    return pp; /* empty: the caller decides */
                perr(p, p->line, p->s >= lim && paren ? "unclosed left paren" : "missing value for command");
                free(cur.args);
                pipe_free(pp);
                return NULL;
            }
            pp->cmds = grow(pp->cmds, pp->ncmds, sizeof *pp->cmds);
            pp->cmds[pp->ncmds++] = cur;
            memset(&cur, 0, sizeof cur);
            if (p->s >= lim) {
                if (paren) {
                    perr(p, p->line, "unclosed left paren");
                    pipe_free(pp);
                    return NULL;
                }
                return pp;
            }
            if (*p->s == ')') {
                p->s++;
                return pp;
            }
            p->s++; /* | */
            continue;
        }
        if (!paren && *p->s == ')') {
            perr(p, p->line, "unexpected right paren");
            break;
        }
        cur.args = grow(cur.args, cur.nargs, sizeof *cur.args);
        if (parse_arg(p, lim, &cur.args[cur.nargs])) {
            arg_free(&cur.args[cur.nargs]);
            break;
        }
        cur.nargs++;
    }
    for (int j = 0; j < cur.nargs; j++)
        arg_free(&cur.args[j]);
    free(cur.args);
    pipe_free(pp);
    return NULL;
}

/* the next action: on return *a_start..*a_end is its inside (trim markers removed), and p->s
 * is past "}}". Text before it goes to *text. Returns 0 at end of input, 1 for an action,
 * -1 on error. */
static int next_action(parser *p, const char **tstart, size_t *tlen, const char **a_start,
                       const char **a_end) {
    const char *o = strstr(p->s, "{{");
    if (!o) {
        *tstart = p->s;
        *tlen = p->end - p->s;
        for (const char *c = p->s; c < p->end; c++)
            if (*c == '\n') p->line++;
        p->s = p->end;
        return 0;
    }
    *tstart = p->s;
    *tlen = o - p->s;
    for (const char *c = p->s; c < o; c++)
        if (*c == '\n') p->line++;
    const char *in = o + 2;
    if (in[0] == '-' && in + 1 < p->end && isspace((unsigned char)in[1])) {
        while (*tlen && isspace((unsigned char)(*tstart)[*tlen - 1]))
            (*tlen)--;
        in += 2;
    }
    /* find the matching }} outside quotes */
    const char *c = in;
    char q = 0;
    while (c < p->end) {
        if (q) {
            if (*c == '\\' && q == '"' && c + 1 < p->end) {
                c += 2;
                continue;
            }
            if (*c == q) q = 0;
        } else if (*c == '"' || *c == '`' || *c == '\'') {
            q = *c;
        } else if (c[0] == '}' && c + 1 < p->end && c[1] == '}') {
            break;
        }
        c++;
    }
    if (c >= p->end) {
        perr(p, p->line, "unclosed action");
        return -1;
    }
    const char *ae = c;
    const char *after = c + 2;
    if (ae - in >= 2 && ae[-1] == '-' && isspace((unsigned char)ae[-2])) {
        ae -= 2;
        while (after < p->end && isspace((unsigned char)*after))
            after++;
    }
    *a_start = in;
    *a_end = ae;
    p->s = after;
    return 1;
}

/* keyword of an action: if, else, end, range, with, define, template, block, or NULL */
static const char *keyword(const char *s, const char *e, const char **rest) {
    while (s < e && isspace((unsigned char)*s))
        s++;
    static const char *const kw[] = {"if",     "else",     "end",   "range", "with",
                                     "define", "template", "block", "break", "continue"};
    for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++) {
        size_t n = strlen(kw[i]);
        if ((size_t)(e - s) >= n && !strncmp(s, kw[i], n) && (s + n == e || !is_ident((unsigned char)s[n]))) {
            *rest = s + n;
            return kw[i];
        }
    }
    *rest = s;
    return NULL;
}

/* Parses a list until {{end}} / {{else}} (stop set) or the end. *stopped says which. */
static node *parse_list(parser *p, int in_block, const char **stopped, const char **rest_out,
                        const char **rest_end) {
    node *list = calloc(1, sizeof *list);
    list->k = N_LIST;
    *stopped = NULL;
    if (++p->depth > MAX_DEPTH) {
        perr(p, p->line, "too many nested blocks");
        return list;
    }
    for (;;) {
        const char *ts, *as, *ae;
        size_t tl;
        int r = next_action(p, &ts, &tl, &as, &ae);
        if (r < 0) break;
        if (tl) {
            node *t = calloc(1, sizeof *t);
            t->k = N_TEXT;
            t->text = strndup(ts, tl);
            t->len = tl;
            list->kids = grow(list->kids, list->nkids, sizeof *list->kids);
            list->kids[list->nkids++] = t;
        }
        if (r == 0) {
            if (in_block) perr(p, p->line, "unexpected EOF");
            break;
        }
        /* comment */
        const char *cs = as;
        while (cs < ae && isspace((unsigned char)*cs))
            cs++;
        if (ae - cs >= 2 && cs[0] == '/' && cs[1] == '*') {
            if (ae - cs < 4 || ae[-1] != '/' || ae[-2] != '*') {
                perr(p, p->line, "unclosed comment");
                break;
            }
            continue;
        }
        const char *rest;
        const char *kw = keyword(as, ae, &rest);
        int line = p->line;
        if (kw && (!strcmp(kw, "end") || !strcmp(kw, "else"))) {
            if (!in_block) {
                perr(p, line, "unexpected {{%s}}", kw);
                break;
            }
            *stopped = kw;
            *rest_out = rest;
            *rest_end = ae;
            break;
        }
        if (kw && (!strcmp(kw, "define") || !strcmp(kw, "template") || !strcmp(kw, "block") ||
                   !strcmp(kw, "break") || !strcmp(kw, "continue"))) {
            perr(p, line, "{{%s}} is not supported by tricorder's templates", kw);
            break;
        }
        node *n = calloc(1, sizeof *n);
        list->kids = grow(list->kids, list->nkids, sizeof *list->kids);
        list->kids[list->nkids++] = n;
        const char *save_s = p->s;
        p->s = kw ? rest : as;
        n->p = parse_pipe(p, ae, 0);
        p->s = save_s;
        if (!n->p) break;
        if (n->p->ncmds == 0) {
            perr(p, line, kw ? "missing value for %s" : "missing value for command", kw);
            break;
        }
        if (!kw) {
            n->k = N_ACTION;
            continue;
        }
        n->k = !strcmp(kw, "if") ? N_IF : !strcmp(kw, "range") ? N_RANGE : N_WITH;
        const char *st, *rs, *re;
        n->then = parse_list(p, 1, &st, &rs, &re);
        if (p->failed) break;
        if (st && !strcmp(st, "else")) {
            const char *r2;
            const char *kw2 = keyword(rs, re, &r2);
            if (kw2 && !strcmp(kw2, "if") && n->k == N_IF) {
                /* else if: a nested if that shares our end */
                node *inner = calloc(1, sizeof *inner);
                inner->k = N_IF;
                const char *save = p->s;
                p->s = r2;
                inner->p = parse_pipe(p, re, 0);
                p->s = save;
                node *wrap = calloc(1, sizeof *wrap);
                wrap->k = N_LIST;
                wrap->kids = grow(NULL, 0, sizeof *wrap->kids);
                wrap->kids[0] = inner;
                wrap->nkids = 1;
                n->els = wrap;
                if (!inner->p || inner->p->ncmds == 0) {
                    perr(p, line, "missing value for if");
                    break;
                }
                /* parse the rest of the chain as if it were the inner if's body */
                inner->then = parse_list(p, 1, &st, &rs, &re);
                if (p->failed) break;
                node *cur = inner;
                while (st && !strcmp(st, "else")) {
                    kw2 = keyword(rs, re, &r2);
                    if (kw2 && !strcmp(kw2, "if")) {
                        node *nx = calloc(1, sizeof *nx);
                        nx->k = N_IF;
                        const char *sv = p->s;
                        p->s = r2;
                        nx->p = parse_pipe(p, re, 0);
                        p->s = sv;
                        node *w = calloc(1, sizeof *w);
                        w->k = N_LIST;
                        w->kids = grow(NULL, 0, sizeof *w->kids);
                        w->kids[0] = nx;
                        w->nkids = 1;
                        cur->els = w;
                        if (!nx->p || nx->p->ncmds == 0) {
                            perr(p, line, "missing value for if");
                            break;
                        }
                        nx->then = parse_list(p, 1, &st, &rs, &re);
                        cur = nx;
                    } else {
                        cur->els = parse_list(p, 1, &st, &rs, &re);
                        if (st && strcmp(st, "end")) perr(p, p->line, "expected end; found {{else}}");
                        break;
                    }
                    if (p->failed) break;
                }
            } else {
                n->els = parse_list(p, 1, &st, &rs, &re);
                if (!p->failed && st && strcmp(st, "end")) perr(p, p->line, "expected end; found {{else}}");
            }
        }
        if (p->failed) break;
    }
    p->depth--;
    return list;
}

static node *parse(const char *name, const char *text, char *err, size_t errlen) {
    parser p = {.name = name,
                .src = text,
                .s = text,
                .end = text + strlen(text),
                .line = 1,
                .err = err,
                .errlen = errlen};
    const char *st, *rs, *re;
    node *n = parse_list(&p, 0, &st, &rs, &re);
    if (p.failed) {
        node_free(n);
        return NULL;
    }
    return n;
}

/* ---- values and execution ---- */

typedef enum { V_NIL, V_STR, V_NUM, V_BOOL, V_MAP, V_SAMPLES, V_SAMPLE, V_DATA } vkind;
typedef struct sample {
    tr_tmpl_kv *labels;
    size_t n;
    double v;
} sample;
typedef struct val {
    vkind k;
    const char *s;
    double n;
    int isint;
    const tr_tmpl_kv *m;
    size_t mn;
    const sample *smp; /* V_SAMPLES: mn of them; V_SAMPLE: one */
} val;

typedef struct var {
    char *name;
    val v;
} var;

typedef struct ex {
    const tr_tmpl_data *d;
    const char *name;
    tr_buf out;
    var *vars;
    int nvars;
    void **mem; /* everything allocated during the run */
    int nmem;
    char *err;
    size_t errlen;
    int failed;
    int line;
    int depth;
} ex;

static void *keep(ex *e, void *p) {
    if (!p) abort();
    e->mem = grow(e->mem, e->nmem, sizeof *e->mem);
    e->mem[e->nmem++] = p;
    return p;
}
static const char *kstr(ex *e, const char *s) { return keep(e, strdup(s)); }

static void xerr(ex *e, const char *fmt, ...) {
    if (e->failed) return;
    e->failed = 1;
    char m[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    snprintf(e->err, e->errlen, "template: %s:%d: %s", e->name, e->line, m);
}

static const char *to_str(ex *e, val v) {
    char b[TR_DOUBLE_MAX_TEXT];
    switch (v.k) {
    case V_NIL:
        return "<no value>";
    case V_STR:
        return v.s;
    case V_NUM:
        if (v.isint)
            snprintf(b, sizeof b, "%.0f", v.n);
        else
            tr_go_float(v.n, b, sizeof b);
        return kstr(e, b);
    case V_BOOL:
        return v.n ? "true" : "false";
    case V_MAP: {
        tr_buf o;
        tr_buf_init(&o, 0);
        tr_buf_puts(&o, "map[");
        for (size_t i = 0; i < v.mn; i++)
            tr_buf_printf(&o, "%s%s:%s", i ? " " : "", v.m[i].name, v.m[i].value);
        tr_buf_putc(&o, ']');
        tr_buf_putc(&o, 0);
        return keep(e, o.data);
    }
    case V_SAMPLE: {
        tr_buf o;
        tr_buf_init(&o, 0);
        tr_buf_puts(&o, "{map[");
        for (size_t i = 0; i < v.smp->n; i++)
            tr_buf_printf(&o, "%s%s:%s", i ? " " : "", v.smp->labels[i].name, v.smp->labels[i].value);
        tr_go_float(v.smp->v, b, sizeof b);
        tr_buf_printf(&o, "] %s}", b);
        tr_buf_putc(&o, 0);
        return keep(e, o.data);
    }
    case V_SAMPLES:
        return "[...]";
    case V_DATA:
        return "{...}";
    }
    return "";
}

static int truth(val v) {
    switch (v.k) {
    case V_NIL:
        return 0;
    case V_STR:
        return *v.s != 0;
    case V_NUM:
    case V_BOOL:
        return v.n != 0;
    case V_MAP:
    case V_SAMPLES:
        return v.mn != 0;
    default:
        return 1;
    }
}

static int to_float(ex *e, val v, double *out) {
    if (v.k == V_NUM) {
        *out = v.n;
        return 0;
    }
    if (v.k == V_STR) {
        char *end;
        *out = strtod(v.s, &end);
        if (*v.s && !*end) return 0;
        if (!strcmp(v.s, "+Inf") || !strcmp(v.s, "Inf")) {
            *out = INFINITY;
            return 0;
        }
        if (!strcmp(v.s, "-Inf")) {
            *out = -INFINITY;
            return 0;
        }
        if (!strcmp(v.s, "NaN")) {
            *out = NAN;
            return 0;
        }
        xerr(e, "error calling humanize: strconv.ParseFloat: parsing \"%s\": invalid syntax", v.s);
        return -1;
    }
    xerr(e, "can't convert %s to float", to_str(e, v));
    return -1;
}

static val mkstr(const char *s) { return (val){.k = V_STR, .s = s}; }
static val mknum(double n) { return (val){.k = V_NUM, .n = n}; }

static val field(ex *e, val v, const char *f) {
    if (v.k == V_MAP) {
        for (size_t i = 0; i < v.mn; i++)
            if (!strcmp(v.m[i].name, f)) return mkstr(v.m[i].value);
        return mkstr("");
    }
    if (v.k == V_DATA) {
        if (!strcmp(f, "Labels")) return (val){.k = V_MAP, .m = e->d->labels, .mn = e->d->nlabels};
        if (!strcmp(f, "ExternalLabels"))
            return (val){.k = V_MAP, .m = e->d->ext_labels, .mn = e->d->next_labels};
        if (!strcmp(f, "ExternalURL")) return mkstr(e->d->external_url ? e->d->external_url : "");
        if (!strcmp(f, "Value")) return mknum(e->d->value);
    }
    if (v.k == V_SAMPLE) {
        if (!strcmp(f, "Labels")) return (val){.k = V_MAP, .m = v.smp->labels, .mn = v.smp->n};
        if (!strcmp(f, "Value")) return mknum(v.smp->v);
    }
    if (v.k == V_NIL) return v;
    xerr(e, "can't evaluate field %s", f);
    return (val){0};
}

static val exec_pipe(ex *e, const pipe *p, val dot);

/* Go's fmt for printf: the verbs templates use */
static const char *go_printf(ex *e, const val *a, int n) {
    if (n < 1 || a[0].k != V_STR) {
        xerr(e, "wrong type for value; expected string");
        return "";
    }
    const char *f = a[0].s;
    tr_buf o;
    tr_buf_init(&o, MAX_OUT);
    int ai = 1;
    for (const char *c = f; *c; c++) {
        if (*c != '%') {
            tr_buf_putc(&o, *c);
            continue;
        }
        if (c[1] == '%') {
            tr_buf_putc(&o, '%');
            c++;
            continue;
        }
        char spec[32];
        int sl = 0;
        spec[sl++] = '%';
        c++;
        while (*c && strchr("+- #0", *c) && sl < 10)
            spec[sl++] = *c++;
        while (*c && (isdigit((unsigned char)*c) || *c == '.') && sl < 24)
            spec[sl++] = *c++;
        char verb = *c;
        if (!verb) {
            tr_buf_puts(&o, "%!(NOVERB)");
            break;
        }
        if (ai >= n) {
            tr_buf_printf(&o, "%%!%c(MISSING)", verb);
            continue;
        }
        val v = a[ai++];
        char buf[512];
        switch (verb) {
        case 'd':
            if (v.k == V_NUM && v.n == floor(v.n) && v.isint) {
                spec[sl++] = 'l';
                spec[sl++] = 'l';
                spec[sl++] = 'd';
                spec[sl] = 0;
                snprintf(buf, sizeof buf, spec, (long long)v.n);
            } else {
                snprintf(buf, sizeof buf, "%%!d(%s=%s)", v.k == V_NUM ? "float64" : "string", to_str(e, v));
            }
            break;
        case 'f':
        case 'e':
        case 'g':
        case 'F':
        case 'E':
        case 'G': {
            double d;
            if (v.k != V_NUM) {
                snprintf(buf, sizeof buf, "%%!%c(string=%s)", verb, to_str(e, v));
                break;
            }
            d = v.n;
            if (isnan(d)) {
                snprintf(buf, sizeof buf, "NaN");
                break;
            }
            if (isinf(d)) {
                snprintf(buf, sizeof buf, d > 0 ? "+Inf" : "-Inf");
                break;
            }
            if (verb == 'f' && !strchr(spec, '.')) {
                spec[sl++] = '.';
                spec[sl++] = '6';
            }
            spec[sl++] = verb;
            spec[sl] = 0;
            snprintf(buf, sizeof buf, spec, d);
            break;
        }
        case 's':
        case 'v':
        case 'q': {
            const char *s = to_str(e, v);
            if (verb == 'q') {
                tr_buf q;
                tr_buf_init(&q, 0);
                tr_json_escape(&q, s, strlen(s));
                snprintf(buf, sizeof buf, "\"%.*s\"", (int)q.len, q.data ? q.data : "");
                tr_buf_free(&q);
            } else {
                spec[sl++] = 's';
                spec[sl] = 0;
                snprintf(buf, sizeof buf, spec, s);
            }
            break;
        }
        case 'x':
        case 'X':
            if (v.k == V_NUM && v.isint) {
                spec[sl++] = 'l';
                spec[sl++] = 'l';
                spec[sl++] = verb;
                spec[sl] = 0;
                snprintf(buf, sizeof buf, spec, (long long)v.n);
            } else {
                const char *s = to_str(e, v);
                buf[0] = 0;
                for (size_t i = 0; s[i] && i * 2 + 2 < sizeof buf; i++)
                    snprintf(buf + 2 * i, 3, verb == 'x' ? "%02x" : "%02X", (unsigned char)s[i]);
            }
            break;
        default:
            snprintf(buf, sizeof buf, "%%!%c(%s)", verb, to_str(e, v));
        }
        tr_buf_puts(&o, buf);
    }
    if (ai < n) {
        tr_buf_puts(&o, "%!(EXTRA ");
        for (int i = ai; i < n; i++)
            tr_buf_printf(&o, "%s%s", i > ai ? ", " : "", to_str(e, a[i]));
        tr_buf_putc(&o, ')');
    }
    tr_buf_putc(&o, 0);
    return keep(e, o.data);
}

static int cmp_vals(ex *e, val a, val b, int *c) {
    if (a.k == V_NUM && b.k == V_NUM) {
        *c = a.n < b.n ? -1 : a.n > b.n;
        return 0;
    }
    if (a.k == V_STR && b.k == V_STR) {
        *c = strcmp(a.s, b.s);
        return 0;
    }
    if (a.k == V_BOOL && b.k == V_BOOL) {
        *c = (int)a.n - (int)b.n;
        return 0;
    }
    xerr(e, "incompatible types for comparison");
    return -1;
}

static val run_query(ex *e, const char *q) {
    if (!e->d->query) {
        xerr(e, "error calling query: queries are not available here");
        return (val){0};
    }
    promql_result r;
    char err[512];
    if (e->d->query(e->d->query_ctx, q, &r, err, sizeof err)) {
        xerr(e, "error calling query: %s", err);
        return (val){0};
    }
    size_t n = r.type == PROMQL_VECTOR ? r.nseries : r.type == PROMQL_SCALAR ? 1 : 0;
    if (r.type != PROMQL_VECTOR && r.type != PROMQL_SCALAR) {
        promql_result_free(&r);
        xerr(e, "error calling query: query result is not a vector or scalar");
        return (val){0};
    }
    sample *s = keep(e, calloc(n ? n : 1, sizeof *s));
    if (r.type == PROMQL_SCALAR) {
        s[0].v = r.scalar;
    } else {
        for (size_t i = 0; i < n; i++) {
            const promql_series *ps = &r.series[i];
            s[i].v = ps->n ? ps->v[0] : NAN;
            s[i].labels = keep(e, calloc(ps->nlabels ? ps->nlabels : 1, sizeof *s[i].labels));
            s[i].n = ps->nlabels;
            for (size_t j = 0; j < ps->nlabels; j++) {
                s[i].labels[j].name = kstr(e, ps->labels[j].name);
                s[i].labels[j].value = kstr(e, ps->labels[j].value);
            }
        }
    }
    promql_result_free(&r);
    return (val){.k = V_SAMPLES, .smp = s, .mn = n};
}

static val call(ex *e, const char *fn, val *a, int n) {
    char b[128];
#define NEED(k)                                                                                              \
    if (n != (k)) {                                                                                          \
        xerr(e, "wrong number of args for %s: want %d got %d", fn, (k), n);                                  \
        return (val){0};                                                                                     \
    }
    if (!strcmp(fn, "humanize") || !strcmp(fn, "humanize1024") || !strcmp(fn, "humanizeDuration") ||
        !strcmp(fn, "humanizePercentage") || !strcmp(fn, "humanizeTimestamp")) {
        NEED(1);
        double d;
        if (to_float(e, a[0], &d)) return (val){0};
        if (!strcmp(fn, "humanize"))
            tr_humanize(d, b, sizeof b);
        else if (!strcmp(fn, "humanize1024"))
            tr_humanize1024(d, b, sizeof b);
        else if (!strcmp(fn, "humanizeDuration"))
            tr_humanize_duration(d, b, sizeof b);
        else if (!strcmp(fn, "humanizePercentage"))
            g4(d * 100, "%", b, sizeof b);
        else if (isnan(d) || isinf(d))
            g4(d, "", b, sizeof b);
        else {
            time_t t = (time_t)floor(d);
            struct tm tm;
            gmtime_r(&t, &tm);
            char ns[32] = "";
            long frac = (long)llround((d - floor(d)) * 1e9);
            if (frac >= 1000000000) frac = 999999999;
            if (frac) {
                snprintf(ns, sizeof ns, ".%09ld", frac);
                for (size_t k = strlen(ns) - 1; ns[k] == '0'; k--)
                    ns[k] = 0;
            }
            strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S", &tm);
            snprintf(b + strlen(b), sizeof b - strlen(b), "%s +0000 UTC", ns);
        }
        return mkstr(kstr(e, b));
    }
    if (!strcmp(fn, "printf")) return mkstr(go_printf(e, a, n));
    if (!strcmp(fn, "print")) {
        tr_buf o;
        tr_buf_init(&o, MAX_OUT);
        for (int i = 0; i < n; i++) {
            /* Go adds spaces between operands when neither is a string */
            if (i && a[i].k != V_STR && a[i - 1].k != V_STR) tr_buf_putc(&o, ' ');
            tr_buf_puts(&o, to_str(e, a[i]));
        }
        tr_buf_putc(&o, 0);
        return mkstr(keep(e, o.data));
    }
    if (!strcmp(fn, "toUpper") || !strcmp(fn, "toLower") || !strcmp(fn, "title")) {
        NEED(1);
        char *s = (char *)kstr(e, to_str(e, a[0]));
        int start = 1;
        for (char *c = s; *c; c++) {
            if (fn[2] == 'U')
                *c = (char)toupper((unsigned char)*c);
            else if (fn[2] == 'L')
                *c = (char)tolower((unsigned char)*c);
            else {
                if (start && isalpha((unsigned char)*c)) *c = (char)toupper((unsigned char)*c);
                start = !isalnum((unsigned char)*c) && *c != '_' && *c != '\'';
            }
        }
        return mkstr(s);
    }
    if (!strcmp(fn, "query")) {
        NEED(1);
        return run_query(e, to_str(e, a[0]));
    }
    if (!strcmp(fn, "first")) {
        NEED(1);
        if (a[0].k != V_SAMPLES) {
            xerr(e, "error calling first: first() called on something other than a query result");
            return (val){0};
        }
        if (!a[0].mn) {
            xerr(e, "error calling first: first() called on vector with no elements");
            return (val){0};
        }
        return (val){.k = V_SAMPLE, .smp = a[0].smp};
    }
    if (!strcmp(fn, "value")) {
        NEED(1);
        if (a[0].k != V_SAMPLE) {
            xerr(e, "error calling value: not a sample");
            return (val){0};
        }
        return mknum(a[0].smp->v);
    }
    if (!strcmp(fn, "label")) {
        NEED(2);
        if (a[1].k != V_SAMPLE) {
            xerr(e, "error calling label: not a sample");
            return (val){0};
        }
        const char *ln = to_str(e, a[0]);
        for (size_t i = 0; i < a[1].smp->n; i++)
            if (!strcmp(a[1].smp->labels[i].name, ln)) return mkstr(a[1].smp->labels[i].value);
        return mkstr("");
    }
    if (!strcmp(fn, "strvalue")) {
        NEED(1);
        if (a[0].k != V_SAMPLE) {
            xerr(e, "error calling strvalue: not a sample");
            return (val){0};
        }
        for (size_t i = 0; i < a[0].smp->n; i++)
            if (!strcmp(a[0].smp->labels[i].name, "__value__")) return mkstr(a[0].smp->labels[i].value);
        return mkstr("");
    }
    if (!strcmp(fn, "len")) {
        NEED(1);
        if (a[0].k == V_STR) return (val){.k = V_NUM, .n = (double)strlen(a[0].s), .isint = 1};
        if (a[0].k == V_MAP || a[0].k == V_SAMPLES)
            return (val){.k = V_NUM, .n = (double)a[0].mn, .isint = 1};
        xerr(e, "error calling len: len of %s", to_str(e, a[0]));
        return (val){0};
    }
    if (!strcmp(fn, "index")) {
        NEED(2);
        return field(e, a[0], to_str(e, a[1]));
    }
    if (!strcmp(fn, "match")) {
        NEED(2);
        const char *pat = to_str(e, a[0]), *s = to_str(e, a[1]);
        char *wrapped = keep(e, malloc(strlen(pat) + 16));
        sprintf(wrapped, "(?s:.*(?:%s).*)", pat);
        char err[300];
        tr_re *re = tr_re_compile(wrapped, strlen(wrapped), err, sizeof err);
        if (!re) {
            xerr(e, "error calling match: %s", err);
            return (val){0};
        }
        int m = tr_re_match(re, s, strlen(s));
        tr_re_free(re);
        return (val){.k = V_BOOL, .n = m};
    }
    if (!strcmp(fn, "not")) {
        NEED(1);
        return (val){.k = V_BOOL, .n = !truth(a[0])};
    }
    if (!strcmp(fn, "and") || !strcmp(fn, "or")) {
        if (n < 1) {
            xerr(e, "wrong number of args for %s", fn);
            return (val){0};
        }
        for (int i = 0; i < n; i++)
            if (fn[0] == 'a' ? !truth(a[i]) : truth(a[i])) return a[i];
        return a[n - 1];
    }
    if (!strcmp(fn, "eq") || !strcmp(fn, "ne") || !strcmp(fn, "lt") || !strcmp(fn, "le") ||
        !strcmp(fn, "gt") || !strcmp(fn, "ge")) {
        if (n < 2 || (strcmp(fn, "eq") && n != 2)) {
            xerr(e, "wrong number of args for %s", fn);
            return (val){0};
        }
        int c = 0, res = 0;
        if (!strcmp(fn, "eq")) {
            for (int i = 1; i < n && !res; i++) {
                if (cmp_vals(e, a[0], a[i], &c)) return (val){0};
                res = c == 0;
            }
        } else {
            if (cmp_vals(e, a[0], a[1], &c)) return (val){0};
            res = fn[0] == 'n'   ? c != 0
                  : fn[0] == 'l' ? (fn[1] == 't' ? c < 0 : c <= 0)
                                 : (fn[1] == 't' ? c > 0 : c >= 0);
        }
        return (val){.k = V_BOOL, .n = res};
    }
    if (!strcmp(fn, "stripPort")) {
        NEED(1);
        /* net.SplitHostPort's host, or the input when it has no port */
        const char *hp = to_str(e, a[0]);
        char *h = (char *)kstr(e, hp);
        if (h[0] == '[') {
            char *rb = strchr(h, ']');
            if (rb && rb[1] == ':') {
                *rb = 0;
                return mkstr(h + 1);
            }
            return mkstr(h);
        }
        char *c = strrchr(h, ':');
        if (c && strchr(h, ':') == c) *c = 0;
        return mkstr(h);
    }
    if (!strcmp(fn, "stripDomain")) {
        NEED(1);
        /* the first label of a host name, the port kept; IP addresses as they are */
        const char *hp = to_str(e, a[0]);
        const char *colon = strrchr(hp, ':');
        size_t hl = colon && strchr(hp, ':') == colon ? (size_t)(colon - hp) : strlen(hp);
        int ip = 1;
        for (size_t i = 0; i < hl; i++)
            ip &= isdigit((unsigned char)hp[i]) || hp[i] == '.';
        if (ip || memchr(hp, ':', hl)) return mkstr(hp);
        const char *dot = memchr(hp, '.', hl);
        if (!dot) return mkstr(hp);
        char *o = keep(e, malloc(strlen(hp) + 1));
        sprintf(o, "%.*s%s", (int)(dot - hp), hp, hp + hl);
        return mkstr(o);
    }
    if (!strcmp(fn, "parseDuration")) {
        NEED(1);
        int64_t ms;
        const char *d = to_str(e, a[0]);
        if (tr_parse_prom_duration(d, &ms)) {
            xerr(e, "error calling parseDuration: not a valid duration string: \"%s\"", d);
            return (val){0};
        }
        return mknum((double)ms / 1000);
    }
    if (!strcmp(fn, "graphLink") || !strcmp(fn, "tableLink")) {
        NEED(1);
        const char *q = to_str(e, a[0]);
        tr_buf o;
        tr_buf_init(&o, MAX_OUT);
        tr_buf_puts(&o, "/graph?g0.expr=");
        for (const unsigned char *c = (const unsigned char *)q; *c; c++) {
            if (isalnum(*c) || strchr("-_.~", *c))
                tr_buf_putc(&o, (char)*c);
            else if (*c == ' ')
                tr_buf_putc(&o, '+');
            else
                tr_buf_printf(&o, "%%%02X", *c);
        }
        tr_buf_printf(&o, "&g0.tab=%d", fn[0] == 't');
        tr_buf_putc(&o, 0);
        return mkstr(keep(e, o.data));
    }
    if (!strcmp(fn, "sortByLabel")) {
        NEED(2);
        if (a[1].k != V_SAMPLES) {
            xerr(e, "error calling sortByLabel: not a query result");
            return (val){0};
        }
        const char *ln = to_str(e, a[0]);
        sample *c = keep(e, malloc((a[1].mn ? a[1].mn : 1) * sizeof *c));
        if (a[1].mn) memcpy(c, a[1].smp, a[1].mn * sizeof *c);
        /* a stable insertion sort by the label's value */
        for (size_t i = 1; i < a[1].mn; i++) {
            sample x = c[i];
            const char *xv = "";
            for (size_t k = 0; k < x.n; k++)
                if (!strcmp(x.labels[k].name, ln)) xv = x.labels[k].value;
            size_t j = i;
            while (j > 0) {
                const char *pv = "";
                for (size_t k = 0; k < c[j - 1].n; k++)
                    if (!strcmp(c[j - 1].labels[k].name, ln)) pv = c[j - 1].labels[k].value;
                if (strcmp(pv, xv) <= 0) break;
                c[j] = c[j - 1];
                j--;
            }
            c[j] = x;
        }
        return (val){.k = V_SAMPLES, .smp = c, .mn = a[1].mn};
    }
    if (!strcmp(fn, "safeHtml") || !strcmp(fn, "pathPrefix") || !strcmp(fn, "externalURL")) {
        if (!strcmp(fn, "safeHtml")) {
            NEED(1);
            return mkstr(to_str(e, a[0]));
        }
        return mkstr(e->d->external_url ? e->d->external_url : "");
    }
    xerr(e, "function \"%s\" not defined", fn);
    return (val){0};
#undef NEED
}

static int known_fn(const char *fn) {
    static const char *const fns[] = {"stripPort",
                                      "stripDomain",
                                      "parseDuration",
                                      "graphLink",
                                      "tableLink",
                                      "sortByLabel",
                                      "humanize",
                                      "humanize1024",
                                      "humanizeDuration",
                                      "humanizePercentage",
                                      "humanizeTimestamp",
                                      "printf",
                                      "print",
                                      "toUpper",
                                      "toLower",
                                      "title",
                                      "query",
                                      "first",
                                      "value",
                                      "label",
                                      "strvalue",
                                      "len",
                                      "index",
                                      "match",
                                      "not",
                                      "and",
                                      "or",
                                      "eq",
                                      "ne",
                                      "lt",
                                      "le",
                                      "gt",
                                      "ge",
                                      "safeHtml",
                                      "pathPrefix",
                                      "externalURL"};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
        if (!strcmp(fns[i], fn)) return 1;
    return 0;
}

static val lookup_var(ex *e, const char *name) {
    for (int i = e->nvars - 1; i >= 0; i--)
        if (!strcmp(e->vars[i].name, name)) return e->vars[i].v;
    xerr(e, "undefined variable \"$%s\"", name);
    return (val){0};
}

static val eval_arg(ex *e, const arg *a, val dot) {
    val v = {0};
    switch (a->k) {
    case A_DOT:
        v = dot;
        break;
    case A_VAR:
        v = lookup_var(e, a->s);
        break;
    case A_STR:
        v = mkstr(a->s);
        break;
    case A_NUM:
        v = mknum(a->n);
        v.isint = a->n == floor(a->n) && fabs(a->n) < 1e15;
        break;
    case A_BOOL:
        v = (val){.k = V_BOOL, .n = a->b};
        break;
    case A_NIL:
        v = (val){0};
        break;
    case A_IDENT:
        v = call(e, a->s, NULL, 0);
        break;
    case A_PIPE:
        v = exec_pipe(e, a->p, dot);
        break;
    case A_FIELD:
        break;
    }
    for (int i = 0; i < a->nfields && !e->failed; i++)
        v = field(e, v, a->fields[i]);
    return v;
}

static val exec_pipe(ex *e, const pipe *p, val dot) {
    val prev = {0};
    int have_prev = 0;
    if (++e->depth > MAX_DEPTH) {
        xerr(e, "expression nests too deeply");
        return prev;
    }
    e->line = p->line;
    for (int i = 0; i < p->ncmds && !e->failed; i++) {
        const cmd *c = &p->cmds[i];
        if (c->args[0].k == A_IDENT) {
            val args[17];
            int n = 0;
            if (c->nargs > 16) {
                xerr(e, "too many arguments");
                break;
            }
            for (int j = 1; j < c->nargs && !e->failed; j++)
                args[n++] = eval_arg(e, &c->args[j], dot);
            if (have_prev) args[n++] = prev;
            if (e->failed) break;
            prev = call(e, c->args[0].s, args, n);
            for (int f = 0; f < c->args[0].nfields && !e->failed; f++)
                prev = field(e, prev, c->args[0].fields[f]);
        } else {
            if (c->nargs > 1 || have_prev) {
                xerr(e, "can't give argument to non-function %s",
                     c->args[0].k == A_VAR ? c->args[0].s : "value");
                break;
            }
            prev = eval_arg(e, &c->args[0], dot);
        }
        have_prev = 1;
    }
    if (p->decl && !e->failed) {
        int found = 0;
        for (int i = e->nvars - 1; i >= 0 && !found; i--)
            if (!strcmp(e->vars[i].name, p->decl)) e->vars[i].v = prev, found = 1;
        if (!found) {
            e->vars = grow(e->vars, e->nvars, sizeof *e->vars);
            e->vars[e->nvars].name = (char *)kstr(e, p->decl);
            e->vars[e->nvars++].v = prev;
        }
    }
    e->depth--;
    return prev;
}

static void exec_node(ex *e, const node *n, val dot) {
    if (!n || e->failed) return;
    if (e->out.len > MAX_OUT) {
        xerr(e, "output too long");
        return;
    }
    switch (n->k) {
    case N_TEXT:
        tr_buf_append(&e->out, n->text, n->len);
        break;
    case N_LIST:
        for (int i = 0; i < n->nkids && !e->failed; i++)
            exec_node(e, n->kids[i], dot);
        break;
    case N_ACTION: {
        val v = exec_pipe(e, n->p, dot);
        if (!e->failed && !n->p->decl) tr_buf_puts(&e->out, to_str(e, v));
        break;
    }
    case N_IF:
    case N_WITH: {
        int nv = e->nvars;
        val v = exec_pipe(e, n->p, dot);
        if (e->failed) break;
        if (truth(v))
            exec_node(e, n->then, n->k == N_WITH ? v : dot);
        else
            exec_node(e, n->els, dot);
        e->nvars = nv;
        break;
    }
    case N_RANGE: {
        int nv = e->nvars;
        val v = exec_pipe(e, n->p, dot);
        if (e->failed) break;
        size_t cnt = 0;
        if (v.k == V_SAMPLES) {
            for (size_t i = 0; i < v.mn && !e->failed; i++, cnt++)
                exec_node(e, n->then, (val){.k = V_SAMPLE, .smp = &v.smp[i]});
        } else if (v.k == V_MAP) {
            for (size_t i = 0; i < v.mn && !e->failed; i++, cnt++)
                exec_node(e, n->then, mkstr(v.m[i].value));
        } else if (v.k != V_NIL) {
            xerr(e, "range can't iterate over %s", to_str(e, v));
        }
        if (!cnt) exec_node(e, n->els, dot);
        e->nvars = nv;
        break;
    }
    }
}

/* unknown function names are a parse error in Go: check the tree */
static int check_fns(const node *n, const pipe *p, char *err, size_t errlen, const char *name) {
    if (p) {
        for (int i = 0; i < p->ncmds; i++)
            for (int j = 0; j < p->cmds[i].nargs; j++) {
                const arg *a = &p->cmds[i].args[j];
                if (a->k == A_IDENT && !known_fn(a->s)) {
                    snprintf(err, errlen, "template: %s:%d: function \"%s\" not defined", name, p->line,
                             a->s);
                    return -1;
                }
                if (a->k == A_PIPE && check_fns(NULL, a->p, err, errlen, name)) return -1;
            }
    }
    if (!n) return 0;
    if (check_fns(NULL, n->p, err, errlen, name)) return -1;
    for (int i = 0; i < n->nkids; i++)
        if (check_fns(n->kids[i], NULL, err, errlen, name)) return -1;
    if (check_fns(n->then, NULL, err, errlen, name) || check_fns(n->els, NULL, err, errlen, name)) return -1;
    return 0;
}

static node *parse_checked(const char *name, const char *text, char *err, size_t errlen) {
    node *n = parse(name, text, err, errlen);
    if (n && check_fns(n, NULL, err, errlen, name)) {
        node_free(n);
        return NULL;
    }
    return n;
}

char *tr_tmpl_expand(const char *name, const char *text, const tr_tmpl_data *d, char *err, size_t errlen) {
    if (!strstr(text, "{{")) return strdup(text);
    node *n = parse_checked(name, text, err, errlen);
    if (!n) return NULL;
    ex e = {.d = d, .name = name, .err = err, .errlen = errlen, .line = 1};
    tr_buf_init(&e.out, MAX_OUT + 4096);
    static const char *const names[] = {"labels", "externalLabels", "externalURL", "value"};
    val vals[4] = {
        {.k = V_MAP, .m = d->labels, .mn = d->nlabels},
        {.k = V_MAP, .m = d->ext_labels, .mn = d->next_labels},
        mkstr(d->external_url ? d->external_url : ""),
        mknum(d->value),
    };
    for (int i = 0; i < 4; i++) {
        e.vars = grow(e.vars, e.nvars, sizeof *e.vars);
        e.vars[e.nvars].name = (char *)names[i];
        e.vars[e.nvars++].v = vals[i];
    }
    /* "$" is the data itself */
    e.vars = grow(e.vars, e.nvars, sizeof *e.vars);
    e.vars[e.nvars].name = "";
    e.vars[e.nvars++].v = (val){.k = V_DATA};
    exec_node(&e, n, (val){.k = V_DATA});
    char *res = NULL;
    if (!e.failed) {
        tr_buf_putc(&e.out, 0);
        res = e.out.data ? strdup(e.out.data) : strdup("");
    }
    tr_buf_free(&e.out);
    for (int i = 0; i < e.nmem; i++)
        free(e.mem[i]);
    free(e.mem);
    free(e.vars);
    node_free(n);
    return res;
}

int tr_tmpl_check(const char *name, const char *text, char *err, size_t errlen) {
    node *n = parse_checked(name, text, err, errlen);
    if (!n) return -1;
    node_free(n);
    return 0;
}
