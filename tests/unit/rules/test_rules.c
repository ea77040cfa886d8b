/* Rules: the template functions and evaluator, rule file checks with promtool's wording, and
 * alert/recording evaluation against a real store (pending → firing → resolved,
 * keep_firing_for, ALERTS series, stale markers, limits). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "promql/promql.h"
#include "rules/rules.h"
#include "rules/tmpl.h"
#include "util/selfmon.h"

Test(rules_tmpl, humanize_like_prometheus) {
    char b[64];
    struct {
        double v;
        const char *want;
    } h[] = {{0, "0"},         {1, "1"},     {1234, "1.234k"},  {1234567, "1.235M"}, {0.001234, "1.234m"},
             {-2500, "-2.5k"}, {NAN, "NaN"}, {INFINITY, "+Inf"}};
    for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) {
        tr_humanize(h[i].v, b, sizeof b);
        cr_expect_str_eq(b, h[i].want, "humanize(%g)", h[i].v);
    }
    tr_humanize1024(2048, b, sizeof b);
    cr_expect_str_eq(b, "2ki");
    tr_humanize1024(1953125, b, sizeof b);
    cr_expect_str_eq(b, "1.863Mi");
    struct {
        double v;
        const char *want;
    } d[] = {{0, "0s"},       {1.5, "1.5s"},  {61, "1m 1s"}, {3661, "1h 1m 1s"}, {90061, "1d 1h 1m 1s"},
             {0.25, "250ms"}, {-61, "-1m 1s"}};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        tr_humanize_duration(d[i].v, b, sizeof b);
        cr_expect_str_eq(b, d[i].want, "humanizeDuration(%g)", d[i].v);
    }
    tr_go_float(1e6, b, sizeof b);
    cr_expect_str_eq(b, "1e+06");
    tr_go_float(123456, b, sizeof b);
    cr_expect_str_eq(b, "123456");
    tr_go_float(0.5, b, sizeof b);
    cr_expect_str_eq(b, "0.5");
}

static char *expand(const char *t, double v) {
    static tr_tmpl_kv labels[] = {{"instance", "h:1"}, {"job", "api"}};
    tr_tmpl_data d = {.labels = labels, .nlabels = 2, .value = v, .external_url = "http://t:8428"};
    char err[300];
    char *r = tr_tmpl_expand("__alert_X", t, &d, err, sizeof err);
    return r ? r : strdup(err);
}

Test(rules_tmpl, expands_prometheus_templates) {
    struct {
        const char *t;
        double v;
        const char *want;
    } c[] = {
        {"{{ $labels.job }} on {{ $labels.instance }}", 1, "api on h:1"},
        {"{{ $value | humanize }}", 1234, "1.234k"},
        {"{{ humanizePercentage $value }}", 0.256, "25.6%"},
        {"{{ printf \"%.2f\" $value }}", 3.14159, "3.14"},
        {"{{ printf \"%s=%d\" \"n\" 3 }}", 0, "n=3"},
        {"{{ if gt $value 5.0 }}big{{ else if gt $value 1.0 }}mid{{ else }}small{{ end }}", 3, "mid"},
        {"{{- /* note */ -}}  x  {{- \"y\" }}", 0, "xy"},
        {"{{ $labels.missing }}|{{ .Labels.job }}|{{ $externalURL }}", 0, "|api|http://t:8428"},
        {"{{ $x := \"v\" }}{{ $x | toUpper }}", 0, "V"},
        {"{{ with $labels.job }}job={{ . }}{{ end }}", 0, "job=api"},
        {"{{ if match \"^h:\" $labels.instance }}yes{{ end }}", 0, "yes"},
        {"{{ $value }}", 1e6, "1e+06"},
        {"plain", 0, "plain"},
        {"{{ \"h.example.com:9100\" | stripPort }} {{ \"[::1]:80\" | stripPort }} {{ \"h.example.com:9100\" "
         "| stripDomain }}",
         0, "h.example.com ::1 h:9100"},
        {"{{ parseDuration \"1m30s\" }} {{ graphLink \"up == 0\" }}", 0,
         "90 /graph?g0.expr=up+%3D%3D+0&g0.tab=0"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char *r = expand(c[i].t, c[i].v);
        cr_expect_str_eq(r, c[i].want, "%s", c[i].t);
        free(r);
    }
}

Test(rules_tmpl, errors_as_go_words_them) {
    char err[300];
    cr_expect_neq(tr_tmpl_check("__alert_A", "{{ $labels.job ", err, sizeof err), 0);
    cr_expect_str_eq(err, "template: __alert_A:1: unclosed action");
    cr_expect_neq(tr_tmpl_check("__alert_A", "a\n{{ nosuch 1 }}", err, sizeof err), 0);
    cr_expect_str_eq(err, "template: __alert_A:2: function \"nosuch\" not defined");
    cr_expect_neq(tr_tmpl_check("__alert_A", "{{ if 1 }}x", err, sizeof err), 0);
    cr_expect_str_eq(err, "template: __alert_A:1: unexpected EOF");
    cr_expect_neq(tr_tmpl_check("__alert_A", "{{ end }}", err, sizeof err), 0);
    cr_expect_eq(
        tr_tmpl_check("__alert_A", "{{ range query \"up\" }}{{ .Labels.job }}{{ end }}", err, sizeof err), 0);
    /* query() without a store is an expansion error, not a crash */
    char *r = expand("{{ query \"up\" | first | value }}", 0);
    cr_expect(strstr(r, "error calling query") != NULL, "%s", r);
    free(r);
}

static int parse(const char *text, tr_ruleset *rs, char **errs) {
    tr_buf b;
    tr_buf_init(&b, 0);
    int n = tr_rules_parse("f.yml", text, strlen(text), rs, &b);
    tr_buf_putc(&b, 0);
    *errs = strdup(b.data);
    tr_buf_free(&b);
    return n;
}

Test(rules_file, parses_groups_and_rules) {
    tr_ruleset rs = {0};
    char *e;
    cr_assert_eq(parse("groups:\n- name: g\n  interval: 30s\n  limit: 5\n  query_offset: 1m\n  rules:\n"
                       "  - record: a:b\n    expr: sum(up)\n    labels: {x: y}\n"
                       "  - alert: A\n    expr: up == 0\n    for: 5m\n    keep_firing_for: 1m\n    "
                       "annotations: {s: '{{ $value }}'}\n",
                       &rs, &e),
                 0, "%s", e);
    cr_assert_eq(rs.ngroups, 1);
    tr_group_def *g = &rs.groups[0];
    cr_expect_str_eq(g->name, "g");
    cr_expect_eq(g->interval_ms, 30000);
    cr_expect_eq(g->limit, 5);
    cr_expect_eq(g->query_offset_ms, 60000);
    cr_assert_eq(g->nrules, 2);
    cr_expect(!g->rules[0].alert);
    cr_expect_str_eq(g->rules[0].labels[0].value, "y");
    cr_expect(g->rules[1].alert);
    cr_expect_eq(g->rules[1].for_ms, 300000);
    cr_expect_eq(g->rules[1].keep_firing_for_ms, 60000);
    cr_expect_eq(tr_ruleset_count(&rs), 2);
    tr_ruleset_free(&rs);
    free(e);
    /* the shipped rules parse */
    cr_assert_eq(
        tr_rules_parse(tr_default_rules_name, tr_default_rules, tr_default_rules_len, &rs, &(tr_buf){0}), 0);
    cr_expect_eq(tr_ruleset_count(&rs), 4);
    tr_ruleset_free(&rs);
}

Test(rules_file, refuses_as_promtool_does) {
    struct {
        const char *text, *want;
    } c[] = {
        {"groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up ==\n",
         "f.yml: 5:11: group \"g\", rule 1, \"A\": could not parse expression: 1:6: parse error: unexpected "
         "end of input\n"},
        {"groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n    for: 1m\n",
         "f.yml: 4:13: group \"g\", rule 1, \"r\": invalid field 'for' in recording rule\n"},
        {"groups:\n- name: g\n  rules:\n  - record: r\n    expr: up\n    bogus: 1\n",
         "f.yml: yaml: unmarshal errors:\n  line 6: field bogus not found in type rulefmt.RuleNode\n"},
        {"groups:\n- name: a\n  rules: []\n- name: a\n  rules: []\n",
         "f.yml: 4:3: groupname: \"a\" is repeated in the same file\n"},
        {"groups:\n- name: a\n  rules:\n  - alert: x\n    expr: up\n    for: 5 minutes\n",
         "f.yml: not a valid duration string: \"5 minutes\"\n"},
        {"groups: [\n", "f.yml: yaml: line 1: did not find expected node content\n"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        tr_ruleset rs = {0};
        char *e;
        cr_expect_gt(parse(c[i].text, &rs, &e), 0, "%s", c[i].text);
        cr_expect_str_eq(e, c[i].want);
        free(e);
        tr_ruleset_free(&rs);
    }
}

/* ---- evaluation against a store ---- */

static char dir[64];
static tsdb *db;

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/tr-rules-XXXXXX");
    cr_assert(mkdtemp(dir));
    tsdb_options o = {.dir = dir, .ooo_window_ms = 1000LL * 86400 * 365};
    char err[256];
    cr_assert_eq(tsdb_open(&o, &db, err, sizeof err), 0, "%s", err);
}

static void teardown(void) {
    tsdb_close(db);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
    tr_selfmon_reset();
}

static void put(const char *name, const char *lname, const char *lval, int64_t t, double v) {
    tsdb_appender *a = tsdb_appender_begin(db);
    tsdb_label l[] = {{"__name__", name}, {lname, lval}};
    cr_assert_eq(tsdb_appender_add(a, l, 2, t, v), 0);
    tsdb_appender_commit(a, NULL, NULL);
}

static tr_rules *load(const char *text) {
    char path[128];
    snprintf(path, sizeof path, "%s/r.yml", dir);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    const char *globs[] = {path};
    tr_rules_opts o = {.db = db, .globs = globs, .nglobs = 1};
    char err[1024];
    tr_rules *r = tr_rules_new(&o, err, sizeof err);
    cr_assert(r, "%s", err);
    return r;
}

typedef struct seen {
    int n, state;
    char labels[512], ann[512];
} seen;

static void on_alert(void *ctx, const char *name, const tr_rkv *l, size_t nl, const tr_rkv *a, size_t na,
                     int state) {
    seen *s = ctx;
    s->n++;
    s->state = state;
    s->labels[0] = s->ann[0] = 0;
    for (size_t i = 0; i < nl; i++)
        snprintf(s->labels + strlen(s->labels), sizeof s->labels - strlen(s->labels), "%s=%s,", l[i].name,
                 l[i].value);
    for (size_t i = 0; i < na; i++)
        snprintf(s->ann + strlen(s->ann), sizeof s->ann - strlen(s->ann), "%s=%s,", a[i].name, a[i].value);
}

static seen alerts(tr_rules *r) {
    seen s = {0};
    tr_rules_foreach_alert(r, on_alert, &s);
    return s;
}

static double q1(const char *q, int64_t t, size_t *n) {
    promql_result res;
    promql_opts o = {0};
    char err[256];
    cr_assert_eq(promql_query_instant(db, q, strlen(q), t, &o, &res, err, sizeof err), PROMQL_OK, "%s", err);
    *n = res.type == PROMQL_VECTOR ? res.nseries : 1;
    double v = res.type == PROMQL_VECTOR ? (res.nseries ? res.series[0].v[0] : NAN) : res.scalar;
    promql_result_free(&res);
    return v;
}

Test(rules_eval, pending_firing_resolved_and_alerts_series, .init = setup, .fini = teardown) {
    tr_rules *r = load(
        "groups:\n- name: g\n  interval: 10s\n  rules:\n  - alert: Hot\n    expr: temp > 50\n    for: 20s\n"
        "    labels: {severity: page, where: '{{ $labels.room }}!'}\n    annotations: {s: '{{ $value }} in "
        "{{ $labels.room }}'}\n");
    int64_t t0 = 1000000000000LL;
    for (int i = 0; i <= 6; i++)
        put("temp", "room", "a", t0 + i * 10000, i < 5 ? 60 : 20);
    tr_rules_eval_all(r, t0);
    seen s = alerts(r);
    cr_assert_eq(s.n, 1);
    cr_expect_eq(s.state, 1, "pending");
    cr_expect_str_eq(s.labels, "alertname=Hot,room=a,severity=page,where=a!,");
    cr_expect_str_eq(s.ann, "s=60 in a,");
    tr_rules_eval_all(r, t0 + 10000);
    cr_expect_eq(alerts(r).state, 1, "still pending at 10s of a 20s for");
    tr_rules_eval_all(r, t0 + 20000);
    cr_expect_eq(alerts(r).state, 2, "firing at 20s");
    size_t n;
    cr_expect_eq(q1("ALERTS{alertname=\"Hot\",alertstate=\"firing\"}", t0 + 20000, &n), 1);
    cr_expect_eq(n, 1);
    cr_expect_eq(q1("ALERTS_FOR_STATE{alertname=\"Hot\"}", t0 + 20000, &n), (double)(t0 / 1000));
    /* the pending series went stale when the alert fired */
    q1("ALERTS{alertstate=\"pending\"}", t0 + 20000, &n);
    cr_expect_eq(n, 0);
    tr_rules_eval_all(r, t0 + 30000);
    tr_rules_eval_all(r, t0 + 40000);
    tr_rules_eval_all(r, t0 + 50000); /* temp is 20 from here */
    cr_expect_eq(alerts(r).n, 0, "resolved");
    q1("ALERTS", t0 + 50000, &n);
    cr_expect_eq(n, 0, "stale marker ends ALERTS");
    tr_rules_free(r);
}

Test(rules_eval, keep_firing_for, .init = setup, .fini = teardown) {
    tr_rules *r = load("groups:\n- name: g\n  interval: 10s\n  rules:\n  - alert: A\n    expr: x > 0\n    "
                       "keep_firing_for: 15s\n");
    int64_t t0 = 1000000000000LL;
    put("x", "i", "1", t0, 1);
    put("x", "i", "1", t0 + 10000, 0);
    tr_rules_eval_all(r, t0);
    cr_expect_eq(alerts(r).state, 2, "no for: firing at once");
    tr_rules_eval_all(r, t0 + 10000);
    cr_expect_eq(alerts(r).state, 2, "kept firing");
    tr_rules_eval_all(r, t0 + 20000);
    cr_expect_eq(alerts(r).state, 2, "kept firing, 10s < 15s");
    tr_rules_eval_all(r, t0 + 30000);
    cr_expect_eq(alerts(r).n, 0, "resolved after keep_firing_for");
    tr_rules_free(r);
}

Test(rules_eval, recording_rules_write_and_go_stale, .init = setup, .fini = teardown) {
    tr_rules *r = load("groups:\n- name: g\n  rules:\n  - record: x:sum\n    expr: sum by (i) (x)\n    "
                       "labels: {src: rule}\n");
    int64_t t0 = 1000000000000LL;
    put("x", "i", "1", t0, 3);
    tr_rules_eval_all(r, t0);
    size_t n;
    cr_expect_eq(q1("x:sum{i=\"1\",src=\"rule\"}", t0, &n), 3);
    cr_expect_eq(n, 1);
    /* x goes stale: the next evaluation finds nothing and marks x:sum stale */
    put("x", "i", "1", t0 + 60000, tsdb_stale_nan());
    tr_rules_eval_all(r, t0 + 60000);
    q1("x:sum", t0 + 60000, &n);
    cr_expect_eq(n, 0);
    tr_rules_free(r);
}

Test(rules_eval, limits_and_errors_in_the_api, .init = setup, .fini = teardown) {
    tr_rules *r = load("groups:\n- name: g\n  limit: 1\n  rules:\n  - record: y\n    expr: x\n");
    int64_t t0 = 1000000000000LL;
    put("x", "i", "1", t0, 1);
    put("x", "i", "2", t0, 2);
    tr_rules_eval_all(r, t0);
    size_t n;
    q1("y", t0, &n);
    cr_expect_eq(n, 0, "nothing written over the limit");
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_json j;
    tr_json_init(&j, &b);
    tr_rules_json_rules(r, &j, NULL);
    cr_expect(strstr(b.data, "\"health\":\"err\"") != NULL, "%s", b.data);
    cr_expect(strstr(b.data, "\"lastError\":\"exceeded limit of 1 with 2 series\"") != NULL, "%s", b.data);
    tr_buf_free(&b);
    tr_rules_free(r);
}

uint64_t tr_rules_xxhash64(const void *data, size_t len);

/* the hash that places a group's evaluations within its interval, as Prometheus's */
Test(rules_eval, xxhash64_known_values) {
    cr_expect_eq(tr_rules_xxhash64("", 0), 0xEF46DB3751D8E999ULL);
    cr_expect_eq(tr_rules_xxhash64("abc", 3), 0x44BC2CF5AD770999ULL);
    const char *long_in = "Nobody inspects the spammish repetition";
    cr_expect_eq(tr_rules_xxhash64(long_in, strlen(long_in)), 0xFBCEA83C8A378BF1ULL);
}

/* two samples with the same labels once the rule's are applied: an error, and no alert state
 * changes (Prometheus checks before touching its alerts) */
Test(rules_eval, duplicate_alert_labels_change_nothing, .init = setup, .fini = teardown) {
    tr_rules *r =
        load("groups:\n- name: g\n  rules:\n  - alert: D\n    expr: x > 0\n    labels: {i: same}\n");
    int64_t t0 = 1000000000000LL;
    put("x", "i", "1", t0, 1);
    put("x", "i", "2", t0, 1);
    tr_rules_eval_all(r, t0);
    cr_expect_eq(alerts(r).n, 0);
    tr_buf b;
    tr_buf_init(&b, 0);
    tr_json j;
    tr_json_init(&j, &b);
    tr_rules_json_rules(r, &j, NULL);
    cr_expect(strstr(b.data, "vector contains metrics with the same labelset after applying alert labels") !=
                  NULL,
              "%s", b.data);
    tr_buf_free(&b);
    tr_rules_free(r);
}
