/* `tricorder test-rules FILE…`: rule unit tests in promtool's format. Each test loads its
 * input series (expanding notation) into a fresh store in a temporary directory, evaluates
 * the rule files' groups every evaluation_interval from time 0, and compares the firing alerts
 * (alert_rule_test) and instant query results (promql_expr_test) with the expected ones. */
#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "promql/promql.h"
#include "rules.h"
#include "util/log.h"

#define MAX_SAMPLES_PER_SERIES 1000000

static const char *sc(yaml_node_t *n) {
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static yaml_node_t *get(yaml_document_t *d, yaml_node_t *map, const char *key) {
    if (!map || map->type != YAML_MAPPING_NODE) return NULL;
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const char *k = sc(yaml_document_get_node(d, p->key));
        if (k && !strcmp(k, key)) return yaml_document_get_node(d, p->value);
    }
    return NULL;
}

static size_t seq_len(yaml_node_t *n) {
    return n && n->type == YAML_SEQUENCE_NODE
               ? (size_t)(n->data.sequence.items.top - n->data.sequence.items.start)
               : 0;
}
static yaml_node_t *seq_at(yaml_document_t *d, yaml_node_t *n, size_t i) {
    return yaml_document_get_node(d, n->data.sequence.items.start[i]);
}

static int dur(yaml_node_t *n, int64_t def, int64_t *out) {
    const char *s = sc(n);
    if (!s || !*s) {
        *out = def;
        return 0;
    }
    return tr_parse_prom_duration(s, out);
}

/* a series selector of equality matchers → labels (malloc'd strings) */
static int parse_series(const char *s, tr_rkv **out, size_t *n, char *err, size_t errlen) {
    tsdb_matcher **m = NULL;
    int k = promql_parse_selector(s, strlen(s), &m, err, errlen);
    if (k < 0) return -1;
    *out = calloc(k ? k : 1, sizeof **out);
    *n = 0;
    for (int i = 0; i < k; i++) {
        if (tsdb_matcher_type(m[i]) != TSDB_MATCH_EQ) {
            snprintf(err, errlen, "series %s: only = matchers are allowed", s);
            tsdb_matchers_free(m, k);
            return -1;
        }
        (*out)[*n].name = strdup(tsdb_matcher_name(m[i]));
        (*out)[(*n)++].value = strdup(tsdb_matcher_value(m[i]));
    }
    tsdb_matchers_free(m, k);
    return 0;
}

static void kvs_free(tr_rkv *kv, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(kv[i].name);
        free(kv[i].value);
    }
    free(kv);
}

static int kvcmp(const void *a, const void *b) {
    return strcmp(((const tr_rkv *)a)->name, ((const tr_rkv *)b)->name);
}

/* the expanding notation: "1 2 3", "1+2x3", "5-1x2", "7x3", "_", "_x3", "stale" */
static int load_values(tsdb *db, const tr_rkv *l, size_t nl, const char *vals, int64_t step, char *err,
                       size_t errlen) {
    tsdb_label tl[128];
    for (size_t i = 0; i < nl && i < 128; i++)
        tl[i] = (tsdb_label){l[i].name, l[i].value};
    tsdb_appender *ap = tsdb_appender_begin(db);
    if (!ap) return -1;
    int64_t idx = 0;
    char *copy = strdup(vals), *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(copy, " \t\n", &save); tok && !rc; tok = strtok_r(NULL, " \t\n", &save)) {
        if (!strcmp(tok, "stale")) {
            tsdb_appender_add(ap, tl, nl, idx++ * step, tsdb_stale_nan());
            continue;
        }
        if (tok[0] == '_') {
            long long times = 0;
            if (tok[1] == 'x') times = strtoll(tok + 2, NULL, 10);
            idx += 1 + times;
            continue;
        }
        char *end;
        double a = strtod(tok, &end), b = 0;
        long long times = 0;
        if (end == tok) {
            snprintf(err, errlen, "invalid value %s", tok);
            rc = -1;
            break;
        }
        if (*end == '+' || *end == '-') {
            int neg = *end == '-';
            char *e2;
            b = strtod(end + 1, &e2);
            if (neg) b = -b;
            end = e2;
            if (*end != 'x') {
                snprintf(err, errlen, "invalid value %s", tok);
                rc = -1;
                break;
            }
        }
        if (*end == 'x') {
            times = strtoll(end + 1, &end, 10);
        }
        if (*end || times < 0 || times > MAX_SAMPLES_PER_SERIES) {
            snprintf(err, errlen, "invalid value %s", tok);
            rc = -1;
            break;
        }
        for (long long i = 0; i <= times; i++)
            tsdb_appender_add(ap, tl, nl, idx++ * step, a + b * (double)i);
    }
    free(copy);
    if (rc)
        tsdb_appender_rollback(ap);
    else
        tsdb_appender_commit(ap, NULL, NULL);
    return rc;
}

typedef struct got_alerts {
    const char *name;
    tr_buf text; /* one line per firing alert, sorted later */
    char **lines;
    size_t n;
} got_alerts;

static char *kv_text(const tr_rkv *kv, size_t n) {
    tr_rkv *s = malloc((n ? n : 1) * sizeof *s);
    if (n) memcpy(s, kv, n * sizeof *s);
    qsort(s, n, sizeof *s, kvcmp);
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_buf_putc(&b, '{');
    for (size_t i = 0; i < n; i++)
        tr_buf_printf(&b, "%s%s=\"%s\"", i ? ", " : "", s[i].name, s[i].value);
    tr_buf_putc(&b, '}');
    free(s);
    return b.data;
}

static void on_alert(void *ctx, const char *name, const tr_rkv *l, size_t nl, const tr_rkv *a, size_t na,
                     int state) {
    got_alerts *g = ctx;
    if (state != 2 || strcmp(name, g->name)) return; /* promtool compares firing alerts */
    char *lt = kv_text(l, nl), *at = kv_text(a, na);
    char **nlines = realloc(g->lines, (g->n + 1) * sizeof *nlines);
    if (nlines) {
        g->lines = nlines;
        size_t len = strlen(lt) + strlen(at) + 40;
        g->lines[g->n] = malloc(len);
        snprintf(g->lines[g->n++], len, "Labels:%s\n              Annotations:%s", lt, at);
    }
    free(lt);
    free(at);
}

/* Go's %E of a float64 (strconv 'E', shortest): 2E+00, 1.5E-03 */
static void go_e(double v, char *out) {
    if (isnan(v)) {
        strcpy(out, "NaN");
        return;
    }
    if (isinf(v)) {
        strcpy(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int p = 1; p <= 17; p++) {
        sprintf(out, "%.*E", p - 1, v);
        if (strtod(out, NULL) == v) return;
    }
}

static int strpcmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void fmt_dur(int64_t ms, char *out, size_t cap) {
    if (ms % 60000 == 0)
        snprintf(out, cap, "%lldm", (long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(out, cap, "%llds", (long long)(ms / 1000));
    else
        snprintf(out, cap, "%lldms", (long long)ms);
}

/* one test case; problems are appended to `fail` */
static void run_case(yaml_document_t *d, yaml_node_t *tc, const char *dir, yaml_node_t *rule_files,
                     int64_t eval_iv, tr_buf *fail) {
    char err[1024], tmpl[] = "/tmp/tricorder-test-rules-XXXXXX";
    int64_t step;
    if (dur(get(d, tc, "interval"), eval_iv, &step) || step <= 0) {
        tr_buf_printf(fail, "    invalid interval\n");
        return;
    }
    if (!mkdtemp(tmpl)) {
        tr_buf_printf(fail, "    cannot create a temporary directory: %s\n", strerror(errno));
        return;
    }
    tsdb *db = NULL;
    tsdb_options o = {
        .dir = tmpl, .ooo_window_ms = 1000LL * 86400 * 365 * 10, .retention_ms = 1000LL * 86400 * 365 * 100};
    if (tsdb_open(&o, &db, err, sizeof err) != 0) {
        tr_buf_printf(fail, "    %s\n", err);
        goto out;
    }
    yaml_node_t *in = get(d, tc, "input_series");
    for (size_t i = 0; i < seq_len(in); i++) {
        yaml_node_t *s = seq_at(d, in, i);
        const char *series = sc(get(d, s, "series")), *values = sc(get(d, s, "values"));
        tr_rkv *l = NULL;
        size_t nl = 0;
        if (!series || parse_series(series, &l, &nl, err, sizeof err) ||
            load_values(db, l, nl, values ? values : "", step, err, sizeof err)) {
            tr_buf_printf(fail, "    input_series %s: %s\n", series ? series : "?",
                          series ? err : "missing series");
            kvs_free(l, nl);
            goto out;
        }
        kvs_free(l, nl);
    }
    /* the rule files, relative to the test file */
    size_t nrf = seq_len(rule_files);
    char **paths = calloc(nrf ? nrf : 1, sizeof *paths);
    for (size_t i = 0; i < nrf; i++) {
        const char *f = sc(seq_at(d, rule_files, i));
        paths[i] = malloc(strlen(dir) + strlen(f ? f : "") + 2);
        if (f && f[0] == '/')
            strcpy(paths[i], f);
        else
            sprintf(paths[i], "%s/%s", dir, f ? f : "");
    }
    tr_rules_opts ro = {.db = db,
                        .globs = (const char *const *)paths,
                        .nglobs = nrf,
                        .no_default = 1,
                        .default_interval_ms = eval_iv};
    tr_rules *m = nrf ? tr_rules_new(&ro, err, sizeof err) : NULL;
    for (size_t i = 0; i < nrf; i++)
        free(paths[i]);
    free(paths);
    if (nrf && !m) {
        tr_buf_printf(fail, "    %s\n", err);
        goto out;
    }
    yaml_node_t *at = get(d, tc, "alert_rule_test"), *pt = get(d, tc, "promql_expr_test");
    int64_t max_t = 0;
    for (size_t i = 0; i < seq_len(at); i++) {
        int64_t t;
        if (!dur(get(d, seq_at(d, at, i), "eval_time"), 0, &t) && t > max_t) max_t = t;
    }
    for (int64_t ts = 0; ts <= max_t; ts += eval_iv) {
        if (m) tr_rules_eval_all(m, ts);
        for (size_t i = 0; i < seq_len(at); i++) {
            yaml_node_t *a = seq_at(d, at, i);
            int64_t t;
            if (dur(get(d, a, "eval_time"), 0, &t) || t < ts || t >= ts + eval_iv) continue;
            const char *name = sc(get(d, a, "alertname"));
            got_alerts g = {.name = name ? name : ""};
            if (m) tr_rules_foreach_alert(m, on_alert, &g);
            yaml_node_t *exp = get(d, a, "exp_alerts");
            size_t ne = seq_len(exp);
            char **want = calloc(ne ? ne : 1, sizeof *want);
            for (size_t k = 0; k < ne; k++) {
                yaml_node_t *e = seq_at(d, exp, k);
                yaml_node_t *el = get(d, e, "exp_labels"), *ea = get(d, e, "exp_annotations");
                size_t nl = el && el->type == YAML_MAPPING_NODE
                                ? (size_t)(el->data.mapping.pairs.top - el->data.mapping.pairs.start)
                                : 0;
                size_t na = ea && ea->type == YAML_MAPPING_NODE
                                ? (size_t)(ea->data.mapping.pairs.top - ea->data.mapping.pairs.start)
                                : 0;
                tr_rkv *L = calloc(nl + 1, sizeof *L), *A = calloc(na ? na : 1, sizeof *A);
                size_t li = 0;
                int has_name = 0;
                for (size_t q = 0; q < nl; q++) {
                    yaml_node_pair_t *p = &el->data.mapping.pairs.start[q];
                    L[li].name = (char *)sc(yaml_document_get_node(d, p->key));
                    L[li].value = (char *)sc(yaml_document_get_node(d, p->value));
                    if (L[li].name && L[li].value) {
                        has_name |= !strcmp(L[li].name, "alertname");
                        li++;
                    }
                }
                if (!has_name) L[li++] = (tr_rkv){"alertname", (char *)g.name};
                for (size_t q = 0; q < na; q++) {
                    yaml_node_pair_t *p = &ea->data.mapping.pairs.start[q];
                    A[q].name = (char *)sc(yaml_document_get_node(d, p->key));
                    A[q].value = (char *)sc(yaml_document_get_node(d, p->value));
                    if (!A[q].name) A[q].name = "";
                    if (!A[q].value) A[q].value = "";
                }
                char *lt = kv_text(L, li), *atx = kv_text(A, na);
                size_t len = strlen(lt) + strlen(atx) + 40;
                want[k] = malloc(len);
                snprintf(want[k], len, "Labels:%s\n              Annotations:%s", lt, atx);
                free(lt);
                free(atx);
                free(L);
                free(A);
            }
            if (g.n) qsort(g.lines, g.n, sizeof *g.lines, strpcmp);
            if (ne) qsort(want, ne, sizeof *want, strpcmp);
            int same = g.n == ne;
            for (size_t k = 0; same && k < ne; k++)
                same = !strcmp(want[k], g.lines[k]);
            if (!same) {
                char tb[32];
                fmt_dur(t, tb, sizeof tb);
                tr_buf_printf(fail, "    alertname: %s, time: %s, \n        exp:[\n", g.name, tb);
                for (size_t k = 0; k < ne; k++)
                    tr_buf_printf(fail, "            %zu:\n              %s\n", k, want[k]);
                tr_buf_printf(fail, "            ], \n        got:[\n");
                for (size_t k = 0; k < g.n; k++)
                    tr_buf_printf(fail, "            %zu:\n              %s\n", k, g.lines[k]);
                tr_buf_printf(fail, "            ]\n");
            }
            for (size_t k = 0; k < ne; k++)
                free(want[k]);
            free(want);
            for (size_t k = 0; k < g.n; k++)
                free(g.lines[k]);
            free(g.lines);
        }
    }
    for (size_t i = 0; i < seq_len(pt); i++) {
        yaml_node_t *p = seq_at(d, pt, i);
        const char *expr = sc(get(d, p, "expr"));
        int64_t t;
        if (!expr || dur(get(d, p, "eval_time"), 0, &t)) {
            tr_buf_printf(fail, "    promql_expr_test %zu: expr and eval_time are required\n", i + 1);
            continue;
        }
        promql_result r;
        promql_opts po = {0};
        char tb[32];
        fmt_dur(t, tb, sizeof tb);
        if (promql_query_instant(db, expr, strlen(expr), t, &po, &r, err, sizeof err) != PROMQL_OK) {
            tr_buf_printf(fail, "    expr: %s, time: %s, err: %s\n", expr, tb, err);
            continue;
        }
        yaml_node_t *exp = get(d, p, "exp_samples");
        size_t ne = seq_len(exp), ng = r.type == PROMQL_SCALAR ? 1 : r.type == PROMQL_VECTOR ? r.nseries : 0;
        char **want = calloc(ne ? ne : 1, sizeof *want), **got = calloc(ng ? ng : 1, sizeof *got);
        for (size_t k = 0; k < ne; k++) {
            yaml_node_t *e = seq_at(d, exp, k);
            const char *ls = sc(get(d, e, "labels")), *vs = sc(get(d, e, "value"));
            tr_rkv *L = NULL;
            size_t nl = 0;
            if (ls && *ls && parse_series(ls, &L, &nl, err, sizeof err)) {
                tr_buf_printf(fail, "    expr: %s, time: %s, bad labels %s: %s\n", expr, tb, ls, err);
                nl = 0;
            }
            char *lt = kv_text(L, nl);
            double v = vs ? strtod(vs, NULL) : 0;
            want[k] = malloc(strlen(lt) + 64);
            sprintf(want[k], "%s ", lt);
            go_e(v, want[k] + strlen(want[k]));
            free(lt);
            kvs_free(L, nl);
        }
        for (size_t k = 0; k < ng; k++) {
            char *lt;
            double v;
            if (r.type == PROMQL_SCALAR) {
                lt = strdup("{}");
                v = r.scalar;
            } else {
                tr_rkv *L = calloc(r.series[k].nlabels + 1, sizeof *L);
                for (size_t q = 0; q < r.series[k].nlabels; q++)
                    L[q] = (tr_rkv){r.series[k].labels[q].name, r.series[k].labels[q].value};
                lt = kv_text(L, r.series[k].nlabels);
                free(L);
                v = r.series[k].n ? r.series[k].v[0] : NAN;
            }
            got[k] = malloc(strlen(lt) + 64);
            sprintf(got[k], "%s ", lt);
            go_e(v, got[k] + strlen(got[k]));
            free(lt);
        }
        if (ne) qsort(want, ne, sizeof *want, strpcmp);
        if (ng) qsort(got, ng, sizeof *got, strpcmp);
        int same = ne == ng;
        for (size_t k = 0; same && k < ne; k++)
            same = !strcmp(want[k], got[k]);
        if (!same) {
            tr_buf_printf(fail, "    expr: \"");
            tr_json_escape(fail, expr, strlen(expr));
            tr_buf_printf(fail, "\", time: %s,\n        exp: ", tb);
            for (size_t k = 0; k < ne; k++)
                tr_buf_printf(fail, "%s%s", k ? ", " : "", want[k]);
            tr_buf_printf(fail, "\n        got: ");
            for (size_t k = 0; k < ng; k++)
                tr_buf_printf(fail, "%s%s", k ? ", " : "", got[k]);
            tr_buf_printf(fail, "\n");
        }
        for (size_t k = 0; k < ne; k++)
            free(want[k]);
        for (size_t k = 0; k < ng; k++)
            free(got[k]);
        free(want);
        free(got);
        promql_result_free(&r);
    }
    tr_rules_free(m);
out:
    tsdb_close(db);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
    if (system(cmd) != 0) { /* best effort */
    }
}

static int run_file(const char *path, FILE *out, FILE *errout) {
    fprintf(out, "Unit Testing:  %s\n", path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(errout, "  FAILED:\n    %s\n", strerror(errno));
        return 1;
    }
    yaml_parser_t yp;
    yaml_document_t doc;
    yaml_parser_initialize(&yp);
    yaml_parser_set_input_file(&yp, f);
    int ok = yaml_parser_load(&yp, &doc);
    fclose(f);
    if (!ok) {
        fprintf(errout, "  FAILED:\n    yaml: line %d: %s\n", (int)yp.problem_mark.line + 1,
                yp.problem ? yp.problem : "invalid YAML");
        yaml_parser_delete(&yp);
        return 1;
    }
    char *pc = strdup(path);
    const char *dir = dirname(pc);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    int64_t eval_iv;
    tr_buf fail;
    tr_buf_init(&fail, 0);
    if (dur(get(&doc, root, "evaluation_interval"), 60000, &eval_iv) || eval_iv <= 0) {
        tr_buf_printf(&fail, "    invalid evaluation_interval\n");
    } else {
        yaml_node_t *rf = get(&doc, root, "rule_files"), *tests = get(&doc, root, "tests");
        for (size_t i = 0; i < seq_len(tests); i++)
            run_case(&doc, seq_at(&doc, tests, i), dir, rf, eval_iv, &fail);
    }
    int rc = 0;
    if (fail.len) {
        fflush(out);
        fprintf(errout, "  FAILED:\n%s", fail.data);
        fflush(errout);
        fprintf(out, "\n\n"); /* promtool's blank lines around its report */
        rc = 1;
    } else {
        fprintf(out, "  SUCCESS\n");
    }
    fprintf(out, "\n");
    tr_buf_free(&fail);
    free(pc);
    yaml_document_delete(&doc);
    yaml_parser_delete(&yp);
    return rc;
}

int tr_rules_test_main(int argc, char **argv, FILE *out, FILE *errout) {
    if (argc < 2) {
        fprintf(errout, "usage: tricorder test-rules FILE...\n");
        return 2;
    }
    int failed = 0;
    tr_log_set_level(TR_LOG_WARN);
    for (int i = 1; i < argc; i++)
        failed |= run_file(argv[i], out, errout);
    return failed;
}
