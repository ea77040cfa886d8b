/* tsdb_appender_add_key: a label set given in the store's canonical key form (what the remote
 * write decoder builds as it copies labels) finds the same series as tsdb_appender_add, and a
 * key that is not canonical, or labels that are invalid, never create a series. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"
#include "util/log.h"

static char dir[256];
static tsdb *db;

static void open_db(void) {
    tr_log_set_level(TR_LOG_ERROR);
    snprintf(dir, sizeof dir, "/tmp/tsdb-key-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    tsdb_options o = {.dir = dir, .max_labels = 4};
    char err[256];
    cr_assert_eq(tsdb_open(&o, &db, err, sizeof err), 0, "%s", err);
}
static void close_db(void) {
    tsdb_close(db);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {
    }
}
TestSuite(metrics_append_key, .init = open_db, .fini = close_db);

static void done(void *c, int st, const char *m) {
    (void)m;
    *(int *)c = st == TSDB_OK ? 1 : -1;
}
static void commit(tsdb_appender *a) {
    int st = 0;
    tsdb_appender_commit(a, done, &st);
    cr_assert_eq(st, 1);
}
static uint64_t series_count(void) {
    tsdb_stats st;
    tsdb_get_stats(db, &st);
    return st.head_series;
}
/* a key from a string literal: its length is the literal's, embedded NULs included */
#define KEY(s) s, sizeof s - 1

Test(metrics_append_key, same_series_as_labels_in_any_order) {
    tsdb_appender *a = tsdb_appender_begin(db);
    tsdb_label l[] = {{"job", "api"}, {"__name__", "up"}, {"empty", ""}};
    cr_assert_eq(tsdb_appender_add(a, l, 3, 1000, 1), TSDB_OK);
    cr_assert_eq(tsdb_appender_add_key(a, KEY("__name__\0up\0job\0api\0"), 2000, 2), TSDB_OK);
    commit(a);
    cr_assert_eq(series_count(), 1);
    /* and the other way round: created by key, found by labels */
    a = tsdb_appender_begin(db);
    cr_assert_eq(tsdb_appender_add_key(a, KEY("__name__\0down\0"), 1000, 1), TSDB_OK);
    tsdb_label d[] = {{"__name__", "down"}};
    cr_assert_eq(tsdb_appender_add(a, d, 1, 2000, 2), TSDB_OK);
    commit(a);
    cr_assert_eq(series_count(), 2);
    tsdb_querier *q = tsdb_querier_open(db, 0, 10000);
    tsdb_matcher *m = tsdb_matcher_new(TSDB_MATCH_EQ, "__name__", "up", NULL, 0);
    char err[256];
    tsdb_seriesset *s = tsdb_select(q, &m, 1, TSDB_SELECT_SAMPLES, err, sizeof err);
    cr_assert_eq(tsdb_seriesset_len(s), 1);
    const int64_t *t;
    const double *v;
    cr_assert_eq(tsdb_seriesset_samples(s, 0, &t, &v), 2);
    cr_assert_eq(v[1], 2);
    tsdb_seriesset_free(s);
    tsdb_matcher_free(m);
    tsdb_querier_close(q);
}

Test(metrics_append_key, keys_not_canonical_or_invalid_create_nothing) {
    struct {
        const char *key;
        size_t len;
        int rc;
    } bad[] = {
        {KEY("job\0api\0__name__\0up\0"), TSDB_ERR_LABEL_NAME},   /* unsorted */
        {KEY("__name__\0up\0a\0x\0a\0y\0"), TSDB_ERR_LABEL_NAME}, /* a repeated name */
        {KEY("__name__\0up\0a\0\0"), TSDB_ERR_LABEL_NAME},        /* an empty value */
        {KEY("__name__\0up\0a"), TSDB_ERR_LABEL_NAME},            /* no value */
        {KEY("__name__\0up\0a\0x"), TSDB_ERR_LABEL_NAME},         /* no final NUL */
        {KEY(""), TSDB_ERR_NO_NAME},
        {KEY("job\0api\0"), TSDB_ERR_NO_NAME},
        {KEY("__name__\0"
             "1up\0"),
         TSDB_ERR_NO_NAME},                                   /* an invalid metric name */
        {KEY("__name__\0up\0a-b\0x\0"), TSDB_ERR_LABEL_NAME}, /* an invalid label name */
        {KEY("__name__\0up\0a\0\xc3\x28\0"), TSDB_ERR_UTF8},
        {KEY("__name__\0up\0a\0x\0b\0x\0c\0x\0d\0x\0"), TSDB_ERR_TOO_MANY_LABELS}, /* max_labels 4 */
    };
    tsdb_appender *a = tsdb_appender_begin(db);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(tsdb_appender_add_key(a, bad[i].key, bad[i].len, 1000, 1), bad[i].rc, "case %zu", i);
    cr_assert_eq(tsdb_appender_count(a), 0);
    commit(a);
    cr_assert_eq(series_count(), 0);
    /* the limit is on labels, not on key bytes: four labels are fine */
    a = tsdb_appender_begin(db);
    cr_assert_eq(tsdb_appender_add_key(a, KEY("__name__\0up\0a\0x\0b\0x\0c\0x\0"), 1000, 1), TSDB_OK);
    commit(a);
    cr_assert_eq(series_count(), 1);
}
