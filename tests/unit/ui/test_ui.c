/* The web UI's server side: embedded assets (gzip that inflates to what web/ holds), the
 * If-None-Match and Accept-Encoding parsing, the flags JSON, and the self-scrape that stores
 * tricorder's own /metrics in the store. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http/api.h"
#include "metrics/metrics.h"
#include "ui/assets.h"
#include "ui/ui.h"
#include "util/gzip.h"
#include "util/selfmon.h"

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

Test(ui, embedded_assets_inflate_to_the_source_files) {
    const char *files[][2] = {{"/ui/dashboards/scotty-metrics.json", "dashboards/scotty-metrics.json"},
                              {"/ui/dashboards/tricorder.json", "dashboards/tricorder.json"}};
    for (size_t i = 0; i < 2; i++) {
        const tr_ui_asset *a = tr_ui_find_asset(files[i][0]);
        cr_assert(a, "%s not embedded", files[i][0]);
        cr_assert_str_eq(a->ctype, "application/json");
        cr_assert(a->etag[0] == '"' && a->etag[strlen(a->etag) - 1] == '"');
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", TR_SOURCE_DIR, files[i][1]);
        size_t n;
        char *src = read_all(path, &n);
        tr_buf b;
        tr_buf_init(&b, 0);
        cr_assert_eq(tr_gunzip(a->gz, a->gz_len, a->raw_len, &b), TR_GZIP_OK);
        cr_assert_eq(b.len, n);
        cr_assert(memcmp(b.data, src, n) == 0);
        cr_assert_lt(a->gz_len, n / 3, "JSON compresses well");
        tr_buf_free(&b);
        free(src);
    }
    if (tr_ui_built) {
        const tr_ui_asset *ix = tr_ui_find_asset("/ui/index.html");
        cr_assert(ix);
        cr_assert_str_eq(ix->ctype, "text/html; charset=utf-8");
        cr_assert(tr_ui_find_asset("/ui/vendor/uPlot.esm.js"));
        cr_assert_str_eq(tr_ui_find_asset("/ui/js/main.js")->ctype, "text/javascript; charset=utf-8");
        cr_assert_lt(tr_ui_gzip_bytes, 200 * 1024, "the whole UI under 200 KB gzipped: %zu",
                     tr_ui_gzip_bytes);
    }
    cr_assert_null(tr_ui_find_asset("/ui/nope.js"));
    cr_assert_null(tr_ui_find_asset("/ui/../CMakeLists.txt"));
}

Test(ui, if_none_match) {
    cr_assert(tr_ui_etag_match("\"abc\"", "\"abc\""));
    cr_assert(tr_ui_etag_match("W/\"abc\"", "\"abc\""));
    cr_assert(tr_ui_etag_match("\"x\", \"abc\"", "\"abc\""));
    cr_assert(tr_ui_etag_match("*", "\"abc\""));
    cr_assert_not(tr_ui_etag_match("\"abcd\"", "\"abc\""));
    cr_assert_not(tr_ui_etag_match("abc", "\"abc\""));
    cr_assert_not(tr_ui_etag_match("", "\"abc\""));
    cr_assert_not(tr_ui_etag_match(NULL, "\"abc\""));
}

Test(ui, accept_encoding) {
    cr_assert(tr_ui_accepts_gzip("gzip, deflate, br"));
    cr_assert(tr_ui_accepts_gzip("br;q=1.0, gzip;q=0.8"));
    cr_assert(tr_ui_accepts_gzip("*"));
    cr_assert(tr_ui_accepts_gzip("GZIP"));
    cr_assert_not(tr_ui_accepts_gzip("gzip;q=0"));
    cr_assert_not(tr_ui_accepts_gzip("identity"));
    cr_assert_not(tr_ui_accepts_gzip("x-gzip2"));
    cr_assert_not(tr_ui_accepts_gzip(NULL));
}

Test(ui, self_scrape_stores_own_metrics_under_job_tricorder) {
    char dir[] = "/tmp/tr-ui-selfscrape-XXXXXX";
    cr_assert(mkdtemp(dir));
    tsdb_options o = {.dir = dir, .retention_ms = 86400000LL * 30, .ooo_window_ms = 600000};
    tsdb *db;
    char err[256];
    cr_assert_eq(tsdb_open(&o, &db, err, sizeof err), 0, "%s", err);
    tr_metric *g = tr_gauge_new("tr_ui_test_gauge", "a test gauge", "kind=\"x\"");
    tr_gauge_set(g, 42);
    int64_t now = (int64_t)time(NULL) * 1000;
    long n = tr_selfscrape_once(db, "localhost:8428", now);
    cr_assert_gt(n, 0);
    const char *want[][2] = {{"__name__", "tr_ui_test_gauge"},
                             {"job", "tricorder"},
                             {"instance", "localhost:8428"},
                             {"kind", "x"}};
    tsdb_matcher *m[4];
    size_t nm = 4;
    for (size_t i = 0; i < nm; i++)
        cr_assert(m[i] = tsdb_matcher_new(TSDB_MATCH_EQ, want[i][0], want[i][1], err, sizeof err));
    tsdb_querier *q = tsdb_querier_open(db, now - 1000, now + 1000);
    tsdb_seriesset *s = tsdb_select(q, m, nm, TSDB_SELECT_SAMPLES, err, sizeof err);
    cr_assert(s, "%s", err);
    cr_assert_eq(tsdb_seriesset_len(s), 1);
    const int64_t *t;
    const double *v;
    cr_assert_eq(tsdb_seriesset_samples(s, 0, &t, &v), 1);
    cr_assert_eq(t[0], now);
    cr_assert_eq(v[0], 42);
    tsdb_seriesset_free(s);
    tsdb_querier_close(q);
    for (size_t i = 0; i < nm; i++)
        tsdb_matcher_free(m[i]);
    tsdb_close(db);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}
