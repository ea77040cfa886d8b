/* PromQL's syntax tree, the lexer's tokens and the parser's entry points (internal to
 * src/promql). */
#ifndef TR_PROMQL_AST_H
#define TR_PROMQL_AST_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/metrics.h"
#include "util/arena.h"

/* ---- tokens ---- */
typedef enum {
    T_EOF,
    T_ERROR,
    T_IDENT,  /* identifiers, keywords included (the parser tells them apart) */
    T_NUMBER, /* also Inf / NaN */
    T_DURATION,
    T_STRING,
    T_LPAREN,
    T_RPAREN,
    T_LBRACE,
    T_RBRACE,
    T_LBRACKET,
    T_RBRACKET,
    T_COMMA,
    T_COLON,
    T_AT,
    T_ASSIGN, /* = in matchers */
    T_NEQ,
    T_EQLREGEX,
    T_NEQREGEX,
    /* binary operators */
    T_ADD,
    T_SUB,
    T_MUL,
    T_DIV,
    T_MOD,
    T_POW,
    T_EQLC, /* == */
    T_LSS,
    T_GTR,
    T_LTE,
    T_GTE,
    T_LAND, /* and, or, unless, atan2 are T_IDENT words turned into these by the parser */
    T_LOR,
    T_LUNLESS,
    T_ATAN2,
} pq_tok_kind;

typedef struct {
    pq_tok_kind kind;
    int pos; /* byte offset in the query */
    int len;
    const char *s;
} pq_tok;

/* ---- values ---- */
typedef enum { PV_NONE, PV_SCALAR, PV_VECTOR, PV_MATRIX, PV_STRING } pq_vtype;

typedef enum {
    N_NUM,
    N_STR,
    N_VSEL,
    N_MSEL,
    N_SUBQ,
    N_CALL,
    N_AGG,
    N_BIN,
    N_UNARY,
    N_PAREN,
    N_STEPINV, /* evaluation-time helper: not produced by the parser */
} pq_nkind;

typedef enum { AT_NONE, AT_TIME, AT_START, AT_END } pq_at;

typedef enum {
    AGG_SUM,
    AGG_AVG,
    AGG_COUNT,
    AGG_MIN,
    AGG_MAX,
    AGG_GROUP,
    AGG_STDDEV,
    AGG_STDVAR,
    AGG_TOPK,
    AGG_BOTTOMK,
    AGG_QUANTILE,
    AGG_COUNT_VALUES,
    AGG_LIMITK,
    AGG_LIMIT_RATIO,
} pq_aggop;

typedef enum { CARD_ONE_TO_ONE, CARD_MANY_TO_ONE, CARD_ONE_TO_MANY, CARD_MANY_TO_MANY } pq_card;

typedef struct {
    tsdb_match_type type;
    char *name, *value;
    tsdb_matcher *m; /* compiled (owned by the tree) */
} pq_matcher;

struct pq_func;

typedef struct pq_node pq_node;
struct pq_node {
    pq_nkind kind;
    int pos, end; /* byte range in the query */
    pq_vtype type;
    double num;
    char *str;
    /* selectors (N_VSEL; N_MSEL/N_SUBQ carry range/offset/at too) */
    char *name;
    pq_matcher *ms;
    size_t nms;
    int64_t range_ms, step_ms, offset_ms, at_ms;
    /* duration expressions ([5m+1m], offset (2*3)) as written, for printing; NULL for literals */
    char *range_src, *step_src, *offset_src;
    pq_at at;
    /* children */
    pq_node *expr; /* N_MSEL inner selector, N_SUBQ/N_PAREN/N_UNARY/N_AGG operand */
    pq_node *lhs, *rhs;
    pq_node *param; /* aggregation parameter */
    const struct pq_func *fn;
    pq_node **args;
    size_t nargs;
    /* N_AGG / N_BIN */
    int op; /* pq_aggop or pq_tok_kind */
    char **grp;
    size_t ngrp;
    int without, by_given; /* by_given: a by/without clause was written (for printing) */
    int grp_after;         /* printed form: clause after the arguments? (String() puts it before) */
    int bool_;
    int has_matching, on; /* on(...) vs ignoring(...) */
    pq_card card;
    char **incl;
    size_t nincl;
    int unary_neg; /* N_UNARY: 1 for '-', 0 for '+' */
    int is_dur;    /* N_NUM written as a duration (printed as one) */
    int h;         /* height of the tree below (bounds the evaluator's recursion) */
    char *key;     /* evaluator: printed form, set when the expression occurs more than once */
};

typedef struct pq_func {
    const char *name;
    pq_vtype args[6];
    int nargs;    /* declared arguments */
    int variadic; /* 0 none, >0 that many optional, -1 unlimited */
    pq_vtype ret;
    int experimental;
} pq_func;

const pq_func *pq_func_lookup(const char *name, size_t len);

/* ---- lexer ---- */
typedef struct {
    const char *s;
    size_t len;
    size_t pos;
    int brace_depth; /* inside {...}: label names may be keywords */
    int bracket;     /* inside [...]: durations */
    int paren_depth; /* open '(' (Prometheus's lexer reports unclosed ones at the end) */
    char err[160];
} pq_lexer;

void pq_lex_init(pq_lexer *lx, const char *s, size_t len);
pq_tok pq_lex_next(pq_lexer *lx);

/* Go's strconv.Unquote for a PromQL string token (with its quotes); arena copy in *out.
 * Returns 0 or -1. */
int pq_unquote(tr_arena *a, const char *s, size_t len, char **out, size_t *outlen);
/* Prometheus model.ParseDuration ("1h30m", "5m", "10s", "1y"); returns 0 or -1. */
int pq_parse_duration(const char *s, size_t len, int64_t *ms);
/* The duration as Prometheus prints it (model.Duration.String()). */
void pq_format_duration(int64_t ms, char *buf, size_t cap);
/* A double as Go's strconv.FormatFloat(v, 'f', -1, 64) would not; PromQL's NumberLiteral
 * String() uses %v-ish formatting: shortest repr, exponent for large/small values. */
void pq_format_float(double v, char *buf, size_t cap);

/* ---- parser ---- */
/* Parses the query into a tree allocated in `a`. Returns NULL with the message
 * ("1:5: parse error: ...") in err. Matchers are compiled (tsdb_matcher); free them with
 * pq_tree_free (the arena holds the rest). */
pq_node *pq_parse(tr_arena *a, const char *q, size_t len, char *err, size_t errlen);
/* selector_mode: as match[] parameters are parsed (a selector may match the empty string). */
pq_node *pq_parse_ex(tr_arena *a, const char *q, size_t len, int selector_mode, char *err, size_t errlen);
void pq_tree_free(pq_node *n);
/* Prometheus's String() of an expression, appended to a malloc'd buffer. */
char *pq_format_node(const pq_node *n);
/* Prometheus's Prettify: split over indented lines where the one-line form exceeds 100 chars */
char *pq_pretty_node(const pq_node *n);

#endif
