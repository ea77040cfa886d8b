/* Rule files: YAML read with libyaml's document API, then checked as Prometheus's rulefmt
 * checks them, with promtool's wording. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <yaml.h>

#include "promql/promql.h"
#include "rules.h"
#include "tmpl.h"
#include "util/clock.h"
#include "util/text.h"

#define MAX_FILE_BYTES (64 << 20)

static int valid_label_name(const char *s) {
    if (!*s || !(isalpha((unsigned char)*s) || *s == '_')) return 0;
    for (s++; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_')) return 0;
    return 1;
}
static int valid_metric_name(const char *s) {
    if (!*s || !(isalpha((unsigned char)*s) || *s == '_' || *s == ':')) return 0;
    for (s++; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_' || *s == ':')) return 0;
    return 1;
}

typedef struct pctx {
    yaml_document_t *doc;
    const char *file;
    tr_buf *errs;
    int nerr;
    tr_buf unmarshal; /* "line N: …" lines, reported together as Go's yaml does */
    int nunmarshal;
    int fatal;            /* a duration error: Go stops at the first */
    yaml_node_t **gnodes; /* per group parsed: its node and its rules' errors */
    char **gerrs;
    size_t ngroups;
} pctx;

static void add_err(pctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_err(pctx *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    tr_buf_printf(c->errs, "%s: ", c->file);
    tr_buf_vprintf(c->errs, fmt, ap);
    tr_buf_putc(c->errs, '\n');
    va_end(ap);
    c->nerr++;
}

static void unmarshal_err(pctx *c, yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void unmarshal_err(pctx *c, yaml_node_t *n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    tr_buf_printf(&c->unmarshal, "\n  line %d: ", (int)n->start_mark.line + 1);
    tr_buf_vprintf(&c->unmarshal, fmt, ap);
    va_end(ap);
    c->nunmarshal++;
}

static const char *scalar(yaml_node_t *n) {
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}
static int is_null(yaml_node_t *n) {
    const char *s = scalar(n);
    return n && n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL"));
}

/* a string field: any scalar; a mapping or sequence is Go's "cannot unmarshal" */
static char *get_str(pctx *c, yaml_node_t *n) {
    if (is_null(n)) return strdup("");
    if (n->type != YAML_SCALAR_NODE) {
        unmarshal_err(c, n, "cannot unmarshal !!%s into string",
                      n->type == YAML_MAPPING_NODE ? "map" : "seq");
        return strdup("");
    }
    return strdup(scalar(n));
}

static int64_t get_dur(pctx *c, yaml_node_t *n) {
    if (is_null(n)) return 0;
    const char *s = scalar(n);
    int64_t ms;
    if (!s) {
        unmarshal_err(c, n, "cannot unmarshal !!%s into model.Duration",
                      n->type == YAML_MAPPING_NODE ? "map" : "seq");
        return 0;
    }
    if (tr_parse_model_duration(s, &ms)) {
        if (!c->fatal) add_err(c, "not a valid duration string: \"%s\"", s);
        c->fatal = 1;
        return 0;
    }
    return ms;
}

static int64_t get_int(pctx *c, yaml_node_t *n) {
    if (is_null(n)) return 0;
    const char *s = scalar(n);
    char *end;
    long long v = s ? strtoll(s, &end, 0) : 0;
    if (!s || !*s || *end) {
        if (s)
            unmarshal_err(c, n, "cannot unmarshal !!str `%.40s` into int", s);
        else
            unmarshal_err(c, n, "cannot unmarshal !!%s into int",
                          n->type == YAML_MAPPING_NODE ? "map" : "seq");
        return 0;
    }
    return v;
}

static size_t get_map(pctx *c, yaml_node_t *n, tr_rkv **out) {
    *out = NULL;
    if (is_null(n)) return 0;
    if (n->type != YAML_MAPPING_NODE) {
        unmarshal_err(c, n, "cannot unmarshal !!%s into map[string]string",
                      n->type == YAML_SCALAR_NODE ? "str" : "seq");
        return 0;
    }
    size_t cnt = n->data.mapping.pairs.top - n->data.mapping.pairs.start, k = 0;
    *out = calloc(cnt ? cnt : 1, sizeof **out);
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(c->doc, p->key),
                    *vn = yaml_document_get_node(c->doc, p->value);
        if (!scalar(kn)) continue;
        if (!scalar(vn) && !is_null(vn)) {
            unmarshal_err(c, vn, "cannot unmarshal !!%s into string",
                          vn->type == YAML_MAPPING_NODE ? "map" : "seq");
            continue;
        }
        /* a repeated key: the last wins, as in Go's map */
        size_t j;
        for (j = 0; j < k; j++)
            if (!strcmp((*out)[j].name, scalar(kn))) break;
        if (j < k) {
            free((*out)[j].value);
            (*out)[j].value = get_str(c, vn);
            continue;
        }
        (*out)[k].name = strdup(scalar(kn));
        (*out)[k].value = get_str(c, vn);
        k++;
    }
    return k;
}

static void kv_free(tr_rkv *kv, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(kv[i].name);
        free(kv[i].value);
    }
    free(kv);
}

static void rule_free(tr_rule_def *r) {
    free(r->name);
    free(r->expr);
    kv_free(r->labels, r->nlabels);
    kv_free(r->annotations, r->nannotations);
}

static void group_free(tr_group_def *g) {
    free(g->name);
    free(g->file);
    for (size_t i = 0; i < g->nrules; i++)
        rule_free(&g->rules[i]);
    free(g->rules);
}

void tr_ruleset_free(tr_ruleset *rs) {
    for (size_t i = 0; i < rs->ngroups; i++)
        group_free(&rs->groups[i]);
    free(rs->groups);
    rs->groups = NULL;
    rs->ngroups = 0;
}

size_t tr_ruleset_count(const tr_ruleset *rs) {
    size_t n = 0;
    for (size_t i = 0; i < rs->ngroups; i++)
        n += rs->groups[i].nrules;
    return n;
}

/* positions of the nodes an error points at (Go's yaml.Node: 1-based; 0:0 when absent) */
typedef struct pos {
    int line, col, set;
} pos;
static pos pos_of(yaml_node_t *n) {
    if (!n) return (pos){0, 0, 0};
    return (pos){(int)n->start_mark.line + 1, (int)n->start_mark.column + 1, 1};
}

typedef struct rulenodes {
    yaml_node_t *record, *alert, *expr;
} rulenodes;

static void rule_err(pctx *c, const tr_group_def *g, size_t idx, const tr_rule_def *r, pos a, pos b,
                     const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static void rule_err(pctx *c, const tr_group_def *g, size_t idx, const tr_rule_def *r, pos a, pos b,
                     const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tr_buf_printf(c->errs, "%s: ", c->file);
    if (a.set || b.set) tr_buf_printf(c->errs, "%d:%d: ", a.line, a.col);
    if (b.set) tr_buf_printf(c->errs, "%d:%d: ", b.line, b.col);
    tr_buf_printf(c->errs, "group \"%s\", rule %zu, \"%s\": %s\n", g->name, idx + 1, r->name ? r->name : "",
                  msg);
    c->nerr++;
}

static void validate_rule(pctx *c, const tr_group_def *g, size_t i, tr_rule_def *r, const rulenodes *rn,
                          const char *record, const char *alert) {
    pos none = {0, 0, 0};
    pos prec = pos_of(rn->record), palt = pos_of(rn->alert);
    if (*record && *alert) rule_err(c, g, i, r, prec, palt, "only one of 'record' and 'alert' must be set");
    if (!*record && !*alert)
        rule_err(c, g, i, r, (pos){0, 0, 1}, rn->alert ? palt : none,
                 "one of 'record' or 'alert' must be set");
    if (!*r->expr) {
        rule_err(c, g, i, r, pos_of(rn->expr), none, "field 'expr' must be set in rule");
    } else {
        char perr[512];
        char *f = promql_format(r->expr, strlen(r->expr), perr, sizeof perr);
        if (!f) rule_err(c, g, i, r, pos_of(rn->expr), none, "could not parse expression: %s", perr);
        free(f);
    }
    if (*record) {
        if (r->nannotations)
            rule_err(c, g, i, r, prec, none, "invalid field 'annotations' in recording rule");
        if (r->for_ms) rule_err(c, g, i, r, prec, none, "invalid field 'for' in recording rule");
        if (r->keep_firing_for_ms)
            rule_err(c, g, i, r, prec, none, "invalid field 'keep_firing_for' in recording rule");
        if (!valid_metric_name(record))
            rule_err(c, g, i, r, prec, none, "invalid recording rule name: %s", record);
    }
    for (size_t k = 0; k < r->nlabels; k++) {
        if (!valid_label_name(r->labels[k].name) || !strcmp(r->labels[k].name, "__name__"))
            rule_err(c, g, i, r, none, none, "invalid label name: %s", r->labels[k].name);
        if (tr_utf8_valid(r->labels[k].value, strlen(r->labels[k].value)) != 1)
            rule_err(c, g, i, r, none, none, "invalid label value: %s", r->labels[k].value);
    }
    for (size_t k = 0; k < r->nannotations; k++)
        if (!valid_label_name(r->annotations[k].name))
            rule_err(c, g, i, r, none, none, "invalid annotation name: %s", r->annotations[k].name);
    if (*alert) {
        char tname[600], terr[600];
        snprintf(tname, sizeof tname, "__alert_%s", alert);
        for (size_t k = 0; k < r->nlabels; k++)
            if (tr_tmpl_check(tname, r->labels[k].value, terr, sizeof terr))
                rule_err(c, g, i, r, none, none, "label \"%s\": %s", r->labels[k].name, terr);
        for (size_t k = 0; k < r->nannotations; k++)
            if (tr_tmpl_check(tname, r->annotations[k].value, terr, sizeof terr))
                rule_err(c, g, i, r, none, none, "annotation \"%s\": %s", r->annotations[k].name, terr);
    }
}

static void parse_rule(pctx *c, tr_group_def *g, yaml_node_t *n, rulenodes *rn, char **record, char **alert) {
    tr_rule_def *r = &g->rules[g->nrules];
    memset(r, 0, sizeof *r);
    memset(rn, 0, sizeof *rn);
    *record = strdup("");
    *alert = strdup("");
    r->expr = strdup("");
    if (n->type != YAML_MAPPING_NODE) {
        if (!is_null(n))
            unmarshal_err(c, n, "cannot unmarshal !!%s into rulefmt.RuleNode",
                          n->type == YAML_SCALAR_NODE ? "str" : "seq");
        return;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(c->doc, p->key),
                    *vn = yaml_document_get_node(c->doc, p->value);
        const char *k = scalar(kn);
        if (!k) continue;
        if (!strcmp(k, "record")) {
            free(*record);
            *record = get_str(c, vn);
            rn->record = vn;
        } else if (!strcmp(k, "alert")) {
            free(*alert);
            *alert = get_str(c, vn);
            rn->alert = vn;
        } else if (!strcmp(k, "expr")) {
            free(r->expr);
            r->expr = get_str(c, vn);
            rn->expr = vn;
        } else if (!strcmp(k, "for"))
            r->for_ms = get_dur(c, vn);
        else if (!strcmp(k, "keep_firing_for"))
            r->keep_firing_for_ms = get_dur(c, vn);
        else if (!strcmp(k, "labels")) {
            kv_free(r->labels, r->nlabels);
            r->nlabels = get_map(c, vn, &r->labels);
        } else if (!strcmp(k, "annotations")) {
            kv_free(r->annotations, r->nannotations);
            r->nannotations = get_map(c, vn, &r->annotations);
        } else
            unmarshal_err(c, kn, "field %s not found in type rulefmt.RuleNode", k);
    }
    r->alert = **alert != 0;
    r->name = strdup(**alert ? *alert : *record);
}

static void parse_group(pctx *c, tr_ruleset *rs, yaml_node_t *n, const char *file) {
    tr_group_def g = {.file = strdup(file), .name = strdup("")};
    if (n->type != YAML_MAPPING_NODE) {
        unmarshal_err(c, n, "cannot unmarshal !!%s into rulefmt.RuleGroup",
                      n->type == YAML_SCALAR_NODE ? "str" : "seq");
        group_free(&g);
        return;
    }
    yaml_node_t *rules = NULL;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(c->doc, p->key),
                    *vn = yaml_document_get_node(c->doc, p->value);
        const char *k = scalar(kn);
        if (!k) continue;
        if (!strcmp(k, "name")) {
            free(g.name);
            g.name = get_str(c, vn);
        } else if (!strcmp(k, "interval"))
            g.interval_ms = get_dur(c, vn);
        else if (!strcmp(k, "query_offset"))
            g.query_offset_ms = get_dur(c, vn);
        else if (!strcmp(k, "limit"))
            g.limit = get_int(c, vn);
        else if (!strcmp(k, "rules"))
            rules = vn;
        else
            unmarshal_err(c, kn, "field %s not found in type rulefmt.RuleGroup", k);
    }
    size_t cnt = 0;
    if (rules && rules->type == YAML_SEQUENCE_NODE)
        cnt = rules->data.sequence.items.top - rules->data.sequence.items.start;
    else if (rules && !is_null(rules))
        unmarshal_err(c, rules, "cannot unmarshal !!%s into []rulefmt.RuleNode",
                      rules->type == YAML_SCALAR_NODE ? "str" : "map");
    g.rules = calloc(cnt ? cnt : 1, sizeof *g.rules);
    rulenodes *rn = calloc(cnt ? cnt : 1, sizeof *rn);
    char **recs = calloc(cnt ? cnt : 1, sizeof *recs), **alerts = calloc(cnt ? cnt : 1, sizeof *alerts);
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *rn_ = yaml_document_get_node(c->doc, rules->data.sequence.items.start[i]);
        parse_rule(c, &g, rn_, &rn[i], &recs[i], &alerts[i]);
        g.nrules++;
    }
    tr_group_def *ng = realloc(rs->groups, (rs->ngroups + 1) * sizeof *rs->groups);
    if (!ng) abort();
    rs->groups = ng;
    rs->groups[rs->ngroups] = g;
    tr_group_def *gp = &rs->groups[rs->ngroups++];
    /* the rules' errors go to a side buffer: Go reports unmarshal errors alone, and the group's
     * own errors before its rules' */
    tr_buf *save = c->errs;
    tr_buf side;
    tr_buf_init(&side, 0);
    c->errs = &side;
    for (size_t i = 0; i < cnt; i++) {
        validate_rule(c, gp, i, &gp->rules[i], &rn[i], recs[i], alerts[i]);
        free(recs[i]);
        free(alerts[i]);
    }
    c->errs = save;
    c->gnodes = realloc(c->gnodes, (c->ngroups + 1) * sizeof *c->gnodes);
    c->gerrs = realloc(c->gerrs, (c->ngroups + 1) * sizeof *c->gerrs);
    if (!c->gnodes || !c->gerrs) abort();
    c->gnodes[c->ngroups] = n;
    c->gerrs[c->ngroups++] = side.len ? strndup(side.data, side.len) : NULL;
    tr_buf_free(&side);
    free(rn);
    free(recs);
    free(alerts);
}

int tr_rules_parse(const char *file, const char *text, size_t len, tr_ruleset *rs, tr_buf *errs) {
    yaml_parser_t yp;
    yaml_document_t doc;
    pctx c = {.doc = &doc, .file = file, .errs = errs};
    tr_buf_init(&c.unmarshal, 0);
    if (!yaml_parser_initialize(&yp)) {
        add_err(&c, "out of memory");
        return c.nerr;
    }
    yaml_parser_set_input_string(&yp, (const unsigned char *)text, len);
    if (!yaml_parser_load(&yp, &doc)) {
        /* Go's yaml reports the problem's line (1-based) */
        /* Go's yaml: the mark's 0-based line, plus one for scanner errors */
        int line = (int)yp.problem_mark.line + (yp.error == YAML_SCANNER_ERROR);
        add_err(&c, "yaml: line %d: %s", line, yp.problem ? yp.problem : "invalid YAML");
        yaml_parser_delete(&yp);
        return c.nerr;
    }
    size_t before = rs->ngroups;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && !is_null(root)) {
        if (root->type != YAML_MAPPING_NODE) {
            unmarshal_err(&c, root, "cannot unmarshal !!%s into rulefmt.RuleGroups",
                          root->type == YAML_SCALAR_NODE ? "str" : "seq");
        } else {
            for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
                 p++) {
                yaml_node_t *kn = yaml_document_get_node(&doc, p->key),
                            *vn = yaml_document_get_node(&doc, p->value);
                const char *k = scalar(kn);
                if (!k) continue;
                if (!strcmp(k, "groups")) {
                    if (vn->type == YAML_SEQUENCE_NODE) {
                        for (yaml_node_item_t *it = vn->data.sequence.items.start;
                             it < vn->data.sequence.items.top; it++)
                            parse_group(&c, rs, yaml_document_get_node(&doc, *it), file);
                    } else if (!is_null(vn)) {
                        unmarshal_err(&c, vn, "cannot unmarshal !!%s into []rulefmt.RuleGroup",
                                      vn->type == YAML_SCALAR_NODE ? "str" : "map");
                    }
                } else {
                    unmarshal_err(&c, kn, "field %s not found in type rulefmt.RuleGroups", k);
                }
            }
        }
    }
    int fatal_only = c.fatal;
    if (c.nunmarshal) {
        tr_buf_printf(errs, "%s: yaml: unmarshal errors:%.*s\n", file, (int)c.unmarshal.len,
                      c.unmarshal.data);
        c.nerr++;
    } else if (!fatal_only) {
        for (size_t j = 0; j < c.ngroups; j++) {
            tr_group_def *g = &rs->groups[before + j];
            pos gp = pos_of(c.gnodes[j]);
            if (!*g->name) add_err(&c, "%d:%d: Groupname must not be empty", gp.line, gp.col);
            for (size_t k = before; k < before + j; k++)
                if (!strcmp(rs->groups[k].name, g->name)) {
                    add_err(&c, "%d:%d: groupname: \"%s\" is repeated in the same file", gp.line, gp.col,
                            g->name);
                    break;
                }
            if (c.gerrs[j]) {
                tr_buf_puts(errs, c.gerrs[j]);
                for (const char *q = c.gerrs[j]; *q; q++)
                    c.nerr += *q == '\n';
            }
        }
    }
    for (size_t j = 0; j < c.ngroups; j++)
        free(c.gerrs[j]);
    free(c.gerrs);
    free(c.gnodes);
    tr_buf_free(&c.unmarshal);
    yaml_document_delete(&doc);
    yaml_parser_delete(&yp);
    return c.nerr;
}

int tr_rules_parse_file(const char *path, tr_ruleset *rs, tr_buf *errs) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        tr_buf_printf(errs, "%s: open %s: %s\n", path, path, strerror(errno));
        return 1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size > MAX_FILE_BYTES) {
        fclose(f);
        tr_buf_printf(errs, "%s: file larger than %d MiB\n", path, MAX_FILE_BYTES >> 20);
        return 1;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t n = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (!buf) {
        tr_buf_printf(errs, "%s: out of memory\n", path);
        return 1;
    }
    buf[n] = 0;
    int rc = tr_rules_parse(path, buf, n, rs, errs);
    free(buf);
    return rc;
}
