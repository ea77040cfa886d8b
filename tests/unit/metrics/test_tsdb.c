/* The metrics store end to end through its public API: appends, matchers and postings, WAL
 * replay (also torn at every byte of its last record), blocks, compaction, retention, the
 * out-of-order window and the limits. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"
#include "metrics/metrics_int.h"
#include "util/log.h"

static char dir[256];

/* selectors as the API parses match[] (PromQL's selector parser) */
static void quiet(void) { tr_log_set_level(TR_LOG_ERROR); }
TestSuite(metrics_tsdb, .init = quiet);

static void mkdtemp_dir(void) {
    snprintf(dir, sizeof dir, "/tmp/tsdb-unit-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void rm_rf(const char *p) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    if (system(cmd)) {
    }
}

static tsdb *open_db(const char *d, int64_t ooo, int64_t retention) {
    tsdb_options o = {.dir = d, .ooo_window_ms = ooo, .retention_ms = retention};
    tsdb *db;
    char err[512];
    cr_assert_eq(tsdb_open(&o, &db, err, sizeof err), 0, "open: %s", err);
    return db;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_done(void *c, int st, const char *m) { *(int *)c = st == 0 ? 1 : -1; }

static void commit(tsdb_appender *a) {
    int st = 0;
    tsdb_appender_commit(a, on_done, &st);
    cr_assert_eq(st, 1, "commit did not succeed inline");
}

/* Adds `n` samples to series {__name__=name, inst=inst, job="j"} at t0, t0+step, … */
static void add_series(tsdb *db, const char *name, const char *inst, int64_t t0, int64_t step, int n,
                       double v0) {
    tsdb_appender *a = tsdb_appender_begin(db);
    tsdb_label l[] = {{"job", "j"}, {"__name__", name}, {"inst", inst}};
    for (int i = 0; i < n; i++)
        cr_assert_eq(tsdb_appender_add(a, l, 3, t0 + i * step, v0 + i), TSDB_OK);
    commit(a);
}

/* Number of series matching `sel` and the total of their samples. */
static size_t count(tsdb *db, const char *sel, size_t *samples) {
    tsdb_matcher **m;
    size_t n;
    char err[256];
    cr_assert_eq(test_selector(sel, &m, &n, err, sizeof err), 0, "%s: %s", sel, err);
    tsdb_querier *q = tsdb_querier_open(db, INT64_MIN, INT64_MAX);
    tsdb_seriesset *ss = tsdb_select(q, m, n, TSDB_SELECT_SAMPLES, err, sizeof err);
    cr_assert_not_null(ss, "%s", err);
    size_t k = tsdb_seriesset_len(ss), tot = 0;
    for (size_t i = 0; i < k; i++) {
        const int64_t *t;
        const double *v;
        size_t c = tsdb_seriesset_samples(ss, i, &t, &v);
        for (size_t j = 1; j < c; j++)
            cr_assert_gt(t[j], t[j - 1], "samples must be ascending and distinct");
        tot += c;
    }
    tsdb_seriesset_free(ss);
    tsdb_querier_close(q);
    tsdb_matchers_free(m, n);
    if (samples) *samples = tot;
    return k;
}

Test(metrics_tsdb, matchers_and_postings) {
    mkdtemp_dir();
    tsdb *db = open_db(dir, 0, 0);
    add_series(db, "up", "a1", 1000, 1000, 5, 0);
    add_series(db, "up", "a2", 1000, 1000, 5, 0);
    add_series(db, "up", "b7", 1000, 1000, 5, 0);
    add_series(db, "down", "a1", 1000, 1000, 5, 0);
    tsdb_appender *a = tsdb_appender_begin(db);
    tsdb_label l[] = {{"__name__", "up"}, {"job", "j"}}; /* no inst label */
    cr_assert_eq(tsdb_appender_add(a, l, 2, 1000, 1), TSDB_OK);
    commit(a);
    struct {
        const char *sel;
        size_t want;
    } cases[] = {
        {"up", 4},
        {"{__name__=~\"up|down\"}", 5},
        {"up{inst=\"a1\"}", 1},
        {"up{inst!=\"a1\"}", 3}, /* the series without inst matches != */
        {"up{inst=~\"a.*\"}", 2},
        {"up{inst!~\"a.*\"}", 2},
        {"up{inst=\"\"}", 1}, /* absent label equals "" */
        {"up{inst=~\".+\"}", 3},
        {"up{inst=~\"A\\\\d\", job=\"j\"}", 0},
        {"up{inst=~\"(?i)A\\\\d\"}", 2}, /* RE2 syntax: (?i) and \d */
        {"up{inst=~\"(?:a|b)[0-9]\"}", 3},
        {"{inst=~\"a1|b7\",__name__!=\"down\"}", 2},
        {"nothing", 0},
        {"up{inst=~\"a\"}", 0}, /* anchored: a partial match is no match */
        /* the fast paths of util/re.h: sets looked up, .* and .+ without a regex run */
        {"up{inst=~\"a1|b7|zz\"}", 2},
        {"up{inst!~\"a1|b7\"}", 2}, /* a2 and the series without inst */
        {"up{inst=~\"a1|\"}", 2},   /* "" in the set: the absent label matches */
        {"up{inst!~\"a1|\"}", 2},
        {"up{inst=~\".*\"}", 4},
        {"up{inst!~\".*\"}", 0},
        {"up{inst!~\".+\"}", 1},
        {"{__name__=~\"up|down\",inst=~\"a.\"}", 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq(count(db, cases[i].sel, NULL), cases[i].want, "%s", cases[i].sel);

    /* label names and values */
    tsdb_querier *q = tsdb_querier_open(db, INT64_MIN, INT64_MAX);
    char **v, err[256];
    size_t n;
    cr_assert_eq(tsdb_label_values(q, "inst", NULL, NULL, 0, &v, &n, err, sizeof err), 0);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(v[0], "a1");
    cr_assert_str_eq(v[2], "b7");
    tsdb_strings_free(v, n);
    tsdb_matcher **m;
    size_t nm;
    cr_assert_eq(test_selector("down", &m, &nm, err, sizeof err), 0);
    tsdb_matcher **const sets[] = {m};
    const size_t lens[] = {nm};
    cr_assert_eq(tsdb_label_names(q, sets, lens, 1, &v, &n, err, sizeof err), 0);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(v[0], "__name__");
    cr_assert_str_eq(v[1], "inst");
    cr_assert_str_eq(v[2], "job");
    tsdb_strings_free(v, n);
    tsdb_matchers_free(m, nm);
    tsdb_querier_close(q);
    tsdb_close(db);
    rm_rf(dir);
}

Test(metrics_tsdb, ooo_window_and_duplicates) {
    mkdtemp_dir();
    tsdb *db = open_db(dir, 600000, 0);
    tsdb_label l[] = {{"__name__", "m"}};
    tsdb_appender *a = tsdb_appender_begin(db);
    cr_assert_eq(tsdb_appender_add(a, l, 1, 10000000, 1), TSDB_OK);
    commit(a);
    a = tsdb_appender_begin(db);
    cr_assert_eq(tsdb_appender_add(a, l, 1, 10000000 - 599000, 2), TSDB_OK); /* within 10m */
    cr_assert_eq(tsdb_appender_add(a, l, 1, 10000000 - 601000, 3), TSDB_ERR_OUT_OF_ORDER);
    cr_assert_eq(tsdb_appender_add(a, l, 1, 10000000 - 1000, 4), TSDB_OK);
    commit(a);
    tsdb_stats st;
    tsdb_get_stats(db, &st);
    cr_assert_eq(st.out_of_order, 1);
    size_t s;
    cr_assert_eq(count(db, "m", &s), 1);
    cr_assert_eq(s, 3);
    /* they survive a restart (WAL) and a flush (block) in order */
    tsdb_close(db);
    db = open_db(dir, 600000, 0);
    cr_assert_eq(count(db, "m", &s), 1);
    cr_assert_eq(s, 3);
    tsdb_close(db);
    rm_rf(dir);
}

/* A sample at a timestamp already cut into a block: another value is a duplicate (counted
 * like the head's), the same value is taken again without a second copy. */
Test(metrics_tsdb, duplicates_against_blocks) {
    mkdtemp_dir();
    const int64_t T0 = 1000LL * 2 * 3600000;
    tsdb *db = open_db(dir, 600000, 0);
    add_series(db, "bk", "x", T0, 1000, 10, 0);  /* values 0..9 */
    add_series(db, "bk", "y", T0, 1000, 200, 0); /* a neighbour in the same block */
    char err[256];
    cr_assert_eq(tsdb_flush(db, err, sizeof err), 0, "%s", err);
    tsdb_stats st;
    tsdb_get_stats(db, &st);
    cr_assert_eq(st.blocks, 1);
    tsdb_label l[] = {{"job", "j"}, {"__name__", "bk"}, {"inst", "x"}};
    tsdb_label other[] = {{"job", "j"}, {"__name__", "bk"}, {"inst", "z"}};
    tsdb_appender *a = tsdb_appender_begin(db);
    cr_assert_eq(tsdb_appender_add(a, l, 3, T0 + 2000, 2), TSDB_OK, "the same value again");
    cr_assert_eq(tsdb_appender_add(a, l, 3, T0 + 2000, 99), TSDB_ERR_DUPLICATE);
    cr_assert_eq(tsdb_appender_add(a, l, 3, T0 + 9000, -1), TSDB_ERR_DUPLICATE, "the block's last sample");
    cr_assert_eq(tsdb_appender_add(a, l, 3, T0, 5), TSDB_ERR_DUPLICATE, "the block's first sample");
    cr_assert_eq(tsdb_appender_add(a, l, 3, T0 + 2500, 7), TSDB_OK, "a timestamp the block lacks");
    cr_assert_eq(tsdb_appender_add(a, other, 3, T0 + 2000, 99), TSDB_OK, "another series");
    commit(a);
    tsdb_get_stats(db, &st);
    cr_assert_eq(st.duplicates, 3);
    size_t s;
    cr_assert_eq(count(db, "bk{inst=\"x\"}", &s), 1); /* count() checks distinct timestamps */
    cr_assert_eq(s, 11);
    /* after a restart too (blocks reopened, the head replayed from the WAL) */
    tsdb_close(db);
    db = open_db(dir, 600000, 0);
    a = tsdb_appender_begin(db);
    cr_assert_eq(tsdb_appender_add(a, l, 3, T0 + 3000, 30), TSDB_ERR_DUPLICATE);
    cr_assert_eq(tsdb_appender_add(a, l, 3, T0 + 3000, 3), TSDB_OK);
    tsdb_appender_rollback(a);
    tsdb_close(db);
    rm_rf(dir);
}

Test(metrics_tsdb, limits_and_label_validation) {
    mkdtemp_dir();
    tsdb_options o = {
        .dir = dir, .max_series = 2, .max_label_name_len = 8, .max_label_value_len = 5, .max_labels = 3};
    tsdb *db;
    char err[256];
    cr_assert_eq(tsdb_open(&o, &db, err, sizeof err), 0);
    tsdb_appender *a = tsdb_appender_begin(db);
    tsdb_label ok1[] = {{"__name__", "a"}, {"x", "1"}};
    tsdb_label ok2[] = {{"__name__", "a"}, {"x", "2"}};
    tsdb_label ok3[] = {{"__name__", "a"}, {"x", "3"}};
    tsdb_label longname[] = {{"__name__", "a"}, {"xxxxxxxxx", "1"}};
    tsdb_label longval[] = {{"__name__", "a"}, {"x", "123456"}};
    tsdb_label many[] = {{"__name__", "a"}, {"x", "1"}, {"y", "1"}, {"z", "1"}};
    tsdb_label noname[] = {{"x", "1"}};
    tsdb_label badname[] = {{"__name__", "a"}, {"1x", "1"}};
    tsdb_label badmetric[] = {{"__name__", "a-b"}};
    tsdb_label dup[] = {{"__name__", "a"}, {"x", "1"}, {"x", "2"}};
    tsdb_label badutf8[] = {{"__name__", "a"}, {"x", "\xc3("}};
    cr_assert_eq(tsdb_appender_add(a, ok1, 2, 1000, 1), TSDB_OK);
    cr_assert_eq(tsdb_appender_add(a, ok2, 2, 1000, 1), TSDB_OK);
    cr_assert_eq(tsdb_appender_add(a, ok3, 2, 1000, 1), TSDB_ERR_MAX_SERIES);
    cr_assert_eq(tsdb_appender_add(a, longname, 2, 1000, 1), TSDB_ERR_NAME_TOO_LONG);
    cr_assert_eq(tsdb_appender_add(a, longval, 2, 1000, 1), TSDB_ERR_VALUE_TOO_LONG);
    cr_assert_eq(tsdb_appender_add(a, many, 4, 1000, 1), TSDB_ERR_TOO_MANY_LABELS);
    cr_assert_eq(tsdb_appender_add(a, noname, 1, 1000, 1), TSDB_ERR_NO_NAME);
    cr_assert_eq(tsdb_appender_add(a, badname, 2, 1000, 1), TSDB_ERR_LABEL_NAME);
    cr_assert_eq(tsdb_appender_add(a, badmetric, 1, 1000, 1), TSDB_ERR_NO_NAME);
    cr_assert_eq(tsdb_appender_add(a, dup, 3, 1000, 1), TSDB_ERR_LABEL_NAME);
    cr_assert_eq(tsdb_appender_add(a, badutf8, 2, 1000, 1), TSDB_ERR_UTF8);
    cr_assert_eq(tsdb_appender_add(a, ok1, 2, 2000, 1), TSDB_OK); /* the batch goes on */
    cr_assert_eq(tsdb_appender_count(a), 3);
    commit(a);
    tsdb_stats st;
    tsdb_get_stats(db, &st);
    cr_assert_eq(st.limit_rejections, 9);
    cr_assert_eq(st.samples_appended, 3);
    cr_assert_str_neq(tsdb_strerror(TSDB_ERR_MAX_SERIES), "unknown error");
    tsdb_close(db);
    rm_rf(dir);
}

/* ---- WAL ---- */

typedef struct offs {
    size_t off[64];
    int n;
    const uint8_t *base;
} offs;

static void rec_off(void *ctx, uint8_t type, const uint8_t *pl, size_t len) {
    offs *o = ctx;
    if (o->n < 64) o->off[o->n++] = (size_t)(pl - o->base) - 9;
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
        if (e->d_name[0] != '.') {
            char p[700];
            snprintf(p, sizeof p, "%s/%s", w, e->d_name);
            if (stat(p, &st) == 0 && st.st_size > 0) snprintf(path, sizeof path, "%s", p);
        }
    closedir(dd);
    cr_assert_neq(path[0], 0, "no WAL segment with data");
    return path;
}

Test(metrics_tsdb, wal_replay_torn_at_every_byte_of_last_record) {
    mkdtemp_dir();
    /* a child writes two acknowledged commits and dies without closing */
    pid_t pid = fork();
    if (pid == 0) {
        tsdb_options o = {.dir = dir};
        tsdb *db;
        char err[256];
        if (tsdb_open(&o, &db, err, sizeof err)) _exit(2);
        tsdb_appender *a = tsdb_appender_begin(db);
        tsdb_label l1[] = {{"__name__", "first"}, {"k", "v"}};
        for (int i = 0; i < 10; i++)
            tsdb_appender_add(a, l1, 2, 1000 + i, i);
        tsdb_appender_commit(a, NULL, NULL);
        a = tsdb_appender_begin(db);
        tsdb_label l2[] = {{"__name__", "second"}};
        tsdb_appender_add(a, l2, 1, 5000, 42);
        tsdb_appender_add(a, l1, 2, 6000, 43);
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
    cr_assert_eq(wal_scan(data, len, rec_off, &o), len, "the written WAL must scan fully");
    cr_assert_geq(o.n, 3);
    size_t last = o.off[o.n - 1];
    /* the whole WAL replays: both commits */
    tsdb *db = open_db(dir, 0, 0);
    size_t s;
    cr_assert_eq(count(db, "first", &s), 1);
    cr_assert_eq(s, 11);
    cr_assert_eq(count(db, "second", &s), 1);
    tsdb_close(db);

    char d2[300], w2[400], p2[500];
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
        db = open_db(d2, 0, 0);
        /* everything before the torn record is there; the torn record's samples are not */
        size_t nfirst, nsecond;
        cr_assert_eq(count(db, "first", &nfirst), 1, "cut at %zu", cut);
        count(db, "second", &nsecond);
        cr_assert_eq(nfirst, 10, "cut at %zu: %zu samples of first", cut, nfirst);
        cr_assert_eq(nsecond, 0, "cut at %zu", cut);
        /* and the store keeps working: a new commit after the cut survives a crash-free reopen */
        tsdb_label l3[] = {{"__name__", "third"}};
        tsdb_appender *a = tsdb_appender_begin(db);
        tsdb_appender_add(a, l3, 1, 7000, 1);
        commit(a);
        tsdb_close(db);
        db = open_db(d2, 0, 0);
        cr_assert_eq(count(db, "third", NULL), 1);
        cr_assert_eq(count(db, "first", &nfirst), 1);
        cr_assert_eq(nfirst, 10);
        tsdb_close(db);
    }
    rm_rf(dir);
}

Test(metrics_tsdb, torn_tail_then_more_writes_then_crash) {
    /* a torn tail is cut at open, so records appended later are not hidden behind it */
    mkdtemp_dir();
    for (int step = 0; step < 2; step++) {
        pid_t pid = fork();
        if (pid == 0) {
            tsdb_options o = {.dir = dir};
            tsdb *db;
            char err[256];
            if (tsdb_open(&o, &db, err, sizeof err)) _exit(2);
            tsdb_appender *a = tsdb_appender_begin(db);
            tsdb_label l[] = {{"__name__", step ? "after" : "before"}};
            for (int i = 0; i < 5; i++)
                tsdb_appender_add(a, l, 1, 1000 + i, i);
            tsdb_appender_commit(a, NULL, NULL);
            _exit(0);
        }
        int status;
        waitpid(pid, &status, 0);
        if (step == 0) {
            /* tear the tail: garbage after the last good record */
            char *seg = only_segment(dir);
            FILE *f = fopen(seg, "ab");
            fwrite("\x02\xff\x00\x00\x00garbage", 1, 12, f);
            fclose(f);
        }
    }
    tsdb *db = open_db(dir, 0, 0);
    size_t s;
    cr_assert_eq(count(db, "before", &s), 1);
    cr_assert_eq(s, 5);
    cr_assert_eq(count(db, "after", &s), 1, "records written after a torn tail must replay");
    cr_assert_eq(s, 5);
    tsdb_close(db);
    rm_rf(dir);
}

/* ---- blocks ---- */

Test(metrics_tsdb, block_cut_reopen_and_compaction) {
    mkdtemp_dir();
    tsdb *db = open_db(dir, 0, 0);
    char inst[16];
    int64_t t0 = 3600000LL * 1000; /* aligned far from 0 */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 50; i++) {
            snprintf(inst, sizeof inst, "i%d", i);
            add_series(db, "cpu", inst, t0 + round * 600000, 15000, 40, round * 100);
        }
        char err[256];
        cr_assert_eq(tsdb_flush(db, err, sizeof err), 0, "%s", err);
    }
    tsdb_stats st;
    tsdb_get_stats(db, &st);
    cr_assert_eq(st.blocks, 3);
    cr_assert_eq(st.head_series, 0);
    cr_assert_eq(st.block_samples, 3 * 50 * 40);
    size_t s;
    cr_assert_eq(count(db, "cpu", &s), 50);
    cr_assert_eq(s, 3 * 50 * 40);
    cr_assert_eq(count(db, "cpu{inst=\"i7\"}", &s), 1);
    cr_assert_eq(s, 120);
    /* the head goes on after a cut, and overlapping data merges on read */
    add_series(db, "cpu", "i7", t0, 15000, 5, 0); /* duplicates of block samples (new head series) */
    add_series(db, "cpu", "i7", t0 + 3 * 600000, 15000, 10, 0);
    cr_assert_eq(count(db, "cpu{inst=\"i7\"}", &s), 1);
    cr_assert_eq(s, 130);
    tsdb_close(db);

    /* reopen: blocks load; compaction merges the three into one, data unchanged */
    db = open_db(dir, 0, 0);
    cr_assert_eq(count(db, "cpu", &s), 50);
    cr_assert_eq(s, 3 * 50 * 40 + 10);
    tsdb_maintain(db);
    tsdb_get_stats(db, &st);
    cr_assert_eq(st.blocks, 1, "blocks after compaction: %llu", (unsigned long long)st.blocks);
    cr_assert_geq(st.compactions, 1);
    cr_assert_eq(count(db, "cpu", &s), 50);
    cr_assert_eq(s, 3 * 50 * 40 + 10);
    cr_assert_eq(count(db, "cpu{inst=\"i7\"}", &s), 1);
    cr_assert_eq(s, 130);
    tsdb_close(db);
    db = open_db(dir, 0, 0);
    cr_assert_eq(count(db, "cpu", &s), 50);
    cr_assert_eq(s, 3 * 50 * 40 + 10);
    tsdb_close(db);
    rm_rf(dir);
}

Test(metrics_tsdb, retention_time_and_size) {
    mkdtemp_dir();
    int64_t now = now_ms(), day = 86400000, range = 7200000;
    /* each series inside one 2 h block range whatever the time of day (the head is cut on
     * 2 h-aligned boundaries: a series across one would make two blocks) */
    int64_t cut = now / range * range;
    /* no retention while writing old data, then reopen with one */
    tsdb *db = open_db(dir, 0, 0);
    char err[256];
    add_series(db, "old", "x", cut - 10 * day + 60000, 60000, 30, 0);
    cr_assert_eq(tsdb_flush(db, err, sizeof err), 0);
    add_series(db, "mid", "x", cut - 3 * day + 60000, 60000, 30, 0);
    cr_assert_eq(tsdb_flush(db, err, sizeof err), 0);
    add_series(db, "new", "x", cut - range + 60000, 1000, 30, 0);
    cr_assert_eq(tsdb_flush(db, err, sizeof err), 0);
    tsdb_close(db);

    db = open_db(dir, 0, 5 * day);
    /* too-old samples are refused at the door */
    tsdb_appender *a = tsdb_appender_begin(db);
    tsdb_label l[] = {{"__name__", "late"}};
    cr_assert_eq(tsdb_appender_add(a, l, 1, now - 6 * day, 1), TSDB_ERR_TOO_OLD);
    tsdb_appender_rollback(a);
    tsdb_maintain(db);
    cr_assert_eq(count(db, "old", NULL), 0, "expired block must go");
    cr_assert_eq(count(db, "mid", NULL), 1);
    cr_assert_eq(count(db, "new", NULL), 1);
    tsdb_close(db);

    /* size cap: keep dropping the oldest until under the cap */
    tsdb_options o = {.dir = dir, .retention_bytes = 1};
    cr_assert_eq(tsdb_open(&o, &db, err, sizeof err), 0);
    tsdb_stats st;
    tsdb_get_stats(db, &st);
    cr_assert_eq(st.blocks, 2);
    tsdb_maintain(db);
    tsdb_get_stats(db, &st);
    cr_assert_eq(st.blocks, 0);
    cr_assert_eq(count(db, "new", NULL), 0);
    tsdb_close(db);
    rm_rf(dir);
}

static int meta_cb_check(void *ctx, const tsdb_metadata *m) {
    struct {
        int n;
        char help[64];
    } *g = ctx;
    if (g->n == 0) cr_assert_str_eq(m->family, "a_seconds");
    if (g->n == 0) cr_assert_str_eq(m->help, "A\ttab\nline");
    if (g->n == 1) cr_assert_str_eq(m->help, "B things.", "a family's distinct entries, oldest first");
    if (g->n == 2) snprintf(g->help, sizeof g->help, "%s", m->help);
    g->n++;
    return 0;
}

Test(metrics_tsdb, metadata_and_cardinality) {
    mkdtemp_dir();
    tsdb *db = open_db(dir, 0, 0);
    tsdb_set_metadata(db, "b_total", "counter", "B things.", "");
    tsdb_set_metadata(db, "a_seconds", "histogram", "A\ttab\nline", "seconds");
    tsdb_set_metadata(db, "b_total", "counter", "B things, v2.", "");
    add_series(db, "a_seconds_bucket", "1", 1000, 1000, 3, 0);
    add_series(db, "a_seconds_bucket", "2", 1000, 1000, 3, 0);
    add_series(db, "b_total", "1", 1000, 1000, 3, 0);
    tsdb_card c;
    tsdb_head_cardinality(db, 10, &c);
    cr_assert_eq(c.n_by_metric, 2);
    cr_assert_str_eq(c.by_metric[0].name, "a_seconds_bucket");
    cr_assert_eq(c.by_metric[0].value, 2);
    cr_assert_eq(c.num_label_pairs, 2 + 2 + 1);
    tsdb_card_free(&c);
    tsdb_close(db);
    db = open_db(dir, 0, 0); /* metadata persists */
    struct {
        int n;
        char help[64];
    } got = {0};
    tsdb_metadata_foreach(db, meta_cb_check, &got);
    cr_assert_eq(got.n, 3, "every distinct (type, help, unit) is kept, as Prometheus lists them");
    cr_assert_str_eq(got.help, "B things, v2.");
    tsdb_close(db);
    rm_rf(dir);
}

Test(metrics_tsdb, periodic_cut_checkpoint_then_crash) {
    /* the background cut moves old chunks into a block and rewrites the WAL as a checkpoint of
     * what stays in the head; a crash after that loses nothing acknowledged */
    mkdtemp_dir();
    const int64_t H = 3600000, T0 = 1000 * 2 * H;
    pid_t pid = fork();
    if (pid == 0) {
        tsdb_options o = {.dir = dir};
        tsdb *db;
        char err[256];
        if (tsdb_open(&o, &db, err, sizeof err)) _exit(2);
        char inst[16];
        for (int i = 0; i < 20; i++) {
            snprintf(inst, sizeof inst, "i%d", i);
            tsdb_appender *a = tsdb_appender_begin(db);
            tsdb_label l[] = {{"__name__", "m"}, {"inst", inst}};
            for (int k = 0; k < 240; k++)
                tsdb_appender_add(a, l, 2, T0 + k * 60000, k);
            tsdb_appender_commit(a, NULL, NULL);
        }
        tsdb_maintain(db); /* head spans 4h > 1.5 block ranges: cut before T0+2h */
        tsdb_stats st;
        tsdb_get_stats(db, &st);
        if (st.blocks != 1 || st.block_samples != 20 * 120 || st.head_samples != 20 * 120) _exit(3);
        tsdb_appender *a = tsdb_appender_begin(db);
        for (int i = 0; i < 20; i++) {
            snprintf(inst, sizeof inst, "i%d", i);
            tsdb_label l[] = {{"__name__", "m"}, {"inst", inst}};
            for (int k = 240; k < 250; k++)
                tsdb_appender_add(a, l, 2, T0 + k * 60000, k);
        }
        tsdb_appender_commit(a, NULL, NULL);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status), "child died");
    cr_assert_eq(WEXITSTATUS(status), 0, "child failed with %d (3: unexpected cut result)",
                 WEXITSTATUS(status));
    /* a checkpoint of the head replaced the segments it covers */
    char w[400];
    snprintf(w, sizeof w, "%s/wal", dir);
    DIR *d = opendir(w);
    struct dirent *e;
    int segs = 0, ckpts = 0;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "checkpoint.", 11) == 0)
            ckpts++;
        else if (e->d_name[0] != '.')
            segs++;
    }
    closedir(d);
    cr_assert_eq(ckpts, 1, "checkpoints: %d", ckpts);
    cr_assert_eq(segs, 1, "WAL segments left: %d", segs);
    tsdb *db = open_db(dir, 0, 0);
    size_t s;
    cr_assert_eq(count(db, "m", &s), 20);
    cr_assert_eq(s, 20 * 250);
    tsdb_querier *q = tsdb_querier_open(db, T0 + 100 * 60000, T0 + 130 * 60000);
    tsdb_matcher **m;
    size_t n;
    char err[128];
    test_selector("m{inst=\"i3\"}", &m, &n, err, sizeof err);
    tsdb_seriesset *ss = tsdb_select(q, m, n, TSDB_SELECT_SAMPLES, err, sizeof err);
    const int64_t *t;
    const double *v;
    cr_assert_eq(tsdb_seriesset_len(ss), 1);
    size_t k = tsdb_seriesset_samples(ss, 0, &t, &v);
    cr_assert_eq(k, 31, "a range across the block/head boundary: %zu samples", k);
    for (size_t i = 0; i < k; i++)
        cr_assert_eq(v[i], (double)(100 + i));
    tsdb_seriesset_free(ss);
    tsdb_matchers_free(m, n);
    tsdb_querier_close(q);
    tsdb_close(db);
    rm_rf(dir);
}

/* ---- group commit on an event loop ---- */

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>

typedef struct gc_state {
    int done, bad, off_loop;
    pthread_t loop_thread;
    struct event_base *base;
} gc_state;

static void gc_done(void *c, int st, const char *m) {
    gc_state *g = c;
    if (st != TSDB_OK) g->bad++;
    if (!pthread_equal(pthread_self(), g->loop_thread)) g->off_loop++;
    if (++g->done == 200) event_base_loopbreak(g->base);
}

typedef struct gc_ctx {
    gc_state g;
    tsdb *db;
} gc_ctx;

static void gc_start(evutil_socket_t fd, short what, void *arg) {
    gc_ctx *c = arg;
    gc_state *g = &c->g;
    tsdb *db = c->db;
    char name[32];
    for (int i = 0; i < 200; i++) {
        tsdb_appender *a = tsdb_appender_begin(db);
        snprintf(name, sizeof name, "s%d", i % 17);
        tsdb_label l[] = {{"__name__", "gc"}, {"k", name}};
        tsdb_appender_add(a, l, 2, 1000 + i, i);
        tsdb_appender_commit(a, gc_done, g);
    }
}

Test(metrics_tsdb, group_commit_on_the_loop_thread) {
    mkdtemp_dir();
    evthread_use_pthreads();
    gc_ctx s = {0};
    s.g.base = event_base_new();
    s.g.loop_thread = pthread_self();
    tsdb_options o = {.dir = dir, .base = s.g.base};
    char err[256];
    cr_assert_eq(tsdb_open(&o, &s.db, err, sizeof err), 0, "%s", err);
    struct event *ev = evtimer_new(s.g.base, gc_start, &s);
    struct timeval tv = {0, 0};
    evtimer_add(ev, &tv);
    struct timeval limit = {20, 0};
    event_base_loopexit(s.g.base, &limit);
    event_base_dispatch(s.g.base);
    cr_assert_eq(s.g.done, 200, "callbacks: %d", s.g.done);
    cr_assert_eq(s.g.bad, 0);
    cr_assert_eq(s.g.off_loop, 0, "every callback runs on the loop thread");
    tsdb_stats st;
    tsdb_get_stats(s.db, &st);
    cr_assert_lt(st.wal_fsyncs, 200, "group commit: %llu fsyncs for 200 commits",
                 (unsigned long long)st.wal_fsyncs);
    cr_assert_eq(st.samples_appended, 200);
    event_free(ev);
    tsdb_close(s.db);
    event_base_free(s.g.base);
    tr_selfmon_reset(); /* the store registered its self-metrics */
    rm_rf(dir);
}

Test(metrics_tsdb, idle_series_leave_the_head_after_a_cut) {
    mkdtemp_dir();
    const int64_t H = 3600000, T0 = 1000 * 2 * H;
    tsdb *db = open_db(dir, 0, 0);
    add_series(db, "gone", "x", T0 + 60000, 60000, 3, 0); /* stops after 3 minutes */
    add_series(db, "busy", "x", T0, 60000, 240, 0);       /* 4 hours */
    tsdb_maintain(db);
    tsdb_stats st;
    tsdb_get_stats(db, &st);
    cr_assert_eq(st.blocks, 1);
    cr_assert_eq(st.head_series, 1, "the idle series went to the block and left the head");
    cr_assert_eq(st.block_samples, 3 + 120);
    size_t s;
    cr_assert_eq(count(db, "gone", &s), 1);
    cr_assert_eq(s, 3);
    cr_assert_eq(count(db, "busy", &s), 1);
    cr_assert_eq(s, 240);
    tsdb_close(db);
    rm_rf(dir);
}

Test(metrics_tsdb, crash_after_checkpoint_before_segment_removal) {
    /* a crash between writing wal/checkpoint.N and deleting segments <= N leaves both: the
     * checkpoint wins, the stale segment is dropped, nothing is lost or doubled */
    mkdtemp_dir();
    const int64_t H = 3600000, T0 = 1000 * 2 * H;
    char seg1[400], keep[400];
    snprintf(seg1, sizeof seg1, "%s/wal/00000001", dir);
    snprintf(keep, sizeof keep, "%s/seg1.copy", dir);
    pid_t pid = fork();
    if (pid == 0) {
        tsdb_options o = {.dir = dir};
        tsdb *db;
        char err[256];
        if (tsdb_open(&o, &db, err, sizeof err)) _exit(2);
        tsdb_appender *a = tsdb_appender_begin(db);
        tsdb_label l[] = {{"__name__", "m"}};
        for (int k = 0; k < 240; k++)
            tsdb_appender_add(a, l, 1, T0 + k * 60000, k);
        tsdb_appender_commit(a, NULL, NULL);
        char cmd[1000];
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", seg1, keep);
        if (system(cmd)) _exit(4);
        tsdb_maintain(db); /* block + checkpoint.00000001, segment 1 removed */
        a = tsdb_appender_begin(db);
        for (int k = 240; k < 245; k++)
            tsdb_appender_add(a, l, 1, T0 + k * 60000, k);
        tsdb_appender_commit(a, NULL, NULL);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed");
    cr_assert_eq(rename(keep, seg1), 0); /* as if the crash came before the deletion */
    tsdb *db = open_db(dir, 0, 0);
    size_t s;
    cr_assert_eq(count(db, "m", &s), 1);
    cr_assert_eq(s, 245);
    tsdb_stats st;
    tsdb_get_stats(db, &st);
    cr_assert_eq(st.head_samples, 125, "head: the checkpoint (120) and segment 2 (5), not segment 1 again");
    struct stat sb;
    cr_assert_neq(stat(seg1, &sb), 0, "the stale segment was removed");
    tsdb_close(db);
    rm_rf(dir);
}

Test(metrics_tsdb, lazy_load_equals_eager_select) {
    /* series spread over two blocks and the head (overlapping), loaded one at a time */
    mkdtemp_dir();
    tsdb *db = open_db(dir, 0, 0);
    char err[256], inst[16];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 20; i++) {
            snprintf(inst, sizeof inst, "i%d", i);
            /* the value follows the timestamp: rounds overlap with equal samples (another
             * value at a timestamp a block holds would be refused as a duplicate) */
            add_series(db, "lazy", inst, 1000000 + round * 50000 - 20000, 1000, 60, 980 + round * 50);
        }
        if (round < 2) cr_assert_eq(tsdb_flush(db, err, sizeof err), 0);
    }
    tsdb_matcher **m;
    size_t n;
    cr_assert_eq(test_selector("lazy", &m, &n, err, sizeof err), 0);
    tsdb_querier *q = tsdb_querier_open(db, 1010000, 1100000);
    tsdb_seriesset *eager = tsdb_select(q, m, n, TSDB_SELECT_SAMPLES, err, sizeof err);
    tsdb_seriesset *lazy = tsdb_select(q, m, n, 0, err, sizeof err);
    cr_assert_eq(tsdb_seriesset_len(eager), 20);
    cr_assert_eq(tsdb_seriesset_len(lazy), 20);
    size_t total = 0;
    for (size_t i = 0; i < 20; i++) {
        const int64_t *t1, *t2;
        const double *v1, *v2;
        cr_assert_eq(tsdb_seriesset_samples(lazy, i, &t2, &v2), 0, "nothing before load");
        cr_assert_eq(tsdb_seriesset_load(lazy, i, err, sizeof err), 0, "%s", err);
        size_t a = tsdb_seriesset_samples(eager, i, &t1, &v1), b = tsdb_seriesset_samples(lazy, i, &t2, &v2);
        cr_assert_eq(a, b);
        cr_assert_eq(memcmp(t1, t2, a * sizeof *t1), 0);
        cr_assert_eq(memcmp(v1, v2, a * sizeof *v1), 0);
        total += a;
        tsdb_seriesset_unload(lazy, i);
    }
    /* [1010000, 1100000] over rounds starting at 980000, 1030000, 1080000 (60 s each, 1 s apart) */
    cr_assert_eq(total, 20 * 91, "samples in range: %zu", total);
    tsdb_seriesset_free(eager);
    tsdb_seriesset_free(lazy);
    tsdb_querier_close(q);
    tsdb_matchers_free(m, n);
    tsdb_close(db);
    rm_rf(dir);
}

/* ---- metadata pruning ---- */

static int collect_family(void *ctx, const tsdb_metadata *m) {
    char *out = ctx;
    strcat(out, m->family);
    strcat(out, ",");
    return 0;
}

Test(metrics_tsdb, metadata_of_families_without_series_is_pruned, .init = quiet) {
    mkdtemp_dir();
    tsdb *db = open_db(dir, 600000, 0);
    tsdb_set_metadata(db, "req", "counter", "requests", NULL);    /* series req_total */
    tsdb_set_metadata(db, "lat", "histogram", "latency", NULL);   /* series lat_bucket */
    tsdb_set_metadata(db, "up", "gauge", "", NULL);               /* series up */
    tsdb_set_metadata(db, "gone", "counter", "no series", NULL);  /* none */
    tsdb_set_metadata(db, "gone2", "gauge", "none either", NULL); /* none */
    int64_t t = tr_now_ms();
    tsdb_appender *a = tsdb_appender_begin(db);
    tsdb_label l1[] = {{"__name__", "req_total"}};
    tsdb_label l2[] = {{"__name__", "lat_bucket"}, {"le", "+Inf"}};
    tsdb_label l3[] = {{"__name__", "up"}};
    cr_assert_eq(tsdb_appender_add(a, l1, 1, t, 1), TSDB_OK);
    cr_assert_eq(tsdb_appender_add(a, l2, 2, t, 1), TSDB_OK);
    cr_assert_eq(tsdb_appender_add(a, l3, 1, t, 1), TSDB_OK);
    commit(a);
    cr_assert_eq(db_meta_prune(db, 600000), 0, "fresh metadata waits for its series");
    cr_assert_eq(db_meta_prune(db, 0), 2);
    char fams[256] = "";
    tsdb_metadata_foreach(db, collect_family, fams);
    cr_assert_str_eq(fams, "lat,req,up,");
    /* the index still finds every kept family (a new triple is added to it, not a new entry) */
    tsdb_set_metadata(db, "up", "gauge", "now with help", NULL);
    tsdb_set_metadata(db, "gone", "counter", "back", NULL);
    fams[0] = 0;
    tsdb_metadata_foreach(db, collect_family, fams);
    cr_assert_str_eq(fams, "gone,lat,req,up,up,");
    tsdb_close(db);
    rm_rf(dir);
}

static size_t count_dir(const char *p) {
    DIR *d = opendir(p);
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    if (d) closedir(d);
    return n;
}

Test(metrics_tsdb, snapshots_pruned_and_counted_in_retention_size) {
    mkdtemp_dir();
    char err[512], name[64], sdir[600];
    tsdb_options o = {.dir = dir, .snapshots_keep = 2};
    tsdb *db;
    cr_assert_eq(tsdb_open(&o, &db, err, sizeof err), 0, "%s", err);
    int64_t now = (int64_t)time(NULL) * 1000;
    add_series(db, "snap_me", "1", now - 3600000, 15000, 20, 1);
    snprintf(sdir, sizeof sdir, "%s/snapshots", dir);
    char first[64] = "";
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tsdb_snapshot(db, name, sizeof name, err, sizeof err), 0, "%s", err);
        if (i == 0) snprintf(first, sizeof first, "%s", name);
    }
    cr_assert_eq(count_dir(sdir), 2, "only the newest two are kept");
    char p[700];
    snprintf(p, sizeof p, "%s/%s", sdir, first);
    cr_assert_eq(access(p, F_OK), -1, "the oldest went");
    snprintf(p, sizeof p, "%s/%s", sdir, name);
    cr_assert_eq(access(p, F_OK), 0, "the newest stays");
    tsdb_close(db);

    /* over --retention-size: the snapshots go before any block is dropped... */
    tsdb_options o2 = {.dir = dir, .retention_bytes = 1};
    cr_assert_eq(tsdb_open(&o2, &db, err, sizeof err), 0, "%s", err);
    tsdb_maintain(db);
    cr_assert_eq(count_dir(sdir), 0);
    tsdb_stats st;
    tsdb_get_stats(db, &st);
    cr_assert_eq(st.blocks, 0, "...and then the blocks");
    tsdb_close(db);
    rm_rf(dir);
}
