/* The exemplar store through the public API: the ring wrapping around with per-series chains
 * intact after evictions (checked against a model), label limits, duplicates and
 * out-of-order exemplars, exemplars added before the sample that creates their series,
 * queries by matchers and time, and durability: WAL replay (also torn at every byte of the
 * last record), checkpoints after a cut, a smaller ring on reopen, exemplars switched off. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"
#include "metrics/metrics_int.h"
#include "util/log.h"

/* selectors as the API parses match[] (PromQL's selector parser) */

static char dir[256];

static void quiet(void) { tr_log_set_level(TR_LOG_ERROR); }
TestSuite(metrics_exemplar, .init = quiet);

static void mkdtemp_dir(void) {
    snprintf(dir, sizeof dir, "/tmp/tsdb-exemplar-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void rm_rf(const char *p) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    if (system(cmd)) {
    }
}

static tsdb *open_ex(const char *d, int64_t max_exemplars) {
    tsdb_options o = {.dir = d, .max_exemplars = max_exemplars};
    tsdb *db;
    char err[512];
    cr_assert_eq(tsdb_open(&o, &db, err, sizeof err), 0, "open: %s", err);
    return db;
}

static void on_done(void *c, int st, const char *m) { *(int *)c = st == 0 ? 1 : -1; }

static void commit(tsdb_appender *a) {
    int st = 0;
    tsdb_appender_commit(a, on_done, &st);
    cr_assert_eq(st, 1, "commit did not succeed inline");
}

/* One commit: a sample of {__name__=name, job=job} at t and an exemplar {trace_id=trace}. */
static void sample_ex(tsdb *db, const char *name, const char *job, int64_t t, double v, const char *trace) {
    tsdb_appender *a = tsdb_appender_begin(db);
    tsdb_label l[] = {{"__name__", name}, {"job", job}};
    tsdb_label e[] = {{"trace_id", trace}};
    cr_assert_eq(tsdb_appender_add(a, l, 2, t, v), TSDB_OK);
    cr_assert_eq(tsdb_appender_add_exemplar(a, l, 2, e, 1, t, v), TSDB_OK);
    commit(a);
}

/* The query result as text: `name{job}:trace@t=v,…;` per series, in result order. */
static char *render(tsdb *db, const char *sel, int64_t mint, int64_t maxt) {
    static char out[1 << 16];
    tsdb_matcher **m = NULL;
    size_t n = 0;
    char err[256];
    if (sel) cr_assert_eq(test_selector(sel, &m, &n, err, sizeof err), 0, "%s: %s", sel, err);
    tsdb_matcher **const sets[1] = {m};
    tsdb_exemplars *r;
    cr_assert_eq(tsdb_query_exemplars(db, sets, &n, sel ? 1 : 0, mint, maxt, &r, err, sizeof err), 0, "%s",
                 err);
    size_t o = 0;
    out[0] = 0;
    for (size_t i = 0; i < tsdb_exemplars_len(r); i++) {
        const tsdb_label *l;
        size_t nl = tsdb_exemplars_series(r, i, &l);
        for (size_t k = 0; k < nl; k++)
            o += snprintf(out + o, sizeof out - o, "%s%s", k ? (k == 1 ? "{" : ",") : "", l[k].value);
        o += snprintf(out + o, sizeof out - o, "%s:", nl > 1 ? "}" : "");
        const tsdb_exemplar *ex;
        size_t ne = tsdb_exemplars_of(r, i, &ex);
        for (size_t k = 0; k < ne; k++) {
            if (k) o += snprintf(out + o, sizeof out - o, ",");
            for (size_t j = 0; j < ex[k].n_labels; j++)
                o += snprintf(out + o, sizeof out - o, "%s%s=%s", j ? "|" : "", ex[k].labels[j].name,
                              ex[k].labels[j].value);
            o += snprintf(out + o, sizeof out - o, "@%lld=%g", (long long)ex[k].t_ms, ex[k].value);
            if (k) cr_assert_geq(ex[k].t_ms, ex[k - 1].t_ms, "exemplars of a series come in time order");
        }
        o += snprintf(out + o, sizeof out - o, ";");
    }
    tsdb_exemplars_free(r);
    if (m) tsdb_matchers_free(m, n);
    return out;
}

static tsdb_exemplar_stats stats(tsdb *db) {
    tsdb_exemplar_stats st;
    tsdb_get_exemplar_stats(db, &st);
    return st;
}

/* ---- the ring ---- */

Test(metrics_exemplar, ring_wraps_and_keeps_per_series_chains) {
    mkdtemp_dir();
    tsdb *db = open_ex(dir, 5);
    /* A, B, A, C, A, B: six exemplars in a ring of five evicts the first (A@1) */
    const char *order[] = {"a", "b", "a", "c", "a", "b"};
    for (int i = 0; i < 6; i++) {
        char tr[16];
        snprintf(tr, sizeof tr, "t%d", i + 1);
        sample_ex(db, order[i], "j", i + 1, i + 1, tr);
    }
    cr_assert_str_eq(
        render(db, NULL, INT64_MIN, INT64_MAX),
        "a{j}:trace_id=t3@3=3,trace_id=t5@5=5;b{j}:trace_id=t2@2=2,trace_id=t6@6=6;c{j}:trace_id=t4@4=4;");
    tsdb_exemplar_stats st = stats(db);
    cr_assert_eq(st.in_storage, 5);
    cr_assert_eq(st.series, 3);
    cr_assert_eq(st.max, 5);
    cr_assert_eq(st.appended, 6);
    /* three more for D: B@2, A@3 and C@4 go; C had only one, so C leaves the index */
    for (int i = 7; i <= 9; i++) {
        char tr[16];
        snprintf(tr, sizeof tr, "t%d", i);
        sample_ex(db, "d", "j", i, i, tr);
    }
    cr_assert_str_eq(
        render(db, NULL, INT64_MIN, INT64_MAX),
        "a{j}:trace_id=t5@5=5;b{j}:trace_id=t6@6=6;d{j}:trace_id=t7@7=7,trace_id=t8@8=8,trace_id=t9@9=9;");
    st = stats(db);
    cr_assert_eq(st.in_storage, 5);
    cr_assert_eq(st.series, 3);
    tsdb_close(db);
    rm_rf(dir);
}

Test(metrics_exemplar, ring_matches_a_model_over_many_wraps) {
    /* seven slots, five series, 500 exemplars in a pseudo-random series order: after every
     * commit the store must equal the last seven exemplars, grouped by series in time order */
    mkdtemp_dir();
    enum { CAP = 7, N = 500 };
    tsdb *db = open_ex(dir, CAP);
    int ser[N];
    unsigned x = 12345;
    char want[4096], name[8], tr[16];
    for (int i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        ser[i] = (int)((x >> 16) % 5);
        snprintf(name, sizeof name, "s%d", ser[i]);
        snprintf(tr, sizeof tr, "t%d", i);
        sample_ex(db, name, "j", 1000 + i, i, tr);
        size_t o = 0;
        want[0] = 0;
        for (int s = 0; s < 5; s++) {
            int any = 0;
            for (int k = i - CAP + 1 < 0 ? 0 : i - CAP + 1; k <= i; k++) {
                if (ser[k] != s) continue;
                if (!any)
                    o += snprintf(want + o, sizeof want - o, "s%d{j}:", s);
                else
                    o += snprintf(want + o, sizeof want - o, ",");
                o += snprintf(want + o, sizeof want - o, "trace_id=t%d@%d=%d", k, 1000 + k, k);
                any = 1;
            }
            if (any) o += snprintf(want + o, sizeof want - o, ";");
        }
        cr_assert_str_eq(render(db, NULL, INT64_MIN, INT64_MAX), want, "after exemplar %d", i);
    }
    cr_assert_eq(stats(db).in_storage, CAP);
    tsdb_close(db);
    rm_rf(dir);
}

/* ---- limits, duplicates, order ---- */

Test(metrics_exemplar, label_limits) {
    mkdtemp_dir();
    tsdb *db = open_ex(dir, 100);
    tsdb_label l[] = {{"__name__", "m"}};
    char v127[400] = "", v128[400] = "";
    /* "t" plus 127 two-byte runes is 128 runes (255 bytes): at the limit; one more is over */
    for (int i = 0; i < 127; i++)
        strcat(v127, "\xc3\xa9");
    strcpy(v128, v127);
    strcat(v128, "\xc3\xa9");
    tsdb_appender *a = tsdb_appender_begin(db);
    cr_assert_eq(tsdb_appender_add(a, l, 1, 1000, 1), TSDB_OK);
    cr_assert_eq(tsdb_appender_add_exemplar(a, l, 1, (tsdb_label[]){{"t", v127}}, 1, 1000, 1), TSDB_OK);
    cr_assert_eq(tsdb_appender_add_exemplar(a, l, 1, (tsdb_label[]){{"t", v128}}, 1, 1001, 1),
                 TSDB_ERR_VALUE_TOO_LONG);
    /* names count too: 4 + 125 = 129 */
    char v125[200];
    memset(v125, 'x', 125);
    v125[125] = 0;
    cr_assert_eq(tsdb_appender_add_exemplar(a, l, 1, (tsdb_label[]){{"name", v125}}, 1, 1002, 1),
                 TSDB_ERR_VALUE_TOO_LONG);
    cr_assert_eq(tsdb_appender_add_exemplar(a, l, 1, (tsdb_label[]){{"t", "\xff\xfe"}}, 1, 1003, 1),
                 TSDB_ERR_UTF8);
    cr_assert_eq(tsdb_appender_add_exemplar(a, l, 1, (tsdb_label[]){{"", "x"}}, 1, 1004, 1),
                 TSDB_ERR_LABEL_NAME);
    cr_assert_eq(tsdb_appender_add_exemplar(a, l, 1, (tsdb_label[]){{"a", "1"}, {"a", "2"}}, 2, 1005, 1),
                 TSDB_ERR_LABEL_NAME);
    /* empty values mean "absent"; labels come back sorted by name */
    cr_assert_eq(
        tsdb_appender_add_exemplar(a, l, 1, (tsdb_label[]){{"z", "1"}, {"e", ""}, {"b", "2"}}, 3, 1006, 6),
        TSDB_OK);
    /* no labels at all is fine */
    cr_assert_eq(tsdb_appender_add_exemplar(a, l, 1, NULL, 0, 1007, 7), TSDB_OK);
    /* an exemplar whose series has no __name__ is refused like a sample would be */
    cr_assert_eq(tsdb_appender_add_exemplar(a, (tsdb_label[]){{"job", "x"}}, 1, NULL, 0, 1008, 1),
                 TSDB_ERR_NO_NAME);
    commit(a);
    char want[1024];
    snprintf(want, sizeof want, "m:t=%s@1000=1,b=2|z=1@1006=6,@1007=7;", v127);
    cr_assert_str_eq(render(db, "m", INT64_MIN, INT64_MAX), want);
    tsdb_exemplar_stats st = stats(db);
    cr_assert_eq(st.label_rejections, 5);
    cr_assert_eq(st.appended, 3);
    tsdb_close(db);
    rm_rf(dir);
}

Test(metrics_exemplar, duplicates_and_out_of_order) {
    mkdtemp_dir();
    tsdb *db = open_ex(dir, 100);
    tsdb_label l[] = {{"__name__", "m"}};
    tsdb_label e1[] = {{"trace_id", "aa"}}, e2[] = {{"trace_id", "bb"}};
    sample_ex(db, "m", "j", 100, 1, "aa");
    tsdb_label lj[] = {{"__name__", "m"}, {"job", "j"}};
    /* the same exemplar again: dropped silently; an older one: refused and counted */
    tsdb_appender *a = tsdb_appender_begin(db);
    cr_assert_eq(tsdb_appender_add_exemplar(a, lj, 2, e1, 1, 100, 1), TSDB_OK);
    commit(a);
    a = tsdb_appender_begin(db);
    cr_assert_eq(tsdb_appender_add_exemplar(a, lj, 2, e2, 1, 99, 5), TSDB_OK);
    commit(a);
    tsdb_exemplar_stats st = stats(db);
    cr_assert_eq(st.duplicates, 1);
    cr_assert_eq(st.out_of_order, 1);
    cr_assert_eq(st.appended, 1);
    /* the same time: a larger value sorts after the newest and is kept, a smaller one is out
     * of order; the same time and value with other labels is decided by the labels */
    a = tsdb_appender_begin(db);
    tsdb_appender_add_exemplar(a, lj, 2, e1, 1, 100, 2);
    commit(a);
    a = tsdb_appender_begin(db);
    tsdb_appender_add_exemplar(a, lj, 2, e1, 1, 100, 1.5);
    commit(a);
    a = tsdb_appender_begin(db);
    tsdb_appender_add_exemplar(a, lj, 2, e2, 1, 100, 2);
    commit(a);
    cr_assert_str_eq(render(db, "m", INT64_MIN, INT64_MAX),
                     "m{j}:trace_id=aa@100=1,trace_id=aa@100=2,trace_id=bb@100=2;");
    st = stats(db);
    cr_assert_eq(st.out_of_order, 2);
    /* within one batch the order given does not matter (sorted by time), and an exact repeat
     * in the batch is kept once */
    a = tsdb_appender_begin(db);
    tsdb_appender_add_exemplar(a, lj, 2, e1, 1, 300, 3);
    tsdb_appender_add_exemplar(a, lj, 2, e2, 1, 200, 2);
    tsdb_appender_add_exemplar(a, lj, 2, e1, 1, 300, 3);
    commit(a);
    cr_assert_str_eq(render(db, "m", 150, INT64_MAX), "m{j}:trace_id=bb@200=2,trace_id=aa@300=3;");
    st = stats(db);
    cr_assert_eq(st.duplicates, 2);
    cr_assert_eq(st.out_of_order, 2);
    cr_assert_eq(st.appended, 5);
    /* a series that does not exist (no sample ever created it) gets no exemplars */
    a = tsdb_appender_begin(db);
    cr_assert_eq(tsdb_appender_add_exemplar(a, l, 1, e1, 1, 500, 1), TSDB_OK);
    commit(a);
    cr_assert_str_eq(render(db, "m{job=\"\"}", INT64_MIN, INT64_MAX), "");
    cr_assert_eq(stats(db).unknown_series, 1);
    tsdb_close(db);
    rm_rf(dir);
}

Test(metrics_exemplar, exemplar_before_the_sample_that_creates_its_series) {
    mkdtemp_dir();
    tsdb *db = open_ex(dir, 100);
    tsdb_label l[] = {{"job", "x"}, {"__name__", "fresh"}}; /* any label order */
    tsdb_label e[] = {{"span_id", "0102"}, {"trace_id", "abcd"}};
    tsdb_appender *a = tsdb_appender_begin(db);
    cr_assert_eq(tsdb_appender_add_exemplar(a, l, 2, e, 2, 5000, 0.25), TSDB_OK);
    cr_assert_eq(tsdb_appender_add(a, l, 2, 5000, 1), TSDB_OK);
    commit(a);
    cr_assert_str_eq(render(db, "fresh", INT64_MIN, INT64_MAX),
                     "fresh{x}:span_id=0102|trace_id=abcd@5000=0.25;");
    /* a rolled-back batch leaves nothing behind */
    a = tsdb_appender_begin(db);
    tsdb_appender_add(a, l, 2, 6000, 1);
    tsdb_appender_add_exemplar(a, l, 2, e, 2, 6000, 9);
    tsdb_appender_rollback(a);
    cr_assert_eq(stats(db).in_storage, 1);
    /* a batch of exemplars alone (as Prometheus' remote write sends them) for a known series */
    a = tsdb_appender_begin(db);
    tsdb_appender_add_exemplar(a, l, 2, e, 2, 7000, 3);
    cr_assert_eq(tsdb_appender_count(a), 0);
    commit(a);
    cr_assert_str_eq(render(db, "fresh", 6000, INT64_MAX), "fresh{x}:span_id=0102|trace_id=abcd@7000=3;");
    tsdb_close(db);
    rm_rf(dir);
}

Test(metrics_exemplar, query_by_matchers_and_time) {
    mkdtemp_dir();
    tsdb *db = open_ex(dir, 100);
    const char *names[][2] = {{"a", "y"}, {"b", "x"}, {"a", "x"}};
    for (int t = 10; t <= 30; t += 10)
        for (int i = 0; i < 3; i++) {
            char tr[32];
            snprintf(tr, sizeof tr, "%s%s%d", names[i][0], names[i][1], t);
            sample_ex(db, names[i][0], names[i][1], t, t, tr);
        }
    cr_assert_str_eq(render(db, "a", INT64_MIN, INT64_MAX),
                     "a{x}:trace_id=ax10@10=10,trace_id=ax20@20=20,trace_id=ax30@30=30;"
                     "a{y}:trace_id=ay10@10=10,trace_id=ay20@20=20,trace_id=ay30@30=30;");
    cr_assert_str_eq(render(db, "{job=\"x\"}", 15, 25), "a{x}:trace_id=ax20@20=20;b{x}:trace_id=bx20@20=20;");
    cr_assert_str_eq(render(db, "a{job=~\"y|z\"}", 30, 30), "a{y}:trace_id=ay30@30=30;");
    cr_assert_str_eq(render(db, "{__name__=~\"a|b\",job!~\"x\"}", INT64_MIN, 10),
                     "a{y}:trace_id=ay10@10=10;");
    cr_assert_str_eq(render(db, "{job!=\"x\",__name__!=\"\"}", INT64_MIN, INT64_MAX),
                     "a{y}:trace_id=ay10@10=10,trace_id=ay20@20=20,trace_id=ay30@30=30;");
    cr_assert_str_eq(render(db, "a", 31, 40), "", "no exemplar in range: no series");
    cr_assert_str_eq(render(db, "nope", INT64_MIN, INT64_MAX), "");
    /* several matcher sets: a series matching any of them */
    tsdb_matcher **m1, **m2;
    size_t n[2];
    char err[128];
    cr_assert_eq(test_selector("b", &m1, &n[0], err, sizeof err), 0);
    cr_assert_eq(test_selector("a{job=\"y\"}", &m2, &n[1], err, sizeof err), 0);
    tsdb_matcher **const sets[2] = {m1, m2};
    tsdb_exemplars *r;
    cr_assert_eq(tsdb_query_exemplars(db, sets, n, 2, 20, 20, &r, err, sizeof err), 0);
    cr_assert_eq(tsdb_exemplars_len(r), 2);
    const tsdb_label *l;
    cr_assert_eq(tsdb_exemplars_series(r, 0, &l), 2);
    cr_assert_str_eq(l[0].value, "a");
    cr_assert_str_eq(l[1].value, "y");
    tsdb_exemplars_free(r);
    tsdb_matchers_free(m1, n[0]);
    tsdb_matchers_free(m2, n[1]);
    tsdb_close(db);
    rm_rf(dir);
}

/* ---- durability ---- */

typedef struct offs {
    const uint8_t *base;
    size_t off[64];
    uint8_t type[64];
    size_t n;
} offs;

static void rec_off(void *ctx, uint8_t type, const uint8_t *pl, size_t len) {
    offs *o = ctx;
    if (o->n < 64) {
        o->type[o->n] = type;
        o->off[o->n++] = (size_t)(pl - o->base) - 9;
    }
}

static char *only_segment(const char *d) {
    static char path[800];
    char w[400];
    snprintf(w, sizeof w, "%s/wal", d);
    DIR *dd = opendir(w);
    cr_assert_not_null(dd);
    struct dirent *e;
    struct stat st;
    path[0] = 0;
    while ((e = readdir(dd)))
        if (e->d_name[0] != '.' && strncmp(e->d_name, "checkpoint", 10) != 0) {
            char p[700];
            snprintf(p, sizeof p, "%s/%s", w, e->d_name);
            if (stat(p, &st) == 0 && st.st_size > 0) snprintf(path, sizeof path, "%s", p);
        }
    closedir(dd);
    cr_assert_neq(path[0], 0, "no WAL segment with data");
    return path;
}

Test(metrics_exemplar, wal_replay_torn_at_every_byte_of_last_record) {
    mkdtemp_dir();
    pid_t pid = fork();
    if (pid == 0) {
        /* two acknowledged commits, then death without close: the second holds exemplars only */
        tsdb_options o = {.dir = dir, .max_exemplars = 100};
        tsdb *db;
        char err[256];
        if (tsdb_open(&o, &db, err, sizeof err)) _exit(2);
        tsdb_label l[] = {{"__name__", "h_bucket"}, {"le", "0.5"}};
        tsdb_label e[] = {{"span_id", "00f067aa0ba902b7"}, {"trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"}};
        tsdb_appender *a = tsdb_appender_begin(db);
        tsdb_appender_add_exemplar(a, l, 2, e, 2, 1000, 0.25);
        tsdb_appender_add(a, l, 2, 1000, 1);
        tsdb_appender_commit(a, NULL, NULL);
        a = tsdb_appender_begin(db);
        tsdb_appender_add_exemplar(a, l, 2, e, 2, 2000, 0.5);
        tsdb_appender_commit(a, NULL, NULL);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char *seg = only_segment(dir);
    FILE *f = fopen(seg, "rb");
    static uint8_t data[1 << 16];
    size_t len = fread(data, 1, sizeof data, f);
    fclose(f);
    offs o = {.base = data};
    cr_assert_eq(wal_scan(data, len, rec_off, &o), len);
    /* series, samples, exemplars; then exemplars alone */
    cr_assert_eq(o.n, 4);
    cr_assert_eq(o.type[0], WAL_SERIES);
    cr_assert_eq(o.type[1], WAL_SAMPLES);
    cr_assert_eq(o.type[2], WAL_EXEMPLARS);
    cr_assert_eq(o.type[3], WAL_EXEMPLARS);
    const char *both =
        "h_bucket{0.5}:span_id=00f067aa0ba902b7|trace_id=4bf92f3577b34da6a3ce929d0e0e4736@1000=0.25,"
        "span_id=00f067aa0ba902b7|trace_id=4bf92f3577b34da6a3ce929d0e0e4736@2000=0.5;";
    const char *first =
        "h_bucket{0.5}:span_id=00f067aa0ba902b7|trace_id=4bf92f3577b34da6a3ce929d0e0e4736@1000=0.25;";
    tsdb *db = open_ex(dir, 100);
    cr_assert_str_eq(render(db, "h_bucket", INT64_MIN, INT64_MAX), both);
    tsdb_close(db);

    char d2[300], w2[400], p2[500];
    size_t last = o.off[o.n - 1];
    for (size_t cut = last; cut < len; cut++) {
        snprintf(d2, sizeof d2, "%s/cut", dir);
        rm_rf(d2);
        mkdir(d2, 0755);
        snprintf(w2, sizeof w2, "%s/wal", d2);
        mkdir(w2, 0755);
        snprintf(p2, sizeof p2, "%s/00000001", w2);
        int fd = open(p2, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        cr_assert(fd >= 0);
        cr_assert_eq(write(fd, data, cut), (ssize_t)cut);
        close(fd);
        db = open_ex(d2, 100);
        cr_assert_str_eq(render(db, "h_bucket", INT64_MIN, INT64_MAX), first, "cut at %zu", cut);
        /* and the store goes on: a new exemplar after the cut survives a reopen */
        tsdb_label l[] = {{"__name__", "h_bucket"}, {"le", "0.5"}};
        tsdb_appender *a = tsdb_appender_begin(db);
        tsdb_appender_add_exemplar(a, l, 2, (tsdb_label[]){{"trace_id", "ff"}}, 1, 3000, 7);
        commit(a);
        tsdb_close(db);
        db = open_ex(d2, 100);
        cr_assert_eq(stats(db).in_storage, 2, "cut at %zu", cut);
        tsdb_close(db);
    }
    /* the same WAL with exemplars switched off: samples replay, exemplars are skipped */
    db = open_ex(dir, 0);
    cr_assert_str_eq(render(db, "h_bucket", INT64_MIN, INT64_MAX), "");
    cr_assert_eq(stats(db).max, 0);
    tsdb_querier *q = tsdb_querier_open(db, INT64_MIN, INT64_MAX);
    tsdb_matcher **m;
    size_t n;
    char err[128];
    test_selector("h_bucket", &m, &n, err, sizeof err);
    tsdb_seriesset *ss = tsdb_select(q, m, n, TSDB_SELECT_SAMPLES, err, sizeof err);
    cr_assert_eq(tsdb_seriesset_len(ss), 1);
    tsdb_seriesset_free(ss);
    tsdb_matchers_free(m, n);
    tsdb_querier_close(q);
    tsdb_close(db);
    rm_rf(dir);
}

Test(metrics_exemplar, checkpoint_after_a_cut_then_crash) {
    /* a flush moves every sample into a block (the series leave the head) and rewrites the
     * WAL as a checkpoint: the exemplars must be in it, keyed by their labels */
    mkdtemp_dir();
    pid_t pid = fork();
    if (pid == 0) {
        tsdb_options o = {.dir = dir, .max_exemplars = 100};
        tsdb *db;
        char err[256];
        if (tsdb_open(&o, &db, err, sizeof err)) _exit(2);
        tsdb_label l[] = {{"__name__", "old"}};
        tsdb_appender *a = tsdb_appender_begin(db);
        tsdb_appender_add(a, l, 1, 1000, 1);
        tsdb_appender_add_exemplar(a, l, 1, (tsdb_label[]){{"trace_id", "01"}}, 1, 1000, 1);
        tsdb_appender_commit(a, NULL, NULL);
        if (tsdb_flush(db, err, sizeof err)) _exit(3);
        tsdb_label k[] = {{"__name__", "kept"}};
        a = tsdb_appender_begin(db);
        tsdb_appender_add(a, k, 1, 2000, 1);
        tsdb_appender_add_exemplar(a, k, 1, (tsdb_label[]){{"trace_id", "02"}}, 1, 2000, 2);
        tsdb_appender_commit(a, NULL, NULL);
        if (tsdb_flush(db, err, sizeof err)) _exit(3);
        /* after the second checkpoint: one in the head, one more in a fresh segment */
        a = tsdb_appender_begin(db);
        tsdb_appender_add(a, k, 1, 3000, 1);
        tsdb_appender_add_exemplar(a, k, 1, (tsdb_label[]){{"trace_id", "03"}}, 1, 3000, 3);
        tsdb_appender_commit(a, NULL, NULL);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed: %d", WEXITSTATUS(status));
    tsdb *db = open_ex(dir, 100);
    cr_assert_str_eq(render(db, NULL, INT64_MIN, INT64_MAX),
                     "kept:trace_id=02@2000=2,trace_id=03@3000=3;old:trace_id=01@1000=1;");
    tsdb_close(db);
    /* a clean close checkpoints too; a smaller ring at reopen keeps the newest */
    db = open_ex(dir, 2);
    cr_assert_str_eq(render(db, NULL, INT64_MIN, INT64_MAX), "kept:trace_id=02@2000=2,trace_id=03@3000=3;");
    cr_assert_eq(stats(db).appended, 0, "replay is not counted as appended");
    tsdb_close(db);
    db = open_ex(dir, 100);
    cr_assert_str_eq(render(db, NULL, INT64_MIN, INT64_MAX), "kept:trace_id=02@2000=2,trace_id=03@3000=3;");
    tsdb_close(db);
    rm_rf(dir);
}

Test(metrics_exemplar, switched_off) {
    mkdtemp_dir();
    tsdb *db = open_ex(dir, 0);
    sample_ex(db, "m", "j", 1000, 1, "aa");
    cr_assert_str_eq(render(db, NULL, INT64_MIN, INT64_MAX), "");
    tsdb_exemplar_stats st = stats(db);
    cr_assert_eq(st.in_storage + st.appended + st.max, 0);
    /* nothing but series and samples went to the WAL */
    char *seg = only_segment(dir);
    FILE *f = fopen(seg, "rb");
    static uint8_t data[1 << 16];
    size_t len = fread(data, 1, sizeof data, f);
    fclose(f);
    offs o = {.base = data};
    cr_assert_eq(wal_scan(data, len, rec_off, &o), len);
    for (size_t i = 0; i < o.n; i++)
        cr_assert_neq(o.type[i], WAL_EXEMPLARS);
    tsdb_close(db);
    tsdb_options bad = {.dir = dir, .max_exemplars = (int64_t)1 << 40};
    char err[256];
    cr_assert_eq(tsdb_open(&bad, &db, err, sizeof err), -1);
    cr_assert(strstr(err, "max-exemplars"), "%s", err);
    rm_rf(dir);
}
