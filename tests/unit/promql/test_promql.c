/* The PromQL engine through its public API (promql.h): parsing and its errors, the String()
 * form, literals and precedence, selectors on a real store (lookback, staleness, offset, @),
 * the rate family, range queries, vector matching errors, limits and cancellation. The
 * Prometheus test scripts run separately (tests/conformance/promql_conformance.c). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"
#include "promql/promql.h"
#include "util/log.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];
static tsdb *db;

static void setup(void) {
    tr_log_set_level(TR_LOG_ERROR);
    snprintf(dir, sizeof dir, "/tmp/promql-unit-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    tsdb_options o = {.dir = dir, .ooo_window_ms = 1000LL * 86400 * 365};
    char err[256];
    cr_assert_eq(tsdb_open(&o, &db, err, sizeof err), 0, "%s", err);
}

static void teardown(void) {
    tsdb_close(db);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {
    }
}

TestSuite(promql, .init = setup, .fini = teardown);

/* name{k=v} sampled every step ms from t0: n values v0, v0+dv, ... */
static void add(const char *name, const char *k, const char *v, int64_t t0, int64_t step, int n, double v0,
                double dv) {
    tsdb_appender *a = tsdb_appender_begin(db);
    tsdb_label l[] = {{"__name__", name}, {k, v}};
    for (int i = 0; i < n; i++)
        cr_assert_eq(tsdb_appender_add(a, l, 2, t0 + i * step, v0 + i * dv), TSDB_OK);
    tsdb_appender_commit(a, NULL, NULL);
}

static void add1(const char *name, const char *k, const char *v, int64_t t, double val) {
    add(name, k, v, t, 1, 1, val, 0);
}

static promql_result inst(const char *q, int64_t t) {
    promql_result r;
    char err[512];
    promql_err rc = promql_query_instant(db, q, strlen(q), t, NULL, &r, err, sizeof err);
    cr_assert_eq(rc, PROMQL_OK, "%s: %s", q, err);
    return r;
}

static double scalar(const char *q) {
    promql_result r = inst(q, 0);
    cr_assert_eq(r.type, PROMQL_SCALAR, "%s", q);
    double v = r.scalar;
    promql_result_free(&r);
    return v;
}

static promql_err fails(const char *q, int64_t t, char *err, size_t errlen) {
    promql_result r;
    promql_err rc = promql_query_instant(db, q, strlen(q), t, NULL, &r, err, errlen);
    cr_assert_neq(rc, PROMQL_OK, "%s should fail", q);
    return rc;
}

Test(promql, literals_and_precedence) {
    cr_assert_eq(scalar("0x10"), 16);
    cr_assert_eq(scalar("1e3"), 1000);
    cr_assert_eq(scalar(".5"), 0.5);
    cr_assert(isinf(scalar("Inf")) && scalar("-inf") < 0);
    cr_assert(isnan(scalar("NaN")));
    cr_assert_eq(scalar("2 ^ 3 ^ 2"), 512); /* right-associative */
    cr_assert_eq(scalar("-2 ^ 2"), -4);     /* unary minus binds looser than ^ */
    cr_assert_eq(scalar("1 + 2 * 3"), 7);
    cr_assert_eq(scalar("(1 + 2) * 3"), 9);
    cr_assert_eq(scalar("10 % 4 - 1"), 1);
    cr_assert_eq(scalar("1 < bool 2"), 1);
    cr_assert_eq(scalar("5 atan2 0"), atan2(5, 0));
    cr_assert_eq(scalar("# comment\n 1 +\n 2 # trailing\n"), 3);
    cr_assert_eq(scalar("time()"), 0);
}

Test(promql, strings) {
    promql_result r = inst("\"a\\tb\\u00e9\\x41\"", 0);
    cr_assert_eq(r.type, PROMQL_STRING);
    cr_assert_str_eq(r.str, "a\tb\xc3\xa9"
                            "A");
    promql_result_free(&r);
    r = inst("`raw\\n`", 0);
    cr_assert_str_eq(r.str, "raw\\n");
    promql_result_free(&r);
}

Test(promql, parse_errors) {
    char err[256];
    cr_assert_eq(fails("sum(", 0, err, sizeof err), PROMQL_ERR_BAD_DATA);
    cr_assert_str_eq(err, "1:5: parse error: unclosed left parenthesis");
    fails("foo{a=\"b\"", 0, err, sizeof err);
    cr_assert_str_eq(err, "1:10: parse error: unexpected end of input inside braces");
    fails("rate(foo[5m", 0, err, sizeof err);
    cr_assert_str_eq(err, "1:12: parse error: unclosed left parenthesis");
    fails("foo[5m", 0, err, sizeof err);
    cr_assert_str_eq(err, "1:7: parse error: unclosed left bracket");
    fails("foo[5m]]", 0, err, sizeof err);
    cr_assert_str_eq(err, "1:8: parse error: unexpected right bracket ']'");
    fails("sum(foo))", 0, err, sizeof err);
    cr_assert_str_eq(err, "1:9: parse error: unexpected right parenthesis ')'");
    fails("rate(foo)", 0, err, sizeof err);
    cr_assert(strstr(err, "expected type range vector in call to function \"rate\", got instant vector"),
              "%s", err);
    fails("{a=~\".*\"}", 0, err, sizeof err);
    cr_assert(strstr(err, "vector selector must contain at least one non-empty matcher"), "%s", err);
    fails("1 > 2", 0, err, sizeof err);
    cr_assert(strstr(err, "comparisons between scalars must use BOOL modifier"), "%s", err);
    fails("foo and 1", 0, err, sizeof err);
    cr_assert(strstr(err, "set operator \"and\" not allowed in binary scalar expression"), "%s", err);
    fails("nosuchfn(foo)", 0, err, sizeof err);
    cr_assert(strstr(err, "unknown function with name \"nosuchfn\""), "%s", err);
    fails("foo offset 1m offset 2m", 0, err, sizeof err);
    fails("(foo + 1)[5m]", 0, err, sizeof err);
    cr_assert(strstr(err, "ranges only allowed for vector selectors"), "%s", err);
    fails("1\n+ )", 0, err, sizeof err);
    cr_assert(!strncmp(err, "2:3:", 4), "%s", err);
    /* a long operator chain is refused before it can exhaust the evaluator's stack */
    char deep[8000] = "1";
    for (int i = 0; i < 2000; i++)
        strcat(deep, "+1");
    fails(deep, 0, err, sizeof err);
    cr_assert(strstr(err, "nested too deeply"), "%s", err);
    cr_assert_eq(scalar("1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1+1"), 20);
    char pw[8000] = "1";
    for (int i = 0; i < 2000; i++)
        strcat(pw, "^1");
    fails(pw, 0, err, sizeof err);
    cr_assert(strstr(err, "nested too deeply"), "%s", err);
    fails("", 0, err, sizeof err);
    cr_assert_str_eq(err, "no expression found in input");
}

Test(promql, format) {
    static const char *cases[][2] = {
        {"sum(rate(x[5m])) by (job)", "sum by (job) (rate(x[5m]))"},
        {"x{a='b'}  offset -1h30m", "x{a=\"b\"} offset -1h30m"},
        {"foo @ 10 + on(a) group_left(b) bar", "foo @ 10.000 + on (a) group_left (b) bar"},
        {"x{b=\"1\",a=\"2\"} offset 5m @ 10", "x{a=\"2\",b=\"1\"} @ 10.000 offset 5m"},
        {"rate(x[5m] offset 1m @ 100)", "rate(x[5m] @ 100.000 offset 1m)"},
        {"time() - 1h30m", "time() - 1h30m"},
        {"rate(x[1h:5m] @ start())", "rate(x[1h:5m] @ start())"},
        {"topk(3, -x > bool 2)", "topk(3, -x > bool 2)"},
        {"{__name__=\"a\",b!~\"c\"}", "{__name__=\"a\",b!~\"c\"}"},
        {"{\"a.b\", c=\"d\"}", "{__name__=\"a.b\",c=\"d\"}"},
        {"a unless ignoring(x) b", "a unless ignoring (x) b"},
        {"1e30 * 0.0001", "1000000000000000000000000000000 * 0.0001"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256];
        char *s = promql_format(cases[i][0], strlen(cases[i][0]), err, sizeof err);
        cr_assert_not_null(s, "%s: %s", cases[i][0], err);
        cr_assert_str_eq(s, cases[i][1]);
        /* the printed form parses to itself */
        char *s2 = promql_format(s, strlen(s), err, sizeof err);
        cr_assert_not_null(s2);
        cr_assert_str_eq(s2, s);
        free(s);
        free(s2);
    }
}

Test(promql, parse_selector) {
    tsdb_matcher **m;
    char err[256];
    int n = promql_parse_selector("up{job=~\"a|b\", x!=''}", 21, &m, err, sizeof err);
    cr_assert_eq(n, 3, "%s", err);
    cr_assert_str_eq(tsdb_matcher_name(m[0]), "__name__");
    cr_assert_eq(tsdb_matcher_type(m[1]), TSDB_MATCH_RE);
    cr_assert(tsdb_matcher_matches(m[1], "b") && !tsdb_matcher_matches(m[1], "ab"));
    for (int i = 0; i < n; i++)
        tsdb_matcher_free(m[i]);
    free(m);
    cr_assert_eq(promql_parse_selector("rate(x[5m])", 11, &m, err, sizeof err), -1);
    cr_assert_eq(promql_parse_selector("up{", 3, &m, err, sizeof err), -1);
}

Test(promql, lookback_and_staleness) {
    add("m", "i", "a", 0, 10000, 4, 1, 1); /* 1 2 3 4 at 0 10 20 30 s */
    tsdb_appender *a = tsdb_appender_begin(db);
    tsdb_label l[] = {{"__name__", "m"}, {"i", "a"}};
    tsdb_appender_add(a, l, 2, 40000, tsdb_stale_nan());
    tsdb_appender_commit(a, NULL, NULL);
    add1("m", "i", "b", 0, 7);
    promql_result r = inst("m", 35000);
    cr_assert_eq(r.type, PROMQL_VECTOR);
    cr_assert_eq(r.nseries, 2);
    cr_assert_str_eq(r.series[0].labels[0].name, "__name__");
    promql_result_free(&r);
    r = inst("m", 45000); /* a is stale */
    cr_assert_eq(r.nseries, 1);
    cr_assert_eq(r.series[0].v[0], 7);
    promql_result_free(&r);
    r = inst("m{i=\"b\"}", 300000); /* (t-5m, t]: the sample at 0 is out */
    cr_assert_eq(r.nseries, 0);
    promql_result_free(&r);
    r = inst("m{i=\"b\"}", 299999);
    cr_assert_eq(r.nseries, 1);
    promql_result_free(&r);
    r = inst("m{i=\"a\"} offset 20s", 35000);
    cr_assert_eq(r.series[0].v[0], 2);
    promql_result_free(&r);
    r = inst("m{i=\"a\"} @ 25", 1000000);
    cr_assert_eq(r.series[0].v[0], 3);
    promql_result_free(&r);
    r = inst("m{i=\"a\"}[25s]", 30000); /* raw samples in (5s, 30s] */
    cr_assert_eq(r.type, PROMQL_MATRIX);
    cr_assert_eq(r.series[0].n, 3);
    cr_assert_eq(r.series[0].t[0], 10000);
    promql_result_free(&r);
}

Test(promql, rate_family) {
    add("c_total", "i", "a", 0, 15000, 41, 0, 3); /* +3 every 15 s: 0.2/s */
    promql_result r = inst("rate(c_total[5m])", 600000);
    cr_assert_eq(r.nseries, 1);
    cr_assert_eq(r.series[0].nlabels, 1, "rate drops __name__");
    cr_assert_float_eq(r.series[0].v[0], 0.2, 1e-9);
    promql_result_free(&r);
    r = inst("increase(c_total[1m])", 600000);
    cr_assert_float_eq(r.series[0].v[0], 12, 1e-9);
    promql_result_free(&r);
    r = inst("irate(c_total[1m])", 600000);
    cr_assert_float_eq(r.series[0].v[0], 0.2, 1e-9);
    promql_result_free(&r);
    r = inst("deriv(c_total[2m])", 600000);
    cr_assert_float_eq(r.series[0].v[0], 0.2, 1e-9);
    promql_result_free(&r);
    r = inst("last_over_time(c_total[1m])", 600000);
    cr_assert_eq(r.series[0].nlabels, 2, "last_over_time keeps __name__");
    cr_assert_eq(r.series[0].v[0], 120);
    promql_result_free(&r);
}

Test(promql, range_query) {
    add("g", "i", "b", 0, 10000, 31, 0, 1);
    add("g", "i", "a", 0, 10000, 31, 100, 0);
    promql_result r;
    char err[256];
    const char *q = "sum_over_time(g[30s])";
    cr_assert_eq(promql_query_range(db, q, strlen(q), 60000, 120000, 30000, NULL, &r, err, sizeof err),
                 PROMQL_OK, "%s", err);
    cr_assert_eq(r.type, PROMQL_MATRIX);
    cr_assert_eq(r.nseries, 2);
    cr_assert_str_eq(r.series[0].labels[0].value, "a", "sorted by labels");
    cr_assert_eq(r.series[1].n, 3);
    cr_assert_eq(r.series[1].t[1], 90000);
    cr_assert_eq(r.series[1].v[1], 7 + 8 + 9); /* (60s, 90s] */
    promql_result_free(&r);
    q = "g[1m]";
    cr_assert_eq(promql_query_range(db, q, strlen(q), 0, 10, 1, NULL, &r, err, sizeof err),
                 PROMQL_ERR_BAD_DATA);
    cr_assert(strstr(err, "invalid expression type \"range vector\" for range query"), "%s", err);
    q = "1 + 1";
    cr_assert_eq(promql_query_range(db, q, strlen(q), 0, 20000, 10000, NULL, &r, err, sizeof err), PROMQL_OK);
    cr_assert_eq(r.nseries, 1);
    cr_assert_eq(r.series[0].n, 3);
    cr_assert_eq(r.series[0].nlabels, 0);
    promql_result_free(&r);
}

Test(promql, matching_and_errors) {
    add1("l", "k", "1", 0, 1);
    add1("l", "k", "2", 0, 2);
    add1("r", "k", "1", 0, 10);
    promql_result r = inst("l + on(k) r", 0);
    cr_assert_eq(r.nseries, 1);
    cr_assert_eq(r.series[0].v[0], 11);
    promql_result_free(&r);
    r = inst("l > 1", 0);
    cr_assert_eq(r.nseries, 1);
    cr_assert_eq(r.series[0].nlabels, 2, "comparison keeps __name__");
    promql_result_free(&r);
    char err[512];
    cr_assert_eq(fails("r + ignoring(k) l", 0, err, sizeof err), PROMQL_ERR_EXECUTION);
    cr_assert(strstr(err, "many-to-many matching not allowed"), "%s", err);
    cr_assert_eq(fails("l + ignoring(k) r", 0, err, sizeof err), PROMQL_ERR_EXECUTION);
    cr_assert(strstr(err, "many-to-one matching must be explicit"), "%s", err);
    r = inst("l + ignoring(k) group_left r", 0);
    cr_assert_eq(r.nseries, 2);
    promql_result_free(&r);
    cr_assert_eq(fails("label_replace(l, \"k\", \"x\", \"k\", \".*\")", 0, err, sizeof err),
                 PROMQL_ERR_EXECUTION);
    cr_assert_str_eq(err, "vector cannot contain metrics with the same labelset");
}

Test(promql, shared_subexpressions) {
    add1("foo", "k", "a", 0, 3);
    add1("foo", "k", "b", 0, 5);
    /* foo is evaluated once; each use gets its own copy (operators work in place) */
    promql_result r = inst("foo * 2 + foo", 0);
    cr_assert_eq(r.nseries, 2);
    cr_assert_eq(r.series[0].v[0] + r.series[1].v[0], 9 + 15);
    promql_result_free(&r);
    r = inst("sum(foo) / sum(foo) + sum(foo > 4)", 0);
    cr_assert_eq(r.series[0].v[0], 6);
    promql_result_free(&r);
    r = inst("(foo > 4) or foo", 0);
    cr_assert_eq(r.nseries, 2);
    promql_result_free(&r);
}

Test(promql, long_range_reads_only_its_windows) {
    add("lr_total", "i", "a", 0, 15000, 11520, 0, 1); /* two days at 15 s */
    promql_opts o = {.max_samples = 2000};
    promql_result r;
    char err[256];
    const char *q = "rate(lr_total[1m])";
    /* 49 hourly steps read ~4 samples each, not the 11,520 of the two days */
    cr_assert_eq(promql_query_range(db, q, strlen(q), 3600000, 172800000, 3600000, &o, &r, err, sizeof err),
                 PROMQL_OK, "%s", err);
    cr_assert_eq(r.nseries, 1);
    cr_assert_eq(r.series[0].n, 48);
    cr_assert_float_eq(r.series[0].v[0], 1.0 / 15, 1e-9);
    promql_result_free(&r);
}

Test(promql, limits) {
    add("big", "i", "a", 0, 1000, 5000, 0, 1);
    promql_opts o = {.max_samples = 100};
    promql_result r;
    char err[256];
    const char *q = "sum_over_time(big[1h])";
    cr_assert_eq(promql_query_instant(db, q, strlen(q), 5000000, &o, &r, err, sizeof err),
                 PROMQL_ERR_TOO_MANY_SAMPLES);
    cr_assert_str_eq(err, "query processing would load too many samples into memory in query execution");
    volatile int cancel = 1;
    promql_opts c = {.cancel = &cancel};
    cr_assert_eq(promql_query_instant(db, q, strlen(q), 5000000, &c, &r, err, sizeof err),
                 PROMQL_ERR_CANCELED);
}

/* --query-max-samples counts what Prometheus's engine holds at its peak (its
 * TestMaxQuerySamples): each case fits a limit of exactly `max` and fails at max - 1. */
static void max_samples_case(const char *q, int64_t start, int64_t end, int64_t step, int64_t max) {
    promql_result r;
    char err[256];
    for (int over = 0; over < (max > 1 ? 2 : 1); over++) { /* a limit of 0 is the default */
        promql_opts o = {.max_samples = max - over};
        promql_err rc = step ? promql_query_range(db, q, strlen(q), start, end, step, &o, &r, err, sizeof err)
                             : promql_query_instant(db, q, strlen(q), start, &o, &r, err, sizeof err);
        if (!over) {
            cr_assert_eq(rc, PROMQL_OK, "%s within %lld: %s", q, (long long)max, err);
            promql_result_free(&r);
        } else
            cr_assert_eq(rc, PROMQL_ERR_TOO_MANY_SAMPLES, "%s should exceed %lld", q, (long long)(max - 1));
    }
}

Test(promql, max_samples_counts_held_samples) {
    add("metric", "i", "a", 0, 10000, 101, 1, 1);
    add("bigmetric", "a", "1", 0, 10000, 101, 1, 1);
    add("bigmetric", "a", "2", 0, 10000, 101, 1, 1);
    max_samples_case("1", 1000, 0, 0, 1);
    max_samples_case("metric", 1000, 0, 0, 1);
    max_samples_case("metric[20s]", 10000, 0, 0, 2);
    max_samples_case("rate(metric[20s])", 10000, 0, 0, 3);
    max_samples_case("metric[20s:5s]", 10000, 0, 0, 3);
    max_samples_case("1", 0, 2000, 1000, 3);
    max_samples_case("metric", 0, 2000, 1000, 3);
    max_samples_case("metric", 0, 10000, 5000, 3);
    max_samples_case("rate(bigmetric[1s])", 0, 10000, 5000, 1);
    max_samples_case("metric @ 10", 0, 10000, 5000, 3);
    /* 20 subquery samples + the 10 of one series' window + 2 results */
    max_samples_case("rate(bigmetric[10s:1s] @ 10)", 10000, 0, 0, 32);
    /* 20 series of 20 samples: the sum holds one sample per series and its own result, not
     * the samples read to find each series' latest */
    for (int i = 0; i < 20; i++) {
        char v[8];
        snprintf(v, sizeof v, "%d", i);
        add("lim", "i", v, 2000000, 10000, 20, 1, 1);
    }
    max_samples_case("sum(lim)", 2200000, 0, 0, 21);
}

Test(promql, label_join_without_sources) {
    add1("lj", "i", "a", 0, 1);
    /* variadic: three arguments suffice; the destination gets the empty join (deleted) */
    promql_result r = inst("label_join(lj, \"dst\", \",\")", 0);
    cr_assert_eq(r.nseries, 1);
    cr_assert_eq(r.series[0].nlabels, 2);
    promql_result_free(&r);
    r = inst("label_join(lj, \"i\", \",\")", 0);
    cr_assert_eq(r.series[0].nlabels, 1); /* joining nothing into an existing label removes it */
    promql_result_free(&r);
    char err[256];
    fails("label_join(lj, \"dst\")", 0, err, sizeof err);
    cr_assert_str_eq(err,
                     "1:1: parse error: expected at least 3 argument(s) in call to \"label_join\", got 2");
}

/* A damaged block: the store leaves it out and says so; the answer carries the warning. */
Test(promql, store_warnings_reach_the_result) {
    const int64_t H = 3600000, t0 = 1000 * H;
    add("dmg", "i", "a", t0, 1000, 200, 0, 1.25);
    char err[256], p[600];
    cr_assert_eq(tsdb_flush(db, err, sizeof err), 0, "%s", err);
    tsdb_close(db);
    snprintf(p, sizeof p, "%s/blocks", dir);
    DIR *d = opendir(p);
    cr_assert_not_null(d);
    struct dirent *e;
    char id[300] = "";
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') snprintf(id, sizeof id, "%s", e->d_name);
    closedir(d);
    cr_assert(id[0]);
    snprintf(p, sizeof p, "%s/blocks/%s/chunks", dir, id);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    int fd = open(p, O_RDWR);
    cr_assert(fd >= 0);
    uint8_t c;
    off_t off = st.st_size / 2;
    cr_assert_eq(pread(fd, &c, 1, off), 1);
    c ^= 0x10;
    cr_assert_eq(pwrite(fd, &c, 1, off), 1);
    close(fd);
    tsdb_options o = {.dir = dir, .ooo_window_ms = 1000LL * 86400 * 365};
    cr_assert_eq(tsdb_open(&o, &db, err, sizeof err), 0, "%s", err);
    promql_result r = inst("count_over_time(dmg[10m])", t0 + 100000);
    cr_assert_eq(r.nseries, 0, "nothing of the damaged block is served");
    cr_assert_eq(r.nwarnings, 1);
    cr_assert(strstr(r.warnings[0], id), "%s", r.warnings[0]);
    promql_result_free(&r);
}

Test(promql, expr_selectors) {
    tsdb_matcher ***sets;
    size_t *lens;
    char err[256];
    const char *q = "sum(rate(a{x=\"1\"}[5m])) / on() group_left max_over_time(b[10m:1m]) + c offset 1m * 2";
    int n = promql_expr_selectors(q, strlen(q), &sets, &lens, err, sizeof err);
    cr_assert_eq(n, 3, "%s", err);
    cr_assert_eq(lens[0], 2); /* __name__="a", x="1" */
    cr_assert_eq(lens[1], 1);
    cr_assert_eq(lens[2], 1);
    promql_selectors_free(sets, lens, (size_t)n);
    cr_assert_eq(promql_expr_selectors("1 + 1", 5, &sets, &lens, err, sizeof err), 0);
    promql_selectors_free(sets, lens, 0);
    cr_assert_eq(promql_expr_selectors("sum(", 4, &sets, &lens, err, sizeof err), -1);
    cr_assert_str_eq(err, "1:5: parse error: unclosed left parenthesis");
}

/* format_query splits what exceeds 100 characters as Prometheus's Prettify does (expected
 * texts are Debian Prometheus 2.42's answers to the same queries) */
Test(promql, format_pretty) {
#define LV "a-rather-long-label-value-for-testing"
    const char *cases[][2] = {
        {"sum(foo)", "sum(foo)"},
        {"sum by (job) "
         "(rate(http_requests_total{job=\"api-server-with-a-rather-long-name\",handler=\"/api/v1/"
         "query_range\"}[5m]))",
         "sum by (job) (\n  rate(\n    "
         "http_requests_total{handler=\"/api/v1/"
         "query_range\",job=\"api-server-with-a-rather-long-name\"}[5m]\n  )\n)"},
        {"sum(rate(x{a=\"" LV "\"}[5m])) / sum(rate(y{a=\"" LV
         "\"}[5m])) > bool on (a) group_left (b) z{a=\"" LV "\"}",
         "    sum(rate(x{a=\"" LV "\"}[5m]))\n  /\n    sum(rate(y{a=\"" LV
         "\"}[5m]))\n> bool on (a) group_left (b)\n  z{a=\"" LV "\"}"},
        {"topk(5, -sum without (instance) (rate(foo{a=\"" LV "\",b=\"" LV "\"}[5m] offset 1h)))",
         "topk(\n  5,\n  -sum without (instance) (\n    rate(\n      foo{a=\"" LV "\",b=\"" LV
         "\"}[5m] offset 1h\n    )\n  )\n)"},
        {"(sum(foo{a=\"" LV "\",b=\"" LV "\"}) + sum(bar{a=\"" LV "\",b=\"" LV "\"}))[30m:1m]",
         "(\n    sum(foo{a=\"" LV "\",b=\"" LV "\"})\n  +\n    sum(bar{a=\"" LV "\",b=\"" LV
         "\"})\n)[30m:1m]"},
    };
#undef LV
    char err[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = promql_format(cases[i][0], strlen(cases[i][0]), err, sizeof err);
        cr_assert_not_null(s, "%s", err);
        cr_assert_str_eq(s, cases[i][1]);
        /* the pretty form parses back to the same expression */
        char *s2 = promql_format(s, strlen(s), err, sizeof err);
        cr_assert_not_null(s2, "%s: %s", s, err);
        cr_assert_str_eq(s2, s);
        free(s);
        free(s2);
    }
}
